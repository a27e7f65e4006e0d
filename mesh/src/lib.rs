//! `shoal-mesh`: the inter-router routing protocol of Shoal, sans I/O.
//!
//! Routers of a Shoal mesh find their neighbours, flood link state, compute shortest paths and
//! advertise *mobile addresses* (addresses with a local consumer) to each other. This crate is
//! that protocol as a pure state machine: no sockets, no tasks, no clock. The router core owns
//! one [`Node`], feeds it events with the current [`std::time::Instant`], sends the messages
//! it emits on a control link of each inter-router connection, and reads its tables to forward
//! deliveries. The design is recorded in `docs/adr/0007-mesh-routing-protocol.md`.
//!
//! # Driving a node
//!
//! ```text
//! connection opened     -> node.link_up(link, now)            (interior <-> interior, edge -> interior)
//! edge connected to us  -> node.edge_attached(link, id, now)  (on an interior)
//! connection closed     -> node.link_down(link, now)
//! control message in    -> node.receive_bytes(link, &bytes, now)
//! deadline reached      -> next = node.tick(now)
//! consumer appears/goes -> node.add_local_address(a) / node.remove_local_address(a)
//! after each batch      -> while let Some(out) = node.poll_output() { ... }
//! ```
//!
//! [`Output::Send`] asks for a message to go out on a link ([`Message::encode`] gives the AMQP
//! message bytes), [`Output::RoutesChanged`] / [`Output::AddressesChanged`] say the tables
//! moved, and [`Output::Refused`] asks the caller to close a connection (version mismatch,
//! duplicate router id, an edge on an inter-router link, malformed bytes...).
//!
//! # What the tables answer
//!
//! - [`Node::route`]: next hop link and cost to any reachable interior (Dijkstra over the
//!   two-way links of the link-state database; equal costs break towards the lower router id,
//!   identically on every router).
//! - [`Node::destinations`]: for an address, the interiors with a consumer, each with its next
//!   hop and cost; [`Node::edge_links`] and [`Node::is_local`] for the local side.
//! - [`Node::multicast_links`]: where a multicast message from a given origin is copied to
//!   from here: our children in the shortest-path tree rooted at the origin, so each router
//!   gets one copy; [`Node::multicast_links_for`] prunes it to branches with consumers.
//! - [`Node::uplink`]: on an edge router, where everything not local goes.
//!
//! # Modules
//!
//! - `message`: the six messages (HELLO, RA, LSU, LSR, MAU, MAR) and their AMQP map encoding,
//!   with defensive, bounded decoding.
//! - `node`: the state machine, split by concern (neighbours and hellos, flooding, edges,
//!   routes).
//! - `spf`: shortest paths over the link-state database.
//! - a simulated network (tests only) that runs whole meshes on a virtual clock.

mod error;
mod id;
pub mod message;
mod node;
mod spf;

#[cfg(test)]
mod sim;

pub use error::MeshError;
pub use id::{Cost, LinkId, Mode, RouterId, MAX_ROUTER_ID_LEN};
pub use message::{Message, PROTOCOL_VERSION};
pub use node::{Config, Destination, Node, Output, RefuseReason, Route};
