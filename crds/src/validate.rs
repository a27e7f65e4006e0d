//! Semantic validation: what the types alone cannot refuse. Every error names its field.

use crate::address::{Address, AddressType, MatchKind, SEGMENT_SEPARATORS};
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
        let wildcard = crate::address::has_wildcard_segment(&spec.address);
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
        if let (Some(distribution), AddressType::Multicast) = (spec.distribution, spec.r#type) {
            return Err(FieldError::new(
                "spec.distribution",
                format!(
                    "{} only applies to type anycast, not {}",
                    distribution.as_str(),
                    spec.r#type.as_str()
                ),
            ));
        }
        Ok(())
    }
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
