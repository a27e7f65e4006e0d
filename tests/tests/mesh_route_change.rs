//! A route change that is not a failure (ADR 0009, "retiring proxies"): deliveries in flight on the old path
//! keep their outcomes instead of being released, so an at-least-once sender has nothing to resend.

mod common;

use common::mesh::*;
use common::*;
use shoal_test_support::mesh::MeshBuilder;

#[tokio::test]
async fn deliveries_in_flight_on_the_old_path_settle_when_a_cheaper_path_appears() {
    // A - B - C, and A - C through a proxy the test cuts and heals.
    let mesh = MeshBuilder::new()
        .interior("A")
        .interior("B")
        .interior("C")
        .connect("A", "B")
        .connect("B", "C")
        .connect_via_proxy("A", "C")
        .start()
        .await;
    mesh.await_routes("A", 2).await;
    let next_hop_to_c = |hop: &'static str| {
        move |m: &shoal_router::core::MeshSnapshot| {
            m.routes
                .iter()
                .any(|r| r.router_id == "C" && r.next_hop == hop)
        }
    };
    mesh.await_mesh("A", next_hop_to_c("C"), "A's route to C: direct")
        .await;
    // A failure first, with nothing in flight: A reaches C through B.
    mesh.proxy("A", "C").cut();
    mesh.await_mesh("A", next_hop_to_c("B"), "A's route to C: through B")
        .await;

    let c = client(&mesh, "C").await;
    let r = c
        .receiver_with(Some("moving/q"), shoal_client::ReceiverOptions::credit(20))
        .await
        .unwrap();
    mesh.await_destination("A", "moving/q").await;
    let a = client(&mesh, "A").await;
    let s = a
        .sender(Some("moving/q"), SenderOptions::default())
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..10u32 {
        sent.push(
            s.send(&message(i.to_be_bytes().to_vec()), false)
                .await
                .unwrap(),
        );
    }
    // All ten are at C's consumer, unsettled, having crossed A's proxy to B.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(within("a delivery", r.recv()).await.unwrap());
    }

    // The direct link comes back: A's route to C changes, and its proxy to B is no longer used.
    mesh.proxy("A", "C").heal();
    mesh.await_mesh("A", next_hop_to_c("C"), "A's route to C: direct again")
        .await;
    let retiring = |n: usize| {
        move |m: &shoal_router::core::MeshSnapshot| {
            m.neighbours
                .iter()
                .any(|nb| nb.router_id == "B" && nb.proxies == 0 && nb.retiring == n)
        }
    };
    mesh.await_mesh("A", retiring(1), "A's proxy to B retiring")
        .await;
    for d in &held {
        r.accept(d).await.unwrap();
    }
    for d in sent {
        assert_eq!(
            within("outcome", d.outcome()).await.unwrap(),
            DeliveryState::Accepted,
            "a delivery in flight on the old path was released instead of settled"
        );
    }
    // The retired proxy is gone once it carries nothing; new messages take the direct path.
    mesh.await_mesh("A", retiring(0), "A's retired proxy to B detached")
        .await;
    let d = s.send(&message(vec![42]), false).await.unwrap();
    let got = within("a delivery", r.recv()).await.unwrap();
    r.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    mesh.shutdown().await;
}
