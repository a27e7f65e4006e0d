//! The core's path to the store: each pass of the core collects its changes into one [`Batch`] and hands it to
//! the group-commit writer without waiting; what must happen once the batch is stored (telling senders
//! "accepted", giving them credit back) comes back later as an [`Internal::Stored`] on the core's own channel.
//! Reads of paged-out messages run on blocking threads and come back the same way. The core never blocks on
//! storage.

use std::collections::VecDeque;
use std::sync::Arc;

use shoal_router::core::api::LinkKey;
use tokio::sync::{mpsc, oneshot};

use crate::queue::QueueKey;
use crate::store::{self, Expired, GroupCommit, Op, Request, Store, StoredMessage, SubmitError};

/// What to do once a batch is in the store.
#[derive(Debug)]
pub(crate) enum Done {
    /// A message from this producer is stored: settle it (when unsettled) and give the credit slot back.
    Stored {
        link: LinkKey,
        delivery_id: Option<u32>,
    },
    /// A paged-out message of this queue is in the store (it may be read back from now on).
    Paged { queue: QueueKey, seq: u64 },
    /// The queue's delivered watermark is in the store up to `upto`: messages up to it may go out.
    Reserved { queue: QueueKey, upto: u64 },
    /// An admin change is durable.
    Reply(oneshot::Sender<()>),
}

/// One pass's changes.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub ops: Vec<Op>,
    pub sync: bool,
    pub done: Vec<Done>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.done.is_empty()
    }
}

/// Due entries of the store's TTL index with their messages, and the index's next deadline.
pub(crate) type DueEntries = (Vec<(Expired, Option<StoredMessage>)>, Option<u64>);

/// What the core hears back from storage.
#[derive(Debug)]
pub(crate) enum Internal {
    Stored {
        done: Vec<Done>,
        result: store::Result<()>,
    },
    /// Due entries of the store's TTL index, with the messages they name (`None`: already gone), and the
    /// index's next deadline after them.
    Expired { result: store::Result<DueEntries> },
    /// Messages of the paged region a browser asked for (see `Core::browse`).
    Browsed {
        link: LinkKey,
        queue: QueueKey,
        upto: u64,
        limit: usize,
        result: store::Result<Vec<StoredMessage>>,
    },
    Loaded {
        queue: QueueKey,
        /// Only messages up to this seq count (later ones may not all be written yet).
        upto: u64,
        limit: usize,
        result: store::Result<Vec<StoredMessage>>,
    },
}

/// Submits batches in order; holds them back (in order) while the writer's queue is full.
pub(crate) struct Persister {
    commit: GroupCommit,
    store: Arc<dyn Store>,
    internal: mpsc::Sender<Internal>,
    stalled: VecDeque<Request>,
}

impl Persister {
    pub fn new(
        commit: GroupCommit,
        store: Arc<dyn Store>,
        internal: mpsc::Sender<Internal>,
    ) -> Persister {
        Persister {
            commit,
            store,
            internal,
            stalled: VecDeque::new(),
        }
    }

    pub fn submit(&mut self, batch: Batch) {
        if batch.ops.is_empty() {
            // Nothing to write: complete at once (still through the channel, so completions stay in order
            // with the writes submitted before).
            if batch.done.is_empty() {
                return;
            }
        }
        let (tx, rx) = oneshot::channel();
        let internal = self.internal.clone();
        let done = batch.done;
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(store::StoreError::Closed));
            let _ = internal.send(Internal::Stored { done, result }).await;
        });
        let request = Request {
            ops: batch.ops,
            sync: batch.sync,
            done: tx,
        };
        self.stalled.push_back(request);
        self.retry();
    }

    /// Hand held-back batches to the writer, in order, as far as its queue has room.
    pub fn retry(&mut self) {
        while let Some(request) = self.stalled.pop_front() {
            match self.commit.submit(request.ops, request.sync, request.done) {
                Ok(()) => {}
                Err(SubmitError::Full(r)) => {
                    self.stalled.push_front(r);
                    return;
                }
                Err(SubmitError::Closed(r)) => {
                    let _ = r.done.send(Err(store::StoreError::Closed));
                }
            }
        }
    }

    /// Batches waiting for room in the writer's queue.
    pub fn stalled(&self) -> bool {
        !self.stalled.is_empty()
    }

    /// Read up to `limit` due entries of the store's TTL index (at `now`, ms) and their messages, on a
    /// blocking thread.
    pub fn expired(&self, now: u64, limit: usize) {
        let store = Arc::clone(&self.store);
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let job = move || -> store::Result<_> {
                let mut out = Vec::new();
                for e in store.expired(now, limit)? {
                    let message = store
                        .scan(&e.queue, e.seq, 1)?
                        .into_iter()
                        .next()
                        .filter(|m| m.seq == e.seq);
                    out.push((e, message));
                }
                Ok((out, store.next_deadline()?))
            };
            let result = tokio::task::spawn_blocking(job)
                .await
                .unwrap_or_else(|e| Err(store::StoreError::Engine(e.to_string())));
            let _ = internal.send(Internal::Expired { result }).await;
        });
    }

    /// Read up to `limit` messages of `name` from `from` for the browser `link`, on a blocking thread.
    pub fn browse(
        &self,
        link: LinkKey,
        queue: QueueKey,
        name: String,
        from: u64,
        upto: u64,
        limit: usize,
    ) {
        self.scan(name, from, limit, move |result| Internal::Browsed {
            link,
            queue,
            upto,
            limit,
            result,
        });
    }

    /// Read up to `limit` messages of `name` from `from` into the queue's window, on a blocking thread.
    pub fn load(&self, queue: QueueKey, name: String, from: u64, upto: u64, limit: usize) {
        self.scan(name, from, limit, move |result| Internal::Loaded {
            queue,
            upto,
            limit,
            result,
        });
    }

    /// A store scan on a blocking thread, its result back to the core as `done(result)`.
    fn scan(
        &self,
        name: String,
        from: u64,
        limit: usize,
        done: impl FnOnce(store::Result<Vec<StoredMessage>>) -> Internal + Send + 'static,
    ) {
        let store = Arc::clone(&self.store);
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || store.scan(&name, from, limit))
                .await
                .unwrap_or_else(|e| Err(store::StoreError::Engine(e.to_string())));
            let _ = internal.send(done(result)).await;
        });
    }
}
