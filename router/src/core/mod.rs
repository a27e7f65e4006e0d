//! The routing core: the one owner of the address table, links, credit and unsettled deliveries.
//!
//! Connection tasks send it [`CoreMsg`]s over one bounded channel; it drains them in bounded batches, never
//! awaits anything but that channel, and answers each connection through its [`Outbox`] once per batch. All
//! routing decisions are therefore made in one place with no lock. The design lets a "link" later be an
//! inter-router link: the core only knows links, credit and outcomes, not sockets.

pub mod api;
mod link_route;
mod mesh;
pub mod metrics;
mod patterns;
mod routing;
pub mod rules;
pub use mesh::{
    AddressRoutes, MeshSnapshot, NeighbourSnapshot, RouteSnapshot, MESH_CONTROL_ADDRESS,
    TRACE_PROPERTY,
};
mod streaming;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use shoal_amqp::AmqpError;
use slab::Slab;
use tokio::sync::mpsc;

use crate::config::{Distribution, RouterConfig};
use api::{
    Admin, AttachRequest, Command, ConnId, CoreMsg, DeliveryKey, Event, LinkKey, LocalLink, Msg,
    Outbox,
};
use metrics::{AddressSnapshot, AddressStats, Snapshot};
use rules::Rules;

/// How many channel messages the core takes per wake-up before flushing outboxes.
const BATCH: usize = 64;
/// Idle named addresses (no links, nothing queued) kept for their counters.
const IDLE_ADDRESSES: usize = 4096;

type AddrId = usize;

struct ConnEntry {
    outbox: Arc<Outbox>,
    pending: Vec<Command>,
    links: Vec<LinkKey>,
    /// The name of the route container (broker) at the other end, for connections the router made.
    route_container: Option<String>,
}

struct Link {
    generation: u32,
    conn: ConnId,
    local: LocalLink,
    /// `None` only for an anonymous incoming link.
    addr: Option<AddrId>,
    kind: LinkKind,
    /// A link-routed link's partner: a client's link and the link the router opened on the broker connection
    /// for it name each other. Such links bypass the address table: all traffic goes to the partner.
    routed: Option<Routed>,
    /// A link of the mesh: a control link, or a proxy to a neighbour router.
    mesh: Option<mesh::MeshLink>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    /// A client link whose broker-side partner is being attached.
    Pending,
    Paired(LinkKey),
}

enum LinkKind {
    /// A client sender: the router receives.
    Incoming {
        /// Credit the sender holds (granted, not yet used).
        credit: u32,
        /// Deliveries from this link the router still holds (queued, or unsettled downstream).
        in_router: u32,
        /// Where the parts of a delivery still arriving go.
        open: Option<streaming::Stream>,
        /// Deliveries received on this link so far (counted for routed credit, see `Command::Flow`).
        seen: u32,
    },
    /// A client receiver: the router sends.
    Outgoing(Outgoing),
}

#[derive(Default)]
struct Outgoing {
    /// The receiver may take deliveries while `sent` is before `limit` (delivery-count sequence numbers).
    limit: u32,
    sent: u32,
    unsettled: u32,
    drain: bool,
    /// A streamed delivery is in progress on this link: nothing else may start until its last part.
    busy: bool,
    /// Multicast copies waiting for this receiver's credit.
    backlog: VecDeque<Pending>,
}

impl Outgoing {
    fn available(&self) -> u32 {
        let gap = self.limit.wrapping_sub(self.sent) as i32;
        gap.max(0) as u32
    }
}

/// A message waiting in the router: `delivery` is `None` when it was sent presettled.
struct Pending {
    msg: Msg,
    delivery: Option<DeliveryKey>,
    /// A presettled anycast message holds its sender's credit slot until it is handed on (or dropped): this is
    /// the link to give it back to. Unsettled deliveries give theirs back at settlement.
    from: Option<LinkKey>,
    /// Still arriving (a streamed message queued before its last part): the incoming link it streams from.
    open: Option<LinkKey>,
    /// The routers it crossed, for a message from another router: it never goes back to them.
    trace: mesh::Trace,
    /// A copy waiting for a pattern subscriber: the address it matched (the subscriber's link is the
    /// pattern's, so the address it is delivered from does not say). A thin pointer: `Pending` is in every
    /// queue.
    matched: Option<Arc<String>>,
}

