//! Access reviews and the extension-apiserver-authentication ConfigMap, seen by kube-rs and
//! kubectl: what an aggregated API server (virt-api) relies on for delegated auth.

mod common;

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

use common::{Localkube, have_kubectl};

fn sar(user: Option<&str>, groups: Option<Vec<String>>) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.map(str::to_string),
            groups,
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("get".into()),
                group: Some("subresources.kubevirt.io".into()),
                resource: Some("virtualmachineinstances".into()),
                subresource: Some("console".into()),
                name: Some("vm1".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn subject_access_reviews_allow_the_admin_only() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<SubjectAccessReview> = Api::all(server.client().await.unwrap());
    let pp = PostParams::default();

    let admin = api
        .create(&pp, &sar(Some(localkube::access::ADMIN_USER), None))
        .await
        .unwrap();
    let status = admin.status.unwrap();
    assert!(status.allowed, "{status:?}");
    let attrs = admin.spec.resource_attributes.unwrap();
    assert_eq!(attrs.subresource.as_deref(), Some("console"), "spec echoed");

    let masters = api
        .create(
            &pp,
            &sar(Some("someone"), Some(vec!["system:masters".into()])),
        )
        .await
        .unwrap();
    assert!(masters.status.unwrap().allowed);

    for user in ["system:anonymous", "alice"] {
        let denied = api.create(&pp, &sar(Some(user), None)).await.unwrap();
        let status = denied.status.unwrap();
        assert!(!status.allowed, "{user}");
        // No RBAC rule grants them anything; kube's RBAC gives no reason for a denial.
        assert_eq!(status.reason.unwrap_or_default(), "", "{user}");
        assert_eq!(denied.spec.user.as_deref(), Some(user));
    }

    // No subject at all is invalid, as in kube-apiserver.
    let err = api.create(&pp, &sar(None, None)).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.user"), "{}", s.message);
        }
        other => panic!("unexpected error {other}"),
    }

    // Reviews are not stored: there is nothing to get or list.
    let err = api.list(&Default::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 405));
}

#[tokio::test]
async fn self_subject_access_reviews_allow_the_caller() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<SelfSubjectAccessReview> = Api::all(server.client().await.unwrap());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".into()),
                resource: Some("pods".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    assert!(answer.status.unwrap().allowed);
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("parseable PEM certificates")
}

/// Whether `cert_pem` verifies as a TLS client certificate against the CA `ca_pem`.
fn client_cert_verifies(ca_pem: &str, cert_pem: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem_certs(ca_pem) {
        roots.add(ca).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let cert = pem_certs(cert_pem).remove(0);
    verifier
        .verify_client_cert(&cert, &[], rustls::pki_types::UnixTime::now())
        .is_ok()
}

#[tokio::test]
async fn extension_apiserver_authentication_is_published() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "kube-system");
    let cm = cms.get("extension-apiserver-authentication").await.unwrap();
    let data = cm.data.unwrap();

    assert_eq!(data["client-ca-file"], server.ca_pem);
    let requestheader_ca = &data["requestheader-client-ca-file"];
    assert_eq!(pem_certs(requestheader_ca).len(), 1);
    let fp = server.front_proxy();
    assert_eq!(requestheader_ca, &fp.ca_pem);
    assert!(client_cert_verifies(requestheader_ca, &fp.client_cert_pem));
    // It is its own CA: the serving CA does not vouch for it.
    assert!(!client_cert_verifies(&server.ca_pem, &fp.client_cert_pem));

    let list = |key: &str| -> Vec<String> {
        serde_json::from_str(&data[key]).unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    assert_eq!(list("requestheader-allowed-names"), ["front-proxy-client"]);
    assert_eq!(list("requestheader-username-headers"), ["X-Remote-User"]);
    assert_eq!(list("requestheader-group-headers"), ["X-Remote-Group"]);
    assert_eq!(
        list("requestheader-extra-headers-prefix"),
        ["X-Remote-Extra-"]
    );
}

#[test]
fn kubectl_auth_can_i_and_discovery() {
    if !have_kubectl("kubectl_auth_can_i_and_discovery") {
        return;
    }
    let lk = Localkube::start();
    assert_eq!(lk.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(
        lk.ok(&["auth", "can-i", "delete", "nodes", "--all-namespaces"])
            .trim(),
        "yes"
    );
    let resources = lk.ok(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "wide",
    ]);
    let sar_line = resources
        .lines()
        .find(|l| l.starts_with("subjectaccessreviews "))
        .unwrap_or_else(|| panic!("no subjectaccessreviews in:\n{resources}"));
    assert!(sar_line.contains("SubjectAccessReview"), "{sar_line}");
    assert!(sar_line.trim_end().ends_with(" create"), "{sar_line}");
    assert!(
        resources.contains("selfsubjectaccessreviews "),
        "{resources}"
    );

    // A review created from a manifest answers with its status. Reviews have no PATCH
    // operation, so kubectl's validation would want OpenAPI v2, which localkube lacks.
    let out = lk.kubectl_stdin(
        &[
            "create",
            "--validate=false",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.allowed}",
        ],
        Some(
            "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: system:anonymous\n  resourceAttributes:\n    verb: get\n    resource: pods\n",
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "false");
}
