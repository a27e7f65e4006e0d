//! Frames from the peer.

use bytes::{Bytes, BytesMut};
use shoal_amqp::{
    condition, AmqpError, Attach, DeliveryState, Detach, Disposition, End, Flow, Performative,
    Role, Transfer,
};

use super::{Driver, Partial, INCOMING_WINDOW};
use crate::delivery::Received;
use crate::error::ClientError;

/// Ranged dispositions larger than this are refused (a peer cannot make us loop for long).
const MAX_DISPOSITION_RANGE: u32 = 1 << 20;

impl Driver {
    pub(super) fn on_frame(&mut self, channel: u16, p: Performative, payload: Bytes) {
        if channel != 0 && !matches!(p, Performative::Close(_)) {
            return self.violation(
                condition::NOT_FOUND,
                format!("no session on channel {channel}"),
            );
        }
        match p {
            Performative::Open(_) | Performative::Begin(_) => {
                self.violation(condition::ILLEGAL_STATE, format!("unexpected {}", p.name()))
            }
            Performative::Close(c) => self.on_close(c.error),
            Performative::End(e) => self.on_end(e),
            Performative::Attach(a) => self.on_attach(a),
            Performative::Detach(d) => self.on_detach(d),
            Performative::Flow(f) => self.on_flow(f),
            Performative::Transfer(t) => self.on_transfer(t, payload),
            Performative::Disposition(d) => self.on_disposition(d),
        }
    }

    fn on_close(&mut self, error: Option<AmqpError>) {
        if let Some(e) = &error {
            tracing::debug!("peer closed the connection: {e}");
        }
        self.close(None);
        self.fail(ClientError::remote_or(error, ClientError::ConnectionClosed));
    }

    fn on_end(&mut self, end: End) {
        // One session per connection: without it the connection is of no use, so it goes too.
        self.emit(Performative::End(End { error: None }));
        self.close(None);
        self.fail(ClientError::remote_or(
            end.error,
            ClientError::ConnectionClosed,
        ));
    }

    fn on_attach(&mut self, attach: Attach) {
        let found = self.links.iter_mut().find(|(_, l)| {
            l.remote_handle.is_none() && l.name == attach.name && l.attach_reply.is_some()
        });
        let Some((&handle, link)) = found else {
            return self.violation(
                condition::NOT_IMPLEMENTED,
                format!(
                    "unexpected attach of link {:?} (this client never accepts links)",
                    attach.name
                ),
            );
        };
        if self.by_remote.contains_key(&attach.handle) {
            return self.violation(
                condition::SESSION_HANDLE_IN_USE,
                format!("handle {} is already attached", attach.handle),
            );
        }
        link.remote_handle = Some(attach.handle);
        self.by_remote.insert(attach.handle, handle);
        // A refusal is an attach with a null terminus; the detach that follows says why.
        let refused = match link.role {
            Role::Sender => attach.target.is_none(),
            Role::Receiver => attach.source.is_none(),
        };
        if refused {
            link.refused = true;
            return;
        }
        if link.role == Role::Receiver {
            if let Some(dc) = attach.initial_delivery_count {
                link.delivery_count = dc;
            }
        }
        if let Some(reply) = link.attach_reply.take() {
            let _ = reply.send(Ok((handle, attach)));
        }
    }

    fn on_detach(&mut self, detach: Detach) {
        let Some(handle) = self.by_remote.remove(&detach.handle) else {
            return self.violation(
                condition::SESSION_UNATTACHED_HANDLE,
                format!("detach of unattached handle {}", detach.handle),
            );
        };
        let Some(mut link) = self.links.remove(&handle) else {
            return;
        };
        let error = ClientError::remote_or(detach.error.clone(), ClientError::Detached);
        if !link.detach_sent {
            // The peer started it: answer, as the spec requires.
            self.emit(Performative::Detach(Detach {
                handle,
                closed: detach.closed,
                error: None,
            }));
        }
        link.shared.update(|s| {
            s.remote_detached = true;
            s.remote_error = detach.error.clone();
            s.end(error.clone());
        });
        if let Some(reply) = link.attach_reply.take() {
            let refusal = if link.refused {
                error.clone()
            } else {
                ClientError::remote_or(detach.error.clone(), ClientError::Detached)
            };
            let _ = reply.send(Err(refusal));
        }
        if let Some(reply) = link.detach_reply.take() {
            let _ = reply.send(match detach.error {
                Some(e) => Err(ClientError::Remote(e)),
                None => Ok(()),
            });
        }
        if let Some((reply, _)) = link.drain_reply.take() {
            let _ = reply.send(Err(error.clone()));
        }
        self.forget_deliveries(handle, &error);
    }

