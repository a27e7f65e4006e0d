//! The core's side of the mesh, driven event by event with no sockets: the control link, the node's
//! messages on it, local addresses advertised, refusals closing the connection.

use std::sync::Arc;

use bytes::Bytes;
use shoal_mesh::message::{Hello, MobileChange};
use shoal_mesh::{Message, Mode, RouterId, PROTOCOL_VERSION};
use tokio::sync::mpsc;

use super::super::api::{
    AttachRequest, Chunks, Command, ConnId, CoreMsg, Event, LinkKey, MeshPeer, Msg, Outbox,
};
use super::super::Core;
use super::MESH_CONTROL_ADDRESS;
use crate::config::RouterConfig;

struct Harness {
    core: Core,
    outboxes: Vec<(ConnId, Arc<Outbox>)>,
    _tx: mpsc::Sender<CoreMsg>,
}

impl Harness {
    fn new(id: &str) -> Harness {
        let (tx, rx) = mpsc::channel(8);
        let config = RouterConfig {
            router_id: Some(id.into()),
            ..RouterConfig::default()
        };
        Harness {
            core: Core::new(Arc::new(config), rx),
            outboxes: Vec::new(),
            _tx: tx,
        }
    }

    /// One batch, as the run loop handles it.
    fn deliver(&mut self, msg: CoreMsg) {
        self.core.handle(msg);
        self.core.mesh_after_batch();
        self.core.flush();
    }

    fn open(&mut self, conn: ConnId, peer: Option<&str>) {
        let outbox = Arc::new(Outbox::default());
        self.outboxes.push((conn, Arc::clone(&outbox)));
        let mesh = peer.map(|id| MeshPeer {
            id: RouterId::new(id).unwrap(),
            mode: Mode::Interior,
            dialled: true,
            cost: 1,
        });
        self.deliver(CoreMsg::Open {
            conn,
            outbox,
            route_container: None,
            mesh,
        });
    }

    fn outbox(&self, conn: ConnId) -> &Arc<Outbox> {
        &self.outboxes.iter().find(|(c, _)| *c == conn).unwrap().1
    }

    fn take(&mut self, conn: ConnId) -> Vec<Command> {
        let mut out = Vec::new();
        self.outbox(conn).take(&mut out);
        out
    }

    fn events(&mut self, conn: ConnId, events: Vec<Event>) {
        self.deliver(CoreMsg::Batch { conn, events });
    }

    /// Open a mesh connection and bring our control link up with `credit`: returns its key and local id.
    fn control_up(&mut self, conn: ConnId, peer: &str, credit: u32) -> (LinkKey, u64) {
        self.open(conn, Some(peer));
        let key = self
            .take(conn)
            .into_iter()
            .find_map(|c| match c {
                Command::RouteAttach {
                    client, details, ..
                } => {
                    let target = details.target.and_then(|t| t.address);
                    assert_eq!(target.as_deref(), Some(MESH_CONTROL_ADDRESS));
                    Some(client)
                }
                _ => None,
            })
            .expect("a control link is opened");
        let local = 77;
        self.events(
            conn,
            vec![Event::RouteAttached {
                client: key,
                local,
                address: None,
                error: None,
            }],
        );
        self.events(
            conn,
            vec![Event::Credit {
                link: key,
                limit: credit,
                drain: false,
            }],
        );
        (key, local)
    }
}

impl Harness {
    /// The peer's control link, and a hello from it that lists us: it is adjacent.
    fn peer_says_hello(&mut self, conn: ConnId, peer: &str, us: &str) {
        self.events(
            conn,
            vec![Event::AttachIncoming(AttachRequest {
                local: 9,
                address: Some(MESH_CONTROL_ADDRESS.into()),
                dynamic: false,
                pattern: false,
                details: Default::default(),
            })],
        );
        let key = self
            .take(conn)
            .iter()
            .find_map(|c| match c {
                Command::Attached { local: 9, link, .. } => Some(*link),
                _ => None,
            })
            .expect("the peer's control link is accepted");
        self.events(
            conn,
            vec![Event::Transfer {
                link: key,
                delivery_id: 0,
                settled: true,
                to: None,
                msg: hello_from(peer, &[us]),
                more: false,
            }],
        );
    }
}

/// The mesh messages among `commands`, which must all go presettled on `local`.
fn sent(commands: &[Command], on: u64) -> Vec<Message> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Deliver {
                local,
                delivery,
                msg,
                ..
            } if *local == on => {
                assert!(delivery.is_none(), "control messages go presettled");
                let bytes: Vec<u8> = msg.chunks.iter().flat_map(|b| b.to_vec()).collect();
                Some(Message::decode(&bytes).expect("a mesh message"))
            }
            _ => None,
        })
        .collect()
}

