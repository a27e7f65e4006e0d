//! The router's delivery rules, end to end over real AMQP connections (shoal-client) to an in-process
//! `shoal standalone`.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{AmqpError, Body, DeliveryState, MessageBuilder};
use shoal_client::{ConnectOptions, Connection, Receiver, ReceiverOptions, Sender, SenderOptions};
use shoal_router::{AddressRule, Distribution, Matcher};
use shoal_test_support::{assert_eventually, TestShoal};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

async fn connect(shoal: &TestShoal) -> Connection {
    timeout(
        T,
        Connection::connect(shoal.amqp(), ConnectOptions::default()),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

async fn sender(conn: &Connection, address: Option<&str>) -> Sender {
    timeout(T, conn.sender(address, SenderOptions::default()))
        .await
        .unwrap()
        .expect("sender attaches")
}

async fn receiver(conn: &Connection, address: &str, credit: u32) -> Receiver {
    timeout(T, conn.receiver(address, credit))
        .await
        .unwrap()
        .expect("receiver attaches")
}

fn msg(body: &str) -> MessageBuilder {
    MessageBuilder {
        body: Body::Data(Bytes::copy_from_slice(body.as_bytes())),
        ..Default::default()
    }
}

fn body(r: &shoal_client::Received) -> String {
    match r.message().expect("decodes").body {
        Body::Data(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// A round trip on `conn`: anything the router sent before it has arrived.
async fn barrier(conn: &Connection) {
    let r = receiver(conn, "barrier", 0).await;
    r.detach(true).await.unwrap();
}

async fn rule(shoal: &TestShoal, pattern: &str, distribution: Distribution) {
    shoal
        .router()
        .set_address(AddressRule {
            name: format!("test/{pattern}"),
            matcher: Matcher::Pattern(pattern.into()),
            distribution,
            link_route: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_sender_gets_no_credit_until_a_receiver_attaches() {
    let shoal = TestShoal::start().await;
    let producer = connect(&shoal).await;
    let s = sender(&producer, Some("orders")).await;
    barrier(&producer).await;
    assert_eq!(s.credit(), 0, "no consumer, no credit");
    assert_eventually!(
        shoal
            .address_stats("orders")
            .await
            .is_some_and(|a| a.senders_blocked == 1),
        "the blocked sender shows in the metrics"
    );
    let consumer = connect(&shoal).await;
    let _r = receiver(&consumer, "orders", 10).await;
    timeout(T, s.wait_credit(1)).await.unwrap().unwrap();
    assert_eq!(s.credit(), 250, "credit up to the link capacity");
}

#[tokio::test]
async fn the_receivers_outcome_reaches_the_sender() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let r = receiver(&conn, "q", 10).await;
    let s = sender(&conn, Some("q")).await;

    let error = AmqpError::new("app:invalid-order", "order 42 has no lines");
    let cases = [
        DeliveryState::Accepted,
        DeliveryState::Rejected { error: Some(error) },
        DeliveryState::Released,
        DeliveryState::Modified {
            delivery_failed: Some(true),
            undeliverable_here: Some(true),
            message_annotations: None,
        },
    ];
    for expected in cases {
        let d = s.send(&msg("m"), false).await.unwrap();
        let got = timeout(T, r.recv()).await.unwrap().unwrap();
        assert!(!got.settled, "unsettled in, unsettled out");
        match &expected {
            DeliveryState::Accepted => r.accept(&got).await.unwrap(),
            DeliveryState::Rejected { error } => r.reject(&got, error.clone()).await.unwrap(),
            DeliveryState::Released => r.release(&got).await.unwrap(),
            DeliveryState::Modified { .. } => r.modify(&got, true, true).await.unwrap(),
            DeliveryState::Received { .. } => unreachable!(),
        }
        r.flow(1).await.unwrap();
        let outcome = timeout(T, d.outcome()).await.unwrap().unwrap();
        assert_eq!(outcome, expected);
    }
}

#[tokio::test]
async fn each_anycast_delivery_goes_to_exactly_one_receiver() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let a = receiver(&conn, "work", 200).await;
    let b = receiver(&conn, "work", 200).await;
    let s = sender(&conn, Some("work")).await;
    let mut deliveries = Vec::new();
    for i in 0..100 {
        deliveries.push(s.send(&msg(&format!("job-{i}")), false).await.unwrap());
    }
    let mut seen = HashSet::new();
    let (mut to_a, mut to_b) = (0, 0);
    while seen.len() < 100 {
        let (got, from_a) = tokio::select! {
            g = a.recv() => (g.unwrap(), true),
            g = b.recv() => (g.unwrap(), false),
            _ = tokio::time::sleep(T) => panic!("only {} of 100 arrived", seen.len()),
        };
        assert!(seen.insert(body(&got)), "{} delivered twice", body(&got));
        if from_a {
            to_a += 1;
            a.accept(&got).await.unwrap();
        } else {
            to_b += 1;
            b.accept(&got).await.unwrap();
        }
    }
    assert!(
        to_a > 0 && to_b > 0,
        "balanced over both receivers: {to_a} / {to_b}"
    );
    for d in deliveries {
        assert_eq!(
            timeout(T, d.outcome()).await.unwrap().unwrap(),
            DeliveryState::Accepted
        );
    }
    assert!(
        a.try_recv().is_none() && b.try_recv().is_none(),
        "nothing extra"
    );
}

#[tokio::test]
async fn closest_spreads_over_local_receivers() {
    let shoal = TestShoal::start().await;
    rule(&shoal, "near/#", Distribution::Closest).await;
    let conn = connect(&shoal).await;
    let a = receiver(&conn, "near/x", 100).await;
    let b = receiver(&conn, "near/x", 100).await;
    let s = sender(&conn, Some("near/x")).await;
    for i in 0..20 {
        s.send(&msg(&i.to_string()), true).await.unwrap();
    }
    let mut total = 0;
    let (mut na, mut nb) = (0, 0);
    while total < 20 {
        tokio::select! {
            g = a.recv() => { g.unwrap(); na += 1; }
            g = b.recv() => { g.unwrap(); nb += 1; }
            _ = tokio::time::sleep(T) => panic!("only {total} arrived"),
        }
        total += 1;
    }
    assert!(na > 0 && nb > 0, "{na} / {nb}");
}

#[tokio::test]
async fn presettled_goes_out_presettled_and_without_a_receiver_is_dropped_and_counted() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let r = receiver(&conn, "ticks", 10).await;
    let s = sender(&conn, Some("ticks")).await;
    s.send(&msg("tick"), true).await.unwrap();
    let got = timeout(T, r.recv()).await.unwrap().unwrap();
    assert!(got.settled, "presettled in, presettled out");

    let anonymous = sender(&conn, None).await;
    let nowhere = MessageBuilder {
        to: Some("nowhere".into()),
        ..msg("lost")
    };
    anonymous.send(&nowhere, true).await.unwrap();
    assert_eventually!(
        shoal
            .address_stats("nowhere")
            .await
            .is_some_and(|a| a.stats.dropped == 1),
        "the dropped delivery is counted"
    );
}

#[tokio::test]
async fn the_unsettled_window_is_bounded_by_the_link_capacity() {
    let shoal = TestShoal::start_with(|o| o.link_capacity = 20).await;
    let conn = connect(&shoal).await;
    let r = receiver(&conn, "slow", 1000).await;
    let s = sender(&conn, Some("slow")).await;
    timeout(T, s.wait_credit(20)).await.unwrap().unwrap();
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(s.send(&msg(&i.to_string()), false).await.unwrap());
    }
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(timeout(T, r.recv()).await.unwrap().unwrap());
    }
    barrier(&conn).await;
    assert_eq!(s.credit(), 0, "20 unsettled downstream: no more credit");
    r.accept(&held[0]).await.unwrap();
    timeout(T, s.wait_credit(1)).await.unwrap().unwrap();
    assert_eq!(
        timeout(T, deliveries.remove(0).outcome())
            .await
            .unwrap()
            .unwrap(),
        DeliveryState::Accepted
    );
}

#[tokio::test]
async fn a_receiver_that_detaches_releases_what_it_held_unsettled() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let consumer = connect(&shoal).await;
    let r = receiver(&consumer, "jobs", 10).await;
    let s = sender(&conn, Some("jobs")).await;
    let mut deliveries = Vec::new();
    for i in 0..3 {
        deliveries.push(s.send(&msg(&i.to_string()), false).await.unwrap());
    }
    for _ in 0..3 {
        timeout(T, r.recv()).await.unwrap().unwrap();
    }
    r.detach(true).await.unwrap();
    for d in deliveries {
        assert_eq!(
            timeout(T, d.outcome()).await.unwrap().unwrap(),
            DeliveryState::Released
        );
    }
}

#[tokio::test]
async fn a_receiver_that_disconnects_releases_what_it_held_unsettled() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let consumer = connect(&shoal).await;
    let r = receiver(&consumer, "jobs", 10).await;
    let s = sender(&conn, Some("jobs")).await;
    let d = s.send(&msg("x"), false).await.unwrap();
    timeout(T, r.recv()).await.unwrap().unwrap();
    drop(r);
    consumer.close().await.unwrap();
    assert_eq!(
        timeout(T, d.outcome()).await.unwrap().unwrap(),
        DeliveryState::Released
    );
}

#[tokio::test]
async fn multicast_sends_a_copy_to_every_receiver() {
    let shoal = TestShoal::start().await;
    rule(&shoal, "news/#", Distribution::Multicast).await;
    let conn = connect(&shoal).await;
    let a = receiver(&conn, "news/eu", 100).await;
    let b = receiver(&conn, "news/eu", 100).await;
    let s = sender(&conn, Some("news/eu")).await;
    for i in 0..10 {
        s.send(&msg(&i.to_string()), true).await.unwrap();
    }
    for r in [&a, &b] {
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(body(&timeout(T, r.recv()).await.unwrap().unwrap()));
        }
        assert_eq!(
            got,
            (0..10).map(|i| i.to_string()).collect::<Vec<_>>(),
            "every copy, in order"
        );
    }
}

