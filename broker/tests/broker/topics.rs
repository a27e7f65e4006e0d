//! Topics: fan-out, private subscriptions, shared and declared subscriptions, browsing.

use shoal_broker::{BrokerAddress, BrokerConfig};

use crate::raw::{RawReceiver, SourceSpec};
use crate::support::*;

fn config() -> BrokerConfig {
    BrokerConfig {
        addresses: vec![
            BrokerAddress::topic("news"),
            BrokerAddress::subscription("news-archive", "news"),
            BrokerAddress::queue("q"),
        ],
        ..BrokerConfig::default()
    }
}

#[tokio::test]
async fn every_subscriber_gets_every_message() {
    let b = start(config()).await;
    let conn = b.connect().await;
    let r1 = conn.receiver("news", 10).await.unwrap();
    let r2 = conn.receiver("news", 10).await.unwrap();
    let s = sender(&conn, "news").await;
    send_accepted(&s, &["one", "two"]).await;
    for r in [&r1, &r2] {
        let got: Vec<String> = recv_texts(r, 2).await.into_iter().map(|(_, t)| t).collect();
        assert_eq!(got, ["one", "two"]);
    }
    // The declared subscription collected them too, at its own address.
    let archive = conn.receiver("news-archive", 10).await.unwrap();
    let got: Vec<String> = recv_texts(&archive, 2)
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(got, ["one", "two"]);
}

#[tokio::test]
async fn a_private_subscription_vanishes_on_detach() {
    let b = start(config()).await;
    let conn = b.connect().await;
    let r = conn.receiver("news", 10).await.unwrap();
    let subs = |stats: shoal_broker::BrokerStats| {
        stats
            .queues
            .into_iter()
            .filter(|q| q.topic.as_deref() == Some("news") && q.name != "news-archive")
            .count()
    };
    assert_eq!(subs(b.broker.handle().stats().await.unwrap()), 1);
    let s = sender(&conn, "news").await;
    send_accepted(&s, &["before"]).await;
    r.detach(true).await.unwrap();
    assert_eq!(subs(b.broker.handle().stats().await.unwrap()), 0);
    send_accepted(&s, &["while away"]).await;
    // A new plain receiver starts from now: nothing of what came before.
    let r = conn.receiver("news", 10).await.unwrap();
    send_accepted(&s, &["after"]).await;
    assert_eq!(text(&recv(&r).await), "after");
    assert_empty(&r).await;
}

#[tokio::test]
async fn shared_subscribers_compete() {
    let b = start(config()).await;
    let spec = SourceSpec {
        durable: true,
        shared: true,
        ..SourceSpec::default()
    };
    let mut a = RawReceiver::attach(b.addr, "app-a", "jobs", "news", &spec)
        .await
        .unwrap();
    let mut c = RawReceiver::attach(b.addr, "app-b", "jobs|2", "news", &spec)
        .await
        .unwrap();
    a.flow(100).await;
    c.flow(100).await;
    let conn = b.connect().await;
    let s = sender(&conn, "news").await;
    let all = texts(20, "n");
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    send_accepted(&s, &refs).await;
    // Round robin between the two: each gets half, nobody gets a message twice.
    let mut got = a.take(10).await;
    got.extend(c.take(10).await);
    got.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(got, expected);
    a.assert_empty().await;
    c.assert_empty().await;
    let stats = b.broker.handle().stats().await.unwrap();
    assert!(stats.queue("news::jobs").is_some(), "{stats:?}");
}

#[tokio::test]
async fn browsing_reads_without_consuming() {
    let b = start(config()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["x", "y"]).await;
    let spec = SourceSpec {
        browse: true,
        ..SourceSpec::default()
    };
    let mut browser = RawReceiver::attach(b.addr, "browser", "look", "q", &spec)
        .await
        .unwrap();
    browser.flow(10).await;
    let (_, settled, first) = browser.recv().await.unwrap();
    assert!(settled, "browsed copies come presettled");
    let (_, _, second) = browser.recv().await.unwrap();
    assert_eq!(crate::raw::body_text(&first), "x");
    assert_eq!(crate::raw::body_text(&second), "y");
    browser.assert_empty().await;
    // A new message shows up to the browser too.
    send_accepted(&s, &["z"]).await;
    browser.flow(10).await;
    let (_, _, third) = browser.recv().await.unwrap();
    assert_eq!(crate::raw::body_text(&third), "z");

    // All three are still there for a consumer.
    let r = conn.receiver("q", 10).await.unwrap();
    let got: Vec<String> = recv_texts(&r, 3).await.into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, ["x", "y", "z"]);
    assert_eq!(b.stats("q").await.unwrap().counters.delivered, 3);
}
