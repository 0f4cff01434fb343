//! The intent rules' tests: one named test per cell of the start/stop/restart matrix, then
//! the special cases (pending requests, grace periods, status shapes, dry runs).

use super::*;
use crate::types::{
    Condition, StartFailure, VirtualMachineInstanceSpec, VirtualMachineInstanceStatus,
    VirtualMachineSpec, VirtualMachineStatus,
};

const VM: &str = "vm1";
const UID: &str = "6f1c9a52-0d1e-4b7a-9c55-2b1f3e8d7a10";
/// The VM's `metadata.generation`, which every write to it tests (Part A §22).
const GENERATION: i64 = 4;
/// The VM's `metadata.resourceVersion`, which the queue writes of Manual and RerunOnFailure
/// test (Part A §22).
const VERSION: &str = "117";

/// A VM with the given `spec.runStrategy` and a non-empty status with an empty queue, the
/// usual shape of a VM the controller has seen.
fn vm(strategy: &str) -> VirtualMachine {
    vm_with(None, Some(strategy))
}

fn vm_with(running: Option<bool>, strategy: Option<&str>) -> VirtualMachine {
    let mut vm = VirtualMachine::new(
        VM,
        VirtualMachineSpec {
            running,
            run_strategy: strategy.map(str::to_string),
            ..Default::default()
        },
    );
    vm.metadata.generation = Some(GENERATION);
    vm.metadata.resource_version = Some(VERSION.into());
    vm.status = Some(VirtualMachineStatus {
        printable_status: Some("Stopped".into()),
        ..Default::default()
    });
    vm
}

fn status_mut(vm: &mut VirtualMachine) -> &mut VirtualMachineStatus {
    vm.status.get_or_insert_with(Default::default)
}

fn with_condition(mut vm: VirtualMachine, type_: &str, status: &str) -> VirtualMachine {
    status_mut(&mut vm).conditions.push(Condition {
        type_: type_.into(),
        status: status.into(),
        ..Default::default()
    });
    vm
}

fn with_pending(mut vm: VirtualMachine, pending: Vec<StateChangeRequest>) -> VirtualMachine {
    status_mut(&mut vm).state_change_requests = pending;
    vm
}

fn with_start_failure(mut vm: VirtualMachine) -> VirtualMachine {
    status_mut(&mut vm).start_failure = Some(StartFailure {
        consecutive_fail_count: 3,
        last_failed_vmi_uid: Some("old-uid".into()),
        retry_after_timestamp: Some("2026-08-01T10:00:00Z".into()),
    });
    vm
}

/// The VMI `vm1` with the given phase (`""` leaves it unset) and grace period.
fn vmi_with(phase: &str, grace: Option<i64>) -> VirtualMachineInstance {
    let mut vmi = VirtualMachineInstance::new(
        VM,
        VirtualMachineInstanceSpec {
            termination_grace_period_seconds: grace,
            ..Default::default()
        },
    );
    vmi.metadata.uid = Some(UID.into());
    if !phase.is_empty() {
        vmi.status = Some(VirtualMachineInstanceStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
    }
    vmi
}

fn vmi(phase: &str) -> VirtualMachineInstance {
    vmi_with(phase, None)
}

// ---- expected values ----------------------------------------------------------------

type Expected = Result<Vec<(PatchTarget, Value)>, (u16, String)>;

fn conflict(reason: &str) -> Expected {
    Err((
        409,
        format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": {reason}"),
    ))
}

fn bad_request(reason: &str) -> Expected {
    Err((400, reason.to_string()))
}

fn internal(reason: &str) -> Expected {
    Err((500, format!("Internal error occurred: {reason}")))
}

fn steps(steps: Vec<(PatchTarget, Value)>) -> Expected {
    Ok(steps)
}

fn stop_req() -> Value {
    json!({"action": "Stop", "uid": UID})
}

fn start_req() -> Value {
    json!({"action": "Start"})
}

fn start_paused_req() -> Value {
    json!({"action": "Start", "data": {"paused": "true"}})
}

/// The `test` of the generation as read, first in every write to the VM.
fn generation() -> Value {
    json!({"op": "test", "path": "/metadata/generation", "value": GENERATION})
}

/// The `test` of the VM's version as read, after the generation's, in the queue writes of
/// Manual and RerunOnFailure: there the queue can come back to the value read while the VMI the
/// plan rests on was replaced or removed.
fn version() -> Value {
    json!({"op": "test", "path": "/metadata/resourceVersion", "value": VERSION})
}

/// `step` (a status patch that starts with the generation's test) with the [`version`] test.
fn pinned((target, mut patch): (PatchTarget, Value)) -> (PatchTarget, Value) {
    patch.as_array_mut().unwrap().insert(1, version());
    (target, patch)
}

/// The status patch on a VM with a non-empty status and an empty queue.
fn queue(requests: Vec<Value>) -> (PatchTarget, Value) {
    (
        PatchTarget::VmStatus,
        json!([
            generation(),
            {"op": "test", "path": "/status/stateChangeRequests", "value": null},
            {"op": "add", "path": "/status/stateChangeRequests", "value": requests},
        ]),
    )
}

/// The spec patch of a start (`new` Always) or of a stop (`new` Halted, which also tests that
/// no Start is queued, here on an empty queue).
fn spec_strategy(old: &str, new: &str) -> (PatchTarget, Value) {
    if new == "Halted" {
        return halt_strategy(old, Value::Null);
    }
    (
        PatchTarget::Vm,
        json!([
            generation(),
            {"op": "test", "path": "/spec/runStrategy", "value": old},
            {"op": "replace", "path": "/spec/runStrategy", "value": new},
        ]),
    )
}

/// A stop's spec patch, testing that the queue is `queue` (what the stop left of it).
fn halt_strategy(old: &str, queue: Value) -> (PatchTarget, Value) {
    (
        PatchTarget::Vm,
        json!([
            generation(),
            {"op": "test", "path": "/status/stateChangeRequests", "value": queue},
            {"op": "test", "path": "/spec/runStrategy", "value": old},
            {"op": "replace", "path": "/spec/runStrategy", "value": "Halted"},
        ]),
    )
}

fn spec_running(old: Value, new: bool) -> (PatchTarget, Value) {
    let mut ops = vec![generation()];
    if !new {
        ops.push(json!({"op": "test", "path": "/status/stateChangeRequests", "value": null}));
    }
    ops.push(json!({"op": "test", "path": "/spec/running", "value": old}));
    ops.push(json!({"op": "replace", "path": "/spec/running", "value": new}));
    (PatchTarget::Vm, Value::Array(ops))
}

fn vmi_grace(old: Value, new: i64) -> (PatchTarget, Value) {
    (
        PatchTarget::Vmi,
        json!([
            {"op": "test", "path": "/spec/terminationGracePeriodSeconds", "value": old},
            {"op": "replace", "path": "/spec/terminationGracePeriodSeconds", "value": new},
        ]),
    )
}

/// Compares a result with the expectation; the patches are compared as serialised JSON, so
/// key order counts too. `cell` names the case in the failure message.
fn check(cell: &str, got: Result<Plan, IntentError>, want: Expected) -> Option<Plan> {
    match (got, want) {
        (Ok(plan), Ok(want)) => {
            let got: Vec<(PatchTarget, String)> = plan
                .steps
                .iter()
                .map(|s| (s.target, s.patch.to_string()))
                .collect();
            let want: Vec<(PatchTarget, String)> =
                want.into_iter().map(|(t, p)| (t, p.to_string())).collect();
            assert_eq!(got, want, "{cell}: wrong patches");
            Some(plan)
        }
        (Err(e), Err((code, message))) => {
            assert_eq!(
                (e.code, e.message.as_str()),
                (code, message.as_str()),
                "{cell}"
            );
            let reason = match code {
                400 => "BadRequest",
                409 => "Conflict",
                _ => "InternalError",
            };
            assert_eq!(e.reason, reason, "{cell}: wrong reason");
            assert_eq!(e.to_string(), e.message, "{cell}: Display is the message");
            None
        }
        (Ok(plan), Err(want)) => panic!("{cell}: expected error {want:?}, got plan {plan:?}"),
        (Err(e), Ok(want)) => panic!("{cell}: expected plan {want:?}, got error {e:?}"),
    }
}

