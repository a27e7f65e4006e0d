//! Client -> core: PUBLISH to AMQP transfers, and the core's outcomes back to PUBACK/PUBREC.
//!
//! Plain topics, telemetry and command responses go on one anonymous link (each message's `to` routes it);
//! events get a link to `event/TENANT`, so that a broker queue holding that address (store and forward) gets
//! them by link route. A QoS 1 PUBACK (QoS 2 PUBREC) is written only when the
//! core settles the transfer as accepted; what MQTT 5 says otherwise is in [`Session::settled`].

use shoal_amqp::{condition, AmqpError, DeliveryState, MessageBuilder, Symbol, Value};
use shoal_mqtt::{reason, Properties, PubRespKind, Publish, QoS, Version};
use shoal_router::core::api::{Event, LinkKey, LocalLink, Msg};
use tokio::time::Instant;

use super::{Close, Session};
use crate::convert::{self, EMPTY_NOTIFICATION};
use crate::mapping::{self, HonoKind, MapError, PublishTarget};
use crate::retained::RetainedMsg;
use crate::server::lock;

/// Command (un)subscribe notifications waiting for credit on the event link, at most.
const MAX_NOTICES: usize = 16;

/// An incoming link (the client sends on it).
pub(super) struct SenderLink {
    pub key: Option<LinkKey>,
    pub credit: u32,
    /// Transfers sent on it, to account for credit the core granted before it saw them.
    pub sent: u32,
    pub address: Option<String>,
}

/// A transfer waiting for its link's attach or credit (the socket is not read meanwhile, so at most one
/// client PUBLISH waits, plus the gateway's own notifications).
pub(super) struct Waiting {
    /// When it began to wait: after `GatewayConfig::credit_wait` it is given up.
    pub since: Instant,
    pub link: LocalLink,
    pub to: Option<String>,
    pub msg: Msg,
    /// `None`: presettled (QoS 0, notifications).
    pub answer: Option<PendingIn>,
}

/// What to answer the client when the core settles a transfer.
#[derive(Clone, Copy)]
pub(super) struct PendingIn {
    pub packet_id: u16,
    pub qos: QoS,
}

impl Session {
    pub(super) fn attach_sender(&mut self, address: Option<String>) -> LocalLink {
        let local = self.new_local();
        let req = self.request(local, address.clone(), false, true);
        self.events.push(Event::AttachIncoming(req));
        self.senders.insert(
            local,
            SenderLink {
                key: None,
                credit: 0,
                sent: 0,
                address,
            },
        );
        local
    }

    /// The link for a Hono address (attached on first use).
    fn sender_for(&mut self, address: String) -> LocalLink {
        if let Some(&l) = self.by_address.get(&address) {
            return l;
        }
        let l = self.attach_sender(Some(address.clone()));
        self.by_address.insert(address, l);
        l
    }

