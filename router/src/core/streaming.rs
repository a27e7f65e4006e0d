//! Deliveries that arrive in parts (multi-frame transfers): the first part is routed like any message and each
//! later part follows it, so a large message streams through the router instead of being held whole.

use super::api::{Command, DeliveryKey, LinkKey, Msg};
use super::{AddrId, Core, LinkKind, Pending};

/// Where the rest of a delivery that arrives in parts goes.
pub(super) enum Stream {
    /// Being written to these receivers (anycast: one); each is busy until the last part.
    Sent {
        to: Vec<LinkKey>,
        delivery: Option<DeliveryKey>,
    },
    /// Waiting in its address's queue for receiver credit (anycast).
    Queued { addr: AddrId },
    /// Collected whole before it fans out (multicast).
    Collecting { addr: AddrId, pending: Pending },
    /// Nowhere to go: the rest is dropped.
    Discard,
}

impl Core {
    /// The next part of a streamed delivery: it follows the first part wherever that went.
    pub(super) fn transfer_more(
        &mut self,
        link: LinkKey,
        msg: Option<Msg>,
        more: bool,
        aborted: bool,
    ) {
        if self
            .link(link)
            .is_some_and(|l| l.mesh == Some(super::mesh::MeshLink::ControlIn))
        {
            return self.control_message_more(link, msg, more && !aborted);
        }
        let Some(stream) = self.take_open(link) else {
            return;
        };
        let more = more && !aborted;
        let done = !more;
        match stream {
            Stream::Sent { to, delivery } => {
                let last = to.len().saturating_sub(1);
                let mut msg = msg;
                for (i, out) in to.iter().enumerate() {
                    let mut part = if i == last {
                        msg.take()
                    } else {
                        msg.as_ref().map(Msg::share)
                    };
                    if let Some(p) = part.as_mut() {
                        p.charge.activate();
                    }
                    let Some(l) = self.link_mut(*out) else {
                        continue;
                    };
                    let (conn, local) = (l.conn, l.local);
                    if let LinkKind::Outgoing(o) = &mut l.kind {
                        o.busy = !done;
                    }
                    self.send(
                        conn,
                        Command::DeliverMore {
                            local,
                            msg: part,
                            more,
                            aborted,
                        },
                    );
                }
                if aborted {
                    if let Some(d) = delivery {
                        self.abandon(d);
                    }
                }
                if done {
                    for out in to {
                        self.pump(out);
                    }
                } else {
                    self.set_open(link, Stream::Sent { to, delivery });
                }
            }
            Stream::Queued { addr } => {
                let queue = &mut self.addresses[addr].queue;
                let Some(i) = queue.iter().rposition(|p| p.open == Some(link)) else {
                    return;
                };
                if aborted {
                    let pending = queue.remove(i).expect("found above");
                    if let Some(d) = pending.delivery {
                        self.abandon(d);
                    }
                    if let Some(from) = pending.from {
                        self.slot_returned(from);
                    }
                    return;
                }
                if let Some(msg) = msg {
                    queue[i].msg.append(msg);
                }
                if more {
                    self.set_open(link, Stream::Queued { addr });
                } else {
                    queue[i].open = None;
                }
            }
            Stream::Collecting { addr, mut pending } => {
                if aborted {
                    match pending.delivery {
                        Some(d) => self.abandon(d),
                        None => self.slot_returned(link),
                    }
                    return;
                }
                if let Some(msg) = msg {
                    pending.msg.append(msg);
                }
                if more {
                    self.set_open(link, Stream::Collecting { addr, pending });
                } else {
                    self.multicast(addr, link, pending.msg, pending.delivery, pending.trace);
                }
            }
            Stream::Discard => {
                if !done {
                    self.set_open(link, Stream::Discard);
                }
            }
        }
    }

    /// The incoming link is going away mid-delivery: the delivery is aborted.
    pub(super) fn transfer_more_dropped(&mut self, link: LinkKey) {
        let open = matches!(
            self.link(link).map(|l| &l.kind),
            Some(LinkKind::Incoming { open: Some(_), .. })
        );
        if open {
            self.transfer_more(link, None, false, true);
        }
    }

    pub(super) fn set_open(&mut self, link: LinkKey, stream: Stream) {
        if let Some(LinkKind::Incoming { open, .. }) = self.link_mut(link).map(|l| &mut l.kind) {
            *open = Some(stream);
        }
    }

    fn take_open(&mut self, link: LinkKey) -> Option<Stream> {
        match self.link_mut(link).map(|l| &mut l.kind) {
            Some(LinkKind::Incoming { open, .. }) => open.take(),
            _ => None,
        }
    }

    /// The sender aborted an unsettled delivery: an aborted delivery is settled by the abort itself, so nobody
    /// is told an outcome; its slot comes back.
    pub(super) fn abandon(&mut self, key: DeliveryKey) {
        if self.delivery(key).is_none() {
            return;
        }
        let d = self.deliveries.remove(key.index as usize);
        self.slot_returned(d.from);
    }
}
