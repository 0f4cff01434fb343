//! The last accepted lifecycle request wins, on both transports: `restart && stop` ends Stopped
//! (the restart's queued Start must not turn the VM back on), and `stop && start` ends as the
//! last command that was accepted says. The guest takes a second to shut down, so the second
//! command lands while the first is still being carried out.

mod common;

use std::time::Duration;

use common::{Cluster, Out};
use serde_json::{Value, json};

const NS: &str = "default";
const VM: &str = "vm-race";
const ROUNDS: usize = 4;

/// A VM with runStrategy Always and a 5 s grace period, as in the report of the lost stop.
async fn create_running_vm(c: &Cluster) {
    let grace = json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 5}}}});
    c.create_vm(NS, VM, "Always", grace).await;
    c.wait_printable(NS, VM, "Running").await;
}

async fn run_strategy(c: &Cluster) -> Option<String> {
    c.vms(NS).get(VM).await.unwrap().spec.run_strategy
}

async fn has_vmi(c: &Cluster) -> bool {
    c.vmis(NS).get_opt(VM).await.unwrap().is_some()
}

/// Waits until the VM is Stopped with no VMI and nothing queued, then checks that its spec says
/// Halted, so nothing can start it again.
async fn settles_stopped(c: &Cluster, round: usize) {
    c.eventually(
        &format!("round {round}: {VM} to settle Stopped"),
        async || {
            let settled = c.printable(NS, VM).await == "Stopped"
                && !has_vmi(c).await
                && c.requests(NS, VM).await == Value::Null;
            settled.then_some(())
        },
    )
    .await;
    assert_eq!(
        run_strategy(c).await.as_deref(),
        Some("Halted"),
        "round {round}"
    );
}

async fn settles_running(c: &Cluster, round: usize) {
    c.eventually(
        &format!("round {round}: {VM} to settle Running"),
        async || {
            let settled =
                c.printable(NS, VM).await == "Running" && c.requests(NS, VM).await == Value::Null;
            settled.then_some(())
        },
    )
    .await;
    assert_eq!(
        run_strategy(c).await.as_deref(),
        Some("Always"),
        "round {round}"
    );
}

/// The start that follows a stop is either accepted (the VM ends Running) or refused because
/// the old VMI is still shutting down (the VM ends Stopped).
async fn start_after_stop(c: &Cluster, round: usize) {
    c.virtctl(&["stop", VM])
        .await
        .ok("VM vm-race was scheduled to stop\n");
    let start: Out = c.virtctl(&["start", VM]).await;
    if start.code == 0 {
        assert_eq!(start.stdout, "VM vm-race was scheduled to start\n");
        settles_running(c, round).await;
    } else {
        assert!(
            start.stderr.contains("VM is already running"),
            "round {round}: {start:#?}"
        );
        settles_stopped(c, round).await;
        c.virtctl(&["start", VM])
            .await
            .ok("VM vm-race was scheduled to start\n");
        settles_running(c, round).await;
    }
}

async fn last_request_wins(c: &Cluster) {
    create_running_vm(c).await;
    for round in 0..ROUNDS {
        c.virtctl(&["restart", VM])
            .await
            .ok("VM vm-race was scheduled to restart\n");
        c.virtctl(&["stop", VM])
            .await
            .ok("VM vm-race was scheduled to stop\n");
        settles_stopped(c, round).await;

        c.virtctl(&["start", VM])
            .await
            .ok("VM vm-race was scheduled to start\n");
        settles_running(c, round).await;
        start_after_stop(c, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subresource_transport() {
    let c = Cluster::playground_with_node_shutdown("1s").await;
    last_request_wins(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_transport() {
    let c = Cluster::plain().await;
    c.spawn_controllers_with_node_shutdown(Duration::from_secs(1));
    last_request_wins(&c).await;
}
