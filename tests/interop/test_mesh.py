"""The router mesh across processes, with Qpid Proton clients on different routers (ADR 0009).

Each router is a `shoal router` process with `--router-id`, `--inter-router-listen` and
`--connect inter-router://HOST:PORT`; the tests wait for the mesh to converge through
`GET /api/v1/mesh` (no sleeps), then send with Proton on one router and receive on another.
"""

import json
import subprocess
import time

from proton import Delivery

from amqp_client import outcome
from conftest import SHOAL_BIN
from test_admin import metric, scrape


class TimedList(list):
    """An inbox's item list that notes when each message arrived."""

    def __init__(self):
        super().__init__()
        self.times = []

    def append(self, item):
        self.times.append(time.monotonic())
        super().append(item)


def start_router(shoal_factory, router_id, *connect_to, extra=(), cost=None):
    args = ["--router-id", router_id, "--inter-router-listen", "127.0.0.1:0"]
    suffix = f"?cost={cost}" if cost else ""
    for peer in connect_to:
        args += ["--connect", f"inter-router://{peer.addrs['inter-router']}{suffix}"]
    return shoal_factory(*args, *extra, name=router_id, command="router")


def mesh_view(router):
    status, body = router.http_get("/api/v1/mesh")
    assert status == 200, body
    return json.loads(body)


