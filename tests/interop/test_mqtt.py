"""The MQTT gateway with clients nobody here wrote: paho-mqtt and mosquitto_pub/sub on
the device side, Qpid Proton on the application side, against `shoal standalone`.

Devices are registered over the registry's HTTP API (Hono's management API) on the
admin listener. Every wait is on an event: a CONNACK, a SUBACK, a PUBACK, a message.
"""

import json
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from test_admin import metric, scrape

WAIT = 10.0

# The Proton harness runs its reactor only while the test waits through it (`amqp.wait`), so
# waits on the MQTT side that need the AMQP side to act go through `amqp.wait` too.


def http(shoal, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        shoal.http_base + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        return resp.status


def register(shoal, tenant, device, password):
    """Tenant (if new), device and its hashed-password credential, as a Hono operator would."""
    try:
        http(shoal, "POST", f"/v1/tenants/{tenant}", {})
    except urllib.error.HTTPError as err:
        assert err.code == 409, err
    assert http(shoal, "POST", f"/v1/devices/{tenant}/{device}", {}) == 201
    creds = [{"type": "hashed-password", "auth-id": device, "secrets": [{"pwd-plain": password}]}]
    assert http(shoal, "PUT", f"/v1/credentials/{tenant}/{device}", creds) == 204


class Device:
    """A paho client (MQTT 3.1.1) with events for CONNACK, SUBACK, PUBACK and messages."""

    def __init__(self, shoal, client_id, username=None, password=None, clean_session=True):
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.got_message = threading.Event()
        self.rc = None
        self.session_present = None
        self.messages = []
        self.client = mqtt.Client(client_id=client_id, clean_session=clean_session, protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, granted: self.subscribed.set()
        self.client.on_message = self._on_message
        host, port = shoal.mqtt_host_port
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, client, userdata, flags, rc):
        self.rc = rc
        self.session_present = flags.get("session present")
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.append(msg)
        self.got_message.set()

    def subscribe(self, topic, qos=1):
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def wait_message(self, amqp):
        amqp.wait(self.got_message.is_set, what="an MQTT message")
        self.got_message.clear()
        return self.messages[-1]

    def wait_messages(self, count):
        """Wait (on the message event) until `count` messages came; returns their payloads."""
        deadline = time.monotonic() + WAIT
        while len(self.messages) < count:
            left = deadline - time.monotonic()
            assert left > 0 and self.got_message.wait(left), f"{count} messages, got {len(self.messages)}"
            self.got_message.clear()
        return [m.payload for m in self.messages]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_wrong_password_is_refused_right_one_accepted(shoal_factory):
    shoal = shoal_factory()
    register(shoal, "acme", "dev1", "s3cret")
    bad = Device(shoal, "dev1", "dev1@acme", "nope")
    assert bad.rc == 4, "bad user name or password"
    bad.close()
    good = Device(shoal, "dev1", "dev1@acme", "s3cret")
    assert good.rc == 0
    good.close()


def test_telemetry_qos1_puback_is_withheld_without_a_consumer(shoal_factory, amqp):
    shoal = shoal_factory()
    register(shoal, "acme", "dev1", "s3cret")
    dev = Device(shoal, "dev1", "dev1@acme", "s3cret")
    lost = dev.client.publish("telemetry", b"nobody", qos=1)
    # paho sends from its own thread: wait until the message reached the router (which found no consumer)
    # before an application attaches, or it could be that application's.
    amqp.wait(
        lambda: metric(scrape(shoal), "shoal_deliveries_in_total", address="telemetry/acme") >= 1,
        what="the first telemetry message to reach the router",
    )
    rcv = amqp.receiver(amqp.connect(shoal.url), "telemetry/acme", accept=True)
    kept = dev.client.publish("telemetry", b"someone", qos=1)
    amqp.wait(kept.is_published, what="the PUBACK of the consumed message")
    # The gateway settled the first one before the second: it was released, and not acknowledged.
    assert not lost.is_published(), "PUBACK for telemetry that no application received"
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b"someone"
    assert msg.properties["device_id"] == "dev1"
    dev.close()


def test_an_event_is_stored_while_no_application_listens(shoal_factory, manifest, amqp):
    shoal = shoal_factory("-f", manifest("acme-events", "event/acme", "queue"))
    register(shoal, "acme", "dev1", "s3cret")
    dev = Device(shoal, "dev1", "dev1@acme", "s3cret")
    info = dev.client.publish("event", b'{"alarm":true}', qos=1)
    info.wait_for_publish(WAIT)
    assert info.is_published(), "the broker stored the event: PUBACK"
    dev.close()
    rcv = amqp.receiver(amqp.connect(shoal.url), "event/acme", accept=True)
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b'{"alarm":true}'
    assert msg.durable
    assert msg.properties["device_id"] == "dev1"


def test_a_command_round_trip(shoal_factory, amqp):
    shoal = shoal_factory()
    register(shoal, "acme", "dev1", "s3cret")
    dev = Device(shoal, "dev1", "dev1@acme", "s3cret")
    dev.subscribe("command///req/#")
    conn = amqp.connect(shoal.url)
    replies = amqp.receiver(conn, "command_response/acme/app-1", accept=True)
    snd = amqp.sender(conn, "command/acme/dev1")
    amqp.send(
        snd,
        b'{"level":3}',
        subject="setVolume",
        reply_to="command_response/acme/app-1",
        correlation_id="corr-7",
    )
    cmd = dev.wait_message(amqp)
    parts = cmd.topic.split("/")
    assert parts[:4] == ["command", "", "", "req"] and parts[5] == "setVolume", cmd.topic
    assert cmd.payload == b'{"level":3}'
    req_id = parts[4]
    answered = dev.client.publish(f"command///res/{req_id}/200", b"ok", qos=1)
    [reply] = amqp.wait_messages(replies, 1)
    assert reply.correlation_id == "corr-7"
    assert reply.properties["status"] == 200
    assert reply.properties["device_id"] == "dev1"
    assert reply.body == b"ok"
    amqp.wait(answered.is_published, what="the PUBACK of the command response")
    dev.close()


def test_mqtt_and_proton_talk_on_a_plain_topic(shoal_factory, amqp):
    shoal = shoal_factory("--mqtt-allow-anonymous")
    host, port = shoal.mqtt_host_port
    conn = amqp.connect(shoal.url)
    rcv = amqp.receiver(conn, "plant/7/temp", accept=True)
    # mosquitto_pub -q 1 exits 0 only once its PUBACK came, which the gateway sends after Proton accepted.
    pub = subprocess.Popen(
        ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-t", "plant/7/temp", "-m", "21.5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    amqp.wait(lambda: pub.poll() is not None, what="mosquitto_pub to exit")
    assert pub.returncode == 0, pub.stderr.read()
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b"21.5"

    sub = Device(shoal, "watcher")
    sub.subscribe("plant/+/setpoint")
    snd = amqp.sender(conn, None)
    amqp.wait_settled(amqp.send(snd, b"19", address="plant/7/setpoint"))
    got = sub.wait_message(amqp)
    assert got.topic == "plant/7/setpoint"
    assert got.payload == b"19"
    sub.close()


def test_a_retained_message_reaches_a_late_mosquitto_sub(shoal_factory):
    shoal = shoal_factory("--mqtt-allow-anonymous")
    host, port = shoal.mqtt_host_port
    base = ["-h", host, "-p", str(port)]
    # QoS 0: with nobody subscribed yet, a QoS 1 publish would get no PUBACK from MQTT 3.1.1.
    pub = subprocess.run(
        ["mosquitto_pub", *base, "-q", "0", "-r", "-t", "doors/front", "-m", "open"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert pub.returncode == 0, pub.stderr
    sub = subprocess.run(
        ["mosquitto_sub", *base, "-t", "doors/#", "-C", "1", "-W", str(int(WAIT)), "-v"],
        capture_output=True,
        text=True,
        timeout=WAIT + 5,
    )
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == "doors/front open"


def restart(shoal_factory, shoal, data_dir, *flags):
    """SIGTERM (must exit 0), then a new process on the same data directory."""
    code = shoal.stop()
    assert code == 0, f"shoal did not stop cleanly (exit {code}):\n{shoal.stderr_text()[-2000:]}"
    return shoal_factory(*flags, data_dir=data_dir)


def publish_stored(shoal, topic, payloads, qos=1):
    """Publish from a paho client; at QoS 1 each PUBACK means a subscriber (or a session's queue) has it."""
    pub = Device(shoal, "publisher")
    for payload in payloads:
        info = pub.client.publish(topic, payload, qos=qos)
        if qos == 1:
            info.wait_for_publish(WAIT)
            assert info.is_published(), f"no PUBACK for {payload!r}"
    pub.close()


def test_a_persistent_session_gets_what_it_missed_across_restarts(shoal_factory, tmp_path):
    data = tmp_path / "data"
    flags = ("--mqtt-allow-anonymous",)
    shoal = shoal_factory(*flags, data_dir=data)
    sub = Device(shoal, "tracker", clean_session=False)
    assert sub.session_present == 0, "a new session"
    sub.subscribe("fleet/+/pos", qos=1)
    sub.close()

    # The session (its subscription) is saved on stop and held again once shoal says ready.
    shoal = restart(shoal_factory, shoal, data, *flags)
    publish_stored(shoal, "fleet/1/pos", [b"m1", b"m2"])
    # QoS 0 messages are not kept for an offline session.
    publish_stored(shoal, "fleet/1/pos", [b"lost"], qos=0)
    publish_stored(shoal, "fleet/2/pos", [b"m3"])
    # What was kept is in the broker's store: it survives a restart too.
    shoal = restart(shoal_factory, shoal, data, *flags)
    publish_stored(shoal, "fleet/3/pos", [b"m4"])

    sub = Device(shoal, "tracker", clean_session=False)
    assert sub.session_present == 1, "CONNACK says session-present"
    # No SUBSCRIBE: the session's subscription is live again, after what was kept, in order.
    assert sub.wait_messages(4) == [b"m1", b"m2", b"m3", b"m4"]
    assert [m.topic for m in sub.messages] == ["fleet/1/pos", "fleet/1/pos", "fleet/2/pos", "fleet/3/pos"]
    sub.close()

    # A clean session discards it all: connecting persistently again finds nothing.
    clean = Device(shoal, "tracker", clean_session=True)
    assert clean.session_present == 0
    clean.close()
    again = Device(shoal, "tracker", clean_session=False)
    assert again.session_present == 0, "the clean session discarded the kept one"
    again.close()


class Device5(Device):
    """A paho client speaking MQTT 5, to see a PUBLISH's properties (content type)."""

    def __init__(self, shoal, client_id):
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.got_message = threading.Event()
        self.rc = None
        self.session_present = None
        self.messages = []
        self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect5
        self.client.on_subscribe = lambda c, u, mid, codes, props=None: self.subscribed.set()
        self.client.on_message = self._on_message
        host, port = shoal.mqtt_host_port
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _on_connect5(self, client, userdata, flags, rc, properties=None):
        self.rc = rc
        self.connected.set()


def register_via(shoal, tenant, device, gateway):
    """A device (no credentials of its own) that reaches the gateway `gateway`: its `via`."""
    assert http(shoal, "POST", f"/v1/devices/{tenant}/{device}", {"via": [gateway]}) == 201


def test_wildcard_subscribers_get_a_named_links_messages_under_its_address(shoal_factory, amqp):
    shoal = shoal_factory("--mqtt-allow-anonymous")
    plus = Device(shoal, "plus")
    plus.subscribe("sensors/+/temp")
    hash_ = Device(shoal, "hash")
    hash_.subscribe("sensors/#")
    conn = amqp.connect(shoal.url)
    # A link named for the topic, and messages without `to`: the topic is the link's address.
    snd = amqp.sender(conn, "sensors/room1/temp")
    dlv = amqp.send(snd, b"21.5")
    for sub in (plus, hash_):
        got = sub.wait_message(amqp)
        assert got.topic == "sensors/room1/temp"
        assert got.payload == b"21.5"
    # Both subscribers PUBACKed (QoS 1): the sender hears accepted.
    assert amqp.wait_settled(dlv) == ["accepted"]
    plus.close()
    hash_.close()


def test_a_proton_string_body_reaches_mqtt_as_utf8_text(shoal_factory, amqp):
    shoal = shoal_factory("--mqtt-allow-anonymous")
    sub = Device5(shoal, "reader")
    sub.subscribe("notes/+")
    conn = amqp.connect(shoal.url)
    snd = amqp.sender(conn, None)
    # A Python str is an amqp-value string.
    dlv = amqp.send(snd, "héllo wörld", address="notes/1")
    got = sub.wait_message(amqp)
    assert got.payload == "héllo wörld".encode()
    assert got.properties.ContentType == "text/plain; charset=utf-8"
    assert amqp.wait_settled(dlv) == ["accepted"]
    # A dict is an amqp-value map: it arrives as JSON.
    amqp.send(snd, {"temp": 21, "unit": "C"}, address="notes/2")
    got = sub.wait_message(amqp)
    assert json.loads(got.payload) == {"temp": 21, "unit": "C"}
    assert got.properties.ContentType == "application/json"
    sub.close()


def test_a_gateway_gets_commands_for_its_devices_on_one_subscription(shoal_factory, amqp):
    shoal = shoal_factory()
    register(shoal, "acme", "gw", "s3cret")
    devices = ("sensor-a", "sensor-b")
    for device in devices:
        register_via(shoal, "acme", device, "gw")
    gw = Device(shoal, "gw", "gw@acme", "s3cret")
    gw.subscribe("command//+/req/#")
    conn = amqp.connect(shoal.url)
    replies = amqp.receiver(conn, "command_response/acme/app-1", accept=True)
    snd = amqp.sender(conn, None)
    for n, device in enumerate(devices):
        dlv = amqp.send(
            snd,
            b'{"on":true}',
            address=f"command/acme/{device}",
            subject="switch",
            reply_to="command_response/acme/app-1",
            correlation_id=f"corr-{device}",
        )
        cmd = gw.wait_message(amqp)
        parts = cmd.topic.split("/")
        assert parts[:4] == ["command", "", device, "req"] and parts[5] == "switch", cmd.topic
        assert cmd.payload == b'{"on":true}'
        assert amqp.wait_settled(dlv) == ["accepted"]
        answered = gw.client.publish(f"command//{device}/res/{parts[4]}/200", b"switched", qos=1)
        reply = amqp.wait_messages(replies, n + 1)[n]
        assert reply.correlation_id == f"corr-{device}"
        assert reply.properties["status"] == 200
        assert reply.properties["device_id"] == device
        assert reply.body == b"switched"
        amqp.wait(answered.is_published, what="the PUBACK of the command response")
    gw.close()


def test_commands_on_a_link_to_command_tenant_reach_the_device_in_to(shoal_factory, amqp):
    shoal = shoal_factory()
    register(shoal, "acme", "dev1", "s3cret")
    dev = Device(shoal, "dev1", "dev1@acme", "s3cret")
    dev.subscribe("command///req/#")
    conn = amqp.connect(shoal.url)
    replies = amqp.receiver(conn, "command_response/acme/app-1", accept=True)
    # Hono's application form: one link to `command/TENANT`, each message's `to` naming its device.
    snd = amqp.sender(conn, "command/acme")
    dlv = amqp.send(
        snd,
        b'{"level":3}',
        address="command/acme/dev1",
        subject="setVolume",
        reply_to="command_response/acme/app-1",
        correlation_id="corr-9",
    )
    cmd = dev.wait_message(amqp)
    parts = cmd.topic.split("/")
    assert parts[:4] == ["command", "", "", "req"] and parts[5] == "setVolume", cmd.topic
    assert amqp.wait_settled(dlv) == ["accepted"]
    answered = dev.client.publish(f"command///res/{parts[4]}/200", b"ok", qos=1)
    [reply] = amqp.wait_messages(replies, 1)
    assert reply.correlation_id == "corr-9"
    assert reply.properties["status"] == 200
    amqp.wait(answered.is_published, what="the PUBACK of the command response")
    dev.close()
