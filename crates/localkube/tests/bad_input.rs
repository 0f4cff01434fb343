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
