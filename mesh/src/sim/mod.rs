//! A simulated network for tests: N nodes, links with a delay, a virtual clock, and messages
//! delivered in time order (FIFO per link direction, like a TCP connection).
//!
//! Every message goes through `Message::encode`/`decode`, so the scenarios exercise the wire
//! form too. Nothing sleeps: the clock jumps from one event (a delivery or a node deadline) to
//! the next.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Config, Cost, LinkId, Mode, Node, Output, RefuseReason, RouterId};

pub(crate) struct SimNode {
    pub node: Node,
    pub deadline: Instant,
    pub alive: bool,
}

pub(crate) struct SimLink {
    pub a: usize,
    pub b: usize,
    pub delay: Duration,
    pub cost: u32,
    /// Open (not closed by either side).
    pub up: bool,
    /// Silently dropping everything (a partition: no one sees the connection close).
    pub cut: bool,
}

struct Delivery {
    to: usize,
    link: LinkId,
    bytes: Bytes,
}

pub(crate) struct Sim {
    pub now: Instant,
    pub nodes: Vec<SimNode>,
    pub links: Vec<SimLink>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    in_flight: BTreeMap<u64, Delivery>,
    seq: u64,
    next_instance: u64,
    /// Messages put on the wire, by opcode.
    pub sent: BTreeMap<&'static str, usize>,
    pub refused: Vec<(usize, LinkId, RefuseReason)>,
    pub config: Config,
}

pub(crate) fn rid(s: &str) -> RouterId {
    RouterId::new(s).expect("valid test id")
}

impl Sim {
    pub fn new() -> Self {
        let start = Instant::now();
        Sim {
            now: start,
            nodes: Vec::new(),
            links: Vec::new(),
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            next_instance: 1000,
            sent: BTreeMap::new(),
            refused: Vec::new(),
            config: Config::default(),
        }
    }

    pub fn add(&mut self, id: &str, mode: Mode) -> usize {
        let config = Config {
            mode,
            ..self.config.clone()
        };
        self.next_instance += 1;
        let node = Node::new(rid(id), self.next_instance, config, self.now);
        self.nodes.push(SimNode {
            node,
            deadline: self.now,
            alive: true,
        });
        self.nodes.len() - 1
    }

    pub fn interiors(&mut self, ids: &[&str]) -> Vec<usize> {
        ids.iter().map(|id| self.add(id, Mode::Interior)).collect()
    }

    fn new_link(&mut self, a: usize, b: usize, delay: Duration) -> LinkId {
        self.links.push(SimLink {
            a,
            b,
            delay,
            cost: 1,
            up: true,
            cut: false,
        });
        LinkId(self.links.len() as u64 - 1)
    }

    /// An inter-router connection (or, from an edge, an uplink: `a` is the edge then).
    pub fn connect(&mut self, a: usize, b: usize, delay: Duration) -> LinkId {
        let link = self.new_link(a, b, delay);
        let now = self.now;
        self.nodes[a].node.link_up(link, now);
        self.nodes[b].node.link_up(link, now);
        self.pump();
        link
    }

    /// Edge `edge` connects to interior `interior`.
    pub fn connect_edge(&mut self, edge: usize, interior: usize, delay: Duration) -> LinkId {
        let link = self.new_link(edge, interior, delay);
        let now = self.now;
        let edge_id = self.nodes[edge].node.id().clone();
        self.nodes[edge].node.link_up(link, now);
        self.nodes[interior].node.edge_attached(link, edge_id, now);
        self.pump();
        link
    }

    pub fn set_cost(&mut self, link: LinkId, cost: u32) {
        let now = self.now;
        let (a, b) = self.ends(link);
        self.links[link.0 as usize].cost = cost;
        self.nodes[a].node.set_link_cost(link, Cost(cost), now);
        self.nodes[b].node.set_link_cost(link, Cost(cost), now);
        self.pump();
    }

    fn ends(&self, link: LinkId) -> (usize, usize) {
        let l = &self.links[link.0 as usize];
        (l.a, l.b)
    }

