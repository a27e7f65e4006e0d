//! Shared definitions (transport 2.8, messaging 3.4-3.5): roles, settle modes, errors, delivery
//! states, sources and targets.

use bytes::BytesMut;

use crate::codec::code::{DESCRIBED, LIST0, LIST32};
use crate::codec::{
    descriptor as desc, put_bool, put_descriptor, put_fields, put_string, put_symbol, put_symbols,
    put_uint, put_ulong, CompoundWriter, Decoder, FieldReader,
};
use crate::error::DecodeError;
use crate::types::{Descriptor, Fields, Symbol, Value};

type Result<T> = std::result::Result<T, DecodeError>;

/// The role of a link endpoint. Encoded as a boolean: `false` = sender, `true` = receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Role {
    #[default]
    Sender,
    Receiver,
}

impl Role {
    pub fn from_bool(receiver: bool) -> Self {
        if receiver {
            Role::Receiver
        } else {
            Role::Sender
        }
    }

    pub fn as_bool(self) -> bool {
        self == Role::Receiver
    }

    /// The role of the peer's endpoint of the same link.
    pub fn opposite(self) -> Self {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

/// `sender-settle-mode` (ubyte 0, 1, 2); the spec default is `Mixed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SenderSettleMode {
    Unsettled,
    Settled,
    #[default]
    Mixed,
}

impl SenderSettleMode {
    pub fn from_u8(v: u8) -> Result<Self> {
        match v {
            0 => Ok(Self::Unsettled),
            1 => Ok(Self::Settled),
            2 => Ok(Self::Mixed),
            _ => Err(DecodeError::InvalidValue("snd-settle-mode")),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::Unsettled => 0,
            Self::Settled => 1,
            Self::Mixed => 2,
        }
    }
}

/// `receiver-settle-mode` (ubyte 0, 1); the spec default is `First`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ReceiverSettleMode {
    #[default]
    First,
    Second,
}

impl ReceiverSettleMode {
    pub fn from_u8(v: u8) -> Result<Self> {
        match v {
            0 => Ok(Self::First),
            1 => Ok(Self::Second),
            _ => Err(DecodeError::InvalidValue("rcv-settle-mode")),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::First => 0,
            Self::Second => 1,
        }
    }
}

/// Reads `0x00 <descriptor>` given the already-read format code.
pub(crate) fn described_code(dec: &mut Decoder<'_>, code: u8) -> Result<u64> {
    if code != DESCRIBED {
        return Err(DecodeError::UnexpectedType {
            expected: "described type",
            found: code,
        });
    }
    dec.descriptor()
}

fn expect_descriptor(found: u64, expected: u64) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::UnknownDescriptor(Descriptor::Code(found)))
    }
}

/// The `error` type (2.8.14).
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpError {
    pub condition: Symbol,
    pub description: Option<String>,
    pub info: Option<Fields>,
}

impl AmqpError {
    /// An error with a condition (see [`crate::condition`]) and a description.
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        AmqpError {
            condition: Symbol::from(condition),
            description: Some(description.into()),
            info: None,
        }
    }

    pub(crate) fn decode_of(dec: &mut Decoder<'_>, code: u8) -> Result<Self> {
        expect_descriptor(described_code(dec, code)?, desc::ERROR)?;
        let mut r = FieldReader::new(dec)?;
        Ok(AmqpError {
            condition: r.symbol()?.ok_or(DecodeError::MissingField("condition"))?,
            description: r.string()?,
            info: r.fields()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::ERROR);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.item(buf, |b| put_symbol(b, self.condition.as_str()));
        w.opt(buf, self.description.as_deref(), put_string);
        w.opt(buf, self.info.as_ref(), put_fields);
        w.finish(buf);
    }
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.condition.as_str())?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Delivery states and outcomes (messaging 3.4).
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryState {
    Received {
        section_number: u32,
        section_offset: u64,
    },
    Accepted,
    Rejected {
        error: Option<AmqpError>,
    },
    Released,
    Modified {
        delivery_failed: Option<bool>,
        undeliverable_here: Option<bool>,
        message_annotations: Option<Fields>,
    },
}