#[tokio::test]
async fn unsettled_multicast_settles_with_the_aggregated_outcome() {
    let shoal = TestShoal::start().await;
    rule(&shoal, "fan/#", Distribution::Multicast).await;
    let conn = connect(&shoal).await;
    let a = receiver(&conn, "fan/1", 10).await;
    let b = receiver(&conn, "fan/1", 10).await;
    let s = sender(&conn, Some("fan/1")).await;
    let reject = DeliveryState::Rejected { error: None };
    let cases = [
        ("accepted+released", true, false, DeliveryState::Accepted),
        ("released+released", false, false, DeliveryState::Released),
        ("rejected+accepted", true, true, reject.clone()),
    ];
    for (name, a_accepts, b_rejects, expected) in cases {
        let d = s.send(&msg(name), false).await.unwrap();
        let ga = timeout(T, a.recv()).await.unwrap().unwrap();
        let gb = timeout(T, b.recv()).await.unwrap().unwrap();
        if a_accepts {
            a.accept(&ga).await.unwrap();
        } else {
            a.release(&ga).await.unwrap();
        }
        if b_rejects {
            b.reject(&gb, None).await.unwrap();
        } else {
            b.release(&gb).await.unwrap();
        }
        assert_eq!(
            timeout(T, d.outcome()).await.unwrap().unwrap(),
            expected,
            "{name}"
        );
        a.flow(1).await.unwrap();
        b.flow(1).await.unwrap();
    }
}

