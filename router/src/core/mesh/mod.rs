//! The router mesh inside the core (ADR 0009): the core owns one `shoal_mesh::Node` and drives it.
//!
//! - Every inter-router (or edge) connection carries a *control link* pair: each end opens a sender to
//!   `_mesh/control` with the same mechanism the core uses for broker links (`Command::RouteAttach`), and
//!   the node's messages go out on it presettled. The peer's control sender is an incoming link whose
//!   messages are handed to the node.
//! - The node is told of connections (`link_up` / `edge_attached` / `link_down`), of local consumers
//!   (`add_local_address` / `remove_local_address` on an address's first / last local consumer) and of time
//!   (`tick` from the core's run loop). Its outputs are drained after each batch of core messages.
//! - Forwarding (`proxies.rs`): for every address with a consumer behind a neighbour, the core keeps a
//!   *proxy link* to that neighbour: a sender with the address as target, a consumer of the address in the
//!   table like any client's receiver. Credit, outcomes and release-on-detach then work across hops with
//!   the single-router rules unchanged.
//!
//! A `LinkId` of the node is the connection's `ConnId`.

mod control;
mod proxies;
mod snapshot;
#[cfg(test)]
mod tests;
mod uplink;

pub use snapshot::{AddressRoutes, MeshSnapshot, NeighbourSnapshot, RouteSnapshot};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use shoal_amqp::{condition, AmqpError, Role, SenderSettleMode, Symbol};
use shoal_mesh::{LinkId, Mode, Node, Output, RouterId};

use super::api::{AttachDetails, Command, ConnId, LinkKey, MeshPeer};
use super::{Core, Link, LinkKind, Outgoing};

/// The address of the control links of an inter-router connection.
pub const MESH_CONTROL_ADDRESS: &str = "_mesh/control";

/// Mobile addresses that say "this router is connected to broker NAME" (never carry messages).
pub(super) const BROKER_PREFIX: &str = "_broker/";
/// What a router advertises for each pattern its local clients subscribe to (`_pattern/` + the pattern): the
/// routers on the way to it open pattern proxies, which copy every matching message there (ADR 0009).
pub(super) const PATTERN_PREFIX: &str = "_pattern/";

/// Control messages waiting for the control link's credit, per connection. The protocol repairs a lost
/// message (RA sequence numbers, hellos every second), so past this the oldest are dropped.
const CONTROL_BACKLOG: usize = 1024;
/// Credit kept open on an incoming control link.
const CONTROL_CREDIT: u32 = 1000;
/// Largest control message accepted in parts (the node bounds a message at 4 MiB too).
const CONTROL_MAX: usize = 4 * 1024 * 1024;

/// What a link is to the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MeshLink {
    /// Our control sender on a mesh connection (`attached` once the peer answered).
    ControlOut { attached: bool },
    /// The peer's control sender.
    ControlIn,
    /// A sender we opened to a neighbour for an address with consumers behind it.
    Proxy { attached: bool },
    /// A proxy the routes no longer use while its connection is up: it takes nothing new and is detached
    /// once what it carries is settled (see `retire_proxy`).
    Retiring,
    /// An edge's anonymous sender to its interior: messages from this edge's anonymous senders to addresses
    /// with no consumer here go up on it, routed there by their `to` (the interior knows the whole mesh).
    Uplink { attached: bool },
}

/// One inter-router or edge connection.
pub(super) struct Neighbour {
    pub(super) peer: MeshPeer,
    control_out: Option<LinkKey>,
    backlog: VecDeque<Bytes>,
    /// A control message arriving in parts.
    partial: Option<Vec<Bytes>>,
    /// Proxy links on this connection, by address name.
    pub(super) proxies: HashMap<String, LinkKey>,
    /// On an edge, its anonymous sender to this interior, and what waits for that link's credit (address
    /// name and message; bounded by the senders' credit, presettled ones by the link capacity).
    pub(super) uplink: Option<LinkKey>,
    pub(super) uplink_queue: VecDeque<(String, super::Pending)>,
}

/// The mesh state of the core.
pub(super) struct Mesh {
    pub(super) node: Node,
    pub(super) id: RouterId,
    pub(super) neighbours: HashMap<ConnId, Neighbour>,
    /// Routes, remote addresses or local producers changed: proxies are reconciled after the batch.
    pub(super) dirty: bool,
    pub(super) deadline: Instant,
}

