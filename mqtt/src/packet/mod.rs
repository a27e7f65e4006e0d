//! Control packets (MQTT 3.1.1 chapter 3, MQTT 5 chapter 3): [`check`], [`parse`] and
//! [`Packet::encode`], with one module per packet family.

mod connect;
mod control;
mod publish;
mod subscribe;

#[cfg(test)]
mod nopanic_tests;
#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod validation_tests;

use bytes::{Bytes, BytesMut};

pub use connect::{encode_connack, ConnAck, Connect, Will};
pub use control::{encode_pingreq, encode_pingresp, Auth, Disconnect};
pub use publish::{encode_pub_resp, PubResp, PubRespKind, Publish};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::codec::{decode_varint, Reader};
use crate::error::Error;

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;
pub const AUTH: u8 = 15;

/// The protocol version of a connection, fixed by its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl Version {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// Quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// `None` for 3 (and anything above).
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Any control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Boxed: large, and only once per connection.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResp),
    PubRec(PubResp),
    PubRel(PubResp),
    PubComp(PubResp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5 only.
    Auth(Auth),
}

/// Sans-IO framing: is a whole packet at the front of `buf`?
///
/// `Ok(None)`: not yet, read more. `Ok(Some(len))`: the first `len` bytes (fixed header plus
/// remaining length) are one packet; split them off and [`parse`] them. The size is checked as
/// soon as the remaining length is readable, so an oversized packet is refused before it is
/// buffered: `Err(PacketTooLarge)` when `len > max_packet_size` (MQTT 5: DISCONNECT 0x95),
/// `Err(MalformedVarInt)` when the remaining length runs past 4 bytes.
pub fn check(buf: &[u8], max_packet_size: usize) -> Result<Option<usize>, Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    let Some((remaining, n)) = decode_varint(&buf[1..])? else {
        return Ok(None);
    };
    let len = 1 + n + remaining as usize;
    if len > max_packet_size {
        return Err(Error::PacketTooLarge {
            size: len,
            max: max_packet_size,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(len))
}

/// Parses exactly one whole packet (as delimited by [`check`]) for a connection speaking
/// `version`. CONNECT ignores `version` and reads the protocol level itself (see
/// [`Connect::version`]). Topics, strings, binary properties and payloads are slices of
/// `packet`: nothing is copied.
pub fn parse(packet: Bytes, version: Version) -> Result<Packet, Error> {
    let Some(&first) = packet.first() else {
        return Err(Error::Truncated);
    };
    let Some((remaining, n)) = decode_varint(&packet[1..])? else {
        return Err(Error::Truncated);
    };
    let declared = 1 + n + remaining as usize;
    if declared != packet.len() {
        return Err(Error::LengthMismatch {
            declared,
            actual: packet.len(),
        });
    }
    let kind = first >> 4;
    let flags = first & 0x0f;
    let mut r = Reader::new(&packet, 1 + n);
    let expect_flags = |name: &'static str, want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(Error::ReservedFlags {
                packet: name,
                flags,
            })
        }
    };
    let p = match kind {
        CONNECT => {
            expect_flags("CONNECT", 0)?;
            Packet::Connect(Box::new(Connect::read(&mut r)?))
        }
        CONNACK => {
            expect_flags("CONNACK", 0)?;
            Packet::ConnAck(ConnAck::read(&mut r, version)?)
        }
        PUBLISH => Packet::Publish(Publish::read(&mut r, flags, version)?),
        PUBACK => {
            expect_flags("PUBACK", 0)?;
            Packet::PubAck(PubResp::read(&mut r, PubRespKind::PubAck, version)?)
        }
        PUBREC => {
            expect_flags("PUBREC", 0)?;
            Packet::PubRec(PubResp::read(&mut r, PubRespKind::PubRec, version)?)
        }
        PUBREL => {
            expect_flags("PUBREL", 2)?;
            Packet::PubRel(PubResp::read(&mut r, PubRespKind::PubRel, version)?)
        }
        PUBCOMP => {
            expect_flags("PUBCOMP", 0)?;
            Packet::PubComp(PubResp::read(&mut r, PubRespKind::PubComp, version)?)
        }
        SUBSCRIBE => {
            expect_flags("SUBSCRIBE", 2)?;
            Packet::Subscribe(Subscribe::read(&mut r, version)?)
        }
        SUBACK => {
            expect_flags("SUBACK", 0)?;
            Packet::SubAck(SubAck::read(&mut r, version)?)
        }
        UNSUBSCRIBE => {
            expect_flags("UNSUBSCRIBE", 2)?;
            Packet::Unsubscribe(Unsubscribe::read(&mut r, version)?)
        }
        UNSUBACK => {
            expect_flags("UNSUBACK", 0)?;
            Packet::UnsubAck(UnsubAck::read(&mut r, version)?)
        }
        PINGREQ => {
            expect_flags("PINGREQ", 0)?;
            r.finish("PINGREQ")?;
            Packet::PingReq
        }
        PINGRESP => {
            expect_flags("PINGRESP", 0)?;
            r.finish("PINGRESP")?;
            Packet::PingResp
        }
        DISCONNECT => {
            expect_flags("DISCONNECT", 0)?;
            Packet::Disconnect(Disconnect::read(&mut r, version)?)
        }
        AUTH if version == Version::V5 => {
            expect_flags("AUTH", 0)?;
            Packet::Auth(Auth::read(&mut r)?)
        }
        _ => return Err(Error::InvalidPacketType(kind)),
    };
    Ok(p)
}

