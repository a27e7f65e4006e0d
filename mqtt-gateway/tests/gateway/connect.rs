//! CONNECT, authentication, keep-alive, DISCONNECT, malformed packets.

use std::time::Duration;

use shoal_mqtt::{reason, Packet, Version};

use crate::support::{connect_packet, Client, Env};

#[tokio::test]
async fn anonymous_clients_connect_ping_and_disconnect() {
    let env = Env::start().await;
    for version in [Version::V311, Version::V5] {
        let mut c = Client::connect(env.mqtt, version, "anon", None).await;
        c.ping().await;
        c.send(&Packet::Disconnect(Default::default())).await;
        assert!(
            c.recv().await.is_none(),
            "the gateway closes after DISCONNECT"
        );
    }
}

#[tokio::test]
async fn registry_credentials_decide_the_connack_code() {
    let env = Env::start().await;
    let cases = [
        (Some(("d1@acme", "s3cret")), 0, 0),
        (
            Some(("d1@acme", "wrong")),
            0x04,
            reason::BAD_USER_NAME_OR_PASSWORD,
        ),
        (
            Some(("nobody@acme", "s3cret")),
            0x04,
            reason::BAD_USER_NAME_OR_PASSWORD,
        ),
        (
            Some(("d1@elsewhere", "s3cret")),
            0x04,
            reason::BAD_USER_NAME_OR_PASSWORD,
        ),
        (
            Some(("d1", "s3cret")),
            0x04,
            reason::BAD_USER_NAME_OR_PASSWORD,
        ),
        (Some(("off@acme", "s3cret")), 0x05, reason::NOT_AUTHORIZED),
    ];
    for (user, v3, v5) in cases {
        for (version, want) in [(Version::V311, v3), (Version::V5, v5)] {
            let (mut c, code) =
                Client::try_connect(env.mqtt, connect_packet(version, "dev", user)).await;
            assert_eq!(code, Some(want), "{user:?} {version:?}");
            if want != 0 {
                assert!(c.recv().await.is_none(), "closed after a refusal");
            }
        }
    }
}

#[tokio::test]
async fn anonymous_clients_can_be_refused() {
    let env = Env::start_with(|c| c.allow_anonymous = false, true).await;
    let (_, code) = Client::try_connect(env.mqtt, connect_packet(Version::V311, "a", None)).await;
    assert_eq!(code, Some(reason::V311_NOT_AUTHORIZED));
    let (_, code) = Client::try_connect(env.mqtt, connect_packet(Version::V5, "a", None)).await;
    assert_eq!(code, Some(reason::NOT_AUTHORIZED));
    Client::connect(env.mqtt, Version::V5, "d", Some(("d1@acme", "s3cret"))).await;
}

#[tokio::test]
async fn unsupported_versions_and_bad_client_ids_get_their_codes() {
    let env = Env::start().await;
    // MQTT 3.1 ("MQIsdp", level 3).
    let mut c = Client::open(env.mqtt, Version::V311).await;
    let mut connect = vec![0x10, 15, 0, 6];
    connect.extend_from_slice(b"MQIsdp");
    connect.extend_from_slice(&[3, 0x02, 0, 60, 0, 1, b'a']);
    c.send_raw(&connect).await;
    match c.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, reason::V311_UNACCEPTABLE_PROTOCOL_VERSION),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // 3.1.1: an empty client id needs a clean session.
    let mut p = connect_packet(Version::V311, "", None);
    p.clean_start = false;
    let mut c = Client::open(env.mqtt, Version::V311).await;
    let mut raw = bytes::BytesMut::new();
    p.encode(&mut raw).unwrap();
    c.send_raw(&raw).await;
    match c.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, reason::V311_IDENTIFIER_REJECTED),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn mqtt5_clients_without_an_id_get_one_assigned() {
    let env = Env::start().await;
    let mut c = Client::open(env.mqtt, Version::V5).await;
    c.send(&Packet::Connect(Box::new(connect_packet(
        Version::V5,
        "",
        None,
    ))))
    .await;
    match c.recv().await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.code, 0);
            assert!(a.properties.assigned_client_identifier.is_some());
            assert_eq!(a.properties.receive_maximum, Some(100));
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn silence_past_the_keep_alive_closes_the_connection() {
    let env = Env::start().await;
    let mut p = connect_packet(Version::V5, "sleepy", None);
    p.keep_alive = 1;
    let (mut c, code) = Client::try_connect(env.mqtt, p).await;
    assert_eq!(code, Some(0));
    let started = std::time::Instant::now();
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::KEEP_ALIVE_TIMEOUT),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "not before 1.5 x keep-alive"
    );
    assert!(c.recv().await.is_none());
}

#[tokio::test]
async fn no_connect_within_the_deadline_closes_the_socket() {
    let env = Env::start_with(|c| c.connect_timeout = Duration::from_millis(200), true).await;
    let mut c = Client::open(env.mqtt, Version::V311).await;
    assert!(c.recv().await.is_none());
}

#[tokio::test]
async fn a_malformed_packet_closes_only_its_connection() {
    let env = Env::start().await;
    let mut good = Client::connect(env.mqtt, Version::V311, "good", None).await;
    let mut bad = Client::connect(env.mqtt, Version::V5, "bad", None).await;
    // A PUBLISH whose topic length runs past the packet.
    bad.send_raw(&[0x30, 0x03, 0x00, 0x09, b'a']).await;
    match bad.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::MALFORMED_PACKET),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(bad.recv().await.is_none());
    good.ping().await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_over() {
    let env = Env::start().await;
    let mut first = Client::connect(env.mqtt, Version::V5, "same", None).await;
    let mut second = Client::connect(env.mqtt, Version::V5, "same", None).await;
    match first.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    second.ping().await;
}
