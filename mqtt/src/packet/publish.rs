//! PUBLISH (3.3) and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (3.4-3.7): the hot
//! path, so decoding is zero-copy and the encoders size the packet before writing it in one go.

use bytes::{BufMut, Bytes, BytesMut};

use super::connect::block;
use super::{read_packet_id, QoS, Version, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL};
use crate::codec::{binary_len, put_binary, put_fixed_header, MqttStr, Reader};
use crate::error::Error;
use crate::properties::{Properties, PropertyContext};
use crate::reason::{self, ReasonContext};

/// An application message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Never contains wildcards. Empty only in MQTT 5 when `properties.topic_alias` is set.
    pub topic: MqttStr,
    /// 0 for QoS 0, non-zero otherwise.
    pub packet_id: u16,
    pub properties: Properties,
    /// A slice of the received packet: never copied by the decoder.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0, non-retained message without properties.
    pub fn new(topic: MqttStr, payload: Bytes) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: 0,
            properties: Properties::default(),
            payload,
        }
    }

    pub(super) fn read(r: &mut Reader<'_>, flags: u8, version: Version) -> Result<Publish, Error> {
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(Error::InvalidQoS)?;
        let dup = flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(Error::DupOnQoS0);
        }
        let topic = r.string()?;
        if version == Version::V311 && topic.is_empty() {
            return Err(Error::EmptyTopicName);
        }
        crate::topic::check_no_wildcards(topic.as_bytes())?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            read_packet_id(r, "PUBLISH")?
        };
        let properties = match version {
            Version::V5 => Properties::read(r, PropertyContext::Publish)?,
            Version::V311 => Properties::default(),
        };
        // MQTT 5 3.3.2.3.4: an empty topic name is only meaningful with a topic alias.
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(Error::EmptyTopicName);
        }
        Ok(Publish {
            dup,
            qos,
            retain: flags & 0x01 != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    /// Appends everything but the payload: fixed header (whose remaining length counts
    /// `self.payload`), topic, packet id and (MQTT 5) properties. The caller then writes the
    /// payload itself, e.g. as a separate `Bytes` chunk of a vectored write, so a large payload
    /// is never copied into the output buffer.
    pub fn encode_header(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        let mut len = binary_len(self.topic.as_bytes(), "topic")? + self.payload.len();
        if self.topic.is_empty()
            && (version == Version::V311 || self.properties.topic_alias.is_none())
        {
            return Err(Error::EmptyTopicName);
        }
        crate::topic::check_no_wildcards(self.topic.as_bytes())?;
        match self.qos {
            QoS::AtMostOnce if self.dup => return Err(Error::DupOnQoS0),
            QoS::AtMostOnce => {}
            _ if self.packet_id == 0 => return Err(Error::ZeroPacketId("PUBLISH")),
            _ => len += 2,
        }
        let props = match version {
            Version::V5 => Some(self.properties.content_len(PropertyContext::Publish)?),
            Version::V311 => None,
        };
        len += block(props);
        let first = (PUBLISH << 4)
            | (u8::from(self.dup) << 3)
            | ((self.qos as u8) << 1)
            | u8::from(self.retain);
        put_fixed_header(out, first, len)?;
        // `put_fixed_header` reserved room for the payload too; that is what `encode` wants
        // and costs a split-off writer nothing.
        put_binary(out, self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.packet_id);
        }
        if let Some(n) = props {
            self.properties.write(n, out);
        }
        Ok(())
    }

    /// Appends the whole packet (header and payload).
    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        self.encode_header(version, out)?;
        out.put_slice(&self.payload);
        Ok(())
    }

    /// MQTT 5 3.3.2.3.2: a receiver may check that a payload flagged as UTF-8 is; the gateway
    /// answers `PayloadFormatInvalid` with reason code 0x99. Not done by `parse` because it
    /// costs a pass over the payload.
    pub fn check_payload_format(&self) -> Result<(), Error> {
        if self.properties.payload_format_indicator == Some(true)
            && std::str::from_utf8(&self.payload).is_err()
        {
            return Err(Error::PayloadFormatInvalid);
        }
        Ok(())
    }
}

