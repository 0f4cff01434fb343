//! localkube's node, in the spirit of kwok. It is an ordinary API client, so it works against
//! any cluster: it registers a Ready Node, renews its Lease in `kube-node-lease` and posts its
//! heartbeat every 10 s (as a kubelet does), binds unscheduled pods to it, and runs the pods
//! bound to it in one of two ways.
//!
//! A pod whose container images are all mapped to host executables (`--image IMAGE=PATH`, see
//! [`runtime`]) runs as real processes, under the node's root directory ([`layout`]), with logs
//! and port-forward served by the node's kubelet endpoint ([`kubelet`], [`port_forward`]). Its
//! pod IP is on loopback (`127.R.x.y`, R random per node: [`rules::loopback_pod_ip`]), so what
//! it listens on there is reachable from the host.
//!
//! Every other pod is simulated: it moves to Running after a delay, ends when its simulated
//! containers exit, and is removed after its grace period (capped by the node's shutdown time)
//! once deleted.
//!
//! Simulated containers "exit" when the pod carries the annotation `localkube.dev/exit-code: "N"`:
//! they run for `localkube.dev/run-for` (a duration, default 0) and then end with code N.
//! With restartPolicy Never (or OnFailure and code 0) the pod ends Succeeded or Failed;
//! otherwise the containers restart, as a kubelet would.
//!
//! A pod annotated `localkube.dev/fail-before-running: "true"` is bound but never reported
//! Running: when it would start, it ends `Failed` at once, its containers terminated with
//! reason `StartError` (like a container that cannot be created). This simulates workloads
//! that crash-loop before they ever run.

pub mod kubelet;
pub mod layout;
pub mod port_forward;
mod retry;
pub mod rules;
pub mod runtime;
mod spawn;
pub mod spdy;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub const EXIT_CODE_ANNOTATION: &str = "localkube.dev/exit-code";
pub const RUN_FOR_ANNOTATION: &str = "localkube.dev/run-for";
/// `"true"`: the pod fails when it would start, without ever being Running.
pub const FAIL_BEFORE_RUNNING_ANNOTATION: &str = "localkube.dev/fail-before-running";
const MANAGER: &str = "localkube-node";

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// How long a bound pod takes to become Running.
    pub start_delay: Duration,
    /// The longest a deleted simulated pod stays Terminating.
    pub shutdown_time: Duration,
    /// Images run as processes: image reference (tag and registry optional) to host executable.
    pub images: Vec<(String, PathBuf)>,
    /// Where hostPath volumes and pod directories live; None: a temporary directory, removed
    /// when the node stops.
    pub node_root: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "localkube-node".into(),
            start_delay: Duration::from_secs(1),
            shutdown_time: Duration::from_secs(1),
            images: Vec::new(),
            node_root: None,
        }
    }
}

struct NodeState {
    client: Client,
    cfg: NodeConfig,
    /// The next simulated pod's IP (10.244.x.y).
    next_ip: AtomicU32,
    /// Process pods' IPs: `127.{loopback_network}.x.y`, see [`rules::loopback_pod_ip`].
    loopback_network: u8,
    next_loopback_ip: AtomicU32,
    /// Pods (by uid and step) with a timer in flight.
    in_flight: Mutex<HashSet<(String, &'static str)>>,
    /// The grace period of each terminating pod (by uid), which a second delete may shorten.
    terminating: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    scheduler: Recorder,
    kubelet: Recorder,
    runtime: Arc<runtime::Runtime>,
    /// The Node's `spec.unschedulable` as last seen: pods wait unbound while it is set.
    cordoned: AtomicBool,
}

/// Records a Normal event about a pod, as the scheduler or kubelet would; best effort.
async fn record(recorder: &Recorder, pod: &Pod, reason: &str, action: &str, note: String) {
    publish(recorder, pod, EventType::Normal, reason, action, note).await;
}

async fn publish(
    recorder: &Recorder,
    pod: &Pod,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &pod.object_ref(&())).await {
        tracing::debug!("event {reason} not recorded: {e}");
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

const NODE_IP: &str = "10.89.0.10";

const LEASE_NAMESPACE: &str = "kube-node-lease";
/// A kubelet's defaults: a 40 s Lease, renewed (and the status posted) every 10 s.
const LEASE_DURATION_SECONDS: i32 = 40;
const BEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The node's Lease as a kubelet creates it: named as the node, held by it, owned by its Node.
fn node_lease(name: &str, node_uid: &str, renew_time: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": renew_time,
        },
    })
}

