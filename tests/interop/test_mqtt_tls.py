"""MQTT over TLS (`--mqtts-listen`) and device login by client certificate, with clients nobody here
wrote: paho-mqtt and mosquitto_pub on the device side, Qpid Proton on the application side, Python's
`ssl` (OpenSSL) to see the TLS alert itself.

Certificates are made at test time with the `openssl` CLI: a device CA that tenant `acme` trusts (given,
as Hono does, by subject DN and public key), a server certificate for 127.0.0.1/localhost, device
certificates signed by the CA, and a device certificate from a CA nobody trusts. Tenants and devices go
through the registry's HTTP API on the admin listener.
"""

import socket
import ssl
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest
from test_mqtt import WAIT, http, register

# The device certificate's subject, as the registry stores `x509-cert` auth-ids (RFC 2253: most specific
# first); the openssl `-subj` below lists the same RDNs root first.
DEVICE_DN = "CN=device-1,O=Acme,C=DE"


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def new_key(path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path)


def make_ca(directory, name, subject):
    key, cert = directory / f"{name}-key.pem", directory / f"{name}.pem"
    new_key(key)
    openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )
    return cert, key


def issue(directory, name, subject, ca, extensions):
    """A certificate for `subject` signed by `ca` (cert, key) with the given X.509v3 extensions."""
    key, csr, cert = directory / f"{name}-key.pem", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    new_key(key)
    openssl("req", "-new", "-key", key, "-out", csr, "-subj", subject)
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "2",
        "-extfile", ext, "-out", cert,
    )
    return cert, key


CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"


