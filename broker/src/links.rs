//! Attaching and detaching links: what a sender sends to, and what a receiver consumes from (a queue, a
//! declared subscription, or a subscription the attach itself names on a topic).

use shoal_amqp::{condition, AmqpError, DeliveryState, Value};
use shoal_router::core::api::{
    AttachDetails, AttachRequest, Command, ConnId, LinkKey, CONTAINER_ID_PROPERTY,
};

use crate::core::{Addr, Consumer, Core, Link, LinkKind, Producer};
use crate::meta::Role;
use crate::queue::{Queue, QueueKey};
use crate::selector::Selector;

/// What a receiver's source asks for on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubscriptionRequest {
    /// The subscription queue's store name.
    pub name: String,
    pub durable: bool,
    pub shared: bool,
}

fn has_capability(details: &AttachDetails, cap: &str) -> bool {
    details
        .source
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .is_some_and(|caps| caps.iter().any(|c| c.as_str() == cap))
}

/// The client's container-id: the one a router names when it routes the link for a client, else the peer's.
fn container_id(details: &AttachDetails) -> &str {
    details
        .properties
        .as_ref()
        .and_then(|props| {
            props
                .iter()
                .find(|(k, _)| k.as_str() == CONTAINER_ID_PROPERTY)
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Symbol(s) => Some(s.as_str()),
                    _ => None,
                })
        })
        .unwrap_or(&details.container_id)
}

/// Which subscription of `topic` a receiver's attach names.
///
/// - durable (`durable` != none and `expiry-policy` never), not shared: `container-id:link-name`, as
///   JMS-over-AMQP clients name a durable subscription (client id + subscription name);
/// - shared (the `shared` capability): the link name alone, so receivers of any connection compete on it
///   (a `|suffix` that clients add to tell their links apart is dropped); durable or volatile;
/// - otherwise a private subscription, unique to this link, gone when it detaches.
pub(crate) fn subscription_for(
    topic: &str,
    details: &AttachDetails,
    private_seq: u64,
) -> SubscriptionRequest {
    let source = details.source.as_deref();
    let durable = source.is_some_and(|s| {
        s.durable > 0
            && s.expiry_policy
                .as_ref()
                .is_some_and(|p| p.as_str() == "never")
    });
    let shared = has_capability(details, "shared");
    let link = details.link_name.as_str();
    let name = if shared {
        let base = link.split('|').next().unwrap_or(link);
        if durable {
            base.to_owned()
        } else {
            format!("volatile:{base}")
        }
    } else if durable {
        format!("{}:{link}", container_id(details))
    } else {
        format!("private:{}:{link}:{private_seq}", container_id(details))
    };
    SubscriptionRequest {
        name: Queue::subscription_name(topic, &name),
        durable,
        shared,
    }
}

impl Core {
    fn refuse(&mut self, conn: ConnId, local: u64, condition: &str, description: String) {
        let error = AmqpError::new(condition, description);
        self.send(conn, Command::Refused { local, error });
    }

