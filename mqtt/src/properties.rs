//! MQTT 5 properties (2.2.2): one struct with an `Option` per property, which packets may carry
//! which property, duplicate detection, and value range checks.
//!
//! One struct for every packet (rather than one per packet) keeps the gateway's code simple;
//! decoding rejects any property the packet may not carry, so a field that is `Some` is always
//! one the spec allows there. Nothing allocates unless user properties or several subscription
//! identifiers are present.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{binary_len, put_binary, put_varint, varint_len, MqttStr, Reader, MAX_VARINT};
use crate::error::Error;
use crate::packet::QoS;

pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const AUTHENTICATION_METHOD: u8 = 0x15;
pub const AUTHENTICATION_DATA: u8 = 0x16;
pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub const WILL_DELAY_INTERVAL: u8 = 0x18;
pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub const RESPONSE_INFORMATION: u8 = 0x1A;
pub const SERVER_REFERENCE: u8 = 0x1C;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Where a property block sits; decides which properties are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyContext {
    Connect,
    /// The will properties inside CONNECT's payload.
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubResp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    fn name(self) -> &'static str {
        match self {
            PropertyContext::Connect => "CONNECT",
            PropertyContext::Will => "will properties",
            PropertyContext::ConnAck => "CONNACK",
            PropertyContext::Publish => "PUBLISH",
            PropertyContext::PubResp => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            PropertyContext::Subscribe => "SUBSCRIBE",
            PropertyContext::SubAck => "SUBACK",
            PropertyContext::Unsubscribe => "UNSUBSCRIBE",
            PropertyContext::UnsubAck => "UNSUBACK",
            PropertyContext::Disconnect => "DISCONNECT",
            PropertyContext::Auth => "AUTH",
        }
    }
}

/// The packets that may carry property `id` (table 2.2.2.2), as a bit set of
/// [`PropertyContext`]s; `None` for an undefined identifier.
fn allowed_in(id: u8) -> Option<u16> {
    use PropertyContext as P;
    let ctxs: &[PropertyContext] = match id {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => &[P::Publish, P::Will],
        SUBSCRIPTION_IDENTIFIER => &[P::Publish, P::Subscribe],
        SESSION_EXPIRY_INTERVAL => &[P::Connect, P::ConnAck, P::Disconnect],
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => &[P::ConnAck],
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => &[P::Connect, P::ConnAck, P::Auth],
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => &[P::Connect],
        WILL_DELAY_INTERVAL => &[P::Will],
        SERVER_REFERENCE => &[P::ConnAck, P::Disconnect],
        REASON_STRING => &[
            P::ConnAck,
            P::PubResp,
            P::SubAck,
            P::UnsubAck,
            P::Disconnect,
            P::Auth,
        ],
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => &[P::Connect, P::ConnAck],
        TOPIC_ALIAS => &[P::Publish],
        USER_PROPERTY => return Some(u16::MAX),
        _ => return None,
    };
    Some(ctxs.iter().fold(0, |acc, c| acc | c.bit()))
}

/// All MQTT 5 properties. `Default` is "none present".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: `Some(true)` = the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// 0x02, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03
    pub content_type: Option<MqttStr>,
    /// 0x08
    pub response_topic: Option<MqttStr>,
    /// 0x09
    pub correlation_data: Option<Bytes>,
    /// 0x0B: at most one in SUBSCRIBE, any number in PUBLISH (server to client). Never 0.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12
    pub assigned_client_identifier: Option<MqttStr>,
    /// 0x13, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15
    pub authentication_method: Option<MqttStr>,
    /// 0x16
    pub authentication_data: Option<Bytes>,
    /// 0x17
    pub request_problem_information: Option<bool>,
    /// 0x18, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19
    pub request_response_information: Option<bool>,
    /// 0x1A
    pub response_information: Option<MqttStr>,
    /// 0x1C
    pub server_reference: Option<MqttStr>,
    /// 0x1F
    pub reason_string: Option<MqttStr>,
    /// 0x21, never 0.
    pub receive_maximum: Option<u16>,
    /// 0x22
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, never 0.
    pub topic_alias: Option<u16>,
    /// 0x24, only 0 or 1.
    pub maximum_qos: Option<QoS>,
    /// 0x25
    pub retain_available: Option<bool>,
    /// 0x26, in order of appearance; names may repeat.
    pub user: Vec<(String, String)>,
    /// 0x27, never 0.
    pub maximum_packet_size: Option<u32>,
    /// 0x28
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29
    pub subscription_identifier_available: Option<bool>,
    /// 0x2A
    pub shared_subscription_available: Option<bool>,
}

