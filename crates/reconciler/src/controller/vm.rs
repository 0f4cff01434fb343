//! The VirtualMachine controller (Part B §4, within Part A's scope): keeps each VM's VMI
//! created or deleted as its run strategy and state-change requests say, and reports status.
//!
//! The decisions are the pure functions of `run_strategy`, `status`, `vmi` and `firmware`;
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
use super::{Error, Metrics, finalizer_patch, key, now};
use crate::run_strategy::{self, RunStrategy, is_deleting, is_final};
use crate::types::{StateChangeRequest, VirtualMachine, VirtualMachineInstance};
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

/// What one reconcile found wrong, for the Failure condition.
type SyncError = Option<(String, String)>;

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

async fn stop_vmi(
    ctx: &Context,
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    sync_err: &mut SyncError,
) {
    let Some(vmi) = vmi else { return };
    if is_deleting(vmi) {
        return;
    }
    let uid = vmi.uid().unwrap_or_default();
    ctx.expectations.expect_delete(&key(vm), &uid);
    let vmis: Api<VirtualMachineInstance> =
        Api::namespaced(ctx.client.clone(), &vm.namespace().unwrap_or_default());
    ctx.metrics.write("vmi", "delete");
    match vmis.delete(&vmi.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            let note = format!(
                "Stopped the virtual machine by deleting the virtual machine instance {uid}"
            );
            event(ctx, vm, false, "SuccessfulDelete", note).await;
        }
        Err(kube::Error::Api(e)) if e.code == 404 => ctx.expectations.forget(&key(vm)),
        Err(e) => {
            ctx.expectations.forget(&key(vm));
            let msg = format!("Failure attempting to delete VMI: {e}");
            event(ctx, vm, true, "FailedDelete", msg.clone()).await;
            *sync_err = Some(("FailedDelete".into(), msg));
        }
    }
}

async fn start_vmi(ctx: &Context, vm: &VirtualMachine, paused: bool, sync_err: &mut SyncError) {
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
        }
        // The cache is behind: the next event brings the VMI.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            let msg = format!("Failure while starting VMI: {e}");
            event(
                ctx,
                vm,
                true,
                "FailedCreate",
                format!("Error creating virtual machine instance: {e}"),
            )
            .await;
            *sync_err = Some(("FailedCreate".into(), msg));
        }
    }
}

/// Seconds until a crash-looping VM may start again, if it must wait.
fn backoff_remaining(vm: &VirtualMachine) -> Option<Duration> {
    let at = vm
        .status
        .as_ref()?
        .start_failure
        .as_ref()?
        .retry_after_timestamp
        .as_deref()?;
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    let left = at.with_timezone(&Utc) - Utc::now();
    left.to_std().ok().filter(|d| !d.is_zero())
}

fn head(vm: &VirtualMachine) -> Option<&StateChangeRequest> {
    vm.status.as_ref()?.state_change_requests.first()
}

fn stop_requested(vm: &VirtualMachine, vmi: &VirtualMachineInstance) -> bool {
    head(vm).is_some_and(|r| r.is_stop() && r.uid.is_some() && r.uid == vmi.uid())
}

