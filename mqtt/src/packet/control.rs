//! PINGREQ, PINGRESP (3.12, 3.13), DISCONNECT (3.14) and AUTH (MQTT 5, 3.15).

use bytes::{BufMut, BytesMut};

use super::connect::block;
use super::{Version, AUTH, DISCONNECT, PINGREQ, PINGRESP};
use crate::codec::{put_fixed_header, Reader};
use crate::error::Error;
use crate::properties::{Properties, PropertyContext};
use crate::reason::{self, ReasonContext};

/// A DISCONNECT, from either side in MQTT 5.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Always 0 (normal disconnection) in 3.1.1.
    pub reason: u8,
    /// Session expiry interval, reason string, server reference, user properties.
    pub properties: Properties,
}

/// An MQTT 5 AUTH exchange step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason: u8,
    /// Authentication method and data, reason string, user properties.
    pub properties: Properties,
}

/// Appends a PINGREQ (2 bytes).
pub fn encode_pingreq(out: &mut BytesMut) {
    out.put_slice(&[PINGREQ << 4, 0]);
}

/// Appends a PINGRESP (2 bytes).
pub fn encode_pingresp(out: &mut BytesMut) {
    out.put_slice(&[PINGRESP << 4, 0]);
}

/// The MQTT 5 "reason code, then optional properties, both optional" body of DISCONNECT and AUTH.
fn read_reason_props(
    r: &mut Reader<'_>,
    ctx: ReasonContext,
    pctx: PropertyContext,
    packet: &'static str,
) -> Result<(u8, Properties), Error> {
    if r.is_empty() {
        return Ok((reason::SUCCESS, Properties::default()));
    }
    let code = r.u8()?;
    if !reason::is_valid(ctx, code) {
        return Err(Error::InvalidReasonCode { packet, code });
    }
    let props = if r.is_empty() {
        Properties::default()
    } else {
        Properties::read(r, pctx)?
    };
    r.finish(packet)?;
    Ok((code, props))
}

/// Writes the shortest encoding of a reason code and properties.
fn write_reason_props(
    out: &mut BytesMut,
    first: u8,
    code: u8,
    props: &Properties,
    ctx: ReasonContext,
    pctx: PropertyContext,
    packet: &'static str,
) -> Result<(), Error> {
    if !reason::is_valid(ctx, code) {
        return Err(Error::InvalidReasonCode { packet, code });
    }
    if props.is_empty() {
        if code == reason::SUCCESS {
            out.put_slice(&[first, 0]);
        } else {
            out.put_slice(&[first, 1, code]);
        }
        return Ok(());
    }
    let n = props.content_len(pctx)?;
    put_fixed_header(out, first, 1 + block(Some(n)))?;
    out.put_u8(code);
    props.write(n, out);
    Ok(())
}

impl Disconnect {
    pub(super) fn read(r: &mut Reader<'_>, version: Version) -> Result<Disconnect, Error> {
        match version {
            Version::V311 => {
                r.finish("DISCONNECT")?;
                Ok(Disconnect::default())
            }
            Version::V5 => {
                let (reason, properties) = read_reason_props(
                    r,
                    ReasonContext::Disconnect,
                    PropertyContext::Disconnect,
                    "DISCONNECT",
                )?;
                Ok(Disconnect { reason, properties })
            }
        }
    }

    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), Error> {
        match version {
            Version::V311 => {
                out.put_slice(&[DISCONNECT << 4, 0]);
                Ok(())
            }
            Version::V5 => write_reason_props(
                out,
                DISCONNECT << 4,
                self.reason,
                &self.properties,
                ReasonContext::Disconnect,
                PropertyContext::Disconnect,
                "DISCONNECT",
            ),
        }
    }
}

impl Auth {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Auth, Error> {
        let (reason, properties) =
            read_reason_props(r, ReasonContext::Auth, PropertyContext::Auth, "AUTH")?;
        Ok(Auth { reason, properties })
    }

    /// AUTH exists only in MQTT 5.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        write_reason_props(
            out,
            AUTH << 4,
            self.reason,
            &self.properties,
            ReasonContext::Auth,
            PropertyContext::Auth,
            "AUTH",
        )
    }
}