/// Which of the four acknowledgement packets a [`PubResp`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PubRespKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

impl PubRespKind {
    fn first_byte(self) -> u8 {
        match self {
            PubRespKind::PubAck => PUBACK << 4,
            PubRespKind::PubRec => PUBREC << 4,
            // PUBREL's fixed header flags are 0b0010 (3.6.1).
            PubRespKind::PubRel => (PUBREL << 4) | 0x02,
            PubRespKind::PubComp => PUBCOMP << 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PubRespKind::PubAck => "PUBACK",
            PubRespKind::PubRec => "PUBREC",
            PubRespKind::PubRel => "PUBREL",
            PubRespKind::PubComp => "PUBCOMP",
        }
    }

    fn reason_context(self) -> ReasonContext {
        match self {
            PubRespKind::PubAck => ReasonContext::PubAck,
            PubRespKind::PubRec => ReasonContext::PubRec,
            PubRespKind::PubRel => ReasonContext::PubRel,
            PubRespKind::PubComp => ReasonContext::PubComp,
        }
    }
}

/// The body shared by PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PubResp {
    pub packet_id: u16,
    /// MQTT 5 reason code; always 0 (success) in 3.1.1.
    pub reason: u8,
    /// Reason string and user properties (MQTT 5).
    pub properties: Properties,
}

impl PubResp {
    pub(super) fn read(
        r: &mut Reader<'_>,
        kind: PubRespKind,
        version: Version,
    ) -> Result<PubResp, Error> {
        let packet_id = read_packet_id(r, kind.name())?;
        let mut resp = PubResp {
            packet_id,
            ..PubResp::default()
        };
        // MQTT 5 lets the reason code and the properties be left out when they are 0 / empty.
        if version == Version::V5 && !r.is_empty() {
            resp.reason = r.u8()?;
            if !reason::is_valid(kind.reason_context(), resp.reason) {
                return Err(Error::InvalidReasonCode {
                    packet: kind.name(),
                    code: resp.reason,
                });
            }
            if !r.is_empty() {
                resp.properties = Properties::read(r, PropertyContext::PubResp)?;
            }
        }
        r.finish(kind.name())?;
        Ok(resp)
    }

    pub fn encode(
        &self,
        kind: PubRespKind,
        version: Version,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        if self.packet_id == 0 {
            return Err(Error::ZeroPacketId(kind.name()));
        }
        if version == Version::V311 || self.properties.is_empty() {
            if version == Version::V5 && !reason::is_valid(kind.reason_context(), self.reason) {
                return Err(Error::InvalidReasonCode {
                    packet: kind.name(),
                    code: self.reason,
                });
            }
            encode_pub_resp(out, kind, version, self.packet_id, self.reason);
            return Ok(());
        }
        let n = self.properties.content_len(PropertyContext::PubResp)?;
        put_fixed_header(out, kind.first_byte(), 3 + block(Some(n)))?;
        out.put_u16(self.packet_id);
        out.put_u8(self.reason);
        self.properties.write(n, out);
        Ok(())
    }
}

/// Hot-path encoder for a property-less PUBACK/PUBREC/PUBREL/PUBCOMP: 4 bytes, or 5 in MQTT 5
/// with a non-zero reason. `reason` is ignored in 3.1.1. The caller passes a non-zero packet id
/// and a reason code valid for `kind` (see [`reason::is_valid`]).
pub fn encode_pub_resp(
    out: &mut BytesMut,
    kind: PubRespKind,
    version: Version,
    packet_id: u16,
    reason: u8,
) {
    debug_assert!(packet_id != 0);
    let long = version == Version::V5 && reason != reason::SUCCESS;
    out.reserve(5);
    out.put_u8(kind.first_byte());
    out.put_u8(if long { 3 } else { 2 });
    out.put_u16(packet_id);
    if long {
        out.put_u8(reason);
    }
}