/// Part B §4.4 for the strategies in scope. Returns when to look again, if the VM must wait.
async fn sync_run_strategy(
    ctx: &Context,
    vm: &VirtualMachine,
    vmi: Option<&VirtualMachineInstance>,
    strategy: RunStrategy,
    sync_err: &mut SyncError,
) -> Result<Option<Duration>, Error> {
    let start_req = head(vm).is_some_and(StateChangeRequest::is_start);
    let paused = head(vm).is_some_and(StateChangeRequest::is_paused_start);
    let ns = vm.namespace().unwrap_or_default();
    match (strategy, vmi) {
        (RunStrategy::Always, Some(v)) => {
            if stop_requested(vm, v) || is_final(v) {
                stop_vmi(ctx, vm, Some(v), sync_err).await;
            }
        }
        (RunStrategy::Always, None) | (RunStrategy::RerunOnFailure, None) => {
            let wants = strategy == RunStrategy::Always
                || start_req
                || vm.status.as_ref().and_then(|s| s.run_strategy.as_deref())
                    != Some("RerunOnFailure");
            if wants {
                if let Some(wait) = backoff_remaining(vm) {
                    return Ok(Some(wait));
                }
                start_vmi(ctx, vm, paused, sync_err).await;
            }
        }
        (RunStrategy::RerunOnFailure, Some(v)) => {
            if is_deleting(v) {
                return Ok(None);
            }
            let failed = v.phase() == "Failed";
            if stop_requested(vm, v) || is_final(v) {
                stop_vmi(ctx, vm, Some(v), sync_err).await;
            }
            if failed {
                let current = vm
                    .status
                    .as_ref()
                    .map(|s| s.state_change_requests.clone())
                    .unwrap_or_default();
                let mut next = current.clone();
                next.push(StateChangeRequest::start());
                let patch = json!([
                    {"op": "test", "path": "/status/stateChangeRequests", "value": if current.is_empty() { Value::Null } else { json!(current) }},
                    {"op": "add", "path": "/status/stateChangeRequests", "value": next},
                ]);
                let vms: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &ns);
                ctx.metrics.write("vm/status", "patch");
                if let Err(e) = vms
                    .patch_status(
                        &vm.name_any(),
                        &PatchParams::default(),
                        &Patch::<()>::Json(serde_json::from_value(patch).map_err(Error::Serde)?),
                    )
                    .await
                {
                    *sync_err = Some((
                        "FailedDelete".into(),
                        format!("Failure attempting to restart VMI: {e}"),
                    ));
                }
            }
        }
        (RunStrategy::Manual, Some(v)) => {
            if stop_requested(vm, v) {
                stop_vmi(ctx, vm, Some(v), sync_err).await;
            }
        }
        (RunStrategy::Manual, None) => {
            if start_req {
                start_vmi(ctx, vm, paused, sync_err).await;
            }
        }
        (RunStrategy::Halted, Some(v)) => stop_vmi(ctx, vm, Some(v), sync_err).await,
        (RunStrategy::Halted, None) => {
            if start_req {
                // A paused start on a Halted VM turns the VM on; the Start request stays first,
                // so the next reconcile creates the VMI paused.
                let (path, old, new) = match &vm.spec.run_strategy {
                    Some(s) => ("/spec/runStrategy", json!(s), json!("Always")),
                    None => ("/spec/running", json!(vm.spec.running), json!(true)),
                };
                let patch = json!([
                    {"op": "test", "path": path, "value": old},
                    {"op": "replace", "path": path, "value": new},
                ]);
                let vms: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &ns);
                ctx.metrics.write("vm", "patch");
                if let Err(e) = vms
                    .patch(
                        &vm.name_any(),
                        &PatchParams::default(),
                        &Patch::<()>::Json(serde_json::from_value(patch).map_err(Error::Serde)?),
                    )
                    .await
                {
                    *sync_err = Some((
                        "FailedCreate".into(),
                        format!("Failure while starting VMI: {e}"),
                    ));
                }
            }
        }
        (RunStrategy::Once, None) => start_vmi(ctx, vm, paused, sync_err).await,
        (RunStrategy::Once, Some(_)) => {}
        (RunStrategy::WaitAsReceiver, _) => {
            *sync_err = Some((
                "FailedCreate".into(),
                "runStrategy WaitAsReceiver (decentralized live migration) is not supported".into(),
            ));
        }
    }
    Ok(None)
}

pub async fn reconcile(vm: Arc<VirtualMachine>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::measured(
        "vm",
        &ctx.metrics,
        &ctx.queue,
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
    let mut sync_err: SyncError = None;
    let mut requeue = None;
    let finalizers = vm.finalizers().to_vec();

    if vm.metadata.deletion_timestamp.is_some() {
        if vmi.is_none() || finalizers.iter().any(|f| f == "orphan") {
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
        stop_vmi(ctx, vm, vmi, &mut sync_err).await;
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
        if !create_expected && !delete_expected {
            match run_strategy::effective(vm) {
                Ok(strategy) => {
                    requeue = sync_run_strategy(ctx, vm, vmi, strategy, &mut sync_err).await?;
                }
                Err(e) => sync_err = Some(("FailedCreate".into(), e.to_string())),
            }
        }
    }

    let (create_expected, delete_expected) = ctx.expectations.observe(
        &key(vm),
        Observed {
            uid: vmi.and_then(|v| v.metadata.uid.as_deref()),
            deleting: vmi.is_some_and(is_deleting),
        },
    );
    let inputs = status::StatusInputs {
        now: now(),
        expectations: status::Expectations {
            create_expected,
            delete_expected,
        },
        sync_error: sync_err.clone(),
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
    if let Some((_, message)) = sync_err {
        return Err(Error::Sync(message));
    }
    Ok(match requeue {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

fn error_policy(_vm: Arc<VirtualMachine>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!("vm reconcile failed: {err}");
    Action::requeue(Duration::from_millis(500))
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
