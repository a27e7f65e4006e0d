//! `shoal broker`: the broker alone, as its own process (a pod on Kubernetes), for routers to connect to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use shoal_broker::{Broker, BrokerConfig};
use shoal_router::RouterConfig;

use crate::broker_manifest::to_broker_address;
use crate::manifest::{self, Manifest};

/// A running broker process.
pub struct BrokerProcess {
    pub amqp: SocketAddr,
    broker: Broker,
}

/// Open the store in `<data_dir>/broker`, declare the broker addresses of `manifests` placed on `name`, and
/// listen.
pub async fn start(
    name: &str,
    data_dir: &Path,
    listen: SocketAddr,
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
    Ok(BrokerProcess { amqp, broker })
}

impl BrokerProcess {
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
    }
}
