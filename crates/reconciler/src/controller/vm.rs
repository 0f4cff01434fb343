//! The VirtualMachine controller (Part B §4, within Part A's scope): keeps each VM's VMI
//! created or deleted as its run strategy and state-change requests say, and reports status.
//!
//! The decisions are the pure functions of `decide::vm`, `status`, `vmi` and `firmware`;
//! this module fetches, calls them, and sends the writes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::expectations::{Expectations, Observed};
use super::queue::QueueDepth;
use super::retry::{Backoff, ErrorClass, classify_kube};
use super::{Error, Metrics, finalizer_patch, key, now};
use crate::decide::vm::{Decision, FailedWrite, ORPHAN_FINALIZER, decide};
use crate::run_strategy::{is_deleting, is_final};
use crate::types::{VirtualMachine, VirtualMachineInstance};
use crate::{firmware, status, vmi as vmi_rules};

/// The finalizer the VM controller keeps on VMs and on the VMIs it creates.
pub const FINALIZER: &str = "kubevirt.io/virtualMachineControllerFinalize";

pub struct Context {
    pub client: Client,
    pub vmis: Store<VirtualMachineInstance>,
    pub expectations: Expectations,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub queue: Arc<QueueDepth>,
    pub backoff: Backoff,
}

fn controller_of(vmi: &VirtualMachineInstance) -> Option<&OwnerReference> {
    vmi.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

async fn event(ctx: &Context, vm: &VirtualMachine, warning: bool, reason: &str, note: String) {
    super::record_event(&ctx.recorder, vm, warning, reason, note).await;
}

/// What one reconcile found wrong: the Failure condition's reason and message, and whether
/// trying again may help without a change to the VM.
struct SyncFailure {
    reason: String,
    message: String,
    class: ErrorClass,
}

impl SyncFailure {
    fn of(reason: &str, message: String, cause: &kube::Error) -> Self {
        SyncFailure {
            reason: reason.to_string(),
            message,
            class: classify_kube(cause),
        }
    }
}

/// The clock for the decision, to the nanosecond: it sets how long a backoff waits.
fn precise_now() -> String {
    Utc::now().to_rfc3339()
}

/// Claims the cached VMI of the same name (Part B §4.2 step 3): ours, someone else's (ignored),
/// or an orphan to adopt.
async fn claim(
    ctx: &Context,
    vm: &VirtualMachine,
    cached: Option<Arc<VirtualMachineInstance>>,
) -> Result<Option<Arc<VirtualMachineInstance>>, Error> {
    let Some(vmi) = cached else {
        return Ok(None);
    };
    let vm_uid = vm.uid().unwrap_or_default();
    match controller_of(&vmi) {
        Some(r) if r.uid == vm_uid => Ok(Some(vmi)),
        Some(_) => Ok(None),
        None => {
            if vm.metadata.deletion_timestamp.is_some() || is_deleting(&vmi) {
                return Ok(None);
            }
            // A fresh read: never adopt for a VM that is gone or was replaced.
            let vms: Api<VirtualMachine> =
                Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
            let fresh = vms.get_opt(&vm.name_any()).await?;
            if fresh.is_none_or(|f| f.uid() != vm.uid() || f.metadata.deletion_timestamp.is_some())
            {
                return Ok(None);
            }
            let patch = json!({"metadata": {
                "ownerReferences": [vmi_rules::owner_reference(vm)],
                "uid": vmi.uid(),
            }});
            let vmis: Api<VirtualMachineInstance> =
                Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
            ctx.metrics.write("vmi", "patch");
            let adopted = vmis
                .patch(
                    &vmi.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            Ok(Some(Arc::new(adopted)))
        }
    }
}

/// Deletes the VM's VMI of this UID, as it was at `version`; a failure is returned for the
/// Failure condition.
///
/// The preconditions make the delete stand only on what it was decided on: the cache may
/// still show the VMI owned by a VM being deleted after the garbage collector orphaned it (and
/// removed the VM's `orphan` finalizer, the only other sign of an orphaning delete).
async fn delete_vmi(
    ctx: &Context,
    vm: &VirtualMachine,
    uid: &str,
    version: Option<&str>,
) -> Deleted {
    ctx.expectations.expect_delete(&key(vm), uid);
    let vmis: Api<VirtualMachineInstance> =
        Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    ctx.metrics.write("vmi", "delete");
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.to_string()),
            resource_version: version.map(str::to_string),
        }),
        ..DeleteParams::default()
    };
    // The VMI has the VM's name (see `claim`).
    match vmis.delete(&vm.name_any(), &params).await {
        Ok(_) => {
            let note = format!(
                "Stopped the virtual machine by deleting the virtual machine instance {uid}"
            );
            event(ctx, vm, false, "SuccessfulDelete", note).await;
            Deleted::Done
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            ctx.expectations.forget(&key(vm));
            Deleted::Done
        }
        // Changed since the decision: its event brings the next one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            ctx.expectations.forget(&key(vm));
            Deleted::Stale
        }
        Err(e) => {
            ctx.expectations.forget(&key(vm));
            let failed = FailedWrite::Delete;
            let msg = failed.message(&crate::kube_error::message(&e));
            event(ctx, vm, true, "FailedDelete", msg.clone()).await;
            Deleted::Failed(SyncFailure::of(failed.reason(), msg, &e))
        }
    }
}

