//! Mesh features end to end (ADR 0009): broker addresses from any router, request/reply through dynamic
//! addresses, many addresses, link costs, large and presettled messages, and who may speak the protocol.

mod common;

use common::mesh::*;
use common::*;
use shoal_test_support::mesh::MeshBuilder;

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
    let mut mesh = line().await;
    mesh.set_address(shoal_router::AddressRule {
        name: "default/queues".into(),
        matcher: shoal_router::Matcher::Pattern("q/#".into()),
        distribution: shoal_router::Distribution::Balanced,
        link_route: Some("broker".into()),
    })
    .await;
    mesh.connect_route_container("C", "broker", broker.addr());
    mesh.await_destination("A", "_broker/broker").await;

    let a = client(&mesh, "A").await;
    let receiver = a.receiver("q/1", 10).await.unwrap();
    let sender = sender_to(&a, "q/1").await;
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
    assert_accepted(d).await;
    // What the broker got is what the client sent: no mesh trace.
    let got = {
        let r2 = a.receiver("q/2", 10).await.unwrap();
        let s2 = sender_to(&a, "q/2").await;
        s2.send(&message(&b"plain"[..]), false).await.unwrap();
        within("a delivery", r2.recv()).await.unwrap()
    };
    assert!(got.message().unwrap().message_annotations.is_empty());
    mesh.shutdown().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_link_route_declared_on_one_router_is_followed_by_the_routers_after_it() {
    // A - B - C, the broker behind C, and only A knows that `sessions/...` belongs to it (as an MQTT
    // gateway on an edge declares its session queues): B and C follow the route container A names.
    let broker = shoal_test_support::TestRouter::start().await;
    let mut mesh = line().await;
    mesh.handle("A")
        .set_address(shoal_router::AddressRule {
            name: "system/sessions".into(),
            matcher: shoal_router::Matcher::Prefix("sessions".into()),
            distribution: shoal_router::Distribution::Balanced,
            link_route: Some("broker".into()),
        })
        .await
        .unwrap();
    mesh.connect_route_container("C", "broker", broker.addr());
    mesh.await_destination("A", "_broker/broker").await;

    let a = client(&mesh, "A").await;
    let receiver = a.receiver("sessions/s1", 10).await.unwrap();
    let sender = sender_to(&a, "sessions/s1").await;
    assert_eventually!(
        broker
            .address_stats("sessions/s1")
            .await
            .is_some_and(|s| s.consumers == 1 && s.producers == 1),
        "the broker holds the client's links"
    );
    let d = sender.send(&message(&b"kept"[..]), false).await.unwrap();
    assert_eq!(recv_body(&receiver).await, b"kept");
    assert_accepted(d).await;

    // A client of C itself is not routed by a hint: C has no rule, so the address is C's own.
    let c = client(&mesh, "C").await;
    let _local = c.receiver("sessions/s2", 10).await.unwrap();
    assert_eventually!(
        mesh.handle("C")
            .snapshot()
            .await
            .unwrap()
            .addresses
            .iter()
            .any(|a| a.address == "sessions/s2" && a.consumers == 1),
        "C holds the local receiver itself"
    );
    assert!(broker.address_stats("sessions/s2").await.is_none());
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
    let sender = sender_to(&a, "line/big").await;
    // A message of many frames streams through both hops intact.
    let big = pattern(1024 * 1024 + 17);
    let d = sender.send(&message(big.clone()), false).await.unwrap();
    let got = recv_body(&receiver).await;
    assert_eq!(got.len(), big.len());
    assert_eq!(hash(&got), hash(&big));
    assert_accepted(d).await;
    // Presettled ones arrive too (at most once: no outcome to wait for).
    for i in 0..20u32 {
        sender.send(&numbered(i), true).await.unwrap();
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

    let requests = sender_to(&a, "svc").await;
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
    assert_accepted(d).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn many_addresses_each_get_a_proxy_beyond_a_clients_handle_space() {
    // More addresses than a client session's handle-max (1023) allows links: the mesh connection offers more.
    const N: usize = 1100;
    let mesh = pair().await;
    let mut receivers = Vec::new();
    // Several client connections on B: each session holds at most 1024 links.
    let conns = [client(&mesh, "B").await, client(&mesh, "B").await];
    for i in 0..N {
        let r = conns[i % 2]
            .receiver(&format!("many/{i}"), 1)
            .await
            .unwrap();
        receivers.push(r);
    }
    mesh.await_mesh(
        "A",
        |m| {
            m.neighbours.first().is_some_and(|n| n.proxies == N)
                && m.addresses
                    .iter()
                    .filter(|a| !a.destinations.is_empty())
                    .count()
                    == N
        },
        "a proxy per address",
    )
    .await;
    let a = client(&mesh, "A").await;
    let s = a.sender(None, SenderOptions::default()).await.unwrap();
    for i in [0, N / 2, N - 1] {
        let m = MessageBuilder {
            to: Some(format!("many/{i}")),
            ..message(i.to_string().into_bytes())
        };
        let d = s.send(&m, false).await.unwrap();
        assert_eq!(recv_body(&receivers[i]).await, i.to_string().into_bytes());
        assert_accepted(d).await;
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn routes_follow_link_costs() {
    // A - C directly costs 5; A - B - C costs 2: traffic from A to C goes through B.
    let mesh = MeshBuilder::new()
        .interiors(&["A", "B", "C"])
        .connect("A", "B")
        .connect("B", "C")
        .connect_with_cost("A", "C", 5)
        .start()
        .await;
    mesh.await_mesh(
        "A",
        |m| {
            m.routes
                .iter()
                .any(|r| r.router_id == "C" && r.next_hop == "B" && r.cost == 2)
        },
        "the route to C through B",
    )
    .await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let r = c.receiver_with(Some("cost/q"), auto(10)).await.unwrap();
    mesh.await_destination("A", "cost/q").await;
    let s = sender_to(&a, "cost/q").await;
    send_each_accepted(&s, &[&r], 10).await;
    assert_eq!(stats(&mesh, "B", "cost/q").await, (10, 10), "not through B");
    mesh.shutdown().await;
}
