//! The routing table, mobile address lookups and multicast trees.

use std::collections::BTreeMap;
use std::time::Instant;

use super::neighbours::is_adjacent;
use super::{LinkKind, Node, Output};
use crate::id::{Cost, LinkId, Mode, RouterId};
use crate::spf::shortest_paths;

/// How to reach a router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The link to send on.
    pub next_hop: LinkId,
    /// The neighbour at the other end of `next_hop`.
    pub neighbour: RouterId,
    /// Sum of link costs along the path (saturating).
    pub cost: Cost,
}

/// A router with a destination for an address, and how to get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub router: RouterId,
    pub next_hop: LinkId,
    pub cost: Cost,
}

impl Node {
    /// Recomputes the unicast table from the link-state database (interiors) or the uplink
    /// choice (edges), and reports a change.
    pub(super) fn recompute_routes(&mut self, now: Instant) {
        self.multicast_cache.clear();
        let mut routes = BTreeMap::new();
        if self.config.mode == Mode::Interior {
            let spt = shortest_paths(&self.lsdb, &self.id);
            // The first hop of each router, inherited down the tree (parents settle first).
            let mut first_hop: BTreeMap<RouterId, RouterId> = BTreeMap::new();
            for r in spt.order.iter().skip(1) {
                let Some(parent) = spt.parent.get(r) else {
                    continue;
                };
                let hop = if *parent == self.id {
                    r.clone()
                } else if let Some(h) = first_hop.get(parent) {
                    h.clone()
                } else {
                    continue;
                };
                first_hop.insert(r.clone(), hop.clone());
                if let Some(link) = self.link_to(&hop) {
                    let dist = spt.dist.get(r).copied().unwrap_or(u64::MAX);
                    let cost = Cost(u32::try_from(dist).unwrap_or(u32::MAX));
                    routes.insert(
                        r.clone(),
                        super::Route {
                            next_hop: link,
                            neighbour: hop,
                            cost,
                        },
                    );
                }
            }
            for (id, e) in self.lsdb.iter_mut() {
                if *id == self.id || spt.dist.contains_key(id) {
                    e.unreachable_since = None;
                } else if e.unreachable_since.is_none() {
                    e.unreachable_since = Some(now);
                }
            }
        }
        let uplink = self.uplink();
        if routes != self.routes || uplink != self.last_uplink {
            self.routes = routes;
            self.last_uplink = uplink;
            self.out.push_back(Output::RoutesChanged);
        }
    }

    /// The route to every reachable interior (empty on an edge).
    pub fn routes(&self) -> &BTreeMap<RouterId, Route> {
        &self.routes
    }

    /// The route to `router`, if it is reachable.
    pub fn route(&self, router: &RouterId) -> Option<&Route> {
        self.routes.get(router)
    }

    /// The neighbours up both ways, with their links (every link, when several lead to one
    /// neighbour).
    pub fn neighbours(&self) -> Vec<(LinkId, RouterId)> {
        self.links
            .iter()
            .filter(|(_, l)| !l.refused)
            .filter_map(|(id, l)| match &l.peer {
                Some(p) if p.two_way => Some((*id, p.id.clone())),
                _ => None,
            })
            .collect()
    }

    /// On an edge: the link everything not local goes to (the cheapest interior that is up).
    pub fn uplink(&self) -> Option<LinkId> {
        if self.config.mode != Mode::Edge {
            return None;
        }
        self.links
            .iter()
            .filter(|(_, l)| is_adjacent(l))
            .min_by_key(|(id, l)| (l.cost, **id))
            .map(|(id, _)| *id)
    }

    /// True if `addr` has a local destination (added locally or by an attached edge).
    pub fn is_local(&self, addr: &str) -> bool {
        self.advertised.contains_key(addr)
    }

