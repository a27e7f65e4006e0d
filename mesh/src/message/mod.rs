//! The protocol messages and their wire form.
//!
//! Every message is one AMQP message whose body is an `amqp-value` map with string keys (the
//! shape Qpid Dispatch uses for its control messages), and whose `subject` repeats the opcode
//! for people reading a trace. The map always carries `op` (the opcode) and `v` (the protocol
//! version). Unknown keys are ignored, so a later version can add fields without a version bump.

mod codec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::id::{Cost, Mode, RouterId};

pub use codec::{MAX_ADDRESSES, MAX_ADDRESS_LEN, MAX_MESSAGE_BYTES, MAX_ROUTERS};

/// The protocol version this crate speaks. A peer speaking another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// A mesh protocol message. All of them travel over one link between neighbours; those an
/// origin router floods (RA, LSU, MAU) are relayed unchanged by every interior router.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Hello(Hello),
    Ra(RouterAdvert),
    Lsu(LinkStateUpdate),
    Lsr(LinkStateRequest),
    Mau(MobileUpdate),
    Mar(MobileRequest),
}

impl Message {
    /// The opcode, as written in `op` and the AMQP `subject`.
    pub fn opcode(&self) -> &'static str {
        match self {
            Message::Hello(_) => "HELLO",
            Message::Ra(_) => "RA",
            Message::Lsu(_) => "LSU",
            Message::Lsr(_) => "LSR",
            Message::Mau(_) => "MAU",
            Message::Mar(_) => "MAR",
        }
    }
}

/// Sent on every link every `hello_interval`: "I am `id`, and these are the routers I hear".
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    pub id: RouterId,
    /// Chosen at random when the router starts: a new value means the router restarted and its
    /// sequence numbers start again.
    pub instance: u64,
    /// The sender's protocol version (decoded whatever it is, so the receiver can refuse the
    /// link naming the peer).
    pub version: u32,
    pub mode: Mode,
    /// Routers the sender heard a hello from within its dead interval. A neighbour is up in
    /// both directions once its hello lists us.
    pub seen: Vec<RouterId>,
}

/// Router advertisement: an origin's current sequence numbers, flooded every `ra_interval` and
/// when they change. A router that holds older state for the origin asks for it (LSR, MAR).
#[derive(Clone, Debug, PartialEq)]
pub struct RouterAdvert {
    pub id: RouterId,
    pub instance: u64,
    /// Counts the origin's advertisements, so relays forward each one once.
    pub ra_seq: u64,
    pub ls_seq: u64,
    pub mobile_seq: u64,
}

/// An origin's link state: its two-way neighbours and the cost of reaching each.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStateUpdate {
    pub id: RouterId,
    pub instance: u64,
    pub ls_seq: u64,
    pub peers: BTreeMap<RouterId, Cost>,
}

/// "Send me `origin`'s link state, at least sequence `ls_seq` of `instance`". Sent to the
/// neighbour that relayed the advertisement showing we are behind; answered with an LSU.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStateRequest {
    pub id: RouterId,
    pub origin: RouterId,
    pub instance: u64,
    pub ls_seq: u64,
}

/// An origin's mobile addresses (addresses with a local destination).
#[derive(Clone, Debug, PartialEq)]
pub struct MobileUpdate {
    pub id: RouterId,
    pub instance: u64,
    pub mobile_seq: u64,
    pub change: MobileChange,
}

/// The body of a [`MobileUpdate`].
#[derive(Clone, Debug, PartialEq)]
pub enum MobileChange {
    /// The whole set at `mobile_seq`.
    Full(Vec<String>),
    /// What changed between `since` and `mobile_seq`. Applies only to a holder of `since`;
    /// anyone else asks for the full set (MAR).
    Delta {
        since: u64,
        add: Vec<String>,
        del: Vec<String>,
    },
}

/// "Send me `origin`'s full mobile address set, at least sequence `mobile_seq` of `instance`".
#[derive(Clone, Debug, PartialEq)]
pub struct MobileRequest {
    pub id: RouterId,
    pub origin: RouterId,
    pub instance: u64,
    pub mobile_seq: u64,
}
