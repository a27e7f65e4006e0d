//! State shared between the connection task and the API handles.
//!
//! The connection task is the only writer of protocol state; handles read it (credit, queued
//! messages, why a link ended) and wait on a `Notify` for it to change. Waiting follows the
//! register-then-check pattern so a change between the check and the wait is never missed.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use shoal_amqp::AmqpError;
use tokio::sync::Notify;

use crate::delivery::Received;
use crate::error::ClientError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain counters inconsistent in a way
    // that matters more than losing the connection, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `check` returns `Some`, re-checking whenever `notify` fires.
async fn wait_on<S, T>(
    state: &Mutex<S>,
    notify: &Notify,
    mut check: impl FnMut(&mut S) -> Option<T>,
) -> T {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(t) = check(&mut lock(state)) {
            return t;
        }
        notified.await;
    }
}

/// Connection-wide: why the connection ended, once it has.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    error: Mutex<Option<ClientError>>,
    notify: Notify,
}

impl ConnShared {
    /// Records why the connection ended (the first reason wins).
    pub fn set_error(&self, e: ClientError) {
        let mut g = lock(&self.error);
        if g.is_none() {
            *g = Some(e);
        }
        drop(g);
        self.notify.notify_waiters();
    }

    pub fn error(&self) -> Option<ClientError> {
        lock(&self.error).clone()
    }

    /// The error to report when the connection task is gone.
    pub fn gone(&self) -> ClientError {
        self.error().unwrap_or(ClientError::ConnectionClosed)
    }

    pub async fn wait_closed(&self) -> ClientError {
        wait_on(&self.error, &self.notify, |e| e.clone()).await
    }
}

/// One link's state as both sides see it.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    // Sending link. The handle counts deliveries as it submits them (so credit is reserved
    // before the transfer reaches the connection task); the task sets `limit` from flows.
    pub delivery_count: u32,
    /// The peer's delivery-count + link-credit.
    pub limit: u32,
    // Receiving link (written by the connection task).
    pub credit: u32,
    pub queue: VecDeque<Received>,
    /// Auto-replenish target (0 = off) and whether a top-up is already asked for.
    pub auto_credit: u32,
    pub replenish_asked: bool,
    /// Why the link can no longer be used; set once.
    pub terminal: Option<ClientError>,
    /// The error the peer's detach carried.
    pub remote_error: Option<AmqpError>,
    /// The peer detached (or refused) the link.
    pub remote_detached: bool,
}

impl LinkState {
    /// Sending credit left: `limit - delivery_count`, 0 if the peer's numbers lag ours.
    pub fn send_credit(&self) -> u32 {
        let c = self.limit.wrapping_sub(self.delivery_count);
        if c > u32::MAX / 2 {
            0
        } else {
            c
        }
    }

    /// Marks the link unusable (the first reason wins).
    pub fn end(&mut self, e: ClientError) {
        if self.terminal.is_none() {
            self.terminal = Some(e);
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct LinkShared {
    state: Mutex<LinkState>,
    notify: Notify,
}

impl LinkShared {
    /// Changes the state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut LinkState) -> R) -> R {
        let r = f(&mut lock(&self.state));
        self.notify.notify_waiters();
        r
    }

    /// Reads (or changes without waking anyone).
    pub fn with<R>(&self, f: impl FnOnce(&mut LinkState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    pub async fn wait<T>(&self, check: impl FnMut(&mut LinkState) -> Option<T>) -> T {
        wait_on(&self.state, &self.notify, check).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn send_credit_handles_wraparound_and_lag() {
        let mut s = LinkState {
            delivery_count: u32::MAX - 1,
            limit: 3,
            ..LinkState::default()
        };
        assert_eq!(s.send_credit(), 5);
        // The peer's numbers lag ours (it has not seen our last transfers): no credit, not 4G.
        s.delivery_count = 5;
        assert_eq!(s.send_credit(), 0);
    }

    #[test]
    fn the_first_terminal_reason_wins() {
        let mut s = LinkState::default();
        s.end(ClientError::Detached);
        s.end(ClientError::ConnectionClosed);
        assert!(matches!(s.terminal, Some(ClientError::Detached)));
    }

    #[tokio::test]
    async fn waiters_wake_on_update() {
        let shared = Arc::new(LinkShared::default());
        let waiter = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { shared.wait(|s| (s.credit >= 2).then_some(s.credit)).await })
        };
        tokio::task::yield_now().await;
        shared.update(|s| s.credit = 1);
        shared.update(|s| s.credit = 2);
        assert_eq!(waiter.await.unwrap(), 2);

        let conn = Arc::new(ConnShared::default());
        let closed = {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move { conn.wait_closed().await })
        };
        conn.set_error(ClientError::Detached);
        conn.set_error(ClientError::ConnectionClosed);
        assert!(matches!(closed.await.unwrap(), ClientError::Detached));
    }
}
