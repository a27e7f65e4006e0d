use super::*;

mod broker;

fn parse(yaml: &str) -> Result<Address, CrdError> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("test YAML is well-formed");
    address_from_value(value)
}

/// The error text for a manifest that must be refused.
fn refused(yaml: &str) -> String {
    match parse(yaml) {
        Ok(a) => panic!("accepted: {a:?}"),
        Err(e) => e.to_string(),
    }
}

const VALID: &str = r#"
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: sensors, namespace: default }
spec: { address: "sensors/#", type: anycast }
"#;

fn with_spec(spec: &str) -> String {
    format!("apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: {{ name: a }}\nspec: {spec}\n")
}

fn with_name(name: &str) -> String {
    format!("apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: {{ name: \"{name}\" }}\nspec: {{ address: a, type: anycast }}\n")
}

#[test]
fn parses_a_valid_address_with_defaults() {
    let a = parse(VALID).unwrap();
    assert_eq!(a.name(), "sensors");
    assert_eq!(a.key(), "default/sensors");
    assert_eq!(a.spec.address, "sensors/#");
    assert_eq!(a.spec.r#type, AddressType::Anycast);
    assert_eq!(a.spec.distribution, None);
    assert_eq!(a.spec.effective_match(), MatchKind::Pattern);
    assert_eq!(
        a.spec.effective_distribution(),
        Some(Distribution::Balanced)
    );
    assert_eq!(a.type_label(), "anycast/balanced");
}

#[test]
fn match_defaults_to_exact_without_wildcard_segments() {
    let a = parse(&with_spec("{ address: orders.eu, type: multicast }")).unwrap();
    assert_eq!(a.spec.effective_match(), MatchKind::Exact);
    assert_eq!(a.spec.effective_distribution(), None);
    assert_eq!(a.namespace_or_default(), DEFAULT_NAMESPACE);
    let a = parse(&with_spec(
        "{ address: a.*.c, type: anycast, distribution: closest }",
    ))
    .unwrap();
    assert_eq!(a.spec.effective_match(), MatchKind::Pattern);
    assert_eq!(a.spec.effective_distribution(), Some(Distribution::Closest));
    let a = parse(&with_spec("{ address: a/b, type: anycast, match: prefix }")).unwrap();
    assert_eq!(a.spec.effective_match(), MatchKind::Prefix);
}

#[test]
fn serializes_camel_case_and_round_trips() {
    let mut a = parse(&with_spec(
        "{ address: a/b, type: anycast, match: prefix, distribution: closest }",
    ))
    .unwrap();
    a.status = Some(AddressStatus {
        phase: Some(PHASE_ACTIVE.into()),
        message: None,
    });
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["apiVersion"], API_VERSION);
    assert_eq!(json["kind"], "Address");
    assert_eq!(json["spec"]["type"], "anycast");
    assert_eq!(json["spec"]["match"], "prefix");
    assert_eq!(json["status"]["phase"], "Active");
    let back: Address = from_value(serde_yaml::to_value(&a).unwrap()).unwrap();
    assert_eq!(back, a);
}

