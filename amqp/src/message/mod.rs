//! Message sections (messaging 3.2): scanning for routing, and whole-message encode/decode.
//!
//! The router calls [`scan_message`], which decodes only the `header` and `properties` sections
//! and skips everything else by its encoded size; the body is never decoded.

mod builder;
mod rewrite;
mod sections;
mod trace;

pub use builder::{decode_message, Body, MessageBuilder};
pub use rewrite::{read_header, rewrite_message, with_delivery_count};
pub use sections::{Header, Properties};
pub use trace::{
    append_trace, append_trace_matched, read_matched, read_trace, MATCHED_ANNOTATION,
    TRACE_ANNOTATION,
};

use crate::codec::{descriptor as desc, Decoder, FieldReader};
use crate::error::DecodeError;
use crate::types::{Descriptor, Value};

/// What the router routes on.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct MessageInfo {
    pub header: Option<Header>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub message_id: Option<Value>,
    pub correlation_id: Option<Value>,
    pub subject: Option<String>,
    pub absolute_expiry_time: Option<i64>,
    pub creation_time: Option<i64>,
}

/// The result of [`scan_message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Scan {
    Complete(MessageInfo),
    /// The bytes end before the properties (or the first body section) were seen in full.
    Incomplete,
}

/// Walks the sections of an encoded message (header 0x70, delivery-annotations 0x71,
/// message-annotations 0x72, properties 0x73, application-properties 0x74, data 0x75,
/// amqp-sequence 0x76, amqp-value 0x77, footer 0x78), decoding header and properties only and
/// skipping the others by their encoded size (the body is never decoded).
///
/// Stops at the properties section or the first body section, whichever comes first. Returns
/// `Incomplete` when `bytes` ends before that: the caller holds more frames of a multi-frame
/// transfer and calls again with more bytes. A *whole* message that still scans as `Incomplete`
/// has neither properties nor a body, which the spec does not allow.
pub fn scan_message(bytes: &[u8]) -> Result<Scan, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let mut info = MessageInfo::default();
    loop {
        if dec.is_empty() {
            return Ok(Scan::Incomplete);
        }
        // Peek the descriptor first: a body section is enough to stop, even if cut short.
        let mut probe = dec.clone();
        let code = match probe.described_header() {
            Ok(code) => code,
            Err(DecodeError::Truncated) => return Ok(Scan::Incomplete),
            Err(e) => return Err(e),
        };
        match code {
            desc::DATA | desc::AMQP_SEQUENCE | desc::AMQP_VALUE | desc::FOOTER => {
                return Ok(Scan::Complete(info))
            }
            desc::HEADER
            | desc::DELIVERY_ANNOTATIONS
            | desc::MESSAGE_ANNOTATIONS
            | desc::PROPERTIES
            | desc::APPLICATION_PROPERTIES => {}
            other => return Err(DecodeError::UnknownDescriptor(Descriptor::Code(other))),
        }
        // Is the whole section here? Only running past the end of `bytes` means "incomplete";
        // once the section is known to be whole, running short inside it is malformation.
        let mut probe = dec.clone();
        match probe.skip_value() {
            Ok(()) => {}
            Err(DecodeError::Truncated) => return Ok(Scan::Incomplete),
            Err(e) => return Err(e),
        }
        match code {
            desc::HEADER => {
                dec.described_header()?;
                info.header = Some(Header::decode(&mut FieldReader::new(&mut dec)?)?);
            }
            desc::PROPERTIES => {
                dec.described_header()?;
                let p = Properties::decode(&mut FieldReader::new(&mut dec)?)?;
                info.to = p.to;
                info.reply_to = p.reply_to;
                info.message_id = p.message_id;
                info.correlation_id = p.correlation_id;
                info.subject = p.subject;
                info.absolute_expiry_time = p.absolute_expiry_time;
                info.creation_time = p.creation_time;
                // Nothing after properties matters for routing.
                return Ok(Scan::Complete(info));
            }
            _ => dec = probe,
        }
    }
}

#[cfg(test)]
mod tests;