class Pki:
    def __init__(self, d):
        self.server_ca = make_ca(d, "server-ca", "/CN=Shoal Test Server CA")
        self.server = issue(
            d, "server", "/CN=localhost", self.server_ca,
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        self.device_ca = make_ca(d, "device-ca", "/O=Acme/CN=Acme Device CA")
        self.device = issue(d, "device-1", "/C=DE/O=Acme/CN=device-1", self.device_ca, CLIENT_EXT)
        self.disabled = issue(d, "device-off", "/C=DE/O=Acme/CN=device-off", self.device_ca, CLIENT_EXT)
        self.unknown = issue(d, "device-unknown", "/C=DE/O=Acme/CN=nobody", self.device_ca, CLIENT_EXT)
        rogue_ca = make_ca(d, "rogue-ca", "/O=Rogue/CN=Rogue CA")
        self.rogue = issue(d, "rogue", "/C=DE/O=Acme/CN=device-1", rogue_ca, CLIENT_EXT)

    def device_ca_public_key(self):
        """The device CA's SubjectPublicKeyInfo as base64 DER: Hono's `trusted-ca` `public-key`."""
        pem = subprocess.run(
            ["openssl", "x509", "-in", str(self.device_ca[0]), "-pubkey", "-noout"],
            check=True, capture_output=True, text=True,
        ).stdout
        return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def mqtts_shoal(shoal_factory, pki):
    """A shoal with an MQTTS listener; tenant `acme` trusts the device CA and has devices
    `dev-cert` (x509-cert DEVICE_DN), `dev-off` (disabled, x509-cert) and `dev-pw` (password)."""
    cert, key = pki.server
    shoal = shoal_factory("--mqtts-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
    assert "mqtts" in shoal.addrs, f"no `mqtts listening on` line: {shoal.stdout_lines}"
    trusted = {"subject-dn": "CN=Acme Device CA,O=Acme", "public-key": pki.device_ca_public_key()}
    assert http(shoal, "POST", "/v1/tenants/acme", {"trusted-ca": [trusted]}) == 201
    for device, dn, enabled in [("dev-cert", DEVICE_DN, True), ("dev-off", "CN=device-off,O=Acme,C=DE", False)]:
        assert http(shoal, "POST", f"/v1/devices/acme/{device}", {"enabled": enabled}) == 201
        creds = [{"type": "x509-cert", "auth-id": dn}]
        assert http(shoal, "PUT", f"/v1/credentials/acme/{device}", creds) == 204
    register(shoal, "acme", "dev-pw", "s3cret")
    host, port = shoal.addrs["mqtts"].rsplit(":", 1)
    shoal.mqtts = (host, int(port))
    return shoal


class TlsDevice:
    """A paho client over TLS with an event for its CONNACK (MQTT 3.1.1, or 5 with `v5=True`)."""

    def __init__(self, shoal, pki, client_id, cert=None, username=None, password=None, v5=False):
        self.connected = threading.Event()
        self.rc = None
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(client_id=client_id, protocol=protocol)
        certfile, keyfile = cert if cert else (None, None)
        self.client.tls_set(ca_certs=str(pki.server_ca[0]), certfile=certfile and str(certfile),
                            keyfile=keyfile and str(keyfile))
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        host, port = shoal.mqtts
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        # MQTT 5: a ReasonCodes object; 3.1.1: the CONNACK return code.
        self.rc = rc.value if hasattr(rc, "value") else rc
        self.connected.set()

    def publish(self, topic, payload):
        return self.client.publish(topic, payload, qos=1)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_password_login_over_mqtts_and_telemetry_reaches_proton(mqtts_shoal, pki, amqp):
    rcv = amqp.receiver(amqp.connect(mqtts_shoal.url), "telemetry/acme", accept=True)
    dev = TlsDevice(mqtts_shoal, pki, "dev-pw", username="dev-pw@acme", password="s3cret")
    assert dev.rc == 0
    sent = dev.publish("telemetry", b'{"temp":21}')
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b'{"temp":21}'
    assert msg.properties["device_id"] == "dev-pw"
    amqp.wait(sent.is_published, what="the PUBACK over TLS")
    dev.close()


def test_client_certificate_logs_a_device_in_without_a_password(mqtts_shoal, pki, amqp):
    rcv = amqp.receiver(amqp.connect(mqtts_shoal.url), "telemetry/acme", accept=True)
    dev = TlsDevice(mqtts_shoal, pki, "cert-client", cert=pki.device)
    assert dev.rc == 0, "a device CA certificate with a registered subject DN logs in"
    sent = dev.publish("telemetry", b"by-cert")
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b"by-cert"
    assert msg.properties["device_id"] == "dev-cert", "the subject DN named the device"
    amqp.wait(sent.is_published, what="the PUBACK")
    dev.close()


def test_mosquitto_pub_with_a_device_certificate(mqtts_shoal, pki, amqp):
    rcv = amqp.receiver(amqp.connect(mqtts_shoal.url), "telemetry/acme", accept=True)
    host, port = mqtts_shoal.mqtts
    cert, key = pki.device
    # -q 1: mosquitto_pub exits 0 only once its PUBACK came, which the gateway sends after Proton accepted.
    pub = subprocess.Popen(
        ["mosquitto_pub", "-h", host, "-p", str(port), "--cafile", str(pki.server_ca[0]),
         "--cert", str(cert), "--key", str(key), "-q", "1", "-t", "telemetry", "-m", "from-mosquitto"],
        stderr=subprocess.PIPE,
        text=True,
    )
    [msg] = amqp.wait_messages(rcv, 1)
    assert msg.body == b"from-mosquitto"
    assert msg.properties["device_id"] == "dev-cert"
    amqp.wait(lambda: pub.poll() is not None, what="mosquitto_pub to exit")
    assert pub.returncode == 0, pub.stderr.read()


def test_a_certificate_from_an_untrusted_ca_fails_the_tls_handshake(mqtts_shoal, pki):
    """Refused in TLS, not by CONNACK: the chain leads to no tenant's CA, so the gateway sends the
    `unknown_ca` alert (same subject DN as a registered device: the DN alone proves nothing)."""
    ctx = ssl.create_default_context(cafile=str(pki.server_ca[0]))
    ctx.load_cert_chain(str(pki.rogue[0]), str(pki.rogue[1]))
    connect = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 2]) + b"r1"
    with socket.create_connection(mqtts_shoal.mqtts, timeout=WAIT) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            # TLS 1.3 verifies the client certificate after the client's Finished, so the alert may come
            # with the handshake or on the first read.
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(connect)
                tls.recv(16)
    assert refused.value.reason == "TLSV1_ALERT_UNKNOWN_CA", refused.value
    # The listener is unharmed: the right certificate still gets in.
    TlsDevice(mqtts_shoal, pki, "after-rogue", cert=pki.device).close()


def test_disabled_or_unknown_certificate_devices_get_not_authorized(mqtts_shoal, pki):
    off = TlsDevice(mqtts_shoal, pki, "off-311", cert=pki.disabled)
    assert off.rc == 5, "MQTT 3.1.1: not authorized"
    off.close()
    off5 = TlsDevice(mqtts_shoal, pki, "off-5", cert=pki.disabled, v5=True)
    assert off5.rc == 0x87, "MQTT 5: not authorized"
    off5.close()
    # Signed by the trusted CA, but no device has this subject DN.
    nobody = TlsDevice(mqtts_shoal, pki, "nobody", cert=pki.unknown)
    assert nobody.rc == 5
    nobody.close()
    # The certificate decides, whatever the username says.
    claims = TlsDevice(mqtts_shoal, pki, "claims", cert=pki.disabled, username="dev-pw@acme", password="s3cret")
    assert claims.rc == 5, "a password does not override a refused certificate"
    claims.close()


def test_a_disabled_tenant_refuses_its_certificate_devices(mqtts_shoal, pki):
    tenant = {"enabled": False, "trusted-ca": [
        {"subject-dn": "CN=Acme Device CA,O=Acme", "public-key": pki.device_ca_public_key()}]}
    assert http(mqtts_shoal, "PUT", "/v1/tenants/acme", tenant) == 204
    dev = TlsDevice(mqtts_shoal, pki, "tenant-off", cert=pki.device)
    assert dev.rc == 5
    dev.close()

