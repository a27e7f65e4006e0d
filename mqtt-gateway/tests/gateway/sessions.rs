//! Persistent sessions: what an offline subscriber misses is kept in the broker and delivered, in order,
//! when it comes back; a clean session discards it; QoS 0 is not kept; sessions survive a gateway restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{Body, DeliveryState, MessageBuilder};
use shoal_broker::{Broker, BrokerAddress, BrokerConfig, BrokerHandle};
use shoal_client::{ConnectOptions, Connection, SenderOptions};
use shoal_mqtt::{Packet, Properties, QoS, Version};
use shoal_mqtt_gateway::persist::BoxFuture;
use shoal_mqtt_gateway::{BrokerQueues, Gateway, GatewayConfig, Persistence, SessionQueues};
use shoal_router::{Router, RouterConfig};

use crate::support::{connect_packet, Client};

struct Queues(BrokerHandle);

impl SessionQueues for Queues {
    fn ensure<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let q = BrokerAddress::queue(address);
            self.0.set_address(q).await.map_err(|e| e.to_string())
        })
    }

    fn delete<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let deleted = self.0.delete_address(address).await;
            deleted.map(drop).map_err(|e| e.to_string())
        })
    }
}

/// A router with a broker behind it (in memory) and a gateway keeping sessions in a temporary directory.
struct SessionEnv {
    router: Router,
    broker: Broker,
    dir: tempfile::TempDir,
    gateway: Option<Gateway>,
    mqtt: SocketAddr,
    /// Session queues are declared over AMQP ([`BrokerQueues`], as in `shoal mqtt-gateway`), not with the
    /// broker's handle.
    over_amqp: bool,
}

impl SessionEnv {
    async fn start() -> SessionEnv {
        SessionEnv::start_with(false).await
    }

    async fn start_with(over_amqp: bool) -> SessionEnv {
        let mut router = Router::start(RouterConfig::default());
        let store = Arc::new(shoal_broker::store::MemoryStore::new());
        let server = RouterConfig {
            container_id: "broker".into(),
            ..RouterConfig::default()
        };
        let mut broker = Broker::start(BrokerConfig::default(), store, server)
            .await
            .unwrap();
        let bound = broker.listen(([127, 0, 0, 1], 0).into()).await.unwrap();
        router.connect_route_container("broker".into(), bound.local_addr);
        let dir = tempfile::tempdir().unwrap();
        let mut env = SessionEnv {
            router,
            broker,
            dir,
            gateway: None,
            mqtt: ([127, 0, 0, 1], 0).into(),
            over_amqp,
        };
        eventually(|| async {
            let snap = env.router.handle().snapshot().await.unwrap();
            snap.route_containers.iter().any(|c| c == "broker")
        })
        .await;
        env.start_gateway().await;
        env
    }

    async fn start_gateway(&mut self) {
        let queues: Arc<dyn SessionQueues> = if self.over_amqp {
            Arc::new(
                BrokerQueues::start(self.router.handle(), "broker")
                    .await
                    .unwrap(),
            )
        } else {
            Arc::new(Queues(self.broker.handle()))
        };
        let persistence = Persistence::new(
            self.dir.path().join("mqtt-sessions"),
            "broker".into(),
            queues,
        );
        let gateway = Gateway::bind_with(
            ([127, 0, 0, 1], 0).into(),
            GatewayConfig::default(),
            self.router.handle(),
            None,
            Some(persistence),
        )
        .await
        .unwrap();
        self.mqtt = gateway.local_addr();
        self.gateway = Some(gateway);
    }

    fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().unwrap()
    }

    /// Connect `id` with `clean` as asked; returns the client and CONNACK's session-present.
    async fn connect(&self, version: Version, id: &str, clean: bool) -> (Client, bool) {
        let expiry = (version == Version::V5 && !clean).then_some(3600);
        self.connect_with_expiry(version, id, clean, expiry).await
    }

    async fn connect_with_expiry(
        &self,
        version: Version,
        id: &str,
        clean: bool,
        expiry: Option<u32>,
    ) -> (Client, bool) {
        let mut c = connect_packet(version, id, None);
        c.clean_start = clean;
        c.properties = Properties {
            session_expiry_interval: expiry,
            ..Properties::default()
        };
        let mut client = Client::open(self.mqtt, version).await;
        client.send(&Packet::Connect(Box::new(c))).await;
        match client.recv().await {
            Some(Packet::ConnAck(a)) => {
                assert_eq!(a.code, 0, "CONNACK code");
                (client, a.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Disconnect `client` and wait until its session's keeper holds its subscriptions.
    async fn go_offline(&self, mut client: Client, offline: usize) {
        client.send(&Packet::Disconnect(Default::default())).await;
        assert!(client.recv().await.is_none(), "the gateway closes");
        let gateway = self.gateway();
        eventually(|| async { gateway.offline_sessions() == offline }).await;
    }
}

/// Poll a condition that has no event to await (a gauge), failing after 5 s.
async fn eventually<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publish_all(env: &SessionEnv, topic: &str, qos: QoS, payloads: &[&str]) {
    let (mut publisher, _) = env.connect(Version::V5, "publisher", true).await;
    for p in payloads {
        publisher.publish(topic, p.as_bytes(), qos).await;
        if qos == QoS::AtLeastOnce {
            // Accepted only once the broker stored it for the offline session.
            publisher.expect_puback().await;
        }
    }
    publisher.ping().await;
}

/// Publish at QoS 1 to a connected subscriber: its PUBACK comes once the subscriber acknowledged it.
async fn publish_live(env: &SessionEnv, topic: &str, payload: &str) -> Client {
    let (mut publisher, _) = env.connect(Version::V5, "live-publisher", true).await;
    publisher
        .publish(topic, payload.as_bytes(), QoS::AtLeastOnce)
        .await;
    publisher
}

async fn expect_payloads(client: &mut Client, topic: &str, payloads: &[&str]) {
    for want in payloads {
        let p = client.expect_publish(true).await;
        assert_eq!(p.topic.as_str(), topic);
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(std::str::from_utf8(&p.payload).unwrap(), *want);
    }
}

#[tokio::test]
async fn an_offline_persistent_session_gets_what_it_missed_in_order() {
    for version in [Version::V311, Version::V5] {
        let env = SessionEnv::start().await;
        let (mut sub, present) = env.connect(version, "keeper", false).await;
        assert!(!present, "a new session is not present");
        assert_eq!(
            &sub.subscribe("fleet/+/temp", QoS::AtLeastOnce)
                .await
                .reason_codes[..],
            &[1]
        );
        env.go_offline(sub, 1).await;
        publish_all(&env, "fleet/7/temp", QoS::AtLeastOnce, &["m1", "m2", "m3"]).await;

        let (mut sub, present) = env.connect(version, "keeper", false).await;
        assert!(present, "CONNACK says session-present");
        expect_payloads(&mut sub, "fleet/7/temp", &["m1", "m2", "m3"]).await;
        // The subscription is live again, without another SUBSCRIBE.
        let mut publisher = publish_live(&env, "fleet/8/temp", "live").await;
        expect_payloads(&mut sub, "fleet/8/temp", &["live"]).await;
        publisher.expect_puback().await;
        sub.ping().await;
    }
}

#[tokio::test]
async fn session_queues_declared_over_amqp_live_in_the_broker_until_the_session_ends() {
    // The gateway and the broker agree on the management node (the gateway does not depend on the broker).
    assert_eq!(
        shoal_mqtt_gateway::persist::MANAGE_ADDRESS,
        shoal_broker::manage::MANAGE_ADDRESS
    );
    let env = SessionEnv::start_with(true).await;
    let queue = "$mqtt/session/-/remote";
    let depth = |env: &SessionEnv| {
        let broker = env.broker.handle();
        async move {
            let stats = broker.stats().await.unwrap();
            stats.queue(queue).map(|q| q.depth)
        }
    };
    let (mut sub, present) = env.connect(Version::V5, "remote", false).await;
    assert!(!present);
    assert_eq!(depth(&env).await, Some(0), "declared before CONNACK");
    sub.subscribe("remote/#", QoS::AtLeastOnce).await;
    env.go_offline(sub, 1).await;
    publish_all(&env, "remote/a", QoS::AtLeastOnce, &["r1", "r2"]).await;
    assert_eq!(
        depth(&env).await,
        Some(2),
        "each PUBACK came once the broker stored it"
    );

    let (mut sub, present) = env.connect(Version::V5, "remote", false).await;
    assert!(present);
    expect_payloads(&mut sub, "remote/a", &["r1", "r2"]).await;
    sub.ping().await;
    sub.send(&Packet::Disconnect(Default::default())).await;
    assert!(sub.recv().await.is_none());
    // A clean session ends it: the queue is deleted in the broker.
    let (mut clean, _) = env.connect(Version::V5, "remote", true).await;
    clean.ping().await;
    assert_eq!(depth(&env).await, None, "deleted");
}

#[tokio::test]
async fn a_clean_session_discards_what_was_kept() {
    let env = SessionEnv::start().await;
    let (mut sub, _) = env.connect(Version::V311, "cleaned", false).await;
    let ack = sub.subscribe("alerts/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    env.go_offline(sub, 1).await;
    publish_all(&env, "alerts/fire", QoS::AtLeastOnce, &["kept"]).await;

    let (mut sub, present) = env.connect(Version::V311, "cleaned", true).await;
    assert!(!present);
    assert_eq!(env.gateway().persistent_sessions(), 0);
    // Nothing kept, and no subscription either: a message now goes nowhere near it.
    sub.ping().await;
    sub.send(&Packet::Disconnect(Default::default())).await;
    assert!(sub.recv().await.is_none());

    let (mut sub, present) = env.connect(Version::V311, "cleaned", false).await;
    assert!(!present, "the discarded session is gone");
    let ack = sub.subscribe("alerts/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    let mut publisher = publish_live(&env, "alerts/flood", "new").await;
    expect_payloads(&mut sub, "alerts/flood", &["new"]).await;
    publisher.expect_puback().await;
}

#[tokio::test]
async fn qos0_messages_are_not_kept_for_an_offline_session() {
    let env = SessionEnv::start().await;
    let (mut sub, _) = env.connect(Version::V5, "lossy", false).await;
    let ack = sub.subscribe("sensors/#", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    env.go_offline(sub, 1).await;
    publish_all(&env, "sensors/a", QoS::AtMostOnce, &["q0-1", "q0-2"]).await;
    publish_all(&env, "sensors/a", QoS::AtLeastOnce, &["q1"]).await;

    let (mut sub, present) = env.connect(Version::V5, "lossy", false).await;
    assert!(present);
    // Only the QoS 1 message was kept: it is the first thing the session gets.
    expect_payloads(&mut sub, "sensors/a", &["q1"]).await;
    sub.ping().await;
}

#[tokio::test]
async fn sessions_survive_a_gateway_restart() {
    for over_amqp in [false, true] {
        sessions_survive_a_gateway_restart_with(over_amqp).await;
    }
}

async fn sessions_survive_a_gateway_restart_with(over_amqp: bool) {
    let mut env = SessionEnv::start_with(over_amqp).await;
    let (mut sub, _) = env.connect(Version::V311, "durable", false).await;
    let ack = sub.subscribe("plant/+/alarm", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    env.go_offline(sub, 1).await;
    publish_all(&env, "plant/1/alarm", QoS::AtLeastOnce, &["before"]).await;

    env.gateway.take().unwrap().shutdown().await;
    env.start_gateway().await;
    env.gateway()
        .wait_sessions_restored(Duration::from_secs(5))
        .await;
    assert_eq!(env.gateway().offline_sessions(), 1);
    publish_all(&env, "plant/2/alarm", QoS::AtLeastOnce, &["after"]).await;

    let (mut sub, present) = env.connect(Version::V311, "durable", false).await;
    assert!(present, "the session was restored from disk");
    expect_payloads(&mut sub, "plant/1/alarm", &["before"]).await;
    expect_payloads(&mut sub, "plant/2/alarm", &["after"]).await;
    sub.ping().await;
}

#[tokio::test]
async fn an_expired_session_is_dropped_with_what_it_kept() {
    let env = SessionEnv::start().await;
    let (mut sub, _) = env
        .connect_with_expiry(Version::V5, "brief", false, Some(1))
        .await;
    sub.subscribe("brief/#", QoS::AtLeastOnce).await;
    env.go_offline(sub, 1).await;
    publish_all(&env, "brief/x", QoS::AtLeastOnce, &["too late"]).await;
    // The session expiry (1 s) ends the session: no event to await, so watch the gauge.
    let gateway = env.gateway();
    eventually(|| async { gateway.persistent_sessions() == 0 }).await;
    let (mut sub, present) = env.connect(Version::V5, "brief", false).await;
    assert!(!present, "the expired session is gone");
    sub.ping().await;
}

#[tokio::test]
async fn a_v5_session_without_expiry_ends_with_its_connection() {
    let env = SessionEnv::start().await;
    // Clean start 0 but no session expiry: nothing outlives the connection.
    let (mut sub, present) = env
        .connect_with_expiry(Version::V5, "short", false, None)
        .await;
    assert!(!present);
    sub.subscribe("short/#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Default::default())).await;
    assert!(sub.recv().await.is_none());
    assert_eq!(env.gateway().persistent_sessions(), 0);
    let (_sub, present) = env.connect(Version::V5, "short", false).await;
    assert!(!present);
}

#[tokio::test]
async fn a_take_over_keeps_the_subscriptions_made_since_connecting() {
    let env = SessionEnv::start().await;
    let (mut first, _) = env.connect(Version::V311, "twin", false).await;
    first.subscribe("twin/+", QoS::AtLeastOnce).await;
    let (mut second, present) = env.connect(Version::V311, "twin", false).await;
    assert!(present, "the live session is taken over");
    assert!(
        first.recv().await.is_none(),
        "the first connection is closed"
    );
    let mut publisher = publish_live(&env, "twin/a", "hello").await;
    expect_payloads(&mut second, "twin/a", &["hello"]).await;
    publisher.expect_puback().await;
}

#[tokio::test]
async fn the_session_cap_refuses_more_persistent_sessions() {
    let mut env = SessionEnv::start().await;
    env.gateway.take().unwrap().shutdown().await;
    let mut persistence = Persistence::new(
        env.dir.path().join("capped"),
        "broker".into(),
        Arc::new(Queues(env.broker.handle())),
    );
    persistence.max_sessions = 1;
    let gateway = Gateway::bind_with(
        ([127, 0, 0, 1], 0).into(),
        GatewayConfig::default(),
        env.router.handle(),
        None,
        Some(persistence),
    )
    .await
    .unwrap();
    env.mqtt = gateway.local_addr();
    env.gateway = Some(gateway);
    let (_one, _) = env.connect(Version::V5, "one", false).await;
    let mut c = connect_packet(Version::V5, "two", None);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    let (_two, code) = Client::try_connect(env.mqtt, c).await;
    assert_eq!(code, Some(shoal_mqtt::reason::QUOTA_EXCEEDED));
    // A clean session is not counted.
    let (_three, _) = env.connect(Version::V5, "three", true).await;
}

#[tokio::test]
async fn a_kept_message_from_a_named_link_keeps_the_topic_it_was_sent_to() {
    let mut env = SessionEnv::start().await;
    let amqp = env
        .router
        .listen(([127, 0, 0, 1], 0).into(), None)
        .await
        .unwrap()
        .local_addr;
    let (mut sub, _) = env.connect(Version::V311, "wild", false).await;
    let ack = sub.subscribe("sensors/+/temp", QoS::AtLeastOnce).await;
    assert_eq!(&ack.reason_codes[..], &[1]);
    env.go_offline(sub, 1).await;

    // A message without `to` on a link named for the topic: the keeper stores it under the address matched.
    let conn = Connection::connect(amqp, ConnectOptions::default())
        .await
        .unwrap();
    let tx = conn
        .sender(Some("sensors/room1/temp"), SenderOptions::default())
        .await
        .unwrap();
    let m = MessageBuilder {
        body: Body::Data(Bytes::from_static(b"kept")),
        ..MessageBuilder::default()
    };
    let delivery = tx.send(m, false).await.unwrap();
    assert_eq!(
        delivery.outcome().await.unwrap(),
        DeliveryState::Accepted,
        "accepted once the broker stored it"
    );

    let (mut sub, present) = env.connect(Version::V311, "wild", false).await;
    assert!(present);
    expect_payloads(&mut sub, "sensors/room1/temp", &["kept"]).await;
}
