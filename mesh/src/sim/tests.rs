//! Whole-mesh scenarios on the simulated network.

use std::time::Duration;

use super::{rid, Sim};
use crate::{LinkId, Mode, RefuseReason};

const MS: Duration = Duration::from_millis(1);
const D: Duration = Duration::from_millis(5);
/// Generous bound for a cold start to converge in (a few round trips are needed).
const CONVERGE: Duration = Duration::from_secs(2);

fn converge(sim: &mut Sim) -> Duration {
    sim.run_until(CONVERGE, |s| s.converged())
        .expect("mesh converges")
}

fn line(sim: &mut Sim, ids: &[&str]) -> (Vec<usize>, Vec<LinkId>) {
    let n = sim.interiors(ids);
    let links = n.windows(2).map(|w| sim.connect(w[0], w[1], D)).collect();
    (n, links)
}

#[test]
fn line_of_three_converges() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    let took = converge(&mut sim);
    assert!(took < 100 * MS, "took {took:?}");
    let r = sim.node(n[0]).route(&rid("C")).expect("A reaches C");
    assert_eq!(
        (r.next_hop, r.neighbour.as_str(), r.cost.0),
        (links[0], "B", 2)
    );
    let r = sim.node(n[2]).route(&rid("A")).expect("C reaches A");
    assert_eq!((r.next_hop, r.cost.0), (links[1], 2));
    assert_eq!(sim.node(n[1]).routes().len(), 2);
}

#[test]
fn triangle_uses_costs() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B", "C"]);
    let ab = sim.connect(n[0], n[1], D);
    sim.connect(n[1], n[2], D);
    let ac = sim.connect(n[0], n[2], D);
    converge(&mut sim);
    assert_eq!(sim.node(n[0]).route(&rid("C")).unwrap().next_hop, ac);
    sim.set_cost(ac, 5);
    converge(&mut sim);
    let r = sim.node(n[0]).route(&rid("C")).unwrap();
    assert_eq!((r.next_hop, r.cost.0), (ab, 2));
}

#[test]
fn star_of_five_converges() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["hub", "s1", "s2", "s3", "s4"]);
    for &s in &n[1..] {
        sim.connect(n[0], s, D);
    }
    converge(&mut sim);
    let r = sim.node(n[1]).route(&rid("s4")).unwrap();
    assert_eq!((r.neighbour.as_str(), r.cost.0), ("hub", 2));
    for i in &n {
        assert_eq!(sim.node(*i).routes().len(), 4);
    }
}

#[test]
fn two_edges_on_one_interior() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B"]);
    let ab = sim.connect(n[0], n[1], D);
    let e1 = sim.add("e1", Mode::Edge);
    let e2 = sim.add("e2", Mode::Edge);
    let l1 = sim.connect_edge(e1, n[0], D);
    let l2 = sim.connect_edge(e2, n[0], D);
    converge(&mut sim);
    assert_eq!(sim.node(e1).uplink(), Some(l1));
    assert_eq!(sim.node(e2).uplink(), Some(l2));
    // Edges are not part of link state.
    assert_eq!(sim.node(n[1]).routes().len(), 1);

    sim.with_node(e1, |node, _| node.add_local_address("orders"));
    sim.with_node(e2, |node, _| node.add_local_address("orders"));
    sim.with_node(e2, |node, _| node.add_local_address("billing"));
    let b_sees = |s: &Sim, a: &str| s.node(n[1]).address_routers(a) == vec![rid("A")];
    sim.run_until(Duration::from_secs(1), |s| {
        b_sees(s, "orders") && b_sees(s, "billing")
    })
    .expect("edge addresses reach B through A");
    let dest = sim.node(n[1]).destinations("orders");
    assert_eq!((dest.len(), dest[0].next_hop), (1, ab));
    assert_eq!(sim.node(n[0]).edge_links("orders"), vec![l1, l2]);
    assert_eq!(sim.node(n[0]).edge_links("billing"), vec![l2]);
    assert!(sim.node(n[0]).is_local("orders"));

    // One edge leaves: A still has "orders" through the other; "billing" is gone.
    sim.close(l2);
    sim.run_until(Duration::from_secs(1), |s| !b_sees(s, "billing"))
        .expect("billing withdrawn");
    assert!(b_sees(&sim, "orders"));
    assert_eq!(sim.node(n[0]).edge_links("orders"), vec![l1]);
    sim.with_node(e1, |node, _| node.remove_local_address("orders"));
    sim.run_until(Duration::from_secs(1), |s| !b_sees(s, "orders"))
        .expect("orders withdrawn");
}

