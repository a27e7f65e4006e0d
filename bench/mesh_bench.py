"""The mesh part of the benchmark: messages crossing routers (ADR 0009).

Three `shoal router` processes (release build) in a line, A - B - C, joined with
`--inter-router-listen` / `--connect inter-router://`. `shoal-load` senders connect to A and its
receivers (`--receiver-url`) to A (1 hop, the baseline), B (2 hops) or C (3 hops); a multicast
row has receivers on B and C. Per scenario: messages received per second unthrottled, and p50/p99
latency at a fixed 10,000 msg/s. The mesh is started once per run (fresh addresses per scenario).
"""

import json
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 30

# (key, title, receiver routers, presettled, multicast)
SCENARIOS = [
    ("1hop-unsettled", "1 hop (sender and receiver on A) unsettled", ["A"], False, False),
    ("2hop-unsettled", "2 hops (A → B) unsettled", ["B"], False, False),
    ("2hop-presettled", "2 hops (A → B) presettled", ["B"], True, False),
    ("3hop-unsettled", "3 hops (A → B → C) unsettled", ["C"], False, False),
    ("3hop-presettled", "3 hops (A → B → C) presettled", ["C"], True, False),
    ("multicast-b-c", "multicast A → receivers on B and C, unsettled", ["B", "C"], False, True),
]


class Router:
    """One `shoal router` process of the mesh; its addresses as it printed them."""

    def __init__(self, opts, rid, connect=None):
        self.workdir = Path(tempfile.mkdtemp(prefix=f"shoal-mesh-{rid}-"))
        args = [str(opts.shoal_bin), "router", "--amqp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--mqtt-listen", "127.0.0.1:0", "--data-dir", str(self.workdir / "data"), "--router-id", rid,
                "--inter-router-listen", "127.0.0.1:0"]
        if connect:
            args += ["--connect", f"inter-router://{connect.addrs['inter-router']}"]
        if opts.mesh_multicast_manifest:
            args += ["-f", str(opts.mesh_multicast_manifest)]
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.addrs = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 4 and parts[1:3] == ["listening", "on"]:
                self.addrs[parts[0]] = parts[3]
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        if "amqp" not in self.addrs:
            self.stop()
            raise RuntimeError(f"shoal router {rid} did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def mesh(self):
        with urllib.request.urlopen(f"http://{self.addrs['http']}/api/v1/mesh", timeout=5) as resp:
            return json.load(resp)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait(cond, what, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def load(opts, sender, receivers, address, presettled, rate=None):
    """One shoal-load run per receiving router (senders on the first call only); the figures of the run
    that sent (receivers elsewhere are started in the background first)."""
    base = [str(opts.load_bin), "--address", address, "--size", str(opts.size),
            "--duration", str(opts.duration), "--warmup", str(opts.warmup)]
    if presettled:
        base.append("--presettled")
    if rate:
        base += ["--rate", str(rate)]
    # Extra receiving routers: a receive-only shoal-load each (0 senders), running alongside.
    extra = [subprocess.Popen(base + ["--url", f"amqp://{r.addrs['amqp']}", "--senders", "0", "--receivers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for r in receivers[1:]]
    try:
        args = base + ["--url", f"amqp://{sender.addrs['amqp']}",
                       "--receiver-url", f"amqp://{receivers[0].addrs['amqp']}",
                       "--senders", "1", "--receivers", "1"]
        out = subprocess.run(args, capture_output=True, text=True,
                             timeout=opts.duration + opts.warmup + 120)
    finally:
        for p in extra:
            try:
                p.wait(timeout=opts.duration + opts.warmup + 30)
            except subprocess.TimeoutExpired:
                p.kill()
    lines = [line for line in out.stdout.splitlines() if line.strip().startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"shoal-load failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    result = json.loads(lines[-1])
    if not result.get("received"):
        raise RuntimeError("shoal-load received nothing")
    return result


def run(opts, log):
    """Every scenario `opts.runs` times on one mesh; medians."""
    manifest = Path(tempfile.mkdtemp(prefix="shoal-mesh-bench-")) / "multicast.yaml"
    manifest.write_text("apiVersion: shoal.dev/v1beta1\nkind: Address\n"
                        "metadata: { name: mcast, namespace: default }\n"
                        "spec: { address: \"mcast/#\", type: multicast }\n")
    opts.mesh_multicast_manifest = manifest
    routers = {}
    results = {}
    try:
        routers["A"] = Router(opts, "A")
        routers["B"] = Router(opts, "B", routers["A"])
        routers["C"] = Router(opts, "C", routers["B"])
        for r in routers.values():
            wait(lambda r=r: len(r.mesh()["routes"]) == 2, "the mesh to converge")
        for key, title, rx, presettled, multicast in SCENARIOS:
            runs = []
            for i in range(opts.runs):
                prefix = "mcast" if multicast else "mesh"
                try:
                    sat = load(opts, routers["A"], [routers[r] for r in rx], f"{prefix}/{key}/{i}", presettled)
                    lat = load(opts, routers["A"], [routers[r] for r in rx], f"{prefix}/{key}/{i}/lat",
                               presettled, rate=opts.rate)
                    runs.append({"msgs_per_sec": sat.get("msgs_per_sec"), "p50_us": lat.get("p50_us"),
                                 "p99_us": lat.get("p99_us")})
                except RuntimeError as e:
                    runs.append({"error": str(e)})
                log(f"mesh {key} run {i + 1}: {runs[-1]}")
            results[key] = {"title": title, "runs": runs}
    finally:
        for r in routers.values():
            r.stop()
    return {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "opts": {"runs": opts.runs, "duration": opts.duration, "warmup": opts.warmup, "size": opts.size,
                     "rate": opts.rate},
            "results": results}


def _median(runs, field):
    values = [r[field] for r in runs if r.get(field) is not None]
    return statistics.median(values) if values else None


def section(mesh):
    if not mesh:
        return "## Router mesh: messages across routers\n\nNot run yet: `bench/run.sh` without `--skip-mesh`.\n"
    o = mesh["opts"]
    rows = []
    for res in mesh["results"].values():
        rate = _median(res["runs"], "msgs_per_sec")
        p50 = _median(res["runs"], "p50_us")
        p99 = _median(res["runs"], "p99_us")
        fmt = (lambda v, unit: "failed" if v is None else f"{v:,.0f}{unit}")
        rows.append(f"| {res['title']} | {fmt(rate, '')} | {fmt(p50, ' µs')} | {fmt(p99, ' µs')} |")
    table = "\n".join(rows)
    return f"""## Router mesh: messages across routers

Generated {mesh['generated']}. Three `shoal router` processes (release build) in a line, A - B - C
(`--inter-router-listen`, `--connect inter-router://`); `shoal-load` senders on A, receivers on the router
named (`--receiver-url`). Throughput is messages received per second, unthrottled; latency (send →
receive) at a fixed {o['rate']:,} msg/s. Median of {o['runs']} run(s) of {o['duration']} s after a
{o['warmup']} s warm-up; {o['size']}-byte messages; one sender and one receiver per router named. The
issue's target: 2-hop throughput of at least 250,000 msg/s on this machine.

| scenario | throughput (msg/s) | p50 at {o['rate']:,}/s | p99 at {o['rate']:,}/s |
|---|---:|---:|---:|
{table}
"""
