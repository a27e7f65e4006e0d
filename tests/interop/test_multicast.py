"""Multicast addresses: a copy to every receiver, aggregated outcomes at the sender."""

import pytest
from proton import Condition, Delivery

from amqp_client import settle


@pytest.fixture
def mshoal(shoal_factory, manifest):
    """shoal with `news` declared multicast through a startup manifest (-f)."""
    return shoal_factory("-f", manifest("news", "news", "multicast"))


def two_receivers_and_sender(amqp, shoal, address, accept):
    r1 = amqp.receiver(amqp.connect(shoal.url), address, credit=20, accept=accept)
    r2 = amqp.receiver(amqp.connect(shoal.url), address, credit=20, accept=accept)
    snd = amqp.sender(amqp.connect(shoal.url), address)
    return r1, r2, snd


def test_multicast_copy_to_both_receivers(mshoal, amqp):
    r1, r2, snd = two_receivers_and_sender(amqp, mshoal, "news", accept=True)

    bodies = [f"headline-{i}" for i in range(5)]
    outcomes = amqp.wait_settled(amqp.send_many(snd, bodies))
    amqp.wait_messages(r1, 5)
    amqp.wait_messages(r2, 5)

    assert outcomes == ["accepted"] * 5
    assert r1.inbox.bodies == bodies
    assert r2.inbox.bodies == bodies


def _one_delivery_with(amqp, shoal, first_state, second_state):
    r1, r2, snd = two_receivers_and_sender(amqp, shoal, "news", accept=False)
    dlv = amqp.send(snd, "vote")
    amqp.wait_messages(r1, 1)
    amqp.wait_messages(r2, 1)
    for rcv, state in ((r1, first_state), (r2, second_state)):
        cond = Condition("app:no", "refused by test") if state == Delivery.REJECTED else None
        settle(rcv.inbox.items[0][1], state, condition=cond)
    return amqp.wait_settled(dlv)[0], dlv


def test_multicast_aggregate_accepted_when_one_accepts_other_releases(mshoal, amqp):
    result, _ = _one_delivery_with(amqp, mshoal, Delivery.ACCEPTED, Delivery.RELEASED)
    assert result == "accepted"


def test_multicast_aggregate_rejected_when_any_rejects(mshoal, amqp):
    result, dlv = _one_delivery_with(amqp, mshoal, Delivery.ACCEPTED, Delivery.REJECTED)
    assert result == "rejected"
    assert dlv.remote.condition is not None and dlv.remote.condition.name == "app:no"


def test_multicast_aggregate_released_when_none_received(mshoal, amqp):
    result, _ = _one_delivery_with(amqp, mshoal, Delivery.RELEASED, Delivery.RELEASED)
    assert result == "released"


def test_multicast_presettled_reaches_both(mshoal, amqp):
    r1 = amqp.receiver(amqp.connect(mshoal.url), "news", credit=10)
    r2 = amqp.receiver(amqp.connect(mshoal.url), "news", credit=10)
    snd = amqp.sender(amqp.connect(mshoal.url), "news", presettled=True)
    for i in range(3):
        amqp.send(snd, f"p{i}").settle()

    assert amqp.wait_messages(r1, 3) and r1.inbox.bodies == ["p0", "p1", "p2"]
    assert amqp.wait_messages(r2, 3) and r2.inbox.bodies == ["p0", "p1", "p2"]


def test_multicast_sender_gets_no_credit_without_receivers(mshoal, amqp):
    snd = amqp.sender(amqp.connect(mshoal.url), "news")
    amqp.pump(1.0)  # nothing to await: credit must NOT arrive
    assert snd.credit == 0, f"multicast sender got {snd.credit} credit with no receivers"

    amqp.receiver(amqp.connect(mshoal.url), "news", credit=5, accept=True)
    amqp.wait(lambda: snd.credit > 0, what="credit after a receiver attached")