#[test]
fn link_cut_reroutes_within_dead_interval() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B", "C"]);
    let ab = sim.connect(n[0], n[1], D);
    sim.connect(n[1], n[2], D);
    let ac = sim.connect(n[0], n[2], D);
    converge(&mut sim);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.node(n[0]).route(&rid("C")).unwrap().next_hop, ac);
    sim.cut(ac);
    let took = sim
        .run_until(Duration::from_secs(20), |s| {
            s.node(n[0])
                .route(&rid("C"))
                .is_some_and(|r| r.next_hop == ab)
                && s.converged()
        })
        .expect("re-routed");
    let dead = sim.config.dead_interval;
    assert!(took <= dead + 50 * MS, "re-route took {took:?}");
    assert!(
        took >= dead - sim.config.hello_interval,
        "too early: {took:?}"
    );
}

#[test]
fn killed_router_is_dropped_at_once() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B", "C", "D"]);
    // A square: A-B-C and A-D-C; killing B re-routes A->C through D.
    sim.connect(n[0], n[1], D);
    sim.connect(n[1], n[2], D);
    let ad = sim.connect(n[0], n[3], D);
    sim.connect(n[3], n[2], D);
    converge(&mut sim);
    assert_eq!(sim.node(n[0]).route(&rid("C")).unwrap().neighbour, rid("B"));
    sim.kill(n[1]);
    let took = sim
        .run_until(Duration::from_secs(5), |s| s.converged())
        .expect("converges without B");
    assert!(took <= 50 * MS, "failover took {took:?}");
    assert_eq!(sim.node(n[0]).route(&rid("C")).unwrap().next_hop, ad);
    for i in [n[0], n[2], n[3]] {
        assert!(sim.node(i).route(&rid("B")).is_none());
    }
}

#[test]
fn partition_and_heal_converge() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C", "D"]);
    converge(&mut sim);
    sim.with_node(n[3], |node, _| node.add_local_address("d-queue"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.node(n[0]).address_routers("d-queue"), vec![rid("D")]);

    sim.cut(links[1]);
    sim.run_until(Duration::from_secs(10), |s| {
        s.node(n[0]).routes().len() == 1 && s.node(n[3]).routes().len() == 1
    })
    .expect("both sides drop the other");
    assert!(sim.converged());
    assert!(sim.node(n[0]).destinations("d-queue").is_empty());

    // Long enough for the far side to be purged, then heal.
    sim.run_for(sim.config.purge_delay + Duration::from_secs(1));
    sim.heal(links[1]);
    // The connection never closed: hellos resume and the sides re-sync.
    sim.run_until(Duration::from_secs(5), |s| {
        s.node(n[0]).routes().len() == 3 && s.converged()
    })
    .expect("heals");
    sim.run_until(Duration::from_secs(1), |s| {
        s.node(n[0]).address_routers("d-queue") == vec![rid("D")]
    })
    .expect("addresses re-synced after heal");
}

#[test]
fn restarted_router_is_accepted_with_lower_sequence_numbers() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    converge(&mut sim);
    // Push C's sequence numbers up.
    for cost in 2..8 {
        sim.set_cost(links[1], cost);
        sim.with_node(n[2], |node, _| {
            node.add_local_address(&format!("old-{cost}"))
        });
        sim.run_for(100 * MS);
    }
    sim.set_cost(links[1], 1);
    converge(&mut sim);
    assert_eq!(sim.node(n[0]).address_routers("old-3"), vec![rid("C")]);

    sim.kill(n[2]);
    sim.restart(n[2]);
    sim.with_node(n[2], |node, _| node.add_local_address("new"));
    sim.connect(n[1], n[2], D);
    sim.run_until(Duration::from_secs(2), |s| {
        s.converged() && s.node(n[0]).address_routers("new") == vec![rid("C")]
    })
    .expect("restarted C accepted");
    assert!(sim.node(n[0]).address_routers("old-3").is_empty());
    assert_eq!(sim.node(n[0]).route(&rid("C")).unwrap().cost.0, 2);
}

