//! A small async AMQP 1.0 client on [`shoal_amqp`], for Shoal's integration tests and tools.
//!
//! # Shape
//!
//! [`Connection::connect`] runs the handshake (protocol header, optional SASL, `open`, one
//! `begin`) and spawns one task per connection that owns the socket: it reads, writes and
//! takes commands concurrently, so it never stops reading while a write is pending. The
//! handles ([`Connection`], [`Sender`], [`Receiver`], [`Delivery`]) talk to it over a bounded
//! command channel and shared state.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) -> shoal_client::Result<()> {
//! use shoal_client::{Connection, ConnectOptions, SenderOptions};
//! use shoal_amqp::{Body, MessageBuilder};
//!
//! let conn = Connection::connect(addr, ConnectOptions::default()).await?;
//! let receiver = conn.receiver("queue/a", 10).await?;
//! let sender = conn.sender(Some("queue/a"), SenderOptions::default()).await?;
//! let msg = MessageBuilder { body: Body::Data("hello".into()), ..Default::default() };
//! let delivery = sender.send(&msg, false).await?;
//! let received = receiver.recv().await?;
//! receiver.accept(&received).await?;
//! delivery.outcome().await?;
//! conn.close().await?;
//! # Ok(()) }
//! ```
//!
//! Credit is explicit: a receiver's peer may send only what was granted (at attach, with
//! [`Receiver::flow`], or automatically with [`ReceiverOptions::auto_replenish`]), which also
//! bounds what can queue in a receiver. [`Sender::send`] waits for credit.
//!
//! For tests that must break the protocol, [`RawConnection`] is a socket with frame helpers.
//! The [`handshake`] module is public so the load tool can reuse it under its own engine.

mod connection;
mod delivery;
mod driver;
mod error;
pub mod handshake;
mod link;
mod options;
mod raw;
mod receiver;
mod sender;
mod shared;

pub use connection::Connection;
pub use delivery::{Delivery, Payload, Received};
pub use error::{ClientError, Result};
pub use options::{ConnectOptions, ReceiverOptions, Sasl, SenderOptions};
pub use raw::RawConnection;
pub use receiver::Receiver;
pub use sender::Sender;