// ---- the §2.6 matrix ----------------------------------------------------------------

#[derive(Clone, Copy)]
enum Cmd {
    Start,
    Stop,
    Restart,
}

/// Runs a plain command (no pause, no grace, no dry run). `phase` is `None` for no VMI.
fn run(cmd: Cmd, strategy: &str, phase: Option<&str>) -> Result<Plan, IntentError> {
    let vm = vm(strategy);
    let vmi = phase.map(vmi);
    match cmd {
        Cmd::Start => start(&vm, vmi.as_ref(), &StartOptions::default()),
        Cmd::Stop => stop(&vm, vmi.as_ref(), &StopOptions::default()),
        Cmd::Restart => restart(&vm, vmi.as_ref(), &RestartOptions::default()),
    }
}

const ABSENT: Option<&str> = None;
const RUNNING: Option<&str> = Some("Running");
const SUCCEEDED: Option<&str> = Some("Succeeded");
const FAILED: Option<&str> = Some("Failed");
const UNKNOWN: Option<&str> = Some("Unknown");
const UNSET: Option<&str> = Some("");

/// One `#[test]` per cell, named `<command>_<strategy>_vmi_<state>`.
macro_rules! matrix {
    ($($name:ident: $cmd:ident $strategy:literal $vmi:ident => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            check(stringify!($name), run(Cmd::$cmd, $strategy, $vmi), $want);
        }
    )*};
}

matrix! {
    // start × Always
    start_always_vmi_absent: Start "Always" ABSENT =>
        conflict("Always does not support manual start requests");
    start_always_vmi_running: Start "Always" RUNNING => conflict("VM is already running");
    start_always_vmi_succeeded: Start "Always" SUCCEEDED =>
        conflict("Always does not support manual start requests");
    start_always_vmi_failed: Start "Always" FAILED =>
        conflict("Always does not support manual start requests");
    start_always_vmi_unknown: Start "Always" UNKNOWN =>
        conflict("Always does not support manual start requests");
    start_always_vmi_unset: Start "Always" UNSET =>
        conflict("Always does not support manual start requests");
    // start × Halted
    start_halted_vmi_absent: Start "Halted" ABSENT =>
        steps(vec![spec_strategy("Halted", "Always")]);
    start_halted_vmi_running: Start "Halted" RUNNING => conflict("VM is already running");
    start_halted_vmi_succeeded: Start "Halted" SUCCEEDED =>
        steps(vec![spec_strategy("Halted", "Always")]);
    start_halted_vmi_failed: Start "Halted" FAILED =>
        steps(vec![spec_strategy("Halted", "Always")]);
    start_halted_vmi_unknown: Start "Halted" UNKNOWN =>
        steps(vec![spec_strategy("Halted", "Always")]);
    start_halted_vmi_unset: Start "Halted" UNSET =>
        steps(vec![spec_strategy("Halted", "Always")]);
    // start × Manual
    start_manual_vmi_absent: Start "Manual" ABSENT => steps(vec![pinned(queue(vec![start_req()]))]);
    start_manual_vmi_running: Start "Manual" RUNNING => conflict("VM is already running");
    start_manual_vmi_succeeded: Start "Manual" SUCCEEDED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    start_manual_vmi_failed: Start "Manual" FAILED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    start_manual_vmi_unknown: Start "Manual" UNKNOWN => steps(vec![pinned(queue(vec![start_req()]))]);
    start_manual_vmi_unset: Start "Manual" UNSET => steps(vec![pinned(queue(vec![start_req()]))]);
    // start × RerunOnFailure
    start_rerunonfailure_vmi_absent: Start "RerunOnFailure" ABSENT =>
        steps(vec![pinned(queue(vec![start_req()]))]);
    start_rerunonfailure_vmi_running: Start "RerunOnFailure" RUNNING =>
        conflict("VM is already running");
    start_rerunonfailure_vmi_succeeded: Start "RerunOnFailure" SUCCEEDED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    start_rerunonfailure_vmi_failed: Start "RerunOnFailure" FAILED =>
        conflict("RerunOnFailure does not support starting VM from failed state");
    start_rerunonfailure_vmi_unknown: Start "RerunOnFailure" UNKNOWN =>
        steps(vec![pinned(queue(vec![start_req()]))]);
    start_rerunonfailure_vmi_unset: Start "RerunOnFailure" UNSET =>
        steps(vec![pinned(queue(vec![start_req()]))]);
    // start × Once
    start_once_vmi_absent: Start "Once" ABSENT =>
        conflict("Once does not support manual start requests");
    start_once_vmi_running: Start "Once" RUNNING => conflict("VM is already running");
    start_once_vmi_succeeded: Start "Once" SUCCEEDED =>
        conflict("Once does not support manual start requests");
    start_once_vmi_failed: Start "Once" FAILED =>
        conflict("Once does not support manual start requests");
    start_once_vmi_unknown: Start "Once" UNKNOWN =>
        conflict("Once does not support manual start requests");
    start_once_vmi_unset: Start "Once" UNSET =>
        conflict("Once does not support manual start requests");

    // stop × Always
    stop_always_vmi_absent: Stop "Always" ABSENT => steps(vec![spec_strategy("Always", "Halted")]);
    stop_always_vmi_running: Stop "Always" RUNNING =>
        steps(vec![spec_strategy("Always", "Halted")]);
    stop_always_vmi_succeeded: Stop "Always" SUCCEEDED =>
        steps(vec![spec_strategy("Always", "Halted")]);
    stop_always_vmi_failed: Stop "Always" FAILED => steps(vec![spec_strategy("Always", "Halted")]);
    stop_always_vmi_unknown: Stop "Always" UNKNOWN =>
        steps(vec![spec_strategy("Always", "Halted")]);
    stop_always_vmi_unset: Stop "Always" UNSET => steps(vec![spec_strategy("Always", "Halted")]);
    // stop × Halted (no grace period given)
    stop_halted_vmi_absent: Stop "Halted" ABSENT => conflict("VM is not running");
    stop_halted_vmi_running: Stop "Halted" RUNNING =>
        conflict("Halted only supports manual stop requests with a shorter graceperiod");
    stop_halted_vmi_succeeded: Stop "Halted" SUCCEEDED => conflict("VM is not running");
    stop_halted_vmi_failed: Stop "Halted" FAILED => conflict("VM is not running");
    stop_halted_vmi_unknown: Stop "Halted" UNKNOWN =>
        conflict("Halted only supports manual stop requests with a shorter graceperiod");
    stop_halted_vmi_unset: Stop "Halted" UNSET =>
        conflict("Halted only supports manual stop requests with a shorter graceperiod");
    // stop × Manual
    stop_manual_vmi_absent: Stop "Manual" ABSENT => conflict("VM is not running");
    stop_manual_vmi_running: Stop "Manual" RUNNING => steps(vec![pinned(queue(vec![stop_req()]))]);
    stop_manual_vmi_succeeded: Stop "Manual" SUCCEEDED => conflict("VM is not running");
    stop_manual_vmi_failed: Stop "Manual" FAILED => conflict("VM is not running");
    stop_manual_vmi_unknown: Stop "Manual" UNKNOWN => steps(vec![pinned(queue(vec![stop_req()]))]);
    stop_manual_vmi_unset: Stop "Manual" UNSET => steps(vec![pinned(queue(vec![stop_req()]))]);
    // stop × RerunOnFailure
    stop_rerunonfailure_vmi_absent: Stop "RerunOnFailure" ABSENT => conflict("VM is not running");
    stop_rerunonfailure_vmi_running: Stop "RerunOnFailure" RUNNING =>
        steps(vec![pinned(queue(vec![stop_req()]))]);
    stop_rerunonfailure_vmi_succeeded: Stop "RerunOnFailure" SUCCEEDED =>
        conflict("VM is not running");
    stop_rerunonfailure_vmi_failed: Stop "RerunOnFailure" FAILED => conflict("VM is not running");
    stop_rerunonfailure_vmi_unknown: Stop "RerunOnFailure" UNKNOWN =>
        steps(vec![pinned(queue(vec![stop_req()]))]);
    stop_rerunonfailure_vmi_unset: Stop "RerunOnFailure" UNSET =>
        steps(vec![pinned(queue(vec![stop_req()]))]);
    // stop × Once
    stop_once_vmi_absent: Stop "Once" ABSENT => steps(vec![spec_strategy("Once", "Halted")]);
    stop_once_vmi_running: Stop "Once" RUNNING => steps(vec![spec_strategy("Once", "Halted")]);
    stop_once_vmi_succeeded: Stop "Once" SUCCEEDED => steps(vec![spec_strategy("Once", "Halted")]);
    stop_once_vmi_failed: Stop "Once" FAILED => steps(vec![spec_strategy("Once", "Halted")]);
    stop_once_vmi_unknown: Stop "Once" UNKNOWN => steps(vec![spec_strategy("Once", "Halted")]);
    stop_once_vmi_unset: Stop "Once" UNSET => steps(vec![spec_strategy("Once", "Halted")]);

    // restart × Always
    restart_always_vmi_absent: Restart "Always" ABSENT => conflict("VM is not running: Halted");
    restart_always_vmi_running: Restart "Always" RUNNING =>
        steps(vec![queue(vec![stop_req(), start_req()])]);
    restart_always_vmi_succeeded: Restart "Always" SUCCEEDED =>
        steps(vec![queue(vec![stop_req(), start_req()])]);
    restart_always_vmi_failed: Restart "Always" FAILED =>
        steps(vec![queue(vec![stop_req(), start_req()])]);
    restart_always_vmi_unknown: Restart "Always" UNKNOWN =>
        steps(vec![queue(vec![stop_req(), start_req()])]);
    restart_always_vmi_unset: Restart "Always" UNSET =>
        steps(vec![queue(vec![stop_req(), start_req()])]);
    // restart × Halted
    restart_halted_vmi_absent: Restart "Halted" ABSENT =>
        conflict("RunStategy Halted does not support manual restart requests");
    restart_halted_vmi_running: Restart "Halted" RUNNING =>
        conflict("RunStategy Halted does not support manual restart requests");
    restart_halted_vmi_succeeded: Restart "Halted" SUCCEEDED =>
        conflict("RunStategy Halted does not support manual restart requests");
    restart_halted_vmi_failed: Restart "Halted" FAILED =>
        conflict("RunStategy Halted does not support manual restart requests");
    restart_halted_vmi_unknown: Restart "Halted" UNKNOWN =>
        conflict("RunStategy Halted does not support manual restart requests");
    restart_halted_vmi_unset: Restart "Halted" UNSET =>
        conflict("RunStategy Halted does not support manual restart requests");
    // restart × Manual
    restart_manual_vmi_absent: Restart "Manual" ABSENT => conflict("VM is not running: Halted");
    restart_manual_vmi_running: Restart "Manual" RUNNING =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_manual_vmi_succeeded: Restart "Manual" SUCCEEDED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_manual_vmi_failed: Restart "Manual" FAILED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_manual_vmi_unknown: Restart "Manual" UNKNOWN =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_manual_vmi_unset: Restart "Manual" UNSET =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    // restart × RerunOnFailure
    restart_rerunonfailure_vmi_absent: Restart "RerunOnFailure" ABSENT =>
        conflict("VM is not running: Halted");
    restart_rerunonfailure_vmi_running: Restart "RerunOnFailure" RUNNING =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_rerunonfailure_vmi_succeeded: Restart "RerunOnFailure" SUCCEEDED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_rerunonfailure_vmi_failed: Restart "RerunOnFailure" FAILED =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_rerunonfailure_vmi_unknown: Restart "RerunOnFailure" UNKNOWN =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    restart_rerunonfailure_vmi_unset: Restart "RerunOnFailure" UNSET =>
        steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    // restart × Once
    restart_once_vmi_absent: Restart "Once" ABSENT =>
        conflict("RunStategy Once does not support manual restart requests");
    restart_once_vmi_running: Restart "Once" RUNNING =>
        conflict("RunStategy Once does not support manual restart requests");
    restart_once_vmi_succeeded: Restart "Once" SUCCEEDED =>
        conflict("RunStategy Once does not support manual restart requests");
    restart_once_vmi_failed: Restart "Once" FAILED =>
        conflict("RunStategy Once does not support manual restart requests");
    restart_once_vmi_unknown: Restart "Once" UNKNOWN =>
        conflict("RunStategy Once does not support manual restart requests");
    restart_once_vmi_unset: Restart "Once" UNSET =>
        conflict("RunStategy Once does not support manual restart requests");
}

