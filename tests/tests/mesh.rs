//! The router mesh end to end, in process: routers on ephemeral ports joined by inter-router and edge
//! connections (ADR 0009). Clients are `shoal-client` connections to different routers.

mod common;

use common::*;
use shoal_client::Receiver;
use shoal_test_support::mesh::{MeshBuilder, TestMesh};

async fn line() -> TestMesh {
    let mesh = MeshBuilder::new()
        .interior("A")
        .interior("B")
        .interior("C")
        .connect("A", "B")
        .connect("B", "C")
        .start()
        .await;
    mesh.await_routes("A", 2).await;
    mesh.await_routes("C", 2).await;
    mesh
}

async fn client(mesh: &TestMesh, id: &str) -> Connection {
    within(
        "a client connection",
        Connection::connect(mesh.amqp(id), ConnectOptions::default()),
    )
    .await
    .expect("client connects")
}

/// A round trip on `conn`: frames the router sent before it have arrived.
async fn barrier(conn: &Connection) {
    let r = within("a barrier attach", conn.receiver("barrier/unused", 0))
        .await
        .unwrap();
    r.close().await.unwrap();
}

async fn recv_body(r: &Receiver) -> Vec<u8> {
    let d = within("a delivery", r.recv()).await.expect("a delivery");
    let body = match d.message().expect("decodes").body {
        Body::Data(b) => b.to_vec(),
        other => panic!("unexpected body {other:?}"),
    };
    r.accept(&d).await.expect("accept");
    body
}

#[tokio::test]
async fn line_of_three_carries_messages_and_outcomes_end_to_end() {
    let mesh = line().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let sender = a
        .sender(Some("line/q"), SenderOptions::default())
        .await
        .unwrap();
    // No consumer anywhere: no credit (a round trip on the same connection orders any flow before it).
    barrier(&a).await;
    assert_eq!(
        sender.credit(),
        0,
        "a sender with no consumer in the mesh holds no credit"
    );

    let receiver = c.receiver("line/q", 100).await.unwrap();
    within("credit across two hops", sender.wait_credit(1))
        .await
        .unwrap();
    for i in 0..50u32 {
        let d = sender
            .send(&message(i.to_be_bytes().to_vec()), false)
            .await
            .unwrap();
        let body = recv_body(&receiver).await;
        assert_eq!(body, i.to_be_bytes());
        let outcome = within("the outcome", d.outcome()).await.unwrap();
        assert_eq!(outcome, DeliveryState::Accepted);
    }
    // A rejection travels back over both hops as it is.
    let d = sender.send(&message(&b"bad"[..]), false).await.unwrap();
    let got = within("a delivery", receiver.recv()).await.unwrap();
    receiver
        .reject(
            &got,
            Some(AmqpError::new(condition::INTERNAL_ERROR, "no thanks")),
        )
        .await
        .unwrap();
    match within("the outcome", d.outcome()).await.unwrap() {
        DeliveryState::Rejected { error: Some(e) } => {
            assert_eq!(e.description.as_deref(), Some("no thanks"))
        }
        other => panic!("expected the receiver's rejection, got {other:?}"),
    }

    // The consumer goes: the mesh withdraws the address and the sender's messages are released.
    receiver.close().await.unwrap();
    mesh.await_mesh(
        "A",
        |m| {
            !m.addresses
                .iter()
                .any(|a| a.address == "line/q" && !a.destinations.is_empty())
        },
        "line/q withdrawn",
    )
    .await;
    // The sender keeps its credit (ADR 0003); what it sends now comes back released, from A itself.
    let d = sender.send(&message(&b"late"[..]), false).await.unwrap();
    assert_eq!(
        within("the outcome", d.outcome()).await.unwrap(),
        DeliveryState::Released
    );
    mesh.shutdown().await;
}

fn auto(credit: u32) -> shoal_client::ReceiverOptions {
    shoal_client::ReceiverOptions {
        auto_replenish: true,
        ..shoal_client::ReceiverOptions::credit(credit)
    }
}