/// Renews the node's Lease, or creates it when there is none. One that a restart on the same
/// data directory brings back is renewed in place, so it keeps its uid.
async fn renew_lease(client: &Client, name: &str) -> kube::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let renew_time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let renewal = json!({"spec": {"holderIdentity": name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": renew_time}});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(renewal))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let node = Api::<Node>::all(client.clone()).get(name).await?;
            let lease = node_lease(name, &node.uid().unwrap_or_default(), &renew_time);
            let lease: Lease = serde_json::from_value(lease).map_err(kube::Error::SerdeError)?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
        }
        result => result.map(drop),
    }
}

fn node_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "localkube",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
    })
}

fn node_status(kubelet_port: u16) -> Value {
    let t = now();
    let cond = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({
        "status": {
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"},
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "localkube simulated node is ready"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": "localkube-node"},
            ],
            "nodeInfo": {
                "machineID": "localkube", "systemUUID": "localkube", "bootID": "localkube",
                "kernelVersion": "simulated", "osImage": "localkube simulated node",
                "containerRuntimeVersion": "localkube://0.1", "kubeletVersion": crate::KUBE_VERSION,
                "kubeProxyVersion": crate::KUBE_VERSION, "operatingSystem": "linux", "architecture": "amd64",
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "phase": "Running",
        }
    })
}

async fn register(client: &Client, name: &str, kubelet_port: u16) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj: Node = serde_json::from_value(node_object(name))?;
    match retry::settled(|| async { nodes.create(&PostParams::default(), &obj).await }).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("registering the node"),
    }
    retry::settled(|| async {
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(node_status(kubelet_port)),
            )
            .await
    })
    .await
    .context("reporting the node's status")?;
    Ok(())
}

/// Runs the node until the client fails for good.
pub async fn run(client: Client, cfg: NodeConfig) -> anyhow::Result<()> {
    prepare(client, cfg).await?.serve().await
}

/// Starts the node in a task of its own; see [`RunningNode`].
pub async fn start(client: Client, cfg: NodeConfig) -> anyhow::Result<RunningNode> {
    let prepared = prepare(client, cfg).await?;
    let root = prepared.root.clone();
    let kubelet_port = prepared.kubelet_port;
    Ok(RunningNode {
        root,
        kubelet_port,
        task: Some(tokio::spawn(prepared.serve())),
    })
}

