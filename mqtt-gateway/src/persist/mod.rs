//! Persistent sessions: what a client with clean-session 0 (3.1.1) or a session expiry (MQTT 5) keeps
//! while it is away.
//!
//! Each persistent session has a broker queue (`$mqtt/session/TENANT/CLIENT-ID`, link-routed to the broker
//! by a prefix rule the gateway sets at start) and a record on disk (its subscriptions, see `record.rs`).
//! While the client is offline a keeper (`keeper.rs`) holds the subscriptions and moves QoS 1 messages into the
//! queue; when it reconnects the session drains the queue first, then goes on with live subscriptions.
//! See ADR 0008 for the design and where at-least-once may repeat a message.

mod keeper;
pub(crate) mod record;
mod remote;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use shoal_router::config::{AddressRule, Distribution, Matcher};
use shoal_router::RouterHandle;
use tokio::time::Instant;

use crate::convert::now_millis;
use crate::error::Error;
use crate::server::lock;
pub(crate) use record::{SessionRecord, SubRecord};
pub use remote::{BrokerQueues, MANAGE_ADDRESS, MANAGE_RULE};

/// The address prefix of session queues.
pub const SESSION_QUEUE_PREFIX: &str = "$mqtt/session";

/// The name of the address rule the gateway sets for session queues.
pub const SESSION_RULE: &str = "shoal-system/mqtt-sessions";

/// A boxed future, as the [`SessionQueues`] hooks return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the gateway has the broker create and delete session queues (the broker refuses links to addresses it
/// does not know, so the gateway declares each queue before using it). `shoal standalone` implements it with
/// its broker's handle.
pub trait SessionQueues: Send + Sync + 'static {
    /// Declare the queue `address` (idempotent: an existing queue keeps its messages).
    fn ensure<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Delete the queue `address` and what it holds.
    fn delete<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Where persistent sessions are kept. Without one ([`crate::Gateway::bind`]), every session is clean and
/// CONNACK never says session-present.
#[derive(Clone)]
pub struct Persistence {
    /// The directory of session records (`<data-dir>/mqtt-sessions`).
    pub dir: PathBuf,
    /// The route container (broker) holding session queues.
    pub route_container: String,
    pub queues: Arc<dyn SessionQueues>,
    /// Persistent sessions kept at most (online and offline); beyond, a client asking for one is refused
    /// (MQTT 5 0x97 quota exceeded, 3.1.1 server unavailable).
    pub max_sessions: usize,
    /// Messages on their way into a session's queue per subscription while it is offline.
    pub inflight: u32,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("dir", &self.dir)
            .field("route_container", &self.route_container)
            .field("max_sessions", &self.max_sessions)
            .field("inflight", &self.inflight)
            .finish_non_exhaustive()
    }
}

impl Persistence {
    pub fn new(
        dir: PathBuf,
        route_container: String,
        queues: Arc<dyn SessionQueues>,
    ) -> Persistence {
        Persistence {
            dir,
            route_container,
            queues,
            max_sessions: 10_000,
            inflight: 100,
        }
    }
}

struct Entry {
    record: SessionRecord,
    keeper: Option<keeper::Handle>,
    /// The connection that has the session now (`None`: offline), so a connection that was taken over does
    /// not park a session its successor already resumed.
    owner: Option<u64>,
}

/// The persistent sessions of one gateway.
pub(crate) struct Sessions {
    p: Persistence,
    router: RouterHandle,
    entries: Mutex<HashMap<String, Entry>>,
    /// The gateway is stopping: sessions that end are saved but get no keeper.
    stopping: AtomicBool,
    /// Fire when the keepers of sessions restored at start hold their subscriptions.
    restoring: Mutex<Vec<tokio::sync::oneshot::Receiver<()>>>,
}

/// The queue address of the session with `key` (`TENANT/CLIENT-ID`; anonymous clients have tenant `-`).
pub(crate) fn queue_address(tenant: Option<&str>, client_id: &str) -> String {
    format!(
        "{SESSION_QUEUE_PREFIX}/{}/{client_id}",
        tenant.unwrap_or("-")
    )
}

/// Why a client's persistent session cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotKept {
    /// The gateway keeps as many sessions as it may.
    Quota,
    /// The broker that would hold its queue did not declare it (unreachable, or refused).
    Unavailable,
}

