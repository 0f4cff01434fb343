//! What the VM controller does about a VM's VMI (Part B §4.4), as a pure function of the VM,
//! its VMI, the controller's pending work and the clock.

use std::time::Duration;

use serde_json::{Value, json};

use crate::run_strategy::{self, RunStrategy, is_deleting, is_final};
use crate::status::{self, PendingVmiWrites};
use crate::types::{StateChangeRequest, VirtualMachine, VirtualMachineInstance};

/// The finalizer that keeps a VM's VMI when the VM is deleted with `propagationPolicy: Orphan`.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The message of a VM whose run strategy is `WaitAsReceiver`.
pub const WAIT_AS_RECEIVER_UNSUPPORTED: &str =
    "runStrategy WaitAsReceiver (decentralized live migration) is not supported";

/// A write of the VM controller that failed, and the `Failure` condition it leaves: KubeVirt's
/// reason and words for each (Part B §4.4–§4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedWrite {
    /// Creating the VMI, or turning a Halted VM on for a paused start.
    Start,
    /// Deleting the VMI.
    Delete,
    /// RerunOnFailure queueing a Start after deleting its Failed VMI.
    QueueRerunStart,
}

impl FailedWrite {
    /// The condition's reason.
    pub fn reason(self) -> &'static str {
        match self {
            FailedWrite::Start => status::reason::FAILED_CREATE,
            FailedWrite::Delete | FailedWrite::QueueRerunStart => status::reason::FAILED_DELETE,
        }
    }

    /// The condition's message for the API server's `error`.
    pub fn message(self, error: &str) -> String {
        let what = match self {
            FailedWrite::Start => "Failure while starting VMI",
            FailedWrite::Delete => "Failure attempting to delete VMI",
            FailedWrite::QueueRerunStart => "failed to patch VM with start action",
        };
        format!("{what}: {error}")
    }
}

/// The one thing the VM controller does in a reconcile, before it writes the status.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do until the VM or its VMI changes.
    Nothing,
    /// Create the VMI ([`crate::vmi::build_vmi`]), paused when the Start request asks so.
    CreateVmi { paused: bool },
    /// Delete the VMI of this UID.
    DeleteVmi { uid: String },
    /// RerunOnFailure after a failure: delete the failed VMI of this UID, then (only if the
    /// delete did not fail, as in KubeVirt) queue a Start with `queue_start`, a JSON patch on
    /// the VM status, so that a new VMI starts.
    RerunVmi { uid: String, queue_start: Value },
    /// A Start on a Halted VM: turn the VM on with this JSON patch on the VM. The Start request
    /// stays queued, so the next reconcile creates the VMI (paused, if it asks so).
    PatchVmSpec { patch: Value },
    /// A start must wait for the crash-loop backoff: look again after this long.
    Wait(Duration),
    /// The VM cannot run as it is: a `Failure` condition with this reason and message, until
    /// the VM changes.
    Fail { reason: String, message: String },
}

