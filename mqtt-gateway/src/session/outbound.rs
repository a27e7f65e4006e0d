//! Core -> client: subscriptions as outgoing links, deliveries to PUBLISH, PUBACK to outcomes.
//!
//! Each subscription is a pattern receiver on the core (every subscriber gets its copy, as MQTT wants, even
//! on an address whose AMQP consumers share messages). Its credit is [`GatewayConfig::subscription_credit`]:
//! one unit comes back when a delivery is done with (written at QoS 0, PUBACKed at QoS 1), so what waits in
//! the gateway is bounded by subscriptions times credit, and unacknowledged QoS 1 PUBLISHes further by the
//! client's receive maximum.
//!
//! [`GatewayConfig::subscription_credit`]: crate::GatewayConfig::subscription_credit

use std::sync::Arc;

use shoal_amqp::DeliveryState;
use shoal_mqtt::{
    reason, topic, Packet, QoS, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Version,
};
use shoal_router::core::api::{DeliveryKey, Event, LinkKey, LocalLink, Msg};

use super::Session;
use crate::convert;
use crate::mapping::{self, MapError, SubscribeTarget};
use crate::retained::RetainedMsg;
use crate::server::lock;

/// An outgoing link (the client receives on it): one per subscription.
pub(super) struct ReceiverLink {
    pub key: Option<LinkKey>,
    pub target: SubscribeTarget,
    pub filter: String,
    pub qos: QoS,
    pub delivery_count: u32,
    pub limit: u32,
    /// A delivery arriving in parts, with the address it came by (see [`OutItem::Delivery`]).
    pub partial: Option<(Option<DeliveryKey>, Msg, Option<Arc<str>>)>,
    /// Unsubscribed before the core attached it: detach it as soon as it is.
    pub unsubscribed: bool,
}

/// What waits for the client's socket.
pub(super) enum OutItem {
    Delivery {
        link: LocalLink,
        delivery: Option<DeliveryKey>,
        msg: Msg,
        /// The address the core routed it by, for a pattern subscription (the topic of a message that has no
        /// `to`; the device of a gateway's command).
        address: Option<Arc<str>>,
    },
    Retained {
        msg: Arc<RetainedMsg>,
        qos: QoS,
    },
}

/// A QoS 1 PUBLISH the client has not acknowledged yet.
pub(super) struct InflightOut {
    pub link: LocalLink,
    /// The core's delivery to settle on PUBACK (`None`: presettled, retained, or already released).
    pub settle: Option<(LinkKey, DeliveryKey)>,
}