/// What a connecting client finds.
pub(crate) enum Resumed {
    /// No session kept for it.
    Fresh,
    /// Its session: subscriptions to restore, a queue to drain.
    Present(SessionRecord),
}

impl Sessions {
    /// Set the rule for session queues and start a keeper for every session on disk (dropping expired ones).
    pub async fn start(p: Persistence, router: RouterHandle) -> Result<Arc<Sessions>, Error> {
        router
            .set_address(AddressRule {
                name: SESSION_RULE.into(),
                matcher: Matcher::Prefix(SESSION_QUEUE_PREFIX.into()),
                distribution: Distribution::Balanced,
                link_route: Some(p.route_container.clone()),
            })
            .await?;
        let dir = p.dir.clone();
        let records = tokio::task::spawn_blocking(move || record::load_all(&dir))
            .await
            .map_err(std::io::Error::other)??;
        let sessions = Arc::new(Sessions {
            p,
            router,
            entries: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            restoring: Mutex::new(Vec::new()),
        });
        for mut r in records {
            if r.expires_at_ms().is_some_and(|at| at <= now_millis()) {
                sessions.drop_stored(&r).await;
                continue;
            }
            if let Err(e) = sessions.p.queues.ensure(&r.queue).await {
                tracing::warn!(session = %r.key, error = %e, "declaring a session queue");
            }
            // A record written while the client was connected (the gateway stopped under it): it is offline now.
            r.parked_at_ms.get_or_insert_with(now_millis);
            let key = r.key.clone();
            let (handle, ready) = sessions.spawn_keeper(r.clone());
            lock(&sessions.restoring).push(ready);
            lock(&sessions.entries).insert(
                key,
                Entry {
                    record: r,
                    keeper: Some(handle),
                    owner: None,
                },
            );
        }
        Ok(sessions)
    }

    /// The client `owner` connects to session `key`: stop its keeper and hand back what it kept, or with
    /// `clean` discard it. `Ok(Fresh)` also when there is nothing; an error when `persist` asks for a new
    /// session and the cap is reached or its queue cannot be declared.
    pub async fn connect(
        self: &Arc<Self>,
        key: &str,
        queue: String,
        owner: u64,
        clean: bool,
        persist: bool,
    ) -> Result<Resumed, NotKept> {
        let taken = {
            let mut entries = lock(&self.entries);
            match entries.get_mut(key) {
                Some(e) => {
                    e.owner = Some(owner);
                    Some((e.keeper.take(), e.record.clone()))
                }
                None => None,
            }
        };
        let (keeper, record) = match taken {
            Some((k, r)) => (k, Some(r)),
            None => (None, None),
        };
        if let Some(k) = keeper {
            k.stop().await;
        }
        match record {
            Some(r) if !clean => return Ok(Resumed::Present(r)),
            Some(r) => {
                lock(&self.entries).remove(key);
                self.drop_stored(&r).await;
            }
            None => {}
        }
        if !persist {
            return Ok(Resumed::Fresh);
        }
        {
            let mut entries = lock(&self.entries);
            if entries.len() >= self.p.max_sessions {
                return Err(NotKept::Quota);
            }
            entries.insert(
                key.to_owned(),
                Entry {
                    record: SessionRecord {
                        key: key.to_owned(),
                        queue: queue.clone(),
                        subscriptions: Vec::new(),
                        expiry_secs: None,
                        parked_at_ms: None,
                    },
                    keeper: None,
                    owner: Some(owner),
                },
            );
        }
        if let Err(e) = self.p.queues.ensure(&queue).await {
            // A session that cannot keep what it misses must not be promised: the client hears "unavailable"
            // and may try again (or connect with a clean session).
            tracing::warn!(session = key, error = %e, "declaring a session queue");
            let mut entries = lock(&self.entries);
            if entries.get(key).is_some_and(|e| e.owner == Some(owner)) {
                entries.remove(key);
            }
            return Err(NotKept::Unavailable);
        }
        Ok(Resumed::Fresh)
    }

