//! Link routing: a client's link on an address a broker holds is paired with a link the router opens on its
//! connection to that broker (a route container). Credit, transfers, outcomes, drain and detach pass from each
//! link to its partner; the address table is not involved. The broker sees the client's terminus (filters,
//! durability, distribution-mode) and, in a link property, the client's container-id.

use shoal_amqp::{condition, AmqpError, Role, Symbol, Value};

use super::api::{
    AttachRequest, Command, ConnId, LinkKey, LocalLink, Msg, CONTAINER_ID_PROPERTY,
    ROUTE_CONTAINER_PROPERTY,
};
use super::{Core, Link, LinkKind, Outgoing, Pending, Routed};

impl Core {
    /// A client attached to a link-routed address: open the partner link on the broker connection.
    pub(super) fn route_attach(
        &mut self,
        conn: ConnId,
        req: AttachRequest,
        incoming: bool,
        container: &str,
    ) {
        let AttachRequest {
            local,
            address,
            mut details,
            ..
        } = req;
        let address = address.unwrap_or_default();
        // The broker's connection, or the mesh connection towards the router that has it (ADR 0009): the
        // link is routed hop by hop, each router pairing it with a link on the next connection.
        let next = self
            .containers
            .get(container)
            .copied()
            .or_else(|| self.mesh_route_to_broker(container));
        let Some(broker) = next else {
            let error = AmqpError::new(
                condition::NOT_FOUND,
                format!("`{address}` is held by broker `{container}`, which is not connected"),
            );
            self.send(conn, Command::Refused { local, error });
            return;
        };
        let addr = self.address_id(&address);
        let key = self.insert_link(
            conn,
            local,
            Some(addr),
            new_kind(incoming),
            Some(Routed::Pending),
        );
        // The broker names durable subscriptions by the client's container-id: pass it on (a link that
        // comes from another router already carries it: the container there is that router).
        let container_id = Value::String(details.container_id.clone());
        let properties = details.properties.get_or_insert_with(Vec::new);
        let relayed = self.is_mesh_conn(conn)
            && properties
                .iter()
                .any(|(k, _)| k.as_str() == CONTAINER_ID_PROPERTY);
        if !relayed {
            properties.retain(|(k, _)| k.as_str() != CONTAINER_ID_PROPERTY);
            properties.push((Symbol::from(CONTAINER_ID_PROPERTY), container_id));
        }
        // The next router follows this rather than its own rules; the broker itself needs no such hint.
        properties.retain(|(k, _)| k.as_str() != ROUTE_CONTAINER_PROPERTY);
        if self.is_mesh_conn(broker) {
            properties.push((
                Symbol::from(ROUTE_CONTAINER_PROPERTY),
                Value::String(container.to_owned()),
            ));
        }
        let role = if incoming {
            Role::Sender
        } else {
            Role::Receiver
        };
        self.send(
            broker,
            Command::RouteAttach {
                client: key,
                role,
                details,
            },
        );
    }

    /// The route container named by the router that passed this link on, if it came over the mesh.
    pub(super) fn relayed_route(&self, conn: ConnId, req: &AttachRequest) -> Option<String> {
        if !self.is_mesh_conn(conn) {
            return None;
        }
        req.details
            .properties
            .as_ref()?
            .iter()
            .find(|(k, _)| k.as_str() == ROUTE_CONTAINER_PROPERTY)
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
    }

    /// The broker answered the partner link opened for `client`.
    pub(super) fn route_attached(
        &mut self,
        broker: ConnId,
        client: LinkKey,
        local: LocalLink,
        address: Option<String>,
        error: Option<AmqpError>,
    ) {
        let waiting = self
            .link(client)
            .is_some_and(|l| l.routed == Some(Routed::Pending));
        match (waiting, error) {
            // The client left meanwhile: so does the partner (not closed: a durable subscription stays).
            (false, None) => self.send(
                broker,
                Command::Detach {
                    local,
                    error: None,
                    closed: false,
                },
            ),
            (false, Some(_)) => {}
            (true, Some(error)) => {
                let (conn, client_local) = self
                    .link(client)
                    .map(|l| (l.conn, l.local))
                    .unwrap_or_default();
                self.forget_link(client);
                self.send(
                    conn,
                    Command::Refused {
                        local: client_local,
                        error,
                    },
                );
            }
            (true, None) => {
                let Some(c) = self.link(client) else { return };
                let (conn, client_local, addr) = (c.conn, c.local, c.addr);
                let incoming = matches!(c.kind, LinkKind::Outgoing(_));
                let partner = self.insert_link(
                    broker,
                    local,
                    addr,
                    new_kind(incoming),
                    Some(Routed::Paired(client)),
                );
                if let Some(c) = self.link_mut(client) {
                    c.routed = Some(Routed::Paired(partner));
                }
                self.send(
                    broker,
                    Command::Attached {
                        local,
                        link: partner,
                        address: None,
                    },
                );
                self.send(
                    conn,
                    Command::Attached {
                        local: client_local,
                        link: client,
                        address,
                    },
                );
            }
        }
    }

