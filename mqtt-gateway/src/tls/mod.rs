//! MQTT over TLS and device login by client certificate.
//!
//! The TLS server asks every client for a certificate and does not require one: password devices use
//! MQTTS too. A presented chain must lead to a trusted CA (`trusted-ca` in the tenant, Hono's field) of some
//! tenant; the handshake fails otherwise (TLS alert "unknown CA"). After the handshake, as in Hono:
//!
//! - the issuer of the client certificate picks the tenant: the tenant whose trusted CA has that subject
//!   DN. (When the client also sends intermediates, the first certificate from its own up whose issuer is
//!   a trusted CA decides.) Two tenants trusting CAs with the same subject DN is ambiguous: refused.
//! - the certificate's subject DN (RFC 2253) is the auth-id of the device's `x509-cert` credential.
//!
//! That authenticates the device: its CONNECT needs no password, and a username and password in it are
//! ignored (the certificate was proven by the handshake; a username can only restate or contradict it).
//! A disabled tenant or device, or a subject DN no device has, gets CONNACK "not authorized".
//!
//! A trusted CA is given either as `cert` (PEM) or, as in Hono, as `public-key` (base64 DER
//! SubjectPublicKeyInfo) with its `subject-dn`; for the latter the anchor's name is taken from the issuer
//! field of the presented certificate, which the registry lookup has already matched to `subject-dn`.

mod cert;
mod verifier;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor};
use rustls::{RootCertStore, ServerConfig};
use shoal_registry::{Registry, TrustedCa};

use crate::error::Error;

/// The gateway's own certificate chain and private key for the MQTTS listener.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The TLS server configuration: the gateway's certificate, and with a registry the client-certificate
/// verifier (without one, no certificate is asked for).
pub(crate) fn server_config(
    cert: ServerCert,
    registry: Option<&Registry>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?;
    let builder = match registry {
        Some(registry) => builder.with_client_cert_verifier(Arc::new(verifier::RegistryVerifier {
            registry: registry.clone(),
            provider,
        })),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(cert.chain, cert.key)
        .map_err(Error::Tls)?;
    // No session resumption: a resumed session skips certificate verification, so a device whose CA was
    // replaced or removed in the registry would still get in on its old session.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Who a verified client certificate says the client is, for the CONNECT to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertLogin {
    /// The tenant its issuer picked, and its subject DN (an `x509-cert` auth-id).
    Device { tenant: String, subject_dn: String },
    /// The certificate verified but picks no single tenant (now): why.
    Refused(&'static str),
}

/// After a handshake in which the client presented `chain` (which the verifier accepted): the login it
/// stands for. The registry is asked again; it may have changed since the verifier ran, and then the
/// current state decides.
pub(crate) fn cert_login(registry: &Registry, chain: &[CertificateDer<'_>]) -> CertLogin {
    let chain: Vec<&[u8]> = chain.iter().map(|c| c.as_ref()).collect();
    let trust = match Trust::find(registry, &chain) {
        Ok(Some(trust)) => trust,
        Ok(None) => return CertLogin::Refused("no tenant trusts the certificate's issuer"),
        Err(_) => return CertLogin::Refused("unreadable certificate"),
    };
    let mut tenants = trust.cas.iter().map(|(t, _)| t.as_str());
    let first = tenants.next();
    match first {
        Some(t) if tenants.all(|other| other == t) => CertLogin::Device {
            tenant: t.to_owned(),
            subject_dn: trust.subject_dn,
        },
        Some(_) => {
            CertLogin::Refused("CAs with the issuer's subject DN are trusted by several tenants")
        }
        None => CertLogin::Refused("no tenant trusts the certificate's issuer"),
    }
}

/// The trusted CAs that a presented chain is to be verified against, found by issuer DN.
pub(crate) struct Trust {
    /// The device certificate's subject DN.
    subject_dn: String,
    /// The issuer name (DER contents) the CAs were found by.
    issuer_der: Vec<u8>,
    /// The CAs, each with its tenant.
    cas: Vec<(String, TrustedCa)>,
}

impl Trust {
    /// Walks the chain from the device's certificate up and stops at the first whose issuer is the subject
    /// of trusted CAs. `Ok(None)`: none is; `Err`: a certificate could not be read.
    pub(crate) fn find(registry: &Registry, chain: &[&[u8]]) -> Result<Option<Trust>, String> {
        let mut subject_dn = None;
        for der in chain {
            let names = cert::names(der)?;
            let subject_dn = subject_dn.get_or_insert(names.subject_dn);
            let cas = registry.trusted_cas_for_issuer(&names.issuer_dn);
            if !cas.is_empty() {
                return Ok(Some(Trust {
                    subject_dn: subject_dn.clone(),
                    issuer_der: names.issuer_der,
                    cas,
                }));
            }
        }
        Ok(None)
    }

    /// The trust anchors for these CAs. A CA whose stored key or certificate cannot be read is skipped
    /// (and logged): it is an operator's mistake, and the others may still anchor the chain.
    pub(crate) fn anchors(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for (tenant, ca) in &self.cas {
            if let Err(e) = self.add_anchor(ca, &mut roots) {
                tracing::warn!(tenant, subject_dn = %ca.subject_dn, error = %e, "unusable trusted CA");
            }
        }
        roots
    }

    fn add_anchor(&self, ca: &TrustedCa, roots: &mut RootCertStore) -> Result<(), String> {
        if let Some(pem) = &ca.cert {
            let mut any = false;
            for der in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let der = der.map_err(|e| format!("cert: {e}"))?;
                roots.add(der).map_err(|e| format!("cert: {e}"))?;
                any = true;
            }
            return if any {
                Ok(())
            } else {
                Err("cert: no PEM certificate".into())
            };
        }
        let key = ca
            .public_key
            .as_deref()
            .ok_or("neither cert nor public-key")?;
        let spki = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|e| format!("public-key: {e}"))?;
        let spki = cert::der_contents(&spki).ok_or("public-key: not a DER SubjectPublicKeyInfo")?;
        roots.roots.push(TrustAnchor {
            subject: self.issuer_der.clone().into(),
            subject_public_key_info: spki.to_vec().into(),
            name_constraints: None,
        });
        Ok(())
    }
}
