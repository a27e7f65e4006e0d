use super::*;
use crate::auth::DeviceIdentity;
use crate::error::AuthError;
use crate::password::{sha_hash, HashFunction};
use base64::Engine as _;

fn config() -> RegistryConfig {
    RegistryConfig {
        bcrypt_cost: 4,
        max_tenants: 3,
        max_devices_per_tenant: 50,
        ..RegistryConfig::default()
    }
}

fn creds(json: &str) -> Vec<Credential> {
    serde_json::from_str(json).unwrap()
}

/// Tenant `t` with device `dev` whose password is `pw` (auth-id `dev1`).
fn setup(reg: &Registry) {
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    reg.create_device("t", Some("dev"), Device::default())
        .unwrap();
    reg.set_credentials(
        "t",
        "dev",
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw"}]}]"#),
        None,
    )
    .unwrap();
}

#[test]
fn tenant_crud_conflicts_limits_and_versions() {
    let reg = Registry::in_memory(config());
    let v = reg.create_tenant(Some("a"), Tenant::default()).unwrap();
    assert_eq!(v.value, "a");
    assert!(matches!(
        reg.create_tenant(Some("a"), Tenant::default()),
        Err(RegistryError::Conflict(_))
    ));
    let generated = reg.create_tenant(None, Tenant::default()).unwrap().value;
    assert_eq!(generated.len(), 32);
    reg.create_tenant(Some("c"), Tenant::default()).unwrap();
    let full = reg.create_tenant(Some("d"), Tenant::default()).unwrap_err();
    assert_eq!(full.status(), 403, "{full}");
    assert!(matches!(
        reg.create_tenant(Some("bad/id"), Tenant::default()),
        Err(RegistryError::Invalid(_))
    ));

    let disabled = Tenant {
        enabled: false,
        ..Tenant::default()
    };
    let stale = reg
        .update_tenant("a", disabled.clone(), Some("nope"))
        .unwrap_err();
    assert_eq!(stale.status(), 412);
    let v2 = reg.update_tenant("a", disabled, Some(&v.version)).unwrap();
    assert_ne!(v2, v.version);
    let got = reg.tenant("a").unwrap();
    assert!(!got.value.enabled);
    assert_eq!(got.version, v2);
    assert_eq!(
        reg.update_tenant("zz", Tenant::default(), None)
            .unwrap_err()
            .status(),
        404
    );

    reg.delete_tenant("a", Some("*")).unwrap();
    assert_eq!(reg.tenant("a").unwrap_err().status(), 404);
    assert_eq!(reg.delete_tenant("a", None).unwrap_err().status(), 404);
    let mut want = vec!["c".to_string(), generated];
    want.sort();
    assert_eq!(reg.tenant_ids(), want);
}

#[test]
fn trusted_cas_are_normalised_and_listed() {
    let reg = Registry::in_memory(config());
    let tenant: Tenant = serde_json::from_str(
        r#"{"trusted-ca":[{"subject-dn":"cn=Root, o=Acme","cert":"-----BEGIN CERTIFICATE-----"}],
            "adapters":[{"type":"hono-mqtt"}]}"#,
    )
    .unwrap();
    reg.create_tenant(Some("t"), tenant).unwrap();
    reg.create_tenant(Some("plain"), Tenant::default()).unwrap();
    let cas = reg.trusted_cas("t").unwrap();
    assert_eq!(cas[0].subject_dn, "CN=Root,O=Acme");
    assert!(cas[0].id.is_some());
    assert_eq!(reg.trusted_cas("plain"), Some(vec![]));
    assert_eq!(reg.trusted_cas("none"), None);
    let all = reg.tenants_with_trusted_cas();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "t");
    // Opaque Hono properties survive.
    assert!(reg
        .tenant("t")
        .unwrap()
        .value
        .other
        .contains_key("adapters"));

    let no_key: Tenant = serde_json::from_str(r#"{"trusted-ca":[{"subject-dn":"CN=x"}]}"#).unwrap();
    let e = reg.update_tenant("t", no_key, None).unwrap_err();
    assert!(e.to_string().contains("trusted-ca[0]"), "{e}");
}