/// A running node. Dropping it stops it and kills the processes it started.
pub struct RunningNode {
    root: Option<PathBuf>,
    kubelet_port: u16,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningNode {
    /// The node's root directory (hostPath `/x/y` is `<root>/x/y`); None when the node runs
    /// no processes (no `--image`, no `--node-root`).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The port of the node's kubelet endpoint on 127.0.0.1.
    pub fn kubelet_port(&self) -> u16 {
        self.kubelet_port
    }

    /// Waits until the node stops (when the client fails for good).
    pub async fn join(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(t) => t.await.context("the node task")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A registered node, ready to serve its pods.
struct Prepared {
    state: Arc<NodeState>,
    root: Option<PathBuf>,
    kubelet_port: u16,
    /// Dropped when the node stops: kills its process groups, then removes a temporary root.
    guard: spawn::GroupsGuard,
    kubelet_task: AbortOnDrop,
}

/// Registers the node and starts its kubelet endpoint.
async fn prepare(client: Client, cfg: NodeConfig) -> anyhow::Result<Prepared> {
    // A temporary root only for a node that may run processes.
    let (root, temp_root) = if cfg.images.is_empty() && cfg.node_root.is_none() {
        (None, None)
    } else {
        let (root, temp) = runtime::node_root(cfg.node_root.as_deref())?;
        (Some(root), temp)
    };
    let runtime = Arc::new(runtime::Runtime::new(
        client.clone(),
        root.clone().unwrap_or_default(),
        cfg.images.clone(),
    ));
    let guard = spawn::GroupsGuard {
        groups: runtime.groups(),
        temp_root,
    };
    let (kubelet_port, kubelet_task) = kubelet::serve(kubelet::Kubelet {
        runtime: runtime.clone(),
        node_name: cfg.name.clone(),
    })
    .await?;
    let kubelet_task = AbortOnDrop(kubelet_task);
    register(&client, &cfg.name, kubelet_port).await?;
    let state = Arc::new(NodeState {
        client: client.clone(),
        cfg: cfg.clone(),
        next_ip: AtomicU32::new(u32::from(Ipv4Addr::new(10, 244, 0, 2))),
        loopback_network: rand::random_range(1..=254),
        // 127.R.0.1 is left out, as a pod network's gateway would be.
        next_loopback_ip: AtomicU32::new(1),
        in_flight: Mutex::new(HashSet::new()),
        terminating: Mutex::new(HashMap::new()),
        scheduler: Recorder::new(
            client.clone(),
            Reporter {
                controller: "default-scheduler".into(),
                instance: None,
            },
        ),
        kubelet: Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubelet".into(),
                instance: Some(cfg.name.clone()),
            },
        ),
        runtime,
        cordoned: AtomicBool::new(false),
    });
    Ok(Prepared {
        state,
        root,
        kubelet_port,
        guard,
        kubelet_task,
    })
}

impl Prepared {
    async fn serve(self) -> anyhow::Result<()> {
        let Prepared {
            state,
            kubelet_port,
            guard,
            kubelet_task,
            ..
        } = self;
        let result = watch_pods(state, kubelet_port).await;
        drop(kubelet_task);
        drop(guard);
        result
    }
}

async fn watch_pods(state: Arc<NodeState>, kubelet_port: u16) -> anyhow::Result<()> {
    let client = state.client.clone();
    let _heartbeat = {
        let client = client.clone();
        let name = state.cfg.name.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                // Registering posted the first heartbeat.
                if let Err(e) = renew_lease(&client, &name).await {
                    tracing::debug!("the node's Lease was not renewed: {e}");
                }
                tokio::time::sleep(BEAT_INTERVAL).await;
                let nodes: Api<Node> = Api::all(client.clone());
                let _ = nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(node_status(kubelet_port)),
                    )
                    .await;
            }
        }))
    };
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    let own = watcher::Config::default().fields(&format!("metadata.name={}", state.cfg.name));
    let mut node_events = watcher(Api::<Node>::all(client.clone()), own).boxed();
    loop {
        let ev = tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => ev,
                None => break,
            },
            Some(Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node))) = node_events.next() => {
                let cordoned = node.spec.and_then(|s| s.unschedulable).unwrap_or(false);
                if state.cordoned.swap(cordoned, Ordering::Relaxed) && !cordoned {
                    schedule_waiting(&state).await;
                }
                continue;
            }
        };
        match ev {
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                handle_pod(&state, pod);
            }
            // Gone without a graceful end (force deletion): its processes go at once.
            Ok(watcher::Event::Delete(pod)) => {
                state.runtime.forget(&pod.uid().unwrap_or_default());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("pod watch error (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

fn once(state: &Arc<NodeState>, pod: &Pod, step: &'static str) -> bool {
    let uid = pod.uid().unwrap_or_default();
    state.in_flight.lock().insert((uid, step))
}

fn done(state: &Arc<NodeState>, uid: &str, step: &'static str) {
    state.in_flight.lock().remove(&(uid.to_string(), step));
}

fn handle_pod(state: &Arc<NodeState>, pod: Pod) {
    let spec = pod.spec.clone().unwrap_or_default();
    let node = spec.node_name.clone().unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let ours = node == state.cfg.name;
    if pod.metadata.deletion_timestamp.is_some() {
        if !ours {
            return;
        }
        let grace = deletion_grace(&pod);
        if once(state, &pod, "delete") {
            let (cut, grace_now) = tokio::sync::watch::channel(grace);
            let uid = pod.uid().unwrap_or_default();
            state.terminating.lock().insert(uid.clone(), cut);
            if state.runtime.get(&uid).is_some() {
                tokio::spawn(terminate_processes(state.clone(), pod, grace_now));
            } else {
                tokio::spawn(terminate(state.clone(), pod, grace_now));
            }
        } else if let Some(cut) = state.terminating.lock().get(&pod.uid().unwrap_or_default()) {
            // As kubelet: a second delete may only shorten the grace period.
            cut.send_if_modified(|g| {
                let shorter = grace < *g;
                if shorter {
                    *g = grace;
                }
                shorter
            });
        }
        return;
    }
    if node.is_empty() {
        let scheduler = spec
            .scheduler_name
            .as_deref()
            .unwrap_or("default-scheduler");
        if scheduler != "default-scheduler" {
            return;
        }
        // As the scheduler: a cordoned node takes only pods that tolerate the cordon.
        if state.cordoned.load(Ordering::Relaxed) && !rules::tolerates_cordon(&pod) {
            if once(state, &pod, "unschedulable") {
                tokio::spawn(report_unschedulable(state.clone(), pod));
            }
            return;
        }
        if once(state, &pod, "bind") {
            tokio::spawn(bind(state.clone(), pod));
        }
        return;
    }
    if !ours {
        return;
    }
    if state.runtime.get(&pod.uid().unwrap_or_default()).is_some() {
        state.runtime.updated(pod);
        return;
    }
    // Running here, yet no process of this node runs it: its processes died with an earlier
    // run of the node (killed, or its machine restarted). Like a kubelet after a reboot, the
    // node fails it when it may not restart, and starts it again otherwise.
    let lost = phase == "Running" && state.runtime.plan(&pod).is_some();
    if lost && spec.restart_policy.as_deref() == Some("Never") {
        if once(state, &pod, "lost") {
            tokio::spawn(report_lost(state.clone(), pod));
        }
        return;
    }
    if (phase.is_empty() || phase == "Pending" || lost)
        && let Some(launches) = state.runtime.plan(&pod)
    {
        let n = state.next_loopback_ip.fetch_add(1, Ordering::Relaxed);
        let addrs = rules::PodAddresses {
            pod_ip: rules::loopback_pod_ip(state.loopback_network, n).to_string(),
            host_ip: NODE_IP.into(),
        };
        state.runtime.admit(pod, launches, addrs);
        return;
    }
    if (phase.is_empty() || phase == "Pending") && once(state, &pod, "start") {
        tokio::spawn(start_simulated(state.clone(), pod));
    }
}

/// What the scheduler says of a pod it leaves unbound on a cordoned node: the pod's
/// `PodScheduled` condition and a FailedScheduling warning.
async fn report_unschedulable(state: Arc<NodeState>, pod: Pod) {
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &pod.namespace().unwrap_or_default());
    let condition = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": rules::UNSCHEDULABLE,
        "lastProbeTime": null, "lastTransitionTime": now()}]}});
    let patched = retry::settled(|| async {
        api.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    })
    .await;
    if let Err(e) = patched {
        tracing::debug!("pod {} not marked unschedulable: {e}", pod.name_any());
    }
    let note = rules::UNSCHEDULABLE.to_string();
    publish(
        &state.scheduler,
        &pod,
        EventType::Warning,
        "FailedScheduling",
        "Scheduling",
        note,
    )
    .await;
}

