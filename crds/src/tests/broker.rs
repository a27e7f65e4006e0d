//! Broker addresses: `queue`, `topic`, `subscription` and their settings.

use std::time::Duration;

use super::*;

const FULL_QUEUE: &str = r#"
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: orders, namespace: default }
spec:
  address: orders
  type: queue
  broker: eu-1
  expiryAddress: expired
  deadLetterAddress: dlq
  maxDeliveryAttempts: 5
  redeliveryDelay: 500ms
  redeliveryDelayMultiplier: 2.0
  maximumDeliveryDelay: 30s
  messageTtl: { minimum: 1s, maximum: 1h }
  maxSizeBytes: 104857600
  fullPolicy: reject
"#;

fn queue_with(settings: &str) -> String {
    with_spec(&format!("{{ address: q, type: queue, {settings} }}"))
}

#[test]
fn parses_every_broker_setting() {
    let a = parse(FULL_QUEUE).unwrap();
    let s = &a.spec;
    assert_eq!(s.r#type, AddressType::Queue);
    assert_eq!(s.broker.as_deref(), Some("eu-1"));
    assert_eq!(s.expiry_address.as_deref(), Some("expired"));
    assert_eq!(s.dead_letter_address.as_deref(), Some("dlq"));
    assert_eq!(s.max_delivery_attempts, Some(5));
    assert_eq!(
        s.redelivery_delay.map(HumanDuration::get),
        Some(Duration::from_millis(500))
    );
    assert_eq!(s.redelivery_delay_multiplier, Some(2.0));
    assert_eq!(
        s.maximum_delivery_delay.map(HumanDuration::get),
        Some(Duration::from_secs(30))
    );
    let ttl = s.message_ttl.as_ref().unwrap();
    assert_eq!(
        ttl.minimum.map(HumanDuration::get),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        ttl.maximum.map(HumanDuration::get),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(s.max_size_bytes, Some(104_857_600));
    assert_eq!(s.full_policy, Some(FullPolicy::Reject));
    assert_eq!(s.effective_distribution(), None);
    assert_eq!(s.effective_match(), MatchKind::Exact);
    assert_eq!(a.type_label(), "queue");
}

#[test]
fn broker_settings_round_trip_in_camel_case() {
    let a = parse(FULL_QUEUE).unwrap();
    let json = serde_json::to_value(&a).unwrap();
    let spec = &json["spec"];
    assert_eq!(spec["type"], "queue");
    assert_eq!(spec["deadLetterAddress"], "dlq");
    assert_eq!(spec["redeliveryDelay"], "500ms");
    assert_eq!(spec["maximumDeliveryDelay"], "30s");
    assert_eq!(spec["messageTtl"]["maximum"], "1h");
    assert_eq!(spec["fullPolicy"], "reject");
    let back: Address = from_value(serde_yaml::to_value(&a).unwrap()).unwrap();
    assert_eq!(back, a);
    // Unset settings stay out of the document rather than appearing as nulls.
    let plain =
        serde_json::to_value(parse(&with_spec("{ address: q, type: queue }")).unwrap()).unwrap();
    assert_eq!(
        plain["spec"],
        serde_json::json!({ "address": "q", "type": "queue" })
    );
}

#[test]
fn topics_and_subscriptions_parse() {
    let t = parse(&with_spec(
        "{ address: news, type: topic, maxSizeBytes: 10 }",
    ))
    .unwrap();
    assert_eq!(t.spec.r#type, AddressType::Topic);
    assert_eq!(t.type_label(), "topic");
    let s = parse(&with_spec(
        "{ address: news-audit, type: subscription, topic: news, fullPolicy: block }",
    ))
    .unwrap();
    assert_eq!(s.spec.topic.as_deref(), Some("news"));
    assert_eq!(s.spec.full_policy, Some(FullPolicy::Block));
    assert_eq!(s.type_label(), "subscription(news)");
    assert!(AddressType::Subscription.is_broker());
    assert!(!AddressType::Multicast.is_broker());
}

#[test]
fn subscription_requires_a_topic() {
    assert_eq!(
        refused(&with_spec("{ address: s, type: subscription }")),
        "spec.topic: is required for type subscription (the address of the topic it subscribes to)"
    );
}

#[test]
fn topic_is_refused_on_other_types() {
    for kind in ["anycast", "multicast", "queue", "topic"] {
        assert_eq!(
            refused(&with_spec(&format!(
                "{{ address: s, type: {kind}, topic: news }}"
            ))),
            format!("spec.topic: only applies to type subscription, not {kind}")
        );
    }
}

#[test]
fn subscription_topic_must_be_another_exact_address() {
    assert_eq!(
        refused(&with_spec(
            "{ address: s, type: subscription, topic: \"news/#\" }"
        )),
        "spec.topic: must be one exact address, without \"*\" or \"#\" segments, got \"news/#\""
    );
    assert_eq!(
        refused(&with_spec("{ address: s, type: subscription, topic: s }")),
        "spec.topic: must not be spec.address itself (\"s\"): messages would loop"
    );
    assert_eq!(
        refused(&with_spec(
            "{ address: s, type: subscription, topic: \"a b\" }"
        )),
        "spec.topic: must not contain whitespace or control characters"
    );
}

#[test]
fn broker_settings_are_refused_on_routed_addresses() {
    let settings = [
        ("expiryAddress", "expired"),
        ("deadLetterAddress", "dlq"),
        ("maxDeliveryAttempts", "5"),
        ("redeliveryDelay", "1s"),
        ("redeliveryDelayMultiplier", "2.0"),
        ("maximumDeliveryDelay", "1s"),
        ("messageTtl", "{ maximum: 1s }"),
        ("maxSizeBytes", "10"),
        ("fullPolicy", "reject"),
    ];
    for kind in ["anycast", "multicast"] {
        for (field, value) in settings {
            assert_eq!(
                refused(&with_spec(&format!(
                    "{{ address: a, type: {kind}, {field}: {value} }}"
                ))),
                format!(
                    "spec.{field}: only queue, topic and subscription addresses have broker settings"
                )
            );
        }
    }
}

#[test]
fn durations_must_parse_naming_the_field() {
    assert_eq!(
        refused(&queue_with(r#"redeliveryDelay: "5 parsecs""#)),
        r#"spec.redeliveryDelay: "5 parsecs" is not a duration (use e.g. 500ms, 5s, 2m, 1h)"#
    );
    assert_eq!(
        refused(&queue_with("maximumDeliveryDelay: 1d")),
        r#"spec.maximumDeliveryDelay: "1d" is not a duration (use e.g. 500ms, 5s, 2m, 1h)"#
    );
    assert_eq!(
        refused(&queue_with("messageTtl: { minimum: 1.5s }")),
        r#"spec.messageTtl.minimum: "1.5s" is not a duration (use e.g. 500ms, 5s, 2m, 1h)"#
    );
    // Strings only: a bare number would leave the unit to guesswork.
    let msg = refused(&queue_with("redeliveryDelay: 500"));
    assert!(
        msg.starts_with("spec.redeliveryDelay: invalid type: integer"),
        "{msg}"
    );
    assert!(msg.contains("expected a duration string"), "{msg}");
}

#[test]
fn multiplier_must_be_at_least_one() {
    assert_eq!(
        refused(&queue_with("redeliveryDelayMultiplier: 0.5")),
        "spec.redeliveryDelayMultiplier: must be a number of at least 1.0, got 0.5"
    );
    assert_eq!(
        refused(&queue_with("redeliveryDelayMultiplier: .nan")),
        "spec.redeliveryDelayMultiplier: must be a number of at least 1.0, got NaN"
    );
    parse(&queue_with("redeliveryDelayMultiplier: 1")).unwrap();
}

#[test]
fn maximum_delivery_delay_is_not_below_the_delay() {
    assert_eq!(
        refused(&queue_with(
            "redeliveryDelay: 5s, maximumDeliveryDelay: 1000ms"
        )),
        "spec.maximumDeliveryDelay: 1s is less than redeliveryDelay 5s"
    );
    parse(&queue_with(
        "redeliveryDelay: 5s, maximumDeliveryDelay: 5000ms",
    ))
    .unwrap();
}

#[test]
fn message_ttl_bounds_are_ordered_and_positive() {
    assert_eq!(
        refused(&queue_with("messageTtl: { minimum: 1h, maximum: 1s }")),
        "spec.messageTtl.minimum: 1h is more than maximum 1s"
    );
    assert_eq!(
        refused(&queue_with("messageTtl: { maximum: 0ms }")),
        "spec.messageTtl.maximum: must be more than 0s"
    );
    let msg = refused(&queue_with("messageTtl: { max: 1s }"));
    assert!(
        msg.starts_with("spec.messageTtl.max: unknown field"),
        "{msg}"
    );
    parse(&queue_with("messageTtl: { minimum: 1s, maximum: 1s }")).unwrap();
    parse(&queue_with("messageTtl: { minimum: 1h }")).unwrap();
}

#[test]
fn max_size_bytes_must_be_positive() {
    assert_eq!(
        refused(&queue_with("maxSizeBytes: 0")),
        "spec.maxSizeBytes: must be more than 0 (leave it out for no limit)"
    );
    let msg = refused(&queue_with("maxSizeBytes: -1"));
    assert!(msg.starts_with("spec.maxSizeBytes: invalid value"), "{msg}");
}

#[test]
fn full_policy_lists_its_choices() {
    assert_eq!(
        refused(&queue_with("fullPolicy: drop")),
        r#"spec.fullPolicy: unknown variant "drop", expected one of block, reject"#
    );
}

#[test]
fn expiry_and_dead_letter_addresses_are_other_exact_addresses() {
    for field in ["expiryAddress", "deadLetterAddress"] {
        assert_eq!(
            refused(&queue_with(&format!("{field}: \"dlq/*\""))),
            format!(
                "spec.{field}: must be one exact address, without \"*\" or \"#\" segments, got \"dlq/*\""
            )
        );
        assert_eq!(
            refused(&queue_with(&format!("{field}: q"))),
            format!("spec.{field}: must not be spec.address itself (\"q\"): messages would loop")
        );
        assert_eq!(
            refused(&queue_with(&format!("{field}: \"\""))),
            format!("spec.{field}: must not be empty")
        );
    }
}

#[test]
fn broker_addresses_are_exact() {
    for kind in ["queue", "topic"] {
        assert_eq!(
            refused(&with_spec(&format!(
                "{{ address: \"orders/#\", type: {kind} }}"
            ))),
            "spec.address: a queue, topic or subscription is one exact address"
        );
        // Even with `match: exact`, whose generic advice would be "use pattern".
        assert_eq!(
            refused(&with_spec(&format!(
                "{{ address: \"orders/*\", type: {kind}, match: exact }}"
            ))),
            "spec.address: a queue, topic or subscription is one exact address"
        );
    }
    for kind in ["prefix", "pattern"] {
        assert_eq!(
            refused(&with_spec(&format!(
                "{{ address: s, type: subscription, topic: t, match: {kind} }}"
            ))),
            format!(
                "spec.match: {kind} does not apply: a queue, topic or subscription is one exact address \
                 (leave match out or use exact)"
            )
        );
    }
    let a = parse(&with_spec("{ address: q, type: queue, match: exact }")).unwrap();
    assert_eq!(a.spec.effective_match(), MatchKind::Exact);
}

#[test]
fn distribution_is_for_anycast_only() {
    for kind in ["queue", "topic"] {
        assert_eq!(
            refused(&with_spec(&format!(
                "{{ address: q, type: {kind}, distribution: balanced }}"
            ))),
            format!("spec.distribution: balanced only applies to type anycast, not {kind}")
        );
    }
}

#[test]
fn broker_settings_set_lists_fields_in_order() {
    let a = parse(FULL_QUEUE).unwrap();
    assert_eq!(
        a.spec.broker_settings_set(),
        [
            "broker",
            "expiryAddress",
            "deadLetterAddress",
            "maxDeliveryAttempts",
            "redeliveryDelay",
            "redeliveryDelayMultiplier",
            "maximumDeliveryDelay",
            "messageTtl",
            "maxSizeBytes",
            "fullPolicy",
        ]
    );
    let plain = parse(&with_spec("{ address: q, type: queue }")).unwrap();
    assert!(plain.spec.broker_settings_set().is_empty());
}

#[test]
fn a_broker_name_must_be_a_dns_label() {
    let err = parse(&queue_with("broker: Broker_1")).unwrap_err();
    assert_eq!(err.field(), Some("spec.broker"), "{err}");
    assert!(err.to_string().contains("DNS-1123 label"), "{err}");
}

#[test]
fn only_broker_addresses_name_a_broker() {
    let err = parse(&with_spec("{ address: a, type: anycast, broker: eu-1 }")).unwrap_err();
    assert_eq!(err.field(), Some("spec.broker"), "{err}");
}
