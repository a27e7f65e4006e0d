//! Per-connection endpoint state: sessions and link ends, as the connection task sees them.

use std::collections::VecDeque;

use shoal_amqp::Attach;

use crate::core::api::{DeliveryKey, LinkKey, Msg};

/// A delivery the peer is sending on one of our receiving links, still arriving frame by frame.
#[derive(Debug)]
pub struct Partial {
    pub delivery_id: u32,
    pub settled: bool,
    /// Payload held back before the first part goes to the core (an anonymous link waits for the `to`).
    pub chunks: Vec<bytes::Bytes>,
    pub len: usize,
    /// The first part went to the core: later frames follow it as they arrive.
    pub started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OurRole {
    /// The peer is a sender; we receive and hand messages to the core.
    Receiver,
    /// The peer is a receiver; we send what the core gives us.
    Sender,
}

#[derive(Debug)]
pub enum LinkState {
    /// Waiting for the core; `reply` is the attach we will answer with.
    Attaching {
        reply: Box<Attach>,
        peer_detached: Option<bool>,
    },
    /// We opened this link (link routing) and wait for the peer's attach.
    Initiating,
    Attached,
}

#[derive(Debug)]
pub struct LinkEnd {
    /// Matches the high half of the link's key; a stale key finds no link.
    pub generation: u32,
    pub channel: u16,
    /// The peer's handle. We never start links, so our handle for a link mirrors the peer's.
    pub handle: u32,
    pub role: OurRole,
    pub state: LinkState,
    pub core: Option<LinkKey>,
    pub delivery_count: u32,
    pub link_credit: u32,
    /// Receiving link with a null target: each message is routed by its `to`.
    pub anonymous: bool,
    /// The peer asked for settled deliveries only (at-most-once): we send everything presettled.
    pub presettle: bool,
    pub max_message_size: u64,
    pub partial: Option<Partial>,
    /// Sending link: the peer's credit limit (delivery-count + link-credit) and drain, kept until the core knows
    /// the link and sent to it on every flow.
    pub limit: u32,
    pub drain: bool,
    /// Receiving link: credit changed and a flow must go out.
    pub flow_due: bool,
    /// Sending link: the delivery-id of a streamed delivery still being written.
    pub streaming: Option<u32>,
    /// A link the router opened on a route container connection, as the partner of this client link.
    pub initiated_for: Option<crate::core::api::LinkKey>,
    /// The peer's handle where it is not ours (links we opened); see [`LinkEnd::remote_handle`].
    pub peer_handle: Option<u32>,
    /// Deliveries received on a receiving link (routed credit counts from what the core has seen).
    pub received: u32,
    /// A sending link to another router: what we send gets our id appended to its trace.
    pub trace: bool,
}

impl LinkEnd {
    /// The handle the peer uses for this link in the frames it sends.
    pub fn remote_handle(&self) -> u32 {
        self.peer_handle.unwrap_or(self.handle)
    }
}

/// A delivery, or one part of a streamed delivery, to write on a sending link: written at once when the
/// peer's session window allows, else queued in order.
#[derive(Debug)]
pub struct Blocked {
    pub link: u64,
    /// On a delivery's first part: its delivery-id and whether it goes settled (the first frame carries them).
    pub first: Option<(u32, bool)>,
    /// The core's key, to release it if it never goes out.
    pub delivery: Option<DeliveryKey>,
    pub msg: Option<Msg>,
    /// Payload bytes already sent in earlier frames.
    pub offset: usize,
    /// More parts of this delivery follow this one.
    pub more: bool,
    pub aborted: bool,
}

#[derive(Debug)]
pub struct Session {
    pub handle_max: u32,
    /// Remote handle -> our link key (handles are bounded by handle-max, so a vector indexed by handle).
    pub links: HandleMap,
    // Incoming transfers.
    pub next_incoming_id: u32,
    pub incoming_window: u32,
    // Outgoing transfers.
    pub next_outgoing_id: u32,
    pub remote_incoming_window: u32,
    pub next_delivery_id: u32,
    /// Unsettled deliveries we sent, indexed by delivery-id - `unsettled_base`.
    pub unsettled: VecDeque<Option<(u64, DeliveryKey)>>,
    pub unsettled_base: u32,
    pub blocked: VecDeque<Blocked>,
    /// Set when we sent `end` and wait for the peer's.
    pub ending: bool,
    /// Handles we detached (with an error, or refusing an attach) whose peer detach has not arrived yet.
    pub detaching: std::collections::HashSet<u32>,
    /// Links we opened and whose peer attach has not arrived, by link name.
    pub initiating: std::collections::HashMap<String, u64>,
    /// Which handle a link we open takes (see [`InitiatedHandles`]). Handles are reused once their link is
    /// gone.
    pub initiated: InitiatedHandles,
}

/// How we pick handles for links we open. Our handle for a link the peer opened mirrors the peer's, so the
/// two ends must never pick the same free handle at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiatedHandles {
    /// The highest free handle: the peer (a broker) never opens links, so counting down keeps away from
    /// nothing but our own.
    TopDown,
    /// The lowest free handle of this parity: both ends of a mesh connection open links, the dialler on odd
    /// handles and the accepting end on even ones (bottom up, so the handle table stays as small as the
    /// number of links).
    Parity(u32),
}

