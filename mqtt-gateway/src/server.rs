//! The listener: one task per MQTT connection, bounded by a semaphore; the state the connections share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shoal_registry::Registry;
use shoal_router::RouterHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::GatewayConfig;
use crate::error::Error;
use crate::persist::{Persistence, Sessions};
use crate::retained::Retained;
use crate::session::Peer;
use crate::tls::ServerCert;

/// What every connection task reaches.
pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub router: RouterHandle,
    pub registry: Option<Registry>,
    pub retained: Mutex<Retained>,
    /// Persistent sessions (`None`: every session is clean).
    pub persistent: Option<Arc<Sessions>>,
    /// Live sessions by client id, so a second CONNECT with the same id takes the session over (MQTT-3.1.4-2).
    sessions: Mutex<HashMap<String, (u64, Arc<Notify>)>>,
    next_session: AtomicU64,
}

/// A session's entry in the client-id table: notified when another connection takes the id over; removes
/// itself on drop.
pub(crate) struct SessionGuard {
    shared: Arc<Shared>,
    key: String,
    pub seq: u64,
    pub taken_over: Arc<Notify>,
}

impl Shared {
    /// Register `key` (tenant and client id), telling a live session with the same key to go.
    pub fn claim(self: &Arc<Self>, key: String) -> SessionGuard {
        let seq = self.next_session.fetch_add(1, Ordering::Relaxed);
        let taken_over = Arc::new(Notify::new());
        let old = lock(&self.sessions).insert(key.clone(), (seq, Arc::clone(&taken_over)));
        if let Some((_, old)) = old {
            old.notify_one();
        }
        SessionGuard {
            shared: Arc::clone(self),
            key,
            seq,
            taken_over,
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut sessions = lock(&self.shared.sessions);
        if sessions
            .get(&self.key)
            .is_some_and(|(seq, _)| *seq == self.seq)
        {
            sessions.remove(&self.key);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running MQTT gateway.
pub struct Gateway {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    /// The MQTTS listener's address and accept task, once [`Gateway::listen_tls`] ran.
    tls: Option<(SocketAddr, JoinHandle<()>)>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Listen on `addr`; each MQTT connection becomes a connection on the router core behind `router`.
    /// With a `registry`, clients authenticate as `auth-id@tenant` and may use the Hono topics.
    pub async fn bind(
        addr: SocketAddr,
        config: GatewayConfig,
        router: RouterHandle,
        registry: Option<Registry>,
    ) -> Result<Gateway, Error> {
        Gateway::bind_with(addr, config, router, registry, None).await
    }

    /// [`Gateway::bind`] with persistent sessions kept as `persistence` says (see [`crate::persist`]):
    /// the sessions on disk are restored (their keepers start) before the listener accepts.
    pub async fn bind_with(
        addr: SocketAddr,
        config: GatewayConfig,
        router: RouterHandle,
        registry: Option<Registry>,
        persistence: Option<Persistence>,
    ) -> Result<Gateway, Error> {
        let persistent = match persistence {
            Some(p) => Some(Sessions::start(p, router.clone()).await?),
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        let max_connections = config.max_connections;
        let shared = Arc::new(Shared {
            retained: Mutex::new(Retained::new(
                config.max_retained,
                config.max_retained_bytes,
            )),
            config,
            router,
            registry,
            persistent,
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(0),
        });
        let connections = Arc::new(Semaphore::new(max_connections));
        let (stop, stopped) = watch::channel(false);
        // On an edge (`shoal mqtt-gateway`) the interior's relay forwards Hono's link form: the edge's own would
        // get a copy of each command too (an edge's pattern subscriptions receive from its interior) and the
        // device would get it twice.
        let edge = shared
            .router
            .snapshot()
            .await
            .is_ok_and(|s| s.mode == "edge");
        if shared.registry.is_some() && !edge {
            // Hono's `command/TENANT` link form (see `crate::relay`); only devices with an identity get commands.
            // Started before the gateway says it is up: its links are in the core's queue ahead of anything
            // a caller asks the core next.
            crate::relay::start(shared.router.clone(), stop.subscribe()).await;
        }
        let accept = tokio::spawn(accept_loop(
            listener,
            None,
            Arc::clone(&shared),
            Arc::clone(&connections),
            stopped,
        ));
        Ok(Gateway {
            local_addr,
            stop,
            accept,
            tls: None,
            connections,
            max_connections,
            shared,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Also accept MQTT over TLS on `addr`, serving `cert`. The connections share everything with the plain
    /// listener's (the connection limit, sessions, retained messages). With a registry, clients are asked
    /// for a certificate and devices may log in with one (see [`crate::tls`]). Returns the bound address.
    pub async fn listen_tls(
        &mut self,
        addr: SocketAddr,
        cert: ServerCert,
    ) -> Result<SocketAddr, Error> {
        let config = crate::tls::server_config(cert, self.shared.registry.as_ref())?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let accept = tokio::spawn(accept_loop(
            listener,
            Some(TlsAcceptor::from(config)),
            Arc::clone(&self.shared),
            Arc::clone(&self.connections),
            self.stop.subscribe(),
        ));
        if let Some((_, old)) = self.tls.replace((local, accept)) {
            old.abort();
        }
        Ok(local)
    }

    /// The MQTTS listener's address, if there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|(addr, _)| *addr)
    }

    /// Retained messages held right now.
    pub fn retained_count(&self) -> usize {
        lock(&self.shared.retained).len()
    }

    /// Persistent sessions kept right now (online and offline).
    pub fn persistent_sessions(&self) -> usize {
        self.shared.persistent.as_ref().map_or(0, |p| p.len())
    }

    /// Wait (up to `limit`) until the persistent sessions restored from disk at start hold their
    /// subscriptions again, so that what is published from now on is kept for them. Their keepers need the
    /// broker: call this once the router's connection to it is up.
    pub async fn wait_sessions_restored(&self, limit: std::time::Duration) {
        if let Some(p) = &self.shared.persistent {
            p.wait_restored(limit).await;
        }
    }

    /// Offline persistent sessions whose subscriptions are held (what they miss is being kept).
    pub fn offline_sessions(&self) -> usize {
        self.shared.persistent.as_ref().map_or(0, |p| p.offline())
    }

    /// Stop accepting, tell every connection to close (MQTT 5 clients get DISCONNECT 0x8B) and wait for them
    /// (up to 5 s).
    pub async fn shutdown(self) {
        if let Some(p) = &self.shared.persistent {
            p.set_stopping();
        }
        let _ = self.stop.send(true);
        self.accept.abort();
        if let Some((_, tls)) = &self.tls {
            tls.abort();
        }
        let all = self.max_connections as u32;
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.connections.acquire_many(all),
        )
        .await;
        if closed.is_err() {
            tracing::warn!("MQTT connections did not close within 5 s");
        }
        if let Some(p) = &self.shared.persistent {
            // Their records stay on disk and their queues in the broker: the next start resumes them.
            p.stop_all().await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    connections: Arc<Semaphore>,
    stopped: watch::Receiver<bool>,
) {
    loop {
        // Wait for a free slot before accepting: beyond the limit, clients wait in the backlog.
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an MQTT connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let stopped = stopped.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let (mut rd, mut wr) = stream.into_split();
                    crate::session::run(&mut rd, &mut wr, Peer::default(), shared, stopped).await
                }
                Some(tls) => serve_tls(stream, tls, shared, stopped).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "MQTT connection ended");
            }
            drop(permit);
        });
    }
}

/// One MQTTS connection: the TLS handshake (within the CONNECT deadline: a client that stalls it holds a
/// connection slot like one that never sends CONNECT), the login its client certificate stands for, the
/// session, and a TLS close.
async fn serve_tls(
    stream: TcpStream,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
) -> Result<(), Error> {
    let Ok(accepted) =
        tokio::time::timeout(shared.config.connect_timeout, tls.accept(stream)).await
    else {
        tracing::debug!("no TLS handshake within the CONNECT deadline");
        return Ok(());
    };
    // A failed handshake (an untrusted client certificate among them) already sent its alert.
    let stream = accepted?;
    let cert = match (&shared.registry, stream.get_ref().1.peer_certificates()) {
        (Some(registry), Some(chain)) if !chain.is_empty() => {
            Some(crate::tls::cert_login(registry, chain))
        }
        _ => None,
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let peer = Peer { tls: true, cert };
    let result = crate::session::run(&mut rd, &mut wr, peer, shared, stopped).await;
    // close_notify, so the client reads a clean end after the last CONNACK or DISCONNECT.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::io::AsyncWriteExt::shutdown(&mut wr),
    )
    .await;
    result
}