// ---- start: other active phases, paused start ---------------------------------------

#[test]
fn start_every_strategy_with_any_active_phase_is_already_running() {
    for strategy in ["Always", "Halted", "Manual", "RerunOnFailure", "Once"] {
        for phase in [
            "Pending",
            "Scheduling",
            "Scheduled",
            "Running",
            "WaitingForSync",
        ] {
            let cell = format!("start × {strategy} × VMI {phase}");
            let got = start(&vm(strategy), Some(&vmi(phase)), &StartOptions::default());
            check(&cell, got, conflict("VM is already running"));
        }
    }
}

fn paused() -> StartOptions {
    StartOptions {
        paused: true,
        dry_run: vec![],
    }
}

#[test]
fn start_paused_halted_vmi_absent_queues_paused_start_instead_of_spec_patch() {
    let got = start(&vm("Halted"), None, &paused());
    check(
        "start --paused × Halted × no VMI",
        got,
        steps(vec![queue(vec![start_paused_req()])]),
    );
}

#[test]
fn start_paused_halted_vmi_final_queues_paused_start_without_stop() {
    for phase in ["Succeeded", "Failed"] {
        let got = start(&vm("Halted"), Some(&vmi(phase)), &paused());
        let cell = format!("start --paused × Halted × VMI {phase}");
        check(&cell, got, steps(vec![queue(vec![start_paused_req()])]));
    }
}

#[test]
fn start_paused_halted_via_running_false_queues_paused_start() {
    let got = start(&vm_with(Some(false), None), None, &paused());
    let want = steps(vec![queue(vec![start_paused_req()])]);
    check("start --paused × running:false × no VMI", got, want);
}

#[test]
fn start_paused_halted_with_paused_start_strategy_still_queues_request() {
    let mut vm = vm("Halted");
    vm.spec.template.spec.start_strategy = Some("Paused".into());
    let got = start(&vm, None, &paused());
    let want = steps(vec![queue(vec![start_paused_req()])]);
    check(
        "start --paused × Halted (startStrategy Paused) × no VMI",
        got,
        want,
    );
}

#[test]
fn start_paused_manual_vmi_absent_queues_paused_start() {
    let got = start(&vm("Manual"), None, &paused());
    check(
        "start --paused × Manual × no VMI",
        got,
        steps(vec![pinned(queue(vec![start_paused_req()]))]),
    );
}

#[test]
fn start_paused_manual_vmi_succeeded_queues_stop_then_paused_start() {
    let got = start(&vm("Manual"), Some(&vmi("Succeeded")), &paused());
    let want = steps(vec![pinned(queue(vec![stop_req(), start_paused_req()]))]);
    check("start --paused × Manual × VMI Succeeded", got, want);
}

#[test]
fn start_paused_rerunonfailure_vmi_absent_queues_paused_start() {
    let got = start(&vm("RerunOnFailure"), None, &paused());
    let want = steps(vec![pinned(queue(vec![start_paused_req()]))]);
    check("start --paused × RerunOnFailure × no VMI", got, want);
}

#[test]
fn start_paused_always_is_still_refused() {
    let got = start(&vm("Always"), None, &paused());
    let want = conflict("Always does not support manual start requests");
    check("start --paused × Always × no VMI", got, want);
}

// ---- stop with a grace period ---------------------------------------------------------

fn grace(n: i64) -> StopOptions {
    StopOptions {
        grace_period: Some(n),
        dry_run: vec![],
    }
}

