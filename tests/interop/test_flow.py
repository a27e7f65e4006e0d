"""Credit and flow control through the router: capacity, backpressure, drops."""

from proton import Delivery

from amqp_client import settle
from test_admin import metric, scrape


def test_link_capacity_bounds_sender_credit(shoal_factory, amqp):
    shoal = shoal_factory("--link-capacity", "5")
    amqp.receiver(amqp.connect(shoal.url), "capped", credit=100, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "capped")

    amqp.wait(lambda: snd.credit > 0, what="credit for the sender")
    assert snd.credit <= 5, f"sender got {snd.credit} credit with --link-capacity 5"


def test_balanced_skips_receiver_without_credit(shoal, amqp):
    idle = amqp.receiver(amqp.connect(shoal.url), "credit-aware", credit=0)
    busy = amqp.receiver(amqp.connect(shoal.url), "credit-aware", credit=20, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "credit-aware")

    outcomes = amqp.wait_settled(amqp.send_many(snd, [f"m{i}" for i in range(10)]))

    assert outcomes == ["accepted"] * 10
    assert busy.inbox.bodies == [f"m{i}" for i in range(10)]
    assert idle.inbox.items == []


def test_receiver_credit_backpressure_then_resume(shoal, amqp):
    rcv = amqp.receiver(amqp.connect(shoal.url), "slow", credit=2)
    snd = amqp.sender(amqp.connect(shoal.url), "slow")

    deliveries = amqp.send_many(snd, [f"s{i}" for i in range(6)])
    amqp.wait_messages(rcv, 2)
    amqp.pump(0.5)  # nothing to await: the router must not exceed the receiver's credit
    assert len(rcv.inbox.items) == 2, f"receiver with 2 credit got {len(rcv.inbox.items)} messages"

    for _, dlv in rcv.inbox.items:
        settle(dlv, Delivery.ACCEPTED)
    rcv.inbox.accept = True  # accept the rest as they arrive
    rcv.flow(10)
    amqp.wait_messages(rcv, 6)

    assert amqp.wait_settled(deliveries) == ["accepted"] * 6
    assert rcv.inbox.bodies == [f"s{i}" for i in range(6)], "anycast from one sender keeps order"


def test_a_senders_credit_is_taken_back_when_its_last_receiver_leaves(shoal, amqp):
    rcv_conn = amqp.connect(shoal.url)
    rcv = amqp.receiver(rcv_conn, "void", credit=5)
    snd = amqp.sender(amqp.connect(shoal.url), "void", presettled=True)
    amqp.wait(lambda: snd.credit >= 3, what="credit for the presettled sender")

    rcv.close()
    # No consumer, no credit: the router sends a flow with credit 0, and Proton stops sending.
    amqp.wait(lambda: snd.credit == 0, what="the sender's credit taken back")
    again = amqp.receiver(amqp.connect(shoal.url), "void", credit=5)
    amqp.wait(lambda: snd.credit > 0, what="credit again once a receiver is back")
    amqp.send(snd, "found").settle()
    assert amqp.wait_messages(again, 1)[0].body == "found"


def test_presettled_without_receiver_is_dropped_and_counted(shoal, amqp):
    # An anonymous sender holds credit whatever its messages' addresses: presettled ones for an address
    # with no consumer are dropped and counted.
    snd = amqp.sender(amqp.connect(shoal.url), None, presettled=True)
    for i in range(3):
        amqp.send(snd, f"lost-{i}", address="void").settle()

    amqp.wait(
        lambda: metric(scrape(shoal), "shoal_deliveries_dropped_total", address="void") >= 3,
        timeout=5,
        what='shoal_deliveries_dropped_total{address="void"} >= 3',
    )


def test_closest_distribution_delivers_each_message_once(shoal_factory, manifest, amqp):
    shoal = shoal_factory("-f", manifest("near", "near", "anycast", distribution="closest"))
    r1 = amqp.receiver(amqp.connect(shoal.url), "near", credit=30, accept=True)
    r2 = amqp.receiver(amqp.connect(shoal.url), "near", credit=30, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "near")

    bodies = [f"n{i}" for i in range(20)]
    assert amqp.wait_settled(amqp.send_many(snd, bodies)) == ["accepted"] * 20
    assert sorted(r1.inbox.bodies + r2.inbox.bodies) == sorted(bodies)
