//! The router's AMQP 1.0 behaviour on the wire before and around the data: protocol header and SASL
//! negotiation, TLS, idle time-outs and heartbeats.

mod common;

#[allow(unused_imports)]
use common::*;

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
