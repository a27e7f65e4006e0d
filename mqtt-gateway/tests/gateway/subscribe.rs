//! SUBSCRIBE: AMQP -> MQTT and MQTT -> MQTT, QoS 0/1, wildcards, UNSUBSCRIBE, retained messages, wills.

use bytes::Bytes;
use shoal_amqp::{Body, DeliveryState, MessageBuilder, Value};
use shoal_client::SenderOptions;
use shoal_mqtt::{reason, Packet, Properties, QoS, Unsubscribe, Version};

use crate::support::{connect_packet, will, Client, Env};

fn msg(to: &str, body: &'static [u8]) -> MessageBuilder {
    MessageBuilder {
        to: Some(to.into()),
        body: Body::Data(Bytes::from_static(body)),
        ..MessageBuilder::default()
    }
}

#[tokio::test]
async fn amqp_messages_reach_subscribers_and_puback_accepts_them() {
    let env = Env::start().await;
    let mut sub = Client::connect(env.mqtt, Version::V5, "sub", None).await;
    let ack = sub.subscribe("fleet/1/cmd", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    let amqp = env.amqp().await;
    let tx = amqp.sender(None, SenderOptions::default()).await.unwrap();
    let delivery = tx.send(msg("fleet/1/cmd", b"go"), false).await.unwrap();
    let p = sub.expect_publish(false).await;
    assert_eq!(p.topic.as_str(), "fleet/1/cmd");
    assert_eq!(p.payload, Bytes::from_static(b"go"));
    assert_eq!(p.qos, QoS::AtLeastOnce);
    sub.puback(p.packet_id).await;
    assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Accepted);
}

#[tokio::test]
async fn mqtt_to_mqtt_every_subscriber_gets_a_copy_with_wildcards() {
    let env = Env::start().await;
    let mut exact = Client::connect(env.mqtt, Version::V311, "exact", None).await;
    let mut plus = Client::connect(env.mqtt, Version::V5, "plus", None).await;
    let mut hash = Client::connect(env.mqtt, Version::V311, "hash", None).await;
    assert_eq!(
        &exact
            .subscribe("home/kitchen/temp", QoS::AtLeastOnce)
            .await
            .reason_codes[..],
        &[1]
    );
    assert_eq!(
        &plus
            .subscribe("home/+/temp", QoS::AtMostOnce)
            .await
            .reason_codes[..],
        &[0]
    );
    assert_eq!(
        &hash
            .subscribe("home/#", QoS::ExactlyOnce)
            .await
            .reason_codes[..],
        &[1]
    );
    let mut publisher = Client::connect(env.mqtt, Version::V5, "publisher", None).await;
    let id = publisher
        .publish("home/kitchen/temp", b"19", QoS::AtLeastOnce)
        .await;
    for c in [&mut exact, &mut plus, &mut hash] {
        let p = c.expect_publish(true).await;
        assert_eq!(p.topic.as_str(), "home/kitchen/temp");
        assert_eq!(p.payload, Bytes::from_static(b"19"));
    }
    // Every subscriber took its copy: now the publisher hears it was accepted.
    match publisher.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(a.reason, reason::SUCCESS);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // Not matching `home/+/temp`, matching `home/#`.
    publisher
        .publish("home/kitchen/light", b"on", QoS::AtMostOnce)
        .await;
    let p = hash.expect_publish(true).await;
    assert_eq!(p.topic.as_str(), "home/kitchen/light");
    plus.ping().await;
}

