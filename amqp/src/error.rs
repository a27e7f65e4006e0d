//! The crate's error types and their mapping to AMQP error conditions.

use crate::condition;
use crate::types::Descriptor;

/// Decoding failed. Running out of bytes is only an error *inside* a frame or section that was
/// declared complete (`Truncated`): the sans-IO entry points report "need more bytes" as
/// `Ok(None)` / [`Scan::Incomplete`](crate::Scan::Incomplete) instead.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("encoded value ends before its declared size")]
    Truncated,
    #[error("invalid format code 0x{0:02x}")]
    InvalidConstructor(u8),
    #[error("expected {expected}, found format code 0x{found:02x}")]
    UnexpectedType { expected: &'static str, found: u8 },
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("unknown descriptor {0}")]
    UnknownDescriptor(Descriptor),
    #[error("mandatory field `{0}` is missing")]
    MissingField(&'static str),
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    #[error("value nesting is too deep")]
    TooDeep,
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("wrong frame type 0x{0:02x}")]
    WrongFrameType(u8),
}

impl DecodeError {
    /// The AMQP error condition to report this error with (in a `close`, `end` or `detach`).
    pub fn condition(&self) -> &'static str {
        match self {
            DecodeError::MissingField(_) | DecodeError::InvalidValue(_) => condition::INVALID_FIELD,
            DecodeError::Unsupported(_) => condition::NOT_IMPLEMENTED,
            DecodeError::WrongFrameType(_) => condition::CONNECTION_FRAMING_ERROR,
            DecodeError::Truncated
            | DecodeError::InvalidConstructor(_)
            | DecodeError::UnexpectedType { .. }
            | DecodeError::InvalidUtf8
            | DecodeError::UnknownDescriptor(_)
            | DecodeError::TooDeep => condition::DECODE_ERROR,
        }
    }
}

/// The frame header is unacceptable (see [`check_frame`](crate::check_frame)).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds max-frame-size {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl FrameError {
    /// Both cases are framing errors: the connection must be closed.
    pub fn condition(&self) -> &'static str {
        condition::CONNECTION_FRAMING_ERROR
    }
}

/// The 8-byte protocol header is not one we speak. The spec's answer is to write our own
/// supported header and close the socket, so there is no condition to map to.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum HeaderError {
    #[error("not an AMQP protocol header")]
    NotAmqp,
    #[error("unsupported AMQP protocol header {0:?}")]
    UnsupportedVersion([u8; 8]),
}
