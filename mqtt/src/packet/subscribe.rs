//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (3.8-3.11).

use bytes::{BufMut, Bytes, BytesMut};

use super::connect::block;
use super::{read_packet_id, QoS, Version, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE};
use crate::codec::{binary_len, put_binary, put_fixed_header, MqttStr, Reader};
use crate::error::Error;
use crate::properties::{Properties, PropertyContext};
use crate::reason::{self, ReasonContext};
use crate::topic;

/// MQTT 5 retain handling (3.8.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist yet.
    SendIfNew = 1,
    DoNotSend = 2,
}

/// The options byte after each topic filter. In 3.1.1 only `qos` exists; the other fields
/// decode as their defaults and are not encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with the given maximum QoS and MQTT 5 defaults for the rest.
    pub fn new(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    fn decode(b: u8, version: Version) -> Result<SubscriptionOptions, Error> {
        let reserved = match version {
            Version::V311 => 0xfc,
            Version::V5 => 0xc0,
        };
        if b & reserved != 0 {
            return Err(Error::InvalidSubscriptionOptions(b));
        }
        let qos = QoS::from_u8(b & 0x03).ok_or(Error::InvalidSubscriptionOptions(b))?;
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Error::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(self, version: Version) -> u8 {
        match version {
            Version::V311 => self.qos as u8,
            Version::V5 => {
                self.qos as u8
                    | (u8::from(self.no_local) << 2)
                    | (u8::from(self.retain_as_published) << 3)
                    | ((self.retain_handling as u8) << 4)
            }
        }
    }
}

/// A SUBSCRIBE: at least one (filter, options) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// Subscription identifier (at most one) and user properties.
    pub properties: Properties,
    /// Validated filters, `$share/{group}/...` included (see [`topic::split_shared`]).
    pub filters: Vec<(MqttStr, SubscriptionOptions)>,
}

/// A SUBACK: one reason code (3.1.1: return code) per filter of the SUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// A slice of the packet when decoded.
    pub reason_codes: Bytes,
}

/// An UNSUBSCRIBE: at least one filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<MqttStr>,
}

/// An UNSUBACK. `reason_codes` is always empty in 3.1.1 (the packet has no payload there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: Properties,
    pub reason_codes: Bytes,
}

fn read_props(
    r: &mut Reader<'_>,
    version: Version,
    ctx: PropertyContext,
) -> Result<Properties, Error> {
    match version {
        Version::V5 => Properties::read(r, ctx),
        Version::V311 => Ok(Properties::default()),
    }
}

fn props_len(
    p: &Properties,
    version: Version,
    ctx: PropertyContext,
) -> Result<Option<usize>, Error> {
    match version {
        Version::V5 => Ok(Some(p.content_len(ctx)?)),
        Version::V311 => Ok(None),
    }
}

fn write_props(p: &Properties, n: Option<usize>, out: &mut BytesMut) {
    if let Some(n) = n {
        p.write(n, out);
    }
}

fn read_filter(r: &mut Reader<'_>) -> Result<MqttStr, Error> {
    let f = r.string()?;
    topic::validate_topic_filter(f.as_bytes())?;
    Ok(f)
}

fn check_codes(
    codes: &[u8],
    version: Version,
    ctx: ReasonContext,
    packet: &'static str,
) -> Result<(), Error> {
    for &code in codes {
        let ok = match version {
            Version::V311 => matches!(code, 0 | 1 | 2 | reason::V311_SUBACK_FAILURE),
            Version::V5 => reason::is_valid(ctx, code),
        };
        if !ok {
            return Err(Error::InvalidReasonCode { packet, code });
        }
    }
    Ok(())
}

