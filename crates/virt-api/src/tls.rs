//! virt-api's HTTPS: its serving certificate, client certificates verified against the
//! request-header CA (optional: the API server calls webhooks without one), and the accept
//! loop, which tells each request the common name its connection's client certificate carries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::client_cert::RequestHeaderVerifier;

/// The common name of the verified client certificate of a request's connection, if any.
#[derive(Debug, Clone, Default)]
pub struct PeerName(pub Option<String>);

/// A server config: `cert_pem` (the chain) and `key_pem` served, clients verified against
/// `client_ca_pem` when they present a certificate.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the serving certificate")?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the serving certificate file holds no certificate"
    );
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the private key")?;
    let roots = CertificateDer::pem_slice_iter(client_ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the request-header CA")?;
    anyhow::ensure!(
        !roots.is_empty(),
        "the request-header CA holds no certificate"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RequestHeaderVerifier::new(
        roots,
        provider.signature_verification_algorithms,
    ));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the certificate and the private key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The subject common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Serves `app` on `listener` until `stop` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let tls = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
            };
            let peer = PeerName(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| common_name(leaf)),
            );
            let app = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(app),
            );
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
