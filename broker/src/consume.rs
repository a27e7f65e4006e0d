//! Messages leaving: consumers' credit, FIFO delivery to competing consumers, browsing, outcomes, redelivery,
//! and reading paged-out messages back into the window.

use shoal_amqp::DeliveryState;
use shoal_router::core::api::{Chunks, Command, DeliveryKey, LinkKey, Msg};
use tokio::time::Instant;

use crate::core::{Core, LinkKind, Unacked};
use crate::dead::Reason;
use crate::persist::Done;
use crate::queue::{Entry, QueueKey};
use crate::store::{self, Op, StoredMessage};

/// The most messages one watermark write covers (see `Core::may_deliver`).
const RESERVE_AHEAD: u64 = 1024;

impl Core {
    /// A receiver's flow: new credit, maybe drain.
    pub(crate) fn credit(&mut self, key: LinkKey, limit: u32, drain: bool) {
        let Some(LinkKind::Consumer(c)) = self.link_mut(key).map(|l| &mut l.kind) else {
            return;
        };
        c.limit = limit;
        c.drain = drain;
        let queue = c.queue;
        self.mark(queue);
        if self.queue(queue).is_none() {
            // Its queue was deleted: nothing will ever come, so a drain is answered now.
            self.answer_drain(key, true);
        }
    }

    /// Send consumers what is ready, as far as their credit goes; answer drains when nothing is left.
    pub(crate) fn pump(&mut self, key: QueueKey) {
        let now = self.clock.now_ms();
        if self.selective(key) {
            self.pump_selective(key, now);
        }
        loop {
            let Some(q) = self.queue(key) else { return };
            let Some((&seq, _)) = q.ready.first_key_value() else {
                break;
            };
            let Some(consumer) = self.pick_consumer(key) else {
                break;
            };
            if !self.may_deliver(key, seq) {
                break;
            }
            let Some(q) = self.queue_mut(key) else { return };
            let Some(entry) = q.ready.remove(&seq) else {
                break;
            };
            self.expiry.remove(entry.expires_at, key, seq);
            if entry.expired(now) {
                self.dead_letter(key, entry, Reason::Expired);
                continue;
            }
            self.deliver(key, consumer, entry);
        }
        self.browse(key);
        let Some(q) = self.queue(key) else { return };
        // Nothing more can come right now: drains are answered (not while paged messages are on their way). A
        // consumer with a selector still holding credit after the pump selects none of what is ready.
        // Nor while a watermark write holds deliveries back.
        let waiting = q.paging.active() || q.reserving.is_some();
        let exhausted = q.ready.is_empty() && !waiting;
        let selective_exhausted = !waiting;
        let consumers = q.consumers.clone();
        for c in consumers {
            let selective = matches!(self.link(c).map(|l| &l.kind),
                Some(LinkKind::Consumer(c)) if c.selector.is_some());
            self.answer_drain(
                c,
                if selective {
                    selective_exhausted
                } else {
                    exhausted
                },
            );
        }
    }

    /// Whether the ready message `seq` may go to a consumer now. A stored message of a durable queue may only
    /// once the queue's delivered watermark in the store covers it: otherwise a crash right after the
    /// delivery would bring it back with its old delivery-count, as if nobody had seen it. When it does not,
    /// a write moves the watermark over the ready messages the consumers' credit can take now (one write per
    /// credit window, not per delivery), and the queue pumps again when that write is done. Should a consumer
    /// go before using that credit, messages covered but never delivered come back after a crash with one
    /// attempt too many: a bounded overcount, never an undercount.
    fn may_deliver(&mut self, key: QueueKey, seq: u64) -> bool {
        let Some(q) = self.queue(key) else {
            return false;
        };
        // Non-durable messages may be lost in a crash anyway (they are only paged to the store for room), so
        // their delivery-count after one does not matter.
        let stored = q.ready.get(&seq).is_some_and(|e| e.stored && e.durable);
        if !stored || !q.role.durable() || seq <= q.delivered_saved {
            return true;
        }
        if q.reserving.is_some() {
            return false;
        }
        // As far as the consumers' credit can take messages now (at most RESERVE_AHEAD): so only messages
        // about to go out are covered, and a restart tells the others apart as never delivered.
        let credit: u64 = q
            .consumers
            .iter()
            .filter_map(|c| match self.link(*c).map(|l| &l.kind) {
                Some(LinkKind::Consumer(c)) => Some(u64::from(c.available())),
                _ => None,
            })
            .sum();
        let ahead = credit.clamp(1, RESERVE_AHEAD) as usize;
        let upto = q
            .ready
            .range(seq..)
            .take(ahead)
            .last()
            .map_or(seq, |(s, _)| *s);
        let Some(q) = self.queue_mut(key) else {
            return false;
        };
        q.reserving = Some(upto);
        let meta = store::QueueMeta {
            name: q.name.clone(),
            config: q.record().encode(),
        };
        self.ensure_in_store(key);
        self.batch.ops.push(Op::CreateQueue(meta));
        self.batch.done.push(Done::Reserved { queue: key, upto });
        false
    }

