//! The gateway in-process with a router core, driven by a raw MQTT client (built on shoal-mqtt) and AMQP
//! clients (shoal-client).

mod connect;
mod flow;
mod hono;
mod publish;
mod sessions;
mod subscribe;
mod support;