impl DeliveryState {
    /// True for the terminal states (outcomes): everything but `Received`.
    pub fn is_outcome(&self) -> bool {
        !matches!(self, DeliveryState::Received { .. })
    }

    pub(crate) fn decode_of(dec: &mut Decoder<'_>, code: u8) -> Result<Self> {
        let d = described_code(dec, code)?;
        let mut r = FieldReader::new(dec)?;
        Ok(match d {
            desc::RECEIVED => DeliveryState::Received {
                section_number: r
                    .uint()?
                    .ok_or(DecodeError::MissingField("section-number"))?,
                section_offset: r
                    .ulong()?
                    .ok_or(DecodeError::MissingField("section-offset"))?,
            },
            desc::ACCEPTED => DeliveryState::Accepted,
            desc::REJECTED => DeliveryState::Rejected { error: r.error()? },
            desc::RELEASED => DeliveryState::Released,
            desc::MODIFIED => DeliveryState::Modified {
                delivery_failed: r.bool()?,
                undeliverable_here: r.bool()?,
                message_annotations: r.fields()?,
            },
            desc::DECLARED | desc::TRANSACTIONAL_STATE => {
                return Err(DecodeError::Unsupported("transactions"))
            }
            other => return Err(DecodeError::UnknownDescriptor(Descriptor::Code(other))),
        })
    }

    /// Allocation-free: writes straight into `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            DeliveryState::Received {
                section_number,
                section_offset,
            } => {
                put_descriptor(buf, desc::RECEIVED);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_uint(b, *section_number));
                w.item(buf, |b| put_ulong(b, *section_offset));
                w.finish(buf);
            }
            DeliveryState::Accepted => {
                put_descriptor(buf, desc::ACCEPTED);
                buf.extend_from_slice(&[LIST0]);
            }
            DeliveryState::Rejected { error } => {
                put_descriptor(buf, desc::REJECTED);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.opt(buf, error.as_ref(), |b, e| e.encode(b));
                w.finish(buf);
            }
            DeliveryState::Released => {
                put_descriptor(buf, desc::RELEASED);
                buf.extend_from_slice(&[LIST0]);
            }
            DeliveryState::Modified {
                delivery_failed,
                undeliverable_here,
                message_annotations,
            } => {
                put_descriptor(buf, desc::MODIFIED);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.opt(buf, *delivery_failed, put_bool);
                w.opt(buf, *undeliverable_here, put_bool);
                w.opt(buf, message_annotations.as_ref(), put_fields);
                w.finish(buf);
            }
        }
    }
}

/// A `source` terminus (messaging 3.5.3).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Source {
    pub address: Option<String>,
    /// terminus-durability: 0 none, 1 configuration, 2 unsettled-state.
    pub durable: u32,
    /// `None` means the default, `session-end`.
    pub expiry_policy: Option<Symbol>,
    /// Seconds.
    pub timeout: u32,
    pub dynamic: bool,
    pub dynamic_node_properties: Option<Fields>,
    pub distribution_mode: Option<Symbol>,
    pub filter: Option<Vec<(Symbol, Value)>>,
    pub default_outcome: Option<DeliveryState>,
    pub outcomes: Option<Vec<Symbol>>,
    pub capabilities: Option<Vec<Symbol>>,
}