    fn answer_drain(&mut self, key: LinkKey, exhausted: bool) {
        let Some(link) = self.link_mut(key) else {
            return;
        };
        let (conn, local) = (link.conn, link.local);
        let LinkKind::Consumer(c) = &mut link.kind else {
            return;
        };
        if c.drain && c.available() > 0 && exhausted {
            c.sent = c.limit;
            c.drain = false;
            let limit = c.limit;
            self.send(conn, Command::Drained { local, limit });
        }
    }

    /// Some consumer of the queue has a selector.
    fn selective(&self, key: QueueKey) -> bool {
        self.queue(key).is_some_and(|q| {
            q.consumers.iter().any(|c| {
                matches!(self.link(*c).map(|l| &l.kind),
                    Some(LinkKind::Consumer(c)) if c.selector.is_some())
            })
        })
    }

    /// FIFO with selectors: each ready message, in order, goes to the next consumer with credit that selects
    /// it; messages nobody selects stay where they are (the plain pump after this leaves them too: it only
    /// runs while a consumer without a selector has credit).
    fn pump_selective(&mut self, key: QueueKey, now: u64) {
        let Some(q) = self.queue(key) else { return };
        let seqs: Vec<u64> = q.ready.keys().take(self.limits.window).copied().collect();
        for seq in seqs {
            let Some(q) = self.queue(key) else { return };
            let Some(entry) = q.ready.get(&seq) else {
                continue;
            };
            if entry.expired(now) {
                if let Some(entry) = self.queue_mut(key).and_then(|q| q.ready.remove(&seq)) {
                    self.expiry.remove(entry.expires_at, key, seq);
                    self.dead_letter(key, entry, Reason::Expired);
                }
                continue;
            }
            let n = q.consumers.len();
            let mut credit_left = false;
            let mut chosen = None;
            for i in 0..n {
                let slot = (q.next_consumer + i) % n;
                let link = q.consumers[slot];
                let Some(LinkKind::Consumer(c)) = self.link(link).map(|l| &l.kind) else {
                    continue;
                };
                if c.available() == 0 {
                    continue;
                }
                credit_left = true;
                if c.selector.as_ref().is_none_or(|s| s.matches(&entry.body)) {
                    chosen = Some((slot, link));
                    break;
                }
            }
            if !credit_left {
                break;
            }
            let Some((slot, link)) = chosen else { continue };
            if !self.may_deliver(key, seq) {
                break;
            }
            let Some(q) = self.queue_mut(key) else { return };
            q.next_consumer = (slot + 1) % n;
            let Some(entry) = q.ready.remove(&seq) else {
                continue;
            };
            self.expiry.remove(entry.expires_at, key, seq);
            self.deliver(key, link, entry);
        }
    }

    /// Round robin among the consumers with credit (and without a selector: those take what they select in
    /// [`Core::pump_selective`]).
    fn pick_consumer(&mut self, key: QueueKey) -> Option<LinkKey> {
        let q = self.queue(key)?;
        let n = q.consumers.len();
        for i in 0..n {
            let slot = (q.next_consumer + i) % n;
            let link = q.consumers[slot];
            let has_credit = matches!(
                self.link(link).map(|l| &l.kind),
                Some(LinkKind::Consumer(c)) if c.available() > 0 && c.selector.is_none()
            );
            if has_credit {
                if let Some(q) = self.queue_mut(key) {
                    q.next_consumer = (slot + 1) % n;
                }
                return Some(link);
            }
        }
        None
    }

    fn deliver(&mut self, key: QueueKey, to: LinkKey, entry: Entry) {
        let Some(link) = self.link_mut(to) else {
            // Cannot happen (picked among live links); keep the message rather than lose it.
            self.requeue(key, entry);
            return;
        };
        let (conn, local) = (link.conn, link.local);
        if let LinkKind::Consumer(c) = &mut link.kind {
            c.sent = c.sent.wrapping_add(1);
        }
        let body = entry.delivery_body();
        if let Some(q) = self.queue_mut(key) {
            q.last_out = Some(Instant::now());
            q.unacked += 1;
            q.delivered = q.delivered.max(entry.seq);
            q.counters.delivered += 1;
        }
        let generation = self.next_generation();
        let index = self.deliveries.insert(Unacked {
            generation,
            queue: key,
            link: to,
            entry,
        });
        let delivery = DeliveryKey::new(index as u32, generation);
        let mut msg = Msg::untracked(Chunks::One(body));
        msg.charge.activate();
        self.send(
            conn,
            Command::Deliver {
                local,
                delivery: Some(delivery),
                msg,
                more: false,
                address: None,
            },
        );
    }

