//! kubectl as an independent client of the real localkube binary.

mod common;

use common::{Localkube, have_kubectl};

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Phase
      type: string
      jsonPath: .status.phase
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size:
                type: integer
                minimum: 1
                maximum: 10
              color:
                type: string
                enum: [red, green, blue]
                default: red
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              phase:
                type: string
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  labels: {tier: gold}
spec:
  size: 3
"#;

fn with_crd(lk: &Localkube) {
    lk.apply_yaml(WIDGET_CRD);
    lk.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
}

#[test]
fn builtin_create_get_list_and_selectors() {
    if !have_kubectl("builtin_create_get_list_and_selectors") {
        return;
    }
    let lk = Localkube::start();
    lk.create_configmap("a", &[("k", "v")]);
    lk.ok(&["label", "configmap", "a", "tier=gold", "env=prod"]);
    lk.create_configmap("b", &[("k", "w")]);
    lk.ok(&["label", "configmap", "b", "tier=silver"]);
    let yaml = lk.ok(&["get", "configmap", "a", "-o", "yaml"]);
    assert!(yaml.contains("k: v"), "{yaml}");
    assert!(yaml.contains("uid:") && yaml.contains("resourceVersion:"));
    assert!(yaml.contains("creationTimestamp:"));
    let names = |sel: &str| lk.ok(&["get", "cm", "-l", sel, "-o", "name"]);
    assert_eq!(names("tier=gold"), "configmap/a\n");
    assert_eq!(names("tier in (gold,silver),!env"), "configmap/b\n");
    assert_eq!(names("tier notin (gold)"), "configmap/b\n");
    assert_eq!(
        lk.ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=b",
            "-o",
            "name"
        ]),
        "configmap/b\n"
    );
    let err = lk.fails(&["get", "cm", "--field-selector", "data.k=v"]);
    assert!(err.contains("field label not supported"), "{err}");
    // Paging: kubectl asks for chunks of 1 and follows continue tokens.
    let paged = lk.ok(&["get", "cm", "--chunk-size=1", "-o", "name"]);
    assert!(
        paged.contains("configmap/a") && paged.contains("configmap/b"),
        "{paged}"
    );
    // Defaults and namespaces exist.
    let ns = lk.ok(&["get", "ns", "-o", "name"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
}

#[test]
fn patch_types_and_failed_json_patch_test() {
    if !have_kubectl("patch_types_and_failed_json_patch_test") {
        return;
    }
    let lk = Localkube::start();
    lk.create_configmap("p", &[("a", "1")]);
    lk.ok(&[
        "patch",
        "cm",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    lk.ok(&[
        "patch",
        "cm",
        "p",
        "--type",
        "strategic",
        "-p",
        r#"{"data":{"c":"3"}}"#,
    ]);
    lk.ok(&[
        "patch",
        "cm",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/a","value":"1"},{"op":"replace","path":"/data/a","value":"9"}]"#,
    ]);
    let data = lk.ok(&["get", "cm", "p", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"a":"9","b":"2","c":"3"}"#);
    let before = lk.ok(&[
        "get",
        "cm",
        "p",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let err = lk.fails(&[
        "patch",
        "cm",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/a","value":"1"},{"op":"replace","path":"/data/a","value":"0"}]"#,
    ]);
    // kube-apiserver's 422 for a failed test, which kubectl prints so; localkube's says which.
    assert!(
        err.contains("The request is invalid: the JSON patch test operation failed"),
        "{err}"
    );
    let after = lk.ok(&[
        "get",
        "cm",
        "p",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after, "a failed patch must not write");
    // Strategic merge of containers by name on a pod.
    lk.ok(&["run", "web", "--image=nginx:1.27", "--labels=app=web"]);
    lk.ok(&[
        "patch",
        "pod",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"metadata":{"labels":{"extra":"yes"}},"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}"#,
    ]);
    let img = lk.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.containers[*].image} {.metadata.labels.app}",
    ]);
    assert_eq!(img, "nginx:1.28 web");
}

#[test]
fn apply_replace_and_server_side_apply() {
    if !have_kubectl("apply_replace_and_server_side_apply") {
        return;
    }
    let lk = Localkube::start();
    let v1 =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    assert_eq!(lk.apply_yaml(v1), "configmap/app created\n");
    assert_eq!(lk.apply_yaml(v1), "configmap/app unchanged\n");
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: \"1\"\n";
    assert_eq!(lk.apply_yaml(v2), "configmap/app configured\n");
    assert_eq!(
        lk.ok(&["get", "cm", "app", "-o", "jsonpath={.data}"]),
        r#"{"a":"1"}"#
    );
    // replace
    let v3 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  z: \"26\"\n";
    let out = lk.kubectl_stdin(&["replace", "-f", "-"], Some(v3));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lk.ok(&["get", "cm", "app", "-o", "jsonpath={.data}"]),
        r#"{"z":"26"}"#
    );
    // server-side apply, then a conflicting manager, then --force-conflicts
    let ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  owner: first\n";
    let out = lk.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=first", "-f", "-"],
        Some(ssa),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = ssa.replace("owner: first", "owner: second");
    let out = lk.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=second",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict"), "{err}");
    let out = lk.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=second",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lk.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.owner}"]),
        "second"
    );
    let managers = lk.ok(&[
        "get",
        "cm",
        "ssa",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("second"), "{managers}");
}

