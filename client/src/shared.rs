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
async fn wait_on<S, T>(state: &Mutex<S>, notify: &Notify, mut check: impl FnMut(&mut S) -> Option<T>) -> T {
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
