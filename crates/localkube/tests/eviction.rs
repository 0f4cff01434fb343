//! pods/eviction and PodDisruptionBudgets through kubectl against the real localkube binary:
//! `kubectl drain` evicts (discovery lists the subresource) as far as the budget that the
//! disruption controller keeps allows, and every refusal is kube-apiserver's.

mod common;

use common::{Localkube, have_kubectl};
use serde_json::{Value, json};

fn run_ready(lk: &Localkube, names: &[&str]) {
    for name in names {
        lk.ok(&["run", name, "--image=nginx:1.27", "--labels=app=web"]);
    }
    for name in names {
        lk.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=20s",
        ]);
    }
}

fn json_of(lk: &Localkube, args: &[&str]) -> Value {
    serde_json::from_str(&lk.ok(args)).expect("JSON from kubectl")
}

/// POSTs an Eviction body with `kubectl create --raw`; the output (stdout on success, stderr
/// otherwise) and whether it succeeded.
fn evict_raw(lk: &Localkube, pod: &str, body: &Value) -> (bool, String) {
    let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    let out = lk.kubectl_stdin(
        &["create", "--raw", &path, "-f", "-"],
        Some(&body.to_string()),
    );
    let text = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    (out.status.success(), text)
}

fn eviction(pod: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}})
}

fn pods_left(lk: &Localkube) -> Vec<String> {
    let names = lk.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    names.lines().map(str::to_string).collect()
}

/// `kubectl drain` of the app's pods, which a budget refuses at least once before `timeout`.
fn drain_is_refused(lk: &Localkube, node: &str, timeout: &str) {
    let timeout = format!("--timeout={timeout}");
    let stderr = lk.fails(&["drain", node, "--pod-selector=app=web", "--force", &timeout]);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
}

#[test]
fn drain_evicts_only_what_the_disruption_budget_allows() {
    if !have_kubectl("drain_evicts_only_what_the_disruption_budget_allows") {
        return;
    }
    let lk = Localkube::start();
    run_ready(&lk, &["web-1", "web-2", "web-3"]);
    // kubectl's typed create speaks protobuf.
    lk.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    let table = lk.ok(&["get", "pdb", "web"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["web", "2", "N/A"], "{table}");
    // The controller counts three ready pods where two must stay: one may go.
    let allowed = || {
        lk.ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ])
    };
    lk.eventually(20, "one disruption allowed", || allowed() == "1");

    // The drain cordons the node, evicts one pod, is refused the others, and gives up at its
    // timeout. (A budget nobody has processed answers 429 with Retry-After: 10, which kubectl's
    // client obeys ten times over; the last test has it.)
    let node = "localkube-node";
    drain_is_refused(&lk, node, "5s");
    lk.eventually(20, "one pod evicted", || pods_left(&lk).len() == 2);
    let spec = json_of(&lk, &["get", "node", node, "-o", "json"]);
    assert_eq!(spec["spec"]["unschedulable"], true);
    lk.eventually(20, "the budget counted again", || {
        let status = json_of(&lk, &["get", "pdb", "web", "-o", "json"])["status"].clone();
        status["currentHealthy"] == 2 && status["disruptionsAllowed"] == 0
    });
    let status = json_of(&lk, &["get", "pdb", "web", "-o", "json"])["status"].clone();
    let condition = &status["conditions"][0];
    assert_eq!(
        (
            &condition["type"],
            &condition["status"],
            &condition["reason"]
        ),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        ),
        "{status}"
    );

    // While cordoned, a new pod waits unbound, as a cluster's scheduler leaves it; the uncordon
    // lets it in.
    lk.ok(&["run", "late", "--image=nginx:1.27"]);
    let scheduled = || {
        let pod = json_of(&lk, &["get", "pod", "late", "-o", "json"]);
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == "PodScheduled")
    };
    lk.eventually(20, "late marked unschedulable", || {
        scheduled().is_some_and(|c| c["status"] == "False")
    });
    let condition = scheduled().unwrap();
    assert_eq!(
        (&condition["reason"], &condition["message"]),
        (
            &json!("Unschedulable"),
            &json!("0/1 nodes are available: 1 node(s) were unschedulable.")
        ),
    );
    let pod = json_of(&lk, &["get", "pod", "late", "-o", "json"]);
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    let events = lk.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=late",
    ]);
    assert!(
        events.contains("FailedScheduling") && events.contains("Warning"),
        "{events}"
    );
    lk.ok(&["uncordon", node]);
    lk.ok(&["wait", "--for=condition=Ready", "pod/late", "--timeout=20s"]);
}

