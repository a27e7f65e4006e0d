//! `shoal-load`: an AMQP 1.0 load generator. Prints one JSON line with throughput and latency.
//!
//! Each sender and receiver is its own connection, driven by a lean engine (`wire`) on the
//! `shoal-amqp` codec: pre-encoded transfers patched in place, pipelined up to the granted
//! credit, batched writes, and ranged dispositions. Nothing is Shoal-specific: the address is
//! the link's target/source address, so any AMQP 1.0 server with a node of that name works.

mod recv;
mod send;
mod stats;
mod template;
mod wire;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use shoal_client::Sasl;
use tokio::sync::{mpsc, watch};

use stats::{Stats, Window};
use wire::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SaslMode {
    /// PLAIN if the URL has user:password, otherwise no SASL layer.
    Auto,
    None,
    Anonymous,
    Plain,
}

/// AMQP 1.0 load generator: N senders and M receivers on one address.
#[derive(Debug, Parser)]
#[command(name = "shoal-load", version)]
struct Args {
    /// amqp://[user:password@]host[:port]
    #[arg(long)]
    url: String,
    /// Where the receivers connect, if not to `--url` (another router of a mesh: the multi-hop rows).
    #[arg(long)]
    receiver_url: Option<String>,
    /// The node to send to and receive from.
    #[arg(long)]
    address: String,
    #[arg(long, default_value_t = 1)]
    senders: usize,
    #[arg(long, default_value_t = 1)]
    receivers: usize,
    /// Bytes of message data (at least 8: the send timestamp).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Send settled (at-most-once) and ask receivers for settled deliveries.
    #[arg(long)]
    presettled: bool,
    /// Total messages per second over all senders (default: as fast as credit allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runtime worker threads (1 leaves the CPU to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Credit each receiver keeps granted.
    #[arg(long, default_value_t = 1000)]
    credit: u32,
    #[arg(long, value_enum, default_value_t = SaslMode::Auto)]
    sasl: SaslMode,
    /// Mark messages durable (a header with durable=true): a broker stores them before it
    /// accepts them.
    #[arg(long)]
    durable: bool,
    /// When receivers grant more credit (see `empty` for RabbitMQ 3.x).
    #[arg(long, value_enum, default_value_t = recv::Refill::Half)]
    credit_refill: recv::Refill,
    /// Total messages over all senders; each sender stops after its share once every one has
    /// an outcome, and the run ends when the senders are done (receivers stop with them).
    #[arg(long)]
    count: Option<u64>,
    /// Unsettled messages each sender may have without an outcome (default: as many as the
    /// peer's credit allows; a broker that grants a huge window then only queues them up).
    #[arg(long)]
    max_in_flight: Option<u64>,
}

/// The parts of an amqp:// URL.
#[derive(Debug, PartialEq)]
struct Url {
    host: String,
    port: u16,
    user: Option<(String, String)>,
}

fn parse_url(url: &str) -> Result<Url> {
    let rest = url
        .strip_prefix("amqp://")
        .with_context(|| format!("{url}: only amqp:// URLs are supported"))?;
    let rest = rest.split('/').next().unwrap_or_default();
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((cred, hp)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (Some((u.to_owned(), p.to_owned())), hp)
        }
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, p) = v6.split_once(']').context("unterminated [ in URL")?;
        (h.to_owned(), p.strip_prefix(':').unwrap_or(""))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (hostport.to_owned(), ""),
        }
    };
    let port = if port.is_empty() {
        5672
    } else {
        port.parse().with_context(|| format!("bad port in {url}"))?
    };
    if host.is_empty() {
        bail!("{url}: no host");
    }
    Ok(Url { host, port, user })
}

async fn endpoint(args: &Args, url: &str) -> Result<Endpoint> {
    let url = parse_url(url)?;
    let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await?
        .next()
        .with_context(|| format!("{} does not resolve", url.host))?;
    let sasl = match (args.sasl, url.user) {
        (SaslMode::None, _) | (SaslMode::Auto, None) => Sasl::None,
        (SaslMode::Anonymous, _) => Sasl::Anonymous,
        (SaslMode::Auto | SaslMode::Plain, Some((user, password))) => {
            Sasl::Plain { user, password }
        }
        (SaslMode::Plain, None) => bail!("--sasl plain needs user:password@ in the URL"),
    };
    Ok(Endpoint {
        addr,
        hostname: url.host,
        sasl,
    })
}

