//! Link performatives: attach, flow, detach.

use bytes::BytesMut;

use crate::codec::code::LIST32;
use crate::codec::{
    descriptor as desc, put_bool, put_descriptor, put_fields, put_string, put_symbols, put_ubyte,
    put_uint, put_ulong, put_value, CompoundWriter, FieldReader,
};
use crate::definitions::{AmqpError, ReceiverSettleMode, Role, SenderSettleMode, Source, Target};
use crate::error::DecodeError;
use crate::types::{Fields, Symbol, Value};

type Result<T> = std::result::Result<T, DecodeError>;

/// `attach` (2.7.3).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Attach {
    pub name: String,
    pub handle: u32,
    pub role: Role,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    pub source: Option<Box<Source>>,
    pub target: Option<Box<Target>>,
    /// The unsettled map, kept undecoded (the router does not resume links).
    pub unsettled: Option<Value>,
    pub incomplete_unsettled: bool,
    pub initial_delivery_count: Option<u32>,
    pub max_message_size: Option<u64>,
    pub offered_capabilities: Option<Vec<Symbol>>,
    pub desired_capabilities: Option<Vec<Symbol>>,
    pub properties: Option<Fields>,
}

impl Attach {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Attach {
            name: r.string()?.ok_or(DecodeError::MissingField("name"))?,
            handle: r.uint()?.ok_or(DecodeError::MissingField("handle"))?,
            role: Role::from_bool(r.bool()?.ok_or(DecodeError::MissingField("role"))?),
            snd_settle_mode: match r.ubyte()? {
                Some(v) => SenderSettleMode::from_u8(v)?,
                None => SenderSettleMode::default(),
            },
            rcv_settle_mode: match r.ubyte()? {
                Some(v) => ReceiverSettleMode::from_u8(v)?,
                None => ReceiverSettleMode::default(),
            },
            source: r.custom(Source::decode_of)?.map(Box::new),
            target: r.custom(Target::decode_of)?.map(Box::new),
            unsettled: r.value()?,
            incomplete_unsettled: r.bool()?.unwrap_or(false),
            initial_delivery_count: r.uint()?,
            max_message_size: r.ulong()?,
            offered_capabilities: r.symbols()?,
            desired_capabilities: r.symbols()?,
            properties: r.fields()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::ATTACH);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_string(b, &self.name));
        w.item(buf, |b| put_uint(b, self.handle));
        w.item(buf, |b| put_bool(b, self.role.as_bool()));
        let snd = self.snd_settle_mode;
        w.opt(
            buf,
            (snd != SenderSettleMode::Mixed).then_some(snd.as_u8()),
            put_ubyte,
        );
        let rcv = self.rcv_settle_mode;
        w.opt(
            buf,
            (rcv != ReceiverSettleMode::First).then_some(rcv.as_u8()),
            put_ubyte,
        );
        w.opt(buf, self.source.as_deref(), |b, s| s.encode(b));
        w.opt(buf, self.target.as_deref(), |b, t| t.encode(b));
        w.opt(buf, self.unsettled.as_ref(), put_value);
        w.flag(buf, self.incomplete_unsettled);
        w.opt(buf, self.initial_delivery_count, put_uint);
        w.opt(buf, self.max_message_size, put_ulong);
        w.opt(buf, self.offered_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.desired_capabilities.as_deref(), put_symbols);
        w.opt(buf, self.properties.as_ref(), put_fields);
        w.finish(buf);
    }
}

/// `flow` (2.7.4). Decoding allocates only for `properties`; encoding never allocates.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Flow {
    pub next_incoming_id: Option<u32>,
    pub incoming_window: u32,
    pub next_outgoing_id: u32,
    pub outgoing_window: u32,
    pub handle: Option<u32>,
    pub delivery_count: Option<u32>,
    pub link_credit: Option<u32>,
    pub available: Option<u32>,
    pub drain: bool,
    pub echo: bool,
    pub properties: Option<Fields>,
}

impl Flow {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Flow {
            next_incoming_id: r.uint()?,
            incoming_window: r
                .uint()?
                .ok_or(DecodeError::MissingField("incoming-window"))?,
            next_outgoing_id: r
                .uint()?
                .ok_or(DecodeError::MissingField("next-outgoing-id"))?,
            outgoing_window: r
                .uint()?
                .ok_or(DecodeError::MissingField("outgoing-window"))?,
            handle: r.uint()?,
            delivery_count: r.uint()?,
            link_credit: r.uint()?,
            available: r.uint()?,
            drain: r.bool()?.unwrap_or(false),
            echo: r.bool()?.unwrap_or(false),
            properties: r.fields()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::FLOW);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.next_incoming_id, put_uint);
        w.item(buf, |b| put_uint(b, self.incoming_window));
        w.item(buf, |b| put_uint(b, self.next_outgoing_id));
        w.item(buf, |b| put_uint(b, self.outgoing_window));
        w.opt(buf, self.handle, put_uint);
        w.opt(buf, self.delivery_count, put_uint);
        w.opt(buf, self.link_credit, put_uint);
        w.opt(buf, self.available, put_uint);
        w.flag(buf, self.drain);
        w.flag(buf, self.echo);
        w.opt(buf, self.properties.as_ref(), put_fields);
        w.finish(buf);
    }
}

/// `detach` (2.7.7).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Detach {
    pub handle: u32,
    pub closed: bool,
    pub error: Option<AmqpError>,
}

impl Detach {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Detach {
            handle: r.uint()?.ok_or(DecodeError::MissingField("handle"))?,
            closed: r.bool()?.unwrap_or(false),
            error: r.error()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::DETACH);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_uint(b, self.handle));
        w.flag(buf, self.closed);
        w.opt(buf, self.error.as_ref(), |b, e| e.encode(b));
        w.finish(buf);
    }
}
