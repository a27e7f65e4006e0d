//! The shoal binary library.
pub mod broker_manifest;
pub mod broker_process;
pub mod cli;
pub mod http;
pub mod manifest;
pub mod mesh_config;
pub mod standalone;
pub mod users;
