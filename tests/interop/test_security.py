"""SASL (PLAIN / ANONYMOUS with a users file) and TLS on the amqps listener."""

import subprocess

import pytest

from amqp_client import client_ssl_domain

UNAUTHORIZED = "amqp:unauthorized-access"


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  - name: alice\n    password: secret\n")
    return path


def round_trip(amqp, send_conn, recv_conn, address):
    rcv = amqp.receiver(recv_conn, address, credit=1, accept=True)
    snd = amqp.sender(send_conn, address)
    assert amqp.wait_settled(amqp.send(snd, "authenticated")) == ["accepted"]
    assert rcv.inbox.bodies == ["authenticated"]


def plain(user, password):
    return dict(user=user, password=password, allowed_mechs="PLAIN", allow_insecure_mechs=True)


def assert_refused(amqp, url, **kwargs):
    with pytest.raises(ConnectionError):
        amqp.connect(url, **kwargs)
    names = [c.name for _, c in amqp.errors if c]
    assert UNAUTHORIZED in names, f"expected {UNAUTHORIZED}, got {amqp.describe_errors()}"


def test_sasl_plain_good_password_works(shoal_factory, users_file, amqp):
    shoal = shoal_factory("--sasl-users", users_file)
    conn = amqp.connect(shoal.url, **plain("alice", "secret"))
    round_trip(amqp, conn, amqp.connect(shoal.url, **plain("alice", "secret")), "secure")


def test_sasl_plain_bad_password_refused(shoal_factory, users_file, amqp):
    shoal = shoal_factory("--sasl-users", users_file)
    assert_refused(amqp, shoal.url, **plain("alice", "wrong"))


def test_sasl_plain_unknown_user_refused(shoal_factory, users_file, amqp):
    shoal = shoal_factory("--sasl-users", users_file)
    assert_refused(amqp, shoal.url, **plain("mallory", "secret"))


def test_sasl_anonymous_refused_with_users_file(shoal_factory, users_file, amqp):
    shoal = shoal_factory("--sasl-users", users_file)
    assert_refused(amqp, shoal.url, allowed_mechs="ANONYMOUS")
    # ...and the server is still there for a legitimate client.
    amqp.errors.clear()
    amqp.connect(shoal.url, **plain("alice", "secret"))


def test_sasl_anonymous_allowed_with_flag(shoal_factory, users_file, amqp):
    shoal = shoal_factory("--sasl-users", users_file, "--allow-anonymous")
    conn = amqp.connect(shoal.url, allowed_mechs="ANONYMOUS")
    round_trip(amqp, conn, amqp.connect(shoal.url, **plain("alice", "secret")), "mixed")


def make_cert(directory, name):
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_shoal(shoal_factory, tmp_path):
    cert, key = make_cert(tmp_path, "server")
    shoal = shoal_factory("--amqps-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
    assert "amqps" in shoal.addrs, f"no `amqps listening on` line: {shoal.stdout_lines}"
    shoal.cert = cert
    return shoal


def test_tls_amqps_with_verify_peer(tls_shoal, amqp):
    domain = client_ssl_domain(tls_shoal.cert)
    tls_send = amqp.connect(tls_shoal.amqps_url, ssl_domain=domain)
    tls_recv = amqp.connect(tls_shoal.amqps_url, ssl_domain=client_ssl_domain(tls_shoal.cert))
    round_trip(amqp, tls_send, tls_recv, "over-tls")
    # The plain listener keeps working next to the TLS one, and both meet in the router.
    rcv = amqp.receiver(amqp.connect(tls_shoal.url), "mixed-tls", credit=1, accept=True)
    snd = amqp.sender(tls_send, "mixed-tls")
    assert amqp.wait_settled(amqp.send(snd, "x")) == ["accepted"]
    assert rcv.inbox.bodies == ["x"]


def test_tls_untrusted_server_cert_is_refused_by_client(tls_shoal, amqp, tmp_path):
    other_ca, _ = make_cert(tmp_path, "other")
    with pytest.raises(ConnectionError):
        amqp.connect(tls_shoal.amqps_url, ssl_domain=client_ssl_domain(other_ca))
    # A correctly configured client still gets in afterwards.
    amqp.connect(tls_shoal.amqps_url, ssl_domain=client_ssl_domain(tls_shoal.cert))
