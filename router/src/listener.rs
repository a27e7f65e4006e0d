//! Accepting connections: a connection limit, TCP_NODELAY, optional TLS, one task per connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::conn::{self, ConnContext, ConnRole};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A process-wide unique connection id (accepted and outgoing connections alike).
pub(crate) fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// Accept until `stop` flips; each connection holds a permit of `limit` for its lifetime.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: ConnContext,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    role: ConnRole,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        // Small frames (flows, dispositions) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let id = next_conn_id();
        let ctx = ctx.clone();
        let tls = tls.clone();
        let role = role.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            match tls {
                None => conn::serve(stream, id, peer, ctx, role).await,
                Some(acceptor) => {
                    let deadline = ctx.config.handshake_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => conn::serve(stream, id, peer, ctx, role).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake deadline passed"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// A bound listener: where it listens.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub local_addr: SocketAddr,
}
