//! Sans-IO AMQP 1.0 codec for Shoal: the type system, performatives, SASL, frames and message
//! sections of the OASIS AMQP 1.0 specification.
//!
//! # Shape
//!
//! Nothing here does I/O. A connection reads bytes into a `BytesMut` and then:
//!
//! 1. before any frame, [`parse_protocol_header`] on the first 8 bytes;
//! 2. [`check_frame`] on the buffer: `Ok(None)` means "need more bytes" (incompleteness is not
//!    an error), `Ok(Some(len))` means a whole frame is buffered, `Err` means the peer must be
//!    disconnected (too large or malformed header);
//! 3. `buf.split_to(len).freeze()` and [`parse_amqp_frame`] (or [`parse_sasl_frame`]) on that
//!    whole frame. Decoding never copies binary data: delivery tags, SASL responses and the
//!    transfer payload are `Bytes::slice`s of the frame.
//!
//! Writing is the reverse: [`encode_frame`] appends a frame to a `BytesMut`, and
//! [`encode_frame_header_for_payload`] lets a large transfer payload be written as a separate
//! chunk (writev) instead of being copied. Transfer, flow and disposition encode and decode
//! without heap allocation.
//!
//! For routing, [`scan_message`] reads a message's `header` and `properties` and skips every
//! other section by its encoded size; the body is never decoded. It returns
//! [`Scan::Incomplete`] while a multi-frame message has not yet delivered those sections.
//!
//! Decoding is defensive: every size is checked against the remaining input before anything is
//! allocated, nesting is bounded by [`codec::MAX_DEPTH`], and no input can make it panic.

pub mod codec;
pub mod condition;
pub mod definitions;
pub mod error;
pub mod frame;
pub mod message;
pub mod performative;
pub mod sasl;
pub mod types;

pub use definitions::{
    AmqpError, DeliveryState, ReceiverSettleMode, Role, SenderSettleMode, Source, Target,
};
pub use error::{DecodeError, FrameError, HeaderError};
pub use frame::{
    check_frame, encode_empty_frame, encode_frame, encode_frame_header_for_payload,
    encode_sasl_frame, parse_amqp_frame, parse_protocol_header, parse_sasl_frame, AmqpFrame,
    ProtocolId, AMQP_HEADER, MIN_MAX_FRAME_SIZE, SASL_HEADER, TLS_HEADER, TRANSFER_OVERHEAD_MAX,
};
pub use message::{
    decode_message, scan_message, Body, Header, MessageBuilder, MessageInfo, Properties, Scan,
};
pub use performative::{
    Attach, Begin, Close, Detach, Disposition, End, Flow, Open, Performative, Transfer,
};
pub use sasl::{
    SaslChallenge, SaslCode, SaslFrame, SaslInit, SaslMechanisms, SaslOutcome, SaslResponse,
};
pub use types::{Descriptor, Fields, Symbol, Value};
