//! `virtctl pause` / `unpause` (Part B §2.7, scenario 34): the requests and the messages
//! against a fake KubeVirt API, the whole round trip against the `virt-playground`
//! playground, and the clear error from a cluster without the subresource API.

mod common;

use common::Cluster;
use common::fake::{FakeServer, Recorded, status_body};
use common::virtctl_raw;
use serde_json::{Value, json};

const SUB: &str = "/apis/subresources.kubevirt.io/v1/namespaces";

fn vm(name: &str, strategy: &str) -> String {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"runStrategy": strategy, "template": {"spec": {"domain": {"devices": {}}}}},
    })
    .to_string()
}

fn not_found(resource: &str, name: &str) -> (u16, String) {
    let message = format!("{resource}.kubevirt.io \"{name}\" not found");
    (404, status_body(404, "NotFound", &message))
}

/// VMs `vm-running` (Always, with a running VMI), `vm-halted` (Halted, no VMI) and
/// `vm-backoff` (Always, no VMI); VMI `vmi-paused` is paused already.
fn kubevirt(r: &Recorded) -> (u16, String) {
    let vms = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/";
    let line = r.line.as_str();
    if let Some(name) = line.strip_prefix(&format!("GET {vms}")) {
        return match name {
            "vm-running" | "vm-backoff" => (200, vm(name, "Always")),
            "vm-halted" => (200, vm(name, "Halted")),
            _ => not_found("virtualmachines", name),
        };
    }
    if line == "GET /apis/subresources.kubevirt.io/v1" {
        return (200, json!({"kind": "APIResourceList", "groupVersion": "subresources.kubevirt.io/v1", "resources": []}).to_string());
    }
    let Some(rest) = line.strip_prefix("PUT ").and_then(|p| p.strip_prefix(SUB)) else {
        return (
            404,
            status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (parts[2], parts[3]) {
        ("vm-running", _) => (200, String::new()),
        ("vmi-paused", "pause") => (409, status_body(409, "Conflict", "VMI is already paused")),
        ("vmi-paused", "unpause") => (200, String::new()),
        ("vm-running-unpaused", "unpause") => {
            (409, status_body(409, "Conflict", "VMI is not paused"))
        }
        (name, _) => not_found("virtualmachineinstances", name),
    }
}

fn puts(server: &FakeServer) -> Vec<(String, Value)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("PUT "))
        .map(|r| (r.line, serde_json::from_str(&r.body).unwrap()))
        .collect()
}

#[test]
fn pause_and_unpause_requests_and_messages() {
    let server = FakeServer::start(kubevirt);
    let run = |args: &[&str]| {
        let mut all = vec!["-s", server.url.as_str()];
        all.extend_from_slice(args);
        virtctl_raw(&all, &[])
    };
    run(&["pause", "vm", "vm-running"]).ok("VMI vm-running was scheduled to pause\n");
    run(&["unpause", "VMI", "vm-running"]).ok("VMI vm-running was scheduled to unpause\n");
    run(&["pause", "virtualmachineinstance", "vm-running", "--dry-run"])
        .ok("Dry Run execution\nVMI vm-running was scheduled to pause\n");
    assert_eq!(
        puts(&server),
        [
            (
                format!("PUT {SUB}/default/virtualmachineinstances/vm-running/pause"),
                json!({})
            ),
            (
                format!("PUT {SUB}/default/virtualmachineinstances/vm-running/unpause"),
                json!({})
            ),
            (
                format!("PUT {SUB}/default/virtualmachineinstances/vm-running/pause"),
                json!({"dryRun": ["All"]})
            ),
        ]
    );

    // Scenario 34, and the other ways a VM has no instance.
    run(&["pause", "vm", "vm-halted"]).fails_with(
        "Error pausing VirtualMachineInstance vm-halted. VirtualMachine vm-halted is not set to run",
    );
    run(&["pause", "vm", "vm-backoff"])
        .fails_with("Error pausing VirtualMachineInstance vm-backoff, it was not found");
    // unpause has no words of its own for a missing instance: the server's message.
    run(&["unpause", "vm", "vm-backoff"]).fails_with(
        "Error unpausing VirtualMachineInstance vm-backoff: virtualmachineinstances.kubevirt.io \"vm-backoff\" not found",
    );
    run(&["unpause", "vm", "vm-halted"]).fails_with(
        "Error unpausing VirtualMachineInstance vm-halted: virtualmachineinstances.kubevirt.io \"vm-halted\" not found",
    );
    // The dry-run line comes before the VM is read, as in KubeVirt's virtctl.
    let out = run(&["unpause", "vm", "nope", "--dry-run"]);
    out.fails_with(
        "Error getting VirtualMachine nope: virtualmachines.kubevirt.io \"nope\" not found",
    );
    assert_eq!(out.stdout, "Dry Run execution\n");
    run(&["pause", "vm", "nope"]).fails_with(
        "Error getting VirtualMachine nope: virtualmachines.kubevirt.io \"nope\" not found",
    );
    run(&["pause", "vmi", "nope"]).fails_with(
        "Error pausing VirtualMachineInstance nope: virtualmachineinstances.kubevirt.io \"nope\" not found",
    );
    // The server's refusals, with the command's prefix.
    run(&["pause", "vmi", "vmi-paused"])
        .fails_with("Error pausing VirtualMachineInstance vmi-paused: VMI is already paused");
    run(&["unpause", "vmi", "vm-running-unpaused"]).fails_with(
        "Error unpausing VirtualMachineInstance vm-running-unpaused: VMI is not paused",
    );

    // Namespace prefixes are stripped (scenario 35's rule).
    let before = puts(&server).len();
    run(&["-n", "ns/foo", "pause", "vmi", "x"]).fails_containing("not found");
    assert_eq!(
        puts(&server)[before].0,
        format!("PUT {SUB}/foo/virtualmachineinstances/x/pause")
    );
}

