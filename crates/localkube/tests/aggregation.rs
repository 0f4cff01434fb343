//! APIService aggregation: a TLS backend (trusting only the front-proxy CA) behind an
//! APIService and an ExternalName Service gets requests through localkube with the
//! authenticated user in `X-Remote-*`, its group shows in discovery, the APIService turns
//! Available, websockets pass through, and a missing Service is a clear 503.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as ServerMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::{have_kubectl, tls_backend};

const GROUP: &str = "widgets.localkube.test";
/// Generous, only so that a broken thing fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// The backend's discovery document.
async fn discovery() -> impl IntoResponse {
    axum::Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/v1"),
        "resources": [{"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget", "verbs": ["get", "list"]}],
    }))
}

/// Echoes who the aggregator says the user is, and whether credentials leaked through.
async fn whoami(headers: HeaderMap) -> impl IntoResponse {
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    axum::Json(json!({
        "user": all("x-remote-user"),
        "groups": all("x-remote-group"),
        "authorization": headers.contains_key("authorization"),
    }))
}

async fn echo_socket(ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if let ServerMessage::Binary(b) = msg
                && socket.send(ServerMessage::Binary(b)).await.is_err()
            {
                return;
            }
        }
    })
}

/// Starts the backend on 127.0.0.1 with a certificate for `api.default.svc`, requiring client
/// certificates signed by `client_ca_pem`. Returns its port and the CA that signed its
/// serving certificate.
async fn start_backend(client_ca_pem: &str) -> (u16, String) {
    let app = Router::new()
        .route(&format!("/apis/{GROUP}/v1"), get(discovery))
        .route(
            &format!("/apis/{GROUP}/v1/namespaces/{{ns}}/widgets"),
            get(whoami),
        )
        .route(
            &format!("/apis/{GROUP}/v1/namespaces/{{ns}}/widgets/echo/ws"),
            get(echo_socket),
        );
    let backend = tls_backend::serve(app, &["api.default.svc"], Some(client_ca_pem)).await;
    (backend.port, backend.ca_pem)
}

/// localkube with the backend registered: Service `default/api` (ExternalName localhost)
/// and APIService `v1.<GROUP>`, plus `v1.missing.localkube.test` whose Service does not exist.
async fn start() -> (localkube::Server, kube::Client) {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let (port, backend_ca) = start_backend(&server.front_proxy().ca_pem).await;
    let client = server.client().await.unwrap();
    let post = |path: &str, body: Value| {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let client = client.clone();
        async move { client.request_text(req).await.expect("create") }
    };
    post(
        "/api/v1/namespaces/default/services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
               "spec": {"type": "ExternalName", "externalName": "localhost"}}),
    )
    .await;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(backend_ca);
    post(
        "/apis/apiregistration.k8s.io/v1/apiservices",
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
               "metadata": {"name": format!("v1.{GROUP}")},
               "spec": {"group": GROUP, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                        "service": {"namespace": "default", "name": "api", "port": port},
                        "caBundle": ca_bundle}}),
    )
    .await;
    post(
        "/apis/apiregistration.k8s.io/v1/apiservices",
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
               "metadata": {"name": "v1.missing.localkube.test"},
               "spec": {"group": "missing.localkube.test", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                        "service": {"namespace": "default", "name": "nope"}, "insecureSkipTLSVerify": true}}),
    )
    .await;
    (server, client)
}

/// GET `path` with extra headers: (status, body as JSON or a string).
async fn get_json(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = http::Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        DEADLINE,
        client.send(req.body(kube::client::Body::empty()).unwrap()),
    )
    .await
    .expect("an answer before the deadline")
    .expect("the request is sent");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

