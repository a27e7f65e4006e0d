//! The crate's error types: one for management operations, one for authentication.

use std::path::PathBuf;

/// Why a management operation (create / read / update / delete) failed.
///
/// Each variant maps onto one HTTP status in [`crate::router`], so the HTTP layer
/// never has to guess; see [`RegistryError::status`].
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tenant, device or credential set does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An object with this id (or a credential with this type and auth-id) exists already.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed; the message names the offending field.
    #[error("{0}")]
    Invalid(String),
    /// A configured size limit (tenants, devices per tenant) would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// The caller's `If-Match` version does not match the stored one.
    #[error("resource version mismatch: expected {expected}, current {current}")]
    VersionMismatch { expected: String, current: String },
    /// Reading or writing the data directory failed.
    #[error("storage error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored file could not be decoded (corruption or a hand edit gone wrong).
    #[error("corrupt registry file {path}: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Hashing a password failed (bad cost or no OS randomness).
    #[error("password hashing failed: {0}")]
    Hash(#[source] bcrypt::BcryptError),
}

impl RegistryError {
    /// The HTTP status Hono's management API uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::NotFound(_) => 404,
            RegistryError::Conflict(_) => 409,
            RegistryError::Invalid(_) => 400,
            // Hono answers 403 when a tenant's registration limit is reached.
            RegistryError::LimitExceeded(_) => 403,
            RegistryError::VersionMismatch { .. } => 412,
            RegistryError::Io { .. } | RegistryError::Corrupt { .. } | RegistryError::Hash(_) => {
                500
            }
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a device could not be authenticated.
///
/// `BadCredentials` deliberately covers both "no such auth-id" and "wrong password"
/// so that a client cannot probe which auth-ids exist; the other variants are only
/// reported where knowing them does not leak anything a valid login would not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No tenant with this id (MQTT: "not authorized" / "bad user name or password").
    #[error("unknown tenant")]
    UnknownTenant,
    /// The tenant exists but is disabled.
    #[error("tenant is disabled")]
    TenantDisabled,
    /// The credentials were right but the device is disabled.
    #[error("device is disabled")]
    DeviceDisabled,
    /// Unknown auth-id, disabled or expired credential, or wrong password.
    #[error("bad credentials")]
    BadCredentials,
    /// The stored credential could not be checked (e.g. a malformed stored hash).
    #[error("internal error while authenticating: {0}")]
    Internal(String),
}
