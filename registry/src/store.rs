//! On-disk persistence: one JSON file per tenant under `<data-dir>/registry/`.
//!
//! A tenant file holds the tenant, its devices and their credentials (with hashes),
//! so one atomic file replace is one consistent change and a crash leaves either
//! the old or the new file, never a mix. The cost is that a change rewrites the
//! whole tenant; fine for the registry's write rates, and the thing to revisit
//! (per-device files or an append log) if tenants grow to millions of devices.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::model::{Credential, Device, Tenant};

/// A tenant as stored: its objects and the versions (ETags) of each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub id: String,
    pub version: String,
    pub tenant: Tenant,
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceRecord>,
}

/// A device as stored, with its (hashed, never plain) credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    pub version: String,
    pub device: Device,
    #[serde(default)]
    pub credentials: Vec<Credential>,
    pub credentials_version: String,
}

const PREFIX: &str = "tenant-";
const SUFFIX: &str = ".json";

/// The `registry/` directory. Stateless apart from its path: callers serialise writes.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Creates `<data_dir>/registry/` if needed.
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let dir = data_dir.join("registry");
        fs::create_dir_all(&dir).map_err(|e| RegistryError::io(&dir, e))?;
        Ok(Store { dir })
    }

    fn path(&self, tenant_id: &str) -> PathBuf {
        // Tenant ids are restricted to [A-Za-z0-9._-] (see `validate_id`), so the id
        // is safe as a file name and no two ids map to one file.
        self.dir.join(format!("{PREFIX}{tenant_id}{SUFFIX}"))
    }

    /// Reads every tenant file. Leftover temp files from a crash mid-write are
    /// removed: the rename never happened, so the previous file is the truth.
    pub fn load_all(&self) -> Result<Vec<TenantRecord>, RegistryError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| RegistryError::io(&self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| RegistryError::io(&self.dir, e))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(SUFFIX))
            else {
                continue;
            };
            let bytes = fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
            let record: TenantRecord =
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            if record.id != id {
                tracing::warn!(file = %path.display(), id = %record.id, "tenant file name does not match its id; skipped");
                continue;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Replaces the tenant's file atomically: write a temp file, fsync it, rename
    /// over the old one, fsync the directory so the rename itself is durable.
    pub fn write(&self, record: &TenantRecord) -> Result<(), RegistryError> {
        let path = self.path(&record.id);
        let tmp = self.dir.join(format!(".{PREFIX}{}{SUFFIX}.tmp", record.id));
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RegistryError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(RegistryError::io(&path, e));
        }
        self.sync_dir()
    }

    /// Deletes the tenant's file (and with it its devices and credentials).
    pub fn remove(&self, tenant_id: &str) -> Result<(), RegistryError> {
        let path = self.path(tenant_id);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::io(&path, e)),
        }
    }

    fn sync_dir(&self) -> Result<(), RegistryError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| RegistryError::io(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> TenantRecord {
        TenantRecord {
            id: id.into(),
            version: "v1".into(),
            tenant: Tenant::default(),
            devices: BTreeMap::new(),
        }
    }

    #[test]
    fn write_load_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write(&record("a")).unwrap();
        let mut b = record("b");
        b.version = "v2".into();
        store.write(&b).unwrap();
        let mut loaded = store.load_all().unwrap();
        loaded.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[1].version, "v2");
        store.remove("a").unwrap();
        store.remove("a").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
        let names: Vec<_> = fs::read_dir(dir.path().join("registry"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["tenant-b.json".to_string()],
            "no temp files left"
        );
    }

    #[test]
    fn stale_temp_files_are_ignored_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write(&record("a")).unwrap();
        let tmp = dir.path().join("registry/.tenant-a.json.tmp");
        fs::write(&tmp, b"{ half a fi").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
        assert!(!tmp.exists());
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_registry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(dir.path().join("registry/tenant-x.json"), b"not json").unwrap();
        assert!(matches!(
            store.load_all(),
            Err(RegistryError::Corrupt { .. })
        ));
    }
}
