//! SASL frame bodies (security 5.3.3), descriptor codes 0x40..0x44.

use bytes::{Bytes, BytesMut};

use crate::codec::code::LIST32;
use crate::codec::{
    descriptor as desc, put_binary, put_descriptor, put_string, put_symbol, put_symbols, put_ubyte,
    CompoundWriter, Decoder, FieldReader,
};
use crate::error::DecodeError;
use crate::types::{Descriptor, Symbol};

type Result<T> = std::result::Result<T, DecodeError>;

/// `sasl-mechanisms`: the server's offer.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SaslMechanisms {
    pub mechanisms: Vec<Symbol>,
}

/// `sasl-init`: the client's choice. `initial_response` is a zero-copy slice of the frame.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SaslInit {
    pub mechanism: Symbol,
    pub initial_response: Option<Bytes>,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SaslChallenge {
    pub challenge: Bytes,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SaslResponse {
    pub response: Bytes,
}

/// `sasl-code` (ubyte 0..4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaslCode {
    /// Authentication succeeded.
    Ok,
    /// Failed: bad credentials.
    Auth,
    /// Failed: system error.
    Sys,
    /// Failed: permanent system error.
    SysPerm,
    /// Failed: transient system error.
    SysTemp,
}

impl SaslCode {
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => SaslCode::Ok,
            1 => SaslCode::Auth,
            2 => SaslCode::Sys,
            3 => SaslCode::SysPerm,
            4 => SaslCode::SysTemp,
            _ => return Err(DecodeError::InvalidValue("sasl-code")),
        })
    }

    pub fn as_u8(self) -> u8 {
        match self {
            SaslCode::Ok => 0,
            SaslCode::Auth => 1,
            SaslCode::Sys => 2,
            SaslCode::SysPerm => 3,
            SaslCode::SysTemp => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SaslOutcome {
    pub code: SaslCode,
    pub additional_data: Option<Bytes>,
}

/// Any SASL frame body.
#[derive(Clone, Debug, PartialEq)]
pub enum SaslFrame {
    Mechanisms(SaslMechanisms),
    Init(SaslInit),
    Challenge(SaslChallenge),
    Response(SaslResponse),
    Outcome(SaslOutcome),
}

impl SaslFrame {
    /// Decodes one described SASL body from the front of `dec`.
    pub fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        let code = dec.described_header()?;
        if !(desc::SASL_MECHANISMS..=desc::SASL_OUTCOME).contains(&code) {
            return Err(DecodeError::UnknownDescriptor(Descriptor::Code(code)));
        }
        let mut r = FieldReader::new(dec)?;
        Ok(match code {
            desc::SASL_MECHANISMS => SaslFrame::Mechanisms(SaslMechanisms {
                mechanisms: r
                    .symbols()?
                    .ok_or(DecodeError::MissingField("sasl-server-mechanisms"))?,
            }),
            desc::SASL_INIT => SaslFrame::Init(SaslInit {
                mechanism: r.symbol()?.ok_or(DecodeError::MissingField("mechanism"))?,
                initial_response: r.binary()?,
                hostname: r.string()?,
            }),
            desc::SASL_CHALLENGE => SaslFrame::Challenge(SaslChallenge {
                challenge: r.binary()?.ok_or(DecodeError::MissingField("challenge"))?,
            }),
            desc::SASL_RESPONSE => SaslFrame::Response(SaslResponse {
                response: r.binary()?.ok_or(DecodeError::MissingField("response"))?,
            }),
            _ => SaslFrame::Outcome(SaslOutcome {
                code: SaslCode::from_u8(r.ubyte()?.ok_or(DecodeError::MissingField("code"))?)?,
                additional_data: r.binary()?,
            }),
        })
    }

    /// Appends the described list encoding.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            SaslFrame::Mechanisms(m) => {
                put_descriptor(buf, desc::SASL_MECHANISMS);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_symbols(b, &m.mechanisms));
                w.finish(buf);
            }
            SaslFrame::Init(i) => {
                put_descriptor(buf, desc::SASL_INIT);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_symbol(b, i.mechanism.as_str()));
                w.opt(buf, i.initial_response.as_deref(), put_binary);
                w.opt(buf, i.hostname.as_deref(), put_string);
                w.finish(buf);
            }
            SaslFrame::Challenge(c) => {
                put_descriptor(buf, desc::SASL_CHALLENGE);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_binary(b, &c.challenge));
                w.finish(buf);
            }
            SaslFrame::Response(r) => {
                put_descriptor(buf, desc::SASL_RESPONSE);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_binary(b, &r.response));
                w.finish(buf);
            }
            SaslFrame::Outcome(o) => {
                put_descriptor(buf, desc::SASL_OUTCOME);
                let mut w = CompoundWriter::begin(buf, LIST32);
                w.item(buf, |b| put_ubyte(b, o.code.as_u8()));
                w.opt(buf, o.additional_data.as_deref(), put_binary);
                w.finish(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests;
