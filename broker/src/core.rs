//! The broker core: one task owns every queue, topic, link and unsettled delivery.
//!
//! Like the router's core it drains its inputs in batches (connection events, storage completions, admin
//! requests, timers), never awaits anything else, and at the end of each pass: pumps the queues that changed,
//! hands the pass's store changes to the group-commit writer as one batch, and flushes each connection's
//! outbox once. Nobody is told "accepted" before the write covering their message has returned.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shoal_router::core::api::{
    Command, ConnId, CoreMsg, DeliveryKey, Event, LinkKey, LocalLink, Outbox,
};
use slab::Slab;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::admin::Control;
use crate::clock::Clock;
use crate::config::{AddressSettings, BrokerConfig};
use crate::persist::{Batch, Done, Internal, Persister};
use crate::queue::{Entry, Queue, QueueKey};
use crate::selector::Selector;
use crate::ttl::{ExpiryIndex, PagedExpiry};

/// Channel messages taken per wake-up before the end-of-pass work.
const BATCH: usize = 64;
/// Expired messages purged per pass (the rest on the next pass, so one huge expiry cannot stall the core).
const PURGE_PER_PASS: usize = 1024;
/// How soon to retry handing batches to a writer whose queue was full.
const STALL_RETRY: Duration = Duration::from_millis(1);

/// What the core needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub link_capacity: u32,
    pub window: usize,
    pub auto_create: bool,
    pub pace_within: std::time::Duration,
}

impl Limits {
    pub fn of(config: &BrokerConfig) -> Limits {
        Limits {
            link_capacity: config.link_capacity.max(1),
            window: config.window.max(1),
            auto_create: config.auto_create_queues,
            pace_within: config.pace_while_consumed_within,
        }
    }
}

pub(crate) struct ConnEntry {
    pub outbox: Arc<Outbox>,
    pub pending: Vec<Command>,
    pub links: Vec<LinkKey>,
}

pub(crate) struct Link {
    pub generation: u32,
    pub conn: ConnId,
    pub local: LocalLink,
    pub kind: LinkKind,
}

pub(crate) enum LinkKind {
    Producer(Producer),
    Consumer(Consumer),
}

/// A client's sender: the broker receives.
pub(crate) struct Producer {
    /// The target address (`None`: anonymous, each message names its `to`).
    pub address: Option<String>,
    /// Credit the sender holds.
    pub credit: u32,
    /// Messages received and not yet stored (each holds a credit slot).
    pub in_flight: u32,
    /// A message arriving in parts.
    pub partial: Option<Partial>,
}

pub(crate) struct Partial {
    pub delivery_id: u32,
    pub settled: bool,
    pub to: Option<String>,
    pub chunks: Vec<bytes::Bytes>,
}

/// A client's receiver: the broker sends.
pub(crate) struct Consumer {
    pub queue: QueueKey,
    /// The receiver may take deliveries while `sent` is before `limit` (delivery-count sequence numbers).
    pub limit: u32,
    pub sent: u32,
    pub drain: bool,
    /// Browsing (`distribution-mode: copy`): the next seq to show; nothing is consumed.
    pub browse: Option<u64>,
    /// A browser's read of the paged-out region is on its way.
    pub browse_reading: bool,
    /// Only messages this selects (a selector on a queue; on a topic it filters the subscription instead).
    pub selector: Option<Box<Selector>>,
}

impl Consumer {
    pub fn available(&self) -> u32 {
        let gap = self.limit.wrapping_sub(self.sent) as i32;
        gap.max(0) as u32
    }
}

/// A delivery waiting for its outcome.
pub(crate) struct Unacked {
    pub generation: u32,
    pub queue: QueueKey,
    pub link: LinkKey,
    pub entry: Entry,
}

/// A topic: its subscriptions and its senders.
pub(crate) struct Topic {
    pub settings: AddressSettings,
    pub subs: Vec<QueueKey>,
    pub producers: Vec<LinkKey>,
}

pub(crate) enum Addr {
    /// A queue, or a declared subscription (consumed at its own address).
    Queue(QueueKey),
    Topic(Topic),
}