/// Polls the APIService until its Available condition has `status`; returns the condition.
async fn wait_available(client: &kube::Client, name: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, obj) = get_json(
            client,
            &format!("/apis/apiregistration.k8s.io/v1/apiservices/{name}"),
            &[],
        )
        .await;
        let cond = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available").cloned());
        if let Some(c) = cond.filter(|c| c["status"] == status) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never became Available={status}: {obj}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn requests_reach_the_backend_as_the_authenticated_user() {
    let (_server, client) = start().await;
    let path = format!("/apis/{GROUP}/v1/namespaces/default/widgets");
    let (status, body) = get_json(
        &client,
        &path,
        &[("X-Remote-User", "mallory"), ("X-Remote-Group", "evil")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!([localkube::access::ADMIN_USER]));
    assert_eq!(
        body["groups"],
        json!(["system:masters", "system:authenticated"]),
        "the client's X-Remote-Group is not passed"
    );
    assert_eq!(body["authorization"], false, "the bearer token stays");
}

#[tokio::test]
async fn service_account_requests_are_authorized_and_reach_the_backend_as_themselves() {
    let (server, admin) = start().await;
    let post = |path: &str, body: Value| {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let admin = admin.clone();
        async move { admin.request::<Value>(req).await.expect("create") }
    };
    post(
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"metadata": {"name": "reader"}}),
    )
    .await;
    let issued = post(
        "/api/v1/namespaces/default/serviceaccounts/reader/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await;
    let token = issued["status"]["token"].as_str().unwrap();
    let kc =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig().replace(&server.token, token))
            .unwrap();
    let reader = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let path = format!("/apis/{GROUP}/v1/namespaces/default/widgets");
    let (status, body) = get_json(&reader, &path, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "widgets.{GROUP} is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"widgets\" in API group \"{GROUP}\" in the namespace \"default\""
        )
    );
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        json!({"metadata": {"name": "widgets"},
               "rules": [{"apiGroups": [GROUP], "resources": ["widgets"], "verbs": ["list"]}]}),
    )
    .await;
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"metadata": {"name": "reader-widgets"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "widgets"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader"}]}),
    )
    .await;
    let (status, body) = get_json(&reader, &path, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user"],
        json!(["system:serviceaccount:default:reader"])
    );
    assert_eq!(
        body["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
}

#[tokio::test]
async fn the_group_is_discovered_and_the_api_service_available() {
    let (_server, client) = start().await;
    let cond = wait_available(&client, &format!("v1.{GROUP}"), "True").await;
    assert_eq!(cond["reason"], "Passed");
    let (_, groups) = get_json(&client, "/apis", &[]).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == GROUP),
        "{groups}"
    );
    let (_, group) = get_json(&client, &format!("/apis/{GROUP}"), &[]).await;
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        format!("{GROUP}/v1")
    );
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let (_, aggregated) = get_json(&client, "/apis", &[("accept", accept)]).await;
    let item = aggregated["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == GROUP)
        .cloned()
        .unwrap_or_else(|| panic!("{GROUP} in aggregated discovery: {aggregated}"));
    assert_eq!(item["versions"][0]["resources"][0]["resource"], "widgets");
    // The group version's own document comes from the backend.
    let (status, resources) = get_json(&client, &format!("/apis/{GROUP}/v1"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(resources["resources"][0]["kind"], "Widget");
}

#[tokio::test]
async fn a_missing_service_is_a_clear_503_and_not_available() {
    let (server, client) = start().await;
    let (status, body) = raw_get(
        &server,
        "/apis/missing.localkube.test/v1/namespaces/default/things",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("service/nope") && message.contains("not present"),
        "{message}"
    );
    let cond = wait_available(&client, "v1.missing.localkube.test", "False").await;
    assert_eq!(cond["reason"], "ServiceNotFound");
}

/// A TLS connection to localkube (HTTP/1.1), trusting the CA of its kubeconfig.
async fn connect(server: &localkube::Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let kc = kube::config::Kubeconfig::from_yaml(server.kubeconfig()).unwrap();
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(
            kc.clusters[0]
                .cluster
                .as_ref()
                .and_then(|c| c.certificate_authority_data.clone())
                .unwrap(),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca_pem).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::IpAddress(server.addr.ip().into()), tcp)
        .await
        .unwrap()
}

/// One GET without kube-rs (which retries 503s): (status, body as JSON).
async fn raw_get(server: &localkube::Server, path: &str) -> (u16, Value) {
    let tls = connect(server).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", server.addr.to_string())
        .header("authorization", format!("Bearer {}", server.token))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("an answer before the deadline")
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn websocket_upgrades_pass_through_to_the_backend() {
    let (server, _client) = start().await;
    let tls = connect(&server).await;
    let mut req = format!(
        "wss://{}/apis/{GROUP}/v1/namespaces/default/widgets/echo/ws",
        server.addr
    )
    .into_client_request()
    .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    let (mut ws, resp) = tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(req, tls))
        .await
        .expect("the handshake ends before the deadline")
        .expect("the upgrade succeeds");
    assert_eq!(resp.status(), 101);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(payload.clone().into()))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame before the deadline")
            .expect("socket open")
            .expect("frame decodes");
        match msg {
            Message::Binary(b) => {
                assert!(b.to_vec() == payload, "the frame comes back unchanged");
                break;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn kubectl_gets_api_services() {
    if !have_kubectl("kubectl_gets_api_services") {
        return;
    }
    let (server, client) = start().await;
    wait_available(&client, &format!("v1.{GROUP}"), "True").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let args = ["get", "apiservices"];
        test_support::kubectl_stdout(
            &args,
            test_support::run_kubectl(&kubeconfig, &dir_path, &args, None),
        )
    })
    .await
    .unwrap();
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("v1.{GROUP}")))
        .unwrap_or_else(|| panic!("no row for the APIService: {out}"));
    assert!(row.contains("default/api") && row.contains("True"), "{row}");
    let missing = out
        .lines()
        .find(|l| l.starts_with("v1.missing.localkube.test"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(missing.contains("False (ServiceNotFound)"), "{missing}");
}