#[tokio::test]
async fn unsubscribe_stops_deliveries() {
    let env = Env::start().await;
    let mut sub = Client::connect(env.mqtt, Version::V5, "sub", None).await;
    sub.subscribe("a/b", QoS::AtMostOnce).await;
    sub.subscribe("a/c", QoS::AtMostOnce).await;
    let id = sub.next_id();
    sub.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: id,
        properties: Properties::default(),
        filters: vec![
            shoal_mqtt::MqttStr::new("a/b").unwrap(),
            shoal_mqtt::MqttStr::new("x/y").unwrap(),
        ],
    }))
    .await;
    match sub.recv().await {
        Some(Packet::UnsubAck(a)) => {
            assert_eq!(a.packet_id, id);
            assert_eq!(
                &a.reason_codes[..],
                &[reason::SUCCESS, reason::NO_SUBSCRIPTION_EXISTED]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let mut publisher = Client::connect(env.mqtt, Version::V5, "p", None).await;
    publisher.publish("a/b", b"gone", QoS::AtMostOnce).await;
    publisher.publish("a/c", b"here", QoS::AtMostOnce).await;
    let p = sub.expect_publish(true).await;
    assert_eq!(
        p.topic.as_str(),
        "a/c",
        "nothing from the unsubscribed topic"
    );
}

#[tokio::test]
async fn retained_messages_reach_late_subscribers() {
    let env = Env::start().await;
    let mut publisher = Client::connect(env.mqtt, Version::V311, "p", None).await;
    publisher.publish_retained("status/door", b"open").await;
    publisher.publish_retained("status/window", b"shut").await;
    publisher.publish_retained("status/window", b"").await;
    publisher.ping().await;
    assert_eq!(env.gateway.retained_count(), 1);
    let mut late = Client::connect(env.mqtt, Version::V5, "late", None).await;
    late.subscribe("status/+", QoS::AtLeastOnce).await;
    let p = late.expect_publish(true).await;
    assert!(p.retain);
    assert_eq!(p.topic.as_str(), "status/door");
    assert_eq!(p.payload, Bytes::from_static(b"open"));
    assert_eq!(p.qos, QoS::AtMostOnce, "min(subscription, message)");
    late.ping().await;
}

#[tokio::test]
async fn the_will_is_published_when_a_client_vanishes_not_when_it_disconnects() {
    let env = Env::start().await;
    let mut watcher = Client::connect(env.mqtt, Version::V5, "watcher", None).await;
    watcher.subscribe("wills/+", QoS::AtMostOnce).await;

    let mut p = connect_packet(Version::V311, "polite", None);
    p.will = Some(will("wills/polite", b"bye"));
    let (mut polite, _) = Client::try_connect(env.mqtt, p).await;
    polite.send(&Packet::Disconnect(Default::default())).await;
    assert!(polite.recv().await.is_none());

    let mut p = connect_packet(Version::V311, "rude", None);
    p.will = Some(will("wills/rude", b"gone"));
    let (rude, _) = Client::try_connect(env.mqtt, p).await;
    drop(rude);
    let w = watcher.expect_publish(true).await;
    assert_eq!(
        w.topic.as_str(),
        "wills/rude",
        "only the vanished client's will"
    );
    assert_eq!(w.payload, Bytes::from_static(b"gone"));
}

#[tokio::test]
async fn wildcard_subscribers_get_a_named_links_messages_under_its_address() {
    let env = Env::start().await;
    let mut plus = Client::connect(env.mqtt, Version::V5, "plus", None).await;
    let mut hash = Client::connect(env.mqtt, Version::V311, "hash", None).await;
    let ack = plus.subscribe("sensors/+/temp", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    let ack = hash.subscribe("sensors/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    let amqp = env.amqp().await;
    // A link named for the topic, and a message without `to`: the topic is the address the core matched.
    let tx = amqp
        .sender(Some("sensors/room1/temp"), SenderOptions::default())
        .await
        .unwrap();
    let m = MessageBuilder {
        body: Body::Data(Bytes::from_static(b"21.5")),
        ..MessageBuilder::default()
    };
    let delivery = tx.send(m, false).await.unwrap();
    for c in [&mut plus, &mut hash] {
        let p = c.expect_publish(true).await;
        assert_eq!(p.topic.as_str(), "sensors/room1/temp");
        assert_eq!(p.payload, Bytes::from_static(b"21.5"));
    }
    assert_eq!(delivery.outcome().await.unwrap(), DeliveryState::Accepted);
}

#[tokio::test]
async fn amqp_value_bodies_reach_mqtt_as_text_or_json_or_are_rejected() {
    let env = Env::start().await;
    let mut sub = Client::connect(env.mqtt, Version::V5, "sub", None).await;
    let ack = sub.subscribe("notes/+", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    let amqp = env.amqp().await;
    let tx = amqp.sender(None, SenderOptions::default()).await.unwrap();
    let valued = |to: &str, body: Value| MessageBuilder {
        to: Some(to.into()),
        body: Body::Value(body),
        ..MessageBuilder::default()
    };

    let d = tx
        .send(valued("notes/1", Value::from("héllo")), false)
        .await
        .unwrap();
    let p = sub.expect_publish(true).await;
    assert_eq!(p.payload, Bytes::from("héllo".as_bytes()));
    let content_type = p.properties.content_type.as_ref().map(|c| c.as_str());
    assert_eq!(content_type, Some("text/plain; charset=utf-8"));
    assert_eq!(p.properties.payload_format_indicator, Some(true));
    assert_eq!(d.outcome().await.unwrap(), DeliveryState::Accepted);

    let map = Value::Map(vec![(Value::from("temp"), Value::Int(21))]);
    tx.send(valued("notes/2", map), false).await.unwrap();
    let p = sub.expect_publish(true).await;
    assert_eq!(p.payload, Bytes::from_static(br#"{"temp":21}"#));
    let content_type = p.properties.content_type.as_ref().map(|c| c.as_str());
    assert_eq!(content_type, Some("application/json"));

    // No faithful MQTT form: rejected, saying why, and the subscriber gets nothing.
    let odd = Value::Map(vec![(Value::Int(1), Value::Int(2))]);
    let d = tx.send(valued("notes/3", odd), false).await.unwrap();
    match d.outcome().await.unwrap() {
        DeliveryState::Rejected { error: Some(e) } => {
            assert_eq!(e.condition.as_str(), "amqp:not-implemented");
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    sub.ping().await;
}