pub(crate) struct Core {
    /// The broker is closing its connections: unsettled deliveries come back as released, not as failed
    /// attempts (a restart marks them delivered).
    pub quiescing: bool,
    pub limits: Limits,
    rx: mpsc::Receiver<CoreMsg>,
    control: mpsc::Receiver<Control>,
    internal_rx: mpsc::Receiver<Internal>,
    pub conns: HashMap<ConnId, ConnEntry>,
    touched: Vec<ConnId>,
    pub links: Slab<Link>,
    generation: u32,
    pub queues: Slab<Queue>,
    /// Store name -> queue.
    pub queue_names: HashMap<String, QueueKey>,
    /// Address -> queue or topic.
    pub addresses: HashMap<String, Addr>,
    pub deliveries: Slab<Unacked>,
    pub expiry: ExpiryIndex,
    /// When to purge paged-out messages through the store's TTL index.
    pub paged_expiry: PagedExpiry,
    /// (due, queue, seq) of messages waiting out a redelivery delay.
    pub redeliveries: BTreeSet<(Instant, QueueKey, u64)>,
    /// Queues whose producers wait for credit because of pacing (see `BrokerConfig::pace_while_consumed_within`):
    /// checked again when their consumers' grace runs out.
    pub paced: BTreeSet<QueueKey>,
    /// Queues to pump at the end of the pass.
    pub dirty: Vec<QueueKey>,
    pub batch: Batch,
    pub persist: Persister,
    pub clock: Clock,
    /// Names private subscriptions uniquely.
    pub private_seq: u64,
}

impl Core {
    pub fn new(
        limits: Limits,
        rx: mpsc::Receiver<CoreMsg>,
        control: mpsc::Receiver<Control>,
        internal_rx: mpsc::Receiver<Internal>,
        persist: Persister,
    ) -> Core {
        Core {
            quiescing: false,
            limits,
            rx,
            control,
            internal_rx,
            conns: HashMap::new(),
            touched: Vec::new(),
            links: Slab::new(),
            generation: 0,
            queues: Slab::new(),
            queue_names: HashMap::new(),
            addresses: HashMap::new(),
            deliveries: Slab::new(),
            expiry: ExpiryIndex::default(),
            paged_expiry: PagedExpiry::default(),
            redeliveries: BTreeSet::new(),
            paced: BTreeSet::new(),
            dirty: Vec::new(),
            batch: Batch::default(),
            persist,
            clock: Clock::new(),
            private_seq: 0,
        }
    }

    /// Run until shut down (or until every connection sender is gone).
    pub async fn run(mut self) {
        let mut msgs = Vec::with_capacity(BATCH);
        let mut internal = Vec::with_capacity(BATCH);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                n = self.internal_rx.recv_many(&mut internal, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for m in internal.drain(..) {
                        self.internal(m);
                    }
                }
                c = self.control.recv() => match c {
                    Some(Control::Shutdown(reply)) => {
                        shutdown = Some(reply);
                        break;
                    }
                    Some(c) => self.control(c),
                    None => break,
                },
                n = self.rx.recv_many(&mut msgs, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for m in msgs.drain(..) {
                        self.handle(m);
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
            self.timers();
            self.end_of_pass();
        }
        // What this pass collected still goes to the writer, which drains its queue before it stops.
        self.end_of_pass();
        self.persist.retry();
        drop(self.persist);
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let expiry = self.expiry.next().map(|ms| self.clock.instant_of(ms));
        let stored = self.paged_expiry.due().map(|ms| self.clock.instant_of(ms));
        let redelivery = self.redeliveries.first().map(|(at, _, _)| *at);
        let stall = self.persist.stalled().then(|| Instant::now() + STALL_RETRY);
        let pacing = self
            .paced
            .iter()
            .filter_map(|q| self.queue(*q)?.last_out)
            .min()
            .map(|t| t + self.limits.pace_within);
        [expiry, stored, redelivery, stall, pacing]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Open { conn, outbox, .. } => {
                self.conns.insert(
                    conn,
                    ConnEntry {
                        outbox,
                        pending: Vec::new(),
                        links: Vec::new(),
                    },
                );
            }
            CoreMsg::Batch { conn, events } => {
                for event in events {
                    self.event(conn, event);
                }
            }
            CoreMsg::Closed { conn } => {
                let Some(mut entry) = self.conns.remove(&conn) else {
                    return;
                };
                // Deliveries the connection never saw come back now.
                let mut unseen = std::mem::take(&mut entry.pending);
                entry.outbox.take_more(&mut unseen);
                for command in unseen {
                    if let Command::Deliver {
                        delivery: Some(delivery),
                        ..
                    } = command
                    {
                        self.outcome(None, delivery, shoal_amqp::DeliveryState::Released);
                    }
                }
                for link in entry.links {
                    self.detach(link, false);
                }
            }
            // The router's management requests have no meaning here (the broker's come on its own channel).
            CoreMsg::Admin(_) => {}
        }
    }

