//! The broker's errors.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An address already exists with another kind (a queue cannot become a topic in place).
    #[error("address {name} exists as a {existing}")]
    KindConflict {
        name: String,
        existing: &'static str,
    },
    /// A subscription names a topic that the broker does not hold.
    #[error("invalid address {name}: {reason}")]
    InvalidAddress { name: String, reason: String },
    /// The broker's core has stopped (the broker shut down).
    #[error("the broker has stopped")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, BrokerError>;
