//! The VirtualMachine status rules (Part B §1.4, §4.7, §4.8), as pure functions.
//!
//! Everything that would make these rules impure is an explicit input: the clock (`now`), the
//! controller's pending creations and deletions ([`PendingVmiWrites`]), the sync error of the
//! reconcile, and the random source of the start backoff.
//!
//! `now` is an RFC 3339 timestamp, best in the form Kubernetes writes `metav1.Time`
//! (`2006-01-02T15:04:05Z`, see [`format_time`]); it is written as is into new conditions. A
//! `now` that does not parse counts as the Unix epoch where time is compared.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::run_strategy::{self, RunStrategy};
use crate::types::{
    Condition, StartFailure, StateChangeRequest, VirtualMachine, VirtualMachineInstance,
    VirtualMachineStatus,
};

/// The values of `status.printableStatus`.
pub mod printable {
    pub const STOPPED: &str = "Stopped";
    pub const PROVISIONING: &str = "Provisioning";
    pub const STARTING: &str = "Starting";
    pub const RUNNING: &str = "Running";
    pub const PAUSED: &str = "Paused";
    pub const STOPPING: &str = "Stopping";
    pub const TERMINATING: &str = "Terminating";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const MIGRATING: &str = "Migrating";
    pub const UNKNOWN: &str = "Unknown";
    pub const ERROR_UNSCHEDULABLE: &str = "ErrorUnschedulable";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const ERROR_PVC_NOT_FOUND: &str = "ErrorPvcNotFound";
    pub const DATA_VOLUME_ERROR: &str = "DataVolumeError";
    pub const WAITING_FOR_VOLUME_BINDING: &str = "WaitingForVolumeBinding";
    pub const WAITING_FOR_RECEIVER: &str = "WaitingForReceiver";
}

/// Condition types used on VMs and VMIs.
pub mod condition_type {
    pub const READY: &str = "Ready";
    pub const FAILURE: &str = "Failure";
    pub const PAUSED: &str = "Paused";
    pub const RESTART_REQUIRED: &str = "RestartRequired";
    pub const MANUAL_RECOVERY_REQUIRED: &str = "ManualRecoveryRequired";
    pub const SYNCHRONIZED: &str = "Synchronized";
    pub const POD_SCHEDULED: &str = "PodScheduled";
}

/// Condition reasons this module matches on or writes.
pub mod reason {
    pub const VMI_NOT_EXISTS: &str = "VMINotExists";
    pub const VMI_CONDITION_MISSING: &str = "VMIConditionMissing";
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const FAILED_PVC_NOT_FOUND: &str = "FailedPvcNotFound";
    pub const FAILED_CREATE: &str = "FailedCreate";
    pub const FAILED_DELETE: &str = "FailedDelete";
}

/// Annotation on a VMI: the VM generation it was built from.
pub const VM_GENERATION_ANNOTATION: &str = "kubevirt.io/vm-generation";

/// The longest start backoff, in seconds.
pub const MAX_START_BACKOFF_SECONDS: i64 = 300;

/// The controller's pending work for one VM (Part B §4.1): a VMI creation it issued and has not
/// seen yet, a VMI deletion it issued and has not seen yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingVmiWrites {
    pub create_expected: bool,
    pub delete_expected: bool,
}

/// `metav1.Time` wire format: `2006-01-02T15:04:05Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp; `None` when it is malformed.
///
/// `now` arguments that do not parse are taken as the Unix epoch.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn clock(now: &str) -> DateTime<Utc> {
    parse_time(now).unwrap_or_default()
}

fn vm_status(vm: &VirtualMachine) -> Option<&VirtualMachineStatus> {
    vm.status.as_ref()
}

fn state_change_requests(vm: &VirtualMachine) -> &[StateChangeRequest] {
    vm_status(vm)
        .map(|s| s.state_change_requests.as_slice())
        .unwrap_or(&[])
}

/// The head of the state-change queue is `Stop` naming this VMI's UID (Part B §4.4 `stopReq`).
pub fn has_stop_request_for(vm: &VirtualMachine, vmi: &VirtualMachineInstance) -> bool {
    match (
        state_change_requests(vm).first(),
        vmi.metadata.uid.as_deref(),
    ) {
        (Some(head), Some(uid)) => head.is_stop() && head.uid.as_deref() == Some(uid),
        _ => false,
    }
}

