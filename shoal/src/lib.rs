//! The shoal binary library.
pub mod broker_manifest;
pub mod cli;
pub mod http;
pub mod manifest;
pub mod standalone;
pub mod users;
pub mod broker_process;
