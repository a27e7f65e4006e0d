//! Queues: store and forward, FIFO, competing consumers, disconnects, paging.

use shoal_broker::{BrokerAddress, BrokerConfig};

use crate::support::*;

fn config(addresses: Vec<BrokerAddress>) -> BrokerConfig {
    BrokerConfig {
        addresses,
        ..BrokerConfig::default()
    }
}

#[tokio::test]
async fn messages_wait_for_a_consumer_that_comes_later() {
    let b = start(config(vec![BrokerAddress::queue("q")])).await;
    let producer = b.connect().await;
    let s = sender(&producer, "q").await;
    send_accepted(&s, &["a", "b", "c"]).await;
    producer.close().await.unwrap();
    assert_eq!(b.stats("q").await.unwrap().depth, 3);

    let consumer = b.connect().await;
    let r = consumer.receiver("q", 10).await.unwrap();
    let got = recv_texts(&r, 3).await;
    let texts: Vec<_> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
    for (d, _) in &got {
        r.accept(d).await.unwrap();
    }
    assert_empty(&r).await;
    let stats = b.stats("q").await.unwrap();
    assert_eq!(stats.depth, 0);
    assert_eq!(stats.counters.acked, 3);
    assert_eq!(stats.counters.enqueued, 3);
}

#[tokio::test]
async fn fifo_with_a_live_consumer_and_presettled_sends() {
    let b = start(config(vec![BrokerAddress::queue("q")])).await;
    let conn = b.connect().await;
    let r = conn.receiver("q", 500).await.unwrap();
    let s = sender(&conn, "q").await;
    let all = texts(300, "m");
    for (i, t) in all.iter().enumerate() {
        // Mixed: every third presettled (at-most-once from the sender), non-durable every other.
        let d = s.send(&message(t, i % 2 == 0), i % 3 == 0).await.unwrap();
        drop(d);
    }
    let got = recv_texts(&r, all.len()).await;
    let texts: Vec<_> = got.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(texts, all);
}

#[tokio::test]
async fn unknown_addresses_are_refused_unless_auto_created() {
    let b = start(config(vec![])).await;
    let conn = b.connect().await;
    let e = conn.receiver("nowhere", 1).await.unwrap_err();
    assert_eq!(e.condition(), Some(shoal_amqp::condition::NOT_FOUND));
    let e = conn
        .sender(Some("nowhere"), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.condition(), Some(shoal_amqp::condition::NOT_FOUND));

    let auto = start(BrokerConfig {
        auto_create_queues: true,
        ..BrokerConfig::default()
    })
    .await;
    let conn = auto.connect().await;
    let s = sender(&conn, "made/on/demand").await;
    send_accepted(&s, &["x"]).await;
    let r = conn.receiver("made/on/demand", 1).await.unwrap();
    assert_eq!(text(&recv(&r).await), "x");
}

#[tokio::test]
async fn competing_consumers_each_get_distinct_messages() {
    let b = start(config(vec![BrokerAddress::queue("work")])).await;
    let conn = b.connect().await;
    let r1 = conn.receiver("work", 1000).await.unwrap();
    let r2 = conn.receiver("work", 1000).await.unwrap();
    let s = sender(&conn, "work").await;
    let all = texts(200, "job");
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    send_accepted(&s, &refs).await;
    // Every message exactly once across both, each consumer in FIFO order.
    let mut seen = Vec::new();
    let mut per = [0usize; 2];
    while seen.len() < all.len() {
        let (i, d) = tokio::select! {
            d = r1.recv() => (0, d.unwrap()),
            d = r2.recv() => (1, d.unwrap()),
        };
        per[i] += 1;
        seen.push(text(&d));
    }
    assert!(per[0] > 0 && per[1] > 0, "both consumers got work: {per:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "no duplicates, nothing missing");
    assert_empty(&r1).await;
    assert_empty(&r2).await;
}

#[tokio::test]
async fn a_consumer_that_disconnects_gives_its_messages_back() {
    let b = start(config(vec![BrokerAddress::queue("q")])).await;
    let producer = b.connect().await;
    let s = sender(&producer, "q").await;
    send_accepted(&s, &["1", "2", "3"]).await;

    let first = b.connect().await;
    let r = first.receiver("q", 2).await.unwrap();
    let got = recv_texts(&r, 2).await;
    assert_eq!(got[0].1, "1");
    r.accept(&got[0].0).await.unwrap();
    // "2" stays unsettled when the connection goes.
    first.close().await.unwrap();

    let second = b.connect().await;
    let r = second.receiver("q", 10).await.unwrap();
    let got = recv_texts(&r, 2).await;
    let texts: Vec<_> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["2", "3"], "the returned message keeps its place");
    assert_empty(&r).await;
}

