//! The router's AMQP 1.0 behaviour on the wire: protocol header and SASL negotiation, TLS, idle time-outs and
//! heartbeats, frame sizes and multi-frame deliveries, aborted transfers, session windows, link refusals and
//! drain. Raw connections (`shoal_client::RawConnection`) are used wherever the test must see exact frames.

use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_amqp::{
    condition, encode_empty_frame, encode_sasl_frame, parse_sasl_frame, AmqpError, Attach, Begin,
    Body, DeliveryState, Flow, MessageBuilder, Open, Performative, Role, SaslCode, SaslFrame,
    SaslInit, Source, Symbol, Target, Transfer, AMQP_HEADER, SASL_HEADER,
};
use shoal_client::{ClientError, ConnectOptions, Connection, RawConnection, Sasl, SenderOptions};
use shoal_router::AuthConfig;
use shoal_test_support::{assert_eventually, TestRouter, TestShoal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Instant};

/// The longest any single step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Bytes with a pattern that makes misordered or lost chunks visible.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

fn message(body: impl Into<Bytes>) -> MessageBuilder {
    MessageBuilder {
        body: Body::Data(body.into()),
        ..Default::default()
    }
}

fn open_frame(container: &str) -> Open {
    Open {
        container_id: container.into(),
        ..Open::default()
    }
}

/// An attach for a link of ours with `role` on `address` (the source of a receiver, the target of a sender).
fn attach(handle: u32, name: &str, role: Role, address: &str) -> Performative {
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
fn link_flow(handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Performative {
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
async fn expect<T>(
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
async fn close_error(raw: &mut RawConnection) -> Option<AmqpError> {
    loop {
        match raw.next_performative().await {
            Some((_, Performative::Close(c))) => return c.error,
            Some(_) => continue,
            None => panic!("expected close, the connection ended or went silent"),
        }
    }
}

/// Reads one SASL frame off a raw connection (the raw helpers only parse AMQP frames).
async fn read_sasl_frame(raw: &mut RawConnection) -> SaslFrame {
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

async fn send_sasl(raw: &mut RawConnection, frame: SaslFrame) {
    let mut buf = BytesMut::new();
    encode_sasl_frame(&mut buf, &frame);
    raw.send_bytes(&buf).await.unwrap();
}

fn plain(user: &str, password: &str) -> Bytes {
    Bytes::from(format!("\0{user}\0{password}").into_bytes())
}

/// Sends one message from a fresh link on `conn` to a fresh receiver and checks it arrives and is accepted.
async fn roundtrip(conn: &Connection, address: &str) {
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

fn users_config(config: &mut shoal_router::RouterConfig) {
    config.auth = AuthConfig {
        allow_anonymous: false,
        users: [("alice".to_string(), "secret".to_string())].into(),
    };
}

// ---- protocol header and SASL ----

#[tokio::test]
async fn amqp_header_is_answered_with_the_amqp_header() {
    let shoal = TestShoal::start().await;
    let mut raw = Connection::raw_no_header(shoal.amqp()).await.unwrap();
    raw.send_bytes(&AMQP_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&AMQP_HEADER[..]));
    let open = raw.open("header-test").await.unwrap();
    assert_eq!(open.container_id, "shoal");
}

#[tokio::test]
async fn sasl_header_is_answered_with_the_sasl_header_and_mechanisms_offering_anonymous() {
    let shoal = TestShoal::start().await;
    let mut raw = Connection::raw_no_header(shoal.amqp()).await.unwrap();
    raw.send_bytes(&SASL_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&SASL_HEADER[..]));
    let SaslFrame::Mechanisms(m) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-mechanisms");
    };
    assert!(
        m.mechanisms.iter().any(|s| s.as_str() == "ANONYMOUS"),
        "{:?}",
        m.mechanisms
    );

    // ANONYMOUS then completes, and AMQP follows.
    let init = SaslInit {
        mechanism: Symbol::from("ANONYMOUS"),
        initial_response: None,
        hostname: None,
    };
    send_sasl(&mut raw, SaslFrame::Init(init)).await;
    let SaslFrame::Outcome(outcome) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-outcome");
    };
    assert_eq!(outcome.code, SaslCode::Ok);
    raw.send_bytes(&AMQP_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&AMQP_HEADER[..]));
    raw.open("sasl-anonymous").await.unwrap();
}

#[tokio::test]
async fn with_users_a_plain_amqp_header_gets_the_sasl_header_and_is_closed() {
    let router = TestRouter::start_with(users_config).await;
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.send_bytes(&AMQP_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&SASL_HEADER[..]));
    assert!(
        raw.wait_eof().await,
        "the router must close a client that skips SASL"
    );
}