    /// Browsers get presettled copies of what is ready, each from where it left off; past the window, of what is
    /// paged out, read from the store (one read per browser at a time, as far as its credit goes).
    fn browse(&mut self, key: QueueKey) {
        let Some(q) = self.queue(key) else { return };
        if q.browsers.is_empty() {
            return;
        }
        for b in q.browsers.clone() {
            let Some(q) = self.queue(key) else { return };
            let Some(link) = self.link(b) else { continue };
            let LinkKind::Consumer(c) = &link.kind else {
                continue;
            };
            let (Some(next), available, reading) = (c.browse, c.available(), c.browse_reading)
            else {
                continue;
            };
            if reading || available == 0 {
                continue;
            }
            let selector = c.selector.as_deref();
            let mut last_seen = None;
            let copies: Vec<(u64, bytes::Bytes)> = q
                .ready
                .range(next..)
                .inspect(|(seq, _)| last_seen = Some(**seq))
                .filter(|(_, e)| selector.is_none_or(|s| s.matches(&e.body)))
                .take(available as usize)
                .map(|(seq, e)| (*seq, e.delivery_body()))
                .collect();
            let mut next = next;
            // Past what it looked at, even where nothing was selected.
            if copies.len() < available as usize {
                if let Some(seen) = last_seen {
                    next = next.max(seen + 1);
                }
            }
            let left = available - copies.len() as u32;
            self.show(b, copies, next);
            let Some(q) = self.queue(key) else { return };
            // The window is shown: the rest is in the store (paged seqs are all above the window's).
            let paged_from = next.max(q.paging.from);
            if left > 0 && q.paging.active() && paged_from <= q.paging.committed {
                let (name, upto) = (q.name.clone(), q.paging.committed);
                if let Some(LinkKind::Consumer(c)) = self.link_mut(b).map(|l| &mut l.kind) {
                    c.browse_reading = true;
                }
                self.persist
                    .browse(b, key, name, paged_from, upto, left as usize);
                continue;
            }
            // Nothing left for this browser: it has seen the window and every paged message.
            let seen_paged = !q.paging.active() || next > q.paging.last;
            let exhausted = q.ready.range(next..).next().is_none() && seen_paged;
            self.answer_drain(b, exhausted);
        }
    }

    /// Send a browser its copies, and move its cursor past them (at least to `next`).
    fn show(&mut self, b: LinkKey, copies: Vec<(u64, bytes::Bytes)>, mut next: u64) {
        let Some(link) = self.link(b) else { return };
        let (conn, local) = (link.conn, link.local);
        let sent = copies.len() as u32;
        for (seq, body) in copies {
            next = next.max(seq + 1);
            let mut msg = Msg::untracked(Chunks::One(body));
            msg.charge.activate();
            self.send(
                conn,
                Command::Deliver {
                    local,
                    delivery: None,
                    msg,
                    more: false,
                    address: None,
                },
            );
        }
        if let Some(LinkKind::Consumer(c)) = self.link_mut(b).map(|l| &mut l.kind) {
            c.browse = Some(next);
            c.sent = c.sent.wrapping_add(sent);
        }
    }

