//! The first packet: CONNECT within the deadline, authentication, CONNACK.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use shoal_mqtt::{encode_connack, reason, Connect, Packet, Properties, Version};
use shoal_registry::{AuthError, DeviceIdentity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::persist::NotKept;
use crate::server::Shared;
use crate::tls::CertLogin;

/// An accepted CONNECT (the CONNACK is not sent yet).
pub(super) struct Hello {
    pub connect: Box<Connect>,
    pub identity: Option<DeviceIdentity>,
    pub client_id: String,
    /// The client sent an empty id and MQTT 5 must be told the one assigned.
    pub assigned: bool,
}

/// Why a CONNECT is refused; the CONNACK code depends on the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadCredentials,
    NotAuthorized,
    Unavailable,
}

impl Refusal {
    fn code(self, version: Version) -> u8 {
        match (self, version) {
            (Refusal::BadCredentials, Version::V311) => reason::V311_BAD_USER_NAME_OR_PASSWORD,
            (Refusal::BadCredentials, Version::V5) => reason::BAD_USER_NAME_OR_PASSWORD,
            (Refusal::NotAuthorized, Version::V311) => reason::V311_NOT_AUTHORIZED,
            (Refusal::NotAuthorized, Version::V5) => reason::NOT_AUTHORIZED,
            (Refusal::Unavailable, Version::V311) => reason::V311_SERVER_UNAVAILABLE,
            (Refusal::Unavailable, Version::V5) => reason::SERVER_UNAVAILABLE,
        }
    }
}