#[tokio::test]
async fn sasl_plain_with_the_right_password_connects_and_carries_messages() {
    let router = TestRouter::start_with(users_config).await;
    let opts = ConnectOptions::with_sasl(Sasl::Plain {
        user: "alice".into(),
        password: "secret".into(),
    });
    let conn = Connection::connect(router.addr(), opts).await.unwrap();
    roundtrip(&conn, "plain/ok").await;
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sasl_plain_with_a_bad_password_gets_outcome_auth_and_is_closed() {
    let router = TestRouter::start_with(users_config).await;
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.send_bytes(&SASL_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&SASL_HEADER[..]));
    let SaslFrame::Mechanisms(m) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-mechanisms");
    };
    let offered: Vec<&str> = m.mechanisms.iter().map(Symbol::as_str).collect();
    assert_eq!(offered, ["PLAIN"]);
    let init = SaslInit {
        mechanism: Symbol::from("PLAIN"),
        initial_response: Some(plain("alice", "wrong")),
        hostname: None,
    };
    send_sasl(&mut raw, SaslFrame::Init(init)).await;
    let SaslFrame::Outcome(outcome) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-outcome");
    };
    assert_eq!(outcome.code, SaslCode::Auth);
    assert!(
        raw.wait_eof().await,
        "the router must close after a failed authentication"
    );

    // The client reports it the same way.
    let opts = ConnectOptions::with_sasl(Sasl::Plain {
        user: "alice".into(),
        password: "wrong".into(),
    });
    let err = Connection::connect(router.addr(), opts).await.unwrap_err();
    assert!(matches!(err, ClientError::Sasl(SaslCode::Auth)), "{err:?}");
}

#[tokio::test]
async fn sasl_anonymous_is_refused_when_users_are_configured() {
    let router = TestRouter::start_with(users_config).await;
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.send_bytes(&SASL_HEADER).await.unwrap();
    assert_eq!(raw.read_bytes(8).await.as_deref(), Some(&SASL_HEADER[..]));
    let SaslFrame::Mechanisms(m) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-mechanisms");
    };
    assert!(
        !m.mechanisms.iter().any(|s| s.as_str() == "ANONYMOUS"),
        "{:?}",
        m.mechanisms
    );
    // Try it anyway: the router must refuse, not just not offer.
    let init = SaslInit {
        mechanism: Symbol::from("ANONYMOUS"),
        initial_response: None,
        hostname: None,
    };
    send_sasl(&mut raw, SaslFrame::Init(init)).await;
    let SaslFrame::Outcome(outcome) = read_sasl_frame(&mut raw).await else {
        panic!("expected sasl-outcome");
    };
    assert_eq!(outcome.code, SaslCode::Auth);
    assert!(raw.wait_eof().await);
}

// ---- TLS ----

/// A self-signed certificate for `localhost` in a temporary dir: (dir, cert path, key path, DER certificate).
fn self_signed() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (dir, cert, key, ck.cert.der().clone())
}

