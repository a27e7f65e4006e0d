//! Commands from the API, turned into frames.

use bytes::Bytes;
use shoal_amqp::{
    encode_frame_header_for_payload, AmqpError, Attach, Detach, Disposition, Performative, Role,
    Transfer, TRANSFER_OVERHEAD_MAX,
};
use tokio::sync::oneshot;

use super::{Command, Driver, LinkEnd, OutTransfer};
use crate::error::{ClientError, Result};
use crate::shared::LinkShared;

impl Driver {
    pub(super) fn on_command(&mut self, command: Command) {
        if self.close_sent {
            return self.refuse(command);
        }
        match command {
            Command::Attach {
                attach,
                shared,
                credit,
                reply,
            } => self.attach(*attach, shared, credit, reply),
            Command::Transfer {
                handle,
                tag,
                payload,
                settled,
                outcome,
            } => {
                let usable = self.links.get(&handle).filter(|l| {
                    l.role == Role::Sender && !l.detach_sent && l.attach_reply.is_none()
                });
                let Some(link) = usable else {
                    if let Some(tx) = outcome {
                        let _ = tx.send(Err(ClientError::Invalid("the link is not attached")));
                    }
                    return;
                };
                let _ = link;
                let delivery_id = self.next_delivery_id;
                self.next_delivery_id = delivery_id.wrapping_add(1);
                if let Some(tx) = outcome {
                    self.unsettled.insert(delivery_id, (handle, tx));
                }
                if let Some(link) = self.links.get_mut(&handle) {
                    link.sent = link.sent.wrapping_add(1);
                }
                let t = OutTransfer {
                    handle,
                    delivery_id,
                    tag,
                    payload,
                    offset: 0,
                    settled,
                };
                if self.blocked.is_empty() {
                    if let Some(rest) = self.send_frames(t) {
                        self.blocked.push_back(rest);
                    }
                } else {
                    self.blocked.push_back(t);
                }
                self.try_drain(handle);
            }
            Command::Disposition {
                first,
                last,
                settled,
                state,
            } => self.emit(Performative::Disposition(Disposition {
                role: Role::Receiver,
                first,
                last,
                settled,
                state,
                batchable: false,
            })),
            Command::Flow {
                handle,
                credit,
                drain,
                reply,
            } => self.grant(handle, credit, drain, reply),
            Command::Replenish { handle } => {
                let Some(link) = self.links.get_mut(&handle) else {
                    return;
                };
                let (target, queued) = link.shared.with(|s| {
                    s.replenish_asked = false;
                    (s.auto_credit, s.queue.len() as u32)
                });
                let add = target.saturating_sub(link.credit.saturating_add(queued));
                if add > 0 {
                    self.grant(handle, add, false, None);
                }
            }
            Command::Detach {
                handle,
                closed,
                error,
                reply,
            } => self.detach(handle, closed, error, reply),
            Command::Close { error, reply } => {
                self.close(error);
                self.close_reply = Some(reply);
            }
        }
    }

    /// Answers a command that came after our close.
    fn refuse(&mut self, command: Command) {
        let e = ClientError::ConnectionClosed;
        match command {
            Command::Attach { reply, .. } => drop(reply.send(Err(e))),
            Command::Transfer {
                outcome: Some(tx), ..
            } => drop(tx.send(Err(e))),
            Command::Flow { reply: Some(r), .. } => drop(r.send(Err(e))),
            Command::Detach { reply: Some(r), .. } => drop(r.send(Err(e))),
            Command::Close { reply, .. } => drop(reply.send(Err(e))),
            _ => {}
        }
    }

    fn attach(
        &mut self,
        mut attach: Attach,
        shared: std::sync::Arc<LinkShared>,
        credit: u32,
        reply: oneshot::Sender<Result<(u32, Attach)>>,
    ) {
        // The lowest free handle, so links can come and go forever under a small handle-max.
        let Some(handle) = (0..=self.handle_max).find(|h| !self.links.contains_key(h)) else {
            let _ = reply.send(Err(ClientError::Invalid(
                "no free link handle (handle-max)",
            )));
            return;
        };
        attach.handle = handle;
        let role = attach.role;
        self.links.insert(
            handle,
            LinkEnd {
                name: attach.name.clone(),
                role,
                shared,
                remote_handle: None,
                attach_reply: Some(reply),
                refused: false,
                detach_sent: false,
                detach_reply: None,
                sent: 0,
                drain_pending: false,
                delivery_count: 0,
                credit: 0,
                partial: None,
                drain_reply: None,
                draining: false,
            },
        );
        self.emit(Performative::Attach(attach));
        if role == Role::Receiver && credit > 0 {
            self.grant(handle, credit, false, None);
        }
    }