    /// Reachable interiors other than us that advertise `addr`, in id order.
    pub fn address_routers(&self, addr: &str) -> Vec<RouterId> {
        self.address_index
            .get(addr)
            .map(|set| {
                set.iter()
                    .filter(|r| self.routes.contains_key(*r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where the remote destinations of `addr` are: per router, the next hop and cost.
    pub fn destinations(&self, addr: &str) -> Vec<Destination> {
        let Some(set) = self.address_index.get(addr) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|r| {
                self.routes.get(r).map(|route| Destination {
                    router: r.clone(),
                    next_hop: route.next_hop,
                    cost: route.cost,
                })
            })
            .collect()
    }

    /// Every address some other router or an attached edge advertises (reachable or not): what a
    /// caller walks to decide where it needs forwarding state.
    pub fn known_addresses(&self) -> std::collections::BTreeSet<String> {
        let mut all: std::collections::BTreeSet<String> =
            self.address_index.keys().cloned().collect();
        for l in self.links.values() {
            if let Some(m) = l.peer.as_ref().and_then(|p| p.edge_mobile.as_ref()) {
                all.extend(m.addrs.iter().cloned());
            }
        }
        all
    }

    /// On an interior: the links of attached edges that reported `addr`.
    pub fn edge_links(&self, addr: &str) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|(_, l)| matches!(l.kind, LinkKind::Edge { .. }) && !l.refused)
            .filter(|(_, l)| {
                l.peer
                    .as_ref()
                    .and_then(|p| p.edge_mobile.as_ref())
                    .is_some_and(|m| m.addrs.contains(addr))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The links a multicast message from `origin` arriving here is copied to: our children
    /// in the shortest-path tree rooted at `origin` (computed by every router alike, so each
    /// router receives one copy). The tree is cached until the link state changes.
    pub fn multicast_links(&mut self, origin: &RouterId) -> Vec<LinkId> {
        let me = self.id.clone();
        let mut links: Vec<LinkId> = self
            .multicast_tree(origin)
            .iter()
            .filter(|(_, parent)| **parent == me)
            .map(|(child, _)| child.clone())
            .collect::<Vec<_>>()
            .iter()
            .filter_map(|child| self.link_to(child))
            .collect();
        links.sort();
        links.dedup();
        links
    }

    /// Like [`Node::multicast_links`], pruned to the branches that lead to a router
    /// advertising `addr` (local consumers are the caller's business).
    pub fn multicast_links_for(&mut self, origin: &RouterId, addr: &str) -> Vec<LinkId> {
        let targets = self.address_routers(addr);
        if targets.is_empty() {
            return Vec::new();
        }
        let me = self.id.clone();
        let tree = self.multicast_tree(origin);
        let mut children = Vec::new();
        for target in targets {
            // Walk up from the target; the router just below us, if we are passed, is the
            // child that leads there. Bounded by the tree size in case of a malformed tree.
            let mut at = &target;
            for _ in 0..=tree.len() {
                match tree.get(at) {
                    Some(parent) if *parent == me => {
                        children.push(at.clone());
                        break;
                    }
                    Some(parent) => at = parent,
                    None => break,
                }
            }
        }
        let mut links: Vec<LinkId> = children.iter().filter_map(|c| self.link_to(c)).collect();
        links.sort();
        links.dedup();
        links
    }

    /// The parent map of the shortest-path tree rooted at `origin` (empty on an edge).
    fn multicast_tree(&mut self, origin: &RouterId) -> &BTreeMap<RouterId, RouterId> {
        if self.config.mode == Mode::Interior && !self.multicast_cache.contains_key(origin) {
            // Bounded: at most one tree per known router, cleared on every recomputation.
            let spt = shortest_paths(&self.lsdb, origin);
            self.multicast_cache.insert(origin.clone(), spt.parent);
        }
        static EMPTY: BTreeMap<RouterId, RouterId> = BTreeMap::new();
        self.multicast_cache.get(origin).unwrap_or(&EMPTY)
    }
}