#[test]
fn empty_address_is_refused_naming_spec_address() {
    assert_eq!(
        refused(&with_spec(r#"{ address: "", type: anycast }"#)),
        "spec.address: must not be empty"
    );
}

#[test]
fn unknown_type_is_refused_listing_the_choices() {
    assert_eq!(
        refused(&with_spec("{ address: a, type: fanout }")),
        r#"spec.type: unknown variant "fanout", expected one of anycast, multicast, queue, topic, subscription"#
    );
}

#[test]
fn wrong_value_type_names_the_field() {
    let msg = refused(&with_spec("{ address: a, type: [anycast] }"));
    assert!(
        msg.starts_with("spec.type: invalid type: sequence"),
        "{msg}"
    );
    let msg = refused(&with_spec(
        "{ address: a, type: anycast, distribution: nearest }",
    ));
    assert_eq!(
        msg,
        r#"spec.distribution: unknown variant "nearest", expected one of balanced, closest"#
    );
    let msg = refused(&with_spec("{ address: a, type: anycast, match: glob }"));
    assert_eq!(
        msg,
        r#"spec.match: unknown variant "glob", expected one of exact, prefix, pattern"#
    );
}

#[test]
fn typo_in_spec_is_refused_naming_it() {
    let msg = refused(&with_spec("{ adress: a, type: anycast }"));
    assert!(
        msg.starts_with("spec.adress: unknown field, expected one of"),
        "{msg}"
    );
    assert!(msg.contains("address"), "{msg}");
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        refused(&with_spec("{ type: anycast }")),
        "spec.address: is required"
    );
    assert_eq!(
        refused(&with_spec("{ address: a }")),
        "spec.type: is required"
    );
    assert_eq!(
        refused("apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: { name: a }\n"),
        "spec: is required"
    );
    assert_eq!(
        refused("apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: {}\nspec: { address: a, type: anycast }\n"),
        "metadata.name: is required"
    );
}

#[test]
fn names_must_be_dns_subdomains() {
    for bad in ["Sensors", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
        let msg = refused(&with_name(bad));
        assert!(
            msg.starts_with("metadata.name: must be a DNS-1123 subdomain"),
            "{bad}: {msg}"
        );
    }
    for good in ["a", "sensors-1", "eu.sensors", &"a".repeat(253)] {
        parse(&with_name(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn namespace_must_be_a_dns_label() {
    let yaml = "apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: { name: a, namespace: a.b }\nspec: { address: a, type: anycast }\n";
    let msg = refused(yaml);
    assert!(
        msg.starts_with("metadata.namespace: must be a DNS-1123 label"),
        "{msg}"
    );
}

#[test]
fn wildcards_must_be_whole_segments() {
    for bad in ["a/b#", "a.*b", "#a", "a/**"] {
        let msg = refused(&with_spec(&format!(
            "{{ address: \"{bad}\", type: anycast }}"
        )));
        assert!(
            msg.starts_with("spec.address: \"*\" and \"#\" must be whole segments"),
            "{bad}: {msg}"
        );
    }
    for good in ["#", "a/*/c", "a.#", "*.b"] {
        parse(&with_spec(&format!(
            "{{ address: \"{good}\", type: anycast }}"
        )))
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn address_charset_and_length_are_checked() {
    let msg = refused(&with_spec(r#"{ address: "a b", type: anycast }"#));
    assert_eq!(
        msg,
        "spec.address: must not contain whitespace or control characters"
    );
    let long = "a".repeat(MAX_ADDRESS_LEN + 1);
    let msg = refused(&with_spec(&format!("{{ address: {long}, type: anycast }}")));
    assert_eq!(msg, "spec.address: must be at most 1024 characters");
}

#[test]
fn distribution_with_multicast_is_refused() {
    assert_eq!(
        refused(&with_spec(
            "{ address: a, type: multicast, distribution: closest }"
        )),
        "spec.distribution: closest only applies to type anycast, not multicast"
    );
}

#[test]
fn exact_or_prefix_match_with_wildcards_is_refused() {
    let msg = refused(&with_spec("{ address: a/#, type: anycast, match: prefix }"));
    assert!(
        msg.starts_with("spec.match: prefix cannot be used"),
        "{msg}"
    );
    let msg = refused(&with_spec("{ address: a/*, type: anycast, match: exact }"));
    assert!(msg.starts_with("spec.match: exact cannot be used"), "{msg}");
}

#[test]
fn errors_expose_their_field() {
    let err = parse(&with_spec("{ address: a, type: fanout }")).unwrap_err();
    assert_eq!(err.field(), Some("spec.type"));
    let err = parse(&with_spec(r#"{ address: "", type: anycast }"#)).unwrap_err();
    assert!(matches!(err, CrdError::Invalid(_)));
    assert_eq!(err.field(), Some("spec.address"));
}

#[test]
fn keyword_parse_matches_deserialization() {
    assert_eq!(AddressType::parse("multicast"), Ok(AddressType::Multicast));
    assert_eq!(
        AddressType::expected(),
        "anycast, multicast, queue, topic, subscription"
    );
    assert_eq!(AddressType::parse("queue"), Ok(AddressType::Queue));
    assert_eq!(FullPolicy::parse("reject"), Ok(FullPolicy::Reject));
    assert_eq!(MatchKind::Pattern.to_string(), "pattern");
}

#[test]
fn crd_has_the_expected_names_and_columns() {
    use kube::CustomResourceExt;
    let crd = Address::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("addresses.shoal.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["addr".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1beta1");
    assert!(version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.json_path.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            ".spec.address",
            ".spec.type",
            ".spec.topic",
            ".status.phase"
        ]
    );
}

/// The checked-in CRD must be what the types generate, or `kubectl apply` installs a stale schema.
#[test]
fn checked_in_crd_yaml_is_up_to_date() {
    let checked_in = include_str!("../yaml/addresses.shoal.dev.yaml");
    let generated = crd_yaml().unwrap();
    assert!(
        checked_in == generated,
        "crds/yaml/addresses.shoal.dev.yaml is stale: run \
         `cargo run -p shoal-crds --bin crdgen > crds/yaml/addresses.shoal.dev.yaml`"
    );
}
