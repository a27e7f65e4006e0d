//! The router mesh end to end, in process: routers on ephemeral ports joined by inter-router connections
//! (ADR 0009); clients are `shoal-client` connections to different routers. Routing, credit, outcomes and
//! loops here; broker addresses, request/reply, scale and costs in `mesh_features.rs`; failover, edges and
//! partitions in `mesh_failover.rs`.

mod common;

use common::mesh::*;
use common::*;

#[tokio::test]
async fn line_of_three_carries_messages_and_outcomes_end_to_end() {
    let mesh = line().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let sender = sender_to(&a, "line/q").await;
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
    send_each_accepted(&sender, &[&receiver], 50).await;
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
    mesh.await_withdrawn("A", "line/q").await;
    // No consumer anywhere, no credit: A takes back what the sender held (ADR 0003), so it stops sending.
    assert_eventually!(sender.credit() == 0, "the sender's credit taken back");
    // A consumer again: credit again, and what waited for it is delivered.
    let again = c.receiver_with(Some("line/q"), auto(5)).await.unwrap();
    let d = sender.send(&message(&b"late"[..]), false).await.unwrap();
    assert_eq!(recv_body(&again).await, b"late");
    assert_eq!(
        within("the outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn triangle_takes_the_shortest_path_without_loops_or_duplicates() {
    let mesh = triangle().await;
    let a = client(&mesh, "A").await;
    let c = client(&mesh, "C").await;
    let receiver = c.receiver_with(Some("tri/q"), auto(50)).await.unwrap();
    mesh.await_destination("A", "tri/q").await;
    let sender = sender_to(&a, "tri/q").await;
    let outcomes = send_numbered(&sender, 100).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let body = recv_body(&receiver).await;
        assert!(seen.insert(body), "a duplicate delivery");
    }
    assert_all_accepted(outcomes).await;
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
    let sender = sender_to(&a, "tri/bal").await;
    const N: u32 = 200;
    let outcomes = send_numbered(&sender, N).await;
    let (got_b, got_c) = take_from_either(&rb, &rc, N as usize).await;
    let mut seen = std::collections::BTreeSet::new();
    for bytes in got_b.iter().chain(&got_c) {
        assert!(seen.insert(bytes), "duplicate");
    }
    let (at_b, at_c) = (got_b.len(), got_c.len());
    assert_all_accepted(outcomes).await;
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
    mesh.set_address(shoal_router::AddressRule {
        name: "mc".into(),
        matcher: shoal_router::Matcher::Prefix("mc".into()),
        distribution: shoal_router::Distribution::Multicast,
        link_route: None,
    })
    .await;
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let c = client(&mesh, "C").await;
    let rb = b.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    let rc = c.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    let rc2 = c.receiver_with(Some("mc/news"), auto(50)).await.unwrap();
    mesh.await_destinations("A", "mc/news", 2).await;
    let sender = sender_to(&a, "mc/news").await;
    send_each_accepted(&sender, &[&rb, &rc, &rc2], 20).await;
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
    let mesh = pair().await;
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let ra = a.receiver_with(Some("pair/q"), auto(20)).await.unwrap();
    let rb = b.receiver_with(Some("pair/q"), auto(20)).await.unwrap();
    mesh.await_destination("A", "pair/q").await;
    mesh.await_destination("B", "pair/q").await;
    let sender = sender_to(&a, "pair/q").await;
    const N: usize = 100;
    let outcomes = send_numbered(&sender, N as u32).await;
    let at_b = take_from_either(&ra, &rb, N).await.1.len();
    assert_all_accepted(outcomes).await;
    assert!(at_b > 0, "B's consumer takes a share");
    assert_eq!(
        stats(&mesh, "A", "pair/q").await.0,
        N as u64,
        "a message came back to A from B"
    );
    assert_eq!(stats(&mesh, "B", "pair/q").await.1, at_b as u64);
    mesh.shutdown().await;
}
