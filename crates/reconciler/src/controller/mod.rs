//! The controller loops: VM → VMI (`vm`) and VMI → launcher Pod (`vmi`). They are thin: they
//! read caches, call the pure rules of this crate, and send the resulting writes.

pub mod expectations;
pub mod queue;
pub mod retry;
pub mod vm;
pub mod vmi;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use kube::Client;
use kube::api::{Api, Patch};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::types::VirtualMachineInstance;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// Why a reconcile failed. Shown as one sentence: the API server's message, never a dump.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", crate::kube_error::message(.0))]
    Kube(#[from] kube::Error),
    #[error("encoding: {0}")]
    Serde(serde_json::Error),
    /// What the reconcile wrote into the Failure condition, and whether trying again, with
    /// nothing changed, may help.
    #[error("{message}")]
    Sync {
        message: String,
        class: retry::ErrorClass,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// What a write was: `resource` (vm, vm/status, vmi, pod) and `verb` (create, patch, update,
/// delete).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub resource: String,
    pub verb: String,
}

/// Prometheus metrics of the controllers.
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub errors: Family<ControllerLabel, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    /// API writes (creates, updates, patches, deletes) the controllers sent.
    pub writes: Family<WriteLabel, Counter>,
    /// Objects waiting for a reconcile, by controller (see [`queue`]).
    pub queue_depth: Family<ControllerLabel, Gauge>,
    pub leader: Gauge,
    /// Which watches fail, for the daemon's /readyz and /healthz.
    pub watches: WatchHealth,
    writes_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
            }),
            writes: Family::default(),
            queue_depth: Family::default(),
            leader: Gauge::default(),
            watches: WatchHealth::default(),
            writes_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "virt_controller_reconciles",
            "Reconciles run, by controller",
            self.reconciles.clone(),
        );
        registry.register(
            "virt_controller_reconcile_errors",
            "Reconciles that failed, by controller",
            self.errors.clone(),
        );
        registry.register(
            "virt_controller_reconcile_duration_seconds",
            "Time spent in one reconcile, by controller",
            self.duration.clone(),
        );
        registry.register(
            "virt_controller_api_writes",
            "API writes sent by the controllers",
            self.writes.clone(),
        );
        registry.register(
            "virt_controller_queue_depth",
            "Objects waiting for a reconcile, by controller",
            self.queue_depth.clone(),
        );
        registry.register(
            "virt_controller_leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
    }

    pub fn reconciled(&self, controller: &str, took: Duration, failed: bool) {
        let l = ControllerLabel {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        if failed {
            self.errors.get_or_create(&l).inc();
        }
    }

    /// Counts one write of `verb` on `resource`.
    pub fn write(&self, resource: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabel {
                resource: resource.to_string(),
                verb: verb.to_string(),
            })
            .inc();
        self.writes_total.fetch_add(1, Ordering::Relaxed);
    }

    /// The queue-depth mirror of `controller`.
    pub fn queue(&self, controller: &str) -> queue::QueueDepth {
        queue::QueueDepth::new(
            self.queue_depth
                .get_or_create(&ControllerLabel {
                    controller: controller.to_string(),
                })
                .clone(),
        )
    }

    /// API writes so far (for benchmarks and tests).
    pub fn writes_so_far(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }
}

/// A watch that has been failing since `since`, and the last error it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchFailure {
    /// What fails, e.g. `VM watch`.
    pub watch: &'static str,
    pub since: Instant,
    pub error: String,
}

/// Which watches are failing, and since when. A watch fails from its first failed request (or
/// stream error) until its next request succeeds or it delivers an object. Requests count, not
/// only events, because a watch that resumes after an outage delivers nothing until something
/// changes.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing: Mutex<HashMap<&'static str, WatchFailure>>,
}

impl WatchHealth {
    pub fn succeeded(&self, watch: &'static str) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if !failing.is_empty() {
            failing.remove(watch);
        }
    }

    /// Records a failure of `watch`; it fails since its first failure after a success.
    pub fn failed(&self, watch: &'static str, error: impl std::fmt::Display) {
        let error = error.to_string();
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        failing
            .entry(watch)
            .and_modify(|f| f.error.clone_from(&error))
            .or_insert_with(|| WatchFailure {
                watch,
                since: Instant::now(),
                error,
            });
    }

    /// The failure that has lasted longest, if any watch fails.
    pub fn longest_failure(&self) -> Option<WatchFailure> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        failing.values().min_by_key(|f| f.since).cloned()
    }
}