/// The head of the state-change queue is `Start` (Part B §4.4 `startReq`).
pub fn has_start_request(vm: &VirtualMachine) -> bool {
    state_change_requests(vm)
        .first()
        .is_some_and(StateChangeRequest::is_start)
}

/// The head of the state-change queue is `Start` with `paused: "true"` (`startPausedReq`).
pub fn has_start_paused_request(vm: &VirtualMachine) -> bool {
    state_change_requests(vm)
        .first()
        .is_some_and(StateChangeRequest::is_paused_start)
}

fn vmi_condition_is(vmi: &VirtualMachineInstance, type_: &str, status: &str, reason: &str) -> bool {
    run_strategy::condition(run_strategy::vmi_conditions(vmi), type_)
        .is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason))
}

fn is_paused(vmi: &VirtualMachineInstance) -> bool {
    run_strategy::has_true_condition(run_strategy::vmi_conditions(vmi), condition_type::PAUSED)
}

/// The VMI has ever been `Running`: a `phaseTransitionTimestamps` entry for Running, or the
/// phase is Running right now.
pub fn reached_running(vmi: &VirtualMachineInstance) -> bool {
    vmi.phase() == "Running"
        || vmi.status.as_ref().is_some_and(|s| {
            s.phase_transition_timestamps
                .iter()
                .any(|t| t.phase == "Running")
        })
}

/// A migration is in progress: `migrationState.startTimestamp` ≤ now and `endTimestamp` unset
/// or in the future. Unparseable timestamps count as unset.
pub fn is_migrating(vmi: &VirtualMachineInstance, now: &str) -> bool {
    let now = clock(now);
    let Some(state) = vmi.status.as_ref().and_then(|s| s.migration_state.as_ref()) else {
        return false;
    };
    let time_of = |key: &str| state.get(key).and_then(|v| v.as_str()).and_then(parse_time);
    let started = time_of("startTimestamp").is_some_and(|t| t <= now);
    let ended = time_of("endTimestamp").is_some_and(|t| t <= now);
    started && !ended
}

fn backoff_applies(strategy: Option<RunStrategy>) -> bool {
    matches!(
        strategy,
        Some(RunStrategy::Always | RunStrategy::RerunOnFailure | RunStrategy::Once)
    )
}

/// `status.printableStatus` (Part B §4.8): the first matching row wins.
///
/// The rows that only DataVolumes and PVCs trigger (`DataVolumeError`, `Provisioning`,
/// `WaitingForVolumeBinding`) never fire: those features are out of scope (Part A §1).
/// `ErrorPvcNotFound` is kept, as it is a plain VMI condition.
pub fn printable_status(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    expectations: PendingVmiWrites,
    now: &str,
) -> &'static str {
    let strategy = run_strategy::effective(vm).ok();
    let vmi_final = vmi.is_some_and(run_strategy::is_final);
    let phase = vmi.map(VirtualMachineInstance::phase);
    let synchronized_false = |r: &str| {
        vmi.is_some_and(|v| vmi_condition_is(v, condition_type::SYNCHRONIZED, "False", r))
    };

    if vm.metadata.deletion_timestamp.is_some() {
        return printable::TERMINATING;
    }
    if let Some(v) = vmi
        && !vmi_final
        && (run_strategy::is_deleting(v) || expectations.delete_expected)
    {
        return printable::STOPPING;
    }
    if vmi.is_some_and(|v| is_migrating(v, now)) {
        return printable::MIGRATING;
    }
    if phase == Some("Running") {
        return if vmi.is_some_and(is_paused) {
            printable::PAUSED
        } else {
            printable::RUNNING
        };
    }
    if synchronized_false(reason::FAILED_PVC_NOT_FOUND) {
        return printable::ERROR_PVC_NOT_FOUND;
    }
    if vmi.is_some_and(|v| {
        vmi_condition_is(
            v,
            condition_type::POD_SCHEDULED,
            "False",
            reason::UNSCHEDULABLE,
        )
    }) {
        return printable::ERROR_UNSCHEDULABLE;
    }
    if synchronized_false(reason::ERR_IMAGE_PULL) {
        return printable::ERR_IMAGE_PULL;
    }
    if synchronized_false(reason::IMAGE_PULL_BACK_OFF) {
        return printable::IMAGE_PULL_BACK_OFF;
    }
    if (vmi.is_none() && expectations.create_expected)
        || matches!(phase, Some("" | "Pending" | "Scheduling" | "Scheduled"))
    {
        return printable::STARTING;
    }
    let fail_count = vm_status(vm)
        .and_then(|s| s.start_failure.as_ref())
        .map_or(0, |f| f.consecutive_fail_count);
    if (vmi.is_none() || vmi_final)
        && !expectations.create_expected
        && fail_count > 0
        && backoff_applies(strategy)
    {
        return printable::CRASH_LOOP_BACK_OFF;
    }
    if vmi_final || (vmi.is_none() && !expectations.create_expected) {
        return printable::STOPPED;
    }
    if strategy == Some(RunStrategy::WaitAsReceiver)
        && matches!(phase, None | Some("WaitingForSync"))
    {
        return printable::WAITING_FOR_RECEIVER;
    }
    printable::UNKNOWN
}

