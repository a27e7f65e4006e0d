//! The purge index: every message in memory that has a deadline, ordered by deadline, so the core sleeps until
//! the earliest one and purges exactly what is due (never a scan of every queue). A message leaves the index
//! when it leaves the ready set (delivered, moved, consumed) and comes back with it.
//!
//! Messages paged out to the store are not indexed here (there may be millions): the store's own TTL index
//! covers them. [`PagedExpiry`] remembers when its earliest deadline is due; the core then reads the due
//! entries on a blocking thread and purges those that are still paged out ([`Core::purge_paged`]). Whatever
//! else happens, a message read back into the window is checked again, so an expired one is never delivered.

use std::collections::BTreeSet;

use crate::core::Core;
use crate::dead::Reason;
use crate::persist::DueEntries;
use crate::queue::{Entry, QueueKey};
use crate::store;

/// Purge passes through the store's index are at least this far apart (ms): entries just purged or about to
/// be purged from memory are still in the index until their deletes are written.
const STORE_PURGE_GAP_MS: u64 = 100;

/// When to ask the store's TTL index, and what must not overlap with that: a purge read and a window read of
/// the same messages would both bring a message back.
#[derive(Debug, Default)]
pub(crate) struct PagedExpiry {
    /// The earliest deadline of a paged-out message (or the store's next deadline after the last purge).
    next: Option<u64>,
    /// A purge read is on its way.
    running: bool,
    /// Window reads on their way.
    pub loads: u32,
}

impl PagedExpiry {
    /// A message with this deadline went to the store only.
    pub fn note(&mut self, deadline: Option<u64>) {
        if let Some(d) = deadline {
            self.next = Some(self.next.map_or(d, |n| n.min(d)));
        }
    }

    /// When the next purge read is due (nothing while one runs or window reads are out).
    pub fn due(&self) -> Option<u64> {
        if self.running || self.loads > 0 {
            return None;
        }
        self.next
    }

    /// Start a purge read if one is due at `now`.
    pub fn start(&mut self, now: u64) -> bool {
        if self.due().is_some_and(|d| d <= now) {
            self.running = true;
            self.next = None;
            return true;
        }
        false
    }

    /// A window read may start.
    pub fn may_load(&self) -> bool {
        !self.running
    }

    fn finished(&mut self, next: Option<u64>, now: u64) {
        self.running = false;
        if let Some(n) = next {
            self.note(Some(n.max(now + STORE_PURGE_GAP_MS)));
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ExpiryIndex {
    set: BTreeSet<(u64, QueueKey, u64)>,
}

impl ExpiryIndex {
    pub fn insert(&mut self, deadline: Option<u64>, queue: QueueKey, seq: u64) {
        if let Some(d) = deadline {
            self.set.insert((d, queue, seq));
        }
    }

    pub fn remove(&mut self, deadline: Option<u64>, queue: QueueKey, seq: u64) {
        if let Some(d) = deadline {
            self.set.remove(&(d, queue, seq));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.set.first().map(|(d, _, _)| *d)
    }

    /// Take up to `limit` entries due at `now`, earliest first.
    pub fn pop_due(&mut self, now: u64, limit: usize) -> Vec<(QueueKey, u64)> {
        let mut due = Vec::new();
        while due.len() < limit {
            match self.set.first() {
                Some((d, _, _)) if *d <= now => {}
                _ => break,
            }
            if let Some((_, q, seq)) = self.set.pop_first() {
                due.push((q, seq));
            }
        }
        due
    }

    /// Forget a queue's entries (the queue is gone).
    pub fn remove_queue(&mut self, queue: QueueKey) {
        self.set.retain(|(_, q, _)| *q != queue);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

impl Core {
    /// Due entries of the store's TTL index: the messages still paged out expire now (those in memory are
    /// the in-memory index's; those gone are gone).
    pub(crate) fn purge_paged(&mut self, result: store::Result<DueEntries>) {
        let now = self.clock.now_ms();
        let (due, next) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("reading the store's TTL index failed: {e}");
                self.paged_expiry.finished(Some(now), now);
                return;
            }
        };
        self.paged_expiry.finished(next, now);
        // Window reads held back while this ran may go now.
        let waiting: Vec<QueueKey> = self
            .queues
            .iter()
            .filter(|(_, q)| q.paging.active())
            .map(|(i, q)| QueueKey {
                index: i as u32,
                generation: q.generation,
            })
            .collect();
        for key in waiting {
            self.mark(key);
        }
        for (expired, message) in due {
            let Some(message) = message else { continue };
            let Some(key) = self.queue_names.get(&expired.queue).copied() else {
                continue;
            };
            let Some(q) = self.queue_mut(key) else {
                continue;
            };
            if !q.paged_out(message.seq) {
                continue;
            }
            let entry = Entry::from_stored(message);
            q.paging.purged.insert(entry.seq);
            q.paging.count = q.paging.count.saturating_sub(1);
            q.paging.bytes = q.paging.bytes.saturating_sub(entry.size());
            self.dead_letter(key, entry, Reason::Expired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(i: u32) -> QueueKey {
        QueueKey {
            index: i,
            generation: 1,
        }
    }

    #[test]
    fn due_entries_come_out_in_deadline_order() {
        let mut idx = ExpiryIndex::default();
        idx.insert(Some(30), q(1), 1);
        idx.insert(Some(10), q(2), 7);
        idx.insert(None, q(1), 2);
        idx.insert(Some(20), q(1), 3);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.next(), Some(10));
        assert_eq!(idx.pop_due(5, 10), vec![]);
        assert_eq!(idx.pop_due(20, 10), vec![(q(2), 7), (q(1), 3)]);
        assert_eq!(idx.next(), Some(30));
        idx.remove(Some(30), q(1), 1);
        assert_eq!(idx.next(), None);
    }

    #[test]
    fn pop_due_respects_the_limit_and_queue_removal() {
        let mut idx = ExpiryIndex::default();
        for seq in 0..10 {
            idx.insert(Some(seq), q(seq as u32 % 2), seq);
        }
        assert_eq!(idx.pop_due(100, 3).len(), 3);
        idx.remove_queue(q(1));
        assert!(idx.pop_due(100, 100).iter().all(|(k, _)| *k == q(0)));
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn paged_expiry_waits_for_reads_and_spaces_its_passes() {
        let mut p = PagedExpiry::default();
        assert!(!p.start(100));
        p.note(Some(50));
        p.note(Some(70));
        p.note(None);
        assert_eq!(p.due(), Some(50));
        p.loads = 1;
        assert_eq!(p.due(), None, "not while a window read is out");
        assert!(!p.start(100));
        p.loads = 0;
        assert!(p.start(100));
        assert!(!p.may_load());
        assert_eq!(p.due(), None);
        // The index still shows what was just purged: the next pass waits a little.
        p.finished(Some(60), 100);
        assert!(p.may_load());
        assert_eq!(p.due(), Some(100 + STORE_PURGE_GAP_MS));
        assert!(p.start(200));
        p.finished(None, 200);
        assert_eq!(p.due(), None);
    }
}
