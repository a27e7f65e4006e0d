//! Hono's device APIs: telemetry, events, gateways publishing for devices, command & control.

use bytes::Bytes;
use shoal_amqp::{Body, DeliveryState, MessageBuilder, Value};
use shoal_client::SenderOptions;
use shoal_mqtt::{reason, Packet, QoS, Version};

use crate::support::{Client, Env, WAIT};

async fn recv(r: &shoal_client::Receiver) -> MessageBuilder {
    let d = tokio::time::timeout(WAIT, r.recv()).await.unwrap().unwrap();
    r.accept(&d).await.unwrap();
    d.message().unwrap()
}

fn prop<'a>(m: &'a MessageBuilder, key: &str) -> Option<&'a Value> {
    m.application_properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn telemetry_and_events_go_to_the_tenant_addresses() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let telemetry = amqp.receiver("telemetry/acme", 10).await.unwrap();
    let events = amqp.receiver("event/acme", 10).await.unwrap();
    let mut dev = Client::connect(env.mqtt, Version::V311, "d1", Some(("d1@acme", "s3cret"))).await;

    let id = dev
        .publish("telemetry", b"{\"temp\":5}", QoS::AtLeastOnce)
        .await;
    let m = recv(&telemetry).await;
    assert_eq!(m.body, Body::Data(Bytes::from_static(b"{\"temp\":5}")));
    assert_eq!(prop(&m, "device_id"), Some(&Value::from("d1")));
    assert_eq!(prop(&m, "tenant_id"), Some(&Value::from("acme")));
    assert!(m.creation_time.is_some());
    assert!(!m.header.as_ref().is_some_and(|h| h.durable));
    match dev.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, id),
        other => panic!("expected PUBACK, got {other:?}"),
    }

    dev.publish("e", b"alarm", QoS::AtLeastOnce).await;
    let m = recv(&events).await;
    assert!(
        m.header.as_ref().is_some_and(|h| h.durable),
        "events are durable"
    );
    assert_eq!(m.to.as_deref(), Some("event/acme"));
    dev.expect_puback().await;
}

#[tokio::test]
async fn gateways_publish_for_their_devices_only() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let telemetry = amqp.receiver("telemetry/acme", 10).await.unwrap();
    let mut gw = Client::connect(env.mqtt, Version::V5, "gw", Some(("gw@acme", "s3cret"))).await;
    gw.publish("t//child", b"1", QoS::AtLeastOnce).await;
    let m = recv(&telemetry).await;
    assert_eq!(prop(&m, "device_id"), Some(&Value::from("child")));
    gw.expect_puback().await;
    let id = gw.publish("t/acme/d1", b"2", QoS::AtLeastOnce).await;
    match gw.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::NOT_AUTHORIZED);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_command_round_trip() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let events = amqp.receiver("event/acme", 10).await.unwrap();
    let replies = amqp
        .receiver("command_response/acme/app-1", 10)
        .await
        .unwrap();
    let mut dev = Client::connect(env.mqtt, Version::V5, "d1", Some(("d1@acme", "s3cret"))).await;
    assert_eq!(
        &dev.subscribe("command///req/#", QoS::AtLeastOnce)
            .await
            .reason_codes[..],
        &[1]
    );

    // Hono's notification that the device now listens for commands.
    let n = recv(&events).await;
    assert_eq!(
        n.content_type.as_ref().map(|c| c.as_str()),
        Some("application/vnd.eclipse-hono-empty-notification")
    );
    assert_eq!(prop(&n, "ttd"), Some(&Value::Int(-1)));
    assert_eq!(prop(&n, "device_id"), Some(&Value::from("d1")));

    let tx = amqp.sender(None, SenderOptions::default()).await.unwrap();
    let command = MessageBuilder {
        to: Some("command/acme/d1".into()),
        subject: Some("setVolume".into()),
        reply_to: Some("command_response/acme/app-1".into()),
        correlation_id: Some(Value::from("corr-1")),
        body: Body::Data(Bytes::from_static(b"{\"level\":3}")),
        ..MessageBuilder::default()
    };
    tx.send(command, false).await.unwrap();
    let p = dev.expect_publish(true).await;
    let topic = p.topic.as_str().to_owned();
    let req_id = topic
        .strip_prefix("command///req/")
        .and_then(|rest| rest.strip_suffix("/setVolume"))
        .unwrap_or_else(|| panic!("command topic {topic}"));
    assert!(!req_id.is_empty());
    assert_eq!(p.payload, Bytes::from_static(b"{\"level\":3}"));

    dev.publish(
        &format!("command///res/{req_id}/200"),
        b"done",
        QoS::AtLeastOnce,
    )
    .await;
    let r = recv(&replies).await;
    assert_eq!(r.correlation_id, Some(Value::from("corr-1")));
    assert_eq!(prop(&r, "status"), Some(&Value::Int(200)));
    assert_eq!(prop(&r, "device_id"), Some(&Value::from("d1")));
    assert_eq!(r.body, Body::Data(Bytes::from_static(b"done")));
    dev.expect_puback().await;

    // The request id was used up: a second response has nowhere to go.
    let id = dev
        .publish(
            &format!("command///res/{req_id}/200"),
            b"again",
            QoS::AtLeastOnce,
        )
        .await;
    match dev.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert!(a.reason >= 0x80);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn telemetry_without_a_consumer_gets_no_puback_and_does_not_block_the_device() {
    let env = Env::start().await;
    let mut dev = Client::connect(env.mqtt, Version::V311, "d1", Some(("d1@acme", "s3cret"))).await;
    let lost = dev.publish("telemetry", b"nobody", QoS::AtLeastOnce).await;
    dev.ping().await;
    let amqp = env.amqp().await;
    let telemetry = amqp.receiver("telemetry/acme", 10).await.unwrap();
    let id = dev.publish("t", b"someone", QoS::AtLeastOnce).await;
    let m = recv(&telemetry).await;
    assert_eq!(m.body, Body::Data(Bytes::from_static(b"someone")));
    match dev.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, id, "no PUBACK for {lost}"),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

