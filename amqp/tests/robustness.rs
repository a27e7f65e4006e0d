//! Property tests with a tiny xorshift generator: hostile input must never panic, and generated
//! values must round-trip. Deterministic seeds, so a failure is reproducible.

use bytes::{Bytes, BytesMut};
use shoal_amqp::codec::{put_value, Decoder};
use shoal_amqp::*;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Valid frames to mutate: one of each performative and SASL body, and a transfer with a
/// message payload.
fn corpus() -> Vec<Bytes> {
    let mut out = Vec::new();
    let source = Source {
        address: Some("q".into()),
        filter: Some(vec![(
            "f".into(),
            Value::Described(
                Box::new(Value::Ulong(1)),
                Box::new(Value::List(vec![Value::Array(vec![Value::Int(1)])])),
            ),
        )]),
        default_outcome: Some(DeliveryState::Released),
        outcomes: Some(vec!["amqp:accepted:list".into()]),
        ..Source::default()
    };
    let err = Some(AmqpError {
        condition: "amqp:internal-error".into(),
        description: Some("d".into()),
        info: Some(vec![(
            "k".into(),
            Value::Map(vec![(Value::Null, Value::Uint(1))]),
        )]),
    });
    let message = MessageBuilder {
        header: Some(Header::default()),
        to: Some("q".into()),
        message_id: Some(Value::Ulong(1)),
        application_properties: vec![("a".into(), Value::Bool(true))],
        message_annotations: vec![("x-opt".into(), Value::Symbol("s".into()))],
        body: Body::Data(Bytes::from_static(b"body")),
        ..MessageBuilder::default()
    }
    .to_bytes();
    let performatives = vec![
        Performative::Open(Open {
            container_id: "c".into(),
            offered_capabilities: Some(vec!["x".into(), "y".into()]),
            properties: Some(vec![("p".into(), Value::String("v".into()))]),
            ..Open::default()
        }),
        Performative::Begin(Begin::default()),
        Performative::Attach(Attach {
            name: "n".into(),
            source: Some(Box::new(source)),
            target: Some(Box::new(Target::default())),
            ..Attach::default()
        }),
        Performative::Flow(Flow {
            handle: Some(1),
            link_credit: Some(100),
            ..Flow::default()
        }),
        Performative::Transfer(Transfer {
            delivery_id: Some(1),
            delivery_tag: Some(Bytes::from_static(b"tag")),
            state: Some(DeliveryState::Modified {
                delivery_failed: Some(true),
                undeliverable_here: None,
                message_annotations: Some(vec![("a".into(), Value::Null)]),
            }),
            ..Transfer::default()
        }),
        Performative::Disposition(Disposition {
            state: Some(DeliveryState::Rejected { error: err.clone() }),
            ..Disposition::default()
        }),
        Performative::Detach(Detach {
            handle: 1,
            closed: true,
            error: err.clone(),
        }),
        Performative::End(End::default()),
        Performative::Close(Close { error: err }),
    ];
    for p in &performatives {
        let mut buf = BytesMut::new();
        let payload: &[u8] = if matches!(p, Performative::Transfer(_)) {
            &message
        } else {
            &[]
        };
        encode_frame(&mut buf, 1, p, payload);
        out.push(buf.freeze());
    }
    for f in [
        SaslFrame::Mechanisms(SaslMechanisms {
            mechanisms: vec!["PLAIN".into()],
        }),
        SaslFrame::Init(SaslInit {
            mechanism: "PLAIN".into(),
            initial_response: Some(Bytes::from_static(b"\0u\0p")),
            hostname: Some("h".into()),
        }),
        SaslFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        }),
    ] {
        let mut buf = BytesMut::new();
        encode_sasl_frame(&mut buf, &f);
        out.push(buf.freeze());
    }
    out.push(message);
    out
}

/// Everything an untrusted peer's bytes can reach. Only "no panic" is checked; returns whether
/// the bytes held a valid AMQP or SASL frame (to check the mutations reach the decoders).
fn exercise(bytes: &[u8]) -> bool {
    let _ = parse_protocol_header(bytes);
    let _ = scan_message(bytes);
    let _ = decode_message(bytes);
    let _ = Decoder::new(bytes).read_value();
    let _ = Decoder::new(bytes).skip_value();
    if let Ok(Some(len)) = check_frame(bytes, 1 << 20) {
        let frame = Bytes::copy_from_slice(&bytes[..len]);
        let _ = parse_sasl_frame(frame.clone());
        if let Ok(f) = parse_amqp_frame(frame) {
            let _ = scan_message(&f.payload);
        }
    }
    let whole = Bytes::copy_from_slice(bytes);
    let amqp = parse_amqp_frame(whole.clone()).is_ok();
    parse_sasl_frame(whole).is_ok() || amqp
}

