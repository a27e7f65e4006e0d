//! Deliveries to PUBLISH: the write side of subscriptions, and PUBACKs back to outcomes.

use bytes::BytesMut;
use shoal_amqp::{condition, decode_message, AmqpError, DeliveryState, Value};
use shoal_mqtt::{MqttStr, QoS, Version};
use shoal_router::core::api::{DeliveryKey, Event, LinkKey, LocalLink, Msg};

use super::outbound::{InflightOut, OutItem};
use super::Session;
use crate::convert;
use crate::mapping::{self, command_topic, SubscribeTarget};

/// Why a delivery is not written to the client.
enum NotPassed {
    /// Not for this subscription (a gateway's pattern matched a command for a device it does not act for):
    /// released, so that the copy that is for someone decides the outcome.
    NotOurs,
    /// Not deliverable over MQTT: rejected, saying why.
    Rejected(AmqpError),
}

impl NotPassed {
    fn reject(condition: &str, why: impl Into<String>) -> NotPassed {
        NotPassed::Rejected(AmqpError::new(condition, why.into()))
    }
}

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
                    address,
                }) => self.write_delivery(link, delivery, &msg, address.as_deref()),
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

    fn write_delivery(
        &mut self,
        local: LocalLink,
        delivery: Option<DeliveryKey>,
        msg: &Msg,
        address: Option<&str>,
    ) {
        let Some(r) = self.receivers.get(&local) else {
            return;
        };
        let (key, qos) = (r.key, r.qos);
        let settle = key.zip(delivery);
        let publish = decode_message(&convert::joined(&msg.chunks))
            .map_err(|e| {
                NotPassed::Rejected(AmqpError::new(condition::DECODE_ERROR, e.to_string()))
            })
            .and_then(|m| self.publish_for(local, &m, address));
        match publish {
            Ok(p) => self.write_publish(p, qos, Some(local), settle),
            Err(why) => {
                let state = match why {
                    NotPassed::NotOurs => DeliveryState::Released,
                    NotPassed::Rejected(error) => {
                        tracing::debug!(client = %self.client_id, why = %error.description.as_deref().unwrap_or_default(), "delivery not passed on");
                        DeliveryState::Rejected { error: Some(error) }
                    }
                };
                if let Some((link, delivery)) = settle {
                    self.events.push(Event::Outcome {
                        link: Some(link),
                        delivery,
                        state,
                    });
                }
                self.credit_back(local);
            }
        }
    }

    /// The PUBLISH for an AMQP message on subscription `local`: its topic from the message's `to` or the
    /// address it came by (plain), or the command topic (with a request id to map the response back).
    fn publish_for(
        &mut self,
        local: LocalLink,
        m: &shoal_amqp::MessageBuilder,
        address: Option<&str>,
    ) -> Result<shoal_mqtt::Publish, NotPassed> {
        let r = self.receivers.get(&local).ok_or(NotPassed::NotOurs)?;
        let topic = match &r.target {
            SubscribeTarget::Plain { .. } => {
                mapping::delivery_topic(m.to.as_deref(), address, &r.filter)
                    .ok_or_else(|| {
                        NotPassed::reject(
                            condition::INVALID_FIELD,
                            "the message has no `to` naming a topic of the subscription",
                        )
                    })?
                    .to_owned()
            }
            SubscribeTarget::Commands {
                device,
                short,
                via_gateway,
            } => {
                let (short, device) = (*short, via_gateway.then(|| device.clone()));
                self.command_topic(m, short, device.as_deref())?
            }
            SubscribeTarget::GatewayCommands { short } => {
                let short = *short;
                let device = self.gateway_command_device(address)?;
                self.command_topic(m, short, Some(&device))?
            }
        };
        let topic = MqttStr::new(&topic)
            .map_err(|e| NotPassed::reject(condition::INVALID_FIELD, e.to_string()))?;
        convert::publish_for(topic, m)
            .map_err(|why| NotPassed::reject(condition::NOT_IMPLEMENTED, why))
    }

    /// The device a command on a gateway's `command//+/req/#` is for, if the gateway acts for it. Commands
    /// sent to `command/TENANT` itself (Hono's form with `to` per message) reach this subscription too; they
    /// come again relayed to `command/TENANT/DEVICE` (see `crate::relay`), so the original is not ours.
    fn gateway_command_device(&self, address: Option<&str>) -> Result<String, NotPassed> {
        let (Some(who), Some(registry)) = (&self.identity, &self.shared.registry) else {
            return Err(NotPassed::NotOurs);
        };
        let device = address
            .and_then(|a| mapping::command_device(a, &who.tenant_id))
            .ok_or(NotPassed::NotOurs)?;
        // A command for the gateway itself belongs to its own `command///req/#`; one for a device that does
        // not list this gateway in `via` to that device (released here, the device's outcome decides).
        if device == who.device_id
            || !registry.is_gateway_for(&who.tenant_id, &who.device_id, device)
        {
            return Err(NotPassed::NotOurs);
        }
        Ok(device.to_owned())
    }

    /// A command's topic; a command with a `reply-to` gets a request id that maps the response back.
    fn command_topic(
        &mut self,
        m: &shoal_amqp::MessageBuilder,
        short: bool,
        device: Option<&str>,
    ) -> Result<String, NotPassed> {
        let name = m.subject.as_deref().ok_or_else(|| {
            NotPassed::reject(condition::INVALID_FIELD, "a command needs a subject")
        })?;
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
        Ok(command_topic(short, device, &req_id, name))
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
