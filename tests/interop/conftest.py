"""Fixtures that run a real `shoal standalone` process for the interop tests.

The process binds ephemeral ports (127.0.0.1:0) and prints the addresses it
actually bound on stdout, then `ready`; we read those lines instead of guessing
ports. Teardown sends SIGTERM and requires a clean exit (code 0), because a
router that cannot drain and stop is a bug the tests must surface.
"""

import os
import queue
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from amqp_client import Harness

REPO = Path(__file__).resolve().parents[2]
SHOAL_BIN = Path(os.environ.get("SHOAL_BIN", REPO / "target" / "debug" / "shoal"))
INTEROP_C_DIR = Path(os.environ.get("SHOAL_INTEROP_C", REPO / "target" / "interop-c"))
START_TIMEOUT = float(os.environ.get("SHOAL_START_TIMEOUT", "20"))
STOP_TIMEOUT = 5.0


class Shoal:
    """A running `shoal standalone` process and the addresses it printed."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.stderr_path = workdir / "shoal.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, cwd=workdir
        )
        self.addrs = {}
        self.stopped_with = None  # exit code once stop() ran (None if it had to be killed)
        self.stopped = False
        self.stdout_lines = []
        self._lines = queue.Queue()
        # A reader thread lets us wait for each line with a deadline; it also
        # keeps draining stdout afterwards so the process never blocks on it.
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._wait_ready()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def stderr_text(self):
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def _fail(self, why):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pytest.fail(
            f"shoal did not start: {why}\ncommand: {' '.join(map(str, self.args))}\n"
            f"exit code: {self.proc.returncode}\nstdout: {self.stdout_lines}\nstderr:\n{self.stderr_text()}"
        )

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"no `ready` line within {START_TIMEOUT}s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait()
                self._fail("stdout closed before `ready`")
            self.stdout_lines.append(line)
            if line.strip() == "ready":
                break
            parts = line.split()
            # "amqp listening on 127.0.0.1:PORT"
            if len(parts) == 4 and parts[1:3] == ["listening", "on"]:
                self.addrs[parts[0]] = parts[3]
        if "amqp" not in self.addrs and "amqps" not in self.addrs:
            self._fail("no amqp/amqps listener line before `ready`")

    @property
    def url(self):
        return f"amqp://{self.addrs['amqp']}"

    @property
    def amqps_url(self):
        return f"amqps://{self.addrs['amqps']}"

    @property
    def host_port(self):
        host, port = self.addrs["amqp"].rsplit(":", 1)
        return host, int(port)

    @property
    def mqtt_host_port(self):
        host, port = self.addrs["mqtt"].rsplit(":", 1)
        return host, int(port)

    @property
    def http_base(self):
        return f"http://{self.addrs['http']}"

    def http_get(self, path, timeout=5):
        """(status, body text) of GET `path` on the admin listener."""
        try:
            with urllib.request.urlopen(self.http_base + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def apply(self, manifest_path):
        """Run `shoal apply -f FILE --server URL`; returns the CompletedProcess."""
        return subprocess.run(
            [str(SHOAL_BIN), "apply", "-f", str(manifest_path), "--server", self.http_base],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL (a crash: nothing is flushed or drained) and reap the process."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr.close()
        self.stopped_with = self.proc.returncode

    def stop(self):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.stopped:
            return self.stopped_with
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._stderr.close()
                return None
        self._stderr.close()
        self.stopped_with = self.proc.returncode
        return self.stopped_with


@pytest.fixture
def shoal_factory(tmp_path):
    """Start shoal processes with extra flags: `shoal_factory("--link-capacity", "5")`;
    `command="router"` or `"broker"` starts those instead of `standalone`.

    `data_dir=PATH` reuses a data directory, so a test can stop shoal (or kill it)
    and start it again on what it stored; by default each process gets its own."""
    started = []

    def start(*extra, name="shoal", data_dir=None, command="standalone"):
        workdir = tmp_path / f"{name}-{len(started)}"
        workdir.mkdir()
        # `shoal broker` has no admin HTTP listener; `standalone` and `router` do.
        http = [] if command == "broker" else ["--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"]
        args = [
            str(SHOAL_BIN),
            command,
            "--amqp-listen",
            "127.0.0.1:0",
            *http,
            "--data-dir",
            str(data_dir or workdir / "data"),
            *[str(a) for a in extra],
        ]
        if not SHOAL_BIN.exists():
            pytest.fail(f"SHOAL_BIN {SHOAL_BIN} does not exist (run `cargo build --bins` or set SHOAL_BIN)")
        proc = Shoal(args, workdir)
        started.append(proc)
        return proc

    yield start

    problems = []
    for proc in started:
        if proc.stopped:
            continue  # the test stopped it and checked the outcome itself
        was_alive = proc.alive()
        code = proc.stop()
        if not was_alive:
            problems.append(f"shoal exited on its own during the test with code {proc.proc.returncode}")
        elif code != 0:
            problems.append(f"shoal did not exit 0 within {STOP_TIMEOUT}s of SIGTERM (got {code})")
        if problems:
            problems.append("stderr tail:\n" + "\n".join(proc.stderr_text().splitlines()[-30:]))
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def shoal(shoal_factory):
    """A shoal standalone with default settings."""
    return shoal_factory()


@pytest.fixture
def amqp():
    """A `Harness` (one reactor for all the test's connections), closed at teardown."""
    h = Harness()
    yield h
    h.close()


def flow_yaml(value):
    """`value` as YAML flow style: dicts, strings (quoted), numbers, booleans."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {flow_yaml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_manifest(name, address, kind, **spec):
    """The text of one Address manifest; `spec` holds further spec fields by their
    manifest names (`deadLetterAddress="dlq"`, `messageTtl={"maximum": "1s"}`)."""
    fields = {"address": address, "type": kind, **{k: v for k, v in spec.items() if v is not None}}
    # The type is a keyword: unquoted, as a person writes it.
    body = flow_yaml(fields).replace(f'type: "{kind}"', f"type: {kind}")
    return (
        "apiVersion: shoal.dev/v1beta1\n"
        "kind: Address\n"
        f"metadata: {{ name: {name}, namespace: default }}\n"
        f"spec: {body}\n"
    )


@pytest.fixture
def manifest(tmp_path):
    """Write an Address manifest: `manifest("sensors", "sensors/#", "multicast")` -> path.
    Broker settings go by their manifest names: `manifest("q", "q", "queue", deadLetterAddress="dlq")`."""

    def write(name, address, kind, distribution=None, **spec):
        path = tmp_path / f"{name}.yaml"
        path.write_text(address_manifest(name, address, kind, distribution=distribution, **spec))
        return path

    return write


@pytest.fixture
def manifests(tmp_path):
    """Write several Address manifests into one folder (for `-f FOLDER`): each
    argument is a tuple `(name, address, kind, {spec...})`; returns the folder."""
    counter = [0]

    def write(*addresses):
        counter[0] += 1
        folder = tmp_path / f"manifests-{counter[0]}"
        folder.mkdir()
        for name, address, kind, *rest in addresses:
            spec = rest[0] if rest else {}
            (folder / f"{name}.yaml").write_text(address_manifest(name, address, kind, **spec))
        return folder

    return write
