//! One MQTT connection: a task that owns the socket and one adaptor connection on the router core.
//!
//! The task reads packets, turns them into core [`Event`]s, and turns the core's [`Command`]s into packets.
//! Nothing in it blocks on anything but its own socket and the core's bounded channel; it stops reading the
//! socket (so TCP pushes back on the client) while a PUBLISH waits for link credit, while the client's QoS 1/2
//! window is full, while the write buffer is above its high-water mark, and while the connection's byte
//! budget is spent.

mod commands;
mod connect;
mod deliver;
mod inbound;
mod outbound;
mod persisted;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::{SenderSettleMode, Source, Target};
use shoal_mqtt::{reason, Disconnect, Packet, PubRespKind, Version, Will};
use shoal_registry::DeviceIdentity;
use shoal_router::adaptor::AdaptorConnection;
use shoal_router::budget::Budget;
use shoal_router::core::api::{AttachDetails, AttachRequest, Command, Event, LocalLink};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;
use crate::persist::{self, Resumed};
use crate::server::Shared;
use crate::tls::CertLogin;
use commands::CommandTable;
use inbound::{SenderLink, Waiting};
use outbound::{InflightOut, OutItem, ReceiverLink};

/// Why the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The client sent DISCONNECT (MQTT 5 reason 0x04 asks for the will anyway).
    Normal { will: bool },
    /// The socket closed or failed.
    Lost,
    /// The gateway ends it: MQTT 5 clients get a DISCONNECT with this reason code first.
    Server(u8),
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    version: Version,
    client_id: String,
    identity: Option<DeviceIdentity>,
    conn: AdaptorConnection,
    budget: Arc<Budget>,
    events: Vec<Event>,
    out: BytesMut,
    next_local: LocalLink,
    will: Option<Will>,
    close: Option<Close>,
    // From the client to the core.
    senders: HashMap<LocalLink, SenderLink>,
    anonymous: LocalLink,
    by_address: HashMap<String, LocalLink>,
    waiting: VecDeque<Waiting>,
    notices: VecDeque<(LocalLink, shoal_router::core::api::Msg)>,
    next_delivery_id: u32,
    pending_in: HashMap<u32, inbound::PendingIn>,
    ids_in: HashSet<u16>,
    awaiting_rel: HashSet<u16>,
    // From the core to the client.
    receivers: HashMap<LocalLink, ReceiverLink>,
    subs: HashMap<String, LocalLink>,
    queue: VecDeque<OutItem>,
    inflight_out: HashMap<u16, InflightOut>,
    next_packet_id: u16,
    client_receive_max: usize,
    client_max_packet: usize,
    credit_due: Vec<LocalLink>,
    commands: CommandTable,
    // Persistent sessions.
    persist: Option<Persist>,
    /// The receiver on the session's broker queue (what was kept while the client was away).
    stored: Option<LocalLink>,
    /// The queue is being drained: live deliveries wait in `held` so that the client gets them in order.
    draining: bool,
    held: VecDeque<OutItem>,
}

/// A session that is (or was, and is resumed) persistent.
struct Persist {
    /// This connection's claim on the session (its seq in the client-id table).
    owner: u64,
    key: String,
    queue: String,
    keep: bool,
    expiry_secs: Option<u32>,
}

/// What the transport knows about the client before its CONNECT.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    /// TLS keeps what was written in its own buffer when the socket is full: the session flushes it.
    pub tls: bool,
    /// The login a verified client certificate stands for (MQTTS only).
    pub cert: Option<CertLogin>,
}

