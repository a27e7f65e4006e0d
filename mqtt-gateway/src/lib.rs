//! `shoal-mqtt-gateway`: MQTT 3.1.1 and 5 clients, and Eclipse Hono-style devices, on Shoal's router core.
//!
//! Each MQTT connection is a task that owns its socket and one [`AdaptorConnection`] on the routing core, so
//! to the core an MQTT client is just another connection: PUBLISH becomes an AMQP transfer (to the address
//! named like the topic, or for a device to `telemetry/TENANT` and `event/TENANT`), a subscription becomes a
//! pattern receiver, and credit, outcomes and link routes to the broker work as for AMQP clients. The
//! guarantee devices care about: a QoS 1 PUBACK is sent only once the AMQP side accepted the message (MQTT 5
//! says "no matching subscribers" otherwise; 3.1.1 gets no PUBACK, never a false one).
//!
//! - [`Gateway::bind`] starts the listener; [`GatewayConfig`] holds its limits.
//! - [`mapping`] is the topic <-> address table (plain topics, Hono telemetry/event/command topics).
//! - [`convert`] turns PUBLISH into AMQP messages and back.
//! - [`tls`] is MQTT over TLS ([`Gateway::listen_tls`]) and device login by client certificate.
//! - [`persist`] keeps persistent sessions (their subscriptions on disk, what they miss in a broker queue);
//!   [`Gateway::bind_with`] turns it on.
//!
//! See `docs/adr/0008-mqtt-gateway.md` for why the gateway is built this way.
//!
//! [`AdaptorConnection`]: shoal_router::adaptor::AdaptorConnection

pub mod config;
pub mod convert;
mod credit;
mod error;
pub mod mapping;
pub mod persist;
mod relay;
pub mod retained;
mod server;
mod session;
pub mod tls;

pub use config::GatewayConfig;
pub use error::Error;
pub use persist::{BrokerQueues, Persistence, SessionQueues};
pub use server::Gateway;
pub use tls::ServerCert;