    /// The connection `owner` of session `record.key` ended. With `keep`, save the record and start its
    /// keeper (returns once it holds the subscriptions, so nothing published after this is lost); otherwise
    /// the session ends with its queue.
    pub async fn disconnect(self: &Arc<Self>, owner: u64, mut record: SessionRecord, keep: bool) {
        record.parked_at_ms = Some(now_millis());
        {
            let mut entries = lock(&self.entries);
            match entries.get(&record.key) {
                Some(e) if e.owner == Some(owner) => {}
                // Taken over (or discarded) by a newer connection: that one owns the session now.
                _ => return,
            }
            if !keep {
                entries.remove(&record.key);
            }
        }
        if !keep {
            self.drop_stored(&record).await;
            return;
        }
        let dir = self.p.dir.clone();
        let r = record.clone();
        let written = tokio::task::spawn_blocking(move || record::write(&dir, &r)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(session = %record.key, "could not save the session: it will not survive a restart");
        }
        if self.stopping.load(Ordering::Acquire) {
            if let Some(e) = lock(&self.entries).get_mut(&record.key) {
                e.owner = None;
                e.record = record;
            }
            return;
        }
        let (handle, ready) = self.spawn_keeper(record.clone());
        // Counted as offline (see `offline`) only once it holds the subscriptions.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), ready).await;
        let stale = {
            let mut entries = lock(&self.entries);
            match entries.get_mut(&record.key) {
                Some(e) if e.owner == Some(owner) => {
                    e.owner = None;
                    e.record = record;
                    e.keeper = Some(handle);
                    None
                }
                _ => Some(handle),
            }
        };
        if let Some(h) = stale {
            h.stop().await;
        }
    }

    /// The connection `owner` changed its subscriptions: a connection taking the session over resumes these
    /// (the file is written when the connection ends).
    pub fn update(&self, owner: u64, record: SessionRecord) {
        if let Some(e) = lock(&self.entries).get_mut(&record.key) {
            if e.owner == Some(owner) {
                e.record.subscriptions = record.subscriptions;
            }
        }
    }

    /// The gateway is stopping: sessions ending from now on are saved without a keeper.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Wait (up to `limit`) until the sessions restored at start hold their subscriptions again.
    pub async fn wait_restored(&self, limit: std::time::Duration) {
        let pending = std::mem::take(&mut *lock(&self.restoring));
        let all = async {
            for ready in pending {
                let _ = ready.await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("persistent sessions restored at start are not all subscribed yet");
        }
    }

    /// Stop every keeper (gateway shutdown); records and queues stay.
    pub async fn stop_all(&self) {
        let keepers: Vec<_> = lock(&self.entries)
            .values_mut()
            .filter_map(|e| e.keeper.take())
            .collect();
        for k in keepers {
            k.stop().await;
        }
    }

    /// Persistent sessions kept right now (online and offline).
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Offline sessions whose keeper holds their subscriptions.
    pub fn offline(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|e| e.keeper.as_ref().is_some_and(keeper::Handle::is_ready))
            .count()
    }

    fn spawn_keeper(
        self: &Arc<Self>,
        record: SessionRecord,
    ) -> (keeper::Handle, tokio::sync::oneshot::Receiver<()>) {
        let deadline = record.expires_at_ms().map(|at| {
            let ms = at.saturating_sub(now_millis()).max(0) as u64;
            Instant::now() + std::time::Duration::from_millis(ms)
        });
        let me = Arc::downgrade(self);
        let key = record.key.clone();
        keeper::spawn(
            self.router.clone(),
            record,
            self.p.inflight,
            deadline,
            move |exit| {
                if exit != keeper::Exit::Expired {
                    return;
                }
                let Some(me) = me.upgrade() else { return };
                tokio::spawn(async move { me.expire(&key).await });
            },
        )
    }

    async fn expire(&self, key: &str) {
        let record = {
            let mut entries = lock(&self.entries);
            match entries.get(key) {
                Some(e) if e.owner.is_none() => entries.remove(key).map(|e| e.record),
                _ => None,
            }
        };
        if let Some(r) = record {
            tracing::debug!(session = key, "session expired");
            self.drop_stored(&r).await;
        }
    }

    /// Delete a session's file and queue.
    async fn drop_stored(&self, r: &SessionRecord) {
        let dir = self.p.dir.clone();
        let key = r.key.clone();
        let removed = tokio::task::spawn_blocking(move || record::remove(&dir, &key)).await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(session = %r.key, "could not remove the session file");
        }
        if let Err(e) = self.p.queues.delete(&r.queue).await {
            tracing::warn!(session = %r.key, error = %e, "deleting a session queue");
        }
    }
}