impl Subscribe {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<Subscribe, Error> {
        let packet_id = read_packet_id(r, "SUBSCRIBE")?;
        let properties = read_props(r, version, PropertyContext::Subscribe)?;
        if r.is_empty() {
            return Err(Error::EmptySubscriptionList("SUBSCRIBE"));
        }
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = read_filter(r)?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            if options.no_local
                && filter
                    .as_bytes()
                    .starts_with(topic::SHARE_PREFIX.as_bytes())
            {
                return Err(Error::NoLocalOnSharedSubscription);
            }
            filters.push((filter, options));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        if self.packet_id == 0 {
            return Err(Error::ZeroPacketId("SUBSCRIBE"));
        }
        if self.filters.is_empty() {
            return Err(Error::EmptySubscriptionList("SUBSCRIBE"));
        }
        let props = props_len(&self.properties, version, PropertyContext::Subscribe)?;
        let mut len = 2 + block(props);
        for (f, _) in &self.filters {
            len += binary_len(f.as_bytes(), "topic filter")? + 1;
        }
        put_fixed_header(out, (SUBSCRIBE << 4) | 0x02, len)?;
        out.put_u16(self.packet_id);
        write_props(&self.properties, props, out);
        for (f, o) in &self.filters {
            put_binary(out, f.as_bytes());
            out.put_u8(o.encode(version));
        }
        Ok(())
    }
}

impl SubAck {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<SubAck, Error> {
        let packet_id = read_packet_id(r, "SUBACK")?;
        let properties = read_props(r, version, PropertyContext::SubAck)?;
        let reason_codes = r.rest();
        if reason_codes.is_empty() {
            return Err(Error::EmptySubscriptionList("SUBACK"));
        }
        check_codes(&reason_codes, version, ReasonContext::SubAck, "SUBACK")?;
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        if self.packet_id == 0 {
            return Err(Error::ZeroPacketId("SUBACK"));
        }
        check_codes(&self.reason_codes, version, ReasonContext::SubAck, "SUBACK")?;
        let props = props_len(&self.properties, version, PropertyContext::SubAck)?;
        put_fixed_header(out, SUBACK << 4, 2 + block(props) + self.reason_codes.len())?;
        out.put_u16(self.packet_id);
        write_props(&self.properties, props, out);
        out.put_slice(&self.reason_codes);
        Ok(())
    }
}

impl Unsubscribe {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<Unsubscribe, Error> {
        let packet_id = read_packet_id(r, "UNSUBSCRIBE")?;
        let properties = read_props(r, version, PropertyContext::Unsubscribe)?;
        if r.is_empty() {
            return Err(Error::EmptySubscriptionList("UNSUBSCRIBE"));
        }
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(read_filter(r)?);
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        if self.packet_id == 0 {
            return Err(Error::ZeroPacketId("UNSUBSCRIBE"));
        }
        if self.filters.is_empty() {
            return Err(Error::EmptySubscriptionList("UNSUBSCRIBE"));
        }
        let props = props_len(&self.properties, version, PropertyContext::Unsubscribe)?;
        let mut len = 2 + block(props);
        for f in &self.filters {
            len += binary_len(f.as_bytes(), "topic filter")?;
        }
        put_fixed_header(out, (UNSUBSCRIBE << 4) | 0x02, len)?;
        out.put_u16(self.packet_id);
        write_props(&self.properties, props, out);
        for f in &self.filters {
            put_binary(out, f.as_bytes());
        }
        Ok(())
    }
}

impl UnsubAck {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<UnsubAck, Error> {
        let packet_id = read_packet_id(r, "UNSUBACK")?;
        let properties = read_props(r, version, PropertyContext::UnsubAck)?;
        let reason_codes = r.rest();
        match version {
            Version::V311 if !reason_codes.is_empty() => {
                return Err(Error::TrailingBytes("UNSUBACK"))
            }
            Version::V311 => {}
            Version::V5 => {
                if reason_codes.is_empty() {
                    return Err(Error::EmptySubscriptionList("UNSUBACK"));
                }
                check_codes(&reason_codes, version, ReasonContext::UnsubAck, "UNSUBACK")?;
            }
        }
        Ok(UnsubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        if self.packet_id == 0 {
            return Err(Error::ZeroPacketId("UNSUBACK"));
        }
        let codes: &[u8] = match version {
            Version::V311 => &[],
            Version::V5 => {
                check_codes(
                    &self.reason_codes,
                    version,
                    ReasonContext::UnsubAck,
                    "UNSUBACK",
                )?;
                &self.reason_codes
            }
        };
        let props = props_len(&self.properties, version, PropertyContext::UnsubAck)?;
        put_fixed_header(out, UNSUBACK << 4, 2 + block(props) + codes.len())?;
        out.put_u16(self.packet_id);
        write_props(&self.properties, props, out);
        out.put_slice(codes);
        Ok(())
    }
}
