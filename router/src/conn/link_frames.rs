//! Link frames from the peer: attach, detach and flow, and refusing a link.

use shoal_amqp::{
    condition, AmqpError, Attach, DeliveryState, Detach, Flow, Performative, ReceiverSettleMode,
    Role, SenderSettleMode,
};

use super::engine::{ConnError, ConnResult, Engine};
use super::session::{LinkEnd, LinkState, OurRole};
use crate::core::api::{AttachDetails, AttachRequest, Event};

impl Engine {
    pub(super) fn on_attach(&mut self, channel: u16, attach: Attach) -> ConnResult {
        let session = self.session(channel)?;
        if session.ending {
            return Ok(());
        }
        if let Some(key) = session.initiating.remove(&attach.name) {
            self.initiated_answered(channel, key, attach);
            return Ok(());
        }
        if attach.handle > session.handle_max {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                format!(
                    "handle {} exceeds handle-max {}",
                    attach.handle, session.handle_max
                ),
            ));
        }
        if session.links.contains_key(&attach.handle) {
            self.end_session(
                channel,
                AmqpError::new(
                    condition::SESSION_HANDLE_IN_USE,
                    format!("handle {} is already attached", attach.handle),
                ),
            );
            return Ok(());
        }
        if attach.role == Role::Sender && attach.target.as_ref().is_some_and(|t| t.coordinator) {
            // Transactions: not offered. Refuse the link, keep the connection.
            let error =
                AmqpError::new(condition::NOT_IMPLEMENTED, "transactions are not supported");
            self.refuse_attach(channel, &attach, error);
            return Ok(());
        }
        let (role, address, dynamic, anonymous) = match attach.role {
            // The peer sends: we receive into its target.
            Role::Sender => {
                let target = attach.target.as_deref();
                let address = target.and_then(|t| t.address.clone());
                (OurRole::Receiver, address.clone(), false, address.is_none())
            }
            Role::Receiver => {
                let source = attach.source.as_deref();
                let dynamic = source.is_some_and(|s| s.dynamic);
                let address = if dynamic {
                    None
                } else {
                    source.and_then(|s| s.address.clone())
                };
                (OurRole::Sender, address, dynamic, false)
            }
        };
        let max_message_size = self.ctx.config.max_message_size;
        let reply = Attach {
            name: attach.name.clone(),
            handle: attach.handle,
            role: match role {
                OurRole::Receiver => Role::Receiver,
                OurRole::Sender => Role::Sender,
            },
            snd_settle_mode: attach.snd_settle_mode,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: attach.source.clone(),
            target: attach.target.clone(),
            initial_delivery_count: (role == OurRole::Sender).then_some(0),
            max_message_size: Some(max_message_size),
            ..Default::default()
        };
        self.link_generation = self.link_generation.wrapping_add(1);
        let entry = self.links.vacant_entry();
        let key = entry.key() as u64 | (u64::from(self.link_generation) << 32);
        entry.insert(LinkEnd {
            generation: self.link_generation,
            channel,
            handle: attach.handle,
            role,
            state: LinkState::Attaching {
                reply: Box::new(reply),
                peer_detached: None,
            },
            core: None,
            delivery_count: attach.initial_delivery_count.unwrap_or(0),
            link_credit: 0,
            anonymous,
            presettle: role == OurRole::Sender
                && attach.snd_settle_mode == SenderSettleMode::Settled,
            max_message_size: attach
                .max_message_size
                .filter(|m| *m > 0)
                .map_or(max_message_size, |m| m.min(max_message_size)),
            partial: None,
            limit: 0,
            drain: false,
            flow_due: false,
            streaming: None,
            initiated_for: None,
            peer_handle: None,
            received: 0,
            trace: false,
        });
        self.session(channel)?.links.insert(attach.handle, key);
        let details = Box::new(AttachDetails {
            link_name: attach.name,
            container_id: self.peer_container_id.clone(),
            source: attach.source,
            target: attach.target,
            snd_settle_mode: attach.snd_settle_mode,
            rcv_settle_mode: attach.rcv_settle_mode,
            properties: attach.properties,
        });
        let request = AttachRequest {
            local: key,
            address,
            dynamic,
            pattern: false,
            details,
        };
        self.events.push(match role {
            OurRole::Receiver => Event::AttachIncoming(request),
            OurRole::Sender => Event::AttachOutgoing(request),
        });
        Ok(())
    }

    /// Refuse a link the core never hears of (transactions are not offered).
    fn refuse_attach(&mut self, channel: u16, attach: &Attach, error: AmqpError) {
        let reply = Attach {
            name: attach.name.clone(),
            handle: attach.handle,
            role: attach.role.opposite(),
            source: attach.source.clone(),
            target: attach.target.clone(),
            ..Default::default()
        };
        self.send_refusal(channel, reply, error, true);
    }

    /// A refusal is our attach with no terminus on our side, then a detach carrying the reason. Unless the
    /// peer already detached, its answering detach is expected: the handle is `detaching` until then.
    pub(super) fn send_refusal(
        &mut self,
        channel: u16,
        mut reply: Attach,
        error: AmqpError,
        expect_detach: bool,
    ) {
        match reply.role {
            Role::Receiver => reply.target = None,
            Role::Sender => reply.source = None,
        }
        let handle = reply.handle;
        self.emit(channel, &Performative::Attach(reply));
        if expect_detach {
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

    /// The link key behind a handle, or the session error for an unknown handle.
    pub(super) fn link_for(&mut self, channel: u16, handle: u32) -> Result<Option<u64>, ConnError> {
        let session = self.session(channel)?;
        if session.ending || session.detaching.contains(&handle) {
            // In flight before the peer saw our end or detach: not an error, just too late.
            return Ok(None);
        }
        match session.links.get(&handle) {
            Some(key) => Ok(Some(*key)),
            None => {
                self.end_session(
                    channel,
                    AmqpError::new(
                        condition::SESSION_UNATTACHED_HANDLE,
                        format!("handle {handle} is not attached"),
                    ),
                );
                Ok(None)
            }
        }
    }

    pub(super) fn link(&self, key: u64) -> Option<&LinkEnd> {
        self.links
            .get(key as u32 as usize)
            .filter(|l| l.generation == (key >> 32) as u32)
    }

    pub(super) fn link_mut(&mut self, key: u64) -> Option<&mut LinkEnd> {
        self.links
            .get_mut(key as u32 as usize)
            .filter(|l| l.generation == (key >> 32) as u32)
    }

    pub(super) fn on_detach(&mut self, channel: u16, detach: Detach) -> ConnResult {
        let session = self.session(channel)?;
        if session.detaching.remove(&detach.handle) {
            // The answer to a detach we sent.
            return Ok(());
        }
        let Some(key) = self.link_for(channel, detach.handle)? else {
            return Ok(());
        };
        if let Some(e) = &detach.error {
            tracing::debug!(
                conn = self.id,
                "peer detached with {}",
                e.condition.as_str()
            );
        }
        let Some(link) = self.link_mut(key) else {
            return Ok(());
        };
        let our_handle = link.handle;
        match &mut link.state {
            LinkState::Attaching { peer_detached, .. } => {
                // We still owe the peer our attach; the core's answer finishes this.
                *peer_detached = Some(detach.closed);
                return Ok(());
            }
            LinkState::Initiating => {
                // The route container refused a link we opened: the client hears why.
                let client = link.initiated_for;
                let error = detach.error.clone().unwrap_or_else(|| {
                    AmqpError::new(condition::NOT_FOUND, "the broker refused the link")
                });
                if let Some(client) = client {
                    self.events.push(Event::RouteAttached {
                        client,
                        local: key,
                        address: None,
                        error: Some(error),
                    });
                }
            }
            LinkState::Attached => {}
        }
        self.drop_link_with(key, detach.error, detach.closed);
        self.emit(
            channel,
            &Performative::Detach(Detach {
                handle: our_handle,
                closed: detach.closed,
                error: None,
            }),
        );
        Ok(())
    }

    /// The peer answered a link we opened (link routing): a null terminus on its side is a refusal, whose
    /// reason follows in a detach.
    fn initiated_answered(&mut self, channel: u16, key: u64, attach: Attach) {
        let Some(link) = self.link_mut(key) else {
            return;
        };
        link.peer_handle = Some(attach.handle);
        let refused = match link.role {
            OurRole::Sender => attach.target.is_none(),
            OurRole::Receiver => attach.source.is_none(),
        };
        if link.role == OurRole::Receiver {
            link.delivery_count = attach.initial_delivery_count.unwrap_or(0);
        }
        if !refused {
            link.state = LinkState::Attached;
        }
        let client = link.initiated_for;
        if let Ok(session) = self.session(channel) {
            session.links.insert(attach.handle, key);
        }
        if let (false, Some(client)) = (refused, client) {
            self.events.push(Event::RouteAttached {
                client,
                local: key,
                address: None,
                error: None,
            });
        }
    }

    /// Forget a link: its unsettled outgoing deliveries go back as released, then the core hears it is gone.
    pub(super) fn drop_link(&mut self, key: u64) {
        self.drop_link_with(key, None, false);
    }

    /// As [`Engine::drop_link`], passing on the error the peer's detach carried.
    pub(super) fn drop_link_with(&mut self, key: u64, error: Option<AmqpError>, closed: bool) {
        let Some(link) = self.link(key) else { return };
        let (channel, handle, core) = (link.channel, link.remote_handle(), link.core);
        if let Some(session) = self
            .sessions
            .get_mut(channel as usize)
            .and_then(Option::as_mut)
        {
            session.links.remove(&handle);
            let taken = session.take_link(key);
            let mut blocked = Vec::new();
            session.blocked.retain_mut(|b| {
                if b.link == key {
                    blocked.extend(b.delivery.take());
                    false
                } else {
                    true
                }
            });
            for (_, delivery) in taken {
                self.returned(key, delivery);
            }
            for delivery in blocked {
                self.release(key, delivery);
            }
        }
        if let Some(core) = core {
            self.events.push(Event::Detach {
                link: core,
                error,
                closed,
            });
        }
        self.links.remove(key as u32 as usize);
    }

    /// Report a delivery we were given for `link` as released (it never reached, or was never settled by, the peer).
    /// Report a delivery the peer received but never settled (its link or connection is going).
    pub(super) fn returned(&mut self, link: u64, delivery: crate::core::api::DeliveryKey) {
        let core = self.link(link).and_then(|l| l.core);
        self.events.push(Event::Unsettled {
            link: core,
            delivery,
        });
    }

    pub(super) fn release(&mut self, link: u64, delivery: crate::core::api::DeliveryKey) {
        if let Some(core) = self.link(link).and_then(|l| l.core) {
            self.events.push(Event::Outcome {
                link: Some(core),
                delivery,
                state: DeliveryState::Released,
            });
        }
    }

    pub(super) fn on_flow(&mut self, channel: u16, flow: Flow) -> ConnResult {
        let session = self.session(channel)?;
        // The peer's window for our transfers: its next-incoming-id + incoming-window - our next-outgoing-id.
        let their_next_in = flow.next_incoming_id.unwrap_or(0);
        session.remote_incoming_window = their_next_in
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(session.next_outgoing_id);
        if !session.blocked.is_empty() && session.remote_incoming_window > 0 {
            self.unblock(channel);
        }
        let Some(handle) = flow.handle else {
            if flow.echo {
                self.session_flow(channel, None);
            }
            return Ok(());
        };
        let Some(key) = self.link_for(channel, handle)? else {
            return Ok(());
        };
        let Some(link) = self.link_mut(key) else {
            return Ok(());
        };
        match link.role {
            OurRole::Sender => {
                // limit = the peer's delivery-count + link-credit (its delivery-count defaults to ours).
                let their_count = flow.delivery_count.unwrap_or(link.delivery_count);
                link.limit = their_count.wrapping_add(flow.link_credit.unwrap_or(0));
                link.drain = flow.drain;
                link.link_credit = link.limit.wrapping_sub(link.delivery_count);
                if let Some(core) = link.core {
                    let (limit, drain) = (link.limit, link.drain);
                    self.events.push(Event::Credit {
                        link: core,
                        limit,
                        drain,
                    });
                }
            }
            OurRole::Receiver => {
                if let (Some(core), Some(_)) = (link.core, link.initiated_for) {
                    // The sender's view of the link; after a drain its delivery-count moved on.
                    if let Some(count) = flow.delivery_count {
                        link.delivery_count = count;
                    }
                    let link_credit = flow.link_credit.unwrap_or(0);
                    link.link_credit = link_credit;
                    if flow.drain && link_credit == 0 {
                        link.drain = false;
                    }
                    self.events.push(Event::SenderFlow {
                        link: core,
                        link_credit,
                        drain: flow.drain,
                    });
                }
            }
        }
        if flow.echo {
            self.session_flow(channel, Some(key));
        }
        Ok(())
    }

    /// Send a flow for the session, and for `link` if given.
    pub(super) fn session_flow(&mut self, channel: u16, link: Option<u64>) {
        let link_state = link
            .and_then(|k| self.link(k))
            .map(|l| (l.handle, l.delivery_count, l.link_credit, l.drain));
        let Ok(session) = self.session(channel) else {
            return;
        };
        let mut flow = Flow {
            next_incoming_id: Some(session.next_incoming_id),
            incoming_window: session.incoming_window,
            next_outgoing_id: session.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Default::default()
        };
        if let Some((handle, delivery_count, link_credit, drain)) = link_state {
            flow.handle = Some(handle);
            flow.delivery_count = Some(delivery_count);
            flow.link_credit = Some(link_credit);
            flow.drain = drain;
        }
        self.emit(channel, &Performative::Flow(flow));
    }
}
