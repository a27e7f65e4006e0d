"""Crash test: what shoal accepted survives `kill -9`.

Producers (Proton Python, at-least-once: unsettled, durable messages with unique
ids) send to a broker queue; shoal is killed with SIGKILL at random moments and
restarted on the same data directory, where the producers keep sending. At the end
one consumer drains the queue: every id a producer saw ACCEPTED must come back.
Ids that were sent but never confirmed may or may not be there (the crash can fall
between the sync and the disposition); duplicates are counted and printed. Per
producer, what comes back must be in send order.

The CI form is short (20 cycles, 2 producers). The benchmark runs a longer one
(bench/crash.sh) through the same test with environment variables:
SHOAL_CRASH_CYCLES, SHOAL_CRASH_PRODUCERS, SHOAL_CRASH_SEED, and
SHOAL_CRASH_REPORT (a file to write the result to, as JSON).
"""

import json
import os
import random
import time
from collections import Counter

from proton import Delivery, Handler, Message

QUEUE = "crash"
CYCLES = int(os.environ.get("SHOAL_CRASH_CYCLES", "20"))
PRODUCERS = int(os.environ.get("SHOAL_CRASH_PRODUCERS", "2"))
# How long each life of the process lasts before the kill, in seconds (uniform).
LIFE_S = (0.05, 0.6)
# Unsettled messages each producer keeps in flight: many, so kills land mid-batch.
WINDOW = 50


class Producer(Handler):
    """Sends durable messages `P-SEQ` whenever it has credit and window; records
    what the peer accepted. One per producer, reattached each cycle."""

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.seq = 0
        self.sent = []  # ids in send order
        self.accepted = set()
        self.other = Counter()  # outcomes other than accepted
        self.in_flight = {}  # delivery tag -> id
        self.sender = None

    def attach(self, harness, url):
        conn = harness.connect(url, wait_open=False)
        self.in_flight.clear()  # the old connection died with its deliveries
        self.sender = harness.container.create_sender(conn, QUEUE, handler=self)

    def on_link_flow(self, event):
        self.pump(event.link)

    def pump(self, link):
        while link.credit > 0 and len(self.in_flight) < WINDOW:
            msg_id = f"{self.name}-{self.seq}"
            self.seq += 1
            dlv = link.send(Message(id=msg_id, body=msg_id, durable=True))
            self.in_flight[dlv.tag] = msg_id
            self.sent.append(msg_id)

    def on_delivery(self, event):
        dlv = event.delivery
        if not dlv.remote_state and not dlv.settled:
            return
        msg_id = self.in_flight.pop(dlv.tag, None)
        if msg_id is None:
            return
        if dlv.remote_state == Delivery.ACCEPTED:
            self.accepted.add(msg_id)
        else:
            self.other[dlv.remote_state] += 1
        dlv.settle()
        self.pump(dlv.link)


def check_order(received, producers):
    """Ids of each producer that come back out of send order (first few)."""
    problems = []
    for p in producers:
        seqs = [int(i.rsplit("-", 1)[1]) for i in received if i.rsplit("-", 1)[0] == p.name]
        first_seen = list(dict.fromkeys(seqs))  # duplicates aside
        for a, b in zip(first_seen, first_seen[1:]):
            if b < a:
                problems.append(f"{p.name}-{b} after {p.name}-{a}")
    return problems


def test_kill_9_loses_no_accepted_message(shoal_factory, manifest, amqp, tmp_path):
    seed = int(os.environ.get("SHOAL_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    print(f"crash test: seed {seed}, {CYCLES} cycles, {PRODUCERS} producers (SHOAL_CRASH_SEED={seed} repeats it)")
    started = time.monotonic()
    data = tmp_path / "data"
    queue = manifest(QUEUE, QUEUE, "queue")
    producers = [Producer(f"p{i}") for i in range(PRODUCERS)]
    lives = []

    for cycle in range(CYCLES):
        shoal = shoal_factory("-f", queue, data_dir=data, name=f"life{cycle}")
        accepted_before = sum(len(p.accepted) for p in producers)
        for p in producers:
            p.attach(amqp, shoal.url)
        life = rng.uniform(*LIFE_S)
        amqp.pump(life)  # the random moment of the crash is the point: no event to await
        shoal.kill()
        lives.append((round(life, 3), sum(len(p.accepted) for p in producers) - accepted_before))

    # The crashes break connections; those errors are expected, not failures.
    amqp.errors.clear()
    shoal = shoal_factory("-f", queue, data_dir=data, name="drain")
    rcv = amqp.receiver(amqp.connect(shoal.url), QUEUE, credit=0, accept=True)
    received = [m.id for m in amqp.drain_all(rcv, batch=1000, timeout=60)]

    sent = {i for p in producers for i in p.sent}
    accepted = set().union(*(p.accepted for p in producers))
    counts = Counter(received)
    lost = sorted(accepted - counts.keys())
    unknown = sorted(counts.keys() - sent)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    unconfirmed_kept = len(counts.keys() - accepted - set(unknown))
    out_of_order = check_order(received, producers)
    result = {
        "seed": seed,
        "cycles": CYCLES,
        "producers": PRODUCERS,
        "sent": len(sent),
        "accepted": len(accepted),
        "received": len(received),
        "lost": len(lost),
        "duplicates": duplicates,
        "unconfirmed_but_kept": unconfirmed_kept,
        "unknown": len(unknown),
        "out_of_order": len(out_of_order),
        "other_outcomes": sum(sum(p.other.values()) for p in producers),
        "cycles_with_accepts": sum(1 for _, n in lives if n),
        "seconds": round(time.monotonic() - started, 1),
    }
    print("crash test result: " + json.dumps(result))
    print(f"lives (seconds before kill -9, accepted in that life): {lives}")
    if os.environ.get("SHOAL_CRASH_REPORT"):
        with open(os.environ["SHOAL_CRASH_REPORT"], "w") as f:
            json.dump({**result, "lost_ids": lost[:20], "out_of_order_examples": out_of_order[:20]}, f)

    assert not lost, f"seed {seed}: {len(lost)} accepted messages lost after kill -9, e.g. {lost[:10]}"
    assert not unknown, f"seed {seed}: ids never sent came back: {unknown[:10]}"
    assert not out_of_order, f"seed {seed}: out of send order: {out_of_order[:10]}"
    # The test only means something if the crashes hit a working producer.
    assert result["cycles_with_accepts"] >= CYCLES // 2, (
        f"seed {seed}: messages were accepted in only {result['cycles_with_accepts']} of {CYCLES} lives: {lives}"
    )
