//! Unit tests of the VirtualMachine status rules.

use super::*;
use crate::types::{PhaseTransition, VirtualMachineInstanceSpec, VirtualMachineSpec};
use serde_json::json;

fn now() -> &'static str {
    "2026-08-01T12:00:00Z"
}

fn vm(strategy: &str) -> VirtualMachine {
    let mut vm = VirtualMachine::new(
        "vm1",
        VirtualMachineSpec {
            run_strategy: Some(strategy.into()),
            ..Default::default()
        },
    );
    vm.metadata.namespace = Some("default".into());
    vm.metadata.uid = Some("vm-uid".into());
    vm.metadata.generation = Some(1);
    vm
}

fn with_status(
    mut vm: VirtualMachine,
    f: impl FnOnce(&mut VirtualMachineStatus),
) -> VirtualMachine {
    f(vm.status.get_or_insert_default());
    vm
}

fn vmi(uid: &str, phase: &str) -> VirtualMachineInstance {
    let mut vmi = VirtualMachineInstance::new("vm1", VirtualMachineInstanceSpec::default());
    vmi.metadata.uid = Some(uid.into());
    vmi.status = Some(crate::types::VirtualMachineInstanceStatus {
        phase: (!phase.is_empty()).then(|| phase.to_string()),
        ..Default::default()
    });
    vmi
}

fn with_condition(
    mut vmi: VirtualMachineInstance,
    type_: &str,
    status: &str,
    reason: &str,
) -> VirtualMachineInstance {
    vmi.status
        .get_or_insert_default()
        .conditions
        .push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            ..Default::default()
        });
    vmi
}

fn deleting(mut vmi: VirtualMachineInstance) -> VirtualMachineInstance {
    vmi.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-08-01T11:00:00Z")).unwrap());
    vmi
}

fn ran(mut vmi: VirtualMachineInstance) -> VirtualMachineInstance {
    vmi.status
        .get_or_insert_default()
        .phase_transition_timestamps
        .push(PhaseTransition {
            phase: "Running".into(),
            phase_transition_timestamp: Some("2026-08-01T10:00:00Z".into()),
        });
    vmi
}

const NONE: PendingVmiWrites = PendingVmiWrites {
    create_expected: false,
    delete_expected: false,
};
const CREATE: PendingVmiWrites = PendingVmiWrites {
    create_expected: true,
    delete_expected: false,
};
const DELETE: PendingVmiWrites = PendingVmiWrites {
    create_expected: false,
    delete_expected: true,
};

fn ps(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    e: PendingVmiWrites,
) -> &'static str {
    printable_status(vm, vmi, e, now())
}

fn failed_once(vm: VirtualMachine) -> VirtualMachine {
    with_status(vm, |s| {
        s.start_failure = Some(StartFailure {
            consecutive_fail_count: 1,
            last_failed_vmi_uid: Some("old".into()),
            retry_after_timestamp: Some("2026-08-01T12:00:10Z".into()),
        })
    })
}

// --- printableStatus: one test per row ---

#[test]
fn row_01_terminating() {
    let mut v = vm("Always");
    v.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-08-01T11:00:00Z")).unwrap());
    assert_eq!(ps(&v, Some(&vmi("u1", "Running")), NONE), "Terminating");
    assert_eq!(ps(&v, None, NONE), "Terminating");
}

#[test]
fn row_02_stopping() {
    let v = vm("Halted");
    assert_eq!(
        ps(&v, Some(&deleting(vmi("u1", "Running"))), NONE),
        "Stopping"
    );
    assert_eq!(ps(&v, Some(&vmi("u1", "Running")), DELETE), "Stopping");
    // A final VMI being deleted is already Stopped.
    assert_eq!(
        ps(&v, Some(&deleting(vmi("u1", "Succeeded"))), NONE),
        "Stopped"
    );
}

#[test]
fn row_03_migrating() {
    let v = vm("Always");
    let mut i = vmi("u1", "Running");
    i.status.as_mut().unwrap().migration_state =
        Some(json!({"startTimestamp": "2026-08-01T11:59:00Z"}));
    assert_eq!(ps(&v, Some(&i), NONE), "Migrating");
    i.status.as_mut().unwrap().migration_state = Some(
        json!({"startTimestamp": "2026-08-01T11:59:00Z", "endTimestamp": "2026-08-01T12:05:00Z"}),
    );
    assert_eq!(ps(&v, Some(&i), NONE), "Migrating");
    i.status.as_mut().unwrap().migration_state = Some(
        json!({"startTimestamp": "2026-08-01T11:59:00Z", "endTimestamp": "2026-08-01T11:59:30Z"}),
    );
    assert_eq!(ps(&v, Some(&i), NONE), "Running");
    i.status.as_mut().unwrap().migration_state =
        Some(json!({"startTimestamp": "2026-08-01T12:01:00Z"}));
    assert_eq!(ps(&v, Some(&i), NONE), "Running");
}