#[test]
fn stop_grace_always_vmi_running_patches_vmi_first_then_spec() {
    let got = stop(
        &vm("Always"),
        Some(&vmi_with("Running", Some(30))),
        &grace(5),
    );
    let want = steps(vec![
        vmi_grace(json!(30), 5),
        spec_strategy("Always", "Halted"),
    ]);
    check(
        "stop --grace-period 5 × Always × VMI Running (grace 30)",
        got,
        want,
    );
}

#[test]
fn stop_grace_halted_vmi_running_patches_vmi_first_then_queues_stop() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(30))),
        &grace(5),
    );
    let want = steps(vec![vmi_grace(json!(30), 5), queue(vec![stop_req()])]);
    check(
        "stop --grace-period 5 × Halted × VMI Running (grace 30)",
        got,
        want,
    );
}

#[test]
fn stop_grace_manual_vmi_running_patches_vmi_first_then_queues_stop() {
    let got = stop(
        &vm("Manual"),
        Some(&vmi_with("Running", Some(30))),
        &grace(5),
    );
    let want = steps(vec![
        vmi_grace(json!(30), 5),
        pinned(queue(vec![stop_req()])),
    ]);
    check(
        "stop --grace-period 5 × Manual × VMI Running (grace 30)",
        got,
        want,
    );
}

#[test]
fn stop_grace_rerunonfailure_vmi_running_longer_grace_is_fine() {
    let got = stop(
        &vm("RerunOnFailure"),
        Some(&vmi_with("Running", Some(30))),
        &grace(60),
    );
    let want = steps(vec![
        vmi_grace(json!(30), 60),
        pinned(queue(vec![stop_req()])),
    ]);
    check(
        "stop --grace-period 60 × RerunOnFailure × VMI Running (grace 30)",
        got,
        want,
    );
}

#[test]
fn stop_grace_once_vmi_running_grace_unset_tests_null() {
    let got = stop(&vm("Once"), Some(&vmi("Running")), &grace(0));
    let want = steps(vec![
        vmi_grace(Value::Null, 0),
        spec_strategy("Once", "Halted"),
    ]);
    check(
        "stop --grace-period 0 × Once × VMI Running (grace unset)",
        got,
        want,
    );
}

#[test]
fn stop_grace_with_unknown_phase_vmi_still_patches_vmi() {
    let got = stop(
        &vm("Always"),
        Some(&vmi_with("Unknown", Some(30))),
        &grace(0),
    );
    let want = steps(vec![
        vmi_grace(json!(30), 0),
        spec_strategy("Always", "Halted"),
    ]);
    check("stop --grace-period 0 × Always × VMI Unknown", got, want);
}

#[test]
fn stop_grace_without_vmi_or_with_final_vmi_does_not_patch_vmi() {
    for (label, phase) in [
        ("no VMI", ABSENT),
        ("VMI Succeeded", SUCCEEDED),
        ("VMI Failed", FAILED),
    ] {
        let vmi = phase.map(|p| vmi_with(p, Some(30)));
        let cell = format!("stop --grace-period 0 × Always × {label}");
        let got = stop(&vm("Always"), vmi.as_ref(), &grace(0));
        check(&cell, got, steps(vec![spec_strategy("Always", "Halted")]));

        let cell = format!("stop --grace-period 0 × Manual × {label}");
        let got = stop(&vm("Manual"), vmi.as_ref(), &grace(0));
        check(&cell, got, conflict("VM is not running"));

        let cell = format!("stop --grace-period 0 × Halted × {label}");
        let got = stop(&vm("Halted"), vmi.as_ref(), &grace(0));
        check(&cell, got, conflict("VM is not running"));
    }
}

// ---- Halted stop grace rules ----------------------------------------------------------

const SHORTER: &str = "Halted only supports manual stop requests with a shorter graceperiod";

#[test]
fn stop_halted_grace_new_shorter_than_old_queues_stop() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(30))),
        &grace(29),
    );
    let want = steps(vec![vmi_grace(json!(30), 29), queue(vec![stop_req()])]);
    check("stop × Halted × grace 29 < 30", got, want);
}

#[test]
fn stop_halted_grace_new_equal_to_old_is_refused() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(30))),
        &grace(30),
    );
    check("stop × Halted × grace 30 = 30", got, conflict(SHORTER));
}

#[test]
fn stop_halted_grace_new_longer_than_old_is_refused() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(30))),
        &grace(31),
    );
    check("stop × Halted × grace 31 > 30", got, conflict(SHORTER));
}

#[test]
fn stop_halted_grace_zero_against_explicit_zero_is_refused() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(0))),
        &grace(0),
    );
    check("stop × Halted × grace 0 = 0", got, conflict(SHORTER));
}

#[test]
fn stop_halted_grace_given_vmi_grace_unset_queues_stop() {
    let got = stop(&vm("Halted"), Some(&vmi("Running")), &grace(600));
    let want = steps(vec![vmi_grace(Value::Null, 600), queue(vec![stop_req()])]);
    check("stop × Halted × grace 600, VMI grace unset", got, want);
}

#[test]
fn stop_halted_no_grace_vmi_grace_set_is_refused() {
    let got = stop(
        &vm("Halted"),
        Some(&vmi_with("Running", Some(30))),
        &StopOptions::default(),
    );
    check(
        "stop × Halted × no grace, VMI grace 30",
        got,
        conflict(SHORTER),
    );
}

#[test]
fn stop_halted_grace_with_unset_phase_vmi_queues_stop() {
    let got = stop(&vm("Halted"), Some(&vmi_with("", Some(30))), &grace(1));
    let want = steps(vec![vmi_grace(json!(30), 1), queue(vec![stop_req()])]);
    check("stop × Halted × VMI phase \"\" × grace 1 < 30", got, want);
}

// ---- pending requests -----------------------------------------------------------------

fn pending_start() -> Vec<StateChangeRequest> {
    vec![StateChangeRequest::start()]
}

const UNDERWAY: &str = "unable to complete request: stop/start already underway";

#[test]
fn restart_with_pending_requests_is_internal_error() {
    for strategy in ["Always", "Manual", "RerunOnFailure"] {
        for pending in [pending_start(), vec![StateChangeRequest::stop("x")]] {
            let vm = with_pending(vm(strategy), pending.clone());
            let cell = format!("restart × {strategy} × VMI Running × pending {pending:?}");
            let got = restart(&vm, Some(&vmi("Running")), &RestartOptions::default());
            check(&cell, got, internal(UNDERWAY));
        }
    }
}

#[test]
fn force_restart_with_pending_requests_is_internal_error() {
    let vm = with_pending(vm("Always"), pending_start());
    let opts = RestartOptions {
        grace_period_seconds: Some(0),
        dry_run: vec![],
    };
    let got = restart(&vm, Some(&vmi("Running")), &opts);
    check(
        "restart --force × Always × pending [Start]",
        got,
        internal(UNDERWAY),
    );
}

#[test]
fn start_with_pending_requests_is_internal_error() {
    let vm = with_pending(vm("Manual"), pending_start());
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Manual × no VMI × pending [Start]",
        got,
        internal(UNDERWAY),
    );

    let vm = with_pending(self::vm("Halted"), vec![StateChangeRequest::stop("x")]);
    let got = start(&vm, None, &paused());
    check(
        "start --paused × Halted × no VMI × pending [Stop]",
        got,
        internal(UNDERWAY),
    );
}

#[test]
fn start_halted_with_pending_requests_patches_spec_only() {
    let vm = with_pending(vm("Halted"), pending_start());
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Halted × pending [Start]",
        got,
        steps(vec![spec_strategy("Halted", "Always")]),
    );
}

#[test]
fn stop_with_pending_requests_replaces_them_after_testing_them() {
    let pending = vec![
        StateChangeRequest::stop("old"),
        StateChangeRequest::start_paused(),
    ];
    let vm = with_pending(vm("Manual"), pending);
    let got = stop(&vm, Some(&vmi("Running")), &StopOptions::default());
    let want = steps(vec![(
        PatchTarget::VmStatus,
        json!([
            generation(),
            version(),
            {"op": "test", "path": "/status/stateChangeRequests", "value": [
                {"action": "Stop", "uid": "old"},
                {"action": "Start", "data": {"paused": "true"}},
            ]},
            {"op": "replace", "path": "/status/stateChangeRequests", "value": [stop_req()]},
        ]),
    )]);
    check(
        "stop × Manual × VMI Running × pending [Stop, Start{paused}]",
        got,
        want,
    );
}

