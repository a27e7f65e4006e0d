//! `shoal broker`: the broker alone, as its own process (a pod on Kubernetes), for routers to connect to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use shoal_broker::{Broker, BrokerConfig};
use shoal_router::{RouterConfig, RouterHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::broker_manifest::to_broker_address;
use crate::http::{self, AdminState};
use crate::manifest::{self, Manifest};

/// A running broker process.
pub struct BrokerProcess {
    pub amqp: SocketAddr,
    /// The admin API (the same Kubernetes-shaped paths as the router's), when asked for.
    pub http: Option<SocketAddr>,
    broker: Broker,
    http_task: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

/// Open the store in `<data_dir>/broker`, declare the broker addresses of `manifests` placed on `name`, and
/// listen; with `http_listen`, also serve the admin API there, so that `shoal apply` (or an operator) can
/// declare addresses on this broker while it runs (they are kept in `<data_dir>/manifests/`, as the router
/// keeps its own, and declared again at the next start).
pub async fn start(
    name: &str,
    data_dir: &Path,
    listen: SocketAddr,
    http_listen: Option<SocketAddr>,
    manifests: &[PathBuf],
) -> anyhow::Result<BrokerProcess> {
    let addresses = manifest::load_paths(manifests)?
        .iter()
        .filter_map(|m| match m {
            Manifest::Address(a) if manifest::placement(a) == name => to_broker_address(a),
            Manifest::Address(_) => None,
        })
        .collect();
    let path = data_dir.join("broker");
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = tokio::task::spawn_blocking({
        let path = path.clone();
        move || shoal_broker::store::RocksStore::open(&path)
    })
    .await?
    .with_context(|| format!("opening the broker store in {}", path.display()))?;
    let config = BrokerConfig {
        addresses,
        ..BrokerConfig::default()
    };
    let server = RouterConfig {
        container_id: "shoal-broker".into(),
        ..RouterConfig::default()
    };
    let mut broker = Broker::start(config, Arc::new(store), server).await?;
    let amqp = broker
        .listen(listen)
        .await
        .with_context(|| format!("binding the broker's AMQP listener on {listen}"))?
        .local_addr;
    let (http, http_task) = match http_listen {
        None => (None, None),
        Some(addr) => {
            let (bound, task) = serve_admin(name, data_dir, &broker, addr).await?;
            (Some(bound), Some(task))
        }
    };
    Ok(BrokerProcess {
        amqp,
        http,
        broker,
        http_task,
    })
}

/// The admin API over this broker alone: no router behind it, so rules go nowhere and only addresses placed
/// on `name` are accepted.
async fn serve_admin(
    name: &str,
    data_dir: &Path,
    broker: &Broker,
    addr: SocketAddr,
) -> anyhow::Result<(
    SocketAddr,
    (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>),
)> {
    let ready = Arc::new(AtomicBool::new(false));
    let mut admin = AdminState::new(
        RouterHandle::placeholder(),
        Arc::clone(&ready),
        Some(data_dir.to_owned()),
    );
    admin.broker = Some(broker.handle());
    admin.brokers = vec![name.to_owned()];
    let admin = Arc::new(admin);
    http::restore(&admin).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP listener on {addr}"))?;
    let bound = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(http::serve(listener, admin, async move {
        let _ = stopped.await;
    }));
    ready.store(true, Ordering::Release);
    Ok((bound, (stop, task)))
}

impl BrokerProcess {
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
        if let Some((stop, task)) = self.http_task {
            let _ = stop.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
        }
    }
}
