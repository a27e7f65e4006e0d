//! One behavioural suite for every [`Store`]: each implementation's tests call [`suite!`] with a function
//! that makes a fresh, empty store, and so run exactly the same checks.

use bytes::Bytes;

use super::{Expired, Op, QueueMeta, Store, StoreError, StoredMessage};

/// Owns whatever a store needs to live (a temp dir for RocksDB) and lends the store.
pub trait Fixture {
    fn store(&self) -> &dyn Store;
}

impl Fixture for super::MemoryStore {
    fn store(&self) -> &dyn Store {
        self
    }
}

/// Expands to one `#[test]` per check, each on a fresh store from `$make()`.
macro_rules! suite {
    ($make:expr) => {
        $crate::store::conformance::suite!(@tests $make;
            put_then_scan_in_seq_order,
            scan_from_offset_with_limit,
            overwrite_replaces_message_and_deadline,
            delete_removes_message_and_deadline,
            delete_queue_removes_messages_and_deadlines,
            queues_listed_by_name_and_recreate_keeps_messages,
            last_seq_tracks_highest_stored,
            expired_in_deadline_order_with_next_deadline,
            expired_skips_deleted_messages,
            failed_batch_changes_nothing,
            ops_in_one_batch_see_each_other,
            put_into_missing_queue_fails,
            many_queues_do_not_mix,
            extreme_values_round_trip,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::store::conformance::$name($crate::store::conformance::Fixture::store(&fixture));
            }
        )*
    };
}
pub(crate) use suite;

fn create(name: &str) -> Op {
    Op::CreateQueue(QueueMeta {
        name: name.into(),
        config: Bytes::from(format!("cfg:{name}")),
    })
}

fn msg(seq: u64, expires_at: Option<u64>) -> StoredMessage {
    StoredMessage {
        seq,
        delivery_count: 0,
        expires_at,
        body: Bytes::from(format!("body-{seq}")),
    }
}

fn put(queue: &str, message: StoredMessage) -> Op {
    Op::Put {
        queue: queue.into(),
        message,
    }
}

fn del(queue: &str, seq: u64) -> Op {
    Op::Delete {
        queue: queue.into(),
        seq,
    }
}

fn seqs(s: &dyn Store, queue: &str) -> Vec<u64> {
    s.scan(queue, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

fn expired_keys(s: &dyn Store, now: u64) -> Vec<(String, u64, u64)> {
    let all = s.expired(now, usize::MAX).unwrap();
    all.into_iter()
        .map(
            |Expired {
                 queue,
                 seq,
                 expires_at,
             }| (queue, seq, expires_at),
        )
        .collect()
}

pub fn put_then_scan_in_seq_order(s: &dyn Store) {
    s.write(&[create("q")], true).unwrap();
    // Out of order and across batches: the store orders by seq, not by arrival.
    s.write(&[put("q", msg(5, None)), put("q", msg(2, None))], true)
        .unwrap();
    s.write(&[put("q", msg(9, None)), put("q", msg(1, None))], false)
        .unwrap();
    let all = s.scan("q", 0, 100).unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 5, 9]);
    assert_eq!(all[2], msg(5, None), "message round-trips whole");
}

pub fn scan_from_offset_with_limit(s: &dyn Store) {
    s.write(&[create("q")], true).unwrap();
    let ops: Vec<Op> = (10..30).map(|i| put("q", msg(i, None))).collect();
    s.write(&ops, true).unwrap();
    let page: Vec<u64> = s.scan("q", 15, 3).unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(page, [15, 16, 17]);
    let from_gap: Vec<u64> = s.scan("q", 0, 2).unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(
        from_gap,
        [10, 11],
        "from below the first seq starts at the first"
    );
    assert_eq!(
        s.scan("q", 28, 100).unwrap().len(),
        2,
        "a limit past the end returns the rest"
    );
    assert!(s.scan("q", 30, 100).unwrap().is_empty());
    assert!(s.scan("q", 10, 0).unwrap().is_empty(), "limit 0");
    assert!(s.scan("missing", 0, 10).unwrap().is_empty());
}