#[tokio::test]
async fn amqp_over_tls_exchanges_headers_and_open() {
    let (_dir, cert, key, der) = self_signed();
    let acceptor = shoal_router::tls::acceptor(&cert, &key).unwrap();
    let router = TestRouter::start_tls(acceptor, |_| {}).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(router.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap();

    tls.write_all(&AMQP_HEADER).await.unwrap();
    let mut header = [0u8; 8];
    within("AMQP header over TLS", tls.read_exact(&mut header))
        .await
        .unwrap();
    assert_eq!(header, AMQP_HEADER);

    let mut out = BytesMut::new();
    shoal_amqp::encode_frame(
        &mut out,
        0,
        &Performative::Open(open_frame("tls-test")),
        &[],
    );
    tls.write_all(&out).await.unwrap();
    tls.flush().await.unwrap();
    let mut rbuf = BytesMut::new();
    let frame = within(
        "open over TLS",
        shoal_client::handshake::read_frame(&mut tls, &mut rbuf, 64 * 1024),
    )
    .await
    .unwrap();
    let frame = shoal_amqp::parse_amqp_frame(frame).unwrap();
    match frame.performative {
        Some(Performative::Open(open)) => assert_eq!(open.container_id, "shoal"),
        other => panic!("expected the router's open, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_amqp_on_the_tls_listener_gets_no_amqp_answer() {
    let (_dir, cert, key, _) = self_signed();
    let acceptor = shoal_router::tls::acceptor(&cert, &key).unwrap();
    let router = TestRouter::start_tls(acceptor, |_| {}).await;
    let mut raw = Connection::raw_no_header(router.addr()).await.unwrap();
    raw.send_bytes(&AMQP_HEADER).await.unwrap();
    // Whatever comes back (a TLS alert, or nothing) is not an AMQP header, and the socket closes.
    let answer = raw.read_bytes(8).await;
    assert_ne!(answer.as_deref(), Some(&AMQP_HEADER[..]));
    assert!(raw.wait_eof().await);
}

// ---- idle time-out ----

#[tokio::test]
async fn router_sends_heartbeats_at_half_the_peer_idle_timeout() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    let open = Open {
        idle_time_out: Some(200),
        ..open_frame("heartbeat-test")
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    expect(&mut raw, "open", |p| {
        matches!(p, Performative::Open(_)).then_some(())
    })
    .await;

    // We send nothing: every empty frame in the next second is the router keeping our idle timer alive.
    let start = Instant::now();
    let window = Duration::from_secs(1);
    let mut beats = 0;
    let mut last = start;
    let mut longest_gap = Duration::ZERO;
    while start.elapsed() < window {
        raw.wait = window.saturating_sub(start.elapsed());
        match raw.next_frame().await {
            Some(f) if f.performative.is_none() => {
                beats += 1;
                longest_gap = longest_gap.max(last.elapsed());
                last = Instant::now();
            }
            Some(f) => panic!("expected only heartbeats, got {:?}", f.performative),
            None => break,
        }
    }
    assert!(
        beats >= 3,
        "{beats} heartbeats in {window:?} (longest gap {longest_gap:?})"
    );
}

#[tokio::test]
async fn router_closes_a_silent_peer_after_its_idle_timeout() {
    let idle = Duration::from_millis(300);
    let router = TestRouter::start_with(|c| c.idle_timeout = idle).await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    let open = raw.open("idle-test").await.unwrap();
    assert_eq!(open.idle_time_out, Some(300));

    // Heartbeats from us keep the connection up past the time-out...
    let mut beat = BytesMut::new();
    encode_empty_frame(&mut beat);
    raw.wait = Duration::from_millis(100);
    let mut silent_since = Instant::now();
    for _ in 0..7 {
        raw.send_bytes(&beat).await.unwrap();
        silent_since = Instant::now();
        if let Some(f) = raw.next_frame().await {
            panic!(
                "the router sent {:?} to a peer that keeps heartbeating",
                f.performative
            );
        }
    }
    // ...and silence closes it.
    raw.wait = STEP;
    let error = close_error(&mut raw)
        .await
        .expect("the close carries an error");
    assert_eq!(error.condition.as_str(), condition::RESOURCE_LIMIT_EXCEEDED);
    assert!(
        silent_since.elapsed() >= idle - Duration::from_millis(50),
        "closed after {:?}",
        silent_since.elapsed()
    );
    assert!(raw.wait_eof().await);
}

// ---- frame sizes and multi-frame deliveries ----

#[tokio::test]
async fn a_receiver_with_max_frame_size_512_gets_a_large_message_in_small_frames() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();

    let mut raw = Connection::raw(router.addr()).await.unwrap();
    // `next_frame` refuses (returns None for) any frame larger than this.
    raw.max_frame_size = 512;
    let open = Open {
        max_frame_size: 512,
        ..open_frame("small-frames")
    };
    raw.send_frame(0, &Performative::Open(open), &[])
        .await
        .unwrap();
    expect(&mut raw, "open", |p| {
        matches!(p, Performative::Open(_)).then_some(())
    })
    .await;
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "small-frames", Role::Receiver, "mfs"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    raw.send_frame(0, &link_flow(0, 0, 1, false), &[])
        .await
        .unwrap();

    let body = Bytes::from(pattern(100 * 1024));
    let sender = conn
        .sender(Some("mfs"), SenderOptions::default())
        .await
        .unwrap();
    within("send", sender.send(body.clone(), true))
        .await
        .unwrap();

    let mut got = BytesMut::new();
    let mut frames = 0;
    loop {
        let frame = raw
            .next_frame()
            .await
            .expect("a transfer frame of at most 512 bytes");
        let Some(Performative::Transfer(t)) = frame.performative else {
            continue;
        };
        frames += 1;
        assert!(
            frame.payload.len() < 512,
            "payload of {} bytes in one frame",
            frame.payload.len()
        );
        assert_eq!(
            t.delivery_id.is_some(),
            frames == 1,
            "only the first frame carries the delivery-id"
        );
        got.extend_from_slice(&frame.payload);
        if !t.more {
            break;
        }
    }
    assert!(frames > 200, "100 KiB in {frames} frames");
    assert_eq!(got.len(), body.len());
    assert!(got[..] == body[..], "the reassembled message differs");
}

#[tokio::test]
async fn a_multi_frame_message_from_a_small_frame_sender_is_reassembled() {
    // The router accepts frames of 512 bytes at most, so the client must split a 50 KiB message into ~115.
    let router = TestRouter::start_with(|c| c.max_frame_size = 512).await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(conn.remote_open().max_frame_size, 512);
    let receiver = conn.receiver("small/in", 1).await.unwrap();
    let sender = conn
        .sender(Some("small/in"), SenderOptions::default())
        .await
        .unwrap();
    let body = Bytes::from(pattern(50 * 1024));
    let delivery = within("send", sender.send(body.clone(), false))
        .await
        .unwrap();
    let got = within("receive", receiver.recv()).await.unwrap();
    assert_eq!(hash(&got.bytes), hash(&body));
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
    assert!(
        conn.error().is_none(),
        "the connection must survive: {:?}",
        conn.error()
    );
}

#[tokio::test]
async fn a_10_mib_message_goes_through_intact_and_is_accepted() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("big/ten", 1).await.unwrap();
    let sender = conn
        .sender(Some("big/ten"), SenderOptions::default())
        .await
        .unwrap();
    let body = Bytes::from(pattern(10 * 1024 * 1024));
    let msg = message(body.clone());
    let delivery = within("send", sender.send(&msg, false)).await.unwrap();
    let got = within("receive 10 MiB", receiver.recv()).await.unwrap();
    let decoded = got.message().unwrap();
    let Body::Data(data) = decoded.body else {
        panic!("expected a data body")
    };
    assert_eq!(data.len(), body.len());
    assert_eq!(hash(&data), hash(&body), "the 10 MiB body differs");
    receiver.accept(&got).await.unwrap();
    assert_eq!(
        within("outcome", delivery.outcome()).await.unwrap(),
        DeliveryState::Accepted
    );
}

// ---- aborted transfers ----

#[tokio::test]
async fn an_aborted_delivery_never_reaches_the_receiver_and_the_next_one_does() {
    let router = TestRouter::start().await;
    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("abort/q", 10).await.unwrap();

    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("abort-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "aborting", Role::Sender, "abort/q"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    let credit = expect(&mut raw, "flow with credit", |p| match p {
        Performative::Flow(f) if f.handle == Some(0) => f.link_credit,
        _ => None,
    })
    .await;
    assert!(credit >= 3, "credit {credit}");

    let first = message("the aborted one").to_bytes();
    let second = message("the second one").to_bytes();
    let third = message("the third one").to_bytes();
    let transfer = |id: u32, more: bool| Transfer {
        handle: 0,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(true),
        more,
        ..Transfer::default()
    };
    // The first half of a delivery, then its abort.
    raw.send_frame(0, &Performative::Transfer(transfer(0, true)), &first[..10])
        .await
        .unwrap();
    let abort = Transfer {
        handle: 0,
        settled: Some(true),
        aborted: true,
        ..Transfer::default()
    };
    raw.send_frame(0, &Performative::Transfer(abort), &[])
        .await
        .unwrap();
    raw.send_frame(0, &Performative::Transfer(transfer(1, false)), &second)
        .await
        .unwrap();
    raw.send_frame(0, &Performative::Transfer(transfer(2, false)), &third)
        .await
        .unwrap();

    // Order is kept on a link: had the aborted delivery got through, it would come first.
    let a = within("the second delivery", receiver.recv())
        .await
        .unwrap();
    assert_eq!(
        a.bytes, second,
        "the first delivery the receiver sees must be the one after the abort"
    );
    let b = within("the third delivery", receiver.recv()).await.unwrap();
    assert_eq!(b.bytes, third);
    assert!(receiver.try_recv().is_none());
}