    /// Fails the unsettled and blocked deliveries of a link that is gone.
    pub(super) fn forget_deliveries(&mut self, handle: u32, error: &ClientError) {
        let ids: Vec<u32> = self
            .unsettled
            .iter()
            .filter(|(_, (h, _))| *h == handle)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some((_, tx)) = self.unsettled.remove(&id) {
                let _ = tx.send(Err(error.clone()));
            }
        }
        self.blocked.retain(|b| b.handle != handle);
    }

    fn on_flow(&mut self, flow: Flow) {
        // The peer's window for our transfers: its next-incoming-id + incoming-window - our
        // next-outgoing-id (before it has seen any of ours, next-incoming-id is our initial id).
        let their_next_in = flow.next_incoming_id.unwrap_or(0);
        self.remote_incoming_window = their_next_in
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(self.next_outgoing_id);
        if self.remote_incoming_window > u32::MAX / 2 {
            self.remote_incoming_window = 0;
        }
        self.unblock();
        let Some(remote) = flow.handle else {
            if flow.echo {
                let f = self.flow(None);
                self.emit(f);
            }
            return;
        };
        let Some(&handle) = self.by_remote.get(&remote) else {
            return self.violation(
                condition::SESSION_UNATTACHED_HANDLE,
                format!("flow on unattached handle {remote}"),
            );
        };
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        let reply = match link.role {
            Role::Sender => {
                let limit = link.shared.update(|s| {
                    let their_count = flow.delivery_count.unwrap_or(s.delivery_count);
                    s.limit = their_count.wrapping_add(flow.link_credit.unwrap_or(0));
                    s.limit
                });
                link.drain_pending = flow.drain;
                let _ = limit;
                self.try_drain(handle);
                flow.echo
            }
            Role::Receiver => {
                // The sender's numbers: keep our limit (only we move it), take its count (a
                // drain advances it to the limit, leaving no credit).
                let limit = link.delivery_count.wrapping_add(link.credit);
                if let Some(dc) = flow.delivery_count {
                    link.delivery_count = dc;
                    let c = limit.wrapping_sub(dc);
                    link.credit = if c > u32::MAX / 2 { 0 } else { c };
                }
                let credit = link.credit;
                link.shared.update(|s| s.credit = credit);
                self.check_drained(handle);
                flow.echo
            }
        };
        if reply {
            self.link_flow(handle);
        }
    }

    /// Sends a flow with the link's current state.
    pub(super) fn link_flow(&mut self, handle: u32) {
        let Some(link) = self.links.get(&handle) else {
            return;
        };
        let state = match link.role {
            Role::Sender => {
                let (dc, credit) = link.shared.with(|s| (s.delivery_count, s.send_credit()));
                (handle, dc, credit, link.drain_pending)
            }
            Role::Receiver => (handle, link.delivery_count, link.credit, link.draining),
        };
        let f = self.flow(Some(state));
        self.emit(f);
    }

    /// A draining receiver whose credit is gone: report how many arrived meanwhile.
    pub(super) fn check_drained(&mut self, handle: u32) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        if link.credit == 0 && link.draining {
            link.draining = false;
            if let Some((reply, count)) = link.drain_reply.take() {
                let _ = reply.send(Ok(count));
            }
        }
    }

    fn on_transfer(&mut self, t: Transfer, payload: Bytes) {
        if self.incoming_window == 0 {
            return self.violation(
                condition::SESSION_WINDOW_VIOLATION,
                "transfer beyond our incoming window".into(),
            );
        }
        self.incoming_window -= 1;
        self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
        if self.incoming_window <= INCOMING_WINDOW / 2 {
            self.incoming_window = INCOMING_WINDOW;
            let f = self.flow(None);
            self.emit(f);
        }
        let Some(&handle) = self.by_remote.get(&t.handle) else {
            return self.violation(
                condition::SESSION_UNATTACHED_HANDLE,
                format!("transfer on unattached handle {}", t.handle),
            );
        };
        let max_message_size = self.max_message_size;
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        if link.role != Role::Receiver {
            return self.violation(
                condition::NOT_ALLOWED,
                "transfer on a link where we send".into(),
            );
        }
        if link.detach_sent {
            // We detached it; the peer has not seen that yet.
            return;
        }
        let mut partial = match link.partial.take() {
            Some(p) => p,
            None => {
                let Some(delivery_id) = t.delivery_id else {
                    return self.violation(
                        condition::INVALID_FIELD,
                        "first transfer of a delivery without delivery-id".into(),
                    );
                };
                if link.credit == 0 {
                    return self.detach_with_error(
                        handle,
                        AmqpError::new(
                            condition::LINK_TRANSFER_LIMIT_EXCEEDED,
                            "transfer without credit",
                        ),
                    );
                }
                link.credit -= 1;
                link.delivery_count = link.delivery_count.wrapping_add(1);
                Partial {
                    delivery_id,
                    tag: t.delivery_tag.clone().unwrap_or_default(),
                    format: t.message_format.unwrap_or(0),
                    settled: false,
                    data: BytesMut::new(),
                }
            }
        };
        if t.settled == Some(true) {
            partial.settled = true;
        }
        if t.aborted {
            let credit = link.credit;
            link.shared.update(|s| s.credit = credit);
            return self.check_drained(handle);
        }
        if (partial.data.len() + payload.len()) as u64 > max_message_size {
            return self.detach_with_error(
                handle,
                AmqpError::new(
                    condition::LINK_MESSAGE_SIZE_EXCEEDED,
                    format!("message exceeds {max_message_size} bytes"),
                ),
            );
        }
        if t.more {
            partial.data.extend_from_slice(&payload);
            link.partial = Some(partial);
            return;
        }
        // Single-frame deliveries keep the frame's slice: no copy.
        let bytes = if partial.data.is_empty() {
            payload
        } else {
            partial.data.extend_from_slice(&payload);
            partial.data.freeze()
        };
        let received = Received {
            delivery_id: partial.delivery_id,
            delivery_tag: partial.tag,
            message_format: partial.format,
            settled: partial.settled,
            bytes,
        };
        if let Some((_, count)) = link.drain_reply.as_mut() {
            *count += 1;
        }
        let credit = link.credit;
        link.shared.update(|s| {
            s.credit = credit;
            s.queue.push_back(received);
        });
        self.check_drained(handle);
    }

    /// Detaches one link with an error; the rest of the connection carries on.
    pub(super) fn detach_with_error(&mut self, handle: u32, error: AmqpError) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        if !link.detach_sent {
            link.detach_sent = true;
            link.shared.update(|s| {
                s.end(ClientError::Protocol(format!(
                    "link detached by us: {error}"
                )))
            });
            self.emit(Performative::Detach(Detach {
                handle,
                closed: true,
                error: Some(error),
            }));
        }
    }

    fn on_disposition(&mut self, d: Disposition) {
        if d.role == Role::Sender {
            // The peer settling what it sent us: we use rcv-settle-mode first, nothing to do.
            return;
        }
        let last = d.last.unwrap_or(d.first);
        let span = last.wrapping_sub(d.first);
        if span >= MAX_DISPOSITION_RANGE {
            return self.violation(
                condition::INVALID_FIELD,
                "disposition range too large".into(),
            );
        }
        let terminal = match &d.state {
            None => d.settled,
            Some(s) => s.is_outcome(),
        };
        if !terminal {
            return;
        }
        let state = d.state.clone().unwrap_or(DeliveryState::Accepted);
        if (span as usize) < self.unsettled.len() {
            let mut id = d.first;
            loop {
                if let Some((_, tx)) = self.unsettled.remove(&id) {
                    let _ = tx.send(Ok(state.clone()));
                }
                if id == last {
                    break;
                }
                id = id.wrapping_add(1);
            }
        } else {
            let ids: Vec<u32> = self
                .unsettled
                .keys()
                .copied()
                .filter(|id| id.wrapping_sub(d.first) <= span)
                .collect();
            for id in ids {
                if let Some((_, tx)) = self.unsettled.remove(&id) {
                    let _ = tx.send(Ok(state.clone()));
                }
            }
        }
        if !d.settled {
            // The peer settles second: the outcome is final, so settle on our side.
            self.emit(Performative::Disposition(Disposition {
                role: Role::Sender,
                first: d.first,
                last: d.last,
                settled: true,
                state: d.state,
                batchable: false,
            }));
        }
    }
}
