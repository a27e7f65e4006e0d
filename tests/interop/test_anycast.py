"""Anycast routing through shoal with Qpid Proton clients: outcomes, balancing, credit."""

from proton import Condition, Delivery

from amqp_client import settle
from test_admin import metric, scrape


def router_holds_nothing_unsettled(shoal):
    """The router forgot every delivery once its outcome went back (no leak that would stall SIGTERM's drain)."""
    return metric(scrape(shoal), "shoal_unsettled_deliveries") == 0


def test_anycast_send_receive_sender_sees_accepted(shoal, amqp):
    conn_r = amqp.connect(shoal.url)
    conn_s = amqp.connect(shoal.url)
    rcv = amqp.receiver(conn_r, "orders", credit=10, accept=True)
    snd = amqp.sender(conn_s, "orders")

    deliveries = amqp.send_many(snd, [f"order-{i}" for i in range(5)])
    outcomes = amqp.wait_settled(deliveries)

    assert outcomes == ["accepted"] * 5
    assert rcv.inbox.bodies == [f"order-{i}" for i in range(5)]


def test_anycast_balanced_across_two_receivers_exactly_once(shoal, amqp):
    conn = amqp.connect(shoal.url)
    r1 = amqp.receiver(amqp.connect(shoal.url), "work", credit=50, accept=True)
    r2 = amqp.receiver(amqp.connect(shoal.url), "work", credit=50, accept=True)
    snd = amqp.sender(conn, "work")

    bodies = [f"job-{i}" for i in range(40)]
    outcomes = amqp.wait_settled(amqp.send_many(snd, bodies))

    assert outcomes == ["accepted"] * 40
    got1, got2 = r1.inbox.bodies, r2.inbox.bodies
    assert got1 and got2, f"balanced distribution starved a receiver: {len(got1)} / {len(got2)}"
    assert sorted(got1 + got2) == sorted(bodies), "every message exactly once across both receivers"


def test_no_credit_without_consumer(shoal, amqp):
    conn = amqp.connect(shoal.url)
    snd = amqp.sender(conn, "lonely")

    # Nothing to await here: we assert that credit does NOT arrive for a while.
    amqp.pump(1.0)
    assert snd.credit == 0, f"sender got {snd.credit} credit with no receiver attached"

    rcv = amqp.receiver(amqp.connect(shoal.url), "lonely", credit=10, accept=True)
    amqp.wait(lambda: snd.credit > 0, what="sender credit after a receiver attached")
    assert amqp.wait_settled(amqp.send(snd, "hello")) == ["accepted"]
    assert rcv.inbox.bodies == ["hello"]


def test_rejected_outcome_carries_receiver_error_to_sender(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "rej", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "rej")

    dlv = amqp.send(snd, "bad payload")
    amqp.wait_messages(rcv, 1)
    _, incoming = rcv.inbox.items[0]
    settle(incoming, Delivery.REJECTED, condition=Condition("app:invalid-order", "order id missing"))

    assert amqp.wait_settled(dlv) == ["rejected"]
    cond = dlv.remote.condition
    assert cond is not None, "rejected outcome arrived without the receiver's error"
    assert cond.name == "app:invalid-order"
    assert cond.description == "order id missing"


def test_released_outcome_reaches_sender(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "rel", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "rel")

    dlv = amqp.send(snd, "not now")
    amqp.wait_messages(rcv, 1)
    settle(rcv.inbox.items[0][1], Delivery.RELEASED)

    assert amqp.wait_settled(dlv) == ["released"]
    assert router_holds_nothing_unsettled(shoal)


def test_modified_outcome_reaches_sender(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "mod", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "mod")

    dlv = amqp.send(snd, "try elsewhere")
    amqp.wait_messages(rcv, 1)
    settle(rcv.inbox.items[0][1], Delivery.MODIFIED, failed=True, undeliverable=True)

    assert amqp.wait_settled(dlv) == ["modified"]
    assert dlv.remote.failed is True
    assert dlv.remote.undeliverable is True


def test_presettled_delivery_arrives_presettled(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "fire", credit=10)
    snd = amqp.sender(amqp.connect(shoal.url), "fire", presettled=True)

    for i in range(3):
        dlv = amqp.send(snd, f"f{i}")
        dlv.settle()
    amqp.wait_messages(rcv, 3)

    assert rcv.inbox.bodies == ["f0", "f1", "f2"]
    assert all(d.settled for _, d in rcv.inbox.items), "router must forward presettled deliveries presettled"


def test_receiver_detach_with_unsettled_releases_to_sender(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "flaky", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "flaky")

    deliveries = amqp.send_many(snd, ["a", "b"])
    amqp.wait_messages(rcv, 2)
    rcv.close()  # never settles what it got

    assert amqp.wait_settled(deliveries) == ["released", "released"]
    assert router_holds_nothing_unsettled(shoal)


def test_receiver_disconnect_with_unsettled_releases_to_sender(shoal, amqp):
    conn_r = amqp.connect(shoal.url)
    rcv = amqp.receiver(conn_r, "flaky2", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "flaky2")

    dlv = amqp.send(snd, "lost?")
    amqp.wait_messages(rcv, 1)
    # Drop the TCP connection without any AMQP close.
    conn_r.transport.close_tail()
    conn_r.transport.close_head()

    assert amqp.wait_settled(dlv) == ["released"]


def test_released_delivery_is_redelivered_by_sender_to_other_receiver(shoal, amqp):
    """After one receiver goes away, the next attached receiver gets new traffic."""
    r1 = amqp.receiver(amqp.connect(shoal.url), "handover", credit=1)
    snd = amqp.sender(amqp.connect(shoal.url), "handover")
    first = amqp.send(snd, "one")
    amqp.wait_messages(r1, 1)
    r1.close()
    assert amqp.wait_settled(first) == ["released"]

    r2 = amqp.receiver(amqp.connect(shoal.url), "handover", credit=5, accept=True)
    again = amqp.send(snd, "one")
    assert amqp.wait_settled(again) == ["accepted"]
    assert r2.inbox.bodies == ["one"]
