//! The node driven by hand, one message at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::message::{Hello, LinkStateUpdate, PROTOCOL_VERSION};

const L: LinkId = LinkId(7);

fn id(s: &str) -> RouterId {
    RouterId::new(s).unwrap()
}

fn hello(from: &str, seen: &[&str]) -> Message {
    Message::Hello(Hello {
        id: id(from),
        instance: 42,
        version: PROTOCOL_VERSION,
        mode: Mode::Interior,
        seen: seen.iter().map(|s| id(s)).collect(),
    })
}

fn sends(out: &[Output]) -> Vec<(&'static str, LinkId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { link, msg } => Some((msg.opcode(), *link)),
            _ => None,
        })
        .collect()
}

fn refusal(out: &[Output]) -> Option<&RefuseReason> {
    out.iter().find_map(|o| match o {
        Output::Refused { reason, .. } => Some(reason),
        _ => None,
    })
}

fn node(now: Instant) -> Node {
    Node::new(id("A"), 1, Config::default(), now)
}

#[test]
fn two_way_handshake_then_link_state() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.link_up(L, t0);
    assert_eq!(sends(&a.drain_output()), vec![("HELLO", L)]);

    // B does not list us yet: answer at once, no adjacency.
    a.receive(L, hello("B", &[]), t0);
    let out = a.drain_output();
    assert_eq!(sends(&out), vec![("HELLO", L)]);
    assert!(a.routes().is_empty());

    a.receive(L, hello("B", &["A"]), t0);
    let out = a.drain_output();
    let s = sends(&out);
    assert!(s.contains(&("LSU", L)) && s.contains(&("RA", L)), "{s:?}");
    // B's link state is still unknown: no route until B says it lists us.
    assert!(a.route(&id("B")).is_none());
    let lsu = LinkStateUpdate {
        id: id("B"),
        instance: 42,
        ls_seq: 1,
        peers: BTreeMap::from([(id("A"), Cost(1))]),
    };
    a.receive(L, Message::Lsu(lsu.clone()), t0);
    assert!(a.drain_output().contains(&Output::RoutesChanged));
    assert_eq!(a.route(&id("B")).unwrap().next_hop, L);
    // The same update again changes nothing and is not relayed.
    a.receive(L, Message::Lsu(lsu), t0);
    assert!(a.drain_output().is_empty());
}

#[test]
fn tick_sends_hellos_and_expires_dead_neighbours() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut a = node(t0);
    a.link_up(L, t0);
    a.receive(L, hello("B", &["A"]), t0);
    a.drain_output();
    let next = a.tick(t0);
    assert_eq!(next, t0 + cfg.hello_interval);
    a.tick(next);
    assert!(sends(&a.drain_output()).contains(&("HELLO", L)));
    assert_eq!(a.neighbours(), vec![(L, id("B"))]);
    // Nothing heard for the dead interval: the neighbour is gone.
    a.tick(t0 + cfg.dead_interval);
    assert!(a.neighbours().is_empty());
    let s = sends(&a.drain_output());
    assert!(
        !s.contains(&("LSU", L)),
        "no flood to a dead neighbour: {s:?}"
    );
}

#[test]
fn messages_before_a_hello_are_ignored() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.link_up(L, t0);
    a.drain_output();
    let lsu = LinkStateUpdate {
        id: id("B"),
        instance: 42,
        ls_seq: 1,
        peers: BTreeMap::new(),
    };
    a.receive(L, Message::Lsu(lsu), t0);
    assert!(a.drain_output().is_empty());
    // Unknown links too.
    a.receive(LinkId(99), hello("B", &[]), t0);
    assert!(a.drain_output().is_empty());
}

#[test]
fn version_mismatch_is_refused() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.link_up(L, t0);
    let Message::Hello(mut h) = hello("B", &[]) else {
        unreachable!()
    };
    h.version = PROTOCOL_VERSION + 1;
    a.receive_bytes(L, &Message::Hello(h).encode(), t0);
    let out = a.drain_output();
    assert!(matches!(
        refusal(&out),
        Some(RefuseReason::VersionMismatch { peer: Some(p), theirs: 2, .. }) if *p == id("B")
    ));
    // A refused link is dead to the node: no more hellos on it.
    a.tick(t0 + Duration::from_secs(1));
    assert!(sends(&a.drain_output()).is_empty());
}

#[test]
fn garbage_bytes_refuse_the_link() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.link_up(L, t0);
    a.drain_output();
    a.receive_bytes(L, b"\x00\x53\x77\xa1\x05hello", t0);
    assert!(matches!(
        refusal(&a.drain_output()),
        Some(RefuseReason::Malformed(_))
    ));
}

#[test]
fn edge_links_check_who_connects() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.edge_attached(L, id("e1"), t0);
    // An interior on an edge link.
    a.receive(L, hello("B", &[]), t0);
    assert!(matches!(
        refusal(&a.drain_output()),
        Some(RefuseReason::InteriorOnEdgeLink { .. })
    ));
    // An edge with another name than the one it attached with.
    let l2 = LinkId(8);
    a.edge_attached(l2, id("e1"), t0);
    let Message::Hello(mut h) = hello("e2", &[]) else {
        unreachable!()
    };
    h.mode = Mode::Edge;
    a.receive(l2, Message::Hello(h), t0);
    assert!(matches!(
        refusal(&a.drain_output()),
        Some(RefuseReason::UnexpectedEdge { .. })
    ));
}

#[test]
fn address_changes_are_batched_and_cancel_out() {
    let t0 = Instant::now();
    let mut a = node(t0);
    a.link_up(L, t0);
    a.receive(L, hello("B", &["A"]), t0);
    a.drain_output();
    a.add_local_address("x");
    a.add_local_address("y");
    a.remove_local_address("y");
    a.add_local_address("x");
    let out = a.drain_output();
    let maus: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Message::Mau(m),
                ..
            } => Some(m.change.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        maus,
        vec![MobileChange::Delta {
            since: 0,
            add: vec!["x".into()],
            del: vec![],
        }]
    );
    assert!(a.is_local("x") && !a.is_local("y"));
    a.remove_local_address("y");
    assert!(a.drain_output().is_empty());
}

#[test]
fn parallel_links_use_the_cheapest() {
    let t0 = Instant::now();
    let mut a = node(t0);
    let l2 = LinkId(8);
    for l in [L, l2] {
        a.link_up(l, t0);
        a.receive(l, hello("B", &["A"]), t0);
    }
    a.set_link_cost(L, Cost(5), t0);
    let lsu = LinkStateUpdate {
        id: id("B"),
        instance: 42,
        ls_seq: 1,
        peers: BTreeMap::from([(id("A"), Cost(1))]),
    };
    a.receive(L, Message::Lsu(lsu), t0);
    let r = a.route(&id("B")).unwrap();
    assert_eq!((r.next_hop, r.cost), (l2, Cost(1)));
    a.link_down(l2, t0);
    let r = a.route(&id("B")).unwrap();
    assert_eq!((r.next_hop, r.cost), (L, Cost(5)));
}
