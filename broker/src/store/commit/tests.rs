use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{GroupCommit, SubmitError};
use crate::store::{MemoryStore, Op, QueueMeta, Result, Store, StoreError, StoredMessage};

/// A memory store that records each write's (ops, sync) and can hold the writer inside `write` until the
/// test releases it, so that a test can line up requests behind a write in progress.
struct GatedStore {
    inner: MemoryStore,
    writes: Mutex<Vec<(usize, bool)>>,
    entered: mpsc::UnboundedSender<()>,
    gate: Mutex<std_mpsc::Receiver<()>>,
}

/// Sending on (or dropping) the release lets gated writes through.
type Release = std_mpsc::Sender<()>;

impl GatedStore {
    fn new() -> (Arc<GatedStore>, mpsc::UnboundedReceiver<()>, Release) {
        let (entered, entered_rx) = mpsc::unbounded_channel();
        let (release, gate) = std_mpsc::channel();
        let inner = MemoryStore::new();
        inner.write(&[create("q")], true).unwrap();
        let store = GatedStore {
            inner,
            writes: Mutex::default(),
            entered,
            gate: Mutex::new(gate),
        };
        (Arc::new(store), entered_rx, release)
    }

    fn writes(&self) -> Vec<(usize, bool)> {
        self.writes.lock().unwrap().clone()
    }
}

impl Store for GatedStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        self.writes.lock().unwrap().push((ops.len(), sync));
        let _ = self.entered.send(());
        // Err once the release is dropped: from then on every write passes.
        let _ = self.gate.lock().unwrap().recv();
        self.inner.write(ops, sync)
    }
    fn queues(&self) -> Result<Vec<QueueMeta>> {
        self.inner.queues()
    }
    fn scan(&self, queue: &str, from: u64, limit: usize) -> Result<Vec<StoredMessage>> {
        self.inner.scan(queue, from, limit)
    }
    fn last_seq(&self, queue: &str) -> Result<Option<u64>> {
        self.inner.last_seq(queue)
    }
    fn expired(&self, now: u64, limit: usize) -> Result<Vec<super::super::Expired>> {
        self.inner.expired(now, limit)
    }
    fn next_deadline(&self) -> Result<Option<u64>> {
        self.inner.next_deadline()
    }
}

fn create(name: &str) -> Op {
    Op::CreateQueue(QueueMeta {
        name: name.into(),
        config: Bytes::new(),
    })
}

fn put(queue: &str, seq: u64) -> Op {
    let message = StoredMessage {
        seq,
        delivery_count: 0,
        expires_at: None,
        body: Bytes::from_static(b"m"),
    };
    Op::Put {
        queue: queue.into(),
        message,
    }
}

