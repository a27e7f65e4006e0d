//! Device authentication for protocol adapters (the MQTT gateway).
//!
//! The order of checks decides what a client can learn: tenant problems are
//! reported first (the tenant is in the username, not a secret); then the
//! credentials, where "unknown auth-id" and "wrong password" are one error and take
//! the same time; and only after a correct password whether the device is disabled.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::AuthError;
use crate::model::{CredentialType, Device, Secret, TrustedCa};
use crate::password::{self, HashFunction};
use crate::registry::{lock, Registry};
use crate::time::now_unix;

/// Who a successfully authenticated connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub tenant_id: String,
    pub device_id: String,
    pub auth_id: String,
}

/// Splits an MQTT username `auth-id@tenant` into `(auth_id, tenant)`.
///
/// The split is at the last `@`, so auth-ids that are e-mail addresses still work
/// (`alice@example.com@acme`); tenant ids cannot contain `@`. Without an `@` the
/// whole username is the auth-id in `default_tenant`; `None` if there is no default
/// or a part is empty.
pub fn parse_username<'a>(
    username: &'a str,
    default_tenant: Option<&'a str>,
) -> Option<(&'a str, &'a str)> {
    let (auth_id, tenant) = match username.rsplit_once('@') {
        Some((a, t)) => (a, t),
        None => (username, default_tenant?),
    };
    if auth_id.is_empty() || tenant.is_empty() {
        return None;
    }
    Some((auth_id, tenant))
}

/// What the password check needs, copied out of the state so no lock is held
/// while bcrypt runs.
struct Candidate {
    device_id: String,
    device_enabled: bool,
    secrets: Vec<Secret>,
}

impl Registry {
    /// [`parse_username`] with the configured default tenant.
    pub fn parse_username<'a>(&'a self, username: &'a str) -> Option<(&'a str, &'a str)> {
        parse_username(username, self.config().default_tenant.as_deref())
    }

    /// Checks a `hashed-password` credential.
    ///
    /// Blocking: a cache miss runs bcrypt (~50 ms at cost 10). From async code use
    /// [`Registry::authenticate_password_async`] or `spawn_blocking`.
    pub fn authenticate_password(
        &self,
        tenant_id: &str,
        auth_id: &str,
        password: &str,
    ) -> Result<DeviceIdentity, AuthError> {
        let Some(candidate) = self.password_candidate(tenant_id, auth_id)? else {
            self.burn_time(password);
            return Err(AuthError::BadCredentials);
        };
        let now = now_unix();
        let mut internal = None;
        let mut matched = false;
        let mut checked = false;
        for s in candidate.secrets.iter().filter(|s| s.is_valid_at(now)) {
            checked = true;
            match self.check_secret(tenant_id, auth_id, s, password) {
                Ok(true) => {
                    matched = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => internal = Some(e),
            }
        }
        if !checked {
            // Only expired or disabled secrets: answer as slowly as a real check so
            // response times do not tell "exists but expired" from "wrong password".
            self.burn_time(password);
        }
        if !matched {
            if let Some(e) = internal {
                // A broken stored secret is an operator problem; the client still
                // only learns "bad credentials".
                tracing::warn!(tenant = tenant_id, auth_id, error = %e, "stored secret could not be checked");
            }
            return Err(AuthError::BadCredentials);
        }
        if !candidate.device_enabled {
            return Err(AuthError::DeviceDisabled);
        }
        Ok(DeviceIdentity {
            tenant_id: tenant_id.to_string(),
            device_id: candidate.device_id,
            auth_id: auth_id.to_string(),
        })
    }

    /// [`Registry::authenticate_password`] on tokio's blocking pool.
    pub async fn authenticate_password_async(
        &self,
        tenant_id: String,
        auth_id: String,
        password: String,
    ) -> Result<DeviceIdentity, AuthError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.authenticate_password(&tenant_id, &auth_id, &password)
        })
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
    }

    fn password_candidate(
        &self,
        tenant_id: &str,
        auth_id: &str,
    ) -> Result<Option<Candidate>, AuthError> {
        let state = self.read();
        let tenant = state
            .tenants
            .get(tenant_id)
            .ok_or(AuthError::UnknownTenant)?;
        if !tenant.record.tenant.enabled {
            return Err(AuthError::TenantDisabled);
        }
        let key = (CredentialType::HashedPassword, auth_id.to_string());
        let Some(device_id) = tenant.auth_index.get(&key) else {
            return Ok(None);
        };
        let Some(device) = tenant.record.devices.get(device_id) else {
            return Ok(None);
        };
        let credential = device
            .credentials
            .iter()
            .find(|c| c.kind == CredentialType::HashedPassword && c.auth_id == auth_id)
            .filter(|c| c.enabled);
        Ok(credential.map(|c| Candidate {
            device_id: device_id.clone(),
            device_enabled: device.device.enabled,
            secrets: c.secrets.clone(),
        }))
    }

    fn check_secret(
        &self,
        tenant_id: &str,
        auth_id: &str,
        s: &Secret,
        password: &str,
    ) -> Result<bool, String> {
        let hash = s.pwd_hash.as_deref().ok_or("secret without pwd-hash")?;
        let function = s
            .hash_function
            .as_deref()
            .and_then(HashFunction::parse)
            .ok_or("secret without a known hash-function")?;
        if function != HashFunction::Bcrypt {
            let salt = match s.salt.as_deref() {
                Some(b) => Some(B64.decode(b).map_err(|e| format!("salt: {e}"))?),
                None => None,
            };
            return password::verify(function, hash, salt.as_deref(), password);
        }
        if lock(&self.inner.cache).contains(tenant_id, auth_id, hash, password) {
            return Ok(true);
        }
        // The cache lock is not held here: bcrypt must not serialise all logins.
        let ok = password::verify(function, hash, None, password)?;
        if ok {
            lock(&self.inner.cache).insert(tenant_id, auth_id, hash, password);
        }
        Ok(ok)
    }

    /// Spends what a bcrypt check would, for unknown auth-ids.
    fn burn_time(&self, password: &str) {
        let cost = self.config().bcrypt_cost;
        let dummy = self
            .inner
            .dummy_hash
            .get_or_init(|| password::bcrypt_hash("no such device", cost).unwrap_or_default());
        let _ = password::verify(HashFunction::Bcrypt, dummy, None, password);
    }

    /// Looks up the device whose `x509-cert` credential has this subject DN. The
    /// gateway calls this after verifying the client certificate chain against the
    /// tenant's trusted CAs; the registry does no TLS.
    pub fn authenticate_cert(
        &self,
        tenant_id: &str,
        subject_dn: &str,
    ) -> Result<DeviceIdentity, AuthError> {
        let dn = normalize(subject_dn)?;
        let state = self.read();
        let tenant = state
            .tenants
            .get(tenant_id)
            .ok_or(AuthError::UnknownTenant)?;
        if !tenant.record.tenant.enabled {
            return Err(AuthError::TenantDisabled);
        }
        let key = (CredentialType::X509Cert, dn);
        let device_id = tenant
            .auth_index
            .get(&key)
            .ok_or(AuthError::BadCredentials)?;
        let device = tenant
            .record
            .devices
            .get(device_id)
            .ok_or(AuthError::BadCredentials)?;
        let now = now_unix();
        let usable = device.credentials.iter().any(|c| {
            c.kind == CredentialType::X509Cert
                && c.auth_id == key.1
                && c.enabled
                && (c.secrets.is_empty() || c.secrets.iter().any(|s| s.is_valid_at(now)))
        });
        if !usable {
            return Err(AuthError::BadCredentials);
        }
        if !device.device.enabled {
            return Err(AuthError::DeviceDisabled);
        }
        Ok(DeviceIdentity {
            tenant_id: tenant_id.to_string(),
            device_id: device_id.clone(),
            auth_id: key.1,
        })
    }
}

