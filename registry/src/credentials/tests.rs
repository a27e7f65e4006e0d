use super::*;
use crate::password::sha_hash;

const POLICY: Policy = Policy {
    bcrypt_cost: 4,
    max_bcrypt_cost: 10,
    max_credentials: 3,
    max_secrets: 2,
};

fn parse(json: &str) -> Vec<Credential> {
    serde_json::from_str(json).unwrap()
}

fn prep(json: &str) -> Result<Vec<Credential>, RegistryError> {
    prepare(parse(json), &[], &POLICY)
}

fn invalid_msg(r: Result<Vec<Credential>, RegistryError>) -> String {
    match r {
        Err(RegistryError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn plain_password_is_hashed_with_bcrypt_and_dropped() {
    let out =
        prep(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"s3cret"}]}]"#)
            .unwrap();
    let s = &out[0].secrets[0];
    assert!(s.pwd_plain.is_none());
    assert_eq!(s.hash_function.as_deref(), Some("bcrypt"));
    let hash = s.pwd_hash.as_deref().unwrap();
    assert!(hash.starts_with("$2a$04$"), "{hash}");
    assert_eq!(
        password::verify(HashFunction::Bcrypt, hash, None, "s3cret"),
        Ok(true)
    );
    assert_eq!(s.id.as_deref().map(str::len), Some(32));
    let stored = serde_json::to_string(&out).unwrap();
    assert!(!stored.contains("s3cret"), "{stored}");
}

