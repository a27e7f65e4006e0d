//! MQTT PUBLISH <-> AMQP message.
//!
//! Outbound to AMQP, the payload is not copied when it is large: the message goes to the core as two chunks,
//! the encoded sections up to the `data` section's header, then the PUBLISH payload itself (a slice of the
//! packet buffer). Inbound from AMQP the message is fully decoded (`decode_message`): one pass and a copy of
//! the body, the cost of turning AMQP into MQTT.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use shoal_amqp::{Body, Header, MessageBuilder, Symbol, Value};
use shoal_mqtt::{MqttStr, Properties, Publish, QoS};
use shoal_router::budget::Budget;
use shoal_router::core::api::{Chunks, Msg};

/// Payloads up to this size are copied into the message buffer (one allocation beats two chunks).
const COPY_BELOW: usize = 1024;

/// The Hono content type of the notifications sent when a device starts or stops listening for commands.
pub const EMPTY_NOTIFICATION: &str = "application/vnd.eclipse-hono-empty-notification";

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The AMQP sections of a message for a PUBLISH, before its body: `to`, creation-time, and from MQTT 5's
/// properties content-type, reply-to (response topic), correlation-id (correlation data), TTL (expiry) and
/// the user properties as application properties (after `app_props`, the gateway's own).
pub fn builder_for(
    publish: &Publish,
    to: &str,
    durable: bool,
    app_props: Vec<(String, Value)>,
) -> MessageBuilder {
    let p = &publish.properties;
    let mut application_properties = app_props;
    application_properties.extend(
        p.user
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
    );
    let ttl = p.message_expiry_interval.map(|s| s.saturating_mul(1000));
    MessageBuilder {
        header: (durable || ttl.is_some()).then(|| Header {
            durable,
            ttl,
            ..Header::default()
        }),
        to: Some(to.to_owned()),
        creation_time: Some(now_millis()),
        content_type: p.content_type.as_ref().map(|c| Symbol::from(c.as_str())),
        reply_to: p.response_topic.as_ref().map(|t| t.as_str().to_owned()),
        correlation_id: p.correlation_data.clone().map(Value::Binary),
        application_properties,
        ..MessageBuilder::default()
    }
}

/// Encodes `builder` with `payload` as its `data` body into a core message charged to `budget`.
pub fn to_msg(builder: &MessageBuilder, payload: &Bytes, budget: &Arc<Budget>) -> Msg {
    let mut buf = BytesMut::with_capacity(256 + payload.len().min(COPY_BELOW));
    // The builder without a body would write an empty amqp-value; encode the sections with an empty `data`
    // body and replace that body's 5 bytes (descriptor 0x00 0x53 0x75, vbin8 of length 0) with our own.
    let mut sections = builder.clone();
    sections.body = Body::Data(Bytes::new());
    sections.encode(&mut buf);
    const EMPTY_DATA: [u8; 5] = [0x00, 0x53, 0x75, 0xa0, 0x00];
    let chunks = if buf.ends_with(&EMPTY_DATA) {
        buf.truncate(buf.len() - EMPTY_DATA.len());
        buf.put_slice(&EMPTY_DATA[..3]);
        if payload.len() <= 255 {
            buf.put_slice(&[0xa0, payload.len() as u8]);
        } else {
            buf.put_u8(0xb0);
            buf.put_u32(payload.len() as u32);
        }
        if payload.len() < COPY_BELOW {
            buf.put_slice(payload);
            Chunks::One(buf.freeze())
        } else {
            Chunks::Many(vec![buf.freeze(), payload.clone()])
        }
    } else {
        // Not the encoding expected: fall back to encoding the whole message (a copy of the payload).
        sections.body = Body::Data(payload.clone());
        Chunks::One(sections.to_bytes())
    };
    let len = chunks.len();
    Msg {
        chunks,
        charge: budget.charge(len),
    }
}

/// The whole encoded message of a core delivery (joined when it arrived in parts).
pub fn joined(chunks: &Chunks) -> Bytes {
    match chunks {
        Chunks::One(b) => b.clone(),
        Chunks::Many(parts) => {
            let mut buf = BytesMut::with_capacity(chunks.len());
            for p in parts {
                buf.put_slice(p);
            }
            buf.freeze()
        }
    }
}

/// The content type of a payload made from a string `amqp-value` (when the message names none).
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of a payload rendered as JSON from an `amqp-value` or `amqp-sequence`.
pub const JSON: &str = "application/json";

/// An MQTT payload made from an AMQP body, and the content type it implies (used when the message names none).
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub bytes: Bytes,
    pub implied_type: Option<&'static str>,
}

