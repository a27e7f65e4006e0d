use bytes::{Bytes, BytesMut};

use super::*;
use crate::definitions::{
    AmqpError, DeliveryState, ReceiverSettleMode, Role, SenderSettleMode, Source, Target,
};
use crate::frame::{encode_frame, parse_amqp_frame};
use crate::types::{Symbol, Value};

fn syms(s: &[&str]) -> Option<Vec<Symbol>> {
    Some(s.iter().map(|s| Symbol::from(*s)).collect())
}

fn props() -> Option<crate::Fields> {
    Some(vec![
        ("product".into(), Value::String("shoal".into())),
        ("version".into(), Value::Uint(3)),
    ])
}

fn error() -> Option<AmqpError> {
    Some(AmqpError {
        condition: "amqp:link:detach-forced".into(),
        description: Some("operator request".into()),
        info: props(),
    })
}

/// Encodes as a frame on channel 7 with a payload, parses back, compares.
fn round_trip(p: Performative) {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, 7, &p, b"payload");
    let len = buf.len();
    assert_eq!(crate::check_frame(&buf, u32::MAX), Ok(Some(len)));
    let frame = parse_amqp_frame(buf.freeze()).unwrap();
    assert_eq!(frame.channel, 7);
    assert_eq!(frame.performative.as_ref(), Some(&p), "{}", p.name());
    assert_eq!(&frame.payload[..], b"payload");
}

fn full_open() -> Open {
    Open {
        container_id: "container-1".into(),
        hostname: Some("shoal.example".into()),
        max_frame_size: 65536,
        channel_max: 255,
        idle_time_out: Some(30_000),
        outgoing_locales: syms(&["en-US"]),
        incoming_locales: syms(&["en-US", "fr-FR"]),
        offered_capabilities: syms(&["ANONYMOUS-RELAY"]),
        desired_capabilities: syms(&["DELAYED_DELIVERY", "SHARED-SUBS"]),
        properties: props(),
    }
}

fn full_source() -> Source {
    Source {
        address: Some("queue/a".into()),
        durable: 2,
        expiry_policy: Some("never".into()),
        timeout: 60,
        dynamic: true,
        dynamic_node_properties: props(),
        distribution_mode: Some("copy".into()),
        filter: Some(vec![(
            "apache.org:selector-filter:string".into(),
            Value::Described(
                Box::new(Value::Ulong(0x0000_468c_0000_0004)),
                Box::new(Value::String("colour = 'red'".into())),
            ),
        )]),
        default_outcome: Some(DeliveryState::Modified {
            delivery_failed: Some(true),
            undeliverable_here: None,
            message_annotations: None,
        }),
        outcomes: syms(&["amqp:accepted:list", "amqp:rejected:list"]),
        capabilities: syms(&["queue"]),
    }
}

fn full_target() -> Target {
    Target {
        address: Some("topic/b".into()),
        durable: 1,
        expiry_policy: Some("link-detach".into()),
        timeout: 5,
        dynamic: true,
        dynamic_node_properties: props(),
        capabilities: syms(&["topic"]),
        coordinator: false,
    }
}

