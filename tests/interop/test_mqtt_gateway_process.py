"""`shoal mqtt-gateway`: the MQTT gateway in its own process, attached as an edge router to an interior
router (here a `shoal standalone` with its broker). Devices (paho-mqtt) connect to the gateway; the
application (Qpid Proton) uses the interior, and sees exactly what it sees with the in-process gateway.
"""

from conftest import SHOAL_BIN
from test_mesh import mesh_view, wait_for
from test_mqtt import Device, http, publish_stored, register
from test_mqtt_tls import DEVICE_DN, TlsDevice, pki  # noqa: F401 (pki is a fixture)


def start_pair(shoal_factory, amqp, *interior_flags):
    interior = shoal_factory(
        "--router-id", "core", "--inter-router-listen", "127.0.0.1:0", *interior_flags, name="core"
    )
    return interior, start_gateway(shoal_factory, amqp, interior)


def start_gateway(shoal_factory, amqp, interior, *flags, data_dir=None):
    gateway = shoal_factory(
        "--connect", f"edge://{interior.addrs['inter-router']}", *flags,
        name="gw", command="mqtt-gateway", data_dir=data_dir,
    )
    wait_for(
        amqp,
        lambda: any(n["adjacent"] and n["uplink_attached"] for n in mesh_view(gateway)["neighbours"]),
        "the gateway attached to the interior",
    )
    return gateway


def test_telemetry_from_a_device_on_the_gateway_reaches_an_application_on_the_interior(shoal_factory, amqp):
    interior, gateway = start_pair(shoal_factory, amqp)
    register(gateway, "acme", "dev1", "s3cret")
    rcv = amqp.receiver(amqp.connect(interior.url), "telemetry/acme", accept=True)
    dev = Device(gateway, "dev1", "dev1@acme", "s3cret")
    sent = [dev.client.publish("telemetry", f"reading {i}".encode(), qos=1) for i in range(5)]
    msgs = amqp.wait_messages(rcv, 5)
    assert sorted(m.body for m in msgs) == sorted(f"reading {i}".encode() for i in range(5))
    assert all(m.properties["device_id"] == "dev1" for m in msgs)
    # QoS 1: each PUBACK came only once the application on the interior accepted.
    amqp.wait(lambda: all(s.is_published() for s in sent), what="the PUBACKs")
    dev.close()


def test_a_command_round_trip_through_the_gateway_process(shoal_factory, amqp):
    interior, gateway = start_pair(shoal_factory, amqp)
    register(gateway, "acme", "dev1", "s3cret")
    dev = Device(gateway, "dev1", "dev1@acme", "s3cret")
    dev.subscribe("command///req/#")
    conn = amqp.connect(interior.url)
    replies = amqp.receiver(conn, "command_response/acme/app-1", accept=True)
    wait_for(
        amqp,
        lambda: any(a["address"] == "command/acme/dev1" for a in mesh_view(interior)["addresses"]),
        "the device's command subscription known on the interior",
    )
    snd = amqp.sender(conn, "command/acme/dev1")
    amqp.send(snd, b'{"on":true}', subject="switch", reply_to="command_response/acme/app-1", correlation_id="c-1")
    cmd = dev.wait_message(amqp)
    parts = cmd.topic.split("/")
    assert parts[3] == "req" and parts[5] == "switch", cmd.topic
    dev.client.publish(f"command///res/{parts[4]}/200", b"done", qos=1)
    [reply] = amqp.wait_messages(replies, 1)
    assert reply.correlation_id == "c-1"
    assert reply.properties["status"] == 200
    assert reply.body == b"done"
    dev.close()


def test_an_event_from_the_gateway_process_is_stored_by_the_interiors_broker(shoal_factory, manifest, amqp):
    interior, gateway = start_pair(shoal_factory, amqp, "-f", manifest("acme-events", "event/acme", "queue"))
    register(gateway, "acme", "dev1", "s3cret")
    dev = Device(gateway, "dev1", "dev1@acme", "s3cret")
    info = dev.client.publish("event", b'{"alarm":true}', qos=1)
    amqp.wait(info.is_published, what="the PUBACK: the broker behind the interior stored the event")
    dev.close()
    rcv = amqp.receiver(amqp.connect(interior.url), "event/acme", accept=True)
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b'{"alarm":true}'
    assert msg.durable


