//! Shared test fixtures: one or more instances of every packet, and raw packet builders.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::codec::{put_varint, MqttStr};
use crate::properties::Properties;
use crate::reason;

pub(super) fn s(v: &'static str) -> MqttStr {
    MqttStr::from_static(v).expect("valid test string")
}

/// A packet from its first byte and body, with the remaining length computed.
pub(super) fn raw(first: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(first);
    put_varint(&mut out, body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

pub(super) fn encode(p: &Packet, v: Version) -> Bytes {
    let mut out = BytesMut::new();
    p.encode(v, &mut out).expect("encode");
    out.freeze()
}

fn user() -> Vec<(String, String)> {
    vec![("k".into(), "v".into()), ("k".into(), "second".into())]
}

/// One or more instances of every packet the version has, with every property the packet may
/// carry set at least once in MQTT 5.
pub(super) fn sample_packets(v: Version) -> Vec<Packet> {
    let v5 = v == Version::V5;
    let props = |p: Properties| if v5 { p } else { Properties::default() };
    let reason_string = || Properties {
        reason_string: Some(s("why")),
        user: user(),
        ..Properties::default()
    };
    let mut out = vec![
        Packet::Connect(Box::new(Connect {
            version: v,
            clean_start: true,
            keep_alive: 60,
            client_id: s(""),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })),
        Packet::Connect(Box::new(Connect {
            version: v,
            clean_start: false,
            keep_alive: 0,
            client_id: s("device-1"),
            will: Some(Will {
                topic: s("status/device-1"),
                payload: Bytes::from_static(b"offline"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: props(Properties {
                    will_delay_interval: Some(30),
                    payload_format_indicator: Some(true),
                    message_expiry_interval: Some(3600),
                    content_type: Some(s("text/plain")),
                    response_topic: Some(s("replies/1")),
                    correlation_data: Some(Bytes::from_static(&[1, 2, 3])),
                    user: user(),
                    ..Properties::default()
                }),
            }),
            username: Some(s("alice")),
            password: Some(Bytes::from_static(b"s3cret\0\xff")),
            properties: props(Properties {
                session_expiry_interval: Some(u32::MAX),
                receive_maximum: Some(100),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(10),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"client-first")),
                user: user(),
                ..Properties::default()
            }),
        })),
        Packet::ConnAck(ConnAck::default()),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: if v5 {
                reason::SUCCESS
            } else {
                reason::V311_ACCEPTED
            },
            properties: props(Properties {
                session_expiry_interval: Some(0),
                receive_maximum: Some(65535),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                maximum_packet_size: Some(268_435_460),
                assigned_client_identifier: Some(s("auto-1234")),
                topic_alias_maximum: Some(0),
                reason_string: Some(s("welcome")),
                user: user(),
                wildcard_subscription_available: Some(true),
                subscription_identifier_available: Some(true),
                shared_subscription_available: Some(false),
                server_keep_alive: Some(120),
                response_information: Some(s("resp/")),
                server_reference: Some(s("other:1883")),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"server-final")),
                ..Properties::default()
            }),
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: if v5 {
                reason::NOT_AUTHORIZED
            } else {
                reason::V311_NOT_AUTHORIZED
            },
            properties: Properties::default(),
        }),
        Packet::Publish(Publish::new(s("a/b"), Bytes::new())),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: s("telemetry/tenant/device-1"),
            packet_id: 10,
            properties: props(Properties {
                payload_format_indicator: Some(false),
                message_expiry_interval: Some(5),
                content_type: Some(s("application/json")),
                response_topic: Some(s("reply/here")),
                correlation_data: Some(Bytes::from_static(b"corr")),
                subscription_identifiers: vec![1, 300, 268_435_455],
                topic_alias: Some(3),
                user: user(),
                ..Properties::default()
            }),
            payload: Bytes::from(vec![0x5a; 300]),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: s("$SYS/ünïcode/ß"),
            packet_id: u16::MAX,
            properties: Properties::default(),
            payload: Bytes::from_static(b"{}"),
        }),
        Packet::PubAck(PubResp {
            packet_id: 1,
            ..PubResp::default()
        }),
        Packet::PubRec(PubResp {
            packet_id: 2,
            reason: if v5 {
                reason::NO_MATCHING_SUBSCRIBERS
            } else {
                0
            },
            properties: Properties::default(),
        }),
        Packet::PubRel(PubResp {
            packet_id: 3,
            reason: if v5 {
                reason::PACKET_IDENTIFIER_NOT_FOUND
            } else {
                0
            },
            properties: props(reason_string()),
        }),
        Packet::PubComp(PubResp {
            packet_id: 4,
            reason: 0,
            properties: props(reason_string()),
        }),
        Packet::Subscribe(Subscribe {
            packet_id: 7,
            properties: props(Properties {
                subscription_identifiers: vec![42],
                user: user(),
                ..Properties::default()
            }),
            filters: vec![
                (s("a/+/c"), SubscriptionOptions::new(QoS::AtMostOnce)),
                (
                    s("#"),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: v5,
                        retain_as_published: v5,
                        retain_handling: if v5 {
                            RetainHandling::DoNotSend
                        } else {
                            RetainHandling::SendAtSubscribe
                        },
                    },
                ),
                (
                    s("$share/group/sensors/#"),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: if v5 {
                            RetainHandling::SendIfNew
                        } else {
                            RetainHandling::SendAtSubscribe
                        },
                    },
                ),
            ],
        }),
        Packet::SubAck(SubAck {
            packet_id: 7,
            properties: props(reason_string()),
            reason_codes: Bytes::from_static(&[0, 2, 0x80]),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 8,
            properties: props(Properties {
                user: user(),
                ..Properties::default()
            }),
            filters: vec![s("a/+/c"), s("$share/group/sensors/#")],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 8,
            properties: props(reason_string()),
            reason_codes: if v5 {
                Bytes::from_static(&[0x00, 0x11])
            } else {
                Bytes::new()
            },
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ];
    if v5 {
        out.push(Packet::Disconnect(Disconnect {
            reason: reason::DISCONNECT_WITH_WILL_MESSAGE,
            properties: Properties::default(),
        }));
        out.push(Packet::Disconnect(Disconnect {
            reason: reason::SESSION_TAKEN_OVER,
            properties: Properties {
                session_expiry_interval: Some(10),
                server_reference: Some(s("elsewhere")),
                ..reason_string()
            },
        }));
        out.push(Packet::Auth(Auth::default()));
        out.push(Packet::Auth(Auth {
            reason: reason::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"challenge")),
                ..reason_string()
            },
        }));
        // An empty topic is fine with a topic alias.
        out.push(Packet::Publish(Publish {
            properties: Properties {
                topic_alias: Some(3),
                ..Properties::default()
            },
            ..Publish::new(s(""), Bytes::from_static(b"x"))
        }));
    }
    out
}
