//! One queue's state: the window of messages in memory, what is paged out to the store, consumers, counters.
//!
//! The store is the truth; memory holds a window. While the window has room and nothing is paged out, a new
//! message lives in memory (durable ones are also written to the store). Once the window is full, new
//! messages only go to the store (the "paged" region, always the newest seqs) and come back in order, a
//! window's worth at a time, as the window drains. So memory is bounded by the window plus what consumers hold
//! unsettled (bounded by their credit), however many messages are stored.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use shoal_router::core::api::LinkKey;

use crate::config::AddressSettings;
use crate::meta::{QueueRecord, Role};
use crate::selector::Selector;
use crate::stats::QueueCounters;
use crate::store::StoredMessage;

/// The core's key for a queue: slab index and generation (a stale key never reaches a newer queue).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct QueueKey {
    pub index: u32,
    pub generation: u32,
}

/// One message of a queue.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub seq: u64,
    /// The encoded message as received (its header's delivery-count is `header_count`).
    pub body: Bytes,
    pub durable: bool,
    pub header_count: u32,
    /// The delivery-count it carries on its next delivery.
    pub delivery_count: u32,
    /// Milliseconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// A `Put` for it went to the store: it needs a `Delete` when it leaves.
    pub stored: bool,
}

impl Entry {
    pub fn size(&self) -> u64 {
        self.body.len() as u64
    }

    /// Failed deliveries in this broker.
    pub fn attempts(&self) -> u32 {
        self.delivery_count.saturating_sub(self.header_count)
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|t| t <= now_ms)
    }

    pub fn to_stored(&self) -> StoredMessage {
        StoredMessage {
            seq: self.seq,
            delivery_count: self.delivery_count,
            expires_at: self.expires_at,
            body: self.body.clone(),
        }
    }

    /// The bytes to deliver: the stored ones, with the header rewritten when the delivery-count moved on.
    pub fn delivery_body(&self) -> Bytes {
        if self.delivery_count == self.header_count {
            return self.body.clone();
        }
        shoal_amqp::message::with_delivery_count(&self.body, self.delivery_count)
            .unwrap_or_else(|_| self.body.clone())
    }

    /// An entry loaded from the store.
    pub fn from_stored(m: StoredMessage) -> Entry {
        let header = shoal_amqp::message::read_header(&m.body).unwrap_or_default();
        Entry {
            seq: m.seq,
            durable: header.durable,
            header_count: header.delivery_count,
            delivery_count: m.delivery_count.max(header.delivery_count),
            expires_at: m.expires_at,
            stored: true,
            body: m.body,
        }
    }
}

/// The part of a queue that is only in the store: seqs `from..=last` (with gaps where messages expired).
#[derive(Debug, Default)]
pub(crate) struct Paging {
    pub from: u64,
    pub last: u64,
    /// Every paged write up to this seq is in the store (writes complete in order).
    pub committed: u64,
    /// Messages in the region (an estimate after a restart: gaps are not known until read).
    pub count: u64,
    /// Their bytes (an estimate after a restart).
    pub bytes: u64,
    /// A read of the region is on its way.
    pub loading: bool,
    /// Seqs in the region the purge removed whose `Delete` may not be written yet: a read must skip them.
    pub purged: std::collections::BTreeSet<u64>,
}

impl Paging {
    pub fn active(&self) -> bool {
        self.from != 0 && self.from <= self.last
    }
}

pub(crate) struct Queue {
    pub generation: u32,
    /// The store name: the address for queues and declared subscriptions, `topic::name` for others.
    pub name: String,
    pub role: Role,
    pub settings: AddressSettings,
    /// `CreateQueue` went to the store.
    pub in_store: bool,
    pub next_seq: u64,
    /// Messages ready for consumers, in FIFO (seq) order.
    pub ready: BTreeMap<u64, Entry>,
    /// Failed messages waiting out their redelivery delay.
    pub delayed: HashMap<u64, Entry>,
    /// Delivered, outcome not known yet.
    pub unacked: u32,
    pub paging: Paging,
    pub consumers: Vec<LinkKey>,
    /// Where the next round-robin search for a consumer starts.
    pub next_consumer: usize,
    pub browsers: Vec<LinkKey>,
    /// Sender links to this queue's address (a subscription's senders are its topic's).
    pub producers: Vec<LinkKey>,
    /// Bytes of every message of the queue (in memory, unacked, delayed and paged).
    pub bytes: u64,
    pub counters: QueueCounters,
    /// The highest seq handed to a consumer.
    pub delivered: u64,
    /// The delivered watermark in the store: stored messages up to this seq may be delivered. It is written
    /// *before* such a delivery (see `Core::may_deliver`), so that after a crash every message that reached a
    /// consumer unsettled comes back with a higher delivery-count.
    pub delivered_saved: u64,
    /// A write moving `delivered_saved` forward to this seq is on its way.
    pub reserving: Option<u64>,
    /// The watermark found at start: stored messages up to it may have reached a consumer before.
    pub delivered_at_start: u64,
    /// A subscription collects only what this selects.
    pub filter: Option<Selector>,
    /// When a consumer last took a message (producer pacing).
    pub last_out: Option<tokio::time::Instant>,
    /// Listed in the core's set of queues to pump at the end of the batch.
    pub dirty: bool,
    /// Settings changed (or the watermark moved): rewrite the queue's record.
    pub record_dirty: bool,
}

