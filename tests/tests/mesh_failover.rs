//! Mesh failover and edges, in process (ADR 0009): a router killed mid-stream, edge routers, duplicate ids.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;

use common::mesh::*;
use common::*;
use shoal_test_support::mesh::{MeshBuilder, TestMesh};

/// What a consuming task saw: message numbers, and when each arrived.
#[derive(Default)]
struct Seen {
    ids: BTreeSet<u32>,
    times: Vec<Instant>,
}

fn consume(r: shoal_client::Receiver, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(d) = r.recv().await {
            let Ok(m) = d.message() else { continue };
            let Body::Data(b) = m.body else { continue };
            let id = u32::from_be_bytes(b[..4].try_into().unwrap());
            if r.accept(&d).await.is_err() {
                break;
            }
            let mut s = seen.lock().unwrap();
            s.ids.insert(id);
            s.times.push(Instant::now());
        }
    })
}

#[tokio::test]
async fn killing_a_router_mid_stream_reroutes_and_loses_no_settled_delivery() {
    let mut mesh = triangle().await;
    let a = client(&mesh, "A").await;
    let b = client(&mesh, "B").await;
    let c = client(&mesh, "C").await;
    let at_b = Arc::new(Mutex::new(Seen::default()));
    let at_c = Arc::new(Mutex::new(Seen::default()));
    let tb = consume(
        b.receiver_with(Some("fo/q"), auto(50)).await.unwrap(),
        Arc::clone(&at_b),
    );
    let tc = consume(
        c.receiver_with(Some("fo/q"), auto(50)).await.unwrap(),
        Arc::clone(&at_c),
    );
    mesh.await_destinations("A", "fo/q", 2).await;
    let sender = sender_to(&a, "fo/q").await;

    // At-least-once: whatever comes back released is sent again.
    const N: u32 = 2000;
    let mut pending: Vec<u32> = (0..N).collect();
    let mut accepted = BTreeSet::new();
    let mut killed_at = None;
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds < 20, "messages keep coming back released");
        let mut outcomes = tokio::task::JoinSet::new();
        for i in std::mem::take(&mut pending) {
            let d = within("credit to send", sender.send(&numbered(i), false))
                .await
                .unwrap();
            outcomes.spawn(async move { (i, d.outcome().await) });
            let delivered = at_b.lock().unwrap().ids.len() + at_c.lock().unwrap().ids.len();
            if killed_at.is_none() && delivered >= 300 {
                mesh.kill("B").await;
                killed_at = Some(Instant::now());
            }
        }
        while let Some(r) = within("outcomes", outcomes.join_next()).await {
            match r.unwrap() {
                (i, Ok(DeliveryState::Accepted)) => {
                    accepted.insert(i);
                }
                (i, Ok(DeliveryState::Released)) => pending.push(i),
                (i, other) => panic!("message {i}: unexpected outcome {other:?}"),
            }
        }
    }
    let killed_at = killed_at.expect("B was killed mid-stream");
    assert_eq!(accepted.len(), N as usize);
    // No settled delivery lost: everything the sender saw accepted reached a consumer.
    let received: BTreeSet<u32> = {
        let b = at_b.lock().unwrap();
        let c = at_c.lock().unwrap();
        b.ids.union(&c.ids).copied().collect()
    };
    let lost: Vec<_> = accepted.difference(&received).collect();
    assert!(lost.is_empty(), "accepted but never received: {lost:?}");
    // New traffic took the other path within 3 s of the kill.
    let resumed = at_c
        .lock()
        .unwrap()
        .times
        .iter()
        .copied()
        .find(|t| *t > killed_at)
        .expect("C received after the kill");
    assert!(
        resumed - killed_at < Duration::from_secs(3),
        "rerouting took {:?}",
        resumed - killed_at
    );
    tb.abort();
    tc.abort();
    mesh.shutdown().await;
}

async fn star() -> TestMesh {
    // I1 - I2 interiors; edges E1, E2 on I1 and E3 on I2.
    MeshBuilder::new()
        .interiors(&["I1", "I2"])
        .edge("E1")
        .edge("E2")
        .edge("E3")
        .connect("I1", "I2")
        .connect("E1", "I1")
        .connect("E2", "I1")
        .connect("E3", "I2")
        .start_converged()
        .await
}

