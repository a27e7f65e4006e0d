use bytes::{Bytes, BytesMut};

use super::*;
use crate::definitions::DeliveryState;
use crate::performative::{Flow, Open, Transfer};

#[test]
fn parses_protocol_headers() {
    assert_eq!(parse_protocol_header(b""), Ok(None));
    assert_eq!(parse_protocol_header(b"AM"), Ok(None));
    assert_eq!(parse_protocol_header(b"AMQP\x00\x01\x00"), Ok(None));
    assert_eq!(
        parse_protocol_header(&AMQP_HEADER),
        Ok(Some(ProtocolId::Amqp))
    );
    assert_eq!(
        parse_protocol_header(&SASL_HEADER),
        Ok(Some(ProtocolId::Sasl))
    );
    assert_eq!(
        parse_protocol_header(&TLS_HEADER),
        Ok(Some(ProtocolId::Tls))
    );
    // Trailing bytes (the first frame) do not matter.
    assert_eq!(
        parse_protocol_header(b"AMQP\x03\x01\x00\x00\x00\x00"),
        Ok(Some(ProtocolId::Sasl))
    );
    assert_eq!(parse_protocol_header(b"GE"), Err(HeaderError::NotAmqp));
    assert_eq!(
        parse_protocol_header(b"GET / HTTP/1.1"),
        Err(HeaderError::NotAmqp)
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x00\x00\x09\x01"),
        Err(HeaderError::UnsupportedVersion(*b"AMQP\x00\x00\x09\x01"))
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x01\x01\x00\x00"),
        Err(HeaderError::UnsupportedVersion(*b"AMQP\x01\x01\x00\x00"))
    );
    for id in [ProtocolId::Amqp, ProtocolId::Sasl, ProtocolId::Tls] {
        assert_eq!(parse_protocol_header(&id.header()), Ok(Some(id)));
    }
}

#[test]
fn check_frame_handles_incomplete_input() {
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        0,
        &Performative::Open(Open {
            container_id: "c".into(),
            ..Open::default()
        }),
        &[],
    );
    let len = buf.len();
    for cut in 0..len {
        assert_eq!(check_frame(&buf[..cut], 512), Ok(None), "cut at {cut}");
    }
    assert_eq!(check_frame(&buf, 512), Ok(Some(len)));
    // Followed by more data: still exactly one frame.
    buf.extend_from_slice(&[0, 0, 0]);
    assert_eq!(check_frame(&buf, 512), Ok(Some(len)));
}

#[test]
fn check_frame_rejects_oversized_and_malformed_frames() {
    // Oversized is known from the first 4 bytes, before the rest arrives.
    assert_eq!(
        check_frame(&[0, 0, 2, 1], 512),
        Err(FrameError::TooLarge {
            size: 513,
            max: 512
        })
    );
    assert_eq!(
        check_frame(&[0xff, 0xff, 0xff, 0xff], u32::MAX - 1),
        Err(FrameError::TooLarge {
            size: u32::MAX,
            max: u32::MAX - 1
        })
    );
    assert!(matches!(
        check_frame(&[0, 0, 0, 7], 512),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        check_frame(&[0, 0, 0, 8, 1, 0, 0, 0], 512),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        check_frame(&[0, 0, 0, 12, 4, 0, 0, 0], 512),
        Err(FrameError::Malformed(_))
    ));
    // doff 3 within a 12-byte frame is fine (an extended header).
    assert_eq!(
        check_frame(&[0, 0, 0, 12, 3, 0, 0, 0, 1, 2, 3, 4], 512),
        Ok(Some(12))
    );
}

#[test]
fn heartbeat_frames() {
    let mut buf = BytesMut::new();
    encode_empty_frame(&mut buf);
    assert_eq!(&buf[..], &[0, 0, 0, 8, 2, 0, 0, 0]);
    assert_eq!(check_frame(&buf, 512), Ok(Some(8)));
    let f = parse_amqp_frame(buf.freeze()).unwrap();
    assert_eq!(f.performative, None);
    assert_eq!(f.channel, 0);
    assert!(f.payload.is_empty());
    // Extended header skipped, still empty.
    let f = parse_amqp_frame(Bytes::from_static(&[0, 0, 0, 12, 3, 0, 0, 5, 9, 9, 9, 9])).unwrap();
    assert_eq!(f.performative, None);
    assert_eq!(f.channel, 5);
}

