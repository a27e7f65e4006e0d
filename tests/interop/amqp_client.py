"""A small synchronous AMQP client harness on top of Qpid Proton's reactor.

Proton's own `BlockingConnection` owns one container per connection, so a test
that holds a sender on one connection and a receiver on another would deadlock
waiting for a settlement that needs the other container to run. This harness
drives every connection of a test from ONE container: `Harness.wait(cond)`
processes events for all of them until the condition holds or the timeout
expires. Nothing here sleeps: waiting is always "process events until X".
"""

import time

from proton import Delivery, Endpoint, Handler, Message, SSLDomain
from proton.reactor import AtMostOnce, Container, DynamicNodeProperties

DEFAULT_TIMEOUT = 10.0

# Delivery outcome names, for readable assertion messages.
OUTCOME = {
    0: "none",
    Delivery.RECEIVED: "received",
    Delivery.ACCEPTED: "accepted",
    Delivery.REJECTED: "rejected",
    Delivery.RELEASED: "released",
    Delivery.MODIFIED: "modified",
}


class WaitTimeout(AssertionError):
    pass


def outcome(delivery):
    return OUTCOME.get(delivery.remote_state, str(delivery.remote_state))


def _mark_remote_detach(link):
    # A detach that does not close (closed=false) leaves Proton's endpoint state as it
    # was, so remember it for `Harness.detach`.
    link.remote_detached = True


class LinkEvents(Handler):
    """Link-level handler for links the harness creates: notes a peer's detach (link
    events go to the link's handler, not the container's)."""

    def on_link_remote_detach(self, event):
        _mark_remote_detach(event.link)


class Inbox(LinkEvents):
    """Per-receiver handler: decodes complete incoming messages into a list.

    With `accept=True` each message is accepted and settled as it arrives;
    otherwise the test decides each delivery's outcome.
    """

    def __init__(self, accept=False):
        super().__init__()
        self.accept = accept
        self.items = []  # (Message, Delivery)

    def on_delivery(self, event):
        dlv = event.delivery
        link = event.link
        if not dlv.readable or dlv.partial:
            return
        body = link.recv(dlv.pending)
        link.advance()
        msg = Message()
        msg.decode(body)
        self.items.append((msg, dlv))
        if self.accept and not dlv.settled:
            dlv.update(Delivery.ACCEPTED)
            dlv.settle()

    @property
    def messages(self):
        return [m for m, _ in self.items]

    @property
    def bodies(self):
        return [m.body for m, _ in self.items]


class _Global(Handler):
    """Container-wide handler: mirrors remote closes and records errors."""

    def __init__(self, harness):
        super().__init__()
        self.harness = harness

    def on_connection_remote_close(self, event):
        conn = event.connection
        if conn.remote_condition:
            self.harness.errors.append(("connection", conn.remote_condition))
        if conn.state & Endpoint.LOCAL_ACTIVE:
            conn.close()

    def on_link_remote_close(self, event):
        link = event.link
        if link.remote_condition:
            self.harness.errors.append(("link", link.remote_condition))
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()

    def on_link_remote_detach(self, event):
        _mark_remote_detach(event.link)

    def on_session_remote_close(self, event):
        ssn = event.session
        if ssn.state & Endpoint.LOCAL_ACTIVE:
            ssn.close()

    def on_transport_error(self, event):
        self.harness.errors.append(("transport", event.transport.condition))

    def on_transport_closed(self, event):
        if event.connection is not None:
            event.connection.transport_gone = True