/// Whether the VM is meant to have a running VMI (Part B §4.8 `isSetToStart`).
pub fn is_set_to_start(vm: &VirtualMachine, vmi: Option<&VirtualMachineInstance>) -> bool {
    match run_strategy::effective(vm) {
        Ok(RunStrategy::Always) => true,
        Ok(RunStrategy::Halted) => false,
        Ok(RunStrategy::Manual) => match vmi {
            Some(v) => !has_stop_request_for(vm, v),
            None => has_start_request(vm),
        },
        Ok(RunStrategy::RerunOnFailure) => match vmi {
            Some(v) => v.phase() != "Succeeded",
            None => {
                has_start_request(vm)
                    || vm_status(vm).and_then(|s| s.run_strategy.as_deref())
                        != Some(RunStrategy::RerunOnFailure.as_str())
            }
        },
        Ok(RunStrategy::Once) => vmi.is_none(),
        Ok(RunStrategy::WaitAsReceiver) | Err(_) => false,
    }
}

/// The start backoff for the `count`th consecutive failure, in seconds: `10·count²` plus a
/// random jitter, at most [`MAX_START_BACKOFF_SECONDS`]. `count ≤ 0` counts as 1.
///
/// `jitter(max)` must return a random integer in `[0, max]`, with `max = delay / 2`; values
/// outside that range are clamped into it.
pub fn backoff_seconds(count: i64, jitter: impl FnOnce(i64) -> i64) -> i64 {
    let interval = (MAX_START_BACKOFF_SECONDS / 30).max(10);
    let count = count.max(1);
    let delay = count
        .checked_mul(count)
        .and_then(|sq| sq.checked_mul(interval))
        .unwrap_or(i64::MAX)
        .min(MAX_START_BACKOFF_SECONDS * 2);
    let max_jitter = delay / 2;
    let extra = jitter(max_jitter).clamp(0, max_jitter);
    (delay + extra).min(MAX_START_BACKOFF_SECONDS)
}

/// `status.startFailure` after this reconcile (Part B §4.7 step 5).
///
/// - Cleared when the strategy has no backoff (only Always, RerunOnFailure and Once do), or
///   when the VMI has reached Running.
/// - A final VMI that never ran, and is not the one already counted, bumps the count and sets
///   `retryAfterTimestamp = now + backoff_seconds(count, jitter)`; unless it is being deleted
///   (Part A §23): a VMI deleted before it ran, by a restart, a stop or a user, did not fail to
///   start, and counting it put a VM restarted twice in a row into a 40 s backoff.
/// - Otherwise the previous value is kept.
pub fn next_start_failure(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    strategy: Option<RunStrategy>,
    now: &str,
    jitter: impl FnOnce(i64) -> i64,
) -> Option<StartFailure> {
    let previous = vm_status(vm).and_then(|s| s.start_failure.clone());
    if !backoff_applies(strategy) {
        return None;
    }
    let Some(vmi) = vmi else {
        return previous;
    };
    if reached_running(vmi) {
        return None;
    }
    if !run_strategy::is_final(vmi) || run_strategy::is_deleting(vmi) {
        return previous;
    }
    if previous
        .as_ref()
        .is_some_and(|p| p.last_failed_vmi_uid == vmi.metadata.uid)
    {
        return previous;
    }
    let count = previous.map_or(0, |p| p.consecutive_fail_count).max(0) + 1;
    let delay = backoff_seconds(count, jitter);
    Some(StartFailure {
        consecutive_fail_count: count,
        last_failed_vmi_uid: vmi.metadata.uid.clone(),
        retry_after_timestamp: Some(format_time(clock(now) + Duration::seconds(delay))),
    })
}

