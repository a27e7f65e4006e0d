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
