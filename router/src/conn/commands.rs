//! What the connection does with each command from the core.

use shoal_amqp::{
    AmqpError, DeliveryState, Detach, Disposition, Performative, Role, Transfer, TRANSFER_OVERHEAD_MAX,
};

use super::engine::{Engine, PendingDisposition};
use super::session::{Blocked, LinkState, OurRole};
use crate::core::api::{Command, DeliveryKey, Event, Msg};

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
            } => self.deliver(local, delivery, msg),
            Command::Settle {
                local,
                delivery_id,
                state,
            } => self.settle(local, delivery_id, state),
            Command::Drained { local, limit } => {
                let Some(l) = self.link_mut(local) else { return };
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
            self.events.push(Event::Detach { link: core });
            return;
        };
        link.core = Some(core);
        let state = std::mem::replace(&mut link.state, LinkState::Attached);
        let LinkState::Attaching {
            mut reply,
            peer_detached,
        } = state
        else {
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
        let Some(link) = self.link_mut(local) else { return };
        let channel = link.channel;
        let state = std::mem::replace(&mut link.state, LinkState::Attached);
        if let LinkState::Attaching {
            mut reply,
            peer_detached: state_peer_detached,
        } = state
        {
            // A refusal is an attach with no terminus on our side, then a detach carrying the reason.
            match reply.role {
                Role::Receiver => reply.target = None,
                Role::Sender => reply.source = None,
            }
            let handle = reply.handle;
            let peer_detached = matches!(state_peer_detached, Some(_));
            self.emit(channel, &Performative::Attach(*reply));
            self.drop_link(local);
            if !peer_detached {
                if let Ok(session) = self.session(channel) {
                    session.detaching.insert(handle);
                }
            }
            self.emit(
                channel,
                &Performative::Detach(Detach {
                    handle,
                    closed: true,
                    error: Some(error),
                }),
            );
        }
    }

    /// One flow per receiving link whose credit changed in this batch.
    pub(super) fn send_due_flows(&mut self) {
        let due = std::mem::take(&mut self.flows_due);
        for key in &due {
            let Some(link) = self.link_mut(*key) else { continue };
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
        shoal_amqp::encode_frame(self.out.frames(), p.channel, &Performative::Disposition(disposition), &[]);
    }

    fn deliver(&mut self, local: u64, delivery: Option<DeliveryKey>, msg: Msg) {
        let Some(link) = self.link(local) else {
            // The link went away after the core routed this to it: give it back.
            if let Some(delivery) = delivery {
                self.release_to_core(local, delivery);
            }
            return;
        };
        let (channel, presettle) = (link.channel, link.presettle);
        let Some(core) = link.core else { return };
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
        }
        let blocked = Blocked {
            link: local,
            delivery: if settled { None } else { delivery },
            delivery_id,
            settled,
            msg,
            offset: 0,
        };
        let Ok(session) = self.session(channel) else { return };
        if session.blocked.is_empty() {
            if let Some(rest) = self.send_frames(channel, blocked) {
                if let Ok(session) = self.session(channel) {
                    session.blocked.push_back(rest);
                }
            }
        } else {
            session.blocked.push_back(blocked);
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

    /// Write a delivery's frames while the peer's session window allows; returns what is left if it closed.
    fn send_frames(&mut self, channel: u16, mut d: Blocked) -> Option<Blocked> {
        let handle = self.link(d.link).map(|l| l.handle)?;
        let max_payload = (self.remote_max_frame as usize).saturating_sub(TRANSFER_OVERHEAD_MAX).max(1);
        let total = d.msg.chunks.len();
        loop {
            let Ok(session) = self.session(channel) else { return None };
            if session.remote_incoming_window == 0 {
                return Some(d);
            }
            session.remote_incoming_window -= 1;
            session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
            let first = d.offset == 0;
            let n = (total - d.offset).min(max_payload);
            let more = d.offset + n < total;
            let transfer = Transfer {
                handle,
                delivery_id: first.then_some(d.delivery_id),
                delivery_tag: first.then(|| self.tag(d.delivery_id)),
                message_format: first.then_some(0),
                settled: (first && d.settled).then_some(true),
                more,
                ..Default::default()
            };
            shoal_amqp::encode_frame_header_for_payload(
                self.out.frames(),
                channel,
                &Performative::Transfer(transfer),
                n,
            );
            self.write_payload(&d.msg, d.offset, n);
            d.offset += n;
            if !more {
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
            let Ok(session) = self.session(channel) else { return };
            let Some(next) = session.blocked.pop_front() else { return };
            if let Some(rest) = self.send_frames(channel, next) {
                if let Ok(session) = self.session(channel) {
                    session.blocked.push_front(rest);
                }
                return;
            }
        }
    }
}
