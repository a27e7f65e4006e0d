//! The connection task: the only owner of the socket and of the protocol state.
//!
//! It reads, writes and takes commands concurrently in one `select!`, so it never stops
//! reading because a write is pending (a peer that waits for us to read before it reads
//! cannot deadlock us). Commands are only taken while the output buffer is below a high-water
//! mark, which bounds memory and pushes back on the API through the bounded command channel.

mod incoming;
mod outgoing;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_amqp::{
    check_frame, condition, encode_frame, parse_amqp_frame, AmqpError, Attach, Close,
    DeliveryState, Flow, Performative, Role,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::delivery::OutcomeTx;
use crate::error::{ClientError, Result};
use crate::shared::{ConnShared, LinkShared};

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Stop taking commands while this much output waits for the socket.
const OUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// The session incoming window we grant (in frames); topped up when half used.
pub(crate) const INCOMING_WINDOW: u32 = 16 * 1024;

/// What the API asks the connection task to do.
#[derive(Debug)]
pub(crate) enum Command {
    Attach {
        attach: Box<Attach>,
        shared: Arc<LinkShared>,
        /// Receiving link: credit to grant right after the attach.
        credit: u32,
        reply: oneshot::Sender<Result<(u32, Attach)>>,
    },
    Transfer {
        handle: u32,
        tag: u64,
        payload: Bytes,
        settled: bool,
        outcome: Option<OutcomeTx>,
    },
    Disposition {
        first: u32,
        last: Option<u32>,
        settled: bool,
        state: Option<DeliveryState>,
    },
    /// Add credit to a receiving link, optionally draining; the reply (drain only) carries the
    /// number of deliveries that arrived while draining.
    Flow {
        handle: u32,
        credit: u32,
        drain: bool,
        reply: Option<oneshot::Sender<Result<u32>>>,
    },
    /// Auto-replenish: top the receiving link's credit up.
    Replenish { handle: u32 },
    Detach {
        handle: u32,
        closed: bool,
        error: Option<AmqpError>,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Close {
        error: Option<AmqpError>,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A delivery arriving frame by frame.
#[derive(Debug)]
struct Partial {
    delivery_id: u32,
    tag: Bytes,
    format: u32,
    settled: bool,
    data: BytesMut,
}

/// One link of our session.
#[derive(Debug)]
struct LinkEnd {
    name: String,
    role: Role,
    shared: Arc<LinkShared>,
    remote_handle: Option<u32>,
    attach_reply: Option<oneshot::Sender<Result<(u32, Attach)>>>,
    /// The peer answered our attach with a null terminus: a detach with the reason follows.
    refused: bool,
    detach_sent: bool,
    detach_reply: Option<oneshot::Sender<Result<()>>>,
    // Sending link: deliveries this task has taken (lags the handle's count while transfers
    // are in the command channel), and a drain request waiting for them.
    sent: u32,
    drain_pending: bool,
    // Receiving link.
    delivery_count: u32,
    credit: u32,
    partial: Option<Partial>,
    drain_reply: Option<(oneshot::Sender<Result<u32>>, u32)>,
    draining: bool,
}

/// A delivery waiting for the peer's session window.
#[derive(Debug)]
struct OutTransfer {
    handle: u32,
    delivery_id: u32,
    tag: u64,
    payload: Bytes,
    offset: usize,
    settled: bool,
}

pub(crate) struct Driver {
    shared: Arc<ConnShared>,
    commands: tokio::sync::mpsc::Receiver<Command>,
    commands_open: bool,
    out: BytesMut,
    local_max_frame: u32,
    max_message_size: u64,
    remote_max_frame: u32,
    local_idle: Option<Duration>,
    remote_idle: Option<Duration>,
    last_received: Instant,
    last_sent: Instant,
    // Session.
    next_outgoing_id: u32,
    remote_incoming_window: u32,
    next_delivery_id: u32,
    next_incoming_id: u32,
    incoming_window: u32,
    handle_max: u32,
    links: HashMap<u32, LinkEnd>,
    by_remote: HashMap<u32, u32>,
    unsettled: HashMap<u32, (u32, OutcomeTx)>,
    blocked: VecDeque<OutTransfer>,
    // Lifecycle.
    close_sent: bool,
    close_reply: Option<oneshot::Sender<Result<()>>>,
    /// Stop after writing what is buffered.
    done: bool,
    /// Why the connection ended (reported to everything still waiting).
    error: Option<ClientError>,
}

/// What the handshake settled, for the driver.
pub(crate) struct DriverConfig {
    pub local_max_frame: u32,
    pub max_message_size: u64,
    pub local_idle: Option<Duration>,
    pub remote_max_frame: u32,
    pub remote_idle: Option<Duration>,
    pub remote_incoming_window: u32,
    pub remote_next_outgoing_id: u32,
    pub handle_max: u32,
}

impl Driver {
    pub fn new(
        shared: Arc<ConnShared>,
        commands: tokio::sync::mpsc::Receiver<Command>,
        cfg: DriverConfig,
    ) -> Driver {
        let now = Instant::now();
        Driver {
            shared,
            commands,
            commands_open: true,
            out: BytesMut::with_capacity(64 * 1024),
            local_max_frame: cfg.local_max_frame,
            max_message_size: cfg.max_message_size,
            remote_max_frame: cfg.remote_max_frame,
            local_idle: cfg.local_idle,
            remote_idle: cfg.remote_idle,
            last_received: now,
            last_sent: now,
            next_outgoing_id: 0,
            remote_incoming_window: cfg.remote_incoming_window,
            next_delivery_id: 0,
            next_incoming_id: cfg.remote_next_outgoing_id,
            incoming_window: INCOMING_WINDOW,
            handle_max: cfg.handle_max,
            links: HashMap::new(),
            by_remote: HashMap::new(),
            unsettled: HashMap::new(),
            blocked: VecDeque::new(),
            close_sent: false,
            close_reply: None,
            done: false,
            error: None,
        }
    }

    pub async fn run(mut self, stream: TcpStream, mut rbuf: BytesMut) {
        let (mut reader, mut writer) = stream.into_split();
        self.on_bytes(&mut rbuf);
        while !self.done {
            let taking = self.commands_open && self.out.len() < OUT_HIGH_WATER;
            let tick = self.next_tick();
            tokio::select! {
                read = async {
                    rbuf.reserve(READ_CHUNK);
                    reader.read_buf(&mut rbuf).await
                } => match read {
                    Ok(0) => self.fail(ClientError::ConnectionClosed),
                    Err(e) => self.fail(e.into()),
                    Ok(_) => {
                        self.last_received = Instant::now();
                        self.on_bytes(&mut rbuf);
                    }
                },
                command = self.commands.recv(), if taking => match command {
                    Some(command) => {
                        self.on_command(command);
                        // Take what else is queued in one go: one write for many sends.
                        while self.out.len() < OUT_HIGH_WATER {
                            let Ok(command) = self.commands.try_recv() else { break };
                            self.on_command(command);
                        }
                    }
                    None => {
                        // Every handle is gone: nobody can use the connection any more.
                        self.commands_open = false;
                        self.close(None);
                    }
                },
                written = writer.write_buf(&mut self.out), if !self.out.is_empty() => match written {
                    Ok(_) => self.last_sent = Instant::now(),
                    Err(e) => self.fail(e.into()),
                },
                _ = tokio::time::sleep_until(tick) => self.on_tick(),
            }
        }
        if !self.out.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), writer.write_all(&self.out)).await;
        }
        let _ = writer.shutdown().await;
        self.finish();
    }

