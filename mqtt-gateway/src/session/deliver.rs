//! Deliveries to PUBLISH: the write side of subscriptions, and PUBACKs back to outcomes.

use bytes::BytesMut;
use shoal_amqp::{condition, decode_message, AmqpError, DeliveryState, Value};
use shoal_mqtt::{topic, MqttStr, QoS, Version};
use shoal_router::core::api::{DeliveryKey, Event, LinkKey, LocalLink, Msg};

use super::outbound::{InflightOut, OutItem};
use super::Session;
use crate::convert;
use crate::mapping::{command_topic, SubscribeTarget};

impl Session {
    /// Move queued deliveries into the write buffer while the client can take them.
    pub(super) fn pump(&mut self) {
        while self.out.len() < self.shared.config.write_high_water {
            let qos = match self.queue.front() {
                None => return,
                Some(OutItem::Retained { qos, .. }) => *qos,
                Some(OutItem::Delivery { link, .. }) => {
                    self.receivers.get(link).map_or(QoS::AtMostOnce, |r| r.qos)
                }
            };
            if qos != QoS::AtMostOnce && self.inflight_out.len() >= self.client_receive_max {
                return;
            }
            match self.queue.pop_front() {
                Some(OutItem::Delivery {
                    link,
                    delivery,
                    msg,
                }) => self.write_delivery(link, delivery, &msg),
                Some(OutItem::Retained { msg, qos }) => {
                    let mut p = shoal_mqtt::Publish::new(msg.topic.clone(), msg.payload.clone());
                    p.properties = msg.properties.clone();
                    p.retain = true;
                    self.write_publish(p, qos, None, None);
                }
                None => return,
            }
        }
    }

    fn write_delivery(&mut self, local: LocalLink, delivery: Option<DeliveryKey>, msg: &Msg) {
        let Some(r) = self.receivers.get(&local) else {
            return;
        };
        let (key, qos) = (r.key, r.qos);
        let settle = key.zip(delivery);
        let publish = decode_message(&convert::joined(&msg.chunks))
            .map_err(|e| e.to_string())
            .and_then(|m| self.publish_for(local, &m));
        match publish {
            Ok(p) => self.write_publish(p, qos, Some(local), settle),
            Err(why) => {
                tracing::debug!(client = %self.client_id, why, "delivery not passed on");
                if let Some((link, delivery)) = settle {
                    self.events.push(Event::Outcome {
                        link: Some(link),
                        delivery,
                        state: DeliveryState::Rejected {
                            error: Some(AmqpError::new(condition::DECODE_ERROR, why)),
                        },
                    });
                }
                self.credit_back(local);
            }
        }
    }

    /// The PUBLISH for an AMQP message on subscription `local`: its topic from the message's `to` (plain), or
    /// the command topic (with a request id to map the response back).
    fn publish_for(
        &mut self,
        local: LocalLink,
        m: &shoal_amqp::MessageBuilder,
    ) -> Result<shoal_mqtt::Publish, String> {
        let r = self.receivers.get(&local).ok_or("unsubscribed")?;
        let topic = match &r.target {
            SubscribeTarget::Plain { .. } => {
                let to = m.to.as_deref().filter(|t| {
                    topic::validate_topic_name(t.as_bytes()).is_ok() && topic::matches(&r.filter, t)
                });
                match to {
                    Some(t) => t.to_owned(),
                    // A message without `to` (sent on a named link) matched an exact filter: that is its topic.
                    None if topic::validate_topic_name(r.filter.as_bytes()).is_ok() => {
                        r.filter.clone()
                    }
                    None => return Err("the message has no `to` naming its topic".into()),
                }
            }
            SubscribeTarget::Commands {
                device,
                short,
                via_gateway,
            } => {
                let name = m.subject.clone().ok_or("a command needs a subject")?;
                let (short, device) = (*short, via_gateway.then(|| device.clone()));
                let req_id = match &m.reply_to {
                    Some(reply_to) => {
                        let correlation = m
                            .correlation_id
                            .clone()
                            .or_else(|| m.message_id.clone())
                            .unwrap_or(Value::Null);
                        self.commands.insert(reply_to.clone(), correlation)
                    }
                    None => String::new(),
                };
                command_topic(short, device.as_deref(), &req_id, &name)
            }
        };
        let topic = MqttStr::new(&topic).map_err(|e| e.to_string())?;
        Ok(convert::publish_for(topic, m))
    }

    /// Write a PUBLISH at `qos`: QoS 0 completes the delivery now, QoS 1 when the PUBACK comes.
    fn write_publish(
        &mut self,
        mut p: shoal_mqtt::Publish,
        qos: QoS,
        link: Option<LocalLink>,
        settle: Option<(LinkKey, DeliveryKey)>,
    ) {
        p.qos = qos;
        if self.version == Version::V311 {
            p.properties = Default::default();
        }
        if qos != QoS::AtMostOnce {
            p.packet_id = self.next_packet_id();
        }
        let mut buf = BytesMut::new();
        let ok = p.encode(self.version, &mut buf).is_ok() && buf.len() <= self.client_max_packet;
        if ok {
            self.out.unsplit(buf);
        }
        if ok && qos != QoS::AtMostOnce {
            self.inflight_out.insert(
                p.packet_id,
                InflightOut {
                    link: link.unwrap_or(0),
                    settle,
                },
            );
            return;
        }
        // Done with it: written at QoS 0, or too large for the client (MQTT 5 says drop it).
        if let Some((key, delivery)) = settle {
            let state = if ok {
                DeliveryState::Accepted
            } else {
                DeliveryState::Rejected {
                    error: Some(AmqpError::new(
                        condition::RESOURCE_LIMIT_EXCEEDED,
                        "larger than the MQTT client's maximum packet size",
                    )),
                }
            };
            self.events.push(Event::Outcome {
                link: Some(key),
                delivery,
                state,
            });
        }
        if let Some(local) = link {
            self.credit_back(local);
        }
    }

    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let id = self.next_packet_id;
            if id != 0 && !self.inflight_out.contains_key(&id) {
                return id;
            }
        }
    }

    pub(super) fn on_puback(&mut self, packet_id: u16) {
        let Some(f) = self.inflight_out.remove(&packet_id) else {
            return;
        };
        if let Some((key, delivery)) = f.settle {
            self.events.push(Event::Outcome {
                link: Some(key),
                delivery,
                state: DeliveryState::Accepted,
            });
        }
        self.credit_back(f.link);
    }
}