/// A message body as an MQTT payload. MQTT payloads are bytes, so:
/// - `data` sections, and a binary `amqp-value`, are the bytes as they are;
/// - a string (or symbol) `amqp-value` is its UTF-8 bytes, `text/plain`;
/// - no body, or a null `amqp-value`, is the empty payload;
/// - any other `amqp-value`, and an `amqp-sequence` (decoded as a list), is rendered as JSON (numbers,
///   booleans, strings, lists and arrays, maps with string keys; a char, UUID is a string, a timestamp its
///   milliseconds), `application/json`: what an MQTT device can read without an AMQP type system.
///
/// Values JSON cannot carry faithfully (binary or decimal inside a structure, maps with non-string keys,
/// described values, NaN and infinities) are an error: the caller rejects the delivery saying why, rather than
/// handing the device an empty or lossy payload.
pub fn payload_of(body: &Body) -> Result<Payload, String> {
    let (bytes, implied_type) = match body {
        Body::Empty | Body::Value(Value::Null) => (Bytes::new(), None),
        Body::Data(b) | Body::Value(Value::Binary(b)) => (b.clone(), None),
        Body::Value(Value::String(s)) => (Bytes::copy_from_slice(s.as_bytes()), Some(TEXT)),
        Body::Value(Value::Symbol(s)) => {
            (Bytes::copy_from_slice(s.as_str().as_bytes()), Some(TEXT))
        }
        Body::Value(v) => {
            let json = to_json(v)?;
            let bytes = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
            (Bytes::from(bytes), Some(JSON))
        }
    };
    Ok(Payload {
        bytes,
        implied_type,
    })
}

fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Ubyte(n) => J::from(*n),
        Value::Ushort(n) => J::from(*n),
        Value::Uint(n) => J::from(*n),
        Value::Ulong(n) => J::from(*n),
        Value::Byte(n) => J::from(*n),
        Value::Short(n) => J::from(*n),
        Value::Int(n) => J::from(*n),
        Value::Long(n) | Value::Timestamp(n) => J::from(*n),
        Value::Float(f) => float_json(f64::from(*f))?,
        Value::Double(f) => float_json(*f)?,
        Value::Char(c) => J::String(c.to_string()),
        Value::Uuid(u) => J::String(uuid_text(u)),
        Value::String(s) => J::String(s.clone()),
        Value::Symbol(s) => J::String(s.as_str().to_owned()),
        Value::List(items) | Value::Array(items) => {
            J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => {
            let mut object = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = k
                    .as_str()
                    .ok_or("a map body with a key that is not a string has no JSON form")?;
                object.insert(key.to_owned(), to_json(v)?);
            }
            J::Object(object)
        }
        Value::Binary(_) => return Err("binary inside a structured body has no JSON form".into()),
        Value::Decimal32(_) | Value::Decimal64(_) | Value::Decimal128(_) => {
            return Err("a decimal body has no JSON form".into())
        }
        Value::Described(..) => return Err("a described-type body has no JSON form".into()),
    })
}

fn float_json(f: f64) -> Result<serde_json::Value, String> {
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .ok_or_else(|| format!("{f} has no JSON form"))
}

fn uuid_text(u: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Symbol(s) => s.as_str().to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Ubyte(n) => n.to_string(),
        Value::Ushort(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Ulong(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Timestamp(n) => n.to_string(),
        _ => return None,
    })
}

/// A PUBLISH for an AMQP message: the payload from its body ([`payload_of`]), MQTT 5 properties from its
/// properties and application properties (scalar values as text; others are left out). Packet id, QoS and
/// retain are the caller's. An error says why the body has no MQTT form.
pub fn publish_for(topic: MqttStr, m: &MessageBuilder) -> Result<Publish, String> {
    let payload = payload_of(&m.body)?;
    let mut publish = Publish::new(topic, payload.bytes);
    let p: &mut Properties = &mut publish.properties;
    p.content_type = match &m.content_type {
        Some(c) => MqttStr::new(c.as_str()).ok(),
        None => payload.implied_type.and_then(|t| MqttStr::new(t).ok()),
    };
    // Text we made from a string or JSON is UTF-8 by construction: say so (MQTT 5 payload format indicator).
    if payload.implied_type.is_some() {
        p.payload_format_indicator = Some(true);
    }
    p.response_topic = m
        .reply_to
        .as_deref()
        .and_then(|r| MqttStr::new(r).ok())
        .filter(|t| shoal_mqtt::topic::validate_topic_name(t.as_bytes()).is_ok());
    p.correlation_data = match &m.correlation_id {
        Some(Value::Binary(b)) => Some(b.clone()),
        Some(v) => value_text(v).map(Bytes::from),
        None => None,
    };
    p.user = m
        .application_properties
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), value_text(v)?)))
        .collect();
    Ok(publish)
}

