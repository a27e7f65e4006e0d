//! The routing rules, driven event by event with no sockets: each test feeds the core what connections would
//! and reads back the commands it sends them.

use std::sync::Arc;

use bytes::Bytes;
use shoal_amqp::{AmqpError, DeliveryState};
use tokio::sync::mpsc;

use super::api::{
    AttachRequest, Chunks, Command, ConnId, CoreMsg, DeliveryKey, Event, LinkKey, Msg, Outbox,
};
use super::Core;
use crate::budget::Budget;
use crate::config::{AddressRule, Distribution, Matcher, RouterConfig};

struct Harness {
    core: Core,
    outboxes: Vec<(ConnId, Arc<Outbox>)>,
    budget: Arc<Budget>,
    next_local: u64,
    _tx: mpsc::Sender<CoreMsg>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(RouterConfig {
            link_capacity: 10,
            ..RouterConfig::default()
        })
    }

    fn with(config: RouterConfig) -> Harness {
        let (tx, rx) = mpsc::channel(8);
        Harness {
            core: Core::new(Arc::new(config), rx),
            outboxes: Vec::new(),
            budget: Budget::new(1 << 30),
            next_local: 0,
            _tx: tx,
        }
    }

    fn deliver(&mut self, msg: CoreMsg) {
        self.core.handle(msg);
        self.core.flush();
    }

    fn conn(&mut self, conn: ConnId) {
        let outbox = Arc::new(Outbox::default());
        self.outboxes.push((conn, Arc::clone(&outbox)));
        self.deliver(CoreMsg::Open {
            conn,
            outbox,
            route_container: None,
            mesh: None,
        });
    }

    fn events(&mut self, conn: ConnId, events: Vec<Event>) {
        self.deliver(CoreMsg::Batch { conn, events });
    }

    fn take(&mut self, conn: ConnId) -> Vec<Command> {
        let outbox = &self
            .outboxes
            .iter()
            .find(|(c, _)| *c == conn)
            .expect("known conn")
            .1;
        let mut out = Vec::new();
        outbox.take(&mut out);
        out
    }

    fn attach(
        &mut self,
        conn: ConnId,
        address: Option<&str>,
        incoming: bool,
        dynamic: bool,
    ) -> (LinkKey, u64) {
        self.attach_with(conn, address, incoming, dynamic, false)
    }

    fn attach_with(
        &mut self,
        conn: ConnId,
        address: Option<&str>,
        incoming: bool,
        dynamic: bool,
        pattern: bool,
    ) -> (LinkKey, u64) {
        self.next_local += 1;
        let local = self.next_local;
        let req = AttachRequest {
            local,
            address: address.map(str::to_owned),
            dynamic,
            pattern,
            details: Default::default(),
        };
        let event = if incoming {
            Event::AttachIncoming(req)
        } else {
            Event::AttachOutgoing(req)
        };
        self.events(conn, vec![event]);
        let commands = self.take(conn);
        let link = commands
            .iter()
            .find_map(|c| match c {
                Command::Attached { local: l, link, .. } if *l == local => Some(*link),
                _ => None,
            })
            .unwrap_or_else(|| panic!("attach answered with {commands:?}"));
        // Put back everything but the Attached, so tests can look at grants.
        let mut rest: Vec<Command> = commands
            .into_iter()
            .filter(|c| !matches!(c, Command::Attached { .. }))
            .collect();
        let outbox = &self
            .outboxes
            .iter()
            .find(|(c, _)| *c == conn)
            .expect("known conn")
            .1;
        outbox.push_batch(&mut rest);
        (link, local)
    }

    fn sender(&mut self, conn: ConnId, address: &str) -> (LinkKey, u64) {
        self.attach(conn, Some(address), true, false)
    }

    /// A receiver on a dynamic address: its link and the address the core assigned.
    fn dynamic_receiver(&mut self, conn: ConnId) -> (LinkKey, String) {
        self.next_local += 1;
        let local = self.next_local;
        let req = AttachRequest {
            local,
            address: None,
            dynamic: true,
            pattern: false,
            details: Default::default(),
        };
        self.events(conn, vec![Event::AttachOutgoing(req)]);
        self.take(conn)
            .into_iter()
            .find_map(|c| match c {
                Command::Attached {
                    link,
                    address: Some(a),
                    ..
                } => Some((link, a)),
                _ => None,
            })
            .expect("a dynamic address")
    }

    fn receiver(&mut self, conn: ConnId, address: &str) -> (LinkKey, u64) {
        self.attach(conn, Some(address), false, false)
    }

    fn subscriber(&mut self, conn: ConnId, pattern: &str) -> (LinkKey, u64) {
        self.attach_with(conn, Some(pattern), false, false, true)
    }

    fn msg(&self, body: &'static [u8]) -> Msg {
        Msg {
            chunks: Chunks::One(Bytes::from_static(body)),
            charge: self.budget.charge(body.len()),
        }
    }

    fn send(&mut self, conn: ConnId, link: LinkKey, delivery_id: u32, settled: bool) {
        let msg = self.msg(b"payload");
        self.events(
            conn,
            vec![Event::Transfer {
                link,
                delivery_id,
                settled,
                to: None,
                msg,
                more: false,
            }],
        );
    }

    fn credit(&mut self, conn: ConnId, link: LinkKey, limit: u32) {
        self.events(
            conn,
            vec![Event::Credit {
                link,
                limit,
                drain: false,
            }],
        );
    }

    fn outcome(
        &mut self,
        conn: ConnId,
        link: LinkKey,
        delivery: DeliveryKey,
        state: DeliveryState,
    ) {
        self.events(
            conn,
            vec![Event::Outcome {
                link: Some(link),
                delivery,
                state,
            }],
        );
    }
}

