//! What the broker keeps with each stored queue ([`crate::store::QueueMeta::config`]): the queue's role,
//! its settings, and the "delivered up to" watermark. A small line-based `key=value` text (versioned), so a
//! record stays readable in a debugger and tolerant of fields added later.

use std::time::Duration;

use bytes::Bytes;

use crate::config::{AddressSettings, FullPolicy};

const MAGIC: &str = "shoal-queue 1";

/// Why a queue exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// A queue address (declared, or auto-created when `auto`).
    Queue { auto: bool },
    /// A subscription of `topic`.
    Subscription {
        topic: String,
        /// Declared as an address of its own (consumed at its own name).
        declared: bool,
        /// Survives its consumers and restarts (declared subscriptions, and durable ones).
        durable: bool,
        /// Several receivers compete on it.
        shared: bool,
    },
}

impl Role {
    /// Messages of this queue outlive the process (so durable messages are synced before they are accepted).
    pub fn durable(&self) -> bool {
        match self {
            Role::Queue { .. } => true,
            Role::Subscription { durable, .. } => *durable,
        }
    }

    pub fn topic(&self) -> Option<&str> {
        match self {
            Role::Queue { .. } => None,
            Role::Subscription { topic, .. } => Some(topic),
        }
    }
}

/// A stored queue's record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueRecord {
    pub role: Role,
    pub settings: AddressSettings,
    /// Every message with a seq up to this was handed to a consumer at least once (redelivered after a
    /// crash with a higher delivery-count).
    pub delivered: u64,
    /// A subscription's selector.
    pub selector: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl QueueRecord {
    pub fn encode(&self) -> Bytes {
        use std::fmt::Write;
        let mut s = String::with_capacity(256);
        let _ = writeln!(s, "{MAGIC}");
        match &self.role {
            Role::Queue { auto } => {
                let _ = writeln!(s, "role=queue\nauto={}", u8::from(*auto));
            }
            Role::Subscription {
                topic,
                declared,
                durable,
                shared,
            } => {
                let _ = writeln!(
                    s,
                    "role=subscription\ntopic={}\ndeclared={}\ndurable={}\nshared={}",
                    escape(topic),
                    u8::from(*declared),
                    u8::from(*durable),
                    u8::from(*shared)
                );
            }
        }
        let st = &self.settings;
        if let Some(a) = &st.expiry_address {
            let _ = writeln!(s, "expiry_address={}", escape(a));
        }
        if let Some(a) = &st.dead_letter_address {
            let _ = writeln!(s, "dead_letter_address={}", escape(a));
        }
        let _ = writeln!(s, "max_delivery_attempts={}", st.max_delivery_attempts);
        let _ = writeln!(s, "redelivery_delay_ms={}", ms(st.redelivery_delay));
        let _ = writeln!(
            s,
            "redelivery_delay_multiplier={}",
            st.redelivery_delay_multiplier
        );
        if let Some(d) = st.maximum_delivery_delay {
            let _ = writeln!(s, "maximum_delivery_delay_ms={}", ms(d));
        }
        if let Some(d) = st.message_ttl_min {
            let _ = writeln!(s, "message_ttl_min_ms={}", ms(d));
        }
        if let Some(d) = st.message_ttl_max {
            let _ = writeln!(s, "message_ttl_max_ms={}", ms(d));
        }
        if let Some(b) = st.max_size_bytes {
            let _ = writeln!(s, "max_size_bytes={b}");
        }
        let policy = match st.full_policy {
            FullPolicy::Block => "block",
            FullPolicy::Reject => "reject",
        };
        let _ = writeln!(s, "full_policy={policy}");
        let _ = writeln!(s, "delivered={}", self.delivered);
        if let Some(sel) = &self.selector {
            let _ = writeln!(s, "selector={}", escape(sel));
        }
        Bytes::from(s)
    }

    /// `None` for a record this version cannot read (the queue is then restored with default settings).
    pub fn decode(bytes: &[u8]) -> Option<QueueRecord> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut role = None::<&str>;
        let (mut auto, mut declared, mut durable, mut shared) = (false, false, false, false);
        let mut topic = String::new();
        let mut st = AddressSettings::default();
        let mut delivered = 0;
        let mut selector = None;
        let dur = |v: &str| v.parse::<u64>().ok().map(Duration::from_millis);
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "role" => role = Some(value),
                "auto" => auto = value == "1",
                "topic" => topic = unescape(value),
                "declared" => declared = value == "1",
                "durable" => durable = value == "1",
                "shared" => shared = value == "1",
                "expiry_address" => st.expiry_address = Some(unescape(value)),
                "dead_letter_address" => st.dead_letter_address = Some(unescape(value)),
                "max_delivery_attempts" => {
                    st.max_delivery_attempts = value.parse().unwrap_or(st.max_delivery_attempts)
                }
                "redelivery_delay_ms" => st.redelivery_delay = dur(value).unwrap_or_default(),
                "redelivery_delay_multiplier" => {
                    st.redelivery_delay_multiplier = value.parse().unwrap_or(1.0)
                }
                "maximum_delivery_delay_ms" => st.maximum_delivery_delay = dur(value),
                "message_ttl_min_ms" => st.message_ttl_min = dur(value),
                "message_ttl_max_ms" => st.message_ttl_max = dur(value),
                "max_size_bytes" => st.max_size_bytes = value.parse().ok(),
                "full_policy" => {
                    st.full_policy = match value {
                        "reject" => FullPolicy::Reject,
                        _ => FullPolicy::Block,
                    }
                }
                "delivered" => delivered = value.parse().unwrap_or(0),
                "selector" => selector = Some(unescape(value)),
                _ => {}
            }
        }
        let role = match role? {
            "queue" => Role::Queue { auto },
            "subscription" => Role::Subscription {
                topic,
                declared,
                durable,
                shared,
            },
            _ => return None,
        };
        Some(QueueRecord {
            role,
            settings: st,
            delivered,
            selector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let settings = AddressSettings {
            expiry_address: Some("exp\nired".into()),
            dead_letter_address: Some("dl\\q".into()),
            max_delivery_attempts: 3,
            redelivery_delay: Duration::from_millis(250),
            redelivery_delay_multiplier: 1.5,
            maximum_delivery_delay: Some(Duration::from_secs(9)),
            message_ttl_min: Some(Duration::from_secs(1)),
            message_ttl_max: Some(Duration::from_secs(100)),
            max_size_bytes: Some(1 << 20),
            full_policy: FullPolicy::Reject,
        };
        for role in [
            Role::Queue { auto: true },
            Role::Subscription {
                topic: "news/=x".into(),
                declared: false,
                durable: true,
                shared: true,
            },
        ] {
            let record = QueueRecord {
                role,
                settings: settings.clone(),
                delivered: 42,
                selector: Some("color = 'red'\nAND x = 1".into()),
            };
            assert_eq!(QueueRecord::decode(&record.encode()), Some(record));
        }
        let defaults = QueueRecord {
            role: Role::Queue { auto: false },
            settings: AddressSettings::default(),
            delivered: 0,
            selector: None,
        };
        assert_eq!(QueueRecord::decode(&defaults.encode()), Some(defaults));
    }

    #[test]
    fn foreign_records_are_refused() {
        assert_eq!(QueueRecord::decode(b""), None);
        assert_eq!(QueueRecord::decode(b"something else\nrole=queue"), None);
        assert_eq!(QueueRecord::decode(&[0xff, 0xfe]), None);
        assert_eq!(QueueRecord::decode(b"shoal-queue 1\nrole=teapot"), None);
    }
}