#[test]
fn row_04_paused() {
    let i = with_condition(vmi("u1", "Running"), "Paused", "True", "PausedByUser");
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "Paused");
}

#[test]
fn row_05_running() {
    let i = with_condition(vmi("u1", "Running"), "Paused", "False", "NotPaused");
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "Running");
    assert_eq!(
        ps(&vm("Always"), Some(&vmi("u1", "Running")), NONE),
        "Running"
    );
}

#[test]
fn row_06_error_pvc_not_found() {
    let i = with_condition(
        vmi("u1", "Pending"),
        "Synchronized",
        "False",
        "FailedPvcNotFound",
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "ErrorPvcNotFound");
}

#[test]
fn row_08_error_unschedulable() {
    let i = with_condition(
        vmi("u1", "Scheduling"),
        "PodScheduled",
        "False",
        "Unschedulable",
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "ErrorUnschedulable");
}

#[test]
fn row_11_err_image_pull() {
    let i = with_condition(
        vmi("u1", "Scheduled"),
        "Synchronized",
        "False",
        "ErrImagePull",
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "ErrImagePull");
}

#[test]
fn row_12_image_pull_back_off() {
    let i = with_condition(
        vmi("u1", "Scheduled"),
        "Synchronized",
        "False",
        "ImagePullBackOff",
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "ImagePullBackOff");
}

#[test]
fn row_13_starting() {
    let v = vm("Always");
    assert_eq!(ps(&v, None, CREATE), "Starting");
    for phase in ["", "Pending", "Scheduling", "Scheduled"] {
        assert_eq!(ps(&v, Some(&vmi("u1", phase)), NONE), "Starting", "{phase}");
    }
}

#[test]
fn row_14_crash_loop_back_off() {
    for strategy in ["Always", "RerunOnFailure", "Once"] {
        let v = failed_once(vm(strategy));
        assert_eq!(ps(&v, None, NONE), "CrashLoopBackOff", "{strategy}");
        assert_eq!(ps(&v, Some(&vmi("u1", "Failed")), NONE), "CrashLoopBackOff");
    }
    // Not for Manual or Halted, and not while a creation is pending.
    assert_eq!(ps(&failed_once(vm("Manual")), None, NONE), "Stopped");
    assert_eq!(ps(&failed_once(vm("Halted")), None, NONE), "Stopped");
    assert_eq!(ps(&failed_once(vm("Always")), None, CREATE), "Starting");
}

#[test]
fn row_15_stopped() {
    assert_eq!(ps(&vm("Halted"), None, NONE), "Stopped");
    assert_eq!(
        ps(&vm("Manual"), Some(&vmi("u1", "Succeeded")), NONE),
        "Stopped"
    );
    assert_eq!(ps(&vm("Once"), Some(&vmi("u1", "Failed")), NONE), "Stopped");
}

#[test]
fn row_16_waiting_for_receiver() {
    let v = vm("WaitAsReceiver");
    assert_eq!(
        ps(&v, Some(&vmi("u1", "WaitingForSync")), NONE),
        "WaitingForReceiver"
    );
}

#[test]
fn row_17_unknown() {
    assert_eq!(
        ps(&vm("Always"), Some(&vmi("u1", "Unknown")), NONE),
        "Unknown"
    );
    assert_eq!(
        ps(&vm("Always"), Some(&vmi("u1", "WaitingForSync")), NONE),
        "Unknown"
    );
}

// --- printableStatus: precedence ---

#[test]
fn precedence_terminating_over_stopping() {
    let mut v = vm("Always");
    v.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-08-01T11:00:00Z")).unwrap());
    assert_eq!(
        ps(&v, Some(&deleting(vmi("u1", "Running"))), DELETE),
        "Terminating"
    );
}

#[test]
fn precedence_stopping_over_migrating_and_paused() {
    let mut i = with_condition(vmi("u1", "Running"), "Paused", "True", "PausedByUser");
    i.status.as_mut().unwrap().migration_state =
        Some(json!({"startTimestamp": "2026-08-01T11:59:00Z"}));
    assert_eq!(
        ps(&vm("Always"), Some(&deleting(i.clone())), NONE),
        "Stopping"
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "Migrating");
}

#[test]
fn precedence_running_over_condition_errors() {
    let i = with_condition(
        vmi("u1", "Running"),
        "Synchronized",
        "False",
        "ErrImagePull",
    );
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "Running");
}

#[test]
fn precedence_unschedulable_over_image_errors_and_starting() {
    let i = with_condition(
        vmi("u1", "Scheduling"),
        "PodScheduled",
        "False",
        "Unschedulable",
    );
    let i = with_condition(i, "Synchronized", "False", "ErrImagePull");
    assert_eq!(ps(&vm("Always"), Some(&i), NONE), "ErrorUnschedulable");
    let j = with_condition(
        vmi("u1", "Pending"),
        "Synchronized",
        "False",
        "ErrImagePull",
    );
    assert_eq!(ps(&vm("Always"), Some(&j), CREATE), "ErrImagePull");
}

