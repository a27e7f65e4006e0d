use std::collections::BTreeMap;

use shoal_amqp::Value;

use super::*;
use crate::error::MeshError;

fn id(s: &str) -> RouterId {
    RouterId::new(s).unwrap()
}

fn samples() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            id: id("A"),
            instance: u64::MAX,
            version: PROTOCOL_VERSION,
            mode: Mode::Edge,
            seen: vec![id("B"), id("C")],
        }),
        Message::Ra(RouterAdvert {
            id: id("A"),
            instance: 7,
            ra_seq: 3,
            ls_seq: 0,
            mobile_seq: 1 << 40,
        }),
        Message::Lsu(LinkStateUpdate {
            id: id("A"),
            instance: 7,
            ls_seq: 9,
            peers: BTreeMap::from([(id("B"), Cost(1)), (id("C"), Cost(300))]),
        }),
        Message::Lsr(LinkStateRequest {
            id: id("B"),
            origin: id("A"),
            instance: 7,
            ls_seq: 9,
        }),
        Message::Mau(MobileUpdate {
            id: id("A"),
            instance: 7,
            mobile_seq: 2,
            change: MobileChange::Full(vec!["q1".into(), "topic/x".into()]),
        }),
        Message::Mau(MobileUpdate {
            id: id("A"),
            instance: 7,
            mobile_seq: 3,
            change: MobileChange::Delta {
                since: 2,
                add: vec!["q2".into()],
                del: vec![],
            },
        }),
        Message::Mar(MobileRequest {
            id: id("B"),
            origin: id("A"),
            instance: 7,
            mobile_seq: 3,
        }),
    ]
}

#[test]
fn every_message_round_trips_through_bytes() {
    for msg in samples() {
        let bytes = msg.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }
}

#[test]
fn subject_names_the_opcode() {
    let msg = &samples()[1];
    let decoded = shoal_amqp::decode_message(&msg.encode()).unwrap();
    assert_eq!(decoded.subject.as_deref(), Some("RA"));
}

fn with(msg: &Message, key: &str, v: Option<Value>) -> Value {
    let Value::Map(mut pairs) = msg.to_value() else {
        unreachable!()
    };
    pairs.retain(|(k, _)| k.as_str() != Some(key));
    if let Some(v) = v {
        pairs.insert(0, (Value::String(key.into()), v));
    }
    Value::Map(pairs)
}

#[test]
fn other_versions_are_errors_except_in_hellos() {
    let ra = &samples()[1];
    let err = Message::from_value(&with(ra, "v", Some(Value::Uint(2)))).unwrap_err();
    assert_eq!(err, MeshError::VersionMismatch { ours: 1, theirs: 2 });
    let hello = &samples()[0];
    let Message::Hello(h) = Message::from_value(&with(hello, "v", Some(Value::Uint(2)))).unwrap()
    else {
        panic!("not a hello")
    };
    assert_eq!(h.version, 2);
}

#[test]
fn malformed_maps_are_errors() {
    let lsu = &samples()[2];
    for key in ["op", "v", "id", "instance", "ls_seq", "peers"] {
        assert!(Message::from_value(&with(lsu, key, None)).is_err(), "{key}");
    }
    let bad = [
        ("id", Value::String("not valid!".into())),
        ("instance", Value::Long(-1)),
        ("peers", Value::List(vec![])),
        (
            "peers",
            Value::Map(vec![(Value::String("B".into()), Value::Uint(0))]),
        ),
        ("op", Value::String("NOPE".into())),
    ];
    for (key, v) in bad {
        assert!(
            Message::from_value(&with(lsu, key, Some(v))).is_err(),
            "{key}"
        );
    }
    assert!(Message::from_value(&Value::List(vec![])).is_err());
}

#[test]
fn oversized_lists_are_refused() {
    let hello = &samples()[0];
    let many = Value::List(
        (0..=MAX_ROUTERS)
            .map(|i| Value::String(format!("r{i}")))
            .collect(),
    );
    assert_eq!(
        Message::from_value(&with(hello, "seen", Some(many))).unwrap_err(),
        MeshError::TooLarge("seen")
    );
    let mau = &samples()[4];
    let long = Value::List(vec![Value::String("x".repeat(MAX_ADDRESS_LEN + 1))]);
    assert!(Message::from_value(&with(mau, "full", Some(long))).is_err());
    assert!(Message::decode(&vec![0u8; MAX_MESSAGE_BYTES + 1]).is_err());
}

#[test]
fn garbage_never_panics() {
    // Mutate every sample byte by byte and at random; decoding may fail but must return.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for msg in samples() {
        let bytes = msg.encode().to_vec();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = Message::decode(&b);
            let _ = Message::decode(&bytes[..i]);
        }
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..4 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            let _ = Message::decode(&b);
        }
    }
}
