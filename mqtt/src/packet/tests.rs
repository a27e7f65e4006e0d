use bytes::{BufMut, Bytes, BytesMut};

use super::samples::{encode, raw, s, sample_packets};
use super::*;
use crate::codec::put_varint;
use crate::properties::Properties;
use crate::reason;

#[test]
fn every_packet_round_trips_in_both_versions() {
    for v in [Version::V311, Version::V5] {
        for p in sample_packets(v) {
            let bytes = encode(&p, v);
            assert_eq!(check(&bytes, bytes.len()), Ok(Some(bytes.len())), "{p:?}");
            // Every strict prefix is "need more", never an error or a wrong length.
            for cut in 0..bytes.len() {
                assert_eq!(
                    check(&bytes[..cut], usize::MAX),
                    Ok(None),
                    "{p:?} cut {cut}"
                );
            }
            let back = parse(bytes.clone(), v).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            assert_eq!(back, p, "{v:?}");
            // Two packets back to back: check sees only the first.
            let mut two = BytesMut::from(&bytes[..]);
            two.put_slice(&bytes);
            assert_eq!(check(&two, usize::MAX), Ok(Some(bytes.len())));
        }
    }
}

#[test]
fn decoding_is_zero_copy() {
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: 5,
        ..Publish::new(s("t/x"), Bytes::from_static(b"payload"))
    });
    let bytes = encode(&p, Version::V5);
    let range = bytes.as_ptr_range();
    let Ok(Packet::Publish(back)) = parse(bytes.clone(), Version::V5) else {
        panic!("not a publish");
    };
    assert!(range.contains(&back.payload.as_ptr()));
    assert!(range.contains(&back.topic.as_bytes().as_ptr()));
}

