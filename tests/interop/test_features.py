"""Anonymous relay, dynamic receivers, drain, pattern addresses and large messages."""

import hashlib
import os
import time

from proton import Delivery

from amqp_client import settle
from test_admin import metric, scrape


def test_anonymous_relay_routes_by_message_to(shoal, amqp):
    ra = amqp.receiver(amqp.connect(shoal.url), "relay/a", credit=5, accept=True)
    rb = amqp.receiver(amqp.connect(shoal.url), "relay/b", credit=5, accept=True)
    relay = amqp.sender(amqp.connect(shoal.url), None)  # null target: anonymous relay

    deliveries = [
        amqp.send(relay, "for-a", address="relay/a"),
        amqp.send(relay, "for-b", address="relay/b"),
        amqp.send(relay, "for-a-again", address="relay/a"),
    ]

    assert amqp.wait_settled(deliveries) == ["accepted"] * 3
    assert ra.inbox.bodies == ["for-a", "for-a-again"]
    assert rb.inbox.bodies == ["for-b"]


def test_dynamic_receiver_request_reply(shoal, amqp):
    client = amqp.connect(shoal.url)
    service = amqp.connect(shoal.url)
    replies = amqp.receiver(client, None, dynamic=True, credit=5, accept=True)
    reply_to = replies.remote_source.address
    assert reply_to, "dynamic source was attached without an address"

    requests = amqp.receiver(service, "rpc/echo", credit=5)
    responder = amqp.sender(service, None)
    requester = amqp.sender(client, "rpc/echo")

    req_dlv = amqp.send(requester, "ping", reply_to=reply_to, correlation_id="req-1")
    amqp.wait_messages(requests, 1)
    request, incoming = requests.inbox.items[0]
    assert request.reply_to == reply_to
    settle(incoming, Delivery.ACCEPTED)
    resp_dlv = amqp.send(responder, "pong", address=request.reply_to, correlation_id=request.correlation_id)

    amqp.wait_messages(replies, 1)
    assert amqp.wait_settled([req_dlv, resp_dlv]) == ["accepted", "accepted"]
    response = replies.inbox.messages[0]
    assert response.body == "pong"
    assert response.correlation_id == "req-1"


def test_two_dynamic_receivers_get_distinct_addresses(shoal, amqp):
    conn = amqp.connect(shoal.url)
    a = amqp.receiver(conn, None, dynamic=True)
    b = amqp.receiver(amqp.connect(shoal.url), None, dynamic=True)
    assert a.remote_source.address and b.remote_source.address
    assert a.remote_source.address != b.remote_source.address


def test_drain_with_nothing_queued_returns_credit_to_zero(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "idle", credit=10)
    assert rcv.credit == 10

    started = time.monotonic()
    rcv.drain(0)
    amqp.wait(lambda: rcv.credit == 0, timeout=3, what="drain to consume the receiver's credit")

    assert time.monotonic() - started < 3
    assert rcv.inbox.items == []


def test_pattern_address_applied_with_shoal_apply_is_multicast(shoal, amqp, manifest):
    result = shoal.apply(manifest("sensors", "sensors/#", "multicast"))
    assert result.returncode == 0, f"shoal apply failed: {result.stdout}\n{result.stderr}"

    r1 = amqp.receiver(amqp.connect(shoal.url), "sensors/room1/temp", credit=5, accept=True)
    r2 = amqp.receiver(amqp.connect(shoal.url), "sensors/room1/temp", credit=5, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "sensors/room1/temp")

    assert amqp.wait_settled(amqp.send(snd, "21.5C")) == ["accepted"]
    amqp.wait_messages(r1, 1)
    amqp.wait_messages(r2, 1)
    assert r1.inbox.bodies == ["21.5C"] and r2.inbox.bodies == ["21.5C"]


def test_ten_mib_message_integrity(shoal, amqp):
    payload = os.urandom(10 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    rcv = amqp.receiver(amqp.connect(shoal.url), "big", credit=1, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "big")

    dlv = amqp.send(snd, payload)
    assert amqp.wait_settled(dlv, timeout=120) == ["accepted"]
    amqp.wait_messages(rcv, 1, timeout=30)

    body = rcv.inbox.bodies[0]
    assert len(body) == len(payload)
    assert hashlib.sha256(bytes(body)).hexdigest() == digest


def test_drain_with_messages_queued_delivers_them_then_zero_credit(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "drain-busy", credit=0)
    snd = amqp.sender(amqp.connect(shoal.url), "drain-busy")
    deliveries = amqp.send_many(snd, ["d0", "d1", "d2"])
    # The transfers and the drain travel on different connections: make sure
    # the router holds the messages before draining, or the drain may win.
    amqp.wait(
        lambda: metric(scrape(shoal), "shoal_deliveries_in_total", address="drain-busy") == 3,
        timeout=5,
        what="the router to take the 3 transfers",
    )

    rcv.inbox.accept = True
    rcv.drain(10)
    amqp.wait(lambda: len(rcv.inbox.items) == 3 and rcv.credit == 0, timeout=5,
              what=lambda: f"3 messages and credit back to 0 after drain(10) "
                           f"(have {len(rcv.inbox.items)} messages, credit {rcv.credit})")

    assert rcv.inbox.bodies == ["d0", "d1", "d2"]
    assert amqp.wait_settled(deliveries) == ["accepted"] * 3
