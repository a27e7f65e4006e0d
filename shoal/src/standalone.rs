//! `shoal standalone`: the router (and, as they arrive, broker, gateway, console) in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shoal_broker::{Broker, BrokerConfig};
use shoal_router::{Router, RouterConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{self, AdminState};
use crate::{manifest, users};

/// Everything `shoal standalone` can be told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub amqp_listen: SocketAddr,
    pub amqps_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub http_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub manifests: Vec<PathBuf>,
    pub link_capacity: u32,
    pub sasl_users: Option<PathBuf>,
    pub allow_anonymous: bool,
    /// How long SIGTERM waits for unsettled deliveries before closing connections.
    pub drain_grace: Duration,
    /// Where queues, topics and subscriptions live.
    pub broker: BrokerSetup,
    /// Keep the in-process broker's messages in memory instead of RocksDB (tests that need no durability:
    /// faster, and no storage engine left open when a test process exits).
    pub broker_in_memory: bool,
    /// The MQTT gateway's listener (`None`: no MQTT).
    pub mqtt_listen: Option<SocketAddr>,
    /// MQTT clients without credentials may connect (plain topics only; devices authenticate against the
    /// registry in `<data-dir>/registry`).
    pub mqtt_allow_anonymous: bool,
    /// MQTT connections served at once.
    pub mqtt_max_connections: usize,
    /// The MQTT gateway's TLS listener (`None`: no MQTTS), with the `tls_cert`/`tls_key` pair.
    pub mqtts_listen: Option<SocketAddr>,
    /// The router's place in a mesh (ADR 0009): its id, mode, inter-router listener and connectors.
    pub mesh: MeshOptions,
    /// The broker (route-container name) holding the queues of persistent MQTT sessions. `None`: the
    /// in-process broker, or with `BrokerSetup::Remote` the one named `broker` (else the first); with no
    /// broker at all, every MQTT session is clean. A broker this process does not run is asked over AMQP,
    /// through its queue-management node (ADR 0008).
    pub session_broker: Option<String>,
}

/// `--router-id`, `--mode`, `--inter-router-listen`, `--connect`.
#[derive(Debug, Clone, Default)]
pub struct MeshOptions {
    /// Our id in the mesh (default: the container id, `shoal`).
    pub router_id: Option<String>,
    pub mode: shoal_router::Mode,
    /// Where other routers (interiors, and edges attaching to us) connect.
    pub inter_router_listen: Option<SocketAddr>,
    /// Routers to keep a connection to (redialled with backoff), with each link's cost.
    pub connect: Vec<(shoal_router::PeerRole, SocketAddr, u32)>,
}

/// Where the broker behind `queue`, `topic` and `subscription` addresses runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerSetup {
    /// In this process (`shoal standalone`), on its own loopback AMQP listener: the router reaches it over
    /// AMQP exactly as it reaches a broker in another process or pod.
    InProcess,
    /// In other processes (`shoal router --broker NAME=HOST:PORT`).
    Remote(Vec<(String, SocketAddr)>),
}

/// The route-container name of the broker `shoal standalone` runs (and the default for `--broker`).
pub const BROKER: &str = crate::manifest::BROKER;

impl Default for Options {
    fn default() -> Self {
        Options {
            amqp_listen: ([127, 0, 0, 1], 5672).into(),
            amqps_listen: None,
            tls_cert: None,
            tls_key: None,
            http_listen: ([127, 0, 0, 1], 8080).into(),
            data_dir: PathBuf::from("shoal-data"),
            manifests: Vec::new(),
            link_capacity: 250,
            sasl_users: None,
            allow_anonymous: false,
            drain_grace: Duration::from_secs(2),
            broker: BrokerSetup::InProcess,
            broker_in_memory: false,
            mqtt_listen: Some(([127, 0, 0, 1], 1883).into()),
            mqtt_allow_anonymous: false,
            mqtt_max_connections: shoal_mqtt_gateway::GatewayConfig::default().max_connections,
            mqtts_listen: None,
            mesh: MeshOptions::default(),
            session_broker: None,
        }
    }
}

impl Options {
    /// The broker holding persistent MQTT sessions' queues, if any (see [`Options::session_broker`]).
    fn session_broker(&self) -> Option<String> {
        if let Some(name) = &self.session_broker {
            return Some(name.clone());
        }
        match &self.broker {
            BrokerSetup::InProcess => Some(BROKER.into()),
            BrokerSetup::Remote(brokers) => brokers
                .iter()
                .find(|(name, _)| name == BROKER)
                .or(brokers.first())
                .map(|(name, _)| name.clone()),
        }
    }

    /// Options for tests: every listener on an ephemeral loopback port.
    pub fn ephemeral(data_dir: PathBuf) -> Options {
        Options {
            amqp_listen: ([127, 0, 0, 1], 0).into(),
            http_listen: ([127, 0, 0, 1], 0).into(),
            mqtt_listen: Some(([127, 0, 0, 1], 0).into()),
            data_dir,
            ..Options::default()
        }
    }
}

