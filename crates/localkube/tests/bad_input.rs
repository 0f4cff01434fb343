//! Bad input gets a clear 4xx `metav1.Status`, and never changes state.

use http::Request;
use kube::Client;
use serde_json::{Value, json};

struct Fixture {
    server: localkube::Server,
    client: Client,
}

async fn fixture() -> Fixture {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    Fixture { server, client }
}

impl Fixture {
    /// Sends a request and returns (HTTP code, reason, message) of the error, or panics on success.
    async fn error(&self, req: Request<Vec<u8>>) -> (u16, String, String) {
        let before = self.server.core().store.current_rv();
        match self.client.request_text(req).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(
                    self.server.core().store.current_rv(),
                    before,
                    "a rejected request must not change state"
                );
                (e.code, e.reason, e.message)
            }
            other => panic!("expected an API error, got {other:?}"),
        }
    }
}

fn post(path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Request<Vec<u8>> {
    Request::post(path)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let f = fixture().await;
    let (code, reason, msg) = f.error(post(CMS, "application/json", "{not json")).await;
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(msg.contains("not valid JSON"), "{msg}");
    let (code, _, msg) = f
        .error(post(CMS, "application/yaml", "metadata: [unclosed"))
        .await;
    assert_eq!(code, 400);
    assert!(msg.contains("YAML"), "{msg}");
    let (code, _, _) = f.error(post(CMS, "application/json", "[1,2]")).await;
    assert_eq!(code, 400);
    let (code, _, _) = f.error(post(CMS, "application/json", "")).await;
    assert_eq!(code, 400);
    let (code, reason, _) = f.error(post(CMS, "text/plain", "{}")).await;
    assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn wrong_kind_or_api_version_is_rejected() {
    let f = fixture().await;
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, _, msg) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!(code, 400);
    assert!(msg.contains("kind"), "{msg}");
    let body = json!({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (code, _, msg) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!(code, 400);
    assert!(msg.contains("API version"), "{msg}");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": 1}});
    let (code, _, msg) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!(code, 400);
    assert!(msg.contains("cannot be handled as a ConfigMap"), "{msg}");
}

#[tokio::test]
async fn invalid_names_are_invalid_with_causes() {
    let f = fixture().await;
    for name in ["Upper", "under_score", "-dash", &"a".repeat(254)] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        let req = post(CMS, "application/json", body.to_string());
        match f.client.request_text(req).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}");
                assert_eq!(e.reason, "Invalid");
                assert!(e.message.contains("metadata.name"), "{}", e.message);
            }
            other => panic!("{name}: expected 422, got {other:?}"),
        }
    }
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
    let (code, _, msg) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!(code, 422);
    assert!(msg.contains("name or generateName is required"), "{msg}");
}

#[tokio::test]
async fn duplicates_are_already_exists() {
    let f = fixture().await;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice"}});
    f.client
        .request_text(post(CMS, "application/json", body.to_string()))
        .await
        .unwrap();
    let (code, reason, msg) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(msg, "configmaps \"twice\" already exists");
}

#[tokio::test]
async fn dry_run_updates_and_patches_write_nothing() {
    let f = fixture().await;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}, "data": {"a": "1"}});
    f.client
        .request_text(post(CMS, "application/json", body.to_string()))
        .await
        .unwrap();
    let before = f.server.core().store.current_rv();
    let patch = Request::patch(format!("{CMS}/d?dryRun=All"))
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"data":{"a":"2"}}"#.to_vec())
        .unwrap();
    let out: Value = serde_json::from_str(&f.client.request_text(patch).await.unwrap()).unwrap();
    assert_eq!(
        out["data"]["a"], "2",
        "a dry run answers with the would-be object"
    );
    let put = Request::put(format!("{CMS}/d?dryRun=All"))
        .header("content-type", "application/json")
        .body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}, "data": {"a": "3"}}).to_string().into_bytes())
        .unwrap();
    f.client.request_text(put).await.unwrap();
    assert_eq!(f.server.core().store.current_rv(), before);
    let now: Value = serde_json::from_str(
        &f.client
            .request_text(Request::get(format!("{CMS}/d")).body(vec![]).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(now["data"]["a"], "1");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let f = fixture().await;
    let big = "x".repeat(4 * 1024 * 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": big}});
    let (code, reason, _) = f
        .error(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!((code, reason.as_str()), (413, "RequestEntityTooLarge"));
}

#[tokio::test]
async fn unknown_fields_follow_field_validation() {
    let f = fixture().await;
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "bogus": true});
    let (code, _, msg) = f
        .error(post(
            &format!("{CMS}?fieldValidation=Strict"),
            "application/json",
            body.to_string(),
        ))
        .await;
    assert_eq!(code, 400);
    assert!(msg.contains("unknown field \"bogus\""), "{msg}");
    // The default (Warn) drops the field and stores the object.
    let text = f
        .client
        .request_text(post(CMS, "application/json", body.to_string()))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("bogus").is_none());
}

