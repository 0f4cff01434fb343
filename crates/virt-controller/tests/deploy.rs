//! deploy/: what a real cluster needs to run the toolkit (virt-api, virt-controller, virt-handler;
//! docs/cluster.md). Every object has only fields its Kubernetes type knows, an API server
//! accepts all of it (server-side dry run with strict field validation, then for real), each
//! component's RBAC grants exactly the calls its code makes, the user roles carry KubeVirt's
//! subresource verbs, and the workloads are wired to each other as the code expects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use test_support::have_kubectl;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The YAML files directly in `dir`, sorted as kubectl applies them.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every object in deploy/ outside crds/, in file order.
fn manifests() -> Vec<Value> {
    yaml_files(&deploy_dir())
        .iter()
        .flat_map(|f| yaml_docs(f))
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// A binding's roleRef and subjects: `kind` `name` bound to the ServiceAccount `sa` in kubevirt.
fn assert_binds(binding: &Value, role_kind: &str, role: &str, sa: &str) {
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}),
        "{binding}"
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa, "namespace": "kubevirt"}]),
        "{binding}"
    );
}

/// The username a ServiceAccount in kubevirt has.
fn sa_user(sa: &str) -> String {
    format!("system:serviceaccount:kubevirt:{sa}")
}

/// The workload's single container, and its pod spec.
fn pod_and_container<'a>(all: &'a [Value], kind: &str, name: &str) -> (&'a Value, &'a Value) {
    let w = find(all, kind, name);
    assert_eq!(w["metadata"]["namespace"], "kubevirt", "{kind} {name}");
    let pod = &w["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"],
        w["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "{kind} {name}: the selector must match its pods"
    );
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{kind} {name}");
    (&pod["spec"], &containers[0])
}

/// The downward-API field an env var of `container` comes from.
fn env_field(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))["valueFrom"]["fieldRef"]["fieldPath"]
        .clone()
}

#[test]
fn rbac_grants_exactly_the_calls_the_controllers_make() {
    let all = manifests();
    let sa = find(&all, "ServiceAccount", "kubevirt-controller");
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
    let binding = find(&all, "ClusterRoleBinding", "virt-controller");
    assert_binds(
        binding,
        "ClusterRole",
        "virt-controller",
        "kubevirt-controller",
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
    assert_binds(
        role_binding,
        "Role",
        "virt-controller-leader-election",
        "kubevirt-controller",
    );
}

#[test]
fn virt_api_rbac_grants_exactly_the_calls_it_makes() {
    let all = manifests();
    let sa = find(&all, "ServiceAccount", "kubevirt-apiserver");
    assert_eq!(sa["metadata"]["namespace"], "kubevirt");

    // virt_reconciler::execute (the actions) and the streams: VMs read and patched (spec and
    // status), VMIs read and patched, launcher Pods listed and deleted (restart --force), Nodes
    // read (the handler's address); the requester's rights checked with SubjectAccessReviews.
    let cluster_role = find(&all, "ClusterRole", "virt-api");
    assert_eq!(
        cluster_role["rules"],
        json!([
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"],
             "verbs": ["get", "patch"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines/status"],
             "verbs": ["patch"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances"],
             "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
             "verbs": ["create"]},
        ])
    );
    assert_binds(
        find(&all, "ClusterRoleBinding", "virt-api"),
        "ClusterRole",
        "virt-api",
        "kubevirt-apiserver",
    );
    // What every aggregated API server is given: delegated auth, and the front proxy's CA.
    assert_binds(
        find(&all, "ClusterRoleBinding", "virt-api:auth-delegator"),
        "ClusterRole",
        "system:auth-delegator",
        "kubevirt-apiserver",
    );
    let reader = find(
        &all,
        "RoleBinding",
        "virt-api:extension-apiserver-authentication-reader",
    );
    assert_eq!(reader["metadata"]["namespace"], "kube-system");
    assert_binds(
        reader,
        "Role",
        "extension-apiserver-authentication-reader",
        "kubevirt-apiserver",
    );
}

#[test]
fn virt_handler_rbac_grants_exactly_the_calls_it_makes() {
    let all = manifests();
    let sa = find(&all, "ServiceAccount", "kubevirt-handler");
    assert_eq!(sa["metadata"]["namespace"], "kubevirt");

    // crates/virt-handler/src: node.rs (get, merge patch), vmis.rs (VMI watcher, get, JSON
    // patch; launcher Pods by label, their status patched), publisher.rs (Service reflector),
    // access_credentials.rs (Secrets).
    let cluster_role = find(&all, "ClusterRole", "virt-handler");
    assert_eq!(
        cluster_role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        ])
    );
    assert_binds(
        find(&all, "ClusterRoleBinding", "virt-handler"),
        "ClusterRole",
        "virt-handler",
        "kubevirt-handler",
    );
}