#[test]
fn duplicate_router_id_is_refused() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B", "A", "B"]);
    sim.connect(n[0], n[1], D);
    converge(&mut sim);
    // A second "A" (another instance) connects to B.
    let second = sim.connect(n[2], n[1], D);
    // Someone claiming B's own id connects to B.
    let own = sim.connect(n[3], n[1], D);
    sim.run_for(100 * MS);
    let at_b: Vec<_> = sim.refused.iter().filter(|r| r.0 == n[1]).collect();
    assert!(at_b.iter().any(|(_, l, r)| *l == second
        && matches!(
            r,
            RefuseReason::DuplicateId {
                other_link: Some(_),
                ..
            }
        )));
    // Both ends see their own id: whichever hello lands first closes the connection.
    assert!(sim.refused.iter().any(|(_, l, r)| *l == own
        && matches!(
            r,
            RefuseReason::DuplicateId {
                other_link: None,
                ..
            }
        )));
    assert!(!sim.links[own.0 as usize].up);
    // The original A keeps its route.
    assert!(sim.node(n[1]).route(&rid("A")).is_some());
    assert!(!sim.links[second.0 as usize].up);
}

#[test]
fn edge_on_an_inter_router_link_is_refused() {
    let mut sim = Sim::new();
    let a = sim.add("A", Mode::Interior);
    let e = sim.add("e", Mode::Edge);
    let link = sim.connect(e, a, D);
    sim.run_for(100 * MS);
    assert!(sim.refused.iter().any(|(n, l, r)| *n == a
        && *l == link
        && matches!(r, RefuseReason::EdgeOnInteriorLink { .. })));
}

#[test]
fn steady_state_carries_only_hellos_and_advertisements() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["A", "B", "C", "D", "E"]);
    for i in 0..5 {
        sim.connect(n[i], n[(i + 1) % 5], D);
    }
    sim.connect(n[0], n[2], D);
    converge(&mut sim);
    sim.run_for(Duration::from_secs(15));
    sim.sent.clear();
    let secs = 60;
    sim.run_for(Duration::from_secs(secs));
    let links = sim.links.len();
    let hellos = sim.sent.remove("HELLO").unwrap_or(0);
    let ras = sim.sent.remove("RA").unwrap_or(0);
    assert!(sim.sent.is_empty(), "unexpected traffic: {:?}", sim.sent);
    // One hello per link direction per second.
    let secs = secs as usize;
    assert!((2 * links * (secs - 1)..=2 * links * (secs + 1)).contains(&hellos));
    // A flooded advertisement is relayed once by each router, on every link but the one it
    // came in on: 2 * links - (routers - 1) messages per origin per round.
    let per_round = 5 * (2 * links - 4);
    let rounds = secs / 10;
    assert!(
        (per_round * rounds..=per_round * (rounds + 1)).contains(&ras),
        "{ras} advertisements"
    );
}

#[test]
fn mobile_addresses_propagate_in_one_batch() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    converge(&mut sim);
    sim.sent.clear();
    sim.with_node(n[2], |node, _| {
        for i in 0..100 {
            node.add_local_address(&format!("q{i}"));
        }
    });
    sim.run_until(Duration::from_secs(1), |s| {
        s.node(n[0]).address_routers("q99") == vec![rid("C")]
    })
    .expect("addresses propagate");
    // One delta, relayed once per link.
    assert_eq!(sim.sent.get("MAU"), Some(&2));
    let dest = sim.node(n[0]).destinations("q0");
    assert_eq!((dest[0].next_hop, dest[0].cost.0), (links[0], 2));
    sim.with_node(n[2], |node, _| node.remove_local_address("q0"));
    sim.run_until(Duration::from_secs(1), |s| {
        s.node(n[0]).destinations("q0").is_empty()
    })
    .expect("removal propagates");
    assert_eq!(sim.node(n[0]).address_routers("q1"), vec![rid("C")]);
}

