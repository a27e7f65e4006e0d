//! Proxy links: how deliveries cross the mesh (ADR 0009).
//!
//! For each address with consumers reachable through a neighbour, this router keeps one sender link on
//! the connection to that neighbour, with the address as target. On the neighbour it is an ordinary
//! incoming link, granted credit only while the address is routable there ("no consumer, no credit",
//! ADR 0003), so credit exists end to end exactly while a consumer is reachable. Here the proxy is a
//! consumer of the address like a client's receiver: anycast, multicast, queues and outcomes need no
//! special case, except two rules that keep messages from looping:
//!
//! - a message never goes to a neighbour named in its trace (`x-opt-shoal-trace`, extended by every
//!   router it leaves on an inter-router link), so it cannot come back to a router it crossed;
//! - a multicast copy from origin O goes only to the neighbours `multicast_links_for(O, addr)` names
//!   (the shortest-path tree rooted at O), and to attached edges that have consumers.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use shoal_amqp::SenderSettleMode;
use shoal_mesh::{LinkId, Mode, RouterId};

use super::super::api::{Command, ConnId, LinkKey, Msg};
use super::super::{AddrId, Core, LinkKind, Outgoing};
use super::{link_details, MeshLink, Trace};
use crate::config::Distribution;

impl Core {
    /// Make the proxy links match what the mesh says: one per (neighbour, address) with consumers behind.
    pub(in crate::core) fn reconcile_proxies(&mut self) {
        let desired = self.desired_proxies();
        let Some(mesh) = self.mesh.as_ref() else {
            return;
        };
        let mut stale = Vec::new();
        let mut have = HashSet::new();
        for (conn, n) in &mesh.neighbours {
            for (name, key) in &n.proxies {
                if desired.contains(&(*conn, name.clone())) {
                    have.insert((*conn, name.clone()));
                } else {
                    stale.push((*conn, name.clone(), *key));
                }
            }
        }
        for (conn, name, key) in stale {
            self.close_proxy(conn, &name, key);
        }
        for (conn, name) in desired {
            if !have.contains(&(conn, name.clone())) {
                self.open_proxy(conn, &name);
            }
        }
    }

    fn link_routed(&self, name: &str) -> bool {
        self.rules
            .lookup(name)
            .1
            .is_some_and(|r| r.link_route.is_some())
    }

    fn desired_proxies(&mut self) -> BTreeSet<(ConnId, String)> {
        let mut desired = BTreeSet::new();
        let Some(mode) = self.mesh.as_ref().map(|m| m.node.mode()) else {
            return desired;
        };
        match mode {
            Mode::Interior => {
                let known = match self.mesh.as_ref() {
                    Some(m) => m.node.known_addresses(),
                    None => return desired,
                };
                for name in known {
                    if name.starts_with(super::BROKER_PREFIX) || self.link_routed(&name) {
                        continue;
                    }
                    // Pattern subscribers elsewhere get copies like a multicast address's consumers (one per
                    // router, down the tree of the copy's origin), never an anycast next hop.
                    let pattern = name.starts_with(super::PATTERN_PREFIX);
                    let multicast =
                        pattern || self.rules.lookup(&name).0 == Distribution::Multicast;
                    let Some(mesh) = self.mesh.as_mut() else {
                        return desired;
                    };
                    let mut links: Vec<LinkId> = match pattern {
                        true => Vec::new(),
                        false => mesh
                            .node
                            .destinations(&name)
                            .into_iter()
                            .map(|d| d.next_hop)
                            .collect(),
                    };
                    links.extend(mesh.node.edge_links(&name));
                    if multicast {
                        // Copies travel down the tree of whichever router they start from.
                        let mut origins: Vec<RouterId> =
                            mesh.node.routes().keys().cloned().collect();
                        origins.push(mesh.id.clone());
                        for o in origins {
                            links.extend(mesh.node.multicast_links_for(&o, &name));
                        }
                    }
                    for l in links {
                        if mesh.neighbours.contains_key(&l.0) {
                            desired.insert((l.0, name.clone()));
                        }
                    }
                }
            }
            Mode::Edge => {
                // Everything an edge's clients send to goes up, unless it has a local consumer (local traffic
                // stays local); a multicast address goes up as well, for consumers elsewhere.
                let Some(up) = self.mesh.as_ref().and_then(|m| m.node.uplink()) else {
                    return desired;
                };
                let mut names = Vec::new();
                for (_, a) in self.addresses.iter() {
                    if a.pattern {
                        continue;
                    }
                    let is_local = |k: &LinkKey| self.link(*k).is_some_and(|l| l.mesh.is_none());
                    let producing = a.producers.iter().any(is_local);
                    let consuming = a.consumers.iter().any(is_local);
                    if producing && (!consuming || a.distribution == Distribution::Multicast) {
                        names.push(a.name.clone());
                    }
                }
                for name in names {
                    if !self.link_routed(&name) {
                        desired.insert((up.0, name));
                    }
                }
            }
        }
        desired
    }

