//! Protocol headers and frames (transport 2.2-2.3, security 5.3).
//!
//! Sans-IO: [`check_frame`] tells the caller whether a whole frame is buffered; the caller splits
//! it off (`BytesMut::split_to(len).freeze()`) and hands it to [`parse_amqp_frame`] or
//! [`parse_sasl_frame`]. Nothing here reads from or writes to a socket.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Decoder;
use crate::error::{DecodeError, FrameError, HeaderError};
use crate::performative::Performative;
use crate::sasl::SaslFrame;

/// Protocol header for plain AMQP.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
/// Protocol header for the SASL security layer.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// Protocol header for the TLS security layer.
pub const TLS_HEADER: [u8; 8] = *b"AMQP\x02\x01\x00\x00";
/// The smallest max-frame-size a peer may announce (2.7.1).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;
/// Frame type code of AMQP frames.
pub const FRAME_TYPE_AMQP: u8 = 0x00;
/// Frame type code of SASL frames.
pub const FRAME_TYPE_SASL: u8 = 0x01;
/// Size of the fixed frame header (size, doff, type, channel).
pub const FRAME_HEADER_SIZE: usize = 8;

/// Upper bound of the bytes a transfer frame costs besides its payload: the frame header plus a
/// `transfer` with every numeric field at its widest, an 8-byte delivery tag, and room for a
/// small state (accepted/released). A sender splits payloads into frames of at most
/// `max_frame_size - TRANSFER_OVERHEAD_MAX` bytes.
///
/// Worst case today: 8 (header) + 3 (descriptor) + 3 (list8 header: the fields never need
/// list32) + 5 (handle) + 5 (delivery-id) + 10 (tag) + 5 (message-format) + 1 (settled) +
/// 1 (more) + 2 (rcv-settle-mode) + 4 (accepted) + 3 (resume, aborted, batchable) = 50; the
/// constant leaves headroom.
pub const TRANSFER_OVERHEAD_MAX: usize = 64;

/// The three protocol layers a connection can start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    Amqp,
    Tls,
    Sasl,
}

impl ProtocolId {
    /// The 8-byte header announcing this layer.
    pub fn header(self) -> [u8; 8] {
        match self {
            ProtocolId::Amqp => AMQP_HEADER,
            ProtocolId::Tls => TLS_HEADER,
            ProtocolId::Sasl => SASL_HEADER,
        }
    }
}

/// Parses the 8-byte protocol header at the front of `buf`.
///
/// `Ok(None)`: fewer than 8 bytes yet (but what is there may still be "AMQP"). `Err(NotAmqp)`
/// as soon as the first bytes differ from `AMQP`, so an HTTP client is refused early.
/// `Err(UnsupportedVersion)` for another protocol id or a version other than 1.0.0.
pub fn parse_protocol_header(buf: &[u8]) -> Result<Option<ProtocolId>, HeaderError> {
    let prefix = &buf[..buf.len().min(4)];
    if prefix != &b"AMQP"[..prefix.len()] {
        return Err(HeaderError::NotAmqp);
    }
    let Some(header) = buf.get(..8) else {
        return Ok(None);
    };
    let mut h = [0u8; 8];
    h.copy_from_slice(header);
    if h[5..8] != [1, 0, 0] {
        return Err(HeaderError::UnsupportedVersion(h));
    }
    match h[4] {
        0 => Ok(Some(ProtocolId::Amqp)),
        2 => Ok(Some(ProtocolId::Tls)),
        3 => Ok(Some(ProtocolId::Sasl)),
        _ => Err(HeaderError::UnsupportedVersion(h)),
    }
}

/// Sans-IO frame check: `Ok(None)` = incomplete (need more bytes); `Ok(Some(len))` = a whole
/// frame of `len` bytes (the size field) is at the front of `buf`.
///
/// The size is checked as soon as its 4 bytes are in, so an oversized frame is refused before
/// it is buffered. `Err(TooLarge)` when size > `max_frame_size`; `Err(Malformed)` when size < 8,
/// doff < 2 or doff * 4 > size.
pub fn check_frame(buf: &[u8], max_frame_size: u32) -> Result<Option<usize>, FrameError> {
    let Some(size) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    if size > max_frame_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_size,
        });
    }
    if (size as usize) < FRAME_HEADER_SIZE {
        return Err(FrameError::Malformed("frame size below 8"));
    }
    let Some(&doff) = buf.get(4) else {
        return Ok(None);
    };
    if doff < 2 {
        return Err(FrameError::Malformed("data offset below 2"));
    }
    if u32::from(doff) * 4 > size {
        return Err(FrameError::Malformed("data offset beyond frame end"));
    }
    if buf.len() < size as usize {
        return Ok(None);
    }
    Ok(Some(size as usize))
}