#[test]
fn the_components_run_as_the_service_accounts_the_webhooks_trust() {
    // VMIs have no status subresource: virt-api's VMI webhooks undo status changes and refuse
    // spec changes from anyone but KubeVirt's service accounts. virt-controller and
    // virt-handler write VMI status, virt-api writes conditions and the grace period.
    let all = manifests();
    let trusted = virt_reconciler::admission::kubevirt_service_accounts("kubevirt");
    for (kind, name) in [
        ("Deployment", "virt-api"),
        ("Deployment", "virt-controller"),
        ("DaemonSet", "virt-handler"),
    ] {
        let (pod, _) = pod_and_container(&all, kind, name);
        let sa = pod["serviceAccountName"].as_str().unwrap();
        assert!(
            trusted.contains(&sa_user(sa)),
            "{kind} {name} runs as {sa}, which the VMI webhooks do not trust: {trusted:?}"
        );
        find(&all, "ServiceAccount", sa);
    }
}

#[test]
fn no_role_uses_wildcards() {
    for o in manifests() {
        if o["kind"] != "ClusterRole" && o["kind"] != "Role" {
            continue;
        }
        for rule in o["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(!strings(&rule[field]).contains(&"*"), "{rule}");
            }
        }
    }
}

/// The subresources virt-api serves, with the verb RBAC checks for them: streams are GETs,
/// actions PUTs (`update`).
const SERVED_SUBRESOURCES: [(&str, &str); 11] = [
    ("virtualmachineinstances/console", "get"),
    ("virtualmachineinstances/vnc", "get"),
    ("virtualmachineinstances/portforward", "get"),
    ("virtualmachineinstances/pause", "update"),
    ("virtualmachineinstances/unpause", "update"),
    ("virtualmachineinstances/softreboot", "update"),
    ("virtualmachineinstances/reset", "update"),
    ("virtualmachines/portforward", "get"),
    ("virtualmachines/start", "update"),
    ("virtualmachines/stop", "update"),
    ("virtualmachines/restart", "update"),
];

/// Every (group, resource, verb) a role grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.insert((g.to_string(), r.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

fn grant_set(rows: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (g, r, verbs) in rows {
        for v in *verbs {
            out.insert((g.to_string(), r.to_string(), v.to_string()));
        }
    }
    out
}