#[tokio::test]
async fn edges_reach_each_other_through_the_interiors() {
    let mesh = star().await;
    let e1 = client(&mesh, "E1").await;
    let e3 = client(&mesh, "E3").await;
    let r = e3.receiver_with(Some("edge/q"), auto(20)).await.unwrap();
    mesh.await_destination("I1", "edge/q").await;
    let s = sender_to(&e1, "edge/q").await;
    send_each_accepted(&s, &[&r], 20).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_edges_local_traffic_stays_local() {
    let mesh = star().await;
    let e2 = client(&mesh, "E2").await;
    let r = e2.receiver_with(Some("local/q"), auto(20)).await.unwrap();
    let s = sender_to(&e2, "local/q").await;
    send_each_accepted(&s, &[&r], 20).await;
    // The interior knows E2's consumer (advertised as its own) but never carried the traffic.
    mesh.await_mesh(
        "I1",
        |m| {
            m.addresses
                .iter()
                .any(|a| a.address == "local/q" && a.local)
        },
        "E2's consumer advertised",
    )
    .await;
    let (carried, _) = stats(&mesh, "I1", "local/q").await;
    assert_eq!(carried, 0, "local traffic went through the interior");
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_router_id_is_refused() {
    use shoal_router::{PeerRole, Router, RouterConfig};
    let config = |id: &str| RouterConfig {
        container_id: id.into(),
        router_id: Some(id.into()),
        ..RouterConfig::default()
    };
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut first = Router::start(config("dup"));
    let listen = first.listen_inter_router(any).await.unwrap().local_addr;
    let mut twin = Router::start(config("dup"));
    twin.connect(PeerRole::InterRouter, listen);
    let mut other = Router::start(config("other"));
    other.connect(PeerRole::InterRouter, listen);
    // The distinct router becomes a neighbour; by then the twin has been refused at least once.
    let handle = first.handle();
    assert_eventually!(
        handle.mesh().await.unwrap().routes.len() == 1,
        "the router with a distinct id never became a neighbour"
    );
    let view = handle.mesh().await.unwrap();
    assert_eq!(view.neighbours.len(), 1, "the twin was accepted: {view:#?}");
    assert_eq!(view.neighbours[0].router_id, "other");
    assert!(twin.handle().mesh().await.unwrap().neighbours.is_empty());
    other.shutdown(Duration::ZERO).await;
    twin.shutdown(Duration::ZERO).await;
    first.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn a_partition_is_detected_by_the_dead_interval_and_the_mesh_heals() {
    let mesh = MeshBuilder::new()
        .interiors(&["A", "B"])
        .connect_via_proxy("A", "B")
        .start_converged()
        .await;
    let b = client(&mesh, "B").await;
    let r = b.receiver_with(Some("part/q"), auto(20)).await.unwrap();
    mesh.await_destination("A", "part/q").await;

    // Silence, not a close: only the missing hellos tell A that B is gone.
    mesh.proxy("A", "B").partition();
    let cut_at = Instant::now();
    mesh.await_mesh("A", |m| m.routes.is_empty(), "B lost")
        .await;
    let detected = cut_at.elapsed();
    assert!(
        detected >= Duration::from_secs(2) && detected < Duration::from_secs(5),
        "partition detected after {detected:?} (dead interval 3 s)"
    );
    mesh.await_withdrawn("A", "part/q").await;

    mesh.proxy("A", "B").heal();
    mesh.await_routes("A", 1).await;
    mesh.await_destination("A", "part/q").await;
    let a = client(&mesh, "A").await;
    let s = sender_to(&a, "part/q").await;
    let d = s.send(&message(&b"after"[..]), false).await.unwrap();
    let got = within("the message after the heal", r.recv())
        .await
        .unwrap();
    r.accept(&got).await.unwrap();
    assert_accepted(d).await;
    mesh.shutdown().await;
}

#[tokio::test]
async fn a_multi_homed_edge_fails_over_to_its_other_interior() {
    let mut mesh = MeshBuilder::new()
        .interiors(&["I1", "I2", "I3"])
        .edge("E")
        .connect("I1", "I2")
        .connect("I3", "I1")
        .connect("I3", "I2")
        .connect("E", "I1")
        .connect("E", "I2")
        .start()
        .await;
    mesh.await_routes("I3", 2).await;
    mesh.await_mesh(
        "E",
        |m| m.neighbours.iter().filter(|n| n.adjacent).count() == 2 && m.uplink.is_some(),
        "both interiors up",
    )
    .await;
    let uplink = mesh.handle("E").mesh().await.unwrap().uplink.unwrap();
    let other = if uplink == "I1" { "I2" } else { "I1" };

    let i3 = client(&mesh, "I3").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let consumer = consume(
        i3.receiver_with(Some("mh/q"), auto(100)).await.unwrap(),
        Arc::clone(&seen),
    );
    mesh.await_destination(&uplink, "mh/q").await;
    mesh.await_destination(other, "mh/q").await;
    let e = client(&mesh, "E").await;
    let s = sender_to(&e, "mh/q").await;
    let d = s.send(&numbered(1), false).await.unwrap();
    assert_accepted(d).await;

    mesh.kill(&uplink).await;
    mesh.await_mesh(
        "E",
        |m| m.uplink.as_deref() == Some(other),
        "the other interior as uplink",
    )
    .await;
    // At-least-once across the failover: a release (the old path) is sent again.
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries < 20, "never accepted after the failover");
        let d = within("credit after the failover", s.send(&numbered(2), false))
            .await
            .unwrap();
        match within("outcome", d.outcome()).await.unwrap() {
            DeliveryState::Accepted => break,
            DeliveryState::Released => continue,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert!(
        seen.lock().unwrap().ids.contains(&2),
        "accepted but not received"
    );
    consumer.abort();
    mesh.shutdown().await;
}