/// Serve one connection, plain or TLS, read from `rd` and written to `wr`.
pub(crate) async fn run<R, W>(
    rd: &mut R,
    wr: &mut W,
    peer: Peer,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut inbuf = BytesMut::with_capacity(4096);
    let Some(hello) = connect::handshake(rd, wr, &mut inbuf, &shared, peer.cert.as_ref()).await?
    else {
        return Ok(());
    };
    let conn = shared.router.open_adaptor_connection().await?;
    let key = match &hello.identity {
        Some(id) => format!("{}/{}", id.tenant_id, hello.client_id),
        None => format!("/{}", hello.client_id),
    };
    let guard = shared.claim(key.clone());
    let ask = connect::session_ask(&hello.connect);
    let mut persist = None;
    let mut resumed = None;
    if let Some(sessions) = &shared.persistent {
        let tenant = hello.identity.as_ref().map(|i| i.tenant_id.as_str());
        let queue = persist::queue_address(tenant, &hello.client_id);
        let found = sessions
            .connect(&key, queue.clone(), guard.seq, ask.clean, ask.keep)
            .await;
        match found {
            Ok(Resumed::Present(r)) => resumed = Some(r),
            Ok(Resumed::Fresh) => {}
            Err(why) => return connect::refuse_session(wr, hello.connect.version, why).await,
        }
        if ask.keep || resumed.is_some() {
            persist = Some(Persist {
                owner: guard.seq,
                key,
                queue,
                keep: ask.keep,
                expiry_secs: ask.expiry_secs,
            });
        }
    }
    let keep_alive = Duration::from_secs(u64::from(hello.connect.keep_alive)) * 3 / 2;
    let mut s = Session::new(&shared, conn, &hello);
    s.persist = persist;
    connect::connack(&hello, &shared, resumed.is_some(), &mut s.out)?;
    if let Some(r) = resumed {
        s.resume(r);
    }
    tracing::debug!(client = %s.client_id, version = ?s.version, "MQTT session up");
    let mut last_read = Instant::now();
    let mut commands = Vec::new();
    // Bytes written to TLS that may still sit in its buffer (plain TCP writes go straight to the socket).
    let mut unflushed = false;
    loop {
        s.process_input(&mut inbuf);
        s.pump();
        s.flush_credit();
        let events = std::mem::take(&mut s.events);
        s.conn.send(events).await?;
        if s.close.is_some() {
            break;
        }
        let can_read = s.can_read();
        if !can_read {
            // Time the gateway itself does not read does not count against the client's keep-alive.
            last_read = Instant::now();
        }
        let deadline = last_read + keep_alive;
        let give_up = s.give_up_at();
        tokio::select! {
            r = rd.read_buf(&mut inbuf), if can_read => match r {
                Ok(0) | Err(_) => s.close = Some(Close::Lost),
                Ok(_) => last_read = Instant::now(),
            },
            r = write_some(wr, &s.out), if !s.out.is_empty() || unflushed => match r {
                Err(_) => s.close = Some(Close::Lost),
                Ok(_) if s.out.is_empty() => unflushed = false,
                Ok(0) => s.close = Some(Close::Lost),
                Ok(n) => {
                    let _ = s.out.split_to(n);
                    unflushed = peer.tls;
                }
            },
            _ = s.conn.outbox().notified() => {
                s.conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    s.on_command(c);
                }
                s.flush_waiting();
                s.flush_notices();
            }
            _ = sleep_until(give_up), if give_up.is_some() => s.give_up_waiting(),
            _ = tokio::time::sleep_until(deadline), if !keep_alive.is_zero() => {
                tracing::debug!(client = %s.client_id, "keep-alive expired");
                s.close = Some(Close::Server(reason::KEEP_ALIVE_TIMEOUT));
            }
            _ = guard.taken_over.notified() => {
                s.close = Some(Close::Server(reason::SESSION_TAKEN_OVER));
            }
            _ = stopped.changed() => s.close = Some(Close::Server(reason::SERVER_SHUTTING_DOWN)),
            _ = s.budget.wait_below_half(), if s.budget.over() => {}
        }
    }
    let close = s.close.unwrap_or(Close::Lost);
    if let (Close::Server(code), Version::V5) = (close, s.version) {
        let d = Packet::Disconnect(Disconnect {
            reason: code,
            ..Disconnect::default()
        });
        let _ = d.encode(Version::V5, &mut s.out);
    }
    if close != Close::Lost && (!s.out.is_empty() || unflushed) {
        // Best effort: a client that does not read gets no more than a second.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            wr.write_all(&s.out).await?;
            wr.flush().await
        })
        .await;
    }
    if !matches!(close, Close::Normal { will: false }) {
        s.publish_will();
    }
    let events = std::mem::take(&mut s.events);
    let sent = s.conn.send(events).await;
    if let (Some(sessions), Some(p)) = (&shared.persistent, &s.persist) {
        // Returns once a keeper holds the subscriptions; only then does this connection (and with it the
        // live subscriptions) go away, so nothing published in between is missed. What reaches this
        // connection meanwhile is never written: it cannot come twice.
        sessions
            .disconnect(guard.seq, s.session_record(p), p.keep)
            .await;
    }
    sent?;
    tracing::debug!(client = %s.client_id, ?close, "MQTT session ended");
    Ok(())
}

