//! From a queue, topic or subscription `Address` manifest to what the broker holds.
//!
//! The router half of such an address is [`crate::manifest::to_rule`] (a link route to the broker); this is the
//! broker half. Both read the same validated manifest, so they cannot disagree about the address.

use shoal_broker::{AddressKind, AddressSettings, BrokerAddress, FullPolicy};
use shoal_crds::{Address, AddressType};

/// The broker address an `Address` declares: `None` for anycast and multicast, which the routers serve alone.
///
/// Settings left out of the manifest keep the broker's defaults ([`AddressSettings::default`]). Meant for a
/// validated `Address`; a hand-built subscription without `spec.topic`, which validation refuses, is `None`
/// too rather than a subscription on a made-up topic.
pub fn to_broker_address(address: &Address) -> Option<BrokerAddress> {
    let spec = &address.spec;
    let kind = match spec.r#type {
        AddressType::Anycast | AddressType::Multicast => return None,
        AddressType::Queue => AddressKind::Queue,
        AddressType::Topic => AddressKind::Topic,
        AddressType::Subscription => AddressKind::Subscription {
            topic: spec.topic.clone()?,
        },
    };
    let defaults = AddressSettings::default();
    let ttl = spec.message_ttl.clone().unwrap_or_default();
    let settings = AddressSettings {
        expiry_address: spec.expiry_address.clone(),
        dead_letter_address: spec.dead_letter_address.clone(),
        max_delivery_attempts: spec
            .max_delivery_attempts
            .unwrap_or(defaults.max_delivery_attempts),
        redelivery_delay: spec
            .redelivery_delay
            .map_or(defaults.redelivery_delay, |d| d.get()),
        redelivery_delay_multiplier: spec
            .redelivery_delay_multiplier
            .unwrap_or(defaults.redelivery_delay_multiplier),
        maximum_delivery_delay: spec.maximum_delivery_delay.map(|d| d.get()),
        message_ttl_min: ttl.minimum.map(|d| d.get()),
        message_ttl_max: ttl.maximum.map(|d| d.get()),
        max_size_bytes: spec.max_size_bytes,
        full_policy: match spec.full_policy {
            None => defaults.full_policy,
            Some(shoal_crds::FullPolicy::Block) => FullPolicy::Block,
            Some(shoal_crds::FullPolicy::Reject) => FullPolicy::Reject,
        },
    };
    Some(BrokerAddress {
        // The broker knows addresses by the address string itself, which is what clients attach to.
        name: spec.address.clone(),
        kind,
        settings,
    })
}

#[cfg(test)]
mod tests;
