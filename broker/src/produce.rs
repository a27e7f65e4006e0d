//! Messages arriving: into which queues they go, what is written to the store, when the sender hears
//! "accepted", and how producer credit follows the store.

use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{condition, AmqpError, DeliveryState, Scan};
use shoal_router::core::api::{Command, LinkKey, Msg};

use tokio::time::Instant;

use crate::config::FullPolicy;
use crate::core::{Addr, Core, LinkKind, Partial};
use crate::persist::Done;
use crate::queue::{Entry, QueueKey};
use crate::store::{Op, QueueMeta};

/// A message on its way into queues.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub body: Bytes,
    pub durable: bool,
    pub header_count: u32,
    /// The header's TTL.
    pub ttl: Option<Duration>,
    /// The properties' absolute-expiry-time (ms since the epoch).
    pub absolute_expiry: Option<u64>,
    /// Moved by the broker itself (dead-lettered, expired): no TTL applies in its new queue.
    pub internal: bool,
}

impl NewMessage {
    /// Read what the broker needs from an encoded message (`None` if it is not a valid message).
    pub fn parse(body: Bytes) -> Option<NewMessage> {
        let info = match shoal_amqp::scan_message(&body) {
            Ok(Scan::Complete(info)) => info,
            _ => return None,
        };
        let header = info.header.unwrap_or_default();
        Some(NewMessage {
            durable: header.durable,
            header_count: header.delivery_count,
            ttl: header.ttl.map(|t| Duration::from_millis(u64::from(t))),
            absolute_expiry: info
                .absolute_expiry_time
                .filter(|t| *t > 0)
                .map(|t| t as u64),
            internal: false,
            body,
        })
    }
}

/// Where a message went.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Placed {
    /// A write carries it: the sender is told once that write returns.
    pub written: bool,
}

/// Why a message was not taken.
pub(crate) enum Refusal {
    NotFound,
    Full,
}

impl Core {
    /// A message (or its first part) from a sender.
    pub(crate) fn transfer(
        &mut self,
        link: LinkKey,
        delivery_id: u32,
        settled: bool,
        to: Option<String>,
        msg: Msg,
        more: bool,
    ) {
        let Some(LinkKind::Producer(p)) = self.link_mut(link).map(|l| &mut l.kind) else {
            return;
        };
        p.credit = p.credit.saturating_sub(1);
        p.in_flight += 1;
        let chunks: Vec<Bytes> = msg.chunks.iter().cloned().collect();
        if more {
            p.partial = Some(Partial {
                delivery_id,
                settled,
                to,
                chunks,
            });
            return;
        }
        self.arrived(link, delivery_id, settled, to, chunks);
    }

    /// The next part of a message arriving in parts.
    pub(crate) fn transfer_more(
        &mut self,
        link: LinkKey,
        msg: Option<Msg>,
        more: bool,
        aborted: bool,
    ) {
        let Some(LinkKind::Producer(p)) = self.link_mut(link).map(|l| &mut l.kind) else {
            return;
        };
        let Some(mut partial) = p.partial.take() else {
            return;
        };
        if aborted {
            // An aborted delivery is settled by the abort: nobody is told anything; the slot comes back.
            p.in_flight = p.in_flight.saturating_sub(1);
            self.replenish(link);
            return;
        }
        if let Some(msg) = msg {
            partial.chunks.extend(msg.chunks.iter().cloned());
        }
        if more {
            p.partial = Some(partial);
            return;
        }
        self.arrived(
            link,
            partial.delivery_id,
            partial.settled,
            partial.to,
            partial.chunks,
        );
    }

