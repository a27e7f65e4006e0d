//! Wire primitives (MQTT 5, 1.5): big-endian integers, variable byte integers, length-prefixed
//! UTF-8 strings and binary data; the [`Reader`] cursor and the [`MqttStr`] string type.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;

/// The largest value a variable byte integer can hold (4 bytes of 7 bits).
pub const MAX_VARINT: u32 = 268_435_455;

/// A validated MQTT UTF-8 string (1.5.4): valid UTF-8, no U+0000, at most 65535 bytes.
///
/// It is a `Bytes` slice of the packet it was read from, so decoding a topic, client id or
/// content type never copies. `unsafe` is forbidden workspace-wide, so [`MqttStr::as_str`]
/// re-runs the (fast, SIMD-friendly) UTF-8 check instead of an unchecked conversion; topic
/// matching works on bytes and does not need it.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttStr(Bytes);

impl MqttStr {
    /// Validates `bytes` as an MQTT string without copying.
    pub fn from_bytes(bytes: Bytes) -> Result<MqttStr, Error> {
        validate_str(&bytes)?;
        Ok(MqttStr(bytes))
    }

    /// A string from a `'static` literal (still validated).
    pub fn from_static(s: &'static str) -> Result<MqttStr, Error> {
        MqttStr::from_bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Copies `s` into a new string.
    pub fn new(s: &str) -> Result<MqttStr, Error> {
        MqttStr::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The text. Never fails: the bytes were validated on construction.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer (a slice of the packet for decoded strings).
    pub fn as_shared(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl TryFrom<&str> for MqttStr {
    type Error = Error;
    fn try_from(s: &str) -> Result<MqttStr, Error> {
        MqttStr::new(s)
    }
}

/// The MQTT string rules on raw bytes: length, UTF-8 (which excludes surrogates), no U+0000.
pub fn validate_str(bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(Error::TooLong("string"));
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(Error::InvalidUtf8);
    }
    if bytes.contains(&0) {
        return Err(Error::NullCharacter);
    }
    Ok(())
}

/// Decodes a variable byte integer at the front of `buf`: `Ok(None)` if it is not complete yet,
/// `Ok(Some((value, bytes_used)))`, or `MalformedVarInt` if a fourth byte still has the
/// continuation bit set.
pub fn decode_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, Error> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(Error::MalformedVarInt)
}

/// Bytes needed to encode `v` as a variable byte integer (`v` <= [`MAX_VARINT`]).
pub fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `v` as a variable byte integer. Callers check `v <= MAX_VARINT` first.
pub fn put_varint(out: &mut BytesMut, mut v: u32) {
    debug_assert!(v <= MAX_VARINT);
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

/// Appends a 16-bit length prefix and the bytes. Callers check the length first.
pub fn put_binary(out: &mut BytesMut, b: &[u8]) {
    debug_assert!(b.len() <= usize::from(u16::MAX));
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

/// Length on the wire of a length-prefixed field, or `TooLong`.
pub fn binary_len(b: &[u8], what: &'static str) -> Result<usize, Error> {
    if b.len() > usize::from(u16::MAX) {
        return Err(Error::TooLong(what));
    }
    Ok(2 + b.len())
}

/// Appends a fixed header: `first` (type and flags) and the remaining length.
pub fn put_fixed_header(out: &mut BytesMut, first: u8, remaining: usize) -> Result<(), Error> {
    let rl = u32::try_from(remaining)
        .ok()
        .filter(|&r| r <= MAX_VARINT)
        .ok_or(Error::PacketTooLarge {
            size: remaining,
            max: MAX_VARINT as usize,
        })?;
    out.reserve(1 + varint_len(rl) + remaining);
    out.put_u8(first);
    put_varint(out, rl);
    Ok(())
}

/// A cursor over one packet (or a property block inside it). Every read is bounds-checked and
/// returns [`Error::Truncated`] past the end; strings and binary data come back as slices of the
/// packet's `Bytes`.
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a Bytes, pos: usize) -> Reader<'a> {
        Reader {
            buf,
            pos,
            end: buf.len(),
        }
    }

    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn varint(&mut self) -> Result<u32, Error> {
        match decode_varint(&self.buf[self.pos..self.end])? {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None => Err(Error::Truncated),
        }
    }

    /// `n` bytes as a zero-copy slice.
    pub fn take(&mut self, n: usize) -> Result<Bytes, Error> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Binary data: a 16-bit length and that many bytes.
    pub fn binary(&mut self) -> Result<Bytes, Error> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// The raw bytes of a length-prefixed field without building a `Bytes` (used for the
    /// protocol name and user properties, which are compared or copied anyway).
    pub fn binary_slice(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    pub fn string(&mut self) -> Result<MqttStr, Error> {
        MqttStr::from_bytes(self.binary()?)
    }

    /// Everything left (the payload).
    pub fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        b
    }

    /// Splits off a reader over the next `n` bytes and advances past them.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, Error> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let r = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(r)
    }

    /// Fails with `TrailingBytes` unless everything was consumed.
    pub fn finish(&self, packet: &'static str) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes(packet))
        }
    }
}
