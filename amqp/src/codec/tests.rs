use bytes::{Bytes, BytesMut};

use super::code::*;
use super::*;
use crate::error::DecodeError;
use crate::types::{Symbol, Value};

fn encode(v: &Value) -> BytesMut {
    let mut buf = BytesMut::new();
    put_value(&mut buf, v);
    buf
}

fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let v = dec.read_value()?;
    assert!(dec.is_empty(), "trailing bytes after {v:?}");
    Ok(v)
}

fn round_trip(v: Value) {
    let buf = encode(&v);
    assert_eq!(decode(&buf).unwrap(), v, "bytes {:02x?}", &buf[..]);
    // Skipping must consume exactly what decoding consumes.
    let mut dec = Decoder::new(&buf);
    dec.skip_value().unwrap();
    assert!(dec.is_empty(), "skip of {v:?}");
}

#[test]
fn round_trips_every_value_kind() {
    let values = vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Ubyte(200),
        Value::Ushort(65000),
        Value::Uint(0),
        Value::Uint(255),
        Value::Uint(256),
        Value::Uint(u32::MAX),
        Value::Ulong(0),
        Value::Ulong(7),
        Value::Ulong(u64::MAX),
        Value::Byte(-5),
        Value::Short(-3000),
        Value::Int(-1),
        Value::Int(127),
        Value::Int(-129),
        Value::Int(i32::MIN),
        Value::Long(-128),
        Value::Long(i64::MAX),
        Value::Float(1.5),
        Value::Double(-2.25e100),
        Value::Decimal32([1, 2, 3, 4]),
        Value::Decimal64([1, 2, 3, 4, 5, 6, 7, 8]),
        Value::Decimal128([9; 16]),
        Value::Char('é'),
        Value::Char('🦀'),
        Value::Timestamp(1_700_000_000_000),
        Value::Timestamp(-1),
        Value::Uuid([0xab; 16]),
        Value::Binary(Bytes::from_static(b"")),
        Value::Binary(Bytes::from(vec![1u8; 256])),
        Value::String("héllo".into()),
        Value::String("s".repeat(1000)),
        Value::Symbol("amqp:accepted:list".into()),
        Value::Symbol(Symbol("y".repeat(256))),
        Value::List(vec![]),
        Value::List(vec![Value::Null, Value::Uint(1), Value::String("a".into())]),
        Value::List((0..100).map(|i| Value::Long(i * 1000)).collect()),
        Value::Map(vec![]),
        Value::Map(vec![
            (
                Value::Symbol("k".into()),
                Value::List(vec![Value::Bool(true)]),
            ),
            (Value::Ulong(3), Value::Null),
        ]),
        Value::Described(
            Box::new(Value::Symbol("com.example:thing".into())),
            Box::new(Value::Map(vec![(Value::Int(1), Value::Int(2))])),
        ),
    ];
    for v in values {
        round_trip(v);
    }
}

#[test]
fn round_trips_arrays() {
    round_trip(Value::Array(vec![]));
    round_trip(Value::Array(vec![Value::Uint(1), Value::Uint(70000)]));
    round_trip(Value::Array(vec![Value::Bool(true), Value::Bool(false)]));
    round_trip(Value::Array(vec![
        Value::Symbol("a".into()),
        Value::Symbol(Symbol("b".repeat(300))),
    ]));
    round_trip(Value::Array(vec![Value::String("x".into()); 3]));
    round_trip(Value::Array(vec![
        Value::List(vec![Value::Int(1)]),
        Value::List(vec![]),
    ]));
    round_trip(Value::Array(vec![
        Value::Map(vec![(Value::Null, Value::Null)]),
        Value::Map(vec![]),
    ]));
    round_trip(Value::Array(vec![
        Value::Array(vec![Value::Ubyte(1), Value::Ubyte(2)]),
        Value::Array(vec![]),
    ]));
    round_trip(Value::Array(vec![
        Value::Described(Box::new(Value::Ulong(0x77)), Box::new(Value::Long(5))),
        Value::Described(Box::new(Value::Ulong(0x77)), Box::new(Value::Long(-5))),
    ]));
    round_trip(Value::Array((0..300).map(Value::Uint).collect()));
}

