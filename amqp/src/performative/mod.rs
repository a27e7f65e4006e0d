//! The nine transport performatives (transport 2.7), descriptor codes 0x10..0x18.
//!
//! Each is a described list. Decoding treats absent and `null` fields as their defaults and
//! ignores unknown trailing fields; encoding writes defaults as `null` and omits trailing nulls.

mod connection;
mod delivery;
mod link;

pub use connection::{Begin, Close, End, Open};
pub use delivery::{Disposition, Transfer};
pub use link::{Attach, Detach, Flow};

use bytes::BytesMut;

use crate::codec::{descriptor as desc, Decoder, FieldReader};
use crate::error::DecodeError;
use crate::types::Descriptor;

/// Any performative.
#[derive(Clone, Debug, PartialEq)]
pub enum Performative {
    Open(Open),
    Begin(Begin),
    Attach(Attach),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(End),
    Close(Close),
}

impl Performative {
    /// Decodes one described performative from the front of `dec`.
    pub fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let code = dec.described_header()?;
        if !(desc::OPEN..=desc::CLOSE).contains(&code) {
            return Err(DecodeError::UnknownDescriptor(Descriptor::Code(code)));
        }
        let mut r = FieldReader::new(dec)?;
        Ok(match code {
            desc::OPEN => Performative::Open(Open::decode(&mut r)?),
            desc::BEGIN => Performative::Begin(Begin::decode(&mut r)?),
            desc::ATTACH => Performative::Attach(Attach::decode(&mut r)?),
            desc::FLOW => Performative::Flow(Flow::decode(&mut r)?),
            desc::TRANSFER => Performative::Transfer(Transfer::decode(&mut r)?),
            desc::DISPOSITION => Performative::Disposition(Disposition::decode(&mut r)?),
            desc::DETACH => Performative::Detach(Detach::decode(&mut r)?),
            desc::END => Performative::End(End::decode(&mut r)?),
            _ => Performative::Close(Close::decode(&mut r)?),
        })
    }

    /// Appends the described list encoding.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Performative::Open(p) => p.encode(buf),
            Performative::Begin(p) => p.encode(buf),
            Performative::Attach(p) => p.encode(buf),
            Performative::Flow(p) => p.encode(buf),
            Performative::Transfer(p) => p.encode(buf),
            Performative::Disposition(p) => p.encode(buf),
            Performative::Detach(p) => p.encode(buf),
            Performative::End(p) => p.encode(buf),
            Performative::Close(p) => p.encode(buf),
        }
    }

    /// The performative's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Performative::Open(_) => "open",
            Performative::Begin(_) => "begin",
            Performative::Attach(_) => "attach",
            Performative::Flow(_) => "flow",
            Performative::Transfer(_) => "transfer",
            Performative::Disposition(_) => "disposition",
            Performative::Detach(_) => "detach",
            Performative::End(_) => "end",
            Performative::Close(_) => "close",
        }
    }
}

macro_rules! from_variant {
    ($($t:ident),*) => {$(
        impl From<$t> for Performative {
            fn from(p: $t) -> Self {
                Performative::$t(p)
            }
        }
    )*};
}
from_variant!(
    Open,
    Begin,
    Attach,
    Flow,
    Transfer,
    Disposition,
    Detach,
    End,
    Close
);

#[cfg(test)]
mod tests;
