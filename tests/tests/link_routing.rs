//! Link routing: addresses a route container (a broker) holds are routed link by link over the router's own
//! connection to it. Here the route container is a second router, so the test needs nothing but routers: a
//! client's sender and receiver on router A for `q/1` become links on router B, which routes between them.

use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{Body, DeliveryState, MessageBuilder};
use shoal_client::{ConnectOptions, Connection, SenderOptions};
use shoal_router::{AddressRule, Distribution, Matcher};
use shoal_test_support::{assert_eventually, TestRouter};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn msg(body: &'static str) -> MessageBuilder {
    MessageBuilder {
        body: Body::Data(Bytes::from_static(body.as_bytes())),
        ..Default::default()
    }
}

/// Router A link-routes `q/#` to router B (named `b`), connected.
async fn pair() -> (TestRouter, TestRouter) {
    let b = TestRouter::start().await;
    let mut a = TestRouter::start().await;
    a.handle()
        .set_address(AddressRule {
            name: "default/queues".into(),
            matcher: Matcher::Pattern("q/#".into()),
            distribution: Distribution::Balanced,
            link_route: Some("b".into()),
        })
        .await
        .unwrap();
    a.connect_route_container("b", b.addr());
    let handle = a.handle();
    assert_eventually!(
        handle.snapshot().await.unwrap().route_containers == ["b"],
        "router A connects to B"
    );
    (a, b)
}

#[tokio::test]
async fn links_on_a_routed_address_are_served_by_the_route_container() {
    let (a, b) = pair().await;
    let conn = timeout(T, Connection::connect(a.addr(), ConnectOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let receiver = timeout(T, conn.receiver("q/1", 10)).await.unwrap().unwrap();
    let sender = timeout(T, conn.sender(Some("q/1"), SenderOptions::default()))
        .await
        .unwrap()
        .unwrap();
    // B sees both links: the address lives there.
    assert_eventually!(
        b.address_stats("q/1")
            .await
            .is_some_and(|s| s.consumers == 1 && s.producers == 1),
        "the route container holds the links"
    );
    // Credit comes from B (which has a consumer), through A.
    timeout(T, sender.wait_credit(1)).await.unwrap().unwrap();
    let d = sender
        .send(&msg("through the broker"), false)
        .await
        .unwrap();
    let got = timeout(T, receiver.recv()).await.unwrap().unwrap();
    assert_eq!(
        got.message().unwrap().body,
        Body::Data(Bytes::from_static(b"through the broker"))
    );
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        timeout(T, d.outcome()).await.unwrap().unwrap(),
        DeliveryState::Accepted
    );
    // Outcomes other than accepted pass through as they are.
    let d = sender.send(&msg("refuse me"), false).await.unwrap();
    receiver.flow(1).await.unwrap();
    let got = timeout(T, receiver.recv()).await.unwrap().unwrap();
    receiver.reject(&got, None).await.unwrap();
    assert_eq!(
        timeout(T, d.outcome()).await.unwrap().unwrap(),
        DeliveryState::Rejected { error: None }
    );
    // A drain on the client's receiver is a drain on B's link.
    assert_eq!(timeout(T, receiver.drain()).await.unwrap().unwrap(), 0);
    assert_eq!(receiver.credit(), 0);
}

#[tokio::test]
async fn a_routed_sender_gets_credit_only_while_the_route_container_grants_it() {
    let (a, _b) = pair().await;
    let conn = timeout(T, Connection::connect(a.addr(), ConnectOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let sender = timeout(T, conn.sender(Some("q/empty"), SenderOptions::default()))
        .await
        .unwrap()
        .unwrap();
    // B has no consumer for q/empty: it grants nothing, so neither does A.
    let barrier = timeout(T, conn.receiver("unrouted", 0))
        .await
        .unwrap()
        .unwrap();
    barrier.detach(true).await.unwrap();
    assert_eq!(sender.credit(), 0);
    let _r = timeout(T, conn.receiver("q/empty", 5))
        .await
        .unwrap()
        .unwrap();
    timeout(T, sender.wait_credit(1)).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_routed_address_without_its_broker_is_refused_with_not_found() {
    let a = TestRouter::start().await;
    a.handle()
        .set_address(AddressRule {
            name: "default/queues".into(),
            matcher: Matcher::Prefix("jobs".into()),
            distribution: Distribution::Balanced,
            link_route: Some("absent".into()),
        })
        .await
        .unwrap();
    let conn = timeout(T, Connection::connect(a.addr(), ConnectOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let refused = timeout(T, conn.receiver("jobs", 1)).await.unwrap();
    let Err(error) = refused else {
        panic!("the attach must be refused")
    };
    assert_eq!(error.condition(), Some("amqp:not-found"), "{error:?}");
}

#[tokio::test]
async fn losing_the_route_container_detaches_the_routed_links() {
    let (a, b) = pair().await;
    let conn = timeout(T, Connection::connect(a.addr(), ConnectOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let receiver = timeout(T, conn.receiver("q/2", 1)).await.unwrap().unwrap();
    b.shutdown().await;
    let why = timeout(T, receiver.detached()).await.unwrap();
    assert!(why.condition().is_some(), "the client is told why: {why:?}");
}
