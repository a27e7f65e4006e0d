//! [`RawConnection`]: a socket that speaks frames and nothing else, for tests that break the
//! protocol on purpose (transfers without credit, attaches on a used handle, bad frames...).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::{
    encode_frame, parse_amqp_frame, AmqpFrame, Begin, Open, Performative, AMQP_HEADER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ClientError, Result};
use crate::handshake::{read_frame, read_header};

/// How long `next_frame` waits before giving up (a test that expects a frame must not hang).
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A plain socket with frame helpers. Nothing is checked or answered automatically.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    rbuf: BytesMut,
    /// The largest frame `next_frame` accepts.
    pub max_frame_size: u32,
    /// How long `next_frame` waits.
    pub wait: Duration,
}

impl RawConnection {
    pub(crate) async fn connect(addr: SocketAddr, header: bool) -> Result<RawConnection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut raw = RawConnection {
            stream,
            rbuf: BytesMut::with_capacity(8192),
            max_frame_size: 16 * 1024 * 1024,
            wait: DEFAULT_WAIT,
        };
        if header {
            raw.send_bytes(&AMQP_HEADER).await?;
            let exchange = read_header(&mut raw.stream, &mut raw.rbuf, AMQP_HEADER);
            tokio::time::timeout(DEFAULT_WAIT, exchange)
                .await
                .map_err(|_| ClientError::Timeout("protocol header"))??;
        }
        Ok(raw)
    }

    /// Writes bytes as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Encodes and writes one frame.
    pub async fn send_frame(
        &mut self,
        channel: u16,
        p: &Performative,
        payload: &[u8],
    ) -> Result<()> {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, channel, p, payload);
        self.send_bytes(&buf).await
    }

    /// The next frame (heartbeats included), or `None` if the peer closed the socket, sent
    /// something that is not a valid frame, or sent nothing within `wait`.
    pub async fn next_frame(&mut self) -> Option<AmqpFrame> {
        let read = read_frame(&mut self.stream, &mut self.rbuf, self.max_frame_size);
        let frame = tokio::time::timeout(self.wait, read).await.ok()?.ok()?;
        parse_amqp_frame(frame).ok()
    }

    /// The next frame with a performative (heartbeats skipped).
    pub async fn next_performative(&mut self) -> Option<(u16, Performative)> {
        loop {
            let frame = self.next_frame().await?;
            if let Some(p) = frame.performative {
                return Some((frame.channel, p));
            }
        }
    }

    /// Reads exactly `n` raw bytes (e.g. a protocol header the peer answers with); `None` on
    /// EOF or after `wait`.
    pub async fn read_bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let fill = async {
            while self.rbuf.len() < n {
                if self.stream.read_buf(&mut self.rbuf).await.ok()? == 0 {
                    return None;
                }
            }
            Some(self.rbuf.split_to(n).to_vec())
        };
        tokio::time::timeout(self.wait, fill).await.ok()?
    }

    /// Waits for the peer to close the socket (reading and discarding whatever it sends);
    /// `true` if it did within `wait`.
    pub async fn wait_eof(&mut self) -> bool {
        let eof = async {
            loop {
                self.rbuf.clear();
                match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(self.wait, eof).await.is_ok()
    }

    /// Sends `open` and returns the peer's (skipping heartbeats).
    pub async fn open(&mut self, container_id: &str) -> Result<Open> {
        let open = Open {
            container_id: container_id.into(),
            ..Open::default()
        };
        self.send_frame(0, &Performative::Open(open), &[]).await?;
        match self.next_performative().await {
            Some((_, Performative::Open(o))) => Ok(o),
            other => Err(ClientError::Protocol(format!(
                "expected open, got {other:?}"
            ))),
        }
    }

    /// Sends a `begin` on `channel` (windows of 1M frames) and returns the peer's answer.
    pub async fn begin(&mut self, channel: u16) -> Result<Begin> {
        let begin = Begin {
            next_outgoing_id: 0,
            incoming_window: 1 << 20,
            outgoing_window: 1 << 20,
            ..Begin::default()
        };
        self.send_frame(channel, &Performative::Begin(begin), &[])
            .await?;
        match self.next_performative().await {
            Some((_, Performative::Begin(b))) => Ok(b),
            other => Err(ClientError::Protocol(format!(
                "expected begin, got {other:?}"
            ))),
        }
    }

    /// The socket, for anything else.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