fn seqs(store: &dyn Store, queue: &str) -> Vec<u64> {
    store
        .scan(queue, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

/// Submits and returns the receiver of the outcome.
fn submit(gc: &GroupCommit, ops: Vec<Op>, sync: bool) -> oneshot::Receiver<Result<()>> {
    let (done, rx) = oneshot::channel();
    gc.submit(ops, sync, done).unwrap();
    rx
}

#[tokio::test]
async fn waiting_batches_merge_into_one_write_synced_if_any_asked() {
    let (store, mut entered, release) = GatedStore::new();
    let (gc, worker) = GroupCommit::start(store.clone()).unwrap();
    let mut a = submit(&gc, vec![put("q", 1)], false);
    entered.recv().await.unwrap();
    // The writer is inside A's write: these three wait, then go as one group.
    let b = submit(&gc, vec![put("q", 2)], false);
    let c = submit(&gc, vec![put("q", 3), put("q", 4)], true);
    let d = submit(&gc, vec![put("q", 5)], false);
    let early = a.try_recv();
    assert!(
        matches!(early, Err(oneshot::error::TryRecvError::Empty)),
        "A completed before its write returned"
    );
    drop(release);
    for rx in [a, b, c, d] {
        rx.await.unwrap().unwrap();
    }
    assert_eq!(store.writes(), [(1, false), (4, true)]);
    assert_eq!(seqs(&*store, "q"), [1, 2, 3, 4, 5]);
    let stats = gc.stats();
    assert_eq!(
        (stats.writes, stats.synced_writes, stats.requests, stats.ops),
        (2, 1, 4, 5)
    );
    drop(gc);
    worker.join();
}

#[tokio::test]
async fn a_failing_batch_does_not_fail_its_group() {
    let (store, mut entered, release) = GatedStore::new();
    let (gc, worker) = GroupCommit::start(store.clone()).unwrap();
    let a = submit(&gc, vec![put("q", 1)], true);
    entered.recv().await.unwrap();
    let bad = submit(&gc, vec![put("q", 2), put("missing", 1)], true);
    let good = submit(&gc, vec![put("q", 3)], true);
    drop(release);
    a.await.unwrap().unwrap();
    assert!(matches!(bad.await.unwrap(), Err(StoreError::NoSuchQueue(q)) if q == "missing"));
    good.await.unwrap().unwrap();
    assert_eq!(
        seqs(&*store, "q"),
        [1, 3],
        "the bad batch left nothing, the good one landed"
    );
    // Group write (failed), then each batch alone, in order.
    assert_eq!(store.writes(), [(1, true), (3, true), (2, true), (1, true)]);
    drop(gc);
    worker.join();
}

#[tokio::test]
async fn a_full_queue_hands_the_request_back() {
    let (store, mut entered, release) = GatedStore::new();
    let (gc, worker) = GroupCommit::with_capacity(store.clone(), 1).unwrap();
    let a = submit(&gc, vec![put("q", 1)], true);
    entered.recv().await.unwrap();
    let b = submit(&gc, vec![put("q", 2)], true);
    let (done, _rx) = oneshot::channel();
    match gc.submit(vec![put("q", 3)], true, done) {
        Err(SubmitError::Full(request)) => assert_eq!(request.ops, [put("q", 3)]),
        other => panic!("expected Full, got {other:?}"),
    }
    drop(release);
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    // Room again: the awaitable path goes through.
    gc.commit(vec![put("q", 3)], true).await.unwrap();
    assert_eq!(seqs(&*store, "q"), [1, 2, 3]);
    drop(gc);
    worker.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_committers_all_complete() {
    let store = Arc::new(MemoryStore::new());
    let (gc, worker) = GroupCommit::with_capacity(store.clone(), 64).unwrap();
    gc.commit(vec![create("q")], true).await.unwrap();
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let gc = gc.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    gc.commit(vec![put("q", t * 1000 + i)], i % 3 == 0)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.scan("q", 0, usize::MAX).unwrap().len(), 3200);
    let stats = gc.stats();
    assert_eq!(stats.requests, 3201);
    assert!(stats.writes <= stats.requests);
    drop(gc);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn dropping_every_handle_drains_the_queue_then_stops() {
    let (store, mut entered, release) = GatedStore::new();
    let (gc, worker) = GroupCommit::start(store.clone()).unwrap();
    let first = submit(&gc, vec![put("q", 1)], true);
    entered.recv().await.unwrap();
    let rest: Vec<_> = (2..=6)
        .map(|i| submit(&gc, vec![put("q", i)], false))
        .collect();
    drop(gc);
    drop(release);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .unwrap();
    first.await.unwrap().unwrap();
    for rx in rest {
        rx.await.unwrap().unwrap();
    }
    assert_eq!(seqs(&*store, "q"), [1, 2, 3, 4, 5, 6]);
}

/// A store whose writer dies: requesters must hear `Closed`, not hang.
struct PanickingStore;

impl Store for PanickingStore {
    fn write(&self, _: &[Op], _: bool) -> Result<()> {
        panic!("deliberate panic in a test store");
    }
    fn queues(&self) -> Result<Vec<QueueMeta>> {
        Ok(Vec::new())
    }
    fn scan(&self, _: &str, _: u64, _: usize) -> Result<Vec<StoredMessage>> {
        Ok(Vec::new())
    }
    fn last_seq(&self, _: &str) -> Result<Option<u64>> {
        Ok(None)
    }
    fn expired(&self, _: u64, _: usize) -> Result<Vec<super::super::Expired>> {
        Ok(Vec::new())
    }
    fn next_deadline(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_dead_writer_reports_closed() {
    let (gc, worker) = GroupCommit::start(Arc::new(PanickingStore)).unwrap();
    assert!(matches!(
        gc.commit(vec![create("q")], true).await,
        Err(StoreError::Closed)
    ));
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .unwrap();
    assert!(matches!(
        gc.commit(vec![create("q")], true).await,
        Err(StoreError::Closed)
    ));
    let (done, _rx) = oneshot::channel();
    assert!(matches!(
        gc.submit(Vec::new(), true, done),
        Err(SubmitError::Closed(_))
    ));
}
