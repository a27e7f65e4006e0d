//! What the gateway reads from a client certificate: subject and issuer DN in the registry's RFC 2253 form,
//! and the issuer's raw DER name (the trust anchor's subject when a tenant's CA is given as a bare key).

use std::fmt::Write as _;

use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// One certificate of a presented chain, reduced to its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// Subject DN, normalised as the registry stores `x509-cert` auth-ids.
    pub subject_dn: String,
    /// Issuer DN, normalised as the registry stores trusted-CA subject DNs.
    pub issuer_dn: String,
    /// The issuer Name's DER contents (without the SEQUENCE header): the form webpki compares trust
    /// anchor subjects in.
    pub issuer_der: Vec<u8>,
}

/// Reads the names of one DER certificate; `Err` says why it cannot be used.
pub(crate) fn names(der: &[u8]) -> Result<Names, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("certificate: {e}"))?;
    let issuer = cert.issuer();
    Ok(Names {
        subject_dn: rfc2253(cert.subject())?,
        issuer_dn: rfc2253(issuer)?,
        issuer_der: der_contents(issuer.as_raw())
            .ok_or("issuer name is not a DER SEQUENCE")?
            .to_vec(),
    })
}

/// The RFC 2253 string of `name` (most specific RDN first, as Java's `X500Principal.getName(RFC2253)`
/// writes it and Hono stores it), normalised by the registry's own DN normaliser so that both sides agree
/// on keywords, spacing and escaping.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> Result<String, String> {
    let mut out = String::new();
    // DER lists RDNs from the root down; RFC 2253 writes them the other way round.
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match keyword(&oid) {
                Some(k) => {
                    out.push_str(k);
                    out.push('=');
                    value(atv.attr_value(), &mut out)?;
                }
                // As Java writes attributes it has no keyword for, and so Hono's auth-ids hold them.
                None => {
                    out.push_str(&oid);
                    out.push_str("=#");
                    hex(atv.attr_value(), &mut out)?;
                }
            }
        }
    }
    shoal_registry::normalize_subject_dn(&out)
}

/// The keyword an attribute is written with: RFC 2253's own, and two more that the registry's normaliser
/// keeps as keywords (an operator writes `EMAILADDRESS=` or `SERIALNUMBER=`, as OpenSSL prints them, where
/// Java would write the OID and a hex value). `None`: the OID with the value in hex.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        "2.5.4.5" => "SERIALNUMBER",
        _ => return None,
    })
}

/// Appends an attribute value: character strings escaped for RFC 2253, anything else as `#` and the hex of
/// its DER encoding (RFC 2253 section 2.4).
fn value(v: &Any<'_>, out: &mut String) -> Result<(), String> {
    let text = match (v.header.class(), v.header.tag()) {
        (
            Class::Universal,
            Tag::Utf8String
            | Tag::PrintableString
            | Tag::Ia5String
            | Tag::NumericString
            | Tag::VisibleString,
        ) => Some(
            std::str::from_utf8(v.data)
                .map_err(|_| "attribute value is not UTF-8")?
                .to_owned(),
        ),
        (Class::Universal, Tag::BmpString) => Some(bmp(v.data)?),
        _ => None,
    };
    match text {
        Some(text) => escape(&text, out),
        None => {
            out.push('#');
            hex(v, out)?;
        }
    }
    Ok(())
}

/// The hex of a value's whole DER encoding.
fn hex(v: &Any<'_>, out: &mut String) -> Result<(), String> {
    for b in der_tlv(v)? {
        let _ = write!(out, "{b:02x}");
    }
    Ok(())
}

/// BMPString: UCS-2, big-endian.
fn bmp(data: &[u8]) -> Result<String, String> {
    let pairs = data.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err("odd-length BMPString".into());
    }
    let units = pairs.map(|c| u16::from_be_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| "malformed BMPString".into())
}

/// Every character the DN parser would otherwise read as syntax is escaped; the normaliser then writes the
/// minimal RFC 2253 escaping.
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(
            c,
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '#' | ' ' | '='
        ) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The whole DER encoding (tag, length, contents) of a value with a low tag number.
fn der_tlv(v: &Any<'_>) -> Result<Vec<u8>, String> {
    let tag = v.header.tag().0;
    if tag >= 31 {
        return Err("attribute value with a high tag number".into());
    }
    let class = (v.header.class() as u8) << 6;
    let constructed = if v.header.constructed() { 0x20 } else { 0 };
    let mut der = vec![class | constructed | tag as u8];
    let len = v.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(v.data);
    Ok(der)
}

/// The contents of a DER SEQUENCE (its header stripped): webpki keeps names and keys in this form.
pub(crate) fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() == len).then_some(rest)
}
