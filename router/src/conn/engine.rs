//! The AMQP engine of one connection: frames in, events to the core; commands from the core, frames out.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::{
    check_frame, condition, parse_amqp_frame, AmqpError, AmqpFrame, Close, FrameError, Open,
    Performative,
};
use slab::Slab;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;

use super::outbuf::OutBuf;
use super::session::{InitiatedHandles, LinkEnd, Session};
use super::{ConnContext, ConnRole};
use crate::budget::Budget;
use crate::core::api::{Command, ConnId, CoreMsg, Event, MeshPeer, Outbox};

/// Links per session on inter-router connections (proxies: one per address and direction).
const MESH_HANDLE_MAX: u32 = 65_535;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Stop taking commands from the core while this much output waits for the socket.
const OUT_HIGH_WATER: usize = 8 * 1024 * 1024;

/// Why the connection must close: the condition and description go into our `close`.
#[derive(Debug)]
pub struct ConnError(pub AmqpError);

impl ConnError {
    pub fn new(condition: &str, description: impl Into<String>) -> ConnError {
        ConnError(AmqpError::new(condition, description))
    }
}

pub type ConnResult = Result<(), ConnError>;

pub struct Engine {
    pub(super) id: ConnId,
    peer: String,
    pub(super) ctx: ConnContext,
    pub(super) out: OutBuf,
    pub(super) events: Vec<Event>,
    outbox: Arc<Outbox>,
    commands: Vec<Command>,
    pub(super) budget: Arc<Budget>,
    /// The peer's `open` arrived (and we answered).
    opened: bool,
    /// We sent `close`: write what is left, then stop.
    closing: bool,
    pub(super) remote_max_frame: u32,
    /// The peer's container-id, from its `open`.
    pub(super) peer_container_id: String,
    remote_idle: Option<Duration>,

    open_deadline: Instant,
    last_received: Instant,
    last_sent: Instant,
    /// Sessions by our channel number.
    pub(super) sessions: Vec<Option<Session>>,
    pub(super) links: Slab<LinkEnd>,
    pub(super) link_generation: u32,
    /// Receiving links whose credit changed in this batch of commands.
    pub(super) flows_due: Vec<u64>,
    /// A disposition being extended over consecutive delivery ids; written before any other frame.
    pub(super) pending_disposition: Option<PendingDisposition>,
    pub(super) tag_arena: BytesMut,
    /// Who the peer is: a client, a route container we dialled, or a router of the mesh.
    pub(super) role: ConnRole,
    /// A mesh peer whose `open` arrived: the core hears of the connection with it (before any event).
    announce: Option<MeshPeer>,
}

pub struct PendingDisposition {
    pub channel: u16,
    pub first: u32,
    pub last: u32,
    pub state: shoal_amqp::DeliveryState,
}

impl Engine {
    /// `role`: for a connection we made (to a broker, or another router) we speak first (open, begin) and
    /// open links on it.
    pub fn new(
        id: ConnId,
        peer: String,
        ctx: ConnContext,
        open_deadline: Instant,
        role: ConnRole,
    ) -> Engine {
        let budget = Budget::new(ctx.config.connection_budget);
        let now = Instant::now();
        Engine {
            id,
            peer,
            ctx,
            out: OutBuf::default(),
            events: Vec::new(),
            outbox: Arc::new(Outbox::default()),
            commands: Vec::new(),
            budget,
            opened: false,
            closing: false,
            remote_max_frame: shoal_amqp::MIN_MAX_FRAME_SIZE,
            peer_container_id: String::new(),
            remote_idle: None,

            open_deadline,
            last_received: now,
            last_sent: now,
            sessions: Vec::new(),
            links: Slab::new(),
            link_generation: 0,
            flows_due: Vec::new(),
            pending_disposition: None,
            tag_arena: BytesMut::new(),
            role,
            announce: None,
        }
    }

