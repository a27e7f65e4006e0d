//! The [`Node`] state machine: one router's view of the mesh.
//!
//! The caller owns the I/O. It tells the node about connections ([`Node::link_up`],
//! [`Node::edge_attached`], [`Node::link_down`]), hands it every protocol message that arrives
//! ([`Node::receive`]), calls [`Node::tick`] when the returned deadline passes, and drains
//! [`Node::poll_output`] after each batch of calls. Time only enters as the `now` arguments.

mod api;
mod edge;
mod flood;
mod neighbours;
mod routes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::error::MeshError;
use crate::id::{Cost, LinkId, Mode, RouterId};
use crate::message::{Message, MobileChange, MobileUpdate};
use crate::spf::{LsEntry, Lsdb};

pub use api::{Config, Output, RefuseReason};
pub use routes::{Destination, Route};

#[derive(Clone, Debug, PartialEq)]
enum LinkKind {
    /// Between two interiors, or (on an edge node) an uplink to an interior.
    InterRouter,
    /// On an interior: a link to the edge router that said it is `expected`.
    Edge { expected: RouterId },
}

#[derive(Debug)]
struct Link {
    kind: LinkKind,
    cost: Cost,
    peer: Option<Peer>,
    refused: bool,
}

#[derive(Debug)]
struct Peer {
    id: RouterId,
    instance: u64,
    last_heard: Instant,
    two_way: bool,
    /// On an interior's edge link: what the edge has told us of its addresses.
    edge_mobile: Option<MobileState>,
}

/// A mobile address set at a sequence number, for one origin.
#[derive(Debug, Clone, Default)]
struct MobileState {
    instance: u64,
    seq: u64,
    addrs: BTreeSet<String>,
}

/// One router's protocol state machine.
pub struct Node {
    id: RouterId,
    instance: u64,
    config: Config,
    ls_seq: u64,
    mobile_seq: u64,
    ra_seq: u64,
    links: BTreeMap<LinkId, Link>,
    /// Link state of every known interior, ourselves included.
    lsdb: Lsdb,
    /// The last advertisement relayed per origin: (instance, ra_seq).
    ra_seen: BTreeMap<RouterId, (u64, u64)>,
    /// Mobile addresses of other interiors.
    remote_mobile: BTreeMap<RouterId, MobileState>,
    /// address -> interiors (not us) advertising it.
    address_index: BTreeMap<String, BTreeSet<RouterId>>,
    /// Addresses we advertise, with how many sources want each (our own consumers count as one,
    /// each attached edge reporting it as one more).
    advertised: BTreeMap<String, u32>,
    /// Addresses added with `add_local_address`.
    local: BTreeSet<String>,
    /// Changes to `advertised` not yet sent in a MAU.
    pending_add: BTreeSet<String>,
    pending_del: BTreeSet<String>,
    routes: BTreeMap<RouterId, Route>,
    /// On an edge: the uplink last reported with `RoutesChanged`.
    last_uplink: Option<LinkId>,
    /// When we last re-advertised over a stale copy of ourselves.
    last_reassert: Option<Instant>,
    /// Per multicast origin: each router's parent in the tree rooted there.
    multicast_cache: BTreeMap<RouterId, BTreeMap<RouterId, RouterId>>,
    next_hello: Instant,
    next_ra: Instant,
    out: VecDeque<Output>,
}