/// A client for `watch`'s list and watch requests that records each answer in `health`: any
/// success means the API server is reachable and accepts the credentials again.
fn watch_client(client: &Client, metrics: &Arc<Metrics>, watch: &'static str) -> Client {
    let inner = client.clone();
    let metrics = metrics.clone();
    let service = tower::service_fn(move |request| {
        let inner = inner.clone();
        let metrics = metrics.clone();
        async move {
            let answer = inner.send(request).await;
            match &answer {
                Ok(response) if response.status().is_success() => metrics.watches.succeeded(watch),
                Ok(response) => metrics.watches.failed(
                    watch,
                    format!("the API server answered {}", response.status()),
                ),
                Err(e) => metrics.watches.failed(watch, e),
            }
            answer
        }
    });
    Client::new(service, client.default_namespace().to_string())
}

/// Records an event about `obj` (`Warning` or `Normal`, the reason doubling as the action), as
/// KubeVirt's controllers do; best effort, so a failure is only logged.
async fn record_event<K>(recorder: &Recorder, obj: &K, warning: bool, reason: &str, note: String)
where
    K: kube::Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::debug!("event {reason} not recorded: {e}");
    }
}

/// The current time as Kubernetes writes it in conditions (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A JSON patch that replaces the finalizers, guarded by a test of the current list.
pub fn finalizer_patch(current: &[String], next: &[String]) -> Result<Patch<()>, Error> {
    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": if current.is_empty() { Value::Null } else { json!(current) }},
        {"op": "replace", "path": "/metadata/finalizers", "value": next},
    ]);
    Ok(Patch::Json(
        serde_json::from_value(ops).map_err(Error::Serde)?,
    ))
}

/// The key both controllers keep their state under (expectations, queue): `namespace/name`.
fn queue_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{}", namespace.unwrap_or_default(), name)
}

/// [`queue_key`] of an object.
fn key<K: kube::Resource>(obj: &K) -> String {
    queue_key(
        obj.meta().namespace.as_deref(),
        obj.meta().name.as_deref().unwrap_or_default(),
    )
}

/// Runs one reconcile of `obj` for `controller`: takes it off the queue-depth mirror, then
/// counts it, its duration and its failure. A success resets the key's retry backoff.
async fn measured<K: kube::Resource>(
    controller: &str,
    metrics: &Metrics,
    queue: &queue::QueueDepth,
    backoff: &retry::Backoff,
    obj: &K,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let key = key(obj);
    queue.remove(&key);
    let result = reconcile.await;
    metrics.reconciled(controller, started.elapsed(), result.is_err());
    if result.is_ok() {
        backoff.succeeded(&key);
    }
    result
}

/// The error policy of both controllers: a transient error is retried after the key's
/// backoff, a permanent one waits for the object to change. Logged with the object's key.
fn after_error<K: kube::Resource>(
    kind: &str,
    backoff: &retry::Backoff,
    obj: &K,
    err: &Error,
) -> Action {
    let key = key(obj);
    match retry::classify(err) {
        class @ (retry::ErrorClass::Transient | retry::ErrorClass::Stale) => {
            let mut wait = backoff.failed(&key, Instant::now());
            if class == retry::ErrorClass::Stale {
                wait = wait.max(retry::STALE_RETRY_FLOOR);
            }
            tracing::warn!("{kind} {key}: {err}; retrying in {} ms", wait.as_millis());
            Action::requeue(wait)
        }
        retry::ErrorClass::Permanent => {
            backoff.succeeded(&key);
            tracing::warn!("{kind} {key}: {err}; waiting for a change");
            Action::await_change()
        }
    }
}

