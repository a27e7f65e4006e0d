//! What survives: accepted only after the sync, restarts, durable subscriptions.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use shoal_amqp::DeliveryState;
use shoal_broker::store::{self, Expired, MemoryStore, Op, QueueMeta, Store, StoredMessage};
use shoal_broker::{BrokerAddress, BrokerConfig};
use tokio::sync::Notify;

use crate::raw::{RawReceiver, SourceSpec};
use crate::support::*;

/// A memory store whose synced writes wait until the test opens the gate.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    open: Mutex<bool>,
    opened: Condvar,
    /// Signalled when a synced write starts waiting.
    waiting: Notify,
}

impl GatedStore {
    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Store for GatedStore {
    fn write(&self, ops: &[Op], sync: bool) -> store::Result<()> {
        if sync {
            self.waiting.notify_one();
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        self.inner.write(ops, sync)
    }
    fn queues(&self) -> store::Result<Vec<QueueMeta>> {
        self.inner.queues()
    }
    fn scan(&self, queue: &str, from: u64, limit: usize) -> store::Result<Vec<StoredMessage>> {
        self.inner.scan(queue, from, limit)
    }
    fn last_seq(&self, queue: &str) -> store::Result<Option<u64>> {
        self.inner.last_seq(queue)
    }
    fn expired(&self, now: u64, limit: usize) -> store::Result<Vec<Expired>> {
        self.inner.expired(now, limit)
    }
    fn next_deadline(&self) -> store::Result<Option<u64>> {
        self.inner.next_deadline()
    }
}

#[tokio::test]
async fn a_durable_message_is_accepted_only_after_the_sync() {
    let gated = Arc::new(GatedStore::default());
    // Declared queues are created with an unsynced write: the broker starts with the gate closed.
    let b = start_on(queue_q(), gated.clone()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    let waiting = gated.waiting.notified();
    let durable = s.send(&message("d", true), false).await.unwrap();
    waiting.await;
    // The synced write is stuck in the store. A round trip through the core on the same connection: a
    // settlement sent before it would have arrived by now.
    let probe = conn.receiver("q", 0).await.unwrap();
    let mut outcome = Box::pin(durable.outcome());
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut outcome)
            .await
            .is_err(),
        "accepted before the write covering it was synced"
    );
    gated.open_gate();
    let state = tokio::time::timeout(WAIT, outcome).await.unwrap().unwrap();
    assert_eq!(state, DeliveryState::Accepted);
    probe.flow(1).await.unwrap();
    assert_eq!(text(&recv(&probe).await), "d");
}

#[tokio::test]
async fn non_durable_messages_do_not_wait_for_a_sync() {
    let gated = Arc::new(GatedStore::default());
    let b = start_on(queue_q(), gated.clone()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    // The gate stays closed: only memory is involved.
    let d = s.send(&message("light", false), false).await.unwrap();
    let state = tokio::time::timeout(WAIT, d.outcome())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state, DeliveryState::Accepted);
    gated.open_gate();
}

fn durable_config() -> BrokerConfig {
    BrokerConfig {
        addresses: vec![BrokerAddress::queue("q"), BrokerAddress::topic("events")],
        ..BrokerConfig::default()
    }
}

/// Everything accepted before a restart is there after it, in order, once; a message that was delivered and
/// not settled comes back with a higher delivery-count.
async fn restart_keeps_messages(store: Arc<dyn Store>) {
    let b = start_on(durable_config(), store).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    let all = texts(50, "r");
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    send_accepted(&s, &refs).await;
    let r = conn.receiver("q", 2).await.unwrap();
    let got = recv_texts(&r, 2).await;
    r.accept(&got[0].0).await.unwrap();
    // got[1] stays unsettled. Make sure the broker saw the accept before it stops.
    round_trip(&conn, "q").await;
    let b = b.restart().await;

    let conn = b.connect().await;
    let r = conn.receiver("q", 100).await.unwrap();
    let got = recv_texts(&r, 49).await;
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, refs[1..].to_vec());
    assert_eq!(delivery_count(&got[0].0), 1, "delivered before the restart");
    assert_eq!(delivery_count(&got[1].0), 0, "never delivered");
    assert_empty(&r).await;
    b.stop().await;
}

#[tokio::test]
async fn restart_on_a_memory_store() {
    restart_keeps_messages(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn restart_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::RocksStore::open(dir.path()).unwrap();
    restart_keeps_messages(Arc::new(store)).await;
}

#[tokio::test]
async fn a_durable_subscription_collects_while_detached_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store::RocksStore::open(dir.path()).unwrap());
    let b = start_on(durable_config(), store).await;
    let spec = SourceSpec {
        durable: true,
        ..SourceSpec::default()
    };
    let mut sub = RawReceiver::attach(b.addr, "client-1", "my-sub", "events", &spec)
        .await
        .unwrap();
    sub.flow(10).await;
    let conn = b.connect().await;
    let s = sender(&conn, "events").await;
    send_accepted(&s, &["e1"]).await;
    assert_eq!(sub.take(1).await, ["e1"]);
    sub.detach(false).await;

    send_accepted(&s, &["e2", "e3"]).await;
    assert_eq!(b.stats("events::client-1:my-sub").await.unwrap().depth, 2);
    conn.close().await.unwrap();
    let b = b.restart().await;

    let conn = b.connect().await;
    let s = sender(&conn, "events").await;
    send_accepted(&s, &["e4"]).await;
    // Same container-id and link name: the same subscription.
    let mut sub = RawReceiver::attach(b.addr, "client-1", "my-sub", "events", &spec)
        .await
        .unwrap();
    sub.flow(10).await;
    assert_eq!(sub.take(3).await, ["e2", "e3", "e4"]);
    sub.assert_empty().await;
    // Another container's subscription of the same name is another subscription (it starts empty).
    let mut other = RawReceiver::attach(b.addr, "client-2", "my-sub", "events", &spec)
        .await
        .unwrap();
    other.assert_empty().await;
    b.stop().await;
}

/// The delivered watermark in `store`'s record of `queue`.
fn stored_watermark(store: &dyn Store, queue: &str) -> u64 {
    let meta = store
        .queues()
        .unwrap()
        .into_iter()
        .find(|m| m.name == queue)
        .expect("the queue is in the store");
    let text = String::from_utf8_lossy(&meta.config).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("delivered="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The watermark a restart uses to mark redeliveries reaches the store before the delivery it covers leaves
/// the broker (a crash right after a delivery must not bring the message back as never delivered), and it
/// covers only what the consumer's credit took.
#[tokio::test]
async fn the_delivered_watermark_is_stored_before_the_delivery_leaves() {
    let store = Arc::new(MemoryStore::new());
    let b = start_on(durable_config(), store.clone()).await;
    let conn = b.connect().await;
    let s = sender(&conn, "q").await;
    send_accepted(&s, &["m1", "m2", "m3", "m4"]).await;
    assert_eq!(stored_watermark(&*store, "q"), 0);

    let r = conn.receiver("q", 1).await.unwrap();
    assert_eq!(text(&recv(&r).await), "m1");
    assert_eq!(stored_watermark(&*store, "q"), 1, "m1 was delivered");

    r.flow(2).await.unwrap();
    let got = recv_texts(&r, 2).await;
    assert_eq!(got[1].1, "m3");
    assert_eq!(stored_watermark(&*store, "q"), 3, "up to m3, not m4");
}
