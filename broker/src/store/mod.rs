//! Durable storage for the broker, behind a trait that names no storage engine.
//!
//! CONTRACT (the lead's first cut; the storage engineer owns this module and may refine it, keeping the
//! broker-facing shape): a store is a set of named queues, each an ordered log of messages keyed by a
//! per-queue sequence number, plus an index of message deadlines for TTL. Every change is a batch of [`Op`]s
//! applied atomically; `sync: true` means the batch is on disk (fsync'd WAL) when `write` returns.

use bytes::Bytes;

/// A queue in the store: durable queues, and the queues behind durable subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMeta {
    /// Queue name (an address, or `topic::subscription-name` for a subscription's queue).
    pub name: String,
    /// Opaque settings the broker keeps with the queue (encoded by the broker).
    pub config: Bytes,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in its queue: FIFO order, assigned by the broker, strictly increasing per queue.
    pub seq: u64,
    /// Failed delivery attempts so far (the message's header `delivery-count` on redelivery).
    pub delivery_count: u32,
    /// When it expires (milliseconds since the Unix epoch), if it has a TTL.
    pub expires_at: Option<u64>,
    /// The encoded AMQP message (all sections), as the broker will deliver it.
    pub body: Bytes,
}

/// One change, applied with others atomically by [`Store::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateQueue(QueueMeta),
    /// Drop a queue and every message in it.
    DeleteQueue { queue: String },
    /// Insert or overwrite a message.
    Put { queue: String, message: StoredMessage },
    /// Remove a message (consumed, expired, dead-lettered).
    Delete { queue: String, seq: u64 },
}

/// A message whose deadline has passed, from the TTL index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub queue: String,
    pub seq: u64,
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage engine. Methods block (call them from a blocking thread, e.g. the group-commit writer).
pub trait Store: Send + Sync + 'static {
    /// Apply `ops` atomically; with `sync`, they are durable when this returns.
    fn write(&self, ops: &[Op], sync: bool) -> Result<()>;
    /// Every queue, sorted by name.
    fn queues(&self) -> Result<Vec<QueueMeta>>;
    /// Up to `limit` messages of `queue` with `seq >= from`, in seq order.
    fn scan(&self, queue: &str, from: u64, limit: usize) -> Result<Vec<StoredMessage>>;
    /// The highest seq stored in `queue` (to continue numbering after a restart).
    fn last_seq(&self, queue: &str) -> Result<Option<u64>>;
    /// Up to `limit` messages whose `expires_at <= now`, earliest first.
    fn expired(&self, now: u64, limit: usize) -> Result<Vec<Expired>>;
    /// The earliest deadline in the TTL index, if any (so the purge task can sleep until then).
    fn next_deadline(&self) -> Result<Option<u64>>;
}
