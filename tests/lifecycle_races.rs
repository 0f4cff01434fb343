//! Lifecycle requests that race each other land only where the rules allow them (Part A §22,
//! found by `tests/contention.rs`): a plan made before another request landed fails its
//! `test`s, and the request is decided again on what is there now.
//!
//! localkube in this process with the CRDs and no controllers, so the objects stay exactly as
//! the requests leave them; the plans are made and run with the executor both transports use.

mod common;

use common::Cluster;
use serde_json::{Value, json};
use virt_reconciler::execute;
use virt_reconciler::intent::{self, IntentError};
use virt_reconciler::request::{LifecycleRequest, RestartOptions, StopOptions};

const NS: &str = "default";
const VM: &str = "vm-race";

/// A VM with runStrategy Always, a status as the controller leaves it, and a Running VMI.
async fn running_vm(c: &Cluster) {
    c.create_vm(NS, VM, "Always", json!({})).await;
    let status = json!({"status": {"printableStatus": "Running"}});
    c.vms(NS)
        .patch_status(VM, &Default::default(), &kube::api::Patch::Merge(&status))
        .await
        .unwrap();
    c.create_vmi(NS, VM, "Running", json!({})).await;
}

async fn lifecycle(c: &Cluster, request: LifecycleRequest) -> Result<(), IntentError> {
    execute::lifecycle(&c.client, NS, VM, &request).await
}

fn stop() -> LifecycleRequest {
    LifecycleRequest::Stop(StopOptions::default())
}

fn restart() -> LifecycleRequest {
    LifecycleRequest::Restart(RestartOptions::default())
}

/// The VM's (runStrategy, stateChangeRequests).
async fn strategy_and_queue(c: &Cluster) -> (String, Value) {
    let vm = c.vms(NS).get(VM).await.unwrap();
    (
        vm.spec.run_strategy.clone().unwrap_or_default(),
        c.requests(NS, VM).await,
    )
}

fn conflict(reason: &str) -> String {
    format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{VM}\": {reason}")
}