#[test]
fn stop_halted_with_shorter_grace_replaces_pending_requests() {
    let vm = with_pending(vm("Halted"), pending_start());
    let got = stop(&vm, Some(&vmi_with("Running", Some(30))), &grace(1));
    let want = steps(vec![
        vmi_grace(json!(30), 1),
        (
            PatchTarget::VmStatus,
            json!([
                generation(),
                {"op": "test", "path": "/status/stateChangeRequests", "value": [start_req()]},
                {"op": "replace", "path": "/status/stateChangeRequests", "value": [stop_req()]},
            ]),
        ),
    ]);
    check(
        "stop --grace-period 1 × Halted × pending [Start]",
        got,
        want,
    );
}

// ---- the last accepted request wins: stop drops a queued Start (Part A) -----------------

#[test]
fn stop_after_restart_drops_the_queued_start_then_halts() {
    for (strategy, vmi_phase) in [("Always", "Running"), ("Once", "Running"), ("Always", "")] {
        let restarted = vec![StateChangeRequest::stop(UID), StateChangeRequest::start()];
        let vm = with_pending(vm(strategy), restarted);
        let got = stop(&vm, Some(&vmi(vmi_phase)), &StopOptions::default());
        let want = steps(vec![
            (
                PatchTarget::VmStatus,
                json!([
                    generation(),
                    {"op": "test", "path": "/status/stateChangeRequests", "value": [stop_req(), start_req()]},
                    {"op": "replace", "path": "/status/stateChangeRequests", "value": [stop_req()]},
                ]),
            ),
            halt_strategy(strategy, json!([stop_req()])),
        ]);
        let cell = format!("stop × {strategy} × VMI {vmi_phase:?} × pending [Stop, Start]");
        check(&cell, got, want);
    }
}

#[test]
fn stop_with_only_starts_queued_removes_the_queue() {
    let vm = with_pending(vm("Always"), vec![StateChangeRequest::start_paused()]);
    let got = stop(&vm, None, &StopOptions::default());
    let want = steps(vec![
        (
            PatchTarget::VmStatus,
            json!([
                generation(),
                {"op": "test", "path": "/status/stateChangeRequests", "value": [start_paused_req()]},
                {"op": "remove", "path": "/status/stateChangeRequests"},
            ]),
        ),
        spec_strategy("Always", "Halted"),
    ]);
    check(
        "stop × Always × no VMI × pending [Start{paused}]",
        got,
        want,
    );
}

#[test]
fn stop_with_grace_drops_the_start_first_then_the_vmi_grace_then_the_spec() {
    let vm = with_pending(
        vm_with(Some(true), None),
        vec![StateChangeRequest::stop(UID), StateChangeRequest::start()],
    );
    let got = stop(&vm, Some(&vmi_with("Running", Some(30))), &grace(0));
    let want = steps(vec![
        (
            PatchTarget::VmStatus,
            json!([
                generation(),
                {"op": "test", "path": "/status/stateChangeRequests", "value": [stop_req(), start_req()]},
                {"op": "replace", "path": "/status/stateChangeRequests", "value": [stop_req()]},
            ]),
        ),
        vmi_grace(json!(30), 0),
        (
            PatchTarget::Vm,
            json!([
                generation(),
                {"op": "test", "path": "/status/stateChangeRequests", "value": [stop_req()]},
                {"op": "test", "path": "/spec/running", "value": true},
                {"op": "replace", "path": "/spec/running", "value": false},
            ]),
        ),
    ]);
    check(
        "stop --grace-period 0 × running: true × pending [Stop, Start]",
        got,
        want,
    );
}

#[test]
fn stop_with_only_a_stop_queued_leaves_the_queue_alone() {
    let vm = with_pending(vm("Always"), vec![StateChangeRequest::stop(UID)]);
    let got = stop(&vm, Some(&vmi("Running")), &StopOptions::default());
    check(
        "stop × Always × pending [Stop]",
        got,
        steps(vec![halt_strategy("Always", json!([stop_req()]))]),
    );
}

#[test]
fn stop_with_negative_grace_is_refused_before_anything_else() {
    for strategy in [
        "Always",
        "Once",
        "Halted",
        "Manual",
        "RerunOnFailure",
        "Bogus",
    ] {
        let got = stop(&vm(strategy), Some(&vmi("Running")), &grace(-5));
        check(
            &format!("stop --grace-period -5 × {strategy}"),
            got,
            bad_request(NEGATIVE_GRACE_PERIOD),
        );
    }
    assert_eq!(
        check_stop_options(&grace(-1)),
        Err(IntentError::bad_request(NEGATIVE_GRACE_PERIOD))
    );
    assert_eq!(check_stop_options(&grace(0)), Ok(false));
    assert_eq!(check_stop_options(&StopOptions::default()), Ok(false));
}

// ---- status shape: empty status, startFailure ------------------------------------------

#[test]
fn entirely_empty_status_is_added_whole() {
    let want_value = |requests: Value| {
        steps(vec![(
            PatchTarget::VmStatus,
            json!([generation(), version(), {"op": "add", "path": "/status", "value": {"stateChangeRequests": requests}}]),
        )])
    };
    for empty in [None, Some(VirtualMachineStatus::default())] {
        let mut vm = vm("Manual");
        vm.status = empty.clone();
        let label = if empty.is_some() {
            "status {}"
        } else {
            "no status"
        };

        let got = start(&vm, None, &StartOptions::default());
        check(
            &format!("start × Manual × {label}"),
            got,
            want_value(json!([start_req()])),
        );

        let got = stop(&vm, Some(&vmi("Running")), &StopOptions::default());
        check(
            &format!("stop × Manual × {label}"),
            got,
            want_value(json!([stop_req()])),
        );

        let got = restart(&vm, Some(&vmi("Running")), &RestartOptions::default());
        let want = want_value(json!([stop_req(), start_req()]));
        check(&format!("restart × Manual × {label}"), got, want);
    }
}

fn remove_start_failure() -> Value {
    json!({"op": "remove", "path": "/status/startFailure"})
}

fn queue_and_reset(requests: Vec<Value>) -> (PatchTarget, Value) {
    let (target, mut patch) = queue(requests);
    patch.as_array_mut().unwrap().push(remove_start_failure());
    (target, patch)
}

#[test]
fn start_failure_is_removed_by_every_status_request() {
    let vm = with_start_failure(vm("Manual"));
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Manual × startFailure",
        got,
        steps(vec![pinned(queue_and_reset(vec![start_req()]))]),
    );

    let got = stop(&vm, Some(&vmi("Running")), &StopOptions::default());
    check(
        "stop × Manual × startFailure",
        got,
        steps(vec![pinned(queue_and_reset(vec![stop_req()]))]),
    );

    let vm = with_start_failure(self::vm("Always"));
    let got = restart(&vm, Some(&vmi("Failed")), &RestartOptions::default());
    let want = steps(vec![queue_and_reset(vec![stop_req(), start_req()])]);
    check("restart × Always × VMI Failed × startFailure", got, want);
}

#[test]
fn start_failure_removed_after_replacing_pending_requests() {
    let vm = with_start_failure(with_pending(vm("RerunOnFailure"), pending_start()));
    let got = stop(&vm, Some(&vmi("Running")), &StopOptions::default());
    let want = steps(vec![(
        PatchTarget::VmStatus,
        json!([
            generation(),
            version(),
            {"op": "test", "path": "/status/stateChangeRequests", "value": [start_req()]},
            {"op": "replace", "path": "/status/stateChangeRequests", "value": [stop_req()]},
            remove_start_failure(),
        ]),
    )]);
    check(
        "stop × RerunOnFailure × pending [Start] × startFailure",
        got,
        want,
    );
}

#[test]
fn start_failure_untouched_by_spec_patches() {
    let vm = with_start_failure(vm("Always"));
    let got = stop(&vm, None, &StopOptions::default());
    check(
        "stop × Always × no VMI × startFailure",
        got,
        steps(vec![spec_strategy("Always", "Halted")]),
    );
}