    /// Adds credit to a receiving link (and starts a drain) and tells the peer.
    fn grant(
        &mut self,
        handle: u32,
        credit: u32,
        drain: bool,
        reply: Option<oneshot::Sender<Result<u32>>>,
    ) {
        let Some(link) = self
            .links
            .get_mut(&handle)
            .filter(|l| l.role == Role::Receiver)
        else {
            if let Some(r) = reply {
                let _ = r.send(Err(ClientError::Invalid("not an attached receiving link")));
            }
            return;
        };
        link.credit = link.credit.saturating_add(credit);
        let c = link.credit;
        link.shared.update(|s| s.credit = c);
        if drain {
            if link.credit == 0 {
                // Nothing to drain.
                if let Some(r) = reply {
                    let _ = r.send(Ok(0));
                }
                return;
            }
            link.draining = true;
            if let Some((old, _)) = link.drain_reply.take() {
                let _ = old.send(Err(ClientError::Invalid("superseded by another drain")));
            }
            link.drain_reply = reply.map(|r| (r, 0));
        }
        self.link_flow(handle);
    }

    fn detach(
        &mut self,
        handle: u32,
        closed: bool,
        error: Option<AmqpError>,
        reply: Option<oneshot::Sender<Result<()>>>,
    ) {
        let Some(link) = self.links.get_mut(&handle) else {
            // Already gone (the peer detached it): report how.
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        };
        if link.detach_sent {
            if let Some(r) = reply {
                let _ = r.send(Err(ClientError::Invalid("already detaching")));
            }
            return;
        }
        link.detach_sent = true;
        link.detach_reply = reply;
        link.shared
            .update(|s| s.end(ClientError::Invalid("the link was detached")));
        self.emit(Performative::Detach(Detach {
            handle,
            closed,
            error,
        }));
        self.forget_deliveries(handle, &ClientError::Invalid("the link was detached"));
    }

    /// A sending link asked to drain: once every delivery the handle counted has been sent, use
    /// up the remaining credit and tell the peer.
    pub(super) fn try_drain(&mut self, handle: u32) {
        let Some(link) = self.links.get_mut(&handle) else {
            return;
        };
        if !link.drain_pending {
            return;
        }
        let sent = link.sent;
        let drained = link.shared.update(|s| {
            if s.delivery_count != sent {
                return false;
            }
            s.delivery_count = s.limit;
            true
        });
        if drained {
            link.sent = link.shared.with(|s| s.delivery_count);
            self.link_flow(handle);
            if let Some(link) = self.links.get_mut(&handle) {
                link.drain_pending = false;
            }
        }
    }

    /// Sends blocked deliveries while the peer's window allows.
    pub(super) fn unblock(&mut self) {
        while self.remote_incoming_window > 0 {
            let Some(t) = self.blocked.pop_front() else {
                return;
            };
            if let Some(rest) = self.send_frames(t) {
                self.blocked.push_front(rest);
                return;
            }
        }
    }

    /// Writes a delivery's frames while the session window allows; returns what is left.
    fn send_frames(&mut self, mut t: OutTransfer) -> Option<OutTransfer> {
        let max_payload = (self.remote_max_frame as usize)
            .saturating_sub(TRANSFER_OVERHEAD_MAX)
            .max(1);
        let total = t.payload.len();
        loop {
            if self.remote_incoming_window == 0 {
                return Some(t);
            }
            self.remote_incoming_window -= 1;
            self.next_outgoing_id = self.next_outgoing_id.wrapping_add(1);
            let first = t.offset == 0;
            let n = (total - t.offset).min(max_payload);
            let more = t.offset + n < total;
            let transfer = Transfer {
                handle: t.handle,
                delivery_id: first.then_some(t.delivery_id),
                delivery_tag: first.then(|| Bytes::copy_from_slice(&t.tag.to_be_bytes())),
                message_format: first.then_some(0),
                settled: first.then_some(t.settled),
                more,
                ..Transfer::default()
            };
            encode_frame_header_for_payload(&mut self.out, 0, &Performative::Transfer(transfer), n);
            self.out
                .extend_from_slice(&t.payload[t.offset..t.offset + n]);
            t.offset += n;
            if !more {
                return None;
            }
        }
    }
}
