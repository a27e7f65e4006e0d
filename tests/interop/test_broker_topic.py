"""Broker topics through shoal standalone with Proton clients: fan-out, durable
subscriptions (container-id + link name) across detach and restart, shared
subscriptions, and subscriptions declared in a manifest."""

from proton import Data, symbol
from proton.reactor import DurableSubscription, ReceiverOption

from test_broker_queue import restart

CLIENT_ID = "audit-client"
SUB_NAME = "audit"


class Shared(ReceiverOption):
    """The `shared` source capability: receivers with the same subscription name
    compete on one subscription instead of each getting its own."""

    def apply(self, receiver):
        caps = receiver.source.capabilities
        caps.put_array(False, Data.SYMBOL)  # as JMS clients send it: an array of symbols
        caps.enter()
        caps.put_symbol(symbol("shared"))
        caps.exit()


def topic_shoal(shoal_factory, manifests, data_dir=None, with_subscription=False):
    addresses = [("news", "news", "topic")]
    if with_subscription:
        addresses.append(("news-audit", "news-audit", "subscription", {"topic": "news"}))
    folder = manifests(*addresses)
    return shoal_factory("-f", folder, data_dir=data_dir), folder


def publish(amqp, snd, bodies):
    outcomes = amqp.wait_settled([amqp.send(snd, b, durable=True) for b in bodies])
    assert outcomes == ["accepted"] * len(bodies), f"publishing {bodies}: {outcomes}"


def test_topic_fans_out_to_every_receiver(shoal_factory, manifests, amqp):
    shoal, _ = topic_shoal(shoal_factory, manifests)
    r1 = amqp.receiver(amqp.connect(shoal.url), "news", credit=20, accept=True)
    r2 = amqp.receiver(amqp.connect(shoal.url), "news", credit=20, accept=True)
    snd = amqp.sender(amqp.connect(shoal.url), "news")

    bodies = [f"headline-{i}" for i in range(10)]
    publish(amqp, snd, bodies)
    amqp.wait_messages(r1, 10)
    amqp.wait_messages(r2, 10)
    assert r1.inbox.bodies == bodies
    assert r2.inbox.bodies == bodies


def test_non_durable_subscriber_gets_nothing_published_while_detached(shoal_factory, manifests, amqp):
    shoal, _ = topic_shoal(shoal_factory, manifests)
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    conn = amqp.connect(shoal.url)
    rcv = amqp.receiver(conn, "news", credit=10, accept=True, name="plain")
    publish(amqp, snd, ["before"])
    amqp.wait_messages(rcv, 1)
    rcv.close()  # a plain subscriber's queue goes away with its link
    amqp.wait(lambda: rcv.state & rcv.REMOTE_CLOSED, what="plain subscriber to detach")

    publish(amqp, snd, ["while-away"])
    back = amqp.receiver(conn, "news", credit=0, accept=True, name="plain")
    assert amqp.drain(back, credit=10) == [], "a non-durable subscription outlived its link"


def test_durable_subscription_survives_detach_and_restart(shoal_factory, manifests, amqp, tmp_path):
    data = tmp_path / "data"
    shoal, folder = topic_shoal(shoal_factory, manifests, data_dir=data)
    sub_conn = amqp.connect(shoal.url, container_id=CLIENT_ID)
    sub = amqp.receiver(sub_conn, "news", credit=10, accept=True, name=SUB_NAME, options=[DurableSubscription()])
    snd = amqp.sender(amqp.connect(shoal.url), "news")

    publish(amqp, snd, ["n1", "n2"])
    amqp.wait_messages(sub, 2)
    assert sub.inbox.bodies == ["n1", "n2"]

    # Detach (not close): the subscription stays and keeps collecting.
    amqp.detach(sub)
    publish(amqp, snd, ["n3", "n4"])

    shoal = restart(shoal_factory, shoal, data, "-f", folder)
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    publish(amqp, snd, ["n5"])

    back_conn = amqp.connect(shoal.url, container_id=CLIENT_ID)
    back = amqp.receiver(back_conn, "news", credit=0, accept=True, name=SUB_NAME, options=[DurableSubscription()])
    got = [m.body for m in amqp.drain(back, credit=20)]
    assert got == ["n3", "n4", "n5"], f"durable subscription after detach and restart: {got}"


