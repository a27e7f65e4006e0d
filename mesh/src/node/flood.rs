//! Flooding between interiors: advertisements, link state, mobile addresses, and the
//! requests that repair what a router missed.
//!
//! Only origins author RA, LSU and MAU; relays forward them unchanged, and only when they are
//! newer than what the relay holds, so each change crosses each link at most once per
//! direction. A copy of another router's state is only ever sent on request (LSR, MAR) or to a
//! new neighbour, never re-originated.

use std::time::Instant;

use super::{LinkKind, MobileState, Node, Output};
use crate::id::{LinkId, Mode, RouterId};
use crate::message::{
    LinkStateRequest, LinkStateUpdate, Message, MobileChange, MobileRequest, MobileUpdate,
    RouterAdvert, MAX_ADDRESSES, MAX_ROUTERS,
};
use crate::spf::LsEntry;

impl Node {
    fn on_interior_link(&self, link: LinkId) -> bool {
        self.config.mode == Mode::Interior
            && self
                .links
                .get(&link)
                .is_some_and(|l| l.kind == LinkKind::InterRouter)
    }

    /// True if `origin` is a neighbour whose hellos show another instance than `instance`: the
    /// neighbour is the authority on its own instance, so such state is a stale copy.
    fn stale_for_neighbour(&self, origin: &RouterId, instance: u64) -> bool {
        self.links.values().any(|l| {
            l.peer
                .as_ref()
                .is_some_and(|p| p.id == *origin && p.instance != instance)
        })
    }

    pub(super) fn flood_ra(&mut self) {
        self.ra_seq += 1;
        let ra = Message::Ra(RouterAdvert {
            id: self.id.clone(),
            instance: self.instance,
            ra_seq: self.ra_seq,
            ls_seq: self.ls_seq,
            mobile_seq: self.mobile_seq,
        });
        self.flood(&ra, None);
    }

    /// Everything we know, for a new neighbour: it keeps what is newer than its own.
    pub(super) fn sync_database(&mut self, link: LinkId) {
        let mut msgs = Vec::with_capacity(self.lsdb.len() + self.remote_mobile.len() + 2);
        for (id, e) in &self.lsdb {
            msgs.push(Message::Lsu(LinkStateUpdate {
                id: id.clone(),
                instance: e.instance,
                ls_seq: e.seq,
                peers: e.peers.clone(),
            }));
        }
        msgs.push(self.own_full_mau());
        for (id, m) in &self.remote_mobile {
            msgs.push(full_mau(id, m));
        }
        for msg in msgs {
            self.send(link, msg);
        }
    }

    /// Someone holds state about us from another instance (we restarted and a stale copy
    /// survived somewhere): re-originate everything with higher sequence numbers. Receivers
    /// take a different instance as news, so our copy replaces theirs.
    fn reassert(&mut self, seen_instance: u64, now: Instant) {
        if seen_instance == self.instance {
            return;
        }
        // Two live routers with our id (not neighbours, or HELLO would have refused one) would
        // out-bid each other forever: re-advertise at most once per RA interval, and say so.
        if self
            .last_reassert
            .is_some_and(|t| now < t + self.config.ra_interval)
        {
            tracing::warn!(id = %self.id, "mesh: another instance claims our router id");
            return;
        }
        self.last_reassert = Some(now);
        tracing::debug!(
            stale = seen_instance,
            "mesh: stale state about us, re-advertising"
        );
        self.ls_seq += 1;
        if let Some(e) = self.lsdb.get_mut(&self.id) {
            e.seq = self.ls_seq;
        }
        self.flush_mobile();
        self.mobile_seq += 1;
        let lsu = self.own_lsu();
        self.flood(&lsu, None);
        let mau = self.own_full_mau();
        self.flood(&mau, None);
        self.flood_ra();
    }

    pub(super) fn on_ra(&mut self, link: LinkId, ra: RouterAdvert, now: Instant) {
        if !self.on_interior_link(link) {
            return self.on_edge_ra(link, &ra);
        }
        if ra.id == self.id {
            return self.reassert(ra.instance, now);
        }
        if self
            .ra_seen
            .get(&ra.id)
            .is_some_and(|&(i, s)| i == ra.instance && s >= ra.ra_seq)
        {
            return;
        }
        if !self.ra_seen.contains_key(&ra.id) && self.ra_seen.len() >= MAX_ROUTERS {
            tracing::warn!(origin = %ra.id, "mesh: too many routers, advertisement dropped");
            return;
        }
        self.ra_seen.insert(ra.id.clone(), (ra.instance, ra.ra_seq));
        let behind_ls = self
            .lsdb
            .get(&ra.id)
            .is_none_or(|e| e.instance != ra.instance || e.seq < ra.ls_seq);
        if behind_ls {
            let req = Message::Lsr(LinkStateRequest {
                id: self.id.clone(),
                origin: ra.id.clone(),
                instance: ra.instance,
                ls_seq: ra.ls_seq,
            });
            self.send(link, req);
        }
        if mobile_behind(self.remote_mobile.get(&ra.id), &ra) {
            self.request_mobile(link, &ra.id, ra.instance, ra.mobile_seq);
        }
        self.flood(&Message::Ra(ra), Some(link));
    }