    /// A browser's read of the paged region is back: show what its credit and selector take.
    pub(crate) fn browsed(
        &mut self,
        b: LinkKey,
        key: QueueKey,
        upto: u64,
        limit: usize,
        result: store::Result<Vec<StoredMessage>>,
    ) {
        let Some(LinkKind::Consumer(c)) = self.link_mut(b).map(|l| &mut l.kind) else {
            return;
        };
        c.browse_reading = false;
        let (Some(next), available) = (c.browse, c.available()) else {
            return;
        };
        let messages = match result {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("broker store read for a browser failed: {e}");
                return;
            }
        };
        // A short read saw everything up to `upto`.
        let complete = messages.len() < limit;
        let selector = match self.link(b).map(|l| &l.kind) {
            Some(LinkKind::Consumer(c)) => c.selector.as_deref(),
            _ => None,
        };
        let purged = self.queue(key).map(|q| &q.paging.purged);
        let mut last_seen = None;
        let copies: Vec<(u64, bytes::Bytes)> = messages
            .into_iter()
            .filter(|m| m.seq >= next && m.seq <= upto)
            .filter(|m| purged.is_none_or(|p| !p.contains(&m.seq)))
            .inspect(|m| last_seen = Some(m.seq))
            .filter(|m| selector.is_none_or(|s| s.matches(&m.body)))
            .take(available as usize)
            .map(|m| (m.seq, Entry::from_stored(m).delivery_body()))
            .collect();
        let mut next = last_seen.map_or(next, |s| next.max(s + 1));
        if complete && copies.len() < available as usize {
            next = next.max(upto + 1);
        }
        self.show(b, copies, next);
        // More may be paged beyond this read (or the credit may allow more): look again.
        self.mark(key);
    }

    /// A receiver's outcome for a delivery.
    pub(crate) fn outcome(
        &mut self,
        _from: Option<LinkKey>,
        delivery: DeliveryKey,
        state: DeliveryState,
    ) {
        if self.delivery(delivery).is_none() {
            return;
        }
        let (index, _) = delivery.parts();
        let Unacked {
            queue, mut entry, ..
        } = self.deliveries.remove(index as usize);
        let Some(q) = self.queue_mut(queue) else {
            return;
        };
        q.unacked = q.unacked.saturating_sub(1);
        match state {
            DeliveryState::Accepted => {
                q.counters.acked += 1;
                self.discard(queue, &entry);
            }
            DeliveryState::Rejected { .. } => self.dead_letter(queue, entry, Reason::Rejected),
            DeliveryState::Modified {
                delivery_failed: Some(true),
                ..
            } => {
                entry.delivery_count = entry.delivery_count.saturating_add(1);
                let attempts = entry.attempts();
                let max = q.settings.max_delivery_attempts;
                if max > 0 && attempts >= max {
                    self.dead_letter(queue, entry, Reason::MaxAttempts);
                    return;
                }
                let delay = q.settings.redelivery_delay_for(attempts);
                q.counters.redelivered += 1;
                if entry.stored {
                    // Remember the attempt across a restart (not synced: at worst one attempt is forgotten).
                    let op = Op::Put {
                        queue: q.name.clone(),
                        message: entry.to_stored(),
                    };
                    self.batch.ops.push(op);
                }
                if delay.is_zero() {
                    self.requeue(queue, entry);
                } else {
                    let Some(q) = self.queue_mut(queue) else {
                        return;
                    };
                    let seq = entry.seq;
                    q.delayed.insert(seq, entry);
                    self.redeliveries
                        .insert((Instant::now() + delay, queue, seq));
                }
            }
            // Released, modified without a failure, or anything else: back at once, in its place.
            _ => {
                q.counters.redelivered += 1;
                self.requeue(queue, entry);
            }
        }
    }

    /// Back into the ready set (in seq order: ahead of everything that came after it).
    pub(crate) fn requeue(&mut self, key: QueueKey, entry: Entry) {
        if entry.expired(self.clock.now_ms()) {
            self.dead_letter(key, entry, Reason::Expired);
            return;
        }
        let Some(q) = self.queue_mut(key) else { return };
        let (deadline, seq) = (entry.expires_at, entry.seq);
        q.ready.insert(seq, entry);
        self.expiry.insert(deadline, key, seq);
        self.mark(key);
    }

    pub(crate) fn redeliver_due(&mut self, key: QueueKey, seq: u64) {
        let Some(entry) = self.queue_mut(key).and_then(|q| q.delayed.remove(&seq)) else {
            return;
        };
        self.requeue(key, entry);
    }

    /// Paged-out messages read back from the store.
    pub(crate) fn loaded(
        &mut self,
        key: QueueKey,
        upto: u64,
        limit: usize,
        result: store::Result<Vec<StoredMessage>>,
    ) {
        self.paged_expiry.loads = self.paged_expiry.loads.saturating_sub(1);
        let Some(q) = self.queue_mut(key) else { return };
        q.paging.loading = false;
        let messages = match result {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(queue = %q.name, "reading paged messages failed: {e}");
                return;
            }
        };
        let from = q.paging.from;
        let full_read = messages.len() >= limit;
        let mut last = None;
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            if m.seq < from || m.seq > upto {
                continue;
            }
            last = Some(m.seq);
            if !q.paging.purged.contains(&m.seq) {
                let mut e = Entry::from_stored(m);
                // Delivered before a restart (see `restore`), read back only now.
                if e.seq <= q.delivered_at_start {
                    e.delivery_count = e.delivery_count.saturating_add(1);
                }
                entries.push(e);
            }
        }
        q.paging.from = match (full_read, last) {
            (true, Some(last)) => last + 1,
            _ => upto + 1,
        };
        q.paging.count = q.paging.count.saturating_sub(entries.len() as u64);
        let from = q.paging.from;
        q.paging.purged.retain(|seq| *seq >= from);
        if !q.paging.active() {
            q.paging.count = 0;
            q.paging.bytes = 0;
        }
        for e in entries {
            if let Some(q) = self.queue_mut(key) {
                q.paging.bytes = q.paging.bytes.saturating_sub(e.size());
            }
            self.requeue(key, e);
        }
        self.mark(key);
    }
}