// ---- spec patch on `running` or `runStrategy` ------------------------------------------

#[test]
fn start_running_false_patches_running_true() {
    let got = start(&vm_with(Some(false), None), None, &StartOptions::default());
    check(
        "start × running:false × no VMI",
        got,
        steps(vec![spec_running(json!(false), true)]),
    );
}

#[test]
fn start_neither_field_set_tests_running_null() {
    let got = start(
        &vm_with(None, None),
        Some(&vmi("Succeeded")),
        &StartOptions::default(),
    );
    let want = steps(vec![spec_running(Value::Null, true)]);
    check("start × no running/runStrategy × VMI Succeeded", got, want);
}

#[test]
fn stop_running_true_patches_running_false() {
    let got = stop(
        &vm_with(Some(true), None),
        Some(&vmi("Running")),
        &StopOptions::default(),
    );
    check(
        "stop × running:true × VMI Running",
        got,
        steps(vec![spec_running(json!(true), false)]),
    );
}

#[test]
fn stop_running_true_with_grace_patches_vmi_then_running() {
    let got = stop(
        &vm_with(Some(true), None),
        Some(&vmi_with("Running", Some(30))),
        &grace(0),
    );
    let want = steps(vec![
        vmi_grace(json!(30), 0),
        spec_running(json!(true), false),
    ]);
    check(
        "stop --grace-period 0 × running:true × VMI Running",
        got,
        want,
    );
}

#[test]
fn running_false_behaves_as_halted_and_running_true_as_always() {
    let got = stop(&vm_with(Some(false), None), None, &StopOptions::default());
    check(
        "stop × running:false × no VMI",
        got,
        conflict("VM is not running"),
    );
    let got = restart(
        &vm_with(Some(false), None),
        Some(&vmi("Running")),
        &RestartOptions::default(),
    );
    let want = conflict("RunStategy Halted does not support manual restart requests");
    check("restart × running:false × VMI Running", got, want);
    let got = start(&vm_with(Some(true), None), None, &StartOptions::default());
    let want = conflict("Always does not support manual start requests");
    check("start × running:true × no VMI", got, want);
    let got = restart(
        &vm_with(Some(true), None),
        Some(&vmi("Running")),
        &RestartOptions::default(),
    );
    check(
        "restart × running:true × VMI Running",
        got,
        steps(vec![queue(vec![stop_req(), start_req()])]),
    );
}

// ---- invalid run strategy ---------------------------------------------------------------

#[test]
fn invalid_run_strategy_is_internal_error() {
    let cases = [
        (
            vm_with(None, Some("Sometimes")),
            "unknown runstrategy: Sometimes",
        ),
        (vm_with(None, Some("")), "unknown runstrategy: "),
        (
            vm_with(Some(true), Some("Always")),
            "running and runstrategy are mutually exclusive",
        ),
    ];
    for (vm, reason) in cases {
        let label = format!("{:?}/{:?}", vm.spec.running, vm.spec.run_strategy);
        let got = start(&vm, None, &StartOptions::default());
        check(&format!("start × {label} × no VMI"), got, internal(reason));
        let got = stop(&vm, Some(&vmi_with("Running", Some(30))), &grace(0));
        check(
            &format!("stop --grace-period 0 × {label} × VMI Running"),
            got,
            internal(reason),
        );
        let got = restart(&vm, Some(&vmi("Running")), &RestartOptions::default());
        check(
            &format!("restart × {label} × VMI Running"),
            got,
            internal(reason),
        );
    }
}

#[test]
fn invalid_run_strategy_checked_after_earlier_refusals() {
    let vm = vm_with(None, Some("Sometimes"));
    let got = start(&vm, Some(&vmi("Running")), &StartOptions::default());
    check(
        "start × invalid × VMI Running",
        got,
        conflict("VM is already running"),
    );
    let opts = RestartOptions {
        grace_period_seconds: Some(3),
        dry_run: vec![],
    };
    let got = restart(&vm, Some(&vmi("Running")), &opts);
    check(
        "restart --grace-period 3 × invalid",
        got,
        bad_request(FORCE_RESTART_ONLY_ZERO),
    );
}

// ---- recovery conditions ----------------------------------------------------------------

const RECOVERY: &str = "VM recovery required: Volume migration failed, leaving some volumes \
    pointing to non-consistent targets; manual intervention is needed to reassign them to \
    their original volumes.";

#[test]
fn start_blocked_by_manual_recovery_required() {
    let vm = with_condition(vm("Manual"), "ManualRecoveryRequired", "True");
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Manual × ManualRecoveryRequired=True",
        got,
        conflict(RECOVERY),
    );
    // Checked before the run strategy: even Always gets the recovery message.
    let vm = with_condition(self::vm("Always"), "ManualRecoveryRequired", "True");
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Always × ManualRecoveryRequired=True",
        got,
        conflict(RECOVERY),
    );
    // But after the already-running check.
    let got = start(&vm, Some(&vmi("Running")), &StartOptions::default());
    check(
        "start × ManualRecoveryRequired=True × VMI Running",
        got,
        conflict("VM is already running"),
    );
}

#[test]
fn start_not_blocked_by_false_manual_recovery_or_volumes_change() {
    let vm = with_condition(vm("Manual"), "ManualRecoveryRequired", "False");
    let vm = with_condition(vm, "VolumesChange", "True");
    let got = start(&vm, None, &StartOptions::default());
    check(
        "start × Manual × MRR=False, VolumesChange=True",
        got,
        steps(vec![pinned(queue(vec![start_req()]))]),
    );
}

#[test]
fn restart_blocked_by_volumes_change() {
    let vm = with_condition(vm("Always"), "VolumesChange", "True");
    let got = restart(&vm, Some(&vmi("Running")), &RestartOptions::default());
    check(
        "restart × Always × VolumesChange=True",
        got,
        conflict(RECOVERY),
    );
    // Before the run strategy and VMI checks...
    let vm = with_condition(self::vm("Halted"), "VolumesChange", "True");
    let got = restart(&vm, None, &RestartOptions::default());
    check(
        "restart × Halted × no VMI × VolumesChange=True",
        got,
        conflict(RECOVERY),
    );
    // ...but after the grace-period validation.
    let opts = RestartOptions {
        grace_period_seconds: Some(-1),
        dry_run: vec![],
    };
    let got = restart(&vm, None, &opts);
    check(
        "restart --grace-period -1 × VolumesChange=True",
        got,
        bad_request(NEGATIVE_GRACE_PERIOD),
    );
}

#[test]
fn restart_not_blocked_by_manual_recovery_or_false_volumes_change() {
    let vm = with_condition(vm("Manual"), "ManualRecoveryRequired", "True");
    let vm = with_condition(vm, "VolumesChange", "False");
    let got = restart(&vm, Some(&vmi("Running")), &RestartOptions::default());
    let want = steps(vec![pinned(queue(vec![stop_req(), start_req()]))]);
    check(
        "restart × Manual × MRR=True, VolumesChange=False",
        got,
        want,
    );
}

#[test]
fn stop_not_blocked_by_recovery_conditions() {
    let vm = with_condition(vm("Always"), "ManualRecoveryRequired", "True");
    let vm = with_condition(vm, "VolumesChange", "True");
    let got = stop(&vm, Some(&vmi("Running")), &grace(0));
    let want = steps(vec![
        vmi_grace(Value::Null, 0),
        spec_strategy("Always", "Halted"),
    ]);
    check(
        "stop --grace-period 0 × Always × both recovery conditions",
        got,
        want,
    );
}

// ---- force restart (Part A §5) ----------------------------------------------------------

fn restart_grace(n: i64) -> RestartOptions {
    RestartOptions {
        grace_period_seconds: Some(n),
        dry_run: vec![],
    }
}

