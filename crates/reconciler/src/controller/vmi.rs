//! The VirtualMachineInstance controller (Part A §6): one virt-launcher Pod per VMI, the Pod's
//! state mapped onto the VMI's status, and deletion with the VMI's grace period.
//!
//! The decisions are `decide::vmi`'s; this module fetches, calls it, and sends the writes.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::expectations::{Expectations, Observed};
use super::queue::QueueDepth;
use super::retry::Backoff;
use super::{Error, Metrics, finalizer_patch, key, now};
use crate::decide::vmi::{Decision, decide_on_node, newest_pod};
use crate::types::VirtualMachineInstance;
use crate::vmi as vmi_rules;

/// The finalizer that keeps a VMI until its launcher Pod is gone.
pub const FINALIZER: &str = crate::vmi::VMI_CONTROLLER_FINALIZER;

pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    /// The Nodes, to tell those served by virt-handler (their labels only).
    pub nodes: Store<Node>,
    pub expectations: Expectations,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub queue: Arc<QueueDepth>,
    pub backoff: Backoff,
    /// Added to every launcher Pod's command (the cluster's launcher settings).
    pub launcher_args: Arc<[String]>,
}

async fn event(
    ctx: &Context,
    vmi: &VirtualMachineInstance,
    warning: bool,
    reason: &str,
    note: String,
) {
    super::record_event(&ctx.recorder, vmi, warning, reason, note).await;
}

/// The launcher Pods of a VMI in the cache.
fn launcher_pods(pods: &Store<Pod>, vmi: &VirtualMachineInstance) -> Vec<Arc<Pod>> {
    let ns = vmi.namespace();
    pods.state_filter(|p| p.namespace() == ns && vmi_rules::is_launcher_pod_of(p, vmi))
}

pub async fn reconcile(
    vmi: Arc<VirtualMachineInstance>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    super::measured(
        "vmi",
        &ctx.metrics,
        &ctx.queue,
        &ctx.backoff,
        &*vmi,
        reconcile_inner(&vmi, &ctx),
    )
    .await
}