impl Node {
    /// A node with no links. `instance` must be chosen at random at every start.
    pub fn new(id: RouterId, instance: u64, config: Config, now: Instant) -> Self {
        let mut lsdb = Lsdb::new();
        if config.mode == Mode::Interior {
            lsdb.insert(
                id.clone(),
                LsEntry {
                    instance,
                    seq: 0,
                    peers: BTreeMap::new(),
                    unreachable_since: None,
                },
            );
        }
        Node {
            next_hello: now + config.hello_interval,
            next_ra: now + config.ra_interval,
            id,
            instance,
            config,
            ls_seq: 0,
            mobile_seq: 0,
            ra_seq: 0,
            links: BTreeMap::new(),
            lsdb,
            ra_seen: BTreeMap::new(),
            remote_mobile: BTreeMap::new(),
            address_index: BTreeMap::new(),
            advertised: BTreeMap::new(),
            local: BTreeSet::new(),
            pending_add: BTreeSet::new(),
            pending_del: BTreeSet::new(),
            routes: BTreeMap::new(),
            last_uplink: None,
            last_reassert: None,
            multicast_cache: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    pub fn id(&self) -> &RouterId {
        &self.id
    }

    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// A new inter-router connection (on an edge node: an uplink to an interior) is open.
    /// A HELLO goes out on it at once.
    pub fn link_up(&mut self, link: LinkId, now: Instant) {
        self.add_link(link, LinkKind::InterRouter, now);
    }

    /// On an interior: a connection from the edge router `edge_id` is open. Its hellos must
    /// say it is that edge, and its mobile addresses are advertised as ours. Ignored (with a
    /// warning) on an edge node.
    pub fn edge_attached(&mut self, link: LinkId, edge_id: RouterId, now: Instant) {
        if self.config.mode == Mode::Edge {
            tracing::warn!(%link, edge = %edge_id, "edge_attached on an edge router: ignored");
            return;
        }
        self.add_link(link, LinkKind::Edge { expected: edge_id }, now);
    }

    /// The connection is closed: its neighbour is lost at once.
    pub fn link_down(&mut self, link: LinkId, now: Instant) {
        self.lose_peer(link, now);
        self.links.remove(&link);
    }

    /// Changes the cost of a link (re-advertised at once if it carries a neighbour).
    pub fn set_link_cost(&mut self, link: LinkId, cost: Cost, now: Instant) {
        let cost = Cost(cost.0.max(1));
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.cost = cost;
        match self.config.mode {
            Mode::Interior => self.refresh_own_link_state(now),
            Mode::Edge => {}
        }
    }

    /// Hands the node a message received on `link`.
    pub fn receive(&mut self, link: LinkId, msg: Message, now: Instant) {
        match self.links.get(&link) {
            Some(l) if !l.refused => {}
            _ => return,
        }
        match msg {
            Message::Hello(h) => self.on_hello(link, h, now),
            other => {
                if self.peer_on(link).is_none() {
                    // Nothing but a hello makes sense before the peer has said who it is.
                    tracing::debug!(%link, op = other.opcode(), "mesh message before hello");
                    return;
                }
                match other {
                    Message::Hello(_) => {}
                    Message::Ra(ra) => self.on_ra(link, ra, now),
                    Message::Lsu(u) => self.on_lsu(link, u, now),
                    Message::Lsr(r) => self.on_lsr(link, r),
                    Message::Mau(u) => self.on_mau(link, u, now),
                    Message::Mar(r) => self.on_mar(link, r),
                }
            }
        }
    }

    /// Decodes `bytes` and hands the message to [`Node::receive`]; bytes that are not a valid
    /// message (or speak another version) refuse the link.
    pub fn receive_bytes(&mut self, link: LinkId, bytes: &[u8], now: Instant) {
        match Message::decode(bytes) {
            Ok(msg) => self.receive(link, msg, now),
            Err(MeshError::VersionMismatch { ours, theirs }) => self.refuse(
                link,
                RefuseReason::VersionMismatch {
                    peer: self.peer_on(link).map(|p| p.id.clone()),
                    ours,
                    theirs,
                },
                now,
            ),
            Err(e) => self.refuse(link, RefuseReason::Malformed(e), now),
        }
    }

    /// Runs the timers due at `now` (hellos, dead neighbours, advertisements, purges) and
    /// returns when it wants to be called next.
    pub fn tick(&mut self, now: Instant) -> Instant {
        self.expire_dead(now);
        if now >= self.next_hello {
            let ids: Vec<LinkId> = self.links.keys().copied().collect();
            for link in ids {
                self.send_hello(link);
            }
            self.next_hello = advance(self.next_hello, self.config.hello_interval, now);
        }
        if now >= self.next_ra {
            // On an edge this goes to its interiors only, so they can spot a lost update.
            self.flood_ra();
            self.next_ra = advance(self.next_ra, self.config.ra_interval, now);
        }
        if self.config.mode == Mode::Interior {
            self.purge(now);
        }
        self.flush_mobile();
        self.next_deadline()
    }

    /// The next output, after sending any address changes made since the last call.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            self.flush_mobile();
        }
        self.out.pop_front()
    }

    /// Every pending output (see [`Node::poll_output`]).
    pub fn drain_output(&mut self) -> Vec<Output> {
        self.flush_mobile();
        self.out.drain(..).collect()
    }