/// What became of a VMI deletion.
enum Deleted {
    Done,
    /// Not sent: the VMI changed since the decision was made.
    Stale,
    Failed(SyncFailure),
}

/// Creates the VM's VMI; a failure is returned for the Failure condition.
async fn create_vmi(ctx: &Context, vm: &VirtualMachine, paused: bool) -> Option<SyncFailure> {
    let vmi = vmi_rules::build_vmi(vm, paused);
    let vmis: Api<VirtualMachineInstance> =
        Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    ctx.metrics.write("vmi", "create");
    match vmis.create(&PostParams::default(), &vmi).await {
        Ok(created) => {
            ctx.expectations
                .expect_create(&key(vm), &created.uid().unwrap_or_default());
            let note = format!(
                "Started the virtual machine by creating the new virtual machine instance {}",
                created.name_any()
            );
            event(ctx, vm, false, "SuccessfulCreate", note).await;
            None
        }
        // The cache is behind: the next event brings the VMI.
        Err(kube::Error::Api(e)) if e.code == 409 => None,
        Err(e) => {
            let message = crate::kube_error::message(&e);
            let note = format!("Error creating virtual machine instance: {message}");
            event(ctx, vm, true, "FailedCreate", note).await;
            let failed = FailedWrite::Start;
            Some(SyncFailure::of(
                failed.reason(),
                failed.message(&message),
                &e,
            ))
        }
    }
}

/// Sends a JSON patch to the VM (`status` or not); a failure is returned for the Failure
/// condition, worded as `failed` says.
async fn patch_vm(
    ctx: &Context,
    vm: &VirtualMachine,
    on_status: bool,
    patch: Value,
    failed: FailedWrite,
) -> Result<Option<SyncFailure>, Error> {
    let vms: Api<VirtualMachine> =
        Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    let patch = Patch::<()>::Json(serde_json::from_value(patch).map_err(Error::Serde)?);
    let params = PatchParams::default();
    let sent = if on_status {
        ctx.metrics.write("vm/status", "patch");
        vms.patch_status(&vm.name_any(), &params, &patch).await
    } else {
        ctx.metrics.write("vm", "patch");
        vms.patch(&vm.name_any(), &params, &patch).await
    };
    Ok(sent.err().map(|e| {
        let msg = failed.message(&crate::kube_error::message(&e));
        SyncFailure::of(failed.reason(), msg, &e)
    }))
}

