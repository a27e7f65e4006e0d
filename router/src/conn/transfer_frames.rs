//! Delivery frames from the peer: transfer (a delivery arriving, possibly in parts) and disposition.

use bytes::Bytes;
use shoal_amqp::{
    condition, scan_message, AmqpError, DeliveryState, Detach, Disposition, Performative, Role,
    Scan, Transfer,
};

use super::engine::{ConnError, ConnResult, Engine};
use super::session::{LinkState, OurRole, Partial};
use crate::core::api::{Chunks, Event, Msg};

impl Engine {
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
                link.received = link.received.wrapping_add(1);
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
        self.detach_link(key, Some(error), true);
    }

    /// Detach a link from our side (an error, or its routed partner went away); the peer's answering detach
    /// is expected on its handle.
    pub(super) fn detach_link(&mut self, key: u64, error: Option<AmqpError>, closed: bool) {
        let Some(link) = self.link(key) else { return };
        let (channel, handle, remote) = (link.channel, link.handle, link.remote_handle());
        let answered = !matches!(link.state, LinkState::Initiating) || link.peer_handle.is_some();
        self.drop_link(key);
        if let Ok(session) = self.session(channel) {
            if answered {
                session.detaching.insert(remote);
            }
        }
        self.emit(
            channel,
            &Performative::Detach(Detach {
                handle,
                closed,
                error,
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
