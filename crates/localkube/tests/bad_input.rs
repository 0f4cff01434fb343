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

impl Fixture {
    /// Sends a request and returns its HTTP code and body, as sent (a Status for errors).
    async fn raw(&self, req: Request<Vec<u8>>) -> (u16, Value) {
        let (parts, body) = req.into_parts();
        let req = Request::from_parts(parts, kube::client::Body::from(body));
        let resp = self.client.send(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect_bytes().await.unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{code}: {e}: {}", String::from_utf8_lossy(&bytes)));
        (code, v)
    }

    /// Sends a request that must be refused; returns its Status, after checking that the
    /// state did not change.
    async fn refused(&self, req: Request<Vec<u8>>) -> Value {
        let before = self.server.core().store.current_rv();
        let (code, status) = self.raw(req).await;
        assert!(code >= 400, "expected a refusal, got {code}: {status}");
        assert_eq!(status["code"], code, "{status}");
        assert_eq!(
            self.server.core().store.current_rv(),
            before,
            "a rejected request must not change state"
        );
        status
    }

    async fn create(&self, path: &str, body: Value) {
        let (code, v) = self
            .raw(post(path, "application/json", body.to_string()))
            .await;
        assert_eq!(code, 201, "{v}");
    }
}

fn patch(path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Request<Vec<u8>> {
    Request::patch(path)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Vec<u8>> {
    Request::get(path).body(vec![]).unwrap()
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A JSON patch that adds a 1 KiB map and then copies the map into itself `copies` times,
/// doubling the document each time.
fn doubling_patch(copies: usize) -> Vec<u8> {
    let mut ops = vec![json!({"op": "add", "path": "/data", "value": {"k0": "x".repeat(1024)}})];
    for n in 1..=copies {
        ops.push(json!({"op": "copy", "from": "/data", "path": format!("/data/k{n}")}));
    }
    serde_json::to_vec(&ops).unwrap()
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

const JSON_PATCH: &str = "application/json-patch+json";

#[tokio::test]
async fn json_patches_are_bounded_in_operations_and_growth() {
    let f = fixture().await;
    f.create(
        CMS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}}),
    )
    .await;
    let path = format!("{CMS}/p");
    let tests = |n: usize| {
        serde_json::to_vec(&vec![
            json!({"op": "test", "path": "/data/a", "value": "1"});
            n
        ])
        .unwrap()
    };
    let status = f.refused(patch(&path, JSON_PATCH, tests(10_001))).await;
    assert_eq!(status["code"], 413);
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    let (code, _) = f.raw(patch(&path, JSON_PATCH, tests(10_000))).await;
    assert_eq!(code, 200);

    // 13 copies would add 8 MiB: the copies stop at kube-apiserver's 3 MiB, with its answer.
    let generic = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid", "details": {}, "code": 422});
    let status = f
        .refused(patch(&path, JSON_PATCH, doubling_patch(13)))
        .await;
    assert_eq!(status, generic);
    // 22 copies would make 4 GiB: refused as soon, without the memory.
    let before = rss_kib();
    let body = doubling_patch(22);
    assert!(body.len() < 3000);
    let status = f.refused(patch(&path, JSON_PATCH, body)).await;
    assert_eq!(status, generic);
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 200 * 1024, "the patch took {grown} KiB");
}

#[tokio::test]
async fn patch_results_are_bounded_for_every_patch_type() {
    let f = fixture().await;
    f.create(
        CMS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "grow"}, "data": {"a": "x".repeat(1_000_000)}}),
    )
    .await;
    let path = format!("{CMS}/grow?fieldManager=test");
    let more = "y".repeat(2_500_000);
    let merge = json!({"data": {"b": more}}).to_string();
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "grow"}, "data": {"b": more}})
        .to_string();
    let ops = json!([{"op": "add", "path": "/data/b", "value": more}]).to_string();
    for (ct, body) in [
        ("application/merge-patch+json", &merge),
        ("application/strategic-merge-patch+json", &merge),
        ("application/apply-patch+yaml", &apply),
        (JSON_PATCH, &ops),
    ] {
        let status = f.refused(patch(&path, ct, body.clone())).await;
        assert_eq!(status["code"], 413, "{ct}: {status}");
        assert_eq!(status["reason"], "RequestEntityTooLarge");
        let msg = status["message"].as_str().unwrap();
        assert!(
            msg.starts_with("Request entity too large: the patched object is"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn names_in_paths_are_decoded_and_checked() {
    let f = fixture().await;
    f.create(
        CMS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "base"}}),
    )
    .await;
    let (code, v) = f.raw(get(&format!("{CMS}/ba%73e"))).await;
    assert_eq!((code, v["metadata"]["name"].as_str()), (200, Some("base")));
    let status = f.refused(get(&format!("{CMS}/a%3Fb"))).await;
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"a?b\" not found", "reason": "NotFound",
            "details": {"name": "a?b", "kind": "configmaps"}, "code": 404})
    );
    // An escaped slash separates segments, as in kube-apiserver.
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound",
        "details": {}, "code": 404});
    assert_eq!(f.refused(get(&format!("{CMS}/a%2Fb"))).await, not_found);
    let delete = Request::delete(format!("{CMS}/a%2Fb"))
        .body(vec![])
        .unwrap();
    assert_eq!(f.refused(delete).await, not_found);
    for (segment, name, why) in [
        ("%2E%2E", "..", "may not be '..'"),
        ("..", "..", "may not be '..'"),
        (".", ".", "may not be '.'"),
        ("a%25b", "a%b", "may not contain '%'"),
    ] {
        let status = f.refused(get(&format!("{CMS}/{segment}"))).await;
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("Name parameter invalid: \"{name}\": {why}"),
                "reason": "BadRequest", "code": 400}),
            "{segment}"
        );
    }
    let put = Request::put(format!("{CMS}/a%3Fb"))
        .header("content-type", "application/json")
        .body(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a?b"}})
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let status = f.refused(put).await;
    assert_eq!(status["message"], "configmaps \"a?b\" not found");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a?b"}});
    let status = f
        .refused(post(CMS, "application/json", body.to_string()))
        .await;
    assert_eq!(
        status["message"],
        "ConfigMap \"a?b\" is invalid: metadata.name: Invalid value: \"a?b\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

/// The message and causes of an Invalid status.
fn invalid(status: &Value) -> (String, Vec<(String, String, String)>) {
    assert_eq!(status["code"], 422, "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    let causes = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["reason"].as_str().unwrap().to_string(),
                c["field"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (status["message"].as_str().unwrap().to_string(), causes)
}

fn cause(reason: &str, field: &str, message: &str) -> (String, String, String) {
    (reason.into(), field.into(), message.into())
}

const RANGE: &str = "must be between 1 and 65535, inclusive";

#[tokio::test]
async fn service_ports_are_validated() {
    let f = fixture().await;
    let svcs = "/api/v1/namespaces/default/services";
    let svc = |name: &str, ports: Value| {
        post(
            svcs,
            "application/json",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"type": "ClusterIP", "selector": {"app": "x"}, "ports": ports}})
            .to_string(),
        )
    };
    // The targetPort defaults to the port, and is checked after that.
    let (msg, causes) = invalid(&f.refused(svc("s1a", json!([{"port": 70000}]))).await);
    assert_eq!(
        msg,
        format!(
            "Service \"s1a\" is invalid: [spec.ports[0].port: Invalid value: 70000: {RANGE}, spec.ports[0].targetPort: Invalid value: 70000: {RANGE}]"
        )
    );
    assert_eq!(
        causes,
        vec![
            cause(
                "FieldValueInvalid",
                "spec.ports[0].port",
                &format!("Invalid value: 70000: {RANGE}")
            ),
            cause(
                "FieldValueInvalid",
                "spec.ports[0].targetPort",
                &format!("Invalid value: 70000: {RANGE}")
            ),
        ]
    );
    let (msg, _) = invalid(
        &f.refused(svc("s1c", json!([{"port": 80, "targetPort": 70000}])))
            .await,
    );
    assert_eq!(
        msg,
        format!(
            "Service \"s1c\" is invalid: spec.ports[0].targetPort: Invalid value: 70000: {RANGE}"
        )
    );
    let (msg, _) = invalid(
        &f.refused(svc("s1d", json!([{"port": 80, "targetPort": "bad_name!"}])))
            .await,
    );
    assert_eq!(
        msg,
        "Service \"s1d\" is invalid: spec.ports[0].targetPort: Invalid value: \"bad_name!\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    );
    let (msg, _) = invalid(
        &f.refused(svc(
            "s1e",
            json!([{"port": 80, "targetPort": "averyveryverylongportname"}]),
        ))
        .await,
    );
    assert_eq!(
        msg,
        "Service \"s1e\" is invalid: spec.ports[0].targetPort: Invalid value: \"averyveryverylongportname\": must be no more than 15 characters"
    );
    let (msg, causes) = invalid(
        &f.refused(svc("s1g", json!([{"port": 80}, {"port": 81}])))
            .await,
    );
    assert_eq!(
        msg,
        "Service \"s1g\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value]"
    );
    assert_eq!(causes[0].0, "FieldValueRequired");
    let (code, _) = f
        .raw(svc("s1f", json!([{"port": 80, "targetPort": "http"}])))
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn pod_specs_are_validated_as_kube_does() {
    let f = fixture().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |name: &str, extra: Value| {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        post(
            pods,
            "application/json",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
                .to_string(),
        )
    };
    let (msg, _) = invalid(
        &f.refused(pod("p2b", json!({"activeDeadlineSeconds": -1})))
            .await,
    );
    assert_eq!(
        msg,
        "Pod \"p2b\" is invalid: spec.activeDeadlineSeconds: Invalid value: -1: must be between 1 and 2147483647, inclusive"
    );
    // kube-apiserver 1.24 stores a negative grace period as given.
    let (code, v) = f
        .raw(pod("p2a", json!({"terminationGracePeriodSeconds": -5})))
        .await;
    assert_eq!(code, 201);
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], -5);
}

const KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

#[tokio::test]
async fn config_map_and_secret_keys_are_validated() {
    let f = fixture().await;
    let cm = |name: &str, fields: Value| {
        let mut body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        post(CMS, "application/json", body.to_string())
    };
    let (msg, causes) = invalid(&f.refused(cm("c3a", json!({"data": {"a/b": "v"}}))).await);
    assert_eq!(
        msg,
        format!("ConfigMap \"c3a\" is invalid: data[a/b]: Invalid value: \"a/b\": {KEY_RULE}")
    );
    assert_eq!(
        causes,
        vec![cause(
            "FieldValueInvalid",
            "data[a/b]",
            &format!("Invalid value: \"a/b\": {KEY_RULE}")
        )]
    );
    // The value is Go-quoted; the field holds the key as it is.
    let (msg, causes) = invalid(
        &f.refused(cm("c3b", json!({"data": {"a\u{0}b": "v"}})))
            .await,
    );
    assert_eq!(
        msg,
        format!(
            "ConfigMap \"c3b\" is invalid: data[a\u{0}b]: Invalid value: \"a\\x00b\": {KEY_RULE}"
        )
    );
    assert_eq!(causes[0].1, "data[a\u{0}b]");
    let (msg, _) = invalid(&f.refused(cm("c3d", json!({"data": {"..": "v"}}))).await);
    assert_eq!(
        msg,
        "ConfigMap \"c3d\" is invalid: data[..]: Invalid value: \"..\": must not be '..'"
    );
    let (msg, _) = invalid(
        &f.refused(cm("c3f", json!({"binaryData": {"x/y": "dg=="}})))
            .await,
    );
    assert_eq!(
        msg,
        format!(
            "ConfigMap \"c3f\" is invalid: binaryData[x/y]: Invalid value: \"x/y\": {KEY_RULE}"
        )
    );
    let (_, causes) = invalid(
        &f.refused(cm(
            "both",
            json!({"data": {"k": "v"}, "binaryData": {"k": "dg=="}}),
        ))
        .await,
    );
    assert_eq!(
        causes,
        vec![
            cause(
                "FieldValueInvalid",
                "data[k]",
                "Invalid value: \"k\": duplicate of key present in binaryData"
            ),
            cause(
                "FieldValueInvalid",
                "binaryData[k]",
                "Invalid value: \"k\": duplicate of key present in data"
            ),
        ]
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a/b": "v"}});
    let (msg, _) = invalid(
        &f.refused(post(
            "/api/v1/namespaces/default/secrets",
            "application/json",
            secret.to_string(),
        ))
        .await,
    );
    assert_eq!(
        msg,
        format!("Secret \"s\" is invalid: data[a/b]: Invalid value: \"a/b\": {KEY_RULE}")
    );
    let (code, _) = f.raw(cm("c3e", json!({"data": {"a.b_c-d": "v"}}))).await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn list_options_are_validated() {
    let f = fixture().await;
    let status = f
        .refused(get(&format!("{CMS}?resourceVersionMatch=Bogus")))
        .await;
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\"]",
            "reason": "Invalid",
            "details": {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [
                {"reason": "FieldValueForbidden", "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided", "field": "resourceVersionMatch"},
                {"reason": "FieldValueNotSupported", "message": "Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\"", "field": "resourceVersionMatch"},
            ]},
            "code": 422})
    );
    let status = f
        .refused(get(&format!(
            "{CMS}?resourceVersionMatch=Exact&resourceVersion=0"
        )))
        .await;
    assert_eq!(
        status["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
    );
    for q in [
        "timeoutSeconds=abc",
        "limit=abc",
        "watch=1&timeoutSeconds=abc",
    ] {
        let status = f.refused(get(&format!("{CMS}?{q}"))).await;
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "strconv.ParseInt: parsing \"abc\": invalid syntax",
                "reason": "BadRequest", "code": 400}),
            "{q}"
        );
    }
    let (code, v) = f
        .raw(get(&format!(
            "{CMS}?resourceVersionMatch=NotOlderThan&resourceVersion=1&limit=5"
        )))
        .await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("ConfigMapList")));
}