/// One property as it goes on the wire; lets the encoder list the fields once for both sizing
/// and writing.
enum Prop<'a> {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    VarInt(u8, u32),
    Bin(u8, &'a [u8]),
    Pair(&'a str, &'a str),
}

fn set<T>(slot: &mut Option<T>, id: u8, v: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::DuplicateProperty(id));
    }
    *slot = Some(v);
    Ok(())
}

fn flag(id: u8, b: u8) -> Result<bool, Error> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::InvalidPropertyValue(id)),
    }
}

fn non_zero_u16(id: u8, v: u16) -> Result<u16, Error> {
    if v == 0 {
        Err(Error::InvalidPropertyValue(id))
    } else {
        Ok(v)
    }
}

fn user_str(b: &[u8]) -> Result<String, Error> {
    crate::codec::validate_str(b)?;
    Ok(String::from_utf8_lossy(b).into_owned())
}

impl Properties {
    /// True when no property is set (encodes as the single byte 0).
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Reads a property block (length, then properties) for a packet of kind `ctx`.
    pub(crate) fn read(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Properties, Error> {
        let len = r.varint()?;
        let mut r = r.sub(len as usize)?;
        let mut p = Properties::default();
        while !r.is_empty() {
            let id32 = r.varint()?;
            let id = u8::try_from(id32).map_err(|_| Error::UnknownProperty(id32))?;
            let Some(mask) = allowed_in(id) else {
                return Err(Error::UnknownProperty(id32));
            };
            if mask & ctx.bit() == 0 {
                return Err(Error::PropertyNotAllowed {
                    id,
                    packet: ctx.name(),
                });
            }
            p.read_one(id, &mut r, ctx)?;
        }
        // Authentication data only means something with a method (3.1.2.11.10, 3.15.2.2.3).
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(Error::InvalidPropertyValue(AUTHENTICATION_DATA));
        }
        Ok(p)
    }

