use std::time::Duration;

use super::*;
use crate::manifest::{parse_str, Manifest};

fn address(spec: &str) -> Address {
    let yaml = format!(
        "apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: {{ name: a, namespace: ns }}\nspec: {spec}\n"
    );
    match parse_str(&yaml, "test").unwrap().remove(0) {
        Manifest::Address(a) => a,
    }
}

#[test]
fn routed_addresses_are_not_the_brokers() {
    assert_eq!(
        to_broker_address(&address("{ address: a, type: anycast }")),
        None
    );
    assert_eq!(
        to_broker_address(&address("{ address: a, type: multicast }")),
        None
    );
}

#[test]
fn each_broker_type_maps_to_its_kind_with_default_settings() {
    assert_eq!(
        to_broker_address(&address("{ address: orders, type: queue }")),
        Some(BrokerAddress::queue("orders"))
    );
    assert_eq!(
        to_broker_address(&address("{ address: news, type: topic }")),
        Some(BrokerAddress::topic("news"))
    );
    assert_eq!(
        to_broker_address(&address(
            "{ address: news-audit, type: subscription, topic: news }"
        )),
        Some(BrokerAddress::subscription("news-audit", "news"))
    );
}

#[test]
fn every_setting_is_mapped() {
    let held = to_broker_address(&address(
        "{ address: orders, type: queue, expiryAddress: expired, deadLetterAddress: dlq, \
         maxDeliveryAttempts: 5, redeliveryDelay: 500ms, redeliveryDelayMultiplier: 2.5, \
         maximumDeliveryDelay: 2m, messageTtl: { minimum: 1s, maximum: 1h }, \
         maxSizeBytes: 104857600, fullPolicy: reject }",
    ))
    .unwrap();
    assert_eq!(held.name, "orders");
    assert_eq!(held.kind, AddressKind::Queue);
    assert_eq!(
        held.settings,
        AddressSettings {
            expiry_address: Some("expired".into()),
            dead_letter_address: Some("dlq".into()),
            max_delivery_attempts: 5,
            redelivery_delay: Duration::from_millis(500),
            redelivery_delay_multiplier: 2.5,
            maximum_delivery_delay: Some(Duration::from_secs(120)),
            message_ttl_min: Some(Duration::from_secs(1)),
            message_ttl_max: Some(Duration::from_secs(3600)),
            max_size_bytes: Some(104_857_600),
            full_policy: FullPolicy::Reject,
        }
    );
}

#[test]
fn unset_settings_keep_the_broker_defaults() {
    let held = to_broker_address(&address(
        "{ address: t, type: topic, messageTtl: { maximum: 10s }, fullPolicy: block }",
    ))
    .unwrap();
    assert_eq!(
        held.settings,
        AddressSettings {
            message_ttl_max: Some(Duration::from_secs(10)),
            ..AddressSettings::default()
        }
    );
    // 0 is a real value (unlimited attempts), not "unset".
    let held = to_broker_address(&address(
        "{ address: q, type: queue, maxDeliveryAttempts: 0 }",
    ))
    .unwrap();
    assert_eq!(held.settings.max_delivery_attempts, 0);
    assert_ne!(AddressSettings::default().max_delivery_attempts, 0);
}

#[test]
fn subscription_settings_are_its_own() {
    let held = to_broker_address(&address(
        "{ address: s, type: subscription, topic: news, maxDeliveryAttempts: 3, redeliveryDelay: 2s }",
    ))
    .unwrap();
    assert_eq!(
        held.kind,
        AddressKind::Subscription {
            topic: "news".into()
        }
    );
    assert_eq!(held.settings.max_delivery_attempts, 3);
    assert_eq!(held.settings.redelivery_delay, Duration::from_secs(2));
}

#[test]
fn an_unvalidated_subscription_without_topic_is_not_held() {
    let mut a = address("{ address: s, type: subscription, topic: news }");
    a.spec.topic = None;
    assert_eq!(to_broker_address(&a), None);
}
