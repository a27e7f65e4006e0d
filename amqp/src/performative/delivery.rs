//! Delivery performatives: transfer and disposition. These are the hot path of the router:
//! decoding allocates nothing (the delivery tag is a slice of the frame) unless the delivery
//! state carries an error or annotations, and encoding writes straight into the buffer.

use bytes::{Bytes, BytesMut};

use crate::codec::code::LIST32;
use crate::codec::{
    descriptor as desc, put_binary, put_bool, put_descriptor, put_ubyte, put_uint, CompoundWriter,
    FieldReader,
};
use crate::definitions::{DeliveryState, ReceiverSettleMode, Role};
use crate::error::DecodeError;

type Result<T> = std::result::Result<T, DecodeError>;

/// `transfer` (2.7.5).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Transfer {
    pub handle: u32,
    pub delivery_id: Option<u32>,
    /// A zero-copy slice of the received frame.
    pub delivery_tag: Option<Bytes>,
    pub message_format: Option<u32>,
    pub settled: Option<bool>,
    pub more: bool,
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    pub state: Option<DeliveryState>,
    pub resume: bool,
    pub aborted: bool,
    pub batchable: bool,
}

impl Transfer {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Transfer {
            handle: r.uint()?.ok_or(DecodeError::MissingField("handle"))?,
            delivery_id: r.uint()?,
            delivery_tag: r.binary()?,
            message_format: r.uint()?,
            settled: r.bool()?,
            more: r.bool()?.unwrap_or(false),
            rcv_settle_mode: r.ubyte()?.map(ReceiverSettleMode::from_u8).transpose()?,
            state: r.delivery_state()?,
            resume: r.bool()?.unwrap_or(false),
            aborted: r.bool()?.unwrap_or(false),
            batchable: r.bool()?.unwrap_or(false),
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::TRANSFER);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_uint(b, self.handle));
        w.opt(buf, self.delivery_id, put_uint);
        w.opt(buf, self.delivery_tag.as_deref(), put_binary);
        w.opt(buf, self.message_format, put_uint);
        w.opt(buf, self.settled, put_bool);
        w.flag(buf, self.more);
        w.opt(
            buf,
            self.rcv_settle_mode.map(ReceiverSettleMode::as_u8),
            put_ubyte,
        );
        w.opt(buf, self.state.as_ref(), |b, s| s.encode(b));
        w.flag(buf, self.resume);
        w.flag(buf, self.aborted);
        w.flag(buf, self.batchable);
        w.finish(buf);
    }
}

/// `disposition` (2.7.6).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Disposition {
    pub role: Role,
    pub first: u32,
    pub last: Option<u32>,
    pub settled: bool,
    pub state: Option<DeliveryState>,
    pub batchable: bool,
}

impl Disposition {
    pub(crate) fn decode(r: &mut FieldReader<'_>) -> Result<Self> {
        Ok(Disposition {
            role: Role::from_bool(r.bool()?.ok_or(DecodeError::MissingField("role"))?),
            first: r.uint()?.ok_or(DecodeError::MissingField("first"))?,
            last: r.uint()?,
            settled: r.bool()?.unwrap_or(false),
            state: r.delivery_state()?,
            batchable: r.bool()?.unwrap_or(false),
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::DISPOSITION);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_bool(b, self.role.as_bool()));
        w.item(buf, |b| put_uint(b, self.first));
        w.opt(buf, self.last, put_uint);
        w.flag(buf, self.settled);
        w.opt(buf, self.state.as_ref(), |b, s| s.encode(b));
        w.flag(buf, self.batchable);
        w.finish(buf);
    }
}
