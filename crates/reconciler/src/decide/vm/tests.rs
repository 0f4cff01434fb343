//! The VM controller's decisions: one named test per run strategy × VMI state × request queue,
//! then the cases around them (a VM being deleted, pending work, the backoff, bad specs).

use super::*;
use crate::types::{
    StartFailure, VirtualMachineInstanceSpec, VirtualMachineInstanceStatus, VirtualMachineSpec,
};

const NOW: &str = "2026-08-01T12:00:00Z";
/// The UID of the VM's current VMI.
const UID: &str = "vmi-uid";

/// The VM's VMI, if any.
#[derive(Clone, Copy)]
enum Vmi {
    None,
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Running, and being deleted.
    Deleting,
}

/// `status.stateChangeRequests`.
#[derive(Clone, Copy)]
enum Queue {
    Empty,
    Start,
    StartPaused,
    /// `[Stop{uid of this VMI}]`.
    StopThis,
    /// `[Stop{uid of a VMI already replaced}]`.
    StopOther,
    /// A restart: `[Stop{uid of this VMI}, Start]`.
    StopThisThenStart,
}

fn requests(queue: Queue) -> Vec<StateChangeRequest> {
    match queue {
        Queue::Empty => vec![],
        Queue::Start => vec![StateChangeRequest::start()],
        Queue::StartPaused => vec![StateChangeRequest::start_paused()],
        Queue::StopThis => vec![StateChangeRequest::stop(UID)],
        Queue::StopOther => vec![StateChangeRequest::stop("old-vmi-uid")],
        Queue::StopThisThenStart => {
            vec![StateChangeRequest::stop(UID), StateChangeRequest::start()]
        }
    }
}

/// A VM of this run strategy that has had a VMI (its strategy is recorded in the status).
fn vm(strategy: &str, queue: Queue) -> VirtualMachine {
    let mut vm = VirtualMachine::new(
        "vm1",
        VirtualMachineSpec {
            run_strategy: Some(strategy.into()),
            ..Default::default()
        },
    );
    vm.metadata.namespace = Some("default".into());
    vm.metadata.uid = Some("vm-uid".into());
    let status = vm.status.get_or_insert_default();
    status.run_strategy = Some(strategy.into());
    status.state_change_requests = requests(queue);
    vm
}

fn vmi(state: Vmi) -> Option<VirtualMachineInstance> {
    let phase = match state {
        Vmi::None => return None,
        Vmi::Pending => "Pending",
        Vmi::Running | Vmi::Deleting => "Running",
        Vmi::Succeeded => "Succeeded",
        Vmi::Failed => "Failed",
    };
    let mut vmi = VirtualMachineInstance::new("vm1", VirtualMachineInstanceSpec::default());
    vmi.metadata.uid = Some(UID.into());
    if matches!(state, Vmi::Deleting) {
        vmi.metadata.deletion_timestamp = Some(deletion_time());
    }
    vmi.status = Some(VirtualMachineInstanceStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    Some(vmi)
}

fn deletion_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(json!(NOW)).expect("a valid time")
}

fn run(strategy: &str, state: Vmi, queue: Queue) -> Decision {
    decide(
        &vm(strategy, queue),
        vmi(state).as_ref(),
        PendingVmiWrites::default(),
        NOW,
    )
}

fn nothing() -> Decision {
    Decision::Nothing
}

fn create() -> Decision {
    Decision::CreateVmi { paused: false }
}

fn create_paused() -> Decision {
    Decision::CreateVmi { paused: true }
}

fn delete() -> Decision {
    Decision::DeleteVmi { uid: UID.into() }
}

/// Delete the failed VMI, and queue a Start: `test` the queue is `current`, `add` `next`.
fn rerun(current: Value, next: Value) -> Decision {
    Decision::RerunVmi {
        uid: UID.into(),
        queue_start: json!([
            {"op": "test", "path": "/status/stateChangeRequests", "value": current},
            {"op": "add", "path": "/status/stateChangeRequests", "value": next},
        ]),
    }
}

/// Halted → Always.
fn turn_on() -> Decision {
    Decision::PatchVmSpec {
        patch: json!([
            {"op": "test", "path": "/spec/runStrategy", "value": "Halted"},
            {"op": "replace", "path": "/spec/runStrategy", "value": "Always"},
        ]),
    }
}

