//! Encoder/decoder internals: format codes, the [`Decoder`] cursor, the [`FieldReader`] for
//! described lists and the `put_*` encoding functions.
//!
//! Decoding never indexes out of bounds and checks every declared size against the remaining
//! input before allocating. Encoding writes straight into a `BytesMut` with no temporary buffers:
//! compound headers are written in their wide form and shrunk in place once the size is known.

mod decode;
mod encode;
mod fields;

pub use decode::{Decoder, MAX_DEPTH};
pub use encode::{
    put_binary, put_bool, put_descriptor, put_fields, put_null, put_string, put_symbol,
    put_symbols, put_timestamp, put_ubyte, put_uint, put_ulong, put_ushort, put_value,
    CompoundWriter,
};
pub use fields::FieldReader;

/// Format codes (spec 1.6).
pub mod code {
    pub const DESCRIBED: u8 = 0x00;
    pub const NULL: u8 = 0x40;
    pub const TRUE: u8 = 0x41;
    pub const FALSE: u8 = 0x42;
    pub const UINT0: u8 = 0x43;
    pub const ULONG0: u8 = 0x44;
    pub const LIST0: u8 = 0x45;
    pub const UBYTE: u8 = 0x50;
    pub const BYTE: u8 = 0x51;
    pub const SMALLUINT: u8 = 0x52;
    pub const SMALLULONG: u8 = 0x53;
    pub const SMALLINT: u8 = 0x54;
    pub const SMALLLONG: u8 = 0x55;
    pub const BOOLEAN: u8 = 0x56;
    pub const USHORT: u8 = 0x60;
    pub const SHORT: u8 = 0x61;
    pub const UINT: u8 = 0x70;
    pub const INT: u8 = 0x71;
    pub const FLOAT: u8 = 0x72;
    pub const CHAR: u8 = 0x73;
    pub const DECIMAL32: u8 = 0x74;
    pub const ULONG: u8 = 0x80;
    pub const LONG: u8 = 0x81;
    pub const DOUBLE: u8 = 0x82;
    pub const TIMESTAMP: u8 = 0x83;
    pub const DECIMAL64: u8 = 0x84;
    pub const DECIMAL128: u8 = 0x94;
    pub const UUID: u8 = 0x98;
    pub const VBIN8: u8 = 0xa0;
    pub const STR8: u8 = 0xa1;
    pub const SYM8: u8 = 0xa3;
    pub const VBIN32: u8 = 0xb0;
    pub const STR32: u8 = 0xb1;
    pub const SYM32: u8 = 0xb3;
    pub const LIST8: u8 = 0xc0;
    pub const MAP8: u8 = 0xc1;
    pub const LIST32: u8 = 0xd0;
    pub const MAP32: u8 = 0xd1;
    pub const ARRAY8: u8 = 0xe0;
    pub const ARRAY32: u8 = 0xf0;
}