/// Executes the decision; returns what failed, if anything, and when to look again.
/// `vmi_version` is the resourceVersion of the VMI the decision was made on.
async fn execute(
    ctx: &Context,
    vm: &VirtualMachine,
    decision: Decision,
    vmi_version: Option<&str>,
) -> Result<(Option<SyncFailure>, Option<Duration>), Error> {
    let failure = match decision {
        Decision::Nothing => None,
        Decision::Wait(wait) => return Ok((None, Some(wait))),
        Decision::CreateVmi { paused } => create_vmi(ctx, vm, paused).await,
        Decision::DeleteVmi { uid } => match delete_vmi(ctx, vm, &uid, vmi_version).await {
            Deleted::Failed(failed) => Some(failed),
            Deleted::Done | Deleted::Stale => None,
        },
        // As KubeVirt: a failed delete is reported, and no Start is queued for it (nor for
        // one not sent).
        Decision::RerunVmi { uid, queue_start } => {
            match delete_vmi(ctx, vm, &uid, vmi_version).await {
                Deleted::Failed(failed) => Some(failed),
                Deleted::Stale => None,
                Deleted::Done => {
                    patch_vm(ctx, vm, true, queue_start, FailedWrite::QueueRerunStart).await?
                }
            }
        }
        Decision::PatchVmSpec { patch } => {
            patch_vm(ctx, vm, false, patch, FailedWrite::Start).await?
        }
        Decision::Fail { reason, message } => Some(SyncFailure {
            reason,
            message,
            class: ErrorClass::Permanent,
        }),
    };
    Ok((failure, None))
}

pub async fn reconcile(vm: Arc<VirtualMachine>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::measured(
        "vm",
        &ctx.metrics,
        &ctx.queue,
        &ctx.backoff,
        &*vm,
        reconcile_inner(&vm, &ctx),
    )
    .await
}

