//! The registry's objects in Hono's JSON shape (Device Registry Management API v1).
//!
//! Fields the registry acts on are typed; everything else Hono defines on tenants
//! and devices (`adapters`, `resource-limits`, `viaGroups`, `memberOf`, ...) is kept
//! as opaque JSON in `other` and returned unchanged, so a Hono client can round-trip
//! its objects. Credentials and secrets refuse unknown fields instead: a misspelt
//! `pwd_plain` must be an error, not a stored secret without a password.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A tenant: the unit of isolation, with the CAs that may sign its devices' certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Tenant {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_ca: Vec<TrustedCa>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Map<String, Value>>,
    /// Other Hono tenant properties, stored and returned as given.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            enabled: true,
            trusted_ca: Vec::new(),
            ext: None,
            other: Map::new(),
        }
    }
}

/// A CA trusted to sign device certificates of a tenant.
///
/// The registry does no X.509 parsing: `subject-dn` is required (normalised to RFC
/// 2253), and `cert` (PEM) or `public-key` (base64 DER) is handed to the gateway,
/// which builds its TLS trust store from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrustedCa {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub subject_dn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A device registered in a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Device {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Gateway devices allowed to publish and subscribe on this device's behalf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Map<String, Value>>,
    /// Other Hono device properties (`viaGroups`, `memberOf`, `authorities`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            enabled: true,
            via: Vec::new(),
            defaults: None,
            ext: None,
            other: Map::new(),
        }
    }
}

/// The credential types Hono defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CredentialType {
    #[serde(rename = "hashed-password")]
    HashedPassword,
    #[serde(rename = "x509-cert")]
    X509Cert,
    #[serde(rename = "psk")]
    Psk,
}

impl CredentialType {
    pub fn name(self) -> &'static str {
        match self {
            CredentialType::HashedPassword => "hashed-password",
            CredentialType::X509Cert => "x509-cert",
            CredentialType::Psk => "psk",
        }
    }
}

/// One way a device can prove who it is: a type, an auth-id unique per tenant and
/// type, and the secrets (several, so passwords can be rotated with overlap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Credential {
    #[serde(rename = "type")]
    pub kind: CredentialType,
    pub auth_id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Map<String, Value>>,
}

/// A secret of a credential. Which fields apply depends on the credential type:
/// `pwd-*`, `hash-function`, `salt` for hashed-password, `key` for psk, only the
/// validity period for x509-cert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Secret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Input only: hashed on the way in, never stored or returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd_plain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_function: Option<String>,
    /// Base64 salt for the SHA hash functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Base64 pre-shared key (psk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Secret {
    /// Whether the secret may be used at `now` (Unix seconds). Bounds were checked
    /// when the secret was stored, so an unparsable one cannot occur; it would
    /// count as "not valid" rather than "valid forever".
    pub fn is_valid_at(&self, now: i64) -> bool {
        let after_start = match &self.not_before {
            Some(t) => crate::time::parse_rfc3339(t).is_some_and(|nb| now >= nb),
            None => true,
        };
        let before_end = match &self.not_after {
            Some(t) => crate::time::parse_rfc3339(t).is_some_and(|na| now <= na),
            None => true,
        };
        self.enabled && after_start && before_end
    }

    /// The secret as GET returns it: metadata only, no hash, salt or key.
    pub fn redacted(&self) -> Secret {
        Secret {
            pwd_plain: None,
            pwd_hash: None,
            salt: None,
            key: None,
            ..self.clone()
        }
    }
}

impl Credential {
    /// The credential as GET returns it, with every secret redacted.
    pub fn redacted(&self) -> Credential {
        Credential {
            secrets: self.secrets.iter().map(Secret::redacted).collect(),
            ..self.clone()
        }
    }
}

/// The body Hono returns on create: the (possibly generated) id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}