impl Session {
    pub fn new(window: u32, handle_max: u32) -> Session {
        Session {
            handle_max,
            links: HandleMap::default(),
            next_incoming_id: 0,
            incoming_window: window,
            next_outgoing_id: 0,
            remote_incoming_window: 0,
            next_delivery_id: 0,
            unsettled: VecDeque::new(),
            unsettled_base: 0,
            blocked: VecDeque::new(),
            ending: false,
            detaching: Default::default(),
            initiating: Default::default(),
            initiated: InitiatedHandles::TopDown,
        }
    }

    /// Remember a delivery we sent unsettled.
    pub fn track(&mut self, delivery_id: u32, link: u64, key: DeliveryKey) {
        if self.unsettled.is_empty() {
            self.unsettled_base = delivery_id;
        }
        let offset = delivery_id.wrapping_sub(self.unsettled_base) as usize;
        // Ids are assigned in order, so this only ever appends (gaps are presettled deliveries).
        while self.unsettled.len() < offset {
            self.unsettled.push_back(None);
        }
        self.unsettled.push_back(Some((link, key)));
    }

    /// Forget a delivery the peer settled; returns what it was.
    pub fn settle(&mut self, delivery_id: u32) -> Option<(u64, DeliveryKey)> {
        let offset = delivery_id.wrapping_sub(self.unsettled_base) as usize;
        let taken = self.unsettled.get_mut(offset)?.take();
        while matches!(self.unsettled.front(), Some(None)) {
            self.unsettled.pop_front();
            self.unsettled_base = self.unsettled_base.wrapping_add(1);
        }
        taken
    }

    /// Whether `delivery_id` is one we sent and the peer has not settled.
    /// Take every unsettled delivery of one link (it is detaching).
    pub fn take_link(&mut self, link: u64) -> Vec<(u64, DeliveryKey)> {
        let mut out = Vec::new();
        for slot in self.unsettled.iter_mut() {
            if matches!(slot, Some((l, _)) if *l == link) {
                out.extend(slot.take());
            }
        }
        while matches!(self.unsettled.front(), Some(None)) {
            self.unsettled.pop_front();
            self.unsettled_base = self.unsettled_base.wrapping_add(1);
        }
        out
    }
}

/// Link keys by handle.
#[derive(Debug, Default)]
pub struct HandleMap(Vec<Option<u64>>);

impl HandleMap {
    pub fn get(&self, handle: &u32) -> Option<&u64> {
        self.0.get(*handle as usize).and_then(Option::as_ref)
    }

    pub fn contains_key(&self, handle: &u32) -> bool {
        self.get(handle).is_some()
    }

    /// `handle` must already be checked against handle-max.
    pub fn insert(&mut self, handle: u32, key: u64) {
        let i = handle as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(key);
    }

    pub fn remove(&mut self, handle: &u32) -> Option<u64> {
        self.0.get_mut(*handle as usize).and_then(Option::take)
    }

    pub fn values(&self) -> impl Iterator<Item = &u64> {
        self.0.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> DeliveryKey {
        DeliveryKey {
            index: i,
            generation: 1,
        }
    }

    #[test]
    fn unsettled_tracking_survives_gaps_and_wraparound() {
        let mut s = Session::new(10, 10);
        let start = u32::MAX - 1;
        s.track(start, 1, key(0));
        s.track(start.wrapping_add(2), 2, key(2)); // id start+1 went presettled
        s.track(start.wrapping_add(3), 1, key(3));

        assert_eq!(s.settle(start), Some((1, key(0))));
        assert_eq!(s.settle(start), None);
        assert_eq!(s.take_link(1), vec![(1, key(3))]);
        assert_eq!(s.settle(start.wrapping_add(2)), Some((2, key(2))));
        assert!(s.unsettled.is_empty());
    }
}