/// Executes a plan decided before another request landed: it must lose on its `test`s (409).
async fn loses_its_race(c: &Cluster, plan: &intent::Plan, why: &str) {
    let lost = execute::execute(&c.client, NS, VM, plan)
        .await
        .expect_err(why);
    assert_eq!(lost.code, 409, "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_decided_before_a_stop_landed_is_refused_instead_of_turning_the_vm_on_again() {
    let c = Cluster::plain().await;
    running_vm(&c).await;
    let (vm, vmi) = execute::fetch(&c.client, NS, VM).await.unwrap();
    let restart_plan = intent::restart(&vm, vmi.as_ref(), &RestartOptions::default()).unwrap();

    lifecycle(&c, stop()).await.expect("the stop lands first");
    loses_its_race(
        &c,
        &restart_plan,
        "the restart's plan rests on an Always VM",
    )
    .await;
    // Decided again, as the executor does after a lost race: KubeVirt's refusal.
    let refused = lifecycle(&c, restart()).await.unwrap_err();
    assert_eq!(
        refused.message,
        conflict("RunStategy Halted does not support manual restart requests")
    );
    // Nothing queued: a queued Start would make the controller turn the VM on again.
    assert_eq!(strategy_and_queue(&c).await, ("Halted".into(), Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_decided_before_a_restart_landed_drops_the_restarts_start() {
    let c = Cluster::plain().await;
    running_vm(&c).await;
    let (vm, vmi) = execute::fetch(&c.client, NS, VM).await.unwrap();
    let uid = vmi.as_ref().unwrap().metadata.uid.clone().unwrap();
    let stop_plan = intent::stop(&vm, vmi.as_ref(), &StopOptions::default()).unwrap();

    lifecycle(&c, restart())
        .await
        .expect("the restart lands first");
    loses_its_race(&c, &stop_plan, "the stop's plan rests on an empty queue").await;
    lifecycle(&c, stop())
        .await
        .expect("decided again, the stop lands");
    assert_eq!(
        strategy_and_queue(&c).await,
        ("Halted".into(), json!([{"action": "Stop", "uid": uid}])),
        "the restart's Stop stays, its Start is gone"
    );
}

/// [`execute::run`] with the stop rules, where the first plan is made from `first` (a VM as
/// another reader saw it) and every later one from the VM as read; returns the answer and how
/// many plans were made.
async fn stop_planned_first_from(
    c: &Cluster,
    first: virt_reconciler::VirtualMachine,
    redecidable: bool,
) -> (Result<(), IntentError>, usize) {
    let plans = std::sync::atomic::AtomicUsize::new(0);
    let answer = execute::run(&c.client, NS, VM, |vm, vmi| {
        let n = plans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut plan = intent::stop(
            if n == 0 { &first } else { vm },
            vmi,
            &StopOptions::default(),
        )?;
        if !redecidable {
            plan.redecidable_steps = 0;
        }
        Ok(plan)
    })
    .await;
    (answer, plans.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_loses_its_race_after_dropping_the_starts_is_decided_again() {
    let c = Cluster::plain().await;
    running_vm(&c).await;
    lifecycle(&c, restart()).await.unwrap();
    let (queued, vmi) = execute::fetch(&c.client, NS, VM).await.unwrap();
    let uid = vmi.unwrap().metadata.uid.unwrap();
    // Another stop lands between the two writes of this one: its drop of the Starts is
    // written, its turn to Halted is not. The stale copy says Once (stop drops and halts the
    // same way) so that the second write's test fails where a real race would make it fail.
    let mut stale = queued.clone();
    stale.spec.run_strategy = Some("Once".into());

    let (answer, plans) = stop_planned_first_from(&c, stale.clone(), false).await;
    assert_eq!(
        (answer.map_err(|e| e.code), plans),
        (Err(409), 1),
        "without the rule, the lost race after the drop is the caller's 409"
    );

    // Queue the Start again and let the executor decide once more.
    let requeue = json!({"status": {"stateChangeRequests": [{"action": "Stop", "uid": uid}, {"action": "Start"}]}});
    c.vms(NS)
        .patch_status(VM, &Default::default(), &kube::api::Patch::Merge(&requeue))
        .await
        .unwrap();
    let (answer, plans) = stop_planned_first_from(&c, stale, true).await;
    assert_eq!((answer, plans), (Ok(()), 2));
    assert_eq!(
        strategy_and_queue(&c).await,
        ("Halted".into(), json!([{"action": "Stop", "uid": uid}]))
    );
}

/// A VM with runStrategy Manual, a status as the controller leaves it, and a Running VMI.
async fn running_manual_vm(c: &Cluster) {
    c.create_vm(NS, VM, "Manual", json!({})).await;
    let status = json!({"status": {"printableStatus": "Running", "created": true}});
    c.vms(NS)
        .patch_status(VM, &Default::default(), &kube::api::Patch::Merge(&status))
        .await
        .unwrap();
    c.create_vmi(NS, VM, "Running", json!({})).await;
}

/// Sets the VM's queue as the controller leaves it (`null` empties it).
async fn set_queue(c: &Cluster, queue: Value) {
    let status = json!({"status": {"stateChangeRequests": queue}});
    c.vms(NS)
        .patch_status(VM, &Default::default(), &kube::api::Patch::Merge(&status))
        .await
        .unwrap();
}

/// What the controller does for a Manual restart: the VMI deleted, the Stop popped, a new VMI,
/// the Start popped. Returns the new VMI's uid.
async fn carry_out_restart(c: &Cluster) -> String {
    c.vmis(NS).delete(VM, &Default::default()).await.unwrap();
    set_queue(c, json!([{"action": "Start"}])).await;
    let new = c.create_vmi(NS, VM, "Running", json!({})).await;
    set_queue(c, Value::Null).await;
    new.metadata.uid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_stop_decided_before_a_restart_replaced_the_vmi_stops_the_new_one() {
    let c = Cluster::plain().await;
    running_manual_vm(&c).await;
    let (vm, vmi) = execute::fetch(&c.client, NS, VM).await.unwrap();
    let stop_plan = intent::stop(&vm, vmi.as_ref(), &StopOptions::default()).unwrap();

    lifecycle(&c, restart())
        .await
        .expect("the restart lands first");
    let new = carry_out_restart(&c).await;
    // The queue is empty again, as the stop read it: its Stop of the old VMI would be popped
    // by the controller (that VMI is gone) and the new one would run on.
    loses_its_race(
        &c,
        &stop_plan,
        "the stop's plan rests on the VMI the restart replaced",
    )
    .await;
    lifecycle(&c, stop())
        .await
        .expect("decided again, the stop lands");
    assert_eq!(
        strategy_and_queue(&c).await,
        ("Manual".into(), json!([{"action": "Stop", "uid": new}]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_restart_decided_before_a_stop_landed_is_refused_instead_of_starting_the_vm() {
    let c = Cluster::plain().await;
    running_manual_vm(&c).await;
    let (vm, vmi) = execute::fetch(&c.client, NS, VM).await.unwrap();
    let restart_plan = intent::restart(&vm, vmi.as_ref(), &RestartOptions::default()).unwrap();

    lifecycle(&c, stop()).await.expect("the stop lands first");
    // The controller carries it out: the VMI deleted, the Stop popped.
    c.vmis(NS).delete(VM, &Default::default()).await.unwrap();
    set_queue(&c, Value::Null).await;
    loses_its_race(
        &c,
        &restart_plan,
        "the restart's plan rests on the VMI the stop removed",
    )
    .await;
    let refused = lifecycle(&c, restart()).await.unwrap_err();
    assert_eq!(refused.message, conflict("VM is not running: Halted"));
    assert_eq!(strategy_and_queue(&c).await, ("Manual".into(), Value::Null));
}
