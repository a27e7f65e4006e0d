//! Identifiers: [`RouterId`], [`LinkId`], [`Cost`] and the router [`Mode`].

use std::fmt;

use crate::error::MeshError;

/// Longest router id accepted, in bytes.
pub const MAX_ROUTER_ID_LEN: usize = 64;

/// A router's name in the mesh: non-empty, at most 64 characters of `[A-Za-z0-9._-]`.
///
/// The restricted alphabet keeps ids safe to embed in addresses and log lines, and makes the
/// byte order used for tie-breaks the same on every router.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId(String);

impl RouterId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, MeshError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("empty")
        } else if id.len() > MAX_ROUTER_ID_LEN {
            Some("longer than 64 characters")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(MeshError::InvalidRouterId { id, reason }),
            None => Ok(RouterId(id)),
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for RouterId {
    type Error = MeshError;
    fn try_from(s: &str) -> Result<Self, MeshError> {
        RouterId::new(s)
    }
}

/// One inter-router (or edge) connection, named by the caller. Opaque to the mesh: it is only
/// handed back in [`Output::Send`](crate::Output::Send) and in routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// The cost of crossing a link (summed along a path). Default 1 per link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cost(pub u32);

impl Default for Cost {
    fn default() -> Self {
        Cost(1)
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The role of a router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Takes part in link state; carries traffic between other routers.
    #[default]
    Interior,
    /// Hangs off one or more interiors; its local addresses are advertised by its interior.
    Edge,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Interior => "interior",
            Mode::Edge => "edge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "interior" => Some(Mode::Interior),
            "edge" => Some(Mode::Edge),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_id_validation() {
        assert!(RouterId::new("router-1.east_2").is_ok());
        assert!(RouterId::new("").is_err());
        assert!(RouterId::new("a".repeat(64)).is_ok());
        assert!(RouterId::new("a".repeat(65)).is_err());
        assert!(RouterId::new("a b").is_err());
        assert!(RouterId::new("é").is_err());
        assert!(RouterId::new("a/b").is_err());
    }

    #[test]
    fn ids_order_bytewise() {
        let a = RouterId::new("A").unwrap();
        let b = RouterId::new("a").unwrap();
        assert!(a < b);
    }
}