def test_closing_a_durable_subscription_unsubscribes(shoal_factory, manifests, amqp):
    """Detach keeps a durable subscription; close (detach with closed=true, as a JMS unsubscribe does)
    ends it, messages and all."""
    shoal, _ = topic_shoal(shoal_factory, manifests)
    conn = amqp.connect(shoal.url, container_id=CLIENT_ID)
    sub = amqp.receiver(conn, "news", credit=10, accept=True, name=SUB_NAME, options=[DurableSubscription()])
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    amqp.detach(sub)
    publish(amqp, snd, ["kept"])

    again = amqp.receiver(conn, "news", credit=0, name=SUB_NAME, options=[DurableSubscription()])
    assert [m.body for m in amqp.drain(again, credit=10)] == ["kept"], "a detach must not unsubscribe"
    again.close()
    amqp.wait(lambda: again.state & again.REMOTE_CLOSED, what="the close to be answered")
    publish(amqp, snd, ["after-unsubscribe"])

    fresh = amqp.receiver(conn, "news", credit=0, name=SUB_NAME, options=[DurableSubscription()])
    assert amqp.drain(fresh, credit=10) == [], "the closed subscription kept collecting"


def test_durable_subscription_is_per_container_id(shoal_factory, manifests, amqp):
    shoal, _ = topic_shoal(shoal_factory, manifests)
    mine = amqp.receiver(
        amqp.connect(shoal.url, container_id=CLIENT_ID), "news", credit=10, accept=True,
        name=SUB_NAME, options=[DurableSubscription()],
    )
    amqp.detach(mine)
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    publish(amqp, snd, ["for-audit-client"])

    # Same link name, another container: a different subscription, created now.
    other = amqp.receiver(
        amqp.connect(shoal.url, container_id="someone-else"), "news", credit=0, accept=True,
        name=SUB_NAME, options=[DurableSubscription()],
    )
    assert amqp.drain(other, credit=10) == [], "another container-id saw this client's subscription"


def test_shared_durable_subscription_consumers_compete(shoal_factory, manifests, amqp):
    shoal, _ = topic_shoal(shoal_factory, manifests)
    opts = [DurableSubscription(), Shared()]
    r1 = amqp.receiver(amqp.connect(shoal.url, container_id=CLIENT_ID), "news", credit=15,
                       accept=True, name="shared-sub", options=opts)
    r2 = amqp.receiver(amqp.connect(shoal.url, container_id=CLIENT_ID), "news", credit=15,
                       accept=True, name="shared-sub", options=opts)
    snd = amqp.sender(amqp.connect(shoal.url), "news")

    bodies = [f"s-{i}" for i in range(20)]
    publish(amqp, snd, bodies)
    amqp.wait(lambda: len(r1.inbox.items) + len(r2.inbox.items) >= 20, what="20 messages across the shared subscription")
    got1, got2 = r1.inbox.bodies, r2.inbox.bodies
    assert got1 and got2, f"a shared subscriber was starved: {len(got1)} / {len(got2)}"
    assert sorted(got1 + got2) == sorted(bodies), "each message once across the shared subscription"


def test_declared_subscription_collects_from_its_topic(shoal_factory, manifests, amqp):
    shoal, _ = topic_shoal(shoal_factory, manifests, with_subscription=True)
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    # Nobody listens on `news`, yet the declared subscription stores every message.
    publish(amqp, snd, ["d1", "d2", "d3"])

    rcv = amqp.receiver(amqp.connect(shoal.url), "news-audit", credit=0, accept=True)
    assert [m.body for m in amqp.drain(rcv, credit=10)] == ["d1", "d2", "d3"]
    again = amqp.receiver(amqp.connect(shoal.url), "news-audit", credit=0, accept=True)
    assert amqp.drain(again, credit=10) == [], "the subscription is a queue: consumed messages are gone"


def test_declared_subscription_survives_restart(shoal_factory, manifests, amqp, tmp_path):
    data = tmp_path / "data"
    shoal, folder = topic_shoal(shoal_factory, manifests, data_dir=data, with_subscription=True)
    snd = amqp.sender(amqp.connect(shoal.url), "news")
    publish(amqp, snd, ["r1", "r2"])

    shoal = restart(shoal_factory, shoal, data, "-f", folder)
    rcv = amqp.receiver(amqp.connect(shoal.url), "news-audit", credit=0, accept=True)
    assert [m.body for m in amqp.drain(rcv, credit=10)] == ["r1", "r2"]
