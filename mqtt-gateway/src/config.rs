//! The gateway's limits and switches.

use std::time::Duration;

/// How the gateway behaves; every limit that a peer could otherwise grow is here.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A new connection must complete its CONNECT within this time.
    pub connect_timeout: Duration,
    /// Clients without a username (or with one while no registry is configured) may connect. They may use
    /// plain topics only: the Hono topics need a device identity.
    pub allow_anonymous: bool,
    /// The largest packet accepted from (and announced to) a client.
    pub max_packet_size: u32,
    /// QoS 1/2 PUBLISHes a client may have unanswered at once (MQTT 5 receive maximum). While the window is
    /// full the gateway stops reading that socket.
    pub receive_maximum: u16,
    /// Deliveries the gateway may have on their way to a client per subscription (the AMQP credit of each
    /// subscription link); unacknowledged QoS 1 PUBLISHes are further bounded by the client's receive maximum.
    pub subscription_credit: u32,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Bytes waiting for the client's socket above which the gateway stops taking deliveries and reading.
    pub write_high_water: usize,
    /// Bytes of a connection's messages on their way to receivers above which its socket is not read.
    pub byte_budget: usize,
    /// Retained messages kept, and their total payload bytes.
    pub max_retained: usize,
    pub max_retained_bytes: usize,
    /// Commands awaiting a device's response per connection (the request-id table); the oldest is forgotten
    /// when it is full.
    pub max_pending_commands: usize,
    /// How long a client's PUBLISH may wait for its link's credit (an event whose address has no queue and
    /// no consumer) while the gateway does not read that socket. Then it is not passed on: MQTT 5 gets
    /// PUBACK 0x10 (no matching subscribers), 3.1.1 no PUBACK (as for telemetry nobody takes), and the
    /// gateway reads the socket again (PINGREQs included).
    pub credit_wait: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(10),
            allow_anonymous: true,
            max_packet_size: 1 << 20,
            receive_maximum: 100,
            subscription_credit: 100,
            max_subscriptions: 100,
            write_high_water: 256 * 1024,
            byte_budget: 4 << 20,
            max_retained: 10_000,
            max_retained_bytes: 64 << 20,
            max_pending_commands: 256,
            credit_wait: Duration::from_secs(10),
        }
    }
}