/// Cached objects carry no managed fields: they are the largest part of a small object and
/// no controller reads them. `None`, not `[]`: an update without them keeps the server's.
fn strip_managed_fields<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Mirrors a primary object's watch event into its controller's queue depth. After a relist,
/// keys of objects that are no longer cached are dropped (their reconciles will not run).
fn track<K>(queue: &queue::QueueDepth, cache: &Store<K>, event: &watcher::Event<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => queue.add(key(o)),
        watcher::Event::Delete(o) => queue.remove(&key(o)),
        watcher::Event::InitDone => queue.retain(|key| {
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            let target = ObjectRef::new(name);
            let target = if ns.is_empty() {
                target
            } else {
                target.within(ns)
            };
            cache.get(&target).is_some()
        }),
        watcher::Event::Init => {}
    }
}

/// A watch stream without its errors, which are logged and recorded in the watch health: the
/// watcher retries by itself, and an error reaching a controller's trigger would pause all of
/// its triggers, the shared VMI events included.
fn log_errors<K>(
    what: &'static str,
    metrics: Arc<Metrics>,
    events: impl Stream<Item = Result<K, watcher::Error>>,
) -> impl Stream<Item = Result<K, watcher::Error>> {
    events.filter_map(move |event| {
        futures::future::ready(match event {
            Ok(obj) => {
                metrics.watches.succeeded(what);
                Some(Ok(obj))
            }
            Err(e) => {
                let why = crate::kube_error::watch_message(&e);
                tracing::warn!("{what}: {why}");
                metrics.watches.failed(what, why);
                None
            }
        })
    })
}

/// Counts a reconcile that a related object's event asks for, when the primary object exists
/// (the controller skips the others).
fn track_mapped<K>(queue: &queue::QueueDepth, cache: &Store<K>, target: &ObjectRef<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    if cache.get(target).is_some() {
        queue.add(queue_key(target.namespace.as_deref(), &target.name));
    }
}

/// How many VMI events may wait for each controller before the VMI watch slows down.
const VMI_EVENT_BUFFER: usize = 64;

/// Runs the VM and VMI controllers until `shutdown` resolves. They share one VMI cache: the
/// VMI watch updates it, then hands each VMI to both controllers.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_with_launcher_args(client, metrics, concurrency, Vec::new(), shutdown).await
}

