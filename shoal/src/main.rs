//! The `shoal` command: flags in, library calls out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shoal::cli::OutputFormat;
use shoal::standalone::{BrokerSetup, Options, Standalone};

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Shoal: messaging as a service (AMQP 1.0 router, broker, MQTT)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: the router, and the broker behind queues, topics and subscriptions.
    Standalone(StandaloneArgs),
    /// Run only the router; queues, topics and subscriptions are served by brokers in other processes.
    Router {
        #[command(flatten)]
        args: StandaloneArgs,
        /// A broker to route broker addresses to: `NAME=HOST:PORT`, or `HOST:PORT` for the broker named
        /// `broker` (repeatable).
        #[arg(long = "broker", value_parser = parse_broker)]
        brokers: Vec<(String, SocketAddr)>,
    },
    /// Run only the broker (its AMQP listener is what `shoal router --broker` connects to).
    Broker(BrokerArgs),
    /// Run the MQTT gateway (and its device registry) on its own: an edge router attached to the mesh's
    /// interior routers, so devices' traffic reaches AMQP applications on any router.
    MqttGateway(GatewayArgs),
    /// Apply manifests (a file or a folder of them) to a running Shoal.
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SHOAL_SERVER")]
        server: String,
    },
    /// List resources.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Delete a resource.
    Delete {
        #[command(subcommand)]
        what: DeleteWhat,
    },
    /// Manage tenants, devices and credentials in the device registry (the MQTT gateway's logins).
    Registry {
        #[command(subcommand)]
        command: shoal::cli::registry::RegistryCommand,
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080",
            env = "SHOAL_SERVER",
            global = true
        )]
        server: String,
    },
}

#[derive(Subcommand)]
enum GetWhat {
    /// Declared addresses.
    #[command(alias = "address", alias = "addr")]
    Addresses {
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: OutputFormat,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SHOAL_SERVER")]
        server: String,
    },
}