pub fn overwrite_replaces_message_and_deadline(s: &dyn Store) {
    s.write(&[create("q"), put("q", msg(1, Some(100)))], true)
        .unwrap();
    let again = StoredMessage {
        delivery_count: 3,
        expires_at: Some(500),
        ..msg(1, None)
    };
    s.write(&[put("q", again.clone())], true).unwrap();
    assert_eq!(s.scan("q", 0, 10).unwrap(), [again]);
    assert!(
        s.expired(499, 10).unwrap().is_empty(),
        "the old deadline is gone from the index"
    );
    assert_eq!(s.next_deadline().unwrap(), Some(500));
    // Overwriting without a TTL removes it from the index altogether.
    s.write(
        &[put(
            "q",
            StoredMessage {
                delivery_count: 4,
                ..msg(1, None)
            },
        )],
        true,
    )
    .unwrap();
    assert_eq!(s.next_deadline().unwrap(), None);
    assert_eq!(s.scan("q", 0, 10).unwrap()[0].delivery_count, 4);
}

pub fn delete_removes_message_and_deadline(s: &dyn Store) {
    s.write(
        &[
            create("q"),
            put("q", msg(1, Some(10))),
            put("q", msg(2, Some(20))),
        ],
        true,
    )
    .unwrap();
    s.write(&[del("q", 1)], false).unwrap();
    assert_eq!(seqs(s, "q"), [2]);
    assert_eq!(s.next_deadline().unwrap(), Some(20));
    // Missing message, missing queue: no-ops, not errors.
    s.write(&[del("q", 1), del("q", 77), del("nowhere", 1)], false)
        .unwrap();
    assert_eq!(seqs(s, "q"), [2]);
}

pub fn delete_queue_removes_messages_and_deadlines(s: &dyn Store) {
    let mut ops = vec![create("doomed"), create("kept")];
    ops.extend((0..50).map(|i| put("doomed", msg(i, Some(1000 + i)))));
    ops.push(put("kept", msg(7, Some(5000))));
    s.write(&ops, true).unwrap();
    s.write(
        &[Op::DeleteQueue {
            queue: "doomed".into(),
        }],
        true,
    )
    .unwrap();
    assert_eq!(
        s.queues()
            .unwrap()
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>(),
        ["kept"]
    );
    assert!(s.scan("doomed", 0, 100).unwrap().is_empty());
    assert_eq!(s.last_seq("doomed").unwrap(), None);
    assert_eq!(expired_keys(s, u64::MAX), [("kept".to_string(), 7, 5000)]);
    assert_eq!(s.next_deadline().unwrap(), Some(5000));
    // Recreated under the same name, the queue starts empty.
    s.write(&[create("doomed")], true).unwrap();
    assert!(s.scan("doomed", 0, 100).unwrap().is_empty());
    // Deleting a queue that does not exist is a no-op.
    s.write(
        &[Op::DeleteQueue {
            queue: "never".into(),
        }],
        true,
    )
    .unwrap();
}

pub fn queues_listed_by_name_and_recreate_keeps_messages(s: &dyn Store) {
    assert!(s.queues().unwrap().is_empty());
    s.write(&[create("b"), create("a"), create("topic::sub")], true)
        .unwrap();
    let names: Vec<String> = s.queues().unwrap().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["a", "b", "topic::sub"]);
    assert_eq!(s.queues().unwrap()[0].config, Bytes::from("cfg:a"));
    // CreateQueue of an existing queue replaces its config and keeps its messages.
    s.write(&[put("a", msg(1, None))], true).unwrap();
    let meta = QueueMeta {
        name: "a".into(),
        config: Bytes::from_static(b"v2"),
    };
    s.write(&[Op::CreateQueue(meta.clone())], true).unwrap();
    assert_eq!(s.queues().unwrap()[0], meta);
    assert_eq!(seqs(s, "a"), [1]);
}