fn wait_as_receiver_unsupported() -> Decision {
    Decision::Fail {
        reason: "FailedCreate".into(),
        message: "runStrategy WaitAsReceiver (decentralized live migration) is not supported"
            .into(),
    }
}

macro_rules! matrix {
    ($($name:ident: $strategy:ident $vmi:ident $queue:ident => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(
                run(stringify!($strategy), Vmi::$vmi, Queue::$queue),
                $want,
                "{}",
                stringify!($name)
            );
        }
    )*};
}

matrix! {
    // Always × None
    always_no_vmi_no_request: Always None Empty => create();
    always_no_vmi_start: Always None Start => create();
    always_no_vmi_start_paused: Always None StartPaused => create_paused();
    always_no_vmi_stop_this: Always None StopThis => create();
    always_no_vmi_stop_other: Always None StopOther => create();
    always_no_vmi_stop_this_then_start: Always None StopThisThenStart => create();
    // Always × Pending
    always_pending_no_request: Always Pending Empty => nothing();
    always_pending_start: Always Pending Start => nothing();
    always_pending_start_paused: Always Pending StartPaused => nothing();
    always_pending_stop_this: Always Pending StopThis => delete();
    always_pending_stop_other: Always Pending StopOther => nothing();
    always_pending_stop_this_then_start: Always Pending StopThisThenStart => delete();
    // Always × Running
    always_running_no_request: Always Running Empty => nothing();
    always_running_start: Always Running Start => nothing();
    always_running_start_paused: Always Running StartPaused => nothing();
    always_running_stop_this: Always Running StopThis => delete();
    always_running_stop_other: Always Running StopOther => nothing();
    always_running_stop_this_then_start: Always Running StopThisThenStart => delete();
    // Always × Succeeded
    always_succeeded_no_request: Always Succeeded Empty => delete();
    always_succeeded_start: Always Succeeded Start => delete();
    always_succeeded_start_paused: Always Succeeded StartPaused => delete();
    always_succeeded_stop_this: Always Succeeded StopThis => delete();
    always_succeeded_stop_other: Always Succeeded StopOther => delete();
    always_succeeded_stop_this_then_start: Always Succeeded StopThisThenStart => delete();
    // Always × Failed
    always_failed_no_request: Always Failed Empty => delete();
    always_failed_start: Always Failed Start => delete();
    always_failed_start_paused: Always Failed StartPaused => delete();
    always_failed_stop_this: Always Failed StopThis => delete();
    always_failed_stop_other: Always Failed StopOther => delete();
    always_failed_stop_this_then_start: Always Failed StopThisThenStart => delete();
    // Always × Deleting
    always_deleting_no_request: Always Deleting Empty => nothing();
    always_deleting_start: Always Deleting Start => nothing();
    always_deleting_start_paused: Always Deleting StartPaused => nothing();
    always_deleting_stop_this: Always Deleting StopThis => nothing();
    always_deleting_stop_other: Always Deleting StopOther => nothing();
    always_deleting_stop_this_then_start: Always Deleting StopThisThenStart => nothing();
    // Halted × None
    halted_no_vmi_no_request: Halted None Empty => nothing();
    halted_no_vmi_start: Halted None Start => turn_on();
    halted_no_vmi_start_paused: Halted None StartPaused => turn_on();
    halted_no_vmi_stop_this: Halted None StopThis => nothing();
    halted_no_vmi_stop_other: Halted None StopOther => nothing();
    halted_no_vmi_stop_this_then_start: Halted None StopThisThenStart => nothing();
    // Halted × Pending
    halted_pending_no_request: Halted Pending Empty => delete();
    halted_pending_start: Halted Pending Start => delete();
    halted_pending_start_paused: Halted Pending StartPaused => delete();
    halted_pending_stop_this: Halted Pending StopThis => delete();
    halted_pending_stop_other: Halted Pending StopOther => delete();
    halted_pending_stop_this_then_start: Halted Pending StopThisThenStart => delete();
    // Halted × Running
    halted_running_no_request: Halted Running Empty => delete();
    halted_running_start: Halted Running Start => delete();
    halted_running_start_paused: Halted Running StartPaused => delete();
    halted_running_stop_this: Halted Running StopThis => delete();
    halted_running_stop_other: Halted Running StopOther => delete();
    halted_running_stop_this_then_start: Halted Running StopThisThenStart => delete();
    // Halted × Succeeded
    halted_succeeded_no_request: Halted Succeeded Empty => delete();
    halted_succeeded_start: Halted Succeeded Start => delete();
    halted_succeeded_start_paused: Halted Succeeded StartPaused => delete();
    halted_succeeded_stop_this: Halted Succeeded StopThis => delete();
    halted_succeeded_stop_other: Halted Succeeded StopOther => delete();
    halted_succeeded_stop_this_then_start: Halted Succeeded StopThisThenStart => delete();
    // Halted × Failed
    halted_failed_no_request: Halted Failed Empty => delete();
    halted_failed_start: Halted Failed Start => delete();
    halted_failed_start_paused: Halted Failed StartPaused => delete();
    halted_failed_stop_this: Halted Failed StopThis => delete();
    halted_failed_stop_other: Halted Failed StopOther => delete();
    halted_failed_stop_this_then_start: Halted Failed StopThisThenStart => delete();
    // Halted × Deleting
    halted_deleting_no_request: Halted Deleting Empty => nothing();
    halted_deleting_start: Halted Deleting Start => nothing();
    halted_deleting_start_paused: Halted Deleting StartPaused => nothing();
    halted_deleting_stop_this: Halted Deleting StopThis => nothing();
    halted_deleting_stop_other: Halted Deleting StopOther => nothing();
    halted_deleting_stop_this_then_start: Halted Deleting StopThisThenStart => nothing();
    // Manual × None
    manual_no_vmi_no_request: Manual None Empty => nothing();
    manual_no_vmi_start: Manual None Start => create();
    manual_no_vmi_start_paused: Manual None StartPaused => create_paused();
    manual_no_vmi_stop_this: Manual None StopThis => nothing();
    manual_no_vmi_stop_other: Manual None StopOther => nothing();
    manual_no_vmi_stop_this_then_start: Manual None StopThisThenStart => nothing();
    // Manual × Pending
    manual_pending_no_request: Manual Pending Empty => nothing();
    manual_pending_start: Manual Pending Start => nothing();
    manual_pending_start_paused: Manual Pending StartPaused => nothing();
    manual_pending_stop_this: Manual Pending StopThis => delete();
    manual_pending_stop_other: Manual Pending StopOther => nothing();
    manual_pending_stop_this_then_start: Manual Pending StopThisThenStart => delete();
    // Manual × Running
    manual_running_no_request: Manual Running Empty => nothing();
    manual_running_start: Manual Running Start => nothing();
    manual_running_start_paused: Manual Running StartPaused => nothing();
    manual_running_stop_this: Manual Running StopThis => delete();
    manual_running_stop_other: Manual Running StopOther => nothing();
    manual_running_stop_this_then_start: Manual Running StopThisThenStart => delete();
    // Manual × Succeeded
    manual_succeeded_no_request: Manual Succeeded Empty => nothing();
    manual_succeeded_start: Manual Succeeded Start => nothing();
    manual_succeeded_start_paused: Manual Succeeded StartPaused => nothing();
    manual_succeeded_stop_this: Manual Succeeded StopThis => delete();
    manual_succeeded_stop_other: Manual Succeeded StopOther => nothing();
    manual_succeeded_stop_this_then_start: Manual Succeeded StopThisThenStart => delete();
    // Manual × Failed
    manual_failed_no_request: Manual Failed Empty => nothing();
    manual_failed_start: Manual Failed Start => nothing();
    manual_failed_start_paused: Manual Failed StartPaused => nothing();
    manual_failed_stop_this: Manual Failed StopThis => delete();
    manual_failed_stop_other: Manual Failed StopOther => nothing();
    manual_failed_stop_this_then_start: Manual Failed StopThisThenStart => delete();
    // Manual × Deleting
    manual_deleting_no_request: Manual Deleting Empty => nothing();
    manual_deleting_start: Manual Deleting Start => nothing();
    manual_deleting_start_paused: Manual Deleting StartPaused => nothing();
    manual_deleting_stop_this: Manual Deleting StopThis => nothing();
    manual_deleting_stop_other: Manual Deleting StopOther => nothing();
    manual_deleting_stop_this_then_start: Manual Deleting StopThisThenStart => nothing();
    // RerunOnFailure × None
    rerun_on_failure_no_vmi_no_request: RerunOnFailure None Empty => nothing();
    rerun_on_failure_no_vmi_start: RerunOnFailure None Start => create();
    rerun_on_failure_no_vmi_start_paused: RerunOnFailure None StartPaused => create_paused();
    rerun_on_failure_no_vmi_stop_this: RerunOnFailure None StopThis => nothing();
    rerun_on_failure_no_vmi_stop_other: RerunOnFailure None StopOther => nothing();
    rerun_on_failure_no_vmi_stop_this_then_start: RerunOnFailure None StopThisThenStart => nothing();
    // RerunOnFailure × Pending
    rerun_on_failure_pending_no_request: RerunOnFailure Pending Empty => nothing();
    rerun_on_failure_pending_start: RerunOnFailure Pending Start => nothing();
    rerun_on_failure_pending_start_paused: RerunOnFailure Pending StartPaused => nothing();
    rerun_on_failure_pending_stop_this: RerunOnFailure Pending StopThis => delete();
    rerun_on_failure_pending_stop_other: RerunOnFailure Pending StopOther => nothing();
    rerun_on_failure_pending_stop_this_then_start: RerunOnFailure Pending StopThisThenStart => delete();
    // RerunOnFailure × Running
    rerun_on_failure_running_no_request: RerunOnFailure Running Empty => nothing();
    rerun_on_failure_running_start: RerunOnFailure Running Start => nothing();
    rerun_on_failure_running_start_paused: RerunOnFailure Running StartPaused => nothing();
    rerun_on_failure_running_stop_this: RerunOnFailure Running StopThis => delete();
    rerun_on_failure_running_stop_other: RerunOnFailure Running StopOther => nothing();
    rerun_on_failure_running_stop_this_then_start: RerunOnFailure Running StopThisThenStart => delete();
    // RerunOnFailure × Succeeded
    rerun_on_failure_succeeded_no_request: RerunOnFailure Succeeded Empty => delete();
    rerun_on_failure_succeeded_start: RerunOnFailure Succeeded Start => delete();
    rerun_on_failure_succeeded_start_paused: RerunOnFailure Succeeded StartPaused => delete();
    rerun_on_failure_succeeded_stop_this: RerunOnFailure Succeeded StopThis => delete();
    rerun_on_failure_succeeded_stop_other: RerunOnFailure Succeeded StopOther => delete();
    rerun_on_failure_succeeded_stop_this_then_start: RerunOnFailure Succeeded StopThisThenStart => delete();
    // RerunOnFailure × Failed
    rerun_on_failure_failed_no_request: RerunOnFailure Failed Empty => rerun(json!(null), json!([{"action": "Start"}]));
    rerun_on_failure_failed_start: RerunOnFailure Failed Start => rerun(json!([{"action": "Start"}]), json!([{"action": "Start"}, {"action": "Start"}]));
    rerun_on_failure_failed_start_paused: RerunOnFailure Failed StartPaused => rerun(json!([{"action": "Start", "data": {"paused": "true"}}]), json!([{"action": "Start", "data": {"paused": "true"}}, {"action": "Start"}]));
    rerun_on_failure_failed_stop_this: RerunOnFailure Failed StopThis => rerun(json!([{"action": "Stop", "uid": "vmi-uid"}]), json!([{"action": "Stop", "uid": "vmi-uid"}, {"action": "Start"}]));
    rerun_on_failure_failed_stop_other: RerunOnFailure Failed StopOther => rerun(json!([{"action": "Stop", "uid": "old-vmi-uid"}]), json!([{"action": "Stop", "uid": "old-vmi-uid"}, {"action": "Start"}]));
    rerun_on_failure_failed_stop_this_then_start: RerunOnFailure Failed StopThisThenStart => rerun(json!([{"action": "Stop", "uid": "vmi-uid"}, {"action": "Start"}]), json!([{"action": "Stop", "uid": "vmi-uid"}, {"action": "Start"}, {"action": "Start"}]));
    // RerunOnFailure × Deleting
    rerun_on_failure_deleting_no_request: RerunOnFailure Deleting Empty => nothing();
    rerun_on_failure_deleting_start: RerunOnFailure Deleting Start => nothing();
    rerun_on_failure_deleting_start_paused: RerunOnFailure Deleting StartPaused => nothing();
    rerun_on_failure_deleting_stop_this: RerunOnFailure Deleting StopThis => nothing();
    rerun_on_failure_deleting_stop_other: RerunOnFailure Deleting StopOther => nothing();
    rerun_on_failure_deleting_stop_this_then_start: RerunOnFailure Deleting StopThisThenStart => nothing();
    // Once × None
    once_no_vmi_no_request: Once None Empty => create();
    once_no_vmi_start: Once None Start => create();
    once_no_vmi_start_paused: Once None StartPaused => create_paused();
    once_no_vmi_stop_this: Once None StopThis => create();
    once_no_vmi_stop_other: Once None StopOther => create();
    once_no_vmi_stop_this_then_start: Once None StopThisThenStart => create();
    // Once × Pending
    once_pending_no_request: Once Pending Empty => nothing();
    once_pending_start: Once Pending Start => nothing();
    once_pending_start_paused: Once Pending StartPaused => nothing();
    once_pending_stop_this: Once Pending StopThis => nothing();
    once_pending_stop_other: Once Pending StopOther => nothing();
    once_pending_stop_this_then_start: Once Pending StopThisThenStart => nothing();
    // Once × Running
    once_running_no_request: Once Running Empty => nothing();
    once_running_start: Once Running Start => nothing();
    once_running_start_paused: Once Running StartPaused => nothing();
    once_running_stop_this: Once Running StopThis => nothing();
    once_running_stop_other: Once Running StopOther => nothing();
    once_running_stop_this_then_start: Once Running StopThisThenStart => nothing();
    // Once × Succeeded
    once_succeeded_no_request: Once Succeeded Empty => nothing();
    once_succeeded_start: Once Succeeded Start => nothing();
    once_succeeded_start_paused: Once Succeeded StartPaused => nothing();
    once_succeeded_stop_this: Once Succeeded StopThis => nothing();
    once_succeeded_stop_other: Once Succeeded StopOther => nothing();
    once_succeeded_stop_this_then_start: Once Succeeded StopThisThenStart => nothing();
    // Once × Failed
    once_failed_no_request: Once Failed Empty => nothing();
    once_failed_start: Once Failed Start => nothing();
    once_failed_start_paused: Once Failed StartPaused => nothing();
    once_failed_stop_this: Once Failed StopThis => nothing();
    once_failed_stop_other: Once Failed StopOther => nothing();
    once_failed_stop_this_then_start: Once Failed StopThisThenStart => nothing();
    // Once × Deleting
    once_deleting_no_request: Once Deleting Empty => nothing();
    once_deleting_start: Once Deleting Start => nothing();
    once_deleting_start_paused: Once Deleting StartPaused => nothing();
    once_deleting_stop_this: Once Deleting StopThis => nothing();
    once_deleting_stop_other: Once Deleting StopOther => nothing();
    once_deleting_stop_this_then_start: Once Deleting StopThisThenStart => nothing();
    // WaitAsReceiver × None
    wait_as_receiver_no_vmi_no_request: WaitAsReceiver None Empty => wait_as_receiver_unsupported();
    wait_as_receiver_no_vmi_start: WaitAsReceiver None Start => wait_as_receiver_unsupported();
    wait_as_receiver_no_vmi_start_paused: WaitAsReceiver None StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_no_vmi_stop_this: WaitAsReceiver None StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_no_vmi_stop_other: WaitAsReceiver None StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_no_vmi_stop_this_then_start: WaitAsReceiver None StopThisThenStart => wait_as_receiver_unsupported();
    // WaitAsReceiver × Pending
    wait_as_receiver_pending_no_request: WaitAsReceiver Pending Empty => wait_as_receiver_unsupported();
    wait_as_receiver_pending_start: WaitAsReceiver Pending Start => wait_as_receiver_unsupported();
    wait_as_receiver_pending_start_paused: WaitAsReceiver Pending StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_pending_stop_this: WaitAsReceiver Pending StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_pending_stop_other: WaitAsReceiver Pending StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_pending_stop_this_then_start: WaitAsReceiver Pending StopThisThenStart => wait_as_receiver_unsupported();
    // WaitAsReceiver × Running
    wait_as_receiver_running_no_request: WaitAsReceiver Running Empty => wait_as_receiver_unsupported();
    wait_as_receiver_running_start: WaitAsReceiver Running Start => wait_as_receiver_unsupported();
    wait_as_receiver_running_start_paused: WaitAsReceiver Running StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_running_stop_this: WaitAsReceiver Running StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_running_stop_other: WaitAsReceiver Running StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_running_stop_this_then_start: WaitAsReceiver Running StopThisThenStart => wait_as_receiver_unsupported();
    // WaitAsReceiver × Succeeded
    wait_as_receiver_succeeded_no_request: WaitAsReceiver Succeeded Empty => wait_as_receiver_unsupported();
    wait_as_receiver_succeeded_start: WaitAsReceiver Succeeded Start => wait_as_receiver_unsupported();
    wait_as_receiver_succeeded_start_paused: WaitAsReceiver Succeeded StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_succeeded_stop_this: WaitAsReceiver Succeeded StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_succeeded_stop_other: WaitAsReceiver Succeeded StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_succeeded_stop_this_then_start: WaitAsReceiver Succeeded StopThisThenStart => wait_as_receiver_unsupported();
    // WaitAsReceiver × Failed
    wait_as_receiver_failed_no_request: WaitAsReceiver Failed Empty => wait_as_receiver_unsupported();
    wait_as_receiver_failed_start: WaitAsReceiver Failed Start => wait_as_receiver_unsupported();
    wait_as_receiver_failed_start_paused: WaitAsReceiver Failed StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_failed_stop_this: WaitAsReceiver Failed StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_failed_stop_other: WaitAsReceiver Failed StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_failed_stop_this_then_start: WaitAsReceiver Failed StopThisThenStart => wait_as_receiver_unsupported();
    // WaitAsReceiver × Deleting
    wait_as_receiver_deleting_no_request: WaitAsReceiver Deleting Empty => wait_as_receiver_unsupported();
    wait_as_receiver_deleting_start: WaitAsReceiver Deleting Start => wait_as_receiver_unsupported();
    wait_as_receiver_deleting_start_paused: WaitAsReceiver Deleting StartPaused => wait_as_receiver_unsupported();
    wait_as_receiver_deleting_stop_this: WaitAsReceiver Deleting StopThis => wait_as_receiver_unsupported();
    wait_as_receiver_deleting_stop_other: WaitAsReceiver Deleting StopOther => wait_as_receiver_unsupported();
    wait_as_receiver_deleting_stop_this_then_start: WaitAsReceiver Deleting StopThisThenStart => wait_as_receiver_unsupported();
}

