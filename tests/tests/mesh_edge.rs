//! Edge routers' anonymous senders (ADR 0009, "the edge uplink"): a message whose address has no consumer
//! on the edge goes up to the interior, which routes it by its `to` anywhere in the mesh.

mod common;

use common::mesh::*;
use common::*;
use shoal_test_support::mesh::{MeshBuilder, TestMesh};

/// Interiors I1 - I2; edge E1 on I1, edge E2 on I2.
async fn two_edges() -> TestMesh {
    let mesh = MeshBuilder::new()
        .interior("I1")
        .interior("I2")
        .edge("E1")
        .edge("E2")
        .connect("I1", "I2")
        .connect("E1", "I1")
        .connect("E2", "I2")
        .start()
        .await;
    mesh.await_routes("I1", 1).await;
    for edge in ["E1", "E2"] {
        mesh.await_mesh(
            edge,
            |m| m.neighbours.iter().any(|n| n.adjacent && n.uplink_attached),
            "an adjacent interior with the uplink attached",
        )
        .await;
    }
    mesh
}

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