fn grants(commands: &[Command]) -> u32 {
    commands
        .iter()
        .map(|c| match c {
            Command::Grant { credit, .. } => *credit,
            _ => 0,
        })
        .sum()
}

fn delivered(commands: &[Command]) -> Vec<Option<DeliveryKey>> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Deliver { delivery, .. } => Some(*delivery),
            _ => None,
        })
        .collect()
}

fn settled(commands: &[Command]) -> Vec<(u32, DeliveryState)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Settle {
                delivery_id, state, ..
            } => Some((*delivery_id, state.clone())),
            _ => None,
        })
        .collect()
}

const P: ConnId = 1; // producer connection
const C: ConnId = 2; // consumer connection
const C2: ConnId = 3;

#[test]
fn a_sender_gets_credit_only_once_a_receiver_exists() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    h.sender(P, "q");
    assert_eq!(grants(&h.take(P)), 0, "no consumer, no credit");
    h.receiver(C, "q");
    assert_eq!(
        grants(&h.take(P)),
        10,
        "credit up to the link capacity once a consumer attaches"
    );
}

#[test]
fn the_receivers_outcome_settles_the_sender_and_returns_its_credit() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "q");
    let (input, _) = h.sender(P, "q");
    assert_eq!(grants(&h.take(P)), 10);
    h.send(P, input, 7, false);
    assert!(
        delivered(&h.take(C)).is_empty(),
        "the receiver has no credit yet"
    );
    h.credit(C, out, 5);
    let d = delivered(&h.take(C));
    assert_eq!(d.len(), 1);
    let key = d[0].expect("unsettled");
    let error = AmqpError::new("app:bad", "no thanks");
    h.outcome(
        C,
        out,
        key,
        DeliveryState::Rejected {
            error: Some(error.clone()),
        },
    );
    let back = h.take(P);
    assert_eq!(
        settled(&back),
        vec![(7, DeliveryState::Rejected { error: Some(error) })]
    );
    assert_eq!(grants(&back), 1, "the slot comes back");
}

