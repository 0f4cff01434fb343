//! Websocket upgrades through localkube's TLS listener reach a mounted API group's router, as
//! KubeVirt's `virtctl console` needs: authenticated first, then handed over intact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as ServerMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const GROUP: &str = "subresources.kubevirt.io";
const SUBPROTOCOL: &str = "plain.kubevirt.io";
const CONSOLE: &str =
    "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/vm-a/console";
/// Generous, only so that a broken upgrade fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// How many requests reached the mounted router's console route.
type Hits = Arc<AtomicUsize>;

/// The console route: refuses a request without KubeVirt's subprotocol, else echoes frames.
async fn console(
    axum::extract::State(hits): axum::extract::State<Hits>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !offered {
        return (
            StatusCode::BAD_REQUEST,
            "subprotocol plain.kubevirt.io needed",
        )
            .into_response();
    }
    ws.protocols([SUBPROTOCOL]).on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            ServerMessage::Binary(b) => ServerMessage::Binary(b),
            ServerMessage::Close(_) => return,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

async fn start() -> (localkube::Server, Hits) {
    let hits = Hits::default();
    let router = Router::new()
        .route(
            "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/console",
            get(console).connect(console),
        )
        .route(
            "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/guestosinfo",
            get(|| async { axum::Json(json!({"guestAgentVersion": "test"})) }),
        )
        .with_state(hits.clone());
    let group = localkube::MountedGroup {
        group: GROUP.into(),
        versions: vec!["v1".into()],
        resources: vec![(
            "v1".into(),
            json!([
                {"name": "virtualmachineinstances/console", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["get"]},
                {"name": "virtualmachineinstances/guestosinfo", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["get"]}
            ]),
        )],
    };
    let server = localkube::LocalKube::builder()
        .mount_group(group, router)
        .start()
        .await
        .expect("localkube starts");
    (server, hits)
}

/// A TLS connection to the server, trusting the CA named in its kubeconfig, speaking `alpn`.
async fn tls_connect(server: &localkube::Server, alpn: &[u8]) -> TlsStream<TcpStream> {
    let kc = kube::config::Kubeconfig::from_yaml(server.kubeconfig()).expect("kubeconfig parses");
    let ca_b64 = kc.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority_data.clone())
        .expect("the kubeconfig names a CA");
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64)
        .expect("CA is base64");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca_pem).expect("CA is PEM"))
        .expect("CA is a certificate");
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(server.addr).await.expect("TCP connect");
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::IpAddress(server.addr.ip().into()), tcp)
        .await
        .expect("TLS handshake with localkube's CA")
}

/// Opens the console websocket with the given bearer token (none: no Authorization header).
async fn open_console(
    server: &localkube::Server,
    token: Option<&str>,
) -> Result<
    (
        WebSocketStream<TlsStream<TcpStream>>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    let mut req = format!("wss://{}{CONSOLE}", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", SUBPROTOCOL.parse().unwrap());
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let tls = tls_connect(server, b"http/1.1").await;
    tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(req, tls))
        .await
        .expect("the handshake ends before the deadline")
}

async fn next_binary<S>(ws: &mut WebSocketStream<S>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame before the deadline")
            .expect("socket open")
            .expect("frame decodes");
        match msg {
            Message::Binary(b) => return b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_upgrade_reaches_the_mounted_group_with_its_subprotocol() {
    let (server, hits) = start().await;
    let (mut ws, resp) = open_console(&server, Some(&server.token))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(SUBPROTOCOL)
    );

    // One large frame comes back byte for byte.
    let big: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i * 7 + i / 251) as u8)
        .collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    let echoed = next_binary(&mut ws).await;
    assert_eq!(echoed.len(), big.len());
    assert!(echoed == big, "the 1 MiB frame comes back unchanged");

    // Many small frames (keystrokes) come back in order, while more are being sent.
    let (mut sink, mut stream) = ws.split();
    let count = 2000u32;
    let sender = tokio::spawn(async move {
        for i in 0..count {
            sink.send(Message::Binary(i.to_be_bytes().to_vec().into()))
                .await
                .unwrap();
        }
        sink
    });
    for i in 0..count {
        let msg = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("a frame before the deadline")
            .expect("socket open")
            .expect("frame decodes");
        assert_eq!(msg, Message::Binary(i.to_be_bytes().to_vec().into()));
    }
    let mut sink = sender.await.unwrap();
    sink.send(Message::Close(None)).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn upgrade_without_credentials_is_refused_before_the_router() {
    let (server, hits) = start().await;
    for token in [None, Some("not-the-token")] {
        match open_console(&server, token).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}")
            }
            Err(e) => panic!("expected a 401 for token {token:?}, got {e}"),
            Ok(_) => panic!("an upgrade with token {token:?} must be refused"),
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the router saw no request");
}

#[tokio::test]
async fn plain_requests_to_the_mounted_group_still_work() {
    let (server, hits) = start().await;
    let client = server.client().await.unwrap();
    let req = http::Request::get(
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/vm-a/guestosinfo",
    )
    .body(vec![])
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(body["guestAgentVersion"], "test");

    // The console route without an upgrade is the router's own answer, not localkube's.
    let req = http::Request::get(CONSOLE).body(vec![]).unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 400, "{e:?}"),
        Err(e) => panic!("expected the router's 400, got {e}"),
        Ok(text) => panic!("a console GET without an upgrade must fail, got {text}"),
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the extractor refused first"
    );
}

#[tokio::test]
async fn http2_extended_connect_reaches_the_mounted_group() {
    let (server, hits) = start().await;
    let io = TokioIo::new(tls_connect(&server, b"h2").await);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("h2 handshake");
    // The server's SETTINGS, which allow extended CONNECT, arrive while the connection runs.
    let mut conn = Box::pin(conn);
    tokio::time::timeout(DEADLINE, async {
        while !conn.is_extended_connect_protocol_enabled() {
            tokio::select! {
                r = &mut conn => panic!("h2 connection ended early: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    })
    .await
    .expect("the server enables extended CONNECT");
    tokio::spawn(conn);

    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://{}{CONSOLE}", server.addr))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", SUBPROTOCOL)
        .header("authorization", format!("Bearer {}", server.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let mut resp = tokio::time::timeout(DEADLINE, send.send_request(req))
        .await
        .expect("a response before the deadline")
        .expect("the CONNECT is answered");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(SUBPROTOCOL)
    );
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .expect("h2 stream upgraded");
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert!(
        next_binary(&mut ws).await == big,
        "the 1 MiB frame comes back unchanged"
    );
    for i in 0..100u32 {
        ws.send(Message::Binary(i.to_be_bytes().to_vec().into()))
            .await
            .unwrap();
        assert_eq!(next_binary(&mut ws).await, i.to_be_bytes());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
