"""The broker part of the benchmark: queue scenarios against shoal standalone,
RabbitMQ and ActiveMQ with the same load tool, RSS with millions of stored
messages, and the report sections for docs/benchmarks.md.

Scenarios (each on a freshly started broker):
- concurrent: producers and consumers on the queue at once; throughput is
  messages received per second (and accepted per second on the producer side);
- send-then-receive: producers only (the queue fills; accepted per second),
  then consumers only until the queue is empty or the time is up (received
  per second up to the last message).
Each in durable and non-durable form, 100 B and 4 KiB, 1, 4 and 16 producers.
"""

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from brokers import Unavailable

MODES = [("concurrent", "send+receive concurrently"), ("fill-drain", "send, then receive")]
DURABILITY = [(True, "durable"), (False, "non-durable")]
SIZES = [100, 4096]
PRODUCERS = [1, 4, 16]
# Unconfirmed messages per producer (shoal's router grants 250 credit per link anyway).
MAX_IN_FLIGHT = 1000
# Credit each consumer grants at a time.
RECEIVER_CREDIT = 5000


def consumers_for(producers):
    return 1 if producers == 1 else 4


def scenario_keys():
    for mode, _ in MODES:
        for durable, _ in DURABILITY:
            for size in SIZES:
                for producers in PRODUCERS:
                    yield mode, durable, size, producers


def key_of(mode, durable, size, producers):
    return f"{mode}-{'durable' if durable else 'transient'}-{size}B-{producers}p"


