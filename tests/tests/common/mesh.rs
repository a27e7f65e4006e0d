//! Helpers of the mesh tests (`mesh.rs`, `mesh_features.rs`, `mesh_failover.rs`): standard meshes,
//! clients, numbered traffic, and reading what a router counted.

use super::*;
use shoal_client::{Delivery, Receiver, Sender};
use shoal_test_support::mesh::{MeshBuilder, TestMesh};

/// A - B: two interiors, converged.
pub async fn pair() -> TestMesh {
    MeshBuilder::new()
        .interiors(&["A", "B"])
        .connect("A", "B")
        .start_converged()
        .await
}

/// A - B - C, converged.
pub async fn line() -> TestMesh {
    MeshBuilder::new()
        .interiors(&["A", "B", "C"])
        .connect("A", "B")
        .connect("B", "C")
        .start_converged()
        .await
}

/// A, B and C all joined to each other, converged.
pub async fn triangle() -> TestMesh {
    MeshBuilder::new()
        .interiors(&["A", "B", "C"])
        .connect("A", "B")
        .connect("B", "C")
        .connect("A", "C")
        .start_converged()
        .await
}

/// Interiors I1 - I2; edge E1 on I1, edge E2 on I2.
pub async fn two_edges() -> TestMesh {
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

pub async fn client(mesh: &TestMesh, id: &str) -> Connection {
    within(
        "a client connection",
        Connection::connect(mesh.amqp(id), ConnectOptions::default()),
    )
    .await
    .expect("client connects")
}

/// A sender on `conn` to `address`, with default options.
pub async fn sender_to(conn: &Connection, address: &str) -> Sender {
    conn.sender(Some(address), SenderOptions::default())
        .await
        .unwrap()
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

/// Message `i` of a numbered run: its body is `i`, big-endian.
pub fn numbered(i: u32) -> MessageBuilder {
    message(i.to_be_bytes().to_vec())
}

/// Sends messages `0..count` one at a time: each reaches every one of `receivers` (as the next message
/// there, checked by body) and comes back accepted before the next is sent.
pub async fn send_each_accepted(sender: &Sender, receivers: &[&Receiver], count: u32) {
    for i in 0..count {
        let d = sender.send(&numbered(i), false).await.unwrap();
        for r in receivers {
            assert_eq!(recv_body(r).await, i.to_be_bytes(), "message {i}");
        }
        assert_accepted(d).await;
    }
}

/// Sends messages `0..count` without waiting for outcomes: their deliveries, for [`assert_all_accepted`].
pub async fn send_numbered(sender: &Sender, count: u32) -> Vec<Delivery> {
    let mut outcomes = Vec::with_capacity(count as usize);
    for i in 0..count {
        outcomes.push(sender.send(&numbered(i), false).await.unwrap());
    }
    outcomes
}

pub async fn assert_accepted(d: Delivery) {
    assert_eq!(
        within("outcome", d.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
}

pub async fn assert_all_accepted(outcomes: Vec<Delivery>) {
    for d in outcomes {
        assert_accepted(d).await;
    }
}

/// Takes (and accepts) `n` deliveries from whichever of `a` and `b` has one: the encoded messages each got.
pub async fn take_from_either(a: &Receiver, b: &Receiver, n: usize) -> (Vec<Bytes>, Vec<Bytes>) {
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    while at_a.len() + at_b.len() < n {
        tokio::select! {
            d = a.recv() => { let d = d.unwrap(); a.accept(&d).await.unwrap(); at_a.push(d.bytes); }
            d = b.recv() => { let d = d.unwrap(); b.accept(&d).await.unwrap(); at_b.push(d.bytes); }
            _ = tokio::time::sleep(STEP) => panic!("only {} of {n} delivered", at_a.len() + at_b.len()),
        }
    }
    (at_a, at_b)
}

/// Router `id`'s counters for `address`: (deliveries in, deliveries out).
pub async fn stats(mesh: &TestMesh, id: &str, address: &str) -> (u64, u64) {
    let snap = mesh.handle(id).snapshot().await.unwrap();
    snap.addresses
        .iter()
        .find(|a| a.address == address)
        .map_or((0, 0), |a| (a.stats.deliveries_in, a.stats.deliveries_out))
}

/// A pattern subscriber on an adaptor connection, as the MQTT gateway makes one for each MQTT subscription.
pub struct PatternSub {
    conn: shoal_router::adaptor::AdaptorConnection,
    link: shoal_router::core::api::LinkKey,
}

impl PatternSub {
    pub async fn attach(mesh: &TestMesh, router: &str, pattern: &str, credit: u32) -> PatternSub {
        use shoal_router::core::api::{AttachDetails, AttachRequest, Command, Event};
        let conn = mesh.handle(router).open_adaptor_connection().await.unwrap();
        let source = Source {
            address: Some(pattern.into()),
            ..Source::default()
        };
        let request = AttachRequest {
            local: 0,
            address: Some(pattern.into()),
            dynamic: false,
            pattern: true,
            details: Box::new(AttachDetails {
                link_name: format!("pattern:{pattern}"),
                container_id: "pattern-test".into(),
                source: Some(Box::new(source)),
                target: Some(Box::default()),
                ..AttachDetails::default()
            }),
        };
        conn.send(vec![Event::AttachOutgoing(request)])
            .await
            .unwrap();
        let link = within("the pattern subscriber attaches", async {
            let mut commands = Vec::new();
            loop {
                conn.outbox().notified().await;
                conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    if let Command::Attached { link, .. } = c {
                        return link;
                    }
                }
            }
        })
        .await;
        let credit = Event::Credit {
            link,
            limit: credit,
            drain: false,
        };
        conn.send(vec![credit]).await.unwrap();
        PatternSub { conn, link }
    }

    /// The next message's body and the address it matched; an unsettled one is accepted.
    pub async fn accept_next(&self) -> (Vec<u8>, String) {
        use shoal_router::core::api::{Command, Event};
        let (delivery, body, address) = within("a copy for the pattern subscriber", async {
            let mut commands = Vec::new();
            loop {
                self.conn.outbox().notified().await;
                self.conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    if let Command::Deliver {
                        delivery,
                        msg,
                        address,
                        ..
                    } = c
                    {
                        let bytes: Vec<u8> = msg.chunks.iter().flat_map(|c| c.to_vec()).collect();
                        let m = shoal_amqp::decode_message(&bytes).unwrap();
                        let Body::Data(body) = m.body else {
                            panic!("a data body")
                        };
                        return (delivery, body.to_vec(), address.unwrap().to_string());
                    }
                }
            }
        })
        .await;
        if let Some(delivery) = delivery {
            let outcome = Event::Outcome {
                link: Some(self.link),
                delivery,
                state: DeliveryState::Accepted,
            };
            self.conn.send(vec![outcome]).await.unwrap();
        }
        (body, address)
    }
}

/// Wait until router `id` has `n` proxies open to router `peer`.
pub async fn await_proxies(mesh: &TestMesh, id: &str, peer: &str, n: usize) {
    let peer = peer.to_owned();
    mesh.await_mesh(
        id,
        move |m| {
            m.neighbours
                .iter()
                .any(|x| x.router_id == peer && x.proxies == n)
        },
        "the proxies to the peer",
    )
    .await;
}