    fn insert_link(
        &mut self,
        conn: ConnId,
        local: LocalLink,
        addr: Option<usize>,
        kind: LinkKind,
        routed: Option<Routed>,
    ) -> LinkKey {
        let generation = self.next_generation();
        let index = self.links.insert(Link {
            generation,
            conn,
            local,
            addr,
            kind,
            routed,
            mesh: None,
        });
        let key = LinkKey {
            index: index as u32,
            generation,
        };
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.links.push(key);
        }
        key
    }

    fn forget_link(&mut self, key: LinkKey) {
        if let Some(link) = self.link(key) {
            let conn = link.conn;
            self.links.remove(key.index as usize);
            if let Some(entry) = self.conns.get_mut(&conn) {
                entry.links.retain(|l| *l != key);
            }
        }
    }

    /// `key` is going: its partner is detached, told `error` (a broker's detach error reaches the client).
    pub(super) fn unpair(&mut self, key: LinkKey, error: Option<AmqpError>, closed: bool) {
        let Some(Routed::Paired(partner)) = self.link(key).and_then(|l| l.routed) else {
            return;
        };
        let Some(p) = self.link_mut(partner) else {
            return;
        };
        // Unpaired first, so the partner's own detach (reported back by its connection) does not echo.
        p.routed = None;
        let (conn, local) = (p.conn, p.local);
        self.send(
            conn,
            Command::Detach {
                local,
                error,
                closed,
            },
        );
    }

    /// A delivery on a routed link goes to its partner.
    pub(super) fn routed_transfer(
        &mut self,
        from: LinkKey,
        delivery_id: u32,
        settled: bool,
        msg: Msg,
        more: bool,
    ) {
        let Some(link) = self.link(from) else { return };
        let (Some(Routed::Paired(to)), Some(addr)) = (link.routed, link.addr) else {
            // No partner (yet, or any more): the sender had no credit to send this.
            return;
        };
        self.addresses[addr].stats.deliveries_in += 1;
        let delivery = (!settled).then(|| self.new_delivery(from, delivery_id, addr, 1));
        let pending = Pending {
            msg,
            delivery,
            from: None,
            open: more.then_some(from),
            trace: None,
            matched: None,
        };
        self.deliver(addr, to, pending);
    }

    /// New credit on a routed outgoing link: its partner (the sending side) may send as much.
    pub(super) fn routed_credit(&mut self, key: LinkKey) {
        let Some(link) = self.link(key) else { return };
        let Some(Routed::Paired(partner)) = link.routed else {
            return;
        };
        let LinkKind::Outgoing(out) = &link.kind else {
            return;
        };
        let (credit, drain) = (out.available(), out.drain);
        let Some(p) = self.link_mut(partner) else {
            return;
        };
        let LinkKind::Incoming {
            credit: held, seen, ..
        } = &mut p.kind
        else {
            return;
        };
        *held = credit;
        let (conn, local, seen) = (p.conn, p.local, *seen);
        self.send(
            conn,
            Command::Flow {
                local,
                seen,
                credit,
                drain,
            },
        );
    }

    /// The sender on a routed receiving link answered a drain (its credit is used up): so is the partner's.
    pub(super) fn sender_flow(&mut self, key: LinkKey, link_credit: u32, drain: bool) {
        if !drain || link_credit != 0 {
            return;
        }
        let Some(Routed::Paired(partner)) = self.link(key).and_then(|l| l.routed) else {
            return;
        };
        let Some(p) = self.link_mut(partner) else {
            return;
        };
        let (conn, local) = (p.conn, p.local);
        let LinkKind::Outgoing(out) = &mut p.kind else {
            return;
        };
        if !out.drain {
            return;
        }
        out.drain = false;
        out.sent = out.limit;
        let limit = out.limit;
        self.send(conn, Command::Drained { local, limit });
    }
}

fn new_kind(incoming: bool) -> LinkKind {
    if incoming {
        LinkKind::Incoming {
            credit: 0,
            in_router: 0,
            open: None,
            seen: 0,
        }
    } else {
        LinkKind::Outgoing(Outgoing {
            limit: 0,
            sent: 0,
            unsettled: 0,
            drain: false,
            busy: false,
            backlog: Default::default(),
        })
    }
}