    pub async fn run<R, W>(mut self, mut reader: R, mut writer: W, mut rbuf: BytesMut)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        // A mesh connection joins the core once the peer's open has said which router it is.
        if !self.role.is_mesh() && !self.announce_to_core(None).await {
            return;
        }
        let mut shutdown = self.ctx.shutdown.clone();
        if self.role.dialled() {
            self.initiate();
        }
        // Frames that arrived with the handshake.
        self.on_bytes(&mut rbuf);
        let timer = tokio::time::sleep_until(self.next_tick());
        tokio::pin!(timer);
        loop {
            if let Some(peer) = self.announce.take() {
                if !self.announce_to_core(Some(peer)).await {
                    break;
                }
            }
            if !self.events.is_empty() && !self.flush_events().await {
                break;
            }
            if self.closing && self.out.is_empty() {
                break;
            }
            let reading = !self.closing && !self.budget.over();
            let taking = !self.closing && self.out.len() < OUT_HIGH_WATER;
            let tick = self.next_tick();
            if timer.deadline() != tick {
                timer.as_mut().reset(tick);
            }
            tokio::select! {
                read = async {
                    rbuf.reserve(READ_CHUNK);
                    reader.read_buf(&mut rbuf).await
                }, if reading => match read {
                    Ok(0) | Err(_) => {
                        tracing::debug!(conn = self.id, peer = %self.peer, "socket closed by peer");
                        break;
                    }
                    Ok(_) => {
                        self.last_received = Instant::now();
                        self.on_bytes(&mut rbuf);
                    }
                },
                _ = self.outbox.notified(), if taking => {
                    self.take_commands();
                }
                written = self.out.write_to(&mut writer), if !self.out.is_empty() => match written {
                    Ok(_) => self.last_sent = Instant::now(),
                    Err(e) => {
                        tracing::debug!(conn = self.id, "write failed: {e}");
                        break;
                    }
                },
                _ = self.budget.wait_below_half(), if !reading && !self.closing => {}
                _ = &mut timer => self.on_tick(),
                _ = shutdown.changed(), if !self.closing => {
                    self.close(Some(AmqpError::new(condition::CONNECTION_FORCED, "the router is shutting down")));
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.out.flush_all(&mut writer)).await;
        self.finish().await;
    }

    async fn announce_to_core(&self, mesh: Option<MeshPeer>) -> bool {
        let route_container = match &self.role {
            ConnRole::RouteContainer(name) => Some(name.clone()),
            _ => None,
        };
        self.ctx
            .core
            .send(CoreMsg::Open {
                conn: self.id,
                outbox: Arc::clone(&self.outbox),
                route_container,
                mesh,
            })
            .await
            .is_ok()
    }

    /// Tell the core the connection is gone: every delivery we hold unsettled for a receiver goes back first.
    async fn finish(mut self) {
        for session in self.sessions.iter_mut() {
            if let Some(session) = session.as_mut() {
                for entry in session.unsettled.drain(..).flatten() {
                    let (local, delivery) = entry;
                    if let Some(link) = self.links.get(local as u32 as usize).and_then(|l| l.core) {
                        self.events.push(Event::Unsettled {
                            link: Some(link),
                            delivery,
                        });
                    }
                }
                for blocked in session.blocked.drain(..) {
                    if let (Some(delivery), Some(link)) = (
                        blocked.delivery,
                        self.links
                            .get(blocked.link as u32 as usize)
                            .and_then(|l| l.core),
                    ) {
                        self.events.push(Event::Outcome {
                            link: Some(link),
                            delivery,
                            state: shoal_amqp::DeliveryState::Released,
                        });
                    }
                }
            }
        }
        if !self.events.is_empty() {
            self.flush_events().await;
        }
        let _ = self.ctx.core.send(CoreMsg::Closed { conn: self.id }).await;
    }

    async fn flush_events(&mut self) -> bool {
        let events = std::mem::take(&mut self.events);
        self.ctx
            .core
            .send(CoreMsg::Batch {
                conn: self.id,
                events,
            })
            .await
            .is_ok()
    }

    fn take_commands(&mut self) {
        if let Some(error) = self.outbox.take_close() {
            tracing::warn!(conn = self.id, peer = %self.peer, "closing at the core's request: {:?}", error.description);
            self.close(Some(error));
            return;
        }
        let mut commands = std::mem::take(&mut self.commands);
        self.outbox.take(&mut commands);
        for command in commands.drain(..) {
            self.on_command(command);
        }
        self.commands = commands;
        self.send_due_flows();
        self.flush_disposition();
    }

    fn next_tick(&self) -> Instant {
        let mut tick = self.last_received + self.ctx.config.idle_timeout;
        if !self.opened {
            tick = tick.min(self.open_deadline);
        }
        if let Some(idle) = self.remote_idle {
            tick = tick.min(self.last_sent + idle / 2);
        }
        tick
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if !self.opened && now >= self.open_deadline {
            self.close(Some(AmqpError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "no open frame before the handshake deadline",
            )));
            return;
        }
        if now >= self.last_received + self.ctx.config.idle_timeout {
            self.close(Some(AmqpError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "local-idle-timeout expired",
            )));
            return;
        }
        if let Some(idle) = self.remote_idle {
            if now >= self.last_sent + idle / 2 && self.out.is_empty() {
                shoal_amqp::encode_empty_frame(self.out.frames());
                self.last_sent = now;
            }
        }
    }

    /// Parse every whole frame in `rbuf`.
    fn on_bytes(&mut self, rbuf: &mut BytesMut) {
        while !self.closing {
            let len = match check_frame(rbuf, self.ctx.config.max_frame_size) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(FrameError::TooLarge { size, max }) => {
                    return self.close(Some(AmqpError::new(
                        condition::CONNECTION_FRAMING_ERROR,
                        format!("frame of {size} bytes exceeds max-frame-size {max}"),
                    )));
                }
                Err(e) => {
                    return self.close(Some(AmqpError::new(
                        condition::CONNECTION_FRAMING_ERROR,
                        e.to_string(),
                    )));
                }
            };
            let frame = rbuf.split_to(len).freeze();
            let result = match parse_amqp_frame(frame) {
                Ok(frame) => self.on_frame(frame),
                Err(e) => Err(ConnError::new(e.condition(), e.to_string())),
            };
            if let Err(ConnError(error)) = result {
                tracing::info!(conn = self.id, peer = %self.peer, "closing: {}: {:?}", error.condition.as_str(), error.description);
                self.close(Some(error));
            }
        }
    }

    fn on_frame(&mut self, frame: AmqpFrame) -> ConnResult {
        let AmqpFrame {
            channel,
            performative,
            payload,
        } = frame;
        let Some(performative) = performative else {
            return Ok(()); // heartbeat
        };
        tracing::trace!(target: "shoal::frames", conn = self.id, channel, ?performative, "<-");
        if !self.opened {
            return match performative {
                Performative::Open(open) => self.on_open(open),
                other => Err(ConnError::new(
                    condition::ILLEGAL_STATE,
                    format!("expected open, got {}", other.name()),
                )),
            };
        }
        match performative {
            Performative::Open(_) => Err(ConnError::new(
                condition::ILLEGAL_STATE,
                "open received twice",
            )),
            Performative::Close(close) => {
                if let Some(e) = &close.error {
                    tracing::info!(
                        conn = self.id,
                        "peer closed with {}: {:?}",
                        e.condition.as_str(),
                        e.description
                    );
                }
                self.close(None);
                Ok(())
            }
            Performative::Begin(begin) => self.on_begin(channel, begin),
            Performative::End(end) => self.on_end(channel, end),
            Performative::Attach(attach) => self.on_attach(channel, attach),
            Performative::Detach(detach) => self.on_detach(channel, detach),
            Performative::Flow(flow) => self.on_flow(channel, flow),
            Performative::Transfer(transfer) => self.on_transfer(channel, transfer, payload),
            Performative::Disposition(d) => self.on_disposition(channel, d),
        }
    }

    fn on_open(&mut self, open: Open) -> ConnResult {
        if open.max_frame_size < shoal_amqp::MIN_MAX_FRAME_SIZE {
            return Err(ConnError::new(
                condition::FRAME_SIZE_TOO_SMALL,
                format!(
                    "max-frame-size {} is below the minimum {}",
                    open.max_frame_size,
                    shoal_amqp::MIN_MAX_FRAME_SIZE
                ),
            ));
        }
        if self.role.is_mesh() {
            let peer = super::mesh_open::peer_of(&open, &self.role, self.ctx.config.router_id());
            match peer {
                Ok(peer) => self.announce = Some(peer),
                Err(e) => {
                    if !self.role.dialled() {
                        // Answer the open first, so the peer reads why we close.
                        self.opened = true;
                        let reply = super::mesh_open::our_open(&self.ctx.config, &self.role);
                        self.emit(0, &Performative::Open(reply));
                    }
                    return Err(e);
                }
            }
        }
        self.opened = true;
        self.remote_max_frame = open.max_frame_size;
        self.peer_container_id = open.container_id.clone();
        if self.role.dialled() {
            // We spoke first (see `initiate`).
            self.remote_idle = open
                .idle_time_out
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms as u64));
            return Ok(());
        }

        self.remote_idle = open
            .idle_time_out
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        let reply = super::mesh_open::our_open(&self.ctx.config, &self.role);
        self.emit(0, &Performative::Open(reply));
        Ok(())
    }

    /// On a connection we made: our open and one session, before the peer says anything.
    fn initiate(&mut self) {
        let open = super::mesh_open::our_open(&self.ctx.config, &self.role);
        let config = &self.ctx.config;
        let begin = shoal_amqp::Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: config.session_window,
            outgoing_window: u32::MAX,
            handle_max: self.local_handle_max(),
            ..Default::default()
        };
        let mut session =
            super::session::Session::new(config.session_window, self.local_handle_max());
        session.initiated = self.initiated_handles();
        self.sessions = vec![Some(session)];
        self.emit(0, &Performative::Open(open));
        self.emit(0, &Performative::Begin(begin));
    }

    /// How links we open pick their handles (see [`InitiatedHandles`]).
    pub(super) fn initiated_handles(&self) -> InitiatedHandles {
        match self.role {
            ConnRole::MeshDialled { .. } => InitiatedHandles::Parity(1),
            ConnRole::MeshAccepted => InitiatedHandles::Parity(0),
            _ => InitiatedHandles::TopDown,
        }
    }

    /// The handle-max we offer: a mesh connection carries a link per address with consumers behind it, so
    /// it offers far more than a client needs.
    pub(super) fn local_handle_max(&self) -> u32 {
        if self.role.is_mesh() {
            self.ctx.config.handle_max.max(MESH_HANDLE_MAX)
        } else {
            self.ctx.config.handle_max
        }
    }

    /// Encode one frame with no payload.
    pub(super) fn emit(&mut self, channel: u16, performative: &Performative) {
        self.flush_disposition();
        tracing::trace!(target: "shoal::frames", conn = self.id, channel, ?performative, "->");
        shoal_amqp::encode_frame(self.out.frames(), channel, performative, &[]);
    }

    /// Send `close` (with an error, if any) and stop reading; the loop ends once the output is written.
    pub(super) fn close(&mut self, error: Option<AmqpError>) {
        if self.closing {
            return;
        }
        if !self.opened {
            // A close must follow an open: send ours first.
            self.emit(
                0,
                &Performative::Open(Open {
                    container_id: self.ctx.config.container_id.clone(),
                    ..Default::default()
                }),
            );
        }
        self.emit(0, &Performative::Close(Close { error }));
        self.closing = true;
    }
}