#[test]
fn precedence_starting_over_crash_loop() {
    let v = failed_once(vm("Always"));
    assert_eq!(ps(&v, Some(&vmi("u2", "Scheduling")), NONE), "Starting");
}

#[test]
fn precedence_crash_loop_over_stopped() {
    let v = failed_once(vm("Always"));
    assert_eq!(ps(&v, Some(&vmi("u1", "Failed")), NONE), "CrashLoopBackOff");
    assert_eq!(
        ps(&vm("Always"), Some(&vmi("u1", "Failed")), NONE),
        "Stopped"
    );
}

#[test]
fn invalid_strategy_still_gets_a_status() {
    let mut v = vm("Always");
    v.spec.running = Some(true);
    assert_eq!(ps(&failed_once(v.clone()), None, NONE), "Stopped");
    assert_eq!(ps(&v, Some(&vmi("u1", "Running")), NONE), "Running");
}

// --- isSetToStart ---

#[test]
fn set_to_start_follows_the_strategy() {
    let start = |v: VirtualMachine| {
        with_status(v, |s| {
            s.state_change_requests = vec![StateChangeRequest::start()]
        })
    };
    let stop = |v: VirtualMachine| {
        with_status(v, |s| {
            s.state_change_requests = vec![StateChangeRequest::stop("u1")]
        })
    };
    let running = vmi("u1", "Running");
    assert!(is_set_to_start(&vm("Always"), None));
    assert!(!is_set_to_start(&vm("Halted"), Some(&running)));
    assert!(is_set_to_start(&vm("Manual"), Some(&running)));
    assert!(!is_set_to_start(&stop(vm("Manual")), Some(&running)));
    assert!(!is_set_to_start(&vm("Manual"), None));
    assert!(is_set_to_start(&start(vm("Manual")), None));
    assert!(is_set_to_start(
        &vm("RerunOnFailure"),
        Some(&vmi("u1", "Failed"))
    ));
    assert!(!is_set_to_start(
        &vm("RerunOnFailure"),
        Some(&vmi("u1", "Succeeded"))
    ));
    assert!(is_set_to_start(&vm("RerunOnFailure"), None));
    let recorded = with_status(vm("RerunOnFailure"), |s| {
        s.run_strategy = Some("RerunOnFailure".into())
    });
    assert!(!is_set_to_start(&recorded, None));
    assert!(is_set_to_start(&start(recorded), None));
    assert!(is_set_to_start(&vm("Once"), None));
    assert!(!is_set_to_start(&vm("Once"), Some(&running)));
    assert!(!is_set_to_start(&vm("WaitAsReceiver"), None));
}

// --- backoff ---

#[test]
fn backoff_ranges() {
    let table: &[(i64, i64, i64)] = &[
        (-3, 10, 15),
        (0, 10, 15),
        (1, 10, 15),
        (2, 40, 60),
        (3, 90, 135),
        (4, 160, 240),
        (5, 250, 300),
        (6, 300, 300),
        (7, 300, 300),
        (1_000, 300, 300),
        (i64::MAX, 300, 300),
    ];
    for &(count, lo, hi) in table {
        assert_eq!(
            backoff_seconds(count, |_| 0),
            lo,
            "count {count} without jitter"
        );
        assert_eq!(
            backoff_seconds(count, |max| max),
            hi,
            "count {count} full jitter"
        );
        // Out-of-range jitter is clamped.
        assert_eq!(backoff_seconds(count, |_| -5), lo);
        assert_eq!(backoff_seconds(count, |_| i64::MAX), hi);
    }
    let mut seen = 0;
    backoff_seconds(3, |max| {
        seen = max;
        0
    });
    assert_eq!(seen, 45);
}

// --- startFailure ---

fn next(
    v: &VirtualMachine,
    i: Option<&VirtualMachineInstance>,
    jitter: i64,
) -> Option<StartFailure> {
    next_start_failure(v, i, run_strategy::effective(v).ok(), now(), |_| jitter)
}

#[test]
fn start_failure_counts_final_vmis_that_never_ran() {
    let v = vm("Always");
    let first = next(&v, Some(&vmi("u1", "Failed")), 3).unwrap();
    assert_eq!(
        first,
        StartFailure {
            consecutive_fail_count: 1,
            last_failed_vmi_uid: Some("u1".into()),
            retry_after_timestamp: Some("2026-08-01T12:00:13Z".into()),
        }
    );
    // The same VMI is counted once.
    let v = with_status(v, |s| s.start_failure = Some(first.clone()));
    assert_eq!(next(&v, Some(&vmi("u1", "Failed")), 0), Some(first.clone()));
    // No VMI, or a VMI still starting: unchanged.
    assert_eq!(next(&v, None, 0), Some(first.clone()));
    assert_eq!(
        next(&v, Some(&vmi("u2", "Scheduling")), 0),
        Some(first.clone())
    );
    // The next one that fails (Succeeded counts too) bumps the count.
    let second = next(&v, Some(&vmi("u2", "Succeeded")), 0).unwrap();
    assert_eq!(second.consecutive_fail_count, 2);
    assert_eq!(second.last_failed_vmi_uid.as_deref(), Some("u2"));
    assert_eq!(
        second.retry_after_timestamp.as_deref(),
        Some("2026-08-01T12:00:40Z")
    );
}

