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

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Pki {
    pub ca_pem: String,
    /// Kept so that a server restarted on another address can sign a new serving certificate
    /// that existing kubeconfigs (which trust the CA) accept.
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The address the serving certificate names (besides 127.0.0.1 and localhost).
    pub serving_ip: IpAddr,
    pub front_proxy: FrontProxy,
}

/// The request-header CA that extension API servers trust (published as
/// `requestheader-client-ca-file`), and the client certificate signed by it that the
/// aggregation layer presents when it proxies to them, with `X-Remote-User` and friends.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FrontProxy {
    pub ca_pem: String,
    /// Common name `front-proxy-client`, the one allowed name (`requestheader-allowed-names`).
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// The common name of the front-proxy client certificate.
pub const FRONT_PROXY_CLIENT_CN: &str = "front-proxy-client";

/// The server's CA's common name.
const CA_NAME: &str = "localkube-ca";

fn ca_params(common_name: &str) -> anyhow::Result<CertificateParams> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, common_name);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca)
}

/// A self-signed CA with this common name: its PEM, its key's PEM, and the issuer that signs
/// with it.
fn new_ca(common_name: &str) -> anyhow::Result<(String, String, Issuer<'static, KeyPair>)> {
    let ca_key = KeyPair::generate()?;
    let ca = ca_params(common_name)?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let key_pem = ca_key.serialize_pem();
    Ok((ca_pem, key_pem, Issuer::new(ca, ca_key)))
}

fn front_proxy() -> anyhow::Result<FrontProxy> {
    let (ca_pem, _, issuer) = new_ca("localkube-front-proxy-ca")?;
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
    let (ca_pem, ca_key_pem, issuer) = new_ca(CA_NAME)?;
    let (cert_pem, key_pem) = serving_certificate(&issuer, ip)?;
    Ok(Pki {
        ca_pem,
        ca_key_pem,
        cert_pem,
        key_pem,
        serving_ip: ip,
        front_proxy: front_proxy()?,
    })
}

impl Pki {
    /// The same CA and front proxy, with a serving certificate for `ip` when the one it has
    /// was made for another address.
    pub fn for_address(mut self, ip: IpAddr) -> anyhow::Result<Pki> {
        if self.serving_ip != ip {
            let key = KeyPair::from_pem(&self.ca_key_pem)?;
            let issuer = Issuer::new(ca_params(CA_NAME)?, key);
            (self.cert_pem, self.key_pem) = serving_certificate(&issuer, ip)?;
            self.serving_ip = ip;
        }
        Ok(self)
    }
}

/// A serving certificate for localhost, `localkube` and `ip`, signed by `issuer`.
fn serving_certificate(
    issuer: &Issuer<'static, KeyPair>,
    ip: IpAddr,
) -> anyhow::Result<(String, String)> {
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
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
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
