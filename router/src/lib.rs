//! The Shoal router: an AMQP 1.0 router for direct (brokerless) messaging.
//!
//! - [`conn`]: one task per connection (protocol header, SASL, TLS, sessions, links, framing).
//! - [`core`]: the single owner of routing state: address rules, links, credit, unsettled deliveries.
//! - [`Router`]: starts the core, binds listeners, and shuts down gracefully.
//!
//! Data path: socket -> connection task (frames parsed in place; payloads stay `Bytes` slices of the read
//! buffer) -> core (routes, grants credit) -> receiver's connection task (new transfer header + the same payload
//! bytes, `writev`) -> socket. Outcomes travel the reverse way. See docs/architecture.md.

pub mod adaptor;
pub mod budget;
pub mod config;
pub mod conn;
pub mod core;
pub mod handle;
mod listener;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

pub use config::{AddressRule, AuthConfig, Distribution, Matcher, RouterConfig};
pub use conn::ConnRole;
pub use shoal_mesh::{Mode, RouterId};

/// How a router dials another router of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// As an interior, to another interior's inter-router listener (`--connect inter-router://...`).
    InterRouter,
    /// As an edge, to an interior's inter-router listener (`--connect edge://...`).
    Edge,
}
pub use handle::{HandleError, RouterHandle};
pub use listener::Bound;
pub use tokio_rustls::TlsAcceptor;

/// Messages waiting for the core, in batches (each batch is one read's worth of events from one connection).
const CORE_QUEUE: usize = 1024;

/// AMQP listeners and their connections, feeding one core's channel. The router runs one over its routing
/// core; the broker runs one over its store-backed core: the connection engine is the same.
pub struct Server {
    config: Arc<RouterConfig>,
    core_tx: mpsc::Sender<core::api::CoreMsg>,
    /// Flips when listeners must stop accepting.
    stop_accepting: watch::Sender<bool>,
    /// Flips when connections must close.
    close_connections: watch::Sender<bool>,
    connections: Arc<Semaphore>,
    listeners: Vec<JoinHandle<()>>,
}

impl Server {
    /// A server whose connections report to `core_tx`.
    pub fn new(config: Arc<RouterConfig>, core_tx: mpsc::Sender<core::api::CoreMsg>) -> Server {
        Server {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            core_tx,
            stop_accepting: watch::channel(false).0,
            close_connections: watch::channel(false).0,
            listeners: Vec::new(),
        }
    }

    /// A channel for a core, sized for batches (each batch is one read's worth of events of one connection).
    pub fn core_channel() -> (
        mpsc::Sender<core::api::CoreMsg>,
        mpsc::Receiver<core::api::CoreMsg>,
    ) {
        mpsc::channel(CORE_QUEUE)
    }

    /// Bind `addr` (port 0 picks a free port) and serve AMQP on it; with `tls`, AMQP over TLS (amqps).
    pub async fn listen(
        &mut self,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Bound> {
        self.listen_as(addr, tls, conn::ConnRole::Normal).await
    }

    /// Bind `addr` for connections of `role` (normal clients, or routers of the mesh).
    pub async fn listen_as(
        &mut self,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
        role: conn::ConnRole,
    ) -> std::io::Result<Bound> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(listener::accept_loop(
            listener,
            tls,
            self.context(),
            Arc::clone(&self.connections),
            self.stop_accepting.subscribe(),
            role,
        ));
        self.listeners.push(task);
        Ok(Bound { local_addr })
    }

    fn context(&self) -> conn::ConnContext {
        conn::ConnContext {
            config: Arc::clone(&self.config),
            core: self.core_tx.clone(),
            shutdown: self.close_connections.subscribe(),
        }
    }

    /// Keep a connection to the route container (broker) `name` at `addr`, redialling when it drops; the
    /// addresses whose rules name `name` in `link_route` are routed over it.
    pub fn connect_route_container(&mut self, name: String, addr: SocketAddr) {
        // Not a listener: it must outlive `stop_accepting`, so deliveries to the broker can settle while the
        // router drains; it ends when connections close.
        tokio::spawn(conn::connector::run(
            conn::ConnRole::RouteContainer(name),
            addr,
            self.context(),
        ));
    }