#[test]
fn lost_update_is_repaired_from_the_next_advertisement() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    converge(&mut sim);
    sim.run_for(Duration::from_secs(3));
    // The delta is lost on the way (shorter than the dead interval: no one notices).
    sim.cut(links[1]);
    sim.with_node(n[2], |node, _| node.add_local_address("lost"));
    sim.run_for(500 * MS);
    sim.heal(links[1]);
    let took = sim
        .run_until(sim.config.ra_interval + Duration::from_secs(1), |s| {
            s.node(n[0]).address_routers("lost") == vec![rid("C")]
        })
        .expect("repaired by MAR");
    assert!(took <= sim.config.ra_interval, "took {took:?}");
    assert!(sim.sent.get("MAR").is_some_and(|&c| c >= 1));
}

#[test]
fn delta_after_a_gap_asks_for_the_full_set() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    converge(&mut sim);
    sim.cut(links[1]);
    sim.with_node(n[2], |node, _| node.add_local_address("lost"));
    sim.run_for(500 * MS);
    sim.heal(links[1]);
    sim.with_node(n[2], |node, _| node.add_local_address("later"));
    // Well before the next advertisement: the gap itself triggers the request.
    sim.run_until(Duration::from_secs(1), |s| {
        s.node(n[0]).address_routers("lost") == vec![rid("C")]
            && s.node(n[0]).address_routers("later") == vec![rid("C")]
    })
    .expect("repaired from the gap");
}

#[test]
fn multicast_trees_are_loop_free() {
    let mut sim = Sim::new();
    let n = sim.interiors(&["R0", "R1", "R2", "R3", "R4", "R5"]);
    for i in 0..6 {
        sim.connect(n[i], n[(i + 1) % 6], D);
    }
    sim.connect(n[0], n[3], D);
    sim.connect(n[1], n[4], D);
    // A parallel link between R2 and R5 and an equal-cost square: ties must break alike.
    sim.connect(n[2], n[5], D);
    sim.connect(n[2], n[5], D);
    converge(&mut sim);
    for &origin in &n {
        let copies = sim.multicast(origin);
        for &r in &n {
            assert_eq!(
                copies.get(&r),
                Some(&1),
                "origin {origin}: copies {copies:?}"
            );
        }
    }
}

#[test]
fn lost_edge_update_is_repaired_from_its_advertisement() {
    let mut sim = Sim::new();
    let a = sim.add("A", Mode::Interior);
    let b = sim.add("B", Mode::Interior);
    sim.connect(a, b, D);
    let e = sim.add("e", Mode::Edge);
    let up = sim.connect_edge(e, a, D);
    converge(&mut sim);
    sim.run_for(Duration::from_secs(2));
    sim.cut(up);
    sim.with_node(e, |node, _| node.add_local_address("from-edge"));
    sim.run_for(500 * MS);
    sim.heal(up);
    sim.run_until(sim.config.ra_interval + Duration::from_secs(1), |s| {
        s.node(b).address_routers("from-edge") == vec![rid("A")]
    })
    .expect("repaired by MAR to the edge");
    assert_eq!(sim.node(a).edge_links("from-edge"), vec![up]);
}

#[test]
fn lost_link_state_is_requested_after_the_next_advertisement() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C"]);
    converge(&mut sim);
    sim.run_for(Duration::from_secs(3));
    // D joins behind C while C's updates to B are being lost.
    sim.cut(links[1]);
    let d = sim.add("D", Mode::Interior);
    sim.connect(n[2], d, D);
    sim.run_for(500 * MS);
    sim.heal(links[1]);
    sim.sent.clear();
    let took = sim
        .run_until(sim.config.ra_interval + Duration::from_secs(1), |s| {
            s.node(n[0]).route(&rid("D")).is_some() && s.converged()
        })
        .expect("repaired by LSR");
    assert!(took <= sim.config.ra_interval, "took {took:?}");
    assert!(sim.sent.get("LSR").is_some_and(|&c| c >= 1));
}