    fn event(&mut self, conn: ConnId, event: Event) {
        match event {
            Event::AttachIncoming(req) => self.attach_producer(conn, req),
            Event::AttachOutgoing(req) => self.attach_consumer(conn, req),
            Event::Detach { link, closed, .. } => {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.links.retain(|l| *l != link);
                }
                self.detach(link, closed);
            }
            Event::Transfer {
                link,
                delivery_id,
                settled,
                to,
                msg,
                more,
            } => self.transfer(link, delivery_id, settled, to, msg, more),
            Event::TransferMore {
                link,
                msg,
                more,
                aborted,
            } => self.transfer_more(link, msg, more, aborted),
            Event::Credit { link, limit, drain } => self.credit(link, limit, drain),
            Event::Outcome {
                link,
                delivery,
                state,
            } => self.outcome(link, delivery, state),
            // The consumer went away holding it: it may have been processed, so this was an attempt (the next
            // delivery says so with a higher delivery-count).
            Event::Unsettled { link, delivery } => {
                let state = if self.quiescing {
                    shoal_amqp::DeliveryState::Released
                } else {
                    shoal_amqp::DeliveryState::Modified {
                        delivery_failed: Some(true),
                        undeliverable_here: None,
                        message_annotations: None,
                    }
                };
                self.outcome(link, delivery, state)
            }
            // The broker opens no links of its own (those are a router's, towards route containers).
            Event::RouteAttached { .. } | Event::SenderFlow { .. } => {}
        }
    }

    fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Stored { done, result } => {
                if let Err(e) = &result {
                    tracing::error!("broker store write failed: {e}");
                }
                for d in done {
                    match d {
                        Done::Stored { link, delivery_id } => {
                            self.stored(link, delivery_id, result.is_ok())
                        }
                        Done::Paged { queue, seq } => {
                            if let Some(q) = self.queue_mut(queue) {
                                q.paging.committed = q.paging.committed.max(seq);
                                self.mark(queue);
                            }
                        }
                        Done::Reserved { queue, upto } => {
                            if let Some(q) = self.queue_mut(queue) {
                                q.reserving = None;
                                q.delivered_saved = q.delivered_saved.max(upto);
                                self.mark(queue);
                            }
                        }
                        Done::Reply(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            }
            Internal::Expired { result } => self.purge_paged(result),
            Internal::Loaded {
                queue,
                upto,
                limit,
                result,
            } => self.loaded(queue, upto, limit, result),
            Internal::Browsed {
                link,
                queue,
                upto,
                limit,
                result,
            } => self.browsed(link, queue, upto, limit, result),
        }
    }

    /// Purge what expired; put back what waited out its redelivery delay.
    fn timers(&mut self) {
        if !self.paced.is_empty() {
            // Pumping a paced queue gives its producers credit again if pacing no longer holds them.
            let now = Instant::now();
            let pace_within = self.limits.pace_within;
            let due: Vec<QueueKey> = self
                .paced
                .iter()
                .copied()
                .filter(|q| {
                    self.queue(*q)
                        .is_none_or(|q| q.last_out.is_none_or(|t| t + pace_within <= now))
                })
                .collect();
            for q in due {
                self.paced.remove(&q);
                self.mark(q);
            }
        }
        let now = self.clock.now_ms();
        if self.expiry.next().is_some_and(|d| d <= now) {
            for (queue, seq) in self.expiry.pop_due(now, PURGE_PER_PASS) {
                self.expire_ready(queue, seq);
            }
        }
        if self.paged_expiry.start(now) {
            self.persist.expired(now, PURGE_PER_PASS);
        }
        let now = Instant::now();
        while let Some((at, queue, seq)) = self.redeliveries.first().copied() {
            if at > now {
                break;
            }
            self.redeliveries.pop_first();
            self.redeliver_due(queue, seq);
        }
    }

    fn end_of_pass(&mut self) {
        // Pumping can dead-letter or expire into other queues, which then need pumping too; a bound keeps one
        // pass finite whatever the configuration (e.g. two dead-letter addresses pointing at each other).
        for _ in 0..8 {
            if self.dirty.is_empty() {
                break;
            }
            let dirty = std::mem::take(&mut self.dirty);
            for key in dirty {
                if let Some(q) = self.queue_mut(key) {
                    q.dirty = false;
                    self.pump(key);
                    self.after_pump(key);
                }
            }
        }
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.persist.submit(batch);
        } else {
            self.persist.retry();
        }
        self.flush();
    }

    /// Queue-level work after a pump: read more of the paged region, rewrite the record, unblock senders.
    fn after_pump(&mut self, key: QueueKey) {
        let window = self.limits.window;
        let may_load = self.paged_expiry.may_load();
        let Some(q) = self.queue_mut(key) else { return };
        if q.wants_load(window) && may_load {
            q.paging.loading = true;
            let limit = window - q.ready.len();
            let (name, from, upto) = (q.name.clone(), q.paging.from, q.paging.committed);
            self.paged_expiry.loads += 1;
            self.persist.load(key, name, from, upto, limit);
        }
        let Some(q) = self.queue_mut(key) else { return };
        if q.in_store && q.role.durable() && q.record_dirty {
            q.record_dirty = false;
            let meta = crate::store::QueueMeta {
                name: q.name.clone(),
                config: q.record().encode(),
            };
            self.batch.ops.push(crate::store::Op::CreateQueue(meta));
        }
        let Some(q) = self.queue(key) else { return };
        if !q.full() {
            let producers = match q.role.topic() {
                None => q.producers.clone(),
                Some(topic) => match self.addresses.get(topic) {
                    Some(Addr::Topic(t)) => t.producers.clone(),
                    _ => Vec::new(),
                },
            };
            for p in producers {
                self.replenish(p);
            }
        }
    }

    // ---- bookkeeping -------------------------------------------------------------------------------------

    pub fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    pub fn link(&self, key: LinkKey) -> Option<&Link> {
        let (index, generation) = key.parts();
        self.links
            .get(index as usize)
            .filter(|l| l.generation == generation)
    }

    pub fn link_mut(&mut self, key: LinkKey) -> Option<&mut Link> {
        let (index, generation) = key.parts();
        self.links
            .get_mut(index as usize)
            .filter(|l| l.generation == generation)
    }

    pub fn queue(&self, key: QueueKey) -> Option<&Queue> {
        self.queues
            .get(key.index as usize)
            .filter(|q| q.generation == key.generation)
    }

    pub fn queue_mut(&mut self, key: QueueKey) -> Option<&mut Queue> {
        self.queues
            .get_mut(key.index as usize)
            .filter(|q| q.generation == key.generation)
    }

    pub fn delivery(&self, key: DeliveryKey) -> Option<&Unacked> {
        let (index, generation) = key.parts();
        self.deliveries
            .get(index as usize)
            .filter(|d| d.generation == generation)
    }

    /// Pump `key` at the end of the pass.
    pub fn mark(&mut self, key: QueueKey) {
        if let Some(q) = self.queue_mut(key) {
            if !q.dirty {
                q.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    pub fn send(&mut self, conn: ConnId, command: Command) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if entry.pending.is_empty() {
                self.touched.push(conn);
            }
            entry.pending.push(command);
        }
    }

    fn flush(&mut self) {
        for conn in self.touched.drain(..) {
            if let Some(entry) = self.conns.get_mut(&conn) {
                entry.outbox.push_batch(&mut entry.pending);
            }
        }
    }
}
