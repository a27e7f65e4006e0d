//! [`RocksStore`]: the durable [`Store`] on RocksDB. Layout and rationale: docs/adr/0005-broker-storage.md.
//!
//! Column families:
//! - `queues`: queue name -> (version, queue id u64, config).
//! - `messages`: queue id u64 BE ++ seq u64 BE -> (version, flags, delivery count, [deadline], body).
//! - `expiry`: deadline u64 BE ++ queue id ++ seq -> empty (the TTL index).
//! - `meta`: `format` -> layout version; `next_queue_id` -> u64.
//!
//! Queue names map to compact ids, so message keys are 16 bytes whatever the name and a queue is one
//! contiguous key range: a scan is one seek, dropping a queue is one range tombstone. Ids are never reused,
//! so a dropped queue's range can never be mistaken for a new queue's.

mod codec;
mod write;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    ReadOptions, DB,
};

use super::{Expired, Op, QueueMeta, Result, Store, StoreError, StoredMessage};

const CF_QUEUES: &str = "queues";
const CF_MESSAGES: &str = "messages";
const CF_EXPIRY: &str = "expiry";
const CF_META: &str = "meta";

const META_FORMAT: &[u8] = b"format";
const META_NEXT_QUEUE_ID: &[u8] = b"next_queue_id";
/// Layout version in `meta`: a store written by a later, incompatible layout is refused, not misread.
const FORMAT: u64 = 1;

/// Shared by every column family's blocks; messages are mostly read soon after they are written (from the
/// memtable), so this mainly serves restarts and backlogs.
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Memtable per column family for messages: large enough that a message consumed within seconds dies in
/// the memtable (its put and its delete cancel at flush) instead of being written to L0 and compacted.
const MESSAGES_WRITE_BUFFER: usize = 64 << 20;
const SMALL_WRITE_BUFFER: usize = 8 << 20;
/// The WAL can only be dropped once every column family's memtable covering it is flushed; this forces
/// flushes of rarely written families (`queues`, `meta`) so that the WAL stays bounded.
const MAX_TOTAL_WAL: u64 = 256 << 20;

/// Where each queue's messages live, kept in memory so that writes and reads resolve names without a lookup.
#[derive(Debug, Default)]
struct Catalog {
    by_name: HashMap<String, QueueEntry>,
    by_id: HashMap<u64, String>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct QueueEntry {
    id: u64,
    /// At least the highest seq stored (since open: never lowered by deletes). A put above it is a new
    /// message, so the write path can skip reading the old record to update the TTL index.
    high: Option<u64>,
}

/// A [`Store`] in a RocksDB directory. Writes are serialized internally (put a [`super::GroupCommit`] in
/// front for throughput); reads run concurrently with them.
pub struct RocksStore {
    db: DB,
    catalog: RwLock<Catalog>,
    /// Held for the whole of a write: the batch is built against the catalog as it stands.
    writer: Mutex<()>,
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

impl RocksStore {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<RocksStore> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        // Every write reaches the WAL file (the OS) before `write` returns, synced or not: a process crash
        // loses nothing written; only a machine crash can lose unsynced writes.
        db_opts.set_manual_wal_flush(false);
        db_opts.set_max_total_wal_size(MAX_TOTAL_WAL);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_QUEUES, small_cf_options(&cache)),
            ColumnFamilyDescriptor::new(CF_MESSAGES, messages_cf_options(&cache)),
            ColumnFamilyDescriptor::new(CF_EXPIRY, tombstone_heavy(small_cf_options(&cache))),
            ColumnFamilyDescriptor::new(CF_META, small_cf_options(&cache)),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(engine)?;
        let store = RocksStore {
            db,
            catalog: RwLock::default(),
            writer: Mutex::new(()),
        };
        store.check_format()?;
        let catalog = store.load_catalog()?;
        *store
            .catalog
            .write()
            .unwrap_or_else(PoisonError::into_inner) = catalog;
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        // All four are created by `open` (create_missing_column_families), so a miss is a bug here.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        // Catalog updates (`Changes::apply`) are plain map inserts and removals that cannot panic half-way,
        // so a poisoned lock still guards a consistent catalog.
        self.catalog.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_format(&self) -> Result<()> {
        let meta = self.cf(CF_META);
        match self.db.get_pinned_cf(meta, META_FORMAT).map_err(engine)? {
            Some(v) => match codec::decode_u64("meta", &v)? {
                FORMAT => Ok(()),
                other => Err(StoreError::Engine(format!(
                    "store format {other}, this build reads {FORMAT}"
                ))),
            },
            None => {
                let mut opts = rocksdb::WriteOptions::default();
                opts.set_sync(true);
                self.db
                    .put_cf_opt(meta, META_FORMAT, FORMAT.to_be_bytes(), &opts)
                    .map_err(engine)
            }
        }
    }

