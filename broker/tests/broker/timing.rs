//! Redelivery delays and TTLs, on paused tokio time: connections are made first, then the clock stops and
//! only moves when every task is idle, straight to the next timer (the broker's own: the test server's
//! connection timers are a day away).

use std::time::Duration;

use shoal_amqp::Value;
use shoal_broker::annotations::{EXPIRED, ORIGINAL_ADDRESS};
use shoal_broker::{AddressSettings, BrokerAddress, BrokerConfig};
use tokio::time::Instant;

use crate::support::*;

/// Queue `q` with `settings`, whose expired messages move to queue `expired`.
fn expiring_to_a_queue(settings: AddressSettings) -> BrokerConfig {
    let settings = AddressSettings {
        expiry_address: Some("expired".into()),
        ..settings
    };
    BrokerConfig {
        addresses: vec![
            BrokerAddress::queue("q").with_settings(settings),
            BrokerAddress::queue("expired"),
        ],
        ..BrokerConfig::default()
    }
}

#[tokio::test]
async fn a_failed_message_waits_out_its_redelivery_delay() {
    let settings = AddressSettings {
        redelivery_delay: Duration::from_secs(10),
        redelivery_delay_multiplier: 3.0,
        maximum_delivery_delay: Some(Duration::from_secs(20)),
        ..AddressSettings::default()
    };
    let b = start(BrokerConfig {
        addresses: vec![BrokerAddress::queue("q").with_settings(settings)],
        ..BrokerConfig::default()
    })
    .await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    // Non-durable: with the clock paused, no store write may stand between a delivery and the timer under test
    // (see `send_accepted_paused`).
    send_accepted_paused(&s, &["slow", "next"]).await;
    let r = conn.receiver("q", 1).await.unwrap();
    let d = recv(&r).await;
    assert_eq!(text(&d), "slow");

    tokio::time::pause();
    r.modify(&d, true, false).await.unwrap();
    let failed_at = Instant::now();
    r.flow(2).await.unwrap();
    // Meanwhile the queue goes on with the next message.
    let next = recv_paused(&r).await;
    assert_eq!(text(&next), "next");
    r.accept(&next).await.unwrap();
    let again = recv_paused(&r).await;
    assert_eq!(text(&again), "slow");
    assert_eq!(delivery_count(&again), 1);
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(10),
        "redelivered after {waited:?}"
    );

    // Second failure: 10 s * 3 = 30 s, capped at 20 s.
    r.modify(&again, true, false).await.unwrap();
    let failed_at = Instant::now();
    r.flow(1).await.unwrap();
    let third = recv_paused(&r).await;
    let waited = failed_at.elapsed();
    assert_eq!(delivery_count(&third), 2);
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(30),
        "capped delay, waited {waited:?}"
    );
}

#[tokio::test]
async fn expired_messages_go_to_the_expiry_address_and_are_never_delivered() {
    let b = start(expiring_to_a_queue(AddressSettings::default())).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    // A receiver without credit: present, but nothing can go to it yet.
    let r = conn.receiver("q", 0).await.unwrap();
    let dead = conn.receiver("expired", 10).await.unwrap();

    tokio::time::pause();
    let sent_at = Instant::now();
    for (t, ttl) in [("short", 5), ("long", 3600)] {
        let d = s
            .send(&message_ttl(t, Duration::from_secs(ttl)), false)
            .await
            .unwrap();
        assert_eq!(
            d.outcome().await.unwrap(),
            shoal_amqp::DeliveryState::Accepted
        );
    }
    // The purge moves the short one when its deadline passes (the clock jumps there: nothing else is due).
    let moved = recv_paused(&dead).await;
    assert!(sent_at.elapsed() >= Duration::from_secs(5));
    assert_eq!(text(&moved), "short");
    let m = moved.message().unwrap();
    let keys: Vec<&str> = m
        .message_annotations
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(keys.contains(&EXPIRED), "{keys:?}");
    assert!(m
        .message_annotations
        .contains(&(ORIGINAL_ADDRESS.into(), Value::String("q".into()))));
    assert_eq!(
        m.header.and_then(|h| h.ttl),
        None,
        "the moved copy has no TTL left"
    );

    // Only the live message is delivered.
    r.flow(5).await.unwrap();
    let live = recv_paused(&r).await;
    assert_eq!(text(&live), "long");
    let stats = b.stats("q").await.unwrap();
    assert_eq!(stats.counters.expired, 1);
}

#[tokio::test]
async fn an_unsettled_message_that_expires_meanwhile_is_not_delivered_again() {
    let b = start(queue_q()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    let r = conn.receiver("q", 1).await.unwrap();
    tokio::time::pause();
    let d = s
        .send(&message_ttl("brief", Duration::from_secs(2)), false)
        .await
        .unwrap();
    d.outcome().await.unwrap();
    let got = recv_paused(&r).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    r.release(&got).await.unwrap();
    send_accepted_paused(&s, &["after"]).await;
    r.flow(1).await.unwrap();
    assert_eq!(text(&recv_paused(&r).await), "after");
    let stats = b.stats("q").await.unwrap();
    assert_eq!(stats.counters.expired, 1);
    assert_eq!(
        stats.counters.dropped, 1,
        "no expiry address: dropped and counted"
    );
}

#[tokio::test]
async fn queue_ttl_limits_clamp_the_messages_own() {
    let b = start(expiring_to_a_queue(AddressSettings {
        message_ttl_max: Some(Duration::from_secs(60)),
        ..AddressSettings::default()
    }))
    .await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    let dead = conn.receiver("expired", 10).await.unwrap();
    tokio::time::pause();
    let start = Instant::now();
    // No TTL of its own: the queue's maximum applies.
    send_accepted_paused(&s, &["forever?"]).await;
    let moved = recv_paused(&dead).await;
    assert_eq!(text(&moved), "forever?");
    let after = start.elapsed();
    assert!(
        after >= Duration::from_secs(60) && after < Duration::from_secs(120),
        "expired after {after:?}"
    );
}

#[tokio::test]
async fn paged_out_messages_expire_through_the_store_index() {
    let b = start(BrokerConfig {
        window: 4,
        ..expiring_to_a_queue(AddressSettings::default())
    })
    .await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    // The window fills with messages that do not expire (and nobody consumes them, so it never drains).
    send_accepted(&s, &["w1", "w2", "w3", "w4"]).await;
    let dead = conn.receiver("expired", 10).await.unwrap();
    tokio::time::pause();
    let sent_at = Instant::now();
    for t in ["p1", "p2"] {
        let d = s
            .send(&message_ttl(t, Duration::from_secs(30)), false)
            .await
            .unwrap();
        d.outcome().await.unwrap();
    }
    // (The clock may already have jumped to their deadline while the store wrote them: no stats here.)
    let got = [recv_paused(&dead).await, recv_paused(&dead).await];
    assert!(sent_at.elapsed() >= Duration::from_secs(30));
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["p1", "p2"]);
    let stats = b.stats("q").await.unwrap();
    assert_eq!(
        (stats.depth, stats.paged, stats.counters.expired),
        (4, 0, 2)
    );
    // The window still has its four, in order, and nothing expired comes after them.
    let r = conn.receiver("q", 10).await.unwrap();
    let left: Vec<String> = [
        recv_paused(&r).await,
        recv_paused(&r).await,
        recv_paused(&r).await,
        recv_paused(&r).await,
    ]
    .iter()
    .map(text)
    .collect();
    assert_eq!(left, ["w1", "w2", "w3", "w4"]);
}