    /// A whole message from a sender: place it, then settle (now, or once its write returns).
    fn arrived(
        &mut self,
        link: LinkKey,
        delivery_id: u32,
        settled: bool,
        to: Option<String>,
        chunks: Vec<Bytes>,
    ) {
        // One compact copy: the received chunks are slices of the connection's read buffers, which a message
        // kept for hours must not pin.
        let body = match chunks.as_slice() {
            [one] => Bytes::copy_from_slice(one),
            many => Bytes::from(many.concat()),
        };
        let address = match self.link(link).map(|l| &l.kind) {
            Some(LinkKind::Producer(p)) => p.address.clone().or(to),
            _ => return,
        };
        let delivery = (!settled).then_some(delivery_id);
        let Some(address) = address else {
            return self.refused(
                link,
                delivery,
                condition::PRECONDITION_FAILED,
                "a message on an anonymous link needs a `to` address".into(),
            );
        };
        if address == crate::manage::MANAGE_ADDRESS {
            return self.manage(link, delivery, body);
        }
        let Some(message) = NewMessage::parse(body) else {
            return self.refused(
                link,
                delivery,
                condition::DECODE_ERROR,
                "not a valid AMQP message".into(),
            );
        };
        match self.publish(&address, message) {
            Ok(placed) if placed.written => {
                self.batch.done.push(Done::Stored {
                    link,
                    delivery_id: delivery,
                });
            }
            Ok(_) => self.stored(link, delivery, true),
            Err(Refusal::NotFound) => self.refused(
                link,
                delivery,
                condition::NOT_FOUND,
                format!("no queue or topic {address}"),
            ),
            Err(Refusal::Full) => self.refused(
                link,
                delivery,
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!("{address} is full"),
            ),
        }
    }

    /// Settle a message the broker did not take with `rejected`, and give its slot back.
    pub(crate) fn refused(
        &mut self,
        link: LinkKey,
        delivery: Option<u32>,
        cond: &str,
        text: String,
    ) {
        if let (Some(delivery_id), Some(l)) = (delivery, self.link(link)) {
            let (conn, local) = (l.conn, l.local);
            let state = DeliveryState::Rejected {
                error: Some(AmqpError::new(cond, text)),
            };
            self.send(
                conn,
                Command::Settle {
                    local,
                    delivery_id,
                    state,
                },
            );
        }
        self.slot_returned(link);
    }

    /// A sender's message is stored (or failed to be): settle it and give the slot back.
    pub(crate) fn stored(&mut self, link: LinkKey, delivery: Option<u32>, ok: bool) {
        if let (Some(delivery_id), Some(l)) = (delivery, self.link(link)) {
            let (conn, local) = (l.conn, l.local);
            let state = if ok {
                DeliveryState::Accepted
            } else {
                DeliveryState::Rejected {
                    error: Some(AmqpError::new(
                        condition::INTERNAL_ERROR,
                        "the broker could not store the message",
                    )),
                }
            };
            self.send(
                conn,
                Command::Settle {
                    local,
                    delivery_id,
                    state,
                },
            );
        }
        self.slot_returned(link);
    }

    fn slot_returned(&mut self, link: LinkKey) {
        if let Some(LinkKind::Producer(p)) = self.link_mut(link).map(|l| &mut l.kind) {
            p.in_flight = p.in_flight.saturating_sub(1);
            self.replenish(link);
        }
    }

    /// Top a sender's credit up to the link capacity, unless its address is full and blocks senders.
    pub(crate) fn replenish(&mut self, key: LinkKey) {
        let capacity = self.limits.link_capacity;
        let Some(link) = self.link(key) else { return };
        let (conn, local) = (link.conn, link.local);
        let LinkKind::Producer(p) = &link.kind else {
            return;
        };
        if let Some(address) = &p.address {
            if self.blocked(address) {
                return;
            }
            if let Some(q) = self.pacing(address) {
                self.paced.insert(q);
                return;
            }
        }
        let Some(LinkKind::Producer(p)) = self.link_mut(key).map(|l| &mut l.kind) else {
            return;
        };
        let free = capacity.saturating_sub(p.credit + p.in_flight);
        // Top up in steps of at least a tenth of the capacity, so a busy link costs one flow per several messages.
        if free == 0 || (free < capacity / 10 && p.credit > 0) {
            return;
        }
        p.credit += free;
        self.send(
            conn,
            Command::Grant {
                local,
                credit: free,
            },
        );
    }

    /// The address is full and its policy is to block senders.
    fn blocked(&self, address: &str) -> bool {
        let full = |q: QueueKey| {
            self.queue(q)
                .is_some_and(|q| q.full() && q.settings.full_policy == FullPolicy::Block)
        };
        match self.addresses.get(address) {
            Some(Addr::Queue(q)) => full(*q),
            Some(Addr::Topic(t)) => t.subs.iter().any(|q| full(*q)),
            None => false,
        }
    }

