//! In-process meshes: N routers on 127.0.0.1 ephemeral ports, joined by inter-router (or edge) connections as
//! listed, with helpers to await convergence and to kill a router.
//!
//! ```no_run
//! # async fn demo() {
//! use shoal_test_support::mesh::MeshBuilder;
//! let mesh = MeshBuilder::new()
//!     .interior("A").interior("B").interior("C")
//!     .connect("A", "B").connect("B", "C")
//!     .start().await;
//! mesh.await_routes("A", 2).await;
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_router::{Mode, PeerRole, Router, RouterConfig, RouterHandle};

use crate::proxy::TcpProxy;

/// One router of a [`TestMesh`].
pub struct MeshRouter {
    pub id: String,
    pub mode: Mode,
    router: Option<Router>,
    handle: RouterHandle,
    /// Where clients connect.
    pub amqp: SocketAddr,
    /// Where other routers connect (interiors only).
    pub inter_router: Option<SocketAddr>,
}

/// Describes a mesh before it starts.
pub struct MeshBuilder {
    routers: Vec<(String, Mode)>,
    /// (from, to, through a [`TcpProxy`], cost)
    connections: Vec<(String, String, bool, u32)>,
    tweak: Box<dyn Fn(&mut RouterConfig)>,
}

impl Default for MeshBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshBuilder {
    pub fn new() -> Self {
        MeshBuilder {
            routers: Vec::new(),
            connections: Vec::new(),
            tweak: Box::new(|_| {}),
        }
    }

    pub fn interior(mut self, id: &str) -> Self {
        self.routers.push((id.to_owned(), Mode::Interior));
        self
    }

    /// Several interiors at once, in order.
    pub fn interiors(self, ids: &[&str]) -> Self {
        ids.iter().fold(self, |b, id| b.interior(id))
    }

    pub fn edge(mut self, id: &str) -> Self {
        self.routers.push((id.to_owned(), Mode::Edge));
        self
    }

    /// `from` dials `to`'s inter-router listener (as an edge if `from` is an edge).
    pub fn connect(mut self, from: &str, to: &str) -> Self {
        self.connections
            .push((from.to_owned(), to.to_owned(), false, 1));
        self
    }

    /// As [`MeshBuilder::connect`], with the link's cost in route computation.
    pub fn connect_with_cost(mut self, from: &str, to: &str, cost: u32) -> Self {
        self.connections
            .push((from.to_owned(), to.to_owned(), false, cost));
        self
    }

    /// As [`MeshBuilder::connect`], through a [`TcpProxy`] the test can partition or cut
    /// ([`TestMesh::proxy`]).
    pub fn connect_via_proxy(mut self, from: &str, to: &str) -> Self {
        self.connections
            .push((from.to_owned(), to.to_owned(), true, 1));
        self
    }

    /// Adjust every router's configuration (after its id and mode are set).
    pub fn config(mut self, tweak: impl Fn(&mut RouterConfig) + 'static) -> Self {
        self.tweak = Box::new(tweak);
        self
    }

    /// [`MeshBuilder::start`], then [`TestMesh::await_converged`]: for tests about traffic, not about
    /// how the mesh forms.
    pub async fn start_converged(self) -> TestMesh {
        let mesh = self.start().await;
        mesh.await_converged().await;
        mesh
    }

    pub async fn start(self) -> TestMesh {
        let mut routers = HashMap::new();
        for (id, mode) in &self.routers {
            let mut config = RouterConfig {
                container_id: id.clone(),
                router_id: Some(id.clone()),
                mode: *mode,
                ..RouterConfig::default()
            };
            (self.tweak)(&mut config);
            let mut router = Router::start(config);
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let amqp = router.listen(any, None).await.expect("binds").local_addr;
            let inter_router = match mode {
                Mode::Interior => Some(
                    router
                        .listen_inter_router(any)
                        .await
                        .expect("binds")
                        .local_addr,
                ),
                Mode::Edge => None,
            };
            routers.insert(
                id.clone(),
                MeshRouter {
                    id: id.clone(),
                    mode: *mode,
                    handle: router.handle(),
                    router: Some(router),
                    amqp,
                    inter_router,
                },
            );
        }
        let mut proxies = HashMap::new();
        for (from, to, proxied, cost) in &self.connections {
            let mut target = routers[to]
                .inter_router
                .expect("connections go to an interior");
            if *proxied {
                let proxy = TcpProxy::start(target).await;
                target = proxy.addr();
                proxies.insert((from.clone(), to.clone()), proxy);
            }
            let r = routers.get_mut(from).expect("a router of this mesh");
            let role = match r.mode {
                Mode::Interior => PeerRole::InterRouter,
                Mode::Edge => PeerRole::Edge,
            };
            if let Some(router) = r.router.as_mut() {
                router.connect_with_cost(role, target, *cost);
            }
        }
        TestMesh { routers, proxies }
    }
}

