//! Message <-> AMQP map `Value` <-> bytes.
//!
//! Decoding is defensive: the byte length is capped before the AMQP decoder runs (which itself
//! bounds nesting and checks every size against the input), and every list is capped before
//! it is converted, so a peer can make us hold at most [`MAX_MESSAGE_BYTES`] of its data.

use std::collections::BTreeMap;

use bytes::Bytes;
use shoal_amqp::{decode_message, Body, MessageBuilder, Value};

use super::*;
use crate::error::MeshError;

/// Largest encoded message accepted.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most router ids in one message (hello `seen`, LSU `peers`), and most routers in a mesh.
pub const MAX_ROUTERS: usize = 1024;
/// Most addresses in one mobile update.
pub const MAX_ADDRESSES: usize = 65_536;
/// Longest mobile address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 1024;

type Result<T> = std::result::Result<T, MeshError>;

impl Message {
    /// The message as an AMQP map.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            entry("op", Value::String(self.opcode().into())),
            entry("v", Value::Uint(PROTOCOL_VERSION)),
        ];
        match self {
            Message::Hello(h) => {
                m[1] = entry("v", Value::Uint(h.version));
                m.push(entry("id", id_value(&h.id)));
                m.push(entry("instance", Value::Ulong(h.instance)));
                m.push(entry("mode", Value::String(h.mode.as_str().into())));
                m.push(entry(
                    "seen",
                    Value::List(h.seen.iter().map(id_value).collect()),
                ));
            }
            Message::Ra(ra) => {
                m.push(entry("id", id_value(&ra.id)));
                m.push(entry("instance", Value::Ulong(ra.instance)));
                m.push(entry("ra_seq", Value::Ulong(ra.ra_seq)));
                m.push(entry("ls_seq", Value::Ulong(ra.ls_seq)));
                m.push(entry("mobile_seq", Value::Ulong(ra.mobile_seq)));
            }
            Message::Lsu(u) => {
                m.push(entry("id", id_value(&u.id)));
                m.push(entry("instance", Value::Ulong(u.instance)));
                m.push(entry("ls_seq", Value::Ulong(u.ls_seq)));
                let peers = u
                    .peers
                    .iter()
                    .map(|(id, c)| (id_value(id), Value::Uint(c.0)))
                    .collect();
                m.push(entry("peers", Value::Map(peers)));
            }
            Message::Lsr(r) => {
                m.push(entry("id", id_value(&r.id)));
                m.push(entry("origin", id_value(&r.origin)));
                m.push(entry("instance", Value::Ulong(r.instance)));
                m.push(entry("ls_seq", Value::Ulong(r.ls_seq)));
            }
            Message::Mau(u) => {
                m.push(entry("id", id_value(&u.id)));
                m.push(entry("instance", Value::Ulong(u.instance)));
                m.push(entry("mobile_seq", Value::Ulong(u.mobile_seq)));
                match &u.change {
                    MobileChange::Full(all) => m.push(entry("full", strings(all))),
                    MobileChange::Delta { since, add, del } => {
                        m.push(entry("since", Value::Ulong(*since)));
                        m.push(entry("add", strings(add)));
                        m.push(entry("del", strings(del)));
                    }
                }
            }
            Message::Mar(r) => {
                m.push(entry("id", id_value(&r.id)));
                m.push(entry("origin", id_value(&r.origin)));
                m.push(entry("instance", Value::Ulong(r.instance)));
                m.push(entry("mobile_seq", Value::Ulong(r.mobile_seq)));
            }
        }
        Value::Map(m)
    }

    /// Reads a message from an AMQP map. A HELLO of any version decodes (the node refuses it
    /// with the peer's id in the reason); any other message of another version is an error.
    pub fn from_value(value: &Value) -> Result<Message> {
        let Value::Map(pairs) = value else {
            return Err(MeshError::Malformed("body is not a map"));
        };
        let f = Fields(pairs);
        let op = f.str("op")?;
        let version = f.u64("v")?;
        let version = u32::try_from(version).map_err(|_| MeshError::Malformed("v"))?;
        if op != "HELLO" && version != PROTOCOL_VERSION {
            return Err(MeshError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        let id = f.router_id("id")?;
        Ok(match op {
            "HELLO" => Message::Hello(Hello {
                id,
                instance: f.u64("instance")?,
                version,
                mode: Mode::parse(f.str("mode")?).ok_or(MeshError::Malformed("mode"))?,
                seen: f.router_ids("seen")?,
            }),
            "RA" => Message::Ra(RouterAdvert {
                id,
                instance: f.u64("instance")?,
                ra_seq: f.u64("ra_seq")?,
                ls_seq: f.u64("ls_seq")?,
                mobile_seq: f.u64("mobile_seq")?,
            }),
            "LSU" => Message::Lsu(LinkStateUpdate {
                id,
                instance: f.u64("instance")?,
                ls_seq: f.u64("ls_seq")?,
                peers: f.peers("peers")?,
            }),
            "LSR" => Message::Lsr(LinkStateRequest {
                id,
                origin: f.router_id("origin")?,
                instance: f.u64("instance")?,
                ls_seq: f.u64("ls_seq")?,
            }),
            "MAU" => {
                let change = if f.get("full").is_some() {
                    MobileChange::Full(f.addresses("full")?)
                } else {
                    MobileChange::Delta {
                        since: f.u64("since")?,
                        add: f.addresses("add")?,
                        del: f.addresses("del")?,
                    }
                };
                Message::Mau(MobileUpdate {
                    id,
                    instance: f.u64("instance")?,
                    mobile_seq: f.u64("mobile_seq")?,
                    change,
                })
            }
            "MAR" => Message::Mar(MobileRequest {
                id,
                origin: f.router_id("origin")?,
                instance: f.u64("instance")?,
                mobile_seq: f.u64("mobile_seq")?,
            }),
            other => return Err(MeshError::UnknownOpcode(truncate(other))),
        })
    }

    /// The message as an encoded AMQP message (subject = opcode, body = the map), ready to be
    /// sent as one delivery on the control link.
    pub fn encode(&self) -> Bytes {
        MessageBuilder {
            subject: Some(self.opcode().into()),
            body: Body::Value(self.to_value()),
            ..MessageBuilder::default()
        }
        .to_bytes()
    }

    /// Reads an encoded AMQP message produced by [`Message::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(MeshError::TooLarge("message bytes"));
        }
        match decode_message(bytes)?.body {
            Body::Value(v) => Message::from_value(&v),
            _ => Err(MeshError::Malformed("body is not an amqp-value")),
        }
    }
}

