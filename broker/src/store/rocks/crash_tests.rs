//! "Nothing acknowledged is ever lost", tested with `kill -9`: a child process (this test binary, re-run on
//! one ignored test) commits synced batches through group commit and prints each acknowledgement; the
//! parent kills it at a random point, reopens the store and checks every acknowledged message is there.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;

use super::RocksStore;
use crate::store::{GroupCommit, Op, QueueMeta, Store, StoredMessage};

/// Set in the child's environment to the store directory.
const CHILD_ENV: &str = "SHOAL_STORE_CRASH_CHILD_DIR";
const CHILD_TEST: &str = "store::rocks::crash_tests::child_writer";
const QUEUES: [&str; 4] = ["c0", "c1", "c2", "c3"];
/// Messages per batch: the check below also finds a torn (partially applied) batch.
const BATCH: u64 = 3;

fn body(queue: &str, seq: u64) -> Bytes {
    Bytes::from(format!("{queue}/{seq}"))
}

/// The child: commit batches of `BATCH` synced puts to each queue, forever, printing `ack <queue> <last seq>`
/// after each commit returns. Continues numbering from what the store holds.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
fn child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by acknowledged_writes_survive_kill_9");
    let store = Arc::new(RocksStore::open(dir).unwrap());
    let (gc, _worker) = GroupCommit::start(store.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let creates = QUEUES.map(|q| {
            Op::CreateQueue(QueueMeta {
                name: q.into(),
                config: Bytes::new(),
            })
        });
        gc.commit(creates.to_vec(), true).await.unwrap();
        let tasks = QUEUES.map(|queue| {
            let gc = gc.clone();
            let mut seq = store.last_seq(queue).unwrap().unwrap_or(0);
            tokio::spawn(async move {
                loop {
                    let ops = (seq + 1..=seq + BATCH)
                        .map(|s| {
                            let message = StoredMessage {
                                seq: s,
                                delivery_count: 0,
                                expires_at: None,
                                body: body(queue, s),
                            };
                            Op::Put {
                                queue: queue.into(),
                                message,
                            }
                        })
                        .collect();
                    gc.commit(ops, true).await.unwrap();
                    seq += BATCH;
                    // Panics (ending the child) once the parent stops reading.
                    println!("ack {queue} {seq}");
                }
            })
        });
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Kills the child if the parent test fails half-way, so no writer outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_below(n: u64) -> u64 {
    RandomState::new().build_hasher().finish() % n
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<String, u64> = HashMap::new();
    for cycle in 0..5 {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                CHILD_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        // Kill after a random number of acknowledgements: the child is mid-write at an arbitrary point.
        let kill_after = 10 + random_below(200);
        let mut seen = 0;
        let mut record = |line: &str| {
            if let Some((queue, seq)) = line
                .strip_prefix("ack ")
                .and_then(|rest| rest.split_once(' '))
            {
                let seq: u64 = seq.parse().unwrap();
                let high = acked.entry(queue.to_string()).or_default();
                *high = (*high).max(seq);
                return true;
            }
            false
        };
        for line in lines.by_ref() {
            if record(&line.unwrap()) {
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        assert_eq!(seen, kill_after, "cycle {cycle}: the child stopped early");
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        // Acknowledgements already in the pipe were printed before the kill: they count.
        for line in lines {
            record(&line.unwrap());
        }

        let store = RocksStore::open(dir.path()).unwrap();
        for queue in QUEUES {
            let messages = store.scan(queue, 0, usize::MAX).unwrap();
            let want = acked.get(queue).copied().unwrap_or(0);
            let stored = messages.len() as u64;
            assert!(
                stored >= want,
                "cycle {cycle}: {queue} holds {stored} messages, {want} were acknowledged"
            );
            assert_eq!(
                stored % BATCH,
                0,
                "cycle {cycle}: {queue} holds a torn batch"
            );
            for (i, m) in messages.iter().enumerate() {
                assert_eq!(
                    (m.seq, &m.body),
                    (i as u64 + 1, &body(queue, i as u64 + 1)),
                    "cycle {cycle}: {queue}"
                );
            }
        }
    }
    assert!(acked.values().sum::<u64>() > 0);
}
