//! Group commit: one OS thread owns the store's write path and merges every batch waiting for it into one
//! `Store::write`, synced if any of them asked for it.
//!
//! Why: an fsync costs ~3.5 ms on this class of disk (~280/s), whatever it covers. Waiting producers are
//! exactly the ones that arrived during the previous fsync, so a group grows with load and one fsync
//! acknowledges all of them: throughput scales with concurrency while an idle broker's latency stays one fsync.
//!
//! A dedicated thread rather than a tokio worker: `write` blocks for the whole fsync, and a runtime worker
//! stuck there would stall every connection scheduled on it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{Op, Result, Store, StoreError};

/// Requests waiting for the writer, by default. Bounded so that producers feel back-pressure (their
/// `commit` waits) instead of the broker buffering without limit when the disk falls behind.
pub const DEFAULT_QUEUE: usize = 1024;

/// A group stops taking more requests past this many bytes of message bodies, so one write (and the memory
/// it pins) stays bounded when large messages pile up; the request that crosses it is still included.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// One batch on its way to the writer; `done` receives the outcome once the write covering it returned.
#[derive(Debug)]
pub struct Request {
    pub ops: Vec<Op>,
    pub sync: bool,
    pub done: oneshot::Sender<Result<()>>,
}

/// Why [`GroupCommit::submit`] did not take a request; the request comes back so that nothing is lost.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: the writer is behind. Retry later, or hold the request.
    Full(Request),
    /// The writer thread has stopped.
    Closed(Request),
}

/// Counters for benchmarks and metrics: `requests / writes` is the mean group size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Calls to `Store::write` for whole groups (not counting per-request retries after a failed group).
    pub writes: u64,
    /// Of which synced.
    pub synced_writes: u64,
    /// Requests completed (successfully or not).
    pub requests: u64,
    /// Ops in those requests.
    pub ops: u64,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    synced_writes: AtomicU64,
    requests: AtomicU64,
    ops: AtomicU64,
}

/// A handle to the group-commit writer. Cheap to clone; the writer drains its queue and stops once every
/// handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

/// The writer thread, to wait for after dropping every [`GroupCommit`] (e.g. on shutdown, so that the last
/// acknowledged writes have reached the store before the process exits).
pub struct CommitWorker {
    thread: JoinHandle<()>,
}

impl CommitWorker {
    /// Blocks until the writer has drained its queue and stopped. Call it from a blocking context.
    pub fn join(self) {
        // A panic in the writer already failed its pending requests (their senders were dropped).
        let _ = self.thread.join();
    }
}

impl GroupCommit {
    /// Starts the writer over `store` with a queue of [`DEFAULT_QUEUE`] requests.
    pub fn start(store: Arc<dyn Store>) -> std::io::Result<(GroupCommit, CommitWorker)> {
        GroupCommit::with_capacity(store, DEFAULT_QUEUE)
    }

    /// Starts the writer with room for `capacity` waiting requests (at least 1). This is also the largest
    /// group, since a group is what was waiting.
    pub fn with_capacity(
        store: Arc<dyn Store>,
        capacity: usize,
    ) -> std::io::Result<(GroupCommit, CommitWorker)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("shoal-store-commit".into())
            .spawn(move || run(store, rx, &thread_counters))?;
        Ok((GroupCommit { tx, counters }, CommitWorker { thread }))
    }

    /// Writes `ops` atomically (with others' batches), durably if `sync`; returns once that write returned.
    /// Waits for room when the writer's queue is full. Dropping the future after the batch was queued does
    /// not withdraw it: it may still be written.
    pub async fn commit(&self, ops: Vec<Op>, sync: bool) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.tx
            .send(Request { ops, sync, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a batch without waiting, for callers that must never block (the broker core, which gets the
    /// outcome on `done`). A full queue hands the request back rather than waiting.
    pub fn submit(
        &self,
        ops: Vec<Op>,
        sync: bool,
        done: oneshot::Sender<Result<()>>,
    ) -> std::result::Result<(), SubmitError> {
        self.tx
            .try_send(Request { ops, sync, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(r) => SubmitError::Full(r),
                mpsc::error::TrySendError::Closed(r) => SubmitError::Closed(r),
            })
    }

    /// Counters since the writer started.
    pub fn stats(&self) -> CommitStats {
        let c = &self.counters;
        CommitStats {
            writes: c.writes.load(Ordering::Relaxed),
            synced_writes: c.synced_writes.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
        }
    }
}

fn body_bytes(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| {
            if let Op::Put { message, .. } = op {
                message.body.len()
            } else {
                0
            }
        })
        .sum()
}

fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Request>, counters: &Counters) {
    // `None` once every handle is gone and the queue is empty: that is the shutdown.
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = body_bytes(&first.ops);
        let mut group = vec![first];
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(request) => {
                    bytes += body_bytes(&request.ops);
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        write_group(&*store, group, counters);
    }
}

fn write_group(store: &dyn Store, mut group: Vec<Request>, counters: &Counters) {
    let sync = group.iter().any(|r| r.sync);
    // Concatenate without cloning: ops move into one vector, each request remembers its range of it.
    let mut ops = Vec::with_capacity(group.iter().map(|r| r.ops.len()).sum());
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(group.len());
    for request in &mut group {
        let start = ops.len();
        ops.append(&mut request.ops);
        ranges.push(start..ops.len());
    }
    let outcome = store.write(&ops, sync);
    counters.writes.fetch_add(1, Ordering::Relaxed);
    counters
        .synced_writes
        .fetch_add(u64::from(sync), Ordering::Relaxed);
    counters
        .requests
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    counters.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
    match outcome {
        Ok(()) => {
            for request in group {
                // The requester may have gone away (dropped its future): nothing to tell it.
                let _ = request.done.send(Ok(()));
            }
        }
        Err(e) if group.len() == 1 => {
            if let Some(request) = group.pop() {
                let _ = request.done.send(Err(e));
            }
        }
        Err(_) => {
            // One bad batch (e.g. a put into a deleted queue) must not fail the others it was grouped with:
            // the group write changed nothing (writes are atomic), so apply each batch on its own, in order,
            // exactly as if they had never been grouped.
            for (request, range) in group.into_iter().zip(ranges) {
                let _ = request.done.send(store.write(&ops[range], sync));
            }
        }
    }
}

#[cfg(test)]
mod tests;