#[test]
fn force_restart_queues_stop_start_then_deletes_launcher_pods() {
    for strategy in ["Always", "Manual", "RerunOnFailure"] {
        let cell = format!("restart --force --grace-period=0 × {strategy} × VMI Running");
        let got = restart(
            &vm(strategy),
            Some(&vmi_with("Running", Some(30))),
            &restart_grace(0),
        );
        let mut want = queue(vec![stop_req(), start_req()]);
        if strategy != "Always" {
            want = pinned(want);
        }
        let plan = check(&cell, got, steps(vec![want])).expect("a plan");
        assert_eq!(
            plan.delete_pods,
            Some(PodDeletion {
                label_selector: format!("kubevirt.io=virt-launcher,kubevirt.io/created-by={UID}"),
                field_selector: "status.phase=Running".into(),
                grace_period_seconds: 0,
            }),
            "{cell}"
        );
        assert!(!plan.dry_run, "{cell}");
        assert!(
            plan.steps.iter().all(|s| s.target != PatchTarget::Vmi),
            "{cell}: force restart must not patch the VMI grace period"
        );
    }
}

#[test]
fn plain_restart_deletes_no_pods() {
    let got = restart(
        &vm("Always"),
        Some(&vmi("Running")),
        &RestartOptions::default(),
    );
    let plan = check(
        "restart × Always × VMI Running",
        got,
        steps(vec![queue(vec![stop_req(), start_req()])]),
    );
    assert_eq!(plan.expect("a plan").delete_pods, None);
}

#[test]
fn force_restart_grace_validation_comes_first() {
    let cases = [
        (5, FORCE_RESTART_ONLY_ZERO),
        (1, FORCE_RESTART_ONLY_ZERO),
        (-1, NEGATIVE_GRACE_PERIOD),
        (-30, NEGATIVE_GRACE_PERIOD),
    ];
    for (grace, reason) in cases {
        for strategy in ["Always", "Halted", "Manual", "RerunOnFailure", "Once"] {
            for (label, phase) in [("no VMI", ABSENT), ("VMI Running", RUNNING)] {
                let cell = format!("restart --grace-period {grace} × {strategy} × {label}");
                let got = restart(
                    &vm(strategy),
                    phase.map(vmi).as_ref(),
                    &restart_grace(grace),
                );
                check(&cell, got, bad_request(reason));
            }
        }
    }
}

#[test]
fn force_restart_without_vmi_or_on_halted_once_is_refused() {
    let got = restart(&vm("Always"), None, &restart_grace(0));
    check(
        "restart --force × Always × no VMI",
        got,
        conflict("VM is not running: Halted"),
    );
    let got = restart(&vm("Once"), Some(&vmi("Running")), &restart_grace(0));
    let want = conflict("RunStategy Once does not support manual restart requests");
    check("restart --force × Once × VMI Running", got, want);
}

#[test]
fn force_restart_dry_run_is_carried() {
    let opts = RestartOptions {
        grace_period_seconds: Some(0),
        dry_run: crate::request::dry_run_values(true),
    };
    let plan = restart(&vm("Manual"), Some(&vmi("Running")), &opts).expect("a plan");
    assert!(plan.dry_run);
    assert!(plan.delete_pods.is_some());
}

// ---- dry run, WaitAsReceiver, wire format ------------------------------------------------

#[test]
fn dry_run_is_carried_in_every_plan() {
    for dry_run in [false, true] {
        let values = || crate::request::dry_run_values(dry_run);
        let plan = start(
            &vm("Halted"),
            None,
            &StartOptions {
                paused: false,
                dry_run: values(),
            },
        )
        .expect("start plan");
        assert_eq!(plan.dry_run, dry_run, "start × Halted × dry_run={dry_run}");
        let opts = StopOptions {
            grace_period: Some(0),
            dry_run: values(),
        };
        let plan = stop(&vm("Always"), Some(&vmi("Running")), &opts).expect("stop plan");
        assert_eq!(plan.dry_run, dry_run, "stop × Always × dry_run={dry_run}");
        assert_eq!(plan.steps.len(), 2);
        let opts = RestartOptions {
            grace_period_seconds: None,
            dry_run: values(),
        };
        let plan = restart(&vm("Always"), Some(&vmi("Running")), &opts).expect("restart plan");
        assert_eq!(
            plan.dry_run, dry_run,
            "restart × Always × dry_run={dry_run}"
        );
    }
}

#[test]
fn a_dry_run_other_than_all_is_refused_before_any_plan() {
    let lower = || vec!["all".to_string()];
    let refused = |got: Result<Plan, IntentError>| {
        let e = got.expect_err("refused");
        assert_eq!(e.code, 400, "{e:?}");
        assert_eq!(
            e.message,
            "dryRun: Unsupported value: \"all\": supported values: \"All\""
        );
    };
    let start_opts = StartOptions {
        paused: false,
        dry_run: lower(),
    };
    refused(start(&vm("Halted"), None, &start_opts));
    let stop_opts = StopOptions {
        grace_period: None,
        dry_run: lower(),
    };
    refused(stop(&vm("Always"), Some(&vmi("Running")), &stop_opts));
    let restart_opts = RestartOptions {
        grace_period_seconds: None,
        dry_run: lower(),
    };
    refused(restart(&vm("Always"), Some(&vmi("Running")), &restart_opts));
    // start decodes its body after its state checks, as virt-api does.
    let got = start(&vm("Halted"), Some(&vmi("Running")), &start_opts);
    check(
        "start dryRun [all] × VMI Running",
        got,
        conflict(VM_ALREADY_RUNNING),
    );
}

#[test]
fn dry_run_does_not_change_the_patches() {
    let opts = StartOptions {
        paused: false,
        dry_run: crate::request::dry_run_values(true),
    };
    let got = start(&vm("Manual"), None, &opts);
    check(
        "start --dry-run × Manual × no VMI",
        got,
        steps(vec![pinned(queue(vec![start_req()]))]),
    );
}

#[test]
fn wait_as_receiver_follows_kubevirt_fallthrough() {
    let got = start(&vm("WaitAsReceiver"), None, &StartOptions::default());
    let plan = check("start × WaitAsReceiver × no VMI", got, steps(vec![])).expect("a plan");
    assert!(plan.is_empty());
    let got = stop(
        &vm("WaitAsReceiver"),
        Some(&vmi_with("Running", Some(30))),
        &grace(1),
    );
    check(
        "stop --grace-period 1 × WaitAsReceiver",
        got,
        steps(vec![vmi_grace(json!(30), 1)]),
    );
    let got = stop(&vm("WaitAsReceiver"), None, &StopOptions::default());
    check("stop × WaitAsReceiver × no VMI", got, steps(vec![]));
    let got = restart(
        &vm("WaitAsReceiver"),
        Some(&vmi("Running")),
        &RestartOptions::default(),
    );
    check(
        "restart × WaitAsReceiver",
        got,
        steps(vec![queue(vec![stop_req(), start_req()])]),
    );
}

#[test]
fn state_change_requests_serialise_as_kubevirt_does() {
    let plan = start(&vm("Manual"), Some(&vmi("Succeeded")), &paused()).expect("a plan");
    assert_eq!(
        plan.steps[0].patch.to_string(),
        format!(
            r#"[{{"op":"test","path":"/metadata/generation","value":4}},{{"op":"test","path":"/metadata/resourceVersion","value":"117"}},{{"op":"test","path":"/status/stateChangeRequests","value":null}},{{"op":"add","path":"/status/stateChangeRequests","value":[{{"action":"Stop","uid":"{UID}"}},{{"action":"Start","data":{{"paused":"true"}}}}]}}]"#
        )
    );
    let plan = start(&vm("Manual"), None, &StartOptions::default()).expect("a plan");
    assert_eq!(
        plan.steps[0].patch.to_string(),
        r#"[{"op":"test","path":"/metadata/generation","value":4},{"op":"test","path":"/metadata/resourceVersion","value":"117"},{"op":"test","path":"/status/stateChangeRequests","value":null},{"op":"add","path":"/status/stateChangeRequests","value":[{"action":"Start"}]}]"#
    );
    let plan = stop(
        &vm("Always"),
        Some(&vmi_with("Running", Some(30))),
        &grace(0),
    )
    .expect("a plan");
    assert_eq!(
        plan.steps[0].patch.to_string(),
        r#"[{"op":"test","path":"/spec/terminationGracePeriodSeconds","value":30},{"op":"replace","path":"/spec/terminationGracePeriodSeconds","value":0}]"#
    );
    assert_eq!(
        plan.steps[1].patch.to_string(),
        r#"[{"op":"test","path":"/metadata/generation","value":4},{"op":"test","path":"/status/stateChangeRequests","value":null},{"op":"test","path":"/spec/runStrategy","value":"Always"},{"op":"replace","path":"/spec/runStrategy","value":"Halted"}]"#
    );
    let mut bare = vm("Manual");
    bare.status = None;
    let plan = restart(&bare, Some(&vmi("Running")), &RestartOptions::default()).expect("a plan");
    assert_eq!(
        plan.steps[0].patch.to_string(),
        format!(
            r#"[{{"op":"test","path":"/metadata/generation","value":4}},{{"op":"test","path":"/metadata/resourceVersion","value":"117"}},{{"op":"add","path":"/status","value":{{"stateChangeRequests":[{{"action":"Stop","uid":"{UID}"}},{{"action":"Start"}}]}}}}]"#
        )
    );
}

