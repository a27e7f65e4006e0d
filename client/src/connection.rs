//! [`Connection`]: connect, open links, close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shoal_amqp::{AmqpError, Attach, Begin, Open, ReceiverSettleMode, Role, Source, Target};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, Driver, DriverConfig, INCOMING_WINDOW};
use crate::error::{ClientError, Result};
use crate::handshake::establish;
use crate::link::LinkCore;
use crate::options::{ConnectOptions, ReceiverOptions, SenderOptions};
use crate::raw::RawConnection;
use crate::shared::{ConnShared, LinkShared};
use crate::{Receiver, Sender};

/// Commands waiting for the connection task. Sends wait (are pushed back) when it is full.
const COMMAND_QUEUE: usize = 1024;

/// An AMQP connection with one session. Cheap to share by reference; links hold their own
/// channel to the connection task, so they outlive a dropped `Connection` handle (the
/// connection closes when the last handle and link are dropped).
#[derive(Debug)]
pub struct Connection {
    commands: mpsc::Sender<Command>,
    shared: Arc<ConnShared>,
    remote_open: Open,
    remote_begin: Begin,
    links: AtomicU64,
    container_id: String,
}

impl Connection {
    /// Connects, authenticates as `opts.sasl` says, opens and begins a session.
    pub async fn connect(addr: SocketAddr, opts: ConnectOptions) -> Result<Connection> {
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: INCOMING_WINDOW,
            outgoing_window: u32::MAX,
            handle_max: u32::MAX,
            ..Begin::default()
        };
        let est = establish(addr, &opts, begin).await?;
        let shared = Arc::new(ConnShared::default());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let cfg = DriverConfig {
            local_max_frame: opts.max_frame_size.max(shoal_amqp::MIN_MAX_FRAME_SIZE),
            max_message_size: opts.max_message_size,
            local_idle: opts.idle_timeout,
            remote_max_frame: est.remote_open.max_frame_size,
            remote_idle: est
                .remote_open
                .idle_time_out
                .filter(|ms| *ms > 0)
                .map(|ms| std::time::Duration::from_millis(u64::from(ms))),
            remote_incoming_window: est.remote_begin.incoming_window,
            remote_next_outgoing_id: est.remote_begin.next_outgoing_id,
            handle_max: est.remote_begin.handle_max,
        };
        let driver = Driver::new(Arc::clone(&shared), rx, cfg);
        tokio::spawn(driver.run(est.stream, est.rbuf));
        Ok(Connection {
            commands: tx,
            shared,
            remote_open: est.remote_open,
            remote_begin: est.remote_begin,
            links: AtomicU64::new(0),
            container_id: opts.container_id,
        })
    }

    /// A raw connection for protocol tests: the AMQP header is exchanged, nothing else.
    pub async fn raw(addr: SocketAddr) -> Result<RawConnection> {
        RawConnection::connect(addr, true).await
    }

    /// A raw connection on which nothing was sent yet (not even the protocol header).
    pub async fn raw_no_header(addr: SocketAddr) -> Result<RawConnection> {
        RawConnection::connect(addr, false).await
    }

    /// The peer's `open`.
    pub fn remote_open(&self) -> &Open {
        &self.remote_open
    }

    /// The peer's `begin`.
    pub fn remote_begin(&self) -> &Begin {
        &self.remote_begin
    }

    /// Why the connection ended, if it has.
    pub fn error(&self) -> Option<ClientError> {
        self.shared.error()
    }

    /// Waits until the connection ends and says why (`Remote` if the peer closed with an error).
    pub async fn closed(&self) -> ClientError {
        self.shared.wait_closed().await
    }

    fn link_name(&self, role: &str) -> String {
        let n = self.links.fetch_add(1, Ordering::Relaxed);
        format!("{}-{role}-{n}", self.container_id)
    }

    /// Attaches a sending link to `address` (`None`: the anonymous sender; every message then
    /// needs a `to`).
    pub async fn sender(&self, address: Option<&str>, opts: SenderOptions) -> Result<Sender> {
        let attach = Attach {
            name: opts.name.unwrap_or_else(|| self.link_name("sender")),
            handle: 0,
            role: Role::Sender,
            snd_settle_mode: opts.snd_settle_mode,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(Source::default())),
            target: Some(Box::new(Target {
                address: address.map(str::to_owned),
                ..Target::default()
            })),
            initial_delivery_count: Some(0),
            ..Attach::default()
        };
        let core = self.attach(attach, 0, 0).await?;
        Ok(Sender { core })
    }

    /// Attaches a receiving link from `address`, granting `credit` (no auto-replenish).
    pub async fn receiver(&self, address: &str, credit: u32) -> Result<Receiver> {
        self.receiver_with(Some(address), ReceiverOptions::credit(credit))
            .await
    }

    /// Attaches a receiving link from a dynamic node the peer creates; see
    /// [`Receiver::address`].
    pub async fn dynamic_receiver(&self, credit: u32) -> Result<Receiver> {
        let opts = ReceiverOptions {
            dynamic: true,
            ..ReceiverOptions::credit(credit)
        };
        self.receiver_with(None, opts).await
    }

    /// Attaches a receiving link with full options.
    pub async fn receiver_with(
        &self,
        address: Option<&str>,
        opts: ReceiverOptions,
    ) -> Result<Receiver> {
        let source = Source {
            address: if opts.dynamic {
                None
            } else {
                address.map(str::to_owned)
            },
            dynamic: opts.dynamic,
            ..Source::default()
        };
        let attach = Attach {
            name: opts
                .name
                .clone()
                .unwrap_or_else(|| self.link_name("receiver")),
            handle: 0,
            role: Role::Receiver,
            snd_settle_mode: opts.snd_settle_mode,
            rcv_settle_mode: opts.rcv_settle_mode,
            source: Some(Box::new(source)),
            target: Some(Box::new(Target::default())),
            ..Attach::default()
        };
        let auto = if opts.auto_replenish { opts.credit } else { 0 };
        let core = self.attach(attach, opts.credit, auto).await?;
        Ok(Receiver { core })
    }

    async fn attach(&self, attach: Attach, credit: u32, auto_credit: u32) -> Result<LinkCore> {
        let shared = Arc::new(LinkShared::default());
        shared.with(|s| s.auto_credit = auto_credit);
        let (reply, rx) = oneshot::channel();
        let command = Command::Attach {
            attach: Box::new(attach),
            shared: Arc::clone(&shared),
            credit,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| self.shared.gone())?;
        let (handle, remote) = rx.await.map_err(|_| self.shared.gone())??;
        Ok(LinkCore {
            handle,
            commands: self.commands.clone(),
            conn: Arc::clone(&self.shared),
            shared,
            remote_attach: remote,
        })
    }

    /// Closes the connection and waits for the peer's `close`. `Err(Remote)` if the peer's
    /// close carries an error.
    pub async fn close(&self) -> Result<()> {
        self.close_with(None).await
    }

    /// Closes with an error condition of ours.
    pub async fn close_with(&self, error: Option<AmqpError>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Close { error, reply })
            .await
            .map_err(|_| self.shared.gone())?;
        rx.await.map_err(|_| self.shared.gone())?
    }
}