#[test]
fn crd_serves_resources_with_printer_columns_validation_and_defaults() {
    if !have_kubectl("crd_serves_resources_with_printer_columns_validation_and_defaults") {
        return;
    }
    let lk = Localkube::start();
    with_crd(&lk);
    assert_eq!(lk.apply_yaml(WIDGET), "widget.example.com/w1 created\n");
    let table = lk.ok(&["get", "widgets"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "PHASE", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("w1 "), "{table}");
    // short name and the `all` category
    assert_eq!(
        lk.ok(&["get", "wd", "-o", "name"]),
        "widget.example.com/w1\n"
    );
    assert!(
        lk.ok(&["get", "all", "-o", "name"])
            .contains("widget.example.com/w1")
    );
    // defaulting
    assert_eq!(
        lk.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.color}"]),
        "red"
    );
    // validation: out of range, enum, required
    let bad = WIDGET.replace("size: 3", "size: 30");
    let out = lk.kubectl_stdin(&["apply", "-f", "-"], Some(&bad));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.size") && err.contains("less than or equal to 10"),
        "{err}"
    );
    let bad = WIDGET.replace("size: 3", "size: 3\n  color: pink");
    let err = String::from_utf8_lossy(
        &lk.kubectl_stdin(&["create", "-f", "-"], Some(&bad.replace("w1", "w2")))
            .stderr,
    )
    .to_string();
    assert!(err.contains("Unsupported value: \"pink\""), "{err}");
    let missing = WIDGET.replace("size: 3", "color: red").replace("w1", "w6");
    let err = String::from_utf8_lossy(
        &lk.kubectl_stdin(&["create", "-f", "-"], Some(&missing))
            .stderr,
    )
    .to_string();
    assert!(err.contains("spec.size: Required value"), "{err}");
    // unknown fields: rejected by kubectl's default strict validation, kept under preserve-unknown-fields
    let unknown = WIDGET
        .replace("size: 3", "size: 3\n  bogus: 1")
        .replace("w1", "w3");
    let err = String::from_utf8_lossy(
        &lk.kubectl_stdin(&["create", "-f", "-"], Some(&unknown))
            .stderr,
    )
    .to_string();
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let kept = WIDGET
        .replace("size: 3", "size: 3\n  extra: {anything: [1, 2]}")
        .replace("w1", "w4");
    lk.apply_yaml(&kept);
    assert_eq!(
        lk.ok(&["get", "wd", "w4", "-o", "jsonpath={.spec.extra.anything}"]),
        "[1,2]"
    );
    // the status subresource: the main endpoint ignores status, /status takes it
    lk.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Ignored"}}"#,
    ]);
    assert_eq!(
        lk.ok(&["get", "wd", "w1", "-o", "jsonpath={.status.phase}"]),
        ""
    );
    lk.ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Ready"},"spec":{"size":9}}"#,
    ]);
    assert_eq!(
        lk.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.status.phase} {.spec.size} {.metadata.generation}"
        ]),
        "Ready 3 1"
    );
    lk.ok(&[
        "patch",
        "wd",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ]);
    assert_eq!(
        lk.ok(&["get", "wd", "w1", "-o", "jsonpath={.metadata.generation}"]),
        "2"
    );
    let table = lk.ok(&["get", "wd", "w1"]);
    assert!(table.lines().nth(1).unwrap().contains("Ready"), "{table}");
    // selectors, JSON patch with a failing test, and cascading deletion on custom resources
    lk.apply_yaml(&WIDGET.replace("w1", "w5").replace("gold", "silver"));
    assert_eq!(
        lk.ok(&["get", "wd", "-l", "tier=silver", "-o", "name"]),
        "widget.example.com/w5\n"
    );
    let err = lk.fails(&[
        "patch", "wd", "w5", "--type", "json", "-p",
        r#"[{"op":"test","path":"/spec/size","value":7},{"op":"replace","path":"/spec/size","value":8}]"#,
    ]);
    // kube-apiserver's 422 for a failed test, which kubectl prints so; localkube's says which.
    assert!(
        err.contains("The request is invalid: the JSON patch test operation failed"),
        "{err}"
    );
    let uid = lk.ok(&["get", "wd", "w5", "-o", "jsonpath={.metadata.uid}"]);
    lk.apply_yaml(&format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w5-part\n  ownerReferences:\n  - apiVersion: example.com/v1\n    kind: Widget\n    name: w5\n    uid: {uid}\n    blockOwnerDeletion: true\nspec:\n  size: 1\n"
    ));
    lk.ok(&["delete", "wd", "w5", "--cascade=foreground"]);
    assert!(!lk.kubectl(&["get", "wd", "w5-part"]).status.success());
    // explain works on the CRD's schema
    let explain = lk.ok(&["explain", "widgets.spec"]);
    assert!(
        explain.contains("size") && explain.contains("color"),
        "{explain}"
    );
}