impl Session {
    pub(super) fn on_subscribe(&mut self, s: Subscribe) {
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for (filter, opts) in &s.filters {
            let (code, new) = self.subscribe_one(filter.as_str(), opts.qos);
            codes.push(code);
            let send_retained = match opts.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => new,
                RetainHandling::DoNotSend => false,
            };
            if code < 0x80 && send_retained {
                retained.push((filter.as_str().to_owned(), opts.qos));
            }
        }
        let ack = Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            reason_codes: codes.into(),
        });
        if ack.encode(self.version, &mut self.out).is_err() {
            self.close = Some(super::Close::Server(reason::UNSPECIFIED_ERROR));
        }
        self.sync_session();
        for (filter, qos) in retained {
            if !matches!(
                self.subs.get(&filter).and_then(|l| self.receivers.get(l)),
                Some(ReceiverLink {
                    target: SubscribeTarget::Plain { .. },
                    ..
                })
            ) {
                continue;
            }
            let found = lock(&self.shared.retained).matching(&filter);
            for msg in found {
                let qos = convert::outbound_qos(qos.min(msg.qos));
                self.queue.push_back(OutItem::Retained { msg, qos });
            }
        }
    }

    /// The SUBACK code for one filter, and whether the subscription is new.
    pub(super) fn subscribe_one(&mut self, filter: &str, qos: QoS) -> (u8, bool) {
        let failure = |v5: u8| match self.version {
            Version::V5 => v5,
            Version::V311 => reason::V311_SUBACK_FAILURE,
        };
        let granted = convert::outbound_qos(qos);
        if let Some(l) = self
            .subs
            .get(filter)
            .and_then(|l| self.receivers.get_mut(l))
        {
            l.qos = granted;
            return (granted as u8, false);
        }
        if topic::split_shared(filter).0.is_some() {
            return (failure(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED), false);
        }
        if self.subs.len() >= self.shared.config.max_subscriptions {
            return (failure(reason::QUOTA_EXCEEDED), false);
        }
        let target = {
            let gateway_for = self.gateway_for_sub();
            mapping::map_subscribe(filter, self.identity.as_ref(), &gateway_for)
        };
        let target = match target {
            Ok(t) => t,
            Err(MapError::NotAuthorized) => return (failure(reason::NOT_AUTHORIZED), false),
            Err(MapError::Invalid) => return (failure(reason::TOPIC_FILTER_INVALID), false),
            Err(MapError::Unsupported) => {
                return (failure(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED), false)
            }
        };
        let local = self.new_local();
        let req = match &target {
            SubscribeTarget::Plain { pattern } => {
                self.request(local, Some(pattern.clone()), true, false)
            }
            SubscribeTarget::Commands { device, .. } => {
                let address = format!("command/{}/{device}", self.tenant());
                self.request(local, Some(address), false, false)
            }
            SubscribeTarget::GatewayCommands { .. } => {
                let pattern = mapping::gateway_commands_pattern(&self.tenant());
                self.request(local, Some(pattern), true, false)
            }
        };
        self.events.push(Event::AttachOutgoing(req));
        if let Some(device) = self.notified_device(&target) {
            self.notify_commands(&device, -1);
        }
        self.receivers.insert(
            local,
            ReceiverLink {
                key: None,
                target,
                filter: filter.to_owned(),
                qos: granted,
                delivery_count: 0,
                limit: 0,
                partial: None,
                unsubscribed: false,
            },
        );
        self.subs.insert(filter.to_owned(), local);
        (granted as u8, true)
    }

    fn tenant(&self) -> String {
        self.identity
            .as_ref()
            .map(|i| i.tenant_id.clone())
            .unwrap_or_default()
    }

    /// The device whose readiness for commands a subscription announces (Hono's empty notification). A
    /// gateway's `command//+/req/#` announces the gateway itself, as Hono's MQTT adapter does: the devices it
    /// acts for are not known one by one, and announcing each of them would mean listing the registry.
    fn notified_device(&self, target: &SubscribeTarget) -> Option<String> {
        match target {
            SubscribeTarget::Commands { device, .. } => Some(device.clone()),
            SubscribeTarget::GatewayCommands { .. } => {
                self.identity.as_ref().map(|i| i.device_id.clone())
            }
            SubscribeTarget::Plain { .. } => None,
        }
    }

    fn gateway_for_sub(&self) -> impl Fn(&str) -> bool + '_ {
        move |device: &str| match (&self.identity, &self.shared.registry) {
            (Some(id), Some(reg)) => reg.is_gateway_for(&id.tenant_id, &id.device_id, device),
            _ => false,
        }
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for filter in &u.filters {
            let Some(local) = self.subs.remove(filter.as_str()) else {
                codes.push(reason::NO_SUBSCRIPTION_EXISTED);
                continue;
            };
            codes.push(reason::SUCCESS);
            let Some(r) = self.receivers.get_mut(&local) else {
                continue;
            };
            let target = r.target.clone();
            if let Some(device) = self.notified_device(&target) {
                self.notify_commands(&device, 0);
            }
            self.close_receiver(local);
        }
        self.sync_session();
        let ack = Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            reason_codes: codes.into(),
        });
        if ack.encode(self.version, &mut self.out).is_err() {
            self.close = Some(super::Close::Server(reason::UNSPECIFIED_ERROR));
        }
    }

    /// Detach a subscription's link, first releasing what the client has not taken from it.
    fn close_receiver(&mut self, local: LocalLink) {
        let Some(r) = self.receivers.get_mut(&local) else {
            return;
        };
        let Some(key) = r.key else {
            r.unsubscribed = true;
            return;
        };
        self.receivers.remove(&local);
        let release = |delivery| Event::Outcome {
            link: Some(key),
            delivery,
            state: DeliveryState::Released,
        };
        let mut events = Vec::new();
        self.queue.retain(|item| match item {
            OutItem::Delivery { link, delivery, .. } if *link == local => {
                events.extend(delivery.map(release));
                false
            }
            _ => true,
        });
        for f in self.inflight_out.values_mut() {
            if f.link == local {
                if let Some((_, d)) = f.settle.take() {
                    events.push(release(d));
                }
            }
        }
        self.events.extend(events);
        self.events.push(Event::Detach {
            link: key,
            error: None,
            closed: true,
        });
    }

    pub(super) fn receiver_attached(&mut self, local: LocalLink, key: LinkKey) {
        let Some(r) = self.receivers.get_mut(&local) else {
            self.events.push(Event::Detach {
                link: key,
                error: None,
                closed: true,
            });
            return;
        };
        r.key = Some(key);
        if r.unsubscribed {
            self.close_receiver(local);
            return;
        }
        r.limit = r
            .delivery_count
            .wrapping_add(self.shared.config.subscription_credit);
        self.events.push(Event::Credit {
            link: key,
            limit: r.limit,
            // Draining the session queue: the broker says when it has nothing more.
            drain: self.draining && self.stored == Some(local),
        });
    }

    pub(super) fn receiver_gone(&mut self, local: LocalLink) {
        if self.stored == Some(local) {
            // No queue to drain after all (no broker, or it went away): go on with live deliveries.
            self.stored = None;
            self.drained();
        }
        if let Some(r) = self.receivers.remove(&local) {
            if self.subs.get(&r.filter) == Some(&local) {
                self.subs.remove(&r.filter);
            }
            // Deliveries still queued for it: their link is gone in the core.
            let mut events = Vec::new();
            self.queue.retain(|item| match item {
                OutItem::Delivery { link, delivery, .. } if *link == local => {
                    events.extend(delivery.map(|delivery| Event::Outcome {
                        link: None,
                        delivery,
                        state: DeliveryState::Released,
                    }));
                    false
                }
                _ => true,
            });
            self.events.extend(events);
        }
    }

    /// A delivery (or a part of one) for a subscription.
    pub(super) fn deliver(
        &mut self,
        local: LocalLink,
        delivery: Option<DeliveryKey>,
        msg: Option<Msg>,
        more: bool,
        first: bool,
        address: Option<Arc<str>>,
    ) {
        let Some(r) = self.receivers.get_mut(&local) else {
            if let (true, Some(delivery)) = (first, delivery) {
                self.events.push(Event::Outcome {
                    link: None,
                    delivery,
                    state: DeliveryState::Released,
                });
            }
            return;
        };
        if first {
            r.delivery_count = r.delivery_count.wrapping_add(1);
        }
        let (delivery, msg, address) = match (r.partial.take(), msg) {
            (None, Some(m)) => (delivery, m, address),
            (Some((d, mut whole, address)), part) => {
                if let Some(part) = part {
                    whole.append(part);
                }
                (d, whole, address)
            }
            (None, None) => return,
        };
        if more {
            r.partial = Some((delivery, msg, address));
            return;
        }
        let item = OutItem::Delivery {
            link: local,
            delivery,
            msg,
            address,
        };
        if self.draining && self.stored != Some(local) {
            self.held.push_back(item);
        } else {
            self.queue.push_back(item);
        }
    }

    pub(super) fn abort_partial(&mut self, local: LocalLink) {
        if let Some(r) = self.receivers.get_mut(&local) {
            r.partial = None;
            self.credit_back(local);
        }
    }

    pub(super) fn credit_back(&mut self, local: LocalLink) {
        if let Some(r) = self.receivers.get_mut(&local) {
            r.limit = r.limit.wrapping_add(1);
            if !self.credit_due.contains(&local) {
                self.credit_due.push(local);
            }
        }
    }

    pub(super) fn flush_credit(&mut self) {
        for local in std::mem::take(&mut self.credit_due) {
            if let Some(ReceiverLink {
                key: Some(key),
                limit,
                ..
            }) = self.receivers.get(&local)
            {
                self.events.push(Event::Credit {
                    link: *key,
                    limit: *limit,
                    drain: self.draining && self.stored == Some(local),
                });
            }
        }
    }
}
