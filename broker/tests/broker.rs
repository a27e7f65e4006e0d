//! The broker over real AMQP: shoal-client (and a raw-frame receiver for source options the client does not
//! expose) against an in-process broker on 127.0.0.1:0.

#[path = "broker/raw.rs"]
mod raw;
#[path = "broker/support.rs"]
mod support;

#[path = "broker/durability.rs"]
mod durability;
#[path = "broker/limits.rs"]
mod limits;
#[path = "broker/manage.rs"]
mod manage;
#[path = "broker/outcomes.rs"]
mod outcomes;
#[path = "broker/queues.rs"]
mod queues;
#[path = "broker/timing.rs"]
mod timing;
#[path = "broker/topics.rs"]
mod topics;