/// [`run`], adding `launcher_args` to every launcher Pod's command (e.g. `--accel kvm`).
pub async fn run_with_launcher_args(
    client: Client,
    metrics: Arc<Metrics>,
    concurrency: u16,
    launcher_args: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = (Box::pin(shutdown) as Pin<Box<dyn Future<Output = ()> + Send + Sync>>).shared();
    let (vmis, writer) = reflector::store();
    let (to_vm, for_vm) = mpsc::channel(VMI_EVENT_BUFFER);
    let (to_vmi, for_vmi) = mpsc::channel(VMI_EVENT_BUFFER);
    let vmi_queue = Arc::new(metrics.queue("vmi"));
    let api: Api<VirtualMachineInstance> = Api::all(watch_client(&client, &metrics, "VMI watch"));
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(writer);
    let queue = vmi_queue.clone();
    let cache = vmis.clone();
    let gauges = metrics.clone();
    let health = metrics.clone();
    let fan_out = async move {
        let mut watch = std::pin::pin!(watch);
        let (mut to_vm, mut to_vmi) = (Some(to_vm), Some(to_vmi));
        while let Some(event) = watch.next().await {
            let event = match event {
                Ok(event) => {
                    health.watches.succeeded("VMI watch");
                    event
                }
                Err(e) => {
                    let why = crate::kube_error::watch_message(&e);
                    tracing::warn!("VMI watch: {why}");
                    health.watches.failed("VMI watch", why);
                    continue;
                }
            };
            track(&queue, &cache, &event);
            let vmi = match event {
                watcher::Event::Apply(o)
                | watcher::Event::InitApply(o)
                | watcher::Event::Delete(o) => o,
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            // A controller that has stopped (shutdown) no longer listens; the other one still
            // gets every event until it has finished too.
            if let Some(tx) = to_vm.as_mut()
                && tx.send(vmi.clone()).await.is_err()
            {
                to_vm = None;
            }
            if let Some(tx) = to_vmi.as_mut()
                && tx.send(vmi).await.is_err()
            {
                to_vmi = None;
            }
        }
    };
    let controllers = futures::future::join(
        vm::run(
            client.clone(),
            metrics.clone(),
            concurrency,
            vmis.clone(),
            for_vm,
            shutdown.clone(),
        ),
        vmi::run(
            client,
            metrics,
            vmi::Settings {
                concurrency,
                launcher_args: launcher_args.into(),
            },
            vmis,
            for_vmi,
            vmi_queue,
            shutdown,
        ),
    );
    // Only the controllers end the run: the VMI watch goes on feeding whichever is still
    // finishing its reconciles.
    let fan_out = fan_out.then(|()| futures::future::pending::<()>());
    tokio::select! {
        _ = fan_out => {}
        _ = controllers => {}
    }
    gauges.queue("vm").clear();
    gauges.queue("vmi").clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_error_retries_sooner_than_a_permanent_one_which_waits_for_a_change() {
        let backoff = retry::Backoff::default();
        let mut vm = crate::types::VirtualMachine::new("vm1", Default::default());
        vm.metadata.namespace = Some("default".into());
        let unavailable = Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code: 503,
            message: "the server is currently unable to handle the request".into(),
            ..Default::default()
        })));
        let ms = |n| Action::requeue(Duration::from_millis(n));
        assert_eq!(after_error("VM", &backoff, &vm, &unavailable), ms(5));
        assert_eq!(after_error("VM", &backoff, &vm, &unavailable), ms(10));
        let cannot_run = Error::Sync {
            message: "runStrategy WaitAsReceiver is not supported".into(),
            class: retry::ErrorClass::Permanent,
        };
        assert_eq!(
            after_error("VM", &backoff, &vm, &cannot_run),
            Action::await_change()
        );
        assert_eq!(
            after_error("VM", &backoff, &vm, &unavailable),
            ms(5),
            "a permanent error ends the run of transient ones"
        );
    }

    #[test]
    fn a_conflict_is_retried_no_sooner_than_its_newer_version_arrives() {
        let backoff = retry::Backoff::default();
        let mut vm = crate::types::VirtualMachine::new("vm1", Default::default());
        vm.metadata.namespace = Some("default".into());
        let conflict = Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code: 409,
            message: "the object has been modified".into(),
            ..Default::default()
        })));
        for _ in 0..3 {
            assert_eq!(
                after_error("VM", &backoff, &vm, &conflict),
                Action::requeue(retry::STALE_RETRY_FLOOR)
            );
        }
        for _ in 0..4 {
            after_error("VM", &backoff, &vm, &conflict);
        }
        assert_eq!(
            after_error("VM", &backoff, &vm, &conflict),
            Action::requeue(Duration::from_millis(640)),
            "beyond the floor, conflicts back off like any transient error"
        );
    }

    #[test]
    fn a_successful_reconcile_resets_the_backoff_of_its_key() {
        let backoff = retry::Backoff::default();
        let metrics = Metrics::default();
        let queue = metrics.queue("vm");
        let mut vm = crate::types::VirtualMachine::new("vm1", Default::default());
        vm.metadata.namespace = Some("default".into());
        let timeout = Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code: 504,
            ..Default::default()
        })));
        after_error("VM", &backoff, &vm, &timeout);
        after_error("VM", &backoff, &vm, &timeout);
        let ok = async { Ok(Action::await_change()) };
        futures::executor::block_on(measured("vm", &metrics, &queue, &backoff, &vm, ok))
            .expect("the reconcile succeeds");
        assert_eq!(
            after_error("VM", &backoff, &vm, &timeout),
            Action::requeue(Duration::from_millis(5))
        );
    }

    #[test]
    fn a_watch_fails_from_its_first_failure_until_its_next_success() {
        let health = WatchHealth::default();
        assert_eq!(health.longest_failure(), None);
        health.failed("VM watch", "connection refused");
        let first = health.longest_failure().expect("the VM watch fails");
        health.failed("VMI watch", "connection refused");
        health.failed("VM watch", "401 Unauthorized");
        let longest = health.longest_failure().expect("two watches fail");
        assert_eq!(
            (longest.watch, longest.since, longest.error.as_str()),
            ("VM watch", first.since, "401 Unauthorized"),
            "the oldest failure, with its newest error"
        );
        health.succeeded("VM watch");
        assert_eq!(health.longest_failure().map(|f| f.watch), Some("VMI watch"));
        health.succeeded("VMI watch");
        assert_eq!(health.longest_failure(), None);
    }
}
