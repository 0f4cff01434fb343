//! start / stop / restart over the subresource API: the `virt-playground`,
//! with the controllers and the simulated node running, so the VMs really start and stop.

mod common;

use common::Cluster;
use serde_json::json;

const NS: &str = "default";

async fn vmi_uid(c: &Cluster, name: &str) -> Option<String> {
    c.vmis(NS)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|v| v.metadata.uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_restart_stop_with_wait() {
    let c = Cluster::playground().await;
    c.create_vm(NS, "vm1", "Halted", json!({})).await;
    c.wait_printable(NS, "vm1", "Stopped").await;

    // Start and wait until Running.
    c.virtctl(&["start", "vm1", "--wait", "--timeout", "60s"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    assert_eq!(c.printable(NS, "vm1").await, "Running");
    let first = vmi_uid(&c, "vm1").await.expect("a VMI");

    // Scenario 3: already running.
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running",
    );

    // Scenario 23: dry runs change nothing.
    c.virtctl(&["stop", "vm1", "--dry-run"])
        .await
        .ok("Dry Run execution\nVM vm1 was scheduled to stop\n");
    c.virtctl(&["restart", "vm1", "--dry-run"])
        .await
        .ok("Dry Run execution\nVM vm1 was scheduled to restart\n");
    let vm = c.vms(NS).get("vm1").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));
    assert_eq!(vmi_uid(&c, "vm1").await.as_deref(), Some(first.as_str()));

    // Scenario 16: no request at all.
    c.virtctl(&["stop", "vm1", "--force"])
        .await
        .fails_with("Must both use --force=true and set --grace-period.");
    c.virtctl(&["restart", "vm1", "--grace-period=0"])
        .await
        .fails_with("Must both use --force=true and set --grace-period.");

    // Scenario 22: the server refuses non-zero force grace periods.
    c.virtctl(&["restart", "vm1", "--force", "--grace-period=5"])
        .await
        .fails_with(
            "error force restarting VirtualMachine: For force restart, only gracePeriod=0 is supported for now",
        );
    c.virtctl(&["restart", "vm1", "--force", "--grace-period=-1"])
        .await
        .fails_with(
            "error force restarting VirtualMachine: gracePeriod has to be greater or equal to 0",
        );

    // Scenario 18: restart, wait for a new VMI.
    c.virtctl(&["restart", "vm1", "--wait", "--timeout=60s"])
        .await
        .ok("VM vm1 was scheduled to restart\n");
    let second = vmi_uid(&c, "vm1").await.expect("a new VMI");
    assert_ne!(first, second);
    assert_eq!(c.printable(NS, "vm1").await, "Running");
    assert_eq!(c.requests(NS, "vm1").await, serde_json::Value::Null);

    // Scenario 21: force restart, without a terminal: warns and proceeds.
    let out = c
        .virtctl(&["restart", "vm1", "--force", "--grace-period=0", "--wait"])
        .await;
    out.ok("VM vm1 was scheduled to restart\n");
    assert!(out.stderr.contains("may be corrupted"), "{out:#?}");
    let third = vmi_uid(&c, "vm1").await.expect("a new VMI");
    assert_ne!(second, third);

    // Scenario 11: stop and wait until Stopped.
    c.virtctl(&["stop", "vm1", "--wait", "--timeout", "60s"])
        .await
        .ok("VM vm1 was scheduled to stop\n");
    assert_eq!(c.printable(NS, "vm1").await, "Stopped");
    assert!(vmi_uid(&c, "vm1").await.is_none());

    // Scenario 13 and 19 on the now Halted VM.
    c.virtctl(&["stop", "vm1"]).await.fails_with(
        "error stopping VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is not running",
    );
    c.virtctl(&["restart", "vm1"]).await.fails_with(
        "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": RunStategy Halted does not support manual restart requests",
    );

    // The seed document's form, with the type first.
    c.virtctl(&["start", "vm", "vm1"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    c.virtctl(&["stop", "virtualmachine", "vm1", "--dry-run"])
        .await
        .ok("Dry Run execution\nVM vm1 was scheduled to stop\n");

    // A missing VM: the 404 of a served group is reported, not retried client-side.
    c.virtctl(&["start", "nope"])
        .await
        .fails_with("Error starting VirtualMachine virtualmachine.kubevirt.io \"nope\" not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_force_stop_namespaces_and_backoff() {
    let c = Cluster::playground().await;

    // version shows the playground's KubeVirt version.Info after the client's.
    let out = c.virtctl(&["version"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert!(
        lines[0].starts_with("Client Version: version.Info{GitVersion:\"v1.9.0+virt-toolkit."),
        "{out:#?}"
    );
    assert!(
        lines[1].starts_with("Server Version: version.Info{GitVersion:\"v"),
        "{out:#?}"
    );
    assert!(
        lines[1].contains(", Compiler:\"rustc\", Platform:\""),
        "{out:#?}"
    );

    // Scenario 35: `-n ns/foo`.
    c.create_namespace("foo").await;
    c.create_vm("foo", "vm1", "Manual", json!({})).await;
    c.virtctl(&["-n", "ns/foo", "start", "vm1", "--wait"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    assert_eq!(c.printable("foo", "vm1").await, "Running");

    // Scenario 19: Manual with no VMI cannot restart.
    c.create_vm(NS, "manual", "Manual", json!({})).await;
    c.wait_printable(NS, "manual", "Stopped").await;
    c.virtctl(&["restart", "manual"]).await.fails_with(
        "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"manual\": VM is not running: Halted",
    );

    // Scenario 15: force stop of an Always VM whose VMI has a long grace period.
    c.create_vm(
        NS,
        "slow",
        "Always",
        json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 600}}}}),
    )
    .await;
    c.wait_printable(NS, "slow", "Running").await;
    c.virtctl(&[
        "stop",
        "slow",
        "--force",
        "--grace-period=0",
        "--wait",
        "--timeout=60s",
    ])
    .await
    .ok("VM slow was scheduled to stop\n");
    let vm = c.vms(NS).get("slow").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Halted"));
    assert!(vmi_uid(&c, "slow").await.is_none());

    // Scenario 4: Always with no VMI (in crash-loop backoff).
    c.create_vm(
        NS,
        "crashy",
        "Always",
        json!({"spec": {"template": {"metadata": {"annotations": {
            "localkube.dev/fail-before-running": "true"}}}}}),
    )
    .await;
    c.wait_printable(NS, "crashy", "CrashLoopBackOff").await;
    c.eventually("the failed VMI to be gone", async || {
        vmi_uid(&c, "crashy").await.is_none().then_some(())
    })
    .await;
    c.virtctl(&["start", "crashy"])
        .await
        .fails_containing("Always does not support manual start requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_with_the_last_status() {
    let c = Cluster::playground().await;
    c.create_vm(
        NS,
        "stuck",
        "Halted",
        json!({"spec": {"template": {"metadata": {"annotations": {
            "localkube.dev/fail-before-running": "true"}}}}}),
    )
    .await;
    c.wait_printable(NS, "stuck", "Stopped").await;
    let out = c
        .virtctl(&["start", "stuck", "--wait", "--timeout", "2s"])
        .await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stdout, "VM stuck was scheduled to start\n");
    assert!(
        out.stderr
            .starts_with("timed out after 2s waiting for VM stuck to be Running; last status: "),
        "{out:#?}"
    );
}
