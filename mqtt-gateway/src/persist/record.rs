//! A persistent session on disk: one small JSON file per session, written atomically (temporary file, then
//! rename), so a gateway restart finds every offline session's subscriptions again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What outlives the connection of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// The client-id table's key: `TENANT/CLIENT-ID` (`/CLIENT-ID` for anonymous clients).
    pub key: String,
    /// The broker queue holding what the session missed.
    pub queue: String,
    pub subscriptions: Vec<SubRecord>,
    /// MQTT 5 session expiry interval in seconds; `None`: never (3.1.1, or 0xFFFFFFFF).
    pub expiry_secs: Option<u32>,
    /// When the last connection ended (Unix milliseconds); `None` while a client is connected.
    pub parked_at_ms: Option<i64>,
}

/// One subscription as the client made it, and the core pattern it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubRecord {
    pub filter: String,
    pub pattern: String,
    pub qos: u8,
}

impl SessionRecord {
    /// When the session expires, in Unix milliseconds (`None`: it does not, or it is connected).
    pub fn expires_at_ms(&self) -> Option<i64> {
        let parked = self.parked_at_ms?;
        let secs = self.expiry_secs?;
        Some(parked.saturating_add(i64::from(secs) * 1000))
    }
}

/// The file of the session with `key`: its name is the key in hex, so any client id is a safe file name.
pub(crate) fn path_for(dir: &Path, key: &str) -> PathBuf {
    let mut name = String::with_capacity(key.len() * 2 + 5);
    for b in key.bytes() {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(".json");
    dir.join(name)
}

pub(crate) fn write(dir: &Path, record: &SessionRecord) -> std::io::Result<()> {
    let path = path_for(dir, &record.key);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    // Rename is atomic: a crash leaves the old file or the new one, never half of one.
    std::fs::rename(&tmp, &path)
}

pub(crate) fn remove(dir: &Path, key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path_for(dir, key)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every record in `dir` (created if missing); unreadable files are skipped with a warning.
pub(crate) fn load_all(dir: &Path) -> std::io::Result<Vec<SessionRecord>> {
    std::fs::create_dir_all(dir)?;
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => records.push(r),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping a session file"),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> SessionRecord {
        SessionRecord {
            key: key.into(),
            queue: format!("$mqtt/session/{key}"),
            subscriptions: vec![SubRecord {
                filter: "a/+/c".into(),
                pattern: "a/*/c".into(),
                qos: 1,
            }],
            expiry_secs: Some(10),
            parked_at_ms: Some(1_000),
        }
    }

    #[test]
    fn records_round_trip_through_their_files() {
        let dir = std::env::temp_dir().join(format!("shoal-mqtt-rec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (record("acme/dev 1"), record("/../x"));
        assert!(load_all(&dir).unwrap().is_empty());
        write(&dir, &a).unwrap();
        write(&dir, &b).unwrap();
        let mut all = load_all(&dir).unwrap();
        all.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(all, vec![b.clone(), a.clone()]);
        remove(&dir, &b.key).unwrap();
        remove(&dir, &b.key).unwrap();
        assert_eq!(load_all(&dir).unwrap(), vec![a]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn expiry_counts_from_the_disconnect() {
        let mut r = record("k");
        assert_eq!(r.expires_at_ms(), Some(11_000));
        r.expiry_secs = None;
        assert_eq!(r.expires_at_ms(), None);
        r.expiry_secs = Some(10);
        r.parked_at_ms = None;
        assert_eq!(r.expires_at_ms(), None);
    }
}
