//! Connections the router makes: to route containers (brokers) that hold link-routed addresses, and to
//! other routers of the mesh (inter-router, or as an edge to its interior). A connector dials, exchanges
//! protocol headers, runs the same engine as an accepted connection (speaking first), and when the
//! connection ends dials again with exponential backoff, until the router shuts down. One code path for
//! every role: only the [`ConnRole`] handed to the engine differs.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::AMQP_HEADER;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{engine, ConnContext, ConnRole};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the peer is, for log lines.
fn kind(role: &ConnRole) -> &'static str {
    match role {
        ConnRole::RouteContainer(_) => "broker",
        ConnRole::MeshDialled { as_edge: true, .. } => "interior router (as an edge)",
        _ => "router",
    }
}

/// Keep a connection with `role` to `addr` until shutdown.
pub async fn run(role: ConnRole, addr: SocketAddr, ctx: ConnContext) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = FIRST_BACKOFF;
    let name = match &role {
        ConnRole::RouteContainer(name) => name.clone(),
        _ => addr.to_string(),
    };
    let kind = kind(&role);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match connect(addr, &ctx).await {
            Ok((stream, rbuf)) => {
                tracing::info!(peer = %name, %addr, "connected to the {kind}");
                backoff = FIRST_BACKOFF;
                let (reader, writer) = tokio::io::split(stream);
                let deadline = tokio::time::Instant::now() + ctx.config.handshake_timeout;
                let id = crate::listener::next_conn_id();
                engine::Engine::new(id, addr.to_string(), ctx.clone(), deadline, role.clone())
                    .run(reader, writer, rbuf)
                    .await;
                tracing::warn!(peer = %name, %addr, "the connection to the {kind} ended");
            }
            Err(e) => tracing::warn!(peer = %name, %addr, "cannot connect to the {kind}: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(addr: SocketAddr, ctx: &ConnContext) -> std::io::Result<(TcpStream, BytesMut)> {
    let handshake = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&AMQP_HEADER).await?;
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await?;
        if header != AMQP_HEADER {
            return Err(std::io::Error::other(format!(
                "the peer answered with protocol header {header:?} (SASL is not supported on router-made connections yet)"
            )));
        }
        Ok((stream, BytesMut::with_capacity(64 * 1024)))
    };
    tokio::time::timeout(ctx.config.handshake_timeout, handshake)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake deadline"))?
}
