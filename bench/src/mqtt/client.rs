//! One MQTT connection of the load tool: connect, then publish, subscribe, or just stay connected.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use shoal_mqtt::{
    check, encode_pingreq, encode_pub_resp, parse, Connect, MqttStr, Packet, Properties,
    PubRespKind, Publish, QoS, Subscribe, SubscriptionOptions, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::stats::{histogram, now_ns, Stats, Window};
use crate::Target;

/// Bytes of the send timestamp at the start of each payload.
pub const STAMP_LEN: usize = 8;

/// Larger than anything the tool sends or expects.
const MAX_PACKET: usize = 1 << 24;
/// Seconds of keep-alive the clients ask for (idle clients ping at half of it).
const KEEP_ALIVE: u16 = 60;
/// How long a connection may take, TCP to CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes are batched up to this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

pub struct Client {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    rbuf: BytesMut,
    wbuf: BytesMut,
    version: Version,
}

/// What a publisher sends.
pub struct PublishJob {
    pub topic: String,
    pub qos: QoS,
    pub size: usize,
    pub inflight: u16,
    /// Messages per second for this publisher (as fast as possible when `None`).
    pub rate: Option<f64>,
    pub window: Window,
}

impl Client {
    /// TCP (from the client's source address, if any), CONNECT, and a successful CONNACK, within
    /// [`CONNECT_TIMEOUT`] (a server at its connection limit may leave a client waiting).
    pub async fn connect(target: &Target, i: usize, client_id: &str) -> Result<Client> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_now(target, i, client_id))
            .await
            .with_context(|| format!("no CONNACK within {CONNECT_TIMEOUT:?}"))?
    }

    async fn connect_now(target: &Target, i: usize, client_id: &str) -> Result<Client> {
        let stream = match target.source(i) {
            None => TcpStream::connect(target.addr).await?,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind((ip, 0).into())?;
                socket.connect(target.addr).await?
            }
        };
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let mut c = Client {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(WRITE_BATCH),
            version: target.version,
        };
        let (username, password) = match target.credentials(i) {
            Some((u, p)) => (Some(MqttStr::new(&u)?), Some(Bytes::from(p))),
            None => (None, None),
        };
        let connect = Connect {
            version: target.version,
            clean_start: true,
            keep_alive: KEEP_ALIVE,
            client_id: MqttStr::new(client_id)?,
            will: None,
            username,
            password,
            properties: Properties::default(),
        };
        Packet::Connect(Box::new(connect)).encode(c.version, &mut c.wbuf)?;
        c.flush().await?;
        match c.next_packet().await? {
            Packet::ConnAck(ack) if ack.code == 0 => Ok(c),
            Packet::ConnAck(ack) => bail!("CONNACK refused with code {:#04x}", ack.code),
            other => bail!("expected CONNACK, got packet type {}", other.packet_type()),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.writer.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The next whole packet from the socket.
    async fn next_packet(&mut self) -> Result<Packet> {
        loop {
            if let Some(p) = self.try_packet()? {
                return Ok(p);
            }
            if self.reader.read_buf(&mut self.rbuf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    /// A packet already buffered, if any.
    fn try_packet(&mut self) -> Result<Option<Packet>> {
        match check(&self.rbuf, MAX_PACKET)? {
            Some(len) => {
                let bytes = self.rbuf.split_to(len).freeze();
                Ok(Some(parse(bytes, self.version)?))
            }
            None => Ok(None),
        }
    }

    /// SUBSCRIBE to `filter` and wait for a granted SUBACK.
    pub async fn subscribe(mut self, filter: &str, qos: QoS) -> Result<Subscriber> {
        let sub = Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![(MqttStr::new(filter)?, SubscriptionOptions::new(qos))],
        };
        Packet::Subscribe(sub).encode(self.version, &mut self.wbuf)?;
        self.flush().await?;
        match self.next_packet().await? {
            Packet::SubAck(ack) if ack.reason_codes.first().is_some_and(|c| *c < 0x80) => {
                Ok(Subscriber { client: self })
            }
            Packet::SubAck(ack) => bail!("SUBACK refused {filter}: {:?}", ack.reason_codes),
            other => bail!("expected SUBACK, got packet type {}", other.packet_type()),
        }
    }

    /// Publish until `stop`, counting what falls in the window.
    pub async fn publish(
        mut self,
        job: PublishJob,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Stats> {
        let mut stats = Stats::default();
        let template = Publish {
            qos: job.qos,
            packet_id: if job.qos == QoS::AtMostOnce { 0 } else { 1 },
            ..Publish::new(MqttStr::new(&job.topic)?, Bytes::from(vec![0x5a; job.size]))
        };
        // Sent time of each packet id in flight (QoS 1), to count PUBACKs inside the window only.
        let mut sent_at: Vec<Option<Instant>> = vec![None; 65536];
        let mut in_flight: u16 = 0;
        let mut next_id: u16 = 1;
        let started = Instant::now();
        let mut published: u64 = 0;
        loop {
            if *stop.borrow() {
                return Ok(stats);
            }
            // Fill the window (and the rate budget) with one batch of writes.
            let due = job
                .rate
                .map(|r| (started.elapsed().as_secs_f64() * r) as u64);
            while self.wbuf.len() < WRITE_BATCH
                && (job.qos == QoS::AtMostOnce || in_flight < job.inflight)
                && due.is_none_or(|d| published < d)
            {
                let mut p = template.clone();
                if job.qos != QoS::AtMostOnce {
                    while sent_at[next_id as usize].is_some() {
                        next_id = next_id.checked_add(1).unwrap_or(1);
                    }
                    p.packet_id = next_id;
                    next_id = next_id.checked_add(1).unwrap_or(1);
                    in_flight += 1;
                }
                p.encode_header(self.version, &mut self.wbuf)?;
                self.wbuf.put_u64(now_ns());
                self.wbuf.put_slice(&template.payload[STAMP_LEN..]);
                let now = Instant::now();
                if job.qos != QoS::AtMostOnce {
                    sent_at[p.packet_id as usize] = Some(now);
                }
                published += 1;
                if job.window.contains(now) {
                    stats.sent += 1;
                }
                if job.qos == QoS::AtMostOnce && self.wbuf.len() >= WRITE_BATCH / 4 {
                    break;
                }
            }
            self.flush().await?;
            let waiting_for_acks = job.qos != QoS::AtMostOnce && in_flight >= job.inflight;
            let rate_wait = due.is_some_and(|d| published >= d);
            if !waiting_for_acks && !rate_wait && job.qos == QoS::AtMostOnce {
                // QoS 0: nothing to wait for but the socket; read whatever the server sent meanwhile.
                while let Some(p) = self.try_packet()? {
                    let _ = p;
                }
                continue;
            }
            let tick = tokio::time::sleep(Duration::from_millis(if rate_wait { 1 } else { 1000 }));
            tokio::select! {
                read = self.reader.read_buf(&mut self.rbuf) => {
                    if read? == 0 {
                        bail!("the server closed the connection");
                    }
                    while let Some(p) = self.try_packet()? {
                        if let Packet::PubAck(ack) = p {
                            if let Some(at) = sent_at[ack.packet_id as usize].take() {
                                in_flight -= 1;
                                if job.window.contains(at) {
                                    if ack.reason < 0x80 && ack.reason != 0x10 {
                                        stats.accepted += 1;
                                    } else {
                                        stats.released += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                _ = tick => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Stay connected (pinging at half the keep-alive) until `stop`; true if still connected then.
    pub async fn keep_alive(mut self, mut stop: watch::Receiver<bool>) -> bool {
        let mut ping = tokio::time::interval(Duration::from_secs(u64::from(KEEP_ALIVE / 2)));
        ping.tick().await;
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    encode_pingreq(&mut self.wbuf);
                    if self.flush().await.is_err() {
                        return false;
                    }
                }
                read = self.reader.read_buf(&mut self.rbuf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return false;
                    }
                    self.rbuf.clear();
                }
                _ = stop.changed() => return true,
            }
        }
    }
}

/// A subscribed client.
pub struct Subscriber {
    client: Client,
}

impl Subscriber {
    /// Receive until `stop`: count and time what arrives inside the window, PUBACK QoS 1 messages.
    pub async fn receive(self, window: Window, mut stop: watch::Receiver<bool>) -> Result<Stats> {
        let mut c = self.client;
        let mut stats = Stats {
            latency: histogram(),
            ..Stats::default()
        };
        let stamp_of = |payload: &[u8]| -> Option<u64> {
            let stamp: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
            Some(u64::from_be_bytes(stamp))
        };
        loop {
            tokio::select! {
                read = c.reader.read_buf(&mut c.rbuf) => {
                    if read.context("reading")? == 0 {
                        bail!("the server closed the connection");
                    }
                    while let Some(p) = c.try_packet()? {
                        let Packet::Publish(p) = p else { continue };
                        let now = Instant::now();
                        if window.contains(now) {
                            stats.received += 1;
                            stats.last_received = Some(now);
                            if let Some(sent) = stamp_of(&p.payload) {
                                let _ = stats.latency.record(now_ns().saturating_sub(sent).max(1));
                            }
                        }
                        if p.qos == QoS::AtLeastOnce {
                            encode_pub_resp(&mut c.wbuf, PubRespKind::PubAck, c.version, p.packet_id, 0);
                        }
                    }
                    c.flush().await?;
                }
                _ = stop.changed() => return Ok(stats),
            }
        }
    }
}