#[test]
fn a_vm_that_never_ran_under_rerun_on_failure_starts_without_a_request() {
    let mut fresh = vm("RerunOnFailure", Queue::Empty);
    fresh.status = None;
    assert_eq!(
        decide(&fresh, None, PendingVmiWrites::default(), NOW),
        create()
    );
}

#[test]
fn a_halted_vm_with_running_false_is_turned_on_with_running_true() {
    let mut halted = vm("Halted", Queue::StartPaused);
    halted.spec.run_strategy = None;
    halted.spec.running = Some(false);
    assert_eq!(
        decide(&halted, None, PendingVmiWrites::default(), NOW),
        Decision::PatchVmSpec {
            patch: json!([
                {"op": "test", "path": "/spec/running", "value": false},
                {"op": "replace", "path": "/spec/running", "value": true},
            ]),
        }
    );
}

fn in_backoff(strategy: &str, retry_after: &str) -> VirtualMachine {
    let mut vm = vm(strategy, Queue::Start);
    vm.status.get_or_insert_default().start_failure = Some(StartFailure {
        consecutive_fail_count: 2,
        last_failed_vmi_uid: Some("old-vmi-uid".into()),
        retry_after_timestamp: Some(retry_after.into()),
    });
    vm
}

#[test]
fn a_start_waits_out_the_crash_loop_backoff_to_the_millisecond() {
    let now = "2026-08-01T12:00:19.750Z";
    for strategy in ["Always", "RerunOnFailure"] {
        assert_eq!(
            decide(
                &in_backoff(strategy, "2026-08-01T12:00:40Z"),
                None,
                PendingVmiWrites::default(),
                now
            ),
            Decision::Wait(Duration::from_millis(20_250)),
            "{strategy}"
        );
    }
}