    fn gateway_for(&self) -> impl Fn(&str) -> bool + '_ {
        move |device: &str| match (&self.identity, &self.shared.registry) {
            (Some(id), Some(reg)) => reg.is_gateway_for(&id.tenant_id, &id.device_id, device),
            _ => false,
        }
    }

    pub(super) fn on_publish(&mut self, p: Publish) {
        let qos = p.qos;
        let id = p.packet_id;
        if qos == QoS::ExactlyOnce && self.awaiting_rel.contains(&id) {
            // A resent QoS 2 PUBLISH that already went on: only the PUBREC is repeated (exactly once).
            return self.pub_resp(PubRespKind::PubRec, id, reason::SUCCESS);
        }
        if qos != QoS::AtMostOnce && self.ids_in.contains(&id) {
            // A resend of one still on its way: its answer will come.
            return;
        }
        if p.properties.topic_alias.is_some() {
            // The CONNACK announced no topic aliases (topic-alias-maximum 0).
            self.close = Some(Close::Server(reason::TOPIC_ALIAS_INVALID));
            return;
        }
        if let Err(e) = p.check_payload_format() {
            return self.refuse_publish(qos, id, e.reason_code());
        }
        let target = {
            let gateway_for = self.gateway_for();
            mapping::map_publish(p.topic.as_str(), self.identity.as_ref(), &gateway_for)
        };
        let (link, to, msg) = match target {
            Ok(PublishTarget::Plain) => {
                if p.retain {
                    self.retain(&p);
                }
                let to = p.topic.as_str().to_owned();
                let b = convert::builder_for(&p, &to, false, Vec::new());
                let msg = convert::to_msg(&b, &p.payload, &self.budget);
                (self.anonymous, Some(to), msg)
            }
            Ok(PublishTarget::Hono { kind, device }) => {
                let Some(who) = &self.identity else {
                    return self.refuse_publish(qos, id, reason::NOT_AUTHORIZED);
                };
                let address = kind.address(&who.tenant_id);
                let props = hono_properties(&who.tenant_id, &device, p.topic.as_str(), qos);
                let b = convert::builder_for(&p, &address, kind == HonoKind::Event, props);
                let msg = convert::to_msg(&b, &p.payload, &self.budget);
                match kind {
                    // Telemetry without a consumer is released at once (no PUBACK rather than a lie) on the
                    // anonymous link, which always has credit.
                    HonoKind::Telemetry => (self.anonymous, Some(address), msg),
                    // Events go on a link to `event/TENANT`, which the core link-routes to the broker when a
                    // queue holds that address (store and forward). Without a queue or a consumer that link
                    // gets no credit and the device waits (its socket is not read) until one appears.
                    HonoKind::Event => (self.sender_for(address), None, msg),
                }
            }
            Ok(PublishTarget::CommandResponse {
                req_id,
                status,
                device,
            }) => {
                let (Some(who), Some((reply_to, correlation))) =
                    (&self.identity, self.commands.take(&req_id))
                else {
                    // Unknown or forgotten request: nobody waits for this response.
                    return self.refuse_publish(qos, id, reason::UNSPECIFIED_ERROR);
                };
                let mut props = hono_properties(&who.tenant_id, &device, p.topic.as_str(), qos);
                props.push(("status".into(), Value::Int(status)));
                let mut b = convert::builder_for(&p, &reply_to, false, props);
                b.correlation_id = Some(correlation);
                let msg = convert::to_msg(&b, &p.payload, &self.budget);
                (self.anonymous, Some(reply_to), msg)
            }
            Err(e) => {
                let code = match e {
                    MapError::NotAuthorized => reason::NOT_AUTHORIZED,
                    MapError::Invalid | MapError::Unsupported => reason::TOPIC_NAME_INVALID,
                };
                return self.refuse_publish(qos, id, code);
            }
        };
        let answer = (qos != QoS::AtMostOnce).then_some(PendingIn { packet_id: id, qos });
        if answer.is_some() {
            self.ids_in.insert(id);
        }
        self.waiting.push_back(Waiting {
            since: Instant::now(),
            link,
            to,
            msg,
            answer,
        });
        self.flush_waiting();
    }

    /// When the first waiting transfer is given up, if one waits.
    pub(super) fn give_up_at(&self) -> Option<Instant> {
        self.waiting
            .front()
            .map(|w| w.since + self.shared.config.credit_wait)
    }

    /// The first waiting transfer waited too long for credit: nobody takes it now (an event address with
    /// no queue and no consumer). The client hears what it hears for telemetry nobody takes, and the socket
    /// is read again.
    pub(super) fn give_up_waiting(&mut self) {
        let Some(w) = self.waiting.pop_front() else {
            return;
        };
        tracing::debug!(client = %self.client_id, "PUBLISH not passed on: no credit in time");
        if let Some(a) = w.answer {
            self.ids_in.remove(&a.packet_id);
            match (self.version, a.qos) {
                (Version::V5, QoS::ExactlyOnce) => self.pub_resp(
                    PubRespKind::PubRec,
                    a.packet_id,
                    reason::NO_MATCHING_SUBSCRIBERS,
                ),
                (Version::V5, _) => self.pub_resp(
                    PubRespKind::PubAck,
                    a.packet_id,
                    reason::NO_MATCHING_SUBSCRIBERS,
                ),
                // 3.1.1 cannot say "not delivered": no PUBACK rather than a lie.
                (Version::V311, _) => {}
            }
        }
    }

    /// A PUBLISH the gateway does not pass on. MQTT 5 has reason codes; 3.1.1 has none, so its client is
    /// disconnected (what 3.1.1 says to do) rather than told a lie.
    fn refuse_publish(&mut self, qos: QoS, packet_id: u16, code: u8) {
        tracing::debug!(client = %self.client_id, code, "PUBLISH refused");
        match (self.version, qos) {
            (Version::V5, QoS::AtMostOnce) => {}
            (Version::V5, QoS::AtLeastOnce) => self.pub_resp(PubRespKind::PubAck, packet_id, code),
            (Version::V5, QoS::ExactlyOnce) => self.pub_resp(PubRespKind::PubRec, packet_id, code),
            (Version::V311, _) => self.close = Some(Close::Server(code)),
        }
    }

    fn retain(&mut self, p: &Publish) {
        let properties = Properties {
            content_type: p.properties.content_type.clone(),
            user: p.properties.user.clone(),
            payload_format_indicator: p.properties.payload_format_indicator,
            ..Properties::default()
        };
        let stored = lock(&self.shared.retained).set(RetainedMsg {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos,
            properties,
        });
        if !stored {
            tracing::debug!(topic = %p.topic, "retained message not kept: the store is full");
        }
    }

    /// Send what waits, in order, while links have credit.
    pub(super) fn flush_waiting(&mut self) {
        while let Some(w) = self.waiting.front() {
            let Some(l) = self.senders.get_mut(&w.link) else {
                // The link was refused or detached: fail what waited for it.
                if let Some(w) = self.waiting.pop_front() {
                    if let Some(a) = w.answer {
                        self.ids_in.remove(&a.packet_id);
                        self.refuse_publish(a.qos, a.packet_id, reason::UNSPECIFIED_ERROR);
                    }
                }
                continue;
            };
            let (Some(key), true) = (l.key, l.credit > 0) else {
                return;
            };
            l.credit -= 1;
            l.sent = l.sent.wrapping_add(1);
            let Some(w) = self.waiting.pop_front() else {
                return;
            };
            let delivery_id = self.next_delivery_id;
            self.next_delivery_id = self.next_delivery_id.wrapping_add(1);
            if let Some(a) = w.answer {
                self.pending_in.insert(delivery_id, a);
            }
            self.events.push(Event::Transfer {
                link: key,
                delivery_id,
                settled: w.answer.is_none(),
                to: w.to,
                msg: w.msg,
                more: false,
            });
        }
    }

    /// The core's outcome for a client's QoS 1/2 PUBLISH.
    pub(super) fn settled(&mut self, delivery_id: u32, state: DeliveryState) {
        let Some(p) = self.pending_in.remove(&delivery_id) else {
            return;
        };
        self.ids_in.remove(&p.packet_id);
        let code = match &state {
            DeliveryState::Accepted => reason::SUCCESS,
            DeliveryState::Released | DeliveryState::Modified { .. } => {
                reason::NO_MATCHING_SUBSCRIBERS
            }
            DeliveryState::Rejected { error } => rejected_code(error.as_ref()),
            DeliveryState::Received { .. } => return,
        };
        let kind = match p.qos {
            QoS::ExactlyOnce => PubRespKind::PubRec,
            _ => PubRespKind::PubAck,
        };
        match self.version {
            Version::V5 => self.pub_resp(kind, p.packet_id, code),
            // 3.1.1 has no way to say "not delivered": the client keeps the message and sends it again when it
            // reconnects.
            Version::V311 if code == reason::SUCCESS => self.pub_resp(kind, p.packet_id, code),
            Version::V311 => {
                tracing::debug!(client = %self.client_id, packet_id = p.packet_id, "not accepted: no PUBACK");
                return;
            }
        }
        if kind == PubRespKind::PubRec && code < 0x80 {
            self.awaiting_rel.insert(p.packet_id);
        }
    }

    pub(super) fn attached(&mut self, local: LocalLink, key: LinkKey) {
        if let Some(l) = self.senders.get_mut(&local) {
            l.key = Some(key);
            return;
        }
        self.receiver_attached(local, key);
    }

    pub(super) fn refused(&mut self, local: LocalLink, error: &AmqpError) {
        tracing::debug!(client = %self.client_id, local, error = ?error.description, "link refused");
        self.detached(local);
    }

    pub(super) fn detached(&mut self, local: LocalLink) {
        if let Some(l) = self.senders.remove(&local) {
            if let Some(a) = l.address {
                self.by_address.remove(&a);
            }
            if local == self.anonymous {
                // Nothing can be sent without it: re-attach.
                self.anonymous = self.attach_sender(None);
            }
            return;
        }
        self.receiver_gone(local);
    }

    /// Hono's notification that a device can (`ttd` -1) or no longer can (`ttd` 0) receive commands.
    pub(super) fn notify_commands(&mut self, device: &str, ttd: i32) {
        let Some(who) = &self.identity else {
            return;
        };
        let address = HonoKind::Event.address(&who.tenant_id);
        let b = MessageBuilder {
            to: Some(address.clone()),
            content_type: Some(Symbol::from(EMPTY_NOTIFICATION)),
            creation_time: Some(convert::now_millis()),
            application_properties: vec![
                ("device_id".into(), Value::from(device)),
                ("tenant_id".into(), Value::from(who.tenant_id.as_str())),
                ("ttd".into(), Value::Int(ttd)),
            ],
            ..MessageBuilder::default()
        };
        let msg = convert::to_msg(&b, &bytes::Bytes::new(), &self.budget);
        let link = self.sender_for(address);
        // Best effort, and never a reason to stop reading the device: bounded, the oldest dropped.
        if self.notices.len() >= MAX_NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back((link, msg));
        self.flush_notices();
    }

    /// Send the notifications whose link has credit; drop those whose link is gone.
    pub(super) fn flush_notices(&mut self) {
        let mut keep = std::collections::VecDeque::new();
        while let Some((link, msg)) = self.notices.pop_front() {
            let Some(l) = self.senders.get_mut(&link) else {
                continue;
            };
            let (Some(key), true) = (l.key, l.credit > 0) else {
                keep.push_back((link, msg));
                continue;
            };
            l.credit -= 1;
            l.sent = l.sent.wrapping_add(1);
            let delivery_id = self.next_delivery_id;
            self.next_delivery_id = self.next_delivery_id.wrapping_add(1);
            self.events.push(Event::Transfer {
                link: key,
                delivery_id,
                settled: true,
                to: None,
                msg,
                more: false,
            });
        }
        self.notices = keep;
    }

    /// The will, presettled, if its link can take it now (the connection is going away).
    pub(super) fn publish_will(&mut self) {
        let Some(w) = self.will.take() else {
            return;
        };
        let mut p = Publish::new(w.topic, w.payload);
        p.qos = QoS::AtMostOnce;
        p.retain = w.retain;
        p.properties = w.properties;
        // Only the message properties of the will's: its delay interval is not a PUBLISH property.
        p.properties.will_delay_interval = None;
        self.waiting.clear();
        self.on_publish(p);
    }
}

/// Application properties Hono's applications read on telemetry, events and command responses.
fn hono_properties(tenant: &str, device: &str, topic: &str, qos: QoS) -> Vec<(String, Value)> {
    vec![
        ("device_id".into(), Value::from(device)),
        ("tenant_id".into(), Value::from(tenant)),
        ("orig_adapter".into(), Value::from("hono-mqtt")),
        ("orig_address".into(), Value::from(topic)),
        ("qos".into(), Value::Int(qos as i32)),
    ]
}

fn rejected_code(error: Option<&AmqpError>) -> u8 {
    match error.map(|e| e.condition.as_str()) {
        Some(condition::RESOURCE_LIMIT_EXCEEDED) => reason::QUOTA_EXCEEDED,
        Some(condition::UNAUTHORIZED_ACCESS) => reason::NOT_AUTHORIZED,
        _ => reason::UNSPECIFIED_ERROR,
    }
}
