//! One test per validation rule: hand-built bad packets, the exact error, and its reason code.

use bytes::{Bytes, BytesMut};

use super::samples::{raw, s};
use super::*;
use crate::codec::MqttStr;
use crate::properties::Properties;
use crate::reason;

const V3: Version = Version::V311;
const V5: Version = Version::V5;

/// A length-prefixed string or binary field.
fn st(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn err(first: u8, body: &[u8], v: Version) -> Error {
    parse(raw(first, body), v).expect_err("must be rejected")
}

/// CONNECT body: protocol name, level, flags, keep alive 60, then `rest`.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Bytes {
    raw(0x10, &cat(&[&st(name), &[level, flags, 0, 60], rest]))
}

#[test]
fn fixed_header_rules() {
    assert_eq!(
        parse(Bytes::from_static(&[0xC0, 0x00, 0x00]), V3),
        Err(Error::LengthMismatch {
            declared: 2,
            actual: 3
        })
    );
    assert_eq!(
        parse(Bytes::from_static(&[0xC0, 0x02]), V3),
        Err(Error::LengthMismatch {
            declared: 4,
            actual: 2
        })
    );
    assert_eq!(parse(Bytes::new(), V3), Err(Error::Truncated));
    assert_eq!(err(0x00, &[], V5), Error::InvalidPacketType(0));
    // AUTH does not exist in 3.1.1.
    let e = err(0xF0, &[], V3);
    assert_eq!(e, Error::InvalidPacketType(15));
    assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    let e = err(0xC1, &[], V3);
    assert_eq!(
        e,
        Error::ReservedFlags {
            packet: "PINGREQ",
            flags: 1
        }
    );
    assert_eq!(e.reason_code(), reason::MALFORMED_PACKET);
    // PUBREL, SUBSCRIBE, UNSUBSCRIBE need flags 0b0010.
    assert!(matches!(
        err(0x60, &[0, 1], V3),
        Error::ReservedFlags { .. }
    ));
    assert!(matches!(
        err(0x80, &cat(&[&[0, 1], &st(b"a"), &[0]]), V3),
        Error::ReservedFlags { .. }
    ));
    assert!(matches!(
        err(0xA0, &cat(&[&[0, 1], &st(b"a")]), V3),
        Error::ReservedFlags { .. }
    ));
    assert!(matches!(
        err(0x42, &[0, 1], V3),
        Error::ReservedFlags { .. }
    ));
    assert_eq!(err(0xC0, &[0], V3), Error::TrailingBytes("PINGREQ"));
    assert_eq!(err(0xD0, &[0], V3), Error::TrailingBytes("PINGRESP"));
    assert_eq!(err(0xE0, &[0], V3), Error::TrailingBytes("DISCONNECT"));
    assert_eq!(err(0x40, &[0, 1, 0], V3), Error::TrailingBytes("PUBACK"));
}

