//! Routing decisions: where a delivery goes, when senders get credit, how outcomes travel back.

use std::sync::Arc;

use shoal_amqp::{condition, AmqpError, DeliveryState};

use super::api::{Command, DeliveryKey, LinkKey, Msg};
use super::streaming::Stream;
use super::{AddrId, Core, Delivery, LinkKind, Pending};
use crate::config::Distribution;

/// The outcome of an unsettled delivery so far, across its copies.
#[derive(Debug, Default)]
pub(super) struct Aggregate {
    accepted: bool,
    rejected: Option<DeliveryState>,
    /// An anycast delivery forwards its receiver's outcome as it is (modified keeps its fields).
    other: Option<DeliveryState>,
}

impl Aggregate {
    fn add(&mut self, state: DeliveryState) {
        match state {
            DeliveryState::Accepted => self.accepted = true,
            DeliveryState::Rejected { .. } => {
                self.rejected.get_or_insert(state);
            }
            _ => {
                self.other.get_or_insert(state);
            }
        }
    }

    /// Accepted if any copy was accepted and none rejected; rejected if any was; otherwise what the one receiver
    /// said (released or modified), or released when nobody received it.
    fn result(self, copies: u32) -> DeliveryState {
        if let Some(rejected) = self.rejected {
            return rejected;
        }
        if self.accepted {
            return DeliveryState::Accepted;
        }
        match (copies, self.other) {
            (1, Some(state)) => state,
            _ => DeliveryState::Released,
        }
    }
}

impl Core {
    pub(super) fn transfer(
        &mut self,
        from: LinkKey,
        delivery_id: u32,
        settled: bool,
        to: Option<String>,
        msg: Msg,
        more: bool,
    ) {
        if self
            .link(from)
            .is_some_and(|l| l.mesh == Some(super::mesh::MeshLink::ControlIn))
        {
            return self.control_message(from, msg, more);
        }
        let Some(link) = self.link_mut(from) else {
            return;
        };
        let conn = link.conn;
        let local = link.local;
        let link_addr = link.addr;
        let routed = link.routed;
        if let LinkKind::Incoming {
            credit,
            in_router,
            seen,
            ..
        } = &mut link.kind
        {
            *credit = credit.saturating_sub(1);
            *in_router += 1;
            *seen = seen.wrapping_add(1);
        }
        if routed.is_some() {
            return self.routed_transfer(from, delivery_id, settled, msg, more);
        }
        let addr = match (link_addr, to) {
            (Some(id), _) => id,
            (None, Some(to)) => self.address_id(&to),
            (None, None) => {
                // Anonymous relay needs a `to`; without one there is nowhere to go.
                if !settled {
                    let error = AmqpError::new(
                        condition::PRECONDITION_FAILED,
                        "a message on an anonymous link needs a `to` address",
                    );
                    self.send(
                        conn,
                        Command::Settle {
                            local,
                            delivery_id,
                            state: DeliveryState::Rejected { error: Some(error) },
                        },
                    );
                }
                self.slot_returned(from);
                if more {
                    self.set_open(from, Stream::Discard);
                }
                return;
            }
        };
        self.addresses[addr].stats.deliveries_in += 1;
        let trace = self.trace_of(conn, &msg);
        let delivery = (!settled).then(|| self.new_delivery(from, delivery_id, addr, 0));
        let a = &self.addresses[addr];
        let fan_out = a.distribution == Distribution::Multicast || !a.pattern_consumers.is_empty();
        if !fan_out {
            let pending = Pending {
                msg,
                delivery,
                from: settled.then_some(from),
                open: more.then_some(from),
                trace,
                matched: None,
            };
            return self.anycast(addr, pending);
        }
        if more {
            // A message with copies (multicast, pattern subscribers) is collected whole before it fans out
            // (copies of a half-arrived message would pin every receiver's link to this sender's pace).
            let pending = Pending {
                msg,
                delivery,
                from: None,
                open: None,
                trace,
                matched: None,
            };
            self.set_open(from, Stream::Collecting { addr, pending });
        } else {
            self.multicast(addr, from, msg, delivery, trace);
        }
    }

    /// Track an unsettled delivery from `from` until its `outstanding` copies have outcomes.
    pub(super) fn new_delivery(
        &mut self,
        from: LinkKey,
        delivery_id: u32,
        addr: AddrId,
        outstanding: u32,
    ) -> DeliveryKey {
        let generation = self.next_generation();
        let index = self.deliveries.insert(Delivery {
            generation,
            from,
            delivery_id,
            addr,
            outstanding,
            fanout: false,
            outcome: Aggregate::default(),
        });
        DeliveryKey {
            index: index as u32,
            generation,
        }
    }