#[test]
fn a_vmi_deleted_before_it_ran_is_no_start_failure() {
    let deleted = |mut v: VirtualMachineInstance| {
        v.metadata.deletion_timestamp =
            Some(serde_json::from_value(serde_json::json!("2026-08-01T11:59:59Z")).unwrap());
        v
    };
    // A restart or stop of a VMI still starting: it ends final, deleted, never having run.
    for phase in ["Failed", "Succeeded"] {
        assert_eq!(
            next(&vm("Always"), Some(&deleted(vmi("u1", phase))), 0),
            None,
            "{phase}"
        );
        let failing = failed_once(vm("Always"));
        let kept = failing.status.as_ref().unwrap().start_failure.clone();
        assert_eq!(
            next(&failing, Some(&deleted(vmi("u2", phase))), 0),
            kept,
            "{phase}"
        );
    }
    // One that failed on its own is counted, also once it is being deleted after that.
    let first = next(&vm("Always"), Some(&vmi("u1", "Failed")), 0).unwrap();
    let counted = with_status(vm("Always"), |s| s.start_failure = Some(first.clone()));
    assert_eq!(
        next(&counted, Some(&deleted(vmi("u1", "Failed"))), 0),
        Some(first)
    );
}

#[test]
fn start_failure_is_cleared_by_running_or_strategy() {
    let failing = |strategy| failed_once(vm(strategy));
    assert_eq!(
        next(&failing("Always"), Some(&vmi("u2", "Running")), 0),
        None
    );
    assert_eq!(
        next(&failing("Always"), Some(&ran(vmi("u2", "Failed"))), 0),
        None
    );
    assert_eq!(next(&failing("Manual"), None, 0), None);
    assert_eq!(
        next(&failing("Halted"), Some(&vmi("u2", "Failed")), 0),
        None
    );
    assert!(next(&failing("RerunOnFailure"), None, 0).is_some());
    assert_eq!(
        next(&failing("Once"), Some(&vmi("u2", "Failed")), 0).map(|f| f.consecutive_fail_count),
        Some(2)
    );
    let mut invalid = failing("Always");
    invalid.spec.running = Some(true);
    assert_eq!(next(&invalid, None, 0), None);
}

