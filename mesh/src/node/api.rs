//! What the caller configures and what the node asks of it.

use std::fmt;
use std::time::Duration;

use crate::error::MeshError;
use crate::id::{Cost, LinkId, Mode, RouterId};
use crate::message::Message;

/// Timings and defaults of a node.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// How often a HELLO goes out on every link.
    pub hello_interval: Duration,
    /// A neighbour not heard from for this long is lost. Only matters when the connection
    /// stays open (a partition); a closed connection is reported by `link_down` at once.
    pub dead_interval: Duration,
    /// How often a router advertisement is flooded (also sent at once on a change).
    pub ra_interval: Duration,
    /// How long the state of an unreachable router is kept before it is forgotten.
    pub purge_delay: Duration,
    /// The cost of a new link until [`Node::set_link_cost`](super::Node::set_link_cost) says otherwise.
    pub default_cost: Cost,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Interior,
            hello_interval: Duration::from_secs(1),
            dead_interval: Duration::from_secs(3),
            ra_interval: Duration::from_secs(10),
            purge_delay: Duration::from_secs(30),
            default_cost: Cost::default(),
        }
    }
}

/// What the node asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `msg` on the control link of `link`.
    Send { link: LinkId, msg: Message },
    /// The routing table changed (read it with [`Node::routes`](super::Node::routes)); destinations of mobile
    /// addresses may have changed with it.
    RoutesChanged,
    /// Some router's (or attached edge's) mobile addresses changed.
    AddressesChanged,
    /// Close this connection, logging `reason`. The node already ignores the link.
    Refused { link: LinkId, reason: RefuseReason },
}

/// Why a connection was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum RefuseReason {
    VersionMismatch {
        peer: Option<RouterId>,
        ours: u32,
        theirs: u32,
    },
    /// The peer claims our own id, or the id of a live neighbour with another instance.
    DuplicateId {
        id: RouterId,
        other_link: Option<LinkId>,
    },
    /// An edge router connected on an inter-router link.
    EdgeOnInteriorLink { peer: RouterId },
    /// An interior router connected on a link attached as an edge link.
    InteriorOnEdgeLink { peer: RouterId },
    /// The edge said it was `expected` when it attached, and its hello says `got`.
    UnexpectedEdge { expected: RouterId, got: RouterId },
    /// Two edge routers cannot be neighbours.
    EdgeToEdge { peer: RouterId },
    /// The peer sent bytes that are not a valid mesh message.
    Malformed(MeshError),
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::VersionMismatch { peer, ours, theirs } => {
                let peer = peer.as_ref().map_or("peer", RouterId::as_str);
                write!(f, "{peer} speaks mesh protocol v{theirs}, we speak v{ours}")
            }
            RefuseReason::DuplicateId {
                id,
                other_link: None,
            } => {
                write!(f, "peer claims our own router id {id}")
            }
            RefuseReason::DuplicateId {
                id,
                other_link: Some(l),
            } => write!(
                f,
                "router id {id} is already connected on {l} as another instance"
            ),
            RefuseReason::EdgeOnInteriorLink { peer } => {
                write!(f, "edge router {peer} connected on an inter-router link")
            }
            RefuseReason::InteriorOnEdgeLink { peer } => {
                write!(f, "interior router {peer} connected on an edge link")
            }
            RefuseReason::UnexpectedEdge { expected, got } => {
                write!(f, "edge attached as {expected} says it is {got}")
            }
            RefuseReason::EdgeToEdge { peer } => {
                write!(f, "edge router {peer} connected to an edge router")
            }
            RefuseReason::Malformed(e) => write!(f, "bad mesh message: {e}"),
        }
    }
}