impl Packet {
    /// Appends the encoded packet to `out`. On error (a field too long, a property the packet
    /// may not carry, AUTH in 3.1.1, packet id 0 where one is required) nothing is written.
    /// CONNECT is written for its own [`Connect::version`]; in 3.1.1 every `properties` field
    /// and the MQTT 5-only subscription options are left out.
    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        match self {
            Packet::Connect(p) => p.encode(out),
            Packet::ConnAck(p) => p.encode(version, out),
            Packet::Publish(p) => p.encode(version, out),
            Packet::PubAck(p) => p.encode(PubRespKind::PubAck, version, out),
            Packet::PubRec(p) => p.encode(PubRespKind::PubRec, version, out),
            Packet::PubRel(p) => p.encode(PubRespKind::PubRel, version, out),
            Packet::PubComp(p) => p.encode(PubRespKind::PubComp, version, out),
            Packet::Subscribe(p) => p.encode(version, out),
            Packet::SubAck(p) => p.encode(version, out),
            Packet::Unsubscribe(p) => p.encode(version, out),
            Packet::UnsubAck(p) => p.encode(version, out),
            Packet::PingReq => {
                encode_pingreq(out);
                Ok(())
            }
            Packet::PingResp => {
                encode_pingresp(out);
                Ok(())
            }
            Packet::Disconnect(p) => p.encode(version, out),
            Packet::Auth(p) => match version {
                Version::V5 => p.encode(out),
                Version::V311 => Err(Error::InvalidPacketType(AUTH)),
            },
        }
    }

    /// The control packet type (1..=15).
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => CONNECT,
            Packet::ConnAck(_) => CONNACK,
            Packet::Publish(_) => PUBLISH,
            Packet::PubAck(_) => PUBACK,
            Packet::PubRec(_) => PUBREC,
            Packet::PubRel(_) => PUBREL,
            Packet::PubComp(_) => PUBCOMP,
            Packet::Subscribe(_) => SUBSCRIBE,
            Packet::SubAck(_) => SUBACK,
            Packet::Unsubscribe(_) => UNSUBSCRIBE,
            Packet::UnsubAck(_) => UNSUBACK,
            Packet::PingReq => PINGREQ,
            Packet::PingResp => PINGRESP,
            Packet::Disconnect(_) => DISCONNECT,
            Packet::Auth(_) => AUTH,
        }
    }
}

/// Reads a packet identifier that must not be 0.
fn read_packet_id(r: &mut Reader<'_>, packet: &'static str) -> Result<u16, Error> {
    match r.u16()? {
        0 => Err(Error::ZeroPacketId(packet)),
        id => Ok(id),
    }
}