/// The router ids a message crossed (from its `x-opt-shoal-trace`, plus the neighbour it came from): it is
/// never sent towards any of them. `None` for a message from a local client.
pub(super) type Trace = Option<Arc<[String]>>;

impl Mesh {
    /// The mesh state for a router with this configuration, or `None` (with a warning) if its router id is
    /// not a valid mesh id: the router then works alone and refuses inter-router connections.
    pub(super) fn new(config: &crate::config::RouterConfig) -> Option<Mesh> {
        let id = match RouterId::new(config.router_id()) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("{e}: this router cannot join a mesh");
                return None;
            }
        };
        let mut node_config = config.mesh.clone();
        node_config.mode = config.mode;
        let now = Instant::now();
        let instance = instance_nonce();
        let mut node = Node::new(id.clone(), instance, node_config, now);
        let deadline = node.tick(now);
        Some(Mesh {
            node,
            id,
            neighbours: HashMap::new(),
            dirty: false,
            deadline,
        })
    }
}

/// A random-enough instance number per start (the protocol only needs restarts to differ).
fn instance_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

impl Core {
    /// The mesh's next deadline, if this router has a mesh.
    pub(super) fn mesh_deadline(&self) -> Option<Instant> {
        self.mesh.as_ref().map(|m| m.deadline)
    }

    /// Timers of the mesh (hellos, dead neighbours...).
    pub(super) fn mesh_tick(&mut self) {
        if let Some(m) = self.mesh.as_mut() {
            m.deadline = m.node.tick(Instant::now());
        }
    }

