//! start / stop / restart over the client-side transport: a cluster that does not serve
//! `subresources.kubevirt.io` (plain localkube with the CRDs, no controllers). Each test
//! asserts the messages and exit codes, and the objects the plan wrote right after the command.

mod common;

use common::Cluster;
use serde_json::{Value, json};

const NS: &str = "default";

fn stop_request(uid: &str) -> Value {
    json!({"action": "Stop", "uid": uid})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_scenarios() {
    let c = Cluster::plain().await;

    // Scenario 1 (client side): Halted → spec Always, no pending requests.
    c.create_vm(NS, "halted", "Halted", json!({})).await;
    c.virtctl(&["start", "halted"])
        .await
        .ok("VM halted was scheduled to start\n");
    let vm = c.vms(NS).get("halted").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));

    // The seed document's form, `virtctl start vm NAME`, with the deprecated `running: false`.
    let mut seed = common::vm_json("seed", "Halted");
    seed["spec"].as_object_mut().unwrap().remove("runStrategy");
    seed["spec"]["running"] = json!(false);
    c.create(NS, seed).await;
    c.virtctl(&["start", "vm", "seed"])
        .await
        .ok("VM seed was scheduled to start\n");
    assert_eq!(
        c.vms(NS).get("seed").await.unwrap().spec.running,
        Some(true)
    );

    // Scenario 3: a running VMI.
    c.create_vm(NS, "vm1", "Always", json!({})).await;
    c.create_vmi(NS, "vm1", "Running", json!({})).await;
    c.virtctl(&["start", "vm1"]).await.fails_with(
        "Error starting VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running",
    );

    // Scenario 4: Always with no VMI.
    c.create_vm(NS, "always", "Always", json!({})).await;
    c.virtctl(&["start", "always"])
        .await
        .fails_containing("Always does not support manual start requests");
    let out = c.virtctl(&["start", "always"]).await;
    assert!(
        out.stderr.starts_with("Error starting VirtualMachine "),
        "{out:#?}"
    );

    // Manual start queues [Start]; --paused carries data.paused.
    c.create_vm(NS, "manual", "Manual", json!({})).await;
    c.virtctl(&["start", "manual", "--paused"])
        .await
        .ok("VM manual was scheduled to start\n");
    assert_eq!(
        c.requests(NS, "manual").await,
        json!([{"action": "Start", "data": {"paused": "true"}}])
    );

    // A missing VM.
    c.virtctl(&["start", "nope"])
        .await
        .fails_with("Error starting VirtualMachine virtualmachine.kubevirt.io \"nope\" not found");

    // Scenario 35: the namespace prefix is stripped.
    c.create_namespace("foo").await;
    c.create_vm("foo", "vm1", "Halted", json!({})).await;
    c.virtctl(&["-n", "ns/foo", "start", "vm1"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    let vm = c.vms("foo").get("vm1").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));
    c.create_vm("foo", "vm2", "Halted", json!({})).await;
    c.virtctl(&["start", "--namespace=Namespaces/foo", "vm2"])
        .await
        .ok("VM vm2 was scheduled to start\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_scenarios() {
    let c = Cluster::plain().await;

    // Scenario 13: already stopped.
    for strategy in ["Halted", "Manual", "RerunOnFailure"] {
        let name = format!("stopped-{}", strategy.to_lowercase());
        c.create_vm(NS, &name, strategy, json!({})).await;
        c.virtctl(&["stop", &name]).await.fails_with(&format!(
            "error stopping VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{name}\": VM is not running"
        ));
    }

    // Scenario 11 (client side): Always → Halted.
    c.create_vm(NS, "always", "Always", json!({})).await;
    c.create_vmi(NS, "always", "Running", json!({})).await;
    c.virtctl(&["stop", "always"])
        .await
        .ok("VM always was scheduled to stop\n");
    let vm = c.vms(NS).get("always").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Halted"));

    // Scenario 15: force stop patches the VMI's grace period.
    c.create_vm(NS, "force", "Always", json!({})).await;
    c.create_vmi(
        NS,
        "force",
        "Running",
        json!({"spec": {"terminationGracePeriodSeconds": 600}}),
    )
    .await;
    c.virtctl(&["stop", "force", "--force", "--grace-period=0"])
        .await
        .ok("VM force was scheduled to stop\n");
    let vmi = c.vmis(NS).get("force").await.unwrap();
    assert_eq!(vmi.spec.termination_grace_period_seconds, Some(0));
    let vm = c.vms(NS).get("force").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Halted"));

    // Scenario 16: --force without --grace-period, and the reverse.
    c.virtctl(&["stop", "force", "--force"])
        .await
        .fails_with("Must both use --force=true and set --grace-period.");
    c.virtctl(&["stop", "force", "--grace-period", "0"])
        .await
        .fails_with("Must both use --force=true and set --grace-period.");

    // Scenario 17: Halted while the VMI is still shutting down.
    c.create_vm(NS, "halting", "Halted", json!({})).await;
    let vmi = c
        .create_vmi(
            NS,
            "halting",
            "Running",
            json!({"spec": {"terminationGracePeriodSeconds": 1800}}),
        )
        .await;
    let uid = vmi.metadata.uid.clone().unwrap();
    c.virtctl(&["stop", "halting"]).await.fails_with(
        "error stopping VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io \"halting\": Halted only supports manual stop requests with a shorter graceperiod",
    );
    c.virtctl(&["stop", "halting", "--force", "--grace-period=2400"])
        .await
        .fails_containing("error force stopping VirtualMachine: ");
    c.virtctl(&["stop", "halting", "--force", "--grace-period=0"])
        .await
        .ok("VM halting was scheduled to stop\n");
    assert_eq!(c.requests(NS, "halting").await, json!([stop_request(&uid)]));

    // Scenario 23: dry run changes nothing.
    c.create_vm(NS, "dry", "Always", json!({})).await;
    c.create_vmi(NS, "dry", "Running", json!({})).await;
    let before = c.vms(NS).get("dry").await.unwrap();
    c.virtctl(&["stop", "dry", "--dry-run"])
        .await
        .ok("Dry Run execution\nVM dry was scheduled to stop\n");
    let after = c.vms(NS).get("dry").await.unwrap();
    assert_eq!(before.spec, after.spec);
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    // A missing VM.
    c.virtctl(&["stop", "nope"])
        .await
        .fails_with("error stopping VirtualMachine virtualmachine.kubevirt.io \"nope\" not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_scenarios() {
    let c = Cluster::plain().await;

    // Scenario 18: [Stop{uid}, Start], strategy unchanged.
    for strategy in ["Always", "Manual", "RerunOnFailure"] {
        let name = format!("r-{}", strategy.to_lowercase());
        c.create_vm(NS, &name, strategy, json!({})).await;
        let vmi = c.create_vmi(NS, &name, "Running", json!({})).await;
        c.virtctl(&["restart", &name])
            .await
            .ok(&format!("VM {name} was scheduled to restart\n"));
        let uid = vmi.metadata.uid.unwrap();
        assert_eq!(
            c.requests(NS, &name).await,
            json!([stop_request(&uid), {"action": "Start"}])
        );
        let vm = c.vms(NS).get(&name).await.unwrap();
        assert_eq!(vm.spec.run_strategy.as_deref(), Some(strategy));
    }

    // Scenario 19: restarting a stopped VM.
    c.create_vm(NS, "halted", "Halted", json!({})).await;
    c.virtctl(&["restart", "halted"]).await.fails_with(
        "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"halted\": RunStategy Halted does not support manual restart requests",
    );
    c.create_vm(NS, "once", "Once", json!({})).await;
    c.virtctl(&["restart", "once"])
        .await
        .fails_containing("RunStategy Once does not support manual restart requests");
    c.create_vm(NS, "manual", "Manual", json!({})).await;
    c.virtctl(&["restart", "manual"]).await.fails_with(
        "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"manual\": VM is not running: Halted",
    );

    // Scenario 20: pending requests.
    c.create_vm(NS, "pending", "Always", json!({})).await;
    c.create_vmi(NS, "pending", "Running", json!({})).await;
    c.vms(NS)
        .patch_status(
            "pending",
            &Default::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"stateChangeRequests": [{"action": "Start"}]}}),
            ),
        )
        .await
        .unwrap();
    c.virtctl(&["restart", "pending"]).await.fails_with(
        "error restarting VirtualMachine: Internal error occurred: unable to complete request: stop/start already underway",
    );

    // Scenario 21: force restart queues [Stop, Start] and deletes the running launcher pod.
    c.create_vm(NS, "forced", "Always", json!({})).await;
    let vmi = c.create_vmi(NS, "forced", "Running", json!({})).await;
    let uid = vmi.metadata.uid.clone().unwrap();
    c.create(
        NS,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "virt-launcher-forced", "labels": {
                "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": uid}},
            "spec": {"containers": [{"name": "compute", "image": "x"}]},
        }),
    )
    .await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(c.client.clone(), NS);
    pods.patch_status(
        "virt-launcher-forced",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    let out = c
        .virtctl(&["restart", "forced", "--force", "--grace-period=0"])
        .await;
    out.ok("VM forced was scheduled to restart\n");
    assert!(out.stderr.contains("may be corrupted"), "{out:#?}");
    assert_eq!(
        c.requests(NS, "forced").await,
        json!([stop_request(&uid), {"action": "Start"}])
    );
    c.eventually("the launcher pod to be deleted", async || {
        let p = pods.get_opt("virt-launcher-forced").await.unwrap();
        (p.is_none() || p.unwrap().metadata.deletion_timestamp.is_some()).then_some(())
    })
    .await;

    // Scenario 22: only 0 is a valid force grace period.
    c.create_vm(NS, "graceful", "Always", json!({})).await;
    c.create_vmi(NS, "graceful", "Running", json!({})).await;
    c.virtctl(&["restart", "graceful", "--force", "--grace-period=5"])
        .await
        .fails_with(
            "error force restarting VirtualMachine: For force restart, only gracePeriod=0 is supported for now",
        );
    c.virtctl(&["restart", "graceful", "--force", "--grace-period=-1"])
        .await
        .fails_with(
            "error force restarting VirtualMachine: gracePeriod has to be greater or equal to 0",
        );
    c.virtctl(&["restart", "graceful", "--grace-period=0"])
        .await
        .fails_with("Must both use --force=true and set --grace-period.");
    assert_eq!(c.requests(NS, "graceful").await, Value::Null);

    // Scenario 23: dry run.
    c.virtctl(&["restart", "graceful", "--dry-run"])
        .await
        .ok("Dry Run execution\nVM graceful was scheduled to restart\n");
    assert_eq!(c.requests(NS, "graceful").await, Value::Null);

    // A missing VM.
    c.virtctl(&["restart", "nope"]).await.fails_with(
        "error restarting VirtualMachine: virtualmachine.kubevirt.io \"nope\" not found",
    );
}

/// The client-side path with the controllers running (in this process): the VM really
/// starts, restarts and stops, and `--wait` sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_with_controllers_and_wait() {
    let c = Cluster::plain().await;
    c.spawn_controllers();
    c.create_vm(NS, "vm1", "Manual", json!({})).await;
    c.wait_printable(NS, "vm1", "Stopped").await;
    c.virtctl(&["start", "vm1", "--wait", "--timeout=60s"])
        .await
        .ok("VM vm1 was scheduled to start\n");
    let first = c.vmis(NS).get("vm1").await.unwrap().metadata.uid;
    c.virtctl(&["restart", "vm1", "--wait", "--timeout=60s"])
        .await
        .ok("VM vm1 was scheduled to restart\n");
    let second = c.vmis(NS).get("vm1").await.unwrap().metadata.uid;
    assert_ne!(first, second);
    c.virtctl(&["stop", "vm1", "--wait", "--timeout=60s"])
        .await
        .ok("VM vm1 was scheduled to stop\n");
    assert!(c.vmis(NS).get_opt("vm1").await.unwrap().is_none());
    let vm = c.vms(NS).get("vm1").await.unwrap();
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Manual"));
}
