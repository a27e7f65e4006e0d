//! One task per connection: the protocol header and SASL handshake, then the AMQP engine.
//!
//! The task owns its socket, its sessions and its link endpoints; it tells the core what the peer did
//! ([`Event`](crate::core::api::Event)s, one batch per read) and turns the core's commands into frames.

mod commands;
pub(crate) mod connector;
mod engine;
mod handshake;
mod link_frames;
mod mesh_open;
mod outbuf;
pub mod sasl;
mod session;
mod session_frames;
mod traced;
mod transfer_frames;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use crate::config::RouterConfig;
use crate::core::api::{ConnId, CoreMsg};

/// What the router knows about a connection's peer before its `open` arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnRole {
    /// A client: anything on a normal listener (an `open` claiming to be a router changes nothing).
    Normal,
    /// We dialled the route container (broker) of this name.
    RouteContainer(String),
    /// Accepted on an inter-router listener: an interior router, or an edge router attaching to us.
    MeshAccepted,
    /// We dialled an interior's inter-router listener: as an interior, or (`as_edge`) as an edge router.
    /// `cost`: the link's cost in route computation (the higher of the two ends' costs counts).
    MeshDialled { as_edge: bool, cost: u32 },
}

impl ConnRole {
    /// We made the connection: we speak first (open, begin) and open links on it.
    pub fn dialled(&self) -> bool {
        matches!(
            self,
            ConnRole::RouteContainer(_) | ConnRole::MeshDialled { .. }
        )
    }

    /// An inter-router or edge connection.
    pub fn is_mesh(&self) -> bool {
        matches!(self, ConnRole::MeshAccepted | ConnRole::MeshDialled { .. })
    }
}

/// What every connection task shares.
#[derive(Clone)]
pub struct ConnContext {
    pub config: Arc<RouterConfig>,
    pub core: mpsc::Sender<CoreMsg>,
    /// Flips to true when the router shuts down: connections close with `amqp:connection:forced`.
    pub shutdown: watch::Receiver<bool>,
}

/// Serve one accepted connection to its end. Errors are the peer's problem and are logged, never propagated.
pub async fn serve<S>(stream: S, id: ConnId, peer: String, ctx: ConnContext, role: ConnRole)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let deadline = tokio::time::Instant::now() + ctx.config.handshake_timeout;
    let hs = tokio::time::timeout_at(
        deadline,
        handshake::run(&mut reader, &mut writer, &ctx.config),
    )
    .await;
    let rbuf = match hs {
        Ok(Ok(rbuf)) => rbuf,
        Ok(Err(e)) => {
            tracing::info!(conn = id, %peer, "handshake refused: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(conn = id, %peer, "handshake deadline passed; closing");
            return;
        }
    };
    engine::Engine::new(id, peer, ctx, deadline, role)
        .run(reader, writer, rbuf)
        .await;
}
