"""Queues placed on one of several brokers: `shoal router --broker NAME=HOST:PORT` (repeatable) and
`spec.broker` in the manifest. Each `shoal broker --name NAME` is its own process and holds only the
addresses placed on it; Proton clients only ever talk to the router."""

from proton import Message


def test_each_queue_lives_on_the_broker_its_manifest_names(shoal_factory, manifests, amqp):
    folder = manifests(
        ("east-orders", "east-orders", "queue", {"broker": "east"}),
        ("west-orders", "west-orders", "queue", {"broker": "west"}),
    )
    east = shoal_factory("--name", "east", "-f", folder, name="east", command="broker")
    west = shoal_factory("--name", "west", "-f", folder, name="west", command="broker")
    router = shoal_factory(
        "--broker", f"east={east.addrs['amqp']}", "--broker", f"west={west.addrs['amqp']}",
        "-f", folder, name="router", command="router",
    )

    conn = amqp.connect(router.url)
    sent = [
        amqp.send(amqp.sender(conn, "east-orders"), "for east"),
        amqp.send(amqp.sender(conn, "west-orders"), "for west"),
    ]
    assert amqp.wait_settled(sent) == ["accepted", "accepted"]

    # Straight to each broker: it holds its own queue's message and knows nothing of the other queue.
    for broker, mine, other, body in [
        (east, "east-orders", "west-orders", "for east"),
        (west, "west-orders", "east-orders", "for west"),
    ]:
        direct = amqp.connect(broker.url)
        rcv = amqp.receiver(direct, mine, credit=10, accept=True)
        amqp.wait_messages(rcv, 1)
        assert rcv.inbox.bodies == [body]
        stranger = amqp.receiver(direct, other, credit=1, wait_open=False)
        amqp.wait(lambda: stranger.remote_condition is not None, what=f"{other} refused by {broker}")
        assert stranger.remote_condition.name == "amqp:not-found"

    # Through the router again: both consumed, nothing left.
    for address in ("east-orders", "west-orders"):
        rcv = amqp.receiver(conn, address, credit=0, accept=True)
        assert amqp.drain(rcv) == [], f"{address} should be empty"


def test_apply_refuses_a_queue_on_a_broker_the_router_does_not_know(shoal, manifest):
    path = manifest("lost", "lost", "queue", broker="nowhere")
    out = shoal.apply(path)
    assert out.returncode != 0
    assert "spec.broker" in out.stderr and "no broker named \"nowhere\"" in out.stderr, out.stderr
    assert "known here: broker" in out.stderr, out.stderr  # the standalone's own broker


def test_properties_survive_the_hop_to_a_named_broker(shoal_factory, manifests, amqp):
    """The router relays links to the named broker unchanged: application properties survive the hop."""
    folder = manifests(("solo", "solo", "queue", {"broker": "solo"}))
    solo = shoal_factory("--name", "solo", "-f", folder, name="solo", command="broker")
    router = shoal_factory("--broker", f"solo={solo.addrs['amqp']}", "-f", folder, name="r", command="router")
    conn = amqp.connect(router.url)
    snd = amqp.sender(conn, "solo")
    dlv = snd.send(Message(body="hello", properties={"region": "eu"}))
    assert amqp.wait_settled(dlv) == ["accepted"]
    rcv = amqp.receiver(conn, "solo", credit=1, accept=True)
    amqp.wait_messages(rcv, 1)
    (msg, _), = rcv.inbox.items
    assert msg.body == "hello" and msg.properties == {"region": "eu"}


def test_apply_declares_a_queue_on_a_running_broker_process(shoal_factory, manifest, amqp, tmp_path):
    """`shoal broker --http-listen` serves the same admin API: a queue applied there (and its rule applied
    to the router) works without restarting anything, and is declared again when the broker restarts."""
    data = tmp_path / "east-data"
    east = shoal_factory("--name", "east", "--http-listen", "127.0.0.1:0", name="east", command="broker",
                         data_dir=data)
    router = shoal_factory("--broker", f"east={east.addrs['amqp']}", name="router", command="router")
    orders = manifest("orders", "orders", "queue", broker="east")
    for server in (east, router):
        out = server.apply(orders)
        assert out.returncode == 0, out.stderr

    elsewhere = manifest("billing", "billing", "queue", broker="west")
    out = east.apply(elsewhere)
    assert out.returncode != 0 and "spec.broker" in out.stderr and "known here: east" in out.stderr, out.stderr

    conn = amqp.connect(router.url)
    assert amqp.wait_settled(amqp.send(amqp.sender(conn, "orders"), "kept", durable=True)) == ["accepted"]

    assert east.stop() == 0
    east = shoal_factory("--name", "east", "--http-listen", "127.0.0.1:0", name="east2", command="broker",
                         data_dir=data)
    direct = amqp.connect(east.url)
    rcv = amqp.receiver(direct, "orders", credit=0, accept=True)
    assert [m.body for m in amqp.drain(rcv, credit=10)] == ["kept"]


def test_persistent_mqtt_sessions_of_a_router_are_kept_by_its_broker_process(shoal_factory, tmp_path):
    """`shoal router --broker`: the MQTT gateway in the router declares its sessions' queues in the broker
    process over AMQP (the broker's queue-management node) and the broker keeps what they miss."""
    from test_mqtt import Device, publish_stored

    broker = shoal_factory(name="broker", command="broker")
    data = tmp_path / "router-data"
    flags = ("--broker", broker.addrs["amqp"], "--mqtt-allow-anonymous")
    router = shoal_factory(*flags, name="r", command="router", data_dir=data)
    sub = Device(router, "tracker", clean_session=False)
    assert sub.session_present == 0
    sub.subscribe("fleet/+/pos", qos=1)
    sub.close()
    # The router restarts: the session's record is on its disk, its queue in the broker.
    assert router.stop() == 0
    router = shoal_factory(*flags, name="r", command="router", data_dir=data)
    # Each PUBACK means the broker process stored the message in the session's queue.
    publish_stored(router, "fleet/4/pos", [b"p1", b"p2"])
    assert router.stop() == 0
    router = shoal_factory(*flags, name="r", command="router", data_dir=data)
    assert not (data / "broker").exists(), "the router keeps no messages of its own"
    sub = Device(router, "tracker", clean_session=False)
    assert sub.session_present == 1
    assert sub.wait_messages(2) == [b"p1", b"p2"]
    assert [m.topic for m in sub.messages] == ["fleet/4/pos", "fleet/4/pos"]
    sub.close()