#[test]
fn publish_rules() {
    let topic = st(b"a/b");
    let e = err(0x36, &cat(&[&topic, &[0, 1]]), V3);
    assert_eq!(e, Error::InvalidQoS);
    assert_eq!(err(0x38, &topic, V3), Error::DupOnQoS0);
    let e = err(0x32, &cat(&[&topic, &[0, 0]]), V3);
    assert_eq!(e, Error::ZeroPacketId("PUBLISH"));
    assert_eq!(e.reason_code(), reason::MALFORMED_PACKET);
    for bad in [&b"a/+"[..], b"#", b"a/#"] {
        let e = err(0x30, &st(bad), V3);
        assert_eq!(e, Error::WildcardInTopicName);
        assert_eq!(e.reason_code(), reason::TOPIC_NAME_INVALID);
    }
    assert_eq!(err(0x30, &st(b""), V3), Error::EmptyTopicName);
    // MQTT 5: empty topic without a topic alias (empty property block).
    let e = err(0x30, &cat(&[&st(b""), &[0]]), V5);
    assert_eq!(e, Error::EmptyTopicName);
    assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    let e = err(0x30, &st(&[b'a', 0xFF]), V3);
    assert_eq!(e, Error::InvalidUtf8);
    // An encoded surrogate (U+D800) is not valid UTF-8 either.
    assert_eq!(err(0x30, &st(&[0xED, 0xA0, 0x80]), V3), Error::InvalidUtf8);
    assert_eq!(err(0x30, &st(b"a\0b"), V3), Error::NullCharacter);
    // Topic length beyond the packet.
    assert_eq!(err(0x30, &[0, 5, b'a'], V3), Error::Truncated);
    // 3.1.1 has no property block: the byte is payload. In 5 it is one.
    let Ok(Packet::Publish(p)) = parse(raw(0x30, &cat(&[&topic, &[0]])), V3) else {
        panic!()
    };
    assert_eq!(&p.payload[..], &[0]);
    let Ok(Packet::Publish(p)) = parse(raw(0x30, &cat(&[&topic, &[0]])), V5) else {
        panic!()
    };
    assert!(p.payload.is_empty());
}

#[test]
fn payload_format_indicator_is_checked_on_request() {
    let mut p = Publish::new(s("t"), Bytes::from_static(b"\xff"));
    assert_eq!(p.check_payload_format(), Ok(()));
    p.properties.payload_format_indicator = Some(true);
    let e = p.check_payload_format().unwrap_err();
    assert_eq!(e, Error::PayloadFormatInvalid);
    assert_eq!(e.reason_code(), reason::PAYLOAD_FORMAT_INVALID);
    p.payload = Bytes::from_static("ünï".as_bytes());
    assert_eq!(p.check_payload_format(), Ok(()));
}

#[test]
fn property_rules() {
    let topic = st(b"t");
    let publish5 = |props: &[u8]| {
        let mut body = topic.clone();
        body.push(props.len() as u8);
        body.extend_from_slice(props);
        err(0x30, &body, V5)
    };
    let e = publish5(&[0x23, 0, 1, 0x23, 0, 2]);
    assert_eq!(e, Error::DuplicateProperty(0x23));
    assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    assert_eq!(publish5(&[0x23, 0, 0]), Error::InvalidPropertyValue(0x23));
    assert_eq!(publish5(&[0x01, 2]), Error::InvalidPropertyValue(0x01));
    assert_eq!(publish5(&[0x0B, 0]), Error::InvalidPropertyValue(0x0B));
    let e = publish5(&[0x11, 0, 0, 0, 1]);
    assert_eq!(
        e,
        Error::PropertyNotAllowed {
            id: 0x11,
            packet: "PUBLISH"
        }
    );
    assert_eq!(e.reason_code(), reason::MALFORMED_PACKET);
    assert_eq!(publish5(&[0x05, 0]), Error::UnknownProperty(5));
    // A property that runs past its block, and a block that runs past the packet.
    assert_eq!(publish5(&[0x02, 0, 0]), Error::Truncated);
    assert_eq!(err(0x30, &cat(&[&topic, &[9, 0x23]]), V5), Error::Truncated);
    assert_eq!(publish5(&[0x08, 0, 1, b'+']), Error::WildcardInTopicName);
    // User properties are strings too.
    assert_eq!(
        publish5(&cat(&[&[0x26], &st(b"k"), &st(b"\0")])),
        Error::NullCharacter
    );
    // Several subscription identifiers are fine in PUBLISH, not in SUBSCRIBE.
    let sub = |props: &[u8]| {
        let mut body = vec![0, 1, props.len() as u8];
        body.extend_from_slice(props);
        body.extend(cat(&[&st(b"a"), &[0]]));
        parse(raw(0x82, &body), V5)
    };
    assert!(sub(&[0x0B, 1]).is_ok());
    assert_eq!(
        sub(&[0x0B, 1, 0x0B, 2]),
        Err(Error::DuplicateProperty(0x0B))
    );

    // PUBACK with a PUBLISH-only property.
    let e = err(0x40, &[0, 1, 0, 3, 0x23, 0, 1], V5);
    assert!(matches!(e, Error::PropertyNotAllowed { id: 0x23, .. }));
    // CONNACK: receive maximum 0, maximum QoS 2, maximum packet size 0.
    assert_eq!(
        err(0x20, &[0, 0, 3, 0x21, 0, 0], V5),
        Error::InvalidPropertyValue(0x21)
    );
    assert_eq!(
        err(0x20, &[0, 0, 2, 0x24, 2], V5),
        Error::InvalidPropertyValue(0x24)
    );
    assert_eq!(
        err(0x20, &[0, 0, 5, 0x27, 0, 0, 0, 0], V5),
        Error::InvalidPropertyValue(0x27)
    );
    // Authentication data without a method.
    assert_eq!(
        err(0xF0, &[0x18, 3, 0x16, 0, 0], V5),
        Error::InvalidPropertyValue(0x16)
    );
}