#[test]
fn device_crud_and_cascading_deletes() {
    let reg = Registry::in_memory(config());
    assert_eq!(
        reg.create_device("t", Some("d"), Device::default())
            .unwrap_err()
            .status(),
        404
    );
    setup(&reg);
    assert_eq!(
        reg.create_device("t", Some("dev"), Device::default())
            .unwrap_err()
            .status(),
        409
    );
    let v = reg.device("t", "dev").unwrap();
    assert!(v.value.enabled);
    assert_eq!(
        reg.update_device("t", "dev", Device::default(), Some("x"))
            .unwrap_err()
            .status(),
        412
    );
    reg.update_device("t", "dev", Device::default(), Some(&v.version))
        .unwrap();
    // Updating the device keeps its credentials.
    assert!(reg.authenticate_password("t", "dev1", "pw").is_ok());

    reg.delete_device("t", "dev", None).unwrap();
    assert_eq!(reg.device("t", "dev").unwrap_err().status(), 404);
    assert_eq!(reg.credentials("t", "dev").unwrap_err().status(), 404);
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::BadCredentials)
    );

    // The auth-id is free again, and deleting the tenant takes its devices along.
    reg.create_device("t", Some("dev2"), Device::default())
        .unwrap();
    reg.set_credentials(
        "t",
        "dev2",
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw"}]}]"#),
        None,
    )
    .unwrap();
    reg.delete_tenant("t", None).unwrap();
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    assert_eq!(reg.device("t", "dev2").unwrap_err().status(), 404);
}

#[test]
fn device_limit_is_enforced() {
    let reg = Registry::in_memory(RegistryConfig {
        max_devices_per_tenant: 2,
        ..config()
    });
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    reg.create_device("t", None, Device::default()).unwrap();
    reg.create_device("t", None, Device::default()).unwrap();
    let e = reg.create_device("t", None, Device::default()).unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(e.to_string().contains("maximum of 2 devices"), "{e}");
}

#[test]
fn auth_ids_are_unique_per_tenant_and_type() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    reg.create_device("t", Some("other"), Device::default())
        .unwrap();
    let taken =
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"x"}]}]"#);
    let e = reg.set_credentials("t", "other", taken, None).unwrap_err();
    assert_eq!(e.status(), 409, "{e}");
    // Another type may reuse the name; another tenant may reuse it too.
    reg.set_credentials(
        "t",
        "other",
        creds(r#"[{"type":"psk","auth-id":"dev1","secrets":[{"key":"AA=="}]}]"#),
        None,
    )
    .unwrap();
    reg.create_tenant(Some("u"), Tenant::default()).unwrap();
    reg.create_device("u", Some("dev"), Device::default())
        .unwrap();
    reg.set_credentials(
        "u",
        "dev",
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"other"}]}]"#),
        None,
    )
    .unwrap();
    assert!(reg.authenticate_password("t", "dev1", "pw").is_ok());
    assert!(reg.authenticate_password("u", "dev1", "other").is_ok());
    assert_eq!(
        reg.authenticate_password("u", "dev1", "pw"),
        Err(AuthError::BadCredentials)
    );
    // Re-putting a device's own list is not a conflict with itself.
    let own =
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw2"}]}]"#);
    reg.set_credentials("t", "dev", own, None).unwrap();
    assert!(reg.authenticate_password("t", "dev1", "pw2").is_ok());
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::BadCredentials)
    );
}

#[test]
fn password_auth_outcomes() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    let id = reg.authenticate_password("t", "dev1", "pw").unwrap();
    assert_eq!(
        id,
        DeviceIdentity {
            tenant_id: "t".into(),
            device_id: "dev".into(),
            auth_id: "dev1".into()
        }
    );
    assert_eq!(
        reg.authenticate_password("t", "dev1", "PW"),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        reg.authenticate_password("t", "nobody", "pw"),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        reg.authenticate_password("x", "dev1", "pw"),
        Err(AuthError::UnknownTenant)
    );

    // A disabled device is only reported to a client that knows the password.
    let off = Device {
        enabled: false,
        ..Device::default()
    };
    reg.update_device("t", "dev", off, None).unwrap();
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::DeviceDisabled)
    );
    assert_eq!(
        reg.authenticate_password("t", "dev1", "no"),
        Err(AuthError::BadCredentials)
    );
    reg.update_device("t", "dev", Device::default(), None)
        .unwrap();

    let off = Tenant {
        enabled: false,
        ..Tenant::default()
    };
    reg.update_tenant("t", off, None).unwrap();
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::TenantDisabled)
    );
    reg.update_tenant("t", Tenant::default(), None).unwrap();

    // Disabled credential, expired and not-yet-valid secrets.
    for body in [
        r#"[{"type":"hashed-password","auth-id":"dev1","enabled":false,"secrets":[{"pwd-plain":"pw"}]}]"#,
        r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw","not-after":"2001-01-01T00:00:00Z"}]}]"#,
        r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw","not-before":"2999-01-01T00:00:00Z"}]}]"#,
        r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw","enabled":false}]}]"#,
    ] {
        reg.set_credentials("t", "dev", creds(body), None).unwrap();
        assert_eq!(
            reg.authenticate_password("t", "dev1", "pw"),
            Err(AuthError::BadCredentials),
            "{body}"
        );
    }
}

