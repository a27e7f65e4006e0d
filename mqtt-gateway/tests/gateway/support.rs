//! A tiny MQTT client on the shoal-mqtt codec, and a router + gateway + registry to test against.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_client::{ConnectOptions, Connection};
use shoal_mqtt::{
    Connect, MqttStr, Packet, Properties, PubResp, Publish, QoS, SubAck, Subscribe,
    SubscriptionOptions, Version, Will,
};
use shoal_mqtt_gateway::{Gateway, GatewayConfig};
use shoal_registry::{Credential, Device, Registry, RegistryConfig, Tenant};
use shoal_router::{Router, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a packet or message before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Env {
    /// Kept so the core runs for the test's lifetime.
    _router: Router,
    pub amqp: SocketAddr,
    pub gateway: Gateway,
    pub mqtt: SocketAddr,
}

/// Tenant `acme` with devices `d1` (password `s3cret`), `off` (disabled), `gw`, and `child` and `child2`
/// (served via `gw`).
pub fn registry() -> Registry {
    let reg = Registry::in_memory(RegistryConfig {
        bcrypt_cost: 4,
        ..RegistryConfig::default()
    });
    reg.create_tenant(Some("acme"), Tenant::default()).unwrap();
    let devices = [
        ("d1", true, vec![]),
        ("off", false, vec![]),
        ("gw", true, vec![]),
        ("child", true, vec!["gw".to_owned()]),
        ("child2", true, vec!["gw".to_owned()]),
    ];
    for (id, enabled, via) in devices {
        let device = Device {
            enabled,
            via,
            ..Device::default()
        };
        reg.create_device("acme", Some(id), device).unwrap();
        let creds: Vec<Credential> = serde_json::from_value(serde_json::json!([
            {"type": "hashed-password", "auth-id": id, "secrets": [{"pwd-plain": "s3cret"}]}
        ]))
        .unwrap();
        reg.set_credentials("acme", id, creds, None).unwrap();
    }
    reg
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}, true).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut GatewayConfig), with_registry: bool) -> Env {
        let mut router = Router::start(RouterConfig::default());
        let amqp = router
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)), None)
            .await
            .unwrap()
            .local_addr;
        let mut config = GatewayConfig::default();
        tweak(&mut config);
        let gateway = Gateway::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            config,
            router.handle(),
            with_registry.then(registry),
        )
        .await
        .unwrap();
        let mqtt = gateway.local_addr();
        Env {
            _router: router,
            amqp,
            gateway,
            mqtt,
        }
    }

    pub async fn amqp(&self) -> Connection {
        Connection::connect(self.amqp, ConnectOptions::default())
            .await
            .unwrap()
    }
}

pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    pub version: Version,
    next_id: u16,
}

pub fn connect_packet(version: Version, client_id: &str, user: Option<(&str, &str)>) -> Connect {
    Connect {
        version,
        clean_start: true,
        keep_alive: 60,
        client_id: MqttStr::new(client_id).unwrap(),
        will: None,
        username: user.map(|(u, _)| MqttStr::new(u).unwrap()),
        password: user.map(|(_, p)| Bytes::copy_from_slice(p.as_bytes())),
        properties: Properties::default(),
    }
}

pub fn will(topic: &str, payload: &'static [u8]) -> Will {
    Will {
        topic: MqttStr::new(topic).unwrap(),
        payload: Bytes::from_static(payload),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    }
}

impl Client {
    pub async fn open(addr: SocketAddr, version: Version) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            version,
            next_id: 0,
        }
    }

    /// Connect and expect success.
    pub async fn connect(
        addr: SocketAddr,
        version: Version,
        client_id: &str,
        user: Option<(&str, &str)>,
    ) -> Client {
        let (c, code) = Client::try_connect(addr, connect_packet(version, client_id, user)).await;
        assert_eq!(code, Some(0), "CONNACK code");
        c
    }

    /// Send `connect`; the CONNACK code, or `None` if the gateway closed without one.
    pub async fn try_connect(addr: SocketAddr, connect: Connect) -> (Client, Option<u8>) {
        let mut c = Client::open(addr, connect.version).await;
        c.send(&Packet::Connect(Box::new(connect))).await;
        let code = match c.recv().await {
            Some(Packet::ConnAck(a)) => Some(a.code),
            None => None,
            Some(other) => panic!("expected CONNACK, got {other:?}"),
        };
        (c, code)
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out).unwrap();
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet; `None` when the gateway closed the connection. Fails the test after [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.recv_inner())
            .await
            .expect("a packet from the gateway in time")
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            if let Some(len) = shoal_mqtt::check(&self.buf, usize::MAX).unwrap() {
                let packet = self.buf.split_to(len).freeze();
                return Some(shoal_mqtt::parse(packet, self.version).unwrap());
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub fn next_id(&mut self) -> u16 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS) -> u16 {
        let mut p = Publish::new(
            MqttStr::new(topic).unwrap(),
            Bytes::copy_from_slice(payload),
        );
        p.qos = qos;
        if qos != QoS::AtMostOnce {
            p.packet_id = self.next_id();
        }
        let id = p.packet_id;
        self.send(&Packet::Publish(p)).await;
        id
    }

    pub async fn publish_retained(&mut self, topic: &str, payload: &[u8]) {
        let mut p = Publish::new(
            MqttStr::new(topic).unwrap(),
            Bytes::copy_from_slice(payload),
        );
        p.retain = true;
        self.send(&Packet::Publish(p)).await;
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        let id = self.next_id();
        let s = Subscribe {
            packet_id: id,
            properties: Properties::default(),
            filters: vec![(MqttStr::new(filter).unwrap(), SubscriptionOptions::new(qos))],
        };
        self.send(&Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => {
                assert_eq!(a.packet_id, id);
                a
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Expect a PUBLISH (and PUBACK it at QoS 1 when `ack`).
    pub async fn expect_publish(&mut self, ack: bool) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => {
                if ack && p.qos == QoS::AtLeastOnce {
                    self.puback(p.packet_id).await;
                }
                p
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    pub async fn puback(&mut self, packet_id: u16) {
        let ack = PubResp {
            packet_id,
            ..PubResp::default()
        };
        self.send(&Packet::PubAck(ack)).await;
    }

    pub async fn ping(&mut self) {
        self.send(&Packet::PingReq).await;
        match self.recv().await {
            Some(Packet::PingResp) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }
}

impl Client {
    /// Expect a successful PUBACK.
    pub async fn expect_puback(&mut self) {
        match self.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.reason, 0, "PUBACK reason"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}
