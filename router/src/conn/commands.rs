//! What the connection does with each command from the core.

use shoal_amqp::{
    AmqpError, Attach, DeliveryState, Detach, Disposition, Performative, Role, Transfer,
    TRANSFER_OVERHEAD_MAX,
};

use super::engine::{Engine, PendingDisposition};
use super::session::{Blocked, InitiatedHandles, LinkEnd, LinkState, OurRole};
use crate::core::api::{AttachDetails, Command, DeliveryKey, Event, Msg};

impl Engine {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Attached {
                local,
                link,
                address,
            } => self.attached(local, link, address),
            Command::Refused { local, error } => self.refused(local, error),
            Command::Grant { local, credit } => {
                if let Some(l) = self.link_mut(local) {
                    l.link_credit = l.link_credit.saturating_add(credit);
                    if !l.flow_due {
                        l.flow_due = true;
                        self.flows_due.push(local);
                    }
                }
            }
            Command::Deliver {
                local,
                delivery,
                msg,
                more,
                address,
            } => self.deliver(local, delivery, msg, more, address.as_deref()),
            Command::DeliverMore {
                local,
                msg,
                more,
                aborted,
            } => self.deliver_more(local, msg, more, aborted),
            Command::Settle {
                local,
                delivery_id,
                state,
            } => self.settle(local, delivery_id, state),
            Command::RouteAttach {
                client,
                role,
                details,
            } => self.route_attach(client, role, *details),
            Command::Flow {
                local,
                seen,
                credit,
                drain,
            } => {
                let Some(l) = self.link_mut(local) else {
                    return;
                };
                // Transfers the core has not seen yet already used some of this credit.
                let in_flight = l.received.wrapping_sub(seen);
                l.link_credit = credit.saturating_sub(in_flight);
                l.drain = drain;
                if !l.flow_due {
                    l.flow_due = true;
                    self.flows_due.push(local);
                }
            }
            Command::Detach {
                local,
                error,
                closed,
            } => self.detach_link(local, error, closed),
            Command::Drained { local, limit } => {
                let Some(l) = self.link_mut(local) else {
                    return;
                };
                l.delivery_count = limit;
                l.link_credit = 0;
                l.drain = true;
                let channel = l.channel;
                self.session_flow(channel, Some(local));
                if let Some(l) = self.link_mut(local) {
                    l.drain = false;
                }
            }
        }
    }

    fn attached(&mut self, local: u64, core: crate::core::api::LinkKey, address: Option<String>) {
        let Some(link) = self.link_mut(local) else {
            // The peer's session ended meanwhile: the core must forget the link too.
            self.events.push(Event::Detach {
                link: core,
                error: None,
                closed: false,
            });
            return;
        };
        link.core = Some(core);
        let state = std::mem::replace(&mut link.state, LinkState::Attached);
        let LinkState::Attaching {
            mut reply,
            peer_detached,
        } = state
        else {
            // A link we opened (already attached on the wire): only the credit the peer gave meanwhile is news.
            let (role, limit, drain) = (link.role, link.limit, link.drain);
            if role == OurRole::Sender && (limit != 0 || drain) {
                self.events.push(Event::Credit {
                    link: core,
                    limit,
                    drain,
                });
            }
            return;
        };
        if let (Some(address), Some(source)) = (address, reply.source.as_mut()) {
            source.address = Some(address);
        }
        let (channel, role, limit, drain) = (link.channel, link.role, link.limit, link.drain);
        let handle = reply.handle;
        self.emit(channel, &Performative::Attach(*reply));
        if let Some(closed) = peer_detached {
            self.drop_link(local);
            self.emit(
                channel,
                &Performative::Detach(Detach {
                    handle,
                    closed,
                    error: None,
                }),
            );
            return;
        }
        if role == OurRole::Sender && (limit != 0 || drain) {
            // Credit the peer granted before the core knew the link.
            self.events.push(Event::Credit {
                link: core,
                limit,
                drain,
            });
        }
    }

    fn refused(&mut self, local: u64, error: AmqpError) {
        let Some(link) = self.link_mut(local) else {
            return;
        };
        let channel = link.channel;
        let state = std::mem::replace(&mut link.state, LinkState::Attached);
        if let LinkState::Attaching {
            reply,
            peer_detached,
        } = state
        {
            self.drop_link(local);
            self.send_refusal(channel, *reply, error, peer_detached.is_none());
        }
    }

    /// Open a link on this route container connection as the partner of a client's link.
    fn route_attach(
        &mut self,
        client: crate::core::api::LinkKey,
        role: Role,
        details: AttachDetails,
    ) {
        const CHANNEL: u16 = 0;
        let max_message_size = self.ctx.config.max_message_size;
        // Our handles in use on the session (links we opened, and mirrored ones of links the peer opened).
        let ours: std::collections::HashSet<u32> = self
            .links
            .iter()
            .filter(|(_, l)| l.channel == CHANNEL)
            .map(|(_, l)| l.handle)
            .collect();
        let refuse = |why: &str, condition: &str| Event::RouteAttached {
            client,
            local: 0,
            address: None,
            error: Some(AmqpError::new(condition, why)),
        };
        let Ok(session) = self.session(CHANNEL) else {
            let e = refuse(
                "the connection has no session",
                shoal_amqp::condition::INTERNAL_ERROR,
            );
            self.events.push(e);
            return;
        };
        let unused = |h: &u32| {
            !session.links.contains_key(h) && !session.detaching.contains(h) && !ours.contains(h)
        };
        let free = match session.initiated {
            InitiatedHandles::TopDown => (0..=session.handle_max).rev().find(unused),
            InitiatedHandles::Parity(p) => (p..=session.handle_max).step_by(2).find(unused),
        };
        let Some(handle) = free else {
            let e = refuse(
                "no free link handle on the connection",
                shoal_amqp::condition::RESOURCE_LIMIT_EXCEEDED,
            );
            self.events.push(e);
            return;
        };
        // Link names must be unique per connection; two clients may use the same one.
        let mut name = details.link_name.clone();
        let mut n = 1;
        while session.initiating.contains_key(&name) {
            n += 1;
            name = format!("{}~{n}", details.link_name);
        }
        // What a proxy sends carries the trace of routers it crossed (not the protocol's own control messages,
        // nor links routed to a broker: those pairs cannot loop, and a broker must store what the client sent).
        let trace = self.role.is_mesh()
            && role == Role::Sender
            && details.properties.as_ref().is_some_and(|p| {
                p.iter()
                    .any(|(k, _)| k.as_str() == crate::core::TRACE_PROPERTY)
            });
        self.link_generation = self.link_generation.wrapping_add(1);
        let entry = self.links.vacant_entry();
        let key = entry.key() as u64 | (u64::from(self.link_generation) << 32);
        let our_role = if role == Role::Sender {
            OurRole::Sender
        } else {
            OurRole::Receiver
        };
        entry.insert(LinkEnd {
            generation: self.link_generation,
            channel: CHANNEL,
            handle,
            role: our_role,
            state: LinkState::Initiating,
            core: None,
            delivery_count: 0,
            link_credit: 0,
            anonymous: false,
            presettle: false,
            max_message_size,
            partial: None,
            limit: 0,
            drain: false,
            flow_due: false,
            streaming: None,
            initiated_for: Some(client),
            peer_handle: None,
            received: 0,
            trace,
        });
        if let Ok(session) = self.session(CHANNEL) {
            session.initiating.insert(name.clone(), key);
        }
        let AttachDetails {
            source,
            target,
            snd_settle_mode,
            rcv_settle_mode,
            properties,
            ..
        } = details;
        let attach = Attach {
            name,
            handle,
            role,
            snd_settle_mode,
            rcv_settle_mode,
            source,
            target,
            initial_delivery_count: (role == Role::Sender).then_some(0),
            max_message_size: Some(max_message_size),
            properties,
            ..Default::default()
        };
        self.emit(CHANNEL, &Performative::Attach(attach));
    }

    /// One flow per receiving link whose credit changed in this batch.
    pub(super) fn send_due_flows(&mut self) {
        let due = std::mem::take(&mut self.flows_due);
        for key in &due {
            let Some(link) = self.link_mut(*key) else {
                continue;
            };
            link.flow_due = false;
            let channel = link.channel;
            self.session_flow(channel, Some(*key));
        }
        self.flows_due = due;
        self.flows_due.clear();
    }

    /// Settle a delivery the peer sent us. Consecutive ids with the same outcome go out as one ranged
    /// disposition (under load, one frame settles a whole batch).
    fn settle(&mut self, local: u64, delivery_id: u32, state: DeliveryState) {
        let Some(link) = self.link(local) else { return };
        let channel = link.channel;
        if let Some(p) = &mut self.pending_disposition {
            if p.channel == channel && p.last.wrapping_add(1) == delivery_id && p.state == state {
                p.last = delivery_id;
                return;
            }
        }
        self.flush_disposition();
        self.pending_disposition = Some(PendingDisposition {
            channel,
            first: delivery_id,
            last: delivery_id,
            state,
        });
    }

    pub(super) fn flush_disposition(&mut self) {
        let Some(p) = self.pending_disposition.take() else {
            return;
        };
        let disposition = Disposition {
            role: Role::Receiver,
            first: p.first,
            last: (p.last != p.first).then_some(p.last),
            settled: true,
            state: Some(p.state),
            batchable: false,
        };
        shoal_amqp::encode_frame(
            self.out.frames(),
            p.channel,
            &Performative::Disposition(disposition),
            &[],
        );
    }

    fn deliver(
        &mut self,
        local: u64,
        delivery: Option<DeliveryKey>,
        msg: Msg,
        more: bool,
        matched: Option<&str>,
    ) {
        let Some(link) = self.link(local) else {
            // The link went away after the core routed this to it: give it back.
            if let Some(delivery) = delivery {
                self.release_to_core(local, delivery);
            }
            return;
        };
        let (channel, presettle, trace) = (link.channel, link.presettle, link.trace);
        let Some(core) = link.core else { return };
        // On a proxy for another router's pattern subscribers, the copy also names the address it matched.
        let msg = if trace {
            self.traced(msg, matched)
        } else {
            msg
        };
        let Ok(session) = self.session(channel) else {
            return;
        };
        let delivery_id = session.next_delivery_id;
        session.next_delivery_id = delivery_id.wrapping_add(1);
        let settled = delivery.is_none() || presettle;
        if let Some(key) = delivery {
            if presettle {
                // The peer asked for at-most-once: what we send it is as good as accepted.
                self.events.push(Event::Outcome {
                    link: Some(core),
                    delivery: key,
                    state: DeliveryState::Accepted,
                });
            } else if let Ok(session) = self.session(channel) {
                session.track(delivery_id, local, key);
            }
        }
        if let Some(l) = self.link_mut(local) {
            l.delivery_count = l.delivery_count.wrapping_add(1);
            l.link_credit = l.link_credit.saturating_sub(1);
            l.streaming = more.then_some(delivery_id);
        }
        let part = Blocked {
            link: local,
            first: Some((delivery_id, settled)),
            delivery: if settled { None } else { delivery },
            msg: Some(msg),
            offset: 0,
            more,
            aborted: false,
        };
        self.write_part(channel, part);
    }

    /// The next part of a streamed delivery on a sending link.
    fn deliver_more(&mut self, local: u64, msg: Option<Msg>, more: bool, aborted: bool) {
        let Some(link) = self.link_mut(local) else {
            return;
        };
        let channel = link.channel;
        let Some(delivery_id) = link.streaming else {
            return;
        };
        if !more || aborted {
            link.streaming = None;
        }
        if aborted {
            // The core has forgotten it: so does the session.
            if let Ok(session) = self.session(channel) {
                session.settle(delivery_id);
            }
        }
        let part = Blocked {
            link: local,
            first: None,
            delivery: None,
            msg,
            offset: 0,
            more,
            aborted,
        };
        self.write_part(channel, part);
    }

    /// Write a part now, or queue it behind parts the peer's session window already holds back.
    fn write_part(&mut self, channel: u16, part: Blocked) {
        let Ok(session) = self.session(channel) else {
            return;
        };
        if session.blocked.is_empty() {
            if let Some(rest) = self.send_frames(channel, part) {
                if let Ok(session) = self.session(channel) {
                    session.blocked.push_back(rest);
                }
            }
        } else {
            session.blocked.push_back(part);
        }
    }

    /// A delivery for a link that is gone (the core routed it before it saw the detach): released.
    fn release_to_core(&mut self, _local: u64, delivery: DeliveryKey) {
        self.events.push(Event::Outcome {
            link: None,
            delivery,
            state: DeliveryState::Released,
        });
    }

    /// Write a part's frames while the peer's session window allows; returns what is left if it closed.
    /// Payloads are cut to the peer's max-frame-size; the last frame of a part says `more` when parts follow.
    fn send_frames(&mut self, channel: u16, mut d: Blocked) -> Option<Blocked> {
        let handle = self.link(d.link).map(|l| l.handle)?;
        let max_payload = (self.remote_max_frame as usize)
            .saturating_sub(TRANSFER_OVERHEAD_MAX)
            .max(1);
        let total = d.msg.as_ref().map_or(0, |m| m.chunks.len());
        if total == 0 && d.more && d.first.is_none() && !d.aborted {
            return None; // an empty middle part carries nothing
        }
        loop {
            let Ok(session) = self.session(channel) else {
                return None;
            };
            if session.remote_incoming_window == 0 {
                return Some(d);
            }
            session.remote_incoming_window -= 1;
            session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
            let first = d.offset == 0 && !d.aborted;
            let head = d.first.filter(|_| first);
            let n = if d.aborted {
                0
            } else {
                (total - d.offset).min(max_payload)
            };
            let last_of_part = d.aborted || d.offset + n >= total;
            let transfer = Transfer {
                handle,
                delivery_id: head.map(|(id, _)| id),
                delivery_tag: head.map(|(id, _)| self.tag(id)),
                message_format: head.map(|_| 0),
                settled: head.and_then(|(_, settled)| settled.then_some(true)),
                more: !d.aborted && (!last_of_part || d.more),
                aborted: d.aborted,
                ..Default::default()
            };
            let transfer = Performative::Transfer(transfer);
            tracing::trace!(target: "shoal::frames", conn = self.id, channel, performative = ?transfer, "->");
            shoal_amqp::encode_frame_header_for_payload(self.out.frames(), channel, &transfer, n);
            if let Some(msg) = d.msg.take() {
                self.write_payload(&msg, d.offset, n);
                d.msg = Some(msg);
            }
            d.offset += n;
            d.first = d.first.filter(|_| false);
            if last_of_part {
                return None;
            }
        }
    }

    /// A delivery tag (the delivery-id's bytes), cut from a shared arena so tags cost no allocation each.
    fn tag(&mut self, delivery_id: u32) -> bytes::Bytes {
        if self.tag_arena.capacity() < 4 {
            self.tag_arena.reserve(16 * 1024);
        }
        self.tag_arena.extend_from_slice(&delivery_id.to_be_bytes());
        self.tag_arena.split_to(4).freeze()
    }

    /// Append payload bytes [offset, offset + n) of a message, slicing its chunks without copying them.
    fn write_payload(&mut self, msg: &Msg, offset: usize, n: usize) {
        let mut skip = offset;
        let mut left = n;
        for chunk in msg.chunks.iter() {
            if left == 0 {
                break;
            }
            if skip >= chunk.len() {
                skip -= chunk.len();
                continue;
            }
            let take = (chunk.len() - skip).min(left);
            if skip == 0 && take == chunk.len() {
                self.out.payload(chunk);
            } else {
                self.out.payload(&chunk.slice(skip..skip + take));
            }
            skip = 0;
            left -= take;
        }
    }

    /// The peer opened its window: send what waited, in order.
    pub(super) fn unblock(&mut self, channel: u16) {
        loop {
            let Ok(session) = self.session(channel) else {
                return;
            };
            let Some(next) = session.blocked.pop_front() else {
                return;
            };
            if let Some(rest) = self.send_frames(channel, next) {
                if let Ok(session) = self.session(channel) {
                    session.blocked.push_front(rest);
                }
                return;
            }
        }
    }
}