    pub(super) fn on_lsu(&mut self, link: LinkId, u: LinkStateUpdate, now: Instant) {
        if !self.on_interior_link(link) {
            return;
        }
        if u.id == self.id {
            return self.reassert(u.instance, now);
        }
        if self.stale_for_neighbour(&u.id, u.instance) {
            return;
        }
        match self.lsdb.get(&u.id) {
            Some(e) if e.instance == u.instance && e.seq >= u.ls_seq => return,
            None if self.lsdb.len() >= MAX_ROUTERS => {
                tracing::warn!(origin = %u.id, "mesh: too many routers, link state dropped");
                return;
            }
            _ => {}
        }
        self.lsdb.insert(
            u.id.clone(),
            LsEntry {
                instance: u.instance,
                seq: u.ls_seq,
                peers: u.peers.clone(),
                unreachable_since: None,
            },
        );
        self.flood(&Message::Lsu(u), Some(link));
        self.recompute_routes(now);
    }

    pub(super) fn on_lsr(&mut self, link: LinkId, r: LinkStateRequest) {
        if !self.on_interior_link(link) {
            return;
        }
        let reply = if r.origin == self.id {
            Some(self.own_lsu())
        } else {
            self.lsdb
                .get(&r.origin)
                .filter(|e| e.instance == r.instance && e.seq >= r.ls_seq)
                .map(|e| {
                    Message::Lsu(LinkStateUpdate {
                        id: r.origin.clone(),
                        instance: e.instance,
                        ls_seq: e.seq,
                        peers: e.peers.clone(),
                    })
                })
        };
        // Without it we asked for it ourselves when the same advertisement reached us; our
        // copy will be flooded to the requester when it arrives.
        if let Some(reply) = reply {
            self.send(link, reply);
        }
    }

    pub(super) fn on_mau(&mut self, link: LinkId, u: MobileUpdate, now: Instant) {
        let Some(kind) = self.links.get(&link).map(|l| l.kind.clone()) else {
            return;
        };
        match (self.config.mode, kind) {
            (Mode::Interior, LinkKind::InterRouter) => self.on_interior_mau(link, u, now),
            (Mode::Interior, LinkKind::Edge { .. }) => self.on_edge_mau(link, u),
            // An edge's interior never sends it addresses: the edge routes all it does not
            // have locally to its uplink.
            (Mode::Edge, _) => {}
        }
    }

    fn on_interior_mau(&mut self, link: LinkId, u: MobileUpdate, now: Instant) {
        if u.id == self.id {
            return self.reassert(u.instance, now);
        }
        if self.stale_for_neighbour(&u.id, u.instance) {
            return;
        }
        let current = self.remote_mobile.get(&u.id);
        if mobile_current(current, &u) {
            return;
        }
        if current.is_none() && self.remote_mobile.len() >= MAX_ROUTERS {
            tracing::warn!(origin = %u.id, "mesh: too many routers, addresses dropped");
            return;
        }
        let Some(next) = self.next_mobile(link, current.cloned(), &u) else {
            return;
        };
        self.set_remote_mobile(u.id.clone(), next);
        self.flood(&Message::Mau(u), Some(link));
    }

    /// Replaces an origin's address set and keeps the address index in step.
    fn set_remote_mobile(&mut self, origin: RouterId, next: MobileState) {
        let empty = MobileState::default();
        let old = self.remote_mobile.get(&origin).unwrap_or(&empty);
        let gone: Vec<String> = old.addrs.difference(&next.addrs).cloned().collect();
        let new: Vec<String> = next.addrs.difference(&old.addrs).cloned().collect();
        for a in &gone {
            if let Some(set) = self.address_index.get_mut(a) {
                set.remove(&origin);
                if set.is_empty() {
                    self.address_index.remove(a);
                }
            }
        }
        for a in &new {
            self.address_index
                .entry(a.clone())
                .or_default()
                .insert(origin.clone());
        }
        self.remote_mobile.insert(origin, next);
        if !gone.is_empty() || !new.is_empty() {
            self.out.push_back(Output::AddressesChanged);
        }
    }