/// After an uncordon: the pods left waiting are scheduled now.
async fn schedule_waiting(state: &Arc<NodeState>) {
    let pods: Api<Pod> = Api::all(state.client.clone());
    let waiting = match pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!("pods waiting for the node not listed: {e}");
            return;
        }
    };
    for pod in waiting {
        done(state, &pod.uid().unwrap_or_default(), "unschedulable");
        handle_pod(state, pod);
    }
}

async fn bind(state: Arc<NodeState>, pod: Pod) {
    let uid = pod.uid().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name_any(), "namespace": ns, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": state.cfg.name},
    });
    let body = serde_json::to_vec(&binding).unwrap_or_default();
    let bound = retry::settled(|| async {
        let req = http::Request::post(format!(
            "/api/v1/namespaces/{ns}/pods/{}/binding",
            pod.name_any()
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .map_err(kube::Error::HttpError)?;
        state.client.request_text(req).await
    })
    .await;
    if bound.is_ok() {
        let note = format!(
            "Successfully assigned {ns}/{} to {}",
            pod.name_any(),
            state.cfg.name
        );
        record(&state.scheduler, &pod, "Scheduled", "Binding", note).await;
    }
    let _ = api;
    done(&state, &uid, "bind");
}

fn container_names(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn running_status(pod: &Pod, ip: &str, started: &str, restarts: i32) -> Value {
    let t = now();
    let statuses: Vec<Value> = container_names(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": format!("localkube://{image}"),
                "containerID": format!("localkube://{}-{name}", pod.uid().unwrap_or_default()),
                "ready": true, "started": true, "restartCount": restarts,
                "state": {"running": {"startedAt": t}},
            })
        })
        .collect();
    let cond = |ty: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": t});
    json!({
        "status": {
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}],
            "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": started,
            "containerStatuses": statuses,
        }
    })
}

