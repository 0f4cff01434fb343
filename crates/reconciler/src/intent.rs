//! The lifecycle rules: what `start`, `stop` and `restart` mean for a VM, given its effective run
//! strategy and the state of its VMI (spec Part B §2.2–§2.6, with Part A §5 for force restart).
//!
//! Every function here is pure. It takes the VM, its VMI if there is one, and the request's
//! options, and returns either a [`Plan`] (the exact JSON patches to send, each guarded by `test`
//! operations, plus an optional launcher-pod deletion) or an [`IntentError`] that carries the
//! HTTP code, the `metav1.Status` reason and the message exactly as KubeVirt's virt-api words it.
//!
//! The same plan backs the `subresources.kubevirt.io` API and `virtctl`'s client-side fallback.
//! The executor applies the steps in order, passing `dryRun=All` on every write when
//! [`Plan::dry_run`] is set, and maps a failed `test` operation to 409 Conflict.

use serde_json::{Value, json};

use crate::request;
use crate::run_strategy::{self, RunStrategy};
use crate::types::{StateChangeRequest, VirtualMachine, VirtualMachineInstance};

pub mod pause;
pub mod reset;
pub mod streams;
pub use pause::{PauseOptions, UnpauseOptions, pause, unpause};

/// The group-resource string KubeVirt puts in its conflict messages.
pub const GROUP_RESOURCE: &str = "virtualmachine.kubevirt.io";

/// 409 reason: start while a VMI is active.
pub const VM_ALREADY_RUNNING: &str = "VM is already running";
/// 409 reason: stop with no VMI, or a final one (Halted, Manual, RerunOnFailure).
pub const VM_NOT_RUNNING: &str = "VM is not running";
/// 409 reason: restart with no VMI (the literal word Halted, as in KubeVirt).
pub const VM_NOT_RUNNING_HALTED: &str = "VM is not running: Halted";
/// 409 reason: stop on Halted without a shorter grace period.
pub const HALTED_STOP_NEEDS_SHORTER_GRACE: &str =
    "Halted only supports manual stop requests with a shorter graceperiod";
/// 409 reason: start on RerunOnFailure whose VMI failed.
pub const RERUN_ON_FAILURE_FROM_FAILED: &str =
    "RerunOnFailure does not support starting VM from failed state";
/// 409 reason: start blocked by `ManualRecoveryRequired`, restart blocked by `VolumesChange`.
pub const RECOVERY_REQUIRED: &str = "VM recovery required: Volume migration failed, leaving some \
     volumes pointing to non-consistent targets; manual intervention is needed to reassign them \
     to their original volumes.";
/// 500 reason: a Start (or Stop+Start) while other requests are pending.
pub const ALREADY_UNDERWAY: &str = "unable to complete request: stop/start already underway";
/// 400 reason: restart with a positive grace period.
pub const FORCE_RESTART_ONLY_ZERO: &str =
    "For force restart, only gracePeriod=0 is supported for now";
/// 400 reason: restart with a negative grace period.
pub const NEGATIVE_GRACE_PERIOD: &str = "gracePeriod has to be greater or equal to 0";

/// VM condition that blocks `start` (set after a failed volume migration).
pub const CONDITION_MANUAL_RECOVERY_REQUIRED: &str = "ManualRecoveryRequired";
/// VM condition that blocks `restart` (the VMI condition name, reused on the VM).
pub const CONDITION_VOLUMES_CHANGE: &str = "VolumesChange";

pub use crate::request::{RestartOptions, StartOptions, StopOptions};

/// The object a [`PatchStep`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchTarget {
    /// The VirtualMachine main resource (`spec`).
    Vm,
    /// The VirtualMachine `status` subresource.
    VmStatus,
    /// The VirtualMachineInstance of the same name.
    Vmi,
}

/// One JSON Patch (RFC 6902) request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchStep {
    pub target: PatchTarget,
    /// A JSON array of patch operations; send as `application/json-patch+json`.
    pub patch: Value,
}

/// Delete the VMI's virt-launcher Pods (force restart, Part A §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDeletion {
    pub label_selector: String,
    pub field_selector: String,
    pub grace_period_seconds: i64,
}