#[test]
fn balanced_prefers_the_receiver_with_fewest_unsettled() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    h.conn(C2);
    let (a, _) = h.receiver(C, "q");
    let (b, _) = h.receiver(C2, "q");
    h.credit(C, a, 100);
    h.credit(C2, b, 100);
    let (input, _) = h.sender(P, "q");
    for id in 0..6 {
        h.send(P, input, id, false);
    }
    let to_a = delivered(&h.take(C));
    let to_b = delivered(&h.take(C2));
    assert_eq!(
        (to_a.len(), to_b.len()),
        (3, 3),
        "alternates while both hold equal unsettled"
    );
    // Settle all of a's: the next two go to a (0 unsettled) before b (3 unsettled).
    for d in to_a {
        h.outcome(C, a, d.unwrap(), DeliveryState::Accepted);
    }
    h.send(P, input, 6, false);
    h.send(P, input, 7, false);
    assert_eq!(delivered(&h.take(C)).len(), 2);
    assert!(delivered(&h.take(C2)).is_empty());
}

#[test]
fn presettled_without_a_receiver_is_dropped_and_counted() {
    let mut h = Harness::new();
    h.conn(P);
    let (input, _) = h.attach(P, None, true, false);
    assert_eq!(
        grants(&h.take(P)),
        10,
        "anonymous senders get credit up front"
    );
    let msg = h.msg(b"x");
    h.events(
        P,
        vec![Event::Transfer {
            link: input,
            delivery_id: 0,
            settled: true,
            to: Some("nowhere".into()),
            msg,
            more: false,
        }],
    );
    let snap = h.core.snapshot();
    let a = snap
        .addresses
        .iter()
        .find(|a| a.address == "nowhere")
        .unwrap();
    assert_eq!((a.stats.deliveries_in, a.stats.dropped), (1, 1));
}

#[test]
fn unsettled_without_a_receiver_is_released() {
    let mut h = Harness::new();
    h.conn(P);
    let (input, _) = h.attach(P, None, true, false);
    h.take(P);
    let msg = h.msg(b"x");
    h.events(
        P,
        vec![Event::Transfer {
            link: input,
            delivery_id: 3,
            settled: false,
            to: Some("nowhere".into()),
            msg,
            more: false,
        }],
    );
    assert_eq!(settled(&h.take(P)), vec![(3, DeliveryState::Released)]);
}

#[test]
fn anonymous_message_without_to_is_rejected() {
    let mut h = Harness::new();
    h.conn(P);
    let (input, _) = h.attach(P, None, true, false);
    h.take(P);
    h.send(P, input, 1, false);
    let s = settled(&h.take(P));
    assert!(
        matches!(&s[..], [(1, DeliveryState::Rejected { error: Some(_) })]),
        "{s:?}"
    );
}

#[test]
fn a_detaching_receiver_gives_queued_messages_back() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "q");
    let (input, _) = h.sender(P, "q");
    h.take(P);
    h.send(P, input, 1, false);
    h.send(P, input, 2, false);
    h.events(
        C,
        vec![Event::Detach {
            link: out,
            error: None,
            closed: true,
        }],
    );
    let back = settled(&h.take(P));
    assert_eq!(
        back,
        vec![(1, DeliveryState::Released), (2, DeliveryState::Released)]
    );
}

#[test]
fn deliveries_a_closed_connection_never_saw_are_released() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "q");
    h.credit(C, out, 10);
    let (input, _) = h.sender(P, "q");
    h.take(P);
    h.send(P, input, 1, false);
    // C never reads its outbox and goes away.
    h.deliver(CoreMsg::Closed { conn: C });
    assert_eq!(settled(&h.take(P)), vec![(1, DeliveryState::Released)]);
}