impl Source {
    pub(crate) fn decode_of(dec: &mut Decoder<'_>, code: u8) -> Result<Self> {
        expect_descriptor(described_code(dec, code)?, desc::SOURCE)?;
        let mut r = FieldReader::new(dec)?;
        Ok(Source {
            address: r.address()?,
            durable: r.uint()?.unwrap_or(0),
            expiry_policy: r.symbol()?,
            timeout: r.uint()?.unwrap_or(0),
            dynamic: r.bool()?.unwrap_or(false),
            dynamic_node_properties: r.fields()?,
            distribution_mode: r.symbol()?,
            filter: r.fields()?,
            default_outcome: r.delivery_state()?,
            outcomes: r.symbols()?,
            capabilities: r.symbols()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        put_descriptor(buf, desc::SOURCE);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.address.as_deref(), put_string);
        w.opt(buf, nonzero(self.durable), put_uint);
        w.opt(buf, self.expiry_policy.as_ref(), |b, s| {
            put_symbol(b, s.as_str())
        });
        w.opt(buf, nonzero(self.timeout), put_uint);
        w.flag(buf, self.dynamic);
        w.opt(buf, self.dynamic_node_properties.as_ref(), put_fields);
        w.opt(buf, self.distribution_mode.as_ref(), |b, s| {
            put_symbol(b, s.as_str())
        });
        w.opt(buf, self.filter.as_ref(), put_fields);
        w.opt(buf, self.default_outcome.as_ref(), |b, s| s.encode(b));
        w.opt(buf, self.outcomes.as_deref(), put_symbols);
        w.opt(buf, self.capabilities.as_deref(), put_symbols);
        w.finish(buf);
    }
}

/// A `target` terminus (messaging 3.5.4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Target {
    pub address: Option<String>,
    pub durable: u32,
    pub expiry_policy: Option<Symbol>,
    pub timeout: u32,
    pub dynamic: bool,
    pub dynamic_node_properties: Option<Fields>,
    pub capabilities: Option<Vec<Symbol>>,
    /// This is a transaction `coordinator` (transactions 4.5.1), not a node: only `capabilities` is
    /// meaningful. It decodes (rather than failing the whole frame) so that a peer can refuse just
    /// that link with `amqp:not-implemented`.
    pub coordinator: bool,
}

impl Target {
    pub(crate) fn decode_of(dec: &mut Decoder<'_>, code: u8) -> Result<Self> {
        match described_code(dec, code)? {
            desc::TARGET => {}
            desc::COORDINATOR => {
                let mut r = FieldReader::new(dec)?;
                return Ok(Target {
                    capabilities: r.symbols()?,
                    coordinator: true,
                    ..Target::default()
                });
            }
            other => return Err(DecodeError::UnknownDescriptor(Descriptor::Code(other))),
        }
        let mut r = FieldReader::new(dec)?;
        Ok(Target {
            coordinator: false,
            address: r.address()?,
            durable: r.uint()?.unwrap_or(0),
            expiry_policy: r.symbol()?,
            timeout: r.uint()?.unwrap_or(0),
            dynamic: r.bool()?.unwrap_or(false),
            dynamic_node_properties: r.fields()?,
            capabilities: r.symbols()?,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        if self.coordinator {
            put_descriptor(buf, desc::COORDINATOR);
            let mut w = CompoundWriter::begin(buf, LIST32);
            w.opt(buf, self.capabilities.as_deref(), put_symbols);
            w.finish(buf);
            return;
        }
        put_descriptor(buf, desc::TARGET);
        let mut w = CompoundWriter::begin(buf, LIST32);
        w.opt(buf, self.address.as_deref(), put_string);
        w.opt(buf, nonzero(self.durable), put_uint);
        w.opt(buf, self.expiry_policy.as_ref(), |b, s| {
            put_symbol(b, s.as_str())
        });
        w.opt(buf, nonzero(self.timeout), put_uint);
        w.flag(buf, self.dynamic);
        w.opt(buf, self.dynamic_node_properties.as_ref(), put_fields);
        w.opt(buf, self.capabilities.as_deref(), put_symbols);
        w.finish(buf);
    }
}

/// Fields whose default is 0 are written as null (= default) to keep encodings short.
pub(crate) fn nonzero(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

#[cfg(test)]
mod tests;
