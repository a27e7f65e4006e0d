//! Neighbours: hellos, the two-way check, dead neighbours, and our own link state.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Link, LinkKind, Node, Peer, RefuseReason};
use crate::id::{Cost, LinkId, Mode, RouterId};
use crate::message::{Hello, LinkStateUpdate, Message, PROTOCOL_VERSION};
use crate::spf::LsEntry;

impl Node {
    pub(super) fn send_hello(&mut self, link: LinkId) {
        match self.links.get(&link) {
            Some(l) if !l.refused => {}
            _ => return,
        }
        let mut seen: Vec<RouterId> = self
            .links
            .values()
            .filter(|l| !l.refused)
            .filter_map(|l| l.peer.as_ref().map(|p| p.id.clone()))
            .collect();
        seen.sort();
        seen.dedup();
        let msg = Message::Hello(Hello {
            id: self.id.clone(),
            instance: self.instance,
            version: PROTOCOL_VERSION,
            mode: self.config.mode,
            seen,
        });
        self.send(link, msg);
    }

    pub(super) fn on_hello(&mut self, link: LinkId, h: Hello, now: Instant) {
        if h.version != PROTOCOL_VERSION {
            let reason = RefuseReason::VersionMismatch {
                peer: Some(h.id),
                ours: PROTOCOL_VERSION,
                theirs: h.version,
            };
            return self.refuse(link, reason, now);
        }
        if let Some(reason) = self.check_peer(link, &h) {
            return self.refuse(link, reason, now);
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        // A different router (or a restart) on the same connection: start over with it.
        if l.peer
            .as_ref()
            .is_some_and(|p| p.id != h.id || p.instance != h.instance)
        {
            self.lose_peer(link, now);
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let first = l.peer.is_none();
        let peer = l.peer.get_or_insert_with(|| Peer {
            id: h.id.clone(),
            instance: h.instance,
            last_heard: now,
            two_way: false,
            edge_mobile: None,
        });
        peer.last_heard = now;
        let was_two_way = peer.two_way;
        let two_way = h.seen.contains(&self.id);
        peer.two_way = two_way;
        if first {
            tracing::debug!(%link, peer = %h.id, "mesh neighbour heard");
            // Answer at once so the peer sees itself listed without waiting a hello interval.
            self.send_hello(link);
        }
        match (was_two_way, two_way) {
            (false, true) => self.adjacency_up(link, now),
            (true, false) => self.adjacency_down(link, now),
            _ => {}
        }
    }

    /// Whether the peer saying `h` on `link` may be our neighbour there.
    fn check_peer(&self, link: LinkId, h: &Hello) -> Option<RefuseReason> {
        if h.id == self.id {
            return Some(RefuseReason::DuplicateId {
                id: h.id.clone(),
                other_link: None,
            });
        }
        let kind = &self.links.get(&link)?.kind;
        match (self.config.mode, kind, h.mode) {
            (Mode::Edge, _, Mode::Edge) => {
                return Some(RefuseReason::EdgeToEdge { peer: h.id.clone() })
            }
            (Mode::Interior, LinkKind::InterRouter, Mode::Edge) => {
                return Some(RefuseReason::EdgeOnInteriorLink { peer: h.id.clone() })
            }
            (Mode::Interior, LinkKind::Edge { .. }, Mode::Interior) => {
                return Some(RefuseReason::InteriorOnEdgeLink { peer: h.id.clone() })
            }
            (Mode::Interior, LinkKind::Edge { expected }, Mode::Edge) if *expected != h.id => {
                return Some(RefuseReason::UnexpectedEdge {
                    expected: expected.clone(),
                    got: h.id.clone(),
                })
            }
            _ => {}
        }
        // Two live neighbours with one id are two routers (or a restarted one whose old
        // connection is not dead yet): keep the one we had.
        self.links.iter().find_map(|(other, l)| match &l.peer {
            Some(p) if *other != link && !l.refused && p.id == h.id && p.instance != h.instance => {
                Some(RefuseReason::DuplicateId {
                    id: h.id.clone(),
                    other_link: Some(*other),
                })
            }
            _ => None,
        })
    }

    /// Neighbours not heard from within the dead interval are lost.
    pub(super) fn expire_dead(&mut self, now: Instant) {
        let dead: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.peer
                    .as_ref()
                    .is_some_and(|p| p.last_heard + self.config.dead_interval <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for link in dead {
            tracing::debug!(%link, "mesh neighbour dead (no hello within the dead interval)");
            self.lose_peer(link, now);
        }
    }

    /// Forgets the neighbour on `link` (the link itself stays, waiting for hellos).
    pub(super) fn lose_peer(&mut self, link: LinkId, now: Instant) {
        let Some(peer) = self.links.get_mut(&link).and_then(|l| l.peer.take()) else {
            return;
        };
        if let Some(m) = peer.edge_mobile {
            for a in &m.addrs {
                self.withdraw(a);
            }
            if !m.addrs.is_empty() {
                self.out.push_back(super::Output::AddressesChanged);
            }
        }
        if peer.two_way {
            self.after_adjacency_change(now);
        }
    }

    fn adjacency_up(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        tracing::debug!(%link, "mesh adjacency up");
        match (self.config.mode, &l.kind) {
            (Mode::Interior, LinkKind::InterRouter) => {
                self.flush_mobile();
                self.refresh_own_link_state(now);
                self.sync_database(link);
            }
            (Mode::Interior, LinkKind::Edge { .. }) => {}
            (Mode::Edge, _) => {
                self.flush_mobile();
                let full = self.own_full_mau();
                self.send(link, full);
                self.recompute_routes(now);
            }
        }
    }

    fn adjacency_down(&mut self, link: LinkId, now: Instant) {
        tracing::debug!(%link, "mesh adjacency down");
        let _ = link;
        self.after_adjacency_change(now);
    }

    fn after_adjacency_change(&mut self, now: Instant) {
        match self.config.mode {
            Mode::Interior => self.refresh_own_link_state(now),
            Mode::Edge => self.recompute_routes(now),
        }
    }

    /// The two-way interior neighbours and the cheapest link cost to each.
    fn own_peers(&self) -> BTreeMap<RouterId, Cost> {
        let mut peers: BTreeMap<RouterId, Cost> = BTreeMap::new();
        for l in self.links.values().filter(|l| is_adjacent(l)) {
            if let Some(p) = &l.peer {
                let c = peers.entry(p.id.clone()).or_insert(l.cost);
                *c = (*c).min(l.cost);
            }
        }
        peers
    }

    /// Re-originates our LSU if our neighbours or costs changed, and recomputes routes.
    pub(super) fn refresh_own_link_state(&mut self, now: Instant) {
        let peers = self.own_peers();
        let changed = self.lsdb.get(&self.id).is_none_or(|e| e.peers != peers);
        if changed {
            self.ls_seq += 1;
            self.lsdb.insert(
                self.id.clone(),
                LsEntry {
                    instance: self.instance,
                    seq: self.ls_seq,
                    peers,
                    unreachable_since: None,
                },
            );
            let lsu = self.own_lsu();
            self.flood(&lsu, None);
            self.flood_ra();
        }
        self.recompute_routes(now);
    }

    pub(super) fn own_lsu(&self) -> Message {
        let peers = self
            .lsdb
            .get(&self.id)
            .map(|e| e.peers.clone())
            .unwrap_or_default();
        Message::Lsu(LinkStateUpdate {
            id: self.id.clone(),
            instance: self.instance,
            ls_seq: self.ls_seq,
            peers,
        })
    }

    /// The best link to the two-way neighbour `id`: cheapest, then lowest id.
    pub(super) fn link_to(&self, id: &RouterId) -> Option<LinkId> {
        self.links
            .iter()
            .filter(|(_, l)| is_adjacent(l) && l.peer.as_ref().is_some_and(|p| p.id == *id))
            .min_by_key(|(lid, l)| (l.cost, **lid))
            .map(|(lid, _)| *lid)
    }

    /// Sends `msg` on every adjacent inter-router link but `except`.
    pub(super) fn flood(&mut self, msg: &Message, except: Option<LinkId>) {
        let targets: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(id, l)| Some(**id) != except && is_adjacent(l))
            .map(|(id, _)| *id)
            .collect();
        for link in targets {
            self.send(link, msg.clone());
        }
    }
}

/// An inter-router link whose neighbour is up both ways.
pub(super) fn is_adjacent(l: &Link) -> bool {
    !l.refused && l.kind == LinkKind::InterRouter && l.peer.as_ref().is_some_and(|p| p.two_way)
}