#[test]
fn backoff_remaining_until_retry_after() {
    let v = failed_once(vm("Always"));
    assert_eq!(
        start_backoff_remaining(&v, now()),
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(
        start_backoff_remaining(&v, "2026-08-01T12:00:09Z"),
        Some(std::time::Duration::from_secs(1))
    );
    assert_eq!(start_backoff_remaining(&v, "2026-08-01T12:00:10Z"), None);
    assert_eq!(start_backoff_remaining(&v, "2026-08-01T12:05:00Z"), None);
    assert_eq!(start_backoff_remaining(&vm("Always"), now()), None);
}

// --- state-change queue ---

#[test]
fn trim_queue() {
    let stop = StateChangeRequest::stop("u1");
    let start = StateChangeRequest::start();
    let stop_and_start = vec![stop.clone(), start.clone()];
    let running = vmi("u1", "Running");
    // Stop for the current VMI stays until it is gone.
    assert_eq!(
        trim_state_change_requests(&stop_and_start, Some(&running), false),
        stop_and_start
    );
    assert_eq!(
        trim_state_change_requests(&stop_and_start, Some(&deleting(running.clone())), false),
        stop_and_start
    );
    // No VMI, another VMI, or no uid: popped (only the head).
    assert_eq!(
        trim_state_change_requests(&stop_and_start, None, false),
        vec![start.clone()]
    );
    assert_eq!(
        trim_state_change_requests(&stop_and_start, Some(&vmi("u2", "Pending")), false),
        vec![start.clone()]
    );
    let no_uid = StateChangeRequest {
        action: "Stop".into(),
        ..Default::default()
    };
    assert_eq!(
        trim_state_change_requests(&[no_uid], Some(&running), false),
        vec![]
    );
    // Start: popped once a live VMI exists.
    let only_start = vec![start.clone()];
    assert_eq!(
        trim_state_change_requests(&only_start, None, false),
        vec![start.clone()]
    );
    assert_eq!(
        trim_state_change_requests(&only_start, Some(&vmi("u2", "Pending")), false),
        vec![]
    );
    assert_eq!(
        trim_state_change_requests(&[start.clone(), stop.clone()], Some(&running), false),
        vec![stop]
    );
    assert_eq!(
        trim_state_change_requests(&only_start, Some(&deleting(running.clone())), false),
        vec![start.clone()]
    );
    assert_eq!(
        trim_state_change_requests(&only_start, Some(&vmi("u1", "Succeeded")), false),
        vec![start]
    );
    assert_eq!(
        trim_state_change_requests(&[], Some(&running), false),
        vec![]
    );
    // A stop of the VMI the controller just created, not in its cache yet: kept until the
    // cache shows it (the stop was decided on a fresher read); one without uid still goes.
    let stop_new = vec![StateChangeRequest::stop("u3")];
    assert_eq!(trim_state_change_requests(&stop_new, None, true), stop_new);
    assert_eq!(
        trim_state_change_requests(
            &[StateChangeRequest {
                action: "Stop".into(),
                ..Default::default()
            }],
            None,
            true
        ),
        vec![]
    );
    assert_eq!(
        trim_state_change_requests(&stop_new, Some(&vmi("u2", "Running")), true),
        vec![]
    );
}

// --- conditions ---

#[test]
fn set_condition_replaces_only_on_status_or_reason_change() {
    let t0 = now();
    let t1 = "2026-08-01T12:01:00Z";
    let mut conditions = vec![new_condition("Other", "True", "", "", t0)];
    set_condition(
        &mut conditions,
        new_condition("Failure", "True", "FailedCreate", "first", t0),
    );
    assert_eq!(conditions.len(), 2);
    // Same status and reason: the old entry (message, timestamps) stays.
    set_condition(
        &mut conditions,
        new_condition("Failure", "True", "FailedCreate", "second", t1),
    );
    assert_eq!(conditions[1].message.as_deref(), Some("first"));
    assert_eq!(
        conditions[1].last_transition_time.as_deref(),
        Some("2026-08-01T12:00:00Z")
    );
    // New reason: replaced in place.
    set_condition(
        &mut conditions,
        new_condition("Failure", "True", "FailedDelete", "third", t1),
    );
    assert_eq!(conditions[1].reason.as_deref(), Some("FailedDelete"));
    assert_eq!(
        conditions[1].last_transition_time.as_deref(),
        Some("2026-08-01T12:01:00Z")
    );
    // New status: replaced.
    set_condition(
        &mut conditions,
        new_condition("Failure", "False", "FailedDelete", "x", t1),
    );
    assert_eq!(conditions[1].status, "False");
    assert_eq!(conditions.len(), 2);
    remove_condition(&mut conditions, "Failure");
    assert_eq!(conditions.len(), 1);
}

#[test]
fn ready_condition_mirrors_the_vmi() {
    let c = ready_condition(None, now());
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"type": "Ready", "status": "False", "reason": "VMINotExists",
               "message": "VMI does not exist",
               "lastProbeTime": "2026-08-01T12:00:00Z",
               "lastTransitionTime": "2026-08-01T12:00:00Z"})
    );
    let c = ready_condition(Some(&vmi("u1", "Pending")), now());
    assert_eq!(c.reason.as_deref(), Some("VMIConditionMissing"));
    assert_eq!(
        c.message.as_deref(),
        Some("VMI is missing the Ready condition")
    );
    let mut i = vmi("u1", "Running");
    let vmi_ready = Condition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some("2026-08-01T11:00:00Z".into()),
        ..Default::default()
    };
    i.status
        .as_mut()
        .unwrap()
        .conditions
        .push(vmi_ready.clone());
    assert_eq!(ready_condition(Some(&i), now()), vmi_ready);
}

#[test]
fn failure_condition_from_sync_error() {
    let cases = [
        // (sync error, the condition as written)
        (None, None),
        (
            Some(("FailedCreate", "Failure while starting VMI: boom")),
            Some(
                json!({"type": "Failure", "status": "True", "reason": "FailedCreate",
                        "message": "Failure while starting VMI: boom",
                        "lastTransitionTime": "2026-08-01T12:00:00Z"}),
            ),
        ),
        (
            Some(("FailedDelete", "failed to patch VM with start action: boom")),
            Some(
                json!({"type": "Failure", "status": "True", "reason": "FailedDelete",
                        "message": "failed to patch VM with start action: boom",
                        "lastTransitionTime": "2026-08-01T12:00:00Z"}),
            ),
        ),
    ];
    for (sync_error, want) in cases {
        let got = failure_condition(sync_error, now()).map(|c| serde_json::to_value(c).unwrap());
        // No lastProbeTime: KubeVirt's VM controller never sets one on Failure.
        assert_eq!(got, want, "{sync_error:?}");
    }
}