#[test]
fn delete_cascades_background_foreground_and_orphan() {
    if !have_kubectl("delete_cascades_background_foreground_and_orphan") {
        return;
    }
    let lk = Localkube::start();
    let owner_uid = |name: &str| lk.ok(&["get", "cm", name, "-o", "jsonpath={.metadata.uid}"]);
    let make = |owner: &str, child: &str, block: bool| {
        lk.create_configmap(owner, &[]);
        let uid = owner_uid(owner);
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {child}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: {block}\n"
        );
        lk.apply_yaml(&yaml);
    };
    let exists = |name: &str| lk.kubectl(&["get", "cm", name]).status.success();

    make("bg", "bg-child", false);
    lk.ok(&["delete", "cm", "bg", "--cascade=background"]);
    lk.eventually(10, "background dependent deleted", || !exists("bg-child"));

    make("fg", "fg-child", true);
    lk.ok(&["delete", "cm", "fg", "--cascade=foreground"]);
    assert!(!exists("fg") && !exists("fg-child"));

    make("or", "or-child", true);
    lk.ok(&["delete", "cm", "or", "--cascade=orphan"]);
    assert!(!exists("or"));
    assert!(exists("or-child"));
    let refs = lk.ok(&[
        "get",
        "cm",
        "or-child",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "", "orphaned dependents lose their owner reference");

    // A finalizer holds an object until it is removed.
    lk.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n");
    lk.ok(&["delete", "cm", "held", "--wait=false"]);
    let ts = lk.ok(&[
        "get",
        "cm",
        "held",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!ts.is_empty());
    lk.ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(!exists("held"));

    // Deleting a namespace deletes its contents.
    lk.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n");
    lk.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: scratch\n");
    lk.ok(&["delete", "namespace", "scratch", "--timeout=20s"]);
    assert!(!lk.kubectl(&["get", "ns", "scratch"]).status.success());
    let err = lk.fails(&["delete", "namespace", "default"]);
    assert!(err.contains("may not be deleted"), "{err}");
}

#[test]
fn wait_for_delete_watch_timeout_and_pods_on_the_node() {
    if !have_kubectl("wait_for_delete_watch_timeout_and_pods_on_the_node") {
        return;
    }
    let lk = Localkube::start_with(&["--node-start-delay", "0", "--node-shutdown-time", "1s"]);
    lk.ok(&["run", "web", "--image=nginx:1.27"]);
    lk.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=20s"]);
    let wide = lk.ok(&["get", "pod", "web", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &header[..5],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{wide}"
    );
    let row = wide.lines().nth(1).unwrap();
    assert!(
        row.contains("1/1") && row.contains("Running") && row.contains("localkube-node"),
        "{wide}"
    );
    let on_node = lk.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=localkube-node,status.phase=Running",
        "-o",
        "name",
    ]);
    assert_eq!(on_node, "pod/web\n");
    let explain = lk.ok(&["explain", "pods.spec.containers.ports"]);
    assert!(explain.contains("containerPort"), "{explain}");
    let nodes = lk.ok(&["get", "nodes"]);
    assert!(
        nodes.contains("localkube-node") && nodes.contains("Ready"),
        "{nodes}"
    );
    // get -w ends when its request timeout passes, after printing the current state
    let out = lk.kubectl(&["get", "pods", "-w", "--request-timeout=2s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("web"), "{text}");
    lk.ok(&["delete", "pod", "web", "--wait=false"]);
    lk.ok(&["wait", "--for=delete", "pod/web", "--timeout=20s"]);
    assert!(!lk.kubectl(&["get", "pod", "web"]).status.success());
}

#[test]
fn describe_shows_events_from_both_event_apis() {
    if !have_kubectl("describe_shows_events_from_both_event_apis") {
        return;
    }
    let lk = Localkube::start();
    lk.create_configmap("subject", &[]);
    let uid = lk.ok(&["get", "cm", "subject", "-o", "jsonpath={.metadata.uid}"]);
    let ev = format!(
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: subject.1\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/tester\nreportingInstance: tester-1\naction: Testing\nreason: Poked\nnote: poked by the test\ntype: Normal\nregarding:\n  apiVersion: v1\n  kind: ConfigMap\n  name: subject\n  namespace: default\n  uid: {uid}\n"
    );
    lk.apply_yaml(&ev);
    let core = lk.ok(&[
        "get",
        "events.v1.",
        "subject.1",
        "-o",
        "jsonpath={.message} {.involvedObject.name}",
    ]);
    assert_eq!(core, "poked by the test subject");
    let describe = lk.ok(&["describe", "configmap", "subject"]);
    assert!(
        describe.contains("Poked") && describe.contains("poked by the test"),
        "{describe}"
    );
    // The simulated node records its events with kube-rs's Recorder (events.k8s.io/v1).
    lk.ok(&["run", "web", "--image=nginx:1.27"]);
    lk.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=20s"]);
    lk.eventually(10, "the kubelet's Started event", || {
        lk.ok(&["describe", "pod", "web"])
            .contains("Started container web")
    });
    let describe = lk.ok(&["describe", "pod", "web"]);
    assert!(
        describe.contains("default-scheduler  Successfully assigned default/web to localkube-node"),
        "{describe}"
    );
}

#[test]
fn server_dry_run_stores_nothing() {
    if !have_kubectl("server_dry_run_stores_nothing") {
        return;
    }
    let lk = Localkube::start();
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verbs: [get, list]\n";
    let out = lk.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(manifest));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("deployment.apps/d created (server dry run)"),
        "{text}"
    );
    assert!(!lk.kubectl(&["get", "deploy", "d"]).status.success());
    assert!(
        !lk.kubectl(&["get", "clusterrole", "reader"])
            .status
            .success()
    );
    lk.apply_yaml(manifest);
    assert!(lk.kubectl(&["get", "deploy", "d"]).status.success());
}