def wait_for(amqp, cond, what, timeout=10):
    """Poll `cond` while the Proton reactor keeps running (clients stay serviced)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        amqp.pump(0.05)


def destinations(router, address):
    for a in mesh_view(router)["addresses"]:
        if a["address"] == address:
            return a["destinations"]
    return []


def test_proton_sender_and_receiver_on_different_routers_of_a_line(shoal_factory, amqp):
    a = start_router(shoal_factory, "A")
    b = start_router(shoal_factory, "B", a)
    c = start_router(shoal_factory, "C", b, cost=3)
    wait_for(amqp, lambda: len(mesh_view(a)["routes"]) == 2, "A to see B and C")
    assert mesh_view(b)["router_id"] == "B"
    costs = {r["router_id"]: (r["next_hop"], r["cost"]) for r in mesh_view(a)["routes"]}
    assert costs == {"B": ("B", 1), "C": ("B", 4)}, costs

    rcv = amqp.receiver(amqp.connect(c.url), "mesh/orders", credit=50, accept=True)
    wait_for(amqp, lambda: destinations(a, "mesh/orders"), "A to learn where mesh/orders is consumed")
    assert destinations(a, "mesh/orders")[0]["router_id"] == "C"
    snd = amqp.sender(amqp.connect(a.url), "mesh/orders")

    bodies = [f"order-{i}" for i in range(30)]
    assert amqp.wait_settled(amqp.send_many(snd, bodies)) == ["accepted"] * 30
    assert rcv.inbox.bodies == bodies

    # The router id is on the metrics.
    status, text = a.http_get("/metrics")
    assert status == 200
    assert 'shoal_router_info{router_id="A",mode="interior"} 1' in text


def test_kill_9_a_router_of_a_triangle_mid_stream_reroutes(shoal_factory, amqp):
    a = start_router(shoal_factory, "A")
    b = start_router(shoal_factory, "B", a)
    c = start_router(shoal_factory, "C", a, b)
    for r in (a, b, c):
        wait_for(amqp, lambda r=r: len(mesh_view(r)["routes"]) == 2, "a full triangle")

    # Balanced consumers on B and C; the sender on A spreads over both paths.
    rb = amqp.receiver(amqp.connect(b.url), "mesh/work", credit=100, accept=True)
    rc = amqp.receiver(amqp.connect(c.url), "mesh/work", credit=1000, accept=True)
    rc.inbox.items = TimedList()
    wait_for(amqp, lambda: len(destinations(a, "mesh/work")) == 2, "both consumers known at A")
    snd = amqp.sender(amqp.connect(a.url), "mesh/work")

    # At-least-once: released deliveries are sent again until everything is accepted.
    pending = [f"job-{i}" for i in range(400)]
    accepted = set()
    killed_at = None
    for _round in range(10):
        if not pending:
            break
        deliveries = []
        for body in pending:
            deliveries.append((body, amqp.send(snd, body)))
            if killed_at is None and len(rb.inbox.items) >= 40:
                b.kill()  # SIGKILL: the OS closes B's sockets, nothing is drained
                killed_at = time.monotonic()
        amqp.wait_settled([d for _, d in deliveries], timeout=15)
        pending = []
        for body, d in deliveries:
            state = outcome(d)
            if state == "accepted":
                accepted.add(body)
            else:
                assert d.remote_state == Delivery.RELEASED, f"{body}: {state}"
                pending.append(body)
    assert killed_at is not None, "B was killed mid-stream"
    assert not pending, f"still not accepted after 10 rounds: {len(pending)}"
    assert len(accepted) == 400

    # No settled delivery lost: everything accepted reached a consumer.
    received = set(rb.inbox.bodies) | set(rc.inbox.bodies)
    missing = accepted - received
    assert not missing, f"accepted but never received: {sorted(missing)[:10]}"

    # Traffic flowed through C within 3 s of the kill.
    after = [t for t in rc.inbox.items.times if t > killed_at]
    assert after, "C received nothing after the kill"
    assert after[0] - killed_at < 3, f"rerouting took {after[0] - killed_at:.2f}s"
    routes = {r["router_id"] for r in mesh_view(a)["routes"]}
    assert routes == {"C"}, f"A still routes to {routes}"


def test_an_edge_standalone_reaches_an_interior_and_keeps_local_traffic_local(shoal_factory, amqp):
    a = start_router(shoal_factory, "A")
    e = shoal_factory(
        "--router-id", "E", "--mode", "edge", "--connect", f"edge://{a.addrs['inter-router']}", name="E"
    )
    wait_for(amqp, lambda: mesh_view(e)["uplink"] == "A", "E's uplink to A")
    assert mesh_view(e)["mode"] == "edge"

    # A consumer on the edge, a sender on the interior.
    rcv = amqp.receiver(amqp.connect(e.url), "edge/in", credit=20, accept=True)
    wait_for(amqp, lambda: any(x["address"] == "edge/in" and x["local"] for x in mesh_view(a)["addresses"]),
             "A to advertise E's consumer")
    snd = amqp.sender(amqp.connect(a.url), "edge/in")
    assert amqp.wait_settled(amqp.send_many(snd, ["x", "y"])) == ["accepted", "accepted"]
    assert rcv.inbox.bodies == ["x", "y"]

    # A sender on the edge reaches a consumer on the interior.
    rcv_a = amqp.receiver(amqp.connect(a.url), "edge/out", credit=20, accept=True)
    snd_e = amqp.sender(amqp.connect(e.url), "edge/out")
    assert amqp.wait_settled(amqp.send(snd_e, "up")) == ["accepted"]
    assert rcv_a.inbox.bodies == ["up"]

    # Sender and consumer both on the edge: the interior never sees the traffic.
    local = amqp.receiver(amqp.connect(e.url), "edge/local", credit=20, accept=True)
    snd_l = amqp.sender(amqp.connect(e.url), "edge/local")
    assert amqp.wait_settled(amqp.send_many(snd_l, ["l1", "l2"])) == ["accepted", "accepted"]
    assert local.inbox.bodies == ["l1", "l2"]
    assert metric(scrape(a), "shoal_deliveries_in_total", address="edge/local") == 0, (
        "local edge traffic crossed the interior"
    )
    assert metric(scrape(e), "shoal_deliveries_in_total", address="edge/local") == 2


def test_routers_configured_from_files_form_a_mesh(shoal_factory, amqp, tmp_path):
    """`--config FILE` carries the mesh settings (as a ConfigMap would) instead of flags."""
    a_file = tmp_path / "a.yaml"
    a_file.write_text("routerId: file-a\nmode: interior\ninterRouterListen: 127.0.0.1:0\n")
    a = shoal_factory("--config", a_file, name="file-a", command="router")
    b_file = tmp_path / "b.yaml"
    b_file.write_text(f"routerId: file-b\nconnect:\n  - inter-router://{a.addrs['inter-router']}?cost=2\n")
    b = shoal_factory("--config", b_file, name="file-b", command="router")
    wait_for(amqp, lambda: [r["router_id"] for r in mesh_view(b)["routes"]] == ["file-a"], "B to reach A")
    assert mesh_view(b)["routes"][0]["cost"] == 2

    rcv = amqp.receiver(amqp.connect(a.url), "mesh/from-files", credit=10, accept=True)
    wait_for(amqp, lambda: destinations(b, "mesh/from-files"), "B to learn where the consumer is")
    snd = amqp.sender(amqp.connect(b.url), "mesh/from-files")
    assert amqp.wait_settled(amqp.send_many(snd, ["x", "y"])) == ["accepted", "accepted"]
    assert rcv.inbox.bodies == ["x", "y"]


def test_a_config_file_mistake_is_refused_with_the_key_named(shoal_factory, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routerId: x\nconnect:\n  - tcp://127.0.0.1:1\n")
    out = subprocess.run(
        [str(SHOAL_BIN), "router", "--config", str(bad), "--amqp-listen", "127.0.0.1:0", "--http-listen",
         "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "connect[0]" in out.stderr and "tcp://127.0.0.1:1" in out.stderr, out.stderr