#[test]
fn the_user_roles_aggregate_with_kubevirts_subresource_verbs() {
    let all = manifests();
    let resources = [
        "virtualmachines",
        "virtualmachineinstances",
        "virtualmachineinstancereplicasets",
    ];
    let edit_verbs: &[&str] = &[
        "get", "delete", "create", "update", "patch", "list", "watch",
    ];
    let admin_verbs: &[&str] = &[
        "get",
        "delete",
        "create",
        "update",
        "patch",
        "list",
        "watch",
        "deletecollection",
    ];
    let with = |verbs: &[&str]| {
        let mut rows: Vec<(&str, &str, &[&str])> = SERVED_SUBRESOURCES
            .iter()
            .map(|(r, v)| ("subresources.kubevirt.io", *r, std::slice::from_ref(v)))
            .collect();
        for r in resources {
            rows.push(("kubevirt.io", r, verbs));
        }
        grant_set(&rows)
    };
    let cases = [
        ("kubevirt.io:admin", "admin", with(admin_verbs)),
        ("kubevirt.io:edit", "edit", with(edit_verbs)),
        (
            "kubevirt.io:view",
            "view",
            grant_set(
                &resources
                    .iter()
                    .map(|r| ("kubevirt.io", *r, &["get", "list", "watch"][..]))
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    for (name, aggregate_to, want) in cases {
        let role = find(&all, "ClusterRole", name);
        assert_eq!(
            role["metadata"]["labels"]
                [format!("rbac.authorization.k8s.io/aggregate-to-{aggregate_to}")],
            "true",
            "{name}"
        );
        assert_eq!(grants(role), want, "{name}");
    }
    // `virtctl version`: every authenticated user.
    let default = find(&all, "ClusterRole", "kubevirt.io:default");
    assert_eq!(
        grants(default),
        grant_set(&[("subresources.kubevirt.io", "version", &["get", "list"])])
    );
    let binding = find(&all, "ClusterRoleBinding", "kubevirt.io:default");
    assert_eq!(
        binding["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}])
    );
}

#[test]
fn the_controller_runs_two_replicas_with_leader_election() {
    let all = manifests();
    let ns = find(&all, "Namespace", "kubevirt");
    assert_eq!(ns["apiVersion"], "v1");
    let d = find(&all, "Deployment", "virt-controller");
    assert_eq!(d["spec"]["replicas"], 2);
    // A standby is never ready while the other replica leads: a rollout must not wait for it.
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "100%"
    );
    let (_, c) = pod_and_container(&all, "Deployment", "virt-controller");
    let args = strings(&c["args"]);
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
    assert_eq!(env_field(c, "POD_NAME"), "metadata.name");
    assert_eq!(env_field(c, "POD_NAMESPACE"), "metadata.namespace");

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

/// The certificate Secret virt-api mounts and deploy/certs.sh writes.
const CERT_SECRET: &str = "kubevirt-virt-api-certs";

#[test]
fn virt_api_serves_https_behind_its_service_and_apiservices() {
    let all = manifests();
    let d = find(&all, "Deployment", "virt-api");
    assert_eq!(d["spec"]["replicas"], 2);
    let (pod, c) = pod_and_container(&all, "Deployment", "virt-api");

    // The certificate: the Secret, mounted where the flags point.
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == CERT_SECRET)
        .expect("a volume of the certificate Secret");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the certificate volume mounted");
    assert_eq!(mount["mountPath"], "/etc/virt-api/certificates");
    let args = strings(&c["args"]);
    for flag in [
        "--tls-cert-file=/etc/virt-api/certificates/tls.crt",
        "--tls-private-key-file=/etc/virt-api/certificates/tls.key",
        "--port=8443",
        "--bind-address=0.0.0.0",
    ] {
        assert!(args.contains(&flag), "{flag} missing from {args:?}");
    }
    assert_eq!(env_field(c, "POD_NAMESPACE"), "metadata.namespace");

    // HTTPS on 8443; /healthz answers without authentication.
    assert_eq!(
        c["ports"],
        json!([{"name": "https", "containerPort": 8443, "protocol": "TCP"}])
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": "/healthz", "port": "https", "scheme": "HTTPS"}),
            "{probe}"
        );
    }

    // The Service: 443 to the pods' 8443.
    let svc = find(&all, "Service", "virt-api");
    assert_eq!(svc["metadata"]["namespace"], "kubevirt");
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/name"],
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}])
    );

    // Both versions KubeVirt serves, at KubeVirt's priorities; the CA comes from certs.sh.
    for version in ["v1", "v1alpha3"] {
        let name = format!("{version}.subresources.kubevirt.io");
        let a = find(&all, "APIService", &name);
        assert_eq!(a["apiVersion"], "apiregistration.k8s.io/v1");
        assert_eq!(
            a["spec"],
            json!({
                "group": "subresources.kubevirt.io", "version": version,
                "groupPriorityMinimum": 1000, "versionPriority": 15,
                "service": {"name": "virt-api", "namespace": "kubevirt", "port": 443},
            }),
            "{name}: no caBundle here (certs.sh writes it; applying again keeps it)"
        );
    }
}