    /// A local destination for `addr` appeared (call once, when its first consumer attaches).
    /// Sent to the mesh with the next drained output, batched with other changes.
    pub fn add_local_address(&mut self, addr: &str) {
        if self.local.insert(addr.to_owned()) {
            self.advertise(addr);
        }
    }

    /// The last local destination for `addr` went away.
    pub fn remove_local_address(&mut self, addr: &str) {
        if self.local.remove(addr) {
            self.withdraw(addr);
        }
    }

    /// The link-state database in a comparable form (origin, instance, seq), for tests that
    /// check every router holds the same one.
    #[cfg(test)]
    pub(crate) fn lsdb_digest(&self) -> Vec<(RouterId, u64, u64)> {
        self.lsdb
            .iter()
            .filter(|(_, e)| e.unreachable_since.is_none())
            .map(|(id, e)| (id.clone(), e.instance, e.seq))
            .collect()
    }

    fn add_link(&mut self, link: LinkId, kind: LinkKind, now: Instant) {
        if self.links.contains_key(&link) {
            self.link_down(link, now);
        }
        self.links.insert(
            link,
            Link {
                kind,
                cost: self.config.default_cost,
                peer: None,
                refused: false,
            },
        );
        self.send_hello(link);
    }

    fn peer_on(&self, link: LinkId) -> Option<&Peer> {
        self.links.get(&link).and_then(|l| l.peer.as_ref())
    }

    fn send(&mut self, link: LinkId, msg: Message) {
        self.out.push_back(Output::Send { link, msg });
    }

    fn refuse(&mut self, link: LinkId, reason: RefuseReason, now: Instant) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        if l.refused {
            return;
        }
        tracing::warn!(%link, %reason, "refusing mesh connection");
        self.lose_peer(link, now);
        if let Some(l) = self.links.get_mut(&link) {
            l.refused = true;
        }
        self.out.push_back(Output::Refused { link, reason });
    }

    fn advertise(&mut self, addr: &str) {
        let n = self.advertised.entry(addr.to_owned()).or_insert(0);
        *n += 1;
        if *n == 1 && !self.pending_del.remove(addr) {
            self.pending_add.insert(addr.to_owned());
        }
    }

    fn withdraw(&mut self, addr: &str) {
        let Some(n) = self.advertised.get_mut(addr) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.advertised.remove(addr);
            if !self.pending_add.remove(addr) {
                self.pending_del.insert(addr.to_owned());
            }
        }
    }

    /// Sends the address changes made since the last MAU as one delta.
    fn flush_mobile(&mut self) {
        if self.pending_add.is_empty() && self.pending_del.is_empty() {
            return;
        }
        self.mobile_seq += 1;
        let msg = Message::Mau(MobileUpdate {
            id: self.id.clone(),
            instance: self.instance,
            mobile_seq: self.mobile_seq,
            change: MobileChange::Delta {
                since: self.mobile_seq - 1,
                add: std::mem::take(&mut self.pending_add).into_iter().collect(),
                del: std::mem::take(&mut self.pending_del).into_iter().collect(),
            },
        });
        self.flood(&msg, None);
        self.flood_ra();
    }

    /// Our full address set, at the current sequence (callers flush first).
    fn own_full_mau(&self) -> Message {
        Message::Mau(MobileUpdate {
            id: self.id.clone(),
            instance: self.instance,
            mobile_seq: self.mobile_seq,
            change: MobileChange::Full(self.advertised.keys().cloned().collect()),
        })
    }

    fn next_deadline(&self) -> Instant {
        let mut next = self.next_hello.min(self.next_ra);
        if self.config.mode == Mode::Interior {
            for e in self.lsdb.values() {
                if let Some(t) = e.unreachable_since {
                    next = next.min(t + self.config.purge_delay);
                }
            }
        }
        for l in self.links.values() {
            if let Some(p) = &l.peer {
                next = next.min(p.last_heard + self.config.dead_interval);
            }
        }
        next
    }
}

/// The next periodic deadline after `now`, keeping the phase of `prev` (no drift, and no
/// burst of catch-up events after the caller was late).
fn advance(prev: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = prev + every;
    if next <= now {
        next = now + every;
    }
    next
}

#[cfg(test)]
mod tests;
