//! What the broker serves: its addresses (queues, topics, declared subscriptions) and their settings.

use std::time::Duration;

/// One address the broker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerAddress {
    pub name: String,
    pub kind: AddressKind,
    pub settings: AddressSettings,
}

impl BrokerAddress {
    pub fn queue(name: impl Into<String>) -> BrokerAddress {
        BrokerAddress {
            name: name.into(),
            kind: AddressKind::Queue,
            settings: AddressSettings::default(),
        }
    }

    pub fn topic(name: impl Into<String>) -> BrokerAddress {
        BrokerAddress {
            name: name.into(),
            kind: AddressKind::Topic,
            settings: AddressSettings::default(),
        }
    }

    /// A durable subscription on `topic`, consumed at its own address `name`.
    pub fn subscription(name: impl Into<String>, topic: impl Into<String>) -> BrokerAddress {
        BrokerAddress {
            name: name.into(),
            kind: AddressKind::Subscription {
                topic: topic.into(),
            },
            settings: AddressSettings::default(),
        }
    }

    pub fn with_settings(mut self, settings: AddressSettings) -> BrokerAddress {
        self.settings = settings;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressKind {
    /// Point to point: competing consumers, FIFO.
    Queue,
    /// Publish/subscribe: every subscription gets every message.
    Topic,
    /// A durable subscription declared up front on `topic`.
    Subscription { topic: String },
}

/// What a full address does to its senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// Withhold credit until there is room again.
    #[default]
    Block,
    /// Reject each message with `amqp:resource-limit-exceeded`.
    Reject,
}

/// Per-address behaviour. For a topic, they apply to each of its subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressSettings {
    /// Where expired messages go (dropped and counted when `None`).
    pub expiry_address: Option<String>,
    /// Where rejected messages and messages out of delivery attempts go (dropped and counted when `None`).
    pub dead_letter_address: Option<String>,
    /// Failed deliveries (modified with delivery-failed) before a message is dead-lettered; 0 = unlimited.
    pub max_delivery_attempts: u32,
    /// Wait before a failed message is offered again.
    pub redelivery_delay: Duration,
    /// The delay grows by this factor with each failed attempt.
    pub redelivery_delay_multiplier: f64,
    /// The longest redelivery delay.
    pub maximum_delivery_delay: Option<Duration>,
    /// A message's own TTL is raised to at least this.
    pub message_ttl_min: Option<Duration>,
    /// A message's own TTL is lowered to at most this; a message with no TTL gets this one.
    pub message_ttl_max: Option<Duration>,
    /// Bytes of messages the address may hold (per subscription for a topic).
    pub max_size_bytes: Option<u64>,
    pub full_policy: FullPolicy,
}

impl Default for AddressSettings {
    fn default() -> Self {
        AddressSettings {
            expiry_address: None,
            dead_letter_address: None,
            max_delivery_attempts: 10,
            redelivery_delay: Duration::ZERO,
            redelivery_delay_multiplier: 1.0,
            maximum_delivery_delay: None,
            message_ttl_min: None,
            message_ttl_max: None,
            max_size_bytes: None,
            full_policy: FullPolicy::Block,
        }
    }
}

impl AddressSettings {
    /// The wait before offering a message again after `attempts` failed deliveries (1 for the first).
    pub fn redelivery_delay_for(&self, attempts: u32) -> Duration {
        if self.redelivery_delay.is_zero() {
            return Duration::ZERO;
        }
        let factor = self
            .redelivery_delay_multiplier
            .max(0.0)
            .powi(attempts.saturating_sub(1).min(64) as i32);
        let secs = self.redelivery_delay.as_secs_f64() * factor;
        let cap = self
            .maximum_delivery_delay
            .map_or(Duration::from_secs(365 * 86_400), |d| d)
            .as_secs_f64();
        Duration::from_secs_f64(secs.min(cap).max(0.0))
    }

    /// The TTL a message keeps in this address: its own (`None`: none) clamped to the limits.
    pub fn clamp_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        let ttl = match (ttl, self.message_ttl_max) {
            (None, max) => max?,
            (Some(t), Some(max)) => t.min(max),
            (Some(t), None) => t,
        };
        Some(match self.message_ttl_min {
            Some(min) => ttl.max(min),
            None => ttl,
        })
    }
}

/// The broker's configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Addresses to declare at start (more come and go through [`crate::BrokerHandle::set_address`]).
    pub addresses: Vec<BrokerAddress>,
    /// Credit a producer link holds at most: messages on their way to the store per link.
    pub link_capacity: u32,
    /// Messages of one queue kept in memory; the rest stays in the store until the window has room.
    pub window: usize,
    /// A link to an unknown address creates a queue of that name (instead of being refused).
    pub auto_create_queues: bool,
    /// Producer pacing: while a queue's window is full and its consumers took a message within this time,
    /// its producers get no new credit, so they go at the consumers' pace instead of paging to the store
    /// (which costs a write and a read per message). Consumers idle this long (or none) and producers page
    /// again: a stuck consumer never stops senders. Zero turns pacing off.
    pub pace_while_consumed_within: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            addresses: Vec::new(),
            link_capacity: 1000,
            window: 10_000,
            auto_create_queues: false,
            pace_while_consumed_within: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_delay_grows_and_is_capped() {
        let s = AddressSettings {
            redelivery_delay: Duration::from_millis(100),
            redelivery_delay_multiplier: 2.0,
            maximum_delivery_delay: Some(Duration::from_millis(500)),
            ..AddressSettings::default()
        };
        assert_eq!(s.redelivery_delay_for(1), Duration::from_millis(100));
        assert_eq!(s.redelivery_delay_for(2), Duration::from_millis(200));
        assert_eq!(s.redelivery_delay_for(3), Duration::from_millis(400));
        assert_eq!(s.redelivery_delay_for(4), Duration::from_millis(500));
        assert_eq!(s.redelivery_delay_for(1000), Duration::from_millis(500));
        assert_eq!(
            AddressSettings::default().redelivery_delay_for(5),
            Duration::ZERO
        );
    }

    #[test]
    fn ttl_is_clamped() {
        let s = AddressSettings {
            message_ttl_min: Some(Duration::from_secs(2)),
            message_ttl_max: Some(Duration::from_secs(10)),
            ..AddressSettings::default()
        };
        assert_eq!(s.clamp_ttl(None), Some(Duration::from_secs(10)));
        assert_eq!(
            s.clamp_ttl(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            s.clamp_ttl(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            s.clamp_ttl(Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(AddressSettings::default().clamp_ttl(None), None);
        assert_eq!(
            AddressSettings::default().clamp_ttl(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
    }
}