struct Address {
    name: String,
    distribution: Distribution,
    dynamic: bool,
    /// A pattern subscription's entry (see [`api::AttachRequest::pattern`]): its consumers are the subscribers;
    /// no message is ever sent to it by name.
    pattern: bool,
    consumers: Vec<LinkKey>,
    /// Pattern subscribers whose pattern matches this (named) address: each gets a copy of every message.
    pattern_consumers: Vec<LinkKey>,
    producers: Vec<LinkKey>,
    /// Anycast deliveries waiting for a receiver with credit.
    queue: VecDeque<Pending>,
    /// Where the next round-robin search starts.
    next: usize,
    stats: AddressStats,
    /// Listed in `Core::idle` (an entry there always points at a live address: only eviction removes named
    /// addresses, and it pops the entry first).
    in_idle_list: bool,
}

/// An unsettled delivery: where it came from and what its copies said so far.
struct Delivery {
    generation: u32,
    from: LinkKey,
    delivery_id: u32,
    addr: AddrId,
    /// Copies whose outcome is still unknown.
    outstanding: u32,
    /// Sent as copies to several receivers (multicast, pattern subscribers): the outcomes are aggregated.
    fanout: bool,
    outcome: routing::Aggregate,
}

pub struct Core {
    config: Arc<RouterConfig>,
    rx: mpsc::Receiver<CoreMsg>,
    conns: HashMap<ConnId, ConnEntry>,
    touched: Vec<ConnId>,
    links: Slab<Link>,
    deliveries: Slab<Delivery>,
    addresses: Slab<Address>,
    by_name: HashMap<String, AddrId>,
    /// Pattern subscription entries by their pattern text.
    patterns: HashMap<String, AddrId>,
    /// Route containers (brokers) the router is connected to, by name.
    containers: HashMap<String, ConnId>,
    rules: Rules,
    /// Addresses in the order they went idle (see `forget_if_idle`); each at most once.
    idle: VecDeque<AddrId>,
    generation: u32,
    dynamic_seq: u64,
    dynamic_prefix: String,
    /// The mesh protocol and its connections (`None` when the router id is not a valid mesh id).
    mesh: Option<mesh::Mesh>,
}

impl Core {
    pub fn new(config: Arc<RouterConfig>, rx: mpsc::Receiver<CoreMsg>) -> Core {
        let rules = Rules::new(config.default_distribution);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Core {
            mesh: mesh::Mesh::new(&config),
            // Named by the router id, so dynamic addresses stay unique across a mesh.
            dynamic_prefix: format!("_dynamic/{}/{:x}", config.router_id(), nonce & 0xffff_ffff),
            config,
            rx,
            conns: HashMap::new(),
            touched: Vec::new(),
            links: Slab::new(),
            deliveries: Slab::new(),
            addresses: Slab::new(),
            by_name: HashMap::new(),
            patterns: HashMap::new(),
            containers: HashMap::new(),
            rules,
            idle: VecDeque::new(),
            generation: 0,
            dynamic_seq: 0,
        }
    }