    fn anycast(&mut self, addr: AddrId, pending: Pending) {
        if let Some(d) = pending.delivery {
            self.deliveries[d.index as usize].outstanding = 1;
        }
        self.anycast_copy(addr, pending);
    }

    /// Route one copy to one of the address's receivers (the delivery's `outstanding` already counts it).
    fn anycast_copy(&mut self, addr: AddrId, pending: Pending) {
        let trace = &pending.trace;
        let reachable = self.addresses[addr]
            .consumers
            .iter()
            .any(|c| !self.excluded(*c, trace));
        if !reachable {
            // No consumer, or only ones back towards routers the message crossed.
            self.unrouted(addr, pending);
            return;
        }
        match self.pick_consumer(addr, &pending.trace) {
            Some(to) => self.deliver(addr, to, pending),
            // Consumers exist but none has credit: wait in the address's queue, bounded by the senders' credit.
            None => {
                if let Some(link) = pending.open {
                    self.set_open(link, Stream::Queued { addr });
                }
                self.addresses[addr].queue.push_back(pending);
            }
        }
    }

    /// Balanced: fewest unsettled among receivers with credit; closest (all receivers are local on one router):
    /// round robin among receivers with credit. Ties rotate so load spreads.
    fn pick_consumer(&mut self, addr: AddrId, trace: &super::mesh::Trace) -> Option<LinkKey> {
        let a = &self.addresses[addr];
        let n = a.consumers.len();
        let mut best: Option<(u32, usize)> = None;
        for i in 0..n {
            let slot = (a.next + i) % n;
            let key = a.consumers[slot];
            let Some(LinkKind::Outgoing(out)) = self.link(key).map(|l| &l.kind) else {
                continue;
            };
            if out.available() == 0 || out.busy || !out.backlog.is_empty() {
                continue;
            }
            if self.excluded(key, trace) {
                continue;
            }
            let score = match a.distribution {
                Distribution::Balanced => out.unsettled,
                // Local consumers first, then the cheapest path through the mesh.
                _ => self.closeness(key),
            };
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, slot));
                if score == 0 {
                    break;
                }
            }
        }
        let (_, slot) = best?;
        let a = &mut self.addresses[addr];
        a.next = (slot + 1) % n;
        Some(a.consumers[slot])
    }

    /// Copies to every receiver of a multicast address, and to every pattern subscriber of any address; an
    /// anycast address with pattern subscribers also sends one copy to one of its own receivers.
    pub(super) fn multicast(
        &mut self,
        addr: AddrId,
        from: LinkKey,
        msg: Msg,
        delivery: Option<DeliveryKey>,
        trace: super::mesh::Trace,
    ) {
        if self.addresses[addr].pattern {
            // Copies another router sent for our subscribers of one pattern.
            return self.pattern_copies(addr, from, msg, delivery, trace);
        }
        let a = &self.addresses[addr];
        let mut consumers = a.pattern_consumers.clone();
        let anycast_share = a.distribution != Distribution::Multicast && !a.consumers.is_empty();
        if self.mesh.is_some() {
            consumers = self.pattern_targets(consumers, &trace);
        }
        if !anycast_share {
            let mut regular = self.addresses[addr].consumers.clone();
            if self.mesh.is_some() && regular.iter().any(|c| self.is_proxy(*c)) {
                // Copies to other routers only down the multicast tree, never back.
                let conns = self.multicast_conns(addr, &trace);
                regular.retain(|c| self.multicast_to(*c, &trace, &conns));
            }
            consumers.extend(regular);
        }
        // An edge does not know the interior's consumers: a local anonymous sender's message that no receiver
        // here takes an anycast share of (multicast, or only pattern subscribers here) also goes up once, as
        // it would with no subscriber here at all; the interior routes it by `to`, never back to us.
        let up = !anycast_share && !consumers.is_empty() && self.goes_up_too(from, &trace);
        if anycast_share || up {
            if let Some(d) = delivery {
                let d = &mut self.deliveries[d.index as usize];
                d.outstanding = consumers.len() as u32 + 1;
                d.fanout = true;
            }
            let pending = Pending {
                msg: msg.share(),
                delivery,
                from: None,
                open: None,
                trace: trace.clone(),
                matched: None,
            };
            if anycast_share {
                self.anycast_copy(addr, pending);
            } else if let Err(unsent) = self.push_up(addr, pending) {
                if let Some(d) = unsent.delivery {
                    self.copy_outcome(d, DeliveryState::Released);
                }
            }
        }
        let shared = anycast_share || up;
        if consumers.is_empty() {
            if shared {
                self.slot_returned_if(delivery.is_none(), from);
                return;
            }
            let pending = Pending {
                msg,
                delivery,
                from: delivery.is_none().then_some(from),
                open: None,
                trace,
                matched: None,
            };
            self.unrouted(addr, pending);
            return;
        }
        if let (Some(d), false) = (delivery, shared) {
            let d = &mut self.deliveries[d.index as usize];
            d.outstanding = consumers.len() as u32;
            d.fanout = true;
        }
        self.copy_to(addr, consumers, msg, delivery, from);
    }

    /// One copy of a message to `addr` for each of `consumers` (not empty; the delivery's `outstanding`
    /// already counts them), waiting in a receiver's backlog while it has no credit.
    pub(super) fn copy_to(
        &mut self,
        addr: AddrId,
        consumers: Vec<LinkKey>,
        msg: Msg,
        delivery: Option<DeliveryKey>,
        from: LinkKey,
    ) {
        let capacity = self.config.link_capacity as usize;
        let last = consumers.len() - 1;
        let mut msg = Some(msg);
        for (i, to) in consumers.into_iter().enumerate() {
            let copy = if i == last {
                msg.take().expect("the last consumer takes the original")
            } else {
                msg.as_ref()
                    .expect("original kept until the last consumer")
                    .share()
            };
            let mut pending = Pending {
                msg: copy,
                delivery,
                from: None,
                open: None,
                trace: None,
                matched: None,
            };
            let Some(LinkKind::Outgoing(out)) = self.link_mut(to).map(|l| &mut l.kind) else {
                continue;
            };
            if out.available() > 0 && !out.busy && out.backlog.is_empty() {
                self.deliver(addr, to, pending);
            } else if delivery.is_some() || out.backlog.len() < capacity {
                // Unsettled copies are bounded by the senders' credit; presettled ones by the capacity. A
                // pattern subscriber's copy keeps the address it matched (its link is the pattern's).
                if self
                    .link(to)
                    .and_then(|l| l.addr)
                    .is_some_and(|a| self.addresses[a].pattern)
                {
                    pending.matched = Some(Arc::new(self.addresses[addr].name.clone()));
                }
                let Some(LinkKind::Outgoing(out)) = self.link_mut(to).map(|l| &mut l.kind) else {
                    continue;
                };
                out.backlog.push_back(pending);
            } else {
                // A presettled copy for a receiver this far behind is dropped rather than grow memory.
                self.addresses[addr].stats.dropped += 1;
            }
        }
        self.slot_returned_if(delivery.is_none(), from);
    }

    pub(super) fn slot_returned_if(&mut self, cond: bool, link: LinkKey) {
        if cond {
            self.slot_returned(link);
        }
    }

    /// Hand a message to a receiver link that has credit.
    pub(super) fn deliver(&mut self, addr: AddrId, to: LinkKey, pending: Pending) {
        let Some(link) = self.link_mut(to) else {
            self.unrouted(addr, pending);
            return;
        };
        let (conn, local, link_addr) = (link.conn, link.local, link.addr);
        let more = pending.open.is_some();
        if let LinkKind::Outgoing(out) = &mut link.kind {
            out.sent = out.sent.wrapping_add(1);
            out.busy = more;
            if pending.delivery.is_some() {
                out.unsettled += 1;
            }
        }
        self.addresses[addr].stats.deliveries_out += 1;
        if let Some(from) = pending.from {
            self.slot_returned(from);
        }
        if let Some(stream_from) = pending.open {
            let stream = Stream::Sent {
                to: vec![to],
                delivery: pending.delivery,
            };
            self.set_open(stream_from, stream);
        }
        let mut msg = pending.msg;
        msg.charge.activate();
        // A pattern subscriber is told which address matched (a message on a named link may carry no `to`).
        let address = pending.matched.map(|m| Arc::from(m.as_str())).or_else(|| {
            link_addr
                .filter(|a| self.addresses.get(*a).is_some_and(|a| a.pattern))
                .map(|_| Arc::from(self.addresses[addr].name.as_str()))
        });
        self.send(
            conn,
            Command::Deliver {
                local,
                delivery: pending.delivery,
                msg,
                more,
                address,
            },
        );
    }

    /// A message that cannot go anywhere: unsettled ones are released to their sender, presettled ones dropped.
    /// On an edge, a local anonymous sender's message goes up to the interior instead.
    pub(super) fn unrouted(&mut self, addr: AddrId, pending: Pending) {
        self.unrouted_keeping(addr, pending);
        self.forget_if_idle(addr);
    }

    /// [`Core::unrouted`] without forgetting the address: for callers going through a list of its messages,
    /// which must not see it vanish under them (a pattern's or a dynamic address's entry goes as soon as it
    /// is idle).
    pub(super) fn unrouted_keeping(&mut self, addr: AddrId, pending: Pending) {
        let Err(pending) = self.send_up(addr, pending) else {
            return;
        };
        if let Some(from) = pending.from {
            self.slot_returned(from);
        }
        if let Some(link) = pending.open {
            // The rest of it has nowhere to go either.
            self.set_open(link, Stream::Discard);
        }
        match pending.delivery {
            Some(d) => self.copy_outcome(d, DeliveryState::Released),
            None => self.addresses[addr].stats.dropped += 1,
        }
    }

    /// A receiver's flow: new credit, maybe drain.
    pub(super) fn credit(&mut self, key: LinkKey, limit: u32, drain: bool) {
        let Some(link) = self.link_mut(key) else {
            return;
        };
        let routed = link.routed;
        let LinkKind::Outgoing(out) = &mut link.kind else {
            return;
        };
        out.limit = limit;
        out.drain = drain;
        if routed.is_some() {
            return self.routed_credit(key);
        }
        match self.link(key).and_then(|l| l.mesh) {
            Some(super::mesh::MeshLink::ControlOut { .. }) => {
                let conn = self.link(key).map(|l| l.conn).unwrap_or_default();
                return self.flush_control(conn);
            }
            Some(super::mesh::MeshLink::Uplink { .. }) => return self.pump_uplink(key),
            _ => {}
        }
        self.pump(key);
    }

    /// Send a receiver what is waiting for it, as far as its credit goes; answer a drain when nothing is left.
    pub(super) fn pump(&mut self, key: LinkKey) {
        let Some(link) = self.link_mut(key) else {
            return;
        };
        let (conn, local, addr) = (link.conn, link.local, link.addr);
        let Some(addr) = addr else { return };
        loop {
            let Some(LinkKind::Outgoing(out)) = self.link_mut(key).map(|l| &mut l.kind) else {
                return;
            };
            if out.available() == 0 || out.busy {
                break;
            }
            let next = match out.backlog.pop_front() {
                Some(p) => p,
                None => match self.next_queued(addr, key) {
                    Some(p) => p,
                    None => break,
                },
            };
            self.deliver(addr, key, next);
        }
        let Some(LinkKind::Outgoing(out)) = self.link_mut(key).map(|l| &mut l.kind) else {
            return;
        };
        if out.drain && out.available() > 0 && !out.busy {
            out.sent = out.limit;
            out.drain = false;
            let limit = out.limit;
            self.send(conn, Command::Drained { local, limit });
        }
    }

    /// The first queued delivery of `addr` that may go to `key` (a proxy never takes one that came from
    /// the router it leads to).
    fn next_queued(&mut self, addr: AddrId, key: LinkKey) -> Option<Pending> {
        let queue = &self.addresses[addr].queue;
        if !self.is_proxy(key) {
            return self.addresses[addr].queue.pop_front();
        }
        let i = queue.iter().position(|p| !self.excluded(key, &p.trace))?;
        self.addresses[addr].queue.remove(i)
    }

    /// Queued deliveries whose only consumers left lead back to routers they crossed: released, not stuck.
    pub(super) fn release_unreachable(&mut self, addr: AddrId) {
        let a = &self.addresses[addr];
        if a.queue.iter().all(|p| p.trace.is_none()) {
            return;
        }
        let consumers = a.consumers.clone();
        let queue = std::mem::take(&mut self.addresses[addr].queue);
        for pending in queue {
            if consumers.iter().any(|c| !self.excluded(*c, &pending.trace)) {
                self.addresses[addr].queue.push_back(pending);
            } else {
                self.unrouted_keeping(addr, pending);
            }
        }
    }

    pub(super) fn is_proxy(&self, key: LinkKey) -> bool {
        matches!(
            self.link(key).and_then(|l| l.mesh),
            Some(super::mesh::MeshLink::Proxy { .. })
        )
    }

    /// A receiver settled (or gave an outcome for) a delivery the router sent it.
    pub(super) fn outcome(
        &mut self,
        from: Option<LinkKey>,
        delivery: DeliveryKey,
        state: DeliveryState,
    ) {
        if let Some(LinkKind::Outgoing(out)) =
            from.and_then(|f| self.link_mut(f)).map(|l| &mut l.kind)
        {
            out.unsettled = out.unsettled.saturating_sub(1);
            if out.unsettled == 0 {
                if let Some(f) = from {
                    self.proxy_settled(f);
                }
            }
        }
        if matches!(state, DeliveryState::Released) {
            if let Some(d) = self.delivery(delivery) {
                let addr = d.addr;
                self.addresses[addr].stats.released += 1;
            }
        }
        self.copy_outcome(delivery, state);
    }

    pub(super) fn delivery(&self, key: DeliveryKey) -> Option<&Delivery> {
        self.deliveries
            .get(key.index as usize)
            .filter(|d| d.generation == key.generation)
    }

    /// One copy of an unsettled delivery has its outcome; when it was the last, settle with the sender.
    pub(super) fn copy_outcome(&mut self, key: DeliveryKey, state: DeliveryState) {
        let Some(d) = self
            .deliveries
            .get_mut(key.index as usize)
            .filter(|d| d.generation == key.generation)
        else {
            return;
        };
        d.outcome.add(state);
        d.outstanding = d.outstanding.saturating_sub(1);
        if d.outstanding > 0 {
            return;
        }
        let d = self.deliveries.remove(key.index as usize);
        let copies = if d.fanout { u32::MAX } else { 1 };
        let state = d.outcome.result(copies);
        if let Some(link) = self.link(d.from) {
            let (conn, local) = (link.conn, link.local);
            self.send(
                conn,
                Command::Settle {
                    local,
                    delivery_id: d.delivery_id,
                    state,
                },
            );
        }
        self.slot_returned(d.from);
    }

    /// A delivery from `link` no longer occupies the router: the sender may have that credit back.
    pub(super) fn slot_returned(&mut self, link: LinkKey) {
        if let Some(LinkKind::Incoming { in_router, .. }) = self.link_mut(link).map(|l| &mut l.kind)
        {
            *in_router = in_router.saturating_sub(1);
            self.replenish(link);
        }
    }

    /// The address lost its last consumer: its senders' unused credit is taken back (a flow with credit 0;
    /// "no consumer, no credit" both ways, ADR 0003), so a client, or an upstream router's proxy, stops
    /// sending as soon as nothing can take it instead of sending into releases. What was already on the
    /// wire is released (dropped and counted, if presettled).
    pub(super) fn revoke_credit(&mut self, addr: AddrId) {
        let producers = self.addresses[addr].producers.clone();
        for p in producers {
            let Some(link) = self.link_mut(p) else {
                continue;
            };
            if link.routed.is_some() {
                continue;
            }
            let (conn, local) = (link.conn, link.local);
            let LinkKind::Incoming { credit, seen, .. } = &mut link.kind else {
                continue;
            };
            if *credit == 0 {
                continue;
            }
            *credit = 0;
            let seen = *seen;
            self.send(
                conn,
                Command::Flow {
                    local,
                    seen,
                    credit: 0,
                    drain: false,
                },
            );
        }
    }

    /// Top a sender's credit up to the link capacity, if its address has somewhere to send to.
    pub(super) fn replenish(&mut self, key: LinkKey) {
        let capacity = self.config.link_capacity;
        let Some(link) = self.link(key) else { return };
        if link.routed.is_some() {
            // A routed link's credit is its partner's, passed on in `routed_credit`.
            return;
        }
        let routable = match link.addr {
            Some(id) => self.addresses[id].routable(),
            None => true,
        };
        if !routable {
            return;
        }
        let (conn, local) = (link.conn, link.local);
        let Some(LinkKind::Incoming {
            credit, in_router, ..
        }) = self.link_mut(key).map(|l| &mut l.kind)
        else {
            return;
        };
        let free = capacity.saturating_sub(*credit + *in_router);
        // Top up in steps of at least a tenth of the capacity, so a busy link costs one flow per several messages.
        if free == 0 || (free < capacity / 10 && *credit > 0) {
            return;
        }
        *credit += free;
        self.send(
            conn,
            Command::Grant {
                local,
                credit: free,
            },
        );
    }
}
