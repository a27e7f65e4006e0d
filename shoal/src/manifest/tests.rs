use super::*;

const TWO_DOCS: &str = r#"
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: sensors, namespace: iot }
spec: { address: "sensors/#", type: anycast }
---
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: alerts }
spec: { address: alerts, type: multicast }
"#;

fn address(m: &Manifest) -> &Address {
    match m {
        Manifest::Address(a) => a,
    }
}

fn refused(yaml: &str) -> String {
    match parse_str(yaml, "m.yaml") {
        Ok(m) => panic!("accepted: {m:?}"),
        Err(e) => e.to_string(),
    }
}

fn doc(kind: &str, api_version: &str, spec: &str) -> String {
    format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{ name: a }}\nspec: {spec}\n")
}

#[test]
fn parses_multiple_documents_with_default_namespace() {
    let manifests = parse_str(TWO_DOCS, "m.yaml").unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0].key(), "iot/sensors");
    assert_eq!(manifests[1].key(), "default/alerts");
    assert_eq!(
        address(&manifests[1]).metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(manifests[0].to_string(), "address iot/sensors");
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let yaml = format!(
        "---\n---\n{}",
        doc("Address", API_VERSION, "{ address: a, type: fanout }")
    );
    let msg = refused(&yaml);
    // The error points at the document the user wrote, after the empty one.
    assert!(
        msg.starts_with("m.yaml (document 2): spec.type: unknown variant"),
        "{msg}"
    );
    assert!(parse_str("", "empty").unwrap().is_empty());
}

#[test]
fn json_is_accepted() {
    let json = r#"{"apiVersion":"shoal.dev/v1beta1","kind":"Address","metadata":{"name":"j"},"spec":{"address":"q","type":"anycast"}}"#;
    let manifests = parse_str(json, "request").unwrap();
    assert_eq!(manifests[0].key(), "default/j");
}

#[test]
fn errors_name_origin_document_and_field() {
    let yaml = format!(
        "{}---\n{}",
        doc("Address", API_VERSION, "{ address: a, type: anycast }"),
        doc("Address", API_VERSION, "{ address: b, type: fanout }").replace("name: a", "name: b")
    );
    let err = parse_str(&yaml, "dir/addrs.yaml").unwrap_err();
    assert_eq!(err.field(), Some("spec.type"));
    assert_eq!(
        err.to_string(),
        r#"dir/addrs.yaml (document 2): spec.type: unknown variant "fanout", expected one of anycast, multicast, queue, topic, subscription"#
    );
}

#[test]
fn unknown_kind_is_refused_naming_kind() {
    let msg = refused(&doc("Queue", API_VERSION, "{ address: a, type: anycast }"));
    assert_eq!(
        msg,
        r#"m.yaml (document 1): kind: unknown kind "Queue", expected one of Address"#
    );
    let msg = refused("apiVersion: shoal.dev/v1beta1\nmetadata: { name: a }\n");
    assert_eq!(msg, "m.yaml (document 1): kind: is required");
}

#[test]
fn api_version_is_checked() {
    let msg = refused(&doc(
        "Address",
        "shoal.dev/v1",
        "{ address: a, type: anycast }",
    ));
    assert!(
        msg.starts_with("m.yaml (document 1): apiVersion: unsupported \"shoal.dev/v1\""),
        "{msg}"
    );
    let msg =
        refused("kind: Address\nmetadata: { name: a }\nspec: { address: a, type: anycast }\n");
    assert_eq!(msg, "m.yaml (document 1): apiVersion: is required");
}

#[test]
fn non_mapping_documents_and_bad_yaml_are_refused() {
    let msg = refused("- a\n- b\n");
    assert!(
        msg.starts_with("m.yaml (document 1): (document): must be a mapping"),
        "{msg}"
    );
    let msg = refused("kind: [unclosed\n");
    assert!(
        msg.starts_with("m.yaml (document 1): invalid YAML:"),
        "{msg}"
    );
}

#[test]
fn duplicates_are_refused() {
    let one = doc("Address", API_VERSION, "{ address: a, type: anycast }");
    let msg = refused(&format!("{one}---\n{one}"));
    assert_eq!(
        msg,
        "m.yaml (document 2): metadata.name: address default/a is also declared in m.yaml (document 1)"
    );
}