fn command(to: &str, correlation: &str) -> MessageBuilder {
    MessageBuilder {
        to: Some(to.into()),
        subject: Some("setVolume".into()),
        reply_to: Some("command_response/acme/app-1".into()),
        correlation_id: Some(Value::from(correlation)),
        body: Body::Data(Bytes::from_static(b"{\"level\":3}")),
        ..MessageBuilder::default()
    }
}

#[tokio::test]
async fn a_gateway_subscribes_once_for_every_device_it_acts_for() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let events = amqp.receiver("event/acme", 10).await.unwrap();
    let replies = amqp
        .receiver("command_response/acme/app-1", 10)
        .await
        .unwrap();
    let mut gw = Client::connect(env.mqtt, Version::V5, "gw", Some(("gw@acme", "s3cret"))).await;
    let ack = gw.subscribe("command//+/req/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    // Hono announces the gateway itself as ready for commands.
    let n = recv(&events).await;
    assert_eq!(prop(&n, "ttd"), Some(&Value::Int(-1)));
    assert_eq!(prop(&n, "device_id"), Some(&Value::from("gw")));

    let tx = amqp.sender(None, SenderOptions::default()).await.unwrap();
    for (device, correlation) in [("child", "c-1"), ("child2", "c-2")] {
        let to = format!("command/acme/{device}");
        let delivery = tx.send(command(&to, correlation), false).await.unwrap();
        let p = gw.expect_publish(true).await;
        let topic = p.topic.as_str().to_owned();
        let req_id = topic
            .strip_prefix(&format!("command//{device}/req/"))
            .and_then(|rest| rest.strip_suffix("/setVolume"))
            .unwrap_or_else(|| panic!("command topic {topic}"));
        assert!(!req_id.is_empty());
        assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Accepted);

        gw.publish(
            &format!("command//{device}/res/{req_id}/200"),
            b"done",
            QoS::AtLeastOnce,
        )
        .await;
        let r = recv(&replies).await;
        assert_eq!(r.correlation_id, Some(Value::from(correlation)));
        assert_eq!(prop(&r, "status"), Some(&Value::Int(200)));
        assert_eq!(prop(&r, "device_id"), Some(&Value::from(device)));
        gw.expect_puback().await;
    }

    // `d1` does not list the gateway in `via`: its command is not the gateway's (and nobody else takes it).
    let delivery = tx
        .send(command("command/acme/d1", "c-3"), false)
        .await
        .unwrap();
    assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Released);
    gw.ping().await;
}

#[tokio::test]
async fn commands_on_a_link_to_command_tenant_reach_the_device_named_in_to() {
    let env = Env::start().await;
    let amqp = env.amqp().await;
    let mut dev = Client::connect(env.mqtt, Version::V311, "d1", Some(("d1@acme", "s3cret"))).await;
    let ack = dev.subscribe("command///req/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    // Hono's application form: one link for the tenant, each message's `to` naming its device.
    let tx = amqp
        .sender(Some("command/acme"), SenderOptions::default())
        .await
        .unwrap();
    let delivery = tx
        .send(command("command/acme/d1", "c-1"), false)
        .await
        .unwrap();
    let p = dev.expect_publish(false).await;
    let topic = p.topic.as_str();
    assert!(
        topic.starts_with("command///req/") && topic.ends_with("/setVolume"),
        "{topic}"
    );
    assert_eq!(p.payload, Bytes::from_static(b"{\"level\":3}"));
    dev.puback(p.packet_id).await;
    // The device's outcome is the application's.
    assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Accepted);

    // A `to` outside the link's tenant is not relayed.
    let delivery = tx
        .send(command("command/other/d1", "c-2"), false)
        .await
        .unwrap();
    assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Released);
    dev.ping().await;
}

#[tokio::test]
async fn an_event_nobody_can_take_is_given_up_after_the_credit_wait_and_the_device_is_read_again() {
    // No queue and no consumer for `event/acme`: the event link gets no credit.
    let wait = std::time::Duration::from_millis(300);
    let env = Env::start_with(|c| c.credit_wait = wait, true).await;
    let mut v5 = Client::connect(env.mqtt, Version::V5, "d1", Some(("d1@acme", "s3cret"))).await;
    let started = tokio::time::Instant::now();
    let id = v5.publish("event", b"nowhere", QoS::AtLeastOnce).await;
    match v5.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS);
        }
        other => panic!("expected PUBACK 0x10, got {other:?}"),
    }
    assert!(started.elapsed() >= wait, "it waited for credit first");
    v5.ping().await;

    // 3.1.1 has no reason codes: no PUBACK, but the socket is read again (the PINGREQ sent behind the event
    // is answered), and an event someone takes goes through.
    let mut v311 =
        Client::connect(env.mqtt, Version::V311, "gw", Some(("gw@acme", "s3cret"))).await;
    let lost = v311.publish("event", b"nowhere", QoS::AtLeastOnce).await;
    v311.ping().await;
    let amqp = env.amqp().await;
    let events = amqp.receiver("event/acme", 10).await.unwrap();
    let id = v311.publish("event", b"taken", QoS::AtLeastOnce).await;
    let m = recv(&events).await;
    assert_eq!(m.body, Body::Data(Bytes::from_static(b"taken")));
    match v311.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, id, "no PUBACK for {lost}"),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}
