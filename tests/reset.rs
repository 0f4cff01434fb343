//! `virtctl reset` / `soft-reboot`: the requests and messages against a fake KubeVirt API, and
//! the checks of the `virt-playground` subresource API with simulated guests (the real guest's
//! reset is in `real_guests.rs`).

mod common;

use common::Cluster;
use common::fake::{FakeServer, Recorded, status_body};
use common::virtctl_raw;
use serde_json::json;

const SUB: &str = "/apis/subresources.kubevirt.io/v1/namespaces";

/// `vmi1` resets; its soft reboot is refused as KubeVirt refuses one without a guest agent.
fn kubevirt(r: &Recorded) -> (u16, String) {
    if r.line == "GET /apis/subresources.kubevirt.io/v1" {
        let list = json!({"kind": "APIResourceList", "groupVersion": "subresources.kubevirt.io/v1", "resources": []});
        return (200, list.to_string());
    }
    let vmis = format!("PUT {SUB}/default/virtualmachineinstances/");
    match r.line.strip_prefix(&vmis) {
        Some("vmi1/reset") => (200, String::new()),
        Some("vmi1/softreboot") => (
            409,
            status_body(
                409,
                "Conflict",
                "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vmi1\": \
                 VMI neither have the agent connected nor the ACPI feature enabled",
            ),
        ),
        _ => (
            404,
            status_body(
                404,
                "NotFound",
                "virtualmachineinstance.kubevirt.io \"x\" not found",
            ),
        ),
    }
}

#[test]
fn reset_and_soft_reboot_requests_and_messages() {
    let server = FakeServer::start(kubevirt);
    let run = |args: &[&str]| {
        let mut all = vec!["-s", server.url.as_str()];
        all.extend_from_slice(args);
        virtctl_raw(&all, &[])
    };
    run(&["reset", "vmi1"]).ok("VMI vmi1 was scheduled to reset\n");
    run(&["soft-reboot", "vmi1"]).fails_with(
        "Error soft rebooting VirtualMachineInstance vmi1: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vmi1\": VMI neither have the agent connected nor \
         the ACPI feature enabled",
    );
    run(&["reset", "x"]).fails_with(
        "Error reseting VirtualMachineInstance x: virtualmachineinstance.kubevirt.io \"x\" not found",
    );
    let puts: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("PUT "))
        .map(|r| (r.line, r.body))
        .collect();
    assert_eq!(
        puts,
        [
            (
                format!("PUT {SUB}/default/virtualmachineinstances/vmi1/reset"),
                String::new()
            ),
            (
                format!("PUT {SUB}/default/virtualmachineinstances/vmi1/softreboot"),
                String::new()
            ),
            (
                format!("PUT {SUB}/default/virtualmachineinstances/x/reset"),
                String::new()
            ),
        ]
    );
}

#[test]
fn bad_input() {
    let offline = "http://127.0.0.1:1";
    virtctl_raw(&["-s", offline, "reset"], &[]).fails_with("accepts 1 arg(s), received 0");
    virtctl_raw(&["-s", offline, "soft-reboot", "a", "b"], &[])
        .fails_with("accepts 1 arg(s), received 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_soft_reboot_on_the_playground() {
    let c = Cluster::playground().await;
    c.virtctl(&["reset", "nope"]).await.fails_with(
        "Error reseting VirtualMachineInstance nope: virtualmachineinstance.kubevirt.io \"nope\" \
         not found",
    );
    c.virtctl(&["soft-reboot", "nope"]).await.fails_with(
        "Error soft rebooting VirtualMachineInstance nope: virtualmachineinstance.kubevirt.io \
         \"nope\" not found",
    );

    // A finished instance: KubeVirt's words for each.
    c.create_vmi("default", "vmi-done", "Succeeded", json!({}))
        .await;
    c.virtctl(&["reset", "vmi-done"]).await.fails_with(
        "Error reseting VirtualMachineInstance vmi-done: Failed to reset non-running VMI with \
         phase Succeeded: Unable to connect to VirtualMachineInstance because phase is Succeeded \
         instead of Running or Scheduled",
    );
    c.virtctl(&["soft-reboot", "vmi-done"]).await.fails_with(
        "Error soft rebooting VirtualMachineInstance vmi-done: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vmi-done\": VM is not running",
    );

    c.create_vm("default", "vm1", "Always", json!({})).await;
    c.wait_printable("default", "vm1", "Running").await;
    // A simulated guest has nothing to reset: accepted, as a no-op.
    c.virtctl(&["reset", "vm1"])
        .await
        .ok("VMI vm1 was scheduled to reset\n");
    c.wait_printable("default", "vm1", "Running").await;
    c.virtctl(&["soft-reboot", "vm1"]).await.fails_with(
        "Error soft rebooting VirtualMachineInstance vm1: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vm1\": VMI neither have the agent connected nor \
         the ACPI feature enabled",
    );
    c.virtctl(&["pause", "vmi", "vm1"])
        .await
        .ok("VMI vm1 was scheduled to pause\n");
    c.virtctl(&["soft-reboot", "vm1"]).await.fails_with(
        "Error soft rebooting VirtualMachineInstance vm1: Operation cannot be fulfilled on \
         virtualmachineinstance.kubevirt.io \"vm1\": VMI is paused",
    );
}