    fn next_tick(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut tick = far;
        if let Some(idle) = self.local_idle {
            tick = tick.min(self.last_received + idle);
        }
        if let Some(idle) = self.remote_idle {
            tick = tick.min(self.last_sent + idle / 2);
        }
        tick
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(idle) = self.local_idle {
            if now >= self.last_received + idle {
                self.close(Some(AmqpError::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    "local-idle-timeout expired",
                )));
                self.fail(ClientError::Timeout("the peer was idle too long"));
                return;
            }
        }
        if let Some(idle) = self.remote_idle {
            if now >= self.last_sent + idle / 2 && self.out.is_empty() {
                shoal_amqp::encode_empty_frame(&mut self.out);
                self.last_sent = now;
            }
        }
    }

    /// Parses every whole frame in `rbuf`.
    fn on_bytes(&mut self, rbuf: &mut BytesMut) {
        while !self.done {
            let len = match check_frame(rbuf, self.local_max_frame) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(e) => {
                    return self.violation(condition::CONNECTION_FRAMING_ERROR, e.to_string())
                }
            };
            let frame = rbuf.split_to(len).freeze();
            match parse_amqp_frame(frame) {
                Ok(frame) => {
                    if let Some(p) = frame.performative {
                        self.on_frame(frame.channel, p, frame.payload);
                    }
                }
                Err(e) => return self.violation(e.condition(), e.to_string()),
            }
        }
    }

    /// The peer broke the protocol: close with the condition and stop.
    fn violation(&mut self, cond: &str, description: String) {
        tracing::debug!("closing the connection: {cond}: {description}");
        self.close(Some(AmqpError::new(cond, description.clone())));
        self.fail(ClientError::Protocol(description));
    }

    /// The connection is over (after writing what is buffered, if the socket still works).
    fn fail(&mut self, e: ClientError) {
        if matches!(e, ClientError::Io(_)) {
            self.out.clear();
        }
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.done = true;
    }

    pub(crate) fn emit(&mut self, p: Performative) {
        encode_frame(&mut self.out, 0, &p, &[]);
    }

    /// Sends our `close` (once).
    fn close(&mut self, error: Option<AmqpError>) {
        if !self.close_sent {
            self.close_sent = true;
            self.emit(Performative::Close(Close { error }));
        }
    }

    /// A flow frame with the session's state, and the link's if given.
    fn flow(&self, link: Option<(u32, u32, u32, bool)>) -> Performative {
        let mut flow = Flow {
            next_incoming_id: Some(self.next_incoming_id),
            incoming_window: self.incoming_window,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Flow::default()
        };
        if let Some((handle, delivery_count, credit, drain)) = link {
            flow.handle = Some(handle);
            flow.delivery_count = Some(delivery_count);
            flow.link_credit = Some(credit);
            flow.drain = drain;
        }
        Performative::Flow(flow)
    }

    /// Reports the end of the connection to everything still waiting.
    fn finish(mut self) {
        let error = self.error.take().unwrap_or(ClientError::ConnectionClosed);
        self.shared.set_error(error.clone());
        if let Some(reply) = self.close_reply.take() {
            // Our close was answered without an error (otherwise `error` is Remote).
            let _ = reply.send(match &error {
                ClientError::ConnectionClosed => Ok(()),
                other => Err(other.clone()),
            });
        }
        for (_, link) in self.links.drain() {
            link.shared.update(|s| s.end(error.clone()));
            if let Some(reply) = link.attach_reply {
                let _ = reply.send(Err(error.clone()));
            }
            if let Some(reply) = link.detach_reply {
                let _ = reply.send(Err(error.clone()));
            }
            if let Some((reply, _)) = link.drain_reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        for (_, (_, tx)) in self.unsettled.drain() {
            let _ = tx.send(Err(error.clone()));
        }
    }
}
