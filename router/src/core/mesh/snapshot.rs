//! What the mesh looks like from this router, for management (`GET /api/v1/mesh`) and tests.

use serde::Serialize;
use shoal_mesh::Mode;

use super::super::Core;

/// This router's view of the mesh.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeshSnapshot {
    pub router_id: String,
    /// `interior` or `edge` (empty when the router cannot join a mesh).
    pub mode: String,
    /// Open inter-router and edge connections.
    pub neighbours: Vec<NeighbourSnapshot>,
    /// Every reachable interior: where the path starts and what it costs.
    pub routes: Vec<RouteSnapshot>,
    /// Addresses with consumers somewhere in the mesh.
    pub addresses: Vec<AddressRoutes>,
    /// On an edge: the interior everything not local goes to.
    pub uplink: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NeighbourSnapshot {
    pub router_id: String,
    pub mode: String,
    /// Up both ways (each side's hellos list the other).
    pub adjacent: bool,
    /// Proxy links open to it (one per address with consumers behind it).
    pub proxies: usize,
    /// Proxies the routes no longer use, still waiting for the outcomes of what they carried.
    pub retiring: usize,
    /// On an edge: its anonymous sender to this interior is attached (messages from the edge's anonymous
    /// senders for addresses with no consumer on the edge go up on it).
    pub uplink_attached: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteSnapshot {
    pub router_id: String,
    pub next_hop: String,
    pub cost: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AddressRoutes {
    pub address: String,
    /// This router (or one of its edges) has a consumer.
    pub local: bool,
    pub destinations: Vec<RouteSnapshot>,
}

impl Core {
    pub(in crate::core) fn mesh_snapshot(&self) -> MeshSnapshot {
        let Some(mesh) = self.mesh.as_ref() else {
            return MeshSnapshot::default();
        };
        let node = &mesh.node;
        let adjacent: Vec<_> = node.neighbours().into_iter().map(|(l, _)| l.0).collect();
        let mut neighbours: Vec<NeighbourSnapshot> =
            mesh.neighbours
                .iter()
                .map(|(conn, n)| NeighbourSnapshot {
                    router_id: n.peer.id.to_string(),
                    mode: n.peer.mode.as_str().to_owned(),
                    adjacent: adjacent.contains(conn),
                    proxies: n.proxies.len(),
                    retiring: self.conns.get(conn).map_or(0, |c| {
                        c.links
                            .iter()
                            .filter(|k| {
                                self.link(**k)
                                    .is_some_and(|l| l.mesh == Some(super::MeshLink::Retiring))
                            })
                            .count()
                    }),
                    uplink_attached: n.uplink.and_then(|k| self.link(k)).is_some_and(|l| {
                        l.mesh == Some(super::MeshLink::Uplink { attached: true })
                    }),
                })
                .collect();
        neighbours.sort_by(|a, b| a.router_id.cmp(&b.router_id));
        let hop = |conn: u64| {
            mesh.neighbours
                .get(&conn)
                .map_or_else(String::new, |n| n.peer.id.to_string())
        };
        let routes = node
            .routes()
            .iter()
            .map(|(id, r)| RouteSnapshot {
                router_id: id.to_string(),
                next_hop: hop(r.next_hop.0),
                cost: r.cost.0,
            })
            .collect();
        let mut names = node.known_addresses();
        names.extend(
            self.addresses
                .iter()
                .filter(|(_, a)| node.is_local(&a.name))
                .map(|(_, a)| a.name.clone()),
        );
        let addresses = names
            .into_iter()
            .map(|address| AddressRoutes {
                local: node.is_local(&address),
                destinations: node
                    .destinations(&address)
                    .into_iter()
                    .map(|d| RouteSnapshot {
                        router_id: d.router.to_string(),
                        next_hop: hop(d.next_hop.0),
                        cost: d.cost.0,
                    })
                    .collect(),
                address,
            })
            .collect();
        MeshSnapshot {
            router_id: mesh.id.to_string(),
            mode: match node.mode() {
                Mode::Interior => "interior",
                Mode::Edge => "edge",
            }
            .to_owned(),
            neighbours,
            routes,
            addresses,
            uplink: node.uplink().map(|l| hop(l.0)),
        }
    }
}