class Harness:
    """One reactor driving many client connections, synchronously."""

    def __init__(self, timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.errors = []
        self.container = Container(_Global(self))
        self.container.timeout = 0.2
        self.container.start()
        # The reactor winds itself down once it has no I/O and no timers (e.g.
        # after a refused connection); a far-off timer keeps it serving later
        # connections of the same test.
        self._keepalive = self.container.schedule(24 * 3600, Handler())
        self.connections = []

    # -- event loop -------------------------------------------------------
    def wait(self, cond, timeout=None, what="condition"):
        """Process events until `cond()` is true; fail after `timeout` s."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not cond():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = what() if callable(what) else what
                raise WaitTimeout(f"timed out waiting for {what}; errors so far: {self.describe_errors()}")
            self.container.timeout = min(remaining, 0.5)
            self.container.process()

    def pump(self, seconds):
        """Process events for a fixed time. Only for asserting that something
        does NOT happen (e.g. credit stays 0); there is no event to await."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.container.timeout = max(0.01, min(deadline - time.monotonic(), 0.2))
            self.container.process()

    def describe_errors(self):
        return "; ".join(f"{kind}: {c.name} {c.description}" for kind, c in self.errors if c) or "none"

    # -- endpoints --------------------------------------------------------
    def connect(self, url, wait_open=True, container_id=None, **kwargs):
        """`container_id`: the connection's container-id (a durable subscription is
        identified by it and the link name); by default the harness's own."""
        if container_id is not None:
            # Proton takes the id from the container when it opens the connection.
            default_id, self.container.container_id = self.container.container_id, container_id
            try:
                conn = self.container.connect(url=url, reconnect=False, **kwargs)
            finally:
                self.container.container_id = default_id
        else:
            conn = self.container.connect(url=url, reconnect=False, **kwargs)
        self.connections.append(conn)
        if wait_open:
            self.wait(
                lambda: conn.state & Endpoint.REMOTE_ACTIVE or conn.state & Endpoint.REMOTE_CLOSED or _transport_closed(conn),
                what=f"connection to {url} to open",
            )
            if not conn.state & Endpoint.REMOTE_ACTIVE:
                raise ConnectionError(f"connection to {url} refused: {self.describe_errors()}")
        return conn

    def sender(self, conn, address, presettled=False, name=None, wait_open=True):
        options = [AtMostOnce()] if presettled else None
        snd = self.container.create_sender(conn, address, name=name, options=options, handler=LinkEvents())
        if wait_open:
            self.wait_link_open(snd)
        return snd

    def receiver(
        self, conn, address, credit=10, accept=False, dynamic=False, name=None, wait_open=True, options=None
    ):
        """`options`: further Proton link options (`DurableSubscription()`, `Copy()`...)."""
        inbox = Inbox(accept=accept)
        options = ([DynamicNodeProperties({})] if dynamic else []) + list(options or [])
        rcv = self.container.create_receiver(
            conn, None if dynamic else address, name=name, dynamic=dynamic, handler=inbox, options=options
        )
        rcv.inbox = inbox
        if credit:
            rcv.flow(credit)
        if wait_open:
            self.wait_link_open(rcv)
        return rcv

    def detach(self, link):
        """Detach `link` without closing it (a durable subscription stays) and wait for
        the peer's detach."""
        link.detach()
        self.wait(
            lambda: getattr(link, "remote_detached", False) or link.state & Endpoint.REMOTE_CLOSED,
            what=f"the peer to detach link {link.name}",
        )

    def wait_link_open(self, link):
        self.wait(
            lambda: link.state & (Endpoint.REMOTE_ACTIVE | Endpoint.REMOTE_CLOSED),
            what=f"link {link.name} to attach",
        )
        if link.state & Endpoint.REMOTE_CLOSED:
            raise ConnectionError(f"link {link.name} refused: {link.remote_condition}")

    # -- messaging --------------------------------------------------------
    def send(self, snd, body, wait_credit=True, **props):
        """Send one message (does not wait for the outcome)."""
        if wait_credit:
            self.wait(lambda: snd.credit > 0, what=f"credit on sender {snd.name}")
        msg = Message(body=body, **props)
        return snd.send(msg)

    def send_many(self, snd, bodies, **props):
        return [self.send(snd, b, **props) for b in bodies]

    def wait_settled(self, deliveries, timeout=None):
        """Wait until the peer settled (or gave a terminal outcome to) each delivery."""
        if isinstance(deliveries, Delivery):
            deliveries = [deliveries]
        self.wait(
            lambda: all(d.remote_state or d.settled for d in deliveries),
            timeout=timeout,
            what=f"outcomes for {len(deliveries)} deliveries",
        )
        return [outcome(d) for d in deliveries]

    def wait_messages(self, rcv, n, timeout=None):
        self.wait(lambda: len(rcv.inbox.items) >= n, timeout=timeout, what=f"{n} messages on {rcv.name}")
        return rcv.inbox.messages

    def drain(self, rcv, credit=100, timeout=None):
        """Ask for everything the source holds (drain mode) and wait until the peer
        says it has nothing more: it then uses up the credit and reports it. Returns
        all messages received on the link so far."""
        self.wait_drained(rcv, credit, timeout)
        return rcv.inbox.messages

    def wait_drained(self, rcv, credit=100, timeout=None):
        rcv.drain(credit)
        # Credit reaches 0 through deliveries or through the peer's drain reply;
        # either way nothing more is queued for this link at that point.
        self.wait(lambda: rcv.credit == 0, timeout=timeout, what=f"drain of {rcv.name} to complete")

    def drain_all(self, rcv, batch=500, timeout=None):
        """Drain in rounds until a round brings nothing: for sources holding more than
        one round of credit. Returns all messages received on the link."""
        while True:
            before = len(rcv.inbox.items)
            self.wait_drained(rcv, batch, timeout)
            if len(rcv.inbox.items) == before:
                return rcv.inbox.messages

    def close(self):
        for conn in self.connections:
            if conn.state & Endpoint.LOCAL_ACTIVE:
                conn.close()
        try:
            self.wait(
                lambda: all(_transport_closed(c) or c.state & Endpoint.REMOTE_CLOSED for c in self.connections),
                timeout=3,
                what="connections to close",
            )
        except WaitTimeout:
            pass
        self._keepalive.cancel()
        self.container.stop()


def _transport_closed(conn):
    return getattr(conn, "transport_gone", False)


def settle(delivery, state, condition=None, failed=None, undeliverable=None):
    if condition is not None:
        delivery.local.condition = condition
    if failed is not None:
        delivery.local.failed = failed
    if undeliverable is not None:
        delivery.local.undeliverable = undeliverable
    delivery.update(state)
    delivery.settle()


def client_ssl_domain(ca_pem):
    """A client TLS domain that trusts exactly `ca_pem` and verifies the peer."""
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(str(ca_pem))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER, str(ca_pem))
    return domain