/// Write some of `out`; with nothing left to write, flush (TLS may still hold written bytes).
async fn write_some<W: AsyncWrite + Unpin>(wr: &mut W, out: &[u8]) -> std::io::Result<usize> {
    if out.is_empty() {
        wr.flush().await.map(|()| 0)
    } else {
        wr.write(out).await
    }
}

impl Session {
    fn new(shared: &Arc<Shared>, conn: AdaptorConnection, hello: &connect::Hello) -> Session {
        let c = &hello.connect;
        let mut s = Session {
            shared: Arc::clone(shared),
            version: c.version,
            client_id: hello.client_id.clone(),
            identity: hello.identity.clone(),
            conn,
            budget: Budget::new(shared.config.byte_budget),
            events: Vec::new(),
            // Grows with what is written and keeps its size: an idle device is only ever written a CONNACK
            // and PINGRESPs, and 100,000 of them must not each hold 4 KiB.
            out: BytesMut::new(),
            next_local: 1,
            will: c.will.clone(),
            close: None,
            senders: HashMap::new(),
            anonymous: 0,
            by_address: HashMap::new(),
            waiting: VecDeque::new(),
            notices: VecDeque::new(),
            next_delivery_id: 0,
            pending_in: HashMap::new(),
            ids_in: HashSet::new(),
            awaiting_rel: HashSet::new(),
            receivers: HashMap::new(),
            subs: HashMap::new(),
            queue: VecDeque::new(),
            inflight_out: HashMap::new(),
            next_packet_id: 0,
            client_receive_max: usize::from(c.properties.receive_maximum.unwrap_or(u16::MAX)),
            client_max_packet: c
                .properties
                .maximum_packet_size
                .map_or(usize::MAX, |m| m as usize),
            credit_due: Vec::new(),
            commands: CommandTable::new(shared.config.max_pending_commands),
            persist: None,
            stored: None,
            draining: false,
            held: VecDeque::new(),
        };
        s.anonymous = s.attach_sender(None);
        s
    }

    fn new_local(&mut self) -> LocalLink {
        let l = self.next_local;
        self.next_local += 1;
        l
    }

    /// An attach for `address`: the terminus a broker reads when the core link-routes the link to it (an
    /// `event/TENANT` queue), a pattern for subscriptions.
    fn request(
        &self,
        local: LocalLink,
        address: Option<String>,
        pattern: bool,
        incoming: bool,
    ) -> AttachRequest {
        let (source, target) = if incoming {
            let target = Target {
                address: address.clone(),
                ..Target::default()
            };
            (Source::default(), target)
        } else {
            let source = Source {
                address: address.clone(),
                ..Source::default()
            };
            (source, Target::default())
        };
        AttachRequest {
            local,
            address,
            dynamic: false,
            pattern,
            details: Box::new(AttachDetails {
                link_name: format!("mqtt:{}:{local}", self.client_id),
                container_id: self.client_id.clone(),
                source: Some(Box::new(source)),
                target: Some(Box::new(target)),
                snd_settle_mode: SenderSettleMode::Mixed,
                ..AttachDetails::default()
            }),
        }
    }