/// What to do, in order: every step, then the Pod deletion. The executor stops at the first
/// failure and reports it (a failed `test` operation as 409 Conflict).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<PatchStep>,
    pub delete_pods: Option<PodDeletion>,
    /// Pass `dryRun=All` on every write.
    pub dry_run: bool,
    /// How many of the first steps may have been written when a later one loses a race, and
    /// the request still be decided again (Part A §12): a stop's removal of queued Starts,
    /// which every stop that lands on the VM makes too.
    pub redecidable_steps: usize,
}

impl Plan {
    fn new(dry_run: bool) -> Self {
        Plan {
            steps: Vec::new(),
            delete_pods: None,
            dry_run,
            redecidable_steps: 0,
        }
    }

    fn push(&mut self, target: PatchTarget, patch: Value) {
        self.steps.push(PatchStep { target, patch });
    }

    /// Nothing to write (KubeVirt still answers 202, e.g. start on WaitAsReceiver).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.delete_pods.is_none()
    }
}

/// A refusal, as the `metav1.Status` virt-api would send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IntentError {
    /// 400, 409 or 500.
    pub code: u16,
    /// `BadRequest`, `Conflict` or `InternalError`.
    pub reason: &'static str,
    /// The full `metav1.Status` message.
    pub message: String,
    /// The object the refusal is about (`metav1.StatusDetails`), for conflicts and not-found.
    pub details: Option<StatusDetails>,
}

/// `metav1.StatusDetails` as virt-api fills them: the object's name and KubeVirt's
/// group-resource (`kubevirt.io`, `virtualmachine` or `virtualmachineinstance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDetails {
    pub name: String,
    pub group: &'static str,
    pub kind: &'static str,
}

/// KubeVirt's API group, as virt-api names it in Status details.
pub const KUBEVIRT_GROUP: &str = "kubevirt.io";

impl IntentError {
    /// 409: `Operation cannot be fulfilled on virtualmachine.kubevirt.io "<name>": <reason>`.
    pub fn conflict(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::conflict_on("virtualmachine", name, reason)
    }

    /// 409 on the KubeVirt resource `resource` (`virtualmachine`, `virtualmachineinstance`).
    pub fn conflict_on(resource: &'static str, name: &str, reason: impl std::fmt::Display) -> Self {
        IntentError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {resource}.{KUBEVIRT_GROUP} \"{name}\": {reason}"
            ),
            details: Some(StatusDetails::of(resource, name)),
        }
    }

    /// 404: `<resource>.kubevirt.io "<name>" not found`.
    pub fn not_found(resource: &'static str, name: &str) -> Self {
        IntentError {
            code: 404,
            reason: "NotFound",
            message: format!("{resource}.{KUBEVIRT_GROUP} \"{name}\" not found"),
            details: Some(StatusDetails::of(resource, name)),
        }
    }

    /// 400: the bare reason.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        IntentError {
            code: 400,
            reason: "BadRequest",
            message: reason.into(),
            details: None,
        }
    }

    /// 500: `Internal error occurred: <reason>`.
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        IntentError {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {reason}"),
            details: None,
        }
    }
}

impl StatusDetails {
    pub fn of(resource: &'static str, name: &str) -> Self {
        StatusDetails {
            name: name.to_string(),
            group: KUBEVIRT_GROUP,
            kind: resource,
        }
    }
}

/// The checks `start` makes of the objects before it reads its body: an active VMI, then the
/// `ManualRecoveryRequired` condition (both 409). A start with a malformed body still gets these
/// first, as from virt-api.
pub fn check_start_state(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
) -> Result<(), IntentError> {
    let name = vm_name(vm);
    if run_strategy::is_active(vmi) {
        return Err(IntentError::conflict(name, VM_ALREADY_RUNNING));
    }
    if run_strategy::has_true_condition(
        run_strategy::vm_conditions(vm),
        CONDITION_MANUAL_RECOVERY_REQUIRED,
    ) {
        return Err(IntentError::conflict(name, RECOVERY_REQUIRED));
    }
    Ok(())
}