/// How long a start must still wait because of the crash-loop backoff (Part B §4.4): the time
/// left until `startFailure.retryAfterTimestamp`, or `None` when a start may proceed now.
pub fn start_backoff_remaining(vm: &VirtualMachine, now: &str) -> Option<std::time::Duration> {
    let retry_after = vm_status(vm)
        .and_then(|s| s.start_failure.as_ref())
        .and_then(|f| f.retry_after_timestamp.as_deref())
        .and_then(parse_time)?;
    (retry_after - clock(now))
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
}

/// The state-change queue after this reconcile (Part B §4.7 step 4): at most the head is
/// popped, and only when it is done or can never apply.
///
/// - `Stop`: popped when there is no VMI, when it has no UID, or when its UID is not the
///   VMI's (that VMI was already replaced). Not while the controller awaits the VMI it created
///   (`create_expected`): a stop that names it was decided on a fresher read than the cache.
/// - `Start`: popped when a VMI exists that is neither being deleted nor final.
pub fn trim_state_change_requests(
    requests: &[StateChangeRequest],
    vmi: Option<&VirtualMachineInstance>,
    create_expected: bool,
) -> Vec<StateChangeRequest> {
    let Some(head) = requests.first() else {
        return Vec::new();
    };
    let pop = if head.is_stop() {
        match (vmi, head.uid.as_deref()) {
            (_, None) => true,
            (None, Some(_)) => !create_expected,
            (Some(v), Some(uid)) => v.metadata.uid.as_deref() != Some(uid),
        }
    } else if head.is_start() {
        vmi.is_some_and(|v| !run_strategy::is_deleting(v) && !run_strategy::is_final(v))
    } else {
        false
    };
    let skip = usize::from(pop);
    requests[skip..].to_vec()
}

/// A condition with both timestamps set to `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_probe_time: Some(now.to_string()),
        last_transition_time: Some(now.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
    }
}

/// Adds `c`, or replaces the condition of the same type, but only when its status or reason
/// changes: otherwise the old entry (timestamps, message) is kept (Part B §1.4). A replaced
/// condition keeps its position in the list.
pub fn set_condition(conditions: &mut Vec<Condition>, c: Condition) {
    match conditions.iter_mut().find(|old| old.type_ == c.type_) {
        Some(old) => {
            if old.status != c.status || old.reason != c.reason {
                *old = c;
            }
        }
        None => conditions.push(c),
    }
}

/// Removes every condition of this type.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The VM's `Ready` condition: the VMI's own `Ready` condition (with its timestamps) when it
/// has one; `False`/`VMIConditionMissing` when it has none; `False`/`VMINotExists` without a VMI.
pub fn ready_condition(vmi: Option<&VirtualMachineInstance>, now: &str) -> Condition {
    let Some(vmi) = vmi else {
        return new_condition(
            condition_type::READY,
            "False",
            reason::VMI_NOT_EXISTS,
            "VMI does not exist",
            now,
        );
    };
    match run_strategy::condition(run_strategy::vmi_conditions(vmi), condition_type::READY) {
        Some(c) => c.clone(),
        None => new_condition(
            condition_type::READY,
            "False",
            reason::VMI_CONDITION_MISSING,
            "VMI is missing the Ready condition",
            now,
        ),
    }
}

/// The `Failure` condition for a sync error `(reason, message)` (e.g. `FailedCreate`), or
/// `None` when the reconcile had no error and the condition is to be removed. It has a
/// `lastTransitionTime` but no `lastProbeTime`: KubeVirt's VM controller sets only the former.
pub fn failure_condition(sync_error: Option<(&str, &str)>, now: &str) -> Option<Condition> {
    sync_error.map(|(reason, message)| Condition {
        last_probe_time: None,
        ..new_condition(condition_type::FAILURE, "True", reason, message, now)
    })
}

/// Conditions the VM controller owns: never copied from, nor removed because of, the VMI.
fn vm_owned(type_: &str) -> bool {
    matches!(
        type_,
        condition_type::READY
            | condition_type::FAILURE
            | condition_type::RESTART_REQUIRED
            | condition_type::MANUAL_RECOVERY_REQUIRED
    )
}