#[test]
fn mirror_copies_and_prunes_only_while_a_vmi_exists() {
    let mut conditions = vec![
        new_condition("Ready", "True", "", "", now()),
        new_condition("Failure", "True", "FailedCreate", "", now()),
        new_condition("RestartRequired", "True", "", "", now()),
        new_condition("LiveMigratable", "True", "", "", now()),
        new_condition("Paused", "True", "PausedByUser", "", now()),
    ];
    let i = with_condition(vmi("u1", "Running"), "Ready", "False", "PodTerminating");
    let i = with_condition(i, "Failure", "True", "Other");
    let i = with_condition(i, "AgentConnected", "True", "");
    let i = with_condition(i, "LiveMigratable", "False", "DisksNotLiveMigratable");
    mirror_vmi_conditions(&mut conditions, Some(&i));
    let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "Ready",
            "Failure",
            "RestartRequired",
            "LiveMigratable",
            "AgentConnected"
        ]
    );
    // VM-owned conditions are untouched.
    assert_eq!(conditions[0].status, "True");
    assert_eq!(conditions[1].reason.as_deref(), Some("FailedCreate"));
    assert_eq!(
        conditions[3].reason.as_deref(),
        Some("DisksNotLiveMigratable")
    );
    // Without a VMI, mirrored conditions are left stale.
    let before = conditions.clone();
    mirror_vmi_conditions(&mut conditions, None);
    assert_eq!(conditions, before);
}

// --- compute_status: the sequences of Part B §4.10 ---

fn inputs(expectations: PendingVmiWrites) -> StatusInputs {
    StatusInputs {
        now: now().into(),
        expectations,
        sync_error: None,
    }
}

/// One reconcile: the VM with its new status (no jitter).
fn step(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    inputs: StatusInputs,
) -> VirtualMachine {
    step_with(vm, vmi, inputs, |_| 0)
}

fn step_with(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    inputs: StatusInputs,
    jitter: impl FnOnce(i64) -> i64,
) -> VirtualMachine {
    let mut next = vm.clone();
    next.status = Some(compute_status(vm, vmi, inputs, jitter));
    next
}

fn st(vm: &VirtualMachine) -> &VirtualMachineStatus {
    vm.status.as_ref().unwrap()
}

fn printable_of(vm: &VirtualMachine) -> &str {
    st(vm).printable_status.as_deref().unwrap()
}

fn vm_ready_reason(vm: &VirtualMachine) -> Option<&str> {
    run_strategy::condition(&st(vm).conditions, "Ready").and_then(|c| c.reason.as_deref())
}

/// A VMI built from generation `generation` of the VM.
fn built(uid: &str, phase: &str, generation: i64) -> VirtualMachineInstance {
    let mut i = vmi(uid, phase);
    i.metadata.annotations =
        Some([(VM_GENERATION_ANNOTATION.to_string(), generation.to_string())].into());
    i
}

fn ready(vmi: VirtualMachineInstance) -> VirtualMachineInstance {
    with_condition(vmi, "Ready", "True", "")
}

#[test]
fn halted_vm_is_stopped() {
    let v = step(&vm("Halted"), None, inputs(NONE));
    let s = st(&v);
    assert_eq!(printable_of(&v), "Stopped");
    assert!(!s.created && !s.ready);
    assert_eq!(s.run_strategy, None, "not recorded before the first VMI");
    assert_eq!(s.observed_generation, None);
    assert_eq!(vm_ready_reason(&v), Some("VMINotExists"));
    assert_eq!(s.conditions.len(), 1);
}

#[test]
fn start_goes_starting_then_running() {
    let mut v = with_status(vm("Always"), |s| {
        s.printable_status = Some("Stopped".into())
    });
    v.metadata.generation = Some(2);
    // The reconcile that creates the VMI does not see it yet.
    let v = step(&v, None, inputs(CREATE));
    assert_eq!(printable_of(&v), "Starting");
    assert!(!st(&v).created);
    let v = step(&v, Some(&built("u1", "Pending", 2)), inputs(NONE));
    assert_eq!(printable_of(&v), "Starting");
    let s = st(&v);
    assert!(s.created && !s.ready);
    assert_eq!(s.run_strategy.as_deref(), Some("Always"));
    assert_eq!(
        (s.observed_generation, s.desired_generation),
        (Some(2), Some(2))
    );
    assert_eq!(vm_ready_reason(&v), Some("VMIConditionMissing"));
    let v = step(&v, Some(&built("u1", "Scheduled", 2)), inputs(NONE));
    assert_eq!(printable_of(&v), "Starting");
    let v = step(&v, Some(&ready(built("u1", "Running", 2))), inputs(NONE));
    assert_eq!(printable_of(&v), "Running");
    assert!(st(&v).ready);
    let c = run_strategy::condition(&st(&v).conditions, "Ready").unwrap();
    assert_eq!(c.status, "True");
    assert_eq!(st(&v).start_failure, None);
}

