//! Shortest paths over the link-state database (Dijkstra), shared by unicast routes and
//! multicast trees.
//!
//! Every router runs the same computation over the same database, so ties must break the same
//! way everywhere: routers are settled in (distance, id) order, and of two equal-cost parents
//! the one with the lower id wins. That makes the tree rooted at any router a pure function of
//! the database, which is what lets each router compute its part of another router's multicast
//! tree on its own.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

use crate::id::{Cost, RouterId};

/// What the database holds for one origin: its latest link-state update.
#[derive(Clone, Debug)]
pub(crate) struct LsEntry {
    pub instance: u64,
    pub seq: u64,
    pub peers: BTreeMap<RouterId, Cost>,
    /// Set while the origin is unreachable from us, to purge it after a delay.
    pub unreachable_since: Option<Instant>,
}

pub(crate) type Lsdb = BTreeMap<RouterId, LsEntry>;

/// The cost of the link between `a` and `b`, if both ends advertise it (the two-way check).
/// The higher of the two advertised costs is used so the graph is undirected and the tree
/// rooted at any router is the same seen from anywhere.
pub(crate) fn link_cost(db: &Lsdb, a: &RouterId, b: &RouterId) -> Option<u64> {
    let ab = db.get(a)?.peers.get(b)?;
    let ba = db.get(b)?.peers.get(a)?;
    Some(u64::from(ab.0.max(ba.0)))
}

/// A shortest-path tree.
#[derive(Debug, Default)]
pub(crate) struct Spt {
    pub dist: BTreeMap<RouterId, u64>,
    pub parent: BTreeMap<RouterId, RouterId>,
    /// Routers in the order they were settled (root first): parents come before children.
    pub order: Vec<RouterId>,
}

/// Dijkstra from `root` over the two-way links of `db`.
pub(crate) fn shortest_paths(db: &Lsdb, root: &RouterId) -> Spt {
    let mut spt = Spt::default();
    if !db.contains_key(root) {
        return spt;
    }
    let mut heap = BinaryHeap::new();
    spt.dist.insert(root.clone(), 0);
    heap.push(Reverse((0u64, root.clone())));
    let mut settled = std::collections::BTreeSet::new();
    while let Some(Reverse((d, u))) = heap.pop() {
        if !settled.insert(u.clone()) {
            continue;
        }
        spt.order.push(u.clone());
        let Some(entry) = db.get(&u) else { continue };
        for w in entry.peers.keys() {
            if settled.contains(w) {
                continue;
            }
            let Some(c) = link_cost(db, &u, w) else {
                continue;
            };
            let nd = d.saturating_add(c);
            let better = match spt.dist.get(w) {
                None => true,
                Some(&old) => nd < old || (nd == old && spt.parent.get(w).is_some_and(|p| u < *p)),
            };
            if better {
                spt.dist.insert(w.clone(), nd);
                spt.parent.insert(w.clone(), u.clone());
                heap.push(Reverse((nd, w.clone())));
            }
        }
    }
    spt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RouterId {
        RouterId::new(s).unwrap()
    }

    fn db(edges: &[(&str, &str, u32)]) -> Lsdb {
        let mut db = Lsdb::new();
        for &(a, b, c) in edges {
            for (x, y) in [(a, b), (b, a)] {
                db.entry(id(x))
                    .or_insert_with(|| LsEntry {
                        instance: 1,
                        seq: 1,
                        peers: BTreeMap::new(),
                        unreachable_since: None,
                    })
                    .peers
                    .insert(id(y), Cost(c));
            }
        }
        db
    }

    #[test]
    fn equal_cost_ties_go_to_the_lower_parent() {
        // Square A-B-D, A-C-D: D's parent must be B whichever way it is computed.
        let db = db(&[("A", "C", 1), ("C", "D", 1), ("A", "B", 1), ("B", "D", 1)]);
        let spt = shortest_paths(&db, &id("A"));
        assert_eq!(spt.dist[&id("D")], 2);
        assert_eq!(spt.parent[&id("D")], id("B"));
        assert_eq!(spt.order[0], id("A"));
    }

    #[test]
    fn one_way_links_are_ignored() {
        let mut db = db(&[("A", "B", 1), ("B", "C", 1)]);
        // C stops listing B: B-C is no longer two-way.
        db.get_mut(&id("C")).unwrap().peers.clear();
        let spt = shortest_paths(&db, &id("A"));
        assert!(spt.dist.contains_key(&id("B")));
        assert!(!spt.dist.contains_key(&id("C")));
    }

    #[test]
    fn costs_are_the_higher_of_both_ends() {
        let mut db = db(&[("A", "B", 1), ("B", "C", 1), ("A", "C", 1)]);
        db.get_mut(&id("A")).unwrap().peers.insert(id("C"), Cost(5));
        let spt = shortest_paths(&db, &id("C"));
        assert_eq!(spt.dist[&id("A")], 2);
        assert_eq!(spt.parent[&id("A")], id("B"));
    }
}
