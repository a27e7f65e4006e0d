//! Encoding: compact primitive encodings and an in-place compound writer.

use bytes::{BufMut, BytesMut};

use super::code::*;
use crate::types::{Fields, Symbol, Value};

pub fn put_null(buf: &mut BytesMut) {
    buf.put_u8(NULL);
}

pub fn put_bool(buf: &mut BytesMut, v: bool) {
    buf.put_u8(if v { TRUE } else { FALSE });
}

pub fn put_ubyte(buf: &mut BytesMut, v: u8) {
    buf.put_slice(&[UBYTE, v]);
}

pub fn put_ushort(buf: &mut BytesMut, v: u16) {
    buf.put_u8(USHORT);
    buf.put_u16(v);
}

/// `uint0`, `smalluint` or `uint`, whichever is smallest.
pub fn put_uint(buf: &mut BytesMut, v: u32) {
    match v {
        0 => buf.put_u8(UINT0),
        1..=255 => buf.put_slice(&[SMALLUINT, v as u8]),
        _ => {
            buf.put_u8(UINT);
            buf.put_u32(v);
        }
    }
}

/// `ulong0`, `smallulong` or `ulong`, whichever is smallest.
pub fn put_ulong(buf: &mut BytesMut, v: u64) {
    match v {
        0 => buf.put_u8(ULONG0),
        1..=255 => buf.put_slice(&[SMALLULONG, v as u8]),
        _ => {
            buf.put_u8(ULONG);
            buf.put_u64(v);
        }
    }
}

pub fn put_timestamp(buf: &mut BytesMut, v: i64) {
    buf.put_u8(TIMESTAMP);
    buf.put_i64(v);
}

fn put_variable(buf: &mut BytesMut, code8: u8, code32: u8, data: &[u8]) {
    if data.len() <= 255 {
        buf.put_slice(&[code8, data.len() as u8]);
    } else {
        buf.put_u8(code32);
        buf.put_u32(data.len() as u32);
    }
    buf.put_slice(data);
}

pub fn put_binary(buf: &mut BytesMut, v: &[u8]) {
    put_variable(buf, VBIN8, VBIN32, v);
}

pub fn put_string(buf: &mut BytesMut, v: &str) {
    put_variable(buf, STR8, STR32, v.as_bytes());
}

pub fn put_symbol(buf: &mut BytesMut, v: &str) {
    put_variable(buf, SYM8, SYM32, v.as_bytes());
}

/// The `0x00` constructor and a numeric descriptor (as `smallulong` when it fits).
pub fn put_descriptor(buf: &mut BytesMut, code: u64) {
    buf.put_u8(DESCRIBED);
    if code <= 0xff {
        buf.put_slice(&[SMALLULONG, code as u8]);
    } else {
        buf.put_u8(ULONG);
        buf.put_u64(code);
    }
}

/// A `multiple="true"` symbol field, always as an array (the form every peer accepts).
pub fn put_symbols(buf: &mut BytesMut, syms: &[Symbol]) {
    let wide = syms.iter().any(|s| s.0.len() > 255);
    let mut w = CompoundWriter::begin(buf, ARRAY32);
    w.raw(buf, |b| b.put_u8(if wide { SYM32 } else { SYM8 }));
    for s in syms {
        w.item(buf, |b| put_sized(b, wide, s.0.as_bytes()));
    }
    w.finish(buf);
}

/// A `fields` map.
pub fn put_fields(buf: &mut BytesMut, fields: &Fields) {
    let mut w = CompoundWriter::begin(buf, MAP32);
    for (k, v) in fields {
        w.item(buf, |b| put_symbol(b, k.as_str()));
        w.item(buf, |b| put_value(b, v));
    }
    w.finish(buf);
}

