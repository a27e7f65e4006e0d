//! The lean engine under the load tool: one connection, one session, one link, driven by the
//! task that owns it (no channels, no per-message allocation).
//!
//! The handshake is `shoal_client::handshake`; after it the task reads and writes the socket
//! itself with pre-encoded transfer frames (see [`TransferTemplate`]).

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use shoal_amqp::{
    check_frame, encode_frame, parse_amqp_frame, AmqpFrame, Attach, Begin, Close, Flow,
    Performative, ReceiverSettleMode, Role, SenderSettleMode, Source, Target,
};
use shoal_client::handshake::{establish, read_frame};
use shoal_client::{ConnectOptions, Sasl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame we accept.
pub const MAX_FRAME: u32 = 1024 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// The session window we grant, in frames; re-announced with every flow we send.
pub const INCOMING_WINDOW: u32 = 1 << 20;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub hostname: String,
    pub sasl: Sasl,
}

/// A connection with one attached link.
pub struct Wire {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    pub remote_max_frame: u32,
    // Session state.
    pub next_outgoing_id: u32,
    pub remote_incoming_window: u32,
    pub next_incoming_id: u32,
    pub incoming_window: u32,
    /// The peer's attach.
    pub remote_attach: Attach,
}

impl Wire {
    /// Connects and attaches one link on handle 0: a sender to `address` (`role` Sender) or a
    /// receiver from it. `presettled`: ask for settled deliveries only.
    pub async fn connect(
        ep: &Endpoint,
        address: &str,
        role: Role,
        presettled: bool,
        name: &str,
    ) -> Result<Wire> {
        let opts = ConnectOptions {
            container_id: name.to_owned(),
            hostname: Some(ep.hostname.clone()),
            sasl: ep.sasl.clone(),
            max_frame_size: MAX_FRAME,
            ..ConnectOptions::default()
        };
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: INCOMING_WINDOW,
            outgoing_window: u32::MAX,
            handle_max: 0,
            ..Begin::default()
        };
        let est = establish(ep.addr, &opts, begin)
            .await
            .with_context(|| format!("connecting to {}", ep.addr))?;
        let mut wire = Wire {
            stream: est.stream,
            rbuf: est.rbuf,
            wbuf: BytesMut::with_capacity(256 * 1024),
            remote_max_frame: est.remote_open.max_frame_size,
            next_outgoing_id: 0,
            remote_incoming_window: est.remote_begin.incoming_window,
            next_incoming_id: est.remote_begin.next_outgoing_id,
            incoming_window: INCOMING_WINDOW,
            remote_attach: Attach::default(),
        };
        let settle = if presettled {
            SenderSettleMode::Settled
        } else {
            SenderSettleMode::Unsettled
        };
        let attach = Attach {
            name: format!("{name}-link"),
            handle: 0,
            role,
            snd_settle_mode: settle,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(Source {
                address: (role == Role::Receiver).then(|| address.to_owned()),
                ..Source::default()
            })),
            target: Some(Box::new(Target {
                address: (role == Role::Sender).then(|| address.to_owned()),
                ..Target::default()
            })),
            initial_delivery_count: (role == Role::Sender).then_some(0),
            ..Attach::default()
        };
        wire.emit(&Performative::Attach(attach));
        wire.flush().await?;
        wire.remote_attach = wire.await_attach(role).await?;
        Ok(wire)
    }

    async fn await_attach(&mut self, role: Role) -> Result<Attach> {
        let mut refused = false;
        loop {
            let frame = read_frame(&mut self.stream, &mut self.rbuf, MAX_FRAME).await?;
            let frame = parse_amqp_frame(frame)?;
            match frame.performative {
                None => {}
                Some(Performative::Attach(a)) => {
                    // A refusal: a null terminus, then a detach with the reason.
                    refused = match role {
                        Role::Sender => a.target.is_none(),
                        Role::Receiver => a.source.is_none(),
                    };
                    if !refused {
                        return Ok(a);
                    }
                }
                Some(Performative::Detach(d)) => {
                    bail!(
                        "the peer {} the link: {}",
                        if refused { "refused" } else { "detached" },
                        d.error.map_or("no error".into(), |e| e.to_string())
                    )
                }
                Some(other) => self.unexpected(other)?,
            }
        }
    }

    /// Frames other than the ones a task handles: close/end/detach end the run.
    pub fn unexpected(&mut self, p: Performative) -> Result<()> {
        match p {
            Performative::Close(c) => Err(anyhow!(
                "the peer closed the connection: {}",
                c.error.map_or("no error".into(), |e| e.to_string())
            )),
            Performative::End(e) => Err(anyhow!(
                "the peer ended the session: {}",
                e.error.map_or("no error".into(), |e| e.to_string())
            )),
            Performative::Detach(d) => Err(anyhow!(
                "the peer detached the link: {}",
                d.error.map_or("no error".into(), |e| e.to_string())
            )),
            // Anything else (flows, dispositions we do not need) is ignored.
            _ => Ok(()),
        }
    }

    /// Appends a frame to the write buffer.
    pub fn emit(&mut self, p: &Performative) {
        encode_frame(&mut self.wbuf, 0, p, &[]);
    }

    /// Writes the whole write buffer.
    pub async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// The next whole frame in the read buffer, parsed (`None`: need more bytes).
    pub fn next_frame(&mut self) -> Result<Option<AmqpFrame>> {
        let Some(len) = check_frame(&self.rbuf, MAX_FRAME)? else {
            return Ok(None);
        };
        let frame = self.rbuf.split_to(len).freeze();
        Ok(Some(parse_amqp_frame(frame)?))
    }

    /// A flow for the session and (if given) handle 0, re-opening our incoming window.
    pub fn flow(&mut self, link: Option<(u32, u32)>) {
        self.incoming_window = INCOMING_WINDOW;
        let mut flow = Flow {
            next_incoming_id: Some(self.next_incoming_id),
            incoming_window: self.incoming_window,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Flow::default()
        };
        if let Some((delivery_count, credit)) = link {
            flow.handle = Some(0);
            flow.delivery_count = Some(delivery_count);
            flow.link_credit = Some(credit);
        }
        self.emit(&Performative::Flow(flow));
    }

    /// The peer's session flow: how many more frames it takes from us.
    pub fn on_session_flow(&mut self, flow: &Flow) {
        let w = flow
            .next_incoming_id
            .unwrap_or(0)
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(self.next_outgoing_id);
        self.remote_incoming_window = if w > u32::MAX / 2 { 0 } else { w };
    }

    /// Reads what the socket has, without waiting. The peer closing the socket is an error.
    pub fn read_available(&mut self) -> Result<()> {
        // A few reads at most, so a fast peer cannot keep us from writing.
        for _ in 0..4 {
            self.rbuf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => bail!("the peer closed the connection"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes what the socket takes, without waiting.
    pub fn write_available(&mut self) -> Result<()> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if self.wbuf.is_empty() {
            // Reuse the allocation from its start.
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Waits until the socket is readable, or writable (if we have output), or `until`.
    pub async fn wait(&self, until: Instant) -> Result<()> {
        let want_write = !self.wbuf.is_empty();
        tokio::select! {
            r = self.stream.readable() => r?,
            w = self.stream.writable(), if want_write => w?,
            _ = tokio::time::sleep_until(until.into()) => {}
        }
        Ok(())
    }

    /// Sends `close` and waits briefly for the peer's, so the peer sees an orderly end.
    pub async fn close(mut self) {
        self.emit(&Performative::Close(Close { error: None }));
        let wait = async {
            self.flush().await?;
            loop {
                self.rbuf.reserve(64 * 1024);
                if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                    return Ok::<_, anyhow::Error>(());
                }
                while let Some(f) = self.next_frame()? {
                    if matches!(f.performative, Some(Performative::Close(_))) {
                        return Ok(());
                    }
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
    }
}