#[test]
fn a_start_proceeds_once_the_backoff_has_passed() {
    let vm = in_backoff("Always", "2026-08-01T12:00:00Z");
    assert_eq!(
        decide(&vm, None, PendingVmiWrites::default(), NOW),
        create()
    );
}

#[test]
fn once_and_manual_starts_ignore_the_backoff() {
    for strategy in ["Once", "Manual"] {
        let vm = in_backoff(strategy, "2026-08-01T12:05:00Z");
        assert_eq!(
            decide(&vm, None, PendingVmiWrites::default(), NOW),
            create(),
            "{strategy}"
        );
    }
}

#[test]
fn nothing_is_done_while_a_creation_or_deletion_is_pending() {
    for expectations in [
        PendingVmiWrites {
            create_expected: true,
            delete_expected: false,
        },
        PendingVmiWrites {
            create_expected: false,
            delete_expected: true,
        },
    ] {
        for (state, queue) in [(Vmi::None, Queue::Start), (Vmi::Running, Queue::StopThis)] {
            let decided = decide(&vm("Manual", queue), vmi(state).as_ref(), expectations, NOW);
            assert_eq!(decided, nothing(), "{expectations:?}");
        }
    }
}

fn being_deleted(mut vm: VirtualMachine, finalizers: &[&str]) -> VirtualMachine {
    vm.metadata.deletion_timestamp = Some(deletion_time());
    vm.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    vm
}