#[test]
fn parse_amqp_frame_rejects_bad_frames() {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, 1, &Performative::Flow(Flow::default()), &[]);
    let good = buf.freeze();
    assert!(parse_amqp_frame(good.clone()).is_ok());

    // Truncated: every strict prefix fails, none panics.
    for cut in 0..good.len() {
        assert!(parse_amqp_frame(good.slice(..cut)).is_err(), "cut {cut}");
    }
    // Wrong frame type.
    let mut v = good.to_vec();
    v[5] = 1;
    assert_eq!(
        parse_amqp_frame(Bytes::from(v)),
        Err(DecodeError::WrongFrameType(1))
    );
    // Wrong descriptor (0x19 is not a performative; 0x40 is SASL).
    for code in [0x19u8, 0x40, 0x0f] {
        let mut v = good.to_vec();
        v[10] = code;
        assert!(
            matches!(
                parse_amqp_frame(Bytes::from(v)),
                Err(DecodeError::UnknownDescriptor(_))
            ),
            "descriptor {code:02x}"
        );
    }
    // Garbage body.
    let frame = Bytes::from_static(&[0, 0, 0, 12, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    assert!(parse_amqp_frame(frame).is_err());
    // Size field disagreeing with the buffer.
    let mut v = good.to_vec();
    v.push(0);
    assert!(matches!(
        parse_amqp_frame(Bytes::from(v)),
        Err(DecodeError::InvalidValue(_))
    ));
    // Huge declared sizes inside the performative.
    let frame = Bytes::from_static(&[
        0, 0, 0, 20, 2, 0, 0, 0, 0x00, 0x53, 0x13, 0xd0, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff,
        0xff,
    ]);
    assert_eq!(parse_amqp_frame(frame), Err(DecodeError::Truncated));
    let frame = Bytes::from_static(&[
        0, 0, 0, 20, 2, 0, 0, 0, 0x00, 0x53, 0x13, 0xd0, 0x00, 0x00, 0x00, 0x04, 0xff, 0xff, 0xff,
        0xff,
    ]);
    assert!(matches!(
        parse_amqp_frame(frame),
        Err(DecodeError::InvalidValue(_))
    ));
}

#[test]
fn header_for_payload_matches_whole_frame() {
    let t = Performative::Transfer(Transfer {
        handle: 3,
        delivery_id: Some(42),
        delivery_tag: Some(Bytes::from_static(b"12345678")),
        message_format: Some(0),
        settled: Some(true),
        ..Transfer::default()
    });
    let payload = vec![0xabu8; 1000];
    let mut whole = BytesMut::new();
    encode_frame(&mut whole, 9, &t, &payload);
    let mut split = BytesMut::new();
    encode_frame_header_for_payload(&mut split, 9, &t, payload.len());
    split.extend_from_slice(&payload);
    assert_eq!(whole, split);
    let f = parse_amqp_frame(whole.freeze()).unwrap();
    assert_eq!(f.performative, Some(t));
    assert_eq!(&f.payload[..], &payload[..]);
}

#[test]
fn transfer_overhead_bound_holds() {
    let t = Performative::Transfer(Transfer {
        handle: u32::MAX,
        delivery_id: Some(u32::MAX),
        delivery_tag: Some(Bytes::from_static(&[0xff; 8])),
        message_format: Some(u32::MAX),
        settled: Some(true),
        more: true,
        rcv_settle_mode: Some(crate::ReceiverSettleMode::Second),
        state: Some(DeliveryState::Accepted),
        resume: true,
        aborted: true,
        batchable: true,
    });
    let mut buf = BytesMut::new();
    encode_frame_header_for_payload(&mut buf, u16::MAX, &t, 0);
    // The documented worst case, and below the advertised bound.
    assert_eq!(buf.len(), 50);
    assert!(buf.len() <= TRANSFER_OVERHEAD_MAX);
}

#[test]
fn frames_concatenate_in_one_buffer() {
    let mut buf = BytesMut::new();
    encode_empty_frame(&mut buf);
    encode_frame(&mut buf, 2, &Performative::Flow(Flow::default()), &[]);
    encode_empty_frame(&mut buf);
    let mut seen = Vec::new();
    while let Some(len) = check_frame(&buf, 512).unwrap() {
        let f = parse_amqp_frame(buf.split_to(len).freeze()).unwrap();
        seen.push(f.performative.map(|p| p.name()));
    }
    assert!(buf.is_empty());
    assert_eq!(seen, vec![None, Some("flow"), None]);
}