#[test]
fn round_trips_every_performative_fully_populated() {
    round_trip(Performative::Open(full_open()));
    round_trip(Performative::Begin(Begin {
        remote_channel: Some(3),
        next_outgoing_id: 1 << 31,
        incoming_window: 2048,
        outgoing_window: u32::MAX,
        handle_max: 1023,
        offered_capabilities: syms(&["a"]),
        desired_capabilities: syms(&["b"]),
        properties: props(),
    }));
    round_trip(Performative::Attach(Attach {
        name: "link-1".into(),
        handle: 300,
        role: Role::Receiver,
        snd_settle_mode: SenderSettleMode::Settled,
        rcv_settle_mode: ReceiverSettleMode::Second,
        source: Some(Box::new(full_source())),
        target: Some(Box::new(full_target())),
        unsettled: Some(Value::Map(vec![(
            Value::Binary(Bytes::from_static(b"tag")),
            Value::Null,
        )])),
        incomplete_unsettled: true,
        initial_delivery_count: Some(9),
        max_message_size: Some(1 << 40),
        offered_capabilities: syms(&["x"]),
        desired_capabilities: syms(&["y"]),
        properties: props(),
    }));
    round_trip(Performative::Flow(Flow {
        next_incoming_id: Some(10),
        incoming_window: 2048,
        next_outgoing_id: 11,
        outgoing_window: 4096,
        handle: Some(1),
        delivery_count: Some(70000),
        link_credit: Some(100),
        available: Some(0),
        drain: true,
        echo: true,
        properties: props(),
    }));
    round_trip(Performative::Transfer(Transfer {
        handle: 1,
        delivery_id: Some(u32::MAX),
        delivery_tag: Some(Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8])),
        message_format: Some(0),
        settled: Some(false),
        more: true,
        rcv_settle_mode: Some(ReceiverSettleMode::Second),
        state: Some(DeliveryState::Received {
            section_number: 2,
            section_offset: 1 << 33,
        }),
        resume: true,
        aborted: true,
        batchable: true,
    }));
    round_trip(Performative::Disposition(Disposition {
        role: Role::Receiver,
        first: 5,
        last: Some(500),
        settled: true,
        state: Some(DeliveryState::Rejected { error: error() }),
        batchable: true,
    }));
    round_trip(Performative::Detach(Detach {
        handle: 2,
        closed: true,
        error: error(),
    }));
    round_trip(Performative::End(End { error: error() }));
    round_trip(Performative::Close(Close { error: error() }));
}

#[test]
fn round_trips_every_performative_with_mandatory_fields_only() {
    round_trip(Performative::Open(Open {
        container_id: "c".into(),
        ..Open::default()
    }));
    round_trip(Performative::Begin(Begin::default()));
    round_trip(Performative::Attach(Attach::default()));
    round_trip(Performative::Flow(Flow::default()));
    round_trip(Performative::Transfer(Transfer::default()));
    round_trip(Performative::Disposition(Disposition::default()));
    round_trip(Performative::Detach(Detach::default()));
    round_trip(Performative::End(End::default()));
    round_trip(Performative::Close(Close::default()));
}

#[test]
fn round_trips_large_values_in_32_bit_forms() {
    let long = "x".repeat(300);
    let mut open = full_open();
    open.container_id = long.clone();
    open.offered_capabilities = Some(vec![Symbol(long.clone()), "short".into()]);
    open.properties = Some(
        (0..300)
            .map(|i| (Symbol(format!("k{i}")), Value::Uint(i)))
            .collect(),
    );
    round_trip(Performative::Open(open));
    let mut source = full_source();
    source.address = Some(long);
    round_trip(Performative::Attach(Attach {
        name: "n".into(),
        source: Some(Box::new(source)),
        ..Attach::default()
    }));
}

#[test]
fn encodes_compactly() {
    // Mandatory-only close: descriptor + list0.
    let mut buf = BytesMut::new();
    Close::default().encode(&mut buf);
    assert_eq!(&buf[..], &[0x00, 0x53, 0x18, 0x45]);
    // Flow with small numbers: uint0/smalluint, trailing defaults omitted.
    let mut buf = BytesMut::new();
    Flow {
        incoming_window: 0,
        next_outgoing_id: 1,
        outgoing_window: 300,
        ..Flow::default()
    }
    .encode(&mut buf);
    assert_eq!(
        &buf[..],
        &[0x00, 0x53, 0x13, 0xc0, 0x0a, 0x04, 0x40, 0x43, 0x52, 0x01, 0x70, 0, 0, 1, 0x2c]
    );
    // Disposition accepting one delivery, settled.
    let mut buf = BytesMut::new();
    Disposition {
        role: Role::Receiver,
        first: 7,
        last: None,
        settled: true,
        state: Some(DeliveryState::Accepted),
        batchable: false,
    }
    .encode(&mut buf);
    assert_eq!(
        &buf[..],
        &[
            0x00, 0x53, 0x15, 0xc0, 0x0a, 0x05, 0x41, 0x52, 0x07, 0x40, 0x41, 0x00, 0x53, 0x24,
            0x45
        ]
    );
}

