//! Helpers shared by the wire-level protocol tests (`protocol_handshake.rs`, `protocol_transfer.rs`).
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod mesh;

pub use std::hash::Hasher;
pub use std::sync::Arc;
pub use std::time::Duration;

pub use bytes::{Bytes, BytesMut};
pub use shoal_amqp::{
    condition, encode_empty_frame, encode_sasl_frame, parse_sasl_frame, AmqpError, Attach, Begin,
    Body, DeliveryState, Flow, MessageBuilder, Open, Performative, Role, SaslCode, SaslFrame,
    SaslInit, Source, Symbol, Target, Transfer, AMQP_HEADER, SASL_HEADER,
};
pub use shoal_client::{
    ClientError, ConnectOptions, Connection, RawConnection, Sasl, SenderOptions,
};
pub use shoal_router::AuthConfig;
pub use shoal_test_support::{assert_eventually, TestRouter, TestShoal};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::time::{timeout, Instant};

/// The longest any single step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Bytes with a pattern that makes misordered or lost chunks visible.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

pub fn message(body: impl Into<Bytes>) -> MessageBuilder {
    MessageBuilder {
        body: Body::Data(body.into()),
        ..Default::default()
    }
}

pub fn open_frame(container: &str) -> Open {
    Open {
        container_id: container.into(),
        ..Open::default()
    }
}

/// An attach for a link of ours with `role` on `address` (the source of a receiver, the target of a sender).
pub fn attach(handle: u32, name: &str, role: Role, address: &str) -> Performative {
    let node = Some(address.to_owned());
    let (source, target) = match role {
        Role::Sender => (
            Source::default(),
            Target {
                address: node,
                ..Target::default()
            },
        ),
        Role::Receiver => (
            Source {
                address: node,
                ..Source::default()
            },
            Target::default(),
        ),
    };
    Performative::Attach(Attach {
        name: name.into(),
        handle,
        role,
        source: Some(Box::new(source)),
        target: Some(Box::new(target)),
        initial_delivery_count: (role == Role::Sender).then_some(0),
        ..Attach::default()
    })
}

/// A flow for a receiving link of ours; the session part opens a large window (we expect few transfers).
pub fn link_flow(handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 1 << 20,
        next_outgoing_id: 0,
        outgoing_window: u32::MAX,
        handle: Some(handle),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        drain,
        ..Flow::default()
    })
}

/// The next performative, which must be `what` (checked by `pick`).
pub async fn expect<T>(
    raw: &mut RawConnection,
    what: &str,
    pick: impl Fn(Performative) -> Option<T>,
) -> T {
    match raw.next_performative().await {
        Some((_, p)) => {
            let shown = format!("{p:?}");
            pick(p).unwrap_or_else(|| panic!("expected {what}, got {shown}"))
        }
        None => panic!("expected {what}, the connection ended or went silent"),
    }
}

/// Skips performatives until a `close`; returns its error.
pub async fn close_error(raw: &mut RawConnection) -> Option<AmqpError> {
    loop {
        match raw.next_performative().await {
            Some((_, Performative::Close(c))) => return c.error,
            Some(_) => continue,
            None => panic!("expected close, the connection ended or went silent"),
        }
    }
}

/// Reads one SASL frame off a raw connection (the raw helpers only parse AMQP frames).
pub async fn read_sasl_frame(raw: &mut RawConnection) -> SaslFrame {
    let size = raw.read_bytes(4).await.expect("a SASL frame header");
    let len = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
    assert!((8..=64 * 1024).contains(&len), "SASL frame size {len}");
    let rest = raw
        .read_bytes(len - 4)
        .await
        .expect("the rest of the SASL frame");
    let mut frame = BytesMut::from(&size[..]);
    frame.extend_from_slice(&rest);
    parse_sasl_frame(frame.freeze()).expect("a SASL frame the codec can parse")
}

pub async fn send_sasl(raw: &mut RawConnection, frame: SaslFrame) {
    let mut buf = BytesMut::new();
    encode_sasl_frame(&mut buf, &frame);
    raw.send_bytes(&buf).await.unwrap();
}

pub fn plain(user: &str, password: &str) -> Bytes {
    Bytes::from(format!("\0{user}\0{password}").into_bytes())
}

/// Sends one message from a fresh link on `conn` to a fresh receiver and checks it arrives and is accepted.
pub async fn roundtrip(conn: &Connection, address: &str) {
    let receiver = within("attach receiver", conn.receiver(address, 1))
        .await
        .unwrap();
    let sender = within(
        "attach sender",
        conn.sender(Some(address), SenderOptions::default()),
    )
    .await
    .unwrap();
    let body = format!("hello {address}");
    let delivery = within("send", sender.send(&message(body.clone()), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    assert_eq!(got.message().unwrap().body, Body::Data(body.into()));
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
}

pub fn users_config(config: &mut shoal_router::RouterConfig) {
    config.auth = AuthConfig {
        allow_anonymous: false,
        users: [("alice".to_string(), "secret".to_string())].into(),
    };
}
