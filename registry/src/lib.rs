//! `shoal-registry`: a device registry in the shape of Eclipse Hono's.
//!
//! Devices belong to tenants and prove who they are with credentials:
//! `hashed-password` (bcrypt, or Hono's salted SHA-256/512), `x509-cert` (matched by
//! the certificate's subject DN, normalised to RFC 2253) or `psk` (stored only).
//!
//! Two audiences use it:
//!
//! - Operators manage tenants, devices and credentials over HTTP with Hono's
//!   Device Registry Management API v1 ([`router`]), so existing Hono tooling works.
//! - Protocol adapters (Shoal's MQTT gateway) authenticate connections in-process:
//!   [`Registry::authenticate_password`] for `auth-id@tenant` + password (see
//!   [`parse_username`]), [`Registry::authenticate_cert`] after the gateway has
//!   verified a client certificate against [`Registry::trusted_cas`], and
//!   [`Registry::is_gateway_for`] when a gateway device acts for another device.
//!   [`AuthError`] keeps apart what the gateway needs to pick a CONNACK code without
//!   telling a client whether an auth-id exists.
//!
//! State is in memory behind a [`Registry`] handle (cheap to clone) and persisted
//! in `<data-dir>/registry/` as one JSON file per tenant, replaced atomically on
//! every change; [`Registry::in_memory`] skips the disk for tests.
//! Successful bcrypt checks are cached (bounded) so a fleet reconnecting after a
//! gateway restart does not cost one bcrypt run per device.

mod auth;
mod cache;
mod config;
mod credentials;
mod dn;
mod error;
mod http;
mod model;
mod password;
mod registry;
mod store;
mod time;

pub use auth::{parse_username, DeviceIdentity};
pub use config::RegistryConfig;
pub use dn::normalize_subject_dn;
pub use error::{AuthError, RegistryError};
pub use http::router;
pub use model::{Created, Credential, CredentialType, Device, Secret, Tenant, TrustedCa};
pub use password::{sha_hash, HashFunction};
pub use registry::{Registry, Versioned};
