//! The client-certificate verifier: trust anchors looked up in the registry for each handshake.
//!
//! Why not one `WebPkiClientVerifier` over the union of every tenant's CAs, rebuilt when the registry
//! changes: the registry has no change counter to key such a cache on, and the lookup it would save is
//! small next to the handshake's own public-key operations (the CAs whose subject is the chain's issuer,
//! found under the registry's read lock, and a verifier over just those). Looking up per handshake also
//! means a CA added, replaced or removed over the HTTP API counts from the next handshake on, with nothing
//! to invalidate. The cost grows with the number of tenants (a scan); an index by CA subject in the registry
//! is the step to take if that ever shows up in a profile.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};
use shoal_registry::Registry;

use super::Trust;

/// Asks every client for a certificate and accepts clients without one (password devices use MQTTS too).
/// A presented chain must lead to a trusted CA of some tenant.
pub(crate) struct RegistryVerifier {
    pub registry: Registry,
    pub provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for RegistryVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryVerifier")
    }
}

impl ClientCertVerifier for RegistryVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: the list would name every tenant's CA (large, and it tells anyone who connects which
    /// tenants exist). Clients send the certificate they were configured with anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        let trust = Trust::find(&self.registry, &chain).map_err(|e| {
            tracing::debug!(error = %e, "unusable client certificate");
            Error::InvalidCertificate(CertificateError::BadEncoding)
        })?;
        let roots = trust.map_or_else(RootCertStore::empty, |t| t.anchors());
        if roots.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| Error::General(e.to_string()))?;
        webpki.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