/// QoS of a PUBLISH to a subscriber: the subscription's, at most 1 (the gateway sends QoS 2 as QoS 1: exactly
/// once ends at the gateway).
pub fn outbound_qos(sub: QoS) -> QoS {
    sub.min(QoS::AtLeastOnce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_amqp::decode_message;

    fn publish(payload: Bytes) -> Publish {
        let mut p = Publish::new(MqttStr::new("a/b").unwrap(), payload);
        p.properties.content_type = Some(MqttStr::new("text/plain").unwrap());
        p.properties.user = vec![("k".into(), "v".into())];
        p
    }

    #[test]
    fn round_trip_small_and_large_payloads() {
        let budget = Budget::new(1 << 20);
        for size in [0usize, 3, 300, 5000] {
            let payload = Bytes::from(vec![7u8; size]);
            let p = publish(payload.clone());
            let b = builder_for(&p, "a/b", true, vec![("device_id".into(), "d".into())]);
            let msg = to_msg(&b, &payload, &budget);
            assert_eq!(matches!(msg.chunks, Chunks::Many(_)), size >= COPY_BELOW);
            let m = decode_message(&joined(&msg.chunks)).unwrap();
            assert_eq!(m.to.as_deref(), Some("a/b"));
            assert_eq!(m.body, Body::Data(payload.clone()), "size {size}");
            assert!(m.header.as_ref().unwrap().durable);
            assert_eq!(
                m.content_type.as_ref().map(Symbol::as_str),
                Some("text/plain")
            );
            assert_eq!(m.application_properties.len(), 2);
            let back = publish_for(MqttStr::new("a/b").unwrap(), &m).unwrap();
            assert_eq!(back.payload, payload);
            assert_eq!(back.properties.user[0], ("device_id".into(), "d".into()));
            assert_eq!(back.properties.user[1], ("k".into(), "v".into()));
        }
    }

    fn payload(body: Body) -> Result<(Bytes, Option<&'static str>), String> {
        payload_of(&body).map(|p| (p.bytes, p.implied_type))
    }

    #[test]
    fn string_and_binary_bodies_become_payloads() {
        let text = payload(Body::Value(Value::String("hi".into())));
        assert_eq!(text, Ok((Bytes::from_static(b"hi"), Some(TEXT))));
        let bin = payload(Body::Value(Value::Binary(Bytes::from_static(b"\x00\x01"))));
        assert_eq!(bin, Ok((Bytes::from_static(b"\x00\x01"), None)));
        assert_eq!(payload(Body::Empty), Ok((Bytes::new(), None)));
        assert_eq!(payload(Body::Value(Value::Null)), Ok((Bytes::new(), None)));
        assert_eq!(outbound_qos(QoS::ExactlyOnce), QoS::AtLeastOnce);
    }

    #[test]
    fn other_values_and_sequences_are_json_or_refused() {
        let json = |v: Value| {
            payload(Body::Value(v)).map(|(b, t)| (String::from_utf8(b.to_vec()).unwrap(), t))
        };
        assert_eq!(json(Value::Int(-3)), Ok(("-3".into(), Some(JSON))));
        assert_eq!(json(Value::Bool(true)), Ok(("true".into(), Some(JSON))));
        assert_eq!(json(Value::Double(1.5)), Ok(("1.5".into(), Some(JSON))));
        let map = Value::Map(vec![
            (Value::from("temp"), Value::Long(21)),
            (
                Value::from("tags"),
                Value::List(vec![Value::from("a"), Value::Null]),
            ),
        ]);
        let (text, content_type) = json(map).unwrap();
        assert_eq!(content_type, Some(JSON));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, serde_json::json!({"temp": 21, "tags": ["a", null]}));
        let uuid = Value::Uuid([0x12; 16]);
        assert_eq!(
            json(uuid).unwrap().0,
            r#""12121212-1212-1212-1212-121212121212""#
        );
        for refused in [
            Value::Double(f64::NAN),
            Value::Map(vec![(Value::Int(1), Value::Int(2))]),
            Value::List(vec![Value::Binary(Bytes::new())]),
            Value::Decimal32([0; 4]),
        ] {
            assert!(json(refused.clone()).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn an_implied_content_type_gives_way_to_the_messages_own() {
        let topic = || MqttStr::new("a").unwrap();
        let mut m = MessageBuilder {
            body: Body::Value(Value::String("hi".into())),
            ..MessageBuilder::default()
        };
        let p = publish_for(topic(), &m).unwrap();
        assert_eq!(
            p.properties.content_type.as_ref().map(|c| c.as_str()),
            Some(TEXT)
        );
        assert_eq!(p.properties.payload_format_indicator, Some(true));
        m.content_type = Some(Symbol::from("text/csv"));
        let p = publish_for(topic(), &m).unwrap();
        assert_eq!(
            p.properties.content_type.as_ref().map(|c| c.as_str()),
            Some("text/csv")
        );
        m.body = Body::Data(Bytes::from_static(b"x"));
        m.content_type = None;
        let p = publish_for(topic(), &m).unwrap();
        assert_eq!(p.properties.content_type, None);
        assert_eq!(p.properties.payload_format_indicator, None);
    }
}