/// Encodes any value in its most compact form.
pub fn put_value(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => put_null(buf),
        Value::Bool(b) => put_bool(buf, *b),
        Value::Ubyte(x) => put_ubyte(buf, *x),
        Value::Ushort(x) => put_ushort(buf, *x),
        Value::Uint(x) => put_uint(buf, *x),
        Value::Ulong(x) => put_ulong(buf, *x),
        Value::Byte(x) => buf.put_slice(&[BYTE, *x as u8]),
        Value::Short(x) => {
            buf.put_u8(SHORT);
            buf.put_i16(*x);
        }
        Value::Int(x) => match i8::try_from(*x) {
            Ok(small) => buf.put_slice(&[SMALLINT, small as u8]),
            Err(_) => {
                buf.put_u8(INT);
                buf.put_i32(*x);
            }
        },
        Value::Long(x) => match i8::try_from(*x) {
            Ok(small) => buf.put_slice(&[SMALLLONG, small as u8]),
            Err(_) => {
                buf.put_u8(LONG);
                buf.put_i64(*x);
            }
        },
        Value::Binary(b) => put_binary(buf, b),
        Value::String(s) => put_string(buf, s),
        Value::Symbol(s) => put_symbol(buf, s.as_str()),
        Value::List(items) => {
            let mut w = CompoundWriter::begin(buf, LIST32);
            for item in items {
                w.item(buf, |b| put_value(b, item));
            }
            w.finish(buf);
        }
        Value::Map(pairs) => {
            let mut w = CompoundWriter::begin(buf, MAP32);
            for (k, v) in pairs {
                w.item(buf, |b| put_value(b, k));
                w.item(buf, |b| put_value(b, v));
            }
            w.finish(buf);
        }
        Value::Array(items) => {
            let mut w = CompoundWriter::begin(buf, ARRAY32);
            let ctor = ArrayCtor::of(items);
            w.raw(buf, |b| ctor.put(b));
            for item in items {
                w.item(buf, |b| ctor.put_body(b, item));
            }
            w.finish(buf);
        }
        Value::Described(d, inner) => {
            buf.put_u8(DESCRIBED);
            put_value(buf, d);
            put_value(buf, inner);
        }
        // The remaining kinds have a single fixed-width encoding: constructor + body.
        other => {
            let code = fixed_code(other).unwrap_or(NULL);
            buf.put_u8(code);
            put_body(buf, code, other);
        }
    }
}

fn put_sized(buf: &mut BytesMut, wide: bool, data: &[u8]) {
    if wide {
        buf.put_u32(data.len() as u32);
    } else {
        buf.put_u8(data.len() as u8);
    }
    buf.put_slice(data);
}

/// The single constructor used for every element of an array (wide forms for compounds).
fn fixed_code(v: &Value) -> Option<u8> {
    Some(match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Ubyte(_) => UBYTE,
        Value::Ushort(_) => USHORT,
        Value::Uint(_) => UINT,
        Value::Ulong(_) => ULONG,
        Value::Byte(_) => BYTE,
        Value::Short(_) => SHORT,
        Value::Int(_) => INT,
        Value::Long(_) => LONG,
        Value::Float(_) => FLOAT,
        Value::Double(_) => DOUBLE,
        Value::Decimal32(_) => DECIMAL32,
        Value::Decimal64(_) => DECIMAL64,
        Value::Decimal128(_) => DECIMAL128,
        Value::Char(_) => CHAR,
        Value::Timestamp(_) => TIMESTAMP,
        Value::Uuid(_) => UUID,
        Value::List(_) => LIST32,
        Value::Map(_) => MAP32,
        Value::Array(_) => ARRAY32,
        Value::Binary(_) | Value::String(_) | Value::Symbol(_) | Value::Described(..) => {
            return None
        }
    })
}

/// An array's element constructor, possibly with a descriptor.
struct ArrayCtor<'v> {
    descriptor: Option<&'v Value>,
    code: u8,
}

impl<'v> ArrayCtor<'v> {
    fn of(items: &'v [Value]) -> Self {
        match items.first() {
            Some(Value::Described(d, _)) => {
                let code = element_code(items.iter().map(|v| match v {
                    Value::Described(_, i) => i.as_ref(),
                    other => other,
                }));
                ArrayCtor {
                    descriptor: Some(d.as_ref()),
                    code,
                }
            }
            _ => ArrayCtor {
                descriptor: None,
                code: element_code(items.iter()),
            },
        }
    }

    fn put(&self, buf: &mut BytesMut) {
        if let Some(d) = self.descriptor {
            buf.put_u8(DESCRIBED);
            put_value(buf, d);
        }
        buf.put_u8(self.code);
    }

    fn put_body(&self, buf: &mut BytesMut, v: &Value) {
        match (self.descriptor, v) {
            (Some(_), Value::Described(_, inner)) => put_body(buf, self.code, inner),
            _ => put_body(buf, self.code, v),
        }
    }
}

