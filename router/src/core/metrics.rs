//! Counters the core keeps, and their Prometheus rendering.

use std::fmt::Write;

/// Per-address counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressStats {
    /// Deliveries received from senders.
    pub deliveries_in: u64,
    /// Deliveries sent to receivers (each multicast copy counts).
    pub deliveries_out: u64,
    /// Presettled deliveries dropped (no receiver, or a multicast receiver too far behind).
    pub dropped: u64,
    /// Unsettled deliveries released back to their sender.
    pub released: u64,
}

#[derive(Debug, Clone, Default)]
pub struct AddressSnapshot {
    pub address: String,
    pub distribution: &'static str,
    pub consumers: usize,
    pub producers: usize,
    pub queued: usize,
    /// Senders holding no credit right now (waiting for the router to let them send).
    pub senders_blocked: usize,
    pub stats: AddressStats,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Route containers (brokers) connected now, by name.
    pub route_containers: Vec<String>,
    pub connections: usize,
    pub links: usize,
    pub unsettled: usize,
    pub addresses: Vec<AddressSnapshot>,
    /// This router's id in the mesh and its mode (`interior` / `edge`).
    pub router_id: String,
    pub mode: String,
    /// Open inter-router and edge connections, and interiors reachable through them.
    pub mesh_neighbours: usize,
    pub mesh_routes: usize,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Snapshot {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, v: usize| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        // The router id as a label: an info metric to join on (the Prometheus convention), and on the mesh
        // gauges, so a dashboard over many routers tells them apart without relabelling.
        let id = escape(&self.router_id);
        let _ = writeln!(
            out,
            "# HELP shoal_router_info This router's mesh id and mode.\n# TYPE shoal_router_info gauge\nshoal_router_info{{router_id=\"{id}\",mode=\"{}\"}} 1",
            escape(&self.mode)
        );
        let _ = writeln!(
            out,
            "# HELP shoal_mesh_neighbours Open inter-router and edge connections.\n# TYPE shoal_mesh_neighbours gauge\nshoal_mesh_neighbours{{router_id=\"{id}\"}} {}",
            self.mesh_neighbours
        );
        let _ = writeln!(
            out,
            "# HELP shoal_mesh_routes Interior routers reachable through the mesh.\n# TYPE shoal_mesh_routes gauge\nshoal_mesh_routes{{router_id=\"{id}\"}} {}",
            self.mesh_routes
        );
        gauge(
            &mut out,
            "shoal_connections",
            "Open client connections (brokers: shoal_broker_connected).",
            self.connections,
        );
        let _ = writeln!(
            out,
            "# HELP shoal_broker_connected Connected route containers (brokers).\n# TYPE shoal_broker_connected gauge"
        );
        for name in &self.route_containers {
            let _ = writeln!(
                out,
                "shoal_broker_connected{{broker=\"{}\"}} 1",
                escape(name)
            );
        }
        gauge(&mut out, "shoal_links", "Attached links.", self.links);
        gauge(
            &mut out,
            "shoal_unsettled_deliveries",
            "Deliveries the router holds unsettled.",
            self.unsettled,
        );
        type Field = fn(&AddressSnapshot) -> u64;
        let families: [(&str, &str, &str, Field); 7] = [
            (
                "shoal_deliveries_in_total",
                "counter",
                "Deliveries received from senders.",
                |a| a.stats.deliveries_in,
            ),
            (
                "shoal_deliveries_out_total",
                "counter",
                "Deliveries sent to receivers.",
                |a| a.stats.deliveries_out,
            ),
            (
                "shoal_deliveries_dropped_total",
                "counter",
                "Presettled deliveries dropped.",
                |a| a.stats.dropped,
            ),
            (
                "shoal_deliveries_released_total",
                "counter",
                "Deliveries released to their sender.",
                |a| a.stats.released,
            ),
            (
                "shoal_senders_blocked",
                "gauge",
                "Senders holding no credit.",
                |a| a.senders_blocked as u64,
            ),
            (
                "shoal_address_consumers",
                "gauge",
                "Receivers attached.",
                |a| a.consumers as u64,
            ),
            (
                "shoal_address_queued",
                "gauge",
                "Deliveries waiting for receiver credit.",
                |a| a.queued as u64,
            ),
        ];
        for (name, kind, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for a in &self.addresses {
                let _ = writeln!(
                    out,
                    "{name}{{address=\"{}\"}} {}",
                    escape(&a.address),
                    field(a)
                );
            }
        }
        out
    }
}