#[tokio::test]
async fn a_small_window_pages_to_the_store_and_keeps_order() {
    let b = start(BrokerConfig {
        addresses: vec![BrokerAddress::queue("deep")],
        window: 8,
        ..BrokerConfig::default()
    })
    .await;
    let conn = b.connect().await;
    let s = sender(&conn, "deep").await;
    let all = texts(100, "p");
    let mut pending = Vec::new();
    for (i, t) in all.iter().enumerate() {
        // Non-durable ones page out too once the window is full.
        pending.push(s.send(&message(t, i % 2 == 0), false).await.unwrap());
    }
    for d in pending {
        d.outcome().await.unwrap();
    }
    let stats = b.stats("deep").await.unwrap();
    assert_eq!(stats.depth, 100);
    assert!(stats.ready <= 8, "memory holds a window: {stats:?}");
    assert!(stats.paged >= 92, "the rest is in the store: {stats:?}");

    let r = conn.receiver("deep", 7).await.unwrap();
    let mut got = Vec::new();
    while got.len() < all.len() {
        let d = recv(&r).await;
        got.push(text(&d));
        r.accept(&d).await.unwrap();
        if r.credit() == 0 && r.queued() == 0 {
            r.flow(7).await.unwrap();
        }
    }
    assert_eq!(got, all);
    assert_empty(&r).await;
    assert_eq!(b.stats("deep").await.unwrap().depth, 0);
}

#[tokio::test]
async fn addresses_are_managed_at_run_time() {
    let b = start(config(vec![])).await;
    let handle = b.broker.handle();
    handle
        .set_address(BrokerAddress::queue("late"))
        .await
        .unwrap();
    let conn = b.connect().await;
    let s = sender(&conn, "late").await;
    send_accepted(&s, &["kept"]).await;
    // Same kind: settings change in place, messages stay.
    let settings = shoal_broker::AddressSettings {
        max_delivery_attempts: 2,
        ..Default::default()
    };
    handle
        .set_address(BrokerAddress::queue("late").with_settings(settings.clone()))
        .await
        .unwrap();
    assert_eq!(b.stats("late").await.unwrap().depth, 1);
    let listed = handle.addresses().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].settings, settings);
    // Another kind under the same name is refused.
    let e = handle
        .set_address(BrokerAddress::topic("late"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, shoal_broker::BrokerError::KindConflict { .. }),
        "{e}"
    );

    // Deleting it detaches its links with resource-deleted and drops its messages.
    let r = conn.receiver("late", 0).await.unwrap();
    assert!(handle.delete_address("late").await.unwrap());
    let e = tokio::time::timeout(WAIT, r.detached()).await.unwrap();
    assert_eq!(e.condition(), Some(shoal_amqp::condition::RESOURCE_DELETED));
    let e = tokio::time::timeout(WAIT, s.detached()).await.unwrap();
    assert_eq!(e.condition(), Some(shoal_amqp::condition::RESOURCE_DELETED));
    assert!(b.stats("late").await.is_none());
    assert!(!handle.delete_address("late").await.unwrap());
}
