//! The [`Decoder`] cursor: bounds-checked reads, generic values, skipping by size.

use bytes::Bytes;

use super::code::*;
use super::descriptor;
use crate::error::DecodeError;
use crate::types::{Descriptor, Symbol, Value};

type Result<T> = std::result::Result<T, DecodeError>;

/// Maximum nesting of compound/described values. Generic values are decoded recursively, so this
/// bound is what keeps a hostile input from overflowing the stack.
pub const MAX_DEPTH: u32 = 32;

/// A cursor over encoded AMQP data.
///
/// When built with [`Decoder::from_bytes`], binary values are returned as `Bytes::slice`s of the
/// original buffer (zero copy); when built from a plain slice they are copied.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The `Bytes` that `buf` lives in, at offset `base`, for zero-copy slicing.
    owner: Option<&'a Bytes>,
    base: usize,
    depth: u32,
}

impl<'a> Decoder<'a> {
    /// A decoder over a plain slice (binary values are copied out).
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder {
            buf,
            pos: 0,
            owner: None,
            base: 0,
            depth: 0,
        }
    }

    /// A decoder whose binary values are zero-copy slices of `bytes`.
    pub fn from_bytes(bytes: &'a Bytes) -> Self {
        Decoder {
            buf: bytes.as_ref(),
            pos: 0,
            owner: Some(bytes),
            base: 0,
            depth: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread input.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The unread input as `Bytes` (a slice of the owner when there is one).
    pub fn rest_bytes(&self) -> Bytes {
        let start = self.pos.min(self.buf.len());
        self.bytes_at(start, self.buf.len())
    }

    fn bytes_at(&self, start: usize, end: usize) -> Bytes {
        match self.owner {
            // Invariant: buf == owner[base..base + buf.len()], and start <= end <= buf.len().
            Some(owner) => owner.slice(self.base + start..self.base + end),
            None => Bytes::copy_from_slice(self.buf.get(start..end).unwrap_or(&[])),
        }
    }

    /// Consumes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Consumes `n` bytes as `Bytes` (zero copy when there is an owner).
    pub fn take_bytes(&mut self, n: usize) -> Result<Bytes> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.bytes_at(start, start + n))
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| DecodeError::Truncated)
    }

    pub fn peek_u8(&self) -> Result<u8> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    pub fn read_u8(&mut self) -> Result<u8> {
        let b = self.peek_u8()?;
        self.pos += 1;
        Ok(b)
    }

    pub fn read_u16(&mut self) -> Result<u16> {
        self.take_array().map(u16::from_be_bytes)
    }

    pub fn read_u32(&mut self) -> Result<u32> {
        self.take_array().map(u32::from_be_bytes)
    }

    pub fn read_u64(&mut self) -> Result<u64> {
        self.take_array().map(u64::from_be_bytes)
    }

    /// Splits off the next `n` bytes as a child decoder one nesting level deeper.
    fn sub(&mut self, n: usize) -> Result<Decoder<'a>> {
        let start = self.pos;
        let buf = self.take(n)?;
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(Decoder {
            buf,
            pos: 0,
            owner: self.owner,
            base: self.base + start,
            depth,
        })
    }

    fn read_size(&mut self, wide: bool) -> Result<usize> {
        if wide {
            Ok(self.read_u32()? as usize)
        } else {
            Ok(self.read_u8()? as usize)
        }
    }

    fn read_variable(&mut self, code: u8) -> Result<&'a [u8]> {
        let n = self.read_size(code & 0xf0 == 0xb0)?;
        self.take(n)
    }

    /// Reads a compound (list/map) header for `code`: the element count and a child decoder over
    /// the elements. The count is checked against the size (every element takes at least one
    /// byte) so that callers may pre-allocate `count` slots safely.
    pub fn compound(&mut self, code: u8) -> Result<(u32, Decoder<'a>)> {
        let wide = match code {
            LIST0 => return Ok((0, self.sub(0)?)),
            LIST8 | MAP8 => false,
            LIST32 | MAP32 => true,
            _ => {
                return Err(DecodeError::UnexpectedType {
                    expected: "list or map",
                    found: code,
                })
            }
        };
        let size = self.read_size(wide)?;
        let mut sub = self.sub(size)?;
        let count = if wide {
            sub.read_u32()?
        } else {
            u32::from(sub.read_u8()?)
        };
        if count as usize > sub.remaining() {
            return Err(DecodeError::InvalidValue(
                "element count exceeds compound size",
            ));
        }
        Ok((count, sub))
    }

    /// Reads an array header for `code`: count, element descriptor (if described), element
    /// format code and a child decoder over the element bodies.
    pub fn array(&mut self, code: u8) -> Result<(u32, Option<Value>, u8, Decoder<'a>)> {
        let wide = match code {
            ARRAY8 => false,
            ARRAY32 => true,
            _ => {
                return Err(DecodeError::UnexpectedType {
                    expected: "array",
                    found: code,
                })
            }
        };
        let size = self.read_size(wide)?;
        let mut sub = self.sub(size)?;
        let count = if wide {
            sub.read_u32()?
        } else {
            u32::from(sub.read_u8()?)
        };
        let mut elem = sub.read_u8()?;
        let desc = if elem == DESCRIBED {
            let d = sub.read_value()?;
            elem = sub.read_u8()?;
            if elem == DESCRIBED {
                return Err(DecodeError::Unsupported("nested described array elements"));
            }
            Some(d)
        } else {
            None
        };
        // Zero-width elements (null, true, uint0...) would let a tiny array claim billions of
        // values; bounding the count by the byte size keeps memory proportional to input.
        if count as usize > sub.remaining() {
            return Err(DecodeError::InvalidValue("array count exceeds array size"));
        }
        Ok((count, desc, elem, sub))
    }

    /// Decodes any value.
    pub fn read_value(&mut self) -> Result<Value> {
        let code = self.read_u8()?;
        self.read_value_of(code)
    }

    /// Decodes a value whose format code has already been read.
    pub fn read_value_of(&mut self, code: u8) -> Result<Value> {
        Ok(match code {
            DESCRIBED => {
                self.enter()?;
                let d = self.read_value();
                let v = d.and_then(|d| Ok((d, self.read_value()?)));
                self.depth -= 1;
                let (d, v) = v?;
                Value::Described(Box::new(d), Box::new(v))
            }
            NULL => Value::Null,
            TRUE => Value::Bool(true),
            FALSE => Value::Bool(false),
            BOOLEAN => Value::Bool(self.bool_of(code)?),
            UBYTE => Value::Ubyte(self.read_u8()?),
            USHORT => Value::Ushort(self.read_u16()?),
            UINT | SMALLUINT | UINT0 => Value::Uint(self.uint_of(code)?),
            ULONG | SMALLULONG | ULONG0 => Value::Ulong(self.ulong_of(code)?),
            BYTE => Value::Byte(self.read_u8()? as i8),
            SHORT => Value::Short(self.read_u16()? as i16),
            INT => Value::Int(self.read_u32()? as i32),
            SMALLINT => Value::Int(i32::from(self.read_u8()? as i8)),
            LONG => Value::Long(self.read_u64()? as i64),
            SMALLLONG => Value::Long(i64::from(self.read_u8()? as i8)),
            FLOAT => Value::Float(f32::from_bits(self.read_u32()?)),
            DOUBLE => Value::Double(f64::from_bits(self.read_u64()?)),
            DECIMAL32 => Value::Decimal32(self.take_array()?),
            DECIMAL64 => Value::Decimal64(self.take_array()?),
            DECIMAL128 => Value::Decimal128(self.take_array()?),
            CHAR => Value::Char(
                char::from_u32(self.read_u32()?).ok_or(DecodeError::InvalidValue("char"))?,
            ),
            TIMESTAMP => Value::Timestamp(self.read_u64()? as i64),
            UUID => Value::Uuid(self.take_array()?),
            VBIN8 | VBIN32 => Value::Binary(self.binary_of(code)?),
            STR8 | STR32 => Value::String(self.string_of(code)?),
            SYM8 | SYM32 => Value::Symbol(self.symbol_of(code)?),
            LIST0 | LIST8 | LIST32 => {
                let (count, mut sub) = self.compound(code)?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(sub.read_value()?);
                }
                Value::List(items)
            }
            MAP8 | MAP32 => {
                let (count, mut sub) = self.compound(code)?;
                if count % 2 != 0 {
                    return Err(DecodeError::InvalidValue("map with an odd element count"));
                }
                let mut pairs = Vec::with_capacity(count as usize / 2);
                for _ in 0..count / 2 {
                    let k = sub.read_value()?;
                    let v = sub.read_value()?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            ARRAY8 | ARRAY32 => {
                let (count, desc, elem, mut sub) = self.array(code)?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let v = sub.read_value_of(elem)?;
                    items.push(match &desc {
                        Some(d) => Value::Described(Box::new(d.clone()), Box::new(v)),
                        None => v,
                    });
                }
                Value::Array(items)
            }
            _ => return Err(DecodeError::InvalidConstructor(code)),
        })
    }

    fn enter(&mut self) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    /// Skips one value using its encoded size, without decoding compound contents.
    pub fn skip_value(&mut self) -> Result<()> {
        let code = self.read_u8()?;
        self.skip_value_of(code)
    }

    /// Skips a value whose format code has already been read.
    pub fn skip_value_of(&mut self, code: u8) -> Result<()> {
        let width = match code {
            DESCRIBED => {
                self.enter()?;
                let r = self.skip_value().and_then(|()| self.skip_value());
                self.depth -= 1;
                return r;
            }
            NULL | TRUE | FALSE | UINT0 | ULONG0 | LIST0 => 0,
            UBYTE | BYTE | SMALLUINT | SMALLULONG | SMALLINT | SMALLLONG | BOOLEAN => 1,
            USHORT | SHORT => 2,
            UINT | INT | FLOAT | CHAR | DECIMAL32 => 4,
            ULONG | LONG | DOUBLE | TIMESTAMP | DECIMAL64 => 8,
            DECIMAL128 | UUID => 16,
            VBIN8 | STR8 | SYM8 | LIST8 | MAP8 | ARRAY8 => self.read_size(false)?,
            VBIN32 | STR32 | SYM32 | LIST32 | MAP32 | ARRAY32 => self.read_size(true)?,
            _ => return Err(DecodeError::InvalidConstructor(code)),
        };
        self.take(width).map(|_| ())
    }

    // ---- typed reads, given an already-read format code ----

    pub fn bool_of(&mut self, code: u8) -> Result<bool> {
        match code {
            TRUE => Ok(true),
            FALSE => Ok(false),
            BOOLEAN => match self.read_u8()? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(DecodeError::InvalidValue("boolean")),
            },
            _ => Err(unexpected("boolean", code)),
        }
    }

    pub fn ubyte_of(&mut self, code: u8) -> Result<u8> {
        match code {
            UBYTE => self.read_u8(),
            _ => Err(unexpected("ubyte", code)),
        }
    }

    /// Accepts `ubyte` too: it widens losslessly and some peers use it.
    pub fn ushort_of(&mut self, code: u8) -> Result<u16> {
        match code {
            USHORT => self.read_u16(),
            UBYTE => Ok(u16::from(self.read_u8()?)),
            _ => Err(unexpected("ushort", code)),
        }
    }

    /// Accepts all `uint` encodings, and narrower unsigned types (lossless widening).
    pub fn uint_of(&mut self, code: u8) -> Result<u32> {
        match code {
            UINT => self.read_u32(),
            SMALLUINT | UBYTE => Ok(u32::from(self.read_u8()?)),
            UINT0 => Ok(0),
            USHORT => Ok(u32::from(self.read_u16()?)),
            _ => Err(unexpected("uint", code)),
        }
    }

    /// Accepts all `ulong` encodings, and narrower unsigned types (lossless widening).
    pub fn ulong_of(&mut self, code: u8) -> Result<u64> {
        match code {
            ULONG => self.read_u64(),
            SMALLULONG => Ok(u64::from(self.read_u8()?)),
            ULONG0 => Ok(0),
            UINT | SMALLUINT | UINT0 | UBYTE | USHORT => self.uint_of(code).map(u64::from),
            _ => Err(unexpected("ulong", code)),
        }
    }

    pub fn timestamp_of(&mut self, code: u8) -> Result<i64> {
        match code {
            TIMESTAMP => Ok(self.read_u64()? as i64),
            _ => Err(unexpected("timestamp", code)),
        }
    }

    pub fn binary_of(&mut self, code: u8) -> Result<Bytes> {
        match code {
            VBIN8 | VBIN32 => {
                let n = self.read_size(code == VBIN32)?;
                self.take_bytes(n)
            }
            _ => Err(unexpected("binary", code)),
        }
    }

    /// A `string` borrowed from the input (no allocation).
    pub fn str_of(&mut self, code: u8) -> Result<&'a str> {
        match code {
            STR8 | STR32 => {
                std::str::from_utf8(self.read_variable(code)?).map_err(|_| DecodeError::InvalidUtf8)
            }
            _ => Err(unexpected("string", code)),
        }
    }

    pub fn string_of(&mut self, code: u8) -> Result<String> {
        self.str_of(code).map(str::to_owned)
    }

    /// A `symbol`'s bytes borrowed from the input (no allocation).
    pub fn symbol_bytes_of(&mut self, code: u8) -> Result<&'a [u8]> {
        match code {
            SYM8 | SYM32 => self.read_variable(code),
            _ => Err(unexpected("symbol", code)),
        }
    }

    pub fn symbol_of(&mut self, code: u8) -> Result<Symbol> {
        let b = self.symbol_bytes_of(code)?;
        std::str::from_utf8(b)
            .map(|s| Symbol(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    /// An address (`*` address-string in the spec): a string, or a symbol as some peers send.
    pub fn address_of(&mut self, code: u8) -> Result<String> {
        match code {
            STR8 | STR32 => self.string_of(code),
            SYM8 | SYM32 => self.symbol_of(code).map(|s| s.0),
            _ => Err(unexpected("address", code)),
        }
    }

    /// Reads the descriptor of a described value (after its 0x00 constructor), mapping symbolic
    /// descriptors of known types to their numeric codes. Unknown symbols are reported as
    /// `UnknownDescriptor`, since nothing in this crate matches on them.
    pub fn descriptor(&mut self) -> Result<u64> {
        let code = self.read_u8()?;
        match code {
            ULONG | SMALLULONG | ULONG0 => self.ulong_of(code),
            SYM8 | SYM32 => {
                let s = self.read_variable(code)?;
                descriptor::from_symbol(s).ok_or_else(|| {
                    DecodeError::UnknownDescriptor(Descriptor::Symbol(Symbol(
                        String::from_utf8_lossy(s).into_owned(),
                    )))
                })
            }
            _ => Err(unexpected("descriptor", code)),
        }
    }

    /// Reads `0x00 <descriptor>` and returns the descriptor code.
    pub fn described_header(&mut self) -> Result<u64> {
        let code = self.read_u8()?;
        if code != DESCRIBED {
            return Err(unexpected("described type", code));
        }
        self.descriptor()
    }
}

pub(crate) fn unexpected(expected: &'static str, found: u8) -> DecodeError {
    DecodeError::UnexpectedType { expected, found }
}