pub fn last_seq_tracks_highest_stored(s: &dyn Store) {
    assert_eq!(s.last_seq("q").unwrap(), None, "missing queue");
    s.write(&[create("q")], true).unwrap();
    assert_eq!(s.last_seq("q").unwrap(), None, "empty queue");
    s.write(
        &[
            put("q", msg(3, None)),
            put("q", msg(8, None)),
            put("q", msg(5, None)),
        ],
        true,
    )
    .unwrap();
    assert_eq!(s.last_seq("q").unwrap(), Some(8));
    s.write(&[del("q", 8)], true).unwrap();
    assert_eq!(s.last_seq("q").unwrap(), Some(5));
}

pub fn expired_in_deadline_order_with_next_deadline(s: &dyn Store) {
    assert_eq!(s.next_deadline().unwrap(), None);
    s.write(&[create("a"), create("b")], true).unwrap();
    s.write(
        &[
            put("a", msg(1, Some(300))),
            put("b", msg(1, Some(100))),
            put("a", msg(2, None)),
            put("a", msg(3, Some(200))),
            put("b", msg(2, Some(400))),
        ],
        true,
    )
    .unwrap();
    assert_eq!(s.next_deadline().unwrap(), Some(100));
    assert!(s.expired(99, 10).unwrap().is_empty());
    let due = expired_keys(s, 300);
    assert_eq!(
        due,
        [
            ("b".to_string(), 1, 100),
            ("a".to_string(), 3, 200),
            ("a".to_string(), 1, 300)
        ],
        "deadline <= now, earliest first"
    );
    assert_eq!(s.expired(u64::MAX, 2).unwrap().len(), 2, "limit");
    // Expiring is the broker's job: reading the index changes nothing.
    assert_eq!(s.next_deadline().unwrap(), Some(100));
}

pub fn expired_skips_deleted_messages(s: &dyn Store) {
    s.write(&[create("q")], true).unwrap();
    let ops: Vec<Op> = (1..=5).map(|i| put("q", msg(i, Some(i * 10)))).collect();
    s.write(&ops, true).unwrap();
    s.write(&[del("q", 1), del("q", 3)], false).unwrap();
    let due: Vec<u64> = s.expired(1000, 10).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(due, [2, 4, 5]);
    assert_eq!(s.next_deadline().unwrap(), Some(20));
}

pub fn failed_batch_changes_nothing(s: &dyn Store) {
    s.write(&[create("q"), put("q", msg(1, Some(10)))], true)
        .unwrap();
    let batch = [
        create("new"),
        put("new", msg(1, Some(5))),
        del("q", 1),
        put("q", msg(2, None)),
        put("no-such-queue", msg(1, None)),
    ];
    match s.write(&batch, true) {
        Err(StoreError::NoSuchQueue(q)) => assert_eq!(q, "no-such-queue"),
        other => panic!("expected NoSuchQueue, got {other:?}"),
    }
    assert_eq!(
        s.queues().unwrap().len(),
        1,
        "the batch's CreateQueue was not applied"
    );
    assert_eq!(seqs(s, "q"), [1], "nor its Delete and Put");
    assert_eq!(s.next_deadline().unwrap(), Some(10));
    // The store still works afterwards.
    s.write(&[put("q", msg(2, None))], true).unwrap();
    assert_eq!(seqs(s, "q"), [1, 2]);
}

