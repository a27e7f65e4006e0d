//! Helpers of the mesh tests (`mesh.rs`, `mesh_features.rs`, `mesh_failover.rs`): standard meshes,
//! clients, and reading what a router counted.

use super::*;
use shoal_client::Receiver;
use shoal_test_support::mesh::{MeshBuilder, TestMesh};

pub async fn line() -> TestMesh {
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

pub async fn client(mesh: &TestMesh, id: &str) -> Connection {
    within(
        "a client connection",
        Connection::connect(mesh.amqp(id), ConnectOptions::default()),
    )
    .await
    .expect("client connects")
}

/// A round trip on `conn`: frames the router sent before it have arrived.
pub async fn barrier(conn: &Connection) {
    let r = within("a barrier attach", conn.receiver("barrier/unused", 0))
        .await
        .unwrap();
    r.close().await.unwrap();
}

pub async fn recv_body(r: &Receiver) -> Vec<u8> {
    let d = within("a delivery", r.recv()).await.expect("a delivery");
    let body = match d.message().expect("decodes").body {
        Body::Data(b) => b.to_vec(),
        other => panic!("unexpected body {other:?}"),
    };
    r.accept(&d).await.expect("accept");
    body
}

pub fn auto(credit: u32) -> shoal_client::ReceiverOptions {
    shoal_client::ReceiverOptions {
        auto_replenish: true,
        ..shoal_client::ReceiverOptions::credit(credit)
    }
}

pub async fn stats(mesh: &TestMesh, id: &str, address: &str) -> (u64, u64) {
    let snap = mesh.handle(id).snapshot().await.unwrap();
    snap.addresses
        .iter()
        .find(|a| a.address == address)
        .map_or((0, 0), |a| (a.stats.deliveries_in, a.stats.deliveries_out))
}

pub async fn triangle() -> TestMesh {
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
