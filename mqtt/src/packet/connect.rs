//! CONNECT (3.1) and CONNACK (3.2).

use bytes::{BufMut, Bytes, BytesMut};

use super::{QoS, Version, CONNACK, CONNECT};
use crate::codec::{binary_len, put_binary, put_fixed_header, MqttStr, Reader};
use crate::error::Error;
use crate::properties::{Properties, PropertyContext};
use crate::reason::{self, ReasonContext};

/// A client's CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Read from the protocol level; every later packet of the connection uses it.
    pub version: Version,
    /// "Clean Session" in 3.1.1, "Clean Start" in 5.
    pub clean_start: bool,
    /// Seconds; 0 disables keep-alive.
    pub keep_alive: u16,
    /// May be empty (the server assigns one, MQTT 5 / clean session in 3.1.1).
    pub client_id: MqttStr,
    pub will: Option<Will>,
    pub username: Option<MqttStr>,
    pub password: Option<Bytes>,
    /// Always empty in 3.1.1.
    pub properties: Properties,
}

/// The will message of a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties (will delay interval, message expiry, content type, ...).
    pub properties: Properties,
}

/// The server's CONNACK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// MQTT 5 reason code, or 3.1.1 return code (0..=5).
    pub code: u8,
    pub properties: Properties,
}

const FLAG_CLEAN: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

impl Connect {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Connect, Error> {
        let name = r.binary_slice()?;
        if name == b"MQIsdp" {
            // MQTT 3.1: recognised so that the gateway can answer CONNACK 0x01 instead of
            // dropping the client silently.
            return Err(Error::UnsupportedProtocolVersion(r.u8().unwrap_or(3)));
        }
        if name != b"MQTT" {
            return Err(Error::InvalidProtocolName);
        }
        let version = match r.u8()? {
            4 => Version::V311,
            5 => Version::V5,
            level => return Err(Error::UnsupportedProtocolVersion(level)),
        };
        let flags = r.u8()?;
        if flags & 0x01 != 0 {
            return Err(Error::ReservedConnectFlag);
        }
        let has_will = flags & FLAG_WILL != 0;
        let will_qos = (flags >> 3) & 0x03;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        if !has_will && (will_qos != 0 || will_retain) {
            return Err(Error::InvalidWillFlags);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(Error::InvalidWillFlags)?;
        let has_username = flags & FLAG_USERNAME != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        if version == Version::V311 && has_password && !has_username {
            return Err(Error::PasswordWithoutUsername);
        }
        let clean_start = flags & FLAG_CLEAN != 0;
        let keep_alive = r.u16()?;
        let properties = match version {
            Version::V5 => Properties::read(r, PropertyContext::Connect)?,
            Version::V311 => Properties::default(),
        };
        let client_id = r.string()?;
        if version == Version::V311 && client_id.is_empty() && !clean_start {
            return Err(Error::InvalidClientId);
        }
        let will = if has_will {
            let properties = match version {
                Version::V5 => Properties::read(r, PropertyContext::Will)?,
                Version::V311 => Properties::default(),
            };
            let topic = r.string()?;
            crate::topic::validate_topic_name(topic.as_bytes())?;
            Some(Will {
                topic,
                payload: r.binary()?,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish("CONNECT")?;
        Ok(Connect {
            version,
            clean_start,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    /// Appends the CONNECT for `self.version`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        let v5 = self.version == Version::V5;
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(Error::PasswordWithoutUsername);
        }
        let props = if v5 {
            Some(self.properties.content_len(PropertyContext::Connect)?)
        } else {
            None
        };
        // Protocol name (6), level, flags, keep alive.
        let mut len = 10 + block(props) + binary_len(self.client_id.as_bytes(), "client id")?;
        let mut flags = if self.clean_start { FLAG_CLEAN } else { 0 };
        let mut will_props = None;
        if let Some(w) = &self.will {
            if v5 {
                will_props = Some(w.properties.content_len(PropertyContext::Will)?);
            }
            len += block(will_props)
                + binary_len(w.topic.as_bytes(), "will topic")?
                + binary_len(&w.payload, "will payload")?;
            flags |= FLAG_WILL | ((w.qos as u8) << 3);
            if w.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if let Some(u) = &self.username {
            len += binary_len(u.as_bytes(), "user name")?;
            flags |= FLAG_USERNAME;
        }
        if let Some(p) = &self.password {
            len += binary_len(p, "password")?;
            flags |= FLAG_PASSWORD;
        }
        put_fixed_header(out, CONNECT << 4, len)?;
        put_binary(out, b"MQTT");
        out.put_u8(self.version.level());
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        if let Some(n) = props {
            self.properties.write(n, out);
        }
        put_binary(out, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if let Some(n) = will_props {
                w.properties.write(n, out);
            }
            put_binary(out, w.topic.as_bytes());
            put_binary(out, &w.payload);
        }
        if let Some(u) = &self.username {
            put_binary(out, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_binary(out, p);
        }
        Ok(())
    }
}

/// Wire size of an optional property block whose contents are `n` bytes.
pub(super) fn block(n: Option<usize>) -> usize {
    n.map_or(0, |n| crate::codec::varint_len(n as u32) + n)
}

fn check_connack_code(version: Version, code: u8) -> Result<(), Error> {
    let ok = match version {
        Version::V311 => code <= reason::V311_NOT_AUTHORIZED,
        Version::V5 => reason::is_valid(ReasonContext::ConnAck, code),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidReasonCode {
            packet: "CONNACK",
            code,
        })
    }
}

impl ConnAck {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<ConnAck, Error> {
        let flags = r.u8()?;
        if flags & 0xfe != 0 {
            return Err(Error::ReservedFlags {
                packet: "CONNACK acknowledge flags",
                flags,
            });
        }
        let code = r.u8()?;
        check_connack_code(version, code)?;
        let properties = match version {
            Version::V5 => Properties::read(r, PropertyContext::ConnAck)?,
            Version::V311 => Properties::default(),
        };
        r.finish("CONNACK")?;
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            code,
            properties,
        })
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        encode_connack(
            out,
            version,
            self.session_present,
            self.code,
            Some(&self.properties),
        )
    }
}

/// Appends a CONNACK. `properties` is ignored for 3.1.1; `None` in MQTT 5 writes an empty
/// property block.
pub fn encode_connack(
    out: &mut BytesMut,
    version: Version,
    session_present: bool,
    code: u8,
    properties: Option<&Properties>,
) -> Result<(), Error> {
    check_connack_code(version, code)?;
    let props = match (version, properties) {
        (Version::V5, Some(p)) => Some((p, p.content_len(PropertyContext::ConnAck)?)),
        _ => None,
    };
    let len = 2 + match (version, props) {
        (Version::V311, _) => 0,
        (Version::V5, p) => block(Some(p.map_or(0, |(_, n)| n))),
    };
    put_fixed_header(out, CONNACK << 4, len)?;
    out.put_u8(u8::from(session_present));
    out.put_u8(code);
    if version == Version::V5 {
        match props {
            Some((p, n)) => p.write(n, out),
            None => out.put_u8(0),
        }
    }
    Ok(())
}
