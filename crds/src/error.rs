//! Errors of this crate: every one names the field it is about, so a user can find the line to fix.

use std::fmt;

/// A refused resource: `field` is a dotted path (`spec.type`, `metadata.name`), `message` says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Error type of `shoal-crds`.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The document does not have the shape of the resource (wrong type, unknown or missing field).
    #[error("{0}")]
    Shape(FieldError),
    /// The document has the right shape but a value is not acceptable.
    #[error("{0}")]
    Invalid(FieldError),
    /// Serializing a resource or the CRD failed (a bug rather than bad input).
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_yaml::Error),
}

impl CrdError {
    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            CrdError::Shape(e) | CrdError::Invalid(e) => Some(&e.field),
            CrdError::Serialize(_) => None,
        }
    }
}
