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
    round_trip(&conn, "q").await;
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

/// A browser of queue `q` (a raw receiver: shoal-client has no browse option).
async fn browse_q(b: &TestBroker) -> RawReceiver {
    let spec = SourceSpec {
        browse: true,
        ..SourceSpec::default()
    };
    RawReceiver::attach(b.addr, "browser", "look", "q", &spec)
        .await
        .unwrap()
}

#[tokio::test]
async fn browsing_reads_without_consuming() {
    let b = start(config()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["x", "y"]).await;
    let mut browser = browse_q(&b).await;
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
    let got: Vec<String> = recv_texts(&r, 3)
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(got, ["x", "y", "z"]);
    assert_eq!(b.stats("q").await.unwrap().counters.delivered, 3);
}

fn colored(text: &str, color: &str) -> shoal_amqp::MessageBuilder {
    let mut m = message(text, true);
    m.application_properties = vec![("color".into(), shoal_amqp::Value::String(color.into()))];
    m
}

fn selector(s: &str) -> Vec<(shoal_amqp::Symbol, shoal_amqp::Value)> {
    vec![(
        "jms-selector".into(),
        shoal_amqp::Value::Described(
            Box::new(shoal_amqp::Value::Symbol(
                "apache.org:selector-filter:string".into(),
            )),
            Box::new(shoal_amqp::Value::String(s.into())),
        ),
    )]
}

/// A source whose JMS selector is `s`.
fn selecting(s: &str) -> SourceSpec {
    SourceSpec {
        filter: Some(selector(s)),
        ..SourceSpec::default()
    }
}

#[tokio::test]
async fn selectors_choose_what_a_consumer_gets() {
    let b = start(config()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    for (t, c) in [("r1", "red"), ("b1", "blue"), ("r2", "red"), ("b2", "blue")] {
        let d = s.send(&colored(t, c), false).await.unwrap();
        assert_eq!(
            d.outcome().await.unwrap(),
            shoal_amqp::DeliveryState::Accepted
        );
    }
    // A queue consumer with a selector takes the red ones, in order, and leaves the others.
    let spec = selecting("color = 'red'");
    let mut reds = RawReceiver::attach(b.addr, "c", "reds", "q", &spec)
        .await
        .unwrap();
    reds.flow(10).await;
    assert_eq!(reds.take(2).await, ["r1", "r2"]);
    reds.assert_empty().await;
    let r = conn.receiver("q", 10).await.unwrap();
    let rest: Vec<String> = recv_texts(&r, 2)
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(rest, ["b1", "b2"]);

    // On a topic the selector filters what the subscription collects.
    let spec = selecting("color <> 'red'");
    let mut not_red = RawReceiver::attach(b.addr, "c", "not-red", "news", &spec)
        .await
        .unwrap();
    let all = conn.receiver("news", 10).await.unwrap();
    let s = sender(&conn, "news").await;
    for (t, c) in [("n1", "red"), ("n2", "green")] {
        let d = s.send(&colored(t, c), false).await.unwrap();
        d.outcome().await.unwrap();
    }
    not_red.flow(10).await;
    assert_eq!(not_red.take(1).await, ["n2"]);
    not_red.assert_empty().await;
    assert_eq!(recv_texts(&all, 2).await.len(), 2);

    // A selector that does not parse refuses the attach.
    let spec = selecting("color = ");
    let e = RawReceiver::attach(b.addr, "c", "bad", "q", &spec)
        .await
        .err()
        .expect("refused");
    assert!(e.contains("invalid-field"), "{e}");
}

/// A browser sees the whole queue, not just the in-memory window: past it, copies come from the store.
#[tokio::test]
async fn browsing_reaches_past_the_window_into_the_store() {
    let b = start(BrokerConfig {
        window: 3,
        ..config()
    })
    .await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    let all = texts(10, "m");
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    send_accepted(&s, &refs).await;
    assert!(
        b.stats("q").await.unwrap().paged > 0,
        "the test needs a paged region"
    );
    let mut browser = browse_q(&b).await;
    browser.flow(4).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, _, body) = browser.recv().await.unwrap();
        seen.push(crate::raw::body_text(&body));
    }
    browser.flow(20).await;
    for _ in 0..6 {
        let (_, _, body) = browser.recv().await.unwrap();
        seen.push(crate::raw::body_text(&body));
    }
    assert_eq!(seen, all, "every message once, in order");
    browser.assert_empty().await;
    assert_eq!(
        b.stats("q").await.unwrap().depth,
        10,
        "browsing consumed nothing"
    );
}
