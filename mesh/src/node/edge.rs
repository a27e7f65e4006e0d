//! The interior side of edge routers: an attached edge reports its mobile addresses, and the
//! interior advertises them to the mesh as its own.

use super::flood::apply_change;
use super::{MobileState, Node, Output};
use crate::id::LinkId;
use crate::id::Mode;
use crate::message::{Message, MobileRequest, MobileUpdate, RouterAdvert};

impl Node {
    /// An attached edge's periodic advertisement: ask for its addresses if we missed a change.
    pub(super) fn on_edge_ra(&mut self, link: LinkId, ra: &RouterAdvert) {
        if self.config.mode != Mode::Interior {
            return;
        }
        let Some(peer) = self.links.get(&link).and_then(|l| l.peer.as_ref()) else {
            return;
        };
        if peer.id != ra.id {
            return;
        }
        let behind = match &peer.edge_mobile {
            None => ra.mobile_seq > 0,
            Some(m) => m.instance != ra.instance || m.seq < ra.mobile_seq,
        };
        if behind {
            let req = Message::Mar(MobileRequest {
                id: self.id.clone(),
                origin: ra.id.clone(),
                instance: ra.instance,
                mobile_seq: ra.mobile_seq,
            });
            self.send(link, req);
        }
    }

    pub(super) fn on_edge_mau(&mut self, link: LinkId, u: MobileUpdate) {
        let Some(peer) = self.links.get(&link).and_then(|l| l.peer.as_ref()) else {
            return;
        };
        if peer.id != u.id {
            // Edges only speak for themselves.
            return;
        }
        let old = peer.edge_mobile.clone().unwrap_or_default();
        if old.instance == u.instance && old.seq >= u.mobile_seq && peer.edge_mobile.is_some() {
            return;
        }
        let mut next = old.clone();
        if !apply_change(&mut next, &u) {
            let req = Message::Mar(MobileRequest {
                id: self.id.clone(),
                origin: u.id.clone(),
                instance: u.instance,
                mobile_seq: u.mobile_seq,
            });
            return self.send(link, req);
        }
        for a in next.addrs.difference(&old.addrs) {
            self.advertise(a);
        }
        for a in old.addrs.difference(&next.addrs) {
            self.withdraw(a);
        }
        let changed = next.addrs != old.addrs;
        if let Some(p) = self.links.get_mut(&link).and_then(|l| l.peer.as_mut()) {
            p.edge_mobile = Some(MobileState { ..next });
        }
        if changed {
            self.out.push_back(Output::AddressesChanged);
        }
    }
}
