//! [`FieldReader`]: typed, positional access to the fields of a described list.

use bytes::Bytes;

use super::code::*;
use super::decode::{unexpected, Decoder};
use crate::definitions::{AmqpError, DeliveryState};
use crate::error::DecodeError;
use crate::types::{Fields, Symbol, Value};

type Result<T> = std::result::Result<T, DecodeError>;

/// Reads the fields of a list one by one. A field that is absent (the list ended) or `null`
/// reads as `None`, which is how the spec's defaults and trailing-field omission work. Fields
/// past the ones a caller asks for are simply never read (unknown trailing fields are ignored).
#[derive(Debug)]
pub struct FieldReader<'a> {
    dec: Decoder<'a>,
    remaining: u32,
}

impl<'a> FieldReader<'a> {
    /// Reads a list header (list0/list8/list32) from `dec`.
    pub fn new(dec: &mut Decoder<'a>) -> Result<Self> {
        let code = dec.read_u8()?;
        Self::of(dec, code)
    }

    /// Like [`FieldReader::new`] when the list's format code has already been read.
    pub fn of(dec: &mut Decoder<'a>, code: u8) -> Result<Self> {
        match code {
            LIST0 | LIST8 | LIST32 => {
                let (remaining, dec) = dec.compound(code)?;
                Ok(FieldReader { dec, remaining })
            }
            _ => Err(unexpected("list", code)),
        }
    }

    /// Fields not read yet.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Next field's format code, or `None` for absent/null. The caller must consume the body.
    fn next_code(&mut self) -> Result<Option<u8>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        match self.dec.read_u8()? {
            NULL => Ok(None),
            c => Ok(Some(c)),
        }
    }

    fn next<T>(&mut self, f: impl FnOnce(&mut Decoder<'a>, u8) -> Result<T>) -> Result<Option<T>> {
        match self.next_code()? {
            None => Ok(None),
            Some(c) => f(&mut self.dec, c).map(Some),
        }
    }

    pub fn skip(&mut self) -> Result<()> {
        self.next(|d, c| d.skip_value_of(c)).map(|_| ())
    }

    pub fn bool(&mut self) -> Result<Option<bool>> {
        self.next(Decoder::bool_of)
    }

    pub fn ubyte(&mut self) -> Result<Option<u8>> {
        self.next(Decoder::ubyte_of)
    }

    pub fn ushort(&mut self) -> Result<Option<u16>> {
        self.next(Decoder::ushort_of)
    }

    pub fn uint(&mut self) -> Result<Option<u32>> {
        self.next(Decoder::uint_of)
    }

    pub fn ulong(&mut self) -> Result<Option<u64>> {
        self.next(Decoder::ulong_of)
    }

    pub fn timestamp(&mut self) -> Result<Option<i64>> {
        self.next(Decoder::timestamp_of)
    }

    pub fn binary(&mut self) -> Result<Option<Bytes>> {
        self.next(Decoder::binary_of)
    }

    pub fn string(&mut self) -> Result<Option<String>> {
        self.next(Decoder::string_of)
    }

    pub fn symbol(&mut self) -> Result<Option<Symbol>> {
        self.next(Decoder::symbol_of)
    }

    pub fn address(&mut self) -> Result<Option<String>> {
        self.next(Decoder::address_of)
    }

    pub fn value(&mut self) -> Result<Option<Value>> {
        self.next(Decoder::read_value_of)
    }

    /// A `multiple="true"` symbol field: a single symbol or an array of symbols.
    pub fn symbols(&mut self) -> Result<Option<Vec<Symbol>>> {
        self.next(read_symbols)
    }

    /// A `fields` map (symbol keys, any values).
    pub fn fields(&mut self) -> Result<Option<Fields>> {
        self.next(read_fields)
    }

    /// An `error` (described `amqp:error:list`).
    pub fn error(&mut self) -> Result<Option<AmqpError>> {
        self.next(AmqpError::decode_of)
    }

    /// A `delivery-state` (received, accepted, rejected, released, modified).
    pub fn delivery_state(&mut self) -> Result<Option<DeliveryState>> {
        self.next(DeliveryState::decode_of)
    }

    /// Gives access to the underlying decoder for custom field types. The caller takes one field.
    pub fn custom<T>(
        &mut self,
        f: impl FnOnce(&mut Decoder<'a>, u8) -> Result<T>,
    ) -> Result<Option<T>> {
        self.next(f)
    }
}

/// A symbol or an array of symbols (the spec's `multiple="true"` encoding).
pub(crate) fn read_symbols(dec: &mut Decoder<'_>, code: u8) -> Result<Vec<Symbol>> {
    match code {
        SYM8 | SYM32 => Ok(vec![dec.symbol_of(code)?]),
        ARRAY8 | ARRAY32 => {
            let (count, desc, elem, mut sub) = dec.array(code)?;
            if desc.is_some() {
                return Err(DecodeError::InvalidValue("described symbol array"));
            }
            let mut out = Vec::with_capacity(count as usize);
            for _ in 0..count {
                out.push(sub.symbol_of(elem)?);
            }
            Ok(out)
        }
        _ => Err(unexpected("symbol or symbol array", code)),
    }
}

/// A map whose keys must all be symbols.
pub(crate) fn read_fields(dec: &mut Decoder<'_>, code: u8) -> Result<Fields> {
    let (count, mut sub) = match code {
        MAP8 | MAP32 => dec.compound(code)?,
        _ => return Err(unexpected("map", code)),
    };
    if count % 2 != 0 {
        return Err(DecodeError::InvalidValue("map with an odd element count"));
    }
    let mut out = Vec::with_capacity(count as usize / 2);
    for _ in 0..count / 2 {
        let kc = sub.read_u8()?;
        let k = sub.symbol_of(kc)?;
        let v = sub.read_value()?;
        out.push((k, v));
    }
    Ok(out)
}