#[test]
fn a_pattern_subscriber_leaving_with_copies_still_waiting_drops_them_and_the_core_goes_on() {
    // Its entry goes with its last subscriber: the copies waiting for it must not outlive the entry.
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (sub, _) = h.subscriber(C, "t/#");
    let (input, _) = h.sender(P, "t/1");
    for id in 0..3 {
        h.send(P, input, id, true);
    }
    assert!(
        delivered(&h.take(C)).is_empty(),
        "no credit: all three wait"
    );
    h.deliver(CoreMsg::Closed { conn: C });
    assert!(h.core.patterns.is_empty());
    assert_eq!(h.core.addresses.len(), 1, "only t/1 is left");
    // The core is still there: a new subscriber gets the next message.
    h.conn(C2);
    let (again, _) = h.subscriber(C2, "t/#");
    h.credit(C2, again, 10);
    h.send(P, input, 3, true);
    assert_eq!(delivered(&h.take(C2)).len(), 1);
    let _ = sub;
}

#[test]
fn a_dynamic_receiver_leaving_with_deliveries_still_waiting_releases_them() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, address) = h.dynamic_receiver(C);
    let (input, _) = h.sender(P, &address);
    h.take(P);
    for id in 0..3 {
        h.send(P, input, id, false);
    }
    h.deliver(CoreMsg::Closed { conn: C });
    let back = settled(&h.take(P));
    assert_eq!(back.len(), 3, "each released: {back:?}");
    assert!(back.iter().all(|(_, s)| *s == DeliveryState::Released));
    let _ = out;
}

fn multicast(h: &mut Harness) {
    h.deliver(CoreMsg::Admin(super::api::Admin::SetAddress(
        AddressRule {
            name: "default/m".into(),
            matcher: Matcher::Pattern("m/#".into()),
            distribution: Distribution::Multicast,
            link_route: None,
        },
        tokio::sync::oneshot::channel().0,
    )));
}

#[test]
fn multicast_outcomes_aggregate() {
    let cases = [
        (
            DeliveryState::Accepted,
            DeliveryState::Released,
            DeliveryState::Accepted,
        ),
        (
            DeliveryState::Released,
            DeliveryState::Released,
            DeliveryState::Released,
        ),
        (
            DeliveryState::Accepted,
            DeliveryState::Rejected { error: None },
            DeliveryState::Rejected { error: None },
        ),
    ];
    for (first, second, expected) in cases {
        let mut h = Harness::new();
        multicast(&mut h);
        h.conn(P);
        h.conn(C);
        h.conn(C2);
        let (a, _) = h.receiver(C, "m/1");
        let (b, _) = h.receiver(C2, "m/1");
        h.credit(C, a, 10);
        h.credit(C2, b, 10);
        let (input, _) = h.sender(P, "m/1");
        h.take(P);
        h.send(P, input, 9, false);
        let da = delivered(&h.take(C));
        let db = delivered(&h.take(C2));
        assert_eq!((da.len(), db.len()), (1, 1), "one copy each");
        h.outcome(C, a, da[0].unwrap(), first.clone());
        assert!(settled(&h.take(P)).is_empty(), "waits for every copy");
        h.outcome(C2, b, db[0].unwrap(), second.clone());
        assert_eq!(
            settled(&h.take(P)),
            vec![(9, expected)],
            "{first:?} + {second:?}"
        );
    }
}

#[test]
fn a_slow_multicast_receiver_cannot_grow_memory_without_bound() {
    let mut h = Harness::new();
    multicast(&mut h);
    h.conn(P);
    h.conn(C);
    h.conn(C2);
    let (fast, _) = h.receiver(C, "m/x");
    let (_slow, _) = h.receiver(C2, "m/x");
    h.credit(C, fast, 1_000);
    let (input, _) = h.sender(P, "m/x");
    let mut granted = grants(&h.take(P));
    let mut id = 0;
    // Presettled: the sender keeps getting credit; the slow receiver's backlog stops at the capacity.
    while id < 100 {
        assert!(granted > 0, "sender starved at {id}");
        h.send(P, input, id, true);
        granted -= 1;
        id += 1;
        granted += grants(&h.take(P));
    }
    assert_eq!(delivered(&h.take(C)).len(), 100);
    let snap = h.core.snapshot();
    let a = snap.addresses.iter().find(|a| a.address == "m/x").unwrap();
    assert_eq!(
        a.stats.dropped, 90,
        "the slow receiver keeps 10 (the capacity), the rest is dropped"
    );
}