/// A decoded AMQP frame. `performative: None` is an empty (heartbeat) frame. `payload` is the
/// bytes after the performative (the transfer's message bytes), a zero-copy slice of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpFrame {
    pub channel: u16,
    pub performative: Option<Performative>,
    pub payload: Bytes,
}

/// Validates the header of a whole frame and returns (type, channel, body).
fn split_frame(frame: &Bytes) -> Result<(u8, u16, Bytes), DecodeError> {
    let header = frame
        .get(..FRAME_HEADER_SIZE)
        .ok_or(DecodeError::Truncated)?;
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if size > frame.len() {
        return Err(DecodeError::Truncated);
    }
    if size != frame.len() {
        return Err(DecodeError::InvalidValue(
            "frame size field differs from frame length",
        ));
    }
    let doff = usize::from(header[4]) * 4;
    if doff < FRAME_HEADER_SIZE || doff > size {
        return Err(DecodeError::InvalidValue("frame data offset"));
    }
    let channel = u16::from_be_bytes([header[6], header[7]]);
    // The extended header (doff > 2) has no defined use; it is skipped.
    Ok((header[5], channel, frame.slice(doff..size)))
}

/// Parses one whole frame (as delimited by [`check_frame`], including its 8-byte header).
/// The frame type must be 0x00. The performative's binary fields and the payload are slices
/// of `frame`, not copies.
pub fn parse_amqp_frame(frame: Bytes) -> Result<AmqpFrame, DecodeError> {
    let (ty, channel, body) = split_frame(&frame)?;
    if ty != FRAME_TYPE_AMQP {
        return Err(DecodeError::WrongFrameType(ty));
    }
    if body.is_empty() {
        return Ok(AmqpFrame {
            channel,
            performative: None,
            payload: body,
        });
    }
    let mut dec = Decoder::from_bytes(&body);
    let performative = Performative::decode(&mut dec)?;
    let payload = dec.rest_bytes();
    Ok(AmqpFrame {
        channel,
        performative: Some(performative),
        payload,
    })
}

/// Parses one whole SASL frame (type 0x01).
pub fn parse_sasl_frame(frame: Bytes) -> Result<SaslFrame, DecodeError> {
    let (ty, _channel, body) = split_frame(&frame)?;
    if ty != FRAME_TYPE_SASL {
        return Err(DecodeError::WrongFrameType(ty));
    }
    let mut dec = Decoder::from_bytes(&body);
    SaslFrame::decode(&mut dec)
}

fn begin_frame(buf: &mut BytesMut, ty: u8, channel: u16) -> usize {
    let start = buf.len();
    buf.put_slice(&[0, 0, 0, 0, 2, ty]);
    buf.put_u16(channel);
    start
}

fn finish_frame(buf: &mut BytesMut, start: usize, extra: usize) {
    let size = (buf.len() - start + extra) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends one whole frame: header, performative, payload.
pub fn encode_frame(buf: &mut BytesMut, channel: u16, performative: &Performative, payload: &[u8]) {
    encode_frame_header_for_payload(buf, channel, performative, payload.len());
    buf.put_slice(payload);
}

/// Appends a frame header + performative whose size field already counts `payload_len` more
/// bytes that the caller writes next (possibly as a separate `Bytes` chunk with writev): this
/// is how large payloads avoid a copy.
pub fn encode_frame_header_for_payload(
    buf: &mut BytesMut,
    channel: u16,
    performative: &Performative,
    payload_len: usize,
) {
    let start = begin_frame(buf, FRAME_TYPE_AMQP, channel);
    performative.encode(buf);
    finish_frame(buf, start, payload_len);
}

/// Appends one SASL frame.
pub fn encode_sasl_frame(buf: &mut BytesMut, frame: &SaslFrame) {
    let start = begin_frame(buf, FRAME_TYPE_SASL, 0);
    frame.encode(buf);
    finish_frame(buf, start, 0);
}

/// Appends an empty frame (heartbeat): `00 00 00 08 02 00 00 00`.
pub fn encode_empty_frame(buf: &mut BytesMut) {
    buf.put_slice(&[0, 0, 0, 8, 2, 0, 0, 0]);
}

#[cfg(test)]
mod tests;