fn entry(k: &str, v: Value) -> (Value, Value) {
    (Value::String(k.into()), v)
}

fn id_value(id: &RouterId) -> Value {
    Value::String(id.as_str().into())
}

fn strings(v: &[String]) -> Value {
    Value::List(v.iter().map(|s| Value::String(s.clone())).collect())
}

/// Keeps an echoed peer string short enough for a log line.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Lookups in a decoded map (first occurrence of a key wins; keys may be strings or symbols).
struct Fields<'a>(&'a [(Value, Value)]);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn need(&self, key: &'static str) -> Result<&'a Value> {
        self.get(key).ok_or(MeshError::Malformed(key))
    }

    fn str(&self, key: &'static str) -> Result<&'a str> {
        self.need(key)?.as_str().ok_or(MeshError::Malformed(key))
    }

    fn u64(&self, key: &'static str) -> Result<u64> {
        match self.need(key)? {
            Value::Ulong(v) => Ok(*v),
            Value::Uint(v) => Ok(u64::from(*v)),
            Value::Ushort(v) => Ok(u64::from(*v)),
            Value::Ubyte(v) => Ok(u64::from(*v)),
            _ => Err(MeshError::Malformed(key)),
        }
    }

    fn router_id(&self, key: &'static str) -> Result<RouterId> {
        RouterId::new(self.str(key)?).map_err(|_| MeshError::Malformed(key))
    }

    fn list(&self, key: &'static str, max: usize) -> Result<&'a [Value]> {
        match self.need(key)? {
            Value::List(items) | Value::Array(items) => {
                if items.len() > max {
                    return Err(MeshError::TooLarge(key));
                }
                Ok(items)
            }
            _ => Err(MeshError::Malformed(key)),
        }
    }

    fn router_ids(&self, key: &'static str) -> Result<Vec<RouterId>> {
        self.list(key, MAX_ROUTERS)?
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(|s| RouterId::new(s).ok())
                    .ok_or(MeshError::Malformed(key))
            })
            .collect()
    }

    fn addresses(&self, key: &'static str) -> Result<Vec<String>> {
        self.list(key, MAX_ADDRESSES)?
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if s.len() > MAX_ADDRESS_LEN => Err(MeshError::TooLarge(key)),
                Some(s) if !s.is_empty() => Ok(s.to_owned()),
                _ => Err(MeshError::Malformed(key)),
            })
            .collect()
    }

    fn peers(&self, key: &'static str) -> Result<BTreeMap<RouterId, Cost>> {
        let Value::Map(pairs) = self.need(key)? else {
            return Err(MeshError::Malformed(key));
        };
        if pairs.len() > MAX_ROUTERS {
            return Err(MeshError::TooLarge(key));
        }
        let mut peers = BTreeMap::new();
        for (k, v) in pairs {
            let id = k
                .as_str()
                .and_then(|s| RouterId::new(s).ok())
                .ok_or(MeshError::Malformed(key))?;
            let cost = match v {
                Value::Uint(c) if *c > 0 => Cost(*c),
                _ => return Err(MeshError::Malformed(key)),
            };
            if peers.insert(id, cost).is_some() {
                return Err(MeshError::Malformed(key));
            }
        }
        Ok(peers)
    }
}
