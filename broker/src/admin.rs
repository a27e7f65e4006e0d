//! Declaring and deleting addresses, and the stats snapshot: requests from [`crate::BrokerHandle`].

use shoal_amqp::{condition, AmqpError};
use shoal_router::core::api::{Command, LinkKey};
use tokio::sync::oneshot;

use crate::config::{AddressKind, AddressSettings, BrokerAddress};
use crate::core::{Addr, Core, Topic};
use crate::error::BrokerError;
use crate::meta::Role;
use crate::persist::Done;
use crate::queue::{Queue, QueueKey};
use crate::stats::{BrokerStats, QueueStats};
use crate::store::Op;

/// Requests to the core from a [`crate::BrokerHandle`].
#[derive(Debug)]
pub(crate) enum Control {
    SetAddress(BrokerAddress, oneshot::Sender<Result<(), BrokerError>>),
    DeleteAddress(String, oneshot::Sender<bool>),
    Addresses(oneshot::Sender<Vec<BrokerAddress>>),
    Stats(oneshot::Sender<BrokerStats>),
    /// The broker is about to close its connections: what consumers hold unsettled then goes back as
    /// released (not a failed attempt); a restart marks what was delivered (see `restore`).
    Quiesce(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

impl Core {
    pub(crate) fn control(&mut self, c: Control) {
        match c {
            Control::SetAddress(address, reply) => {
                match self.set_address(address) {
                    // Answered once the change is in the store.
                    Ok(()) => {
                        let (tx, rx) = oneshot::channel();
                        self.batch.done.push(Done::Reply(tx));
                        tokio::spawn(async move {
                            let _ = rx.await;
                            let _ = reply.send(Ok(()));
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Control::DeleteAddress(name, reply) => {
                let _ = reply.send(self.delete_address(&name));
            }
            Control::Addresses(reply) => {
                let _ = reply.send(self.list_addresses());
            }
            Control::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Control::Quiesce(reply) => {
                self.quiescing = true;
                let _ = reply.send(());
            }
            // Handled by the run loop.
            Control::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Declare an address, or change the settings of one that exists with the same kind.
    pub(crate) fn set_address(&mut self, a: BrokerAddress) -> Result<(), BrokerError> {
        let existing = match self.addresses.get(&a.name) {
            None => None,
            Some(Addr::Topic(_)) => Some("topic"),
            Some(Addr::Queue(q)) => match self.queue(*q).map(|q| &q.role) {
                Some(Role::Subscription { .. }) => Some("subscription"),
                _ => Some("queue"),
            },
        };
        let wanted = match &a.kind {
            AddressKind::Queue => "queue",
            AddressKind::Topic => "topic",
            AddressKind::Subscription { .. } => "subscription",
        };
        if existing.is_some_and(|e| e != wanted) {
            return Err(BrokerError::KindConflict {
                name: a.name,
                existing: existing.unwrap_or_default(),
            });
        }
        match a.kind {
            AddressKind::Queue => {
                let role = Role::Queue { auto: false };
                self.declare_queue(&a.name, role, a.settings);
            }
            AddressKind::Subscription { topic } => {
                if topic == a.name {
                    return Err(BrokerError::InvalidAddress {
                        name: a.name,
                        reason: "a subscription cannot be its own topic".into(),
                    });
                }
                let role = Role::Subscription {
                    topic: topic.clone(),
                    declared: true,
                    durable: true,
                    shared: true,
                };
                let key = self.declare_queue(&a.name, role, a.settings);
                if let Some(Addr::Topic(t)) = self.addresses.get_mut(&topic) {
                    if !t.subs.contains(&key) {
                        t.subs.push(key);
                    }
                }
            }
            AddressKind::Topic => {
                // Its subscriptions' settings follow the topic's.
                let subs: Vec<QueueKey> = self
                    .queues
                    .iter()
                    .filter(|(_, q)| q.role.topic() == Some(a.name.as_str()))
                    .map(|(i, q)| QueueKey {
                        index: i as u32,
                        generation: q.generation,
                    })
                    .collect();
                for key in &subs {
                    if let Some(q) = self.queue_mut(*key) {
                        if !matches!(q.role, Role::Subscription { declared: true, .. }) {
                            q.settings = a.settings.clone();
                            q.record_dirty = true;
                            self.mark(*key);
                        }
                    }
                }
                match self.addresses.get_mut(&a.name) {
                    Some(Addr::Topic(t)) => {
                        t.settings = a.settings;
                        t.subs = subs;
                    }
                    _ => {
                        let topic = Topic {
                            settings: a.settings,
                            subs,
                            producers: Vec::new(),
                        };
                        self.addresses.insert(a.name, Addr::Topic(topic));
                    }
                }
            }
        }
        Ok(())
    }

    /// A queue at an address: the existing one (with new settings) or a new one.
    fn declare_queue(&mut self, name: &str, role: Role, settings: AddressSettings) -> QueueKey {
        if let Some(key) = self.queue_names.get(name).copied() {
            if let Some(q) = self.queue_mut(key) {
                q.settings = settings;
                q.role = role;
                q.record_dirty = true;
            }
            self.ensure_in_store(key);
            self.addresses.insert(name.to_owned(), Addr::Queue(key));
            self.mark(key);
            return key;
        }
        let key = self.create_queue(name.to_owned(), role, settings);
        self.addresses.insert(name.to_owned(), Addr::Queue(key));
        key
    }

    /// A new queue; durable ones are created in the store at once.
    pub(crate) fn create_queue(
        &mut self,
        name: String,
        role: Role,
        settings: AddressSettings,
    ) -> QueueKey {
        let durable = role.durable();
        let key = self.insert_queue(name, role, settings);
        if durable {
            self.ensure_in_store(key);
        }
        key
    }

    /// A new queue in memory only.
    pub(crate) fn insert_queue(
        &mut self,
        name: String,
        role: Role,
        settings: AddressSettings,
    ) -> QueueKey {
        let generation = self.next_generation();
        let index = self
            .queues
            .insert(Queue::new(generation, name.clone(), role, settings));
        let key = QueueKey {
            index: index as u32,
            generation,
        };
        self.queue_names.insert(name, key);
        key
    }

    /// A queue for an unknown address (`auto_create_queues`).
    pub(crate) fn auto_create(&mut self, address: &str) {
        let role = Role::Queue { auto: true };
        let key = self.create_queue(address.to_owned(), role, AddressSettings::default());
        self.addresses.insert(address.to_owned(), Addr::Queue(key));
    }

    /// Remove a queue and everything in it (its consumers stay attached and get nothing more).
    pub(crate) fn delete_queue(&mut self, key: QueueKey) {
        let Some(q) = self.queue(key) else { return };
        let (name, in_store) = (q.name.clone(), q.in_store);
        let topic = q.role.topic().map(str::to_owned);
        let links: Vec<LinkKey> = q
            .consumers
            .iter()
            .chain(&q.browsers)
            .chain(&q.producers)
            .copied()
            .collect();
        self.detach_links(&links, &name);
        self.queues.remove(key.index as usize);
        self.queue_names.remove(&name);
        self.expiry.remove_queue(key);
        self.redeliveries.retain(|(_, q, _)| *q != key);
        if let Some(Addr::Topic(t)) = topic.and_then(|t| self.addresses.get_mut(&t)) {
            t.subs.retain(|q| *q != key);
        }
        if matches!(self.addresses.get(&name), Some(Addr::Queue(k)) if *k == key) {
            self.addresses.remove(&name);
        }
        if in_store {
            self.batch.ops.push(Op::DeleteQueue { queue: name });
        }
    }

    /// Tell the peers of links to a node that is gone; their detach comes back as a normal detach.
    fn detach_links(&mut self, links: &[LinkKey], name: &str) {
        for key in links {
            let Some(link) = self.link(*key) else {
                continue;
            };
            let (conn, local) = (link.conn, link.local);
            let error = AmqpError::new(condition::RESOURCE_DELETED, format!("{name} was deleted"));
            self.send(
                conn,
                Command::Detach {
                    local,
                    error: Some(error),
                    closed: true,
                },
            );
        }
    }

    /// Delete an address: a queue with its messages; a topic with the subscriptions it made (declared
    /// subscriptions stay, waiting for the topic to come back).
    pub(crate) fn delete_address(&mut self, name: &str) -> bool {
        match self.addresses.remove(name) {
            None => false,
            Some(Addr::Queue(key)) => {
                self.delete_queue(key);
                true
            }
            Some(Addr::Topic(t)) => {
                self.detach_links(&t.producers, name);
                for key in t.subs {
                    let declared = self.queue(key).is_some_and(|q| {
                        matches!(q.role, Role::Subscription { declared: true, .. })
                    });
                    if !declared {
                        self.delete_queue(key);
                    }
                }
                true
            }
        }
    }

    fn list_addresses(&self) -> Vec<BrokerAddress> {
        let mut out: Vec<BrokerAddress> = self
            .addresses
            .iter()
            .map(|(name, a)| match a {
                Addr::Topic(t) => BrokerAddress {
                    name: name.clone(),
                    kind: AddressKind::Topic,
                    settings: t.settings.clone(),
                },
                Addr::Queue(key) => {
                    let q = self.queue(*key);
                    let kind = match q.map(|q| &q.role) {
                        Some(Role::Subscription { topic, .. }) => AddressKind::Subscription {
                            topic: topic.clone(),
                        },
                        _ => AddressKind::Queue,
                    };
                    BrokerAddress {
                        name: name.clone(),
                        kind,
                        settings: q.map(|q| q.settings.clone()).unwrap_or_default(),
                    }
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn stats(&self) -> BrokerStats {
        let mut queues: Vec<QueueStats> = self
            .queues
            .iter()
            .map(|(_, q)| {
                let producers = match q.role.topic() {
                    None => q.producers.len(),
                    Some(t) => match self.addresses.get(t) {
                        Some(Addr::Topic(t)) => t.producers.len(),
                        _ => 0,
                    },
                };
                QueueStats {
                    name: q.name.clone(),
                    topic: q.role.topic().map(str::to_owned),
                    depth: q.depth(),
                    ready: q.ready.len() as u64,
                    unacked: u64::from(q.unacked),
                    delayed: q.delayed.len() as u64,
                    paged: q.paging.count,
                    bytes: q.bytes,
                    consumers: q.consumers.len() + q.browsers.len(),
                    producers,
                    durable: q.role.durable(),
                    counters: q.counters,
                }
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        BrokerStats {
            queues,
            connections: self.conns.len(),
            links: self.links.len(),
        }
    }
}
