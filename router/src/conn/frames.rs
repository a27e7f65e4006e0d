//! What the connection does with each frame the peer sends after `open`.

use bytes::Bytes;
use shoal_amqp::{
    condition, scan_message, AmqpError, Attach, Begin, DeliveryState, Detach, Disposition, End,
    Flow, Performative, ReceiverSettleMode, Role, Scan, SenderSettleMode, Transfer,
};

use super::engine::{ConnError, ConnResult, Engine};
use super::session::{LinkEnd, LinkState, OurRole, Partial, Session};
use crate::core::api::{AttachRequest, Chunks, Event, Msg};

impl Engine {
    pub(super) fn session(&mut self, channel: u16) -> Result<&mut Session, ConnError> {
        self.sessions
            .get_mut(channel as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| {
                ConnError::new(
                    condition::NOT_FOUND,
                    format!("no session on channel {channel}"),
                )
            })
    }

    pub(super) fn on_begin(&mut self, channel: u16, begin: Begin) -> ConnResult {
        if begin.remote_channel.is_some() {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                "begin answers a session we never started",
            ));
        }
        if self
            .sessions
            .get(channel as usize)
            .is_some_and(Option::is_some)
        {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                format!("channel {channel} already has a session"),
            ));
        }
        if channel > self.ctx.config.channel_max {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                format!(
                    "channel {channel} exceeds channel-max {}",
                    self.ctx.config.channel_max
                ),
            ));
        }
        let config = &self.ctx.config;
        let handle_max = config.handle_max.min(begin.handle_max);
        let mut session = Session::new(config.session_window, handle_max);
        session.next_incoming_id = begin.next_outgoing_id;
        session.remote_incoming_window = begin.incoming_window;
        // Our channel number is the peer's: it is free on our side because we never begin sessions ourselves.
        if self.sessions.len() <= channel as usize {
            self.sessions.resize_with(channel as usize + 1, || None);
        }
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id: 0,
            incoming_window: config.session_window,
            outgoing_window: u32::MAX,
            handle_max,
            ..Default::default()
        };
        self.sessions[channel as usize] = Some(session);
        self.emit(channel, &Performative::Begin(reply));
        Ok(())
    }

    pub(super) fn on_end(&mut self, channel: u16, end: End) -> ConnResult {
        let session = self.session(channel)?;
        let ending = session.ending;
        if let Some(e) = end.error {
            tracing::info!(
                conn = self.id,
                "peer ended session with {}",
                e.condition.as_str()
            );
        }
        self.release_session(channel);
        if let Some(slot) = self.sessions.get_mut(channel as usize) {
            *slot = None;
        }
        if !ending {
            self.emit(channel, &Performative::End(End { error: None }));
        }
        Ok(())
    }

    /// Give back what a session held (its links, unsettled and blocked deliveries); the slot stays until the
    /// peer's `end`.
    fn release_session(&mut self, channel: u16) {
        let Ok(session) = self.session(channel) else {
            return;
        };
        let links: Vec<u64> = session.links.values().copied().collect();
        for link in links {
            self.drop_link(link);
        }
        let Ok(session) = self.session(channel) else {
            return;
        };
        let unsettled: Vec<_> = session.unsettled.drain(..).flatten().collect();
        let blocked: Vec<_> = session.blocked.drain(..).collect();
        for (link, delivery) in unsettled {
            self.release(link, delivery);
        }
        for b in blocked {
            if let Some(delivery) = b.delivery {
                self.release(b.link, delivery);
            }
        }
    }

    /// End a session with an error (a session-level protocol violation). Frames the peer sent before it sees
    /// our `end` are ignored until its own `end` arrives.
    pub(super) fn end_session(&mut self, channel: u16, error: AmqpError) {
        let Ok(session) = self.session(channel) else {
            return;
        };
        if session.ending {
            return;
        }
        session.ending = true;
        self.release_session(channel);
        self.emit(channel, &Performative::End(End { error: Some(error) }));
    }

    pub(super) fn on_attach(&mut self, channel: u16, attach: Attach) -> ConnResult {
        let session = self.session(channel)?;
        if session.ending {
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
        });
        self.session(channel)?.links.insert(attach.handle, key);
        let request = AttachRequest {
            local: key,
            address,
            dynamic,
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
    fn link_for(&mut self, channel: u16, handle: u32) -> Result<Option<u64>, ConnError> {
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
        if let LinkState::Attaching { peer_detached, .. } = &mut link.state {
            // We still owe the peer our attach; the core's answer finishes this.
            *peer_detached = Some(detach.closed);
            return Ok(());
        }
        self.drop_link(key);
        self.emit(
            channel,
            &Performative::Detach(Detach {
                handle: detach.handle,
                closed: detach.closed,
                error: None,
            }),
        );
        Ok(())
    }

    /// Forget a link: its unsettled outgoing deliveries go back as released, then the core hears it is gone.
    pub(super) fn drop_link(&mut self, key: u64) {
        let Some(link) = self.link(key) else { return };
        let (channel, handle, core) = (link.channel, link.handle, link.core);
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
                self.release(key, delivery);
            }
            for delivery in blocked {
                self.release(key, delivery);
            }
        }
        if let Some(core) = core {
            self.events.push(Event::Detach { link: core });
        }
        self.links.remove(key as u32 as usize);
    }

    /// Report a delivery we were given for `link` as released (it never reached, or was never settled by, the peer).
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
            OurRole::Receiver => {}
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

    pub(super) fn on_transfer(
        &mut self,
        channel: u16,
        transfer: Transfer,
        payload: Bytes,
    ) -> ConnResult {
        let window = self.ctx.config.session_window;
        let session = self.session(channel)?;
        if session.incoming_window == 0 {
            self.end_session(
                channel,
                AmqpError::new(
                    condition::SESSION_WINDOW_VIOLATION,
                    "transfer beyond the session's incoming window",
                ),
            );
            return Ok(());
        }
        session.incoming_window -= 1;
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        if session.incoming_window <= window / 2 {
            session.incoming_window = window;
            self.session_flow(channel, None);
        }
        let Some(key) = self.link_for(channel, transfer.handle)? else {
            return Ok(());
        };
        let Some(link) = self.link_mut(key) else {
            return Ok(());
        };
        if link.role != OurRole::Receiver {
            return Err(ConnError::new(
                condition::NOT_ALLOWED,
                "transfer on a link where the peer is the receiver",
            ));
        }
        let mut partial = match link.partial.take() {
            Some(partial) => partial,
            None => {
                // The first frame of a new delivery: it uses one credit.
                let Some(delivery_id) = transfer.delivery_id else {
                    return Err(ConnError::new(
                        condition::INVALID_FIELD,
                        "first transfer of a delivery without delivery-id",
                    ));
                };
                if link.link_credit == 0 {
                    let error = AmqpError::new(
                        condition::LINK_TRANSFER_LIMIT_EXCEEDED,
                        "transfer without link credit",
                    );
                    self.detach_with_error(key, error);
                    return Ok(());
                }
                link.link_credit -= 1;
                link.delivery_count = link.delivery_count.wrapping_add(1);
                Partial {
                    delivery_id,
                    settled: transfer.settled.unwrap_or(false),
                    chunks: Vec::new(),
                    len: 0,
                    started: false,
                }
            }
        };
        let Some(core) = link.core else {
            return Err(ConnError::new(
                condition::ILLEGAL_STATE,
                "transfer before the link was attached",
            ));
        };
        if transfer.aborted {
            // An aborted delivery is settled by the abort; what already went on is aborted downstream too.
            if partial.started {
                self.events.push(Event::TransferMore {
                    link: core,
                    msg: None,
                    more: false,
                    aborted: true,
                });
            }
            return Ok(());
        }
        partial.len += payload.len();
        if partial.len as u64 > link.max_message_size {
            let error = AmqpError::new(
                condition::LINK_MESSAGE_SIZE_EXCEEDED,
                format!("message exceeds max-message-size {}", link.max_message_size),
            );
            // Detaching aborts what already went on (the core sees the link go mid-delivery).
            self.detach_with_error(key, error);
            return Ok(());
        }
        if partial.started {
            // Later frames of a streamed delivery go on as they arrive: a large message is never held whole.
            let msg = Msg {
                charge: self.budget.charge(payload.len()),
                chunks: Chunks::One(payload),
            };
            self.events.push(Event::TransferMore {
                link: core,
                msg: Some(msg),
                more: transfer.more,
                aborted: false,
            });
            if transfer.more {
                if let Some(link) = self.link_mut(key) {
                    link.partial = Some(partial);
                }
            }
            return Ok(());
        }
        // The first part. An anonymous link routes by the message's `to`, so it holds frames until the
        // properties section has arrived (or the message ends).
        let mut to = None;
        if link.anonymous {
            if !payload.is_empty() {
                partial.chunks.push(payload.clone());
            }
            match scan_chunks(&partial.chunks) {
                Scan::Incomplete if transfer.more && partial.len < SCAN_LIMIT => {
                    link.partial = Some(partial);
                    return Ok(());
                }
                Scan::Complete(info) => to = info.to,
                Scan::Incomplete => {}
            }
        }
        let chunks = if link.anonymous {
            let mut held = std::mem::take(&mut partial.chunks);
            if held.len() == 1 {
                Chunks::One(held.pop().unwrap_or_default())
            } else {
                Chunks::Many(held)
            }
        } else {
            // The common case needs no allocation: the one chunk is the frame's payload slice.
            Chunks::One(payload)
        };
        let msg = Msg {
            charge: self.budget.charge(partial.len),
            chunks,
        };
        self.events.push(Event::Transfer {
            link: core,
            delivery_id: partial.delivery_id,
            settled: partial.settled,
            to,
            msg,
            more: transfer.more,
        });
        if transfer.more {
            partial.started = true;
            if let Some(link) = self.link_mut(key) {
                link.partial = Some(partial);
            }
        }
        Ok(())
    }

    /// Detach one link with an error (a link-level violation); the rest of the connection carries on.
    pub(super) fn detach_with_error(&mut self, key: u64, error: AmqpError) {
        let Some(link) = self.link(key) else { return };
        let (channel, handle) = (link.channel, link.handle);
        self.drop_link(key);
        if let Ok(session) = self.session(channel) {
            session.detaching.insert(handle);
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

    pub(super) fn on_disposition(&mut self, channel: u16, d: Disposition) -> ConnResult {
        if d.role == Role::Sender {
            // The peer settles deliveries it sent us; we settle those ourselves once their outcome is known.
            return Ok(());
        }
        let last = d.last.unwrap_or(d.first);
        if last.wrapping_sub(d.first) > 1_000_000 {
            return Err(ConnError::new(
                condition::INVALID_FIELD,
                "disposition range too large",
            ));
        }
        let terminal = match &d.state {
            None => d.settled,
            Some(DeliveryState::Received { .. }) => false,
            Some(_) => true,
        };
        if !terminal {
            return Ok(());
        }
        // Settling with no state means the default outcome: accepted.
        let state = d.state.clone().unwrap_or(DeliveryState::Accepted);
        let session = self.session(channel)?;
        let mut id = d.first;
        let mut settled_here = Vec::new();
        loop {
            if let Some((link, delivery)) = session.settle(id) {
                settled_here.push((link, delivery));
            }
            if id == last {
                break;
            }
            id = id.wrapping_add(1);
        }
        for (link, delivery) in settled_here {
            if let Some(core) = self.link(link).and_then(|l| l.core) {
                self.events.push(Event::Outcome {
                    link: Some(core),
                    delivery,
                    state: state.clone(),
                });
            }
        }
        if !d.settled {
            // The receiver gave an outcome but left settling to us (rcv-settle-mode second): settle now.
            self.emit(
                channel,
                &Performative::Disposition(Disposition {
                    role: Role::Sender,
                    first: d.first,
                    last: d.last,
                    settled: true,
                    state: d.state,
                    batchable: false,
                }),
            );
        }
        Ok(())
    }
}

/// How much of a message an anonymous link holds back while looking for its `to`.
const SCAN_LIMIT: usize = 64 * 1024;

/// Scan the sections of the bytes held so far (joined only when they span frames).
fn scan_chunks(chunks: &[bytes::Bytes]) -> Scan {
    let scan = match chunks {
        [one] => scan_message(one),
        many => {
            let joined: Vec<u8> = many.iter().flat_map(|b| b.iter().copied()).collect();
            scan_message(&joined)
        }
    };
    scan.unwrap_or(Scan::Incomplete)
}
