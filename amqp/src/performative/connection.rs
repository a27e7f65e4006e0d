//! Connection and session performatives: open, begin, end, close.

use bytes::BytesMut;

use crate::codec::code::LIST32;
use crate::codec::{
    descriptor as desc, put_descriptor, put_fields, put_string, put_symbols, put_uint, put_ushort,
    CompoundWriter, FieldReader,
};
use crate::definitions::AmqpError;
use crate::error::DecodeError;
use crate::types::{Fields, Symbol};

type Result<T> = std::result::Result<T, DecodeError>;

/// `open` (2.7.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Open {
    pub container_id: String,
    pub hostname: Option<String>,
    /// Default `u32::MAX`.
    pub max_frame_size: u32,
    /// Default 65535.
    pub channel_max: u16,
    /// Milliseconds.
    pub idle_time_out: Option<u32>,
    pub outgoing_locales: Option<Vec<Symbol>>,
    pub incoming_locales: Option<Vec<Symbol>>,
    pub offered_capabilities: Option<Vec<Symbol>>,
    pub desired_capabilities: Option<Vec<Symbol>>,
    pub properties: Option<Fields>,
}

impl Default for Open {
    fn default() -> Self {
        Open {
            container_id: String::new(),
            hostname: None,
            max_frame_size: u32::MAX,
            channel_max: u16::MAX,
            idle_time_out: None,
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }
}

impl Open {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Open {
            container_id: r
                .string()?
                .ok_or(DecodeError::MissingField("container-id"))?,
            hostname: r.string()?,
            max_frame_size: r.uint()?.unwrap_or(u32::MAX),
            channel_max: r.ushort()?.unwrap_or(u16::MAX),
            idle_time_out: r.uint()?,
            outgoing_locales: r.symbols()?,
            incoming_locales: r.symbols()?,
            offered_capabilities: r.symbols()?,
            desired_capabilities: r.symbols()?,
            properties: r.fields()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::OPEN);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_string(b, &self.container_id));
        w.opt(buf, self.hostname.as_deref(), put_string);
        w.opt(
            buf,
            (self.max_frame_size != u32::MAX).then_some(self.max_frame_size),
            put_uint,
        );
        w.opt(
            buf,
            (self.channel_max != u16::MAX).then_some(self.channel_max),
            put_ushort,
        );
        w.opt(buf, self.idle_time_out, put_uint);
        w.opt(buf, self.outgoing_locales.as_deref(), put_symbols);
        w.opt(buf, self.incoming_locales.as_deref(), put_symbols);
        w.opt(buf, self.offered_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.desired_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.properties.as_ref(), put_fields);
        w.finish(buf);
    }
}

/// `begin` (2.7.2).
#[derive(Clone, Debug, PartialEq)]
pub struct Begin {
    pub remote_channel: Option<u16>,
    pub next_outgoing_id: u32,
    pub incoming_window: u32,
    pub outgoing_window: u32,
    /// Default `u32::MAX`.
    pub handle_max: u32,
    pub offered_capabilities: Option<Vec<Symbol>>,
    pub desired_capabilities: Option<Vec<Symbol>>,
    pub properties: Option<Fields>,
}

impl Default for Begin {
    fn default() -> Self {
        Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: 0,
            outgoing_window: 0,
            handle_max: u32::MAX,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }
}

impl Begin {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Begin {
            remote_channel: r.ushort()?,
            next_outgoing_id: r
                .uint()?
                .ok_or(DecodeError::MissingField("next-outgoing-id"))?,
            incoming_window: r
                .uint()?
                .ok_or(DecodeError::MissingField("incoming-window"))?,
            outgoing_window: r
                .uint()?
                .ok_or(DecodeError::MissingField("outgoing-window"))?,
            handle_max: r.uint()?.unwrap_or(u32::MAX),
            offered_capabilities: r.symbols()?,
            desired_capabilities: r.symbols()?,
            properties: r.fields()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::BEGIN);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.remote_channel, put_ushort);
        w.item(buf, |b| put_uint(b, self.next_outgoing_id));
        w.item(buf, |b| put_uint(b, self.incoming_window));
        w.item(buf, |b| put_uint(b, self.outgoing_window));
        w.opt(
            buf,
            (self.handle_max != u32::MAX).then_some(self.handle_max),
            put_uint,
        );
        w.opt(buf, self.offered_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.desired_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.properties.as_ref(), put_fields);
        w.finish(buf);
    }
}

/// `end` (2.7.8).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct End {
    pub error: Option<AmqpError>,
}

impl End {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(End { error: r.error()? })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        encode_error_only(buf, desc::END, self.error.as_ref());
    }
}

/// `close` (2.7.9).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Close {
    pub error: Option<AmqpError>,
}

impl Close {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Close { error: r.error()? })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        encode_error_only(buf, desc::CLOSE, self.error.as_ref());
    }
}

fn encode_error_only(buf: &mut BytesMut, code: u64, error: Option<&AmqpError>) {
    put_descriptor(buf, code);
    let mut w = CompoundWriter::begin(buf, LIST32);
    w.opt(buf, error, |b, e| e.encode(b));
    w.finish(buf);
}
