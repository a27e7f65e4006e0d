//! The messages between connection tasks and the routing core.
//!
//! Connection tasks send [`Event`]s to the core in batches over one bounded channel (they may wait on it: that is
//! the back-pressure on a busy core). The core answers with [`Command`]s pushed into each connection's
//! [`Outbox`]; the core never waits on a connection. What keeps an outbox small is credit: the core only sends a
//! receiver as many deliveries as that receiver granted, and only grants a sender what it can route.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_amqp::{AmqpError, DeliveryState};
use tokio::sync::{oneshot, Notify};

use crate::budget::Charge;
use crate::config::AddressRule;

/// Identifies a connection for its lifetime (never reused).
pub type ConnId = u64;

/// The core's key for a link: a slab index plus a generation so a stale key is detected, never misrouted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// The core's key for an unsettled delivery (same scheme as [`LinkKey`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl LinkKey {
    /// For cores outside this crate (the broker): any scheme that never reuses a live key.
    pub fn new(index: u32, generation: u32) -> LinkKey {
        LinkKey { index, generation }
    }

    pub fn parts(self) -> (u32, u32) {
        (self.index, self.generation)
    }
}

impl DeliveryKey {
    /// For cores outside this crate (the broker): any scheme that never reuses a live key.
    pub fn new(index: u32, generation: u32) -> DeliveryKey {
        DeliveryKey { index, generation }
    }

    pub fn parts(self) -> (u32, u32) {
        (self.index, self.generation)
    }
}

/// A connection's own key for one of its links (slab index in the low half, a generation in the high half, so
/// a command for a link that has gone never reaches a newer link in the same slot); commands name links this way.
pub type LocalLink = u64;

/// The encoded bytes of one message, as received: one chunk per transfer frame, never copied.
#[derive(Debug)]
pub struct Msg {
    pub chunks: Chunks,
    /// Returns the message's bytes to its origin connection's budget when the last copy is dropped.
    pub charge: Charge,
}

/// The frames' payloads of one message; the common single-frame case needs no allocation.
#[derive(Debug, Clone)]
pub enum Chunks {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Chunks {
    pub fn len(&self) -> usize {
        match self {
            Chunks::One(b) => b.len(),
            Chunks::Many(v) => v.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        let (one, many) = match self {
            Chunks::One(b) => (Some(b), &[][..]),
            Chunks::Many(v) => (None, &v[..]),
        };
        one.into_iter().chain(many.iter())
    }
}

impl Msg {
    /// A message charged to no connection's budget (one a broker loads from its store).
    pub fn untracked(chunks: Chunks) -> Msg {
        let len = chunks.len();
        Msg {
            chunks,
            charge: crate::budget::Budget::untracked().charge(len),
        }
    }

    /// A copy for one more receiver of a multicast: the chunks are shared, and so is the origin's budget.
    pub fn share(&self) -> Msg {
        Msg {
            chunks: self.chunks.clone(),
            charge: self.charge.share(),
        }
    }

