#!/usr/bin/env python3
"""Benchmark driver behind bench/run.sh; writes docs/benchmarks.md as a whole.

Three parts, each with its raw results in bench/out/ (a skipped part is
reported from its last saved results):
- router (results.json): shoal vs the Proton C broker example. For each scenario
  and server it starts a fresh server, samples its idle RSS, runs `shoal-load` at
  saturation (sampling RSS meanwhile) and at a fixed rate for latency, and
  reports the medians. `--skip-router` keeps the last figures.
- broker (broker.json): queue scenarios against shoal standalone, RabbitMQ and
  ActiveMQ (broker_bench.py, brokers.py), and RSS with millions of stored
  messages. `--skip-broker` keeps the last figures (quick runs).
- crash (crash.json): the long crash test, with `--crash-cycles N` (bench/crash.sh).
Only the standard library is used.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import broker_bench
from brokers import rss_kib
import mesh_bench
import mqtt_bench

REPO = Path(__file__).resolve().parents[1]

# (key, title, senders, receivers, presettled, multicast)
SCENARIOS = [
    ("anycast-1-1-unsettled", "anycast 1→1 unsettled", 1, 1, False, False),
    ("anycast-1-1-presettled", "anycast 1→1 presettled", 1, 1, True, False),
    ("multicast-1-2", "multicast 1→2 unsettled", 1, 2, False, True),
    ("anycast-2-2", "anycast 2 senders → 2 receivers unsettled", 2, 2, False, False),
]

MULTICAST_MANIFEST = """apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: bench-multicast, namespace: default }
spec: { address: "bench/multicast", type: multicast }
"""


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class RssSampler:
    """Samples a process's VmRSS every `interval` s on a thread; keeps the peak."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = rss_kib(self.pid)
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self):
        return max(self.samples) if self.samples else None


class Server:
    """A server under test: started fresh per measurement, stopped with SIGTERM."""

    def __init__(self, args, cwd, port_pattern, ready_line=None, env=None):
        self.proc = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        self.port = None
        deadline = time.monotonic() + 30
        # The servers print their ports and then stay quiet on stdout.
        for line in self.proc.stdout:
            m = re.search(port_pattern, line)
            if m and self.port is None:
                self.port = int(m.group(1))
            if self.port is not None and (ready_line is None or line.strip() == ready_line):
                break
            if time.monotonic() > deadline:
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{args[0]} did not report a listening port")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_shoal(opts, workdir, multicast):
    args = [
        str(opts.shoal_bin), "standalone", "--amqp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--mqtt-listen", "127.0.0.1:0",
        "--data-dir", str(workdir / "data"),
    ]
    if multicast:
        manifest = workdir / "multicast.yaml"
        manifest.write_text(MULTICAST_MANIFEST)
        args += ["-f", str(manifest)]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    return Server(args, workdir, r"^amqp listening on [\d.]+:(\d+)", ready_line="ready", env=env)


def start_broker(opts, workdir):
    # stdbuf: the example printf()s its port, which would sit in a pipe buffer.
    args = ["stdbuf", "-oL", str(opts.broker_bin), "127.0.0.1", "0"]
    return Server(args, opts.broker_bin.parent, r"listening on (\d+)")