/// The status of a pod whose containers could not start ([`FAIL_BEFORE_RUNNING_ANNOTATION`]):
/// `Failed`, never Ready, every container terminated with `StartError` and exit code 128.
fn start_error_status(pod: &Pod, started: &str) -> Value {
    let t = now();
    let statuses: Vec<Value> = container_names(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 128, "reason": "StartError",
                    "message": "simulated start failure (localkube.dev/fail-before-running)",
                    "startedAt": started, "finishedAt": t}}})
        })
        .collect();
    let cond = |ty: &str, st: &str| json!({"type": ty, "status": st, "lastProbeTime": null, "lastTransitionTime": t});
    json!({"status": {
        "phase": "Failed",
        "conditions": [cond("Initialized", "True"), cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")],
        "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}],
        "startTime": started,
        "containerStatuses": statuses,
    }})
}

/// The status of a pod whose processes were lost with an earlier run of the node: `Failed`,
/// every container terminated as a kubelet reports a container it can no longer find.
fn lost_status(pod: &Pod, now: &str) -> Value {
    let statuses: Vec<Value> = container_names(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                    "finishedAt": now}}})
        })
        .collect();
    let cond = |ty: &str| json!({"type": ty, "status": "False", "lastProbeTime": null, "lastTransitionTime": now});
    json!({"status": {
        "phase": "Failed",
        "conditions": [cond("Ready"), cond("ContainersReady")],
        "containerStatuses": statuses,
    }})
}

/// Reports a pod whose processes were lost (see `handle_pod`).
async fn report_lost(state: Arc<NodeState>, pod: Pod) {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let status = lost_status(&pod, &now());
    let patched = retry::settled(|| async {
        api.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(status.clone()),
        )
        .await
    })
    .await;
    if let Err(e) = patched {
        tracing::warn!("cannot report {ns}/{} lost: {e}", pod.name_any());
    }
    let note = "the node restarted: its containers were lost".to_string();
    record(&state.kubelet, &pod, "ContainersLost", "Failing", note).await;
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