    /// Append the next part of a message that arrives in parts (a streamed delivery waiting in the core).
    pub fn append(&mut self, part: Msg) {
        let mut chunks = match std::mem::replace(&mut self.chunks, Chunks::Many(Vec::new())) {
            Chunks::One(b) => vec![b],
            Chunks::Many(v) => v,
        };
        chunks.extend(part.chunks.iter().cloned());
        self.chunks = Chunks::Many(chunks);
        self.charge.absorb(part.charge);
    }
}

/// What a client asked for when attaching a link.
#[derive(Debug)]
pub struct AttachRequest {
    pub local: LocalLink,
    /// `None` for an anonymous sender (routed by each message's `to`) or a dynamic receiver.
    pub address: Option<String>,
    pub dynamic: bool,
    /// A receiver on every address that matches `address` as a pattern (segments separated by `/` or `.`; `*`
    /// is one segment, `#` any number): a subscription, as MQTT's. It gets a copy of each message sent to a
    /// matching address, whatever that address's distribution (its other receivers are served as usual).
    /// Messages of link-routed (broker) addresses never reach it: the broker distributes those.
    pub pattern: bool,
    /// What else the peer said, for cores that need it (the broker: durable subscriptions are named by
    /// container-id and link name; source filters, distribution-mode, capabilities, settle modes).
    pub details: Box<AttachDetails>,
}

/// The parts of an attach a router ignores and a broker reads.
#[derive(Debug, Clone, Default)]
pub struct AttachDetails {
    pub link_name: String,
    /// The peer's container-id (from its `open`).
    pub container_id: String,
    pub source: Option<Box<shoal_amqp::Source>>,
    pub target: Option<Box<shoal_amqp::Target>>,
    pub snd_settle_mode: shoal_amqp::SenderSettleMode,
    pub rcv_settle_mode: shoal_amqp::ReceiverSettleMode,
    /// The attach's `properties`. A router that link-routes a client's link to a broker names the client's
    /// container-id here as `shoal:container-id`, so durable subscriptions keep their identity.
    pub properties: Option<shoal_amqp::Fields>,
}

/// The link property a router sets on a link it routes for a client: the client's container-id.
pub const CONTAINER_ID_PROPERTY: &str = "shoal:container-id";

/// The link property a router sets on a link-routed link it passes to the next router of the mesh: the route
/// container (broker) the link is for. The next router follows it rather than its own address rules, so a
/// link route declared on one router (an MQTT gateway's session queues, on an edge) works through interiors
/// that do not declare it (ADR 0009).
pub const ROUTE_CONTAINER_PROPERTY: &str = "shoal:route-container";

/// Conn -> core.
#[derive(Debug)]
pub enum Event {
    /// A client sender attached: the router receives on this link.
    AttachIncoming(AttachRequest),
    /// A client receiver attached: the router sends on this link.
    AttachOutgoing(AttachRequest),
    /// The link is gone (detached by the peer, or the connection closed). For an outgoing link the connection
    /// first reports every unsettled delivery on it as released. `error` is what the peer's detach carried.
    /// `closed`: the peer closed the link (its detach said `closed`), ending the terminus for good: a durable
    /// subscription ends with it. A plain detach, or a lost connection, leaves a durable subscription waiting.
    Detach {
        link: LinkKey,
        error: Option<AmqpError>,
        closed: bool,
    },
    /// The route container answered a link the router opened for `client` ([`Command::RouteAttach`]): attached
    /// as `local` (the core answers with `Command::Attached` to give it a key), or refused with `error`.
    RouteAttached {
        client: LinkKey,
        local: LocalLink,
        /// The address the container gave the node (a dynamic node's name).
        address: Option<String>,
        error: Option<AmqpError>,
    },
    /// A flow from the sender on a receiving link the router opened (a route container's): its drain answered.
    SenderFlow {
        link: LinkKey,
        link_credit: u32,
        drain: bool,
    },
    /// A message, or its first part, arrived on an incoming link. `to` is filled for anonymous links only.
    /// With `more`, the rest follows as [`Event::TransferMore`]: large messages stream through the router.
    Transfer {
        link: LinkKey,
        delivery_id: u32,
        settled: bool,
        to: Option<String>,
        msg: Msg,
        more: bool,
    },
    /// The next part of the delivery in progress on `link`; `aborted` ends it unfinished.
    TransferMore {
        link: LinkKey,
        msg: Option<Msg>,
        more: bool,
        aborted: bool,
    },
    /// The receiver's credit window, in delivery-count sequence space: it may receive deliveries up to `limit`.
    Credit {
        link: LinkKey,
        limit: u32,
        drain: bool,
    },
    /// A delivery the core sent on `link` reached the peer, but its link or connection went away before the
    /// peer settled it: it may or may not have been processed. A router releases it to its sender; a broker
    /// counts a delivery attempt (the redelivered message carries a higher delivery-count).
    Unsettled {
        link: Option<LinkKey>,
        delivery: DeliveryKey,
    },
    /// A receiver's outcome for a delivery the core sent on `link` (`None` when that link is already gone).
    Outcome {
        link: Option<LinkKey>,
        delivery: DeliveryKey,
        state: DeliveryState,
    },
}

/// Core -> conn.
#[derive(Debug)]
pub enum Command {
    /// The attach is accepted; `address` is the assigned address for a dynamic receiver.
    Attached {
        local: LocalLink,
        link: LinkKey,
        address: Option<String>,
    },
    /// The attach is refused: answer with an attach carrying no terminus, then a detach with `error`.
    Refused { local: LocalLink, error: AmqpError },
    /// Add `credit` to an incoming link.
    Grant { local: LocalLink, credit: u32 },
    /// Send a message (or its first part, with `more`) on an outgoing link; `delivery` is `None` when it goes
    /// presettled. Nothing else is sent on the link until its last part.
    Deliver {
        local: LocalLink,
        delivery: Option<DeliveryKey>,
        msg: Msg,
        more: bool,
        /// The address the message was routed by, given only to a pattern subscriber (its link names a
        /// pattern, and a message sent on a named link may carry no `to`): an adaptor makes its topic from it.
        address: Option<Arc<str>>,
    },
    /// The next part of the delivery in progress on an outgoing link; `aborted` ends it unfinished.
    DeliverMore {
        local: LocalLink,
        msg: Option<Msg>,
        more: bool,
        aborted: bool,
    },
    /// Settle an incoming delivery with this outcome.
    Settle {
        local: LocalLink,
        delivery_id: u32,
        state: DeliveryState,
    },
    /// Drain completed on an outgoing link: advance its delivery-count to `limit` (its credit is used up).
    Drained { local: LocalLink, limit: u32 },
    /// Open a link on this (route container) connection for the client link `client`, with the client's
    /// terminus and our `role` on this connection; answered by [`Event::RouteAttached`].
    RouteAttach {
        client: LinkKey,
        role: shoal_amqp::Role,
        details: Box<AttachDetails>,
    },
    /// Set a receiving link's credit: after the first `seen` transfers on it (those the core has processed),
    /// the peer may send `credit` more; with drain. A routed link's credit is its partner's: counting from what
    /// the core has seen keeps transfers still on their way to the core from being granted twice.
    Flow {
        local: LocalLink,
        seen: u32,
        credit: u32,
        drain: bool,
    },
    /// Detach a link (its routed partner went away), passing on `error`; `closed` as the partner's detach said
    /// (a client closing a durable subscription ends it on the broker).
    Detach {
        local: LocalLink,
        error: Option<AmqpError>,
        closed: bool,
    },
}

/// Management requests, answered on a oneshot.
#[derive(Debug)]
pub enum Admin {
    SetAddress(AddressRule, oneshot::Sender<()>),
    DeleteAddress(String, oneshot::Sender<bool>),
    ListAddresses(oneshot::Sender<Vec<AddressRule>>),
    Metrics(oneshot::Sender<crate::core::metrics::Snapshot>),
    Mesh(oneshot::Sender<crate::core::MeshSnapshot>),
}

/// The router at the other end of an inter-router (or edge) connection, from its `open`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshPeer {
    /// Its router id (validated).
    pub id: shoal_mesh::RouterId,
    pub mode: shoal_mesh::Mode,
    /// We dialled it (else it connected to our inter-router listener).
    pub dialled: bool,
    /// The connection's cost in route computation (configured where it was dialled; 1 otherwise).
    pub cost: u32,
}

/// Everything the core receives on its one channel.
#[derive(Debug)]
pub enum CoreMsg {
    Open {
        conn: ConnId,
        outbox: Arc<Outbox>,
        /// Set for a connection the router made to a route container (a broker), by the container's name.
        route_container: Option<String>,
        /// Set for an inter-router or edge connection, once the peer's `open` said who it is.
        mesh: Option<MeshPeer>,
    },
    Batch {
        conn: ConnId,
        events: Vec<Event>,
    },
    Closed {
        conn: ConnId,
    },
    Admin(Admin),
}

/// A connection's mailbox: the core appends whole batches under a short lock (never across an await) and
/// wakes the connection task, which swaps the batch out.
#[derive(Debug, Default)]
pub struct Outbox {
    commands: Mutex<Vec<Command>>,
    notify: Notify,
    /// The core asks the connection to close (a mesh peer it refuses), with this error.
    close: Mutex<Option<AmqpError>>,
}

impl Outbox {
    pub fn push_batch(&self, batch: &mut Vec<Command>) {
        if batch.is_empty() {
            return;
        }
        {
            let mut inner = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            if inner.is_empty() {
                std::mem::swap(&mut *inner, batch);
            } else {
                inner.append(batch);
            }
        }
        self.notify.notify_one();
    }

    /// Take everything queued (into `into`, which must be empty).
    pub fn take(&self, into: &mut Vec<Command>) {
        let mut inner = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *inner, into);
    }

    /// Append everything queued to `into`.
    pub fn take_more(&self, into: &mut Vec<Command>) {
        let mut inner = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        into.append(&mut inner);
    }

    /// Ask the connection to close with `error` (it answers by closing; its links go as on any close).
    pub fn close_connection(&self, error: AmqpError) {
        *self.close.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        self.notify.notify_one();
    }

    /// The close the core asked for, if any.
    pub fn take_close(&self) -> Option<AmqpError> {
        self.close.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}