def run_load(opts, port, address, senders, receivers, presettled, rate=None):
    args = [
        str(opts.load_bin), "--url", f"amqp://127.0.0.1:{port}", "--address", address,
        "--senders", str(senders), "--receivers", str(receivers), "--size", str(opts.size),
        "--duration", str(opts.duration), "--warmup", str(opts.warmup),
    ]
    if presettled:
        args.append("--presettled")
    if rate:
        args += ["--rate", str(rate)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=opts.duration + opts.warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"shoal-load failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    lines = [l for l in out.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"shoal-load printed no JSON: {out.stdout[-500:]}")
    result = json.loads(lines[-1])
    # A run that moved nothing is a failure to report, not a 0 µs latency.
    if not result.get("received"):
        raise RuntimeError(f"shoal-load received nothing: {lines[-1]}")
    return result


def measure_once(opts, server_name, scenario):
    """One run of one scenario on a fresh server: idle RSS, saturation, latency.

    Saturation and latency fail independently: a broken latency run must not
    hide a good throughput figure (and vice versa)."""
    key, _, senders, receivers, presettled, multicast = scenario
    address = "bench/multicast" if multicast else f"bench/{key}"
    result = {"errors": []}
    with tempfile.TemporaryDirectory(prefix=f"bench-{server_name}-") as tmp:
        workdir = Path(tmp)
        server = start_shoal(opts, workdir, multicast) if server_name == "shoal" else start_broker(opts, workdir)
        try:
            # Let the process settle after startup before calling it idle.
            time.sleep(opts.idle_settle)
            result["rss_idle_kib"] = rss_kib(server.pid)
            try:
                with RssSampler(server.pid) as sampler:
                    sat = run_load(opts, server.port, address, senders, receivers, presettled)
                result.update(saturation=sat, msgs_per_sec=sat["msgs_per_sec"], rss_load_kib=sampler.peak)
            except Exception as err:
                result["errors"].append(f"saturation: {err}")
            try:
                lat = run_load(opts, server.port, address, senders, receivers, presettled, rate=opts.rate)
                result.update(latency=lat, p50_us=lat["p50_us"], p99_us=lat["p99_us"])
            except Exception as err:
                result["errors"].append(f"latency: {err}")
            if server.proc.poll() is not None:
                result["errors"].append(f"{server_name} died during {key}")
        finally:
            server.stop()
    for err in result["errors"]:
        log(f"  {err}")
    return result


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def collect(opts):
    results = {}
    for scenario in SCENARIOS:
        key, _, _, _, _, multicast = scenario
        for server_name in opts.servers:
            if server_name == "broker" and multicast:
                continue  # the broker example has queues only: no multicast
            runs = []
            for i in range(opts.runs):
                log(f"{key} on {server_name}: run {i + 1}/{opts.runs}")
                try:
                    runs.append(measure_once(opts, server_name, scenario))
                except Exception as err:  # e.g. the server did not start: reported, not fatal
                    log(f"  failed: {err}")
                    runs.append({"errors": [str(err)]})
            summary = {m: median([r.get(m) for r in runs]) for m in
                       ("msgs_per_sec", "p50_us", "p99_us", "rss_idle_kib", "rss_load_kib")}
            summary["runs"] = runs
            summary["failed_runs"] = sum(1 for r in runs if r["errors"])
            results.setdefault(key, {})[server_name] = summary
    return results


# -- report -----------------------------------------------------------------
def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(value, kind):
    if value is None:
        return "failed"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "us":
        return f"{value:,.0f}"
    if kind == "mib":
        return f"{value / 1024:,.1f}"
    return str(value)


def ratio(a, b):
    if a is None or b in (None, 0):
        return "n/a"
    return f"{a / b:.2f}"


def table(results, metric, kind, unit):
    lines = [
        f"| scenario | shoal ({unit}) | Proton C broker ({unit}) | shoal / broker |",
        "|---|---:|---:|---:|",
    ]
    for key, title, *_rest in SCENARIOS:
        multicast = _rest[-1]
        shoal = results.get(key, {}).get("shoal", {}).get(metric)
        if multicast:
            lines.append(f"| {title} | {fmt(shoal, kind)} | n/a (no multicast in the example) | n/a |")
            continue
        per = results.get(key, {})
        broker = per.get("broker", {}).get(metric)
        broker_cell = fmt(broker, kind) if "broker" in per else "not run"
        lines.append(f"| {title} | {fmt(shoal, kind)} | {broker_cell} | {ratio(shoal, broker)} |")
    return "\n".join(lines)


def failures_section(failed, errors):
    if not failed:
        return ""
    lines = "\n".join(f"- {e[:300]}" for e in errors)
    return f"""
### Failed measurements

{failed} run(s) had a failed part, left out of the medians above (raw: bench/out/results.json):

{lines}
"""


def router_section(ropts, results, generated):
    failed = sum(s.get("failed_runs", 0) for per in results.values() for s in per.values())
    errors = sorted({f"{key} on {name}: {e}" for key, per in results.items() for name, s in per.items()
                     for r in s["runs"] for e in r["errors"]})
    return f"""## Router: direct messaging

Generated {generated}.

**Peers:** `shoal standalone` (release build) and the Qpid Proton C broker example
(`/usr/share/proton/examples/c/broker.c`, built with `gcc -O2`, 4 threads, a queue per address and a
fixed incoming credit window of 5). The load tool is `shoal-load` (`bench/`, on Shoal's own codec)
for both, so the client side is identical.

**Method:** every measurement starts a fresh server. Idle RSS is `VmRSS` from `/proc/PID/status`
{ropts["idle_settle"]:g} s after the server reported ready; RSS under load is the peak of samples taken every
100 ms during the saturation run. Throughput is `msgs_per_sec` (messages *received* per second) of an
unthrottled run; latency (send → receive) is from a run throttled to `--rate {ropts["rate"]}` (total for the
scenario). Each run lasts {ropts["duration"]} s after a {ropts["warmup"]} s warm-up; {ropts["size"]}-byte messages.
**Every figure is the median of {ropts["runs"]} runs on a shared, noisy 2-core development machine**
(other builds may have been running): treat differences under ~20 % as noise. A cell says `failed`
when no run produced that figure.

Commands (per scenario; `PORT` is the server's ephemeral port):

```
target/release/shoal standalone --amqp-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 --data-dir TMP [-f multicast.yaml]
target/bench/broker 127.0.0.1 0
target/release/shoal-load --url amqp://127.0.0.1:PORT --address ADDR --senders S --receivers R \\
    --size {ropts["size"]} --duration {ropts["duration"]} --warmup {ropts["warmup"]} [--presettled]            # saturation
target/release/shoal-load ... --rate {ropts["rate"]}                                                     # latency
```

### Throughput at saturation (messages received per second; higher is better)

{table(results, "msgs_per_sec", "rate", "msg/s")}

### Latency at {ropts["rate"]:,} msg/s: p50 (µs; lower is better)

{table(results, "p50_us", "us", "µs")}

### Latency at {ropts["rate"]:,} msg/s: p99 (µs; lower is better)

{table(results, "p99_us", "us", "µs")}

### Server RSS idle (MiB)

{table(results, "rss_idle_kib", "mib", "MiB")}

### Server RSS under load (peak, MiB)

{table(results, "rss_load_kib", "mib", "MiB")}
{failures_section(failed, errors)}"""


def crash_section(crash):
    if not crash:
        return "Not run yet: `bench/crash.sh`."
    r = crash.get("result") or {}
    if not r:
        return f"Failed to run ({crash.get('generated')}):\n\n```\n{crash.get('error', 'no result')}\n```\n"
    verdict = "**Passed.**" if crash.get("passed") else "**FAILED.**"
    return f"""Generated {crash['generated']} by `bench/crash.sh` (`tests/interop/test_crash.py` with
SHOAL_CRASH_CYCLES={r.get('cycles')} SHOAL_CRASH_PRODUCERS={r.get('producers')} SHOAL_CRASH_SEED={r.get('seed')},
release build): producers send durable messages unsettled to a queue; `kill -9` at a random moment of each
life (seeded), restart on the same data directory, keep sending; then drain. {verdict}

| cycles | producers | sent | accepted | received | lost | duplicates | sent, unconfirmed, kept | out of order | seconds |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| {r.get('cycles')} | {r.get('producers')} | {r.get('sent', 0):,} | {r.get('accepted', 0):,} | {r.get('received', 0):,} | {r.get('lost')} | {r.get('duplicates')} | {r.get('unconfirmed_but_kept')} | {r.get('out_of_order')} | {r.get('seconds')} |
"""


def write_report(path, router, broker, crash, mqtt=None, mesh=None):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    router_text = (router_section(router["opts"], router["results"], router["generated"]) if router
                   else "## Router: direct messaging\n\nNot run yet.\n")
    if broker:
        broker_text = broker_bench.section(broker["results"], broker.get("rss"), broker["desc"])
    else:
        broker_text = "## Broker: queues (store and forward)\n\nNot run yet: `bench/run.sh` without `--skip-broker`.\n"
    doc = f"""# Benchmarks

Generated by `bench/run.sh` on {now}. Do not edit by hand: re-run the script
(`bench/run.sh --skip-broker` re-measures the router only and keeps the last broker figures, and the other
way round with `--skip-router`; `bench/crash.sh` re-runs the long crash test).

**Machine:** {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Linux {platform.release()}.

{router_text}
{mesh_bench.section(mesh)}
{broker_text}
## Broker: crash test

{crash_section(crash)}
{mqtt_bench.section(mqtt)}"""
    path.write_text(keep_unmeasured(doc, path))


def sections(text):
    """{"## title": body} of a report, in order."""
    out, title = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            title = line.strip()
            out[title] = ""
        elif title:
            out[title] += line
    return out


def keep_unmeasured(doc, path):
    """A part skipped in this run whose raw figures are gone (bench/out/ is not in git, so a fresh clone has
    none) keeps its section from the report being replaced, marked as from an earlier run, rather than
    losing it to "Not run yet"."""
    try:
        old = sections(path.read_text())
    except OSError:
        return doc
    new = sections(doc)
    for title, body in new.items():
        before = old.get(title, "")
        if body.lstrip().startswith("Not run yet") and before and not before.lstrip().startswith("Not run yet"):
            kept = before.replace("(kept from an earlier run, dated below, possibly on another machine: not re-measured this time)\n\n", "")
            doc = doc.replace(f"{title}\n{body}",
                              f"{title}\n\n(kept from an earlier run, dated below, possibly on another machine: not re-measured this time)\n{kept}", 1)
    return doc


# -- parts ----------------------------------------------------------------------
def load_saved(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def saved_router(path):
    """The router part as saved; the first format held only the results."""
    saved = load_saved(path)
    if saved is None:
        return None
    if "results" in saved and "opts" in saved:
        return saved
    defaults = dict(runs=3, duration=10, warmup=2, size=100, rate=10000, idle_settle=1.0)
    mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return {"results": saved, "opts": defaults, "generated": mtime.strftime("%Y-%m-%d %H:%M UTC")}


class TreeRss:
    """Samples the summed VmRSS of a broker's processes; keeps the peak."""

    def __init__(self, instance, interval=0.2):
        self.instance = instance
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def current(self):
        values = [rss_kib(p) for p in self.instance.pids()]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    def _run(self):
        while not self._stop.is_set():
            value = self.current()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self):
        return max(self.samples) if self.samples else None


def run_broker_part(opts):
    from brokers import ActiveMQ, RabbitMQ, Shoal

    catalog = {"shoal": lambda: Shoal(opts.shoal_bin), "rabbitmq": RabbitMQ, "activemq": ActiveMQ}
    brokers = [catalog[name]() for name in opts.brokers]
    load = broker_bench.Load(opts.load_bin, log)
    results = broker_bench.collect(opts, load, brokers, TreeRss, log)
    rss = None
    if opts.rss_messages and "shoal" in opts.brokers:
        rss = broker_bench.fill_rss(opts, load, Shoal(opts.shoal_bin), TreeRss, log)
    desc = (f"Each scenario: {opts.broker_duration} s measured ({opts.warmup} s warm-up for the concurrent ones; "
            f"the drain phase may take up to {opts.broker_duration * 3} s); median of {opts.broker_runs} run(s) on "
            "a shared 2-core machine, so treat differences under ~20 % as noise. Durable throughput on this disk is "
            "bounded by its syncs (about 280 fsyncs/s): it measures how many messages share a sync.")
    return {"results": results, "rss": rss, "desc": desc}


def run_crash_part(opts):
    """The long crash test: tests/interop/test_crash.py with more cycles and producers."""
    report = REPO / "bench/out/crash-run.json"
    report.unlink(missing_ok=True)
    env = dict(os.environ, SHOAL_BIN=str(opts.shoal_bin), SHOAL_CRASH_CYCLES=str(opts.crash_cycles),
               SHOAL_CRASH_PRODUCERS=str(opts.crash_producers), SHOAL_CRASH_REPORT=str(report))
    if opts.crash_seed is not None:
        env["SHOAL_CRASH_SEED"] = str(opts.crash_seed)
    log(f"crash test: {opts.crash_cycles} cycles, {opts.crash_producers} producers")
    out = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          str(REPO / "tests/interop/test_crash.py")], env=env, capture_output=True, text=True,
                         timeout=3600)
    sys.stderr.write(out.stdout[-3000:])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = load_saved(report)
    report.unlink(missing_ok=True)
    return {"generated": now, "passed": out.returncode == 0, "result": result,
            "error": None if out.returncode == 0 else out.stdout[-1500:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shoal-bin", type=Path, default=REPO / "target/release/shoal")
    parser.add_argument("--load-bin", type=Path, default=Path(os.environ.get("SHOAL_LOAD", REPO / "target/release/shoal-load")))
    parser.add_argument("--broker-bin", type=Path, default=REPO / "target/bench/broker")
    parser.add_argument("--servers", default="shoal,broker", help="router part: servers to compare")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--idle-settle", type=float, default=1.0)
    parser.add_argument("--skip-router", action="store_true", help="keep the last router figures")
    parser.add_argument("--skip-broker", action="store_true", help="keep the last broker figures (quick runs)")
    parser.add_argument("--brokers", default="shoal,rabbitmq,activemq", help="broker part: brokers to compare")
    parser.add_argument("--broker-runs", type=int, default=1)
    parser.add_argument("--broker-duration", type=int, default=5)
    parser.add_argument("--broker-filter", default="", help="only broker scenarios whose key contains this")
    parser.add_argument("--rss-messages", type=int, default=5_000_000, help="0 skips the stored-messages RSS run")
    parser.add_argument("--skip-mesh", action="store_true", help="keep the last router-mesh figures")
    parser.add_argument("--mesh-raw", type=Path, default=REPO / "bench/out/mesh.json")
    parser.add_argument("--skip-mqtt", action="store_true", help="keep the last MQTT figures")
    parser.add_argument("--mqtt-load-bin", type=Path, default=REPO / "target/release/shoal-mqtt-load")
    parser.add_argument("--mqtt-runs", type=int, default=3)
    parser.add_argument("--mqtt-duration", type=int, default=5)
    parser.add_argument("--mqtt-idle", type=int, default=18000,
                        help="idle MQTT connections (0 skips; the fd limit here is 20,000 per process, for the "
                             "server and for the load tool)")
    parser.add_argument("--mqtt-raw", type=Path, default=REPO / "bench/out/mqtt.json")
    parser.add_argument("--crash-cycles", type=int, default=0, help="run the long crash test (bench/crash.sh)")
    parser.add_argument("--crash-producers", type=int, default=8)
    parser.add_argument("--crash-seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs/benchmarks.md")
    parser.add_argument("--raw", type=Path, default=REPO / "bench/out/results.json")
    parser.add_argument("--broker-raw", type=Path, default=REPO / "bench/out/broker.json")
    parser.add_argument("--crash-raw", type=Path, default=REPO / "bench/out/crash.json")
    opts = parser.parse_args()
    opts.servers = [s for s in opts.servers.split(",") if s]
    opts.brokers = [s for s in opts.brokers.split(",") if s]
    needed = ["shoal_bin", "load_bin"] + ([] if opts.skip_mqtt else ["mqtt_load_bin"])
    if not opts.skip_router and "broker" in opts.servers:
        needed.append("broker_bin")
    for name in needed:
        path = getattr(opts, name)
        if not path.exists():
            parser.error(f"--{name.replace('_', '-')} {path} not found")
        # Servers run in their own temporary directories: use absolute paths.
        setattr(opts, name, path.resolve())
    opts.raw.parent.mkdir(parents=True, exist_ok=True)

    if opts.skip_router:
        router = saved_router(opts.raw)
    else:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        ropts = {k: getattr(opts, k) for k in ("runs", "duration", "warmup", "size", "rate", "idle_settle")}
        router = {"generated": now, "opts": ropts, "results": collect(opts)}
        opts.raw.write_text(json.dumps(router, indent=2))
    if opts.skip_broker:
        broker = load_saved(opts.broker_raw)
    else:
        broker = run_broker_part(opts)
        opts.broker_raw.write_text(json.dumps(broker, indent=2))
    if opts.skip_mesh:
        mesh = load_saved(opts.mesh_raw)
    else:
        mesh = mesh_bench.run(opts, log)
        opts.mesh_raw.write_text(json.dumps(mesh, indent=2))
    if opts.skip_mqtt:
        mqtt = load_saved(opts.mqtt_raw)
    else:
        mqtt = mqtt_bench.run(opts, log)
        opts.mqtt_raw.write_text(json.dumps(mqtt, indent=2))
    if opts.crash_cycles:
        crash = run_crash_part(opts)
        opts.crash_raw.write_text(json.dumps(crash, indent=2))
    else:
        crash = load_saved(opts.crash_raw)

    write_report(opts.out, router, broker, crash, mqtt, mesh)
    log(f"wrote {opts.out} (raw: {opts.raw}, {opts.broker_raw}, {opts.crash_raw})")
    if crash and opts.crash_cycles and not crash.get("passed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