#[test]
fn heterogeneous_arrays_encode_mismatches_as_zero_values() {
    let buf = encode(&Value::Array(vec![
        Value::Uint(5),
        Value::String("x".into()),
    ]));
    assert_eq!(
        decode(&buf).unwrap(),
        Value::Array(vec![Value::Uint(5), Value::Uint(0)])
    );
}

#[test]
fn uses_compact_encodings() {
    assert_eq!(&encode(&Value::Uint(0))[..], &[UINT0]);
    assert_eq!(&encode(&Value::Uint(9))[..], &[SMALLUINT, 9]);
    assert_eq!(&encode(&Value::Ulong(0))[..], &[ULONG0]);
    assert_eq!(&encode(&Value::Ulong(9))[..], &[SMALLULONG, 9]);
    assert_eq!(&encode(&Value::Int(-2))[..], &[SMALLINT, 0xfe]);
    assert_eq!(&encode(&Value::Long(-2))[..], &[SMALLLONG, 0xfe]);
    assert_eq!(&encode(&Value::List(vec![]))[..], &[LIST0]);
    assert_eq!(
        &encode(&Value::List(vec![Value::Null]))[..],
        &[LIST8, 2, 1, NULL]
    );
    assert_eq!(&encode(&Value::Map(vec![]))[..], &[MAP8, 1, 0]);
    assert_eq!(
        &encode(&Value::Array(vec![Value::Symbol("ab".into())]))[..],
        &[ARRAY8, 5, 1, SYM8, 2, b'a', b'b']
    );
    let big = encode(&Value::List(vec![Value::Binary(Bytes::from(vec![0; 300]))]));
    assert_eq!(&big[..9], &[LIST32, 0, 0, 1, 0x35, 0, 0, 0, 1]);
}

