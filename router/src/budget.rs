//! Byte budget per connection: how many bytes of its messages may sit inside the router at once.
//!
//! Credit bounds the number of messages in flight; this bounds their size. A connection stops reading its socket
//! while the bytes it handed to the router and that have not yet left it (written to a receiver or dropped) are
//! over the budget, so TCP pushes back on the sender. Bytes come back when the last [`Charge`] for them drops.

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

    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.in_use.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            budget: Arc::clone(self),
            bytes,
        }
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

/// Bytes charged to a connection's budget, returned on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    /// Charge the same bytes once more (a multicast copy).
    pub fn share(&self) -> Charge {
        self.budget.charge(self.bytes)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_return_on_drop_and_wake_the_reader() {
        let budget = Budget::new(100);
        let a = budget.charge(80);
        let b = a.share();
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
}
