//! store-bench: synced group-commit throughput of the broker's RocksDB store.
//!
//! For 1, 4 and 16 concurrent producers of 100-byte and 4 KiB messages, each producer commits one synced put
//! at a time (as a broker does for a sender waiting on its disposition) for `--seconds`; prints one JSON
//! object per run. Usage: `store-bench [--dir PATH] [--seconds N]` (default: a fresh dir under the system
//! temp dir, 5 s per run).

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_broker::store::{GroupCommit, Op, QueueMeta, RocksStore, StoredMessage};

struct Args {
    dir: PathBuf,
    seconds: u64,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        dir: std::env::temp_dir().join(format!("shoal-store-bench-{}", std::process::id())),
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value),
            "--seconds" => args.seconds = value.parse()?,
            other => return Err(format!("unknown flag {other} (use --dir, --seconds)").into()),
        }
    }
    Ok(args)
}

struct Run {
    messages: u64,
    elapsed: Duration,
    writes: u64,
    /// Per-commit latency, microseconds, sorted.
    latencies: Vec<u64>,
}

async fn run(
    dir: &std::path::Path,
    producers: u64,
    size: usize,
    seconds: u64,
) -> Result<Run, Box<dyn Error>> {
    let store = Arc::new(RocksStore::open(dir)?);
    let (gc, worker) = GroupCommit::start(store)?;
    gc.commit(
        vec![Op::CreateQueue(QueueMeta {
            name: "bench".into(),
            config: Bytes::new(),
        })],
        true,
    )
    .await?;
    let body = Bytes::from(vec![0x5a; size]);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let (gc, body) = (gc.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut seq = p << 40;
                while Instant::now() < deadline {
                    let message = StoredMessage {
                        seq,
                        delivery_count: 0,
                        expires_at: None,
                        body: body.clone(),
                    };
                    let sent = Instant::now();
                    gc.commit(
                        vec![Op::Put {
                            queue: "bench".into(),
                            message,
                        }],
                        true,
                    )
                    .await?;
                    latencies.push(sent.elapsed().as_micros() as u64);
                    seq += 1;
                }
                Ok::<_, shoal_broker::store::StoreError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let writes = gc.stats().writes.saturating_sub(1); // not the CreateQueue
    drop(gc);
    tokio::task::spawn_blocking(move || worker.join()).await?;
    latencies.sort_unstable();
    Ok(Run {
        messages: latencies.len() as u64,
        elapsed,
        writes,
        latencies,
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for size in [100usize, 4096] {
        for producers in [1u64, 4, 16] {
            let dir = args.dir.join(format!("p{producers}-s{size}"));
            let r = runtime.block_on(run(&dir, producers, size, args.seconds))?;
            std::fs::remove_dir_all(&dir)?;
            let secs = r.elapsed.as_secs_f64();
            println!(
                "{{\"producers\":{producers},\"size\":{size},\"messages\":{},\"seconds\":{secs:.3},\"msgs_per_sec\":{:.0},\"synced_writes\":{},\"mean_group\":{:.1},\"p50_us\":{},\"p99_us\":{}}}",
                r.messages,
                r.messages as f64 / secs,
                r.writes,
                r.messages as f64 / r.writes.max(1) as f64,
                percentile(&r.latencies, 0.5),
                percentile(&r.latencies, 0.99),
            );
        }
    }
    let _ = std::fs::remove_dir(&args.dir);
    Ok(())
}
