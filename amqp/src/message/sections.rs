//! The `header` and `properties` sections.

use bytes::{Bytes, BytesMut};

use crate::codec::code::LIST32;
use crate::codec::{
    descriptor as desc, put_binary, put_bool, put_descriptor, put_string, put_symbol,
    put_timestamp, put_ubyte, put_uint, put_value, CompoundWriter, FieldReader,
};
use crate::definitions::nonzero;
use crate::error::DecodeError;
use crate::types::{Symbol, Value};

type Result<T> = std::result::Result<T, DecodeError>;

/// The `header` section (3.2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub durable: bool,
    /// Default 4.
    pub priority: u8,
    /// Milliseconds.
    pub ttl: Option<u32>,
    pub first_acquirer: bool,
    pub delivery_count: u32,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            durable: false,
            priority: 4,
            ttl: None,
            first_acquirer: false,
            delivery_count: 0,
        }
    }
}

impl Header {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Header {
            durable: r.bool()?.unwrap_or(false),
            priority: r.ubyte()?.unwrap_or(4),
            ttl: r.uint()?,
            first_acquirer: r.bool()?.unwrap_or(false),
            delivery_count: r.uint()?.unwrap_or(0),
        })
    }

    /// Appends the described section.
    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::HEADER);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.durable.then_some(true), put_bool);
        w.opt(
            buf,
            (self.priority != 4).then_some(self.priority),
            put_ubyte,
        );
        w.opt(buf, self.ttl, put_uint);
        w.opt(buf, self.first_acquirer.then_some(true), put_bool);
        w.opt(buf, nonzero(self.delivery_count), put_uint);
        w.finish(buf);
    }
}

/// The `properties` section (3.2.4).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Properties {
    pub message_id: Option<Value>,
    pub user_id: Option<Bytes>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<Value>,
    pub content_type: Option<Symbol>,
    pub content_encoding: Option<Symbol>,
    pub absolute_expiry_time: Option<i64>,
    pub creation_time: Option<i64>,
    pub group_id: Option<String>,
    pub group_sequence: Option<u32>,
    pub reply_to_group_id: Option<String>,
}

impl Properties {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Properties {
            message_id: r.value()?,
            user_id: r.binary()?,
            to: r.address()?,
            subject: r.string()?,
            reply_to: r.address()?,
            correlation_id: r.value()?,
            content_type: r.symbol()?,
            content_encoding: r.symbol()?,
            absolute_expiry_time: r.timestamp()?,
            creation_time: r.timestamp()?,
            group_id: r.string()?,
            group_sequence: r.uint()?,
            reply_to_group_id: r.string()?,
        })
    }

    /// True when no field is set (the section can be left out).
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Appends the described section.
    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::PROPERTIES);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.message_id.as_ref(), put_value);
        w.opt(buf, self.user_id.as_deref(), put_binary);
        w.opt(buf, self.to.as_deref(), put_string);
        w.opt(buf, self.subject.as_deref(), put_string);
        w.opt(buf, self.reply_to.as_deref(), put_string);
        w.opt(buf, self.correlation_id.as_ref(), put_value);
        w.opt(buf, self.content_type.as_ref(), |b, s| {
            put_symbol(b, s.as_str())
        });
        w.opt(buf, self.content_encoding.as_ref(), |b, s| {
            put_symbol(b, s.as_str())
        });
        w.opt(buf, self.absolute_expiry_time, put_timestamp);
        w.opt(buf, self.creation_time, put_timestamp);
        w.opt(buf, self.group_id.as_deref(), put_string);
        w.opt(buf, self.group_sequence, put_uint);
        w.opt(buf, self.reply_to_group_id.as_deref(), put_string);
        w.finish(buf);
    }
}