    fn load_catalog(&self) -> Result<Catalog> {
        let mut catalog = Catalog {
            next_id: 1,
            ..Catalog::default()
        };
        if let Some(v) = self
            .db
            .get_pinned_cf(self.cf(CF_META), META_NEXT_QUEUE_ID)
            .map_err(engine)?
        {
            catalog.next_id = catalog.next_id.max(codec::decode_u64("meta", &v)?);
        }
        let mut it = self.db.raw_iterator_cf(self.cf(CF_QUEUES));
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let name = String::from_utf8(key.to_vec()).map_err(|_| StoreError::Corrupt {
                what: "queues",
                detail: "queue name is not UTF-8".into(),
            })?;
            let (id, _) = codec::decode_queue(value)?;
            let high = self.last_stored(id)?;
            catalog.next_id = catalog.next_id.max(id + 1);
            catalog.by_id.insert(id, name.clone());
            catalog.by_name.insert(name, QueueEntry { id, high });
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(catalog)
    }

    /// The highest seq stored under queue id `id`.
    fn last_stored(&self, id: u64) -> Result<Option<u64>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_MESSAGES));
        it.seek_for_prev(codec::message_key(id, u64::MAX));
        let found = match it.key() {
            Some(key) => match codec::decode_message_key(key)? {
                (queue, seq) if queue == id => Some(seq),
                _ => None,
            },
            None => None,
        };
        it.status().map_err(engine)?;
        Ok(found)
    }
}

fn table_options(cache: &Cache, bloom: bool) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    if bloom {
        // Deletes and overwrites of messages older than this process's high-water mark read the old
        // record: the filter makes a miss (an already-deleted seq) cheap.
        table.set_bloom_filter(10.0, false);
    }
    table
}

fn messages_cf_options(cache: &Cache) -> Options {
    let mut opts = tombstone_heavy(Options::default());
    opts.set_block_based_table_factory(&table_options(cache, true));
    opts.set_write_buffer_size(MESSAGES_WRITE_BUFFER);
    opts.set_max_write_buffer_number(3);
    // LZ4: cheap enough to keep up with the write path, and AMQP headers and properties compress well.
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

fn small_cf_options(cache: &Cache) -> Options {
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table_options(cache, false));
    opts.set_write_buffer_size(SMALL_WRITE_BUFFER);
    opts.set_compression_type(DBCompressionType::None);
    opts
}

/// A queue's keys are written once and deleted soon after: compact files that are mostly tombstones, so
/// that seeking to a queue's head or the earliest deadline does not step over dead keys for long.
fn tombstone_heavy(mut opts: Options) -> Options {
    opts.add_compact_on_deletion_collector_factory(1024, 512, 0.5);
    opts
}

impl Store for RocksStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let built = write::build(self, ops)?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(built.batch, &opts).map_err(engine)?;
        // Only now does the catalog show the batch's queues: a failed write leaves it as it was.
        let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
        built.changes.apply(&mut catalog);
        Ok(())
    }

    fn queues(&self) -> Result<Vec<QueueMeta>> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_QUEUES));
        it.seek_to_first();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let name = String::from_utf8(key.to_vec()).map_err(|_| StoreError::Corrupt {
                what: "queues",
                detail: "queue name is not UTF-8".into(),
            })?;
            let (_, config) = codec::decode_queue(value)?;
            out.push(QueueMeta { name, config });
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    fn scan(&self, queue: &str, from: u64, limit: usize) -> Result<Vec<StoredMessage>> {
        let Some(id) = self.catalog().by_name.get(queue).map(|e| e.id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(codec::queue_end(id));
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_MESSAGES), opts);
        it.seek(codec::message_key(id, from));
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            let (_, seq) = codec::decode_message_key(key)?;
            out.push(codec::decode_message(seq, value)?);
            if out.len() == limit {
                break;
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    fn last_seq(&self, queue: &str) -> Result<Option<u64>> {
        let Some(id) = self.catalog().by_name.get(queue).map(|e| e.id) else {
            return Ok(None);
        };
        self.last_stored(id)
    }

    fn expired(&self, now: u64, limit: usize) -> Result<Vec<Expired>> {
        let mut out = Vec::new();
        let catalog = self.catalog();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_EXPIRY));
        it.seek_to_first();
        while let Some(key) = it.key() {
            if out.len() >= limit {
                break;
            }
            let (expires_at, id, seq) = codec::decode_expiry_key(key)?;
            if expires_at > now {
                break;
            }
            // An id missing from the catalog belongs to a queue whose creating write has not finished
            // publishing: its entries show up on the next call.
            if let Some(queue) = catalog.by_id.get(&id) {
                out.push(Expired {
                    queue: queue.clone(),
                    seq,
                    expires_at,
                });
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    fn next_deadline(&self) -> Result<Option<u64>> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_EXPIRY));
        it.seek_to_first();
        let first = match it.key() {
            Some(key) => Some(codec::decode_expiry_key(key)?.0),
            None => None,
        };
        it.status().map_err(engine)?;
        Ok(first)
    }
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;