#[test]
fn connect_rules() {
    let client = st(b"c");
    let e = parse(connect(b"MQIsdp", 3, 0x02, &client), V3).unwrap_err();
    assert_eq!(e, Error::UnsupportedProtocolVersion(3));
    assert_eq!(e.reason_code(), reason::UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(
        e.connack_v311_code(),
        Some(reason::V311_UNACCEPTABLE_PROTOCOL_VERSION)
    );
    let e = parse(connect(b"MQTT", 6, 0x02, &client), V3).unwrap_err();
    assert_eq!(e, Error::UnsupportedProtocolVersion(6));
    let e = parse(connect(b"MQTX", 4, 0x02, &client), V3).unwrap_err();
    assert_eq!(e, Error::InvalidProtocolName);
    assert_eq!(e.connack_v311_code(), None);
    assert_eq!(
        parse(connect(b"MQTT", 4, 0x03, &client), V3),
        Err(Error::ReservedConnectFlag)
    );
    // Will QoS 1 or will retain without the will flag; will QoS 3.
    for flags in [0x0A, 0x22, 0x1E] {
        assert_eq!(
            parse(connect(b"MQTT", 4, flags, &client), V3),
            Err(Error::InvalidWillFlags),
            "flags {flags:#x}"
        );
    }
    let with_password = cat(&[&client, &st(b"pw")]);
    assert_eq!(
        parse(connect(b"MQTT", 4, 0x42, &with_password), V3),
        Err(Error::PasswordWithoutUsername)
    );
    // MQTT 5 allows a password without a user name (empty property block first).
    let Ok(Packet::Connect(c)) =
        parse(connect(b"MQTT", 5, 0x42, &cat(&[&[0], &with_password])), V3)
    else {
        panic!()
    };
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.username, None);
    // 3.1.1: empty client id needs clean session.
    let e = parse(connect(b"MQTT", 4, 0x00, &st(b"")), V3).unwrap_err();
    assert_eq!(e, Error::InvalidClientId);
    assert_eq!(e.reason_code(), reason::CLIENT_IDENTIFIER_NOT_VALID);
    assert_eq!(
        e.connack_v311_code(),
        Some(reason::V311_IDENTIFIER_REJECTED)
    );
    assert!(parse(connect(b"MQTT", 4, 0x02, &st(b"")), V3).is_ok());
    // Will topic with a wildcard; missing will payload; trailing bytes.
    let will = cat(&[&client, &st(b"w/#"), &st(b"m")]);
    assert_eq!(
        parse(connect(b"MQTT", 4, 0x06, &will), V3),
        Err(Error::WildcardInTopicName)
    );
    let will = cat(&[&client, &st(b"w")]);
    assert_eq!(
        parse(connect(b"MQTT", 4, 0x06, &will), V3),
        Err(Error::Truncated)
    );
    let extra = cat(&[&client, &[0]]);
    assert_eq!(
        parse(connect(b"MQTT", 4, 0x02, &extra), V3),
        Err(Error::TrailingBytes("CONNECT"))
    );
    // A will property outside the will.
    let props = [5, 0x18, 0, 0, 0, 1];
    assert_eq!(
        parse(connect(b"MQTT", 5, 0x02, &cat(&[&props[..], &client])), V3),
        Err(Error::PropertyNotAllowed {
            id: 0x18,
            packet: "CONNECT"
        })
    );
}

