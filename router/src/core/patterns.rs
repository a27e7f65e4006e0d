//! Pattern subscriptions: receivers on every address matching a pattern, each getting a copy of every message
//! (MQTT's subscriptions with `+` and `#`, as the gateway maps them; see `AttachRequest::pattern`).
//!
//! A pattern has one entry in the address slab (flagged `pattern`, listed in `Core::patterns`, never in
//! `by_name`), whose consumers are its subscriber links. Each named address keeps the subscriber links whose
//! pattern matches it in `pattern_consumers`, filled when the address is created and updated when a subscriber
//! comes or goes, so routing a message never matches patterns: that work is per subscription and per new
//! address, not per message.

use shoal_amqp::{condition, AmqpError};

use shoal_amqp::DeliveryState;

use super::api::{AttachRequest, Command, ConnId, DeliveryKey, LinkKey, Msg};
use super::rules::pattern_matches;
use super::{AddrId, Address, Core, Link, LinkKind, Outgoing};
use crate::config::Distribution;

impl Core {
    /// A receiver attached with `pattern`.
    pub(super) fn attach_pattern(&mut self, conn: ConnId, req: AttachRequest) {
        let AttachRequest { local, address, .. } = req;
        let Some(pattern) = address.filter(|a| !a.is_empty()) else {
            let error = AmqpError::new(
                condition::INVALID_FIELD,
                "a pattern subscription needs a source address (the pattern)",
            );
            self.send(conn, Command::Refused { local, error });
            return;
        };
        let entry = self.pattern_entry(&pattern);
        let generation = self.next_generation();
        let index = self.links.insert(Link {
            generation,
            conn,
            local,
            addr: Some(entry),
            kind: LinkKind::Outgoing(Outgoing::default()),
            routed: None,
            mesh: None,
        });
        let key = LinkKey {
            index: index as u32,
            generation,
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.links.push(key);
        }
        self.send(
            conn,
            Command::Attached {
                local,
                link: key,
                address: None,
            },
        );
        self.add_pattern_consumer(entry, key);
        self.local_consumers_changed(entry);
    }

    /// `key` (a subscriber, or a proxy for an edge's subscribers) consumes from the pattern `entry`: every
    /// matching address copies to it from now on.
    pub(super) fn add_pattern_consumer(&mut self, entry: AddrId, key: LinkKey) {
        let pattern = self.addresses[entry].name.clone();
        self.addresses[entry].consumers.push(key);
        let matching: Vec<AddrId> = self
            .addresses
            .iter()
            .filter(|(_, a)| !a.pattern && !a.dynamic && pattern_matches(&pattern, &a.name))
            .map(|(id, _)| id)
            .collect();
        for id in matching {
            let had_consumers = self.addresses[id].routable();
            self.addresses[id].pattern_consumers.push(key);
            if !had_consumers {
                // No consumer, no credit: the address's senders may send from now on.
                let producers = self.addresses[id].producers.clone();
                for p in producers {
                    self.replenish(p);
                }
            }
        }
    }

    /// A copy from another router's pattern proxy for `entry`: one for each of our subscribers of that
    /// pattern and each pattern proxy onwards (never for other consumers of the address, which get theirs
    /// through the address), told the address it matched there.
    pub(super) fn pattern_copies(
        &mut self,
        entry: AddrId,
        from: LinkKey,
        msg: Msg,
        delivery: Option<DeliveryKey>,
        trace: super::mesh::Trace,
    ) {
        let pattern = &self.addresses[entry].name;
        let matched = msg
            .chunks
            .iter()
            .next()
            .and_then(|b| shoal_amqp::message::read_matched(b).ok().flatten())
            .filter(|name| pattern_matches(pattern, name));
        let subscribers = self.addresses[entry].consumers.clone();
        let subscribers = self.pattern_targets(subscribers, &trace);
        let (Some(name), false) = (matched, subscribers.is_empty()) else {
            // No matching address named (not a copy from a router), or no subscriber left: nobody takes it.
            self.slot_returned_if(delivery.is_none(), from);
            match delivery {
                Some(d) => self.copy_outcome(d, DeliveryState::Released),
                None => self.addresses[entry].stats.dropped += 1,
            }
            return;
        };
        let addr = self.address_id(&name);
        self.addresses[addr].stats.deliveries_in += 1;
        if let Some(d) = delivery {
            let d = &mut self.deliveries[d.index as usize];
            d.outstanding = subscribers.len() as u32;
            d.fanout = true;
        }
        self.copy_to(addr, subscribers, msg, delivery, from);
    }

    /// A pattern subscriber went away: no address copies to it any more.
    pub(super) fn pattern_detached(&mut self, key: LinkKey) {
        for (_, a) in self.addresses.iter_mut() {
            a.pattern_consumers.retain(|l| *l != key);
        }
    }

    /// The subscriber links whose pattern matches a new address `name`.
    pub(super) fn pattern_subscribers_of(&self, name: &str) -> Vec<LinkKey> {
        let mut out = Vec::new();
        for (pattern, id) in &self.patterns {
            if pattern_matches(pattern, name) {
                out.extend_from_slice(&self.addresses[*id].consumers);
            }
        }
        out
    }

    pub(super) fn pattern_entry(&mut self, pattern: &str) -> AddrId {
        if let Some(id) = self.patterns.get(pattern) {
            return *id;
        }
        let id = self.addresses.insert(Address {
            name: pattern.to_owned(),
            distribution: Distribution::Multicast,
            dynamic: false,
            pattern: true,
            consumers: Vec::new(),
            pattern_consumers: Vec::new(),
            producers: Vec::new(),
            queue: Default::default(),
            next: 0,
            stats: Default::default(),
            in_idle_list: false,
        });
        self.patterns.insert(pattern.to_owned(), id);
        id
    }
}

impl Address {
    /// Someone would receive a message sent here now (a receiver, or a pattern subscriber).
    pub(super) fn routable(&self) -> bool {
        !self.consumers.is_empty() || !self.pattern_consumers.is_empty()
    }
}