    /// Read more only when the packets read so far can be handled.
    fn can_read(&self) -> bool {
        self.waiting.is_empty()
            && self.ids_in.len() < usize::from(self.shared.config.receive_maximum)
            && self.out.len() < self.shared.config.write_high_water
            && !self.budget.over()
    }

    /// Handle every whole packet buffered, as long as reading is allowed.
    fn process_input(&mut self, inbuf: &mut BytesMut) {
        while self.close.is_none() && self.can_read() {
            let max = self.shared.config.max_packet_size as usize;
            let packet = match shoal_mqtt::check(inbuf, max) {
                Ok(None) => return,
                Ok(Some(len)) => inbuf.split_to(len).freeze(),
                Err(e) => return self.protocol_error(&e),
            };
            match shoal_mqtt::parse(packet, self.version) {
                Ok(p) => self.on_packet(p),
                Err(e) => return self.protocol_error(&e),
            }
        }
    }

    fn protocol_error(&mut self, e: &shoal_mqtt::Error) {
        tracing::debug!(client = %self.client_id, error = %e, "malformed packet: closing");
        self.close = Some(Close::Server(e.reason_code()));
    }

    fn on_packet(&mut self, p: Packet) {
        match p {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(r) => self.on_puback(r.packet_id),
            Packet::PubRel(r) => {
                let code = if self.awaiting_rel.remove(&r.packet_id) {
                    reason::SUCCESS
                } else {
                    reason::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.pub_resp(PubRespKind::PubComp, r.packet_id, code);
            }
            // The gateway sends QoS 1 at most: a PUBREC or PUBCOMP answers nothing it sent.
            Packet::PubRec(_) | Packet::PubComp(_) => {
                self.close = Some(Close::Server(reason::PROTOCOL_ERROR));
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => shoal_mqtt::encode_pingresp(&mut self.out),
            Packet::Disconnect(d) => {
                self.close = Some(Close::Normal {
                    will: d.reason == reason::DISCONNECT_WITH_WILL_MESSAGE,
                });
            }
            // A second CONNECT, server-side packets, AUTH (no enhanced authentication here).
            _ => self.close = Some(Close::Server(reason::PROTOCOL_ERROR)),
        }
    }

    fn pub_resp(&mut self, kind: PubRespKind, packet_id: u16, code: u8) {
        shoal_mqtt::encode_pub_resp(&mut self.out, kind, self.version, packet_id, code);
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Attached { local, link, .. } => self.attached(local, link),
            Command::Refused { local, error } => self.refused(local, &error),
            Command::Grant { local, credit } => {
                if let Some(l) = self.senders.get_mut(&local) {
                    l.credit = l.credit.saturating_add(credit);
                }
            }
            Command::Flow {
                local,
                seen,
                credit,
                ..
            } => {
                if let Some(l) = self.senders.get_mut(&local) {
                    // Transfers the core has not seen yet already used some of this credit.
                    l.credit = credit.saturating_sub(l.sent.wrapping_sub(seen));
                }
            }
            Command::Settle {
                delivery_id, state, ..
            } => self.settled(delivery_id, state),
            Command::Deliver {
                local,
                delivery,
                msg,
                more,
                address,
            } => self.deliver(local, delivery, Some(msg), more, true, address),
            Command::DeliverMore {
                local,
                msg,
                more,
                aborted,
            } => {
                if aborted {
                    self.abort_partial(local);
                } else {
                    self.deliver(local, None, msg, more, false, None);
                }
            }
            Command::Drained { local, limit } => {
                if let Some(r) = self.receivers.get_mut(&local) {
                    // Credit left over when the broker says "drained": the queue is empty.
                    let emptied = r.delivery_count != limit;
                    r.delivery_count = limit;
                    if emptied && self.stored == Some(local) {
                        self.drained();
                    }
                }
            }
            Command::Detach { local, .. } => self.detached(local),
            // Only route-container connections (brokers) get these.
            Command::RouteAttach { .. } => {}
        }
    }
}

/// Sleep until `at` (never, without one).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
