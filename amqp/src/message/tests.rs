use bytes::{Bytes, BytesMut};

use super::*;
use crate::codec::{put_descriptor, put_fields, put_value};
use crate::types::Symbol;

fn full_message() -> MessageBuilder {
    MessageBuilder {
        header: Some(Header {
            durable: true,
            priority: 9,
            ttl: Some(60_000),
            first_acquirer: true,
            delivery_count: 2,
        }),
        message_id: Some(Value::String("msg-1".into())),
        to: Some("queue/orders".into()),
        subject: Some("order".into()),
        reply_to: Some("queue/replies".into()),
        correlation_id: Some(Value::Ulong(77)),
        content_type: Some("application/json".into()),
        creation_time: Some(1_700_000_000_000),
        absolute_expiry_time: Some(1_700_000_060_000),
        application_properties: vec![
            ("region".into(), Value::String("eu".into())),
            ("amount".into(), Value::Long(-12)),
        ],
        message_annotations: vec![("x-opt-partition".into(), Value::Int(3))],
        body: Body::Data(Bytes::from_static(b"{\"id\":1}")),
    }
}

fn info_of(m: &MessageBuilder) -> MessageInfo {
    MessageInfo {
        header: m.header.clone(),
        to: m.to.clone(),
        reply_to: m.reply_to.clone(),
        message_id: m.message_id.clone(),
        correlation_id: m.correlation_id.clone(),
        subject: m.subject.clone(),
        absolute_expiry_time: m.absolute_expiry_time,
        creation_time: m.creation_time,
    }
}

#[test]
fn builder_round_trips_through_decode_message() {
    let bodies = [
        Body::Empty,
        Body::Data(Bytes::from(vec![5u8; 70_000])),
        Body::Value(Value::List(vec![
            Value::Uint(1),
            Value::String("two".into()),
        ])),
        Body::Value(Value::String("hello".into())),
    ];
    for body in bodies {
        let m = MessageBuilder {
            body,
            ..full_message()
        };
        let bytes = m.to_bytes();
        assert_eq!(decode_message(&bytes).unwrap(), m);
    }
    let minimal = MessageBuilder::default();
    assert_eq!(decode_message(&minimal.to_bytes()).unwrap(), minimal);
}

#[test]
fn scan_reads_header_and_properties() {
    let m = full_message();
    let bytes = m.to_bytes();
    assert_eq!(scan_message(&bytes), Ok(Scan::Complete(info_of(&m))));
}

#[test]
fn scan_without_header_or_annotations() {
    let m = MessageBuilder {
        to: Some("t".into()),
        message_id: Some(Value::Uuid([1; 16])),
        body: Body::Value(Value::Null),
        ..MessageBuilder::default()
    };
    let bytes = m.to_bytes();
    assert_eq!(scan_message(&bytes), Ok(Scan::Complete(info_of(&m))));
    // Body only: complete, nothing to route on.
    let bytes = MessageBuilder::default().to_bytes();
    assert_eq!(
        scan_message(&bytes),
        Ok(Scan::Complete(MessageInfo::default()))
    );
}

#[test]
fn scan_skips_annotations_and_stops_at_the_body() {
    let mut buf = BytesMut::new();
    // delivery-annotations with a nested value the scanner must skip without decoding.
    put_descriptor(&mut buf, 0x71);
    put_fields(
        &mut buf,
        &vec![(
            Symbol::from("x-opt-deep"),
            Value::List(vec![Value::Map(vec![(
                Value::Null,
                Value::Binary(Bytes::from(vec![0; 400])),
            )])]),
        )],
    );
    Header::default().encode(&mut buf);
    // The body is garbage: it must never be decoded.
    put_descriptor(&mut buf, 0x75);
    buf.extend_from_slice(&[0xb0, 0xff, 0xff, 0xff, 0xff, 0xde, 0xad]);
    assert_eq!(
        scan_message(&buf),
        Ok(Scan::Complete(MessageInfo {
            header: Some(Header::default()),
            ..MessageInfo::default()
        }))
    );
}

