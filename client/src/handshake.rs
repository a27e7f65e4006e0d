//! Opening a connection up to a usable session: TCP, protocol headers, SASL, `open`, `begin`.
//!
//! Public so that the load tool can run the same handshake and then drive the socket with its
//! own lean engine.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use shoal_amqp::{
    check_frame, encode_frame, encode_sasl_frame, parse_amqp_frame, parse_sasl_frame, Begin, Open,
    Performative, SaslFrame, SaslInit, Symbol, AMQP_HEADER, MIN_MAX_FRAME_SIZE, SASL_HEADER,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ClientError, Result};
use crate::options::{ConnectOptions, Sasl};

/// A connection whose `open` and `begin` (channel 0) were exchanged.
#[derive(Debug)]
pub struct Established {
    pub stream: TcpStream,
    /// Bytes read past the peer's `begin` (frames that followed it at once, e.g. a `flow`).
    pub rbuf: BytesMut,
    pub remote_open: Open,
    pub remote_begin: Begin,
}

/// Reads until `rbuf` holds one whole frame and splits it off. EOF is `ConnectionClosed`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Bytes> {
    loop {
        match check_frame(rbuf, max_frame_size) {
            Ok(Some(len)) => return Ok(rbuf.split_to(len).freeze()),
            Ok(None) => {}
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        rbuf.reserve(4096);
        if reader.read_buf(rbuf).await? == 0 {
            return Err(ClientError::ConnectionClosed);
        }
    }
}

/// Reads the peer's 8-byte protocol header and checks it is `expected`.
pub async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    expected: [u8; 8],
) -> Result<()> {
    while rbuf.len() < 8 {
        if reader.read_buf(rbuf).await? == 0 {
            return Err(ClientError::ConnectionClosed);
        }
    }
    let header = rbuf.split_to(8);
    if header[..] != expected {
        return Err(ClientError::Protocol(format!(
            "peer answered with protocol header {:?}",
            &header[..]
        )));
    }
    Ok(())
}

/// Connects to `addr` and runs the whole handshake within `opts.connect_timeout`; `begin` is
/// our `begin` for channel 0 (its windows are the caller's business).
pub async fn establish(
    addr: SocketAddr,
    opts: &ConnectOptions,
    begin: Begin,
) -> Result<Established> {
    tokio::time::timeout(opts.connect_timeout, establish_inner(addr, opts, begin))
        .await
        .map_err(|_| ClientError::Timeout("connecting"))?
}

async fn establish_inner(
    addr: SocketAddr,
    opts: &ConnectOptions,
    begin: Begin,
) -> Result<Established> {
    let mut stream = TcpStream::connect(addr).await?;
    // Small frames (flows, dispositions) must not wait for Nagle.
    stream.set_nodelay(true)?;
    let mut rbuf = BytesMut::with_capacity(8192);
    if opts.sasl != Sasl::None {
        sasl(&mut stream, &mut rbuf, opts).await?;
    }
    let mut out = BytesMut::new();
    out.extend_from_slice(&AMQP_HEADER);
    let open = Open {
        container_id: opts.container_id.clone(),
        hostname: opts.hostname.clone(),
        max_frame_size: opts.max_frame_size.max(MIN_MAX_FRAME_SIZE),
        channel_max: 0,
        idle_time_out: opts
            .idle_timeout
            .map(|d| d.as_millis().min(u32::MAX as u128) as u32),
        ..Open::default()
    };
    // Pipelined: the spec allows open and begin before the peer's header arrives.
    encode_frame(&mut out, 0, &Performative::Open(open), &[]);
    encode_frame(&mut out, 0, &Performative::Begin(begin), &[]);
    stream.write_all(&out).await?;
    read_header(&mut stream, &mut rbuf, AMQP_HEADER).await?;
    let max = opts.max_frame_size.max(MIN_MAX_FRAME_SIZE);
    let mut remote_open = None;
    loop {
        let frame = read_frame(&mut stream, &mut rbuf, max).await?;
        let frame = parse_amqp_frame(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match frame.performative {
            None => {}
            Some(Performative::Open(o)) if remote_open.is_none() => {
                if o.max_frame_size < MIN_MAX_FRAME_SIZE {
                    return Err(ClientError::Protocol(format!(
                        "peer max-frame-size {} below 512",
                        o.max_frame_size
                    )));
                }
                remote_open = Some(o);
            }
            Some(Performative::Close(c)) => {
                return Err(ClientError::remote_or(
                    c.error,
                    ClientError::ConnectionClosed,
                ))
            }
            Some(Performative::Begin(b)) if remote_open.is_some() => {
                if b.remote_channel != Some(0) || frame.channel != 0 {
                    return Err(ClientError::Protocol("begin does not answer ours".into()));
                }
                return Ok(Established {
                    stream,
                    rbuf,
                    remote_open: remote_open.unwrap_or_default(),
                    remote_begin: b,
                });
            }
            Some(Performative::End(e)) => {
                return Err(ClientError::remote_or(
                    e.error,
                    ClientError::ConnectionClosed,
                ))
            }
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "unexpected {} during the handshake",
                    other.name()
                )))
            }
        }
    }
}

async fn sasl(stream: &mut TcpStream, rbuf: &mut BytesMut, opts: &ConnectOptions) -> Result<()> {
    stream.write_all(&SASL_HEADER).await?;
    read_header(stream, rbuf, SASL_HEADER).await?;
    let (wanted, response) = match &opts.sasl {
        Sasl::None => return Ok(()),
        Sasl::Anonymous => ("ANONYMOUS", None),
        Sasl::Plain { user, password } => {
            // authzid (empty) NUL authcid NUL password
            let mut r = Vec::with_capacity(user.len() + password.len() + 2);
            r.push(0);
            r.extend_from_slice(user.as_bytes());
            r.push(0);
            r.extend_from_slice(password.as_bytes());
            ("PLAIN", Some(Bytes::from(r)))
        }
    };
    let frame = read_frame(stream, rbuf, MIN_MAX_FRAME_SIZE.max(64 * 1024)).await?;
    let offered = match parse_sasl_frame(frame) {
        Ok(SaslFrame::Mechanisms(m)) => m.mechanisms,
        Ok(other) => {
            return Err(ClientError::Protocol(format!(
                "expected sasl-mechanisms, got {other:?}"
            )))
        }
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    };
    if !offered.iter().any(|m| m.as_str() == wanted) {
        return Err(ClientError::SaslMechanism {
            wanted: wanted.into(),
            offered: offered.iter().map(|m| m.as_str().to_owned()).collect(),
        });
    }
    let mut out = BytesMut::new();
    let init = SaslInit {
        mechanism: Symbol::from(wanted),
        initial_response: response,
        hostname: opts.hostname.clone(),
    };
    encode_sasl_frame(&mut out, &SaslFrame::Init(init));
    stream.write_all(&out).await?;
    let frame = read_frame(stream, rbuf, MIN_MAX_FRAME_SIZE.max(64 * 1024)).await?;
    match parse_sasl_frame(frame) {
        Ok(SaslFrame::Outcome(o)) if o.code == shoal_amqp::SaslCode::Ok => {}
        Ok(SaslFrame::Outcome(o)) => return Err(ClientError::Sasl(o.code)),
        Ok(SaslFrame::Challenge(_)) => {
            return Err(ClientError::Protocol(
                "SASL challenges are not supported".into(),
            ))
        }
        Ok(other) => {
            return Err(ClientError::Protocol(format!(
                "expected sasl-outcome, got {other:?}"
            )))
        }
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    }
    // The AMQP header follows, written by the caller together with open and begin.
    Ok(())
}