#[tokio::test]
async fn anonymous_relay_routes_each_message_by_its_to() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let red = receiver(&conn, "red", 10).await;
    let blue = receiver(&conn, "blue", 10).await;
    let s = sender(&conn, None).await;
    for to in ["red", "blue", "red"] {
        let m = MessageBuilder {
            to: Some(to.into()),
            ..msg(to)
        };
        let d = s.send(&m, false).await.unwrap();
        let r = if to == "red" { &red } else { &blue };
        let got = timeout(T, r.recv()).await.unwrap().unwrap();
        assert_eq!(body(&got), to);
        r.accept(&got).await.unwrap();
        assert_eq!(
            timeout(T, d.outcome()).await.unwrap().unwrap(),
            DeliveryState::Accepted
        );
    }
}

#[tokio::test]
async fn request_reply_through_a_dynamic_receiver() {
    let shoal = TestShoal::start().await;
    let service = connect(&shoal).await;
    let requests = receiver(&service, "svc/upper", 10).await;
    let replies = sender(&service, None).await;

    let client = connect(&shoal).await;
    let inbox = timeout(T, client.dynamic_receiver(10))
        .await
        .unwrap()
        .unwrap();
    let reply_to = inbox
        .address()
        .expect("the router names the dynamic node")
        .to_string();
    assert!(reply_to.starts_with("_dynamic/"), "{reply_to}");
    let out = sender(&client, Some("svc/upper")).await;
    let request = MessageBuilder {
        reply_to: Some(reply_to.clone()),
        ..msg("hello")
    };
    out.send(&request, false).await.unwrap();

    let req = timeout(T, requests.recv()).await.unwrap().unwrap();
    let decoded = req.message().unwrap();
    requests.accept(&req).await.unwrap();
    let answer = MessageBuilder {
        to: decoded.reply_to.clone(),
        ..msg(&body(&req).to_uppercase())
    };
    replies.send(&answer, false).await.unwrap();
    let got = timeout(T, inbox.recv()).await.unwrap().unwrap();
    assert_eq!(body(&got), "HELLO");
}

