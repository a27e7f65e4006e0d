//! The management API over a real socket: axum serves on 127.0.0.1:0, ureq drives it.

use super::*;
use crate::{AuthError, RegistryConfig};

/// A served router; dropping it shuts the runtime (and the server) down.
struct Server {
    base: String,
    agent: ureq::Agent,
    registry: Registry,
    _rt: tokio::runtime::Runtime,
}

struct Reply {
    status: u16,
    location: Option<String>,
    etag: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn serve(config: RegistryConfig) -> Server {
    let registry = Registry::in_memory(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(registry.clone());
    rt.spawn(async move { axum::serve(listener, app).await });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    Server {
        base: format!("http://{addr}"),
        agent,
        registry,
        _rt: rt,
    }
}

impl Server {
    fn call(&self, method: &str, path: &str, body: Option<&str>, if_match: Option<&str>) -> Reply {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        let resp = match body {
            Some(b) => {
                let req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap();
                self.agent.run(req)
            }
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = resp.unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (location, etag) = (header("location"), header("etag"));
        Reply {
            status: resp.status().as_u16(),
            location,
            etag,
            body: resp.body_mut().read_to_string().unwrap(),
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, None)
    }
    fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, Some(body), None)
    }
    fn put(&self, path: &str, body: &str) -> Reply {
        self.call("PUT", path, Some(body), None)
    }
    fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, None)
    }
}

fn fast() -> RegistryConfig {
    RegistryConfig {
        bcrypt_cost: 4,
        ..RegistryConfig::default()
    }
}