async fn reconcile_inner(vm: &VirtualMachine, ctx: &Context) -> Result<Action, Error> {
    // A cache that has not listed yet looks empty: acting on it would create a second
    // launcher Pod or VMI, or fail a running one, after every restart or failover.
    if futures::FutureExt::now_or_never(ctx.vmis.wait_until_ready()).is_none() {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = vm.namespace().unwrap_or_default();
    let name = vm.name_any();
    let vms: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &ns);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let cached = ctx.vmis.get(&ObjectRef::new(&name).within(&ns));
    let vmi = claim(ctx, vm, cached).await?;
    let vmi = vmi.as_deref();
    let (create_expected, delete_expected) = ctx.expectations.observe(
        &key(vm),
        Observed {
            uid: vmi.and_then(|v| v.metadata.uid.as_deref()),
            deleting: vmi.is_some_and(is_deleting),
        },
    );
    let finalizers = vm.finalizers().to_vec();

    if vm.metadata.deletion_timestamp.is_some() {
        if vmi.is_none() || finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            if finalizers.iter().any(|f| f == FINALIZER) {
                let kept: Vec<String> = finalizers
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .cloned()
                    .collect();
                ctx.metrics.write("vm", "patch");
                vms.patch(
                    &name,
                    &PatchParams::default(),
                    &finalizer_patch(&finalizers, &kept)?,
                )
                .await?;
            }
            return Ok(Action::await_change());
        }
    } else {
        // One patch adds the finalizer and the firmware UUID when either is missing.
        let mut ops: Vec<Value> = Vec::new();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            let mut with = finalizers.clone();
            with.push(FINALIZER.to_string());
            ops.push(json!({"op": "test", "path": "/metadata/finalizers", "value": if finalizers.is_empty() { Value::Null } else { json!(finalizers) }}));
            ops.push(json!({"op": "add", "path": "/metadata/finalizers", "value": with}));
        }
        if let Some(Value::Array(more)) = firmware::firmware_patch(vm) {
            ops.extend(more);
        }
        if !ops.is_empty() {
            ctx.metrics.write("vm", "patch");
            vms.patch(
                &name,
                &PatchParams::default(),
                &Patch::<()>::Json(
                    serde_json::from_value(Value::Array(ops)).map_err(Error::Serde)?,
                ),
            )
            .await?;
            // The update event brings the VM back with both in place.
            return Ok(Action::await_change());
        }
    }
    let pending = status::PendingVmiWrites {
        create_expected,
        delete_expected,
    };
    let decision = decide(vm, vmi, pending, &precise_now());
    let vmi_version = vmi.and_then(|v| v.metadata.resource_version.as_deref());
    let (sync_err, requeue) = execute(ctx, vm, decision, vmi_version).await?;

    let (create_expected, delete_expected) = ctx.expectations.observe(
        &key(vm),
        Observed {
            uid: vmi.and_then(|v| v.metadata.uid.as_deref()),
            deleting: vmi.is_some_and(is_deleting),
        },
    );
    let inputs = status::StatusInputs {
        now: now(),
        expectations: status::PendingVmiWrites {
            create_expected,
            delete_expected,
        },
        sync_error: sync_err
            .as_ref()
            .map(|f| (f.reason.clone(), f.message.clone())),
    };
    // The reconcile that just created the VMI leaves the status to the next one, which the
    // VMI's arrival triggers at once: one write per start saved.
    if create_expected && vmi.is_none() && sync_err.is_none() {
        return Ok(Action::await_change());
    }
    let next = status::compute_status(vm, vmi, inputs, |max| {
        if max <= 0 {
            0
        } else {
            rand::random_range(0..=max)
        }
    });
    if vm.status.as_ref() != Some(&next) {
        let mut updated = vm.clone();
        updated.status = Some(next);
        ctx.metrics.write("vm/status", "update");
        vms.replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }
    // A final VMI gives up the VM controller's finalizer, so that it can go.
    if let Some(v) = vmi
        && is_final(v)
        && v.finalizers().iter().any(|f| f == FINALIZER)
    {
        let kept: Vec<String> = v
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        ctx.metrics.write("vmi", "patch");
        vmis.patch(
            &v.name_any(),
            &PatchParams::default(),
            &finalizer_patch(v.finalizers(), &kept)?,
        )
        .await?;
    }
    if let Some(f) = sync_err {
        return Err(Error::Sync {
            message: f.message,
            class: f.class,
        });
    }
    Ok(match requeue {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

fn error_policy(vm: Arc<VirtualMachine>, err: &Error, ctx: Arc<Context>) -> Action {
    super::after_error("VM", &ctx.backoff, &*vm, err)
}

/// Runs the VM controller until `shutdown` resolves. `vmis` is the VMI cache shared with the
/// VMI controller, and `vmi_events` the VMIs it has just stored (applied or deleted).
pub(super) async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    concurrency: u16,
    vmis: Store<VirtualMachineInstance>,
    vmi_events: impl Stream<Item = VirtualMachineInstance> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let queue = Arc::new(metrics.queue("vm"));
    let (reader, writer) = reflector::store();
    let vm_api: Api<VirtualMachine> = Api::all(super::watch_client(&client, &metrics, "VM watch"));
    let vm_queue = queue.clone();
    let cached_vms = reader.clone();
    let vm_events = super::log_errors(
        "VM watch",
        metrics.clone(),
        watcher(vm_api, watcher::Config::default())
            .default_backoff()
            .modify(super::strip_managed_fields)
            .reflect(writer)
            .inspect_ok(move |event| super::track(&vm_queue, &cached_vms, event))
            .touched_objects(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        vmis,
        expectations: Expectations::default(),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "virtualmachine-controller".into(),
                instance: None,
            },
        ),
        metrics,
        queue: queue.clone(),
        backoff: Backoff::default(),
    });
    let vms = reader.clone();
    Controller::for_stream(vm_events, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(
            vmi_events.map(Ok::<_, watcher::Error>),
            move |vmi: VirtualMachineInstance| {
                // Same-name VMs own (or may adopt) the VMI.
                let vm =
                    ObjectRef::new(&vmi.name_any()).within(&vmi.namespace().unwrap_or_default());
                super::track_mapped(&queue, &vms, &vm);
                Some(vm)
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
