//! The [`Registry`] handle: in-memory state, its one writer path, and persistence.
//!
//! State lives in a `std::sync::RwLock` rather than behind an owner task: the
//! registry is read on every device connect and written only by an administrator,
//! reads are map look-ups that finish in microseconds, and no guard is ever held
//! across an `.await` or during slow work (bcrypt, fsync), so a plain lock is both
//! simpler and faster than message passing here.
//!
//! Writes are copy-on-write per tenant: under a writer mutex (which orders writers
//! but never blocks readers) a writer clones the tenant, changes the clone, writes
//! it to disk, and only then swaps it in under a brief write lock. A failed disk
//! write therefore leaves memory unchanged, and readers never wait for I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use crate::cache::AuthCache;
use crate::config::RegistryConfig;
use crate::credentials::{self, Policy};
use crate::dn::normalize_subject_dn;
use crate::error::RegistryError;
use crate::model::{Credential, CredentialType, Device, Tenant};
use crate::password::random_id;
use crate::store::{DeviceRecord, Store, TenantRecord};
use crate::time::parse_rfc3339;

/// A value with the version the HTTP layer sends as `ETag`.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: String,
}

/// A tenant in memory: its stored record plus look-up indexes rebuilt from it.
#[derive(Clone)]
pub(crate) struct TenantEntry {
    pub record: TenantRecord,
    /// (type, auth-id) -> device id, for authentication and uniqueness checks.
    pub auth_index: HashMap<(CredentialType, String), String>,
}

impl TenantEntry {
    fn new(record: TenantRecord) -> Self {
        let mut e = TenantEntry {
            record,
            auth_index: HashMap::new(),
        };
        e.reindex();
        e
    }

    fn reindex(&mut self) {
        self.auth_index.clear();
        for (device_id, d) in &self.record.devices {
            for c in &d.credentials {
                self.auth_index
                    .insert((c.kind, c.auth_id.clone()), device_id.clone());
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub tenants: HashMap<String, Arc<TenantEntry>>,
}

pub(crate) struct Inner {
    pub config: RegistryConfig,
    store: Option<Store>,
    state: RwLock<State>,
    /// Orders writers; see the module docs.
    writer: Mutex<()>,
    pub cache: Mutex<AuthCache>,
    /// A bcrypt hash to check against when the auth-id is unknown, so "no such
    /// device" takes as long as "wrong password" and auth-ids cannot be probed.
    pub dummy_hash: OnceLock<String>,
}

/// The device registry. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tenants", &self.read().tenants.len())
            .field("persistent", &self.inner.store.is_some())
            .finish()
    }
}

/// A poisoned lock only means a panic happened elsewhere while it was held; the
/// state behind it is always a whole tenant swapped in one assignment, so it is
/// still consistent and the registry keeps serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hono's id patterns; tenant ids also name files, so no `:` there.
fn validate_id(what: &str, id: &str, allow_colon: bool) -> Result<(), RegistryError> {
    let ok_char = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_colon && c == ':')
    };
    if id.is_empty() || id.len() > 256 || !id.chars().all(ok_char) || id.starts_with('.') {
        return Err(RegistryError::Invalid(format!(
            "{what}: {id:?} must be 1-256 characters of [A-Za-z0-9-_.{}], not starting with '.'",
            if allow_colon { ":" } else { "" }
        )));
    }
    Ok(())
}

impl Registry {
    /// Opens (or creates) the registry stored in `<data_dir>/registry/`.
    pub fn open(data_dir: &Path, config: RegistryConfig) -> Result<Self, RegistryError> {
        let store = Store::open(data_dir)?;
        let mut state = State::default();
        for record in store.load_all()? {
            state
                .tenants
                .insert(record.id.clone(), Arc::new(TenantEntry::new(record)));
        }
        tracing::info!(tenants = state.tenants.len(), "device registry loaded");
        Ok(Self::with(config, Some(store), state))
    }