#[test]
fn drain_with_nothing_queued_uses_up_the_credit() {
    let mut h = Harness::new();
    h.conn(C);
    let (out, local) = h.receiver(C, "q");
    h.events(
        C,
        vec![Event::Credit {
            link: out,
            limit: 5,
            drain: true,
        }],
    );
    let commands = h.take(C);
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::Drained { local: l, limit: 5 } if *l == local)),
        "{commands:?}"
    );
}

#[test]
fn a_dynamic_receiver_gets_a_unique_address_that_senders_can_use() {
    let mut h = Harness::new();
    h.conn(C);
    h.conn(P);
    h.next_local += 1;
    let local = h.next_local;
    h.events(
        C,
        vec![Event::AttachOutgoing(AttachRequest {
            local,
            address: None,
            dynamic: true,
            pattern: false,
            details: Default::default(),
        })],
    );
    let address = h
        .take(C)
        .into_iter()
        .find_map(|c| match c {
            Command::Attached { address, .. } => address,
            _ => None,
        })
        .expect("an assigned address");
    assert!(address.starts_with("_dynamic/"), "{address}");
    h.sender(P, &address);
    assert_eq!(grants(&h.take(P)), 10, "its receiver makes it routable");
}

#[test]
fn a_receiver_without_an_address_is_refused() {
    let mut h = Harness::new();
    h.conn(C);
    h.events(
        C,
        vec![Event::AttachOutgoing(AttachRequest {
            local: 1,
            address: None,
            dynamic: false,
            pattern: false,
            details: Default::default(),
        })],
    );
    assert!(matches!(&h.take(C)[..], [Command::Refused { .. }]));
}

fn part(h: &Harness, body: &'static [u8]) -> Msg {
    h.msg(body)
}

fn first_part(h: &mut Harness, conn: ConnId, link: LinkKey, delivery_id: u32, settled: bool) {
    let msg = part(h, b"part1");
    h.events(
        conn,
        vec![Event::Transfer {
            link,
            delivery_id,
            settled,
            to: None,
            msg,
            more: true,
        }],
    );
}

fn next_part(h: &mut Harness, conn: ConnId, link: LinkKey, more: bool, aborted: bool) {
    let msg = (!aborted).then(|| part(h, b"partN"));
    h.events(
        conn,
        vec![Event::TransferMore {
            link,
            msg,
            more,
            aborted,
        }],
    );
}

/// (more, aborted, bytes) of each Deliver / DeliverMore.
fn parts(commands: &[Command]) -> Vec<(&'static str, bool, bool, usize)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Deliver { msg, more, .. } => Some(("first", *more, false, msg.chunks.len())),
            Command::DeliverMore {
                msg, more, aborted, ..
            } => Some((
                "next",
                *more,
                *aborted,
                msg.as_ref().map_or(0, |m| m.chunks.len()),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_large_anycast_message_streams_through_part_by_part() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "big");
    h.credit(C, out, 10);
    let (input, _) = h.sender(P, "big");
    let (other, _) = h.sender(P, "big");
    h.take(P);
    first_part(&mut h, P, input, 1, false);
    assert_eq!(
        parts(&h.take(C)),
        vec![("first", true, false, 5)],
        "the first part goes on at once"
    );
    // Another sender's message must not interleave with the stream on the receiver's link.
    h.send(P, other, 7, false);
    assert!(
        parts(&h.take(C)).is_empty(),
        "the receiver's link is busy until the last part"
    );
    next_part(&mut h, P, input, true, false);
    next_part(&mut h, P, input, false, false);
    assert_eq!(
        parts(&h.take(C)),
        vec![
            ("next", true, false, 5),
            ("next", false, false, 5),
            ("first", false, false, 7)
        ],
        "the rest of the stream, then the waiting message"
    );
}

#[test]
fn an_aborted_stream_is_aborted_downstream_and_frees_the_senders_slot() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "big");
    h.credit(C, out, 10);
    let (input, _) = h.sender(P, "big");
    assert_eq!(grants(&h.take(P)), 10);
    first_part(&mut h, P, input, 1, false);
    next_part(&mut h, P, input, true, true);
    assert_eq!(
        parts(&h.take(C)),
        vec![("first", true, false, 5), ("next", false, true, 0)]
    );
    let back = h.take(P);
    assert!(
        settled(&back).is_empty(),
        "an aborted delivery has no outcome"
    );
    assert_eq!(grants(&back), 1, "its slot comes back");
    assert_eq!(h.core.deliveries.len(), 0);
}

