//! Shoal's store-and-forward broker (being written: see the broker issue).
pub mod store;