    /// A proxy for `name` on `conn`: a consumer of the address here; for `_pattern/P`, a consumer of the
    /// pattern, like a local subscriber, so every matching message sends a copy (naming the address it
    /// matched: the connection annotates it) for the subscribers of P behind it.
    fn open_proxy(&mut self, conn: ConnId, name: &str) {
        let Some(me) = self.mesh.as_ref().map(|m| m.id.clone()) else {
            return;
        };
        let pattern = name.strip_prefix(super::PATTERN_PREFIX);
        let addr = match pattern {
            Some(p) => self.pattern_entry(p),
            None => self.address_id(name),
        };
        let key = self.insert_mesh_link(
            conn,
            Some(addr),
            LinkKind::Outgoing(Outgoing::default()),
            MeshLink::Proxy { attached: false },
        );
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.proxies.insert(name.to_owned(), key);
        }
        if pattern.is_some() {
            self.add_pattern_consumer(addr, key);
        } else {
            // A consumer from now on (with no credit until the neighbour grants it): local senders may send.
            let first = !self.addresses[addr].routable();
            self.addresses[addr].consumers.push(key);
            if first {
                let producers = self.addresses[addr].producers.clone();
                for p in producers {
                    self.replenish(p);
                }
            }
        }
        // Named per link: a retiring proxy for the same address may still be attached on this connection.
        let details = link_details(
            format!("shoal-proxy:{me}:{name}:{}", key.generation),
            Some(name),
            SenderSettleMode::Mixed,
            true,
        );
        self.attach_sender(conn, key, details);
    }

    /// Withdraw a proxy the routes no longer use. One with deliveries in flight retires first.
    fn close_proxy(&mut self, conn: ConnId, name: &str, key: LinkKey) {
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.proxies.remove(name);
        }
        if !self.retire_proxy(key) {
            self.detach_proxy(conn, key);
        }
    }

    /// A route changed while the proxy's connection is up (a cheaper path, a consumer gone): rather than
    /// release what it carries (an at-least-once sender would resend messages that may well be delivered),
    /// the proxy leaves the address's consumers now and stays attached until its deliveries are settled;
    /// their outcomes then reach the senders as usual. `false` when there is nothing to wait for.
    fn retire_proxy(&mut self, key: LinkKey) -> bool {
        let Some(l) = self.link_mut(key) else {
            return false;
        };
        let (Some(addr), LinkKind::Outgoing(out)) = (l.addr, &mut l.kind) else {
            return false;
        };
        if l.mesh != Some(MeshLink::Proxy { attached: true }) || out.unsettled == 0 {
            return false;
        }
        let backlog = std::mem::take(&mut out.backlog);
        l.mesh = Some(MeshLink::Retiring);
        if self.addresses[addr].pattern {
            self.pattern_detached(key);
        }
        self.remove_consumer(addr, key, backlog);
        true
    }

    /// An outcome came back on `key`: a retiring proxy with nothing left in flight is detached.
    pub(in crate::core) fn proxy_settled(&mut self, key: LinkKey) {
        let Some(l) = self.link(key) else {
            return;
        };
        let idle = matches!(&l.kind, LinkKind::Outgoing(out) if out.unsettled == 0);
        if l.mesh == Some(MeshLink::Retiring) && idle {
            let conn = l.conn;
            self.detach_proxy(conn, key);
        }
    }

    /// Detach a proxy now: what it holds unsettled comes back released (the connection reports it).
    fn detach_proxy(&mut self, conn: ConnId, key: LinkKey) {
        if let Some(l) = self.link(key) {
            if matches!(
                l.mesh,
                Some(MeshLink::Proxy { attached: true } | MeshLink::Retiring)
            ) {
                let local = l.local;
                self.send(
                    conn,
                    Command::Detach {
                        local,
                        error: None,
                        closed: true,
                    },
                );
            }
        }
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.retain(|l| *l != key);
        }
        self.detach_with(key, None, false);
    }

    /// The neighbour refused a proxy (the address is not routable there the way we thought): forget it; the
    /// next change of routes tries again.
    pub(in crate::core) fn proxy_refused(&mut self, key: LinkKey) {
        let Some(conn) = self.link(key).map(|l| l.conn) else {
            return;
        };
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.proxies.retain(|_, k| *k != key);
        }
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.retain(|l| *l != key);
        }
        self.detach_with(key, None, false);
    }

    /// The trace of a message arriving on `conn`: `None` from a client; from a neighbour, the ids in its
    /// annotation plus the neighbour's own (even if the annotation could not be read).
    pub(in crate::core) fn trace_of(&self, conn: ConnId, msg: &Msg) -> Trace {
        let neighbour = self.neighbour_id(conn)?;
        let first = msg.chunks.iter().next();
        let mut ids = first
            .and_then(|b| shoal_amqp::message::read_trace(b).ok())
            .unwrap_or_default();
        if !ids.iter().any(|i| i == neighbour.as_str()) {
            ids.push(neighbour.to_string());
        }
        Some(Arc::from(ids))
    }

    /// A proxy towards a router the message already crossed: never a destination for it.
    pub(in crate::core) fn excluded(&self, consumer: LinkKey, trace: &Trace) -> bool {
        let Some(trace) = trace else {
            return false;
        };
        let Some(link) = self.link(consumer) else {
            return false;
        };
        if !matches!(link.mesh, Some(MeshLink::Proxy { .. })) {
            return false;
        }
        self.neighbour_id(link.conn)
            .is_some_and(|n| trace.iter().any(|t| t == n.as_str()))
    }

    /// For `closest`: a local consumer first, then the proxy with the cheapest path.
    pub(in crate::core) fn closeness(&self, consumer: LinkKey) -> u32 {
        let Some(link) = self.link(consumer) else {
            return u32::MAX;
        };
        if link.mesh.is_none() {
            return 0;
        }
        let Some(mesh) = self.mesh.as_ref() else {
            return 1;
        };
        let cost = self
            .neighbour_id(link.conn)
            .and_then(|n| mesh.node.route(n))
            .map_or(1, |r| r.cost.0);
        cost.saturating_add(1)
    }

    /// The mesh connections a multicast copy of a message on `addr` with `trace` may take (`None`: no mesh,
    /// no filter).
    pub(in crate::core) fn multicast_conns(
        &mut self,
        addr: AddrId,
        trace: &Trace,
    ) -> Option<HashSet<ConnId>> {
        let name = self.addresses.get(addr)?.name.clone();
        self.multicast_conns_for(&name, trace)
    }

    /// Which of the pattern consumers of a message go: local subscribers all; a pattern proxy only towards
    /// a router the message has not crossed, and (to another interior) only down the multicast tree of the
    /// message's origin towards the routers advertising its pattern, so each router gets one copy per
    /// pattern however many paths lead there.
    pub(in crate::core) fn pattern_targets(
        &mut self,
        mut consumers: Vec<LinkKey>,
        trace: &Trace,
    ) -> Vec<LinkKey> {
        let mut trees: HashMap<AddrId, Option<HashSet<ConnId>>> = HashMap::new();
        consumers.retain(|c| {
            let Some(link) = self.link(*c) else {
                return false;
            };
            if !matches!(link.mesh, Some(MeshLink::Proxy { .. })) {
                return true;
            }
            if self.excluded(*c, trace) {
                return false;
            }
            let (conn, Some(entry)) = (link.conn, link.addr) else {
                return false;
            };
            let tree = match trees.entry(entry) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => {
                    let name = format!("{}{}", super::PATTERN_PREFIX, self.addresses[entry].name);
                    new.insert(self.multicast_conns_for(&name, trace))
                }
            };
            tree.as_ref().is_some_and(|t| t.contains(&conn))
        });
        consumers
    }

    fn multicast_conns_for(&mut self, name: &str, trace: &Trace) -> Option<HashSet<ConnId>> {
        let name = name.to_owned();
        let mesh = self.mesh.as_mut()?;
        if mesh.node.mode() == Mode::Edge {
            // An edge's only mesh connections are its uplinks; the trace keeps copies from going back.
            return Some(mesh.neighbours.keys().copied().collect());
        }
        // The origin is the first interior the message crossed (an edge is not in the link state): us
        // when it came from a client or from an edge.
        let origin = trace
            .as_ref()
            .and_then(|t| {
                t.iter().find_map(|id| {
                    let id = RouterId::new(id.as_str()).ok()?;
                    (id == mesh.id || mesh.node.route(&id).is_some()).then_some(id)
                })
            })
            .unwrap_or_else(|| mesh.id.clone());
        let mut conns: HashSet<ConnId> = mesh
            .node
            .multicast_links_for(&origin, &name)
            .into_iter()
            .map(|l| l.0)
            .collect();
        conns.extend(mesh.node.edge_links(&name).into_iter().map(|l| l.0));
        Some(conns)
    }

    /// Whether a multicast copy may go to `consumer` (always, for a local consumer).
    pub(in crate::core) fn multicast_to(
        &self,
        consumer: LinkKey,
        trace: &Trace,
        conns: &Option<HashSet<ConnId>>,
    ) -> bool {
        let Some(link) = self.link(consumer) else {
            return false;
        };
        if !matches!(link.mesh, Some(MeshLink::Proxy { .. })) {
            return true;
        }
        !self.excluded(consumer, trace) && conns.as_ref().is_some_and(|c| c.contains(&link.conn))
    }
}
