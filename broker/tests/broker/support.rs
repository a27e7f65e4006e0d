//! Starting brokers and talking to them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_amqp::{Body, Header, MessageBuilder};
use shoal_broker::store::{MemoryStore, Store};
use shoal_broker::{Broker, BrokerConfig, QueueStats};
use shoal_client::{ConnectOptions, Connection, Received, Receiver, Sender, SenderOptions};
use shoal_router::RouterConfig;

/// How long a test waits for something that should happen (real time).
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub config: BrokerConfig,
}

/// Timers of the connection engine far away, so tests on paused time only ever jump to the broker's own.
pub fn server_config() -> RouterConfig {
    RouterConfig {
        container_id: "test-broker".into(),
        idle_timeout: Duration::from_secs(24 * 3600),
        handshake_timeout: Duration::from_secs(24 * 3600),
        ..RouterConfig::default()
    }
}

/// One queue, `q`, with default settings.
pub fn queue_q() -> BrokerConfig {
    BrokerConfig {
        addresses: vec![shoal_broker::BrokerAddress::queue("q")],
        ..BrokerConfig::default()
    }
}

pub async fn start(config: BrokerConfig) -> TestBroker {
    start_on(config, Arc::new(MemoryStore::new())).await
}

pub async fn start_on(config: BrokerConfig, store: Arc<dyn Store>) -> TestBroker {
    let mut broker = Broker::start(config.clone(), Arc::clone(&store), server_config())
        .await
        .expect("broker starts");
    let bound = broker
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .expect("broker listens");
    TestBroker {
        broker,
        addr: bound.local_addr,
        store,
        config,
    }
}

impl TestBroker {
    /// Shut down and start again on the same store and configuration.
    pub async fn restart(self) -> TestBroker {
        let TestBroker {
            broker,
            store,
            config,
            ..
        } = self;
        broker.shutdown().await;
        start_on(config, store).await
    }

    /// Shut down and close the store. A RocksDB store still open when the test process exits may crash it
    /// (its background threads against the process's static destructors).
    pub async fn stop(self) {
        self.broker.shutdown().await;
        drop(self.store);
    }

    pub async fn connect(&self) -> Connection {
        connect(self.addr, "test-client").await
    }

    pub async fn stats(&self, queue: &str) -> Option<QueueStats> {
        let stats = self.broker.handle().stats().await.expect("stats");
        stats.queue(queue).cloned()
    }
}

pub async fn connect(addr: SocketAddr, container_id: &str) -> Connection {
    let opts = ConnectOptions {
        container_id: container_id.into(),
        connect_timeout: Duration::from_secs(24 * 3600),
        ..ConnectOptions::default()
    };
    Connection::connect(addr, opts).await.expect("connects")
}

/// A message with a text body; `durable` sets the header's durable flag.
pub fn message(text: &str, durable: bool) -> MessageBuilder {
    MessageBuilder {
        header: Some(Header {
            durable,
            ..Header::default()
        }),
        body: Body::Data(Bytes::copy_from_slice(text.as_bytes())),
        ..MessageBuilder::default()
    }
}

/// A non-durable message with a TTL (see [`send_accepted_paused`] for why non-durable).
pub fn message_ttl(text: &str, ttl: Duration) -> MessageBuilder {
    let mut m = message(text, false);
    if let Some(h) = m.header.as_mut() {
        h.ttl = Some(ttl.as_millis() as u32);
    }
    m
}

pub fn text(r: &Received) -> String {
    match r.message().expect("decodes").body {
        Body::Data(d) => String::from_utf8_lossy(&d).into_owned(),
        other => panic!("unexpected body {other:?}"),
    }
}

pub fn delivery_count(r: &Received) -> u32 {
    r.message()
        .expect("decodes")
        .header
        .map_or(0, |h| h.delivery_count)
}

pub async fn sender(conn: &Connection, address: &str) -> Sender {
    conn.sender(Some(address), SenderOptions::default())
        .await
        .expect("sender attaches")
}

/// Send each text (durable, unsettled) and wait until every one is accepted.
pub async fn send_accepted(sender: &Sender, texts: &[&str]) {
    let mut pending = Vec::new();
    for t in texts {
        pending.push(sender.send(&message(t, true), false).await.expect("send"));
    }
    for d in pending {
        let state = tokio::time::timeout(WAIT, d.outcome())
            .await
            .expect("outcome in time")
            .expect("outcome");
        assert_eq!(state, shoal_amqp::DeliveryState::Accepted);
    }
}

/// [`send_accepted`] for tests on paused time. With the clock paused, tokio jumps to the next timer whenever
/// every task waits on something outside the runtime, such as the store writer's thread. So tests on paused
/// time send non-durable messages (kept in memory: nothing waits for the writer) and set no deadlines.
pub async fn send_accepted_paused(sender: &Sender, texts: &[&str]) {
    let mut pending = Vec::new();
    for t in texts {
        pending.push(sender.send(&message(t, false), false).await.expect("send"));
    }
    for d in pending {
        let state = d.outcome().await.expect("outcome");
        assert_eq!(state, shoal_amqp::DeliveryState::Accepted);
    }
}

/// How long (in virtual time) a test on paused time waits for something: beyond every deadline the tests set,
/// and well before the test server's connection timers. So a broken broker fails the test instead of hanging it.
pub const PAUSED_WAIT: Duration = Duration::from_secs(3600);

/// The next delivery, on paused time.
pub async fn recv_paused(r: &Receiver) -> Received {
    tokio::time::timeout(PAUSED_WAIT, r.recv())
        .await
        .expect("a delivery within the virtual deadline")
        .expect("a delivery")
}

/// The next delivery (real-time bound).
pub async fn recv(r: &Receiver) -> Received {
    tokio::time::timeout(WAIT, r.recv())
        .await
        .expect("a delivery in time")
        .expect("a delivery")
}

/// Receive `n` and return their texts (unsettled: the caller settles).
pub async fn recv_texts(r: &Receiver, n: usize) -> Vec<(Received, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let d = recv(r).await;
        let t = text(&d);
        out.push((d, t));
    }
    out
}

/// Nothing more arrives: given one credit and drained, the receiver gets nothing.
pub async fn assert_empty(r: &Receiver) {
    r.flow(1).await.expect("flow");
    let got = tokio::time::timeout(WAIT, r.drain())
        .await
        .expect("drain answered")
        .expect("drain");
    assert_eq!(got, 0, "nothing more was expected");
    assert_eq!(r.queued(), 0);
}

/// A round trip through the broker core on `conn`: everything `conn` sent before (dispositions, flows) has
/// been processed when this returns. (An attach of a receiver without credit on queue `queue`.)
pub async fn round_trip(conn: &Connection, queue: &str) {
    let probe = conn.receiver(queue, 0).await.expect("probe attaches");
    probe.detach(true).await.expect("probe detaches");
}

pub fn texts(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}