    /// The queue of `address` that paces its producers now, if any (a topic: any of its subscriptions).
    fn pacing(&self, address: &str) -> Option<QueueKey> {
        let (window, within, now) = (self.limits.window, self.limits.pace_within, Instant::now());
        let paces = |q: &QueueKey| self.queue(*q).is_some_and(|q| q.paces(window, within, now));
        match self.addresses.get(address) {
            Some(Addr::Queue(q)) => Some(*q).filter(paces),
            Some(Addr::Topic(t)) => t.subs.iter().copied().find(paces),
            None => None,
        }
    }

    /// Put a message into the queue(s) of `address`.
    pub(crate) fn publish(
        &mut self,
        address: &str,
        message: NewMessage,
    ) -> Result<Placed, Refusal> {
        if !self.addresses.contains_key(address) {
            if !self.limits.auto_create {
                return Err(Refusal::NotFound);
            }
            self.auto_create(address);
        }
        let targets: Vec<QueueKey> = match self.addresses.get(address) {
            Some(Addr::Queue(q)) => vec![*q],
            Some(Addr::Topic(t)) => t
                .subs
                .iter()
                .copied()
                .filter(|q| {
                    self.queue(*q)
                        .and_then(|q| q.filter.as_ref())
                        .is_none_or(|f| f.matches(&message.body))
                })
                .collect(),
            None => return Err(Refusal::NotFound),
        };
        let rejects = |q: &QueueKey| {
            self.queue(*q)
                .is_some_and(|q| q.full() && q.settings.full_policy == FullPolicy::Reject)
        };
        if !message.internal && targets.iter().any(rejects) {
            return Err(Refusal::Full);
        }
        let mut placed = Placed::default();
        for q in targets {
            placed.written |= self.enqueue(q, &message);
        }
        Ok(placed)
    }

    /// Append a message to one queue; true when a store write carries it.
    pub(crate) fn enqueue(&mut self, key: QueueKey, m: &NewMessage) -> bool {
        let now = self.clock.now_ms();
        let window = self.limits.window;
        let Some(q) = self.queue_mut(key) else {
            return false;
        };
        let seq = q.take_seq();
        let expires_at = if m.internal {
            None
        } else {
            let ttl = q.settings.clamp_ttl(m.ttl);
            let by_ttl = ttl.map(|t| now.saturating_add(t.as_millis() as u64));
            [by_ttl, m.absolute_expiry].into_iter().flatten().min()
        };
        let mut entry = Entry {
            seq,
            body: m.body.clone(),
            durable: m.durable,
            header_count: m.header_count,
            delivery_count: m.header_count,
            expires_at,
            stored: false,
        };
        q.bytes += entry.size();
        q.counters.enqueued += 1;
        let persistent = q.role.durable();
        let in_memory = q.window_has_room(window);
        if in_memory && !(m.durable && persistent) {
            // Non-durable (or for a queue that dies with the process): memory is enough.
            q.ready.insert(seq, entry);
            self.expiry.insert(expires_at, key, seq);
            self.mark(key);
            return false;
        }
        let sync = m.durable && persistent;
        entry.stored = true;
        self.ensure_in_store(key);
        let Some(q) = self.queue_mut(key) else {
            return false;
        };
        let op = Op::Put {
            queue: q.name.clone(),
            message: entry.to_stored(),
        };
        if in_memory {
            q.ready.insert(seq, entry);
            self.expiry.insert(expires_at, key, seq);
        } else {
            q.page_out(seq, entry.size());
            self.paged_expiry.note(expires_at);
            self.batch.done.push(Done::Paged { queue: key, seq });
        }
        self.batch.ops.push(op);
        self.batch.sync |= sync;
        self.mark(key);
        true
    }

    /// The queue exists in the store before anything is written into it.
    pub(crate) fn ensure_in_store(&mut self, key: QueueKey) {
        let Some(q) = self.queue_mut(key) else { return };
        if q.in_store {
            return;
        }
        q.in_store = true;
        let meta = QueueMeta {
            name: q.name.clone(),
            config: q.record().encode(),
        };
        self.batch.ops.push(Op::CreateQueue(meta));
    }
}