#[test]
fn restart_during_a_partition_converges_after_heal() {
    let mut sim = Sim::new();
    let (n, links) = line(&mut sim, &["A", "B", "C", "D"]);
    sim.with_node(n[3], |node, _| node.add_local_address("old"));
    converge(&mut sim);
    sim.run_for(Duration::from_secs(1));
    sim.cut(links[1]);
    sim.run_until(Duration::from_secs(5), |s| s.node(n[0]).routes().len() == 1)
        .expect("partitioned");
    // D restarts while A and B still hold its old state (not purged yet).
    sim.kill(n[3]);
    sim.restart(n[3]);
    sim.with_node(n[3], |node, _| node.add_local_address("new"));
    sim.connect(n[2], n[3], D);
    sim.run_for(Duration::from_secs(1));
    sim.heal(links[1]);
    sim.run_until(Duration::from_secs(15), |s| {
        s.converged()
            && s.node(n[0]).address_routers("new") == vec![rid("D")]
            && s.node(n[0]).address_routers("old").is_empty()
    })
    .expect("old instance forgotten everywhere");
    let d_instance = sim.node(n[3]).instance();
    for i in &n[..3] {
        let digest = sim.node(*i).lsdb_digest();
        assert!(digest
            .iter()
            .any(|(id, inst, _)| *id == rid("D") && *inst == d_instance));
    }
    // And it stays that way (no flip-flop between instances).
    sim.run_for(Duration::from_secs(30));
    assert!(sim.converged());
    assert!(sim.node(n[0]).address_routers("old").is_empty());
}

#[test]
fn same_id_twice_in_the_mesh_does_not_storm() {
    let mut sim = Sim::new();
    // A-B adjacent; "X" hangs off A and another "X" off B: no HELLO ever compares them.
    let n = sim.interiors(&["A", "B", "X", "X"]);
    sim.connect(n[0], n[1], D);
    sim.connect(n[0], n[2], D);
    sim.connect(n[1], n[3], D);
    sim.run_for(Duration::from_secs(5));
    sim.sent.clear();
    sim.run_for(Duration::from_secs(60));
    let lsus = sim.sent.get("LSU").copied().unwrap_or(0);
    // Each X re-advertises at most once per RA interval, flooded over 3 links.
    assert!(lsus <= 2 * 3 * 7, "{lsus} link-state updates in a minute");
}

#[test]
fn multicast_is_pruned_to_branches_with_consumers() {
    let mut sim = Sim::new();
    // hub with three spokes; s2 has a second hop s2b.
    let n = sim.interiors(&["hub", "s1", "s2", "s3", "s2b"]);
    let l1 = sim.connect(n[0], n[1], D);
    let l2 = sim.connect(n[0], n[2], D);
    sim.connect(n[0], n[3], D);
    let l2b = sim.connect(n[2], n[4], D);
    sim.with_node(n[4], |node, _| node.add_local_address("feed"));
    converge(&mut sim);
    sim.run_for(100 * MS);
    let s1 = rid("s1");
    assert_eq!(
        sim.nodes[n[1]].node.multicast_links_for(&s1, "feed"),
        vec![l1]
    );
    assert_eq!(
        sim.nodes[n[0]].node.multicast_links_for(&s1, "feed"),
        vec![l2]
    );
    assert_eq!(
        sim.nodes[n[2]].node.multicast_links_for(&s1, "feed"),
        vec![l2b]
    );
    assert!(sim.nodes[n[4]]
        .node
        .multicast_links_for(&s1, "feed")
        .is_empty());
    assert!(sim.nodes[n[0]]
        .node
        .multicast_links_for(&s1, "nobody")
        .is_empty());
    assert_eq!(sim.nodes[n[0]].node.multicast_links(&s1).len(), 2);
}