#[tokio::test]
async fn paths_methods_and_auth() {
    let f = fixture().await;
    let (code, reason, _) = f
        .error(Request::get(format!("{CMS}/missing")).body(vec![]).unwrap())
        .await;
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let (code, _, _) = f
        .error(Request::get("/api/v1/nosuchthings").body(vec![]).unwrap())
        .await;
    assert_eq!(code, 404);
    let (code, reason, _) = f
        .error(Request::post("/version").body(vec![]).unwrap())
        .await;
    assert_eq!((code, reason.as_str()), (405, "MethodNotAllowed"));
    let (code, _, _) = f
        .error(
            Request::patch(format!("{CMS}/x"))
                .header("content-type", "application/json")
                .body(b"{}".to_vec())
                .unwrap(),
        )
        .await;
    assert_eq!(code, 415);
    // No token: 401 with a Status body.
    let mut cfg = f.server.kube_config().await.unwrap();
    cfg.auth_info = Default::default();
    let anonymous = Client::try_from(cfg).unwrap();
    match anonymous
        .request_text(Request::get("/api/v1/namespaces").body(vec![]).unwrap())
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 401);
            assert_eq!(e.reason, "Unauthorized");
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_gone() {
    let f = fixture().await;
    let rv = f.server.core().store.current_rv();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}});
    f.client
        .request_text(post(CMS, "application/json", body.to_string()))
        .await
        .unwrap();
    f.server.compact();
    let text = f
        .client
        .request_text(
            Request::get(format!("{CMS}?watch=true&resourceVersion={rv}"))
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    let ev: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

/// Sends requests over one HTTP/2 connection (ALPN h2 over TLS), as kubectl and client-go do.
struct H2 {
    send: hyper::client::conn::http2::SendRequest<axum::body::Body>,
    token: String,
}

impl H2 {
    async fn connect(server: &localkube::Server) -> H2 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        use std::sync::Arc;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(server.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        H2 {
            send,
            token: server.token.clone(),
        }
    }

    /// Sends a request; returns the HTTP code and the body, or the transport error.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl Into<axum::body::Body>,
    ) -> Result<(u16, Value), String> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1{path}"))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
        self.send.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| format!("no response: {e}"))?;
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20)
            .await
            .map_err(|e| format!("{code} with a broken body: {e}"))?;
        let v = serde_json::from_slice(&bytes).map_err(|e| format!("{code}: {e}"))?;
        Ok((code, v))
    }
}

/// A request body sent in chunks, which tells how much of it the client got to send.
struct CountedBody {
    chunks: std::vec::IntoIter<bytes::Bytes>,
    sent: usize,
    done: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl CountedBody {
    fn new(total: usize) -> (Self, tokio::sync::oneshot::Receiver<usize>) {
        let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
        let chunks: Vec<_> = (0..total / chunk.len()).map(|_| chunk.clone()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let body = CountedBody {
            chunks: chunks.into_iter(),
            sent: 0,
            done: Some(tx),
        };
        (body, rx)
    }
}

impl futures::Stream for CountedBody {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = self.chunks.next();
        if let Some(c) = &next {
            self.sent += c.len();
        }
        std::task::Poll::Ready(next.map(Ok))
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(self.sent);
        }
    }
}

#[tokio::test]
async fn oversized_bodies_get_a_413_status_over_http2_too() {
    let f = fixture().await;
    let mut h2 = H2::connect(&f.server).await;
    for (method, path, ct) in [
        ("POST", CMS.to_string(), "application/json"),
        ("PATCH", format!("{CMS}/x"), "application/merge-patch+json"),
        ("PUT", format!("{CMS}/x"), "application/json"),
    ] {
        // 8 MiB: far more than the server reads before it refuses, and than h2's windows.
        let total = 8 * 1024 * 1024;
        let (body, sent) = CountedBody::new(total);
        let (code, status) = h2
            .send(method, &path, ct, axum::body::Body::from_stream(body))
            .await
            .unwrap_or_else(|e| panic!("{method} over HTTP/2: {e}"));
        assert_eq!(code, 413, "{status}");
        assert_eq!(status["reason"], "RequestEntityTooLarge");
        assert_eq!(
            status["message"],
            "Request entity too large: limit is 3145728"
        );
        // The server reads the rest rather than resetting the stream mid-upload, which
        // clients such as curl report as a broken stream instead of the 413.
        assert_eq!(
            sent.await.unwrap(),
            total,
            "{method}: the upload was cut off"
        );
    }
    // The connection still serves.
    let (code, _) = h2
        .send("GET", CMS, "application/json", Vec::new())
        .await
        .unwrap();
    assert_eq!(code, 200);
}