#[test]
fn tenant_lifecycle_and_status_codes() {
    let s = serve(RegistryConfig {
        max_tenants: 2,
        ..fast()
    });
    let r = s.post("/v1/tenants/acme", r#"{"ext":{"owner":"ops"}}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/v1/tenants/acme"));
    assert_eq!(r.json()["id"], "acme");
    let etag = r.etag.clone().unwrap();

    assert_eq!(s.post("/v1/tenants/acme", "").status, 409);
    let generated = s.call("POST", "/v1/tenants", None, None);
    assert_eq!(generated.status, 201, "{}", generated.body);
    let gen_id = generated.json()["id"].as_str().unwrap().to_string();
    assert_eq!(generated.location, Some(format!("/v1/tenants/{gen_id}")));
    let full = s.post("/v1/tenants/third", "{}");
    assert_eq!(full.status, 403);
    assert!(
        full.error().contains("maximum of 2 tenants"),
        "{}",
        full.body
    );

    let got = s.get("/v1/tenants/acme");
    assert_eq!(got.status, 200);
    assert_eq!(got.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(got.json()["enabled"], true);
    assert_eq!(got.json()["ext"]["owner"], "ops");
    assert_eq!(s.get("/v1/tenants/nope").status, 404);

    let stale = s.call(
        "PUT",
        "/v1/tenants/acme",
        Some(r#"{"enabled":false}"#),
        Some("\"old\""),
    );
    assert_eq!(stale.status, 412);
    let upd = s.call(
        "PUT",
        "/v1/tenants/acme",
        Some(r#"{"enabled":false}"#),
        Some(&etag),
    );
    assert_eq!(upd.status, 204);
    assert_ne!(upd.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(s.get("/v1/tenants/acme").json()["enabled"], false);
    assert_eq!(s.put("/v1/tenants/nope", "{}").status, 404);

    let bad = s.put("/v1/tenants/acme", r#"{"enabled":"yes"}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.error().starts_with("enabled:"), "{}", bad.body);
    let bad_ca = s.put(
        "/v1/tenants/acme",
        r#"{"trusted-ca":[{"subject-dn":"CN=x","public-key":7}]}"#,
    );
    assert_eq!(bad_ca.status, 400);
    assert!(bad_ca.error().contains("trusted-ca"), "{}", bad_ca.body);
    assert_eq!(s.post("/v1/tenants/has%2Fslash", "{}").status, 400);

    assert_eq!(s.delete("/v1/tenants/acme").status, 204);
    assert_eq!(s.delete("/v1/tenants/acme").status, 404);
}

#[test]
fn device_lifecycle_and_cascades() {
    let s = serve(RegistryConfig {
        max_devices_per_tenant: 2,
        ..fast()
    });
    assert_eq!(
        s.post("/v1/devices/acme/d1", "{}").status,
        404,
        "unknown tenant"
    );
    assert_eq!(s.post("/v1/tenants/acme", "").status, 201);
    let r = s.post(
        "/v1/devices/acme/d1",
        r#"{"via":["gw"],"ext":{"model":"x1"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/v1/devices/acme/d1"));
    assert_eq!(s.post("/v1/devices/acme/d1", "").status, 409);
    let generated = s.call("POST", "/v1/devices/acme", None, None);
    assert_eq!(generated.status, 201);
    let gen_id = generated.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        generated.location,
        Some(format!("/v1/devices/acme/{gen_id}"))
    );
    assert_eq!(
        s.post("/v1/devices/acme/d3", "").status,
        403,
        "device limit"
    );

    let got = s.get("/v1/devices/acme/d1");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["via"][0], "gw");
    assert_eq!(s.get("/v1/devices/acme/none").status, 404);

    let bad = s.put("/v1/devices/acme/d1", r#"{"via":"gw"}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.error().starts_with("via:"), "{}", bad.body);
    let etag = got.etag.unwrap();
    assert_eq!(
        s.call("PUT", "/v1/devices/acme/d1", Some("{}"), Some("x"))
            .status,
        412
    );
    assert_eq!(
        s.call("PUT", "/v1/devices/acme/d1", Some("{}"), Some(&etag))
            .status,
        204
    );
    assert_eq!(s.put("/v1/devices/acme/none", "{}").status, 404);
    assert_eq!(
        s.call("DELETE", "/v1/devices/acme/d1", None, Some("x"))
            .status,
        412
    );

    let creds = r#"[{"type":"x509-cert","auth-id":"CN=d1"}]"#;
    assert_eq!(s.put("/v1/credentials/acme/d1", creds).status, 204);
    assert_eq!(s.delete("/v1/devices/acme/d1").status, 204);
    assert_eq!(
        s.get("/v1/credentials/acme/d1").status,
        404,
        "credentials go with the device"
    );
    assert_eq!(s.delete("/v1/devices/acme/d1").status, 404);

    assert_eq!(s.delete("/v1/tenants/acme").status, 204);
    assert_eq!(s.post("/v1/tenants/acme", "").status, 201);
    assert_eq!(
        s.get(&format!("/v1/devices/acme/{gen_id}")).status,
        404,
        "devices go with the tenant"
    );
}

#[test]
fn credentials_round_trip_and_password_auth() {
    // Production bcrypt cost, as the example would run for real.
    let s = serve(RegistryConfig::default());
    assert_eq!(s.post("/v1/tenants/acme", "").status, 201);
    assert_eq!(s.post("/v1/devices/acme/dev", "").status, 201);
    assert_eq!(s.post("/v1/devices/acme/other", "").status, 201);
    assert_eq!(s.get("/v1/credentials/acme/nope").status, 404);
    let empty = s.get("/v1/credentials/acme/dev");
    assert_eq!((empty.status, empty.json()), (200, serde_json::json!([])));

    let body =
        r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"s3cret"}]}]"#;
    let put = s.put("/v1/credentials/acme/dev", body);
    assert_eq!(put.status, 204, "{}", put.body);
    let put_etag = put.etag.unwrap();

    let got = s.get("/v1/credentials/acme/dev");
    assert_eq!(got.status, 200);
    assert_eq!(got.etag.as_deref(), Some(put_etag.as_str()));
    let list = got.json();
    assert_eq!(list[0]["type"], "hashed-password");
    assert_eq!(list[0]["auth-id"], "dev1");
    assert!(list[0]["secrets"][0]["id"].is_string());
    assert!(
        !got.body.contains("s3cret") && !got.body.contains("pwd-hash"),
        "{}",
        got.body
    );

    let (user, tenant) = crate::parse_username("dev1@acme", None).unwrap();
    assert_eq!(
        s.registry
            .authenticate_password(tenant, user, "s3cret")
            .map(|i| i.device_id),
        Ok("dev".to_string())
    );
    assert_eq!(
        s.registry.authenticate_password(tenant, user, "wrong"),
        Err(AuthError::BadCredentials)
    );

    // Same auth-id on another device of the tenant: 409.
    assert_eq!(s.put("/v1/credentials/acme/other", body).status, 409);
    // Stale If-Match: 412, and nothing changed.
    assert_eq!(
        s.call("PUT", "/v1/credentials/acme/dev", Some("[]"), Some("x"))
            .status,
        412
    );
    assert!(s
        .registry
        .authenticate_password("acme", "dev1", "s3cret")
        .is_ok());

    let bad = s.put(
        "/v1/credentials/acme/dev",
        r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-hash":"abc","hash-function":"sha-256"}]}]"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.error().starts_with("[0].secrets[0].pwd-hash"),
        "{}",
        bad.body
    );
    let unknown_type = s.put(
        "/v1/credentials/acme/dev",
        r#"[{"type":"magic","auth-id":"x"}]"#,
    );
    assert_eq!(unknown_type.status, 400);
    assert!(
        unknown_type.error().starts_with("[0].type"),
        "{}",
        unknown_type.body
    );
    let not_a_list = s.put("/v1/credentials/acme/dev", r#"{"type":"psk"}"#);
    assert_eq!(not_a_list.status, 400);
    assert_eq!(s.put("/v1/credentials/acme/nope", "[]").status, 404);
}

#[test]
fn disabled_tenant_and_device_are_refused() {
    let s = serve(fast());
    s.post("/v1/tenants/acme", "");
    s.post("/v1/devices/acme/dev", "");
    let body = r#"[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"pw"}]}]"#;
    assert_eq!(s.put("/v1/credentials/acme/dev", body).status, 204);
    assert!(s
        .registry
        .authenticate_password("acme", "dev1", "pw")
        .is_ok());

    assert_eq!(
        s.put("/v1/devices/acme/dev", r#"{"enabled":false}"#).status,
        204
    );
    assert_eq!(
        s.registry.authenticate_password("acme", "dev1", "pw"),
        Err(AuthError::DeviceDisabled)
    );
    assert_eq!(s.put("/v1/devices/acme/dev", "{}").status, 204);
    assert!(s
        .registry
        .authenticate_password("acme", "dev1", "pw")
        .is_ok());

    assert_eq!(
        s.put("/v1/tenants/acme", r#"{"enabled":false}"#).status,
        204
    );
    assert_eq!(
        s.registry.authenticate_password("acme", "dev1", "pw"),
        Err(AuthError::TenantDisabled)
    );
    assert_eq!(
        s.registry.authenticate_password("other", "dev1", "pw"),
        Err(AuthError::UnknownTenant)
    );
}

#[test]
fn gateway_via_check_through_the_api() {
    let s = serve(fast());
    s.post("/v1/tenants/acme", "");
    assert_eq!(s.post("/v1/devices/acme/gw", "").status, 201);
    assert_eq!(s.post("/v1/devices/acme/gw2", "").status, 201);
    assert_eq!(
        s.post("/v1/devices/acme/sensor", r#"{"via":["gw"]}"#)
            .status,
        201
    );
    assert!(s.registry.is_gateway_for("acme", "gw", "sensor"));
    assert!(!s.registry.is_gateway_for("acme", "gw2", "sensor"));
    assert_eq!(
        s.put("/v1/devices/acme/sensor", r#"{"via":["gw2"]}"#)
            .status,
        204
    );
    assert!(!s.registry.is_gateway_for("acme", "gw", "sensor"));
    assert!(s.registry.is_gateway_for("acme", "gw2", "sensor"));
}

#[test]
fn oversized_bodies_are_refused() {
    let s = serve(RegistryConfig {
        max_body_bytes: 64,
        ..fast()
    });
    let big = format!(r#"{{"ext":{{"pad":"{}"}}}}"#, "x".repeat(200));
    assert_eq!(s.post("/v1/tenants/acme", &big).status, 413);
    assert_eq!(s.get("/v1/tenants/acme").status, 404);
}