#[test]
fn golden_bytes() {
    let v3 = Version::V311;
    let v5 = Version::V5;
    // 3.1.2.10-style CONNECT: user name, password, will QoS 1, will flag, clean session.
    let connect = [
        0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A, 0x00, 0x01, b'c',
        0x00, 0x01, b'w', 0x00, 0x01, b'm', 0x00, 0x01, b'u', 0x00, 0x01, b'p',
    ];
    let c = Packet::Connect(Box::new(Connect {
        version: v3,
        clean_start: true,
        keep_alive: 10,
        client_id: s("c"),
        will: Some(Will {
            topic: s("w"),
            payload: Bytes::from_static(b"m"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties::default(),
    }));
    assert_eq!(encode(&c, v3), &connect[..]);
    assert_eq!(parse(Bytes::copy_from_slice(&connect), v5), Ok(c));

    // MQTT 5 CONNECT, no properties, keep alive 60.
    let connect5 = [
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01,
        b'c',
    ];
    let Ok(Packet::Connect(c5)) = parse(Bytes::copy_from_slice(&connect5), v3) else {
        panic!("CONNECT 5");
    };
    assert_eq!(c5.version, v5);
    assert_eq!(c5.keep_alive, 60);
    assert_eq!(c5.client_id, "c");

    // 3.3.2.3 topic "a/b", packet id 10, QoS 1, payload "hi".
    let publish = [
        0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
    ];
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: 10,
        ..Publish::new(s("a/b"), Bytes::from_static(b"hi"))
    });
    assert_eq!(encode(&p, v3), &publish[..]);
    assert_eq!(parse(Bytes::copy_from_slice(&publish), v3), Ok(p));

    // 3.8.3 SUBSCRIBE "a/b" QoS 1 and "c/d" QoS 2, packet id 10; its SUBACK.
    let subscribe = [
        0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'd',
        0x02,
    ];
    let sub = Packet::Subscribe(Subscribe {
        packet_id: 10,
        properties: Properties::default(),
        filters: vec![
            (s("a/b"), SubscriptionOptions::new(QoS::AtLeastOnce)),
            (s("c/d"), SubscriptionOptions::new(QoS::ExactlyOnce)),
        ],
    });
    assert_eq!(encode(&sub, v3), &subscribe[..]);
    assert_eq!(parse(Bytes::copy_from_slice(&subscribe), v3), Ok(sub));
    let suback = Packet::SubAck(SubAck {
        packet_id: 10,
        properties: Properties::default(),
        reason_codes: Bytes::from_static(&[0x00, 0x01, 0x02, 0x80]),
    });
    assert_eq!(
        encode(&suback, v3),
        &[0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80][..]
    );

    // MQTT 5 CONNACK with receive maximum 10 and maximum QoS 1.
    let connack5 = [0x20, 0x08, 0x00, 0x00, 0x05, 0x21, 0x00, 0x0A, 0x24, 0x01];
    let ca = Packet::ConnAck(ConnAck {
        session_present: false,
        code: 0,
        properties: Properties {
            receive_maximum: Some(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            ..Properties::default()
        },
    });
    assert_eq!(encode(&ca, v5), &connack5[..]);
    assert_eq!(parse(Bytes::copy_from_slice(&connack5), v5), Ok(ca));

    // Fixed-size packets.
    assert_eq!(encode(&Packet::PingReq, v3), &[0xC0, 0x00][..]);
    assert_eq!(encode(&Packet::PingResp, v5), &[0xD0, 0x00][..]);
    assert_eq!(
        encode(&Packet::Disconnect(Disconnect::default()), v5),
        &[0xE0, 0x00][..]
    );
    let puback = PubResp {
        packet_id: 10,
        ..PubResp::default()
    };
    assert_eq!(
        encode(&Packet::PubAck(puback.clone()), v5),
        &[0x40, 0x02, 0x00, 0x0A][..]
    );
    assert_eq!(
        encode(&Packet::PubRel(puback), v3),
        &[0x62, 0x02, 0x00, 0x0A][..]
    );
}

#[test]
fn remaining_length_encodings_from_the_spec() {
    // Table 2.4 boundaries.
    let cases: [(u32, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (v, bytes) in cases {
        let mut out = BytesMut::new();
        put_varint(&mut out, v);
        assert_eq!(&out[..], bytes);
        assert_eq!(crate::codec::varint_len(v), bytes.len());
        assert_eq!(
            crate::codec::decode_varint(bytes),
            Ok(Some((v, bytes.len())))
        );
        let mut header = vec![0x30];
        header.extend_from_slice(bytes);
        let total = header.len() + v as usize;
        let got = check(&header, usize::MAX);
        if v == 0 {
            assert_eq!(got, Ok(Some(total)));
        } else {
            assert_eq!(got, Ok(None));
        }
    }
}

#[test]
fn fast_paths_match_the_generic_encoder() {
    for v in [Version::V311, Version::V5] {
        for kind in [
            PubRespKind::PubAck,
            PubRespKind::PubRec,
            PubRespKind::PubRel,
            PubRespKind::PubComp,
        ] {
            let codes = match kind {
                PubRespKind::PubAck | PubRespKind::PubRec => [0, reason::NOT_AUTHORIZED],
                _ => [0, reason::PACKET_IDENTIFIER_NOT_FOUND],
            };
            for code in codes {
                let resp = PubResp {
                    packet_id: 300,
                    reason: if v == Version::V5 { code } else { 0 },
                    properties: Properties::default(),
                };
                let mut generic = BytesMut::new();
                resp.encode(kind, v, &mut generic).expect("encode");
                let mut fast = BytesMut::new();
                encode_pub_resp(&mut fast, kind, v, 300, resp.reason);
                assert_eq!(generic, fast);
            }
        }
        let mut out = BytesMut::new();
        encode_pub_resp(
            &mut out,
            PubRespKind::PubComp,
            v,
            9,
            reason::PACKET_IDENTIFIER_NOT_FOUND,
        );
        let expect: &[u8] = match v {
            Version::V311 => &[0x70, 0x02, 0x00, 0x09],
            Version::V5 => &[0x70, 0x03, 0x00, 0x09, 0x92],
        };
        assert_eq!(&out[..], expect);

        let mut out = BytesMut::new();
        encode_connack(&mut out, v, true, 0, None).expect("connack");
        let expect: &[u8] = match v {
            Version::V311 => &[0x20, 0x02, 0x01, 0x00],
            Version::V5 => &[0x20, 0x03, 0x01, 0x00, 0x00],
        };
        assert_eq!(&out[..], expect);
        let mut out = BytesMut::new();
        encode_pingresp(&mut out);
        assert_eq!(&out[..], &[0xD0, 0x00]);
    }
}

#[test]
fn publish_header_leaves_the_payload_to_the_caller() {
    let p = Publish {
        qos: QoS::AtLeastOnce,
        packet_id: 77,
        properties: Properties {
            message_expiry_interval: Some(9),
            ..Properties::default()
        },
        ..Publish::new(s("big/one"), Bytes::from(vec![7u8; 100_000]))
    };
    for v in [Version::V311, Version::V5] {
        let mut whole = BytesMut::new();
        p.encode(v, &mut whole).expect("encode");
        let mut header = BytesMut::new();
        p.encode_header(v, &mut header).expect("header");
        assert_eq!(header.len() + p.payload.len(), whole.len());
        assert_eq!(&whole[..header.len()], &header[..]);
        // The header alone already announces the full length.
        assert_eq!(check(&header, usize::MAX), Ok(None));
    }
}

#[test]
fn v5_acks_accept_the_short_forms() {
    let v5 = Version::V5;
    // PUBACK: packet id only, then with a reason code only.
    let Ok(Packet::PubAck(a)) = parse(raw(0x40, &[0, 1]), v5) else {
        panic!()
    };
    assert_eq!((a.packet_id, a.reason), (1, 0));
    let Ok(Packet::PubRec(a)) = parse(raw(0x50, &[0, 1, 0x10]), v5) else {
        panic!()
    };
    assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS);
    // DISCONNECT and AUTH with no body mean success.
    assert_eq!(
        parse(raw(0xE0, &[]), v5),
        Ok(Packet::Disconnect(Disconnect::default()))
    );
    assert_eq!(parse(raw(0xF0, &[]), v5), Ok(Packet::Auth(Auth::default())));
    let Ok(Packet::Disconnect(d)) = parse(raw(0xE0, &[0x8E]), v5) else {
        panic!()
    };
    assert_eq!(d.reason, reason::SESSION_TAKEN_OVER);
}

#[test]
fn check_refuses_oversized_and_malformed_lengths() {
    let e = check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], usize::MAX);
    assert_eq!(e, Err(Error::MalformedVarInt));
    assert_eq!(e.unwrap_err().reason_code(), reason::MALFORMED_PACKET);
    // Refused as soon as the length is readable, before the body arrives.
    let e = check(&[0x30, 0x7F], 100).unwrap_err();
    assert_eq!(
        e,
        Error::PacketTooLarge {
            size: 129,
            max: 100
        }
    );
    assert_eq!(e.reason_code(), reason::PACKET_TOO_LARGE);
    assert_eq!(check(&[0x30, 0x62], 100), Ok(None));
    assert_eq!(check(&[], 100), Ok(None));
    assert_eq!(check(&[0x30], 100), Ok(None));
    assert_eq!(check(&[0x30, 0x80], 100), Ok(None));
}