/// The same on the wire: a raw receiver may see the first part of the aborted delivery (the router streams
/// large deliveries on as they arrive), but then it must see that delivery end with `aborted`, never complete;
/// the next delivery follows whole.
#[tokio::test]
async fn an_aborted_delivery_is_never_completed_on_the_wire() {
    let router = TestRouter::start().await;
    let mut rx = Connection::raw(router.addr()).await.unwrap();
    rx.open("abort-receiver").await.unwrap();
    rx.begin(0).await.unwrap();
    rx.send_frame(0, &attach(0, "watching", Role::Receiver, "abort/wire"), &[])
        .await
        .unwrap();
    expect(&mut rx, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    rx.send_frame(0, &link_flow(0, 0, 10, false), &[])
        .await
        .unwrap();

    let mut tx = Connection::raw(router.addr()).await.unwrap();
    tx.open("abort-sender").await.unwrap();
    tx.begin(0).await.unwrap();
    tx.send_frame(0, &attach(0, "aborting", Role::Sender, "abort/wire"), &[])
        .await
        .unwrap();
    expect(&mut tx, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    expect(&mut tx, "flow with credit", |p| match p {
        Performative::Flow(f) if f.handle == Some(0) && f.link_credit > Some(1) => Some(()),
        _ => None,
    })
    .await;

    let aborted = Bytes::from(pattern(4000));
    let next = message("after the abort").to_bytes();
    let head = |id: u32, more: bool| Transfer {
        handle: 0,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(true),
        more,
        ..Transfer::default()
    };
    tx.send_frame(0, &Performative::Transfer(head(0, true)), &aborted[..2000])
        .await
        .unwrap();
    let abort = Transfer {
        handle: 0,
        settled: Some(true),
        aborted: true,
        ..Transfer::default()
    };
    tx.send_frame(0, &Performative::Transfer(abort), &[])
        .await
        .unwrap();
    tx.send_frame(0, &Performative::Transfer(head(1, false)), &next)
        .await
        .unwrap();

    // Walk the receiver's transfers: parts of a delivery in progress, ended by `aborted` or by more=false.
    let mut current: Option<BytesMut> = None;
    let mut aborts = 0;
    let completed = loop {
        let frame = rx.next_frame().await.expect("a transfer for the receiver");
        let Some(Performative::Transfer(t)) = frame.performative else {
            continue;
        };
        if t.aborted {
            assert!(
                current.take().is_some(),
                "an abort with no delivery in progress"
            );
            aborts += 1;
            continue;
        }
        if t.delivery_id.is_some() {
            assert!(
                current.is_none(),
                "a new delivery began before the last one ended: {t:?}"
            );
        }
        let part = current.get_or_insert_with(BytesMut::new);
        part.extend_from_slice(&frame.payload);
        if !t.more {
            break current.take().expect("set above");
        }
    };
    assert_eq!(
        completed, next,
        "the first delivery completed must be the one after the abort"
    );
    assert!(aborts <= 1);
}

// ---- session window ----

#[tokio::test]
async fn a_session_incoming_window_of_one_holds_transfers_until_a_flow_opens_it() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("window-test").await.unwrap();
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 1,
        outgoing_window: 1 << 20,
        ..Begin::default()
    };
    raw.send_frame(0, &Performative::Begin(begin), &[])
        .await
        .unwrap();
    let theirs = expect(&mut raw, "begin", |p| match p {
        Performative::Begin(b) => Some(b),
        _ => None,
    })
    .await;
    assert_eq!(
        theirs.incoming_window,
        shoal_router::RouterConfig::default().session_window
    );
    raw.send_frame(0, &attach(0, "windowed", Role::Receiver, "win"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    // Link credit for 10, but a session window of 1 frame.
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: 1,
        next_outgoing_id: 0,
        outgoing_window: 1 << 20,
        handle: Some(0),
        delivery_count: Some(0),
        link_credit: Some(10),
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();

    let conn = Connection::connect(router.addr(), ConnectOptions::default())
        .await
        .unwrap();
    let sender = conn
        .sender(Some("win"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        within("send", sender.send(&message(format!("m{i}")), true))
            .await
            .unwrap();
    }
    assert_eventually!(
        router
            .address_stats("win")
            .await
            .is_some_and(|a| a.stats.deliveries_in == 3),
        "the router never got the three messages"
    );

    let first = expect(&mut raw, "the first transfer", |p| match p {
        Performative::Transfer(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(first.delivery_id, Some(0));
    // The window is used up: nothing more may come. (Waiting for an absence needs a bounded wait.)
    raw.wait = Duration::from_millis(400);
    while let Some((_, p)) = raw.next_performative().await {
        assert!(
            !matches!(p, Performative::Transfer(_)),
            "a transfer beyond the session window: {p:?}"
        );
    }
    raw.wait = STEP;
    // Open the window: the other two follow.
    let flow = Flow {
        next_incoming_id: Some(1),
        incoming_window: 10,
        next_outgoing_id: 0,
        outgoing_window: 1 << 20,
        ..Flow::default()
    };
    raw.send_frame(0, &Performative::Flow(flow), &[])
        .await
        .unwrap();
    for id in 1..3 {
        let t = expect(
            &mut raw,
            "a transfer after the window opened",
            |p| match p {
                Performative::Transfer(t) => Some(t),
                _ => None,
            },
        )
        .await;
        assert_eq!(t.delivery_id, Some(id));
    }
}

// ---- errors carried in detach ----

/// An attach (role sender, handle 0) whose target is a transaction `coordinator`, encoded by hand: the codec
/// cannot encode one. Fields: name "txn", handle 0, role sender, snd/rcv-settle-mode null, source {}, target
/// coordinator {}, and the mandatory initial-delivery-count 0.
fn coordinator_attach_frame(channel: u16) -> Vec<u8> {
    let mut body = vec![0x00, 0x53, 0x12]; // attach
    let fields: Vec<u8> = [
        &[0xa1, 0x03, b't', b'x', b'n'][..], // name
        &[0x43],                             // handle 0
        &[0x42],                             // role: sender
        &[0x40, 0x40],                       // settle modes: default
        &[0x00, 0x53, 0x28, 0x45],           // source: an empty source list
        &[0x00, 0x53, 0x30, 0x45],           // target: coordinator
        &[0x40, 0x40],                       // unsettled, incomplete-unsettled
        &[0x43],                             // initial-delivery-count 0
    ]
    .concat();
    body.push(0xc0);
    body.push((fields.len() + 1) as u8);
    body.push(10); // field count
    body.extend_from_slice(&fields);
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    frame.extend_from_slice(&[2, 0]);
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn a_coordinator_attach_is_refused_with_not_implemented_on_the_link() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("txn-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_bytes(&coordinator_attach_frame(0)).await.unwrap();

    // A refusal is an attach with a null target, then a detach with the reason; the connection carries on.
    let (_, reply) = raw
        .next_performative()
        .await
        .expect("an answer to the coordinator attach");
    match reply {
        Performative::Attach(a) => {
            assert_eq!(a.handle, 0);
            assert!(
                a.target.is_none(),
                "a refused attach has a null target: {a:?}"
            );
        }
        Performative::Close(c) => {
            panic!("the router closed the whole connection for one unsupported link: {c:?}")
        }
        other => panic!("expected attach, got {other:?}"),
    }
    let detach = expect(&mut raw, "detach", |p| match p {
        Performative::Detach(d) => Some(d),
        _ => None,
    })
    .await;
    assert_eq!(detach.handle, 0);
    let error = detach.error.expect("the detach carries the reason");
    assert_eq!(error.condition.as_str(), condition::NOT_IMPLEMENTED);
    // The session is still usable.
    raw.send_frame(0, &attach(1, "after-txn", Role::Receiver, "after/txn"), &[])
        .await
        .unwrap();
    let a = expect(&mut raw, "attach", |p| match p {
        Performative::Attach(a) => Some(a),
        _ => None,
    })
    .await;
    assert_eq!(a.handle, 1);
}

// ---- drain ----

#[tokio::test]
async fn draining_with_nothing_queued_returns_credit_zero_and_advances_the_delivery_count() {
    let router = TestRouter::start().await;
    let mut raw = Connection::raw(router.addr()).await.unwrap();
    raw.open("drain-test").await.unwrap();
    raw.begin(0).await.unwrap();
    raw.send_frame(0, &attach(0, "drainer", Role::Receiver, "drain/q"), &[])
        .await
        .unwrap();
    expect(&mut raw, "attach", |p| {
        matches!(p, Performative::Attach(_)).then_some(())
    })
    .await;
    raw.send_frame(0, &link_flow(0, 0, 10, true), &[])
        .await
        .unwrap();
    let flow = expect(&mut raw, "the drained flow", |p| match p {
        Performative::Flow(f) => Some(f),
        _ => None,
    })
    .await;
    assert_eq!(flow.handle, Some(0));
    assert_eq!(flow.link_credit, Some(0));
    assert_eq!(flow.delivery_count, Some(10));
}

#[tokio::test]
async fn client_drain_with_nothing_queued_completes_with_no_deliveries() {
    let shoal = TestShoal::start().await;
    let conn = Connection::connect(shoal.amqp(), ConnectOptions::default())
        .await
        .unwrap();
    let receiver = conn.receiver("drain/client", 10).await.unwrap();
    let arrived = within("drain", receiver.drain()).await.unwrap();
    assert_eq!(arrived, 0);
    assert_eq!(receiver.credit(), 0);
    // The link still works after a drain.
    receiver.flow(1).await.unwrap();
    let sender = conn
        .sender(Some("drain/client"), SenderOptions::default())
        .await
        .unwrap();
    within("send", sender.send(&message("after drain"), true))
        .await
        .unwrap();
    let got = within("receive after drain", receiver.recv())
        .await
        .unwrap();
    assert_eq!(
        got.message().unwrap().body,
        Body::Data("after drain".into())
    );
}