    fn read_one(&mut self, id: u8, r: &mut Reader<'_>, ctx: PropertyContext) -> Result<(), Error> {
        match id {
            PAYLOAD_FORMAT_INDICATOR => {
                set(&mut self.payload_format_indicator, id, flag(id, r.u8()?)?)
            }
            MESSAGE_EXPIRY_INTERVAL => set(&mut self.message_expiry_interval, id, r.u32()?),
            CONTENT_TYPE => set(&mut self.content_type, id, r.string()?),
            RESPONSE_TOPIC => {
                let t = r.string()?;
                crate::topic::validate_topic_name(t.as_bytes())?;
                set(&mut self.response_topic, id, t)
            }
            CORRELATION_DATA => set(&mut self.correlation_data, id, r.binary()?),
            SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                if v == 0 {
                    return Err(Error::InvalidPropertyValue(id));
                }
                if ctx == PropertyContext::Subscribe && !self.subscription_identifiers.is_empty() {
                    return Err(Error::DuplicateProperty(id));
                }
                self.subscription_identifiers.push(v);
                Ok(())
            }
            SESSION_EXPIRY_INTERVAL => set(&mut self.session_expiry_interval, id, r.u32()?),
            ASSIGNED_CLIENT_IDENTIFIER => {
                set(&mut self.assigned_client_identifier, id, r.string()?)
            }
            SERVER_KEEP_ALIVE => set(&mut self.server_keep_alive, id, r.u16()?),
            AUTHENTICATION_METHOD => set(&mut self.authentication_method, id, r.string()?),
            AUTHENTICATION_DATA => set(&mut self.authentication_data, id, r.binary()?),
            REQUEST_PROBLEM_INFORMATION => set(
                &mut self.request_problem_information,
                id,
                flag(id, r.u8()?)?,
            ),
            WILL_DELAY_INTERVAL => set(&mut self.will_delay_interval, id, r.u32()?),
            REQUEST_RESPONSE_INFORMATION => set(
                &mut self.request_response_information,
                id,
                flag(id, r.u8()?)?,
            ),
            RESPONSE_INFORMATION => set(&mut self.response_information, id, r.string()?),
            SERVER_REFERENCE => set(&mut self.server_reference, id, r.string()?),
            REASON_STRING => set(&mut self.reason_string, id, r.string()?),
            RECEIVE_MAXIMUM => set(&mut self.receive_maximum, id, non_zero_u16(id, r.u16()?)?),
            TOPIC_ALIAS_MAXIMUM => set(&mut self.topic_alias_maximum, id, r.u16()?),
            TOPIC_ALIAS => set(&mut self.topic_alias, id, non_zero_u16(id, r.u16()?)?),
            MAXIMUM_QOS => {
                let q = match r.u8()? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(Error::InvalidPropertyValue(id)),
                };
                set(&mut self.maximum_qos, id, q)
            }
            RETAIN_AVAILABLE => set(&mut self.retain_available, id, flag(id, r.u8()?)?),
            USER_PROPERTY => {
                let k = user_str(r.binary_slice()?)?;
                let v = user_str(r.binary_slice()?)?;
                self.user.push((k, v));
                Ok(())
            }
            MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                if v == 0 {
                    return Err(Error::InvalidPropertyValue(id));
                }
                set(&mut self.maximum_packet_size, id, v)
            }
            WILDCARD_SUBSCRIPTION_AVAILABLE => set(
                &mut self.wildcard_subscription_available,
                id,
                flag(id, r.u8()?)?,
            ),
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => set(
                &mut self.subscription_identifier_available,
                id,
                flag(id, r.u8()?)?,
            ),
            SHARED_SUBSCRIPTION_AVAILABLE => set(
                &mut self.shared_subscription_available,
                id,
                flag(id, r.u8()?)?,
            ),
            _ => Err(Error::UnknownProperty(u32::from(id))),
        }
    }

    /// Calls `f` for every present property, in identifier order.
    fn for_each<'a>(
        &'a self,
        mut f: impl FnMut(Prop<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let s = |o: &'a Option<MqttStr>| o.as_ref().map(|s| s.as_bytes());
        if let Some(v) = self.payload_format_indicator {
            f(Prop::Byte(PAYLOAD_FORMAT_INDICATOR, u8::from(v)))?;
        }
        if let Some(v) = self.message_expiry_interval {
            f(Prop::U32(MESSAGE_EXPIRY_INTERVAL, v))?;
        }
        if let Some(v) = s(&self.content_type) {
            f(Prop::Bin(CONTENT_TYPE, v))?;
        }
        if let Some(v) = s(&self.response_topic) {
            f(Prop::Bin(RESPONSE_TOPIC, v))?;
        }
        if let Some(v) = &self.correlation_data {
            f(Prop::Bin(CORRELATION_DATA, v))?;
        }
        for &v in &self.subscription_identifiers {
            f(Prop::VarInt(SUBSCRIPTION_IDENTIFIER, v))?;
        }
        if let Some(v) = self.session_expiry_interval {
            f(Prop::U32(SESSION_EXPIRY_INTERVAL, v))?;
        }
        if let Some(v) = s(&self.assigned_client_identifier) {
            f(Prop::Bin(ASSIGNED_CLIENT_IDENTIFIER, v))?;
        }
        if let Some(v) = self.server_keep_alive {
            f(Prop::U16(SERVER_KEEP_ALIVE, v))?;
        }
        if let Some(v) = s(&self.authentication_method) {
            f(Prop::Bin(AUTHENTICATION_METHOD, v))?;
        }
        if let Some(v) = &self.authentication_data {
            f(Prop::Bin(AUTHENTICATION_DATA, v))?;
        }
        if let Some(v) = self.request_problem_information {
            f(Prop::Byte(REQUEST_PROBLEM_INFORMATION, u8::from(v)))?;
        }
        if let Some(v) = self.will_delay_interval {
            f(Prop::U32(WILL_DELAY_INTERVAL, v))?;
        }
        if let Some(v) = self.request_response_information {
            f(Prop::Byte(REQUEST_RESPONSE_INFORMATION, u8::from(v)))?;
        }
        if let Some(v) = s(&self.response_information) {
            f(Prop::Bin(RESPONSE_INFORMATION, v))?;
        }
        if let Some(v) = s(&self.server_reference) {
            f(Prop::Bin(SERVER_REFERENCE, v))?;
        }
        if let Some(v) = s(&self.reason_string) {
            f(Prop::Bin(REASON_STRING, v))?;
        }
        if let Some(v) = self.receive_maximum {
            f(Prop::U16(RECEIVE_MAXIMUM, v))?;
        }
        if let Some(v) = self.topic_alias_maximum {
            f(Prop::U16(TOPIC_ALIAS_MAXIMUM, v))?;
        }
        if let Some(v) = self.topic_alias {
            f(Prop::U16(TOPIC_ALIAS, v))?;
        }
        if let Some(v) = self.maximum_qos {
            f(Prop::Byte(MAXIMUM_QOS, v as u8))?;
        }
        if let Some(v) = self.retain_available {
            f(Prop::Byte(RETAIN_AVAILABLE, u8::from(v)))?;
        }
        for (k, v) in &self.user {
            f(Prop::Pair(k, v))?;
        }
        if let Some(v) = self.maximum_packet_size {
            f(Prop::U32(MAXIMUM_PACKET_SIZE, v))?;
        }
        if let Some(v) = self.wildcard_subscription_available {
            f(Prop::Byte(WILDCARD_SUBSCRIPTION_AVAILABLE, u8::from(v)))?;
        }
        if let Some(v) = self.subscription_identifier_available {
            f(Prop::Byte(SUBSCRIPTION_IDENTIFIER_AVAILABLE, u8::from(v)))?;
        }
        if let Some(v) = self.shared_subscription_available {
            f(Prop::Byte(SHARED_SUBSCRIPTION_AVAILABLE, u8::from(v)))?;
        }
        Ok(())
    }

    /// Size of the property contents (without the length prefix). Checks that every property
    /// may go in `ctx` and that strings and binary data fit their 16-bit length, so an encoder
    /// can size the packet first and then write it infallibly.
    pub(crate) fn content_len(&self, ctx: PropertyContext) -> Result<usize, Error> {
        // The same range rules as decoding, so that we never send what we would refuse.
        if ctx == PropertyContext::Subscribe && self.subscription_identifiers.len() > 1 {
            return Err(Error::DuplicateProperty(SUBSCRIPTION_IDENTIFIER));
        }
        let bad_value = match () {
            _ if self.maximum_qos == Some(QoS::ExactlyOnce) => Some(MAXIMUM_QOS),
            _ if self.receive_maximum == Some(0) => Some(RECEIVE_MAXIMUM),
            _ if self.topic_alias == Some(0) => Some(TOPIC_ALIAS),
            _ if self.maximum_packet_size == Some(0) => Some(MAXIMUM_PACKET_SIZE),
            _ if self.authentication_data.is_some() && self.authentication_method.is_none() => {
                Some(AUTHENTICATION_DATA)
            }
            _ => None,
        };
        if let Some(id) = bad_value {
            return Err(Error::InvalidPropertyValue(id));
        }
        let mut len = 0usize;
        self.for_each(|p| {
            let id = match p {
                Prop::Byte(id, _)
                | Prop::U16(id, _)
                | Prop::U32(id, _)
                | Prop::VarInt(id, _)
                | Prop::Bin(id, _) => id,
                Prop::Pair(..) => USER_PROPERTY,
            };
            if allowed_in(id).unwrap_or(0) & ctx.bit() == 0 {
                return Err(Error::PropertyNotAllowed {
                    id,
                    packet: ctx.name(),
                });
            }
            len += 1 + match p {
                Prop::Byte(..) => 1,
                Prop::U16(..) => 2,
                Prop::U32(..) => 4,
                Prop::VarInt(id, v) => {
                    if v == 0 || v > MAX_VARINT {
                        return Err(Error::InvalidPropertyValue(id));
                    }
                    varint_len(v)
                }
                Prop::Bin(_, b) => binary_len(b, "property")?,
                Prop::Pair(k, v) => {
                    binary_len(k.as_bytes(), "user property")?
                        + binary_len(v.as_bytes(), "user property")?
                }
            };
            Ok(())
        })?;
        if len > MAX_VARINT as usize {
            return Err(Error::TooLong("property block"));
        }
        Ok(len)
    }

    /// Writes the block; `content_len` is what [`Properties::content_len`] returned.
    pub(crate) fn write(&self, content_len: usize, out: &mut BytesMut) {
        put_varint(out, content_len as u32);
        // Cannot fail: the closure never returns an error.
        let _ = self.for_each(|p| {
            match p {
                Prop::Byte(id, v) => {
                    out.put_u8(id);
                    out.put_u8(v);
                }
                Prop::U16(id, v) => {
                    out.put_u8(id);
                    out.put_u16(v);
                }
                Prop::U32(id, v) => {
                    out.put_u8(id);
                    out.put_u32(v);
                }
                Prop::VarInt(id, v) => {
                    out.put_u8(id);
                    put_varint(out, v);
                }
                Prop::Bin(id, b) => {
                    out.put_u8(id);
                    put_binary(out, b);
                }
                Prop::Pair(k, v) => {
                    out.put_u8(USER_PROPERTY);
                    put_binary(out, k.as_bytes());
                    put_binary(out, v.as_bytes());
                }
            }
            Ok(())
        });
    }
}