#[tokio::test]
async fn drain_with_nothing_queued_returns_the_credit_at_once() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let r = receiver(&conn, "quiet", 10).await;
    let arrived = timeout(T, r.drain()).await.unwrap().unwrap();
    assert_eq!(arrived, 0);
    assert_eq!(r.credit(), 0);
}

#[tokio::test]
async fn drain_takes_what_is_queued_then_returns_the_rest() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let r = timeout(
        T,
        conn.receiver_with(Some("backlog"), ReceiverOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    let s = sender(&conn, Some("backlog")).await;
    for i in 0..3 {
        s.send(&msg(&i.to_string()), true).await.unwrap();
    }
    assert_eventually!(
        shoal
            .address_stats("backlog")
            .await
            .is_some_and(|a| a.queued == 3),
        "three wait for credit"
    );
    r.flow(5).await.unwrap();
    let arrived = timeout(T, r.drain()).await.unwrap().unwrap();
    assert_eq!(arrived, 3);
    assert_eq!(r.credit(), 0);
    assert_eq!(r.queued(), 3);
}

#[tokio::test]
async fn address_rules_change_routing_without_a_restart() {
    let shoal = TestShoal::start().await;
    let conn = connect(&shoal).await;
    let a = receiver(&conn, "live/x", 10).await;
    let b = receiver(&conn, "live/x", 10).await;
    let s = sender(&conn, Some("live/x")).await;
    rule(&shoal, "live/#", Distribution::Multicast).await;
    s.send(&msg("both"), true).await.unwrap();
    assert_eq!(body(&timeout(T, a.recv()).await.unwrap().unwrap()), "both");
    assert_eq!(body(&timeout(T, b.recv()).await.unwrap().unwrap()), "both");
    assert!(shoal.router().delete_address("test/live/#").await.unwrap());
    s.send(&msg("one"), true).await.unwrap();
    let got = tokio::select! {
        g = a.recv() => g.unwrap(),
        g = b.recv() => g.unwrap(),
    };
    assert_eq!(body(&got), "one");
    barrier(&conn).await;
    assert_eq!(a.queued() + b.queued(), 0, "anycast again: one copy only");
}

#[tokio::test]
async fn metrics_count_connections_links_and_deliveries() {
    let shoal = TestShoal::start().await;
    // What the process holds itself (the MQTT gateway's command relay is an adaptor connection with links).
    let base = shoal.router().snapshot().await.unwrap();
    let conn = connect(&shoal).await;
    let r = receiver(&conn, "counted", 10).await;
    let s = sender(&conn, Some("counted")).await;
    for _ in 0..4 {
        let d = s.send(&msg("x"), false).await.unwrap();
        let got = timeout(T, r.recv()).await.unwrap().unwrap();
        r.accept(&got).await.unwrap();
        d.outcome().await.unwrap();
    }
    let text = shoal.router().prometheus().await.unwrap();
    for line in [
        format!("shoal_connections {}", base.connections + 1),
        format!("shoal_links {}", base.links + 2),
        "shoal_deliveries_in_total{address=\"counted\"} 4".to_owned(),
        "shoal_deliveries_out_total{address=\"counted\"} 4".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[tokio::test]
async fn shutdown_drains_unsettled_deliveries_then_closes_with_forced() {
    let shoal = TestShoal::start().await;
    let producer = connect(&shoal).await;
    let consumer = connect(&shoal).await;
    let r = receiver(&consumer, "drain", 10).await;
    let s = sender(&producer, Some("drain")).await;
    let d = s.send(&msg("in flight"), false).await.unwrap();
    let got = timeout(T, r.recv()).await.unwrap().unwrap();
    let amqp = shoal.amqp();
    let stopping = tokio::spawn(shoal.shutdown());
    assert_eventually!(
        tokio::net::TcpStream::connect(amqp).await.is_err(),
        "the router stops accepting first"
    );
    assert!(
        !stopping.is_finished(),
        "it waits for the unsettled delivery"
    );
    // While the router drains, the receiver still settles: the outcome reaches the sender.
    r.accept(&got).await.unwrap();
    assert_eq!(
        timeout(T, d.outcome()).await.unwrap().unwrap(),
        DeliveryState::Accepted
    );
    timeout(T, stopping).await.unwrap().unwrap();
    for conn in [&producer, &consumer] {
        let why = timeout(T, conn.closed()).await.unwrap();
        assert_eq!(why.condition(), Some("amqp:connection:forced"), "{why:?}");
    }
}