    pub(super) fn remove_remote_mobile(&mut self, origin: &RouterId) {
        if self.remote_mobile.contains_key(origin) {
            self.set_remote_mobile(origin.clone(), MobileState::default());
            self.remote_mobile.remove(origin);
        }
    }

    pub(super) fn on_mar(&mut self, link: LinkId, r: MobileRequest) {
        if r.origin == self.id {
            self.flush_mobile();
            let full = self.own_full_mau();
            return self.send(link, full);
        }
        if !self.on_interior_link(link) {
            return;
        }
        if let Some(m) = self
            .remote_mobile
            .get(&r.origin)
            .filter(|m| m.instance == r.instance && m.seq >= r.mobile_seq)
        {
            let full = full_mau(&r.origin, m);
            self.send(link, full);
        }
    }

    /// Forgets routers that have been unreachable for the purge delay.
    pub(super) fn purge(&mut self, now: Instant) {
        let stale: Vec<RouterId> = self
            .lsdb
            .iter()
            .filter(|(_, e)| {
                e.unreachable_since
                    .is_some_and(|t| t + self.config.purge_delay <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            tracing::debug!(router = %id, "mesh: forgetting unreachable router");
            self.lsdb.remove(&id);
            self.ra_seen.remove(&id);
            self.remove_remote_mobile(&id);
        }
    }
}

impl Node {
    /// Asks the router across `link` for `origin`'s full address set as of (`instance`,
    /// `mobile_seq`): what an interior does when an advertisement or a delta shows its copy (of an
    /// interior's or an attached edge's addresses) is behind.
    pub(super) fn request_mobile(
        &mut self,
        link: LinkId,
        origin: &RouterId,
        instance: u64,
        mobile_seq: u64,
    ) {
        let req = Message::Mar(MobileRequest {
            id: self.id.clone(),
            origin: origin.clone(),
            instance,
            mobile_seq,
        });
        self.send(link, req);
    }

    /// `held` (our copy of `u`'s origin's addresses, if any) with `u` applied; `None` when `u` does
    /// not apply, after asking `link` for the full set instead.
    pub(super) fn next_mobile(
        &mut self,
        link: LinkId,
        held: Option<MobileState>,
        u: &MobileUpdate,
    ) -> Option<MobileState> {
        let mut next = held.unwrap_or_default();
        if apply_change(&mut next, u) {
            Some(next)
        } else {
            self.request_mobile(link, &u.id, u.instance, u.mobile_seq);
            None
        }
    }
}

/// True when `held` (our copy of `ra`'s origin's addresses, if any) is older than the origin
/// says it is: an interior's copy of another interior's set, or of an attached edge's.
pub(super) fn mobile_behind(held: Option<&MobileState>, ra: &RouterAdvert) -> bool {
    match held {
        None => ra.mobile_seq > 0,
        Some(m) => m.instance != ra.instance || m.seq < ra.mobile_seq,
    }
}

/// True when `held` already covers `u`: a copy of an update we applied, or an older one.
pub(super) fn mobile_current(held: Option<&MobileState>, u: &MobileUpdate) -> bool {
    held.is_some_and(|m| m.instance == u.instance && m.seq >= u.mobile_seq)
}

fn full_mau(origin: &RouterId, m: &MobileState) -> Message {
    Message::Mau(MobileUpdate {
        id: origin.clone(),
        instance: m.instance,
        mobile_seq: m.seq,
        change: MobileChange::Full(m.addrs.iter().cloned().collect()),
    })
}

/// Applies `u` to `state` (which holds the origin's set so far, or is empty). False when `u` is
/// a delta that does not follow what we hold (the caller asks for the full set), or would grow
/// the set past its bound.
pub(super) fn apply_change(state: &mut MobileState, u: &MobileUpdate) -> bool {
    match &u.change {
        MobileChange::Full(all) => {
            state.addrs = all.iter().cloned().collect();
        }
        MobileChange::Delta { since, add, del } => {
            let follows = state.instance == u.instance && state.seq == *since;
            // A router's first delta (since 0) applies to "nothing yet".
            let fresh = *since == 0 && state.addrs.is_empty();
            if !(follows || fresh) {
                return false;
            }
            for a in del {
                state.addrs.remove(a);
            }
            state.addrs.extend(add.iter().cloned());
            if state.addrs.len() > MAX_ADDRESSES {
                return false;
            }
        }
    }
    state.instance = u.instance;
    state.seq = u.mobile_seq;
    true
}
