//! Byte budget per connection: how many bytes of its messages may be on their way out of the router at once.
//!
//! Credit bounds the number of messages in flight; this bounds their size. A message's bytes count against its
//! sender's connection from the moment the core hands them to a receiver's connection until that connection has
//! encoded them for its socket (or dropped them). A connection stops reading its socket while it is over budget,
//! so TCP pushes back on a sender whose receivers are slow readers.
//!
//! Bytes that wait for receiver credit (queued in the core) do not count: they are bounded by credit, and counting
//! them could stop a connection from reading the very flow frame that would let them go (a sender and its
//! receiver on the same connection).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug)]
pub struct Budget {
    in_use: AtomicUsize,
    limit: usize,
    notify: Notify,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            in_use: AtomicUsize::new(0),
            limit,
            notify: Notify::new(),
        })
    }

    /// A charge for `bytes`, not yet counted: see [`Charge::activate`].
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        Charge {
            budget: Arc::clone(self),
            bytes,
            active: false,
        }
    }

    /// A budget for bytes that belong to no connection (messages a broker loads from its store): never over.
    pub fn untracked() -> Arc<Budget> {
        static UNTRACKED: std::sync::OnceLock<Arc<Budget>> = std::sync::OnceLock::new();
        Arc::clone(UNTRACKED.get_or_init(|| Budget::new(usize::MAX)))
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub fn over(&self) -> bool {
        self.in_use() > self.limit
    }

    /// Wait until the bytes in use fall to half the limit (hysteresis, so reading resumes in large steps).
    pub async fn wait_below_half(&self) {
        loop {
            let notified = self.notify.notified();
            if self.in_use() <= self.limit / 2 {
                return;
            }
            notified.await;
        }
    }

    fn release(&self, bytes: usize) {
        let before = self.in_use.fetch_sub(bytes, Ordering::Relaxed);
        let after = before - bytes;
        if before > self.limit / 2 && after <= self.limit / 2 {
            self.notify.notify_waiters();
        }
    }
}

/// Bytes of one message (or part), counted against their origin's budget once active, returned on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
    active: bool,
}

impl Charge {
    /// Start counting: the bytes are now on their way to a receiver's connection.
    pub fn activate(&mut self) {
        if !self.active {
            self.active = true;
            self.budget.in_use.fetch_add(self.bytes, Ordering::Relaxed);
        }
    }

    /// An inactive charge for the same bytes (a multicast copy).
    pub fn share(&self) -> Charge {
        self.budget.charge(self.bytes)
    }

    /// Fold another charge of the same origin into this one (parts of one message queued together).
    pub fn absorb(&mut self, mut other: Charge) {
        if other.active {
            self.budget.release(other.bytes);
            other.active = false;
        }
        self.bytes += other.bytes;
        if self.active {
            self.budget.in_use.fetch_add(other.bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.active {
            self.budget.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_return_on_drop_and_wake_the_reader() {
        let budget = Budget::new(100);
        let mut a = budget.charge(80);
        let mut b = a.share();
        assert!(!budget.over(), "nothing counts until it is on its way out");
        a.activate();
        b.activate();
        assert!(budget.over());
        let waiter = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.wait_below_half().await }
        });
        drop(a);
        assert_eq!(budget.in_use(), 80);
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn absorbed_parts_count_once_activated() {
        let budget = Budget::new(100);
        let mut a = budget.charge(10);
        a.absorb(budget.charge(20));
        assert_eq!(budget.in_use(), 0);
        a.activate();
        assert_eq!(budget.in_use(), 30);
        let mut c = budget.charge(5);
        c.activate();
        a.absorb(c);
        assert_eq!(budget.in_use(), 35);
        drop(a);
        assert_eq!(budget.in_use(), 0);
    }
}