/// Copies every VMI condition except Ready, Failure and RestartRequired onto the VM (with the
/// [`set_condition`] rule). While a VMI exists, VM conditions it no longer has are removed;
/// without a VMI, previously mirrored conditions are left as they are (Part B §1.4).
/// `ManualRecoveryRequired` is a VM-only condition as well and is never removed here.
pub fn mirror_vmi_conditions(
    conditions: &mut Vec<Condition>,
    vmi: Option<&VirtualMachineInstance>,
) {
    let Some(vmi) = vmi else {
        return;
    };
    let vmi_conditions = run_strategy::vmi_conditions(vmi);
    for c in vmi_conditions.iter().filter(|c| !vm_owned(&c.type_)) {
        set_condition(conditions, c.clone());
    }
    conditions.retain(|c| vm_owned(&c.type_) || vmi_conditions.iter().any(|v| v.type_ == c.type_));
}

/// What [`compute_status`] needs besides the VM, its VMI and the random source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInputs {
    /// The clock, RFC 3339 (see the module documentation).
    pub now: String,
    /// VMI creations and deletions issued but not seen yet.
    pub expectations: PendingVmiWrites,
    /// The sync error of this reconcile, as `(reason, message)`, e.g. `FailedCreate`.
    pub sync_error: Option<(String, String)>,
}

/// The VMI's `kubevirt.io/vm-generation` annotation, parsed.
pub fn vmi_vm_generation(vmi: &VirtualMachineInstance) -> Option<i64> {
    vmi.metadata
        .annotations
        .as_ref()?
        .get(VM_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// The VM status after a reconcile (Part B §4.7 steps 1, 2, 4, 5, 7 and 8).
///
/// `vm` is the VM as read at the start of the reconcile, and `vmi` the VMI seen then (so in the
/// reconcile that creates a VMI, `created` is still false). Fields this crate does not model are
/// kept. `jitter(max)` is the random source of the start backoff: a uniformly random integer in
/// `[0, max]` (see [`backoff_seconds`]); it is called only when a new start failure is counted.
pub fn compute_status(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    inputs: StatusInputs,
    jitter: impl FnOnce(i64) -> i64,
) -> VirtualMachineStatus {
    let mut status = vm.status.clone().unwrap_or_default();
    let now = inputs.now.as_str();
    let strategy = run_strategy::effective(vm);

    // 1. created, ready and the generations.
    status.created = vmi.is_some();
    status.ready = vmi.is_some_and(|v| {
        run_strategy::has_true_condition(run_strategy::vmi_conditions(v), condition_type::READY)
    });
    if let Some(v) = vmi {
        if let Some(generation) = vmi_vm_generation(v) {
            status.observed_generation = Some(generation);
        }
        if vm.metadata.generation.is_some() {
            status.desired_generation = vm.metadata.generation;
        }
    }

    // 2. The recorded run strategy, once the VM has had a VMI.
    if let Ok(s) = strategy
        && (status.created
            || status
                .run_strategy
                .as_deref()
                .is_some_and(|r| !r.is_empty()))
    {
        status.run_strategy = Some(s.as_str().to_string());
    }

    // 4. The state-change queue.
    status.state_change_requests = trim_state_change_requests(
        &status.state_change_requests,
        vmi,
        inputs.expectations.create_expected,
    );

    // 5. Start-failure bookkeeping.
    status.start_failure = next_start_failure(vm, vmi, strategy.ok(), now, jitter);

    // 7. Conditions.
    set_condition(&mut status.conditions, ready_condition(vmi, now));
    let sync_error = inputs.sync_error.as_ref();
    match failure_condition(sync_error.map(|(r, m)| (r.as_str(), m.as_str())), now) {
        Some(c) => set_condition(&mut status.conditions, c),
        None => remove_condition(&mut status.conditions, condition_type::FAILURE),
    }
    mirror_vmi_conditions(&mut status.conditions, vmi);

    // 8. printableStatus, from the VM with its new status.
    let mut updated = vm.clone();
    updated.status = Some(status);
    let printable = printable_status(&updated, vmi, inputs.expectations, now);
    let mut status = updated.status.take().unwrap_or_default();
    status.printable_status = Some(printable.to_string());
    status
}

#[cfg(test)]
mod tests;
