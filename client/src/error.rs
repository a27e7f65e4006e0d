//! The crate's error type.

use std::sync::Arc;

use shoal_amqp::{AmqpError, DecodeError, SaslCode};

/// Everything a client call can fail with.
///
/// It is `Clone` because one connection failure is reported to every pending call (each link,
/// each unsettled delivery), so I/O errors are kept behind an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(Arc<std::io::Error>),
    /// The peer broke the protocol (or sent something we cannot decode).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// SASL ended with an outcome other than `ok`.
    #[error("SASL authentication failed: {0:?}")]
    Sasl(SaslCode),
    /// The peer offers no SASL mechanism we were told to use.
    #[error("SASL mechanism {wanted} not offered (offered: {offered:?})")]
    SaslMechanism {
        wanted: String,
        offered: Vec<String>,
    },
    /// The peer closed the connection, ended the session or detached the link with this error
    /// (also: the refusal of an attach).
    #[error("remote error: {0}")]
    Remote(AmqpError),
    /// The peer detached the link without an error.
    #[error("link detached by the peer")]
    Detached,
    /// The connection is closed (by us, or by the peer without an error).
    #[error("connection closed")]
    ConnectionClosed,
    /// A deadline passed (connecting, or waiting for the peer's answer).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// `outcome()` of a delivery sent settled: the peer never reports one.
    #[error("the delivery was sent settled; there is no outcome")]
    Presettled,
    /// A call that makes no sense in the link's state or with these arguments.
    #[error("invalid use: {0}")]
    Invalid(&'static str),
    /// A received message does not decode.
    #[error("message decode: {0}")]
    Decode(#[from] DecodeError),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(Arc::new(e))
    }
}

impl ClientError {
    /// The remote error condition, if the peer reported one.
    pub fn condition(&self) -> Option<&str> {
        match self {
            ClientError::Remote(e) => Some(e.condition.as_str()),
            _ => None,
        }
    }

    /// The error to report for a peer's close/end/detach carrying `error` (or none).
    pub(crate) fn remote_or(error: Option<AmqpError>, otherwise: ClientError) -> ClientError {
        error.map_or(otherwise, ClientError::Remote)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