/// A running in-process mesh.
pub struct TestMesh {
    routers: HashMap<String, MeshRouter>,
    proxies: HashMap<(String, String), TcpProxy>,
}

impl TestMesh {
    /// The proxy of a connection made with [`MeshBuilder::connect_via_proxy`].
    pub fn proxy(&self, from: &str, to: &str) -> &TcpProxy {
        &self.proxies[&(from.to_owned(), to.to_owned())]
    }

    pub fn router(&self, id: &str) -> &MeshRouter {
        &self.routers[id]
    }

    /// Where clients of router `id` connect.
    pub fn amqp(&self, id: &str) -> SocketAddr {
        self.routers[id].amqp
    }

    pub fn handle(&self, id: &str) -> RouterHandle {
        self.routers[id].handle.clone()
    }

    /// Router `id` keeps a connection to the route container (broker) `name` at `addr`.
    pub fn connect_route_container(&mut self, id: &str, name: &str, addr: SocketAddr) {
        if let Some(router) = self.routers.get_mut(id).and_then(|r| r.router.as_mut()) {
            router.connect_route_container(name.to_owned(), addr);
        }
    }

    /// Stop router `id` at once: its connections close, as when the process dies.
    pub async fn kill(&mut self, id: &str) {
        if let Some(router) = self.routers.get_mut(id).and_then(|r| r.router.take()) {
            router.shutdown(Duration::ZERO).await;
        }
    }

    /// Wait (up to 10 s) until router `id` has routes to `n` other interiors.
    pub async fn await_routes(&self, id: &str, n: usize) {
        self.await_mesh(id, |m| m.routes.len() == n, &format!("{n} routes"))
            .await;
    }

    /// Wait (up to 10 s) until router `id` knows a consumer of `address` elsewhere in the mesh (or, on an edge,
    /// until its uplink is up).
    pub async fn await_destination(&self, id: &str, address: &str) {
        self.await_mesh(
            id,
            |m| {
                m.addresses
                    .iter()
                    .any(|a| a.address == address && !a.destinations.is_empty())
            },
            &format!("a destination for {address}"),
        )
        .await;
    }

    /// Wait (up to 10 s) until router `id` knows exactly `n` destinations of `address` (routers with consumers).
    pub async fn await_destinations(&self, id: &str, address: &str, n: usize) {
        self.await_mesh(
            id,
            |m| {
                m.addresses
                    .iter()
                    .any(|a| a.address == address && a.destinations.len() == n)
            },
            &format!("{n} destinations for {address}"),
        )
        .await;
    }

    /// Wait (up to 10 s) until router `id` knows no consumer of `address` elsewhere in the mesh any more.
    pub async fn await_withdrawn(&self, id: &str, address: &str) {
        self.await_mesh(
            id,
            |m| {
                !m.addresses
                    .iter()
                    .any(|a| a.address == address && !a.destinations.is_empty())
            },
            &format!("{address} withdrawn"),
        )
        .await;
    }

    /// Wait (up to 10 s each) until the mesh has formed: every running interior has a route to every other
    /// one, and every running edge an adjacent interior.
    pub async fn await_converged(&self) {
        let mut running: Vec<&MeshRouter> = self
            .routers
            .values()
            .filter(|r| r.router.is_some())
            .collect();
        running.sort_by(|a, b| a.id.cmp(&b.id));
        let interiors = running.iter().filter(|r| r.mode == Mode::Interior).count();
        for r in running {
            match r.mode {
                Mode::Interior => self.await_routes(&r.id, interiors - 1).await,
                Mode::Edge => {
                    self.await_mesh(
                        &r.id,
                        |m| m.neighbours.iter().any(|n| n.adjacent),
                        "an adjacent interior",
                    )
                    .await
                }
            }
        }
    }

    /// Install `rule` on every running router (as an operator does on each router of a mesh).
    pub async fn set_address(&self, rule: shoal_router::AddressRule) {
        let mut ids: Vec<&String> = self.routers.keys().collect();
        ids.sort();
        for id in ids {
            if self.routers[id].router.is_some() {
                self.handle(id)
                    .set_address(rule.clone())
                    .await
                    .expect("the router takes the address rule");
            }
        }
    }

    /// Wait (up to 10 s) until `check` holds for router `id`'s view of the mesh.
    pub async fn await_mesh(
        &self,
        id: &str,
        check: impl Fn(&shoal_router::core::MeshSnapshot) -> bool,
        what: &str,
    ) {
        let handle = self.handle(id);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(m) = handle.mesh().await {
                if check(&m) {
                    return;
                }
                if std::time::Instant::now() > deadline {
                    panic!("router {id}: no {what} within 10 s; it sees {m:#?}");
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop every router.
    pub async fn shutdown(mut self) {
        let ids: Vec<String> = self.routers.keys().cloned().collect();
        for id in ids {
            self.kill(&id).await;
        }
    }
}
