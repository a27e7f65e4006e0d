//! An edge's uplink: how messages from the edge's *anonymous* senders reach consumers elsewhere in the mesh.
//!
//! A named sender on an edge makes its address go up as a proxy link (`proxies.rs`), but an anonymous sender
//! names its address per message, so the edge cannot open a proxy ahead of time. Instead each connection
//! from an edge to an interior carries one anonymous sender (like Qpid Dispatch's edge uplink). A message
//! from a local anonymous sender whose address has no consumer on the edge goes up on it; the interior
//! routes it by its `to` and its outcome comes back the same way as any other delivery's. An interior
//! that cannot route it either releases it (or drops and counts it, if presettled), so the sender hears
//! the same thing it would on a single router.
//!
//! A message that fans out on the edge (pattern subscribers, such as the MQTT gateway's, or a multicast
//! address) with no local receiver taking an anycast share goes up as well, once: the edge cannot know
//! whether the mesh has consumers for it, and a local `#` subscriber must not keep the mesh's from it.

use super::super::api::ConnId;
use super::super::{AddrId, Core, LinkKind, Pending};
use super::{LinkKey, MeshLink};
use shoal_mesh::Mode;

impl Core {
    /// Send `pending` (a message with nowhere to go on this router) up to the interior, if this is an
    /// edge, the message came from a local anonymous sender, and an uplink is attached. Gives the message
    /// back if it cannot go up.
    pub(in crate::core) fn send_up(
        &mut self,
        addr: AddrId,
        pending: Pending,
    ) -> Result<(), Pending> {
        if pending.trace.is_some() || !self.sent_anonymously(&pending) {
            return Err(pending);
        }
        self.push_up(addr, pending)
    }

    /// Whether a message from `from` that fans out here also goes up (see `Core::multicast`): on an edge with
    /// an uplink, from a local anonymous sender.
    pub(in crate::core) fn goes_up_too(&self, from: LinkKey, trace: &super::Trace) -> bool {
        trace.is_none() && self.uplink_conn().is_some() && self.is_anonymous_sender(from)
    }

    /// Send `pending` up the uplink, or queue it for the uplink's credit (the caller checked it may go up).
    pub(in crate::core) fn push_up(
        &mut self,
        addr: AddrId,
        pending: Pending,
    ) -> Result<(), Pending> {
        let Some(conn) = self.uplink_conn() else {
            return Err(pending);
        };
        let Some(n) = self.mesh.as_ref().and_then(|m| m.neighbours.get(&conn)) else {
            return Err(pending);
        };
        let Some(key) = n.uplink else {
            return Err(pending);
        };
        let queued = n.uplink_queue.len();
        let ready = queued == 0
            && matches!(
                self.link(key).map(|l| &l.kind),
                Some(LinkKind::Outgoing(out)) if out.available() > 0 && !out.busy
            );
        if ready {
            self.deliver(addr, key, pending);
            return Ok(());
        }
        if pending.open.is_some() {
            // A message still arriving cannot wait in this queue (its later parts follow the first part's
            // route): released, as when a router has no credit to offer.
            return Err(pending);
        }
        if pending.delivery.is_none() && queued >= self.config.link_capacity as usize {
            // A presettled message this far behind is dropped rather than grow memory.
            self.addresses[addr].stats.dropped += 1;
            if let Some(from) = pending.from {
                self.slot_returned(from);
            }
            return Ok(());
        }
        // Unsettled messages here are bounded by their senders' credit.
        let name = self.addresses[addr].name.clone();
        if let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            n.uplink_queue.push_back((name, pending));
        }
        Ok(())
    }

    /// The uplink has credit: send what waits for it.
    pub(in crate::core) fn pump_uplink(&mut self, key: LinkKey) {
        let Some(conn) = self.link(key).map(|l| l.conn) else {
            return;
        };
        loop {
            let ready = matches!(
                self.link(key).map(|l| &l.kind),
                Some(LinkKind::Outgoing(out)) if out.available() > 0 && !out.busy
            );
            if !ready {
                return;
            }
            let next = self
                .mesh
                .as_mut()
                .and_then(|m| m.neighbours.get_mut(&conn))
                .and_then(|n| n.uplink_queue.pop_front());
            let Some((name, pending)) = next else {
                return;
            };
            let addr = self.address_id(&name);
            self.deliver(addr, key, pending);
        }
    }

    /// The interior refused the uplink: messages waiting for it go back to their senders.
    pub(in crate::core) fn uplink_lost(&mut self, conn: ConnId, key: LinkKey) {
        let queue = match self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            Some(n) => {
                n.uplink = None;
                std::mem::take(&mut n.uplink_queue)
            }
            None => Default::default(),
        };
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.retain(|l| *l != key);
        }
        self.detach_with(key, None, false);
        for (name, pending) in queue {
            let addr = self.address_id(&name);
            self.unrouted(addr, pending);
        }
    }

    /// The connection of this edge's current uplink (`None` on an interior or a detached edge).
    fn uplink_conn(&self) -> Option<ConnId> {
        let m = self.mesh.as_ref()?;
        if m.node.mode() != Mode::Edge {
            return None;
        }
        let conn = m.node.uplink()?.0;
        let n = m.neighbours.get(&conn)?;
        let attached = n
            .uplink
            .and_then(|k| self.link(k))
            .is_some_and(|l| l.mesh == Some(MeshLink::Uplink { attached: true }));
        attached.then_some(conn)
    }

    /// Whether a message came from an anonymous sender (so it carries its `to`, which the interior routes by).
    fn sent_anonymously(&self, pending: &Pending) -> bool {
        let from = match pending.delivery {
            Some(d) => self.delivery(d).map(|d| d.from),
            None => pending.from,
        };
        from.is_some_and(|f| self.is_anonymous_sender(f))
    }

    fn is_anonymous_sender(&self, link: LinkKey) -> bool {
        self.link(link)
            .is_some_and(|l| l.addr.is_none() && matches!(l.kind, LinkKind::Incoming { .. }))
    }
}
