//! A throwaway certificate authority and a serving certificate signed by it. They are two
//! certificates because rustls (and so kube-rs) rejects a CA used as the end-entity certificate.
//! Also the front-proxy (request-header) CA and its client certificate, with which the
//! aggregation layer authenticates itself to extension API servers.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub front_proxy: FrontProxy,
}

/// The request-header CA that extension API servers trust (published as
/// `requestheader-client-ca-file`), and the client certificate signed by it that the
/// aggregation layer presents when it proxies to them, with `X-Remote-User` and friends.
#[derive(Clone, Debug)]
pub struct FrontProxy {
    pub ca_pem: String,
    /// Common name `front-proxy-client`, the one allowed name (`requestheader-allowed-names`).
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// The common name of the front-proxy client certificate.
pub const FRONT_PROXY_CLIENT_CN: &str = "front-proxy-client";

/// A self-signed CA with this common name: its PEM, and the issuer that signs with it.
fn new_ca(common_name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, common_name);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    Ok((ca_pem, Issuer::new(ca, ca_key)))
}

fn front_proxy() -> anyhow::Result<FrontProxy> {
    let (ca_pem, issuer) = new_ca("localkube-front-proxy-ca")?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, FRONT_PROXY_CLIENT_CN);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(FrontProxy {
        ca_pem,
        client_cert_pem: cert.pem(),
        client_key_pem: key.serialize_pem(),
    })
}

pub fn generate(ip: IpAddr) -> anyhow::Result<Pki> {
    let (ca_pem, issuer) = new_ca("localkube-ca")?;

    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "localkube".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localkube");
    params.subject_alt_names.push(SanType::IpAddress(ip));
    let loopback: IpAddr = "127.0.0.1".parse().expect("static address");
    if ip != loopback {
        params.subject_alt_names.push(SanType::IpAddress(loopback));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pki {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        front_proxy: front_proxy()?,
    })
}

pub fn server_config(pki: &Pki) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![
        CertificateDer::from_pem_slice(pki.cert_pem.as_bytes())?,
        CertificateDer::from_pem_slice(pki.ca_pem.as_bytes())?,
    ];
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