#[test]
fn stop_goes_stopping_then_stopped() {
    let running = ready(built("u1", "Running", 1));
    let v = step(&vm("Always"), Some(&running), inputs(NONE));
    assert_eq!(printable_of(&v), "Running");
    // `stop`: spec → Halted; the controller deletes the VMI.
    let mut v = v;
    v.spec.run_strategy = Some("Halted".into());
    let v = step(&v, Some(&running), inputs(DELETE));
    assert_eq!(printable_of(&v), "Stopping");
    assert_eq!(st(&v).run_strategy.as_deref(), Some("Halted"));
    let v = step(&v, Some(&deleting(running.clone())), inputs(NONE));
    assert_eq!(printable_of(&v), "Stopping");
    let gone = with_condition(
        deleting(built("u1", "Succeeded", 1)),
        "Ready",
        "False",
        "PodTerminating",
    );
    let v = step(&v, Some(&ran(gone)), inputs(NONE));
    assert_eq!(printable_of(&v), "Stopped");
    assert!(st(&v).created);
    let v = step(&v, None, inputs(NONE));
    let s = st(&v);
    assert_eq!(printable_of(&v), "Stopped");
    assert!(!s.created && !s.ready);
    assert_eq!(vm_ready_reason(&v), Some("VMINotExists"));
    assert_eq!(
        s.run_strategy.as_deref(),
        Some("Halted"),
        "kept once recorded"
    );
    assert_eq!(s.observed_generation, Some(1), "kept while no VMI exists");
}

#[test]
fn restart_always_pops_stop_then_start() {
    let running = ready(ran(built("u1", "Running", 1)));
    let v = with_status(vm("Always"), |s| {
        s.created = true;
        s.run_strategy = Some("Always".into());
        s.state_change_requests = vec![StateChangeRequest::stop("u1"), StateChangeRequest::start()];
    });
    let v = step(&v, Some(&running), inputs(DELETE));
    assert_eq!(printable_of(&v), "Stopping");
    assert_eq!(st(&v).state_change_requests.len(), 2);
    let v = step(&v, Some(&deleting(running.clone())), inputs(NONE));
    assert_eq!(st(&v).state_change_requests.len(), 2);
    // The old VMI is gone; the controller created the new one in this reconcile. The Stop
    // stays until the cache shows which VMI that is (a stop may name the new one).
    let v = step(&v, None, inputs(CREATE));
    assert_eq!(printable_of(&v), "Starting");
    assert_eq!(st(&v).state_change_requests.len(), 2);
    let v = step(&v, Some(&built("u2", "Pending", 1)), inputs(NONE));
    assert_eq!(printable_of(&v), "Starting");
    assert_eq!(
        st(&v).state_change_requests,
        vec![StateChangeRequest::start()]
    );
    let v = step(&v, Some(&ready(built("u2", "Running", 1))), inputs(NONE));
    assert_eq!(printable_of(&v), "Running");
    assert!(st(&v).state_change_requests.is_empty());
}

#[test]
fn restart_manual_starts_after_the_stop_is_popped() {
    let running = ready(ran(built("u1", "Running", 1)));
    let v = with_status(vm("Manual"), |s| {
        s.state_change_requests = vec![StateChangeRequest::stop("u1"), StateChangeRequest::start()];
    });
    let v = step(&v, Some(&deleting(running)), inputs(NONE));
    assert_eq!(printable_of(&v), "Stopping");
    // Gone: the Stop is popped, nothing started yet.
    let v = step(&v, None, inputs(NONE));
    assert_eq!(
        st(&v).state_change_requests,
        vec![StateChangeRequest::start()]
    );
    assert_eq!(printable_of(&v), "Stopped");
    assert!(is_set_to_start(&v, None));
    // Next reconcile starts it; the Start stays until the VMI is seen.
    let v = step(&v, None, inputs(CREATE));
    assert_eq!(printable_of(&v), "Starting");
    assert_eq!(
        st(&v).state_change_requests,
        vec![StateChangeRequest::start()]
    );
    let v = step(&v, Some(&built("u2", "Scheduling", 1)), inputs(NONE));
    assert!(st(&v).state_change_requests.is_empty());
}

#[test]
fn guest_shutdown_under_manual_stays_stopped() {
    let done = ran(with_condition(
        built("u1", "Succeeded", 1),
        "Ready",
        "False",
        "PodTerminating",
    ));
    let v = step(&vm("Manual"), Some(&done), inputs(NONE));
    let s = st(&v);
    assert_eq!(printable_of(&v), "Stopped");
    assert!(s.created && !s.ready);
    assert_eq!(vm_ready_reason(&v), Some("PodTerminating"));
}