#[test]
fn scan_is_incomplete_on_every_truncation_before_properties() {
    let m = full_message();
    let bytes = m.to_bytes();
    // Find where properties end: the prefix that first scans complete.
    let complete_at = (0..=bytes.len())
        .find(|&n| matches!(scan_message(&bytes[..n]), Ok(Scan::Complete(_))))
        .unwrap();
    for n in 0..complete_at {
        assert_eq!(
            scan_message(&bytes[..n]),
            Ok(Scan::Incomplete),
            "prefix {n}"
        );
    }
    // Properties end well before the body: the rest is not needed.
    assert!(complete_at < bytes.len() - 8);
    assert_eq!(
        scan_message(&bytes[..complete_at]),
        Ok(Scan::Complete(info_of(&m)))
    );

    // Without properties, a cut-off body descriptor is still incomplete, and the body's
    // descriptor alone is enough.
    let m = MessageBuilder {
        header: Some(Header::default()),
        body: Body::Data(Bytes::from_static(b"abc")),
        ..MessageBuilder::default()
    };
    let bytes = m.to_bytes();
    let header_len = {
        let mut b = BytesMut::new();
        Header::default().encode(&mut b);
        b.len()
    };
    for n in 0..header_len + 3 {
        assert_eq!(
            scan_message(&bytes[..n]),
            Ok(Scan::Incomplete),
            "prefix {n}"
        );
    }
    assert!(matches!(
        scan_message(&bytes[..header_len + 3]),
        Ok(Scan::Complete(_))
    ));
}

#[test]
fn scan_rejects_malformed_sections() {
    // Not a described section.
    assert!(scan_message(&[0x41]).is_err());
    // Unknown section descriptor.
    assert!(matches!(
        scan_message(&[0x00, 0x53, 0x10, 0x45]),
        Err(DecodeError::UnknownDescriptor(_))
    ));
    // A whole header section whose fields have the wrong types.
    let mut buf = BytesMut::new();
    put_descriptor(&mut buf, 0x70);
    put_value(&mut buf, &Value::List(vec![Value::String("no".into())]));
    assert!(matches!(
        scan_message(&buf),
        Err(DecodeError::UnexpectedType { .. })
    ));
    // Properties declared complete (list8 size fits the input) but with a count larger than it.
    assert!(scan_message(&[0x00, 0x53, 0x73, 0xc0, 0x01, 0x05]).is_err());
}

#[test]
fn header_defaults() {
    let h = Header::default();
    assert_eq!(h.priority, 4);
    let mut buf = BytesMut::new();
    h.encode(&mut buf);
    assert_eq!(&buf[..], &[0x00, 0x53, 0x70, 0x45]);
}

#[test]
fn decode_message_handles_multiple_body_sections() {
    let mut buf = BytesMut::new();
    for chunk in [&b"ab"[..], b"cd"] {
        put_descriptor(&mut buf, 0x75);
        crate::codec::put_binary(&mut buf, chunk);
    }
    put_descriptor(&mut buf, 0x78);
    put_fields(&mut buf, &vec![("sig".into(), Value::Null)]);
    let m = decode_message(&buf).unwrap();
    assert_eq!(m.body, Body::Data(Bytes::from_static(b"abcd")));

    let mut buf = BytesMut::new();
    for v in [Value::Uint(1), Value::Uint(2)] {
        put_descriptor(&mut buf, 0x76);
        put_value(&mut buf, &Value::List(vec![v]));
    }
    let m = decode_message(&buf).unwrap();
    assert_eq!(
        m.body,
        Body::Value(Value::List(vec![Value::Uint(1), Value::Uint(2)]))
    );

    // Truncation is an error for a whole-message decode.
    let bytes = full_message().to_bytes();
    assert_eq!(
        decode_message(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated)
    );
}
