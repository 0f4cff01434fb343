//! The `localkube` binary: flags, the node on its own, and simulated container exits.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Localkube;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

async fn client_for(lk: &Localkube) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&lk.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn phase_eventually(api: &Api<Pod>, name: &str, want: &str) -> Pod {
    for _ in 0..200 {
        if let Ok(p) = api.get(name).await
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(want)
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pod {name} never reached {want}");
}

fn pod(name: &str, annotations: serde_json::Value, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

#[test]
fn bad_flags_exit_non_zero_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args(["--node-start-delay", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-start-delay"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--kubeconfig-out"));
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_are_hidden_checked_and_fail_requests() {
    let help = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("inject"));
    let out = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args(["--inject-faults", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--inject-faults") && err.contains("expected a fraction from 0 to 1"),
        "{err}"
    );

    // Every request faulted, but the probes.
    let lk = Localkube::start_with(&["--no-node", "--inject-faults", "1"]);
    let kc = kube::config::Kubeconfig::read_from(&lk.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    let client = kube::Client::try_from(cfg).unwrap();
    let get = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    assert_eq!(client.request_text(get("/readyz")).await.unwrap(), "ok");
    for _ in 0..3 {
        match client.request_text(get("/api/v1/namespaces")).await {
            Err(kube::Error::Api(s)) => assert!([500, 429, 504].contains(&s.code), "{s:?}"),
            other => panic!("not faulted: {other:?}"),
        }
    }
}

#[test]
fn kubeconfig_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let lk = Localkube::start();
    let mode = std::fs::metadata(&lk.kubeconfig)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the admin token");
    let text = std::fs::read_to_string(&lk.kubeconfig).unwrap();
    assert!(text.contains(&format!("server: {}", lk.url)), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_subcommand_runs_pods_on_a_server_without_a_node() {
    let lk = Localkube::start_with(&["--no-node"]);
    let client = client_for(&lk).await;
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(
        nodes
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mut node = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args([
            "node",
            "--node-start-delay",
            "0",
            "--node-name",
            "worker-1",
            "--kubeconfig",
        ])
        .arg(&lk.kubeconfig)
        .spawn()
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("p", json!({}), "Always"))
        .await
        .unwrap();
    let running = phase_eventually(&pods, "p", "Running").await;
    assert_eq!(running.spec.unwrap().node_name.as_deref(), Some("worker-1"));
    let status = running.status.unwrap();
    assert!(status.pod_ip.is_some());
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let _ = node.kill();
    let _ = node.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_that_exit_end_their_pods() {
    let lk = Localkube::start();
    let pods: Api<Pod> = Api::namespaced(client_for(&lk).await, "default");
    let ok = json!({"localkube.dev/exit-code": "0"});
    let bad = json!({"localkube.dev/exit-code": "3", "localkube.dev/run-for": "100ms"});
    pods.create(&PostParams::default(), &pod("done", ok, "Never"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("broken", bad, "Never"))
        .await
        .unwrap();
    phase_eventually(&pods, "done", "Succeeded").await;
    let failed = phase_eventually(&pods, "broken", "Failed").await;
    let state = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(state.terminated.unwrap().exit_code, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_pods_stay_terminating_for_their_grace_period() {
    let lk = Localkube::start_with(&["--node-start-delay", "0", "--node-shutdown-time", "2s"]);
    let pods: Api<Pod> = Api::namespaced(client_for(&lk).await, "default");
    for name in ["slow", "fast"] {
        pods.create(&PostParams::default(), &pod(name, json!({}), "Always"))
            .await
            .unwrap();
        phase_eventually(&pods, name, "Running").await;
    }
    let graceful = kube::api::DeleteParams {
        grace_period_seconds: Some(30),
        ..Default::default()
    };
    pods.delete("slow", &graceful).await.unwrap();
    let terminating = pods.get("slow").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    // Grace 0 removes at once; the graceful one goes after the node's shutdown time (2s).
    pods.delete(
        "fast",
        &kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get_opt("fast").await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pods.get_opt("slow").await.unwrap().is_some(),
        "still terminating"
    );
    let mut gone = false;
    for _ in 0..100 {
        if pods.get_opt("slow").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the node removes the pod after its shutdown time");
}