async fn start_simulated(state: Arc<NodeState>, pod: Pod) {
    let uid = pod.uid().unwrap_or_default();
    tokio::time::sleep(state.cfg.start_delay).await;
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let Ok(current) = retry::settled(|| async { api.get(&pod.name_any()).await }).await else {
        done(&state, &uid, "start");
        return;
    };
    if current.uid() != pod.uid() || current.metadata.deletion_timestamp.is_some() {
        done(&state, &uid, "start");
        return;
    }
    if annotation(&current, FAIL_BEFORE_RUNNING_ANNOTATION) == Some("true") {
        let status = start_error_status(&current, &now());
        let _ = retry::settled(|| async {
            api.patch_status(
                &pod.name_any(),
                &PatchParams::apply(MANAGER),
                &Patch::Merge(status.clone()),
            )
            .await
        })
        .await;
        done(&state, &uid, "start");
        return;
    }
    let ip = Ipv4Addr::from(state.next_ip.fetch_add(1, Ordering::Relaxed)).to_string();
    let started = now();
    let status = running_status(&current, &ip, &started, 0);
    let ok = retry::settled(|| async {
        api.patch_status(
            &pod.name_any(),
            &PatchParams::apply(MANAGER),
            &Patch::Merge(status.clone()),
        )
        .await
    })
    .await
    .is_ok();
    if ok {
        for (name, image) in container_names(&current) {
            let pulled = format!("Container image \"{image}\" already present on machine");
            record(&state.kubelet, &current, "Pulled", "Pulling", pulled).await;
            let created = format!("Created container: {name}");
            record(&state.kubelet, &current, "Created", "Creating", created).await;
            let started = format!("Started container {name}");
            record(&state.kubelet, &current, "Started", "Starting", started).await;
        }
    }
    if ok && let Some(code) = annotation(&current, EXIT_CODE_ANNOTATION) {
        let code: i32 = code.parse().unwrap_or(1);
        let run_for = annotation(&current, RUN_FOR_ANNOTATION)
            .and_then(|d| humantime::parse_duration(d).ok())
            .unwrap_or(Duration::ZERO);
        exit_loop(&state, &api, &current, &ip, &started, code, run_for).await;
    }
    done(&state, &uid, "start");
}

/// Simulates containers that exit with `code`, restarting them as the restart policy says.
async fn exit_loop(
    state: &Arc<NodeState>,
    api: &Api<Pod>,
    pod: &Pod,
    ip: &str,
    started: &str,
    code: i32,
    run_for: Duration,
) {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let mut restarts = 0;
    loop {
        tokio::time::sleep(run_for.max(Duration::from_millis(10))).await;
        let Ok(current) = retry::settled(|| async { api.get(&pod.name_any()).await }).await else {
            return;
        };
        if current.uid() != pod.uid() || current.metadata.deletion_timestamp.is_some() {
            return;
        }
        let ends = policy == "Never" || (policy == "OnFailure" && code == 0);
        if ends {
            let t = now();
            let reason = if code == 0 { "Completed" } else { "Error" };
            let statuses: Vec<Value> = container_names(pod)
                .into_iter()
                .map(|(name, image)| {
                    json!({"name": name, "image": image, "imageID": format!("localkube://{image}"),
                        "ready": false, "started": false, "restartCount": restarts,
                        "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": t}}})
                })
                .collect();
            let cond = |ty: &str, st: &str| json!({"type": ty, "status": st, "lastProbeTime": null, "lastTransitionTime": t});
            let phase = if code == 0 { "Succeeded" } else { "Failed" };
            let status = json!({"status": {
                "phase": phase,
                "conditions": [cond("Initialized", "True"), cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")],
                "containerStatuses": statuses,
            }});
            let _ = retry::settled(|| async {
                api.patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(status.clone()),
                )
                .await
            })
            .await;
            return;
        }
        restarts += 1;
        let status = running_status(&current, ip, started, restarts);
        let _ = retry::settled(|| async {
            api.patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status.clone()),
            )
            .await
        })
        .await;
        if restarts > 1000 {
            let _ = state;
            return;
        }
    }
}

/// The grace period a deleted pod was given, in seconds (negative counts as 0).
fn deletion_grace(pod: &Pod) -> u64 {
    pod.metadata
        .deletion_grace_period_seconds
        .unwrap_or(0)
        .max(0) as u64
}