/// `start` (Part B §2.3).
///
/// Order of checks: an active VMI (409), the `ManualRecoveryRequired` condition (409), the
/// effective run strategy (500), then the per-strategy rule.
pub fn start(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    opts: &StartOptions,
) -> Result<Plan, IntentError> {
    let name = vm_name(vm);
    check_start_state(vm, vmi)?;
    // virt-api decodes the body here, after the state checks.
    let dry_run = request::dry_run(&opts.dry_run)?;
    let request = if opts.paused {
        StateChangeRequest::start_paused()
    } else {
        StateChangeRequest::start()
    };
    let strategy = effective_strategy(vm)?;

    let mut plan = Plan::new(dry_run);
    let phase = vmi.map(VirtualMachineInstance::phase);
    match strategy {
        // A paused start always goes through a Start request (the controller then switches the
        // spec to Always); a plain start switches the spec itself.
        RunStrategy::Halted if opts.paused => {
            plan.push(PatchTarget::VmStatus, state_change_patch(vm, &[request])?);
        }
        RunStrategy::Halted => plan.push(PatchTarget::Vm, running_patch(vm, true)),
        RunStrategy::RerunOnFailure if phase == Some("Failed") => {
            return Err(IntentError::conflict(name, RERUN_ON_FAILURE_FROM_FAILED));
        }
        RunStrategy::Manual | RunStrategy::RerunOnFailure => {
            // A finished VMI is still there: ask for it to go before the new one starts.
            // (RerunOnFailure's Failed case was refused above, so only Succeeded is left.)
            let changes = match vmi.filter(|v| run_strategy::is_final(v)) {
                Some(done) => vec![StateChangeRequest::stop(vmi_uid(done)), request],
                None => vec![request],
            };
            plan.push(PatchTarget::VmStatus, queued_patch(vm, strategy, &changes)?);
        }
        RunStrategy::Always | RunStrategy::Once => {
            return Err(IntentError::conflict(
                name,
                format!("{strategy} does not support manual start requests"),
            ));
        }
        // KubeVirt matches no case here and answers 202 without writing anything.
        RunStrategy::WaitAsReceiver => {}
    }
    Ok(plan)
}

/// The checks stop makes before it looks at any object, giving the dry-run flag: `dryRun` other
/// than `["All"]` (400), and a negative grace period, refused with restart's 400 (KubeVirt takes
/// it, and the guest is killed at once; Part A).
pub fn check_stop_options(opts: &StopOptions) -> Result<bool, IntentError> {
    let dry_run = request::dry_run(&opts.dry_run)?;
    match opts.grace_period {
        Some(g) if g < 0 => Err(IntentError::bad_request(NEGATIVE_GRACE_PERIOD)),
        _ => Ok(dry_run),
    }
}

