use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tempfile::TempDir;

use super::{codec, RocksStore, CF_MESSAGES, CF_META, META_FORMAT};
use crate::store::conformance;
use crate::store::{GroupCommit, Op, QueueMeta, Store, StoreError, StoredMessage};

/// A store in its own temp dir (the store field drops first, closing the database before the dir goes).
struct Fixture {
    store: RocksStore,
    dir: TempDir,
}

impl conformance::Fixture for Fixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }
}

fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: RocksStore::open(dir.path()).unwrap(),
        dir,
    }
}

impl Fixture {
    fn reopen(self) -> Fixture {
        let Fixture { store, dir } = self;
        drop(store);
        Fixture {
            store: RocksStore::open(dir.path()).unwrap(),
            dir,
        }
    }
}

conformance::suite!(fresh());

fn create(name: &str) -> Op {
    Op::CreateQueue(QueueMeta {
        name: name.into(),
        config: Bytes::from(format!("cfg:{name}")),
    })
}

fn put(queue: &str, seq: u64, expires_at: Option<u64>) -> Op {
    let body = Bytes::from(format!("{queue}/{seq}"));
    Op::Put {
        queue: queue.into(),
        message: StoredMessage {
            seq,
            delivery_count: 0,
            expires_at,
            body,
        },
    }
}

fn seqs(s: &dyn Store, queue: &str) -> Vec<u64> {
    s.scan(queue, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

#[test]
fn everything_survives_reopen() {
    let f = fresh();
    f.store
        .write(
            &[
                create("a"),
                create("b"),
                put("a", 1, Some(50)),
                put("a", 2, None),
                put("b", 9, Some(40)),
            ],
            true,
        )
        .unwrap();
    f.store
        .write(
            &[
                Op::DeleteQueue { queue: "b".into() },
                create("c"),
                put("c", 4, Some(60)),
            ],
            true,
        )
        .unwrap();
    let f = f.reopen();
    let names: Vec<String> = f
        .store
        .queues()
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(f.store.queues().unwrap()[0].config, Bytes::from("cfg:a"));
    assert_eq!(seqs(&f.store, "a"), [1, 2]);
    assert_eq!(f.store.scan("a", 0, 1).unwrap()[0].body, Bytes::from("a/1"));
    assert_eq!(f.store.last_seq("a").unwrap(), Some(2));
    assert_eq!(f.store.last_seq("c").unwrap(), Some(4));
    let due: Vec<(String, u64)> = f
        .store
        .expired(u64::MAX, 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.queue, e.seq))
        .collect();
    assert_eq!(due, [("a".to_string(), 1), ("c".to_string(), 4)]);
    // Ids are never reused: a queue created after reopen does not see the dropped queue's messages.
    f.store.write(&[create("b"), create("d")], true).unwrap();
    assert!(seqs(&f.store, "b").is_empty() && seqs(&f.store, "d").is_empty());
    let catalog = f.store.catalog();
    let mut ids: Vec<u64> = catalog.by_name.values().map(|e| e.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3, 4, 5], "a=1, (b=2 dropped), c=3, then b=4, d=5");
}

#[test]
fn deletes_and_overwrites_after_reopen_keep_the_ttl_index_in_step() {
    // After a reopen the messages exist only on disk: the write path must read their old deadlines.
    let f = fresh();
    f.store
        .write(
            &[
                create("q"),
                put("q", 1, Some(10)),
                put("q", 2, Some(20)),
                put("q", 3, Some(30)),
            ],
            true,
        )
        .unwrap();
    let f = f.reopen();
    f.store
        .write(
            &[
                Op::Delete {
                    queue: "q".into(),
                    seq: 1,
                },
                put("q", 2, Some(25)),
            ],
            true,
        )
        .unwrap();
    let due: Vec<(u64, u64)> = f
        .store
        .expired(u64::MAX, 10)
        .unwrap()
        .iter()
        .map(|e| (e.seq, e.expires_at))
        .collect();
    assert_eq!(due, [(2, 25), (3, 30)]);
    let f = f.reopen();
    f.store
        .write(&[Op::DeleteQueue { queue: "q".into() }], true)
        .unwrap();
    assert_eq!(
        f.store.next_deadline().unwrap(),
        None,
        "dropping a queue read back from disk clears its deadlines"
    );
}

#[test]
fn a_corrupt_record_is_an_error_not_a_panic() {
    let f = fresh();
    f.store
        .write(&[create("q"), put("q", 1, None), put("q", 2, None)], true)
        .unwrap();
    let id = f.store.catalog().by_name["q"].id;
    let messages = f.store.cf(CF_MESSAGES);
    f.store
        .db
        .put_cf(messages, codec::message_key(id, 2), [7u8, 1, 2])
        .unwrap();
    assert!(matches!(
        f.store.scan("q", 0, 10),
        Err(StoreError::Corrupt {
            what: "messages",
            ..
        })
    ));
    assert_eq!(seqs_upto(&f.store, 1), [1], "records before it still read");
    // Deleting it needs its deadline, which cannot be read: the batch fails rather than guess.
    let err = f.store.write(
        &[Op::Delete {
            queue: "q".into(),
            seq: 2,
        }],
        true,
    );
    assert!(matches!(err, Err(StoreError::Corrupt { .. })), "{err:?}");
}

fn seqs_upto(s: &dyn Store, limit: usize) -> Vec<u64> {
    s.scan("q", 0, limit)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

#[test]
fn a_store_of_another_format_is_refused() {
    let f = fresh();
    f.store
        .db
        .put_cf(f.store.cf(CF_META), META_FORMAT, 99u64.to_be_bytes())
        .unwrap();
    let Fixture { store, dir } = f;
    drop(store);
    let err = RocksStore::open(dir.path()).err();
    assert!(
        matches!(err, Some(StoreError::Engine(ref e)) if e.contains("format 99")),
        "{err:?}"
    );
}

/// Starts group commit over a store and returns what is needed to close it again.
fn group(store: RocksStore) -> (Arc<RocksStore>, GroupCommit, crate::store::CommitWorker) {
    let store = Arc::new(store);
    let (gc, worker) = GroupCommit::start(store.clone()).unwrap();
    (store, gc, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_group_commit_survives_reopen() {
    let Fixture { store, dir } = fresh();
    let (store, gc, worker) = group(store);
    gc.commit(vec![create("q")], true).await.unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let gc = gc.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    gc.commit(vec![put("q", t * 100 + i, Some(i))], true)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    drop(gc);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .unwrap();
    drop(Arc::into_inner(store).expect("the writer released its handle"));
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(seqs(&store, "q").len(), 200);
    assert_eq!(store.expired(u64::MAX, usize::MAX).unwrap().len(), 200);
}

/// Not a timed assertion (debug builds and a shared machine): prints what group commit achieved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_group_commit_throughput_smoke() {
    let Fixture { store, dir: _dir } = fresh();
    let (_store, gc, worker) = group(store);
    gc.commit(vec![create("q")], true).await.unwrap();
    let started = Instant::now();
    let (producers, each) = (16u64, 100u64);
    let tasks: Vec<_> = (0..producers)
        .map(|t| {
            let gc = gc.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    gc.commit(vec![put("q", t * each + i, None)], true)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = gc.stats();
    eprintln!(
        "group commit: {} synced puts in {elapsed:.2}s = {:.0}/s, {} writes, mean group {:.1}",
        producers * each,
        (producers * each) as f64 / elapsed,
        stats.writes,
        stats.requests as f64 / stats.writes as f64
    );
    assert_eq!(stats.requests, producers * each + 1);
    drop(gc);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .unwrap();
}