#[test]
fn a_stream_that_waits_for_credit_is_collected_then_sent() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "big");
    let (input, _) = h.sender(P, "big");
    h.take(P);
    first_part(&mut h, P, input, 1, false);
    next_part(&mut h, P, input, true, false);
    assert!(parts(&h.take(C)).is_empty(), "no credit yet");
    h.credit(C, out, 1);
    assert_eq!(
        parts(&h.take(C)),
        vec![("first", true, false, 10)],
        "what arrived so far, as one part"
    );
    next_part(&mut h, P, input, false, false);
    assert_eq!(parts(&h.take(C)), vec![("next", false, false, 5)]);
}

#[test]
fn a_sender_that_detaches_mid_stream_aborts_it() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (out, _) = h.receiver(C, "big");
    h.credit(C, out, 10);
    let (input, _) = h.sender(P, "big");
    first_part(&mut h, P, input, 1, false);
    h.events(
        P,
        vec![Event::Detach {
            link: input,
            error: None,
            closed: true,
        }],
    );
    assert_eq!(
        parts(&h.take(C)),
        vec![("first", true, false, 5), ("next", false, true, 0)]
    );
}

#[test]
fn a_multicast_stream_is_collected_whole_before_it_fans_out() {
    let mut h = Harness::new();
    multicast(&mut h);
    h.conn(P);
    h.conn(C);
    h.conn(C2);
    let (a, _) = h.receiver(C, "m/big");
    let (b, _) = h.receiver(C2, "m/big");
    h.credit(C, a, 10);
    h.credit(C2, b, 10);
    let (input, _) = h.sender(P, "m/big");
    first_part(&mut h, P, input, 1, true);
    next_part(&mut h, P, input, true, false);
    assert!(parts(&h.take(C)).is_empty());
    next_part(&mut h, P, input, false, false);
    assert_eq!(parts(&h.take(C)), vec![("first", false, false, 15)]);
    assert_eq!(parts(&h.take(C2)), vec![("first", false, false, 15)]);
}

#[test]
fn messages_to_ever_new_addresses_do_not_grow_the_table_without_bound() {
    let mut h = Harness::new();
    h.conn(P);
    let (input, _) = h.attach(P, None, true, false);
    for i in 0..(super::IDLE_ADDRESSES + 100) {
        let msg = h.msg(b"x");
        h.events(
            P,
            vec![Event::Transfer {
                link: input,
                delivery_id: i as u32,
                settled: true,
                to: Some(format!("random/{i}")),
                msg,
                more: false,
            }],
        );
        h.take(P);
    }
    assert_eq!(h.core.addresses.len(), super::IDLE_ADDRESSES);
    let snap = h.core.snapshot();
    assert!(snap
        .addresses
        .iter()
        .any(|a| a.address == format!("random/{}", super::IDLE_ADDRESSES + 99)));
    assert!(
        !snap.addresses.iter().any(|a| a.address == "random/0"),
        "the oldest idle one went"
    );
}

const C3: ConnId = 4;