#[derive(Subcommand)]
enum DeleteWhat {
    /// An address, by name.
    #[command(alias = "addresses", alias = "addr")]
    Address {
        name: String,
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SHOAL_SERVER")]
        server: String,
    },
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// AMQP listener (routers connect here).
    #[arg(long, default_value = "127.0.0.1:5673")]
    amqp_listen: SocketAddr,
    /// Where the broker keeps its messages.
    #[arg(long, default_value = "./shoal-data")]
    data_dir: PathBuf,
    /// Admin API listener (`shoal apply --server http://ADDR` declares addresses on this broker); off unless
    /// given.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// The broker's name: it holds the addresses whose `spec.broker` names it (or that name none, for
    /// `broker`), and routers know it by this name (`shoal router --broker NAME=HOST:PORT`).
    #[arg(long, default_value = shoal::standalone::BROKER)]
    name: String,
    /// Manifests declaring the queues, topics and subscriptions this broker holds (a file or a folder).
    #[arg(short = 'f', long = "filename")]
    manifests: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct GatewayArgs {
    /// Interior routers to attach to (`edge://HOST:PORT` or `HOST:PORT`, their inter-router listeners);
    /// repeatable: the gateway fails over between them.
    #[arg(long = "connect", required = true, value_parser = parse_uplink)]
    connect: Vec<shoal::mesh_config::Peer>,
    /// This gateway's id in the mesh (unique among the mesh's routers).
    #[arg(long, default_value = "mqtt-gateway")]
    router_id: String,
    /// MQTT listener.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// MQTT over TLS listener (off unless given; needs --tls-cert and --tls-key). Devices log in with a
    /// password or a client certificate from their tenant's trusted CA.
    #[arg(long)]
    mqtts_listen: Option<SocketAddr>,
    /// PEM certificate chain for --mqtts-listen.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --mqtts-listen.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Let MQTT clients connect without credentials (plain topics only).
    #[arg(long)]
    mqtt_allow_anonymous: bool,
    /// MQTT connections served at once (more wait in the listen backlog); each takes a file descriptor,
    /// so raise the process's limit (`ulimit -n`) with it.
    #[arg(long, default_value_t = 10_000)]
    mqtt_max_connections: usize,
    /// HTTP listener: /healthz, /metrics and the device registry API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Where the device registry, retained messages and persistent sessions' records are kept (their
    /// messages are kept by the session broker).
    #[arg(long, default_value = "./shoal-data")]
    data_dir: PathBuf,
    /// A local AMQP listener (for diagnostics; applications use the interior routers). Ephemeral unless given.
    #[arg(long, default_value = "127.0.0.1:0")]
    amqp_listen: SocketAddr,
    /// The broker (its name, as the interiors know it) that keeps persistent MQTT sessions' queues; the
    /// gateway declares them there over AMQP, through the mesh.
    #[arg(long, default_value = shoal::standalone::BROKER)]
    session_broker: String,
}

/// A gateway attaches as an edge: `edge://` may be left out.
fn parse_uplink(text: &str) -> Result<shoal::mesh_config::Peer, String> {
    let url = if text.contains("://") {
        text.to_owned()
    } else {
        format!("edge://{text}")
    };
    let peer = parse_connect(&url)?;
    if peer.0 != shoal_router::PeerRole::Edge {
        return Err(format!(
            "`{text}`: a gateway attaches to interiors as an edge (edge://HOST:PORT)"
        ));
    }
    Ok(peer)
}

fn parse_broker(text: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = match text.split_once('=') {
        Some((name, addr)) => (name.to_owned(), addr),
        None => (shoal::standalone::BROKER.to_owned(), text),
    };
    let addr = addr
        .parse()
        .map_err(|e| format!("`{addr}` is not HOST:PORT: {e}"))?;
    Ok((name, addr))
}

#[derive(clap::Args)]
struct StandaloneArgs {
    /// AMQP listener.
    #[arg(long, default_value = "127.0.0.1:5672")]
    amqp_listen: SocketAddr,
    /// AMQP over TLS listener (off unless given; needs --tls-cert and --tls-key).
    #[arg(long)]
    amqps_listen: Option<SocketAddr>,
    /// PEM certificate chain for --amqps-listen and --mqtts-listen.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --amqps-listen and --mqtts-listen.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// HTTP listener: /healthz, /metrics and the admin API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Where state is kept.
    #[arg(long, default_value = "./shoal-data")]
    data_dir: PathBuf,
    /// Manifests to apply at start (a file or a folder; repeatable).
    #[arg(short = 'f', long = "filename")]
    manifests: Vec<PathBuf>,
    /// Credit each sender link holds at most.
    #[arg(long, default_value_t = 250)]
    link_capacity: u32,
    /// SASL PLAIN users (YAML: `users: [{name: alice, password: secret}]`); turns ANONYMOUS off.
    #[arg(long)]
    sasl_users: Option<PathBuf>,
    /// Keep SASL ANONYMOUS on even with --sasl-users.
    #[arg(long)]
    allow_anonymous: bool,
    /// MQTT listener (the MQTT gateway; devices authenticate against the registry in the data dir).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// Let MQTT clients connect without credentials (plain topics only).
    #[arg(long)]
    mqtt_allow_anonymous: bool,
    /// MQTT connections served at once (more wait in the listen backlog); each takes a file descriptor,
    /// so raise the process's limit (`ulimit -n`) with it.
    #[arg(long, default_value_t = 10_000)]
    mqtt_max_connections: usize,
    /// MQTT over TLS listener (off unless given; needs --tls-cert and --tls-key). Devices may log in with a
    /// client certificate issued by their tenant's trusted CA.
    #[arg(long)]
    mqtts_listen: Option<SocketAddr>,
    /// This router's id in the mesh (default: `shoal`).
    #[arg(long)]
    router_id: Option<String>,
    /// `interior` (takes part in routing; the default) or `edge` (hangs off interiors).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<shoal_router::Mode>,
    /// Listener for other routers of the mesh (interiors, and edges attaching to this one).
    #[arg(long)]
    inter_router_listen: Option<SocketAddr>,
    /// A router to keep a connection to: `inter-router://HOST:PORT` or `edge://HOST:PORT`, optionally
    /// with `?cost=N` (the link's cost in route computation, default 1); repeatable.
    #[arg(long = "connect", value_parser = parse_connect)]
    connect: Vec<shoal::mesh_config::Peer>,
    /// The mesh settings in a YAML file (`routerId`, `mode`, `interRouterListen`, `connect`); flags given
    /// here win over it, and `--connect` flags add to its list.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_mode(text: &str) -> Result<shoal_router::Mode, String> {
    shoal::mesh_config::parse_mode(text).map_err(|e| format!("{e:#}"))
}

fn parse_connect(text: &str) -> Result<shoal::mesh_config::Peer, String> {
    shoal::mesh_config::parse_peer(text).map_err(|e| format!("{e:#}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // One rustls crypto provider for the whole process (ring), whatever the dependencies enable.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Standalone(args) => standalone(args, BrokerSetup::InProcess),
        Command::Router { args, brokers } => standalone(args, BrokerSetup::Remote(brokers)),
        Command::Broker(args) => broker(args),
        Command::MqttGateway(args) => gateway(args),
        Command::Apply { files, server } => shoal::cli::apply(&server, &files),
        Command::Get {
            what: GetWhat::Addresses { output, server },
        } => shoal::cli::get_addresses(&server, output),
        Command::Delete {
            what:
                DeleteWhat::Address {
                    name,
                    namespace,
                    server,
                },
        } => shoal::cli::delete_address(&server, &namespace, &name),
        Command::Registry { command, server } => {
            shoal::cli::registry::run(&server, command, &mut std::io::stdout().lock())
        }
    }
}

fn broker(args: BrokerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let signals = Signals::new()?;
        let broker = shoal::broker_process::start(
            &args.name,
            &args.data_dir,
            args.amqp_listen,
            args.http_listen,
            &args.manifests,
        )
        .await?;
        println!("amqp listening on {}", broker.amqp);
        if let Some(http) = broker.http {
            println!("http listening on {http}");
        }
        println!("ready");
        signals.wait().await;
        tracing::info!("shutting down");
        bounded_shutdown(broker.shutdown()).await;
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(RUNTIME_STOP);
    result
}

/// `shoal mqtt-gateway`: an edge router with the MQTT gateway and registry, and no broker of its own
/// (events and other broker addresses reach the brokers through the interiors).
fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let opts = Options {
        amqp_listen: args.amqp_listen,
        http_listen: args.http_listen,
        data_dir: args.data_dir,
        mqtt_listen: Some(args.mqtt_listen),
        mqtts_listen: args.mqtts_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        mqtt_allow_anonymous: args.mqtt_allow_anonymous,
        mqtt_max_connections: args.mqtt_max_connections,
        mesh: shoal::standalone::MeshOptions {
            router_id: Some(args.router_id),
            mode: shoal_router::Mode::Edge,
            inter_router_listen: None,
            connect: args.connect,
        },
        broker: BrokerSetup::Remote(Vec::new()),
        session_broker: Some(args.session_broker),
        ..Options::default()
    };
    run(opts)
}

fn standalone(args: StandaloneArgs, broker: BrokerSetup) -> anyhow::Result<()> {
    let opts = Options {
        amqp_listen: args.amqp_listen,
        amqps_listen: args.amqps_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        http_listen: args.http_listen,
        data_dir: args.data_dir,
        manifests: args.manifests,
        link_capacity: args.link_capacity,
        sasl_users: args.sasl_users,
        allow_anonymous: args.allow_anonymous,
        mqtt_listen: Some(args.mqtt_listen),
        mqtt_allow_anonymous: args.mqtt_allow_anonymous,
        mqtt_max_connections: args.mqtt_max_connections,
        mqtts_listen: args.mqtts_listen,
        mesh: {
            let flags = shoal::mesh_config::MeshFlags {
                router_id: args.router_id,
                mode: args.mode,
                inter_router_listen: args.inter_router_listen,
                connect: args.connect,
            };
            let mesh = flags.resolve(args.config.as_deref())?;
            shoal::standalone::MeshOptions {
                router_id: mesh.router_id,
                mode: mesh.mode,
                inter_router_listen: mesh.inter_router_listen,
                connect: mesh.connect,
            }
        },
        broker,
        ..Options::default()
    };
    run(opts)
}

/// Start, say what listens where, run until SIGTERM or SIGINT, stop.
fn run(opts: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        // Listen for signals before anyone can know we are up: a SIGTERM right after `ready` must drain.
        let signals = Signals::new()?;
        let shoal = Standalone::start(opts).await?;
        // Machine-readable: tests and scripts read the bound addresses from stdout.
        println!("amqp listening on {}", shoal.amqp);
        if let Some(amqps) = shoal.amqps {
            println!("amqps listening on {amqps}");
        }
        if let Some(mqtt) = shoal.mqtt {
            println!("mqtt listening on {mqtt}");
        }
        if let Some(mqtts) = shoal.mqtts {
            println!("mqtts listening on {mqtts}");
        }
        println!("http listening on {}", shoal.http);
        if let Some(inter) = shoal.inter_router {
            println!("inter-router listening on {inter}");
        }
        println!("ready");
        signals.wait().await;
        tracing::info!("shutting down: draining");
        bounded_shutdown(shoal.shutdown()).await;
        tracing::info!("stopped");
        anyhow::Ok(())
    });
    // Tasks still running (a connection that never answered our close) must not hold the exit up.
    runtime.shutdown_timeout(RUNTIME_STOP);
    result
}

/// Each shutdown step has its own bound; this is the last word, so that SIGTERM always ends the process within
/// what a supervisor waits (Kubernetes: 30 s). Nothing acknowledged is at risk: durable messages were on disk
/// before they were accepted, and the store recovers from its log as after a crash.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(4);
const RUNTIME_STOP: std::time::Duration = std::time::Duration::from_millis(500);

async fn bounded_shutdown(shutdown: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SHUTDOWN_LIMIT, shutdown)
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than {SHUTDOWN_LIMIT:?}: exiting anyway");
    }
}

/// SIGTERM and SIGINT, registered up front.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