def test_the_gateway_needs_an_interior_to_attach_to(tmp_path):
    import subprocess

    done = subprocess.run(
        [str(SHOAL_BIN), "mqtt-gateway", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "--connect" in done.stderr, done.stderr
    bad = subprocess.run(
        [str(SHOAL_BIN), "mqtt-gateway", "--connect", "inter-router://127.0.0.1:1", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0
    assert "edge://" in bad.stderr, bad.stderr


def test_a_certificate_device_over_mqtts_on_the_gateway_process(shoal_factory, pki, amqp):
    interior = shoal_factory("--router-id", "core", "--inter-router-listen", "127.0.0.1:0", name="core")
    cert, key = pki.server
    gateway = shoal_factory(
        "--connect", f"edge://{interior.addrs['inter-router']}",
        "--mqtts-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
        name="gw", command="mqtt-gateway",
    )
    wait_for(
        amqp,
        lambda: any(n["uplink_attached"] for n in mesh_view(gateway)["neighbours"]),
        "the gateway attached to the interior",
    )
    trusted = {"subject-dn": "CN=Acme Device CA,O=Acme", "public-key": pki.device_ca_public_key()}
    assert http(gateway, "POST", "/v1/tenants/acme", {"trusted-ca": [trusted]}) == 201
    assert http(gateway, "POST", "/v1/devices/acme/dev-cert", {}) == 201
    assert http(gateway, "PUT", "/v1/credentials/acme/dev-cert", [{"type": "x509-cert", "auth-id": DEVICE_DN}]) == 204
    host, port = gateway.addrs["mqtts"].rsplit(":", 1)
    gateway.mqtts = (host, int(port))
    rcv = amqp.receiver(amqp.connect(interior.url), "telemetry/acme", accept=True)
    dev = TlsDevice(gateway, pki, "cert-client", cert=pki.device)
    assert dev.rc == 0
    sent = dev.publish("telemetry", b"over-tls")
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b"over-tls"
    assert msg.properties["device_id"] == "dev-cert"
    amqp.wait(sent.is_published, what="the PUBACK")
    dev.close()


def test_a_persistent_session_on_the_gateway_process_is_kept_in_the_interiors_broker(shoal_factory, amqp, tmp_path):
    interior = shoal_factory("--router-id", "core", "--inter-router-listen", "127.0.0.1:0", name="core")
    data = tmp_path / "gw-data"
    gateway = start_gateway(shoal_factory, amqp, interior, "--mqtt-allow-anonymous", data_dir=data)
    sub = Device(gateway, "tracker", clean_session=False)
    assert sub.session_present == 0, "a new session"
    sub.subscribe("fleet/1/pos", qos=1)
    sub.close()

    # The session is saved on stop and held again once the gateway says ready (and reaches the broker).
    def restart(gateway):
        assert gateway.stop() == 0
        return start_gateway(shoal_factory, amqp, interior, "--mqtt-allow-anonymous", data_dir=data)

    gateway = restart(gateway)
    # Each PUBACK means the session's queue, in the broker behind the interior, stored the message.
    publish_stored(gateway, "fleet/1/pos", [b"m1", b"m2"])
    # What was kept is in that broker, not in the gateway: it survives the gateway's restart.
    gateway = restart(gateway)
    assert not (data / "broker").exists(), "the gateway process keeps no messages of its own"
    publish_stored(gateway, "fleet/1/pos", [b"m3"])

    sub = Device(gateway, "tracker", clean_session=False)
    assert sub.session_present == 1, "CONNACK says session-present"
    assert sub.wait_messages(3) == [b"m1", b"m2", b"m3"]
    sub.close()

    # A clean session discards it, queue included.
    clean = Device(gateway, "tracker", clean_session=True)
    assert clean.session_present == 0
    clean.close()
    again = Device(gateway, "tracker", clean_session=False)
    assert again.session_present == 0, "the clean session discarded the kept one"
    again.close()


def test_a_persistent_session_is_refused_as_unavailable_when_no_broker_can_keep_it(shoal_factory, amqp):
    # The interior is a router with no broker: nothing could keep what a persistent session misses.
    interior = shoal_factory(
        "--router-id", "core", "--inter-router-listen", "127.0.0.1:0", name="core", command="router"
    )
    gateway = start_gateway(shoal_factory, amqp, interior, "--mqtt-allow-anonymous")
    persistent = Device(gateway, "tracker", clean_session=False)
    assert persistent.rc == 3, "CONNACK 3: server unavailable"
    persistent.close()
    # A clean session needs no broker.
    clean = Device(gateway, "tracker", clean_session=True)
    assert clean.rc == 0
    clean.close()


def proxies_to(router, peer):
    return sum(n["proxies"] for n in mesh_view(router)["neighbours"] if n["router_id"] == peer)


def test_mqtt_wildcard_subscribers_on_the_gateway_get_what_applications_send_on_the_interior(shoal_factory, amqp):
    interior = shoal_factory("--router-id", "core", "--inter-router-listen", "127.0.0.1:0", name="core")
    gateway = start_gateway(shoal_factory, amqp, interior, "--mqtt-allow-anonymous")
    positions = Device(gateway, "map")
    positions.subscribe("fleet/+/pos", qos=1)
    everything = Device(gateway, "logger")
    everything.subscribe("fleet/#", qos=1)
    wait_for(amqp, lambda: proxies_to(interior, "mqtt-gateway") >= 2, "the interior's pattern proxies")
    conn = amqp.connect(interior.url)
    # A named link (no `to` on the message): the subscribers still learn the topic it was sent to.
    # (The Proton harness moves bytes only while it waits: wait for the outcome first.) Accepted once both
    # subscribers acknowledged it.
    snd = amqp.sender(conn, "fleet/7/pos")
    assert amqp.wait_settled(amqp.send(snd, b"52.1,4.3")) == ["accepted"]
    assert positions.wait_messages(1) == [b"52.1,4.3"]
    assert everything.wait_messages(1) == [b"52.1,4.3"]
    assert positions.messages[0].topic == everything.messages[0].topic == "fleet/7/pos"
    deeper = amqp.send(amqp.sender(conn, "fleet/7/engine/temp"), b"88")
    assert amqp.wait_settled(deeper) == ["accepted"]
    assert everything.wait_messages(2)[1] == b"88"
    assert everything.messages[1].topic == "fleet/7/engine/temp"
    # The first subscriber got nothing more: the next thing it sees is the next position.
    assert amqp.wait_settled(amqp.send(snd, b"52.2,4.4")) == ["accepted"]
    assert positions.wait_messages(2) == [b"52.1,4.3", b"52.2,4.4"]
    positions.close()
    everything.close()


def test_an_offline_session_on_the_gateway_keeps_what_applications_send_on_the_interior(shoal_factory, amqp):
    interior = shoal_factory("--router-id", "core", "--inter-router-listen", "127.0.0.1:0", name="core")
    gateway = start_gateway(shoal_factory, amqp, interior, "--mqtt-allow-anonymous")
    sub = Device(gateway, "tracker", clean_session=False)
    sub.subscribe("alerts/#", qos=1)
    sub.close()
    # Offline, its keeper holds the subscription (a pattern proxy from the interior again).
    wait_for(amqp, lambda: proxies_to(interior, "mqtt-gateway") >= 1, "the keeper's pattern proxy")
    conn = amqp.connect(interior.url)
    snd = amqp.sender(conn, "alerts/fire")
    # Accepted only once the session's queue (in the interior's broker) stored it.
    assert amqp.wait_settled(amqp.send(snd, b"kept", durable=True)) == ["accepted"]
    back = Device(gateway, "tracker", clean_session=False)
    assert back.session_present == 1
    assert back.wait_messages(1) == [b"kept"]
    assert back.messages[0].topic == "alerts/fire"
    back.close()


def test_a_command_on_a_link_to_command_tenant_reaches_a_device_on_the_gateway_once(shoal_factory, amqp):
    interior, gateway = start_pair(shoal_factory, amqp)
    register(gateway, "acme", "dev1", "s3cret")
    dev = Device(gateway, "dev1", "dev1@acme", "s3cret")
    dev.subscribe("command///req/#")
    wait_for(
        amqp,
        lambda: any(a["address"] == "command/acme/dev1" for a in mesh_view(interior)["addresses"]),
        "the device's command subscription known on the interior",
    )
    conn = amqp.connect(interior.url)
    snd = amqp.sender(conn, "command/acme")
    first = amqp.send(snd, b"1", address="command/acme/dev1", subject="one")
    assert amqp.wait_settled(first) == ["accepted"]
    second = amqp.send(snd, b"2", address="command/acme/dev1", subject="two")
    assert amqp.wait_settled(second) == ["accepted"]
    # Relayed by the interior alone: one command each, in order (a second relay would repeat the first).
    assert dev.wait_messages(2) == [b"1", b"2"]
    dev.close()