/// Reads one whole packet into `buf` (`None` at end of stream).
pub(super) async fn read_packet<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Bytes>, Error> {
    loop {
        if let Some(len) = shoal_mqtt::check(buf, max)? {
            return Ok(Some(buf.split_to(len).freeze()));
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Reads and checks the CONNECT. `Ok(None)`: the connection is refused (a CONNACK saying why was written
/// where MQTT has a code for it) or went away.
pub(super) async fn handshake<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    shared: &Shared,
    cert: Option<&CertLogin>,
) -> Result<Option<Hello>, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let max = shared.config.max_packet_size as usize;
    let first =
        tokio::time::timeout(shared.config.connect_timeout, read_packet(rd, buf, max)).await;
    let packet = match first {
        Err(_) => {
            tracing::debug!("no CONNECT within the deadline");
            return Ok(None);
        }
        Ok(r) => match r? {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let connect = match shoal_mqtt::parse(packet, Version::V311) {
        Ok(Packet::Connect(c)) => c,
        Ok(other) => {
            tracing::debug!(packet = other.packet_type(), "first packet is not CONNECT");
            return Ok(None);
        }
        Err(e) => {
            // 3.1.1 has codes for these two; answer in 3.1.1 form (a client of an unknown version reads it).
            if let Some(code) = e.connack_v311_code() {
                let mut out = BytesMut::new();
                encode_connack(&mut out, Version::V311, false, code, None)?;
                wr.write_all(&out).await?;
                wr.flush().await?;
            }
            return Err(e.into());
        }
    };
    let version = connect.version;
    let identity = match cert {
        Some(cert) => authenticate_cert(cert, shared),
        None => authenticate(&connect, shared).await,
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(refusal) => {
            tracing::debug!(?refusal, "CONNECT refused");
            let mut out = BytesMut::new();
            encode_connack(&mut out, version, false, refusal.code(version), None)?;
            wr.write_all(&out).await?;
            wr.flush().await?;
            return Ok(None);
        }
    };
    let (client_id, assigned) = if connect.client_id.is_empty() {
        // The codec already refused an empty id without clean session in 3.1.1.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        (format!("shoal-{}-{n}", std::process::id()), true)
    } else {
        (connect.client_id.as_str().to_owned(), false)
    };
    Ok(Some(Hello {
        assigned: assigned && version == Version::V5,
        connect,
        identity,
        client_id,
    }))
}

async fn authenticate(
    connect: &Connect,
    shared: &Shared,
) -> Result<Option<DeviceIdentity>, Refusal> {
    let (Some(username), Some(registry)) = (&connect.username, &shared.registry) else {
        return if shared.config.allow_anonymous {
            Ok(None)
        } else {
            Err(Refusal::NotAuthorized)
        };
    };
    let Some((auth_id, tenant)) = registry.parse_username(username.as_str()) else {
        return Err(Refusal::BadCredentials);
    };
    let password = connect
        .password
        .as_ref()
        .and_then(|p| std::str::from_utf8(p).ok())
        .ok_or(Refusal::BadCredentials)?;
    let result = registry
        .authenticate_password_async(tenant.to_owned(), auth_id.to_owned(), password.to_owned())
        .await;
    match result {
        Ok(identity) => Ok(Some(identity)),
        Err(AuthError::BadCredentials | AuthError::UnknownTenant) => Err(Refusal::BadCredentials),
        Err(AuthError::TenantDisabled | AuthError::DeviceDisabled) => Err(Refusal::NotAuthorized),
        Err(AuthError::Internal(e)) => {
            tracing::warn!(error = %e, "authentication failed internally");
            Err(Refusal::Unavailable)
        }
    }
}

/// A device that logged in with a verified client certificate (see [`crate::tls`]): the username and
/// password in its CONNECT are not looked at. Every refusal is "not authorized": the client sent no
/// credentials that could be "bad", and it learns nothing about which check failed.
fn authenticate_cert(cert: &CertLogin, shared: &Shared) -> Result<Option<DeviceIdentity>, Refusal> {
    let (tenant, subject_dn) = match cert {
        CertLogin::Device { tenant, subject_dn } => (tenant, subject_dn),
        CertLogin::Refused(why) => {
            tracing::debug!(why, "client certificate picks no tenant");
            return Err(Refusal::NotAuthorized);
        }
    };
    // Only a gateway with a registry asks for certificates.
    let registry = shared.registry.as_ref().ok_or(Refusal::NotAuthorized)?;
    match registry.authenticate_cert(tenant, subject_dn) {
        Ok(identity) => Ok(Some(identity)),
        Err(AuthError::Internal(e)) => {
            tracing::warn!(error = %e, "certificate authentication failed internally");
            Err(Refusal::Unavailable)
        }
        Err(e) => {
            tracing::debug!(tenant, subject_dn, error = %e, "client certificate refused");
            Err(Refusal::NotAuthorized)
        }
    }
}

/// The CONNACK accepting `hello`: MQTT 5 clients learn the gateway's limits.
pub(super) fn connack(
    hello: &Hello,
    shared: &Shared,
    session_present: bool,
    out: &mut BytesMut,
) -> Result<(), Error> {
    let mut p = Properties::default();
    if hello.connect.version == Version::V5 {
        p.receive_maximum = Some(shared.config.receive_maximum);
        p.maximum_packet_size = Some(shared.config.max_packet_size);
        p.retain_available = Some(true);
        p.wildcard_subscription_available = Some(true);
        p.shared_subscription_available = Some(false);
        p.subscription_identifier_available = Some(false);
        if hello.assigned {
            p.assigned_client_identifier = shoal_mqtt::MqttStr::new(&hello.client_id).ok();
        }
    }
    encode_connack(
        out,
        hello.connect.version,
        session_present,
        reason::SUCCESS,
        Some(&p),
    )?;
    Ok(())
}

/// Refuse a client whose persistent session cannot be kept: the gateway keeps as many as it may (MQTT 5
/// quota exceeded), or the broker that would hold its queue is unavailable.
pub(super) async fn refuse_session<W: AsyncWrite + Unpin>(
    wr: &mut W,
    version: Version,
    why: NotKept,
) -> Result<(), Error> {
    let code = match (why, version) {
        (NotKept::Quota, Version::V5) => reason::QUOTA_EXCEEDED,
        (NotKept::Unavailable, Version::V5) => reason::SERVER_UNAVAILABLE,
        (_, Version::V311) => reason::V311_SERVER_UNAVAILABLE,
    };
    let mut out = BytesMut::new();
    encode_connack(&mut out, version, false, code, None)?;
    wr.write_all(&out).await?;
    wr.flush().await?;
    Ok(())
}

/// What the client asked of its session: resume a kept one (`!clean`), and keep it after this connection
/// (`keep`, with the MQTT 5 expiry in seconds, `None` for never).
pub(super) struct SessionAsk {
    pub clean: bool,
    pub keep: bool,
    pub expiry_secs: Option<u32>,
}

pub(super) fn session_ask(connect: &Connect) -> SessionAsk {
    match connect.version {
        Version::V311 => SessionAsk {
            clean: connect.clean_start,
            keep: !connect.clean_start,
            expiry_secs: None,
        },
        Version::V5 => {
            let expiry = connect.properties.session_expiry_interval.unwrap_or(0);
            SessionAsk {
                clean: connect.clean_start,
                keep: expiry > 0,
                expiry_secs: (expiry != u32::MAX).then_some(expiry),
            }
        }
    }
}