/// An `open` written out by hand the way Qpid Proton-C sends it: symbolic-free ulong
/// descriptor, list32 (Proton always uses the wide form for performatives), `null`s for
/// defaulted fields, an explicit max-frame-size and channel-max, idle-time-out, and a
/// properties map.
#[test]
fn decodes_a_proton_style_open() {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x00, 0x53, 0x10]);
    let mut fields = Vec::new();
    // container-id: str8 "d7e1b0c2"
    fields.extend_from_slice(&[0xa1, 0x08]);
    fields.extend_from_slice(b"d7e1b0c2");
    // hostname: str8 "localhost"
    fields.extend_from_slice(&[0xa1, 0x09]);
    fields.extend_from_slice(b"localhost");
    // max-frame-size: uint 0x00004000 (as Proton writes it, not smalluint)
    fields.extend_from_slice(&[0x70, 0x00, 0x00, 0x40, 0x00]);
    // channel-max: ushort 0x7fff
    fields.extend_from_slice(&[0x60, 0x7f, 0xff]);
    // idle-time-out: uint 60000
    fields.extend_from_slice(&[0x70, 0x00, 0x00, 0xea, 0x60]);
    // outgoing-locales, incoming-locales: null
    fields.extend_from_slice(&[0x40, 0x40]);
    // offered-capabilities: sym8 "ANONYMOUS-RELAY" (single symbol, not an array)
    fields.extend_from_slice(&[0xa3, 0x0f]);
    fields.extend_from_slice(b"ANONYMOUS-RELAY");
    // desired-capabilities: array8 of sym8 ["DELAYED_DELIVERY"]
    fields.extend_from_slice(&[0xe0, 0x13, 0x01, 0xa3, 0x10]);
    fields.extend_from_slice(b"DELAYED_DELIVERY");
    // properties: map8 { product: "qpid-proton" }
    fields.extend_from_slice(&[0xc1, 0x17, 0x02, 0xa3, 0x07]);
    fields.extend_from_slice(b"product");
    fields.extend_from_slice(&[0xa1, 0x0b]);
    fields.extend_from_slice(b"qpid-proton");
    body.push(0xd0);
    body.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    body.extend_from_slice(&10u32.to_be_bytes());
    body.extend_from_slice(&fields);
    let mut frame = Vec::new();
    frame.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    frame.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]);
    frame.extend_from_slice(&body);

    let f = parse_amqp_frame(Bytes::from(frame)).unwrap();
    assert_eq!(f.channel, 0);
    assert!(f.payload.is_empty());
    let Some(Performative::Open(open)) = f.performative else {
        panic!("not an open: {:?}", f.performative);
    };
    assert_eq!(
        open,
        Open {
            container_id: "d7e1b0c2".into(),
            hostname: Some("localhost".into()),
            max_frame_size: 16384,
            channel_max: 32767,
            idle_time_out: Some(60000),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: syms(&["ANONYMOUS-RELAY"]),
            desired_capabilities: syms(&["DELAYED_DELIVERY"]),
            properties: Some(vec![(
                "product".into(),
                Value::String("qpid-proton".into())
            )]),
        }
    );
}

/// A transfer as a client sends it, with a symbolic descriptor, a list8 and a payload; the tag
/// and payload must be slices of the frame.
#[test]
fn decodes_a_hand_written_transfer_zero_copy() {
    let mut frame = vec![0, 0, 0, 0, 0x02, 0x00, 0x00, 0x01, 0x00, 0xa3, 0x12];
    frame.extend_from_slice(b"amqp:transfer:list");
    // handle 0, delivery-id 5, tag "t1", message-format 0, settled true
    frame.extend_from_slice(&[0xc0, 0x0a, 0x05, 0x43, 0x52, 0x05, 0xa0, 0x02, b't', b'1']);
    frame.extend_from_slice(&[0x43, 0x41]);
    frame.extend_from_slice(b"\x00\x53\x77\xa1\x02hi");
    let len = frame.len() as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let bytes = Bytes::from(frame);
    let f = parse_amqp_frame(bytes.clone()).unwrap();
    assert_eq!(f.channel, 1);
    let Some(Performative::Transfer(t)) = f.performative else {
        panic!("not a transfer");
    };
    assert_eq!(t.handle, 0);
    assert_eq!(t.delivery_id, Some(5));
    assert_eq!(t.message_format, Some(0));
    assert_eq!(t.settled, Some(true));
    assert!(!t.more);
    let tag = t.delivery_tag.unwrap();
    assert_eq!(&tag[..], b"t1");
    assert_eq!(&f.payload[..], b"\x00\x53\x77\xa1\x02hi");
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(range.contains(&(tag.as_ptr() as usize)), "tag was copied");
    assert!(
        range.contains(&(f.payload.as_ptr() as usize)),
        "payload was copied"
    );
}

