//! Options for connections and links.

use std::time::Duration;

use shoal_amqp::{ReceiverSettleMode, SenderSettleMode};

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sasl {
    /// No SASL layer: send the AMQP header straight away.
    #[default]
    None,
    /// SASL ANONYMOUS.
    Anonymous,
    /// SASL PLAIN with these credentials.
    Plain { user: String, password: String },
}

/// Options of [`Connection::connect`](crate::Connection::connect).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Our container id in `open`.
    pub container_id: String,
    /// `hostname` in `open` (and in `sasl-init`).
    pub hostname: Option<String>,
    pub sasl: Sasl,
    /// The largest frame we accept (announced in `open`); at least 512.
    pub max_frame_size: u32,
    /// Our idle time-out, announced in `open`: a peer silent this long is closed. `None`: no
    /// time-out.
    pub idle_timeout: Option<Duration>,
    /// Connecting, SASL and the `open`/`begin` exchange must finish within this.
    pub connect_timeout: Duration,
    /// The largest message a receiver reassembles; a bigger one detaches the link with
    /// `amqp:link:message-size-exceeded`. Bounds what one multi-frame delivery can buffer.
    pub max_message_size: u64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            container_id: format!("shoal-client-{}", std::process::id()),
            hostname: None,
            sasl: Sasl::None,
            max_frame_size: 64 * 1024,
            idle_timeout: None,
            connect_timeout: Duration::from_secs(10),
            max_message_size: 128 * 1024 * 1024,
        }
    }
}

impl ConnectOptions {
    /// Defaults with this SASL configuration.
    pub fn with_sasl(sasl: Sasl) -> Self {
        ConnectOptions {
            sasl,
            ..Self::default()
        }
    }
}

/// Options of [`Connection::sender_with`](crate::Connection::sender_with).
#[derive(Debug, Clone, Default)]
pub struct SenderOptions {
    /// `Settled` declares that every delivery is sent settled (at-most-once);
    /// `Unsettled` that none is; `Mixed` (the default) lets each `send` choose.
    pub snd_settle_mode: SenderSettleMode,
    /// The link name; default: generated.
    pub name: Option<String>,
}

/// Options of [`Connection::receiver_with`](crate::Connection::receiver_with).
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Credit granted right after the attach.
    pub credit: u32,
    /// Keep the credit topped up to `credit` as messages are consumed with `recv` (off by
    /// default: the test decides exactly how much credit the peer has).
    pub auto_replenish: bool,
    /// Ask the peer to send settled (`Settled`) or unsettled (`Unsettled`) deliveries.
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Ask the peer for a dynamic node (the address argument is then ignored).
    pub dynamic: bool,
    /// The link name; default: generated.
    pub name: Option<String>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            credit: 0,
            auto_replenish: false,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            dynamic: false,
            name: None,
        }
    }
}

impl ReceiverOptions {
    /// Defaults with `credit` granted at attach.
    pub fn credit(credit: u32) -> Self {
        ReceiverOptions {
            credit,
            ..Self::default()
        }
    }
}