impl Registry {
    /// The tenant's trusted CAs (empty if none); `None` if the tenant is unknown.
    pub fn trusted_cas(&self, tenant_id: &str) -> Option<Vec<TrustedCa>> {
        let state = self.read();
        state
            .tenants
            .get(tenant_id)
            .map(|t| t.record.tenant.trusted_ca.clone())
    }

    /// Every enabled tenant that has trusted CAs, with them: what the gateway needs
    /// to build its client-certificate trust store. Sorted by tenant id.
    pub fn tenants_with_trusted_cas(&self) -> Vec<(String, Vec<TrustedCa>)> {
        let state = self.read();
        let mut out: Vec<_> = state
            .tenants
            .iter()
            .filter(|(_, t)| t.record.tenant.enabled && !t.record.tenant.trusted_ca.is_empty())
            .map(|(id, t)| (id.clone(), t.record.tenant.trusted_ca.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The trusted CAs, of any tenant, whose subject DN is `issuer_dn` and whose
    /// `not-before`/`not-after` window holds now, each with its tenant id (sorted by
    /// tenant id). The gateway calls this during a TLS handshake with the issuer of a
    /// client certificate: the matching CAs are the trust anchors for the chain, and
    /// their tenant is the device's tenant.
    ///
    /// Disabled tenants are included: their devices complete the TLS handshake and
    /// are then refused with the MQTT "not authorized" code, which tells an operator
    /// more than a TLS alert. A DN that does not parse matches nothing.
    pub fn trusted_cas_for_issuer(&self, issuer_dn: &str) -> Vec<(String, TrustedCa)> {
        let Ok(dn) = crate::dn::normalize_subject_dn(issuer_dn) else {
            return Vec::new();
        };
        let now = now_unix();
        let state = self.read();
        let mut out = Vec::new();
        for (id, t) in &state.tenants {
            for ca in &t.record.tenant.trusted_ca {
                if ca.subject_dn == dn && ca_valid_at(ca, now) {
                    out.push((id.clone(), ca.clone()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Whether `gateway_id` may act for `device_id`: both exist and are enabled in
    /// an enabled tenant, and the gateway is in the device's `via` list or in one of
    /// its `viaGroups` (through the gateway's `memberOf`), as in Hono.
    pub fn is_gateway_for(&self, tenant_id: &str, gateway_id: &str, device_id: &str) -> bool {
        let state = self.read();
        let Some(t) = state.tenants.get(tenant_id) else {
            return false;
        };
        let devices = &t.record.devices;
        let (Some(gw), Some(dev)) = (devices.get(gateway_id), devices.get(device_id)) else {
            return false;
        };
        if !t.record.tenant.enabled || !gw.device.enabled || !dev.device.enabled {
            return false;
        }
        if dev.device.via.iter().any(|v| v == gateway_id) {
            return true;
        }
        let strings = |d: &Device, key: &str| -> Vec<String> {
            d.other
                .get(key)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let groups = strings(&dev.device, "viaGroups");
        !groups.is_empty()
            && strings(&gw.device, "memberOf")
                .iter()
                .any(|g| groups.contains(g))
    }
}

/// A trusted CA outside its validity window anchors nothing. The registry checked
/// the timestamps when the tenant was stored, so a value that does not parse here
/// cannot occur; it is treated as "not valid", the safe side.
fn ca_valid_at(ca: &TrustedCa, now: i64) -> bool {
    let bound = |t: &Option<String>| t.as_deref().map(crate::time::parse_rfc3339);
    let after_start = match bound(&ca.not_before) {
        Some(nb) => nb.is_some_and(|nb| now >= nb),
        None => true,
    };
    let before_end = match bound(&ca.not_after) {
        Some(na) => na.is_some_and(|na| now <= na),
        None => true,
    };
    after_start && before_end
}

fn normalize(subject_dn: &str) -> Result<String, AuthError> {
    crate::dn::normalize_subject_dn(subject_dn).map_err(|_| AuthError::BadCredentials)
}

#[cfg(test)]
mod tests {
    use super::parse_username;
    use crate::{Registry, Tenant};

    fn tenant(json: serde_json::Value) -> Tenant {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn trusted_cas_for_issuer_matches_the_normalised_dn_in_any_tenant_within_validity() {
        let r = Registry::in_memory(Default::default());
        let ca = |dn: &str| serde_json::json!({"subject-dn": dn, "public-key": "AAAA"});
        r.create_tenant(
            Some("acme"),
            tenant(serde_json::json!({"trusted-ca": [ca("CN=Acme CA,O=Acme")]})),
        )
        .unwrap();
        r.create_tenant(
            Some("off"),
            tenant(serde_json::json!({"enabled": false, "trusted-ca": [ca("CN=Off CA")]})),
        )
        .unwrap();
        let expired = serde_json::json!({
            "subject-dn": "CN=Old CA", "public-key": "AAAA", "not-after": "2001-01-01T00:00:00Z"
        });
        r.create_tenant(
            Some("old"),
            tenant(serde_json::json!({"trusted-ca": [expired]})),
        )
        .unwrap();
        r.create_tenant(
            Some("zeta"),
            tenant(serde_json::json!({"trusted-ca": [ca("cn=Acme CA, o=Acme")]})),
        )
        .unwrap();

        let tenants = |dn: &str| -> Vec<String> {
            r.trusted_cas_for_issuer(dn)
                .into_iter()
                .map(|(t, _)| t)
                .collect()
        };
        // Spelled differently, same DN: both tenants that trust it, sorted.
        assert_eq!(tenants("CN = Acme CA ; O = Acme"), ["acme", "zeta"]);
        // A disabled tenant's CA still anchors (its devices are refused at CONNECT).
        assert_eq!(tenants("CN=Off CA"), ["off"]);
        assert!(
            tenants("CN=Old CA").is_empty(),
            "an expired CA anchors nothing"
        );
        assert!(tenants("CN=Nobody").is_empty());
        assert!(tenants("not a DN").is_empty());
    }

    #[test]
    fn username_forms() {
        assert_eq!(parse_username("dev1@acme", None), Some(("dev1", "acme")));
        assert_eq!(
            parse_username("a@example.com@acme", None),
            Some(("a@example.com", "acme"))
        );
        assert_eq!(parse_username("dev1", Some("def")), Some(("dev1", "def")));
        assert_eq!(parse_username("dev1", None), None);
        assert_eq!(parse_username("dev1@", Some("def")), None);
        assert_eq!(parse_username("@acme", None), None);
        assert_eq!(parse_username("", Some("def")), None);
    }
}
