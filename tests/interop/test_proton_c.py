"""Proton C (proactor API) clients through shoal: tests/interop/c/*.c, built by scripts/test."""

import queue
import subprocess
import threading

import pytest

from conftest import INTEROP_C_DIR

COUNT = 2000


def c_program(name):
    path = INTEROP_C_DIR / name
    if not path.exists():
        pytest.fail(f"{path} missing: scripts/test compiles tests/interop/c/{name}.c (or set SHOAL_INTEROP_C)")
    return str(path)


def wait_for_line(proc, expected, timeout):
    """Read proc's stdout until `expected`; a thread so we can bound the wait."""
    lines = queue.Queue()

    def pump():
        for raw in proc.stdout:
            line = raw.strip()
            lines.put(line)
            if line == expected:
                return
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"{proc.args[0]} ended before printing {expected!r}: {seen}")
        seen.append(line)
        if line == expected:
            return


def test_proton_c_sender_and_receiver_through_shoal(shoal):
    host, port = shoal.host_port
    recv = subprocess.Popen(
        [c_program("interop_recv"), host, str(port), "c/interop", str(COUNT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_line(recv, "attached", timeout=10)
        send = subprocess.run(
            [c_program("interop_send"), host, str(port), "c/interop", str(COUNT)],
            capture_output=True, text=True, timeout=60,
        )
        recv_out, recv_err = recv.communicate(timeout=60)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()

    assert send.stdout.strip() == f"sent {COUNT} accepted {COUNT} other 0", send.stderr
    assert send.returncode == 0, send.stderr
    assert f"received {COUNT} bad 0" in recv_out, recv_err
    assert recv.returncode == 0, recv_err
