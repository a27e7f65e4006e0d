//! Full addresses: blocking senders by withholding credit, or rejecting with resource-limit-exceeded.

use shoal_amqp::{condition, DeliveryState};
use shoal_broker::{AddressSettings, BrokerAddress, BrokerConfig, FullPolicy};

use crate::support::*;

fn limited(policy: FullPolicy, max: u64) -> BrokerConfig {
    let settings = AddressSettings {
        max_size_bytes: Some(max),
        full_policy: policy,
        ..AddressSettings::default()
    };
    BrokerConfig {
        addresses: vec![BrokerAddress::queue("q").with_settings(settings)],
        link_capacity: 10,
        ..BrokerConfig::default()
    }
}

#[tokio::test]
async fn a_full_queue_rejects_with_resource_limit_exceeded() {
    let size = message("0123456789", true).to_bytes().len() as u64;
    let b = start(limited(FullPolicy::Reject, size * 3)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["0123456789", "0123456789", "0123456789"]).await;
    let d = s.send(&message("0123456789", true), false).await.unwrap();
    match d.outcome().await.unwrap() {
        DeliveryState::Rejected { error: Some(e) } => {
            assert_eq!(e.condition.as_str(), condition::RESOURCE_LIMIT_EXCEEDED)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Consuming one makes room again.
    let r = conn.receiver("q", 1).await.unwrap();
    let got = recv(&r).await;
    r.accept(&got).await.unwrap();
    round_trip(&conn, "q").await;
    assert_eq!(b.stats("q").await.unwrap().depth, 2);
    send_accepted(&s, &["0123456789"]).await;
    assert_eq!(b.stats("q").await.unwrap().depth, 3);
}

#[tokio::test]
async fn a_full_queue_blocks_senders_until_there_is_room() {
    let size = message("0123456789", true).to_bytes().len() as u64;
    let b = start(limited(FullPolicy::Block, size * 20)).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    // Send while credit lasts; the broker stops granting once the queue is full.
    let mut sent = 0;
    loop {
        let d = s.send(&message("0123456789", true), false).await.unwrap();
        assert_eq!(d.outcome().await.unwrap(), DeliveryState::Accepted);
        sent += 1;
        if s.credit() == 0 && b.stats("q").await.unwrap().bytes >= size * 20 {
            break;
        }
        assert!(sent < 100, "the sender was never blocked");
    }
    // Nothing was rejected: the queue holds everything sent; the sender has no credit.
    assert_eq!(b.stats("q").await.unwrap().depth, sent);
    assert_eq!(s.credit(), 0);

    // A consumer frees space: credit comes back and the sender continues.
    let r = conn.receiver("q", 100).await.unwrap();
    for _ in 0..sent {
        let d = recv(&r).await;
        r.accept(&d).await.unwrap();
    }
    tokio::time::timeout(WAIT, s.wait_credit(1))
        .await
        .expect("credit comes back")
        .unwrap();
    send_accepted(&s, &["more"]).await;
}

/// A broker whose queue `q` holds `window` messages in memory and paces producers while a consumer took a
/// message within `pace`; a consumer of `q` has just taken one message (unsettled, its one credit used up) and
/// the producer `s` is attached.
struct Paced {
    b: TestBroker,
    conn: shoal_client::Connection,
    s: shoal_client::Sender,
    /// Keeps the consumer (and its unsettled message) attached for the whole test.
    _r: shoal_client::Receiver,
}

async fn paced_with_active_consumer(window: usize, pace: std::time::Duration) -> Paced {
    let b = start(BrokerConfig {
        link_capacity: 20,
        window,
        pace_while_consumed_within: pace,
        ..queue_q()
    })
    .await;
    let conn = b.connect().await;
    let r = conn.receiver("q", 1).await.unwrap();
    let s = sender(&conn, "q").await;
    s.send(&message("first", false), false)
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap();
    recv(&r).await; // taken, not settled: the consumer is active and its credit is used up
    Paced { b, conn, s, _r: r }
}

impl Paced {
    /// Sends non-durable messages while the sender has credit (each accepted), up to `max`; returns how many.
    async fn send_while_credit(&self, max: usize) -> usize {
        let mut sent = 0;
        while sent < max {
            if self.s.credit() == 0 {
                // The broker may still be topping the sender up: one round trip through its core settles that.
                round_trip(&self.conn, "q").await;
                if self.s.credit() == 0 {
                    break;
                }
            }
            let d = self.s.send(&message("m", false), false).await.unwrap();
            assert_eq!(d.outcome().await.unwrap(), DeliveryState::Accepted);
            sent += 1;
        }
        sent
    }
}

/// A consumer took a message just now: once the window is full, its producers wait for it (no new credit)
/// instead of paging messages out to the store.
#[tokio::test]
async fn producers_are_paced_to_active_consumers_instead_of_paging() {
    let p = paced_with_active_consumer(4, std::time::Duration::from_secs(600)).await;
    let sent = p.send_while_credit(200).await;
    let stats = p.b.stats("q").await.unwrap();
    assert!(sent < 200, "the sender was never held back");
    assert_eq!(p.s.credit(), 0);
    // Only what the sender already held credit for when the window filled can have gone to the store.
    assert!(
        stats.paged <= 20,
        "paged {} while a consumer was active",
        stats.paged
    );
    assert_eq!(stats.ready + stats.paged, sent as u64);
}

/// Without pacing (or once consumers idle past the pacing time) producers page to the store and keep going.
#[tokio::test]
async fn without_pacing_producers_page_and_keep_their_credit() {
    let p = paced_with_active_consumer(4, std::time::Duration::ZERO).await;
    let sent = p.send_while_credit(100).await;
    assert_eq!(sent, 100, "never held back");
    assert!(p.b.stats("q").await.unwrap().paged > 50);
}

#[tokio::test]
async fn an_idle_consumer_stops_pacing_after_the_pacing_time() {
    let pace = std::time::Duration::from_millis(300);
    let p = paced_with_active_consumer(4, pace).await;
    let taken = std::time::Instant::now();
    p.send_while_credit(200).await;
    assert_eq!(p.s.credit(), 0, "held while the consumer is active");
    tokio::time::timeout(WAIT, p.s.wait_credit(1))
        .await
        .expect("credit comes back once the consumer idles")
        .unwrap();
    assert!(
        taken.elapsed() >= pace,
        "released after {:?}",
        taken.elapsed()
    );
}