fn mutate(rng: &mut XorShift, v: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.byte());
            continue;
        }
        let i = rng.below(v.len());
        match rng.below(6) {
            0 => v[i] = rng.byte(),
            1 => v[i] ^= 1 << rng.below(8),
            // Interesting constructors and sizes.
            2 => {
                v[i] = *[
                    0x00, 0x40, 0x45, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0xff, 0x01,
                ]
                .get(rng.below(11))
                .unwrap_or(&0)
            }
            3 => {
                v.remove(i);
            }
            4 => v.insert(i, rng.byte()),
            _ => v.truncate(i),
        }
    }
    // Keep the size field consistent half of the time so mutations reach the body decoder.
    if v.len() >= 4 && rng.below(2) == 0 {
        let len = v.len() as u32;
        v[..4].copy_from_slice(&len.to_be_bytes());
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let len = rng.below(64);
        let mut v: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Often make it look like a frame so parsing goes past the header.
        if v.len() >= 8 && rng.below(2) == 0 {
            let l = v.len() as u32;
            v[..4].copy_from_slice(&l.to_be_bytes());
            v[4] = 2;
            v[5] = rng.below(2) as u8;
            if v.len() > 8 && rng.below(2) == 0 {
                v[8] = 0;
            }
        }
        exercise(&v);
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let corpus = corpus();
    for frame in &corpus {
        // The corpus itself is valid.
        assert!(
            parse_amqp_frame(frame.clone()).is_ok()
                || parse_sasl_frame(frame.clone()).is_ok()
                || decode_message(frame).is_ok(),
            "{frame:02x?}"
        );
    }
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let iterations = 300_000;
    let mut valid = 0;
    for _ in 0..iterations {
        let mut v = corpus[rng.below(corpus.len())].to_vec();
        mutate(&mut rng, &mut v);
        valid += usize::from(exercise(&v));
    }
    // Both outcomes must be common, or the mutations are not exercising the decoders.
    assert!(
        valid > iterations / 50,
        "only {valid} mutated frames parsed"
    );
    assert!(
        valid < iterations - iterations / 50,
        "{valid} mutated frames parsed"
    );
}

fn random_value(rng: &mut XorShift, depth: u32) -> Value {
    let kinds = if depth >= 4 { 22 } else { 26 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::Ubyte(rng.byte()),
        3 => Value::Ushort(rng.next() as u16),
        4 => Value::Uint(rng.next() as u32 >> rng.below(32)),
        5 => Value::Ulong(rng.next() >> rng.below(64)),
        6 => Value::Byte(rng.byte() as i8),
        7 => Value::Short(rng.next() as i16),
        8 => Value::Int((rng.next() as i32) >> rng.below(32)),
        9 => Value::Long((rng.next() as i64) >> rng.below(64)),
        10 => Value::Float(rng.below(1000) as f32 / 8.0),
        11 => Value::Double(rng.next() as f64),
        12 => Value::Decimal32((rng.next() as u32).to_be_bytes()),
        13 => Value::Decimal64(rng.next().to_be_bytes()),
        14 => Value::Decimal128([rng.byte(); 16]),
        15 => Value::Char(char::from_u32(rng.below(0xd000) as u32).unwrap_or('x')),
        16 => Value::Timestamp(rng.next() as i64),
        17 => Value::Uuid([rng.byte(); 16]),
        18 => Value::Binary(Bytes::from(vec![rng.byte(); rng.below(300)])),
        19 => Value::String("é".repeat(rng.below(200))),
        20 => Value::Symbol(Symbol("s".repeat(rng.below(300)))),
        21 => Value::Symbol("sym".into()),
        22 => Value::List(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        23 => Value::Map(
            (0..rng.below(4))
                .map(|_| (random_value(rng, depth + 1), random_value(rng, depth + 1)))
                .collect(),
        ),
        24 => {
            // Homogeneous: clone the kind of one random element. Arrays of null have
            // zero-width elements, which the decoder bounds by byte size (see `Value`).
            // Described elements cannot themselves be described (one constructor per array).
            let item = match random_value(rng, depth + 1) {
                Value::Null => Value::Bool(true),
                Value::Described(d, inner)
                    if matches!(*inner, Value::Null | Value::Described(..)) =>
                {
                    Value::Described(d, Box::new(Value::Bool(false)))
                }
                v => v,
            };
            let items = (0..rng.below(4)).map(|_| item.clone()).collect();
            Value::Array(items)
        }
        _ => Value::Described(
            Box::new(Value::Ulong(rng.below(1000) as u64)),
            Box::new(random_value(rng, depth + 1)),
        ),
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    for _ in 0..20_000 {
        let v = random_value(&mut rng, 0);
        let mut buf = BytesMut::new();
        put_value(&mut buf, &v);
        let mut dec = Decoder::new(&buf);
        let back = dec.read_value().unwrap();
        assert_eq!(back, v, "{:02x?}", &buf[..]);
        assert!(dec.is_empty());
        let mut dec = Decoder::new(&buf);
        dec.skip_value().unwrap();
        assert!(dec.is_empty());
    }
}