#[test]
fn id_only_secret_keeps_stored_material() {
    let old = prep(r#"[{"type":"hashed-password","auth-id":"d","secrets":[{"pwd-plain":"pw"}]}]"#)
        .unwrap();
    let id = old[0].secrets[0].id.clone().unwrap();
    let body = format!(
        r#"[{{"type":"hashed-password","auth-id":"d","secrets":[{{"id":"{id}","not-after":"2099-01-01T00:00:00Z"}}]}}]"#
    );
    let new = prepare(parse(&body), &old, &POLICY).unwrap();
    assert_eq!(new[0].secrets[0].pwd_hash, old[0].secrets[0].pwd_hash);
    assert_eq!(
        new[0].secrets[0].not_after.as_deref(),
        Some("2099-01-01T00:00:00Z")
    );

    let msg = invalid_msg(prepare(
        parse(r#"[{"type":"hashed-password","auth-id":"d","secrets":[{"id":"nope"}]}]"#),
        &old,
        &POLICY,
    ));
    assert!(msg.starts_with("[0].secrets[0].id:"), "{msg}");
    // Same id under another auth-id does not borrow that auth-id's password.
    let other = body.replace("\"auth-id\":\"d\"", "\"auth-id\":\"e\"");
    assert!(prepare(parse(&other), &old, &POLICY).is_err());
}

#[test]
fn sha_hashes_are_checked_for_shape() {
    let good = sha_hash(HashFunction::Sha256, b"salt", "pw").unwrap();
    let salt = B64.encode(b"salt");
    let ok = format!(
        r#"[{{"type":"hashed-password","auth-id":"d","secrets":[{{"pwd-hash":"{good}","hash-function":"sha-256","salt":"{salt}"}}]}}]"#
    );
    let out = prep(&ok).unwrap();
    assert_eq!(out[0].secrets[0].salt.as_deref(), Some(salt.as_str()));

    let as512 = ok.replace("sha-256", "sha-512");
    assert!(invalid_msg(prep(&as512)).contains("secrets[0].pwd-hash"));
    let no_fn = ok.replace(r#","hash-function":"sha-256""#, "");
    assert!(invalid_msg(prep(&no_fn)).contains("secrets[0].hash-function"));
    let md5 = ok.replace("sha-256", "md5");
    assert!(invalid_msg(prep(&md5)).contains("hash-function"));
    let bad_salt = ok.replace(&salt, "***");
    assert!(invalid_msg(prep(&bad_salt)).contains("secrets[0].salt"));
}

#[test]
fn bcrypt_hashes_are_capped_in_cost_and_take_no_salt() {
    let cheap = password::bcrypt_hash("pw", 4).unwrap();
    let ok = format!(
        r#"[{{"type":"hashed-password","auth-id":"d","secrets":[{{"pwd-hash":"{cheap}","hash-function":"bcrypt"}}]}}]"#
    );
    prep(&ok).unwrap();
    let dear = cheap.replacen("$04$", "$12$", 1);
    let msg = invalid_msg(prep(&ok.replace(&cheap, &dear)));
    assert!(msg.contains("cost 12 exceeds"), "{msg}");
    let salted = ok.replace(
        r#""hash-function":"bcrypt""#,
        r#""hash-function":"bcrypt","salt":"AA==""#,
    );
    assert!(invalid_msg(prep(&salted)).contains("secrets[0].salt"));
    let garbage = ok.replace(&cheap, "$2a$04$tooshort");
    assert!(invalid_msg(prep(&garbage)).contains("secrets[0].pwd-hash"));
}

#[test]
fn plain_password_limits() {
    let long = "x".repeat(73);
    let msg = invalid_msg(prep(&format!(
        r#"[{{"type":"hashed-password","auth-id":"d","secrets":[{{"pwd-plain":"{long}"}}]}}]"#
    )));
    assert!(msg.contains("secrets[0].pwd-plain"), "{msg}");
    let msg = invalid_msg(prep(
        r#"[{"type":"hashed-password","auth-id":"d","secrets":[{"pwd-plain":"a","pwd-hash":"b"}]}]"#,
    ));
    assert!(msg.contains("cannot be combined"), "{msg}");
    let msg = invalid_msg(prep(
        r#"[{"type":"hashed-password","auth-id":"d","secrets":[{}]}]"#,
    ));
    assert!(msg.contains("pwd-plain or pwd-hash is required"), "{msg}");
    let msg = invalid_msg(prep(
        r#"[{"type":"hashed-password","auth-id":"d","secrets":[]}]"#,
    ));
    assert!(msg.contains("[0].secrets"), "{msg}");
}

#[test]
fn x509_auth_ids_are_normalised_and_take_no_material() {
    let out = prep(r#"[{"type":"x509-cert","auth-id":"cn=dev1, o=Acme","secrets":[{}]}]"#).unwrap();
    assert_eq!(out[0].auth_id, "CN=dev1,O=Acme");
    assert!(out[0].secrets[0].id.is_some());
    prep(r#"[{"type":"x509-cert","auth-id":"CN=x"}]"#).unwrap();
    let msg = invalid_msg(prep(
        r#"[{"type":"x509-cert","auth-id":"CN=x","secrets":[{"key":"AA=="}]}]"#,
    ));
    assert!(msg.contains("[0].secrets[0].key: not allowed"), "{msg}");
    let msg = invalid_msg(prep(r#"[{"type":"x509-cert","auth-id":"not a dn"}]"#));
    assert!(msg.contains("[0].auth-id"), "{msg}");
}

#[test]
fn psk_needs_a_base64_key() {
    prep(r#"[{"type":"psk","auth-id":"p","secrets":[{"key":"c2VjcmV0"}]}]"#).unwrap();
    let msg = invalid_msg(prep(
        r#"[{"type":"psk","auth-id":"p","secrets":[{"key":"%%%"}]}]"#,
    ));
    assert!(msg.contains("[0].secrets[0].key"), "{msg}");
    let msg = invalid_msg(prep(
        r#"[{"type":"psk","auth-id":"p","secrets":[{"key":"c2VjcmV0","pwd-plain":"x"}]}]"#,
    ));
    assert!(msg.contains("pwd-plain: not allowed"), "{msg}");
}

#[test]
fn duplicates_limits_and_validity_periods() {
    let dup = r#"[{"type":"psk","auth-id":"p","secrets":[{"key":"AA=="}]},
                  {"type":"psk","auth-id":"p","secrets":[{"key":"AA=="}]}]"#;
    assert!(invalid_msg(prep(dup)).contains("[1].auth-id: duplicate"));
    // Same auth-id with another type is a different credential.
    prep(
        r#"[{"type":"psk","auth-id":"p","secrets":[{"key":"AA=="}]},
             {"type":"hashed-password","auth-id":"p","secrets":[{"pwd-plain":"x"}]}]"#,
    )
    .unwrap();
    let four = r#"[{"type":"x509-cert","auth-id":"CN=a"},{"type":"x509-cert","auth-id":"CN=b"},
                   {"type":"x509-cert","auth-id":"CN=c"},{"type":"x509-cert","auth-id":"CN=d"}]"#;
    assert!(invalid_msg(prep(four)).contains("at most 3 credentials"));
    let three_secrets = r#"[{"type":"x509-cert","auth-id":"CN=a","secrets":[{},{},{}]}]"#;
    assert!(invalid_msg(prep(three_secrets)).contains("at most 2 secrets"));
    let backwards = r#"[{"type":"x509-cert","auth-id":"CN=a","secrets":[
        {"not-before":"2030-01-01T00:00:00Z","not-after":"2029-01-01T00:00:00Z"}]}]"#;
    assert!(invalid_msg(prep(backwards)).contains("[0].secrets[0].not-after"));
    let bad_time =
        r#"[{"type":"x509-cert","auth-id":"CN=a","secrets":[{"not-before":"tomorrow"}]}]"#;
    assert!(invalid_msg(prep(bad_time)).contains("[0].secrets[0].not-before"));
    let dup_ids = r#"[{"type":"x509-cert","auth-id":"CN=a","secrets":[{"id":"s"},{"id":"s"}]}]"#;
    assert!(invalid_msg(prep(dup_ids)).contains("duplicate secret id"));
}

#[test]
fn unknown_fields_are_refused_not_ignored() {
    let r: Result<Vec<Credential>, _> = serde_json::from_str(
        r#"[{"type":"hashed-password","auth-id":"d","secrets":[{"pwd_plain":"x"}]}]"#,
    );
    assert!(r.unwrap_err().to_string().contains("pwd_plain"));
}