    fn add_link(&mut self, conn: ConnId, local: u64, kind: LinkKind) -> LinkKey {
        let generation = self.next_generation();
        let index = self.links.insert(Link {
            generation,
            conn,
            local,
            kind,
        });
        let key = LinkKey::new(index as u32, generation);
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.push(key);
        }
        self.send(
            conn,
            Command::Attached {
                local,
                link: key,
                address: None,
            },
        );
        key
    }

    /// A client sender: the broker receives into a queue or topic (or, anonymous, wherever each `to` says).
    pub(crate) fn attach_producer(&mut self, conn: ConnId, req: AttachRequest) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let local = req.local;
        if let Some(address) = &req.address {
            let manage = address == crate::manage::MANAGE_ADDRESS;
            if !manage && !self.addresses.contains_key(address.as_str()) {
                if !self.limits.auto_create {
                    return self.refuse(
                        conn,
                        local,
                        condition::NOT_FOUND,
                        format!("no queue or topic {address}"),
                    );
                }
                self.auto_create(address);
            }
        }
        let kind = LinkKind::Producer(Producer {
            address: req.address.clone(),
            credit: 0,
            in_flight: 0,
            partial: None,
        });
        let key = self.add_link(conn, local, kind);
        if let Some(address) = &req.address {
            match self.addresses.get_mut(address.as_str()) {
                Some(Addr::Topic(t)) => t.producers.push(key),
                Some(Addr::Queue(q)) => {
                    let q = *q;
                    if let Some(q) = self.queue_mut(q) {
                        q.producers.push(key);
                    }
                }
                None => {}
            }
        }
        self.replenish(key);
    }

    /// A client receiver: consume (or browse) a queue or subscription.
    pub(crate) fn attach_consumer(&mut self, conn: ConnId, req: AttachRequest) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let local = req.local;
        if req.dynamic {
            return self.refuse(
                conn,
                local,
                condition::NOT_IMPLEMENTED,
                "the broker has no dynamic nodes".into(),
            );
        }
        let Some(address) = req.address.clone() else {
            return self.refuse(
                conn,
                local,
                condition::INVALID_FIELD,
                "a receiver needs a source address".into(),
            );
        };
        if !self.addresses.contains_key(&address) {
            if !self.limits.auto_create {
                return self.refuse(
                    conn,
                    local,
                    condition::NOT_FOUND,
                    format!("no queue or topic {address}"),
                );
            }
            self.auto_create(&address);
        }
        let browse = req
            .details
            .source
            .as_ref()
            .and_then(|s| s.distribution_mode.as_ref())
            .is_some_and(|m| m.as_str() == "copy");
        let filter = req
            .details
            .source
            .as_ref()
            .and_then(|s| s.filter.as_deref());
        let selector = match Selector::from_filter(filter) {
            Ok(s) => s,
            Err(e) => return self.refuse(conn, local, condition::INVALID_FIELD, e.to_string()),
        };
        let (queue, selector) = match self.addresses.get(&address) {
            Some(Addr::Queue(q)) => (*q, selector.map(Box::new)),
            Some(Addr::Topic(_)) => {
                self.private_seq += 1;
                let request = subscription_for(&address, &req.details, self.private_seq);
                // On a topic the selector decides what the subscription collects.
                (self.subscribe(&address, request, selector), None)
            }
            None => return,
        };
        let kind = LinkKind::Consumer(Consumer {
            queue,
            limit: 0,
            sent: 0,
            drain: false,
            browse: browse.then_some(0),
            browse_reading: false,
            selector,
        });
        let key = self.add_link(conn, local, kind);
        if let Some(q) = self.queue_mut(queue) {
            if browse {
                q.browsers.push(key);
            } else {
                q.consumers.push(key);
            }
        }
    }

    /// The subscription queue `request` names on `topic`, created (and joined to the topic) if new.
    fn subscribe(
        &mut self,
        topic: &str,
        request: SubscriptionRequest,
        selector: Option<Selector>,
    ) -> QueueKey {
        if let Some(key) = self.queue_names.get(&request.name).copied() {
            // An existing subscription's selector changes with its attach (JMS re-subscribes this way).
            if let Some(q) = self.queue_mut(key) {
                if q.filter != selector {
                    q.filter = selector;
                    q.record_dirty = true;
                }
            }
            return key;
        }
        let settings = match self.addresses.get(topic) {
            Some(Addr::Topic(t)) => t.settings.clone(),
            _ => Default::default(),
        };
        let role = Role::Subscription {
            topic: topic.to_owned(),
            declared: false,
            durable: request.durable,
            shared: request.shared,
        };
        let key = self.insert_queue(request.name, role, settings);
        if let Some(q) = self.queue_mut(key) {
            q.filter = selector;
        }
        if request.durable {
            self.ensure_in_store(key);
        }
        if let Some(Addr::Topic(t)) = self.addresses.get_mut(topic) {
            t.subs.push(key);
        }
        key
    }

    /// The link is gone: a sender's half-received message is dropped; a receiver's unsettled deliveries come
    /// back (the connection reports them as released first; anything left is released here), and a private
    /// subscription goes with its last receiver.
    /// A link is gone. A consumer that *closed* its link (rather than detaching, or losing its connection)
    /// ends a durable subscription it was the last consumer of: that is how JMS-over-AMQP clients unsubscribe.
    /// Subscriptions declared by a manifest stay: only an admin deletes those.
    pub(crate) fn detach(&mut self, key: LinkKey, closed: bool) {
        if self.link(key).is_none() {
            return;
        }
        let (index, _) = key.parts();
        let link = self.links.remove(index as usize);
        match link.kind {
            LinkKind::Producer(p) => {
                let Some(address) = p.address else { return };
                match self.addresses.get_mut(&address) {
                    Some(Addr::Topic(t)) => t.producers.retain(|l| *l != key),
                    Some(Addr::Queue(q)) => {
                        let q = *q;
                        if let Some(q) = self.queue_mut(q) {
                            q.producers.retain(|l| *l != key);
                        }
                    }
                    None => {}
                }
            }
            LinkKind::Consumer(c) => {
                let left: Vec<_> = self
                    .deliveries
                    .iter()
                    .filter(|(_, d)| d.link == key)
                    .map(|(i, d)| shoal_router::core::api::DeliveryKey::new(i as u32, d.generation))
                    .collect();
                for d in left {
                    self.outcome(None, d, DeliveryState::Released);
                }
                let Some(q) = self.queue_mut(c.queue) else {
                    return;
                };
                q.consumers.retain(|l| *l != key);
                q.browsers.retain(|l| *l != key);
                let unused = q.consumers.is_empty() && q.browsers.is_empty();
                let unsubscribed = closed
                    && matches!(
                        q.role,
                        Role::Subscription {
                            declared: false,
                            ..
                        }
                    );
                if unused && (!q.role.durable() || unsubscribed) {
                    self.delete_queue(c.queue);
                } else {
                    self.mark(c.queue);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_amqp::{Source, Symbol};

    fn details(durable: bool, shared: bool, link: &str, props: Option<&str>) -> AttachDetails {
        AttachDetails {
            link_name: link.into(),
            container_id: "peer".into(),
            source: Some(Box::new(Source {
                address: Some("t".into()),
                durable: if durable { 2 } else { 0 },
                expiry_policy: durable.then(|| Symbol::from("never")),
                capabilities: shared.then(|| vec![Symbol::from("shared")]),
                ..Source::default()
            })),
            properties: props.map(|c| {
                vec![(
                    Symbol::from(CONTAINER_ID_PROPERTY),
                    Value::String(c.to_owned()),
                )]
            }),
            ..AttachDetails::default()
        }
    }

    #[test]
    fn durable_subscriptions_are_named_by_container_and_link() {
        let s = subscription_for("t", &details(true, false, "sub1", None), 1);
        assert_eq!(s.name, "t::peer:sub1");
        assert!(s.durable && !s.shared);
        // Through a router, the client's own container-id counts, not the router's.
        let s = subscription_for("t", &details(true, false, "sub1", Some("client-9")), 1);
        assert_eq!(s.name, "t::client-9:sub1");
    }

    #[test]
    fn shared_subscriptions_are_named_by_link_alone() {
        let a = subscription_for("t", &details(true, true, "orders|2", Some("a")), 1);
        let b = subscription_for("t", &details(true, true, "orders", Some("b")), 2);
        assert_eq!(a.name, "t::orders");
        assert_eq!(a, b);
        let v = subscription_for("t", &details(false, true, "orders", None), 3);
        assert_eq!(v.name, "t::volatile:orders");
        assert!(!v.durable && v.shared);
    }

    #[test]
    fn plain_receivers_get_private_subscriptions() {
        let a = subscription_for("t", &details(false, false, "r", None), 1);
        let b = subscription_for("t", &details(false, false, "r", None), 2);
        assert_ne!(a.name, b.name);
        assert!(!a.durable && !a.shared);
        // Durable without expiry-policy never is not a durable subscription.
        let mut d = details(true, false, "r", None);
        if let Some(s) = d.source.as_mut() {
            s.expiry_policy = None;
        }
        assert!(!subscription_for("t", &d, 3).durable);
    }
}
