//! PUBLISH -> AMQP: QoS 0, QoS 1 acknowledged only after the AMQP side accepted, QoS 2.

use bytes::Bytes;
use shoal_amqp::Body;
use shoal_mqtt::{reason, Packet, PubResp, QoS, Version};

use crate::support::{Client, Env, WAIT};

async fn recv(r: &shoal_client::Receiver) -> shoal_client::Received {
    tokio::time::timeout(WAIT, r.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn qos0_and_qos1_reach_an_amqp_receiver_and_puback_waits_for_acceptance() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let rx = amqp.receiver("plant/7/temp", 10).await.unwrap();
    let mut c = Client::connect(env.mqtt, Version::V5, "pub", None).await;

    c.publish("plant/7/temp", b"21.5", QoS::AtMostOnce).await;
    let d = recv(&rx).await;
    assert!(d.settled, "QoS 0 goes presettled");
    let m = d.message().unwrap();
    assert_eq!(m.to.as_deref(), Some("plant/7/temp"));
    assert_eq!(m.body, Body::Data(Bytes::from_static(b"21.5")));

    let id = c.publish("plant/7/temp", b"22.0", QoS::AtLeastOnce).await;
    let d = recv(&rx).await;
    assert!(!d.settled);
    // Not accepted yet: the PINGRESP, written after the PUBLISH was handled, comes first.
    c.ping().await;
    rx.accept(&d).await.unwrap();
    match c.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::SUCCESS);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_consumer_mqtt5_hears_no_matching_subscribers() {
    let env = Env::start().await;
    let mut c = Client::connect(env.mqtt, Version::V5, "pub5", None).await;
    let id = c.publish("nobody/listens", b"x", QoS::AtLeastOnce).await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_consumer_mqtt311_gets_no_puback() {
    let env = Env::start().await;
    let mut c = Client::connect(env.mqtt, Version::V311, "pub3", None).await;
    let lost = c.publish("later/listens", b"x", QoS::AtLeastOnce).await;
    c.ping().await;
    let amqp = env.amqp().await;
    let rx = amqp.receiver("later/listens", 10).await.unwrap();
    let id = c.publish("later/listens", b"y", QoS::AtLeastOnce).await;
    let d = recv(&rx).await;
    assert_eq!(
        d.message().unwrap().body,
        Body::Data(Bytes::from_static(b"y"))
    );
    rx.accept(&d).await.unwrap();
    // The core settled the first one (released) before the second: had it been acknowledged, that PUBACK
    // would come first.
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, id, "no PUBACK for {lost}"),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn qos2_is_passed_on_once() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let rx = amqp.receiver("exactly/once", 10).await.unwrap();
    let mut c = Client::connect(env.mqtt, Version::V5, "pub2", None).await;
    let id = c.publish("exactly/once", b"1", QoS::ExactlyOnce).await;
    let d = recv(&rx).await;
    rx.accept(&d).await.unwrap();
    match c.recv().await {
        Some(Packet::PubRec(r)) => assert_eq!(r.packet_id, id),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // The client did not see the PUBREC and sends it again: answered, not passed on.
    let mut again = shoal_mqtt::Publish::new(
        shoal_mqtt::MqttStr::new("exactly/once").unwrap(),
        Bytes::from_static(b"1"),
    );
    again.qos = QoS::ExactlyOnce;
    again.dup = true;
    again.packet_id = id;
    c.send(&Packet::Publish(again)).await;
    match c.recv().await {
        Some(Packet::PubRec(r)) => assert_eq!(r.packet_id, id),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    c.send(&Packet::PubRel(PubResp {
        packet_id: id,
        ..PubResp::default()
    }))
    .await;
    match c.recv().await {
        Some(Packet::PubComp(r)) => assert_eq!(r.packet_id, id),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // A marker message proves the duplicate never reached the receiver.
    c.publish("exactly/once", b"2", QoS::AtMostOnce).await;
    let d = recv(&rx).await;
    assert_eq!(
        d.message().unwrap().body,
        Body::Data(Bytes::from_static(b"2"))
    );
}

#[tokio::test]
async fn anonymous_clients_may_not_use_hono_topics() {
    let env = Env::start().await;
    let mut c = Client::connect(env.mqtt, Version::V5, "anon", None).await;
    let id = c.publish("telemetry", b"x", QoS::AtLeastOnce).await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::NOT_AUTHORIZED);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let mut c3 = Client::connect(env.mqtt, Version::V311, "anon3", None).await;
    c3.publish("telemetry", b"x", QoS::AtLeastOnce).await;
    assert!(
        c3.recv().await.is_none(),
        "3.1.1 has no code for it: disconnected"
    );
}