#[test]
fn subscribe_rules() {
    let e = err(0x82, &[0, 1], V3);
    assert_eq!(e, Error::EmptySubscriptionList("SUBSCRIBE"));
    assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    assert_eq!(
        err(0x82, &[0, 1, 0], V5),
        Error::EmptySubscriptionList("SUBSCRIBE")
    );
    assert_eq!(
        err(0xA2, &[0, 1], V3),
        Error::EmptySubscriptionList("UNSUBSCRIBE")
    );
    assert_eq!(
        err(0x82, &cat(&[&[0, 0], &st(b"a"), &[0]]), V3),
        Error::ZeroPacketId("SUBSCRIBE")
    );
    for bad in [
        &b"a/#/b"[..],
        b"a+",
        b"",
        b"$share/g",
        b"$share//a",
        b"$share/g+/a",
    ] {
        let e = err(0x82, &cat(&[&[0, 1], &st(bad), &[0]]), V3);
        assert!(matches!(e, Error::InvalidTopicFilter(_)), "{bad:?}: {e}");
        assert_eq!(e.reason_code(), reason::TOPIC_FILTER_INVALID);
        let e = err(0xA2, &cat(&[&[0, 1], &st(bad)]), V3);
        assert!(matches!(e, Error::InvalidTopicFilter(_)), "{bad:?}: {e}");
    }
    // Options: no-local is reserved in 3.1.1; bits 6-7 always; QoS 3; retain handling 3.
    let opts = |o: u8, v: Version| {
        let props: &[u8] = if v == V5 { &[0] } else { &[] };
        err(0x82, &cat(&[&[0, 1], props, &st(b"a"), &[o]]), v)
    };
    assert_eq!(opts(0x04, V3), Error::InvalidSubscriptionOptions(0x04));
    assert_eq!(opts(0x40, V5), Error::InvalidSubscriptionOptions(0x40));
    assert_eq!(opts(0x03, V5), Error::InvalidSubscriptionOptions(0x03));
    let e = opts(0x30, V5);
    assert_eq!(e, Error::InvalidRetainHandling);
    assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
    let e = err(0x82, &cat(&[&[0, 1, 0], &st(b"$share/g/a"), &[0x04]]), V5);
    assert_eq!(e, Error::NoLocalOnSharedSubscription);
    // Filter without its options byte.
    assert_eq!(err(0x82, &cat(&[&[0, 1], &st(b"a")]), V3), Error::Truncated);
}

#[test]
fn reason_code_rules() {
    let e = err(0x40, &[0, 1, 0x05], V5);
    assert_eq!(
        e,
        Error::InvalidReasonCode {
            packet: "PUBACK",
            code: 5
        }
    );
    assert!(matches!(
        err(0x62, &[0, 1, 0x10], V5),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0x20, &[0, 6], V3),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0x20, &[0, 1, 0], V5),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0x90, &[0, 1, 3], V3),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0x90, &[0, 1, 0, 0x11], V5),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0xB0, &[0, 1, 0, 0x02], V5),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0xE0, &[0x01], V5),
        Error::InvalidReasonCode { .. }
    ));
    assert!(matches!(
        err(0xF0, &[0x01], V5),
        Error::InvalidReasonCode { .. }
    ));
    // CONNACK reserved acknowledge flags; 3.1.1 UNSUBACK with a payload.
    assert!(matches!(
        err(0x20, &[2, 0], V3),
        Error::ReservedFlags { .. }
    ));
    assert_eq!(err(0xB0, &[0, 1, 0], V3), Error::TrailingBytes("UNSUBACK"));
    assert_eq!(
        err(0x90, &[0, 1], V3),
        Error::EmptySubscriptionList("SUBACK")
    );
}

