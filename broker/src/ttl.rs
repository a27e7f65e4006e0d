//! The purge index: every message in memory that has a deadline, ordered by deadline, so the core sleeps until
//! the earliest one and purges exactly what is due (never a scan of every queue). A message leaves the index
//! when it leaves the ready set (delivered, moved, consumed) and comes back with it.
//!
//! Messages paged out to the store are not indexed here: they are checked as they are read back into the
//! window (which happens whatever the consumers do, as the window drains), so an expired one is still never
//! delivered.

use std::collections::BTreeSet;

use crate::queue::QueueKey;

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
}