#[test]
fn the_webhooks_are_kubevirts_and_reach_virt_api() {
    use virt_reconciler::admission::{WEBHOOK_VERSIONS, Webhook};
    let all = manifests();
    // (configuration, webhook name, path, operations), as KubeVirt's virt-operator has them.
    let want = [
        (
            "MutatingWebhookConfiguration",
            "virt-api-mutator",
            "virtualmachines-mutator.kubevirt.io",
            "/virtualmachines-mutate",
            &["CREATE", "UPDATE"][..],
        ),
        (
            "MutatingWebhookConfiguration",
            "virt-api-mutator",
            "virtualmachineinstances-mutator.kubevirt.io",
            "/virtualmachineinstances-mutate",
            &["CREATE", "UPDATE"][..],
        ),
        (
            "ValidatingWebhookConfiguration",
            "virt-api-validator",
            "virtualmachineinstances-create-validator.kubevirt.io",
            "/virtualmachineinstances-validate-create",
            &["CREATE"][..],
        ),
        (
            "ValidatingWebhookConfiguration",
            "virt-api-validator",
            "virtualmachineinstances-update-validator.kubevirt.io",
            "/virtualmachineinstances-validate-update",
            &["UPDATE"][..],
        ),
        (
            "ValidatingWebhookConfiguration",
            "virt-api-validator",
            "virtualmachine-validator.kubevirt.io",
            "/virtualmachines-validate",
            &["CREATE", "UPDATE"][..],
        ),
    ];
    let mut seen = 0;
    for (kind, config, name, path, operations) in want {
        let c = find(&all, kind, config);
        assert_eq!(c["apiVersion"], "admissionregistration.k8s.io/v1");
        let hooks = c["webhooks"].as_array().unwrap();
        let w = hooks
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{config} has no webhook {name}"));
        seen += 1;
        // A path virt-api serves, for the resource it reviews there.
        let webhook =
            Webhook::from_path(path).unwrap_or_else(|| panic!("virt-api serves no {path}"));
        assert_eq!(
            w["clientConfig"],
            json!({"service": {"namespace": "kubevirt", "name": "virt-api", "path": path}}),
            "{name}: no caBundle here (certs.sh writes it)"
        );
        assert_eq!(
            w["rules"],
            json!([{
                "operations": operations, "apiGroups": ["kubevirt.io"],
                "apiVersions": WEBHOOK_VERSIONS, "resources": [webhook.resource()],
                "scope": "*",
            }]),
            "{name}"
        );
        assert_eq!(w["failurePolicy"], "Fail", "{name}");
        assert_eq!(w["sideEffects"], "None", "{name}");
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{name}");
        assert_eq!(w["timeoutSeconds"], 10, "{name}");
    }
    let total: usize = ["virt-api-mutator", "virt-api-validator"]
        .iter()
        .zip([
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ])
        .map(|(n, k)| find(&all, k, n)["webhooks"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, seen, "a webhook this test does not know");
}

/// A VMI, to see the launcher Pod virt-controller would create for it.
fn launcher_pod() -> Value {
    let vmi: virt_reconciler::VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "default",
                     "uid": "6f3c1a52-9b1e-4c59-8f0e-2b8d7c1e0a11"},
        "spec": {"domain": {"devices": {}}},
    }))
    .unwrap();
    serde_json::to_value(virt_reconciler::vmi::build_launcher_pod(&vmi)).unwrap()
}

