//! Admission webhooks: a TLS webhook server in the test, registered with Validating- and
//! MutatingWebhookConfigurations (by `url` and by an ExternalName Service), gets the
//! AdmissionReviews of creates, updates and deletes of built-in and custom resources, and what
//! it answers is what the client sees: patches stored, denials with their code, message and
//! causes, warnings as `Warning` headers; failure policies, timeouts, selectors, operations,
//! dry runs and bad configurations as kube-apiserver has them.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine;
use serde_json::{Value, json};

use common::{have_kubectl, tls_backend};

/// Generous, only so that a broken thing fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// The webhook server's side: every review it got, as (path, request), and a client of the
/// localkube under test for the webhook that calls back.
#[derive(Clone, Default)]
struct Hooks {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    localkube: Arc<OnceLock<kube::Client>>,
}

impl Hooks {
    fn calls(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The webhook server: what it answers depends on the path.
/// - `/allow`: allowed; `/warn`: allowed with a warning;
/// - `/deny`: denied with a 422, a message and a cause;
/// - `/label/K`: adds the label `K: "yes"` (a JSON patch);
/// - `/sleep`: answers after 3 seconds;
/// - `/callback`: reads the object's namespace from localkube before it allows.
async fn review(State(hooks): State<Hooks>, uri: Uri, body: Bytes) -> axum::Json<Value> {
    let review: Value = serde_json::from_slice(&body).expect("an AdmissionReview");
    let request = review["request"].clone();
    hooks
        .calls
        .lock()
        .unwrap()
        .push((uri.path().to_string(), request.clone()));
    let uid = request["uid"].clone();
    let mut response = json!({"uid": uid, "allowed": true});
    let path = uri.path();
    let route = if path.starts_with("/label") {
        "/label"
    } else {
        path
    };
    match route {
        "/warn" => response["warnings"] = json!(["colour is deprecated, use color"]),
        "/deny" => {
            response = json!({"uid": uid, "allowed": false, "status": {
                "code": 422, "reason": "Invalid", "message": "data.color must be blue",
                "details": {"causes": [{"field": "data.color", "reason": "FieldValueInvalid", "message": "must be blue"}]},
            }});
        }
        "/label" => {
            let key = path
                .strip_prefix("/label/")
                .unwrap_or("mutated")
                .to_string();
            let has_labels = request
                .pointer("/object/metadata/labels")
                .is_some_and(Value::is_object);
            let patch = if has_labels {
                json!([{"op": "add", "path": format!("/metadata/labels/{key}"), "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {key: "yes"}}])
            };
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(b64(serde_json::to_vec(&patch).unwrap()));
        }
        "/sleep" => tokio::time::sleep(Duration::from_secs(3)).await,
        "/callback" => {
            let client = hooks.localkube.get().expect("set at start").clone();
            let ns = request["namespace"].as_str().unwrap_or("default");
            let (status, _, _) =
                send(&client, "GET", &format!("/api/v1/namespaces/{ns}"), None).await;
            assert_eq!(status, 200, "the webhook reads from localkube");
        }
        _ => {}
    }
    axum::Json(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    )
}

/// localkube, a client of it, and the webhook server (certificate for 127.0.0.1 and
/// `hooks.default.svc`, behind the ExternalName Service `default/hooks`).
struct Env {
    server: localkube::Server,
    client: kube::Client,
    hooks: Hooks,
    port: u16,
    ca_bundle: String,
}

async fn start() -> Env {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let hooks = Hooks::default();
    let _ = hooks.localkube.set(client.clone());
    let app = Router::new().fallback(review).with_state(hooks.clone());
    let backend = tls_backend::serve(app, &["127.0.0.1", "hooks.default.svc"], None).await;
    let env = Env {
        server,
        client,
        hooks,
        port: backend.port,
        ca_bundle: b64(&backend.ca_pem),
    };
    env.ok(
        "POST",
        "/api/v1/namespaces/default/services",
        &json!({"metadata": {"name": "hooks"}, "spec": {"type": "ExternalName", "externalName": "localhost"}}),
    )
    .await;
    env
}

/// What an answer was: (status, `Warning` headers, body).
type Reply = (u16, Vec<String>, Value);

async fn send(client: &kube::Client, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(
            body.map(|b| serde_json::to_vec(b).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let resp = tokio::time::timeout(DEADLINE, client.send(req))
        .await
        .expect("an answer before the deadline")
        .expect("the request is sent");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, warnings, body)
}

impl Env {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        send(&self.client, method, path, body).await
    }

    /// A request that must succeed; its body.
    async fn ok(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, _, answer) = self.send(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A webhook served at `path` of the webhook server, by URL.
    fn by_url(&self, name: &str, path: &str, rules: Value) -> Value {
        json!({
            "name": name,
            "clientConfig": {"url": format!("https://127.0.0.1:{}{path}", self.port), "caBundle": self.ca_bundle},
            "rules": rules,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    /// A webhook served at `path`, through the ExternalName Service `default/hooks`.
    fn by_service(&self, name: &str, path: &str, rules: Value) -> Value {
        json!({
            "name": name,
            "clientConfig": {
                "service": {"namespace": "default", "name": "hooks", "port": self.port, "path": path},
                "caBundle": self.ca_bundle,
            },
            "rules": rules,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    async fn configure(&self, kind: &str, name: &str, webhooks: Vec<Value>) {
        let plural = format!("{}s", kind.to_lowercase());
        self.ok(
            "POST",
            &format!("/apis/admissionregistration.k8s.io/v1/{plural}"),
            &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                    "metadata": {"name": name}, "webhooks": webhooks}),
        )
        .await;
    }

    async fn validating(&self, name: &str, webhooks: Vec<Value>) {
        self.configure("ValidatingWebhookConfiguration", name, webhooks)
            .await;
    }

    async fn mutating(&self, name: &str, webhooks: Vec<Value>) {
        self.configure("MutatingWebhookConfiguration", name, webhooks)
            .await;
    }
}

fn configmap_rules(operations: &[&str]) -> Value {
    json!([{"operations": operations, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}])
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"color": "red"}})
}

#[tokio::test]
async fn a_denial_reaches_the_client_with_its_code_message_and_causes() {
    let env = start().await;
    env.validating(
        "deny",
        vec![env.by_url("deny.localkube.test", "/deny", configmap_rules(&["CREATE"]))],
    )
    .await;
    let (status, _, body) = env.send("POST", CONFIGMAPS, Some(&configmap("red"))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["message"],
        "admission webhook \"deny.localkube.test\" denied the request: data.color must be blue"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "data.color");
    assert_eq!(body["details"]["causes"][0]["message"], "must be blue");
    let (status, _, _) = env.send("GET", &format!("{CONFIGMAPS}/red"), None).await;
    assert_eq!(status, 404, "a denied object is not stored");
}

#[tokio::test]
async fn a_mutating_webhook_behind_an_external_name_service_patches_what_is_stored() {
    let env = start().await;
    env.mutating(
        "label",
        vec![env.by_service(
            "label.localkube.test",
            "/label",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    let created = env.ok("POST", CONFIGMAPS, &configmap("patched")).await;
    assert_eq!(created["metadata"]["labels"]["mutated"], "yes", "{created}");
    let (_, _, stored) = env
        .send("GET", &format!("{CONFIGMAPS}/patched"), None)
        .await;
    assert_eq!(stored["metadata"]["labels"]["mutated"], "yes", "{stored}");
    let calls = env.hooks.calls("/label");
    assert_eq!(calls.len(), 1);
    let r = &calls[0];
    assert_eq!(r["operation"], "CREATE");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        r["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(r["requestKind"], r["kind"]);
    assert_eq!(r["name"], "patched");
    assert_eq!(r["namespace"], "default");
    assert_eq!(r["userInfo"]["username"], localkube::access::ADMIN_USER);
    assert_eq!(
        r["userInfo"]["groups"],
        json!(localkube::access::ADMIN_GROUPS)
    );
    assert_eq!(r["object"]["data"]["color"], "red");
    assert_eq!(r["oldObject"], Value::Null);
    assert_eq!(r["dryRun"], false);
    assert_eq!(r["options"]["kind"], "CreateOptions");
}

#[tokio::test]
async fn webhooks_see_the_service_account_that_writes() {
    let env = start().await;
    env.mutating(
        "label",
        vec![env.by_url(
            "label.localkube.test",
            "/label",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.ok(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        &json!({"metadata": {"name": "writer"}}),
    )
    .await;
    env.ok(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &json!({"metadata": {"name": "writer-edit"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-create"},
               "subjects": [{"kind": "ServiceAccount", "name": "writer"}]}),
    )
    .await;
    env.ok(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        &json!({"metadata": {"name": "cm-create"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}),
    )
    .await;
    let issued = env
        .ok(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/writer/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
    let token = issued["status"]["token"].as_str().unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(
        &env.server.kubeconfig().replace(&env.server.token, token),
    )
    .unwrap();
    let writer = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let (status, _, body) = send(&writer, "POST", CONFIGMAPS, Some(&configmap("mine"))).await;
    assert_eq!(status, 201, "{body}");
    let calls = env.hooks.calls("/label");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["userInfo"],
        json!({"username": "system:serviceaccount:default:writer",
               "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]})
    );
}

#[tokio::test]
async fn mutating_webhooks_run_in_order_of_configuration_name_each_on_the_last_patch() {
    let env = start().await;
    // Created in the opposite order: the names decide.
    env.mutating(
        "b-second",
        vec![env.by_url(
            "second.localkube.test",
            "/label/second",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.mutating(
        "a-first",
        vec![env.by_url(
            "first.localkube.test",
            "/label/first",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.validating(
        "check",
        vec![env.by_url(
            "check.localkube.test",
            "/allow",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    let created = env.ok("POST", CONFIGMAPS, &configmap("layered")).await;
    assert_eq!(
        created["metadata"]["labels"],
        json!({"first": "yes", "second": "yes"})
    );
    let first = env.hooks.calls("/label/first");
    let second = env.hooks.calls("/label/second");
    assert_eq!((first.len(), second.len()), (1, 1));
    assert!(first[0]["object"]["metadata"].get("labels").is_none());
    assert_eq!(
        second[0]["object"]["metadata"]["labels"],
        json!({"first": "yes"})
    );
    // Validating webhooks see the object as it will be stored: patched, defaulted, with a uid.
    let checked = &env.hooks.calls("/allow")[0]["object"];
    assert_eq!(
        checked["metadata"]["labels"],
        json!({"first": "yes", "second": "yes"})
    );
    assert!(checked["metadata"]["uid"].is_string(), "{checked}");
}

#[tokio::test]
async fn a_webhook_that_asks_is_called_again_after_a_later_webhook_changed_the_object() {
    let env = start().await;
    let mut again = env.by_url(
        "again.localkube.test",
        "/label/again",
        configmap_rules(&["CREATE"]),
    );
    again["reinvocationPolicy"] = json!("IfNeeded");
    env.mutating("a-again", vec![again]).await;
    env.mutating(
        "b-once",
        vec![env.by_url(
            "once.localkube.test",
            "/label/once",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.ok("POST", CONFIGMAPS, &configmap("twice")).await;
    let again = env.hooks.calls("/label/again");
    assert_eq!(
        again.len(),
        2,
        "called again after once.localkube.test's change"
    );
    assert_eq!(
        again[1]["object"]["metadata"]["labels"],
        json!({"again": "yes", "once": "yes"})
    );
    assert_eq!(
        env.hooks.calls("/label/once").len(),
        1,
        "Never is called once"
    );
}

#[tokio::test]
async fn warnings_reach_the_client_as_warning_headers() {
    let env = start().await;
    env.validating(
        "warn",
        vec![env.by_url("warn.localkube.test", "/warn", configmap_rules(&["CREATE"]))],
    )
    .await;
    let (status, warnings, body) = env
        .send("POST", CONFIGMAPS, Some(&configmap("warned")))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(warnings, ["299 - \"colour is deprecated, use color\""]);
    if !have_kubectl("warnings_reach_the_client_as_warning_headers") {
        return;
    }
    let out = kubectl(
        &env,
        &["create", "configmap", "by-kubectl", "--from-literal=a=b"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: colour is deprecated, use color"),
        "{stderr}"
    );
}

/// Runs kubectl against the in-process localkube.
async fn kubectl(env: &Env, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, env.server.kubeconfig()).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        test_support::run_kubectl(&kubeconfig, dir.path(), &args, None)
    })
    .await
    .unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_webhook_that_is_down_fails_the_request_unless_its_failures_are_ignored() {
    let env = start().await;
    let port = closed_port().await;
    let mut down = env.by_url(
        "down.localkube.test",
        "/allow",
        configmap_rules(&["CREATE"]),
    );
    down["clientConfig"]["url"] = json!(format!("https://127.0.0.1:{port}/allow"));
    env.validating("down", vec![down.clone()]).await;
    let (status, _, body) = env
        .send("POST", CONFIGMAPS, Some(&configmap("failed")))
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["reason"], "InternalError");
    assert_eq!(
        body["message"],
        format!(
            "Internal error occurred: failed calling webhook \"down.localkube.test\": failed to call webhook: Post \"https://127.0.0.1:{port}/allow?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    let cause = body["details"]["causes"][0]["message"].as_str().unwrap();
    assert!(cause.starts_with("failed calling webhook"), "{cause}");
    // The same webhook with failurePolicy Ignore is skipped.
    down["failurePolicy"] = json!("Ignore");
    let (status, _, config) = env
        .send(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/down",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        config["webhooks"][0]["failurePolicy"], "Fail",
        "the default"
    );
    let mut config = config;
    config["webhooks"] = json!([down]);
    env.ok(
        "PUT",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/down",
        &config,
    )
    .await;
    env.ok("POST", CONFIGMAPS, &configmap("ignored")).await;
}

#[tokio::test]
async fn a_webhook_slower_than_its_timeout_fails_the_request_in_time() {
    let env = start().await;
    let mut slow = env.by_url(
        "slow.localkube.test",
        "/sleep",
        configmap_rules(&["CREATE"]),
    );
    slow["timeoutSeconds"] = json!(1);
    env.validating("slow", vec![slow]).await;
    let started = Instant::now();
    let (status, _, body) = env.send("POST", CONFIGMAPS, Some(&configmap("late"))).await;
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "Post \"https://127.0.0.1:{}/sleep?timeout=1s\": context deadline exceeded",
            env.port
        )),
        "{message}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}, not after the webhook's 3s"
    );
}

#[tokio::test]
async fn namespace_and_object_selectors_pick_the_requests_a_webhook_sees() {
    let env = start().await;
    for (ns, labels) in [("watched", json!({"webhooks": "on"})), ("quiet", json!({}))] {
        env.ok(
            "POST",
            "/api/v1/namespaces",
            &json!({"metadata": {"name": ns, "labels": labels}}),
        )
        .await;
    }
    let mut by_namespace = env.by_url("ns.localkube.test", "/allow", configmap_rules(&["CREATE"]));
    by_namespace["namespaceSelector"] = json!({"matchLabels": {"webhooks": "on"}});
    let mut by_object = env.by_url("obj.localkube.test", "/warn", configmap_rules(&["CREATE"]));
    by_object["objectSelector"] =
        json!({"matchExpressions": [{"key": "check", "operator": "In", "values": ["yes"]}]});
    env.validating("selective", vec![by_namespace, by_object])
        .await;
    for ns in ["watched", "quiet"] {
        env.ok(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            &configmap("plain"),
        )
        .await;
    }
    let namespaces: Vec<Value> = env
        .hooks
        .calls("/allow")
        .iter()
        .map(|r| r["namespace"].clone())
        .collect();
    assert_eq!(namespaces, [json!("watched")]);
    assert!(
        env.hooks.calls("/warn").is_empty(),
        "no object had the label"
    );
    let mut labelled = configmap("labelled");
    labelled["metadata"]["labels"] = json!({"check": "yes"});
    let (_, warnings, _) = env
        .send(
            "POST",
            "/api/v1/namespaces/quiet/configmaps",
            Some(&labelled),
        )
        .await;
    assert_eq!(warnings.len(), 1, "the labelled object is checked");
    assert_eq!(env.hooks.calls("/warn")[0]["name"], "labelled");
}

#[tokio::test]
async fn custom_resources_are_admitted_by_their_group_and_resource() {
    let env = start().await;
    env.ok(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.localkube.test"},
            "spec": {"group": "stable.localkube.test", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"schedule": {"type": "string"}}}}}}}]},
        }),
    )
    .await;
    let rules = json!([{"operations": ["CREATE"], "apiGroups": ["stable.localkube.test"], "apiVersions": ["*"], "resources": ["crontabs"], "scope": "Namespaced"}]);
    env.validating(
        "crontabs",
        vec![env.by_url("crontabs.localkube.test", "/deny", rules)],
    )
    .await;
    let (status, _, body) = env
        .send(
            "POST",
            "/apis/stable.localkube.test/v1/namespaces/default/crontabs",
            Some(
                &json!({"apiVersion": "stable.localkube.test/v1", "kind": "CronTab",
                         "metadata": {"name": "nightly"}, "spec": {"schedule": "0 0 * * *"}}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let r = &env.hooks.calls("/deny")[0];
    assert_eq!(r["kind"]["kind"], "CronTab");
    assert_eq!(r["resource"]["group"], "stable.localkube.test");
    assert_eq!(r["object"]["spec"]["schedule"], "0 0 * * *");
    env.ok("POST", CONFIGMAPS, &configmap("unrelated")).await;
    assert_eq!(env.hooks.calls("/deny").len(), 1, "configmaps are not its");
}

#[tokio::test]
async fn a_rule_naming_another_version_of_a_custom_resource_gets_the_object_in_that_version() {
    let env = start().await;
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    env.ok(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.multi.localkube.test"},
            "spec": {"group": "multi.localkube.test", "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "schema": schema},
                    {"name": "v2", "served": true, "storage": false, "schema": schema}]},
        }),
    )
    .await;
    let v1_only = json!([{"operations": ["CREATE"], "apiGroups": ["multi.localkube.test"], "apiVersions": ["v1"], "resources": ["gadgets"]}]);
    env.mutating(
        "gadgets",
        vec![env.by_url("gadgets.localkube.test", "/label/converted", v1_only)],
    )
    .await;
    let created = env
        .ok(
            "POST",
            "/apis/multi.localkube.test/v2/namespaces/default/gadgets",
            &json!({"apiVersion": "multi.localkube.test/v2", "kind": "Gadget", "metadata": {"name": "g"}}),
        )
        .await;
    assert_eq!(created["apiVersion"], "multi.localkube.test/v2");
    assert_eq!(
        created["metadata"]["labels"]["converted"], "yes",
        "{created}"
    );
    let r = &env.hooks.calls("/label/converted")[0];
    assert_eq!(r["kind"]["version"], "v1");
    assert_eq!(r["resource"]["version"], "v1");
    assert_eq!(r["requestKind"]["version"], "v2");
    assert_eq!(r["requestResource"]["version"], "v2");
    assert_eq!(r["object"]["apiVersion"], "multi.localkube.test/v1");
}

#[tokio::test]
async fn a_webhook_without_v1_reviews_fails_as_one_that_cannot_be_called() {
    let env = start().await;
    let mut old = env.by_url("old.localkube.test", "/allow", configmap_rules(&["CREATE"]));
    old["admissionReviewVersions"] = json!(["v1beta1"]);
    env.validating("old", vec![old]).await;
    let (status, _, body) = env.send("POST", CONFIGMAPS, Some(&configmap("old"))).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"],
        "Internal error occurred: failed calling webhook \"old.localkube.test\": could not create admission objects: webhook does not accept known AdmissionReview versions (v1)"
    );
    assert!(env.hooks.calls("/allow").is_empty());
}

#[tokio::test]
async fn connecting_to_a_pod_is_admitted_as_connect() {
    let env = start().await;
    let rules = json!([{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/portforward"]}]);
    env.validating(
        "connect",
        vec![env.by_url("connect.localkube.test", "/deny", rules)],
    )
    .await;
    let (status, _, body) = env
        .send(
            "GET",
            "/api/v1/namespaces/default/pods/p/portforward?ports=8080",
            None,
        )
        .await;
    assert_eq!(status, 422, "denied before the pod is looked for: {body}");
    let r = &env.hooks.calls("/deny")[0];
    assert_eq!(r["operation"], "CONNECT");
    assert_eq!(r["subResource"], "portforward");
    assert_eq!(r["kind"]["kind"], "PodPortForwardOptions");
    assert_eq!(r["object"]["ports"], json!([8080]));
    assert_eq!(r["options"], Value::Null);
}

#[tokio::test]
async fn a_create_only_webhook_is_not_called_on_update_and_an_update_one_sees_the_old_object() {
    let env = start().await;
    env.validating(
        "ops",
        vec![
            env.by_url(
                "create.localkube.test",
                "/allow",
                configmap_rules(&["CREATE"]),
            ),
            env.by_url(
                "update.localkube.test",
                "/warn",
                configmap_rules(&["UPDATE"]),
            ),
        ],
    )
    .await;
    let created = env.ok("POST", CONFIGMAPS, &configmap("ops")).await;
    let mut changed = created.clone();
    changed["data"]["color"] = json!("blue");
    env.ok("PUT", &format!("{CONFIGMAPS}/ops"), &changed).await;
    env.ok(
        "PATCH",
        &format!("{CONFIGMAPS}/ops"),
        &json!({"data": {"color": "green"}}),
    )
    .await;
    assert_eq!(env.hooks.calls("/allow").len(), 1, "CREATE only");
    let updates = env.hooks.calls("/warn");
    assert_eq!(updates.len(), 2, "the PUT and the PATCH");
    for (u, (old, new)) in updates.iter().zip([("red", "blue"), ("blue", "green")]) {
        assert_eq!(u["operation"], "UPDATE");
        assert_eq!(u["oldObject"]["data"]["color"], old);
        assert_eq!(u["object"]["data"]["color"], new);
        assert_eq!(u["options"]["kind"], "UpdateOptions");
    }
}

#[tokio::test]
async fn subresources_are_matched_by_resource_slash_subresource() {
    let env = start().await;
    let rules = json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}]);
    env.validating(
        "status",
        vec![env.by_url("status.localkube.test", "/allow", rules)],
    )
    .await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = env
        .ok(
            "POST",
            pods,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await;
    let mut relabelled = pod.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    env.ok("PUT", &format!("{pods}/p"), &relabelled).await;
    assert!(
        env.hooks.calls("/allow").is_empty(),
        "pods themselves are not named"
    );
    env.ok(
        "PATCH",
        &format!("{pods}/p/status"),
        &json!({"status": {"message": "checked"}}),
    )
    .await;
    let calls = env.hooks.calls("/allow");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["subResource"], "status");
    assert_eq!(calls[0]["requestSubResource"], "status");
    assert_eq!(calls[0]["object"]["status"]["message"], "checked");
}

#[tokio::test]
async fn dry_runs_call_side_effect_free_webhooks_and_are_refused_by_others() {
    let env = start().await;
    env.validating(
        "pure",
        vec![env.by_url(
            "pure.localkube.test",
            "/allow",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    let (status, _, body) = env
        .send(
            "POST",
            &format!("{CONFIGMAPS}?dryRun=All"),
            Some(&configmap("dry")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let calls = env.hooks.calls("/allow");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["dryRun"], true);
    assert_eq!(calls[0]["options"]["dryRun"], json!(["All"]));
    let (status, _, _) = env.send("GET", &format!("{CONFIGMAPS}/dry"), None).await;
    assert_eq!(status, 404, "a dry run stores nothing");
    // v1 refuses sideEffects Some; a configuration stored before (v1beta1) may have it.
    let mut legacy = env.by_url(
        "legacy.localkube.test",
        "/warn",
        configmap_rules(&["CREATE"]),
    );
    legacy["sideEffects"] = json!("Some");
    let key = (
        "admissionregistration.k8s.io".to_string(),
        "validatingwebhookconfigurations".to_string(),
    );
    env.server
        .core()
        .store
        .create(
            &key,
            "",
            "legacy",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                   "metadata": {"name": "legacy", "uid": "1"}, "webhooks": [legacy]}),
        )
        .unwrap();
    let (status, _, body) = env
        .send(
            "POST",
            &format!("{CONFIGMAPS}?dryRun=All"),
            Some(&configmap("dry")),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(
        body["message"],
        "admission webhook \"legacy.localkube.test\" does not support dry run"
    );
    assert!(env.hooks.calls("/warn").is_empty(), "not called");
    env.ok("POST", CONFIGMAPS, &configmap("wet")).await;
    assert_eq!(
        env.hooks.calls("/warn").len(),
        1,
        "called when it is no dry run"
    );
}

#[tokio::test]
async fn bad_configurations_are_refused_with_422_and_kube_field_paths() {
    let env = start().await;
    let mut no_side_effects =
        env.by_url("bad.localkube.test", "/allow", configmap_rules(&["CREATE"]));
    no_side_effects
        .as_object_mut()
        .unwrap()
        .remove("sideEffects");
    let mut cel = env.by_url("cel.localkube.test", "/allow", configmap_rules(&["CREATE"]));
    cel["matchConditions"] =
        json!([{"name": "only-red", "expression": "object.data.color == 'red'"}]);
    let mut slow = env.by_url(
        "slow.localkube.test",
        "/allow",
        configmap_rules(&["CREATE"]),
    );
    slow["timeoutSeconds"] = json!(31);
    let mut both = env.by_url(
        "both.localkube.test",
        "/allow",
        configmap_rules(&["CREATE"]),
    );
    both["clientConfig"]["service"] = json!({"namespace": "default", "name": "hooks"});
    let mut plain_http = env.by_url(
        "http.localkube.test",
        "/allow",
        configmap_rules(&["CREATE"]),
    );
    plain_http["clientConfig"]["url"] = json!("http://127.0.0.1:1/allow");
    // (webhook, field, message)
    let table = [
        (
            no_side_effects,
            "webhooks[0].sideEffects",
            "Required value: must specify one of None, NoneOnDryRun",
        ),
        (
            cel,
            "webhooks[0].matchConditions",
            "Forbidden: localkube does not evaluate CEL match conditions; remove them and select requests with rules, namespaceSelector and objectSelector",
        ),
        (
            slow,
            "webhooks[0].timeoutSeconds",
            "Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        ),
        (
            both,
            "webhooks[0].clientConfig",
            "Required value: exactly one of url or service is required",
        ),
        (
            plain_http,
            "webhooks[0].clientConfig.url",
            "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
        ),
    ];
    for (kind, plural) in [
        (
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
        ),
        (
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
        ),
    ] {
        for (hook, field, message) in &table {
            let (status, _, body) = env
                .send(
                    "POST",
                    &format!("/apis/admissionregistration.k8s.io/v1/{plural}"),
                    Some(
                        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                 "metadata": {"name": "bad"}, "webhooks": [hook]}),
                    ),
                )
                .await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["reason"], "Invalid");
            assert_eq!(
                body["message"],
                format!(
                    "{kind}.admissionregistration.k8s.io \"bad\" is invalid: {field}: {message}"
                )
            );
            assert_eq!(body["details"]["causes"][0]["field"], *field);
        }
    }
}

#[tokio::test]
async fn deletes_are_admitted_with_the_old_object() {
    let env = start().await;
    env.ok("POST", CONFIGMAPS, &configmap("kept")).await;
    env.ok("POST", CONFIGMAPS, &configmap("gone")).await;
    let mut rules = configmap_rules(&["DELETE"]);
    rules[0]["resources"] = json!(["configmaps"]);
    let mut deny_kept = env.by_url("keep.localkube.test", "/deny", rules.clone());
    deny_kept["objectSelector"] = json!({"matchLabels": {"keep": "yes"}});
    env.validating(
        "deletes",
        vec![
            env.by_url("deletes.localkube.test", "/allow", rules),
            deny_kept,
        ],
    )
    .await;
    env.ok(
        "PATCH",
        &format!("{CONFIGMAPS}/kept"),
        &json!({"metadata": {"labels": {"keep": "yes"}}}),
    )
    .await;
    let (status, _, _) = env
        .send(
            "DELETE",
            &format!("{CONFIGMAPS}/gone"),
            Some(&json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(status, 200);
    let r = &env.hooks.calls("/allow")[0];
    assert_eq!(r["operation"], "DELETE");
    assert_eq!(r["name"], "gone");
    assert_eq!(r["object"], Value::Null);
    assert_eq!(r["oldObject"]["metadata"]["name"], "gone");
    assert_eq!(r["oldObject"]["data"]["color"], "red");
    assert_eq!(r["options"]["kind"], "DeleteOptions");
    assert_eq!(r["options"]["propagationPolicy"], "Background");
    let (status, _, body) = env
        .send("DELETE", &format!("{CONFIGMAPS}/kept"), None)
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = env.send("GET", &format!("{CONFIGMAPS}/kept"), None).await;
    assert_eq!(status, 200, "a denied delete leaves the object");
}

#[tokio::test]
async fn webhook_configurations_are_exempt_from_webhooks() {
    let env = start().await;
    let everything = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]);
    env.validating(
        "deny-all",
        vec![env.by_url("all.localkube.test", "/deny", everything)],
    )
    .await;
    let (status, _, _) = env
        .send("POST", CONFIGMAPS, Some(&configmap("blocked")))
        .await;
    assert_eq!(status, 422, "everything else is denied");
    env.mutating(
        "more",
        vec![env.by_url(
            "more.localkube.test",
            "/allow",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    let path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/deny-all";
    let (status, _, body) = env.send("DELETE", path, None).await;
    assert_eq!(status, 200, "{body}");
    env.ok("POST", CONFIGMAPS, &configmap("free")).await;
    assert_eq!(env.hooks.calls("/deny").len(), 1);
}

#[tokio::test]
async fn a_webhook_may_call_back_into_localkube_during_the_request() {
    let env = start().await;
    env.validating(
        "callback",
        vec![env.by_url(
            "callback.localkube.test",
            "/callback",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.mutating(
        "callback",
        vec![env.by_url(
            "callback.localkube.test",
            "/callback",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    env.ok("POST", CONFIGMAPS, &configmap("reentrant")).await;
    assert_eq!(env.hooks.calls("/callback").len(), 2);
}

#[tokio::test]
async fn kubectl_gets_webhook_configurations_with_their_webhook_counts() {
    if !have_kubectl("kubectl_gets_webhook_configurations_with_their_webhook_counts") {
        return;
    }
    let env = start().await;
    env.validating(
        "pair",
        vec![
            env.by_url("one.localkube.test", "/allow", configmap_rules(&["CREATE"])),
            env.by_url("two.localkube.test", "/allow", configmap_rules(&["UPDATE"])),
        ],
    )
    .await;
    env.mutating(
        "single",
        vec![env.by_url("one.localkube.test", "/allow", configmap_rules(&["CREATE"]))],
    )
    .await;
    for (resource, row) in [
        ("validatingwebhookconfigurations", "pair"),
        ("mutatingwebhookconfigurations", "single"),
    ] {
        let out = kubectl(&env, &["get", resource]).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{out:?}");
        let mut lines = stdout.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, ["NAME", "WEBHOOKS", "AGE"], "{stdout}");
        let cells: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let count = if row == "pair" { "2" } else { "1" };
        assert_eq!(&cells[..2], [row, count], "{stdout}");
    }
}

/// The extra latency of one create through a no-op validating webhook: run with
/// `cargo test -p localkube --test webhooks -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_the_latency_of_a_no_op_validating_webhook() {
    const N: usize = 300;
    let env = start().await;
    let run = |prefix: &'static str| {
        let env = &env;
        async move {
            let mut took = Vec::with_capacity(N);
            for i in 0..N {
                let started = Instant::now();
                env.ok("POST", CONFIGMAPS, &configmap(&format!("{prefix}-{i}")))
                    .await;
                took.push(started.elapsed());
            }
            took.sort();
            let mean = took.iter().sum::<Duration>() / N as u32;
            (mean, took[N / 2], took[N * 99 / 100])
        }
    };
    let without = run("plain").await;
    env.validating(
        "noop",
        vec![env.by_url(
            "noop.localkube.test",
            "/allow",
            configmap_rules(&["CREATE"]),
        )],
    )
    .await;
    let with = run("hooked").await;
    assert_eq!(env.hooks.calls("/allow").len(), N);
    println!(
        "{N} creates without a webhook: mean {:?}, p50 {:?}, p99 {:?}",
        without.0, without.1, without.2
    );
    println!(
        "{N} creates with a no-op validating webhook: mean {:?}, p50 {:?}, p99 {:?}",
        with.0, with.1, with.2
    );
}
