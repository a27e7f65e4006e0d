//! Checking and preparing a credentials list before it is stored.
//!
//! A PUT replaces a device's whole list, as in Hono. On the way in:
//! `pwd-plain` is hashed with bcrypt and dropped; a secret that carries only an `id`
//! keeps the material of the stored secret with that id (so a client can change
//! `not-after` without resending the password); every secret gets an `id`;
//! x509 auth-ids are normalised to RFC 2253.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::dn::normalize_subject_dn;
use crate::error::RegistryError;
use crate::model::{Credential, CredentialType, Secret};
use crate::password::{self, HashFunction};
use crate::time::parse_rfc3339;

/// The knobs from [`crate::RegistryConfig`] that apply to credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub bcrypt_cost: u32,
    pub max_bcrypt_cost: u32,
    pub max_credentials: usize,
    pub max_secrets: usize,
}

const MAX_AUTH_ID: usize = 1024;

fn invalid(path: impl std::fmt::Display, msg: impl std::fmt::Display) -> RegistryError {
    RegistryError::Invalid(format!("{path}: {msg}"))
}

/// Validates `new` against the device's `old` list and returns what to store.
/// Slow when it has to hash `pwd-plain` (bcrypt): never call it under a lock readers need.
pub(crate) fn prepare(
    new: Vec<Credential>,
    old: &[Credential],
    policy: &Policy,
) -> Result<Vec<Credential>, RegistryError> {
    if new.len() > policy.max_credentials {
        return Err(invalid(
            "credentials",
            format_args!("at most {} credentials per device", policy.max_credentials),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(new.len());
    for (i, mut cred) in new.into_iter().enumerate() {
        let at = format!("[{i}]");
        if cred.auth_id.is_empty() || cred.auth_id.len() > MAX_AUTH_ID {
            return Err(invalid(
                format_args!("{at}.auth-id"),
                format_args!("must be 1 to {MAX_AUTH_ID} bytes"),
            ));
        }
        if cred.kind == CredentialType::X509Cert {
            cred.auth_id = normalize_subject_dn(&cred.auth_id)
                .map_err(|e| invalid(format_args!("{at}.auth-id"), e))?;
        }
        if !seen.insert((cred.kind, cred.auth_id.clone())) {
            return Err(invalid(
                format_args!("{at}.auth-id"),
                format_args!("duplicate {} auth-id {}", cred.kind.name(), cred.auth_id),
            ));
        }
        if cred.secrets.len() > policy.max_secrets {
            return Err(invalid(
                format_args!("{at}.secrets"),
                format_args!("at most {} secrets per credential", policy.max_secrets),
            ));
        }
        if cred.secrets.is_empty() && cred.kind != CredentialType::X509Cert {
            return Err(invalid(
                format_args!("{at}.secrets"),
                "at least one secret is required",
            ));
        }
        let previous = old
            .iter()
            .find(|o| o.kind == cred.kind && o.auth_id == cred.auth_id);
        let mut secret_ids = HashSet::new();
        for (j, secret) in cred.secrets.iter_mut().enumerate() {
            let at = format!("{at}.secrets[{j}]");
            prepare_secret(cred.kind, secret, previous, policy, &at)?;
            let id = secret.id.clone().unwrap_or_default();
            if !secret_ids.insert(id) {
                return Err(invalid(format_args!("{at}.id"), "duplicate secret id"));
            }
        }
        out.push(cred);
    }
    Ok(out)
}

fn prepare_secret(
    kind: CredentialType,
    s: &mut Secret,
    previous: Option<&Credential>,
    policy: &Policy,
    at: &str,
) -> Result<(), RegistryError> {
    let not_before = validate_time(s.not_before.as_deref(), at, "not-before")?;
    let not_after = validate_time(s.not_after.as_deref(), at, "not-after")?;
    if let (Some(nb), Some(na)) = (not_before, not_after) {
        if nb > na {
            return Err(invalid(
                format_args!("{at}.not-after"),
                "is before not-before",
            ));
        }
    }
    let has_material = s.pwd_plain.is_some() || s.pwd_hash.is_some() || s.key.is_some();
    if kind != CredentialType::X509Cert && !has_material {
        // Metadata-only update of an existing secret: keep its material.
        let Some(id) = s.id.as_deref() else {
            let need = match kind {
                CredentialType::Psk => "key",
                _ => "pwd-plain or pwd-hash",
            };
            return Err(invalid(at, format_args!("{need} is required")));
        };
        let kept = previous
            .and_then(|p| p.secrets.iter().find(|o| o.id.as_deref() == Some(id)))
            .ok_or_else(|| invalid(format_args!("{at}.id"), "no stored secret with this id"))?;
        s.pwd_hash = kept.pwd_hash.clone();
        s.hash_function = kept.hash_function.clone();
        s.salt = kept.salt.clone();
        s.key = kept.key.clone();
        return Ok(());
    }
    if s.id.is_none() {
        s.id = Some(password::random_id());
    }
    match kind {
        CredentialType::HashedPassword => prepare_password(s, policy, at),
        CredentialType::Psk => {
            reject(s.pwd_plain.is_some(), at, "pwd-plain", kind)?;
            reject(s.pwd_hash.is_some(), at, "pwd-hash", kind)?;
            reject(s.hash_function.is_some(), at, "hash-function", kind)?;
            reject(s.salt.is_some(), at, "salt", kind)?;
            let key = s.key.as_deref().unwrap_or_default();
            match B64.decode(key) {
                Ok(k) if !k.is_empty() => Ok(()),
                _ => Err(invalid(
                    format_args!("{at}.key"),
                    "must be non-empty base64",
                )),
            }
        }
        CredentialType::X509Cert => {
            reject(s.pwd_plain.is_some(), at, "pwd-plain", kind)?;
            reject(s.pwd_hash.is_some(), at, "pwd-hash", kind)?;
            reject(s.hash_function.is_some(), at, "hash-function", kind)?;
            reject(s.salt.is_some(), at, "salt", kind)?;
            reject(s.key.is_some(), at, "key", kind)
        }
    }
}

fn prepare_password(s: &mut Secret, policy: &Policy, at: &str) -> Result<(), RegistryError> {
    reject(s.key.is_some(), at, "key", CredentialType::HashedPassword)?;
    if let Some(plain) = s.pwd_plain.take() {
        if s.pwd_hash.is_some() || s.salt.is_some() {
            return Err(invalid(
                format_args!("{at}.pwd-plain"),
                "cannot be combined with pwd-hash or salt",
            ));
        }
        if plain.is_empty() || plain.len() > password::BCRYPT_MAX_PASSWORD {
            return Err(invalid(
                format_args!("{at}.pwd-plain"),
                format_args!("must be 1 to {} bytes", password::BCRYPT_MAX_PASSWORD),
            ));
        }
        let hash =
            password::bcrypt_hash(&plain, policy.bcrypt_cost).map_err(RegistryError::Hash)?;
        s.pwd_hash = Some(hash);
        s.hash_function = Some(HashFunction::Bcrypt.name().into());
        return Ok(());
    }
    let Some(hash) = s.pwd_hash.as_deref() else {
        return Err(invalid(at, "pwd-plain or pwd-hash is required"));
    };
    let name = s.hash_function.as_deref().ok_or_else(|| {
        invalid(
            format_args!("{at}.hash-function"),
            "is required with pwd-hash",
        )
    })?;
    let function = HashFunction::parse(name).ok_or_else(|| {
        invalid(
            format_args!("{at}.hash-function"),
            "must be bcrypt, sha-256 or sha-512",
        )
    })?;
    if function == HashFunction::Bcrypt {
        reject(s.salt.is_some(), at, "salt", CredentialType::HashedPassword)?;
        let cost =
            password::bcrypt_cost(hash).map_err(|e| invalid(format_args!("{at}.pwd-hash"), e))?;
        // Every login runs bcrypt at the stored cost: an uploaded cost-31 hash would
        // make each connect take days of CPU (Hono caps it the same way).
        if cost > policy.max_bcrypt_cost {
            return Err(invalid(
                format_args!("{at}.pwd-hash"),
                format_args!(
                    "bcrypt cost {cost} exceeds the maximum {}",
                    policy.max_bcrypt_cost
                ),
            ));
        }
        return Ok(());
    }
    let want = password::sha_len(function).unwrap_or_default();
    match B64.decode(hash) {
        Ok(raw) if raw.len() == want => {}
        _ => {
            return Err(invalid(
                format_args!("{at}.pwd-hash"),
                format_args!("must be the base64 of a {want}-byte {name} digest"),
            ))
        }
    }
    if let Some(salt) = s.salt.as_deref() {
        B64.decode(salt)
            .map_err(|_| invalid(format_args!("{at}.salt"), "must be base64"))?;
    }
    Ok(())
}

fn reject(present: bool, at: &str, field: &str, kind: CredentialType) -> Result<(), RegistryError> {
    if present {
        return Err(invalid(
            format_args!("{at}.{field}"),
            format_args!("not allowed for {} credentials", kind.name()),
        ));
    }
    Ok(())
}

fn validate_time(value: Option<&str>, at: &str, field: &str) -> Result<Option<i64>, RegistryError> {
    match value {
        None => Ok(None),
        Some(v) => parse_rfc3339(v).map(Some).ok_or_else(|| {
            invalid(
                format_args!("{at}.{field}"),
                "must be an RFC 3339 date-time such as 2030-01-01T00:00:00Z",
            )
        }),
    }
}

#[cfg(test)]
mod tests;
