//! Protocol header negotiation and the SASL exchange, before any AMQP frame.

use bytes::BytesMut;
use shoal_amqp::{
    check_frame, parse_protocol_header, parse_sasl_frame, ProtocolId, SaslCode, SaslFrame,
    AMQP_HEADER, MIN_MAX_FRAME_SIZE, SASL_HEADER,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::sasl;
use crate::config::RouterConfig;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer closed during the handshake")]
    Eof,
    #[error("bad protocol header: {0}")]
    Header(String),
    #[error("SASL: {0}")]
    Sasl(String),
    #[error("authentication failed")]
    AuthFailed,
}

/// Read at least `n` bytes into `buf`.
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), HandshakeError> {
    while buf.len() < n {
        if r.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
    }
    Ok(())
}

async fn header<R, W>(
    r: &mut R,
    w: &mut W,
    buf: &mut BytesMut,
    supported: [u8; 8],
) -> Result<ProtocolId, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    fill(r, buf, 8).await?;
    match parse_protocol_header(&buf[..8]) {
        Ok(Some(id)) => {
            let _ = buf.split_to(8);
            Ok(id)
        }
        Ok(None) => Err(HandshakeError::Eof),
        Err(e) => {
            // The spec's answer to a header we cannot speak: our own header, then close.
            w.write_all(&supported).await?;
            w.flush().await?;
            Err(HandshakeError::Header(e.to_string()))
        }
    }
}

/// Run the handshake; returns the bytes read past it (the start of the AMQP frames).
pub async fn run<R, W>(
    r: &mut R,
    w: &mut W,
    config: &RouterConfig,
) -> Result<BytesMut, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    let sasl_required = !config.auth.allow_anonymous;
    let preferred = if sasl_required {
        SASL_HEADER
    } else {
        AMQP_HEADER
    };
    match header(r, w, &mut buf, preferred).await? {
        ProtocolId::Amqp if !sasl_required => {
            w.write_all(&AMQP_HEADER).await?;
            return Ok(buf);
        }
        ProtocolId::Amqp | ProtocolId::Tls => {
            w.write_all(&preferred).await?;
            w.flush().await?;
            return Err(HandshakeError::Header(if sasl_required {
                "this listener requires SASL".into()
            } else {
                "TLS upgrade is not offered on this listener (use the amqps listener)".into()
            }));
        }
        ProtocolId::Sasl => {}
    }
    let mut out = BytesMut::new();
    out.extend_from_slice(&SASL_HEADER);
    shoal_amqp::encode_sasl_frame(&mut out, &sasl::mechanisms(&config.auth));
    w.write_all(&out).await?;
    w.flush().await?;
    out.clear();

    // sasl-init (no mechanism we offer needs a challenge).
    let frame = loop {
        match check_frame(&buf, MIN_MAX_FRAME_SIZE.max(4096)) {
            Ok(Some(len)) => break buf.split_to(len).freeze(),
            Ok(None) => {
                let want = buf.len() + 1;
                fill(r, &mut buf, want).await?
            }
            Err(e) => return Err(HandshakeError::Sasl(e.to_string())),
        }
    };
    let init = match parse_sasl_frame(frame) {
        Ok(SaslFrame::Init(init)) => init,
        Ok(other) => {
            return Err(HandshakeError::Sasl(format!(
                "expected sasl-init, got {other:?}"
            )))
        }
        Err(e) => return Err(HandshakeError::Sasl(e.to_string())),
    };
    let result = sasl::authenticate(
        &config.auth,
        init.mechanism.as_str(),
        init.initial_response.as_ref(),
    );
    let code = match &result {
        Ok(_) => SaslCode::Ok,
        Err(code) => *code,
    };
    sasl::outcome(&mut out, code);
    w.write_all(&out).await?;
    w.flush().await?;
    match result {
        Ok(identity) => tracing::debug!(?identity, "SASL authenticated"),
        Err(_) => return Err(HandshakeError::AuthFailed),
    }
    match header(r, w, &mut buf, AMQP_HEADER).await? {
        ProtocolId::Amqp => {
            w.write_all(&AMQP_HEADER).await?;
            Ok(buf)
        }
        _ => {
            w.write_all(&AMQP_HEADER).await?;
            w.flush().await?;
            Err(HandshakeError::Header(
                "expected the AMQP header after SASL".into(),
            ))
        }
    }
}
