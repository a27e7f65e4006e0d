//! A bounded cache of successful bcrypt verifications.
//!
//! bcrypt at cost 10 costs ~50 ms of CPU per check on purpose. When a gateway
//! restarts, every device reconnects at once: 100,000 devices would be ~80 CPU
//! minutes of bcrypt before the fleet is back. Remembering "this password matched
//! this stored hash" turns a reconnect into one SHA-256.
//!
//! Entries are `SHA-256(process key || tenant || auth-id || stored hash || password)`.
//! The stored hash in the key means a changed or deleted secret can never hit
//! an old entry, with no explicit invalidation. The random per-process key means a
//! memory dump does not hold fast unsalted password hashes. Only successes are
//! cached: a wrong password always pays the full bcrypt price.
//!
//! Eviction is two generations rather than true LRU: inserts go into `current`;
//! when it holds half the capacity it becomes `previous` and the old `previous` is
//! dropped. A hit in `previous` is copied forward. This keeps recently used entries,
//! bounds memory at `capacity` entries, and costs O(1) with no linked list.

use std::collections::HashSet;

use crate::password::{random_bytes, sha256};

pub(crate) struct AuthCache {
    half: usize,
    key: [u8; 32],
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

impl AuthCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        AuthCache {
            half: capacity / 2,
            key,
            current: HashSet::new(),
            previous: HashSet::new(),
        }
    }

    fn entry(&self, tenant: &str, auth_id: &str, stored_hash: &str, password: &str) -> [u8; 32] {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        let mut buf = Vec::with_capacity(
            tenant.len() + auth_id.len() + stored_hash.len() + password.len() + 32,
        );
        for part in [tenant, auth_id, stored_hash, password] {
            buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
            buf.extend_from_slice(part.as_bytes());
        }
        sha256(&self.key, &buf)
    }

    /// Whether this exact password was verified against this stored hash before.
    pub fn contains(
        &mut self,
        tenant: &str,
        auth_id: &str,
        stored_hash: &str,
        password: &str,
    ) -> bool {
        if self.half == 0 {
            return false;
        }
        let e = self.entry(tenant, auth_id, stored_hash, password);
        if self.current.contains(&e) {
            return true;
        }
        if self.previous.remove(&e) {
            self.put(e);
            return true;
        }
        false
    }

    /// Records a successful verification.
    pub fn insert(&mut self, tenant: &str, auth_id: &str, stored_hash: &str, password: &str) {
        if self.half == 0 {
            return;
        }
        let e = self.entry(tenant, auth_id, stored_hash, password);
        self.put(e);
    }

    fn put(&mut self, e: [u8; 32]) {
        if self.current.len() >= self.half {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(e);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_only_for_same_password_and_stored_hash() {
        let mut c = AuthCache::new(10);
        c.insert("t", "dev", "$2a$hash", "pw");
        assert!(c.contains("t", "dev", "$2a$hash", "pw"));
        assert!(!c.contains("t", "dev", "$2a$hash", "pw2"));
        assert!(!c.contains("t", "dev", "$2a$other", "pw"), "secret changed");
        assert!(!c.contains("t2", "dev", "$2a$hash", "pw"));
        assert!(
            !c.contains("t", "devpw", "$2a$hash", ""),
            "parts are delimited"
        );
    }

    #[test]
    fn bounded_and_keeps_recently_used() {
        let mut c = AuthCache::new(4);
        c.insert("t", "keep", "h", "p");
        for i in 0..100 {
            c.insert("t", &format!("d{i}"), "h", "p");
            // Touching "keep" every round carries it across generations.
            assert!(c.contains("t", "keep", "h", "p"), "lost at round {i}");
            assert!(c.len() <= 4, "len {}", c.len());
        }
        assert!(!c.contains("t", "d0", "h", "p"), "old entries are evicted");
    }

    #[test]
    fn zero_capacity_disables() {
        let mut c = AuthCache::new(0);
        c.insert("t", "a", "h", "p");
        assert!(!c.contains("t", "a", "h", "p"));
        assert_eq!(c.len(), 0);
    }
}
