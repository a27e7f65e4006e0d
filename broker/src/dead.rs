//! Messages that leave a queue without being consumed: expired ones go to the expiry address, rejected ones
//! and ones out of delivery attempts to the dead-letter address (or are dropped and counted when there is
//! none). The moved copy is annotated with where it came from and why:
//! `x-opt-original-address`, and `x-opt-dead-letter-reason` ("rejected" / "max-delivery-attempts") or
//! `x-opt-expired` (the time it expired, ms since the epoch).

use shoal_amqp::{Header, Symbol, Value};

use crate::core::Core;
use crate::produce::NewMessage;
use crate::queue::{Entry, QueueKey};
use crate::store::Op;

pub const ORIGINAL_ADDRESS: &str = "x-opt-original-address";
pub const DEAD_LETTER_REASON: &str = "x-opt-dead-letter-reason";
pub const EXPIRED: &str = "x-opt-expired";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Rejected,
    MaxAttempts,
    Expired,
}

impl Core {
    /// A message leaves its queue for good: its store record goes, its bytes no longer count.
    pub(crate) fn discard(&mut self, key: QueueKey, entry: &Entry) {
        let Some(q) = self.queue_mut(key) else { return };
        q.bytes = q.bytes.saturating_sub(entry.size());
        if entry.stored {
            let op = Op::Delete {
                queue: q.name.clone(),
                seq: entry.seq,
            };
            self.batch.ops.push(op);
        }
        // Room may have come free for blocked senders.
        self.mark(key);
    }

    /// A ready (or delayed) message whose deadline passed.
    pub(crate) fn expire_ready(&mut self, key: QueueKey, seq: u64) {
        let Some(q) = self.queue_mut(key) else { return };
        let entry = match q.ready.remove(&seq) {
            Some(e) => e,
            None => match q.delayed.remove(&seq) {
                Some(e) => e,
                None => return,
            },
        };
        self.dead_letter(key, entry, Reason::Expired);
    }

    /// Move a message out of `key` to its expiry or dead-letter address, annotated; drop it when there is none.
    pub(crate) fn dead_letter(&mut self, key: QueueKey, entry: Entry, reason: Reason) {
        let now = self.clock.now_ms();
        self.discard(key, &entry);
        let Some(q) = self.queue_mut(key) else { return };
        let target = match reason {
            Reason::Expired => {
                q.counters.expired += 1;
                q.settings.expiry_address.clone()
            }
            Reason::Rejected | Reason::MaxAttempts => {
                q.counters.dead_lettered += 1;
                q.settings.dead_letter_address.clone()
            }
        };
        let original = q.address().to_owned();
        // A message that expires in its own expiry address (or dead-letters into itself) would loop.
        let Some(target) = target.filter(|t| *t != original && *t != q.name) else {
            q.counters.dropped += 1;
            return;
        };
        let mut annotations = vec![(Symbol::from(ORIGINAL_ADDRESS), Value::String(original))];
        match reason {
            Reason::Expired => {
                annotations.push((Symbol::from(EXPIRED), Value::Timestamp(now as i64)));
            }
            Reason::Rejected => annotations.push((
                Symbol::from(DEAD_LETTER_REASON),
                Value::String("rejected".into()),
            )),
            Reason::MaxAttempts => annotations.push((
                Symbol::from(DEAD_LETTER_REASON),
                Value::String("max-delivery-attempts".into()),
            )),
        }
        // The copy keeps its attempts in the header and loses its TTL (it would expire again at once).
        let mut header =
            shoal_amqp::message::read_header(&entry.body).unwrap_or_else(|_| Header::default());
        header.delivery_count = entry.delivery_count;
        header.ttl = None;
        let body =
            match shoal_amqp::message::rewrite_message(&entry.body, Some(&header), &annotations) {
                Ok(b) => b,
                Err(_) => entry.body.clone(),
            };
        let message = NewMessage {
            body,
            durable: entry.durable,
            header_count: entry.delivery_count,
            ttl: None,
            absolute_expiry: None,
            internal: true,
        };
        if self.publish(&target, message).is_err() {
            if let Some(q) = self.queue_mut(key) {
                q.counters.dropped += 1;
            }
        }
    }
}
