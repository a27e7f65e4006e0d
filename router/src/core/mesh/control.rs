//! The control links of mesh connections: the peer's messages to the node, and the node's messages out on
//! our control sender, presettled, as far as its credit goes (the rest waits in a bounded backlog).

use std::time::Instant;

use bytes::Bytes;
use shoal_mesh::LinkId;

use super::super::api::{AttachRequest, Chunks, Command, ConnId, LinkKey, Msg};
use super::super::{Core, LinkKind};
use super::{MeshLink, CONTROL_CREDIT, CONTROL_MAX};

impl Core {
    /// The peer attached its control sender: hand its messages to the node.
    pub(in crate::core) fn attach_control_in(&mut self, conn: ConnId, req: AttachRequest) {
        let key = self.insert_mesh_link(
            conn,
            None,
            LinkKind::Incoming {
                credit: CONTROL_CREDIT,
                in_router: 0,
                open: None,
                seen: 0,
            },
            MeshLink::ControlIn,
        );
        if let Some(l) = self.link_mut(key) {
            l.local = req.local;
        }
        self.send(
            conn,
            Command::Attached {
                local: req.local,
                link: key,
                address: None,
            },
        );
        self.send(
            conn,
            Command::Grant {
                local: req.local,
                credit: CONTROL_CREDIT,
            },
        );
    }

    /// A message (or its first part) on an incoming control link.
    pub(in crate::core) fn control_message(&mut self, key: LinkKey, msg: Msg, more: bool) {
        let Some(link) = self.link_mut(key) else {
            return;
        };
        let (conn, local) = (link.conn, link.local);
        let mut top_up = 0;
        if let LinkKind::Incoming { credit, .. } = &mut link.kind {
            *credit = credit.saturating_sub(1);
            if *credit < CONTROL_CREDIT / 2 {
                top_up = CONTROL_CREDIT - *credit;
                *credit = CONTROL_CREDIT;
            }
        }
        if top_up > 0 {
            self.send(
                conn,
                Command::Grant {
                    local,
                    credit: top_up,
                },
            );
        }
        let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) else {
            return;
        };
        let mut parts = n.partial.take().unwrap_or_default();
        parts.extend(msg.chunks.iter().cloned());
        if more {
            n.partial = Some(parts);
            return;
        }
        self.control_bytes(conn, parts);
    }

    /// The next part of a control message.
    pub(in crate::core) fn control_message_more(
        &mut self,
        key: LinkKey,
        msg: Option<Msg>,
        more: bool,
    ) {
        let Some(conn) = self.link(key).map(|l| l.conn) else {
            return;
        };
        let Some(n) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) else {
            return;
        };
        let Some(mut parts) = n.partial.take() else {
            return;
        };
        if let Some(m) = msg {
            parts.extend(m.chunks.iter().cloned());
        }
        let size: usize = parts.iter().map(Bytes::len).sum();
        if size > CONTROL_MAX {
            self.refuse_mesh_conn(conn, "a control message exceeds 4 MiB");
            return;
        }
        if more {
            n.partial = Some(parts);
            return;
        }
        self.control_bytes(conn, parts);
    }

    fn control_bytes(&mut self, conn: ConnId, parts: Vec<Bytes>) {
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        let now = Instant::now();
        if parts.len() == 1 {
            mesh.node.receive_bytes(LinkId(conn), &parts[0], now);
        } else {
            let whole: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
            mesh.node.receive_bytes(LinkId(conn), &whole, now);
        }
    }

    /// Send what waits for the control link, as far as its credit goes.
    pub(in crate::core) fn flush_control(&mut self, conn: ConnId) {
        let Some(key) = self
            .mesh
            .as_ref()
            .and_then(|m| m.neighbours.get(&conn))
            .and_then(|n| n.control_out)
        else {
            return;
        };
        let Some(link) = self.link_mut(key) else {
            return;
        };
        if link.mesh != Some(MeshLink::ControlOut { attached: true }) {
            return;
        }
        let local = link.local;
        let LinkKind::Outgoing(out) = &mut link.kind else {
            return;
        };
        let mut n = out.available();
        let mut batch = Vec::new();
        if let Some(nb) = self.mesh.as_mut().and_then(|m| m.neighbours.get_mut(&conn)) {
            while n > 0 {
                let Some(bytes) = nb.backlog.pop_front() else {
                    break;
                };
                batch.push(bytes);
                n -= 1;
            }
        }
        if let Some(LinkKind::Outgoing(out)) = self.link_mut(key).map(|l| &mut l.kind) {
            out.sent = out.sent.wrapping_add(batch.len() as u32);
        }
        for bytes in batch {
            self.send(
                conn,
                Command::Deliver {
                    local,
                    delivery: None,
                    msg: Msg::untracked(Chunks::One(bytes)),
                    more: false,
                    address: None,
                },
            );
        }
    }
}