#[tokio::test]
async fn writes_may_not_rename_move_or_change_the_uid() {
    let f = fixture().await;
    f.create(
        CMS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "1"}}),
    )
    .await;
    let path = format!("{CMS}/cm1?fieldManager=test");
    let uid = "00000000-0000-0000-0000-000000000000";
    for (field, value, code, message) in [
        ("name", "other", 400, "the name of the object (other) does not match the name on the URL (cm1)".to_string()),
        ("namespace", "kube-system", 400, "the namespace of the object (kube-system) does not match the namespace on the request (default)".to_string()),
        ("uid", uid, 422, format!("ConfigMap \"cm1\" is invalid: metadata.uid: Invalid value: \"{uid}\": field is immutable")),
    ] {
        let mut meta = json!({"name": "cm1"});
        meta[field] = json!(value);
        let merge = json!({"metadata": {field: value}}).to_string();
        let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "1"}})
            .to_string();
        let ops = json!([{"op": "replace", "path": format!("/metadata/{field}"), "value": value}])
            .to_string();
        for (ct, body) in [
            (JSON_PATCH, &ops),
            ("application/merge-patch+json", &merge),
            ("application/strategic-merge-patch+json", &merge),
            ("application/apply-patch+yaml", &apply),
        ] {
            let status = f.refused(patch(&path, ct, body.clone())).await;
            assert_eq!(status["code"], code, "{field} by {ct}: {status}");
            assert_eq!(status["message"], message.as_str(), "{field} by {ct}");
            if field == "uid" {
                // kube-apiserver lists this cause twice.
                assert_eq!(status["details"]["causes"].as_array().unwrap().len(), 2);
            }
        }
        let put = Request::put(format!("{CMS}/cm1"))
            .header("content-type", "application/json")
            .body(apply.into_bytes())
            .unwrap();
        let status = f.refused(put).await;
        if field == "uid" {
            // A uid in a PUT is a precondition.
            assert_eq!(status["code"], 409);
            let msg = status["message"].as_str().unwrap();
            assert!(msg.starts_with(&format!("Operation cannot be fulfilled on configmaps \"cm1\": StorageError: invalid object, Code: 4, Key: /registry/configmaps/default/cm1, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: ")), "{msg}");
        } else {
            assert_eq!((status["code"].clone(), status["message"].clone()), (json!(code), json!(message)));
        }
    }
}