pub fn ops_in_one_batch_see_each_other(s: &dyn Store) {
    // Create and fill in one batch; a put then its delete; an overwrite of a put from the same batch.
    s.write(
        &[
            create("q"),
            put("q", msg(1, Some(10))),
            put("q", msg(2, Some(20))),
            del("q", 2),
            put(
                "q",
                StoredMessage {
                    delivery_count: 1,
                    ..msg(1, Some(15))
                },
            ),
        ],
        true,
    )
    .unwrap();
    assert_eq!(expired_keys(s, u64::MAX), [("q".to_string(), 1, 15)]);
    assert_eq!(s.scan("q", 0, 10).unwrap()[0].delivery_count, 1);
    // Put then drop the queue in one batch: nothing of either survives, TTL entries included.
    s.write(
        &[
            create("t"),
            put("t", msg(1, Some(5))),
            Op::DeleteQueue { queue: "t".into() },
        ],
        true,
    )
    .unwrap();
    assert!(s.queues().unwrap().iter().all(|q| q.name != "t"));
    assert_eq!(s.next_deadline().unwrap(), Some(15));
    // Drop and recreate in one batch: the new queue is empty, and a put after the recreate lands in it.
    s.write(
        &[
            Op::DeleteQueue { queue: "q".into() },
            create("q"),
            put("q", msg(9, None)),
        ],
        true,
    )
    .unwrap();
    assert_eq!(seqs(s, "q"), [9]);
    assert_eq!(s.next_deadline().unwrap(), None);
    // A put after a drop in the same batch has no queue.
    let err = s.write(
        &[
            Op::DeleteQueue { queue: "q".into() },
            put("q", msg(10, None)),
        ],
        true,
    );
    assert!(matches!(err, Err(StoreError::NoSuchQueue(_))), "{err:?}");
    assert_eq!(seqs(s, "q"), [9]);
}

pub fn put_into_missing_queue_fails(s: &dyn Store) {
    let err = s.write(&[put("ghost", msg(1, None))], true);
    assert!(
        matches!(err, Err(StoreError::NoSuchQueue(ref q)) if q == "ghost"),
        "{err:?}"
    );
    assert!(s.queues().unwrap().is_empty());
}

pub fn many_queues_do_not_mix(s: &dyn Store) {
    // Names that are prefixes of each other, and seqs that interleave across queues and batches.
    let names = ["q", "q1", "q10", "q2", "r", "topic::sub"];
    s.write(&names.map(create), true).unwrap();
    for round in 0..20u64 {
        let ops: Vec<Op> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                put(
                    n,
                    StoredMessage {
                        body: Bytes::from(format!("{n}/{round}")),
                        ..msg(round * 7 + i as u64, None)
                    },
                )
            })
            .collect();
        s.write(&ops, round % 2 == 0).unwrap();
    }
    for (i, n) in names.iter().enumerate() {
        let got = s.scan(n, 0, 1000).unwrap();
        let want: Vec<u64> = (0..20).map(|r| r * 7 + i as u64).collect();
        assert_eq!(
            got.iter().map(|m| m.seq).collect::<Vec<_>>(),
            want,
            "queue {n}"
        );
        assert!(
            got.iter()
                .enumerate()
                .all(|(r, m)| m.body == format!("{n}/{r}")),
            "queue {n} bodies"
        );
        assert_eq!(s.last_seq(n).unwrap(), Some(19 * 7 + i as u64));
    }
}

pub fn extreme_values_round_trip(s: &dyn Store) {
    s.write(&[create("")], true).unwrap();
    let big = StoredMessage {
        seq: u64::MAX,
        delivery_count: u32::MAX,
        expires_at: Some(u64::MAX),
        body: Bytes::from(vec![0xA5; 1 << 20]),
    };
    let empty = StoredMessage {
        seq: 0,
        delivery_count: 0,
        expires_at: Some(0),
        body: Bytes::new(),
    };
    s.write(&[put("", big.clone()), put("", empty.clone())], true)
        .unwrap();
    assert_eq!(s.scan("", 0, 10).unwrap(), [empty, big]);
    assert_eq!(s.last_seq("").unwrap(), Some(u64::MAX));
    assert_eq!(s.next_deadline().unwrap(), Some(0));
    assert_eq!(s.expired(0, 10).unwrap().len(), 1);
    assert_eq!(s.expired(u64::MAX, 10).unwrap().len(), 2);
}
