"""The MQTT part of the benchmark: shoal's MQTT gateway against mosquitto, with the same load tool
(`shoal-mqtt-load`), in the same run.

Scenarios (each on a freshly started server, median of the runs):
- pub->sub QoS 0 and QoS 1: one publisher, one subscriber, one topic; messages received per second;
- latency: QoS 1 at a fixed 10,000 msg/s, p50/p99;
- 1,000 devices: 1,000 publishers (QoS 1) and one subscriber; messages received per second;
- device -> AMQP (shoal only: mosquitto has no AMQP): one MQTT publisher (QoS 0 / QoS 1) and an AMQP
  receiver (`shoal-load`) on the same address; messages the AMQP side received per second;
- idle connections: N clients connected over several 127.0.0.x source addresses; the server's RSS.
"""

import json
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from brokers import Unavailable, rss_kib

TOPIC = "bench/mqtt"
START_TIMEOUT_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    name = "mosquitto"
    title = "mosquitto"

    def check(self):
        if subprocess.run(["which", "mosquitto"], capture_output=True).returncode != 0:
            raise Unavailable("mosquitto is not installed (Debian package `mosquitto`)")

    def start(self, workdir):
        port = free_port()
        conf = workdir / "mosquitto.conf"
        # No per-client queue or in-flight caps that would drop or stall the load: like shoal's defaults.
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n"
                        "max_queued_messages 0\npersistence false\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=open(workdir / "mosquitto.log", "wb"))
        wait_port(port, proc)
        return Instance(proc, mqtt_port=port)


class ShoalMqtt:
    name = "shoal"
    title = "shoal standalone"

    def __init__(self, shoal_bin):
        self.shoal_bin = shoal_bin

    def check(self):
        help_text = subprocess.run([str(self.shoal_bin), "standalone", "--help"], capture_output=True,
                                   text=True).stdout
        if "--mqtt-listen" not in help_text:
            raise Unavailable("this shoal has no MQTT gateway (--mqtt-listen)")

    def start(self, workdir):
        args = [str(self.shoal_bin), "standalone", "--amqp-listen", "127.0.0.1:0", "--http-listen",
                "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--mqtt-allow-anonymous",
                "--mqtt-max-connections", "200000", "--data-dir", str(workdir / "data")]
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, text=True,
                                stderr=open(workdir / "shoal.stderr", "wb"))
        addrs = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in proc.stdout:
            m = re.match(r"^(\w+) listening on [\d.]+:(\d+)", line)
            if m:
                addrs[m.group(1)] = int(m.group(2))
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        if "mqtt" not in addrs:
            proc.kill()
            raise RuntimeError(f"shoal did not start: {(workdir / 'shoal.stderr').read_text()[-1500:]}")
        return Instance(proc, mqtt_port=addrs["mqtt"], amqp_port=addrs.get("amqp"))


def wait_port(port, proc):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Instance:
    def __init__(self, proc, mqtt_port, amqp_port=None):
        self.proc, self.mqtt_port, self.amqp_port = proc, mqtt_port, amqp_port

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_json(args, timeout):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.strip().startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{Path(args[0]).name} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


SCENARIOS = [
    # key, title, mqtt-load options, what to report
    ("qos0", "pub -> sub, QoS 0 (msg/s received)", ["--qos", "0"], "rate"),
    ("qos1", "pub -> sub, QoS 1 (msg/s received)", ["--qos", "1"], "rate"),
    ("latency", "QoS 1 at 10,000 msg/s: p50 / p99 (ms)", ["--qos", "1", "--rate", "10000"], "latency"),
    ("devices", "1,000 devices publishing QoS 1, one subscriber (msg/s received)",
     ["--qos", "1", "--publishers", "1000", "--inflight", "10"], "rate"),
]


def measure(opts, server, key, extra):
    with tempfile.TemporaryDirectory(prefix=f"mqtt-{server.name}-") as tmp:
        instance = server.start(Path(tmp))
        try:
            args = [str(opts.mqtt_load_bin), "--url", f"mqtt://127.0.0.1:{instance.mqtt_port}", "--topic",
                    f"{TOPIC}/{key}", "--size", "100", "--duration", str(opts.mqtt_duration), "--warmup", "1",
                    *extra]
            return run_json(args, opts.mqtt_duration + 120)
        finally:
            instance.stop()


