//! Protocol adaptors: connections that are not AMQP sockets (the MQTT gateway's) joining the routing core.
//!
//! An adaptor connection speaks the core's own API ([`crate::core::api`]): it sends [`Event`]s (attach a link,
//! a transfer, credit, an outcome) and takes [`Command`](crate::core::api::Command)s from its [`Outbox`],
//! exactly as an AMQP connection task does, so the core cannot tell them apart: rules, credit, link routes to
//! brokers and outcomes all work the same. Messages are AMQP-encoded [`Msg`](crate::core::api::Msg)s.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::core::api::{ConnId, CoreMsg, Event, Outbox};
use crate::handle::HandleError;

/// One adaptor connection to the core. Dropping it tells the core the connection is gone (its links detach,
/// what it held unsettled is released), as a closed socket would.
#[derive(Debug)]
pub struct AdaptorConnection {
    id: ConnId,
    core: mpsc::Sender<CoreMsg>,
    outbox: Arc<Outbox>,
}

impl AdaptorConnection {
    pub(crate) async fn open(core: mpsc::Sender<CoreMsg>) -> Result<Self, HandleError> {
        let id = crate::listener::next_conn_id();
        let outbox = Arc::new(Outbox::default());
        core.send(CoreMsg::Open {
            conn: id,
            outbox: Arc::clone(&outbox),
            route_container: None,
            mesh: None,
        })
        .await
        .map_err(|_| HandleError::ShuttingDown)?;
        Ok(AdaptorConnection { id, core, outbox })
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Where the core's commands for this connection arrive (await [`Outbox::notified`], then take them).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Hand the core a batch of events (waits while the core's channel is full: that is the back-pressure).
    pub async fn send(&self, events: Vec<Event>) -> Result<(), HandleError> {
        if events.is_empty() {
            return Ok(());
        }
        self.core
            .send(CoreMsg::Batch {
                conn: self.id,
                events,
            })
            .await
            .map_err(|_| HandleError::ShuttingDown)
    }
}

impl Drop for AdaptorConnection {
    fn drop(&mut self) {
        let closed = CoreMsg::Closed { conn: self.id };
        // Usually there is room; when the core is busy, a task waits for it (the core must hear it, or the
        // connection's links would live on).
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.core.try_send(closed) {
            let core = self.core.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = core.send(msg).await;
                });
            }
        }
    }
}