/// A running standalone Shoal.
pub struct Standalone {
    pub amqp: SocketAddr,
    pub amqps: Option<SocketAddr>,
    pub http: SocketAddr,
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
    /// The inter-router listener, when asked for.
    pub inter_router: Option<SocketAddr>,
    router: Router,
    gateway: Option<shoal_mqtt_gateway::Gateway>,
    broker: Option<Broker>,
    stop_http: oneshot::Sender<()>,
    http_task: JoinHandle<std::io::Result<()>>,
    drain_grace: Duration,
}

impl Standalone {
    pub async fn start(opts: Options) -> anyhow::Result<Standalone> {
        let mut config = RouterConfig {
            link_capacity: opts.link_capacity,
            ..RouterConfig::default()
        };
        if let Some(path) = &opts.sasl_users {
            config.auth.users = users::load(path)?;
            config.auth.allow_anonymous = opts.allow_anonymous;
        }
        let manifests = manifest::load_paths(&opts.manifests)?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating data dir {}", opts.data_dir.display()))?;
        let tls = match (&opts.amqps_listen, &opts.tls_cert, &opts.tls_key) {
            (None, _, _) => None,
            (Some(_), Some(cert), Some(key)) => Some(shoal_router::tls::acceptor(cert, key)?),
            (Some(_), _, _) => anyhow::bail!("--amqps-listen needs --tls-cert and --tls-key"),
        };
        let mqtts_cert = match (&opts.mqtts_listen, &opts.tls_cert, &opts.tls_key) {
            (None, _, _) => None,
            (Some(_), _, _) if opts.mqtt_listen.is_none() => {
                anyhow::bail!("--mqtts-listen needs the MQTT gateway (--mqtt-listen)")
            }
            (Some(_), Some(cert), Some(key)) => {
                let (chain, key) = shoal_router::tls::load_pem(cert, key)?;
                Some(shoal_mqtt_gateway::ServerCert { chain, key })
            }
            (Some(_), _, _) => anyhow::bail!("--mqtts-listen needs --tls-cert and --tls-key"),
        };

        if let Some(id) = &opts.mesh.router_id {
            shoal_router::RouterId::new(id.as_str()).context("--router-id")?;
        }
        config.router_id = opts.mesh.router_id.clone();
        config.mode = opts.mesh.mode;
        let mut router = Router::start(config);
        let inter_router = match opts.mesh.inter_router_listen {
            Some(addr) => Some(
                router
                    .listen_inter_router(addr)
                    .await
                    .with_context(|| format!("binding the inter-router listener on {addr}"))?
                    .local_addr,
            ),
            None => None,
        };
        for (role, addr, cost) in &opts.mesh.connect {
            router.connect_with_cost(*role, *addr, *cost);
        }
        let broker = match &opts.broker {
            BrokerSetup::InProcess => {
                let broker = start_broker(&opts.data_dir, opts.broker_in_memory).await?;
                let listening = broker.1;
                router.connect_route_container(BROKER.into(), listening);
                Some(broker.0)
            }
            BrokerSetup::Remote(brokers) => {
                for (name, addr) in brokers {
                    router.connect_route_container(name.clone(), *addr);
                }
                None
            }
        };
        let ready = Arc::new(AtomicBool::new(false));
        let mut admin = AdminState::new(
            router.handle(),
            Arc::clone(&ready),
            Some(opts.data_dir.clone()),
        );
        admin.broker = broker.as_ref().map(Broker::handle);
        admin.brokers = match &opts.broker {
            BrokerSetup::InProcess => vec![BROKER.to_owned()],
            BrokerSetup::Remote(brokers) => brokers.iter().map(|(name, _)| name.clone()).collect(),
        };
        let registry = shoal_registry::Registry::open(&opts.data_dir, Default::default())
            .context("opening the device registry")?;
        admin.registry = Some(registry.clone());
        let admin = Arc::new(admin);
        http::restore(&admin).await?;
        http::apply(&admin, manifests).await?;

        let amqp = router
            .listen(opts.amqp_listen, None)
            .await
            .with_context(|| format!("binding the AMQP listener on {}", opts.amqp_listen))?
            .local_addr;
        let amqps = match (opts.amqps_listen, tls) {
            (Some(addr), Some(tls)) => Some(
                router
                    .listen(addr, Some(tls))
                    .await
                    .with_context(|| format!("binding the AMQPS listener on {addr}"))?
                    .local_addr,
            ),
            _ => None,
        };
        let gateway = match opts.mqtt_listen {
            Some(addr) => {
                let config = shoal_mqtt_gateway::GatewayConfig {
                    allow_anonymous: opts.mqtt_allow_anonymous,
                    max_connections: opts.mqtt_max_connections.max(1),
                    ..Default::default()
                };
                // Persistent sessions keep what they miss in a broker's queues.
                let persistence = match opts.session_broker() {
                    Some(name) => {
                        let queues: Arc<dyn shoal_mqtt_gateway::SessionQueues> =
                            match broker.as_ref().filter(|_| name == BROKER) {
                                Some(b) => Arc::new(SessionQueues(b.handle())),
                                None => Arc::new(
                                    shoal_mqtt_gateway::BrokerQueues::start(router.handle(), &name)
                                        .await?,
                                ),
                            };
                        Some(shoal_mqtt_gateway::Persistence::new(
                            opts.data_dir.join("mqtt-sessions"),
                            name,
                            queues,
                        ))
                    }
                    None => None,
                };
                let mut gateway = shoal_mqtt_gateway::Gateway::bind_with(
                    addr,
                    config,
                    router.handle(),
                    Some(registry),
                    persistence,
                )
                .await
                .with_context(|| format!("binding the MQTT listener on {addr}"))?;
                if let (Some(tls_addr), Some(cert)) = (opts.mqtts_listen, mqtts_cert) {
                    gateway
                        .listen_tls(tls_addr, cert)
                        .await
                        .with_context(|| format!("binding the MQTTS listener on {tls_addr}"))?;
                }
                Some(gateway)
            }
            None => None,
        };
        let mqtt = gateway
            .as_ref()
            .map(shoal_mqtt_gateway::Gateway::local_addr);
        let mqtts = gateway
            .as_ref()
            .and_then(shoal_mqtt_gateway::Gateway::tls_local_addr);
        let http_listener = tokio::net::TcpListener::bind(opts.http_listen)
            .await
            .with_context(|| format!("binding the HTTP listener on {}", opts.http_listen))?;
        let http = http_listener.local_addr()?;
        if broker.is_some() {
            // Clients may attach to queues as soon as we say ready: the broker link must be up by then.
            wait_for_broker(&router.handle()).await?;
        }
        if let Some(gateway) = &gateway {
            // MQTT sessions restored from disk hold their subscriptions again before we say ready (bounded:
            // a broker in another process may be down, and its keepers go on trying).
            gateway
                .wait_sessions_restored(Duration::from_secs(10))
                .await;
        }
        let (stop_http, stopped) = oneshot::channel::<()>();
        let http_task = tokio::spawn(http::serve(http_listener, Arc::clone(&admin), async move {
            let _ = stopped.await;
        }));
        ready.store(true, Ordering::Release);
        Ok(Standalone {
            amqp,
            amqps,
            http,
            mqtt,
            mqtts,
            inter_router,
            router,
            gateway,
            broker,
            stop_http,
            http_task,
            drain_grace: opts.drain_grace,
        })
    }

