//! Verifying the front proxy's client certificate as the API server's own Go code would: a
//! chain from the leaf, through any intermediates the client sent, to one of the request-header
//! CAs, every signature and validity period checked, and the leaf usable for client
//! authentication. Unlike webpki, X.509 v1 certificates are accepted (Go accepts them, and
//! `openssl x509 -req` makes them by default), so a cluster whose front-proxy certificate was
//! made that way still reaches virt-api.

use std::fmt::Debug;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::{ASN1Time, FromDer};

/// The longest chain accepted, leaf included.
const MAX_CHAIN: usize = 5;

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("unreadable certificate: {e}"))
}

fn valid_at(cert: &X509Certificate<'_>, now: ASN1Time, what: &str) -> Result<(), String> {
    if cert.validity().is_valid_at(now) {
        Ok(())
    } else {
        Err(format!(
            "the {what} certificate has expired or is not yet valid"
        ))
    }
}

/// Whether `issuer` signed `cert`.
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// Checks that `leaf` (DER) chains to one of `roots` (DER) at `now` (seconds since the epoch).
pub fn verify_chain(
    leaf: &[u8],
    intermediates: &[&[u8]],
    roots: &[Vec<u8>],
    now: i64,
) -> Result<(), String> {
    let now = ASN1Time::from_timestamp(now).map_err(|e| format!("bad clock: {e}"))?;
    let leaf = parse(leaf)?;
    valid_at(&leaf, now, "client")?;
    if let Ok(Some(eku)) = leaf.extended_key_usage()
        && !eku.value.any
        && !eku.value.client_auth
    {
        return Err("the client certificate is not for client authentication".into());
    }
    let roots: Vec<X509Certificate<'_>> = roots.iter().filter_map(|r| parse(r).ok()).collect();
    let intermediates: Vec<X509Certificate<'_>> =
        intermediates.iter().filter_map(|i| parse(i).ok()).collect();
    let mut current = &leaf;
    for _ in 0..MAX_CHAIN {
        if let Some(root) = roots.iter().find(|r| signed_by(current, r)) {
            return valid_at(root, now, "request-header CA");
        }
        let Some(next) = intermediates
            .iter()
            .find(|i| is_ca(i) && signed_by(current, i))
        else {
            return Err("the client certificate is not signed by the request-header CA".into());
        };
        valid_at(next, now, "intermediate")?;
        current = next;
    }
    Err("the client certificate's chain is too long".into())
}

/// A rustls client-certificate verifier over [`verify_chain`]: certificates are asked for but
/// optional (the API server calls webhooks without one).
#[derive(Debug)]
pub struct RequestHeaderVerifier {
    roots: Vec<Vec<u8>>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestHeaderVerifier {
    pub fn new(roots: Vec<CertificateDer<'_>>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        let hints = roots
            .iter()
            .filter_map(|r| {
                parse(r)
                    .ok()
                    .map(|c| DistinguishedName::from(c.subject().as_raw().to_vec()))
            })
            .collect();
        RequestHeaderVerifier {
            roots: roots.iter().map(|r| r.to_vec()).collect(),
            hints,
            algorithms,
        }
    }
}

impl ClientCertVerifier for RequestHeaderVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let intermediates: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        verify_chain(end_entity, &intermediates, &self.roots, now)
            .map(|()| ClientCertVerified::assertion())
            .map_err(rustls::Error::General)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The key from our own parse: webpki's refuses v1 certificates.
        let spki = parse(cert)
            .map_err(rustls::Error::General)?
            .public_key()
            .raw
            .to_vec();
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    use super::*;

    /// 2026-12-07T00:00:00Z.
    const NOW: i64 = 1_796_601_600;

    fn ca(name: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        (der, Issuer::new(p, key))
    }

    /// A client certificate valid from 2026-11-01 to 2026-12-`last_day`.
    fn leaf(
        issuer: &Issuer<'_, KeyPair>,
        eku: Vec<ExtendedKeyUsagePurpose>,
        last_day: u8,
    ) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "front-proxy-client");
        p.extended_key_usages = eku;
        p.not_before = rcgen::date_time_ymd(2026, 11, 1);
        p.not_after = rcgen::date_time_ymd(2026, 12, last_day);
        p.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    #[test]
    fn an_intermediate_the_client_sends_links_the_leaf_to_the_ca() {
        let (root, root_issuer) = ca("front-proxy-ca");
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "front-proxy-intermediate");
        let middle = p.signed_by(&key, &root_issuer).unwrap().der().to_vec();
        let middle_issuer = Issuer::new(p, key);
        let cert = leaf(&middle_issuer, vec![], 31);
        let roots = std::slice::from_ref(&root);
        assert_eq!(verify_chain(&cert, &[&middle], roots, NOW), Ok(()));
        assert!(verify_chain(&cert, &[], roots, NOW).is_err());
    }

    #[test]
    fn chains_table() {
        let (root, root_issuer) = ca("front-proxy-ca");
        let (_, other_issuer) = ca("someone-else");
        let client = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cases: Vec<(&str, Vec<u8>, Result<(), &str>)> = vec![
            (
                "signed by the CA",
                leaf(&root_issuer, client.clone(), 31),
                Ok(()),
            ),
            (
                "no extended key usage",
                leaf(&root_issuer, vec![], 31),
                Ok(()),
            ),
            (
                "signed by another CA",
                leaf(&other_issuer, client.clone(), 31),
                Err("not signed by"),
            ),
            (
                "expired",
                leaf(&root_issuer, client.clone(), 6),
                Err("expired"),
            ),
            (
                "a server certificate",
                leaf(&root_issuer, vec![ExtendedKeyUsagePurpose::ServerAuth], 31),
                Err("client authentication"),
            ),
        ];
        for (name, cert, want) in cases {
            let got = verify_chain(&cert, &[], std::slice::from_ref(&root), NOW);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(part)) => assert!(e.contains(part), "{name}: {e}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }
}