def device_to_amqp(opts, shoal, qos):
    """An MQTT publisher and an AMQP receiver (shoal-load) on one address, at once."""
    with tempfile.TemporaryDirectory(prefix="mqtt-amqp-") as tmp:
        instance = shoal.start(Path(tmp))
        try:
            address = f"{TOPIC}/amqp{qos}"
            receiver = subprocess.Popen(
                [str(opts.load_bin), "--url", f"amqp://127.0.0.1:{instance.amqp_port}", "--address", address,
                 "--senders", "0", "--receivers", "1", "--size", "100", "--duration",
                 str(opts.mqtt_duration), "--warmup", "1.5", "--credit", "5000"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # the AMQP receiver attaches first: no consumer, no PUBACK
            run_json([str(opts.mqtt_load_bin), "--url", f"mqtt://127.0.0.1:{instance.mqtt_port}", "--topic",
                      address, "--subscribers", "0", "--qos", str(qos), "--size", "100", "--duration",
                      str(opts.mqtt_duration + 1), "--warmup", "1"], opts.mqtt_duration + 120)
            out, err = receiver.communicate(timeout=opts.mqtt_duration + 120)
            lines = [line for line in out.splitlines() if line.strip().startswith("{")]
            if not lines:
                raise RuntimeError(f"shoal-load printed nothing: {err[-500:]}")
            return json.loads(lines[-1])
        finally:
            instance.stop()


def idle(opts, server):
    with tempfile.TemporaryDirectory(prefix=f"mqtt-idle-{server.name}-") as tmp:
        instance = server.start(Path(tmp))
        try:
            before = instance.rss_kib()
            ips = ",".join(f"127.0.0.{i}" for i in range(1, 9))
            proc = subprocess.Popen(
                [str(opts.mqtt_load_bin), "--url", f"mqtt://127.0.0.1:{instance.mqtt_port}", "--idle",
                 str(opts.mqtt_idle), "--duration", "3", "--source-ips", ips, "--threads", "2"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            peak = before or 0
            while proc.poll() is None:
                peak = max(peak, instance.rss_kib() or 0)
                time.sleep(0.2)
            out = proc.stdout.read()
            lines = [line for line in out.splitlines() if line.strip().startswith("{")]
            if not lines:
                raise RuntimeError(f"shoal-mqtt-load printed nothing: {proc.stderr.read()[-500:]}")
            result = json.loads(lines[-1])
            result.update(rss_before_kib=before, rss_peak_kib=peak)
            return result
        finally:
            instance.stop()


def run(opts, log):
    servers = []
    for server in (ShoalMqtt(opts.shoal_bin), Mosquitto()):
        try:
            server.check()
            servers.append(server)
        except Unavailable as why:
            log(f"MQTT: {server.title} not benchmarked: {why}")
    results = {}
    for key, _, extra, _ in SCENARIOS:
        for server in servers:
            runs = []
            for i in range(opts.mqtt_runs):
                log(f"MQTT {key} on {server.name}: run {i + 1}/{opts.mqtt_runs}")
                try:
                    runs.append(measure(opts, server, key, extra))
                except Exception as err:  # reported, the run goes on
                    runs.append({"error": str(err)[:400]})
            results.setdefault(key, {})[server.name] = runs
    shoal = next((s for s in servers if s.name == "shoal"), None)
    if shoal:
        for qos in (0, 1):
            runs = []
            for i in range(opts.mqtt_runs):
                log(f"MQTT device -> AMQP QoS {qos}: run {i + 1}/{opts.mqtt_runs}")
                try:
                    runs.append(device_to_amqp(opts, shoal, qos))
                except Exception as err:
                    runs.append({"error": str(err)[:400]})
            results[f"amqp{qos}"] = {"shoal": runs}
    if opts.mqtt_idle:
        for server in servers:
            log(f"MQTT {opts.mqtt_idle} idle connections on {server.name}")
            try:
                results.setdefault("idle", {})[server.name] = [idle(opts, server)]
            except Exception as err:
                results.setdefault("idle", {})[server.name] = [{"error": str(err)[:400]}]
    return {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "servers": [s.name for s in servers], "runs": opts.mqtt_runs, "duration": opts.mqtt_duration,
            "results": results}


def _median(runs, field):
    values = [r[field] for r in runs if "error" not in r and r.get(field) is not None]
    return statistics.median(values) if values else None


def _errors(runs):
    return [r["error"] for r in runs if "error" in r]


def section(data):
    if not data:
        return "## MQTT\n\nNot run yet: `bench/run.sh` without `--skip-mqtt`.\n"
    res = data["results"]
    lines = [
        "## MQTT: the gateway against mosquitto",
        "",
        f"Generated {data['generated']}. Load tool: `shoal-mqtt-load` for both servers (MQTT 3.1.1, 100-byte "
        f"payloads, {data['duration']} s measured after 1 s of warm-up, median of {data['runs']} run(s), each on a "
        "fresh server). mosquitto: Debian's, no persistence, no in-flight or queue caps. shoal: `shoal standalone` "
        "with `--mqtt-allow-anonymous`; a QoS 1 PUBACK only after the AMQP side accepted the message.",
        "",
        "| scenario | shoal | mosquitto | shoal / mosquitto |",
        "|---|---:|---:|---:|",
    ]
    errors = []

    def cell(v, kind):
        if v is None:
            return "n/a"
        return f"{v / 1000:.2f}" if kind == "ms" else f"{v:,.0f}"

    for key, title, _, kind in SCENARIOS:
        row = res.get(key, {})
        for name, runs in row.items():
            errors += [f"{key} on {name}: {e}" for e in _errors(runs)]
        if kind == "latency":
            s50, s99 = _median(row.get("shoal", []), "p50_us"), _median(row.get("shoal", []), "p99_us")
            m50, m99 = _median(row.get("mosquitto", []), "p50_us"), _median(row.get("mosquitto", []), "p99_us")
            lines.append(f"| {title} | {cell(s50, 'ms')} / {cell(s99, 'ms')} | {cell(m50, 'ms')} / "
                         f"{cell(m99, 'ms')} | |")
            continue
        s = _median(row.get("shoal", []), "msgs_per_sec")
        m = _median(row.get("mosquitto", []), "msgs_per_sec")
        ratio = f"{s / m:.2f}" if s and m else "n/a"
        lines.append(f"| {title} | {cell(s, 'rate')} | {cell(m, 'rate')} | {ratio} |")
    for qos in (0, 1):
        runs = res.get(f"amqp{qos}", {}).get("shoal", [])
        errors += [f"device -> AMQP QoS {qos}: {e}" for e in _errors(runs)]
        lines.append(f"| device -> AMQP receiver, QoS {qos} (msg/s received by AMQP) | "
                     f"{cell(_median(runs, 'msgs_per_sec'), 'rate')} | (no AMQP) | |")
    for name, runs in res.get("idle", {}).items():
        errors += [f"idle on {name}: {e}" for e in _errors(runs)]
    idle_rows = []
    for name, runs in res.get("idle", {}).items():
        r = runs[0] if runs else {}
        if "error" in r or not r:
            continue
        per = (r["rss_peak_kib"] - (r.get("rss_before_kib") or 0)) / max(r["connected"], 1)
        idle_rows.append(f"| {name} | {r['connected']:,} of {r['idle']:,} | {r['rss_peak_kib'] / 1024:.0f} MiB | "
                         f"{per:.1f} KiB | {r['connect_s']:.1f} s |")
    if idle_rows:
        lines += ["", "Idle connections (keep-alive 60 s, spread over 127.0.0.1-8):", "",
                  "| server | connected | RSS | per connection | time to connect all |", "|---|---:|---:|---:|---:|",
                  *idle_rows]
    if errors:
        lines += ["", "Errors:", "", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"
