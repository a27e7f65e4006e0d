//! Bounded windows both ways, and shutdown.

use bytes::Bytes;
use shoal_amqp::{Body, MessageBuilder};
use shoal_client::SenderOptions;
use shoal_mqtt::{reason, Packet, QoS, Version};

use crate::support::{connect_packet, Client, Env, WAIT};

#[tokio::test]
async fn a_full_receive_window_stops_reading_the_client() {
    let env = Env::start_with(|c| c.receive_maximum = 2, false).await;
    let amqp = env.amqp().await;
    // A consumer without credit: the messages wait in the core, unsettled.
    let rx = amqp.receiver("slow", 0).await.unwrap();
    let mut c = Client::connect(env.mqtt, Version::V311, "fast", None).await;
    let a = c.publish("slow", b"1", QoS::AtLeastOnce).await;
    let b = c.publish("slow", b"2", QoS::AtLeastOnce).await;
    c.publish("slow", b"3", QoS::AtLeastOnce).await;
    c.send(&Packet::PingReq).await;
    rx.flow(3).await.unwrap();
    for _ in 0..2 {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        rx.accept(&d).await.unwrap();
    }
    // Had the gateway kept reading, the PINGRESP would have come before any PUBACK.
    for id in [a, b] {
        match c.recv().await {
            Some(Packet::PubAck(p)) => assert_eq!(p.packet_id, id),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    let d = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    rx.accept(&d).await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.push(c.recv().await.map(|p| p.packet_type()));
    }
    rest.sort();
    assert_eq!(rest, vec![Some(4), Some(13)], "PUBACK 3 and PINGRESP");
}

#[tokio::test]
async fn unacknowledged_publishes_to_a_client_stop_at_its_receive_maximum() {
    let env = Env::start().await;
    let mut p = connect_packet(Version::V5, "sub", None);
    p.properties.receive_maximum = Some(2);
    let (mut sub, code) = Client::try_connect(env.mqtt, p).await;
    assert_eq!(code, Some(0));
    sub.subscribe("feed", QoS::AtLeastOnce).await;
    let amqp = env.amqp().await;
    let tx = amqp.sender(None, SenderOptions::default()).await.unwrap();
    for i in 0..4u8 {
        let m = MessageBuilder {
            to: Some("feed".into()),
            body: Body::Data(Bytes::from(vec![b'0' + i])),
            ..MessageBuilder::default()
        };
        tx.send(m, false).await.unwrap();
    }
    let first = sub.expect_publish(false).await;
    let second = sub.expect_publish(false).await;
    // Two unacknowledged: nothing more until a PUBACK.
    sub.ping().await;
    sub.puback(first.packet_id).await;
    let third = sub.expect_publish(false).await;
    assert_eq!(third.payload, Bytes::from_static(b"2"));
    sub.puback(second.packet_id).await;
    sub.puback(third.packet_id).await;
    let fourth = sub.expect_publish(true).await;
    assert_eq!(fourth.payload, Bytes::from_static(b"3"));
}

#[tokio::test]
async fn shutdown_tells_mqtt5_clients_and_closes() {
    let env = Env::start().await;
    let mut c5 = Client::connect(env.mqtt, Version::V5, "five", None).await;
    let mut c3 = Client::connect(env.mqtt, Version::V311, "three", None).await;
    c5.ping().await;
    c3.ping().await;
    let gateway = env.gateway;
    let stopping = tokio::spawn(gateway.shutdown());
    match c5.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::SERVER_SHUTTING_DOWN),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(c5.recv().await.is_none());
    assert!(c3.recv().await.is_none());
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}
