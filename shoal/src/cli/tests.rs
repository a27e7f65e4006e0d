use super::*;

fn addresses(yaml: &str) -> Vec<Address> {
    manifest::parse_str(yaml, "t")
        .unwrap()
        .into_iter()
        .map(|m| match m {
            manifest::Manifest::Address(a) => a,
        })
        .collect()
}

#[test]
fn table_aligns_columns_and_fills_defaults() {
    let mut items = addresses(
        r#"
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: sensors }
spec: { address: "sensors/#", type: anycast }
---
apiVersion: shoal.dev/v1beta1
kind: Address
metadata: { name: alerts, namespace: ops }
spec: { address: alerts, type: multicast }
"#,
    );
    items[0].status = Some(shoal_crds::AddressStatus {
        phase: Some("Active".into()),
        message: None,
    });
    let text = table(&items);
    let expected = "\
NAMESPACE   NAME      ADDRESS     TYPE        DISTRIBUTION   PHASE
default     sensors   sensors/#   anycast     balanced       Active
ops         alerts    alerts      multicast   -              -
";
    assert_eq!(text, expected);
}

#[test]
fn error_replies_carry_the_server_message() {
    let reply = Reply {
        status: 422,
        body: r#"{"error":"request (document 1): spec.type: bad"}"#.into(),
    };
    assert_eq!(
        reply.json_ok().unwrap_err().to_string(),
        "request (document 1): spec.type: bad"
    );
    let reply = Reply {
        status: 502,
        body: "bad gateway\n".into(),
    };
    assert_eq!(
        reply.json_ok().unwrap_err().to_string(),
        "HTTP 502: bad gateway"
    );
    let reply = Reply {
        status: 200,
        body: r#"{"results":[]}"#.into(),
    };
    assert!(reply.json_ok().unwrap()["results"].is_array());
}

#[test]
fn apply_validates_locally_before_contacting_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: shoal.dev/v1beta1\nkind: Address\nmetadata: { name: a }\nspec: { address: a, type: fanout }\n",
    )
    .unwrap();
    // A reserved, never-resolvable host: had the CLI tried the server, the error would be about reaching it.
    let err = apply_to(
        "http://server.invalid",
        std::slice::from_ref(&file),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} (document 1): spec.type: unknown variant \"fanout\", expected one of anycast, multicast, queue, topic, subscription",
            file.display()
        )
    );
}

#[test]
fn apply_of_an_empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = apply_to(
        "http://server.invalid",
        &[dir.path().to_owned()],
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("no manifests found in"),
        "{err}"
    );
}