/// `stop` (Part B §2.4).
///
/// Order: the grace value (400); the effective run strategy (500); on Always and Once, the
/// removal of queued Starts (below); then, when a non-final VMI exists and a grace period is
/// given, the VMI grace patch (before any write that stops the VMI); then the per-strategy rule.
///
/// KubeVirt applies the VMI grace patch even when the Halted rule then refuses with 409. A plan
/// is all or nothing, so here a refusal writes nothing.
///
/// The last accepted request wins (Part A; KubeVirt differs): on Always and Once, a `Start` still
/// queued (by a restart just before) is removed from the queue, under a `test` of the queue,
/// before the spec turns Halted. Otherwise the controller would act on that `Start` once the
/// VMI is gone and turn the VM back to Always, and the accepted stop would be lost.
pub fn stop(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    opts: &StopOptions,
) -> Result<Plan, IntentError> {
    let dry_run = check_stop_options(opts)?;
    let name = vm_name(vm);
    let strategy = effective_strategy(vm)?;
    // For stop, Unknown and unset phases count as running: only a final VMI is "not running".
    let live = vmi.filter(|v| !run_strategy::is_final(v));

    let mut plan = Plan::new(dry_run);
    // Dropping the queued Starts comes first: it triggers nothing, and a race lost there is
    // lost before anything is written, so the request can simply be decided again. A race
    // lost after it too: whatever won (another stop, a restart's new Start, the controller
    // popping the queue), deciding again drops what is queued then, or refuses because
    // another stop landed, which dropped the Starts as well.
    let halting = matches!(strategy, RunStrategy::Always | RunStrategy::Once);
    if halting && let Some(patch) = drop_queued_starts_patch(vm) {
        plan.push(PatchTarget::VmStatus, patch);
        plan.redecidable_steps = 1;
    }
    if let (Some(v), Some(grace)) = (live, opts.grace_period) {
        plan.push(PatchTarget::Vmi, vmi_grace_patch(v, grace));
    }
    match strategy {
        RunStrategy::Halted => {
            let Some(v) = live else {
                return Err(IntentError::conflict(name, VM_NOT_RUNNING));
            };
            // Halted already removes the VMI; a stop request only makes sense to shorten its
            // grace period. An unset VMI grace counts as longer than any given value.
            let shorter = match (opts.grace_period, v.spec.termination_grace_period_seconds) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(new), Some(old)) => new < old,
            };
            if !shorter {
                return Err(IntentError::conflict(name, HALTED_STOP_NEEDS_SHORTER_GRACE));
            }
            let stop = StateChangeRequest::stop(vmi_uid(v));
            plan.push(PatchTarget::VmStatus, state_change_patch(vm, &[stop])?);
        }
        RunStrategy::Manual | RunStrategy::RerunOnFailure => {
            let Some(v) = live else {
                return Err(IntentError::conflict(name, VM_NOT_RUNNING));
            };
            let stop = StateChangeRequest::stop(vmi_uid(v));
            plan.push(PatchTarget::VmStatus, queued_patch(vm, strategy, &[stop])?);
        }
        RunStrategy::Always | RunStrategy::Once => {
            // The queue as the drop above leaves it: a restart that lands in between must not
            // leave its Start behind a stop, or the controller turns the VM on again.
            plan.push(PatchTarget::Vm, halt_patch(vm));
        }
        // No case matches in KubeVirt: only the VMI grace patch (if any) is made.
        RunStrategy::WaitAsReceiver => {}
    }
    Ok(plan)
}

/// The checks restart makes before it looks at any object (Part B §2.5 steps 1–2), giving the
/// dry-run flag, so that callers that fetch objects first can answer a bad `dryRun` or grace
/// period with the same 400.
pub fn check_restart_options(opts: &RestartOptions) -> Result<bool, IntentError> {
    let dry_run = request::dry_run(&opts.dry_run)?;
    match opts.grace_period_seconds {
        Some(g) if g > 0 => Err(IntentError::bad_request(FORCE_RESTART_ONLY_ZERO)),
        Some(g) if g < 0 => Err(IntentError::bad_request(NEGATIVE_GRACE_PERIOD)),
        _ => Ok(dry_run),
    }
}

/// `restart` (Part B §2.5, with Part A §5 for force).
///
/// Order: the grace value (400), the `VolumesChange` condition (409), the effective run strategy
/// (500), Halted and Once (409), no VMI (409), then the `[Stop{uid}, Start]` request (500 when
/// requests are pending). The VMI's phase is not checked: for a final VMI the pair acts as a
/// start.
///
/// Force (`Some(0)`): after the request, delete the VMI's running virt-launcher Pods with grace
/// period 0. The VMI's own grace period is left alone.
pub fn restart(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    opts: &RestartOptions,
) -> Result<Plan, IntentError> {
    let dry_run = check_restart_options(opts)?;
    let name = vm_name(vm);
    if run_strategy::has_true_condition(run_strategy::vm_conditions(vm), CONDITION_VOLUMES_CHANGE) {
        return Err(IntentError::conflict(name, RECOVERY_REQUIRED));
    }
    let strategy = effective_strategy(vm)?;
    if matches!(strategy, RunStrategy::Halted | RunStrategy::Once) {
        return Err(IntentError::conflict(
            name,
            // The typo is KubeVirt's; clients match on it.
            format!("RunStategy {strategy} does not support manual restart requests"),
        ));
    }
    let Some(vmi) = vmi else {
        return Err(IntentError::conflict(name, VM_NOT_RUNNING_HALTED));
    };
    let uid = vmi_uid(vmi);

    let mut plan = Plan::new(dry_run);
    let changes = [StateChangeRequest::stop(uid), StateChangeRequest::start()];
    plan.push(PatchTarget::VmStatus, queued_patch(vm, strategy, &changes)?);
    if opts.grace_period_seconds == Some(0) {
        plan.delete_pods = Some(launcher_pod_deletion(uid));
    }
    Ok(plan)
}

