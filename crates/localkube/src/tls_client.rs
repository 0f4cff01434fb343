//! The client side of TLS, for the servers localkube calls: APIService backends (aggregation)
//! and admission webhooks. A peer is verified with the CA bundle its configuration carries
//! (or not at all, when an APIService says `insecureSkipTLSVerify`), under the name
//! kube-apiserver would check; a client certificate is presented only when asked for.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How the peer's certificate is checked.
pub enum Trust<'a> {
    /// Signed by a CA of this bundle (PEM, or one DER certificate).
    CaBundle(&'a [u8]),
    /// Any certificate, its signatures still checked (`insecureSkipTLSVerify: true`).
    Anything,
}

/// Accepts any server certificate, still checking signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client configuration: the peer checked as `trust` says, `identity` (certificate
/// and key PEM) presented when given. HTTP/1.1 only, which upgrades need.
pub fn client_config(
    trust: Trust<'_>,
    identity: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match trust {
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        Trust::CaBundle(bundle) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = if bundle.starts_with(b"-----") {
                CertificateDer::pem_slice_iter(bundle)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("caBundle is not valid PEM: {e}"))?
            } else {
                vec![CertificateDer::from(bundle.to_vec())]
            };
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err("caBundle holds no usable CA certificate".into());
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut cfg = match identity {
        Some((cert_pem, key_pem)) => {
            let chain = vec![
                CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?,
            ];
            let key =
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Why a connection was not made, worded as Go's net and tls packages word it (kube-apiserver's
/// messages carry those words).
#[derive(Debug)]
pub enum ConnectError {
    Dial { addr: String, error: std::io::Error },
    Tls { addr: String, error: std::io::Error },
    ServerName(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Dial { addr, error } => match error.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    write!(f, "dial tcp {addr}: connect: connection refused")
                }
                _ => write!(f, "dial tcp {addr}: {error}"),
            },
            ConnectError::Tls { addr, error } => write!(f, "tls to {addr}: {error}"),
            ConnectError::ServerName(name) => write!(f, "{name:?} is not a valid TLS server name"),
        }
    }
}

/// A TCP connection to `host:port` (an IPv6 literal bracketed or not), and its address.
pub async fn dial(host: &str, port: u16) -> Result<(TcpStream, String), ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|error| ConnectError::Dial {
            addr: addr.clone(),
            error,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok((tcp, addr))
}

/// A TLS connection to `host:port`, whose certificate must be for `server_name`.
pub async fn connect(
    cfg: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    server_name: &str,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| ConnectError::ServerName(server_name.to_string()))?;
    let (tcp, addr) = dial(host, port).await?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|error| ConnectError::Tls { addr, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_without_a_certificate_are_refused() {
        let e = client_config(Trust::CaBundle(b"not a certificate"), None).unwrap_err();
        assert!(e.contains("no usable CA"), "{e}");
        let e =
            client_config(Trust::CaBundle(b"-----BEGIN CERTIFICATE-----\n!!\n"), None).unwrap_err();
        assert!(e.contains("not valid PEM"), "{e}");
        assert!(client_config(Trust::Anything, None).is_ok());
    }

    #[test]
    fn refused_connections_read_like_go() {
        let e = ConnectError::Dial {
            addr: "127.0.0.1:1".into(),
            error: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(
            e.to_string(),
            "dial tcp 127.0.0.1:1: connect: connection refused"
        );
    }
}
