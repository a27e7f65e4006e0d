//! Turning a batch of [`Op`]s into one RocksDB `WriteBatch`.
//!
//! The TTL index must stay exactly in step with the messages (a stale entry would wake the purge task for a
//! message that is gone), so deleting or overwriting a message needs its old deadline. Later ops of a batch
//! must see earlier ones (create then put; put then delete), which the database cannot show before the batch
//! is written: the builder keeps that batch-local view itself.

use std::collections::HashMap;

use rocksdb::WriteBatch;

use super::{
    codec, engine, Catalog, QueueEntry, RocksStore, CF_EXPIRY, CF_MESSAGES, CF_META, CF_QUEUES,
    META_NEXT_QUEUE_ID,
};
use crate::store::{Op, QueueMeta, Result, StoreError, StoredMessage};

/// A batch ready to write, and what the catalog must learn once it is written.
pub(super) struct Built {
    pub batch: WriteBatch,
    pub changes: Changes,
}

/// Catalog changes of one batch; applied only after the write succeeded.
pub(super) struct Changes {
    /// Names this batch created (`Some(new id)`) or dropped (`None`), in their final state.
    names: HashMap<String, Option<u64>>,
    /// Highest seq put per queue id.
    high: HashMap<u64, u64>,
    next_id: u64,
}

impl Changes {
    pub fn apply(self, catalog: &mut Catalog) {
        for (name, state) in self.names {
            if let Some(old) = catalog.by_name.remove(&name) {
                catalog.by_id.remove(&old.id);
            }
            if let Some(id) = state {
                catalog.by_id.insert(id, name.clone());
                catalog.by_name.insert(name, QueueEntry { id, high: None });
            }
        }
        for (id, seq) in self.high {
            let entry = catalog
                .by_id
                .get(&id)
                .and_then(|name| catalog.by_name.get_mut(name));
            if let Some(entry) = entry {
                entry.high = entry.high.max(Some(seq));
            }
        }
        catalog.next_id = self.next_id;
    }
}

/// The state of one message as this batch left it: `Some(deadline)` if put, `None` if deleted.
type Touched = Option<Option<u64>>;

struct Builder<'a> {
    store: &'a RocksStore,
    catalog: &'a Catalog,
    batch: WriteBatch,
    changes: Changes,
    touched: HashMap<(u64, u64), Touched>,
}

pub(super) fn build(store: &RocksStore, ops: &[Op]) -> Result<Built> {
    let catalog = store.catalog();
    let mut b = Builder {
        store,
        catalog: &catalog,
        batch: WriteBatch::default(),
        changes: Changes {
            names: HashMap::new(),
            high: HashMap::new(),
            next_id: catalog.next_id,
        },
        touched: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::CreateQueue(meta) => b.create_queue(meta),
            Op::DeleteQueue { queue } => b.delete_queue(queue)?,
            Op::Put { queue, message } => b.put(queue, message)?,
            Op::Delete { queue, seq } => b.delete(queue, *seq)?,
        }
    }
    Ok(Built {
        batch: b.batch,
        changes: b.changes,
    })
}

