//! Edge routers' anonymous senders (ADR 0009, "the edge uplink"): a message whose address has no consumer
//! on the edge goes up to the interior, which routes it by its `to` anywhere in the mesh.

mod common;

use common::mesh::*;
use common::*;

fn to(address: &str, n: u32) -> MessageBuilder {
    MessageBuilder {
        to: Some(address.into()),
        ..message(n.to_be_bytes().to_vec())
    }
}

#[tokio::test]
async fn an_edges_anonymous_sender_reaches_a_consumer_on_another_edge() {
    let mesh = two_edges().await;
    let e1 = client(&mesh, "E1").await;
    let e2 = client(&mesh, "E2").await;
    let r = e2.receiver_with(Some("far/q"), auto(50)).await.unwrap();
    mesh.await_destination("I1", "far/q").await;
    let s = e1.sender(None, SenderOptions::default()).await.unwrap();
    for i in 0..20u32 {
        let d = s.send(&to("far/q", i), false).await.unwrap();
        assert_eq!(recv_body(&r).await, i.to_be_bytes());
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted,
            "the consumer's outcome travels back to the edge's sender"
        );
    }
    // Presettled ones go up too.
    for i in 20..30u32 {
        s.send(&to("far/q", i), true).await.unwrap();
    }
    for i in 20..30u32 {
        assert_eq!(recv_body(&r).await, i.to_be_bytes());
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_anonymous_message_for_nobody_is_released() {
    let mesh = two_edges().await;
    let e1 = client(&mesh, "E1").await;
    let s = e1.sender(None, SenderOptions::default()).await.unwrap();
    let d = s.send(&to("nobody/here", 1), false).await.unwrap();
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Released
    );
    // It did go up: the interior saw it and had nowhere to send it either.
    assert_eq!(stats(&mesh, "I1", "nobody/here").await.0, 1);
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_anonymous_sender_keeps_local_traffic_local() {
    let mesh = two_edges().await;
    let e1 = client(&mesh, "E1").await;
    let r = e1.receiver_with(Some("near/q"), auto(20)).await.unwrap();
    let s = e1.sender(None, SenderOptions::default()).await.unwrap();
    for i in 0..10u32 {
        let d = s.send(&to("near/q", i), false).await.unwrap();
        assert_eq!(recv_body(&r).await, i.to_be_bytes());
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    assert_eq!(stats(&mesh, "I1", "near/q").await.0, 0, "went through I1");
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_anonymous_sender_outpaces_the_uplinks_credit() {
    // More unsettled messages than one link's capacity wait on the edge for the uplink's credit.
    let mesh = two_edges().await;
    let e1 = client(&mesh, "E1").await;
    let e2 = client(&mesh, "E2").await;
    let r = e2.receiver_with(Some("burst/q"), auto(100)).await.unwrap();
    mesh.await_destination("I1", "burst/q").await;
    let senders = [
        e1.sender(None, SenderOptions::default()).await.unwrap(),
        e1.sender(None, SenderOptions::default()).await.unwrap(),
    ];
    // The consumer takes messages while they are sent (its credit comes back as it accepts).
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..600 {
            got.push(u32::from_be_bytes(
                recv_body(&r).await[..4].try_into().unwrap(),
            ));
        }
        got
    });
    let mut pending = Vec::new();
    for i in 0..600u32 {
        let s = &senders[(i % 2) as usize];
        pending.push(s.send(&to("burst/q", i), false).await.unwrap());
    }
    let mut got = within("600 messages", consumer).await.unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..600).collect::<Vec<_>>());
    for d in pending {
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_pattern_subscriber_on_an_edge_does_not_keep_its_messages_from_the_rest_of_the_mesh() {
    // An MQTT `#`-style subscriber on the gateway's edge gets its copy, and the message still goes up to
    // the consumers beyond: the edge cannot know there are none.
    let mesh = two_edges().await;
    let sub = PatternSub::attach(&mesh, "E1", "sensors/#", 50).await;
    let e2 = client(&mesh, "E2").await;
    let far = e2
        .receiver_with(Some("sensors/t1"), auto(50))
        .await
        .unwrap();
    mesh.await_destination("I1", "sensors/t1").await;

    let e1 = client(&mesh, "E1").await;
    let s = e1.sender(None, SenderOptions::default()).await.unwrap();
    let d = s.send(&to("sensors/t1", 1), false).await.unwrap();
    assert_eq!(
        sub.accept_next().await,
        (1u32.to_be_bytes().to_vec(), "sensors/t1".into())
    );
    assert_eq!(recv_body(&far).await, 1u32.to_be_bytes());
    assert_accepted(d).await;
    // Presettled too.
    s.send(&to("sensors/t1", 2), true).await.unwrap();
    assert_eq!(sub.accept_next().await.0, 2u32.to_be_bytes());
    assert_eq!(recv_body(&far).await, 2u32.to_be_bytes());

    // No consumer beyond: the interior releases its copy, and the subscriber's acceptance decides.
    let d = s.send(&to("sensors/t2", 3), false).await.unwrap();
    assert_eq!(
        sub.accept_next().await,
        (3u32.to_be_bytes().to_vec(), "sensors/t2".into())
    );
    assert_accepted(d).await;
    assert_eq!(stats(&mesh, "I1", "sensors/t2").await.0, 1, "it went up");
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_pattern_subscribers_get_what_reaches_its_interior_once_each() {
    let mesh = two_edges().await;
    // Two subscribers of one pattern and one of an overlapping pattern, on the edge (MQTT subscriptions
    // on `shoal mqtt-gateway`): the interior opens one pattern proxy per pattern.
    let a = PatternSub::attach(&mesh, "E1", "sensors/*", 50).await;
    let b = PatternSub::attach(&mesh, "E1", "sensors/*", 50).await;
    let all = PatternSub::attach(&mesh, "E1", "sensors/#", 50).await;
    await_proxies(&mesh, "I1", "E1", 2).await;

    // A named link on the interior: no `to`, yet each subscriber learns the address it matched.
    let i1 = client(&mesh, "I1").await;
    let named = sender_to(&i1, "sensors/t1").await;
    let d = named.send(&numbered(1), false).await.unwrap();
    for sub in [&a, &b, &all] {
        assert_eq!(
            sub.accept_next().await,
            (1u32.to_be_bytes().to_vec(), "sensors/t1".into())
        );
    }
    assert_accepted(d).await;
    // An anonymous sender on the interior, presettled.
    let anon = i1.sender(None, SenderOptions::default()).await.unwrap();
    anon.send(&to("sensors/t2", 2), true).await.unwrap();
    for sub in [&a, &b, &all] {
        assert_eq!(sub.accept_next().await.1, "sensors/t2");
    }
    // From the edge itself: each gets it once, not again from the interior (the next copy each sees is the
    // next message).
    let e1 = client(&mesh, "E1").await;
    let local = e1.sender(None, SenderOptions::default()).await.unwrap();
    for (n, address) in [(3u32, "sensors/t3"), (4, "sensors/t4")] {
        let d = local.send(&to(address, n), false).await.unwrap();
        for sub in [&a, &b, &all] {
            assert_eq!(
                sub.accept_next().await,
                (n.to_be_bytes().to_vec(), address.into())
            );
        }
        assert_accepted(d).await;
    }
    // Only `sensors/#` matches a deeper address.
    let deep = sender_to(&i1, "sensors/deep/t5").await;
    let d = deep.send(&numbered(5), false).await.unwrap();
    assert_eq!(all.accept_next().await.1, "sensors/deep/t5");
    assert_accepted(d).await;

    // The subscribers go: the interior's proxies close, and nobody takes the next message.
    drop((a, b, all));
    await_proxies(&mesh, "I1", "E1", 0).await;
    let d = named.send(&numbered(6), false).await.unwrap();
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Released
    );
    mesh.shutdown().await;
}