#[test]
fn a_vm_being_deleted_deletes_its_vmi_whatever_its_strategy_or_pending_work() {
    let vm = being_deleted(vm("Always", Queue::Empty), &[]);
    let pending = PendingVmiWrites {
        create_expected: true,
        delete_expected: true,
    };
    assert_eq!(
        decide(&vm, vmi(Vmi::Running).as_ref(), pending, NOW),
        delete()
    );
    assert_eq!(
        decide(&vm, vmi(Vmi::Deleting).as_ref(), pending, NOW),
        nothing(),
        "a VMI already going is not deleted twice"
    );
    assert_eq!(decide(&vm, None, pending, NOW), nothing());
}

#[test]
fn a_vm_deleted_with_orphan_keeps_its_vmi() {
    let vm = being_deleted(vm("Always", Queue::Empty), &["orphan"]);
    let vmi = vmi(Vmi::Running);
    assert_eq!(
        decide(&vm, vmi.as_ref(), PendingVmiWrites::default(), NOW),
        nothing()
    );
}

#[test]
fn a_vm_without_a_valid_run_strategy_fails_with_the_reason() {
    let mut both = vm("Always", Queue::Empty);
    both.spec.running = Some(true);
    assert_eq!(
        decide(&both, None, PendingVmiWrites::default(), NOW),
        Decision::Fail {
            reason: "FailedCreate".into(),
            message: "running and runstrategy are mutually exclusive".into(),
        }
    );
    let unknown = vm("Sometimes", Queue::Empty);
    assert_eq!(
        decide(&unknown, None, PendingVmiWrites::default(), NOW),
        Decision::Fail {
            reason: "FailedCreate".into(),
            message: "unknown runstrategy: Sometimes".into(),
        }
    );
}

#[test]
fn failed_writes_leave_kubevirts_reason_and_message() {
    let cases = [
        // (write, reason, message)
        (
            FailedWrite::Start,
            "FailedCreate",
            "Failure while starting VMI: boom",
        ),
        (
            FailedWrite::Delete,
            "FailedDelete",
            "Failure attempting to delete VMI: boom",
        ),
        (
            FailedWrite::QueueRerunStart,
            "FailedDelete",
            "failed to patch VM with start action: boom",
        ),
    ];
    for (write, reason, message) in cases {
        assert_eq!(
            (write.reason(), write.message("boom").as_str()),
            (reason, message)
        );
    }
}
