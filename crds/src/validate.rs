//! Semantic validation: what the types alone cannot refuse. Every error names its field.

use crate::address::{has_wildcard_segment, Address, AddressType, MatchKind, SEGMENT_SEPARATORS};
use crate::error::FieldError;
use crate::keyword::Keyword;

/// The longest accepted `spec.address`; AMQP allows more, but a longer one is almost surely a mistake.
pub const MAX_ADDRESS_LEN: usize = 1024;

impl Address {
    /// Checks names and the spec; the first problem found is returned.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self.metadata.name.as_deref() {
            None | Some("") => return Err(FieldError::new("metadata.name", "is required")),
            Some(name) => {
                check_dns_subdomain(name).map_err(|m| FieldError::new("metadata.name", m))?
            }
        }
        if let Some(namespace) = self.metadata.namespace.as_deref() {
            check_dns_label(namespace).map_err(|m| FieldError::new("metadata.namespace", m))?;
        }
        self.validate_spec()
    }

    fn validate_spec(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        check_address(&spec.address).map_err(|m| FieldError::new("spec.address", m))?;
        let wildcard = has_wildcard_segment(&spec.address);
        // Before the generic match check: its advice ("use pattern") is wrong for a broker address.
        if spec.r#type.is_broker() {
            if wildcard {
                return Err(FieldError::new("spec.address", ONE_EXACT_ADDRESS));
            }
            if let Some(kind @ (MatchKind::Prefix | MatchKind::Pattern)) = spec.r#match {
                return Err(FieldError::new(
                    "spec.match",
                    format!(
                        "{} does not apply: {ONE_EXACT_ADDRESS} (leave match out or use exact)",
                        kind.as_str()
                    ),
                ));
            }
        }
        match spec.r#match {
            Some(kind @ (MatchKind::Exact | MatchKind::Prefix)) if wildcard => {
                return Err(FieldError::new(
                    "spec.match",
                    format!(
                        "{} cannot be used with an address that has a \"*\" or \"#\" segment; use pattern",
                        kind.as_str()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(distribution) = spec.distribution {
            if spec.r#type != AddressType::Anycast {
                return Err(FieldError::new(
                    "spec.distribution",
                    format!(
                        "{} only applies to type anycast, not {}",
                        distribution.as_str(),
                        spec.r#type.as_str()
                    ),
                ));
            }
        }
        self.validate_topic()?;
        if !spec.r#type.is_broker() {
            if let Some(field) = spec.broker_settings_set().first() {
                return Err(FieldError::new(
                    format!("spec.{field}"),
                    "only queue, topic and subscription addresses have broker settings",
                ));
            }
            return Ok(());
        }
        self.validate_broker_settings()
    }

    fn validate_topic(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        match (&spec.topic, spec.r#type) {
            (None, AddressType::Subscription) => Err(FieldError::new(
                "spec.topic",
                "is required for type subscription (the address of the topic it subscribes to)",
            )),
            (None, _) => Ok(()),
            (Some(_), kind) if kind != AddressType::Subscription => Err(FieldError::new(
                "spec.topic",
                format!("only applies to type subscription, not {}", kind.as_str()),
            )),
            (Some(topic), _) => check_other_address(&spec.address, topic)
                .map_err(|m| FieldError::new("spec.topic", m)),
        }
    }

    fn validate_broker_settings(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        if let Some(broker) = &spec.broker {
            check_dns_label(broker).map_err(|m| FieldError::new("spec.broker", m))?;
        }
        for (field, value) in [
            ("spec.expiryAddress", &spec.expiry_address),
            ("spec.deadLetterAddress", &spec.dead_letter_address),
        ] {
            if let Some(target) = value {
                // Expiring or dead-lettering into the address itself would loop forever.
                check_other_address(&spec.address, target)
                    .map_err(|m| FieldError::new(field, m))?;
            }
        }
        if let Some(multiplier) = spec.redelivery_delay_multiplier {
            // `!(>=)` rather than `<` so that NaN is refused too.
            if !(multiplier.is_finite() && multiplier >= 1.0) {
                return Err(FieldError::new(
                    "spec.redeliveryDelayMultiplier",
                    format!("must be a number of at least 1.0, got {multiplier}"),
                ));
            }
        }
        if let (Some(delay), Some(max)) = (spec.redelivery_delay, spec.maximum_delivery_delay) {
            if max < delay {
                return Err(FieldError::new(
                    "spec.maximumDeliveryDelay",
                    format!("{max} is less than redeliveryDelay {delay}"),
                ));
            }
        }
        if let Some(ttl) = &spec.message_ttl {
            if let Some(max) = ttl.maximum {
                // A zero TTL would expire every message on arrival.
                if max.get().is_zero() {
                    return Err(FieldError::new(
                        "spec.messageTtl.maximum",
                        "must be more than 0s",
                    ));
                }
                if let Some(min) = ttl.minimum.filter(|min| *min > max) {
                    return Err(FieldError::new(
                        "spec.messageTtl.minimum",
                        format!("{min} is more than maximum {max}"),
                    ));
                }
            }
        }
        if spec.max_size_bytes == Some(0) {
            return Err(FieldError::new(
                "spec.maxSizeBytes",
                "must be more than 0 (leave it out for no limit)",
            ));
        }
        Ok(())
    }
}

/// The message for a broker address given as a pattern, prefix or wildcard.
const ONE_EXACT_ADDRESS: &str = "a queue, topic or subscription is one exact address";

/// Checks an address a broker address refers to (its topic, expiry or dead-letter address): one exact address,
/// not the address itself.
fn check_other_address(own: &str, other: &str) -> Result<(), String> {
    check_address(other)?;
    if has_wildcard_segment(other) {
        return Err(format!(
            "must be one exact address, without \"*\" or \"#\" segments, got \"{other}\""
        ));
    }
    if other == own {
        return Err(format!(
            "must not be spec.address itself (\"{own}\"): messages would loop"
        ));
    }
    Ok(())
}

/// Checks an address or pattern; returns the message for `spec.address`.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("must not be empty".into());
    }
    // Characters, not bytes, to agree with `maxLength` in the CRD schema.
    if address.chars().count() > MAX_ADDRESS_LEN {
        return Err(format!("must be at most {MAX_ADDRESS_LEN} characters"));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    // A wildcard glued to other text (`a/b#`) would silently match nothing the user meant.
    if let Some(segment) = address
        .split(SEGMENT_SEPARATORS)
        .find(|s| s.len() > 1 && s.contains(['*', '#']))
    {
        return Err(format!(
            "\"*\" and \"#\" must be whole segments (between \"/\" or \".\"), found \"{segment}\""
        ));
    }
    Ok(())
}

/// A Kubernetes object name: a DNS-1123 subdomain (lowercase labels joined by dots, at most 253 characters).
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    const MESSAGE: &str = "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', \
                           starting and ending with a letter or digit, at most 253 characters)";
    if name.len() > 253 || !name.split('.').all(is_label_shaped) {
        return Err(format!("{MESSAGE}, got \"{name}\""));
    }
    Ok(())
}

/// A Kubernetes namespace: a DNS-1123 label (at most 63 characters, no dots).
pub fn check_dns_label(name: &str) -> Result<(), String> {
    if name.len() > 63 || !is_label_shaped(name) {
        return Err(format!(
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a \
             letter or digit, at most 63 characters), got \"{name}\""
        ));
    }
    Ok(())
}

fn is_label_shaped(label: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    label.starts_with(alnum)
        && label.ends_with(alnum)
        && label.chars().all(|c| alnum(c) || c == '-')
}