    /// A mesh connection is open (the peer's `open` said which router it is).
    pub(super) fn mesh_opened(&mut self, conn: ConnId, peer: MeshPeer) {
        let Some(mesh) = self.mesh.as_mut() else {
            if let Some(c) = self.conns.get(&conn) {
                c.outbox.close_connection(AmqpError::new(
                    condition::NOT_ALLOWED,
                    "this router has no valid router id and cannot join a mesh",
                ));
            }
            return;
        };
        let now = Instant::now();
        let link = LinkId(conn);
        let ours = mesh.node.mode();
        tracing::info!(router = %mesh.id, peer = %peer.id, mode = peer.mode.as_str(), conn, "mesh connection up");
        if ours == Mode::Interior && peer.mode == Mode::Edge && !peer.dialled {
            mesh.node.edge_attached(link, peer.id.clone(), now);
        } else {
            mesh.node.link_up(link, now);
        }
        if peer.cost > 1 {
            mesh.node
                .set_link_cost(link, shoal_mesh::Cost(peer.cost), now);
        }
        mesh.neighbours.insert(
            conn,
            Neighbour {
                peer,
                control_out: None,
                backlog: VecDeque::new(),
                partial: None,
                proxies: HashMap::new(),
                uplink: None,
                uplink_queue: VecDeque::new(),
            },
        );
        // Our control sender; the node's first hello waits in the backlog until it is up.
        let id = mesh.id.clone();
        let key = self.insert_mesh_link(
            conn,
            None,
            LinkKind::Outgoing(Outgoing::default()),
            MeshLink::ControlOut { attached: false },
        );
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.control_out = Some(key);
        }
        let details = link_details(
            format!("shoal-control:{id}"),
            Some(MESH_CONTROL_ADDRESS),
            SenderSettleMode::Settled,
            false,
        );
        self.attach_sender(conn, key, details);
        if ours == Mode::Edge {
            self.open_uplink(conn, &id);
        }
    }

    /// An edge's anonymous sender on its connection to an interior (see [`MeshLink::Uplink`]).
    fn open_uplink(&mut self, conn: ConnId, id: &RouterId) {
        let key = self.insert_mesh_link(
            conn,
            None,
            LinkKind::Outgoing(Outgoing::default()),
            MeshLink::Uplink { attached: false },
        );
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.uplink = Some(key);
        }
        let details = link_details(
            format!("shoal-uplink:{id}"),
            None,
            SenderSettleMode::Mixed,
            true,
        );
        self.attach_sender(conn, key, details);
    }

    /// Ask the connection to attach a sender the mesh opened (the peer's answer comes back as
    /// `Event::RouteAttached`, see `mesh_route_attached`).
    pub(super) fn attach_sender(
        &mut self,
        conn: ConnId,
        key: LinkKey,
        details: Box<AttachDetails>,
    ) {
        self.send(
            conn,
            Command::RouteAttach {
                client: key,
                role: Role::Sender,
                details,
            },
        );
    }

    /// A mesh connection closed: its links are already detached (in-flight deliveries released).
    pub(super) fn mesh_closed(&mut self, conn: ConnId) {
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        if let Some(n) = mesh.neighbours.remove(&conn) {
            tracing::info!(router = %mesh.id, peer = %n.peer.id, conn, "mesh connection down");
            mesh.node.link_down(LinkId(conn), Instant::now());
            mesh.dirty = true;
            // What waited to go up: up another interior if this edge has one, else back to its senders.
            for (name, pending) in n.uplink_queue {
                let addr = self.address_id(&name);
                self.unrouted(addr, pending);
            }
        }
    }

    pub(super) fn is_mesh_conn(&self, conn: ConnId) -> bool {
        self.mesh
            .as_ref()
            .is_some_and(|m| m.neighbours.contains_key(&conn))
    }

    /// The router at the other end of a mesh connection.
    pub(super) fn neighbour_id(&self, conn: ConnId) -> Option<&RouterId> {
        self.mesh
            .as_ref()?
            .neighbours
            .get(&conn)
            .map(|n| &n.peer.id)
    }

    /// A link for the mesh, not (yet) in any address's lists.
    pub(super) fn insert_mesh_link(
        &mut self,
        conn: ConnId,
        addr: Option<super::AddrId>,
        kind: LinkKind,
        mesh: MeshLink,
    ) -> LinkKey {
        let generation = self.next_generation();
        let index = self.links.insert(Link {
            generation,
            conn,
            local: 0,
            addr,
            kind,
            routed: None,
            mesh: Some(mesh),
        });
        let key = LinkKey {
            index: index as u32,
            generation,
        };
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.push(key);
        }
        key
    }

    /// Close a mesh connection, saying why (logged here with both router ids).
    pub(super) fn refuse_mesh_conn(&mut self, conn: ConnId, reason: &str) {
        let (ours, theirs) = match &self.mesh {
            Some(m) => (
                m.id.to_string(),
                m.neighbours
                    .get(&conn)
                    .map_or_else(|| "?".to_owned(), |n| n.peer.id.to_string()),
            ),
            None => ("?".to_owned(), "?".to_owned()),
        };
        tracing::warn!(router = %ours, peer = %theirs, conn, "closing inter-router connection: {reason}");
        if let Some(c) = self.conns.get(&conn) {
            c.outbox.close_connection(AmqpError::new(
                condition::NOT_ALLOWED,
                format!("router {ours} refuses router {theirs}: {reason}"),
            ));
        }
    }

    /// The peer answered a link the mesh opened (a control link or a proxy).
    pub(super) fn mesh_route_attached(
        &mut self,
        conn: ConnId,
        key: LinkKey,
        local: super::api::LocalLink,
        error: Option<AmqpError>,
    ) {
        let Some(role) = self.link(key).and_then(|l| l.mesh) else {
            // Gone meanwhile (a proxy withdrawn before the peer answered): so is its peer end.
            if error.is_none() {
                self.send(
                    conn,
                    Command::Detach {
                        local,
                        error: None,
                        closed: true,
                    },
                );
            }
            return;
        };
        if let Some(error) = error {
            match role {
                MeshLink::ControlOut { .. } => {
                    let why = format!("the peer refused the control link: {:?}", error.description);
                    self.refuse_mesh_conn(conn, &why);
                }
                MeshLink::Uplink { .. } => {
                    tracing::warn!(
                        conn,
                        "the interior refused this edge's uplink: {:?}",
                        error.description
                    );
                    self.uplink_lost(conn, key);
                }
                _ => {
                    tracing::debug!(conn, "proxy link refused: {:?}", error.description);
                    self.proxy_refused(key);
                }
            }
            return;
        }
        if let Some(l) = self.link_mut(key) {
            l.local = local;
            l.mesh = Some(match role {
                MeshLink::ControlOut { .. } => MeshLink::ControlOut { attached: true },
                MeshLink::Proxy { .. } => MeshLink::Proxy { attached: true },
                MeshLink::Uplink { .. } => MeshLink::Uplink { attached: true },
                other => other,
            });
        }
        self.send(
            conn,
            Command::Attached {
                local,
                link: key,
                address: None,
            },
        );
        if matches!(role, MeshLink::ControlOut { .. }) {
            self.flush_control(conn);
        }
    }

    /// Act on what the node asks for; then, if anything moved, fix the proxies. Called after every batch.
    pub(super) fn mesh_after_batch(&mut self) {
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        let outputs = mesh.node.drain_output();
        let mut to_flush = Vec::new();
        for out in outputs {
            let Some(mesh) = self.mesh.as_mut() else {
                return;
            };
            match out {
                Output::Send { link, msg } => {
                    let conn = link.0;
                    if let Some(n) = mesh.neighbours.get_mut(&conn) {
                        if n.backlog.len() >= CONTROL_BACKLOG {
                            n.backlog.pop_front();
                            tracing::debug!(conn, "control backlog full: oldest message dropped");
                        }
                        n.backlog.push_back(msg.encode());
                        if !to_flush.contains(&conn) {
                            to_flush.push(conn);
                        }
                    }
                }
                Output::RoutesChanged | Output::AddressesChanged => mesh.dirty = true,
                Output::Refused { link, reason } => {
                    self.refuse_mesh_conn(link.0, &reason.to_string());
                }
            }
        }
        for conn in to_flush {
            self.flush_control(conn);
        }
        if self.mesh.as_ref().is_some_and(|m| m.dirty) {
            if let Some(m) = self.mesh.as_mut() {
                m.dirty = false;
            }
            self.reconcile_proxies();
        }
        // No tick here: the node's deadlines only move later after calls, and its hello timer wakes the core
        // at least once per hello interval anyway.
    }

    /// A broker (route container) connected or went: the mesh hears of it as the mobile address
    /// `_broker/NAME`, so other routers can route its link-routed addresses here.
    pub(super) fn mesh_broker_changed(&mut self, name: &str, up: bool) {
        if let Some(m) = self.mesh.as_mut() {
            let addr = format!("{BROKER_PREFIX}{name}");
            if up {
                m.node.add_local_address(&addr);
            } else {
                m.node.remove_local_address(&addr);
            }
        }
    }

    /// The mesh connection towards the nearest router connected to broker `name` (on an edge: the uplink).
    pub(super) fn mesh_route_to_broker(&self, name: &str) -> Option<ConnId> {
        let m = self.mesh.as_ref()?;
        if m.node.mode() == Mode::Edge {
            return m.node.uplink().map(|l| l.0);
        }
        m.node
            .destinations(&format!("{BROKER_PREFIX}{name}"))
            .into_iter()
            .min_by_key(|d| (d.cost, d.router.clone()))
            .map(|d| d.next_hop.0)
            .filter(|c| m.neighbours.contains_key(c))
    }

    /// A local sender came or went: on an edge, that decides which addresses go up to the interior.
    pub(super) fn mesh_producers_changed(&mut self) {
        if let Some(m) = self.mesh.as_mut() {
            if m.node.mode() == Mode::Edge {
                m.dirty = true;
            }
        }
    }

    /// A local consumer came or went on `addr`: the mesh hears when the first arrives and the last leaves.
    pub(super) fn local_consumers_changed(&mut self, addr: super::AddrId) {
        let Some(a) = self.addresses.get(addr) else {
            return;
        };
        let local = a
            .consumers
            .iter()
            .filter(|k| self.link(**k).is_some_and(|l| l.mesh.is_none()))
            .count();
        let name = match a.pattern {
            true => format!("{PATTERN_PREFIX}{}", a.name),
            false => a.name.clone(),
        };
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        if local > 0 {
            mesh.node.add_local_address(&name);
        } else {
            mesh.node.remove_local_address(&name);
        }
        if mesh.node.mode() == Mode::Edge {
            mesh.dirty = true;
        }
    }
}

/// The link property that asks the connection to append our id to the trace of what it sends.
pub const TRACE_PROPERTY: &str = "shoal:trace";

/// The attach details of a link the mesh opens: a sender to `target`; `trace`: a proxy, whose messages
/// carry the trace.
fn link_details(
    name: String,
    target: Option<&str>,
    settle: SenderSettleMode,
    trace: bool,
) -> Box<AttachDetails> {
    Box::new(AttachDetails {
        link_name: name,
        container_id: String::new(),
        source: Some(Box::new(shoal_amqp::Source::default())),
        target: Some(Box::new(shoal_amqp::Target {
            address: target.map(str::to_owned),
            ..Default::default()
        })),
        snd_settle_mode: settle,
        rcv_settle_mode: shoal_amqp::ReceiverSettleMode::First,
        properties: trace
            .then(|| vec![(Symbol::from(TRACE_PROPERTY), shoal_amqp::Value::Bool(true))]),
    })
}