/// The running virt-launcher Pods of the VMI with this UID, deleted at once.
pub fn launcher_pod_deletion(vmi_uid: &str) -> PodDeletion {
    PodDeletion {
        label_selector: crate::vmi::launcher_pod_selector_of_uid(vmi_uid),
        field_selector: "status.phase=Running".to_string(),
        grace_period_seconds: 0,
    }
}

fn vm_name(vm: &VirtualMachine) -> &str {
    vm.metadata.name.as_deref().unwrap_or_default()
}

fn vmi_uid(vmi: &VirtualMachineInstance) -> &str {
    vmi.metadata.uid.as_deref().unwrap_or_default()
}

fn effective_strategy(vm: &VirtualMachine) -> Result<RunStrategy, IntentError> {
    run_strategy::effective(vm).map_err(IntentError::internal)
}

/// The `test` every write of a plan to the VM starts with: the VM's `metadata.generation` as
/// read. A plan rests on the spec it read, the run strategy above all; when a stop or start
/// lands in between, even there and back (Always → Halted → Always), the write fails and the
/// request is decided again on what is there now (Part A §22). Status writes (the controller's,
/// the queue) do not change the generation, so they cost no retry.
fn generation_test(vm: &VirtualMachine) -> Value {
    json!({"op": "test", "path": "/metadata/generation", "value": vm.metadata.generation})
}

/// `ops` (a JSON Patch array) after the [`generation_test`].
fn guarded(vm: &VirtualMachine, ops: Value) -> Value {
    let mut all = vec![generation_test(vm)];
    if let Value::Array(ops) = ops {
        all.extend(ops);
    }
    Value::Array(all)
}

/// The JSON Patch that queues `changes` on a VM of `strategy`: [`state_change_patch`], which on
/// Manual and RerunOnFailure also tests the VM's `metadata.resourceVersion` as read, right
/// after the generation (Part A §22). There the VMI is started and stopped only through the
/// queue, and the plan names the VMI it read (`Stop{uid}`) or rests on there being none; that
/// VMI is replaced or gone only through writes to the VM (a request queued, the controller's
/// pops), which move its version on, whereas the queue comes back to the value read once a
/// restart or stop in between is carried out. A stop that tested only the queue then landed
/// its `Stop` of the replaced VMI, which the controller pops, and the new one ran on; a
/// restart landed on a VM a stop had just stopped, and started it again.
fn queued_patch(
    vm: &VirtualMachine,
    strategy: RunStrategy,
    changes: &[StateChangeRequest],
) -> Result<Value, IntentError> {
    let mut patch = state_change_patch(vm, changes)?;
    let pinned = matches!(strategy, RunStrategy::Manual | RunStrategy::RerunOnFailure);
    if pinned && let Value::Array(ops) = &mut patch {
        let version = vm.metadata.resource_version.as_deref();
        let test = json!({"op": "test", "path": "/metadata/resourceVersion", "value": version});
        ops.insert(1, test);
    }
    Ok(patch)
}