async fn stats(mesh: &TestMesh, id: &str, address: &str) -> (u64, u64) {
    let snap = mesh.handle(id).snapshot().await.unwrap();
    snap.addresses
        .iter()
        .find(|a| a.address == address)
        .map_or((0, 0), |a| (a.stats.deliveries_in, a.stats.deliveries_out))
}

async fn triangle() -> TestMesh {
    let mesh = MeshBuilder::new()
        .interior("A")
        .interior("B")
        .interior("C")
        .connect("A", "B")
        .connect("B", "C")
        .connect("A", "C")
        .start()
        .await;
    for id in ["A", "B", "C"] {
        mesh.await_routes(id, 2).await;
    }
    mesh
}

#[tokio::test]
async fn triangle_takes_the_shortest_path_without_loops_or_duplicates() {
    let mesh = triangle().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let receiver = c.receiver_with(Some("tri/q"), auto(50)).await.unwrap();
    mesh.await_destination("A", "tri/q").await;
    let sender = a
        .sender(Some("tri/q"), SenderOptions::default())
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..100u32 {
        outcomes.push(
            sender
                .send(&message(i.to_be_bytes().to_vec()), false)
                .await
                .unwrap(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let body = recv_body(&receiver).await;
        assert!(seen.insert(body), "a duplicate delivery");
    }
    for d in outcomes {
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    barrier(&c).await;
    assert!(
        receiver.try_recv().is_none(),
        "more deliveries than were sent"
    );
    // A -> C is one hop: B never saw the traffic.
    assert_eq!(
        stats(&mesh, "B", "tri/q").await,
        (0, 0),
        "traffic took the long way"
    );
    assert_eq!(stats(&mesh, "C", "tri/q").await.1, 100);
    mesh.shutdown().await;
}

#[tokio::test]
async fn balanced_consumers_on_two_routers_of_a_triangle_share_without_loops() {
    let mesh = triangle().await;
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let c = client(&mesh, "C").await;
    let rb = b.receiver_with(Some("tri/bal"), auto(20)).await.unwrap();
    let rc = c.receiver_with(Some("tri/bal"), auto(20)).await.unwrap();
    for id in ["A", "B", "C"] {
        mesh.await_destination(id, "tri/bal").await;
    }
    let sender = a
        .sender(Some("tri/bal"), SenderOptions::default())
        .await
        .unwrap();
    const N: u32 = 200;
    let mut outcomes = Vec::new();
    for i in 0..N {
        outcomes.push(
            sender
                .send(&message(i.to_be_bytes().to_vec()), false)
                .await
                .unwrap(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let (mut at_b, mut at_c) = (0, 0);
    while seen.len() < N as usize {
        tokio::select! {
            d = rb.recv() => { let d = d.unwrap(); rb.accept(&d).await.unwrap(); at_b += 1; assert!(seen.insert(d.bytes.clone()), "duplicate"); }
            d = rc.recv() => { let d = d.unwrap(); rc.accept(&d).await.unwrap(); at_c += 1; assert!(seen.insert(d.bytes.clone()), "duplicate"); }
            _ = tokio::time::sleep(STEP) => panic!("only {} of {N} delivered", seen.len()),
        }
    }
    for d in outcomes {
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    assert!(
        at_b > 0 && at_c > 0,
        "both consumers take a share: {at_b} / {at_c}"
    );
    barrier(&b).await;
    barrier(&c).await;
    assert!(
        rb.try_recv().is_none() && rc.try_recv().is_none(),
        "a duplicate after all"
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn multicast_reaches_receivers_on_two_routers_once_each() {
    let mesh = triangle().await;
    for id in ["A", "B", "C"] {
        mesh.handle(id)
            .set_address(shoal_router::AddressRule {
                name: "mc".into(),
                matcher: shoal_router::Matcher::Prefix("mc".into()),
                distribution: shoal_router::Distribution::Multicast,
                link_route: None,
            })
            .await
            .unwrap();
    }
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let c = client(&mesh, "C").await;
    let rb = b.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    let rc = c.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    let rc2 = c.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    mesh.await_mesh(
        "A",
        |m| {
            m.addresses
                .iter()
                .any(|a| a.address == "mc/news" && a.destinations.len() == 2)
        },
        "both destinations of mc/news",
    )
    .await;
    let sender = a
        .sender(Some("mc/news"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..20u32 {
        let d = sender
            .send(&message(i.to_be_bytes().to_vec()), false)
            .await
            .unwrap();
        for r in [&rb, &rc, &rc2] {
            assert_eq!(recv_body(r).await, i.to_be_bytes());
        }
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    for (conn, r) in [(&b, &rb), (&c, &rc), (&c, &rc2)] {
        barrier(conn).await;
        assert!(r.try_recv().is_none(), "a receiver got a copy twice");
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_message_never_goes_back_to_a_router_it_crossed() {
    // Consumers on both routers of a pair: A balances between its own consumer and B; what B receives from
    // A may go to B's consumer only, never back to A (whose consumer B would otherwise balance towards).
    let mesh = MeshBuilder::new()
        .interior("A")
        .interior("B")
        .connect("A", "B")
        .start()
        .await;
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let ra = a.receiver_with(Some("pair/q"), auto(20)).await.unwrap();
    let rb = b.receiver_with(Some("pair/q"), auto(20)).await.unwrap();
    mesh.await_destination("A", "pair/q").await;
    mesh.await_destination("B", "pair/q").await;
    let sender = a
        .sender(Some("pair/q"), SenderOptions::default())
        .await
        .unwrap();
    const N: usize = 100;
    let mut outcomes = Vec::new();
    for i in 0..N as u32 {
        outcomes.push(
            sender
                .send(&message(i.to_be_bytes().to_vec()), false)
                .await
                .unwrap(),
        );
    }
    let (mut got, mut at_b) = (0, 0);
    while got < N {
        tokio::select! {
            d = ra.recv() => { let d = d.unwrap(); ra.accept(&d).await.unwrap(); got += 1; }
            d = rb.recv() => { let d = d.unwrap(); rb.accept(&d).await.unwrap(); got += 1; at_b += 1; }
            _ = tokio::time::sleep(STEP) => panic!("only {got} of {N} delivered"),
        }
    }
    for d in outcomes {
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    assert!(at_b > 0, "B's consumer takes a share");
    assert_eq!(
        stats(&mesh, "A", "pair/q").await.0,
        N as u64,
        "a message came back to A from B"
    );
    assert_eq!(stats(&mesh, "B", "pair/q").await.1, at_b as u64);
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_client_claiming_to_be_a_router_is_just_a_client_and_cannot_speak_the_protocol() {
    let mesh = MeshBuilder::new().interior("A").start().await;
    let mut raw = Connection::raw(mesh.amqp("A")).await.unwrap();
    let open = Open {
        container_id: "impostor".into(),
        properties: Some(vec![
            (
                Symbol::from("shoal:router-id"),
                shoal_amqp::Value::String("X".into()),
            ),
            (
                Symbol::from("shoal:mode"),
                shoal_amqp::Value::String("interior".into()),
            ),
            (Symbol::from("shoal:version"), shoal_amqp::Value::Uint(1)),
        ]),
        ..Open::default()
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    match raw.next_performative().await {
        Some((_, Performative::Open(reply))) => {
            assert!(
                reply.properties.is_none(),
                "a normal listener answered as a router"
            )
        }
        other => panic!("expected open, got {other:?}"),
    }
    raw.begin(0).await.unwrap();
    raw.send_frame(
        0,
        &attach(
            0,
            "ctl",
            Role::Sender,
            shoal_router::core::MESH_CONTROL_ADDRESS,
        ),
        &[],
    )
    .await
    .unwrap();
    let mut refused = false;
    while let Some((_, p)) = raw.next_performative().await {
        if let Performative::Detach(d) = p {
            let e = d.error.expect("a refusal says why");
            assert_eq!(e.condition.as_str(), condition::UNAUTHORIZED_ACCESS);
            refused = true;
            break;
        }
    }
    assert!(refused, "the control address was not refused");
    assert!(mesh.handle("A").mesh().await.unwrap().neighbours.is_empty());
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_broker_address_works_from_a_router_without_the_broker_connection() {
    // A - B - C; only C is connected to the broker (here a bare router acting as the route container).
    let broker = shoal_test_support::TestRouter::start().await;
    let mut mesh = MeshBuilder::new()
        .interior("A")
        .interior("B")
        .interior("C")
        .connect("A", "B")
        .connect("B", "C")
        .start()
        .await;
    for id in ["A", "B", "C"] {
        mesh.handle(id)
            .set_address(shoal_router::AddressRule {
                name: "default/queues".into(),
                matcher: shoal_router::Matcher::Pattern("q/#".into()),
                distribution: shoal_router::Distribution::Balanced,
                link_route: Some("broker".into()),
            })
            .await
            .unwrap();
    }
    mesh.connect_route_container("C", "broker", broker.addr());
    mesh.await_destination("A", "_broker/broker").await;

    let a = client(&mesh, "A").await;
    let receiver = a.receiver("q/1", 10).await.unwrap();
    let sender = a
        .sender(Some("q/1"), SenderOptions::default())
        .await
        .unwrap();
    // The broker holds both links: they were routed A -> B -> C -> broker.
    assert_eventually!(
        broker
            .address_stats("q/1")
            .await
            .is_some_and(|s| s.consumers == 1 && s.producers == 1),
        "the broker holds the client's links"
    );
    let d = sender.send(&message(&b"stored"[..]), false).await.unwrap();
    assert_eq!(recv_body(&receiver).await, b"stored");
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    // What the broker got is what the client sent: no mesh trace.
    let got = {
        let r2 = a.receiver("q/2", 10).await.unwrap();
        let s2 = a
            .sender(Some("q/2"), SenderOptions::default())
            .await
            .unwrap();
        s2.send(&message(&b"plain"[..]), false).await.unwrap();
        within("a delivery", r2.recv()).await.unwrap()
    };
    assert!(got.message().unwrap().message_annotations.is_empty());
    mesh.shutdown().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn large_and_presettled_messages_cross_the_mesh() {
    let mesh = line().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let receiver = c.receiver_with(Some("line/big"), auto(10)).await.unwrap();
    mesh.await_destination("A", "line/big").await;
    let sender = a
        .sender(Some("line/big"), SenderOptions::default())
        .await
        .unwrap();
    // A message of many frames streams through both hops intact.
    let big = pattern(1024 * 1024 + 17);
    let d = sender.send(&message(big.clone()), false).await.unwrap();
    let got = recv_body(&receiver).await;
    assert_eq!(got.len(), big.len());
    assert_eq!(hash(&got), hash(&big));
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    // Presettled ones arrive too (at most once: no outcome to wait for).
    for i in 0..20u32 {
        sender
            .send(&message(i.to_be_bytes().to_vec()), true)
            .await
            .unwrap();
    }
    for i in 0..20u32 {
        assert_eq!(recv_body(&receiver).await, i.to_be_bytes());
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn request_reply_across_the_mesh_through_a_dynamic_address() {
    let mesh = line().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let service = c.receiver_with(Some("svc"), auto(10)).await.unwrap();
    let replies = a.dynamic_receiver(10).await.unwrap();
    let reply_to = replies.address().expect("a dynamic address").to_owned();
    assert!(reply_to.starts_with("_dynamic/A/"), "{reply_to}");
    mesh.await_destination("A", "svc").await;
    mesh.await_destination("C", &reply_to).await;

    let requests = a
        .sender(Some("svc"), SenderOptions::default())
        .await
        .unwrap();
    let answers = c.sender(None, SenderOptions::default()).await.unwrap();
    let request = MessageBuilder {
        reply_to: Some(reply_to.clone()),
        ..message(&b"ping"[..])
    };
    requests.send(&request, false).await.unwrap();
    let got = within("the request", service.recv()).await.unwrap();
    service.accept(&got).await.unwrap();
    let to = got.message().unwrap().reply_to.expect("reply-to kept");
    let reply = MessageBuilder {
        to: Some(to),
        ..message(&b"pong"[..])
    };
    let d = answers.send(&reply, false).await.unwrap();
    let back = within("the reply", replies.recv()).await.unwrap();
    replies.accept(&back).await.unwrap();
    assert_eq!(
        back.message().unwrap().body,
        Body::Data(Bytes::from_static(b"pong"))
    );
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    mesh.shutdown().await;
}