#[test]
fn pattern_subscribers_get_a_copy_of_every_message_to_a_matching_address() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    h.conn(C2);
    let (temps, _) = h.subscriber(C, "sensors/*/temp");
    let (all, _) = h.subscriber(C2, "sensors/#");
    h.credit(C, temps, 10);
    h.credit(C2, all, 10);
    let (temp_in, _) = h.sender(P, "sensors/kitchen/temp");
    let (hum_in, _) = h.sender(P, "sensors/kitchen/humidity");
    assert_eq!(
        grants(&h.take(P)),
        20,
        "a matching subscriber makes both addresses routable"
    );

    h.send(P, temp_in, 0, true);
    h.send(P, hum_in, 1, true);
    assert_eq!(delivered(&h.take(C)).len(), 1, "only the temperature");
    assert_eq!(delivered(&h.take(C2)).len(), 2, "both");
}

#[test]
fn a_pattern_subscriber_without_credit_later_learns_the_address_each_waiting_copy_matched() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (all, _) = h.subscriber(C, "sensors/#");
    let (kitchen, _) = h.sender(P, "sensors/kitchen");
    let (hall, _) = h.sender(P, "sensors/hall");
    h.send(P, kitchen, 0, true);
    h.send(P, hall, 1, true);
    h.send(P, kitchen, 2, true);
    assert!(delivered(&h.take(C)).is_empty(), "no credit yet");
    h.credit(C, all, 10);
    let matched: Vec<String> = h
        .take(C)
        .iter()
        .filter_map(|c| match c {
            Command::Deliver { address, .. } => address.as_deref().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(
        matched,
        ["sensors/kitchen", "sensors/hall", "sensors/kitchen"]
    );
}

#[test]
fn a_sender_waits_for_credit_until_a_pattern_matches_its_address() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    h.sender(P, "a/b/c");
    h.subscriber(C, "x/#");
    assert_eq!(grants(&h.take(P)), 0, "nobody matches a/b/c");
    h.subscriber(C, "a/*/c");
    assert_eq!(grants(&h.take(P)), 10);
}

#[test]
fn an_anycast_receiver_and_a_pattern_subscriber_each_get_one_copy_and_outcomes_aggregate() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    h.conn(C2);
    h.conn(C3);
    let (r1, _) = h.receiver(C, "orders");
    let (r2, _) = h.receiver(C2, "orders");
    let (sub, _) = h.subscriber(C3, "#");
    for (conn, link) in [(C, r1), (C2, r2), (C3, sub)] {
        h.credit(conn, link, 10);
    }
    let (input, _) = h.sender(P, "orders");
    h.take(P);
    h.send(P, input, 7, false);
    let d1 = delivered(&h.take(C));
    let d2 = delivered(&h.take(C2));
    let ds = delivered(&h.take(C3));
    assert_eq!(d1.len() + d2.len(), 1, "anycast: one of the two receivers");
    assert_eq!(ds.len(), 1, "the subscriber's copy");
    let (conn, link, key) = if d1.is_empty() {
        (C2, r2, d2[0].unwrap())
    } else {
        (C, r1, d1[0].unwrap())
    };
    h.outcome(C3, sub, ds[0].unwrap(), DeliveryState::Released);
    assert!(settled(&h.take(P)).is_empty(), "waits for the receiver too");
    h.outcome(conn, link, key, DeliveryState::Accepted);
    assert_eq!(settled(&h.take(P)), vec![(7, DeliveryState::Accepted)]);
    assert_eq!(h.core.deliveries.len(), 0, "nothing left unsettled");
}

#[test]
fn a_detached_pattern_subscriber_gets_nothing_more() {
    let mut h = Harness::new();
    h.conn(P);
    h.conn(C);
    let (sub, _) = h.subscriber(C, "t/#");
    h.credit(C, sub, 10);
    let (input, _) = h.sender(P, "t/1");
    h.take(P);
    h.events(
        C,
        vec![Event::Detach {
            link: sub,
            error: None,
            closed: true,
        }],
    );
    h.send(P, input, 3, false);
    assert_eq!(settled(&h.take(P)), vec![(3, DeliveryState::Released)]);
    assert!(delivered(&h.take(C)).is_empty());
    assert!(
        h.core.patterns.is_empty(),
        "the pattern's entry went with its last subscriber"
    );
}