/// Stops a deleted pod's containers within its grace period (at most the node's shutdown
/// time), then removes the pod. A second delete with a shorter grace period, sent on
/// `grace_now`, brings the end forward.
async fn terminate(
    state: Arc<NodeState>,
    pod: Pod,
    mut grace_now: tokio::sync::watch::Receiver<u64>,
) {
    let uid = pod.uid().unwrap_or_default();
    let grace = *grace_now.borrow_and_update();
    if grace > 0 {
        for (name, _) in container_names(&pod) {
            let note = format!("Stopping container {name}");
            record(&state.kubelet, &pod, "Killing", "Killing", note).await;
        }
    }
    let started = tokio::time::Instant::now();
    let end = |grace: u64| started + Duration::from_secs(grace).min(state.cfg.shutdown_time);
    let mut deadline = end(grace);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            cut = grace_now.changed() => match cut {
                Ok(()) => deadline = deadline.min(end(*grace_now.borrow_and_update())),
                Err(_) => {
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
            },
        }
    }
    state.terminating.lock().remove(&uid);
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &pod.namespace().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let _ = retry::settled(|| async { api.delete(&pod.name_any(), &dp).await }).await;
    done(&state, &uid, "delete");
}

/// Stops a deleted process pod (see [`runtime::Runtime::terminate`]): its grace period is the
/// pod's own, not capped by the node's shutdown time.
async fn terminate_processes(
    state: Arc<NodeState>,
    pod: Pod,
    grace_now: tokio::sync::watch::Receiver<u64>,
) {
    let uid = pod.uid().unwrap_or_default();
    if deletion_grace(&pod) > 0 {
        // Beside the signals, not before them.
        let (state, pod) = (state.clone(), pod.clone());
        tokio::spawn(async move {
            for (name, _) in container_names(&pod) {
                let note = format!("Stopping container {name}");
                record(&state.kubelet, &pod, "Killing", "Killing", note).await;
            }
        });
    }
    state.runtime.clone().terminate(pod, grace_now).await;
    state.terminating.lock().remove(&uid);
    done(&state, &uid, "delete");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_lease_is_held_by_the_node_and_owned_by_its_node_object() {
        let lease = node_lease("n1", "uid-1", "2026-01-01T00:00:00.000001Z");
        let lease: Lease = serde_json::from_value(lease).expect("a valid Lease");
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        assert_eq!(lease.metadata.name.as_deref(), Some("n1"));
        let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "n1", "uid-1")
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert!(spec.renew_time.is_some());
    }

    #[test]
    fn a_lost_pod_fails_with_its_containers_unknown() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "compute", "image": "launcher"}, {"name": "tail", "image": "launcher"}]},
        }))
        .unwrap();
        let s = lost_status(&pod, "2026-01-01T00:00:00Z");
        assert_eq!(s["status"]["phase"], "Failed");
        let statuses = s["status"]["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 2);
        for c in statuses {
            assert_eq!(c["state"]["terminated"]["reason"], "ContainerStatusUnknown");
            assert_eq!(c["state"]["terminated"]["exitCode"], 137);
            assert_eq!(c["ready"], false);
        }
        assert_eq!(s["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(s["status"]["conditions"][0]["status"], "False");
    }

    #[test]
    fn start_error_status_fails_without_running() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1",
                "annotations": {FAIL_BEFORE_RUNNING_ANNOTATION: "true"}},
            "spec": {"containers": [{"name": "compute", "image": "img"}]},
        }))
        .unwrap();
        let s = start_error_status(&pod, "2026-08-01T12:00:00Z");
        assert_eq!(s["status"]["phase"], "Failed");
        assert!(s["status"].get("podIP").is_none());
        let ready = s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        let c = &s["status"]["containerStatuses"][0];
        assert_eq!(c["name"], "compute");
        assert_eq!(c["state"]["terminated"]["reason"], "StartError");
        assert_eq!(c["state"]["terminated"]["exitCode"], 128);
        assert!(c["state"].get("running").is_none());
    }
}