#[test]
fn error_messages_have_the_apimachinery_shape() {
    let e = IntentError::conflict("myvm", "VM is already running");
    assert_eq!(e.code, 409);
    assert_eq!(e.reason, "Conflict");
    assert_eq!(
        e.to_string(),
        "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"myvm\": VM is already running"
    );
    let e = IntentError::bad_request("gracePeriod has to be greater or equal to 0");
    assert_eq!((e.code, e.reason), (400, "BadRequest"));
    assert_eq!(e.to_string(), "gracePeriod has to be greater or equal to 0");
    let e = IntentError::internal("unable to complete request: stop/start already underway");
    assert_eq!((e.code, e.reason), (500, "InternalError"));
    assert_eq!(
        e.to_string(),
        "Internal error occurred: unable to complete request: stop/start already underway"
    );
}

// ---- plans rest on what they read (Part A §22) ----------------------------------------

#[test]
fn every_write_to_the_vm_tests_the_generation_it_was_decided_on() {
    let restarted = vec![StateChangeRequest::stop(UID), StateChangeRequest::start()];
    let mut unset = vm("Always");
    unset.metadata.generation = None;
    let plans = [
        (
            "start × Halted",
            start(&vm("Halted"), None, &StartOptions::default()),
            json!(GENERATION),
        ),
        (
            "start × Manual",
            start(&vm("Manual"), None, &StartOptions::default()),
            json!(GENERATION),
        ),
        (
            "stop --grace-period 0 × Always × pending [Stop, Start]",
            stop(
                &with_pending(vm("Always"), restarted),
                Some(&vmi_with("Running", Some(30))),
                &grace(0),
            ),
            json!(GENERATION),
        ),
        (
            "stop × Manual",
            stop(
                &vm("Manual"),
                Some(&vmi("Running")),
                &StopOptions::default(),
            ),
            json!(GENERATION),
        ),
        (
            "restart × Always",
            restart(
                &vm("Always"),
                Some(&vmi("Running")),
                &RestartOptions::default(),
            ),
            json!(GENERATION),
        ),
        (
            "restart × no generation",
            restart(&unset, Some(&vmi("Running")), &RestartOptions::default()),
            Value::Null,
        ),
    ];
    for (cell, plan, generation) in plans {
        let plan = plan.unwrap_or_else(|e| panic!("{cell}: {e}"));
        assert!(!plan.steps.is_empty(), "{cell}");
        for step in &plan.steps {
            let first = &step.patch[0];
            let tests_generation = *first
                == json!({"op": "test", "path": "/metadata/generation", "value": generation});
            assert_eq!(
                tests_generation,
                step.target != PatchTarget::Vmi,
                "{cell}: {:?} {}",
                step.target,
                step.patch
            );
        }
    }
}

#[test]
fn a_stop_turns_the_vm_halted_only_while_no_start_is_queued() {
    let cases = [
        (vec![], Value::Null),
        (vec![StateChangeRequest::start()], Value::Null),
        (
            vec![StateChangeRequest::stop(UID), StateChangeRequest::start()],
            json!([stop_req()]),
        ),
    ];
    for (pending, left) in cases {
        let vm = with_pending(vm("Always"), pending.clone());
        let plan = stop(&vm, Some(&vmi("Running")), &StopOptions::default()).unwrap();
        let halt = plan.steps.last().unwrap();
        assert_eq!(halt.target, PatchTarget::Vm, "{pending:?}");
        assert_eq!(
            halt.patch[1],
            json!({"op": "test", "path": "/status/stateChangeRequests", "value": left}),
            "{pending:?}"
        );
    }
}

#[test]
fn only_a_stops_drop_of_queued_starts_may_be_decided_again_once_written() {
    let restarted = vec![StateChangeRequest::stop(UID), StateChangeRequest::start()];
    let cases = [
        (
            "stop × Always × pending [Stop, Start]",
            stop(
                &with_pending(vm("Always"), restarted.clone()),
                Some(&vmi("Running")),
                &StopOptions::default(),
            ),
            1,
        ),
        (
            "stop --grace-period 0 × Always × pending [Stop, Start]",
            stop(
                &with_pending(vm("Always"), restarted),
                Some(&vmi_with("Running", Some(30))),
                &grace(0),
            ),
            1,
        ),
        (
            "stop × Always",
            stop(
                &vm("Always"),
                Some(&vmi("Running")),
                &StopOptions::default(),
            ),
            0,
        ),
        (
            "stop --grace-period 1 × Halted",
            stop(
                &vm("Halted"),
                Some(&vmi_with("Running", Some(30))),
                &grace(1),
            ),
            0,
        ),
        (
            "restart × Always",
            restart(
                &vm("Always"),
                Some(&vmi("Running")),
                &RestartOptions::default(),
            ),
            0,
        ),
        (
            "start × Halted",
            start(&vm("Halted"), None, &StartOptions::default()),
            0,
        ),
    ];
    for (cell, plan, redecidable) in cases {
        let plan = plan.unwrap_or_else(|e| panic!("{cell}: {e}"));
        assert_eq!(plan.redecidable_steps, redecidable, "{cell}");
    }
}

// ---- a queue write rests on the VMI it read (Part A §22) --------------------------------

/// Whether the plan's write to the VM status tests the VM's version.
fn tests_version(plan: &Plan) -> bool {
    plan.steps
        .iter()
        .filter(|s| s.target == PatchTarget::VmStatus)
        .any(|s| s.patch.as_array().unwrap().contains(&version()))
}

#[test]
fn queue_writes_test_the_version_read_where_only_the_queue_starts_and_stops_the_vmi() {
    let table = [
        // (command, strategy, VMI, tests the version)
        (Cmd::Start, "Manual", ABSENT, true),
        (Cmd::Start, "Manual", UNSET, true),
        (Cmd::Start, "Manual", SUCCEEDED, true),
        (Cmd::Stop, "Manual", RUNNING, true),
        (Cmd::Restart, "Manual", RUNNING, true),
        (Cmd::Restart, "Manual", FAILED, true),
        (Cmd::Start, "RerunOnFailure", ABSENT, true),
        (Cmd::Stop, "RerunOnFailure", RUNNING, true),
        (Cmd::Restart, "RerunOnFailure", RUNNING, true),
        // Always replaces its VMI by itself: a restart that names one already replaced
        // coalesces with the restart that replaced it.
        (Cmd::Restart, "Always", RUNNING, false),
    ];
    for (cmd, strategy, phase, want) in table {
        let plan = run(cmd, strategy, phase).expect("a plan");
        let cell = format!("{} × {strategy} × VMI {phase:?}", cmd_name(cmd));
        assert_eq!(tests_version(&plan), want, "{cell}");
    }
    // Halted starts a VMI only by turning Always, which the generation's test covers.
    let plan = start(&vm("Halted"), None, &paused()).expect("a plan");
    assert!(!tests_version(&plan), "start --paused × Halted");
    let plan = stop(&vm("Halted"), Some(&vmi("Running")), &grace(1)).expect("a plan");
    assert!(!tests_version(&plan), "stop --grace-period 1 × Halted");
}

fn cmd_name(cmd: Cmd) -> &'static str {
    match cmd {
        Cmd::Start => "start",
        Cmd::Stop => "stop",
        Cmd::Restart => "restart",
    }
}
