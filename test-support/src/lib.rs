//! What Shoal's tests share: an in-process `shoal standalone` on ephemeral ports, a bare [`TestRouter`] for limits
//! the standalone options do not expose, and `assert_eventually!`.

use std::net::SocketAddr;
use std::time::Duration;

pub use shoal::standalone::{Options, Standalone};
pub use shoal_router::{Router, RouterConfig, TlsAcceptor};

/// A standalone Shoal on 127.0.0.1 ephemeral ports with its own temporary data dir.
pub struct TestShoal {
    pub shoal: Standalone,
    _dir: tempfile::TempDir,
}

impl TestShoal {
    pub async fn start() -> TestShoal {
        Self::start_with(|_| {}).await
    }

    /// Start with options adjusted by `tweak` (listen addresses default to port 0).
    pub async fn start_with(tweak: impl FnOnce(&mut Options)) -> TestShoal {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let mut opts = Options::ephemeral(dir.path().to_path_buf());
        opts.drain_grace = Duration::from_secs(2);
        // Tests drop their Shoal without an orderly shutdown: no RocksDB left open at process exit.
        opts.broker_in_memory = true;
        tweak(&mut opts);
        let shoal = Standalone::start(opts).await.expect("shoal starts");
        TestShoal { shoal, _dir: dir }
    }

    pub fn amqp(&self) -> SocketAddr {
        self.shoal.amqp
    }

    pub fn http(&self) -> SocketAddr {
        self.shoal.http
    }

    pub fn router(&self) -> shoal_router::RouterHandle {
        self.shoal.router()
    }

    /// One address's counters right now.
    pub async fn address_stats(
        &self,
        address: &str,
    ) -> Option<shoal_router::core::metrics::AddressSnapshot> {
        let snap = self.router().snapshot().await.ok()?;
        snap.addresses.into_iter().find(|a| a.address == address)
    }

    pub async fn shutdown(self) {
        self.shoal.shutdown().await
    }
}

/// A bare router (no admin API, no data dir) on a 127.0.0.1 ephemeral port, with any [`RouterConfig`]: for
/// the limits (handshake deadline, connection limit, idle time-out, byte budget...) `shoal standalone` does not
/// expose as options.
pub struct TestRouter {
    router: Router,
    addr: SocketAddr,
}

impl TestRouter {
    /// A router with the default configuration.
    pub async fn start() -> TestRouter {
        Self::start_with(|_| {}).await
    }

    /// A router with its configuration adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut RouterConfig)) -> TestRouter {
        Self::start_inner(tweak, None).await
    }

    /// A router serving AMQP over TLS (amqps) with `tls`, configuration adjusted by `tweak`.
    pub async fn start_tls(tls: TlsAcceptor, tweak: impl FnOnce(&mut RouterConfig)) -> TestRouter {
        Self::start_inner(tweak, Some(tls)).await
    }

    async fn start_inner(
        tweak: impl FnOnce(&mut RouterConfig),
        tls: Option<TlsAcceptor>,
    ) -> TestRouter {
        let mut config = RouterConfig::default();
        tweak(&mut config);
        let mut router = Router::start(config);
        let bound = router
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)), tls)
            .await
            .expect("the router binds an ephemeral port");
        TestRouter {
            router,
            addr: bound.local_addr,
        }
    }

    /// Where the router listens.
    /// Link-route addresses whose rules name `name` to the route container (broker) at `addr`.
    pub fn connect_route_container(&mut self, name: &str, addr: SocketAddr) {
        self.router.connect_route_container(name.to_owned(), addr);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> shoal_router::RouterHandle {
        self.router.handle()
    }

    /// One address's counters right now.
    pub async fn address_stats(
        &self,
        address: &str,
    ) -> Option<shoal_router::core::metrics::AddressSnapshot> {
        let snap = self.handle().snapshot().await.ok()?;
        snap.addresses.into_iter().find(|a| a.address == address)
    }

    /// Close every connection (`amqp:connection:forced`) and stop, without waiting for unsettled deliveries.
    pub async fn shutdown(self) {
        self.router.shutdown(Duration::ZERO).await
    }
}

/// Retry an async condition until it holds or a deadline passes (default 5 s), then fail with its message.
/// For state that changes asynchronously with no event to await (counters, gauges).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = ::std::time::Instant::now() + ::std::time::Duration::from_secs(5);
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() > deadline {
                panic!($($msg)+);
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(10)).await;
        }
    }};
}

pub mod mesh;
pub mod proxy;
