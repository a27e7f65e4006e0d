//! The interior side of edge routers: an attached edge reports its mobile addresses, and the
//! interior advertises them to the mesh as its own.

use super::flood::{mobile_behind, mobile_current};
use super::{Node, Output};
use crate::id::LinkId;
use crate::id::Mode;
use crate::message::{MobileUpdate, RouterAdvert};

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
        if mobile_behind(peer.edge_mobile.as_ref(), ra) {
            self.request_mobile(link, &ra.id, ra.instance, ra.mobile_seq);
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
        if mobile_current(peer.edge_mobile.as_ref(), &u) {
            return;
        }
        let held = peer.edge_mobile.clone();
        let Some(next) = self.next_mobile(link, held.clone(), &u) else {
            return;
        };
        let old = held.unwrap_or_default();
        for a in next.addrs.difference(&old.addrs) {
            self.advertise(a);
        }
        for a in old.addrs.difference(&next.addrs) {
            self.withdraw(a);
        }
        let changed = next.addrs != old.addrs;
        if let Some(p) = self.links.get_mut(&link).and_then(|l| l.peer.as_mut()) {
            p.edge_mobile = Some(next);
        }
        if changed {
            self.out.push_back(Output::AddressesChanged);
        }
    }
}
