//! [`MemoryStore`]: the store contract on BTreeMaps, for tests and brokers that keep nothing across restarts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Expired, Op, QueueMeta, Result, Store, StoreError, StoredMessage};

/// Everything behind one lock: a batch must change queues, messages and the TTL index together.
#[derive(Default)]
struct State {
    queues: BTreeMap<String, Queue>,
    /// (expires_at, queue, seq): ordered by deadline, as `expired` reads it.
    expiry: BTreeSet<(u64, String, u64)>,
}

struct Queue {
    config: Bytes,
    messages: BTreeMap<u64, StoredMessage>,
}

/// An in-memory [`Store`]. `sync` is meaningless here and ignored.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug in this file (the apply step cannot fail
        // half-way), so the state is still consistent: keep serving rather than poison every later call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checks a batch against the queues that will exist at each step, so that applying it cannot fail half-way.
fn validate(state: &State, ops: &[Op]) -> Result<()> {
    // Only names the batch itself creates or deletes differ from `state`.
    let mut created: HashSet<&str> = HashSet::new();
    let mut deleted: HashSet<&str> = HashSet::new();
    for op in ops {
        match op {
            Op::CreateQueue(meta) => {
                deleted.remove(meta.name.as_str());
                created.insert(&meta.name);
            }
            Op::DeleteQueue { queue } => {
                created.remove(queue.as_str());
                deleted.insert(queue);
            }
            Op::Put { queue, .. } => {
                let exists = created.contains(queue.as_str())
                    || (!deleted.contains(queue.as_str()) && state.queues.contains_key(queue));
                if !exists {
                    return Err(StoreError::NoSuchQueue(queue.clone()));
                }
            }
            Op::Delete { .. } => {}
        }
    }
    Ok(())
}

fn apply(state: &mut State, op: &Op) {
    match op {
        Op::CreateQueue(meta) => match state.queues.get_mut(&meta.name) {
            Some(q) => q.config = meta.config.clone(),
            None => {
                let q = Queue {
                    config: meta.config.clone(),
                    messages: BTreeMap::new(),
                };
                state.queues.insert(meta.name.clone(), q);
            }
        },
        Op::DeleteQueue { queue } => {
            if let Some(q) = state.queues.remove(queue) {
                for m in q.messages.values() {
                    if let Some(at) = m.expires_at {
                        state.expiry.remove(&(at, queue.clone(), m.seq));
                    }
                }
            }
        }
        Op::Put { queue, message } => {
            // `validate` guarantees the queue exists.
            let Some(q) = state.queues.get_mut(queue) else {
                return;
            };
            if let Some(old) = q.messages.insert(message.seq, message.clone()) {
                if let Some(at) = old.expires_at {
                    state.expiry.remove(&(at, queue.clone(), old.seq));
                }
            }
            if let Some(at) = message.expires_at {
                state.expiry.insert((at, queue.clone(), message.seq));
            }
        }
        Op::Delete { queue, seq } => {
            let Some(q) = state.queues.get_mut(queue) else {
                return;
            };
            if let Some(old) = q.messages.remove(seq) {
                if let Some(at) = old.expires_at {
                    state.expiry.remove(&(at, queue.clone(), *seq));
                }
            }
        }
    }
}

impl Store for MemoryStore {
    fn write(&self, ops: &[Op], _sync: bool) -> Result<()> {
        let mut state = self.lock();
        validate(&state, ops)?;
        for op in ops {
            apply(&mut state, op);
        }
        Ok(())
    }

    fn queues(&self) -> Result<Vec<QueueMeta>> {
        let state = self.lock();
        let queues = state.queues.iter();
        Ok(queues
            .map(|(name, q)| QueueMeta {
                name: name.clone(),
                config: q.config.clone(),
            })
            .collect())
    }

    fn scan(&self, queue: &str, from: u64, limit: usize) -> Result<Vec<StoredMessage>> {
        let state = self.lock();
        let Some(q) = state.queues.get(queue) else {
            return Ok(Vec::new());
        };
        Ok(q.messages
            .range(from..)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn last_seq(&self, queue: &str) -> Result<Option<u64>> {
        let state = self.lock();
        Ok(state
            .queues
            .get(queue)
            .and_then(|q| q.messages.keys().next_back().copied()))
    }

    fn expired(&self, now: u64, limit: usize) -> Result<Vec<Expired>> {
        let state = self.lock();
        let due = state
            .expiry
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(limit);
        Ok(due
            .map(|(at, q, seq)| Expired {
                queue: q.clone(),
                seq: *seq,
                expires_at: *at,
            })
            .collect())
    }

    fn next_deadline(&self) -> Result<Option<u64>> {
        Ok(self.lock().expiry.first().map(|(at, _, _)| *at))
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance;
    use super::MemoryStore;

    conformance::suite!(MemoryStore::new());
}