#[test]
fn services_get_cluster_ips_and_sigterm_stops_the_server() {
    if !have_kubectl("services_get_cluster_ips_and_sigterm_stops_the_server") {
        return;
    }
    let lk = Localkube::start();
    lk.apply_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  selector: {app: a}\n  ports:\n  - port: 80\n    targetPort: 8080\n");
    lk.apply_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: b\nspec:\n  type: NodePort\n  selector: {app: b}\n  ports:\n  - port: 443\n    targetPort: 8443\n");
    let ip_a = lk.ok(&["get", "svc", "a", "-o", "jsonpath={.spec.clusterIP}"]);
    let ip_b = lk.ok(&["get", "svc", "b", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip_a.starts_with("10.9") && ip_a != ip_b, "{ip_a} {ip_b}");
    let np = lk.ok(&[
        "get",
        "svc",
        "b",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let np: u32 = np.parse().unwrap();
    assert!((30000..=32767).contains(&np));
    let table = lk.ok(&["get", "svc", "b"]);
    assert!(table.contains(&format!("443:{np}/TCP")), "{table}");
    let status = lk.terminate();
    assert!(
        status.success(),
        "SIGTERM should stop localkube cleanly: {status:?}"
    );
}

#[test]
fn typed_create_commands_send_protobuf_and_work() {
    if !have_kubectl("typed_create_commands_send_protobuf_and_work") {
        return;
    }
    let lk = Localkube::start();
    lk.ok(&["create", "namespace", "team"]);
    lk.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "team",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    lk.ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "team",
        "--from-literal=password=s3cret",
    ]);
    lk.ok(&["create", "serviceaccount", "bot", "-n", "team"]);
    lk.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "team",
        "--tcp=80:8080",
    ]);
    lk.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=nginx:1.27",
        "--replicas=0",
    ]);
    lk.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "team",
        "--verb=get,list",
        "--resource=pods",
    ]);
    lk.ok(&[
        "create",
        "clusterrolebinding",
        "bot-view",
        "--clusterrole=view",
        "--serviceaccount=team:bot",
    ]);
    assert_eq!(
        lk.ok(&["get", "cm", "cfg", "-n", "team", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","b":"2"}"#
    );
    assert_eq!(
        lk.ok(&[
            "get",
            "secret",
            "pw",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "czNjcmV0"
    );
    assert_eq!(
        lk.ok(&[
            "get",
            "svc",
            "web",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    assert_eq!(
        lk.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"
        ]),
        "0 nginx:1.27"
    );
    assert_eq!(
        lk.ok(&[
            "get",
            "role",
            "reader",
            "-n",
            "team",
            "-o",
            "jsonpath={.rules[0].verbs}"
        ]),
        r#"["get","list"]"#
    );
    assert_eq!(
        lk.ok(&[
            "get",
            "clusterrolebinding",
            "bot-view",
            "-o",
            "jsonpath={.subjects[0].name}"
        ]),
        "bot"
    );
    lk.ok(&["delete", "namespace", "team", "--timeout=20s"]);
    assert!(!lk.kubectl(&["get", "ns", "team"]).status.success());
}
