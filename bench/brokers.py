"""The brokers the benchmark compares, each started fresh in its own directory:
shoal standalone (router + broker in one process), RabbitMQ 3.10 with its AMQP 1.0
plugin, and ActiveMQ 5 with its AMQP transport connector.

Every class has the same shape: `start(workdir)` returns a running instance with
`port`, `address` (what a client attaches to for the benchmark queue), `pids()`
(for RSS) and `stop()`. A broker that cannot run here raises `Unavailable` with
the reason, which the report prints instead of numbers.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


def rss_kib(pid):
    """VmRSS of `pid` in KiB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


QUEUE = "bench-q"
START_TIMEOUT_S = 60


class Unavailable(Exception):
    """This broker cannot be benchmarked on this machine; the message says why."""


def free_port():
    """A port nothing listens on right now (the brokers here cannot bind port 0 and
    report it, so we pick one; the race with other processes is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline, log=None):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-1500:] if log and Path(log).exists() else ""
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}: {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"not listening on {port} within {START_TIMEOUT_S}s")


def process_tree(pid):
    """`pid` and its descendants (RabbitMQ's script runs the Erlang VM as a child)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def stop_process(proc, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- shoal --------------------------------------------------------------------
class Shoal:
    name = "shoal"
    title = "shoal standalone"

    def __init__(self, shoal_bin):
        self.shoal_bin = shoal_bin

    def check(self):
        if not Path(self.shoal_bin).exists():
            raise Unavailable(f"{self.shoal_bin} not built")

    def start(self, workdir):
        manifest = workdir / "queue.yaml"
        manifest.write_text(
            "apiVersion: shoal.dev/v1beta1\nkind: Address\n"
            f"metadata: {{ name: {QUEUE}, namespace: default }}\n"
            f"spec: {{ address: {QUEUE}, type: queue }}\n"
        )
        args = [str(self.shoal_bin), "standalone", "--amqp-listen", "127.0.0.1:0", "--http-listen",
                "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--data-dir", str(workdir / "data"), "-f", str(manifest)]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        return _ShoalInstance(args, workdir, env)


class _ShoalInstance:
    address = QUEUE

    def __init__(self, args, workdir, env):
        self.stderr = open(workdir / "shoal.stderr", "wb")
        self.proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=env)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.proc.stdout:
            m = re.match(r"^amqp listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"shoal did not start: {(workdir / 'shoal.stderr').read_text()[-1500:]}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def pids(self):
        return [self.proc.pid]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        self.stderr.close()


# -- RabbitMQ -----------------------------------------------------------------
RABBIT_LIB = Path("/usr/lib/rabbitmq/bin")


class RabbitMQ:
    name = "rabbitmq"
    title = "RabbitMQ"

    def check(self):
        if not (RABBIT_LIB / "rabbitmq-server").exists():
            raise Unavailable("rabbitmq-server is not installed (bench/run.sh installs it with apt)")

    def version(self):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"

    def start(self, workdir):
        return _RabbitInstance(workdir)


class _RabbitInstance:
    """A private node: its own home, database, logs, ports and node name, so it
    neither needs nor touches the system service."""

    address = f"/amq/queue/{QUEUE}"

    def __init__(self, workdir):
        self.port = free_port()
        name = f"shoalbench{self.port}"
        self.env = dict(
            os.environ,
            HOME=str(workdir),  # the Erlang cookie lives here
            RABBITMQ_BASE=str(workdir),
            RABBITMQ_MNESIA_BASE=str(workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(workdir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(workdir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(workdir / "rabbitmq"),
            RABBITMQ_NODENAME=f"{name}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_PID_FILE=str(workdir / "rabbit.pid"),
        )
        # The AMQP 1.0 plugin serves on the same listener as AMQP 0-9-1.
        ctl = subprocess.run([str(RABBIT_LIB / "rabbitmq-plugins"), "--offline", "enable", "rabbitmq_amqp1_0"],
                             env=self.env, capture_output=True, text=True, timeout=120)
        if ctl.returncode != 0:
            raise RuntimeError(f"rabbitmq-plugins enable rabbitmq_amqp1_0: {ctl.stderr[-800:]}")
        self.log = workdir / "rabbitmq.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(RABBIT_LIB / "rabbitmq-server")], env=self.env, cwd=workdir,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(self.port, self.proc, time.monotonic() + START_TIMEOUT_S, self.log)
            self._declare_durable_queue()
        except Exception:
            self.stop()
            raise

    def _declare_durable_queue(self):
        # A queue the AMQP 1.0 plugin declares itself (`/queue/NAME`) is not durable, and
        # RabbitMQ keeps persistent messages on disk only in durable queues: declare it
        # durable first and address it as an existing queue (`/amq/queue/NAME`).
        expr = (f'rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>, queue, <<"{QUEUE}">>), '
                'true, false, [], none, <<"bench">>).')
        out = subprocess.run([str(RABBIT_LIB / "rabbitmqctl"), "eval", expr], env=self.env,
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or "error" in out.stdout.lower():
            raise RuntimeError(f"declaring the durable queue: {out.stdout[-500:]} {out.stderr[-500:]}")

    def pids(self):
        return process_tree(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            subprocess.run([str(RABBIT_LIB / "rabbitmqctl"), "stop"], env=self.env, capture_output=True, timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- ActiveMQ -----------------------------------------------------------------
ACTIVEMQ_CONFIG = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench"
          dataDirectory="{data}" persistent="true">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="amqp" uri="amqp://127.0.0.1:{port}?maximumConnections=1000"/>
    </transportConnectors>
  </broker>
</beans>
"""


class ActiveMQ:
    """Debian's `activemq` package, or an upstream distribution in $ACTIVEMQ_HOME."""

    name = "activemq"
    title = "ActiveMQ 5"

    def __init__(self):
        self.home = Path(os.environ.get("ACTIVEMQ_HOME", "/usr/share/activemq"))

    def jars(self):
        dirs = [self.home / "lib", self.home / "lib" / "optional", Path("/usr/share/java")]
        return [j for d in dirs if d.is_dir() for j in d.glob("*.jar")]

    def check(self):
        if not (self.home / "bin" / "activemq.jar").exists():
            raise Unavailable(f"no ActiveMQ in {self.home} (bench/run.sh installs Debian's activemq)")
        if shutil.which("java") is None:
            raise Unavailable("no java on PATH")
        # The AMQP transport is a separate module (activemq-amqp, on Proton-J). A transport
        # is found through this resource; without it the broker refuses to start with
        # "Transport scheme NOT recognized: [amqp]".
        needle = "META-INF/services/org/apache/activemq/transport/amqp"
        for jar in self.jars():
            listing = subprocess.run(["unzip", "-Z1", str(jar)], capture_output=True, text=True)
            if needle in listing.stdout:
                return
        raise Unavailable(
            f"the ActiveMQ in {self.home} has no AMQP transport: no jar provides {needle} "
            "(Debian's activemq 5.17 ships without activemq-amqp and Debian has no Proton-J; "
            "set ACTIVEMQ_HOME to an upstream ActiveMQ 5 distribution to include it)"
        )

    def version(self):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "activemq"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"

    def start(self, workdir):
        return _ActiveMQInstance(self.home, workdir)


class _ActiveMQInstance:
    address = QUEUE  # a plain address is a queue for ActiveMQ's AMQP transport

    def __init__(self, home, workdir):
        self.port = free_port()
        data = workdir / "data"
        config = workdir / "activemq.xml"
        config.write_text(ACTIVEMQ_CONFIG.format(data=data, port=self.port))
        self.log = workdir / "activemq.out"
        args = ["java", "-Xms512M", "-Xmx512M", f"-Dactivemq.home={home}", f"-Dactivemq.base={workdir}",
                f"-Dactivemq.conf={workdir}", f"-Dactivemq.data={data}", "-jar", str(home / "bin" / "activemq.jar"),
                "start", f"xbean:file:{config}"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, time.monotonic() + START_TIMEOUT_S, self.log)
        except Exception:
            self.stop()
            raise

    def pids(self):
        return process_tree(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc, timeout=30)