    /// Both ends see the connection close.
    pub fn close(&mut self, link: LinkId) {
        let now = self.now;
        let l = &mut self.links[link.0 as usize];
        if !l.up {
            return;
        }
        l.up = false;
        let (a, b) = (l.a, l.b);
        for n in [a, b] {
            if self.nodes[n].alive {
                self.nodes[n].node.link_down(link, now);
            }
        }
        self.pump();
    }

    /// The network drops everything on `link`, and neither end notices.
    pub fn cut(&mut self, link: LinkId) {
        self.links[link.0 as usize].cut = true;
    }

    pub fn heal(&mut self, link: LinkId) {
        self.links[link.0 as usize].cut = false;
    }

    /// The router process dies: its connections close (the peers see it at once).
    pub fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
        let links: Vec<LinkId> = (0..self.links.len())
            .filter(|&i| self.links[i].up && (self.links[i].a == n || self.links[i].b == n))
            .map(|i| LinkId(i as u64))
            .collect();
        for l in links {
            self.close(l);
        }
    }

    /// Starts a new process for node `n`'s id with a new instance (links must be reconnected).
    pub fn restart(&mut self, n: usize) {
        let id = self.nodes[n].node.id().clone();
        let config = Config {
            mode: self.nodes[n].node.mode(),
            ..self.config.clone()
        };
        self.next_instance += 1;
        self.nodes[n] = SimNode {
            node: Node::new(id, self.next_instance, config, self.now),
            deadline: self.now,
            alive: true,
        };
    }

    /// Calls `f` on a node, then delivers what it produced.
    pub fn with_node(&mut self, n: usize, f: impl FnOnce(&mut Node, Instant)) {
        let now = self.now;
        f(&mut self.nodes[n].node, now);
        self.pump();
    }

    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n].node
    }

    /// Takes every node's output: messages go on the wire, refusals close the connection.
    fn pump(&mut self) {
        let mut closes = VecDeque::new();
        for n in 0..self.nodes.len() {
            if !self.nodes[n].alive {
                continue;
            }
            for out in self.nodes[n].node.drain_output() {
                match out {
                    Output::Send { link, msg } => {
                        let l = &self.links[link.0 as usize];
                        if !l.up {
                            continue;
                        }
                        *self.sent.entry(msg.opcode()).or_default() += 1;
                        if l.cut {
                            continue;
                        }
                        let to = if l.a == n { l.b } else { l.a };
                        let at = self.now + l.delay;
                        self.seq += 1;
                        self.queue.push(Reverse((at, self.seq)));
                        self.in_flight.insert(
                            self.seq,
                            Delivery {
                                to,
                                link,
                                bytes: msg.encode(),
                            },
                        );
                    }
                    Output::Refused { link, reason } => {
                        self.refused.push((n, link, reason));
                        closes.push_back(link);
                    }
                    Output::RoutesChanged | Output::AddressesChanged => {}
                }
            }
        }
        for link in closes {
            self.close(link);
        }
    }

    /// Processes the next event if it is due by `until`; false when there is none.
    fn step(&mut self, until: Instant) -> bool {
        let next_delivery = self.queue.peek().map(|Reverse((t, _))| *t);
        let next_tick = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.deadline)
            .min();
        let t = match (next_delivery, next_tick) {
            (Some(d), Some(k)) => d.min(k),
            (Some(d), None) => d,
            (None, Some(k)) => k,
            (None, None) => return false,
        };
        if t > until {
            return false;
        }
        self.now = self.now.max(t);
        if next_delivery == Some(t) {
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                return false;
            };
            if let Some(d) = self.in_flight.remove(&seq) {
                let l = &self.links[d.link.0 as usize];
                if l.up && !l.cut && self.nodes[d.to].alive {
                    let now = self.now;
                    self.nodes[d.to].node.receive_bytes(d.link, &d.bytes, now);
                }
            }
        } else {
            let now = self.now;
            for n in self
                .nodes
                .iter_mut()
                .filter(|n| n.alive && n.deadline <= now)
            {
                n.deadline = n.node.tick(now);
            }
        }
        self.pump();
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.now = until;
    }

    /// Runs until `pred` holds (checked after every event) or `limit` passes; returns the
    /// virtual time it took.
    pub fn run_until(&mut self, limit: Duration, pred: impl Fn(&Sim) -> bool) -> Option<Duration> {
        let from = self.now;
        let until = self.now + limit;
        loop {
            if pred(self) {
                return Some(self.now - from);
            }
            if !self.step(until) {
                self.now = until;
                return pred(self).then(|| self.now - from);
            }
        }
    }

    /// Shortest-path costs over the links that really work (up, not cut, live interiors).
    pub fn true_costs(&self) -> BTreeMap<(usize, usize), u64> {
        let n = self.nodes.len();
        let inf = u64::MAX / 4;
        let mut d = vec![vec![inf; n]; n];
        let interior =
            |i: usize| self.nodes[i].alive && self.nodes[i].node.mode() == Mode::Interior;
        for (i, row) in d.iter_mut().enumerate() {
            row[i] = 0;
        }
        for l in &self.links {
            if l.up && !l.cut && interior(l.a) && interior(l.b) {
                let c = u64::from(l.cost);
                d[l.a][l.b] = d[l.a][l.b].min(c);
                d[l.b][l.a] = d[l.b][l.a].min(c);
            }
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    if d[i][k] + d[k][j] < d[i][j] {
                        d[i][j] = d[i][k] + d[k][j];
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for i in (0..n).filter(|&i| interior(i)) {
            for j in (0..n).filter(|&j| interior(j) && j != i) {
                if d[i][j] < inf {
                    out.insert((i, j), d[i][j]);
                }
            }
        }
        out
    }

    /// Every live interior has the same link-state database as every other one it can reach,
    /// and exactly the routes the real topology allows, each along a shortest path.
    pub fn converged(&self) -> bool {
        let costs = self.true_costs();
        for &(i, j) in costs.keys() {
            if self.nodes[i].node.lsdb_digest() != self.nodes[j].node.lsdb_digest() {
                return false;
            }
        }
        for i in 0..self.nodes.len() {
            let sn = &self.nodes[i];
            if !sn.alive || sn.node.mode() != Mode::Interior {
                continue;
            }
            let expected: Vec<usize> = (0..self.nodes.len())
                .filter(|&j| costs.contains_key(&(i, j)))
                .collect();
            if sn.node.routes().len() != expected.len() {
                return false;
            }
            for j in expected {
                let Some(route) = sn.node.route(self.nodes[j].node.id()) else {
                    return false;
                };
                if u64::from(route.cost.0) != costs[&(i, j)] {
                    return false;
                }
                let l = &self.links[route.next_hop.0 as usize];
                let hop = if l.a == i { l.b } else { l.a };
                let rest = if hop == j {
                    0
                } else {
                    costs.get(&(hop, j)).copied().unwrap_or(u64::MAX / 4)
                };
                if u64::from(l.cost) + rest != costs[&(i, j)] {
                    return false;
                }
            }
        }
        true
    }

    /// Sends one multicast message from `origin` through the trees; returns the copies each
    /// node received (the origin counts as having it once).
    pub fn multicast(&mut self, origin: usize) -> BTreeMap<usize, usize> {
        let origin_id = self.nodes[origin].node.id().clone();
        let mut copies = BTreeMap::from([(origin, 1)]);
        let mut queue = VecDeque::from([origin]);
        let mut budget = 10_000;
        while let Some(at) = queue.pop_front() {
            for link in self.nodes[at].node.multicast_links(&origin_id) {
                let l = &self.links[link.0 as usize];
                let to = if l.a == at { l.b } else { l.a };
                *copies.entry(to).or_default() += 1;
                queue.push_back(to);
                budget -= 1;
                if budget == 0 {
                    return copies;
                }
            }
        }
        copies
    }
}

#[cfg(test)]
mod tests;