/// Every primitive format code, written by hand.
#[test]
fn decodes_every_primitive_format_code() {
    let cases: Vec<(Vec<u8>, Value)> = vec![
        (vec![0x40], Value::Null),
        (vec![0x41], Value::Bool(true)),
        (vec![0x42], Value::Bool(false)),
        (vec![0x56, 0x01], Value::Bool(true)),
        (vec![0x56, 0x00], Value::Bool(false)),
        (vec![0x50, 0xff], Value::Ubyte(255)),
        (vec![0x60, 0x01, 0x02], Value::Ushort(0x0102)),
        (vec![0x70, 0, 0, 1, 0], Value::Uint(256)),
        (vec![0x52, 0x05], Value::Uint(5)),
        (vec![0x43], Value::Uint(0)),
        (vec![0x80, 0, 0, 0, 0, 0, 0, 1, 0], Value::Ulong(256)),
        (vec![0x53, 0x07], Value::Ulong(7)),
        (vec![0x44], Value::Ulong(0)),
        (vec![0x51, 0xff], Value::Byte(-1)),
        (vec![0x61, 0xff, 0xfe], Value::Short(-2)),
        (vec![0x71, 0xff, 0xff, 0xff, 0xfd], Value::Int(-3)),
        (vec![0x54, 0xfc], Value::Int(-4)),
        (
            vec![0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb],
            Value::Long(-5),
        ),
        (vec![0x55, 0xfa], Value::Long(-6)),
        (vec![0x72, 0x3f, 0xc0, 0, 0], Value::Float(1.5)),
        (vec![0x82, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], Value::Double(1.5)),
        (vec![0x74, 1, 2, 3, 4], Value::Decimal32([1, 2, 3, 4])),
        (
            vec![0x84, 1, 2, 3, 4, 5, 6, 7, 8],
            Value::Decimal64([1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        (
            [vec![0x94], vec![3; 16]].concat(),
            Value::Decimal128([3; 16]),
        ),
        (vec![0x73, 0, 0, 0, 0x41], Value::Char('A')),
        (
            vec![0x83, 0, 0, 0, 0, 0, 0, 0x03, 0xe8],
            Value::Timestamp(1000),
        ),
        ([vec![0x98], vec![7; 16]].concat(), Value::Uuid([7; 16])),
        (
            vec![0xa0, 2, 1, 2],
            Value::Binary(Bytes::from_static(&[1, 2])),
        ),
        (
            vec![0xb0, 0, 0, 0, 1, 9],
            Value::Binary(Bytes::from_static(&[9])),
        ),
        (vec![0xa1, 2, b'h', b'i'], Value::String("hi".into())),
        (vec![0xb1, 0, 0, 0, 1, b'h'], Value::String("h".into())),
        (vec![0xa3, 1, b's'], Value::Symbol("s".into())),
        (vec![0xb3, 0, 0, 0, 1, b's'], Value::Symbol("s".into())),
        (vec![0x45], Value::List(vec![])),
        (
            vec![0xc0, 3, 2, 0x41, 0x40],
            Value::List(vec![Value::Bool(true), Value::Null]),
        ),
        (
            vec![0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x43],
            Value::List(vec![Value::Uint(0)]),
        ),
        (
            vec![0xc1, 3, 2, 0x43, 0x41],
            Value::Map(vec![(Value::Uint(0), Value::Bool(true))]),
        ),
        (
            vec![0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x44, 0x40],
            Value::Map(vec![(Value::Ulong(0), Value::Null)]),
        ),
        (
            vec![0xe0, 4, 2, 0x50, 1, 2],
            Value::Array(vec![Value::Ubyte(1), Value::Ubyte(2)]),
        ),
        (
            vec![0xf0, 0, 0, 0, 7, 0, 0, 0, 2, 0x56, 1, 0],
            Value::Array(vec![Value::Bool(true), Value::Bool(false)]),
        ),
        (
            vec![0xe0, 7, 2, 0x00, 0x53, 0x09, 0x52, 1, 2],
            Value::Array(vec![
                Value::Described(Box::new(Value::Ulong(9)), Box::new(Value::Uint(1))),
                Value::Described(Box::new(Value::Ulong(9)), Box::new(Value::Uint(2))),
            ]),
        ),
        (
            vec![0x00, 0xa3, 1, b'd', 0x40],
            Value::Described(Box::new(Value::Symbol("d".into())), Box::new(Value::Null)),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode(&bytes), Ok(expected.clone()), "{bytes:02x?}");
        let mut dec = Decoder::new(&bytes);
        dec.skip_value().unwrap();
        assert!(dec.is_empty(), "skip {bytes:02x?}");
    }
}

#[test]
fn rejects_invalid_input() {
    assert_eq!(decode(&[0x57]), Err(DecodeError::InvalidConstructor(0x57)));
    assert_eq!(decode(&[0xff]), Err(DecodeError::InvalidConstructor(0xff)));
    assert_eq!(decode(&[0x70, 0, 0]), Err(DecodeError::Truncated));
    assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    assert_eq!(
        decode(&[0xa1, 2, 0xff, 0xfe]),
        Err(DecodeError::InvalidUtf8)
    );
    assert_eq!(decode(&[0xa1, 5, b'a']), Err(DecodeError::Truncated));
    assert_eq!(
        decode(&[0x56, 2]),
        Err(DecodeError::InvalidValue("boolean"))
    );
    assert_eq!(
        decode(&[0x73, 0, 0, 0xd8, 0]),
        Err(DecodeError::InvalidValue("char"))
    );
    assert_eq!(
        decode(&[0xc1, 2, 1, 0x40]),
        Err(DecodeError::InvalidValue("map with an odd element count"))
    );
}

#[test]
fn huge_declared_sizes_fail_fast() {
    // A list32 claiming 4 GiB and 4 billion elements, with no data behind it.
    assert_eq!(
        decode(&[0xd0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::Truncated)
    );
    // A plausible size but an absurd count: refused before any allocation.
    assert_eq!(
        decode(&[0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::InvalidValue(
            "element count exceeds compound size"
        ))
    );
    // Zero-width array elements cannot claim more elements than the array has bytes.
    assert_eq!(
        decode(&[0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40]),
        Err(DecodeError::InvalidValue("array count exceeds array size"))
    );
    assert_eq!(
        decode(&[0xb0, 0xff, 0xff, 0xff, 0xff, 1]),
        Err(DecodeError::Truncated)
    );
    // Skipping checks sizes too.
    let mut dec = Decoder::new(&[0xb3, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(dec.skip_value(), Err(DecodeError::Truncated));
}

#[test]
fn nesting_depth_is_bounded() {
    // 1000 nested list32s with consistent sizes: [[[[...]]]].
    let mut bytes = vec![0x45];
    for _ in 0..1000 {
        let mut outer = vec![0xd0];
        outer.extend_from_slice(&(bytes.len() as u32 + 4).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.extend_from_slice(&bytes);
        bytes = outer;
    }
    assert_eq!(decode(&bytes), Err(DecodeError::TooDeep));
    // 100000 nested described constructors.
    let bytes = vec![0x00; 100_000];
    assert_eq!(decode(&bytes), Err(DecodeError::TooDeep));
    let mut dec = Decoder::new(&bytes);
    assert_eq!(dec.skip_value(), Err(DecodeError::TooDeep));
    // Within the bound is fine.
    let mut v = Value::Null;
    for _ in 0..(MAX_DEPTH - 1) {
        v = Value::List(vec![v]);
    }
    round_trip(v);
}

#[test]
fn zero_copy_binary_from_bytes() {
    let bytes = Bytes::from(vec![0xa0, 3, 1, 2, 3]);
    let mut dec = Decoder::from_bytes(&bytes);
    let Value::Binary(b) = dec.read_value().unwrap() else {
        panic!("not binary");
    };
    assert_eq!(&b[..], &[1, 2, 3]);
    assert_eq!(b.as_ptr() as usize, bytes.as_ptr() as usize + 2);
}

#[test]
fn descriptors_map_symbols_to_codes() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x00, 0xa3, 14]);
    buf.extend_from_slice(b"amqp:open:list");
    assert_eq!(Decoder::new(&buf).described_header(), Ok(descriptor::OPEN));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x00, 0xa3, 3]);
    buf.extend_from_slice(b"foo");
    assert!(matches!(
        Decoder::new(&buf).described_header(),
        Err(DecodeError::UnknownDescriptor(_))
    ));
    assert_eq!(
        Decoder::new(&[0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x13]).described_header(),
        Ok(descriptor::FLOW)
    );
    assert_eq!(
        Decoder::new(&[0x41]).described_header(),
        Err(DecodeError::UnexpectedType {
            expected: "described type",
            found: 0x41
        })
    );
}

#[test]
fn field_reader_reads_multiple_symbols_in_both_forms() {
    // list8 of: sym8 "a", array8 of sym8 ["b", "c"], null
    let bytes = [
        0xc0, 0x0d, 0x03, 0xa3, 1, b'a', 0xe0, 0x06, 0x02, 0xa3, 1, b'b', 1, b'c', 0x40,
    ];
    let mut dec = Decoder::new(&bytes);
    let mut r = FieldReader::new(&mut dec).unwrap();
    assert_eq!(r.symbols().unwrap(), Some(vec!["a".into()]));
    assert_eq!(r.symbols().unwrap(), Some(vec!["b".into(), "c".into()]));
    assert_eq!(r.symbols().unwrap(), None);
    // Past the end: absent fields read as None.
    assert_eq!(r.symbols().unwrap(), None);
    assert_eq!(r.uint().unwrap(), None);
}

#[test]
fn typed_fields_reject_wrong_types() {
    let bytes = [0xc0, 0x03, 0x02, 0xa1, 0x00];
    let mut dec = Decoder::new(&bytes);
    let mut r = FieldReader::new(&mut dec).unwrap();
    assert_eq!(
        r.uint(),
        Err(DecodeError::UnexpectedType {
            expected: "uint",
            found: 0xa1
        })
    );
}