#[test]
fn sha_secrets_with_hono_salt_convention() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b"pepper";
    let h256 = sha_hash(HashFunction::Sha256, salt, "pw256").unwrap();
    let h512 = sha_hash(HashFunction::Sha512, b"", "pw512").unwrap();
    let body = format!(
        r#"[{{"type":"hashed-password","auth-id":"dev1","secrets":[
            {{"pwd-hash":"{h256}","hash-function":"sha-256","salt":"{}"}},
            {{"pwd-hash":"{h512}","hash-function":"sha-512"}}]}}]"#,
        b64.encode(salt)
    );
    reg.set_credentials("t", "dev", creds(&body), None).unwrap();
    assert!(reg.authenticate_password("t", "dev1", "pw256").is_ok());
    assert!(
        reg.authenticate_password("t", "dev1", "pw512").is_ok(),
        "second secret is tried"
    );
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::BadCredentials)
    );
    // GET shows neither hash nor salt.
    let shown = serde_json::to_string(&reg.credentials("t", "dev").unwrap().value).unwrap();
    assert!(
        !shown.contains(&h256) && !shown.contains("pwd-hash") && !shown.contains("salt"),
        "{shown}"
    );
    assert!(shown.contains("\"id\""), "{shown}");
}

#[test]
fn successful_bcrypt_checks_are_cached_and_invalidated_by_changes() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    let cached = |pw: &str| {
        let c = reg.credentials_raw("t", "dev");
        let hash = c[0].secrets[0].pwd_hash.clone().unwrap();
        lock(&reg.inner.cache).contains("t", "dev1", &hash, pw)
    };
    assert!(!cached("pw"));
    assert_eq!(
        reg.authenticate_password("t", "dev1", "wrong"),
        Err(AuthError::BadCredentials)
    );
    assert!(!cached("wrong"), "failures are not cached");
    reg.authenticate_password("t", "dev1", "pw").unwrap();
    assert!(cached("pw"));
    assert!(reg.authenticate_password("t", "dev1", "pw").is_ok());
    // A new password gets a new stored hash: the old entry cannot match it.
    reg.set_credentials(
        "t",
        "dev",
        creds(r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"new"}]}]"#),
        None,
    )
    .unwrap();
    assert_eq!(
        reg.authenticate_password("t", "dev1", "pw"),
        Err(AuthError::BadCredentials)
    );
    assert!(!cached("pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_password_auth_runs_off_the_runtime() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    let ok = reg
        .authenticate_password_async("t".into(), "dev1".into(), "pw".into())
        .await;
    assert_eq!(ok.map(|i| i.device_id), Ok("dev".to_string()));
    let bad = reg
        .authenticate_password_async("t".into(), "dev1".into(), "x".into())
        .await;
    assert_eq!(bad, Err(AuthError::BadCredentials));
}

#[test]
fn certificate_auth_matches_normalised_subject() {
    let reg = Registry::in_memory(config());
    setup(&reg);
    reg.set_credentials(
        "t",
        "dev",
        creds(r#"[{"type":"x509-cert","auth-id":"CN=dev1, OU=Sensors, O=Acme","secrets":[{}]}]"#),
        None,
    )
    .unwrap();
    let id = reg
        .authenticate_cert("t", "cn=dev1,ou=Sensors,o=Acme")
        .unwrap();
    assert_eq!(id.device_id, "dev");
    assert_eq!(id.auth_id, "CN=dev1,OU=Sensors,O=Acme");
    assert_eq!(
        reg.authenticate_cert("t", "CN=dev2,OU=Sensors,O=Acme"),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        reg.authenticate_cert("t", "garbage"),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        reg.authenticate_cert("u", "CN=dev1"),
        Err(AuthError::UnknownTenant)
    );
    let off = Device {
        enabled: false,
        ..Device::default()
    };
    reg.update_device("t", "dev", off, None).unwrap();
    assert_eq!(
        reg.authenticate_cert("t", "CN=dev1,OU=Sensors,O=Acme"),
        Err(AuthError::DeviceDisabled)
    );
    reg.update_device("t", "dev", Device::default(), None)
        .unwrap();
    reg.set_credentials(
        "t",
        "dev",
        creds(r#"[{"type":"x509-cert","auth-id":"CN=dev1,OU=Sensors,O=Acme","secrets":[{"not-after":"2001-01-01T00:00:00Z"}]}]"#),
        None,
    )
    .unwrap();
    assert_eq!(
        reg.authenticate_cert("t", "CN=dev1,OU=Sensors,O=Acme"),
        Err(AuthError::BadCredentials)
    );
}

#[test]
fn gateway_via_and_via_groups() {
    let reg = Registry::in_memory(config());
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    reg.create_device("t", Some("gw"), Device::default())
        .unwrap();
    reg.create_device("t", Some("gw2"), Device::default())
        .unwrap();
    let group_gw: Device = serde_json::from_str(r#"{"memberOf":["site-a"]}"#).unwrap();
    reg.create_device("t", Some("gw3"), group_gw).unwrap();
    let sensor: Device = serde_json::from_str(r#"{"via":["gw"],"viaGroups":["site-a"]}"#).unwrap();
    reg.create_device("t", Some("sensor"), sensor.clone())
        .unwrap();

    assert!(reg.is_gateway_for("t", "gw", "sensor"));
    assert!(!reg.is_gateway_for("t", "gw2", "sensor"));
    assert!(
        reg.is_gateway_for("t", "gw3", "sensor"),
        "via group membership"
    );
    assert!(!reg.is_gateway_for("t", "sensor", "gw"), "not symmetric");
    assert!(!reg.is_gateway_for("t", "gw", "missing"));
    assert!(!reg.is_gateway_for("u", "gw", "sensor"));

    let off = Device {
        enabled: false,
        ..Device::default()
    };
    reg.update_device("t", "gw", off, None).unwrap();
    assert!(!reg.is_gateway_for("t", "gw", "sensor"), "disabled gateway");
    reg.update_device("t", "gw", Device::default(), None)
        .unwrap();
    let off_sensor = Device {
        enabled: false,
        ..sensor
    };
    reg.update_device("t", "sensor", off_sensor, None).unwrap();
    assert!(!reg.is_gateway_for("t", "gw", "sensor"), "disabled device");
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (tv, dv, cv) = {
        let reg = Registry::open(dir.path(), config()).unwrap();
        setup(&reg);
        reg.create_tenant(Some("gone"), Tenant::default()).unwrap();
        reg.delete_tenant("gone", None).unwrap();
        (
            reg.tenant("t").unwrap().version,
            reg.device("t", "dev").unwrap().version,
            reg.credentials("t", "dev").unwrap().version,
        )
    };
    let reg = Registry::open(dir.path(), config()).unwrap();
    assert_eq!(reg.tenant_ids(), vec!["t".to_string()]);
    assert_eq!(reg.tenant("t").unwrap().version, tv);
    assert_eq!(reg.device("t", "dev").unwrap().version, dv);
    assert_eq!(reg.credentials("t", "dev").unwrap().version, cv);
    assert!(
        reg.authenticate_password("t", "dev1", "pw").is_ok(),
        "index rebuilt at load"
    );
    assert_eq!(
        reg.authenticate_password("t", "dev1", "x"),
        Err(AuthError::BadCredentials)
    );
    let file = std::fs::read_to_string(dir.path().join("registry/tenant-t.json")).unwrap();
    assert!(
        file.contains("$2a$04$") && !file.contains("\"pw\""),
        "hash stored, plain not"
    );
}

#[test]
fn failed_write_leaves_memory_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path(), config()).unwrap();
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    // Replace the directory by a file so every write fails (root ignores permissions).
    let path = dir.path().join("registry");
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::write(&path, b"in the way").unwrap();
    let e = reg
        .create_device("t", Some("d"), Device::default())
        .unwrap_err();
    assert_eq!(e.status(), 500, "{e}");
    assert_eq!(reg.device("t", "d").unwrap_err().status(), 404);
    assert_eq!(reg.delete_tenant("t", None).unwrap_err().status(), 500);
    assert!(reg.tenant("t").is_ok());
}

#[test]
fn concurrent_writers_and_readers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(
        dir.path(),
        RegistryConfig {
            max_devices_per_tenant: 1000,
            ..config()
        },
    )
    .unwrap();
    reg.create_tenant(Some("t"), Tenant::default()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let id = format!("w{w}-d{i}");
                    reg.create_device("t", Some(&id), Device::default())
                        .unwrap();
                    let body = format!(
                        r#"[{{"type":"psk","auth-id":"{id}","secrets":[{{"key":"AA=="}}]}}]"#
                    );
                    reg.set_credentials("t", &id, creds(&body), None).unwrap();
                    // A reader in the same thread sees its own write at once.
                    assert!(reg.device("t", &id).is_ok());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let check = |reg: &Registry| {
        for w in 0..4 {
            for i in 0..10 {
                let id = format!("w{w}-d{i}");
                let c = reg.credentials("t", &id).unwrap().value;
                assert_eq!(c[0].auth_id, id);
            }
        }
    };
    check(&reg);
    drop(reg);
    check(&Registry::open(dir.path(), config()).unwrap());
}
