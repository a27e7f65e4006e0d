//! `shoal-mqtt-load`: an MQTT 3.1.1/5 load generator on the `shoal-mqtt` codec. Prints one JSON line with the
//! same keys as `shoal-load` (`accepted` counts PUBACKs), so the benchmark script reads both alike.
//!
//! Modes: N publishers and M subscribers on one topic (QoS 0 or 1, a bounded in-flight window per
//! publisher, batched writes); `--rate` spreads a total rate over the publishers (1,000 devices at 10 msg/s
//! each); `--idle N` only connects N clients, spread over `--source-ips` so that more than one port range of
//! connections fits, keeps them alive and reports how many are connected. The first 8 payload bytes are the
//! send time (ns since the epoch, big-endian), as in `shoal-load`, so an AMQP `shoal-load` receiver can time
//! messages a device published.

#[path = "../stats.rs"]
mod stats;

mod client;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use shoal_mqtt::{QoS, Version};
use tokio::sync::watch;

use stats::{Stats, Window};

/// MQTT load generator: publishers and subscribers on one topic, or many idle clients.
#[derive(Debug, Parser, Clone)]
#[command(name = "shoal-mqtt-load", version)]
pub struct Args {
    /// mqtt://[user:password@]host[:port]; `{i}` in the user is replaced by the client's index.
    #[arg(long)]
    url: String,
    /// The topic publishers publish to.
    #[arg(long, default_value = "load/test")]
    topic: String,
    /// The filter subscribers subscribe to (default: the topic).
    #[arg(long)]
    filter: Option<String>,
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Payload bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Total messages per second over all publishers (default: as fast as the window allows).
    #[arg(long)]
    rate: Option<f64>,
    /// QoS 1 messages a publisher may have without a PUBACK.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// MQTT 5 instead of 3.1.1.
    #[arg(long)]
    v5: bool,
    /// Connect this many clients that only keep their connection alive (no publishers or subscribers).
    #[arg(long)]
    idle: Option<usize>,
    /// Local addresses to connect from, round robin (e.g. 127.0.0.1,127.0.0.2): each gives a port range.
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Client ids are PREFIX-p0, PREFIX-s0, PREFIX-i0...
    #[arg(long, default_value = "load")]
    client_prefix: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: Credentials,
    pub version: Version,
    pub source_ips: Vec<IpAddr>,
}

impl Target {
    /// The credentials of client `i`.
    pub fn credentials(&self, i: usize) -> Option<(String, String)> {
        self.user
            .as_ref()
            .map(|(u, p)| (u.replace("{i}", &i.to_string()), p.clone()))
    }

    pub fn source(&self, i: usize) -> Option<IpAddr> {
        (!self.source_ips.is_empty()).then(|| self.source_ips[i % self.source_ips.len()])
    }
}

/// A user name and password from the URL.
type Credentials = Option<(String, String)>;

fn parse_url(url: &str) -> Result<(String, u16, Credentials)> {
    let rest = url
        .strip_prefix("mqtt://")
        .with_context(|| format!("{url}: only mqtt:// URLs are supported"))?;
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((cred, hp)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (Some((u.to_owned(), p.to_owned())), hp)
        }
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().with_context(|| format!("bad port in {url}"))?),
        None => (hostport, 1883),
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    Ok((host.to_owned(), port, user))
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.size >= client::STAMP_LEN, "--size must be at least 8");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let (host, port, user) = parse_url(&args.url)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .with_context(|| format!("{host} does not resolve"))?;
    let target = Target {
        addr,
        user,
        version: if args.v5 { Version::V5 } else { Version::V311 },
        source_ips: args.source_ips.clone(),
    };
    if let Some(n) = args.idle {
        return idle(&args, &target, n).await;
    }
    let qos = if args.qos == 1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    let filter = args.filter.clone().unwrap_or_else(|| args.topic.clone());
    // Everyone connected (and subscribed) before the clock starts.
    let mut subscribers = Vec::new();
    for i in 0..args.subscribers {
        let sub = client::Client::connect(&target, i, &format!("{}-s{i}", args.client_prefix))
            .await
            .with_context(|| format!("subscriber {i}"))?;
        subscribers.push(sub.subscribe(&filter, qos).await?);
    }
    let mut publishers = Vec::new();
    for i in 0..args.publishers {
        let publisher =
            client::Client::connect(&target, i, &format!("{}-p{i}", args.client_prefix))
                .await
                .with_context(|| format!("publisher {i}"))?;
        publishers.push(publisher);
    }
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let window = Window {
        start,
        end: start + Duration::from_secs_f64(args.duration),
    };
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    for sub in subscribers {
        tasks.push(tokio::spawn(sub.receive(window, stop.clone())));
    }
    let per_publisher = args.rate.map(|r| r / args.publishers.max(1) as f64);
    for publisher in publishers {
        let job = client::PublishJob {
            topic: args.topic.clone(),
            qos,
            size: args.size,
            inflight: args.inflight.max(1),
            rate: per_publisher,
            window,
        };
        tasks.push(tokio::spawn(publisher.publish(job, stop.clone())));
    }
    tokio::time::sleep_until(window.end.into()).await;
    // A moment for the last messages in flight to arrive (they are outside the window anyway).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let mut total = Stats::default();
    for t in tasks {
        match t.await? {
            Ok(mut s) => {
                s.last_received = None;
                total.merge(&s);
            }
            Err(e) => eprintln!("shoal-mqtt-load: {e:#}"),
        }
    }
    // With subscribers the rate is what they received; without, what the publishers got acknowledged (QoS 1)
    // or sent (QoS 0).
    if args.subscribers == 0 {
        total.received = if qos == QoS::AtLeastOnce {
            total.accepted
        } else {
            total.sent
        };
    }
    println!("{}", total.json(&window, args.subscribers.max(1)));
    Ok(())
}

/// Connect `n` clients and keep them connected for the duration; print how many made it.
async fn idle(args: &Args, target: &Target, n: usize) -> Result<()> {
    let started = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut first_error = None;
    for i in 0..n {
        match client::Client::connect(target, i, &format!("{}-i{i}", args.client_prefix)).await {
            Ok(c) => held.push(tokio::spawn(c.keep_alive(stop.clone()))),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let mut alive = 0usize;
    let _ = stop_tx.send(true);
    for h in held {
        if let Ok(true) = h.await {
            alive += 1;
        }
    }
    println!(
        "{{\"idle\":{n},\"connected\":{},\"alive_at_end\":{alive},\"failed\":{failed},\"connect_s\":{connect_s:.3},\"first_error\":{}}}",
        n - failed,
        first_error.map_or("null".into(), |e| format!("{e:?}")),
    );
    Ok(())
}
