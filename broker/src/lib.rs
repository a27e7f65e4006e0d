//! Shoal's store-and-forward broker: queues, topics and subscriptions on a durable store, with TTL and
//! expiry, dead-lettering after N delivery attempts, redelivery delays, browsing, and bounded memory however
//! many messages are stored.
//!
//! The broker speaks AMQP through the router's connection engine ([`shoal_router::Server`]): only its core
//! differs. One task ([`core`]) owns every queue and link; storage goes through [`store::GroupCommit`] so
//! that many producers' durable messages share one fsync, and a sender is told `accepted` only once the write
//! covering its message has returned.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn shoal_broker::store::Store>) -> shoal_broker::Result<()> {
//! use shoal_broker::{Broker, BrokerAddress, BrokerConfig};
//! let config = BrokerConfig { addresses: vec![BrokerAddress::queue("orders")], ..BrokerConfig::default() };
//! let mut broker = Broker::start(config, store, shoal_router::RouterConfig::default()).await?;
//! let bound = broker.listen("127.0.0.1:0".parse().unwrap()).await?;
//! println!("broker on {}", bound.local_addr);
//! broker.handle().set_address(BrokerAddress::topic("news")).await?;
//! broker.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod clock;
pub mod config;
mod consume;
mod core;
mod dead;
pub mod error;
mod links;
pub mod manage;
mod meta;
mod persist;
mod produce;
mod queue;
mod restore;
pub mod selector;
pub mod stats;
pub mod store;
mod ttl;

use std::net::SocketAddr;
use std::sync::Arc;

use shoal_router::{Bound, RouterConfig, Server, TlsAcceptor};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::admin::Control;
pub use config::{AddressKind, AddressSettings, BrokerAddress, BrokerConfig, FullPolicy};
pub use error::{BrokerError, Result};
pub use stats::{BrokerStats, QueueCounters, QueueStats};

/// Annotations on messages the broker moves to an expiry or dead-letter address.
pub mod annotations {
    pub use crate::dead::{DEAD_LETTER_REASON, EXPIRED, ORIGINAL_ADDRESS};
}

/// Admin requests waiting for the core.
const CONTROL_QUEUE: usize = 64;
/// Storage completions and reads waiting for the core.
const INTERNAL_QUEUE: usize = 4096;

/// A running broker: AMQP listeners over the broker core.
pub struct Broker {
    server: Server,
    handle: BrokerHandle,
    core: JoinHandle<()>,
    worker: store::CommitWorker,
}

impl Broker {
    /// Restore every queue the store holds, declare `config.addresses`, and start the core. Must be called
    /// inside a tokio runtime. `server_config` sets the AMQP side (container id, limits, SASL).
    pub async fn start(
        config: BrokerConfig,
        store: Arc<dyn store::Store>,
        server_config: RouterConfig,
    ) -> Result<Broker> {
        let limits = core::Limits::of(&config);
        let restored = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || restore::read(&*store, limits.window))
                .await
                .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??
        };
        let (commit, worker) = store::GroupCommit::start(Arc::clone(&store))?;
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (core_tx, core_rx) = Server::core_channel();
        let persist = persist::Persister::new(commit, store, internal_tx);
        let mut core = core::Core::new(limits, core_rx, control_rx, internal_rx, persist);
        core.restore(restored);
        for address in config.addresses {
            core.set_address(address)?;
        }
        // Restored and declared queues are written before anything else can reach the writer.
        let core = tokio::spawn(core.run());
        Ok(Broker {
            server: Server::new(Arc::new(server_config), core_tx),
            handle: BrokerHandle { tx: control_tx },
            core,
            worker,
        })
    }

    /// Serve AMQP on `addr` (port 0 picks a free port).
    pub async fn listen(&mut self, addr: SocketAddr) -> Result<Bound> {
        Ok(self.server.listen(addr, None).await?)
    }

    /// Serve AMQP over TLS (amqps) on `addr`.
    pub async fn listen_tls(&mut self, addr: SocketAddr, tls: TlsAcceptor) -> Result<Bound> {
        Ok(self.server.listen(addr, Some(tls)).await?)
    }

    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// Stop accepting, close every connection (their unsettled deliveries go back to their queues), stop the
    /// core, and wait until the store writer has written everything it was given.
    pub async fn shutdown(self) {
        self.server.stop_accepting();
        let (tx, rx) = oneshot::channel();
        if self.handle.tx.send(Control::Quiesce(tx)).await.is_ok() {
            let _ = rx.await;
        }
        tracing::debug!("broker quiesced; closing connections");
        self.server.close_connections().await;
        tracing::debug!("broker connections closed; stopping the core");
        let (tx, rx) = oneshot::channel();
        if self.handle.tx.send(Control::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.core.await;
        tracing::debug!("broker core stopped; waiting for the store writer");
        let worker = self.worker;
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
}

/// Management of a running broker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BrokerHandle {
    tx: mpsc::Sender<Control>,
}

impl BrokerHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Control) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| BrokerError::Stopped)?;
        rx.await.map_err(|_| BrokerError::Stopped)
    }

    /// Declare an address (or change the settings of an existing one of the same kind); returns once it is in
    /// the store.
    pub async fn set_address(&self, address: BrokerAddress) -> Result<()> {
        self.ask(|tx| Control::SetAddress(address, tx)).await?
    }

    /// Delete an address and its messages (a topic: with the subscriptions receivers made on it). False if
    /// there was no such address.
    pub async fn delete_address(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.ask(|tx| Control::DeleteAddress(name, tx)).await
    }

    /// Every address, by name.
    pub async fn addresses(&self) -> Result<Vec<BrokerAddress>> {
        self.ask(Control::Addresses).await
    }

    /// Per-queue depth and counters.
    pub async fn stats(&self) -> Result<BrokerStats> {
        self.ask(Control::Stats).await
    }
}
