//! The crate's error type.

use shoal_amqp::DecodeError;

/// Why a router id or a protocol message was rejected.
///
/// Every variant is a fault of the peer that sent the bytes (or of the configuration, for
/// [`MeshError::InvalidRouterId`]); the caller closes that peer's connection and keeps running.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MeshError {
    #[error("invalid router id {id:?}: {reason}")]
    InvalidRouterId { id: String, reason: &'static str },
    #[error("mesh message is not valid AMQP")]
    Decode(#[source] DecodeError),
    #[error("malformed mesh message: {0}")]
    Malformed(&'static str),
    #[error("mesh message exceeds a limit: {0}")]
    TooLarge(&'static str),
    #[error("unknown mesh opcode {0:?}")]
    UnknownOpcode(String),
    #[error("mesh protocol version {theirs} is not ours ({ours})")]
    VersionMismatch { ours: u32, theirs: u32 },
}

impl From<DecodeError> for MeshError {
    fn from(e: DecodeError) -> Self {
        MeshError::Decode(e)
    }
}