#[test]
fn missing_mandatory_fields_are_reported() {
    let cases: &[(u8, &str)] = &[
        (0x10, "container-id"),
        (0x11, "next-outgoing-id"),
        (0x12, "name"),
        (0x13, "incoming-window"),
        (0x14, "handle"),
        (0x15, "role"),
        (0x16, "handle"),
    ];
    for &(code, field) in cases {
        let frame = vec![0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, code, 0x45];
        assert_eq!(
            parse_amqp_frame(Bytes::from(frame)),
            Err(DecodeError::MissingField(field)),
            "descriptor 0x{code:02x}"
        );
    }
    // A count larger than the list's bytes is refused up front.
    let frame = vec![0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x14, 0xc0, 0x01, 0x01];
    assert_eq!(
        parse_amqp_frame(Bytes::from(frame)),
        Err(DecodeError::InvalidValue(
            "element count exceeds compound size"
        ))
    );
    // A null mandatory field is as missing as an absent one.
    let frame = vec![
        0, 0, 0, 15, 2, 0, 0, 0, 0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x40,
    ];
    assert_eq!(
        parse_amqp_frame(Bytes::from(frame)),
        Err(DecodeError::MissingField("handle"))
    );
}

#[test]
fn ignores_unknown_trailing_fields() {
    // detach with handle 1, closed true, error null, then two extra fields from the future.
    let frame = vec![
        0, 0, 0, 21, 2, 0, 0, 0, 0x00, 0x53, 0x16, 0xc0, 0x08, 0x05, 0x52, 0x01, 0x41, 0x40, 0xa1,
        0x00, 0x41,
    ];
    let f = parse_amqp_frame(Bytes::from(frame)).unwrap();
    assert_eq!(
        f.performative,
        Some(Performative::Detach(Detach {
            handle: 1,
            closed: true,
            error: None
        }))
    );
}

#[test]
fn coordinator_target_decodes_as_a_coordinator() {
    let mut buf = BytesMut::new();
    crate::codec::put_descriptor(&mut buf, 0x12);
    // attach: name "txn", handle 0, role sender, null, null, source null, target coordinator
    buf.extend_from_slice(&[
        0xc0, 0x0f, 0x07, 0xa1, 0x03, b't', b'x', b'n', 0x43, 0x42, 0x40,
    ]);
    buf.extend_from_slice(&[0x40, 0x40, 0x00, 0x53, 0x30, 0x45]);
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&((buf.len() + 8) as u32).to_be_bytes());
    frame.extend_from_slice(&[2, 0, 0, 0]);
    frame.extend_from_slice(&buf);
    let frame = parse_amqp_frame(frame.freeze()).unwrap();
    let Some(Performative::Attach(attach)) = frame.performative else {
        panic!("an attach");
    };
    let target = attach.target.expect("a target");
    assert!(target.coordinator);
    assert_eq!(attach.name, "txn");
}

#[test]
fn attach_accepts_symbol_addresses_and_settle_mode_bounds() {
    let mut buf = BytesMut::new();
    Attach {
        name: "l".into(),
        snd_settle_mode: SenderSettleMode::Unsettled,
        ..Attach::default()
    }
    .encode(&mut buf);
    // The snd-settle-mode ubyte 0 is the last byte: make it 3 (out of range).
    let mut bad = buf.to_vec();
    *bad.last_mut().unwrap() = 3;
    let mut dec = crate::codec::Decoder::new(&bad);
    assert_eq!(
        Performative::decode(&mut dec),
        Err(DecodeError::InvalidValue("snd-settle-mode"))
    );
}