#[test]
fn eviction_bodies_and_budgets_get_kube_apiservers_answers() {
    if !have_kubectl("eviction_bodies_and_budgets_get_kube_apiservers_answers") {
        return;
    }
    let lk = Localkube::start();
    run_ready(&lk, &["web-1", "web-2"]);

    let (ok, out) = evict_raw(&lk, "absent", &eviction("absent"));
    assert!(!ok && out.contains("pods \"absent\" not found"), "{out}");
    let (ok, out) = evict_raw(&lk, "web-1", &eviction("web-2"));
    assert!(
        !ok && out.contains("name in URL does not match name in Eviction object"),
        "{out}"
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}});
    let (ok, out) = evict_raw(&lk, "web-1", &pod);
    assert!(
        !ok && out.contains("cannot be handled as a Eviction"),
        "{out}"
    );
    let both = r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"both"},"spec":{"minAvailable":1,"maxUnavailable":1,"selector":{"matchLabels":{"app":"web"}}}}"#;
    let out = lk.kubectl_stdin(&["create", "-f", "-"], Some(both));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("minAvailable and maxUnavailable cannot be both set"),
        "{stderr}"
    );

    // Two budgets over one pod: kube-apiserver's 500.
    lk.ok(&[
        "create",
        "pdb",
        "a",
        "--selector=app=web",
        "--min-available=1",
    ]);
    lk.ok(&[
        "create",
        "pdb",
        "b",
        "--selector=app=web",
        "--max-unavailable=1",
    ]);
    let (ok, out) = evict_raw(&lk, "web-1", &eviction("web-1"));
    assert!(
        !ok && out.contains("This pod has more than one PodDisruptionBudget"),
        "{out}"
    );
    lk.ok(&["delete", "pdb", "b"]);
    let allowed = || {
        lk.ok(&[
            "get",
            "pdb",
            "a",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ])
    };
    lk.eventually(20, "one disruption allowed", || allowed() == "1");
    // A dry run takes nothing and deletes nothing.
    let mut dry = eviction("web-1");
    dry["deleteOptions"] = json!({"dryRun": ["All"]});
    let (ok, out) = evict_raw(&lk, "web-1", &dry);
    assert!(ok, "{out}");
    assert_eq!(pods_left(&lk).len(), 2);
    assert_eq!(allowed(), "1");
    // The real one is kube-apiserver's 201 Success, and the pod goes.
    let (ok, out) = evict_raw(&lk, "web-1", &eviction("web-1"));
    assert!(ok, "{out}");
    let answer: Value = serde_json::from_str(&out).expect("a Status");
    assert_eq!(
        answer,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    lk.eventually(20, "web-1 gone", || pods_left(&lk) == ["pod/web-2"]);
}

/// Sends `body` to `path` with `method`; the code, the Retry-After header and the JSON body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_string().into_bytes()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, retry_after, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_budget_the_controller_cannot_process_asks_to_come_back_in_ten_seconds() {
    // maxUnavailable needs the scale of the pods' controller, and a bare pod has none: as
    // kube-controller-manager, the disruption controller fails safe and leaves the budget's
    // observedGeneration behind.
    let server = localkube::LocalKube::builder().start().await.unwrap();
    // kube-rs obeys Retry-After itself by default, for minutes; this test reads the answer.
    let mut config = server.kube_config().await.unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}});
    assert_eq!(
        send(&client, "POST", pods, "application/json", &pod)
            .await
            .0,
        201
    );
    let running = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let status_path = format!("{pods}/web-1/status");
    let patched = send(
        &client,
        "PATCH",
        &status_path,
        "application/merge-patch+json",
        &running,
    )
    .await;
    assert_eq!(patched.0, 200, "{:?}", patched.2);
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, _, created) = send(
        &client,
        "POST",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        "application/json",
        &budget,
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["status"],
        json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
    );

    let (code, retry_after, answer) = send(
        &client,
        "POST",
        &format!("{pods}/web-1/eviction"),
        "application/json",
        &eviction("web-1"),
    )
    .await;
    assert_eq!(
        (code, retry_after.as_deref()),
        (429, Some("10")),
        "{answer}"
    );
    assert_eq!(
        answer,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Cannot evict pod as it would violate the pod's disruption budget.",
               "reason": "TooManyRequests",
               "details": {"causes": [{"reason": "DisruptionBudget",
                   "message": "The disruption budget web is still being processed by the server."}],
                   "retryAfterSeconds": 10},
               "code": 429})
    );
    // Nothing changed: the pod is there, the budget as created.
    let (code, _, still) = send(
        &client,
        "GET",
        &format!("{pods}/web-1"),
        "application/json",
        &Value::Null,
    )
    .await;
    assert_eq!(
        (code, still["metadata"]["deletionTimestamp"].is_null()),
        (200, true)
    );
    // The controller says why in the budget's condition.
    let budget_path = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, b) = send(
            &client,
            "GET",
            budget_path,
            "application/json",
            &Value::Null,
        )
        .await;
        let c = &b["status"]["conditions"][0];
        if c["reason"] == "SyncFailed" {
            assert_eq!(
                c["message"], "found no controllers for pod \"web-1\"",
                "{b}"
            );
            assert_eq!(
                (&c["status"], &b["status"]["disruptionsAllowed"]),
                (&json!("False"), &json!(0))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SyncFailed condition: {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
