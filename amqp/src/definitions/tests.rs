use bytes::BytesMut;

use super::*;
use crate::codec::Decoder;

fn state_round_trip(s: DeliveryState) {
    let mut buf = BytesMut::new();
    s.encode(&mut buf);
    let mut dec = Decoder::new(&buf);
    let code = dec.read_u8().unwrap();
    assert_eq!(DeliveryState::decode_of(&mut dec, code).unwrap(), s);
    assert!(dec.is_empty());
}

fn fields() -> Fields {
    vec![
        ("x-opt-a".into(), Value::Int(-1)),
        ("x-opt-b".into(), Value::Symbol("v".into())),
    ]
}

#[test]
fn round_trips_every_delivery_state() {
    state_round_trip(DeliveryState::Received {
        section_number: 0,
        section_offset: 0,
    });
    state_round_trip(DeliveryState::Received {
        section_number: u32::MAX,
        section_offset: u64::MAX,
    });
    state_round_trip(DeliveryState::Accepted);
    state_round_trip(DeliveryState::Released);
    state_round_trip(DeliveryState::Rejected { error: None });
    state_round_trip(DeliveryState::Rejected {
        error: Some(AmqpError {
            condition: "amqp:decode-error".into(),
            description: Some("bad".into()),
            info: Some(fields()),
        }),
    });
    state_round_trip(DeliveryState::Rejected {
        error: Some(AmqpError {
            condition: "amqp:not-found".into(),
            description: None,
            info: None,
        }),
    });
    state_round_trip(DeliveryState::Modified {
        delivery_failed: None,
        undeliverable_here: None,
        message_annotations: None,
    });
    state_round_trip(DeliveryState::Modified {
        delivery_failed: Some(true),
        undeliverable_here: Some(false),
        message_annotations: Some(fields()),
    });
}

#[test]
fn decodes_hand_written_states() {
    // accepted with a symbolic descriptor and an explicit empty list8.
    let mut bytes = vec![0x00, 0xa3, 18];
    bytes.extend_from_slice(b"amqp:accepted:list");
    bytes.extend_from_slice(&[0xc0, 0x01, 0x00]);
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    assert_eq!(
        DeliveryState::decode_of(&mut dec, code),
        Ok(DeliveryState::Accepted)
    );
    // received without its mandatory section-offset.
    let bytes = [0x00, 0x53, 0x23, 0xc0, 0x02, 0x01, 0x43];
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    assert_eq!(
        DeliveryState::decode_of(&mut dec, code),
        Err(DecodeError::MissingField("section-offset"))
    );
    // transactional state: not implemented.
    let bytes = [0x00, 0x53, 0x34, 0x45];
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    assert_eq!(
        DeliveryState::decode_of(&mut dec, code),
        Err(DecodeError::Unsupported("transactions"))
    );
    // an unknown descriptor.
    let bytes = [0x00, 0x53, 0x60, 0x45];
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    assert_eq!(
        DeliveryState::decode_of(&mut dec, code),
        Err(DecodeError::UnknownDescriptor(Descriptor::Code(0x60)))
    );
}

#[test]
fn error_requires_a_condition() {
    let bytes = [0x00, 0x53, 0x1d, 0x45];
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    assert_eq!(
        AmqpError::decode_of(&mut dec, code),
        Err(DecodeError::MissingField("condition"))
    );
    let e = AmqpError::new(crate::condition::NOT_FOUND, "no such node");
    assert_eq!(e.condition, "amqp:not-found");
    assert_eq!(e.to_string(), "amqp:not-found: no such node");
}

#[test]
fn source_and_target_round_trip_with_defaults_omitted() {
    for s in [
        Source::default(),
        Source {
            address: Some("a".into()),
            ..Source::default()
        },
    ] {
        let mut buf = BytesMut::new();
        s.encode(&mut buf);
        let mut dec = Decoder::new(&buf);
        let code = dec.read_u8().unwrap();
        assert_eq!(Source::decode_of(&mut dec, code).unwrap(), s);
    }
    let mut buf = BytesMut::new();
    Target::default().encode(&mut buf);
    assert_eq!(&buf[..], &[0x00, 0x53, 0x29, 0x45]);
    let t = Target {
        address: Some("b".into()),
        capabilities: Some(vec!["queue".into()]),
        ..Target::default()
    };
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    let mut dec = Decoder::new(&buf);
    let code = dec.read_u8().unwrap();
    assert_eq!(Target::decode_of(&mut dec, code).unwrap(), t);
}

#[test]
fn addresses_may_be_symbols() {
    // target with a sym8 address.
    let bytes = [0x00, 0x53, 0x29, 0xc0, 0x04, 0x01, 0xa3, 0x01, b'q'];
    let mut dec = Decoder::new(&bytes);
    let code = dec.read_u8().unwrap();
    let t = Target::decode_of(&mut dec, code).unwrap();
    assert_eq!(t.address.as_deref(), Some("q"));
}

#[test]
fn enums_map_to_wire_values() {
    assert_eq!(Role::from_bool(true), Role::Receiver);
    assert!(!Role::Sender.as_bool());
    assert_eq!(Role::Sender.opposite(), Role::Receiver);
    for m in [
        SenderSettleMode::Unsettled,
        SenderSettleMode::Settled,
        SenderSettleMode::Mixed,
    ] {
        assert_eq!(SenderSettleMode::from_u8(m.as_u8()), Ok(m));
    }
    assert_eq!(SenderSettleMode::default(), SenderSettleMode::Mixed);
    assert_eq!(ReceiverSettleMode::default(), ReceiverSettleMode::First);
    assert_eq!(
        ReceiverSettleMode::from_u8(1),
        Ok(ReceiverSettleMode::Second)
    );
    assert!(ReceiverSettleMode::from_u8(2).is_err());
}

#[test]
fn decode_errors_map_to_conditions() {
    use crate::condition::*;
    assert_eq!(DecodeError::Truncated.condition(), DECODE_ERROR);
    assert_eq!(DecodeError::MissingField("x").condition(), INVALID_FIELD);
    assert_eq!(DecodeError::Unsupported("x").condition(), NOT_IMPLEMENTED);
    assert_eq!(
        DecodeError::WrongFrameType(1).condition(),
        CONNECTION_FRAMING_ERROR
    );
    assert_eq!(
        crate::FrameError::TooLarge { size: 2, max: 1 }.condition(),
        CONNECTION_FRAMING_ERROR
    );
}