#[tokio::test]
async fn apply_bodies_must_be_objects() {
    let f = fixture().await;
    let path = format!("{CMS}/cm2?fieldManager=test");
    let apply = "application/apply-patch+yaml";
    for (body, what) in [
        ("[1,2]", "array"),
        ("\"hello\"", "string"),
        ("42", "number"),
        ("- a", "array"),
    ] {
        let status = f.refused(patch(&path, apply, body)).await;
        assert_eq!(
            status["message"],
            format!(
                "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {what} into Go value of type map[string]interface {{}}"
            ),
            "{body}"
        );
    }
    for body in ["null", ""] {
        let status = f.refused(patch(&path, apply, body)).await;
        assert_eq!(
            status["message"],
            "Incorrect version specified in apply patch. Specified patch version: , expected: v1"
        );
    }
}

#[tokio::test]
async fn yaml_errors_are_one_sentence_about_the_input() {
    let f = fixture().await;
    let yaml = "application/yaml";
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n";
    let many = format!("{head}data:\n  list: [{}]\n", vec!["1"; 250_001].join(","));
    assert!(many.len() < 3 * 1024 * 1024);
    let deep = format!("{head}data: {}1{}\n", "{a: ".repeat(65), "}".repeat(65));
    let dup = format!("{head}  name: z\n");
    for (body, want) in [
        (
            "metadata: [unclosed".to_string(),
            "the request body is not valid YAML: unclosed bracket '[' at line 1, column 11"
                .to_string(),
        ),
        (
            format!("{head}data:\n  : v\n"),
            "the YAML document has an empty mapping key at line 6, column 3".to_string(),
        ),
        (
            many,
            "the YAML document is too large: more than 250000 nodes".to_string(),
        ),
        (
            deep,
            "the YAML document nests deeper than 64 levels".to_string(),
        ),
        (
            dup,
            "the YAML document has a duplicate key \"name\" at line 5, column 3".to_string(),
        ),
    ] {
        let status = f.refused(post(CMS, yaml, body)).await;
        assert_eq!(status["code"], 400);
        assert_eq!(status["message"], want.as_str());
    }
}
