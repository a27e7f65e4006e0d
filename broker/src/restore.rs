//! Starting from what the store holds: every stored queue comes back with the first window of its messages
//! in memory and the rest left paged out; messages a consumer may have had when the broker stopped come back
//! with a higher delivery-count.

use crate::core::{Addr, Core};
use crate::meta::{QueueRecord, Role};
use crate::queue::{Entry, QueueKey};
use crate::store::{self, Op, Store, StoredMessage};

/// One stored queue as read at start.
pub(crate) struct Restored {
    pub name: String,
    /// `None`: a record this version cannot read.
    pub record: Option<QueueRecord>,
    pub first: Vec<StoredMessage>,
    pub last_seq: Option<u64>,
}

/// What the store holds at start.
pub(crate) struct Snapshot {
    pub queues: Vec<Restored>,
    /// The earliest deadline in the store's TTL index.
    pub next_deadline: Option<u64>,
}

/// Read every queue and its first `window` messages (blocking: run it on a blocking thread).
pub(crate) fn read(store: &dyn Store, window: usize) -> store::Result<Snapshot> {
    let mut out = Vec::new();
    for meta in store.queues()? {
        let record = QueueRecord::decode(&meta.config);
        // A private subscription dies with the process: nothing of it is read, it is deleted below.
        let keep = record.as_ref().is_none_or(|r| r.role.durable());
        let (first, last_seq) = if keep {
            (
                store.scan(&meta.name, 0, window)?,
                store.last_seq(&meta.name)?,
            )
        } else {
            (Vec::new(), None)
        };
        out.push(Restored {
            name: meta.name,
            record,
            first,
            last_seq,
        });
    }
    Ok(Snapshot {
        queues: out,
        next_deadline: store.next_deadline()?,
    })
}

impl Core {
    /// Rebuild the queues read by [`read`].
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        // Paged-out messages with deadlines are the store index's to find.
        self.paged_expiry.note(snapshot.next_deadline);
        for r in snapshot.queues {
            let record = r.record.unwrap_or_else(|| {
                tracing::warn!(queue = %r.name, "unreadable queue record; restoring as a plain queue");
                QueueRecord {
                    role: Role::Queue { auto: true },
                    settings: Default::default(),
                    delivered: 0,
                    selector: None,
                }
            });
            if !record.role.durable() {
                self.batch.ops.push(Op::DeleteQueue { queue: r.name });
                continue;
            }
            let key = self.insert_queue(r.name.clone(), record.role.clone(), record.settings);
            let filter = record
                .selector
                .as_deref()
                .and_then(|text| crate::selector::Selector::parse(text).ok());
            if let Some(q) = self.queue_mut(key) {
                q.filter = filter;
            }
            self.restore_messages(key, record.delivered, r.first, r.last_seq);
            match &record.role {
                Role::Queue { .. } | Role::Subscription { declared: true, .. } => {
                    self.addresses.insert(r.name, Addr::Queue(key));
                }
                Role::Subscription { .. } => {}
            }
        }
    }

    fn restore_messages(
        &mut self,
        key: QueueKey,
        delivered: u64,
        first: Vec<StoredMessage>,
        last_seq: Option<u64>,
    ) {
        let window = self.limits.window;
        let loaded = first.len();
        let mut loaded_bytes = 0u64;
        let mut top = 0;
        let mut ready = std::collections::BTreeMap::new();
        for m in first {
            let mut e = Entry::from_stored(m);
            // It may have reached a consumer before the broker stopped: say so.
            if e.seq <= delivered {
                e.delivery_count = e.delivery_count.saturating_add(1);
            }
            top = top.max(e.seq);
            loaded_bytes += e.size();
            self.expiry.insert(e.expires_at, key, e.seq);
            ready.insert(e.seq, e);
        }
        let Some(q) = self.queue_mut(key) else { return };
        q.in_store = true;
        q.delivered = delivered;
        q.delivered_saved = delivered;
        q.delivered_at_start = delivered;
        q.ready = ready;
        let last = last_seq.unwrap_or(0).max(top);
        q.next_seq = last.max(delivered) + 1;
        q.bytes = loaded_bytes;
        if loaded >= window && last > top {
            // The rest stays in the store; count and size are estimates until it is read.
            let count = last - top;
            let avg = loaded_bytes / loaded.max(1) as u64;
            q.paging.from = top + 1;
            q.paging.last = last;
            q.paging.committed = last;
            q.paging.count = count;
            q.paging.bytes = count * avg;
            q.bytes += q.paging.bytes;
        }
        self.mark(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AddressSettings;
    use crate::store::{MemoryStore, QueueMeta};

    #[test]
    fn read_skips_private_subscriptions_and_reads_a_window() {
        let store = MemoryStore::new();
        let durable = QueueRecord {
            role: Role::Queue { auto: false },
            settings: AddressSettings::default(),
            delivered: 2,
            selector: None,
        };
        let private = QueueRecord {
            role: Role::Subscription {
                topic: "t".into(),
                declared: false,
                durable: false,
                shared: false,
            },
            settings: AddressSettings::default(),
            delivered: 0,
            selector: None,
        };
        let mut ops = vec![
            Op::CreateQueue(QueueMeta {
                name: "q".into(),
                config: durable.encode(),
            }),
            Op::CreateQueue(QueueMeta {
                name: "t::p".into(),
                config: private.encode(),
            }),
        ];
        for seq in 1..=5 {
            for queue in ["q", "t::p"] {
                ops.push(Op::Put {
                    queue: queue.into(),
                    message: StoredMessage {
                        seq,
                        delivery_count: 0,
                        expires_at: None,
                        body: bytes::Bytes::from_static(b"\x00\x53\x77\x40"),
                    },
                });
            }
        }
        store.write(&ops, true).unwrap();
        let restored = read(&store, 3).unwrap().queues;
        assert_eq!(restored.len(), 2);
        let q = restored.iter().find(|r| r.name == "q").unwrap();
        assert_eq!(q.first.len(), 3);
        assert_eq!(q.last_seq, Some(5));
        assert_eq!(q.record.as_ref().unwrap().delivered, 2);
        let p = restored.iter().find(|r| r.name == "t::p").unwrap();
        assert!(p.first.is_empty());
    }
}