    /// Run until every sender of the channel is gone. Between batches, the mesh's timers (hellos, dead
    /// neighbours) run when their deadline comes; the core still awaits nothing else.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let deadline = self.mesh_deadline();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    for msg in batch.drain(..) {
                        self.handle(msg);
                    }
                }
                _ = timer => self.mesh_tick(),
            }
            self.mesh_after_batch();
            self.flush();
        }
    }

    fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Open {
                conn,
                outbox,
                route_container,
                mesh,
            } => {
                if let Some(name) = &route_container {
                    self.containers.insert(name.clone(), conn);
                    self.mesh_broker_changed(name, true);
                }
                self.conns.insert(
                    conn,
                    ConnEntry {
                        outbox,
                        pending: Vec::new(),
                        links: Vec::new(),
                        route_container,
                    },
                );
                if let Some(peer) = mesh {
                    self.mesh_opened(conn, peer);
                }
            }
            CoreMsg::Batch { conn, events } => {
                for event in events {
                    self.event(conn, event);
                }
            }
            CoreMsg::Closed { conn } => {
                if let Some(mut entry) = self.conns.remove(&conn) {
                    // Deliveries routed to this connection that it never saw: released.
                    let mut unseen = std::mem::take(&mut entry.pending);
                    entry.outbox.take_more(&mut unseen);
                    for command in unseen {
                        if let Command::Deliver {
                            delivery: Some(delivery),
                            ..
                        } = command
                        {
                            self.outcome(None, delivery, shoal_amqp::DeliveryState::Released);
                        }
                    }
                    if let Some(name) = &entry.route_container {
                        if self.containers.get(name) == Some(&conn) {
                            self.containers.remove(name);
                            self.mesh_broker_changed(name, false);
                        }
                    }
                    let to_router = self.is_mesh_conn(conn);
                    let lost = (entry.route_container.is_some() || to_router).then(|| {
                        AmqpError::new(
                            shoal_amqp::condition::LINK_DETACH_FORCED,
                            "the connection to the broker holding this address was lost",
                        )
                    });
                    for link in entry.links {
                        self.detach_with(link, lost.clone(), false);
                    }
                    self.mesh_closed(conn);
                }
            }
            CoreMsg::Admin(admin) => self.admin(admin),
        }
    }

    fn event(&mut self, conn: ConnId, event: Event) {
        match event {
            Event::AttachIncoming(req) => self.attach(conn, req, true),
            Event::AttachOutgoing(req) => self.attach(conn, req, false),
            Event::Detach {
                link,
                error,
                closed,
            } => {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.links.retain(|l| *l != link);
                }
                self.detach_with(link, error, closed);
            }
            Event::RouteAttached {
                client,
                local,
                address,
                error,
            } => {
                // A mesh link's answer, or one of a link routed over the mesh towards a broker.
                let routed = self.link(client).is_some_and(|l| l.mesh.is_none());
                if self.is_mesh_conn(conn) && !routed {
                    self.mesh_route_attached(conn, client, local, error)
                } else {
                    self.route_attached(conn, client, local, address, error)
                }
            }
            Event::SenderFlow {
                link,
                link_credit,
                drain,
            } => self.sender_flow(link, link_credit, drain),
            Event::Transfer {
                link,
                delivery_id,
                settled,
                to,
                msg,
                more,
            } => self.transfer(link, delivery_id, settled, to, msg, more),
            Event::TransferMore {
                link,
                msg,
                more,
                aborted,
            } => self.transfer_more(link, msg, more, aborted),
            Event::Credit { link, limit, drain } => self.credit(link, limit, drain),
            Event::Outcome {
                link,
                delivery,
                state,
            } => self.outcome(link, delivery, state),
            Event::Unsettled { link, delivery } => self.unsettled(link, delivery),
        }
    }

    /// The receiver went away holding `delivery`. Its sender gets it back as released (ADR 0003), except on
    /// a link-routed pair: there the broker-side link is detached still holding it unsettled, so the broker
    /// itself sees a consumer that left mid-delivery (and counts the attempt).
    fn unsettled(&mut self, link: Option<LinkKey>, delivery: DeliveryKey) {
        let routed_from = self
            .deliveries
            .get(delivery.index as usize)
            .filter(|d| d.generation == delivery.generation)
            .and_then(|d| self.link(d.from))
            .is_some_and(|l| l.routed.is_some());
        if routed_from {
            if let Some(LinkKind::Outgoing(out)) =
                link.and_then(|l| self.link_mut(l)).map(|l| &mut l.kind)
            {
                out.unsettled = out.unsettled.saturating_sub(1);
            }
            self.deliveries.remove(delivery.index as usize);
            return;
        }
        self.outcome(link, delivery, shoal_amqp::DeliveryState::Released);
    }

    fn admin(&mut self, admin: Admin) {
        match admin {
            Admin::SetAddress(rule, reply) => {
                self.rules.set(rule);
                self.reclassify();
                let _ = reply.send(());
            }
            Admin::DeleteAddress(name, reply) => {
                let existed = self.rules.remove(&name);
                self.reclassify();
                let _ = reply.send(existed);
            }
            Admin::ListAddresses(reply) => {
                let _ = reply.send(self.rules.list());
            }
            Admin::Metrics(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Admin::Mesh(reply) => {
                let _ = reply.send(self.mesh_snapshot());
            }
        }
    }

    /// Rules changed: every known address takes its (possibly new) distribution for new deliveries.
    fn reclassify(&mut self) {
        for (_, addr) in self.addresses.iter_mut() {
            if !addr.dynamic {
                addr.distribution = self.rules.lookup(&addr.name).0;
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut addresses: Vec<AddressSnapshot> = self
            .addresses
            .iter()
            .map(|(_, a)| AddressSnapshot {
                address: a.name.clone(),
                distribution: match a.distribution {
                    Distribution::Balanced => "balanced",
                    Distribution::Closest => "closest",
                    Distribution::Multicast => "multicast",
                },
                consumers: a.consumers.len(),
                producers: a.producers.len(),
                queued: a.queue.len(),
                senders_blocked: a
                    .producers
                    .iter()
                    .filter(|l| {
                        matches!(
                            self.link(**l).map(|l| &l.kind),
                            Some(LinkKind::Incoming { credit: 0, .. })
                        )
                    })
                    .count(),
                stats: a.stats.clone(),
            })
            .collect();
        addresses.sort_by(|a, b| a.address.cmp(&b.address));
        let mut route_containers: Vec<String> = self.containers.keys().cloned().collect();
        route_containers.sort();
        Snapshot {
            route_containers,
            connections: self
                .conns
                .values()
                .filter(|c| c.route_container.is_none())
                .count(),
            links: self.links.len(),
            unsettled: self.deliveries.len(),
            addresses,
            router_id: self.config.router_id().to_owned(),
            mode: self.config.mode.as_str().to_owned(),
            mesh_neighbours: self.mesh.as_ref().map_or(0, |m| m.neighbours.len()),
            mesh_routes: self.mesh.as_ref().map_or(0, |m| m.node.routes().len()),
        }
    }

    // ---- bookkeeping helpers -------------------------------------------------------------------------------

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    fn link(&self, key: LinkKey) -> Option<&Link> {
        self.links
            .get(key.index as usize)
            .filter(|l| l.generation == key.generation)
    }

    fn link_mut(&mut self, key: LinkKey) -> Option<&mut Link> {
        self.links
            .get_mut(key.index as usize)
            .filter(|l| l.generation == key.generation)
    }

    fn send(&mut self, conn: ConnId, command: Command) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if entry.pending.is_empty() {
                self.touched.push(conn);
            }
            entry.pending.push(command);
        }
    }

    fn flush(&mut self) {
        for conn in self.touched.drain(..) {
            if let Some(entry) = self.conns.get_mut(&conn) {
                entry.outbox.push_batch(&mut entry.pending);
            }
        }
    }

    fn address_id(&mut self, name: &str) -> AddrId {
        if let Some(id) = self.by_name.get(name) {
            return *id;
        }
        let distribution = self.rules.lookup(name).0;
        let pattern_consumers = self.pattern_subscribers_of(name);
        let id = self.addresses.insert(Address {
            name: name.to_owned(),
            distribution,
            dynamic: false,
            pattern: false,
            consumers: Vec::new(),
            pattern_consumers,
            producers: Vec::new(),
            queue: VecDeque::new(),
            next: 0,
            stats: AddressStats::default(),
            in_idle_list: false,
        });
        self.by_name.insert(name.to_owned(), id);
        id
    }

    fn attach(&mut self, conn: ConnId, req: AttachRequest, incoming: bool) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        if req.pattern && !incoming {
            return self.attach_pattern(conn, req);
        }
        if req.address.as_deref() == Some(MESH_CONTROL_ADDRESS) {
            if incoming && self.is_mesh_conn(conn) {
                return self.attach_control_in(conn, req);
            }
            // Only routers speak the protocol, and only on their own connections.
            let error = AmqpError::new(
                shoal_amqp::condition::UNAUTHORIZED_ACCESS,
                "the mesh control address is reserved for inter-router connections",
            );
            self.send(
                conn,
                Command::Refused {
                    local: req.local,
                    error,
                },
            );
            return;
        }
        let container = self.relayed_route(conn, &req).or_else(|| {
            req.address
                .as_deref()
                .and_then(|a| self.rules.lookup(a).1)
                .and_then(|rule| rule.link_route.clone())
        });
        if let Some(container) = container {
            return self.route_attach(conn, req, incoming, &container);
        }
        let AttachRequest {
            local,
            address,
            dynamic,
            ..
        } = req;
        let (addr, assigned) = match (address, dynamic, incoming) {
            (_, true, false) => {
                self.dynamic_seq += 1;
                let name = format!("{}/{}", self.dynamic_prefix, self.dynamic_seq);
                let id = self.address_id(&name);
                // A dynamic address is private to its receiver: anycast, whatever the rules say.
                self.addresses[id].dynamic = true;
                self.addresses[id].distribution = Distribution::Balanced;
                (Some(id), Some(name))
            }
            // Copies for our subscribers of a pattern, from the interior above us (ADR 0009).
            (Some(name), _, true)
                if name.starts_with(mesh::PATTERN_PREFIX) && self.is_mesh_conn(conn) =>
            {
                let pattern = &name[mesh::PATTERN_PREFIX.len()..];
                (Some(self.pattern_entry(pattern)), None)
            }
            (Some(name), _, _) => (Some(self.address_id(&name)), None),
            (None, _, true) => (None, None),
            (None, _, false) => {
                let error = AmqpError::new(
                    shoal_amqp::condition::INVALID_FIELD,
                    "a receiver needs a source address (or a dynamic source)",
                );
                self.send(conn, Command::Refused { local, error });
                return;
            }
        };
        let generation = self.next_generation();
        let kind = if incoming {
            LinkKind::Incoming {
                credit: 0,
                in_router: 0,
                open: None,
                seen: 0,
            }
        } else {
            LinkKind::Outgoing(Outgoing {
                limit: 0,
                sent: 0,
                unsettled: 0,
                drain: false,
                busy: false,
                backlog: VecDeque::new(),
            })
        };
        let index = self.links.insert(Link {
            generation,
            conn,
            local,
            addr,
            kind,
            routed: None,
            mesh: None,
        });
        let key = LinkKey {
            index: index as u32,
            generation,
        };
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.push(key);
        }
        self.send(
            conn,
            Command::Attached {
                local,
                link: key,
                address: assigned,
            },
        );
        match (addr, incoming) {
            (Some(id), true) => {
                self.addresses[id].producers.push(key);
                self.replenish(key);
                self.mesh_producers_changed();
            }
            (None, true) => self.replenish(key),
            (Some(id), false) => {
                let first = !self.addresses[id].routable();
                self.addresses[id].consumers.push(key);
                if first {
                    // No consumer, no credit: the address's senders may send from now on.
                    let producers = self.addresses[id].producers.clone();
                    for p in producers {
                        self.replenish(p);
                    }
                }
                self.local_consumers_changed(id);
            }
            (None, false) => unreachable!("refused above"),
        }
    }

    /// The link is gone; a routed partner is detached too, told `error` and whether the link was closed.
    fn detach_with(&mut self, key: LinkKey, error: Option<AmqpError>, closed: bool) {
        if self.link(key).is_none() {
            return;
        }
        self.unpair(key, error, closed);
        // A delivery still streaming from this link ends here, unfinished.
        self.transfer_more_dropped(key);
        let link = self.links.remove(key.index as usize);
        let Some(id) = link.addr else {
            return;
        };
        match link.kind {
            LinkKind::Incoming { .. } => {
                self.addresses[id].producers.retain(|l| *l != key);
                self.mesh_producers_changed();
            }
            LinkKind::Outgoing(out) => {
                self.addresses[id].consumers.retain(|l| *l != key);
                if link.mesh.is_none() {
                    self.local_consumers_changed(id);
                }
                if self.addresses[id].pattern {
                    self.pattern_detached(key);
                }
                self.remove_consumer(id, key, out.backlog);
            }
        }
        self.forget_if_idle(id);
    }

    /// `key` no longer consumes from `id`: what waited for it goes elsewhere or back to its senders, and
    /// with the last consumer gone the senders' credit is taken back. The address stays (the caller forgets
    /// it once idle: a retiring proxy still names it).
    fn remove_consumer(&mut self, id: AddrId, key: LinkKey, backlog: VecDeque<Pending>) {
        self.addresses[id].consumers.retain(|l| *l != key);
        for pending in backlog {
            self.unrouted_keeping(id, pending);
        }
        if self.addresses[id].consumers.is_empty() {
            // Nobody left to take the queue: give it back to the senders.
            let queue = std::mem::take(&mut self.addresses[id].queue);
            for pending in queue {
                self.unrouted_keeping(id, pending);
            }
        } else if self.mesh.is_some() {
            self.release_unreachable(id);
        }
        if !self.addresses[id].routable() {
            self.revoke_credit(id);
        }
    }

    /// An address nobody uses any more. Dynamic addresses vanish with their receiver. Named ones keep their
    /// counters while idle, but only the most recent `IDLE_ADDRESSES` of them: a client sending to ever new
    /// `to` addresses must not grow the table without bound.
    pub(super) fn forget_if_idle(&mut self, id: AddrId) {
        let Some(a) = self.addresses.get(id) else {
            return;
        };
        if !(a.consumers.is_empty() && a.producers.is_empty() && a.queue.is_empty()) {
            return;
        }
        if a.pattern {
            let a = self.addresses.remove(id);
            self.patterns.remove(&a.name);
            return;
        }
        if a.dynamic {
            let a = self.addresses.remove(id);
            self.by_name.remove(&a.name);
            return;
        }
        if a.in_idle_list {
            return;
        }
        self.addresses[id].in_idle_list = true;
        self.idle.push_back(id);
        while self.idle.len() > IDLE_ADDRESSES {
            let Some(old) = self.idle.pop_front() else {
                break;
            };
            let a = &mut self.addresses[old];
            a.in_idle_list = false;
            // It may have been used again since it went idle.
            if a.consumers.is_empty() && a.producers.is_empty() && a.queue.is_empty() {
                let a = self.addresses.remove(old);
                self.by_name.remove(&a.name);
            }
        }
    }
}