async fn run(args: Args) -> Result<String> {
    let ep = endpoint(&args, &args.url).await?;
    let receiver_ep = match &args.receiver_url {
        Some(url) => endpoint(&args, url).await?,
        None => ep.clone(),
    };
    let (go_tx, go_rx) = watch::channel(None::<Window>);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<()>>(args.senders + args.receivers + 1);
    let pid = std::process::id();
    let mut tasks = Vec::new();

    // Receivers first, so nothing sent is released for lack of a consumer.
    for i in 0..args.receivers {
        let cfg = recv::ReceiverConfig {
            endpoint: receiver_ep.clone(),
            address: args.address.clone(),
            name: format!("shoal-load-{pid}-r{i}"),
            size: args.size,
            presettled: args.presettled,
            credit: args.credit.max(1),
            refill: args.credit_refill,
        };
        let (ready, mut go) = (ready_tx.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            let wire = match recv::connect(&cfg).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = ready.send(Err(e)).await;
                    return Ok(Stats::default());
                }
            };
            let _ = ready.send(Ok(())).await;
            let window = wait_go(&mut go).await?;
            recv::run(wire, cfg, window).await
        }));
    }
    wait_ready(&mut ready_rx, args.receivers).await?;

    let rate = args.rate.map(|r| r / args.senders.max(1) as f64);
    for i in 0..args.senders {
        let cfg = send::SenderConfig {
            endpoint: ep.clone(),
            address: args.address.clone(),
            name: format!("shoal-load-{pid}-s{i}"),
            size: args.size,
            presettled: args.presettled,
            rate,
            durable: args.durable,
            count: args.count.map(|n| share(n, args.senders, i)),
            max_in_flight: args.max_in_flight.map(|n| n.max(1)),
        };
        let (ready, mut go) = (ready_tx.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            let wire = match send::connect(&cfg).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = ready.send(Err(e)).await;
                    return Ok(Stats::default());
                }
            };
            let _ = ready.send(Ok(())).await;
            let window = wait_go(&mut go).await?;
            send::run(wire, cfg, window).await
        }));
    }
    wait_ready(&mut ready_rx, args.senders).await?;

    let start = Instant::now() + Duration::from_secs_f64(args.warmup.max(0.0));
    let window = Window {
        start,
        end: start + Duration::from_secs_f64(args.duration.max(0.0)),
    };
    let _ = go_tx.send(Some(window));
    let mut total = Stats::default();
    for t in tasks {
        let stats = t.await.context("a load task panicked")??;
        total.merge(&stats);
    }
    // A counted run ends when its senders are done, usually before the window would.
    let measured = Window {
        start: window.start,
        end: Instant::now().clamp(window.start, window.end),
    };
    Ok(total.json(&measured, args.receivers))
}

/// Sender `i`'s part of `total` messages over `senders` senders.
fn share(total: u64, senders: usize, i: usize) -> u64 {
    let senders = senders.max(1) as u64;
    total / senders + u64::from((i as u64) < total % senders)
}

async fn wait_ready(rx: &mut mpsc::Receiver<Result<()>>, n: usize) -> Result<()> {
    for _ in 0..n {
        rx.recv().await.context("a load task ended early")??;
    }
    Ok(())
}

async fn wait_go(go: &mut watch::Receiver<Option<Window>>) -> Result<Window> {
    loop {
        if let Some(w) = *go.borrow_and_update() {
            return Ok(w);
        }
        go.changed().await.context("the run was abandoned")?;
    }
}

fn main() {
    let args = Args::parse();
    match run_main(args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            // One line, no backtrace: the harness shows stderr as is.
            eprintln!("shoal-load: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run_main(args: Args) -> Result<String> {
    if args.senders == 0 && args.receivers == 0 {
        bail!("nothing to do: no senders and no receivers");
    }
    if args.count.is_some() && (args.receivers > 0 || args.senders == 0) {
        // Receivers run for the window; a counted run ends with its senders.
        bail!("--count fills a node: it needs senders and --receivers 0");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("amqp://127.0.0.1:5673").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 5673,
                user: None
            }
        );
        assert_eq!(
            parse_url("amqp://bob:pw@localhost").unwrap(),
            Url {
                host: "localhost".into(),
                port: 5672,
                user: Some(("bob".into(), "pw".into()))
            }
        );
        assert_eq!(parse_url("amqp://[::1]:99/x").unwrap().host, "::1");
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("amqp://:5672").is_err());
        assert!(parse_url("amqp://h:notaport").is_err());
    }

    #[test]
    fn counts_are_shared_out_exactly() {
        for (total, senders) in [(10, 3), (5, 16), (0, 4), (1_000_000, 16)] {
            let parts: Vec<u64> = (0..senders).map(|i| share(total, senders, i)).collect();
            assert_eq!(parts.iter().sum::<u64>(), total);
            let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{parts:?}");
        }
    }
}
