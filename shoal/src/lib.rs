//! The shoal binary library.
pub mod cli;
pub mod http;
pub mod manifest;
pub mod standalone;
pub mod users;
