"""Bad input closes only the offending connection; the router keeps serving others."""

import socket
import struct

import pytest

from amqp_raw import (
    AMQP_HEADER, ATTACH, CLOSE, FALSE, SASL_HEADER, RawConnection, close_condition, frame,
    performative, string, uint,
)

SUPPORTED_HEADERS = (AMQP_HEADER, SASL_HEADER)
FRAMING_ERROR = "amqp:connection:framing-error"


@pytest.fixture
def raw(shoal):
    conns = []

    def open_raw():
        host, port = shoal.host_port
        conns.append(RawConnection(host, port))
        return conns[-1]

    yield open_raw
    for c in conns:
        c.close()


def assert_good_client_works(shoal, amqp, address):
    assert shoal.alive(), "shoal died after bad input"
    rcv = amqp.receiver(amqp.connect(shoal.url), address, credit=1, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), address)
    assert amqp.wait_settled(amqp.send(snd, "still alive")) == ["accepted"]
    assert rcv.inbox.bodies == ["still alive"]


def test_garbage_gets_protocol_header_then_close(shoal, amqp, raw):
    conn = raw()
    conn.send(b"GET / HTTP/1.1\r\nHost: shoal\r\n\r\n")
    reply = conn.read_until_eof()

    assert conn.eof, f"server kept the connection open after garbage (sent {reply!r})"
    # The header may be followed by an open+close explaining the error (Proton does that).
    assert reply[:8] in SUPPORTED_HEADERS, f"expected a protocol header first, got {reply!r}"
    assert_good_client_works(shoal, amqp, "after-garbage")


def test_wrong_protocol_version_gets_supported_header_then_close(shoal, amqp, raw):
    conn = raw()
    conn.send(b"AMQP\x05\x01\x00\x00")
    reply = conn.read_until_eof()

    assert conn.eof, "server kept the connection open after a wrong protocol header"
    assert reply[:8] in SUPPORTED_HEADERS, f"expected the server's supported header, got {reply!r}"
    assert_good_client_works(shoal, amqp, "after-wrong-header")


def test_oversized_frame_after_open_gets_framing_error(shoal, amqp, raw):
    conn = raw()
    server_open = conn.handshake()
    max_frame = server_open[2] if len(server_open) > 2 and server_open[2] is not None else 0xFFFFFFFF
    assert max_frame < 0xFFFFFFFF, "server advertises an unbounded max-frame-size; cannot send an oversized frame"

    # Only the header: a server must refuse on the declared size, not buffer it.
    conn.send(struct.pack(">IBBH", max_frame + 1, 2, 0, 0) + b"\x00" * 64)
    close = conn.read_performative(CLOSE)

    assert close_condition(close) == FRAMING_ERROR, f"close frame was {close!r}"
    conn.read_until_eof()
    assert conn.eof, "connection still open after the framing-error close"
    assert_good_client_works(shoal, amqp, "after-oversized")


def test_frame_size_below_minimum_gets_framing_error(shoal, amqp, raw):
    conn = raw()
    conn.handshake()
    conn.send(struct.pack(">I", 4))  # a frame can never be shorter than its 8-byte header

    close = conn.read_performative(CLOSE)
    assert close_condition(close) == FRAMING_ERROR, f"close frame was {close!r}"
    assert_good_client_works(shoal, amqp, "after-tiny-frame")


def test_truncated_frame_then_eof_closes_only_that_connection(shoal, amqp, raw):
    conn = raw()
    conn.handshake()
    conn.send(struct.pack(">IBBH", 200, 2, 0, 0) + b"\x00\x53\x11")  # 200 declared, 11 sent
    conn.sock.shutdown(socket.SHUT_WR)

    conn.read_until_eof()
    assert conn.eof, "server kept a half-closed connection with a truncated frame open"
    assert_good_client_works(shoal, amqp, "after-truncated")


def test_attach_without_begin_is_a_connection_error(shoal, amqp, raw):
    conn = raw()
    conn.handshake()
    # attach on channel 3, which no begin ever mapped: a state-machine violation.
    conn.send(frame(performative(ATTACH, string("rogue"), uint(0), FALSE), channel=3))

    close = conn.read_performative(CLOSE)
    condition = close_condition(close)
    assert condition and condition.startswith("amqp:"), f"close without an AMQP error condition: {close!r}"
    assert_good_client_works(shoal, amqp, "after-rogue-attach")