#[test]
fn to_rule_maps_match_and_distribution() {
    let manifests = parse_str(TWO_DOCS, "m.yaml").unwrap();
    let rule = to_rule(address(&manifests[0]));
    assert_eq!(rule.name, "iot/sensors");
    assert_eq!(rule.matcher, Matcher::Pattern("sensors/#".into()));
    assert_eq!(rule.distribution, Distribution::Balanced);
    let rule = to_rule(address(&manifests[1]));
    assert_eq!(rule.matcher, Matcher::Exact("alerts".into()));
    assert_eq!(rule.distribution, Distribution::Multicast);

    let yaml = doc(
        "Address",
        API_VERSION,
        "{ address: a/b, type: anycast, match: prefix, distribution: closest }",
    );
    let rule = to_rule(address(&parse_str(&yaml, "m").unwrap()[0]));
    assert_eq!(rule.matcher, Matcher::Prefix("a/b".into()));
    assert_eq!(rule.distribution, Distribution::Closest);
    assert_eq!(rule.link_route, None);
}

#[test]
fn to_rule_routes_anycast_and_multicast_itself() {
    for (spec, distribution) in [
        ("{ address: a, type: anycast }", Distribution::Balanced),
        (
            "{ address: a, type: anycast, distribution: closest }",
            Distribution::Closest,
        ),
        ("{ address: a, type: multicast }", Distribution::Multicast),
    ] {
        let yaml = doc("Address", API_VERSION, spec);
        let rule = to_rule(address(&parse_str(&yaml, "m").unwrap()[0]));
        assert_eq!(rule.matcher, Matcher::Exact("a".into()), "{spec}");
        assert_eq!(rule.distribution, distribution, "{spec}");
        assert_eq!(rule.link_route, None, "{spec}");
    }
}

#[test]
fn to_rule_link_routes_broker_addresses_to_the_broker() {
    for spec in [
        "{ address: orders, type: queue }",
        "{ address: orders, type: queue, match: exact, deadLetterAddress: dlq }",
        "{ address: orders, type: topic }",
        "{ address: orders, type: subscription, topic: news }",
    ] {
        let yaml = doc("Address", API_VERSION, spec).replace("name: a", "name: orders-q");
        let rule = to_rule(address(&parse_str(&yaml, "m").unwrap()[0]));
        assert_eq!(rule.name, "default/orders-q", "{spec}");
        assert_eq!(rule.matcher, Matcher::Exact("orders".into()), "{spec}");
        assert_eq!(rule.distribution, Distribution::Balanced, "{spec}");
        assert_eq!(rule.link_route.as_deref(), Some(BROKER), "{spec}");
    }
    assert_eq!(BROKER, "broker");
}

#[test]
fn broker_addresses_round_trip_through_yaml() {
    let yaml = doc(
        "Address",
        API_VERSION,
        "{ address: s, type: subscription, topic: news, redeliveryDelay: 1500ms, \
         messageTtl: { maximum: 2h }, fullPolicy: reject }",
    );
    let manifests = parse_str(&yaml, "m").unwrap();
    let text = to_yaml(&manifests).unwrap();
    assert!(text.contains("redeliveryDelay: 1500ms"), "{text}");
    assert_eq!(parse_str(&text, "again").unwrap(), manifests);
}

#[test]
fn to_yaml_round_trips() {
    let manifests = parse_str(TWO_DOCS, "m.yaml").unwrap();
    let text = to_yaml(&manifests).unwrap();
    assert_eq!(parse_str(&text, "again").unwrap(), manifests);
}

#[test]
fn load_paths_reads_files_and_sorted_folders() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: String| std::fs::write(dir.path().join(name), body).unwrap();
    let named = |name: &str| {
        doc("Address", API_VERSION, "{ address: x, type: anycast }")
            .replace("name: a", &format!("name: {name}"))
    };
    write("b.yml", named("b"));
    write("a.yaml", named("a"));
    write("notes.txt", "not yaml: [".into());
    let loose = dir.path().join("loose.manifest");
    std::fs::write(&loose, named("c")).unwrap();

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Folders are not recursed into.
    std::fs::write(sub.join("d.yaml"), named("d")).unwrap();

    let manifests = load_paths(&[dir.path().to_owned(), loose]).unwrap();
    let keys: Vec<_> = manifests.iter().map(Manifest::key).collect();
    assert_eq!(keys, ["default/a", "default/b", "default/c"]);
}

#[test]
fn load_paths_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        doc("Address", API_VERSION, r#"{ address: "", type: anycast }"#),
    )
    .unwrap();
    let err = load_paths(std::slice::from_ref(&bad)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} (document 1): spec.address: must not be empty",
            bad.display()
        )
    );
    let missing = dir.path().join("missing.yaml");
    let err = load_paths(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(err, ManifestError::Read { .. }), "{err}");
    assert!(err.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn duplicates_across_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let one = doc("Address", API_VERSION, "{ address: a, type: anycast }");
    std::fs::write(dir.path().join("1.yaml"), &one).unwrap();
    std::fs::write(dir.path().join("2.yaml"), &one).unwrap();
    let err = load_paths(&[dir.path().to_owned()]).unwrap_err();
    assert!(err.to_string().contains("is also declared in"), "{err}");
}
