use super::*;
use crate::frame::{encode_sasl_frame, parse_sasl_frame};

fn round_trip(f: SaslFrame) {
    let mut buf = BytesMut::new();
    encode_sasl_frame(&mut buf, &f);
    assert_eq!(parse_sasl_frame(buf.freeze()).unwrap(), f);
}

#[test]
fn round_trips_every_sasl_frame() {
    round_trip(SaslFrame::Mechanisms(SaslMechanisms {
        mechanisms: vec!["PLAIN".into(), "ANONYMOUS".into(), "EXTERNAL".into()],
    }));
    round_trip(SaslFrame::Mechanisms(SaslMechanisms { mechanisms: vec![] }));
    round_trip(SaslFrame::Init(SaslInit {
        mechanism: "PLAIN".into(),
        initial_response: Some(Bytes::from_static(b"\0user\0secret")),
        hostname: Some("shoal.example".into()),
    }));
    round_trip(SaslFrame::Init(SaslInit {
        mechanism: "ANONYMOUS".into(),
        initial_response: None,
        hostname: None,
    }));
    round_trip(SaslFrame::Challenge(SaslChallenge {
        challenge: Bytes::from_static(b"nonce"),
    }));
    round_trip(SaslFrame::Response(SaslResponse {
        response: Bytes::from(vec![7u8; 300]),
    }));
    for code in [
        SaslCode::Ok,
        SaslCode::Auth,
        SaslCode::Sys,
        SaslCode::SysPerm,
        SaslCode::SysTemp,
    ] {
        round_trip(SaslFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        }));
    }
    round_trip(SaslFrame::Outcome(SaslOutcome {
        code: SaslCode::Ok,
        additional_data: Some(Bytes::from_static(b"welcome")),
    }));
}

#[test]
fn decodes_hand_written_sasl_frames() {
    // sasl-mechanisms as brokers send it: a single symbol instead of an array.
    let mut frame = vec![0, 0, 0, 0, 2, 1, 0, 0, 0x00, 0x53, 0x40, 0xc0, 0x08, 0x01];
    frame.extend_from_slice(&[0xa3, 0x05]);
    frame.extend_from_slice(b"PLAIN");
    let len = frame.len() as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let f = parse_sasl_frame(Bytes::from(frame)).unwrap();
    assert_eq!(
        f,
        SaslFrame::Mechanisms(SaslMechanisms {
            mechanisms: vec!["PLAIN".into()]
        })
    );

    // sasl-init PLAIN with a symbolic descriptor; the response must be a zero-copy slice.
    let mut frame = vec![0, 0, 0, 0, 2, 1, 0, 0, 0x00, 0xa3, 19];
    frame.extend_from_slice(b"amqp:sasl-init:list");
    frame.extend_from_slice(&[0xc0, 0x16, 0x02, 0xa3, 0x05]);
    frame.extend_from_slice(b"PLAIN");
    frame.extend_from_slice(&[0xa0, 0x0c]);
    frame.extend_from_slice(b"\0guest\0guest");
    let len = frame.len() as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let bytes = Bytes::from(frame);
    let SaslFrame::Init(init) = parse_sasl_frame(bytes.clone()).unwrap() else {
        panic!("not an init");
    };
    assert_eq!(init.mechanism, "PLAIN");
    let resp = init.initial_response.unwrap();
    assert_eq!(&resp[..], b"\0guest\0guest");
    let start = bytes.as_ptr() as usize;
    let at = resp.as_ptr() as usize;
    assert!(
        at > start && at < start + bytes.len(),
        "response was copied"
    );
}

#[test]
fn rejects_bad_sasl_bodies() {
    let mut buf = BytesMut::new();
    encode_sasl_frame(
        &mut buf,
        &SaslFrame::Outcome(SaslOutcome {
            code: SaslCode::Ok,
            additional_data: None,
        }),
    );
    let mut bad = buf.to_vec();
    // The code is the last byte: ubyte 0 -> 9.
    *bad.last_mut().unwrap() = 9;
    assert_eq!(
        parse_sasl_frame(Bytes::from(bad)),
        Err(DecodeError::InvalidValue("sasl-code"))
    );
    // An AMQP performative in a SASL frame.
    let mut f = vec![0, 0, 0, 12, 2, 1, 0, 0, 0x00, 0x53, 0x18, 0x45];
    assert!(matches!(
        parse_sasl_frame(Bytes::from(f.clone())),
        Err(DecodeError::UnknownDescriptor(Descriptor::Code(0x18)))
    ));
    // Wrong frame type.
    f[5] = 0;
    assert_eq!(
        parse_sasl_frame(Bytes::from(f)),
        Err(DecodeError::WrongFrameType(0))
    );
    // Missing mandatory challenge.
    let f = vec![0, 0, 0, 12, 2, 1, 0, 0, 0x00, 0x53, 0x42, 0x45];
    assert_eq!(
        parse_sasl_frame(Bytes::from(f)),
        Err(DecodeError::MissingField("challenge"))
    );
}
