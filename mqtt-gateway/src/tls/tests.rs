use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error};
use shoal_registry::{Registry, Tenant};

use super::verifier::RegistryVerifier;
use super::{cert, cert_login, CertLogin};

/// A CA with the given DN (root first, as DER lists it).
fn ca(dn: &[(DnType, &str)]) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        params.distinguished_name.push(t.clone(), *v);
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn device(dn: &[(DnType, &str)], issuer: &CertifiedIssuer<'_, KeyPair>) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in dn {
        params.distinguished_name.push(t.clone(), *v);
    }
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &**issuer).unwrap().der().clone()
}

fn acme_ca() -> CertifiedIssuer<'static, KeyPair> {
    ca(&[
        (DnType::OrganizationName, "Acme"),
        (DnType::CommonName, "Acme CA"),
    ])
}

/// Tenant `id` trusting `ca` (by PEM certificate, or as Hono does by subject DN and public key).
fn trust(reg: &Registry, id: &str, ca: &CertifiedIssuer<'_, KeyPair>, as_key: bool, enabled: bool) {
    let subject_dn = cert::names(ca.der()).unwrap().subject_dn;
    let entry = if as_key {
        let spki = ca.key().subject_public_key_info();
        serde_json::json!({
            "subject-dn": subject_dn,
            "public-key": base64::engine::general_purpose::STANDARD.encode(spki),
        })
    } else {
        serde_json::json!({"subject-dn": subject_dn, "cert": ca.pem()})
    };
    let tenant: Tenant =
        serde_json::from_value(serde_json::json!({"enabled": enabled, "trusted-ca": [entry]}))
            .unwrap();
    reg.create_tenant(Some(id), tenant).unwrap();
}

fn verifier(reg: &Registry) -> RegistryVerifier {
    RegistryVerifier {
        registry: reg.clone(),
        provider: Arc::new(rustls::crypto::ring::default_provider()),
    }
}

#[test]
fn subject_and_issuer_dns_are_read_in_the_registrys_rfc_2253_form() {
    let ca = acme_ca();
    let dev = device(
        &[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Acme Corp"),
            (DnType::OrganizationalUnitName, "Sensors, Floor 2"),
            (DnType::CommonName, "dev 1"),
        ],
        &ca,
    );
    let names = cert::names(&dev).unwrap();
    // Most specific first, the comma in a value escaped: what Java's RFC 2253 writer (and Hono) stores.
    assert_eq!(
        names.subject_dn,
        r"CN=dev 1,OU=Sensors\, Floor 2,O=Acme Corp,C=DE"
    );
    assert_eq!(names.issuer_dn, "CN=Acme CA,O=Acme");
    // The auth-id an operator registers, spelled loosely, is normalised to the same string.
    assert_eq!(
        shoal_registry::normalize_subject_dn(r"cn=dev 1, ou=Sensors\, Floor 2, o=Acme Corp, c=DE")
            .unwrap(),
        names.subject_dn
    );
    // An attribute without a keyword is written as Java (and so Hono) writes it: OID and DER hex.
    let odd = device(
        &[
            (DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]), "x"),
            (DnType::CommonName, "dev"),
        ],
        &ca,
    );
    assert_eq!(
        cert::names(&odd).unwrap().subject_dn,
        "CN=dev,1.3.6.1.4.1.99999.1=#0c0178"
    );
    // webpki compares the anchor subject with the issuer field's contents, header stripped.
    assert_eq!(names.issuer_der, cert::names(ca.der()).unwrap().issuer_der);
    assert!(cert::der_contents(&[0x30, 0x03, 1, 2, 3]) == Some(&[1u8, 2, 3][..]));
    assert!(cert::der_contents(&[0x30, 0x04, 1, 2, 3]).is_none());
    assert!(cert::der_contents(&[0x31, 0x01, 1]).is_none());
}

#[test]
fn the_issuer_picks_the_tenant_and_the_subject_is_the_auth_id() {
    let reg = Registry::in_memory(Default::default());
    let acme = acme_ca();
    let beta = ca(&[(DnType::CommonName, "Beta CA")]);
    trust(&reg, "acme", &acme, false, true);
    trust(&reg, "beta", &beta, true, true);
    let dev = device(&[(DnType::CommonName, "dev1")], &acme);
    assert_eq!(
        cert_login(&reg, &[dev]),
        CertLogin::Device {
            tenant: "acme".into(),
            subject_dn: "CN=dev1".into()
        }
    );
    let dev = device(&[(DnType::CommonName, "dev2")], &beta);
    assert_eq!(
        cert_login(&reg, &[dev]),
        CertLogin::Device {
            tenant: "beta".into(),
            subject_dn: "CN=dev2".into()
        }
    );
    let stranger = ca(&[(DnType::CommonName, "Stranger CA")]);
    let dev = device(&[(DnType::CommonName, "dev3")], &stranger);
    assert!(matches!(cert_login(&reg, &[dev]), CertLogin::Refused(_)));
}

#[test]
fn a_disabled_tenant_is_still_picked_so_that_connect_can_refuse_it() {
    let reg = Registry::in_memory(Default::default());
    let acme = acme_ca();
    trust(&reg, "acme", &acme, false, false);
    let dev = device(&[(DnType::CommonName, "dev1")], &acme);
    assert!(
        matches!(cert_login(&reg, &[dev]), CertLogin::Device { tenant, .. } if tenant == "acme")
    );
}

#[test]
fn two_tenants_trusting_the_same_issuer_dn_is_refused_as_ambiguous() {
    let reg = Registry::in_memory(Default::default());
    let acme = acme_ca();
    let twin = acme_ca();
    trust(&reg, "acme", &acme, false, true);
    trust(&reg, "twin", &twin, true, true);
    let dev = device(&[(DnType::CommonName, "dev1")], &acme);
    assert!(matches!(cert_login(&reg, &[dev]), CertLogin::Refused(_)));
}

#[test]
fn the_verifier_accepts_chains_to_a_tenant_ca_by_cert_or_key_and_refuses_others() {
    let reg = Registry::in_memory(Default::default());
    let acme = acme_ca();
    let beta = ca(&[(DnType::CommonName, "Beta CA")]);
    trust(&reg, "acme", &acme, false, true);
    trust(&reg, "beta", &beta, true, true);
    let v = verifier(&reg);
    let now = UnixTime::now();
    assert!(
        !v.client_auth_mandatory(),
        "password devices connect without a certificate"
    );

    let by_cert = device(&[(DnType::CommonName, "dev1")], &acme);
    v.verify_client_cert(&by_cert, &[], now)
        .expect("a device of a CA given as a PEM certificate");
    let by_key = device(&[(DnType::CommonName, "dev2")], &beta);
    v.verify_client_cert(&by_key, &[], now)
        .expect("a device of a CA given as subject DN and public key");

    // Same issuer DN as acme's CA, another key: the DN alone proves nothing.
    let impostor = acme_ca();
    let forged = device(&[(DnType::CommonName, "dev1")], &impostor);
    assert!(v.verify_client_cert(&forged, &[], now).is_err());

    let stranger = ca(&[(DnType::CommonName, "Stranger CA")]);
    let unknown = device(&[(DnType::CommonName, "dev3")], &stranger);
    assert_eq!(
        v.verify_client_cert(&unknown, &[], now).err(),
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
}