#[test]
fn encoders_refuse_what_decoders_refuse() {
    let mut out = BytesMut::new();
    let mut p = Publish {
        qos: QoS::AtLeastOnce,
        ..Publish::new(s("t"), Bytes::new())
    };
    assert_eq!(p.encode(V3, &mut out), Err(Error::ZeroPacketId("PUBLISH")));
    p.qos = QoS::AtMostOnce;
    p.dup = true;
    assert_eq!(p.encode(V3, &mut out), Err(Error::DupOnQoS0));
    p.dup = false;
    p.topic = s("a/+");
    assert_eq!(p.encode(V3, &mut out), Err(Error::WildcardInTopicName));
    p.topic = s("");
    assert_eq!(p.encode(V5, &mut out), Err(Error::EmptyTopicName));
    p.topic = s("t");
    p.properties.session_expiry_interval = Some(1);
    assert!(matches!(
        p.encode(V5, &mut out),
        Err(Error::PropertyNotAllowed { id: 0x11, .. })
    ));
    // ... but 3.1.1 has no properties, so they are simply not sent.
    assert_eq!(p.encode(V3, &mut out), Ok(()));
    out.clear();

    let c = Connect {
        version: V3,
        clean_start: true,
        keep_alive: 0,
        client_id: s("c"),
        will: None,
        username: None,
        password: Some(Bytes::from(vec![0u8; 70_000])),
        properties: Properties::default(),
    };
    assert_eq!(c.encode(&mut out), Err(Error::PasswordWithoutUsername));
    let c = Connect {
        username: Some(s("u")),
        ..c
    };
    assert_eq!(c.encode(&mut out), Err(Error::TooLong("password")));
    assert!(out.is_empty(), "nothing written on error");
    assert_eq!(
        Packet::Auth(Auth::default()).encode(V3, &mut out),
        Err(Error::InvalidPacketType(15))
    );
    assert!(matches!(
        Packet::SubAck(SubAck {
            packet_id: 1,
            properties: Properties::default(),
            reason_codes: Bytes::from_static(&[0x11]),
        })
        .encode(V5, &mut out),
        Err(Error::InvalidReasonCode { .. })
    ));
    assert_eq!(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![],
        })
        .encode(V5, &mut out),
        Err(Error::EmptySubscriptionList("SUBSCRIBE"))
    );
    // Property values the decoder would refuse are refused by the encoder too.
    let bad_props = [
        (
            Properties {
                maximum_qos: Some(QoS::ExactlyOnce),
                ..Properties::default()
            },
            0x24,
        ),
        (
            Properties {
                receive_maximum: Some(0),
                ..Properties::default()
            },
            0x21,
        ),
        (
            Properties {
                authentication_data: Some(Bytes::from_static(b"x")),
                ..Properties::default()
            },
            0x16,
        ),
    ];
    for (properties, id) in bad_props {
        let ack = ConnAck {
            properties,
            ..ConnAck::default()
        };
        assert_eq!(
            ack.encode(V5, &mut out),
            Err(Error::InvalidPropertyValue(id))
        );
    }
    let sub = Subscribe {
        packet_id: 1,
        properties: Properties {
            subscription_identifiers: vec![1, 2],
            ..Properties::default()
        },
        filters: vec![(s("a"), SubscriptionOptions::new(QoS::AtMostOnce))],
    };
    assert_eq!(
        sub.encode(V5, &mut out),
        Err(Error::DuplicateProperty(0x0B))
    );
    assert!(out.is_empty());
    assert_eq!(MqttStr::new("a\0"), Err(Error::NullCharacter));
    assert_eq!(
        MqttStr::from_bytes(Bytes::from(vec![b'a'; 65_536])),
        Err(Error::TooLong("string"))
    );
}