/// Descriptor codes of the described types this crate knows (domain 0, the AMQP domain).
pub mod descriptor {
    pub const OPEN: u64 = 0x10;
    pub const BEGIN: u64 = 0x11;
    pub const ATTACH: u64 = 0x12;
    pub const FLOW: u64 = 0x13;
    pub const TRANSFER: u64 = 0x14;
    pub const DISPOSITION: u64 = 0x15;
    pub const DETACH: u64 = 0x16;
    pub const END: u64 = 0x17;
    pub const CLOSE: u64 = 0x18;
    pub const ERROR: u64 = 0x1d;
    pub const RECEIVED: u64 = 0x23;
    pub const ACCEPTED: u64 = 0x24;
    pub const REJECTED: u64 = 0x25;
    pub const RELEASED: u64 = 0x26;
    pub const MODIFIED: u64 = 0x27;
    pub const SOURCE: u64 = 0x28;
    pub const TARGET: u64 = 0x29;
    pub const DELETE_ON_CLOSE: u64 = 0x2b;
    pub const DELETE_ON_NO_LINKS: u64 = 0x2c;
    pub const DELETE_ON_NO_MESSAGES: u64 = 0x2d;
    pub const DELETE_ON_NO_LINKS_OR_MESSAGES: u64 = 0x2e;
    pub const COORDINATOR: u64 = 0x30;
    pub const DECLARE: u64 = 0x31;
    pub const DISCHARGE: u64 = 0x32;
    pub const DECLARED: u64 = 0x33;
    pub const TRANSACTIONAL_STATE: u64 = 0x34;
    pub const SASL_MECHANISMS: u64 = 0x40;
    pub const SASL_INIT: u64 = 0x41;
    pub const SASL_CHALLENGE: u64 = 0x42;
    pub const SASL_RESPONSE: u64 = 0x43;
    pub const SASL_OUTCOME: u64 = 0x44;
    pub const HEADER: u64 = 0x70;
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    pub const PROPERTIES: u64 = 0x73;
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    pub const DATA: u64 = 0x75;
    pub const AMQP_SEQUENCE: u64 = 0x76;
    pub const AMQP_VALUE: u64 = 0x77;
    pub const FOOTER: u64 = 0x78;

    /// Maps a symbolic descriptor (e.g. `amqp:open:list`) to its numeric code, so both
    /// descriptor forms decode identically.
    pub fn from_symbol(sym: &[u8]) -> Option<u64> {
        Some(match sym {
            b"amqp:open:list" => OPEN,
            b"amqp:begin:list" => BEGIN,
            b"amqp:attach:list" => ATTACH,
            b"amqp:flow:list" => FLOW,
            b"amqp:transfer:list" => TRANSFER,
            b"amqp:disposition:list" => DISPOSITION,
            b"amqp:detach:list" => DETACH,
            b"amqp:end:list" => END,
            b"amqp:close:list" => CLOSE,
            b"amqp:error:list" => ERROR,
            b"amqp:received:list" => RECEIVED,
            b"amqp:accepted:list" => ACCEPTED,
            b"amqp:rejected:list" => REJECTED,
            b"amqp:released:list" => RELEASED,
            b"amqp:modified:list" => MODIFIED,
            b"amqp:source:list" => SOURCE,
            b"amqp:target:list" => TARGET,
            b"amqp:delete-on-close:list" => DELETE_ON_CLOSE,
            b"amqp:delete-on-no-links:list" => DELETE_ON_NO_LINKS,
            b"amqp:delete-on-no-messages:list" => DELETE_ON_NO_MESSAGES,
            b"amqp:delete-on-no-links-or-messages:list" => DELETE_ON_NO_LINKS_OR_MESSAGES,
            b"amqp:coordinator:list" => COORDINATOR,
            b"amqp:declare:list" => DECLARE,
            b"amqp:discharge:list" => DISCHARGE,
            b"amqp:declared:list" => DECLARED,
            b"amqp:transactional-state:list" => TRANSACTIONAL_STATE,
            b"amqp:sasl-mechanisms:list" => SASL_MECHANISMS,
            b"amqp:sasl-init:list" => SASL_INIT,
            b"amqp:sasl-challenge:list" => SASL_CHALLENGE,
            b"amqp:sasl-response:list" => SASL_RESPONSE,
            b"amqp:sasl-outcome:list" => SASL_OUTCOME,
            b"amqp:header:list" => HEADER,
            b"amqp:delivery-annotations:map" => DELIVERY_ANNOTATIONS,
            b"amqp:message-annotations:map" => MESSAGE_ANNOTATIONS,
            b"amqp:properties:list" => PROPERTIES,
            b"amqp:application-properties:map" => APPLICATION_PROPERTIES,
            b"amqp:data:binary" => DATA,
            b"amqp:amqp-sequence:list" => AMQP_SEQUENCE,
            b"amqp:amqp-value:*" => AMQP_VALUE,
            b"amqp:footer:map" => FOOTER,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