    /// Keep a connection of `role` to `addr`, redialling with backoff when it drops (as for brokers).
    pub fn connect(&mut self, role: conn::ConnRole, addr: SocketAddr) {
        tokio::spawn(conn::connector::run(role, addr, self.context()));
    }

    /// Stop accepting new connections.
    pub fn stop_accepting(&self) {
        let _ = self.stop_accepting.send(true);
        for l in &self.listeners {
            l.abort();
        }
    }

    /// Close every connection with `amqp:connection:forced` and wait (up to 5 s) for them to go.
    pub async fn close_connections(self) {
        let _ = self.close_connections.send(true);
        let all = self.config.max_connections as u32;
        let closed =
            tokio::time::timeout(Duration::from_secs(5), self.connections.acquire_many(all)).await;
        if closed.is_err() {
            tracing::warn!(
                still_open = all as usize - self.connections.available_permits(),
                "connections did not close within 5 s"
            );
        }
    }
}

/// A running router.
pub struct Router {
    server: Server,
    handle: RouterHandle,
    core_task: JoinHandle<()>,
}

impl Router {
    /// Start the routing core. Must be called inside a tokio runtime.
    pub fn start(config: RouterConfig) -> Router {
        let config = Arc::new(config);
        let (core_tx, core_rx) = Server::core_channel();
        let core_task = tokio::spawn(core::Core::new(Arc::clone(&config), core_rx).run());
        Router {
            handle: RouterHandle::new(core_tx.clone()),
            server: Server::new(config, core_tx),
            core_task,
        }
    }

    pub fn handle(&self) -> RouterHandle {
        self.handle.clone()
    }

    /// Bind `addr` (port 0 picks a free port) and serve AMQP on it; with `tls`, AMQP over TLS (amqps).
    pub async fn listen(
        &mut self,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Bound> {
        self.server.listen(addr, tls).await
    }

    /// Bind `addr` for other routers: interiors connect here as inter-router peers, edges as edges.
    pub async fn listen_inter_router(&mut self, addr: SocketAddr) -> std::io::Result<Bound> {
        self.server
            .listen_as(addr, None, conn::ConnRole::MeshAccepted)
            .await
    }

    /// Keep a connection to the router at `addr` (an interior's inter-router listener), redialling with
    /// exponential backoff (100 ms to 5 s) while it is down.
    pub fn connect(&mut self, role: PeerRole, addr: SocketAddr) {
        self.connect_with_cost(role, addr, 1);
    }

    /// As [`Router::connect`], with the link's cost in route computation (at least 1; a link costs the
    /// higher of what its two ends say).
    pub fn connect_with_cost(&mut self, role: PeerRole, addr: SocketAddr, cost: u32) {
        let role = conn::ConnRole::MeshDialled {
            as_edge: role == PeerRole::Edge,
            cost: cost.max(1),
        };
        self.server.connect(role, addr);
    }

    /// Keep a connection to the broker `name` at `addr` (see [`Server::connect_route_container`]).
    pub fn connect_route_container(&mut self, name: String, addr: SocketAddr) {
        self.server.connect_route_container(name, addr);
    }

    /// Stop accepting; let unsettled deliveries settle for up to `grace`; close every connection with
    /// `amqp:connection:forced`; wait for them to go.
    pub async fn shutdown(self, grace: Duration) {
        self.server.stop_accepting();
        let deadline = tokio::time::Instant::now() + grace;
        // Drain: deliveries in flight get their outcomes while nothing new can connect.
        while tokio::time::Instant::now() < deadline {
            match self.handle.snapshot().await {
                Ok(s) if s.unsettled > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => break,
            }
        }
        tracing::debug!("drained; closing connections");
        self.server.close_connections().await;
        drop(self.handle);
        self.core_task.abort();
    }
}