/// The element code for a homogeneous sequence, keyed on the first element; variable-width
/// kinds use the 8-bit size form only if every element fits.
fn element_code<'v>(mut items: impl Iterator<Item = &'v Value> + Clone) -> u8 {
    let Some(first) = items.clone().next() else {
        return NULL;
    };
    let wide = items.any(|v| var_len(v) > 255);
    let (narrow_code, wide_code) = match first {
        Value::Binary(_) => (VBIN8, VBIN32),
        Value::String(_) => (STR8, STR32),
        Value::Symbol(_) => (SYM8, SYM32),
        // Described values inside described arrays cannot be expressed; nulls stand in.
        Value::Described(..) => return NULL,
        other => return fixed_code(other).unwrap_or(NULL),
    };
    if wide {
        wide_code
    } else {
        narrow_code
    }
}

fn var_len(v: &Value) -> usize {
    match v {
        Value::Binary(b) => b.len(),
        Value::String(s) => s.len(),
        Value::Symbol(s) => s.0.len(),
        _ => 0,
    }
}

/// Writes the body of `v` for constructor `code`. A value of another kind than `code` expects
/// gets the zero value of that kind (see the note on [`Value`]).
fn put_body(buf: &mut BytesMut, code: u8, v: &Value) {
    match code {
        BOOLEAN => buf.put_u8(matches!(v, Value::Bool(true)) as u8),
        UBYTE => buf.put_u8(if let Value::Ubyte(x) = v { *x } else { 0 }),
        USHORT => buf.put_u16(if let Value::Ushort(x) = v { *x } else { 0 }),
        UINT => buf.put_u32(if let Value::Uint(x) = v { *x } else { 0 }),
        ULONG => buf.put_u64(if let Value::Ulong(x) = v { *x } else { 0 }),
        BYTE => buf.put_i8(if let Value::Byte(x) = v { *x } else { 0 }),
        SHORT => buf.put_i16(if let Value::Short(x) = v { *x } else { 0 }),
        INT => buf.put_i32(if let Value::Int(x) = v { *x } else { 0 }),
        LONG => buf.put_i64(if let Value::Long(x) = v { *x } else { 0 }),
        FLOAT => buf.put_f32(if let Value::Float(x) = v { *x } else { 0.0 }),
        DOUBLE => buf.put_f64(if let Value::Double(x) = v { *x } else { 0.0 }),
        DECIMAL32 => buf.put_slice(&if let Value::Decimal32(x) = v {
            *x
        } else {
            [0; 4]
        }),
        DECIMAL64 => buf.put_slice(&if let Value::Decimal64(x) = v {
            *x
        } else {
            [0; 8]
        }),
        DECIMAL128 => buf.put_slice(&if let Value::Decimal128(x) = v {
            *x
        } else {
            [0; 16]
        }),
        UUID => buf.put_slice(&if let Value::Uuid(x) = v { *x } else { [0; 16] }),
        CHAR => buf.put_u32(if let Value::Char(x) = v {
            u32::from(*x)
        } else {
            0
        }),
        TIMESTAMP => buf.put_i64(if let Value::Timestamp(x) = v { *x } else { 0 }),
        VBIN8 | VBIN32 => {
            let data: &[u8] = if let Value::Binary(b) = v { b } else { &[] };
            put_sized(buf, code == VBIN32, data);
        }
        STR8 | STR32 => {
            let data = if let Value::String(s) = v {
                s.as_bytes()
            } else {
                &[]
            };
            put_sized(buf, code == STR32, data);
        }
        SYM8 | SYM32 => {
            let data = if let Value::Symbol(s) = v {
                s.0.as_bytes()
            } else {
                &[]
            };
            put_sized(buf, code == SYM32, data);
        }
        LIST32 | MAP32 | ARRAY32 => {
            // Bodies of wide compounds: size, count, elements. Encode the whole value with its
            // own constructor, then drop that constructor byte (the array's constructor rules).
            let start = buf.len();
            match (code, v) {
                (LIST32, Value::List(_)) | (MAP32, Value::Map(_)) | (ARRAY32, Value::Array(_)) => {
                    put_wide_compound(buf, v)
                }
                (ARRAY32, _) => buf.put_slice(&[ARRAY32, 0, 0, 0, 5, 0, 0, 0, 0, NULL]),
                _ => buf.put_slice(&[code, 0, 0, 0, 4, 0, 0, 0, 0]),
            }
            // Remove the leading constructor byte written above.
            let len = buf.len();
            buf.copy_within(start + 1..len, start);
            buf.truncate(len - 1);
        }
        _ => {}
    }
}