fn delete(vmi: &VirtualMachineInstance) -> Decision {
    if is_deleting(vmi) {
        return Decision::Nothing;
    }
    Decision::DeleteVmi {
        uid: vmi.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Creates the VMI unless the crash-loop backoff says to wait.
fn start_after_backoff(vm: &VirtualMachine, now: &str) -> Decision {
    match status::start_backoff_remaining(vm, now) {
        Some(wait) => Decision::Wait(wait),
        None => create(vm),
    }
}

fn create(vm: &VirtualMachine) -> Decision {
    Decision::CreateVmi {
        paused: status::has_start_paused_request(vm),
    }
}

/// `[test the queue, add the queue + Start]` on the VM status: a concurrent change to the queue
/// makes the patch fail rather than lose a request.
fn queue_start(vm: &VirtualMachine) -> Value {
    let current = vm
        .status
        .as_ref()
        .map(|s| s.state_change_requests.clone())
        .unwrap_or_default();
    let mut next = current.clone();
    next.push(StateChangeRequest::start());
    json!([
        {"op": "test", "path": "/status/stateChangeRequests", "value": if current.is_empty() { Value::Null } else { json!(current) }},
        {"op": "add", "path": "/status/stateChangeRequests", "value": next},
    ])
}

/// `running: true` or `runStrategy: Always` in place of what the VM has, guarded by a test.
fn turn_on(vm: &VirtualMachine) -> Value {
    let (path, old, new) = match &vm.spec.run_strategy {
        Some(s) => ("/spec/runStrategy", json!(s), json!("Always")),
        None => ("/spec/running", json!(vm.spec.running), json!(true)),
    };
    json!([
        {"op": "test", "path": path, "value": old},
        {"op": "replace", "path": path, "value": new},
    ])
}

/// What the VM controller does about `vm`'s VMI (Part B §4.4 for the run strategies in scope).
///
/// `vmi` is the VMI this VM controls (after adoption), `expectations` the VMI creations and
/// deletions it has issued and not seen yet, and `now` the clock (RFC 3339, sub-second
/// precision welcome: it sets how long [`Decision::Wait`] waits).
///
/// - A VM being deleted deletes its VMI (unless it orphans it).
/// - While a creation or deletion is pending, nothing: the cache may be behind.
/// - Otherwise its run strategy decides, with the head of the request queue: `Stop{uid}` of
///   this VMI, `Start` and `Start{paused}` (Part B §4.4's table).
pub fn decide(
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    expectations: PendingVmiWrites,
    now: &str,
) -> Decision {
    if vm.metadata.deletion_timestamp.is_some() {
        let orphans = vm
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == ORPHAN_FINALIZER);
        return match vmi {
            Some(v) if !orphans => delete(v),
            _ => Decision::Nothing,
        };
    }
    if expectations.create_expected || expectations.delete_expected {
        return Decision::Nothing;
    }
    let strategy = match run_strategy::effective(vm) {
        Ok(s) => s,
        Err(e) => {
            return Decision::Fail {
                reason: status::reason::FAILED_CREATE.into(),
                message: e.to_string(),
            };
        }
    };
    let start_requested = status::has_start_request(vm);
    let stop_requested = |v: &VirtualMachineInstance| status::has_stop_request_for(vm, v);
    match (strategy, vmi) {
        (RunStrategy::Always, Some(v)) if stop_requested(v) || is_final(v) => delete(v),
        (RunStrategy::Always, None) => start_after_backoff(vm, now),
        (RunStrategy::RerunOnFailure, None) => {
            // A RerunOnFailure VM that has run and was stopped stays stopped until a Start.
            let stopped_by_user = vm.status.as_ref().and_then(|s| s.run_strategy.as_deref())
                == Some(RunStrategy::RerunOnFailure.as_str());
            if start_requested || !stopped_by_user {
                start_after_backoff(vm, now)
            } else {
                Decision::Nothing
            }
        }
        (RunStrategy::RerunOnFailure, Some(v)) if is_deleting(v) => Decision::Nothing,
        (RunStrategy::RerunOnFailure, Some(v)) if v.phase() == "Failed" => Decision::RerunVmi {
            uid: v.metadata.uid.clone().unwrap_or_default(),
            queue_start: queue_start(vm),
        },
        (RunStrategy::RerunOnFailure, Some(v)) if stop_requested(v) || is_final(v) => delete(v),
        (RunStrategy::Manual, Some(v)) if stop_requested(v) => delete(v),
        (RunStrategy::Manual, None) if start_requested => create(vm),
        (RunStrategy::Halted, Some(v)) => delete(v),
        (RunStrategy::Halted, None) if start_requested => {
            Decision::PatchVmSpec { patch: turn_on(vm) }
        }
        (RunStrategy::Once, None) => create(vm),
        (RunStrategy::WaitAsReceiver, _) => Decision::Fail {
            reason: status::reason::FAILED_CREATE.into(),
            message: WAIT_AS_RECEIVER_UNSUPPORTED.into(),
        },
        _ => Decision::Nothing,
    }
}

#[cfg(test)]
mod tests;