class Load:
    """Runs shoal-load and returns its JSON result."""

    def __init__(self, load_bin, log):
        self.load_bin = load_bin
        self.log = log

    def run(self, port, address, senders, receivers, size, durable, duration, warmup=0.0, count=None):
        args = [
            str(self.load_bin), "--url", f"amqp://127.0.0.1:{port}", "--address", address,
            "--senders", str(senders), "--receivers", str(receivers), "--size", str(size),
            "--duration", str(duration), "--warmup", str(warmup),
            # Receivers top credit up only once it is used up: RabbitMQ 3.x applies new credit
            # without the receiver's delivery-count and sends past the limit otherwise. The
            # same for every broker, so the client side stays identical.
            "--credit-refill", "empty",
            # Like an application with a bounded window of unconfirmed messages: RabbitMQ grants
            # tens of thousands of credit per link, and a sender that uses it all only builds a
            # backlog inside the broker that the measured window never sees confirmed.
            "--max-in-flight", str(MAX_IN_FLIGHT),
            # With top-ups only at zero, a larger window saves round trips (RabbitMQ gains most).
            "--credit", str(RECEIVER_CREDIT),
        ]
        if durable:
            args.append("--durable")
        if count is not None:
            args += ["--count", str(count)]
        out = subprocess.run(args, capture_output=True, text=True, timeout=duration + warmup + 180)
        if out.returncode != 0:
            raise RuntimeError(f"shoal-load failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        lines = [line for line in out.stdout.splitlines() if line.strip().startswith("{")]
        if not lines:
            raise RuntimeError(f"shoal-load printed no JSON: {out.stdout[-500:]}")
        return json.loads(lines[-1])


def per_second(n, seconds):
    return n / seconds if seconds and seconds > 0 else None


def measure(opts, load, broker, mode, durable, size, producers, sampler_factory):
    """One scenario on a fresh broker instance."""
    consumers = consumers_for(producers)
    result = {"errors": []}
    with tempfile.TemporaryDirectory(prefix=f"bench-{broker.name}-") as tmp:
        instance = broker.start(Path(tmp))
        try:
            with sampler_factory(instance) as sampler:
                if mode == "concurrent":
                    r = load.run(instance.port, instance.address, producers, consumers, size, durable,
                                 opts.broker_duration, warmup=opts.warmup)
                    result.update(raw=r, received_per_s=r["msgs_per_sec"],
                                  accepted_per_s=per_second(r["accepted"], r["duration_s"]),
                                  p50_us=r["p50_us"], p99_us=r["p99_us"])
                else:
                    fill = load.run(instance.port, instance.address, producers, 0, size, durable,
                                    opts.broker_duration)
                    result.update(fill=fill, accepted_per_s=per_second(fill["accepted"], fill["duration_s"]))
                    drain = load.run(instance.port, instance.address, 0, consumers, size, durable,
                                     opts.broker_duration * 3)
                    span = drain["receive_span_s"]
                    result.update(drain=drain, received_per_s=per_second(drain["received"], span),
                                  stored=fill["accepted"], drained=drain["received"])
                    if drain["received"] < fill["accepted"]:
                        # Not an error: a slow consumer leaves some behind; the rate stands.
                        result["note"] = f"drained {drain['received']} of {fill['accepted']} in the time"
            result["rss_peak_kib"] = sampler.peak
            if not instance.alive():
                result["errors"].append(f"{broker.name} died during the scenario")
        except Exception as err:  # reported per scenario, the run goes on
            result["errors"].append(str(err)[:500])
        finally:
            instance.stop()
    return result


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def collect(opts, load, brokers, sampler_factory, log):
    results = {"brokers": {}, "scenarios": {}, "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    usable = []
    for broker in brokers:
        try:
            broker.check()
            version = broker.version() if hasattr(broker, "version") else "this build"
            results["brokers"][broker.name] = {"title": broker.title, "version": version}
            usable.append(broker)
        except Unavailable as why:
            log(f"{broker.title}: not benchmarked: {why}")
            results["brokers"][broker.name] = {"title": broker.title, "unavailable": str(why)}
    for mode, durable, size, producers in scenario_keys():
        key = key_of(mode, durable, size, producers)
        if opts.broker_filter and opts.broker_filter not in key:
            continue
        for broker in usable:
            runs = []
            for i in range(opts.broker_runs):
                log(f"{key} on {broker.name}: run {i + 1}/{opts.broker_runs}")
                try:
                    run = measure(opts, load, broker, mode, durable, size, producers, sampler_factory)
                except Exception as err:  # the broker did not start
                    run = {"errors": [f"start: {str(err)[:500]}"]}
                for e in run["errors"]:
                    log(f"  {e}")
                runs.append(run)
            summary = {m: median([r.get(m) for r in runs])
                       for m in ("received_per_s", "accepted_per_s", "rss_peak_kib", "p50_us", "p99_us")}
            summary["runs"] = runs
            results["scenarios"].setdefault(key, {})[broker.name] = summary
    return results


def fill_rss(opts, load, shoal, sampler_factory, log):
    """Stores `opts.rss_messages` durable 100-byte messages in one shoal queue and
    samples RSS meanwhile: the store must hold them, not memory."""
    log(f"RSS with {opts.rss_messages:,} stored messages on shoal")
    result = {"messages": opts.rss_messages, "errors": []}
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        instance = shoal.start(Path(tmp))
        try:
            with sampler_factory(instance) as sampler:
                result["rss_idle_kib"] = sampler.current()
                r = load.run(instance.port, instance.address, 16, 0, 100, True, 3600, count=opts.rss_messages)
            result.update(fill=r, accepted=r["accepted"], seconds=r["duration_s"],
                          rss_peak_kib=sampler.peak, rss_end_kib=sampler.current())
            disk = subprocess.run(["du", "-sk", str(Path(tmp) / "data")], capture_output=True, text=True)
            result["disk_kib"] = int(disk.stdout.split()[0]) if disk.returncode == 0 else None
            # Read a window of it back: still served after filling.
            drain = load.run(instance.port, instance.address, 0, 1, 100, True, 3)
            result["drain_per_s"] = per_second(drain["received"], drain["receive_span_s"])
        except Exception as err:
            result["errors"].append(str(err)[:500])
        finally:
            instance.stop()
    return result


# -- report -------------------------------------------------------------------
def fmt_rate(v):
    return "failed" if v is None else f"{v:,.0f}"


def fmt_mib(v):
    return "failed" if v is None else f"{v / 1024:,.1f}"


def ratio(a, b):
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "∞ (others 0)" if a > 0 else "n/a"
    return f"{a / b:.2f}"


def best_competitor(per, names, metric):
    values = [per.get(n, {}).get(metric) for n in names]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def cell(results, per, name, metric):
    info = results["brokers"].get(name)
    if info is None:
        return "not run"
    if "unavailable" in info:
        return "unavailable"
    return fmt_rate(per.get(name, {}).get(metric))


def broker_table(results, mode, metric, what):
    names = [n for n in results["brokers"] if n != "shoal"]
    header = (["scenario", "shoal"] + [results["brokers"][n]["title"] for n in names]
              + ["shoal / best other"])
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for m, durable, size, producers in scenario_keys():
        if m != mode:
            continue
        key = key_of(m, durable, size, producers)
        per = results["scenarios"].get(key)
        if per is None:
            continue
        title = (f"{'durable' if durable else 'non-durable'}, {size} B, {producers} producer"
                 f"{'s' if producers > 1 else ''} / {consumers_for(producers)} consumer"
                 f"{'s' if consumers_for(producers) > 1 else ''}")
        cells = [title, cell(results, per, "shoal", metric)]
        cells += [cell(results, per, n, metric) for n in names]
        cells.append(ratio(per.get("shoal", {}).get(metric), best_competitor(per, names, metric)))
        lines.append("| " + " | ".join(cells) + " |")
    return f"{what}\n\n" + "\n".join(lines)


def targets(results):
    """The issue's targets, checked against this run (16 producers)."""
    names = [n for n in results["brokers"] if n != "shoal"]
    rows = []
    for label, key, metric, goal in [
        ("durable queue, 16 producers, concurrent, 100 B (accepted/s)", key_of("concurrent", True, 100, 16),
         "accepted_per_s", 3.0),
        ("durable queue, 16 producers, send then receive, 100 B (accepted/s)", key_of("fill-drain", True, 100, 16),
         "accepted_per_s", 3.0),
        ("non-durable send+receive, 16 producers, 100 B (received/s)", key_of("concurrent", False, 100, 16),
         "received_per_s", 2.0),
        ("non-durable send+receive, 16 producers, 4 KiB (received/s)", key_of("concurrent", False, 4096, 16),
         "received_per_s", 2.0),
    ]:
        per = results["scenarios"].get(key, {})
        shoal = per.get("shoal", {}).get(metric)
        other = best_competitor(per, names, metric)
        if shoal is None or other is None:
            verdict = "n/a"
        elif other == 0:
            verdict = "met" if shoal > 0 else "n/a"
        else:
            verdict = "met" if shoal / other >= goal else "NOT met"
        rows.append(f"| {label} | {goal:.0f}x | {ratio(shoal, other)} | {verdict} |")
    return "| target | goal | shoal / best other | |\n|---|---:|---:|---|\n" + "\n".join(rows)


def failures(results):
    errs = sorted({f"{key} on {name}: {e}" for key, per in results["scenarios"].items()
                   for name, s in per.items() for r in s["runs"] for e in r["errors"]})
    if not errs:
        return ""
    return "\n### Failed broker measurements\n\n" + "\n".join(f"- {e[:400]}" for e in errs) + "\n"


def rss_section(rss):
    if not rss:
        return "Not run in this report (`--rss-messages 0`)."
    if rss.get("errors"):
        return "Failed: " + "; ".join(rss["errors"])
    rate = per_second(rss.get("accepted", 0), rss.get("seconds"))
    return (
        f"{rss['accepted']:,} durable 100-byte messages stored in one queue by 16 producers in "
        f"{rss['seconds']:,.0f} s ({fmt_rate(rate)} msg/s accepted). RSS: {fmt_mib(rss.get('rss_idle_kib'))} MiB idle, "
        f"peak {fmt_mib(rss.get('rss_peak_kib'))} MiB while filling, {fmt_mib(rss.get('rss_end_kib'))} MiB once "
        f"full; data directory {fmt_mib(rss.get('disk_kib'))} MiB. A consumer then read "
        f"{fmt_rate(rss.get('drain_per_s'))} msg/s from the full queue."
    )


def section(results, rss, opts_desc):
    lines = []
    for name, info in results["brokers"].items():
        if "unavailable" in info:
            lines.append(f"- **{info['title']}: not measured.** {info['unavailable']}")
        else:
            lines.append(f"- {info['title']} {info['version']}")
    peers = "\n".join(lines)
    return f"""## Broker: queues (store and forward)

Generated {results['generated']}. {opts_desc}

**Brokers:**

{peers}

**Setup.** Every scenario starts the broker fresh on an empty data directory. shoal: `shoal standalone`
with the queue declared in a manifest; clients connect to the router, which link-routes the queue to the
in-process broker over AMQP. RabbitMQ: a private node (own database, ports and cookie) with
`rabbitmq_amqp1_0` enabled by `rabbitmq-plugins`, the queue declared durable beforehand (a queue the AMQP
1.0 plugin declares itself is not durable, and RabbitMQ keeps persistent messages on disk only in durable
queues) and addressed as `/amq/queue/bench-q`; publisher outcomes come after its fsync. ActiveMQ: KahaDB
with journal syncs on (its default) and an `amqp://` transport connector on a free port. The load tool is
`shoal-load` for all; `--durable` sets the header's durable flag; receivers top credit up only when it is
used up (`--credit-refill empty`, 5000 at a time) because RabbitMQ 3.10's plugin applies new credit without the
receiver's delivery-count and otherwise sends past the granted limit, which shoal-load reports as a protocol
error; each producer keeps at most 1000 messages without an outcome (`--max-in-flight 1000`), as an application
with a bounded window would: RabbitMQ grants tens of thousands of credit per link, and a producer that uses it
all only queues a backlog inside RabbitMQ whose confirmations fall outside the measured window (a first run
without the cap measured RabbitMQ at 0-300 msg/s with 16 producers). RSS is the sum over the broker's processes
(for RabbitMQ, the Erlang VM and its helpers).

{broker_table(results, "concurrent", "received_per_s", "### Concurrent send and receive: messages received per second")}

{broker_table(results, "concurrent", "accepted_per_s", "### Concurrent send and receive: messages accepted per second (producer side)")}

{broker_table(results, "fill-drain", "accepted_per_s", "### Send then receive: storing, messages accepted per second")}

{broker_table(results, "fill-drain", "received_per_s", "### Send then receive: draining, messages received per second")}

{broker_table(results, "concurrent", "rss_peak_kib", "### Peak RSS during the concurrent scenarios (KiB)")}

### Targets (from the broker issue)

{targets(results)}

### RSS with millions of stored messages

{rss_section(rss)}
{failures(results)}"""