    pub fn router(&self) -> shoal_router::RouterHandle {
        self.router.handle()
    }

    /// Stop accepting, drain unsettled deliveries (up to the grace period), close connections, stop HTTP.
    pub async fn shutdown(self) {
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
        }
        self.router.shutdown(self.drain_grace).await;
        tracing::debug!("router stopped");
        if let Some(broker) = self.broker {
            broker.shutdown().await;
            tracing::debug!("broker stopped");
        }
        let _ = self.stop_http.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.http_task).await;
    }
}

/// The in-process broker: its store in `<data-dir>/broker`, its AMQP listener on an ephemeral loopback port.
async fn start_broker(
    data_dir: &std::path::Path,
    in_memory: bool,
) -> anyhow::Result<(Broker, SocketAddr)> {
    let store: Arc<dyn shoal_broker::store::Store> = if in_memory {
        Arc::new(shoal_broker::store::MemoryStore::new())
    } else {
        let path = data_dir.join("broker");
        let store = tokio::task::spawn_blocking({
            let path = path.clone();
            move || shoal_broker::store::RocksStore::open(&path)
        })
        .await?
        .with_context(|| format!("opening the broker store in {}", path.display()))?;
        Arc::new(store)
    };
    let server = RouterConfig {
        container_id: "shoal-broker".into(),
        ..RouterConfig::default()
    };
    let mut broker = Broker::start(BrokerConfig::default(), store, server).await?;
    let bound = broker.listen(([127, 0, 0, 1], 0).into()).await?;
    Ok((broker, bound.local_addr))
}

/// The MQTT gateway's session queues, declared in the in-process broker.
struct SessionQueues(shoal_broker::BrokerHandle);

impl shoal_mqtt_gateway::SessionQueues for SessionQueues {
    fn ensure<'a>(
        &'a self,
        address: &'a str,
    ) -> shoal_mqtt_gateway::persist::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let queue = shoal_broker::BrokerAddress::queue(address);
            self.0.set_address(queue).await.map_err(|e| e.to_string())
        })
    }

    fn delete<'a>(
        &'a self,
        address: &'a str,
    ) -> shoal_mqtt_gateway::persist::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0
                .delete_address(address)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// Wait (up to 10 s) until the router's connection to the broker is up.
async fn wait_for_broker(router: &shoal_router::RouterHandle) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = router.snapshot().await?;
        if snapshot.route_containers.iter().any(|c| c == BROKER) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the router could not connect to its broker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