#[test]
fn crash_loop_counts_and_clears() {
    let v = vm("Always");
    let failed = |uid: &str| built(uid, "Failed", 1);
    let v = step_with(&v, Some(&failed("u1")), inputs(NONE), |max| {
        assert_eq!(max, 5);
        1
    });
    let f = st(&v).start_failure.clone().unwrap();
    assert_eq!(f.consecutive_fail_count, 1);
    // delay 10 + jitter 1.
    assert_eq!(
        f.retry_after_timestamp.as_deref(),
        Some("2026-08-01T12:00:11Z")
    );
    assert_eq!(printable_of(&v), "CrashLoopBackOff");
    // Seen again: not counted twice.
    let v = step(&v, Some(&failed("u1")), inputs(NONE));
    assert_eq!(st(&v).start_failure, Some(f));
    // Deleted, waiting for the backoff.
    let v = step(&v, None, inputs(NONE));
    assert_eq!(printable_of(&v), "CrashLoopBackOff");
    // Retried.
    let v = step(&v, None, inputs(CREATE));
    assert_eq!(printable_of(&v), "Starting");
    let v = step(&v, Some(&built("u2", "Scheduling", 1)), inputs(NONE));
    assert_eq!(printable_of(&v), "Starting");
    let v = step(&v, Some(&failed("u2")), inputs(NONE));
    let f = st(&v).start_failure.clone().unwrap();
    assert_eq!(f.consecutive_fail_count, 2);
    assert_eq!(f.last_failed_vmi_uid.as_deref(), Some("u2"));
    assert_eq!(
        f.retry_after_timestamp.as_deref(),
        Some("2026-08-01T12:00:40Z")
    );
    // The third one runs: cleared.
    let v = step(&v, Some(&ready(built("u3", "Running", 1))), inputs(NONE));
    assert_eq!(st(&v).start_failure, None);
    assert_eq!(printable_of(&v), "Running");
}

#[test]
fn unschedulable_and_image_errors_show_through() {
    let i = with_condition(
        built("u1", "Scheduling", 1),
        "PodScheduled",
        "False",
        "Unschedulable",
    );
    let v = step(&vm("Always"), Some(&i), inputs(NONE));
    assert_eq!(printable_of(&v), "ErrorUnschedulable");
    assert!(run_strategy::condition(&st(&v).conditions, "PodScheduled").is_some());
    let i = with_condition(
        built("u1", "Scheduled", 1),
        "Synchronized",
        "False",
        "ImagePullBackOff",
    );
    let v = step(&v, Some(&i), inputs(NONE));
    assert_eq!(printable_of(&v), "ImagePullBackOff");
    assert!(run_strategy::condition(&st(&v).conditions, "PodScheduled").is_none());
}

#[test]
fn paused_start_shows_paused() {
    let i = with_condition(
        ready(built("u1", "Running", 1)),
        "Paused",
        "True",
        "PausedByUser",
    );
    let v = step(&vm("Always"), Some(&i), inputs(NONE));
    assert_eq!(printable_of(&v), "Paused");
    assert!(run_strategy::has_true_condition(
        &st(&v).conditions,
        "Paused"
    ));
}

#[test]
fn failure_condition_comes_and_goes() {
    let with_error = StatusInputs {
        sync_error: Some((
            "FailedCreate".into(),
            "Failure while starting VMI: boom".into(),
        )),
        ..inputs(NONE)
    };
    let v = step(&vm("Always"), None, with_error);
    let c = run_strategy::condition(&st(&v).conditions, "Failure").unwrap();
    assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
    let v = step(&v, None, inputs(NONE));
    assert!(run_strategy::condition(&st(&v).conditions, "Failure").is_none());
}

#[test]
fn unknown_status_fields_are_kept_and_stale_fields_updated() {
    let v = with_status(vm("Always"), |s| {
        s.extra.insert(
            "volumeSnapshotStatuses".into(),
            json!([{"name": "disk0", "enabled": false}]),
        );
        s.printable_status = Some("Running".into());
        s.ready = true;
    });
    let next = compute_status(&v, None, inputs(NONE), |_| 0);
    assert_eq!(
        next.extra["volumeSnapshotStatuses"],
        json!([{"name": "disk0", "enabled": false}])
    );
    assert!(!next.ready);
    assert_eq!(next.printable_status.as_deref(), Some("Stopped"));
}

#[test]
fn compute_status_is_stable() {
    let i = ready(ran(built("u1", "Running", 1)));
    let v = step(&vm("Always"), Some(&i), inputs(NONE));
    let later = StatusInputs {
        now: "2026-08-01T12:00:30Z".into(),
        ..inputs(NONE)
    };
    // No new start failure: the random source is not used.
    let again = step_with(&v, Some(&i), later, |_| panic!("jitter used"));
    assert_eq!(again.status, v.status);
}

#[test]
fn invalid_strategy_is_not_recorded() {
    let mut v = with_status(vm("Always"), |s| s.run_strategy = Some("Always".into()));
    v.spec.running = Some(true);
    let v = step(&v, Some(&built("u1", "Running", 1)), inputs(NONE));
    assert_eq!(st(&v).run_strategy.as_deref(), Some("Always"));
}