fn hello_from(id: &str, seen: &[&str]) -> Msg {
    let hello = Message::Hello(Hello {
        id: RouterId::new(id).unwrap(),
        instance: 1,
        version: PROTOCOL_VERSION,
        mode: Mode::Interior,
        seen: seen.iter().map(|s| RouterId::new(*s).unwrap()).collect(),
    });
    Msg::untracked(Chunks::One(Bytes::from(hello.encode().to_vec())))
}

#[test]
fn a_mesh_connection_gets_a_control_link_and_hellos_wait_for_its_credit() {
    let mut h = Harness::new("A");
    let (_, local) = h.control_up(1, "B", 0);
    let commands = h.take(1);
    assert!(sent(&commands, local).is_empty(), "sent without credit");
    // Credit arrives: the hello that waited goes out.
    let key = match commands
        .iter()
        .find(|c| matches!(c, Command::Attached { .. }))
    {
        Some(Command::Attached { link, .. }) => *link,
        other => panic!("expected the control link's key, got {other:?}"),
    };
    h.events(
        1,
        vec![Event::Credit {
            link: key,
            limit: 10,
            drain: false,
        }],
    );
    let msgs = sent(&h.take(1), local);
    assert!(
        matches!(msgs.first(), Some(Message::Hello(hello)) if hello.id.as_str() == "A"),
        "{msgs:?}"
    );
}

#[test]
fn local_consumers_are_advertised_on_the_first_and_withdrawn_on_the_last() {
    let mut h = Harness::new("A");
    let (_, local) = h.control_up(1, "B", 100);
    h.peer_says_hello(1, "B", "A");
    h.take(1);
    h.open(2, None);
    let receiver = |local| {
        Event::AttachOutgoing(AttachRequest {
            local,
            address: Some("orders".into()),
            dynamic: false,
            pattern: false,
            details: Default::default(),
        })
    };
    h.events(2, vec![receiver(1), receiver(2)]);
    let adds: Vec<_> = sent(&h.take(1), local)
        .into_iter()
        .filter_map(|m| match m {
            Message::Mau(u) => Some(u.change),
            _ => None,
        })
        .collect();
    assert_eq!(
        adds,
        vec![MobileChange::Delta {
            since: 0,
            add: vec!["orders".into()],
            del: vec![]
        }],
        "one advertisement for two consumers"
    );
    let links: Vec<LinkKey> = h
        .take(2)
        .into_iter()
        .filter_map(|c| match c {
            Command::Attached { link, .. } => Some(link),
            _ => None,
        })
        .collect();
    let detach = |link| Event::Detach {
        link,
        error: None,
        closed: true,
    };
    h.events(2, vec![detach(links[0])]);
    assert!(
        !sent(&h.take(1), local)
            .iter()
            .any(|m| matches!(m, Message::Mau(_))),
        "withdrawn while a consumer is left"
    );
    h.events(2, vec![detach(links[1])]);
    let dels: Vec<_> = sent(&h.take(1), local)
        .into_iter()
        .filter_map(|m| match m {
            Message::Mau(u) => Some(u.change),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&dels[..], [MobileChange::Delta { del, .. }] if del == &vec!["orders".to_string()]),
        "{dels:?}"
    );
}

#[test]
fn a_peer_claiming_our_id_in_its_hello_gets_its_connection_closed() {
    let mut h = Harness::new("A");
    h.control_up(1, "B", 100);
    h.events(
        1,
        vec![Event::AttachIncoming(AttachRequest {
            local: 9,
            address: Some(MESH_CONTROL_ADDRESS.into()),
            dynamic: false,
            pattern: false,
            details: Default::default(),
        })],
    );
    let commands = h.take(1);
    let key = commands
        .iter()
        .find_map(|c| match c {
            Command::Attached { local: 9, link, .. } => Some(*link),
            _ => None,
        })
        .expect("the peer's control link is accepted");
    assert!(commands
        .iter()
        .any(|c| matches!(c, Command::Grant { local: 9, credit } if *credit > 0)));
    assert!(h.outbox(1).take_close().is_none());
    h.events(
        1,
        vec![Event::Transfer {
            link: key,
            delivery_id: 0,
            settled: true,
            to: None,
            msg: hello_from("A", &[]),
            more: false,
        }],
    );
    let error = h.outbox(1).take_close().expect("the connection is closed");
    let why = error.description.unwrap_or_default();
    assert!(why.contains('A') && why.contains('B'), "{why}");
}

#[test]
fn a_client_cannot_attach_to_the_control_address() {
    let mut h = Harness::new("A");
    h.open(1, None);
    h.events(
        1,
        vec![Event::AttachIncoming(AttachRequest {
            local: 1,
            address: Some(MESH_CONTROL_ADDRESS.into()),
            dynamic: false,
            pattern: false,
            details: Default::default(),
        })],
    );
    assert!(h
        .take(1)
        .iter()
        .any(|c| matches!(c, Command::Refused { local: 1, .. })));
}