#[test]
fn the_handler_reaches_the_launchers_sockets_and_pod_directories() {
    let all = manifests();
    let (pod, c) = pod_and_container(&all, "DaemonSet", "virt-handler");
    let args = strings(&c["args"]);
    let host_root = args
        .iter()
        .find_map(|a| a.strip_prefix("--host-root="))
        .expect("--host-root");
    // Its API's address goes into the Node annotation virt-api dials: the Pod's own IP.
    assert!(args.contains(&"--listen=$(POD_IP):8186"), "{args:?}");
    assert_eq!(env_field(c, "POD_IP"), "status.podIP");
    assert_eq!(env_field(c, "NODE_NAME"), "spec.nodeName");
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 0);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": "/healthz", "port": "http"})
        );
    }
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8186, "protocol": "TCP"}])
    );

    // Where each hostPath appears inside the handler.
    let mounted = |host_path: &str| -> String {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["hostPath"]["path"] == host_path)
            .unwrap_or_else(|| panic!("no hostPath {host_path}"));
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("hostPath {host_path} not mounted"))["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The launcher Pod's sockets hostPath (virt_reconciler::vmi::build_launcher_pod) is where
    // the handler looks for them: <host root>/var/run/kubevirt/sockets.
    let launcher = launcher_pod();
    let sockets = launcher["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == virt_reconciler::vmi::SOCKETS_VOLUME)
        .unwrap()["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sockets,
        format!("/{}", virt_reconciler::launcher_api::SOCKETS_DIR)
    );
    assert_eq!(mounted(&sockets), format!("{host_root}{sockets}"));
    // The launcher Pod's `private` emptyDir, where the kubelet keeps it (paths::private_dir).
    assert_eq!(
        mounted("/var/lib/kubelet/pods"),
        format!("{host_root}/var/lib/kubelet/pods")
    );
}

/// `group/kind` of an object, as k8s-openapi's types are looked up here.
fn type_of(o: &Value) -> String {
    let api_version = o["apiVersion"].as_str().unwrap();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    format!("{group}/{}", o["kind"].as_str().unwrap())
}

/// `o` read into `T` and written back: what `T` does not know is gone.
fn round_trip<T: k8s_openapi::serde::de::DeserializeOwned + k8s_openapi::serde::Serialize>(
    o: &Value,
) -> Value {
    let typed: T = serde_json::from_value(o.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", o["metadata"]["name"]));
    serde_json::to_value(typed).unwrap()
}

#[test]
fn every_object_has_only_fields_its_type_knows() {
    // localkube checks the schemas of custom resources only, and kube-apiserver 1.24 does not
    // check unknown fields by default: a misspelt field would be dropped without a word. So
    // each object goes through k8s-openapi's type of its kind and must come back unchanged.
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, core::v1 as core,
        rbac::v1 as rbac,
    };
    for o in manifests() {
        let back = match type_of(&o).as_str() {
            "/Namespace" => round_trip::<core::Namespace>(&o),
            "/ServiceAccount" => round_trip::<core::ServiceAccount>(&o),
            "/Service" => round_trip::<core::Service>(&o),
            "apps/Deployment" => round_trip::<apps::Deployment>(&o),
            "apps/DaemonSet" => round_trip::<apps::DaemonSet>(&o),
            "rbac.authorization.k8s.io/ClusterRole" => round_trip::<rbac::ClusterRole>(&o),
            "rbac.authorization.k8s.io/ClusterRoleBinding" => {
                round_trip::<rbac::ClusterRoleBinding>(&o)
            }
            "rbac.authorization.k8s.io/Role" => round_trip::<rbac::Role>(&o),
            "rbac.authorization.k8s.io/RoleBinding" => round_trip::<rbac::RoleBinding>(&o),
            "admissionregistration.k8s.io/MutatingWebhookConfiguration" => {
                round_trip::<admission::MutatingWebhookConfiguration>(&o)
            }
            "admissionregistration.k8s.io/ValidatingWebhookConfiguration" => {
                round_trip::<admission::ValidatingWebhookConfiguration>(&o)
            }
            // Not in k8s-openapi (kube-aggregator's type): its fields, by hand.
            "apiregistration.k8s.io/APIService" => {
                let allowed = [
                    "group",
                    "version",
                    "groupPriorityMinimum",
                    "versionPriority",
                    "service",
                    "caBundle",
                    "insecureSkipTLSVerify",
                ];
                for key in o["spec"].as_object().unwrap().keys() {
                    assert!(allowed.contains(&key.as_str()), "APIService spec.{key}");
                }
                for key in o["spec"]["service"].as_object().unwrap().keys() {
                    assert!(
                        ["name", "namespace", "port"].contains(&key.as_str()),
                        "APIService spec.service.{key}"
                    );
                }
                continue;
            }
            other => panic!("deploy/ has a {other}, which this test does not know"),
        };
        assert_eq!(
            back, o,
            "{} {}: fields its type does not know",
            o["kind"], o["metadata"]["name"]
        );
    }
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

/// How kubectl names an object in its output: `kind[.group]/name`, the kind in lower case.
fn kubectl_name(o: &Value) -> String {
    let t = type_of(o);
    let (group, kind) = t.split_once('/').unwrap();
    let kind = kind.to_lowercase();
    let name = o["metadata"]["name"].as_str().unwrap();
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
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
    let crds: Vec<Value> = yaml_files(&deploy.join("crds"))
        .iter()
        .flat_map(|f| yaml_docs(f))
        .collect();
    let expected: Vec<String> = manifests().iter().chain(&crds).map(kubectl_name).collect();
    let deploy = deploy.to_str().unwrap();

    // A server-side dry run of the namespaced objects needs their namespace to exist, as on a
    // real cluster (kube-system does); everything else is checked by the server (strict field
    // validation) and nothing is stored.
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
    for object in &expected {
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
    for object in &expected {
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
            "virt-api",
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