/// The JSON Patch on the VM status that queues `changes` (Part B §2.2), after the
/// [`generation_test`].
///
/// - An entirely empty status: `add /status` with just the requests.
/// - Otherwise `test` the current queue (`null` when empty), then `add` the requests to an empty
///   queue, or `replace` a pending queue with a lone Stop. Anything else is already underway (500).
/// - A recorded start failure is removed, so a manual request resets the crash-loop backoff.
fn state_change_patch(
    vm: &VirtualMachine,
    changes: &[StateChangeRequest],
) -> Result<Value, IntentError> {
    const PATH: &str = "/status/stateChangeRequests";
    let Some(status) = vm.status.as_ref().filter(|s| **s != Default::default()) else {
        return Ok(guarded(
            vm,
            json!([{"op": "add", "path": "/status", "value": {"stateChangeRequests": changes}}]),
        ));
    };
    let pending = &status.state_change_requests;
    let current = if pending.is_empty() {
        Value::Null
    } else {
        json!(pending)
    };
    let mut ops = vec![json!({"op": "test", "path": PATH, "value": current})];
    if pending.is_empty() {
        ops.push(json!({"op": "add", "path": PATH, "value": changes}));
    } else if matches!(changes, [only] if only.is_stop()) {
        ops.push(json!({"op": "replace", "path": PATH, "value": changes}));
    } else {
        return Err(IntentError::internal(ALREADY_UNDERWAY));
    }
    if status.start_failure.is_some() {
        ops.push(json!({"op": "remove", "path": "/status/startFailure"}));
    }
    Ok(guarded(vm, Value::Array(ops)))
}

/// The queue without its `Start`s, as a stop leaves it; `null` when nothing is left.
fn queue_without_starts(vm: &VirtualMachine) -> Value {
    let pending = vm
        .status
        .as_ref()
        .map(|s| s.state_change_requests.as_slice())
        .unwrap_or_default();
    let kept: Vec<_> = pending.iter().filter(|r| !r.is_start()).collect();
    if kept.is_empty() {
        Value::Null
    } else {
        json!(kept)
    }
}

/// The JSON Patch on the VM status that removes every queued `Start`, tested against the queue
/// as read (after the [`generation_test`]); `None` when none is queued. The other requests (a
/// restart's `Stop`) stay.
fn drop_queued_starts_patch(vm: &VirtualMachine) -> Option<Value> {
    const PATH: &str = "/status/stateChangeRequests";
    let pending = &vm.status.as_ref()?.state_change_requests;
    if !pending.iter().any(StateChangeRequest::is_start) {
        return None;
    }
    let change = match queue_without_starts(vm) {
        Value::Null => json!({"op": "remove", "path": PATH}),
        kept => json!({"op": "replace", "path": PATH, "value": kept}),
    };
    Some(guarded(
        vm,
        json!([{"op": "test", "path": PATH, "value": pending}, change]),
    ))
}

/// A stop's JSON Patch on the VM spec (Always or Once to Halted): [`running_patch`], also
/// testing that the queue holds no `Start`, as the stop's first step left it. (The main
/// resource's patch is applied to the whole object, so it can test the status.)
fn halt_patch(vm: &VirtualMachine) -> Value {
    let mut ops = running_patch(vm, false);
    if let Value::Array(ops) = &mut ops {
        let queue = json!({"op": "test", "path": "/status/stateChangeRequests", "value": queue_without_starts(vm)});
        ops.insert(1, queue);
    }
    ops
}

/// The JSON Patch on the VM spec that switches it to Always (`running`) or Halted: on
/// `runStrategy` when that is set, else on `running` (tested against its value or `null`),
/// after the [`generation_test`].
fn running_patch(vm: &VirtualMachine, running: bool) -> Value {
    guarded(vm, running_ops(vm, running))
}

fn running_ops(vm: &VirtualMachine, running: bool) -> Value {
    match vm.spec.run_strategy.as_deref() {
        Some(old) => {
            let new = if running {
                RunStrategy::Always
            } else {
                RunStrategy::Halted
            };
            json!([
                {"op": "test", "path": "/spec/runStrategy", "value": old},
                {"op": "replace", "path": "/spec/runStrategy", "value": new.as_str()},
            ])
        }
        None => json!([
            {"op": "test", "path": "/spec/running", "value": vm.spec.running},
            {"op": "replace", "path": "/spec/running", "value": running},
        ]),
    }
}

/// The JSON Patch on the VMI that sets its termination grace period, tested against the old
/// value or `null` (the server's `replace` on a missing key acts as `add`).
fn vmi_grace_patch(vmi: &VirtualMachineInstance, grace: i64) -> Value {
    const PATH: &str = "/spec/terminationGracePeriodSeconds";
    json!([
        {"op": "test", "path": PATH, "value": vmi.spec.termination_grace_period_seconds},
        {"op": "replace", "path": PATH, "value": grace},
    ])
}

#[cfg(test)]
mod tests;
