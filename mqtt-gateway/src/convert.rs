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

/// A message body as MQTT payload bytes: `data` as is, a string or binary `amqp-value` as its bytes.
pub fn payload_of(body: &Body) -> Bytes {
    match body {
        Body::Data(b) => b.clone(),
        Body::Value(Value::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Body::Value(Value::Binary(b)) => b.clone(),
        Body::Value(Value::Symbol(s)) => Bytes::copy_from_slice(s.as_str().as_bytes()),
        _ => Bytes::new(),
    }
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

/// A PUBLISH for an AMQP message: MQTT 5 properties from its properties and application properties (scalar
/// values as text; others are left out). Packet id, QoS and retain are the caller's.
pub fn publish_for(topic: MqttStr, m: &MessageBuilder) -> Publish {
    let mut publish = Publish::new(topic, payload_of(&m.body));
    let p: &mut Properties = &mut publish.properties;
    p.content_type = m
        .content_type
        .as_ref()
        .and_then(|c| MqttStr::new(c.as_str()).ok());
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
    publish
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
            let back = publish_for(MqttStr::new("a/b").unwrap(), &m);
            assert_eq!(back.payload, payload);
            assert_eq!(back.properties.user[0], ("device_id".into(), "d".into()));
            assert_eq!(back.properties.user[1], ("k".into(), "v".into()));
        }
    }

    #[test]
    fn string_bodies_become_payloads() {
        assert_eq!(
            payload_of(&Body::Value(Value::String("hi".into()))),
            Bytes::from_static(b"hi")
        );
        assert!(payload_of(&Body::Empty).is_empty());
        assert_eq!(outbound_qos(QoS::ExactlyOnce), QoS::AtLeastOnce);
    }
}