impl Queue {
    pub fn new(generation: u32, name: String, role: Role, settings: AddressSettings) -> Queue {
        Queue {
            generation,
            name,
            role,
            settings,
            in_store: false,
            next_seq: 1,
            ready: BTreeMap::new(),
            delayed: HashMap::new(),
            unacked: 0,
            paging: Paging::default(),
            consumers: Vec::new(),
            next_consumer: 0,
            browsers: Vec::new(),
            producers: Vec::new(),
            bytes: 0,
            counters: QueueCounters::default(),
            delivered: 0,
            delivered_saved: 0,
            reserving: None,
            delivered_at_start: 0,
            filter: None,
            last_out: None,
            dirty: false,
            record_dirty: false,
        }
    }

    pub fn record(&self) -> QueueRecord {
        QueueRecord {
            role: self.role.clone(),
            settings: self.settings.clone(),
            // Any record written while a reservation is on its way carries it too, never an older watermark.
            delivered: self.delivered_saved.max(self.reserving.unwrap_or(0)),
            selector: self.filter.as_ref().map(|s| s.text().to_owned()),
        }
    }

    /// Messages held, wherever they are.
    pub fn depth(&self) -> u64 {
        self.ready.len() as u64
            + self.delayed.len() as u64
            + u64::from(self.unacked)
            + self.paging.count
    }

    /// At or over its byte limit.
    pub fn full(&self) -> bool {
        self.settings
            .max_size_bytes
            .is_some_and(|max| self.bytes >= max)
    }

    /// Producers should wait for consumers rather than page: the window is full (or pages) and a consumer took
    /// a message within `within` (see `BrokerConfig::pace_while_consumed_within`).
    pub fn paces(
        &self,
        window: usize,
        within: std::time::Duration,
        now: tokio::time::Instant,
    ) -> bool {
        !within.is_zero()
            && !self.window_has_room(window)
            && !self.consumers.is_empty()
            && self
                .last_out
                .is_some_and(|t| now.saturating_duration_since(t) < within)
    }

    /// A new message may live in memory (nothing newer is paged out, and the window has room).
    pub fn window_has_room(&self, window: usize) -> bool {
        !self.paging.active() && self.ready.len() < window
    }

    /// Take the next seq.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// A message written to the paged region.
    pub fn page_out(&mut self, seq: u64, size: u64) {
        if !self.paging.active() {
            self.paging.from = seq;
        }
        self.paging.last = seq;
        self.paging.count += 1;
        self.paging.bytes += size;
    }

    /// `seq` is in the paged region and written (so the purge may take it).
    pub fn paged_out(&self, seq: u64) -> bool {
        self.paging.active()
            && (self.paging.from..=self.paging.last).contains(&seq)
            && seq <= self.paging.committed
            && !self.paging.purged.contains(&seq)
    }

    /// The window is low and the paged region can be read.
    pub fn wants_load(&self, window: usize) -> bool {
        self.paging.active()
            && !self.paging.loading
            && self.paging.committed >= self.paging.from
            && self.ready.len() < (window / 2).max(1)
    }

    /// The store name of a subscription queue.
    pub fn subscription_name(topic: &str, name: &str) -> String {
        format!("{topic}::{name}")
    }

    /// The address a message of this queue was sent to (a subscription's is its topic).
    pub fn address(&self) -> &str {
        match &self.role {
            Role::Queue { .. } => &self.name,
            Role::Subscription { topic, .. } => topic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_amqp::{Body, Header, MessageBuilder};

    fn body(count: u32) -> Bytes {
        MessageBuilder {
            header: Some(Header {
                durable: true,
                delivery_count: count,
                ..Header::default()
            }),
            body: Body::Data(Bytes::from_static(b"x")),
            ..MessageBuilder::default()
        }
        .to_bytes()
    }

    #[test]
    fn delivery_body_rewrites_only_after_failures() {
        let stored = StoredMessage {
            seq: 4,
            delivery_count: 0,
            expires_at: None,
            body: body(0),
        };
        let mut e = Entry::from_stored(stored);
        assert!(e.durable);
        assert_eq!(e.delivery_body(), e.body);
        e.delivery_count = 2;
        let h = shoal_amqp::message::read_header(&e.delivery_body()).unwrap();
        assert_eq!(h.delivery_count, 2);
        assert_eq!(e.attempts(), 2);
    }

    #[test]
    fn a_stored_count_below_the_header_keeps_the_header() {
        let e = Entry::from_stored(StoredMessage {
            seq: 1,
            delivery_count: 0,
            expires_at: Some(10),
            body: body(3),
        });
        assert_eq!(e.delivery_count, 3);
        assert_eq!(e.attempts(), 0);
        assert!(e.expired(10));
        assert!(!e.expired(9));
    }

    #[test]
    fn paging_tracks_its_region() {
        let mut q = Queue::new(
            1,
            "q".into(),
            Role::Queue { auto: false },
            AddressSettings::default(),
        );
        assert!(q.window_has_room(1));
        assert!(!q.paging.active());
        let s1 = q.take_seq();
        let s2 = q.take_seq();
        q.page_out(s1, 10);
        q.page_out(s2, 10);
        assert!(q.paging.active());
        assert_eq!((q.paging.from, q.paging.last, q.paging.count), (1, 2, 2));
        assert!(!q.window_has_room(100));
        assert!(!q.wants_load(100), "nothing committed yet");
        q.paging.committed = 2;
        assert!(q.wants_load(100));
    }
}
