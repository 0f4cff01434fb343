//! deploy/: what a real cluster needs to run virt-controller. An API server accepts all of it
//! (server-side dry run with strict field validation, then for real), the RBAC grants exactly
//! the calls the controllers make, and the Deployment runs `virt-controller run` with leader
//! election, probes and a `metrics` port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use test_support::have_kubectl;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every object in deploy/ outside crds/, in file order.
fn manifests() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    out
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
}

#[test]
fn rbac_grants_exactly_the_calls_the_controllers_make() {
    let all = manifests();
    let sa = find(&all, "ServiceAccount", "virt-controller");
    assert_eq!(sa["metadata"]["namespace"], "kubevirt");

    // The API calls of crates/reconciler/src/controller/{vm,vmi}.rs (kube-rs's Controller and
    // reflectors list and watch; its event Recorder creates and patches events.k8s.io events).
    let cluster_role = find(&all, "ClusterRole", "virt-controller");
    assert_eq!(
        cluster_role["rules"],
        json!([
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines/status"],
             "verbs": ["patch", "update"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances"],
             "verbs": ["list", "watch", "create", "delete", "patch", "update"]},
            {"apiGroups": ["kubevirt.io"],
             "resources": ["virtualmachines/finalizers", "virtualmachineinstances/finalizers"],
             "verbs": ["update"]},
            {"apiGroups": [""], "resources": ["pods"],
             "verbs": ["list", "watch", "create", "delete"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"],
             "verbs": ["create", "patch"]},
        ])
    );
    // No wildcards anywhere.
    for rule in cluster_role["rules"].as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !rule[field].as_array().unwrap().contains(&json!("*")),
                "{rule}"
            );
        }
    }
    let binding = find(&all, "ClusterRoleBinding", "virt-controller");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "virt-controller"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "virt-controller", "namespace": "kubevirt"}])
    );

    // Leader election (crates/virt-controller/src/leader.rs): get, create and update one
    // Lease, in the controller's own namespace only.
    let role = find(&all, "Role", "virt-controller-leader-election");
    assert_eq!(role["metadata"]["namespace"], "kubevirt");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["virt-controller"], "verbs": ["get", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create"]},
        ])
    );
    let role_binding = find(&all, "RoleBinding", "virt-controller-leader-election");
    assert_eq!(role_binding["metadata"]["namespace"], "kubevirt");
    assert_eq!(role_binding["roleRef"]["kind"], "Role");
    assert_eq!(role_binding["subjects"], binding["subjects"]);
}

#[test]
fn the_deployment_runs_two_replicas_with_leader_election() {
    let all = manifests();
    let ns = find(&all, "Namespace", "kubevirt");
    assert_eq!(ns["apiVersion"], "v1");
    let d = find(&all, "Deployment", "virt-controller");
    assert_eq!(d["metadata"]["namespace"], "kubevirt");
    assert_eq!(d["spec"]["replicas"], 2);
    // A standby is never ready while the other replica leads: a rollout must not wait for it.
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "100%"
    );
    let pod = &d["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"],
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "virt-controller");
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-elect=true"), "{args:?}");
    assert!(args.contains(&"--metrics-addr=0.0.0.0:8080"), "{args:?}");
    // The real CLI accepts these arguments (clap stops at --help only once all parsed).
    let out = Command::new(env!("CARGO_BIN_EXE_virt-controller"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virt-controller rejects the Deployment's args {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Identity and lease namespace from the downward API (clap reads POD_NAME, POD_NAMESPACE).
    let env = c["env"].as_array().unwrap();
    let field_of = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))["valueFrom"]["fieldRef"]["fieldPath"]
            .clone()
    };
    assert_eq!(field_of("POD_NAME"), "metadata.name");
    assert_eq!(field_of("POD_NAMESPACE"), "metadata.namespace");

    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );
}

/// Runs kubectl against `dir/kubeconfig` off the async runtime (the API server runs on it).
async fn kubectl(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        test_support::run_kubectl(&dir.join("kubeconfig"), &dir, &args, None)
    })
    .await
    .unwrap()
}

async fn kubectl_ok(dir: &Path, args: &[&str]) -> String {
    test_support::kubectl_stdout(args, kubectl(dir, args).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_accepts_everything_in_deploy() {
    if !have_kubectl("an_api_server_accepts_everything_in_deploy") {
        return;
    }
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig()).unwrap();
    let deploy = deploy_dir();
    let deploy = deploy.to_str().unwrap();
    let expected = [
        "namespace/kubevirt",
        "serviceaccount/virt-controller",
        "clusterrole.rbac.authorization.k8s.io/virt-controller",
        "clusterrolebinding.rbac.authorization.k8s.io/virt-controller",
        "role.rbac.authorization.k8s.io/virt-controller-leader-election",
        "rolebinding.rbac.authorization.k8s.io/virt-controller-leader-election",
        "deployment.apps/virt-controller",
        "customresourcedefinition.apiextensions.k8s.io/virtualmachines.kubevirt.io",
        "customresourcedefinition.apiextensions.k8s.io/virtualmachineinstances.kubevirt.io",
        "customresourcedefinition.apiextensions.k8s.io/virtualmachineinstancereplicasets.kubevirt.io",
    ];

    // A server-side dry run of the namespaced objects needs their namespace to exist, as on a
    // real cluster; everything else is checked by the server (strict field validation) and
    // nothing is stored.
    kubectl_ok(dir.path(), &["create", "namespace", "kubevirt"]).await;
    let dry = kubectl_ok(
        dir.path(),
        &[
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-R",
            "-f",
            deploy,
        ],
    )
    .await;
    for object in expected {
        assert!(
            dry.lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with("(server dry run)")),
            "{object} missing from the dry run:\n{dry}"
        );
    }
    assert_eq!(dry.lines().count(), expected.len(), "{dry}");
    let gone = kubectl(
        dir.path(),
        &["get", "-n", "kubevirt", "deployment", "virt-controller"],
    )
    .await;
    assert!(!gone.status.success(), "the dry run stored the Deployment");

    // On a fresh server a real apply of the whole tree works in one go: the files are ordered
    // so that the namespace comes first.
    drop(server);
    let server = localkube::LocalKube::builder().start().await.unwrap();
    std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig()).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("cache"));
    let applied = kubectl_ok(
        dir.path(),
        &["apply", "--validate=strict", "-R", "-f", deploy],
    )
    .await;
    for object in expected {
        assert!(
            applied.lines().any(|l| l == format!("{object} created")),
            "{object} not created:\n{applied}"
        );
    }
    let replicas = kubectl_ok(
        dir.path(),
        &[
            "get",
            "-n",
            "kubevirt",
            "deployment",
            "virt-controller",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await;
    assert_eq!(replicas, "2");
    // The CRDs are served, and a second apply changes nothing.
    kubectl_ok(dir.path(), &["get", "virtualmachines", "-A"]).await;
    let again = kubectl_ok(
        dir.path(),
        &["apply", "--validate=strict", "-R", "-f", deploy],
    )
    .await;
    for line in again.lines() {
        assert!(line.ends_with(" unchanged"), "{again}");
    }
}