async fn reconcile_inner(vmi: &VirtualMachineInstance, ctx: &Context) -> Result<Action, Error> {
    // A cache that has not listed yet looks empty: acting on it would create a second
    // launcher Pod or VMI, or fail a running one, after every restart or failover.
    if futures::FutureExt::now_or_never(ctx.pods.wait_until_ready()).is_none()
        || futures::FutureExt::now_or_never(ctx.nodes.wait_until_ready()).is_none()
    {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = vmi.namespace().unwrap_or_default();
    let name = vmi.name_any();
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let cached = launcher_pods(&ctx.pods, vmi);
    let pods: Vec<&Pod> = cached.iter().map(|p| p.as_ref()).collect();
    let (create_expected, _) = ctx.expectations.observe(
        &key(vmi),
        Observed {
            uid: newest_pod(&pods).and_then(|p| p.metadata.uid.as_deref()),
            deleting: false,
        },
    );
    let on_handler_node = newest_pod(&pods)
        .and_then(|p| p.spec.as_ref()?.node_name.clone())
        .and_then(|node| ctx.nodes.get(&ObjectRef::new(&node)))
        .is_some_and(|node| vmi_rules::node_has_handler(&node));
    match decide_on_node(vmi, &pods, create_expected, on_handler_node, &now()) {
        Decision::Nothing => {}
        Decision::AddFinalizer => {
            let finalizers = vmi.finalizers();
            let mut with = finalizers.to_vec();
            with.push(FINALIZER.to_string());
            ctx.metrics.write("vmi", "patch");
            vmis.patch(
                &name,
                &kube::api::PatchParams::default(),
                &finalizer_patch(finalizers, &with)?,
            )
            .await?;
        }
        Decision::CreatePod(mut launcher) => {
            vmi_rules::with_launcher_args(&mut launcher, &ctx.launcher_args);
            ctx.metrics.write("pod", "create");
            match pod_api.create(&PostParams::default(), &launcher).await {
                Ok(created) => {
                    ctx.expectations
                        .expect_create(&key(vmi), &created.uid().unwrap_or_default());
                    let note = format!("Created virtual machine pod {}", created.name_any());
                    event(ctx, vmi, false, "SuccessfulCreate", note).await;
                }
                // The name is the VMI's own (`launcher_pod_name`): an earlier create whose
                // answer was lost made it, and its watch event brings the next reconcile.
                Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {}
                Err(e) => {
                    let note = format!("Error creating pod: {}", crate::kube_error::message(&e));
                    event(ctx, vmi, true, "FailedCreate", note).await;
                    return Err(e.into());
                }
            }
        }
        Decision::DeletePods {
            names,
            grace_period_seconds,
        } => {
            for pod in names {
                let note = format!("Deleted virtual machine pod {pod}");
                event(ctx, vmi, false, "SuccessfulDelete", note).await;
                ctx.metrics.write("pod", "delete");
                let dp = DeleteParams {
                    grace_period_seconds: Some(grace_period_seconds),
                    ..Default::default()
                };
                match pod_api.delete(&pod, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Decision::Release(update) => {
            if let Some(next) = update {
                ctx.metrics.write("vmi", "update");
                vmis.replace(&name, &PostParams::default(), &next).await?;
            }
            ctx.expectations.forget(&key(vmi));
        }
        Decision::UpdateStatus(next) => {
            ctx.metrics.write("vmi", "update");
            vmis.replace(&name, &PostParams::default(), &next).await?;
        }
    }
    Ok(Action::await_change())
}

fn error_policy(vmi: Arc<VirtualMachineInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    super::after_error("VMI", &ctx.backoff, &*vmi, err)
}

/// How the VMI controller runs.
pub(super) struct Settings {
    /// Reconciles at once.
    pub concurrency: u16,
    /// Added to every launcher Pod's command (the cluster's launcher settings).
    pub launcher_args: Arc<[String]>,
}

/// Runs the VMI controller until `shutdown` resolves. `vmis` is the VMI cache shared with the
/// VM controller, `vmi_events` the VMIs it has just stored, and `queue` the queue-depth mirror
/// that the caller keeps up to date for them.
pub(super) async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    settings: Settings,
    vmis: Store<VirtualMachineInstance>,
    vmi_events: impl Stream<Item = VirtualMachineInstance> + Send + 'static,
    queue: Arc<QueueDepth>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Settings {
        concurrency,
        launcher_args,
    } = settings;
    let (reader, writer) = reflector::store();
    let pod_api: Api<Pod> = Api::all(super::watch_client(&client, &metrics, "launcher Pod watch"));
    let pod_events = super::log_errors(
        "launcher Pod watch",
        metrics.clone(),
        watcher(
            pod_api,
            watcher::Config::default().labels(&vmi_rules::all_launcher_pods_selector()),
        )
        .default_backoff()
        .modify(strip_pod)
        .reflect(writer)
        .touched_objects(),
    );
    // Nodes only change which rule a VMI follows; a watch (no reads per reconcile) keeps them.
    let (node_reader, node_writer) = reflector::store();
    let node_api: Api<Node> = Api::all(super::watch_client(&client, &metrics, "Node watch"));
    let node_events = super::log_errors(
        "Node watch",
        metrics.clone(),
        watcher(node_api, watcher::Config::default())
            .default_backoff()
            .modify(strip_node)
            .reflect(node_writer)
            .touched_objects(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: reader,
        nodes: node_reader,
        expectations: Expectations::default(),
        metrics,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "virtualmachineinstance-controller".into(),
                instance: None,
            },
        ),
        queue: queue.clone(),
        backoff: Backoff::default(),
        launcher_args,
    });
    let cached = vmis.clone();
    Controller::for_stream(vmi_events.map(Ok::<_, watcher::Error>), vmis)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(pod_events, move |pod: Pod| {
            let owner = pod
                .metadata
                .owner_references
                .as_ref()?
                .iter()
                .find(|r| r.kind == "VirtualMachineInstance")?
                .name
                .clone();
            let vmi = ObjectRef::new(&owner).within(&pod.namespace().unwrap_or_default());
            super::track_mapped(&queue, &cached, &vmi);
            Some(vmi)
        })
        .watches_stream(node_events, |_: Node| std::iter::empty::<ObjectRef<_>>())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Keeps of a launcher Pod only what the VMI status is made from: metadata without managed
/// fields and annotations, `spec.nodeName`, and the status.
fn strip_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        node_name,
        ..Default::default()
    });
}

/// Keeps of a Node only its name and labels (whether a virt-handler serves it).
fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    node.spec = None;
    node.status = None;
}

/// Lists a VMI's launcher pods without a cache (for one-off tools and tests).
pub async fn list_launcher_pods(
    client: &Client,
    vmi: &VirtualMachineInstance,
) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &vmi.namespace().unwrap_or_default());
    let lp = ListParams::default().labels(&vmi_rules::launcher_pod_selector(vmi));
    Ok(api.list(&lp).await?.items)
}
