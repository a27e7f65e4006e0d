//! Durable storage for the broker, behind a trait that names no storage engine.
//!
//! A store is a set of named queues, each an ordered log of messages keyed by a per-queue sequence number,
//! plus an index of message deadlines for TTL. Every change is a batch of [`Op`]s applied atomically;
//! `sync: true` means the batch is on disk (fsync'd WAL) when `write` returns.
//!
//! - [`MemoryStore`]: BTreeMaps, for tests and non-durable brokers.
//! - [`RocksStore`]: RocksDB, the durable store (layout in docs/adr/0005-broker-storage.md).
//! - [`GroupCommit`]: one writer thread that merges concurrent batches into one synced write, so a durable
//!   broker pays one fsync per group of messages rather than one per message.
//!
//! Semantics every implementation follows (the conformance suite in `conformance.rs` checks them):
//! - Ops in a batch apply in order, all or none: if one fails (e.g. [`StoreError::NoSuchQueue`]), the store
//!   is unchanged.
//! - `CreateQueue` of an existing queue replaces its config and keeps its messages.
//! - `Put` into a queue that does not exist (yet, in this batch or before) fails with `NoSuchQueue`: silently
//!   dropping a message would break "nothing acknowledged is ever lost".
//! - `DeleteQueue` of a missing queue and `Delete` of a missing message (or in a missing queue) are no-ops, so
//!   a retried or racing delete is harmless.
//! - `Put` over an existing seq replaces the message, including its deadline in the TTL index.
//! - Reads of a missing queue are empty (`scan` -> `[]`, `last_seq` -> `None`).

use bytes::Bytes;

mod commit;
mod memory;
mod rocks;

#[cfg(test)]
mod conformance;

pub use commit::{CommitStats, CommitWorker, GroupCommit, Request, SubmitError, DEFAULT_QUEUE};
pub use memory::MemoryStore;
pub use rocks::RocksStore;

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
    /// Create a queue, or replace the config of an existing one (its messages stay).
    CreateQueue(QueueMeta),
    /// Drop a queue and every message in it (and their TTL entries). No-op if it does not exist.
    DeleteQueue { queue: String },
    /// Insert or overwrite a message. The queue must exist (or be created earlier in the same batch).
    Put {
        queue: String,
        message: StoredMessage,
    },
    /// Remove a message (consumed, expired, dead-lettered). No-op if it does not exist.
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
    /// A `Put` named a queue that does not exist; the whole batch was rejected.
    #[error("no such queue: {0}")]
    NoSuchQueue(String),
    /// The group-commit writer has stopped (its thread ended), so the batch was not written.
    #[error("store writer stopped")]
    Closed,
}

impl StoreError {
    /// A copy of this error, for reporting one failed group write to every request in the group
    /// (`io::Error` is not `Clone`, so it keeps its kind and message).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Engine(s) => StoreError::Engine(s.clone()),
            StoreError::Corrupt { what, detail } => StoreError::Corrupt {
                what,
                detail: detail.clone(),
            },
            StoreError::Io(e) => StoreError::Io(std::io::Error::new(e.kind(), e.to_string())),
            StoreError::NoSuchQueue(q) => StoreError::NoSuchQueue(q.clone()),
            StoreError::Closed => StoreError::Closed,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage engine. Methods block (call them from a blocking thread, e.g. the group-commit writer).
pub trait Store: Send + Sync + 'static {
    /// Apply `ops` atomically, in order; with `sync`, they are durable when this returns.
    fn write(&self, ops: &[Op], sync: bool) -> Result<()>;
    /// Every queue, sorted by name.
    fn queues(&self) -> Result<Vec<QueueMeta>>;
    /// Up to `limit` messages of `queue` with `seq >= from`, in seq order. Scan from the queue's known head
    /// rather than 0: an engine with tombstones (RocksDB) then seeks past consumed messages instead of
    /// stepping over them.
    fn scan(&self, queue: &str, from: u64, limit: usize) -> Result<Vec<StoredMessage>>;
    /// The highest seq stored in `queue` (to continue numbering after a restart). Only stored messages
    /// count: once every message is deleted this is `None`, and numbering may restart.
    fn last_seq(&self, queue: &str) -> Result<Option<u64>>;
    /// Up to `limit` messages whose `expires_at <= now`, earliest first (ties in no promised order).
    fn expired(&self, now: u64, limit: usize) -> Result<Vec<Expired>>;
    /// The earliest deadline in the TTL index, if any (so the purge task can sleep until then).
    fn next_deadline(&self) -> Result<Option<u64>>;
}