impl Builder<'_> {
    fn resolve(&self, name: &str) -> Option<u64> {
        match self.changes.names.get(name) {
            Some(state) => *state,
            None => self.catalog.by_name.get(name).map(|e| e.id),
        }
    }

    /// At least the highest seq stored under `id`, counting this batch's puts.
    fn high(&self, id: u64) -> Option<u64> {
        let stored = self
            .catalog
            .by_id
            .get(&id)
            .and_then(|name| self.catalog.by_name.get(name))
            .and_then(|e| e.high);
        stored.max(self.changes.high.get(&id).copied())
    }

    /// Whether message (id, seq) exists as of this point of the batch (`Some`), and its deadline.
    fn current(&self, id: u64, seq: u64) -> Result<Touched> {
        if let Some(state) = self.touched.get(&(id, seq)) {
            return Ok(*state);
        }
        // Above the high-water mark there is nothing to read: the common put of a new message costs no read.
        if self.high(id).is_none_or(|high| seq > high) {
            return Ok(None);
        }
        let db = &self.store.db;
        match db
            .get_pinned_cf(self.store.cf(CF_MESSAGES), codec::message_key(id, seq))
            .map_err(engine)?
        {
            Some(record) => Ok(Some(codec::decode_expiry(&record)?)),
            None => Ok(None),
        }
    }

    fn create_queue(&mut self, meta: &QueueMeta) {
        let id = match self.resolve(&meta.name) {
            Some(id) => id,
            None => {
                let id = self.changes.next_id;
                self.changes.next_id += 1;
                self.changes.names.insert(meta.name.clone(), Some(id));
                let next = self.changes.next_id.to_be_bytes();
                self.batch
                    .put_cf(self.store.cf(CF_META), META_NEXT_QUEUE_ID, next);
                id
            }
        };
        self.batch.put_cf(
            self.store.cf(CF_QUEUES),
            &meta.name,
            codec::encode_queue(id, &meta.config),
        );
    }

    fn delete_queue(&mut self, name: &str) -> Result<()> {
        let Some(id) = self.resolve(name) else {
            return Ok(());
        };
        let expiry = self.store.cf(CF_EXPIRY);
        // The TTL index is ordered by deadline, not queue: find this queue's entries through its messages.
        // Reading every record of the queue is the price of an O(1)-per-message index; dropping a queue is
        // rare (an admin action, or an unsubscribe).
        let mut it = self
            .store
            .db
            .raw_iterator_cf_opt(self.store.cf(CF_MESSAGES), {
                let mut opts = rocksdb::ReadOptions::default();
                opts.set_iterate_upper_bound(codec::queue_end(id));
                opts.fill_cache(false);
                opts
            });
        it.seek(codec::message_key(id, 0));
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let (_, seq) = codec::decode_message_key(key)?;
            if let Some(at) = codec::decode_expiry(value)? {
                self.batch.delete_cf(expiry, codec::expiry_key(at, id, seq));
            }
            it.next();
        }
        it.status().map_err(engine)?;
        // And the entries of messages this batch put (deleting an index entry twice is harmless).
        for (&(queue, seq), state) in &self.touched {
            if let (true, Some(Some(at))) = (queue == id, state) {
                self.batch
                    .delete_cf(expiry, codec::expiry_key(*at, id, seq));
            }
        }
        self.touched.retain(|(queue, _), _| *queue != id);
        let start = codec::message_key(id, 0);
        let end = codec::queue_end(id);
        self.batch
            .delete_range_cf(self.store.cf(CF_MESSAGES), &start[..], &end[..]);
        self.batch.delete_cf(self.store.cf(CF_QUEUES), name);
        self.changes.names.insert(name.to_string(), None);
        self.changes.high.remove(&id);
        Ok(())
    }

    fn put(&mut self, queue: &str, message: &StoredMessage) -> Result<()> {
        let id = self
            .resolve(queue)
            .ok_or_else(|| StoreError::NoSuchQueue(queue.to_string()))?;
        let seq = message.seq;
        let expiry = self.store.cf(CF_EXPIRY);
        if let Some(Some(old)) = self.current(id, seq)? {
            if Some(old) != message.expires_at {
                self.batch
                    .delete_cf(expiry, codec::expiry_key(old, id, seq));
            }
        }
        if let Some(at) = message.expires_at {
            self.batch
                .put_cf(expiry, codec::expiry_key(at, id, seq), b"");
        }
        let key = codec::message_key(id, seq);
        self.batch.put_cf(
            self.store.cf(CF_MESSAGES),
            key,
            codec::encode_message(message),
        );
        self.touched.insert((id, seq), Some(message.expires_at));
        let high = self.changes.high.entry(id).or_insert(seq);
        *high = (*high).max(seq);
        Ok(())
    }

    fn delete(&mut self, queue: &str, seq: u64) -> Result<()> {
        let Some(id) = self.resolve(queue) else {
            return Ok(());
        };
        // A missing message gets no tombstone: a retried delete costs nothing.
        let Some(deadline) = self.current(id, seq)? else {
            return Ok(());
        };
        self.batch
            .delete_cf(self.store.cf(CF_MESSAGES), codec::message_key(id, seq));
        if let Some(at) = deadline {
            self.batch
                .delete_cf(self.store.cf(CF_EXPIRY), codec::expiry_key(at, id, seq));
        }
        self.touched.insert((id, seq), None);
        Ok(())
    }
}
