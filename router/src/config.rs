//! Router configuration: address rules and limits.

use std::time::Duration;

/// How deliveries to an address are distributed among its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Anycast to the consumer with the fewest unsettled deliveries.
    Balanced,
    /// Anycast to the nearest consumer (on one router: round robin among local consumers).
    Closest,
    /// One copy to every consumer.
    Multicast,
}

/// Which address strings a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Matcher {
    /// Exactly this address.
    Exact(String),
    /// This address and every address below it (`p`, `p/...`, `p....`).
    Prefix(String),
    /// A pattern: segments separated by `/` or `.`; `*` matches one segment, `#` zero or more.
    Pattern(String),
}

/// One declared address: a named rule (the manifest's `namespace/name`) mapping addresses to a distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRule {
    pub name: String,
    pub matcher: Matcher,
    pub distribution: Distribution,
    /// Link-route the address to this route container (a broker): each client link on it is paired with a link
    /// the router opens on the broker connection, and everything on one is passed to the other.
    pub link_route: Option<String>,
}

/// Limits and defaults of one router. `Default` is what `shoal standalone` starts with.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Our container id in `open`.
    pub container_id: String,
    /// Credit a sender link holds at most; also the per-receiver backlog bound for presettled multicast.
    pub link_capacity: u32,
    /// Distribution of addresses no rule covers.
    pub default_distribution: Distribution,
    /// Connections served at once; more are refused at accept.
    pub max_connections: usize,
    /// Protocol header, SASL and `open` must complete within this.
    pub handshake_timeout: Duration,
    /// Our idle time-out, advertised in `open`: a peer silent this long is closed.
    pub idle_timeout: Duration,
    /// The largest frame we accept (advertised in `open`).
    pub max_frame_size: u32,
    /// Sessions per connection.
    pub channel_max: u16,
    /// Links per session.
    pub handle_max: u32,
    /// The largest message we accept (advertised on attach).
    pub max_message_size: u64,
    /// Bytes of one connection's messages held in the router before it stops reading that socket.
    pub connection_budget: usize,
    /// Session incoming window we grant, in frames.
    pub session_window: u32,
    /// Who may connect.
    pub auth: AuthConfig,
    /// Our name in the mesh (`None`: the container id). Must be a valid mesh router id when the
    /// router joins a mesh.
    pub router_id: Option<String>,
    /// Interior (takes part in routing) or edge (hangs off interiors).
    pub mode: shoal_mesh::Mode,
    /// Timings of the mesh protocol (hello, dead interval...); its `mode` is ignored (see `mode`).
    pub mesh: shoal_mesh::Config,
}

impl RouterConfig {
    /// The id this router goes by in the mesh.
    pub fn router_id(&self) -> &str {
        self.router_id.as_deref().unwrap_or(&self.container_id)
    }
}

/// SASL: who may connect.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Offer and accept ANONYMOUS (and clients that skip SASL altogether).
    pub allow_anonymous: bool,
    /// Users for PLAIN: name -> password.
    pub users: std::collections::HashMap<String, String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            container_id: "shoal".into(),
            link_capacity: 250,
            default_distribution: Distribution::Balanced,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_frame_size: 65_536,
            channel_max: 255,
            handle_max: 1023,
            max_message_size: 64 * 1024 * 1024,
            connection_budget: 32 * 1024 * 1024,
            session_window: 8192,
            auth: AuthConfig {
                allow_anonymous: true,
                users: Default::default(),
            },
            router_id: None,
            mode: shoal_mesh::Mode::Interior,
            mesh: shoal_mesh::Config::default(),
        }
    }
}