#[test]
fn bad_input() {
    let offline = "http://127.0.0.1:1";
    virtctl_raw(&["-s", offline, "pause", "vm"], &[]).fails_with("accepts 2 arg(s), received 1");
    virtctl_raw(&["-s", offline, "unpause", "vm", "a", "b"], &[])
        .fails_with("accepts 2 arg(s), received 3");
    // Plurals are not accepted, despite KubeVirt's help text.
    virtctl_raw(&["-s", offline, "pause", "vms", "a"], &[])
        .fails_with("unsupported resource type: vms");
    virtctl_raw(&["-s", offline, "pause", "vmi", "a"], &[]).fails_containing(
        "Error pausing VirtualMachineInstance a: Put \"http://127.0.0.1:1/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/a/pause\": ",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_subresource_api_says_so() {
    let c = Cluster::plain().await;
    c.create_vm("default", "vm1", "Always", json!({})).await;
    c.create_vmi("default", "vm1", "Running", json!({})).await;
    c.virtctl(&["pause", "vm", "vm1"]).await.fails_with(
        "Error pausing VirtualMachineInstance vm1: pause needs the KubeVirt subresource API \
         (subresources.kubevirt.io), which this cluster does not serve; only KubeVirt's node \
         agent can pause a guest",
    );
    c.virtctl(&["unpause", "vmi", "vm1"]).await.fails_containing(
        "Error unpausing VirtualMachineInstance vm1: unpause needs the KubeVirt subresource API",
    );
}

/// The VMI's `Paused` condition as `(status, reason)`, if it has one.
async fn paused_condition(c: &Cluster, name: &str) -> Option<(String, String)> {
    let vmi = c.vmis("default").get(name).await.unwrap();
    let status = serde_json::to_value(vmi.status).unwrap();
    status["conditions"]
        .as_array()?
        .iter()
        .find(|cond| cond["type"] == "Paused")
        .map(|cond| {
            let field = |k: &str| cond[k].as_str().unwrap_or_default().to_string();
            (field("status"), field("reason"))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_unpause_on_the_playground() {
    let c = Cluster::playground().await;
    c.create_vm("default", "vm1", "Halted", json!({})).await;
    c.wait_printable("default", "vm1", "Stopped").await;

    // Scenario 34: a Halted VM has no instance to pause.
    c.virtctl(&["pause", "vm", "vm1"]).await.fails_with(
        "Error pausing VirtualMachineInstance vm1. VirtualMachine vm1 is not set to run",
    );
    // unpause has no words of its own for it: the server's 404.
    c.virtctl(&["unpause", "vm", "vm1"]).await.fails_with(
        "Error unpausing VirtualMachineInstance vm1: virtualmachineinstance.kubevirt.io \"vm1\" not found",
    );

    c.virtctl(&["start", "vm1", "--wait", "--timeout", "60s"])
        .await
        .ok("VM vm1 was scheduled to start\n");

    // A dry run checks the request and changes nothing.
    c.virtctl(&["pause", "vm", "vm1", "--dry-run"])
        .await
        .ok("Dry Run execution\nVMI vm1 was scheduled to pause\n");
    assert_eq!(paused_condition(&c, "vm1").await, None);
    assert_eq!(c.printable("default", "vm1").await, "Running");

    // Scenario 34: pause through the VM.
    c.virtctl(&["pause", "vm", "vm1"])
        .await
        .ok("VMI vm1 was scheduled to pause\n");
    assert_eq!(
        paused_condition(&c, "vm1").await,
        Some(("True".into(), "PausedByUser".into()))
    );
    c.wait_printable("default", "vm1", "Paused").await;
    c.virtctl(&["pause", "vmi", "vm1"]).await.fails_with(
        "Error pausing VirtualMachineInstance vm1: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vm1\": VMI is already paused",
    );

    c.virtctl(&["unpause", "vmi", "vm1", "--dry-run"])
        .await
        .ok("Dry Run execution\nVMI vm1 was scheduled to unpause\n");
    assert!(paused_condition(&c, "vm1").await.is_some());
    assert_eq!(c.printable("default", "vm1").await, "Paused");

    c.virtctl(&["unpause", "vmi", "vm1"])
        .await
        .ok("VMI vm1 was scheduled to unpause\n");
    assert_eq!(paused_condition(&c, "vm1").await, None);
    c.wait_printable("default", "vm1", "Running").await;
    c.virtctl(&["unpause", "vm", "vm1"]).await.fails_with(
        "Error unpausing VirtualMachineInstance vm1: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vm1\": VMI is not paused",
    );

    // A VMI that does not exist, named directly: the server's 404.
    c.virtctl(&["pause", "vmi", "nope"]).await.fails_with(
        "Error pausing VirtualMachineInstance nope: virtualmachineinstance.kubevirt.io \"nope\" not found",
    );
}