    /// A registry that keeps everything in memory (tests, demos).
    pub fn in_memory(config: RegistryConfig) -> Self {
        Self::with(config, None, State::default())
    }

    fn with(config: RegistryConfig, store: Option<Store>, state: State) -> Self {
        Registry {
            inner: Arc::new(Inner {
                cache: Mutex::new(AuthCache::new(config.auth_cache_capacity)),
                config,
                store,
                state: RwLock::new(state),
                writer: Mutex::new(()),
                dummy_hash: OnceLock::new(),
            }),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self, tenant_id: &str) -> Option<Arc<TenantEntry>> {
        self.read().tenants.get(tenant_id).cloned()
    }

    /// Persists and publishes a tenant (`Some`) or its removal (`None`).
    /// Must be called with the writer mutex held.
    fn commit(&self, tenant_id: &str, entry: Option<TenantEntry>) -> Result<(), RegistryError> {
        if let Some(store) = &self.inner.store {
            match &entry {
                Some(e) => store.write(&e.record)?,
                None => store.remove(tenant_id)?,
            }
        }
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match entry {
            Some(e) => state.tenants.insert(tenant_id.to_string(), Arc::new(e)),
            None => state.tenants.remove(tenant_id),
        };
        Ok(())
    }

    fn policy(&self) -> Policy {
        let c = &self.inner.config;
        Policy {
            bcrypt_cost: c.bcrypt_cost,
            max_bcrypt_cost: c.max_bcrypt_cost,
            max_credentials: c.max_credentials_per_device,
            max_secrets: c.max_secrets_per_credential,
        }
    }

    // ---- tenants -------------------------------------------------------------

    /// Creates a tenant; `id: None` generates one. Returns the id and version.
    pub fn create_tenant(
        &self,
        id: Option<&str>,
        tenant: Tenant,
    ) -> Result<Versioned<String>, RegistryError> {
        let id = id.map_or_else(random_id, str::to_string);
        validate_id("tenant id", &id, false)?;
        let tenant = self.check_tenant(tenant)?;
        let _w = lock(&self.inner.writer);
        {
            let state = self.read();
            if state.tenants.contains_key(&id) {
                return Err(RegistryError::Conflict(format!(
                    "tenant {id} already exists"
                )));
            }
            if state.tenants.len() >= self.inner.config.max_tenants {
                return Err(RegistryError::LimitExceeded(format!(
                    "the registry holds its maximum of {} tenants",
                    self.inner.config.max_tenants
                )));
            }
        }
        let version = random_id();
        let record = TenantRecord {
            id: id.clone(),
            version: version.clone(),
            tenant,
            devices: BTreeMap::new(),
        };
        self.commit(&id, Some(TenantEntry::new(record)))?;
        Ok(Versioned { value: id, version })
    }

    /// The tenant, or `NotFound`.
    pub fn tenant(&self, id: &str) -> Result<Versioned<Tenant>, RegistryError> {
        let state = self.read();
        let t = state
            .tenants
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {id}")))?;
        Ok(Versioned {
            value: t.record.tenant.clone(),
            version: t.record.version.clone(),
        })
    }

    /// All tenant ids, sorted.
    pub fn tenant_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.read().tenants.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Replaces a tenant's properties (its devices stay). Returns the new version.
    pub fn update_tenant(
        &self,
        id: &str,
        tenant: Tenant,
        if_match: Option<&str>,
    ) -> Result<String, RegistryError> {
        let tenant = self.check_tenant(tenant)?;
        let _w = lock(&self.inner.writer);
        let current = self
            .snapshot(id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {id}")))?;
        check_version(if_match, &current.record.version)?;
        let mut entry = TenantEntry::clone(&current);
        entry.record.tenant = tenant;
        entry.record.version = random_id();
        let version = entry.record.version.clone();
        self.commit(id, Some(entry))?;
        Ok(version)
    }

    /// Deletes a tenant with all its devices and credentials.
    pub fn delete_tenant(&self, id: &str, if_match: Option<&str>) -> Result<(), RegistryError> {
        let _w = lock(&self.inner.writer);
        let current = self
            .snapshot(id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {id}")))?;
        check_version(if_match, &current.record.version)?;
        self.commit(id, None)
    }

    fn check_tenant(&self, mut tenant: Tenant) -> Result<Tenant, RegistryError> {
        let max = self.inner.config.max_trusted_cas;
        if tenant.trusted_ca.len() > max {
            return Err(RegistryError::Invalid(format!(
                "trusted-ca: at most {max} entries"
            )));
        }
        for (i, ca) in tenant.trusted_ca.iter_mut().enumerate() {
            let at = format!("trusted-ca[{i}]");
            ca.subject_dn = normalize_subject_dn(&ca.subject_dn)
                .map_err(|e| RegistryError::Invalid(format!("{at}.subject-dn: {e}")))?;
            if ca.public_key.is_none() && ca.cert.is_none() {
                return Err(RegistryError::Invalid(format!(
                    "{at}: one of public-key or cert is required"
                )));
            }
            for (field, value) in [("not-before", &ca.not_before), ("not-after", &ca.not_after)] {
                if value.as_deref().is_some_and(|v| parse_rfc3339(v).is_none()) {
                    return Err(RegistryError::Invalid(format!(
                        "{at}.{field}: must be an RFC 3339 date-time"
                    )));
                }
            }
            if ca.id.is_none() {
                ca.id = Some(random_id());
            }
        }
        Ok(tenant)
    }

    // ---- devices -------------------------------------------------------------

    /// Creates a device in a tenant; `id: None` generates one.
    pub fn create_device(
        &self,
        tenant_id: &str,
        id: Option<&str>,
        device: Device,
    ) -> Result<Versioned<String>, RegistryError> {
        let id = id.map_or_else(random_id, str::to_string);
        validate_id("device id", &id, true)?;
        let _w = lock(&self.inner.writer);
        let current = self
            .snapshot(tenant_id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {tenant_id}")))?;
        if current.record.devices.contains_key(&id) {
            return Err(RegistryError::Conflict(format!(
                "device {id} already exists in tenant {tenant_id}"
            )));
        }
        let max = self.inner.config.max_devices_per_tenant;
        if current.record.devices.len() >= max {
            return Err(RegistryError::LimitExceeded(format!(
                "tenant {tenant_id} holds its maximum of {max} devices"
            )));
        }
        let mut entry = TenantEntry::clone(&current);
        let version = random_id();
        entry.record.devices.insert(
            id.clone(),
            DeviceRecord {
                version: version.clone(),
                device,
                credentials: Vec::new(),
                credentials_version: random_id(),
            },
        );
        self.commit(tenant_id, Some(entry))?;
        Ok(Versioned { value: id, version })
    }

    /// The device, or `NotFound` (for the tenant or the device).
    pub fn device(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<Versioned<Device>, RegistryError> {
        self.with_device(tenant_id, device_id, |d| Versioned {
            value: d.device.clone(),
            version: d.version.clone(),
        })
    }

    fn with_device<T>(
        &self,
        tenant_id: &str,
        device_id: &str,
        f: impl FnOnce(&DeviceRecord) -> T,
    ) -> Result<T, RegistryError> {
        let state = self.read();
        let t = state
            .tenants
            .get(tenant_id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {tenant_id}")))?;
        let d = t.record.devices.get(device_id).ok_or_else(|| {
            RegistryError::NotFound(format!("device {device_id} in tenant {tenant_id}"))
        })?;
        Ok(f(d))
    }

    /// Runs `f` on a copy of one device under the writer mutex and commits it.
    fn change_device<T>(
        &self,
        tenant_id: &str,
        device_id: &str,
        f: impl FnOnce(&mut TenantEntry) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let _w = lock(&self.inner.writer);
        let current = self
            .snapshot(tenant_id)
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {tenant_id}")))?;
        if !current.record.devices.contains_key(device_id) {
            return Err(RegistryError::NotFound(format!(
                "device {device_id} in tenant {tenant_id}"
            )));
        }
        let mut entry = TenantEntry::clone(&current);
        let out = f(&mut entry)?;
        self.commit(tenant_id, Some(entry))?;
        Ok(out)
    }

    /// Replaces a device's properties (its credentials stay). Returns the new version.
    pub fn update_device(
        &self,
        tenant_id: &str,
        device_id: &str,
        device: Device,
        if_match: Option<&str>,
    ) -> Result<String, RegistryError> {
        self.change_device(tenant_id, device_id, |entry| {
            let d = device_mut(entry, device_id)?;
            check_version(if_match, &d.version)?;
            d.device = device;
            d.version = random_id();
            Ok(d.version.clone())
        })
    }

    /// Deletes a device and its credentials.
    pub fn delete_device(
        &self,
        tenant_id: &str,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.change_device(tenant_id, device_id, |entry| {
            check_version(if_match, &device_mut(entry, device_id)?.version)?;
            entry.record.devices.remove(device_id);
            entry.auth_index.retain(|_, owner| owner != device_id);
            Ok(())
        })
    }

    // ---- credentials ---------------------------------------------------------

    /// A device's credentials as Hono's GET returns them: no hashes, salts or keys.
    pub fn credentials(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<Versioned<Vec<Credential>>, RegistryError> {
        self.with_device(tenant_id, device_id, |d| Versioned {
            value: d.credentials.iter().map(Credential::redacted).collect(),
            version: d.credentials_version.clone(),
        })
    }

    /// Replaces a device's whole credentials list. Hashes `pwd-plain` with bcrypt,
    /// so this blocks for ~50 ms per plain password: call it from `spawn_blocking`.
    pub fn set_credentials(
        &self,
        tenant_id: &str,
        device_id: &str,
        credentials: Vec<Credential>,
        if_match: Option<&str>,
    ) -> Result<String, RegistryError> {
        let policy = self.policy();
        self.change_device(tenant_id, device_id, |entry| {
            let d = device_mut(entry, device_id)?;
            check_version(if_match, &d.credentials_version)?;
            // Hashing happens here, under the writer mutex only: readers (device
            // logins) continue meanwhile; other admin writes wait, which is fine.
            let prepared = credentials::prepare(credentials, &d.credentials, &policy)?;
            for c in &prepared {
                let key = (c.kind, c.auth_id.clone());
                if let Some(owner) = entry.auth_index.get(&key) {
                    if owner != device_id {
                        return Err(RegistryError::Conflict(format!(
                            "{} auth-id {} is already used by device {owner}",
                            c.kind.name(),
                            c.auth_id
                        )));
                    }
                }
            }
            let d = device_mut(entry, device_id)?;
            d.credentials = prepared;
            d.credentials_version = random_id();
            let version = d.credentials_version.clone();
            entry.reindex();
            Ok(version)
        })
    }

    /// Stored credentials with their hashes, for tests that look behind GET.
    #[cfg(test)]
    pub(crate) fn credentials_raw(&self, tenant_id: &str, device_id: &str) -> Vec<Credential> {
        self.with_device(tenant_id, device_id, |d| d.credentials.clone())
            .unwrap_or_default()
    }
}

fn device_mut<'a>(
    entry: &'a mut TenantEntry,
    device_id: &str,
) -> Result<&'a mut DeviceRecord, RegistryError> {
    entry
        .record
        .devices
        .get_mut(device_id)
        .ok_or_else(|| RegistryError::NotFound(format!("device {device_id}")))
}

/// `If-Match`: `*` or the current version passes; anything else is 412.
fn check_version(if_match: Option<&str>, current: &str) -> Result<(), RegistryError> {
    match if_match {
        None | Some("*") => Ok(()),
        Some(v) if v == current => Ok(()),
        Some(v) => Err(RegistryError::VersionMismatch {
            expected: v.to_string(),
            current: current.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