/// Like `put_value` for a list/map/array, but always in the 32-bit form (array elements must
/// all share one constructor, so they cannot be shrunk individually).
fn put_wide_compound(buf: &mut BytesMut, v: &Value) {
    let start = buf.len();
    put_value(buf, v);
    let code = buf.get(start).copied().unwrap_or(NULL);
    let (wide, header) = match code {
        LIST0 => {
            buf.truncate(start);
            buf.put_slice(&[LIST32, 0, 0, 0, 4, 0, 0, 0, 0]);
            return;
        }
        LIST8 => (LIST32, 3),
        MAP8 => (MAP32, 3),
        ARRAY8 => (ARRAY32, 3),
        _ => return,
    };
    let size = u32::from(buf.get(start + 1).copied().unwrap_or(0));
    let count = u32::from(buf.get(start + 2).copied().unwrap_or(0));
    // Grow the 3-byte short header into the 9-byte wide one in place.
    let old_len = buf.len();
    buf.put_slice(&[0; 6]);
    buf.copy_within(start + header..old_len, start + 9);
    buf[start] = wide;
    buf[start + 1..start + 5].copy_from_slice(&(size + 3).to_be_bytes());
    buf[start + 5..start + 9].copy_from_slice(&count.to_be_bytes());
}

/// Writes a list, map or array in place: the 32-bit header is written first and shrunk to the
/// 8-bit form (or `list0`) by `finish` once the size is known, so nothing is buffered elsewhere.
///
/// For described lists (performatives), `null` writes a null that only survives if a later
/// field is set: trailing null fields are omitted, as the spec allows.
#[derive(Debug)]
pub struct CompoundWriter {
    start: usize,
    end: usize,
    code: u8,
    idx: u32,
    count: u32,
}

impl CompoundWriter {
    /// `code` is `LIST32`, `MAP32` or `ARRAY32`.
    pub fn begin(buf: &mut BytesMut, code: u8) -> Self {
        let start = buf.len();
        buf.put_slice(&[code, 0, 0, 0, 0, 0, 0, 0, 0]);
        CompoundWriter {
            start,
            end: start + 9,
            code,
            idx: 0,
            count: 0,
        }
    }

    /// A field that is absent/default: kept only if a later field is written.
    pub fn null(&mut self, buf: &mut BytesMut) {
        buf.put_u8(NULL);
        self.idx += 1;
    }

    /// A counted element.
    pub fn item(&mut self, buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
        f(buf);
        self.idx += 1;
        self.count = self.idx;
        self.end = buf.len();
    }

    /// An optional field: `None` is a (trailing-omittable) null.
    pub fn opt<T>(&mut self, buf: &mut BytesMut, v: Option<T>, f: impl FnOnce(&mut BytesMut, T)) {
        match v {
            Some(v) => self.item(buf, |b| f(b, v)),
            None => self.null(buf),
        }
    }

    /// A boolean field defaulting to false.
    pub fn flag(&mut self, buf: &mut BytesMut, v: bool) {
        if v {
            self.item(buf, |b| put_bool(b, true));
        } else {
            self.null(buf);
        }
    }

    /// Uncounted bytes that belong to the body (an array's element constructor).
    pub fn raw(&mut self, buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
        f(buf);
        self.end = buf.len();
    }

    pub fn finish(self, buf: &mut BytesMut) {
        let CompoundWriter {
            start,
            end,
            code,
            count,
            ..
        } = self;
        buf.truncate(end);
        let body = end - start - 9;
        if count == 0 && code == LIST32 {
            buf.truncate(start);
            buf.put_u8(LIST0);
        } else if body < 255 && count <= 255 {
            let short = match code {
                LIST32 => LIST8,
                MAP32 => MAP8,
                _ => ARRAY8,
            };
            buf[start] = short;
            buf[start + 1] = (body + 1) as u8;
            buf[start + 2] = count as u8;
            buf.copy_within(start + 9..end, start + 3);
            buf.truncate(end - 6);
        } else {
            buf[start + 1..start + 5].copy_from_slice(&((body + 4) as u32).to_be_bytes());
            buf[start + 5..start + 9].copy_from_slice(&count.to_be_bytes());
        }
    }
}
