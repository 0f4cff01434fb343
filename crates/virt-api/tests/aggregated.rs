//! virt-api as an aggregated API server behind localkube, as on a cluster: registered with an
//! ExternalName Service and APIServices, reached through localkube's front proxy, it serves
//! start/stop and discovery; called directly, it answers only the front proxy's certificate,
//! asks localkube's authorizer about the named user, and serves the admission webhooks to
//! anyone.

mod common;

use std::sync::Arc;

use base64::Engine;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kube::api::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use virt_reconciler::VirtualMachine;

struct Setup {
    server: localkube::Server,
    client: kube::Client,
    virt_api: virt_api::Running,
}

async fn setup() -> Setup {
    let (server, _) = common::localkube_with_crds(None).await;
    let client = server.client().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let virt_api = virt_api::loopback::serve(
        &client,
        listener,
        virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
        true,
    )
    .await
    .expect("virt-api starts and registers");
    Setup {
        server,
        client,
        virt_api,
    }
}

/// A request through localkube with its admin token: (status, body).
async fn through_api_server(client: &kube::Client, method: Method, path: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(b"{}".to_vec())
        .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The CA virt-api's APIService carries: what the API server trusts it with.
async fn virt_api_ca(client: &kube::Client) -> String {
    let obj = virt_api::loopback::api_services(client)
        .get("v1.subresources.kubevirt.io")
        .await
        .unwrap();
    let b64 = obj.data["spec"]["caBundle"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// A request straight to virt-api over TLS, with the given client certificate (PEM cert and
/// key) if any, and headers.
async fn direct(
    setup: &Setup,
    client_cert: Option<(&str, &str)>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let ca = virt_api_ca(&setup.client).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(setup.virt_api.addr)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const START: &str =
    "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/start";

#[tokio::test]
async fn start_and_stop_reach_virt_api_through_the_aggregation_layer() {
    let s = setup().await;
    common::create_seed_vm(&s.client).await;
    let vms: Api<VirtualMachine> = Api::namespaced(s.client.clone(), "default");
    let (code, body) = through_api_server(&s.client, Method::PUT, START).await;
    assert_eq!(code, 202, "{body}");
    let vm = vms.get("vm-cirros").await.unwrap();
    assert_eq!(vm.spec.running, Some(true), "start set running: true");
    let (code, body) = through_api_server(
        &s.client,
        Method::PUT,
        "/apis/subresources.kubevirt.io/v1alpha3/namespaces/default/virtualmachines/vm-cirros/stop",
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        vms.get("vm-cirros").await.unwrap().spec.running,
        Some(false)
    );
    // A refusal comes back as virt-api's Status, through localkube.
    let (code, body) = through_api_server(
        &s.client,
        Method::PUT,
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/nope/start",
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        json_of(&body)["message"],
        "virtualmachine.kubevirt.io \"nope\" not found"
    );
}

#[tokio::test]
async fn discovery_and_version_are_served_through_localkube() {
    let s = setup().await;
    let (code, body) =
        through_api_server(&s.client, Method::GET, "/apis/subresources.kubevirt.io/v1").await;
    assert_eq!(code, 200, "{body}");
    let names: Vec<String> = json_of(&body)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"virtualmachines/start".to_string()),
        "{names:?}"
    );
    let (_, body) = through_api_server(&s.client, Method::GET, "/apis").await;
    assert!(body.contains("subresources.kubevirt.io"), "{body}");
    let (code, body) = through_api_server(
        &s.client,
        Method::GET,
        "/apis/subresources.kubevirt.io/v1alpha3/version",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        json_of(&body)["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.9.0+virt-toolkit.")
    );
}

#[tokio::test]
async fn without_the_front_proxy_certificate_a_request_is_not_authenticated() {
    let s = setup().await;
    let (code, body) = direct(
        &s,
        None,
        Method::PUT,
        START,
        &[
            ("X-Remote-User", "localkube-admin"),
            ("X-Remote-Group", "system:masters"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(json_of(&body)["message"], "request is not authenticated");
}

#[tokio::test]
async fn a_user_the_authorizer_denies_gets_403_naming_the_subresource() {
    let s = setup().await;
    common::create_seed_vm(&s.client).await;
    let fp = s.server.front_proxy();
    let (code, body) = direct(
        &s,
        Some((&fp.client_cert_pem, &fp.client_key_pem)),
        Method::PUT,
        START,
        &[
            ("X-Remote-User", "mallory"),
            ("X-Remote-Group", "system:authenticated"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let status = json_of(&body);
    assert_eq!(status["reason"], "Forbidden");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "virtualmachines.subresources.kubevirt.io \"vm-cirros\" is forbidden: User \"mallory\" \
             cannot update resource \"virtualmachines/start\" in API group \"subresources.kubevirt.io\" \
             in the namespace \"default\""
        ),
        "{message}"
    );
    // Nothing was started.
    let vms: Api<VirtualMachine> = Api::namespaced(s.client.clone(), "default");
    assert_eq!(
        vms.get("vm-cirros").await.unwrap().spec.running,
        Some(false)
    );
    // The admin, through the same front proxy, is let through.
    let (code, body) = direct(
        &s,
        Some((&fp.client_cert_pem, &fp.client_key_pem)),
        Method::PUT,
        START,
        &[
            ("X-Remote-User", "localkube-admin"),
            ("X-Remote-Group", "system:masters"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_path_virt_api_does_not_serve_is_404_before_any_review() {
    let s = setup().await;
    for path in [
        "/metrics",
        "/apis/subresources.kubevirt.io/v1/namespaces/default/pods/p/start",
    ] {
        let (code, body) = direct(&s, None, Method::GET, path, &[], Vec::new()).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_vm_webhook_denies_running_with_run_strategy_for_a_caller_without_a_certificate() {
    let s = setup().await;
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f9a-1",
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"},
            "name": "both", "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "metadata": {"name": "both", "namespace": "default"},
                "spec": {"running": true, "runStrategy": "Always", "template": {"spec": {
                    "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
                }}},
            },
        },
    });
    let (code, body) = direct(
        &s,
        None,
        Method::POST,
        "/virtualmachines-validate",
        &[],
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "0f9a-1");
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 422);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("Running and RunStrategy are mutually exclusive"),
        "{body}"
    );
    let (code, body) = direct(
        &s,
        None,
        Method::POST,
        "/virtualmachines-validate",
        &[],
        b"not json".to_vec(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

/// A raw POST of `vm` through localkube: (status, warning headers, body).
async fn create_vm_raw(client: &kube::Client, vm: Value) -> (u16, Vec<String>, Value) {
    let request = http::Request::post("/apis/kubevirt.io/v1/namespaces/default/virtualmachines")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&vm).unwrap())
        .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, warnings, serde_json::from_slice(&body).unwrap())
}

fn vm_with(name: &str, strategy: Value) -> Value {
    let mut vm = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
        }}},
    });
    for (k, v) in strategy.as_object().unwrap() {
        vm["spec"][k] = v.clone();
    }
    vm
}

#[tokio::test]
async fn localkube_sends_vm_writes_through_virt_apis_webhooks() {
    let s = setup().await;
    let (code, _, status) = create_vm_raw(
        &s.client,
        vm_with("both", json!({"running": true, "runStrategy": "Always"})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "admission webhook \"virtualmachine-validator.kubevirt.io\" denied the request: Running and \
         RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy \
         instead"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "spec.running");
    let (code, _, status) = create_vm_raw(&s.client, vm_with("neither", json!({}))).await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with("RunStrategy must be specified"),
        "{status}"
    );
    // Admitted with the deprecation warning, and mutated as KubeVirt's webhook does.
    let (code, warnings, vm) =
        create_vm_raw(&s.client, vm_with("legacy", json!({"running": false}))).await;
    assert_eq!(code, 201, "{vm}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("spec.running is deprecated, please use spec.runStrategy instead")),
        "{warnings:?}"
    );
    assert_eq!(
        vm["metadata"]["annotations"]["kubevirt.io/latest-observed-api-version"],
        "v1"
    );
    let firmware = &vm["spec"]["template"]["spec"]["domain"]["firmware"];
    assert_eq!(firmware["uuid"].as_str().map(str::len), Some(36), "{vm}");
    assert_eq!(firmware["serial"].as_str().map(str::len), Some(36), "{vm}");
    assert_eq!(
        vm["spec"]["template"]["spec"]["domain"]["machine"]["type"],
        "q35"
    );
}
