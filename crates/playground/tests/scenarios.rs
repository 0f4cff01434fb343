//! The controller acceptance scenarios of the lifecycle spec (Part B §6), run against the real
//! `virt-playground` binary. Commands go through the subresource API
//! (`PUT .../virtualmachines/{name}/{start|stop|restart}`, as virtctl sends them) or are plain
//! object writes; every assertion is on objects in the API server.
//!
//! Transient states (`Starting`, `Stopping`, a queued `[Stop{uid}, Start]`, …) can be shorter
//! than any polling interval, so each test records every VM and VMI revision from a watch
//! opened before anything is created, and checks the recorded history.
//!
//! Guest behaviour comes from the simulated node's test hooks, set as annotations in the VM
//! template (the launcher Pod carries the VMI's `localkube.dev/` annotations):
//! - `localkube.dev/exit-code: "0"` with `localkube.dev/run-for`: the guest powers off (the VMI
//!   ends `Succeeded`); a non-zero code: it crashes (`Failed`);
//! - `localkube.dev/fail-before-running: "true"`: the VMI fails without ever running.
//!
//! A VMI is "killed" by deleting its launcher Pod, as Part B's functional tests do.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::Request;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use test_support::Playground;
use virt_reconciler::{
    StateChangeRequest, VirtualMachine, VirtualMachineInstance, VirtualMachineStatus,
};

const NS: &str = "default";
const EXIT_CODE: &str = "localkube.dev/exit-code";
const RUN_FOR: &str = "localkube.dev/run-for";
const FAIL_BEFORE_RUNNING: &str = "localkube.dev/fail-before-running";
/// A finalizer the tests put on a VMI to keep it visible after the controller deleted it.
const HOLD: &str = "scenarios.test/hold";

// ---------------------------------------------------------------------------------------------
// The playground process

fn start_playground() -> Playground {
    Playground::start(
        Path::new(env!("CARGO_BIN_EXE_virt-playground")),
        Stdio::inherit(),
    )
}

async fn client_for(p: &Playground) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&p.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Recorded histories

/// Every revision of one kind of object seen on a watch, in order; `true` marks a deletion.
struct History<K> {
    seen: Arc<Mutex<Vec<(bool, K)>>>,
}

impl<K> History<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    /// Opens the watch (so nothing later is missed) and records it in the background.
    async fn record(api: Api<K>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut stream = api
            .watch(&Default::default(), "0")
            .await
            .expect("open a watch")
            .boxed();
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let entry = match ev {
                    Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => (false, o),
                    Ok(WatchEvent::Deleted(o)) => (true, o),
                    _ => continue,
                };
                sink.lock().unwrap().push(entry);
            }
        });
        History { seen }
    }

    /// Waits until `pred` holds on the recorded history, which may lag the API server.
    async fn until(&self, what: &str, pred: impl Fn(&Self) -> bool) {
        eventually(10, &format!("{what} (recorded)"), async || {
            pred(self).then_some(())
        })
        .await;
    }

    /// Waits until the recorder has seen resourceVersion `rv`. Versions are global and a watch
    /// delivers them in order, so every earlier revision of this kind is recorded then.
    async fn seen(&self, rv: u64) {
        self.until(&format!("resourceVersion {rv}"), |h| {
            h.seen.lock().unwrap().iter().any(|(_, o)| {
                o.meta()
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v >= rv)
            })
        })
        .await;
    }

    /// The recorded revisions of the object `name`.
    fn of(&self, name: &str) -> Vec<(bool, K)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| o.meta().name.as_deref() == Some(name))
            .cloned()
            .collect()
    }

    /// A deletion of `name` was recorded.
    fn deleted(&self, name: &str) -> bool {
        self.of(name).iter().any(|(d, _)| *d)
    }

    /// The distinct UIDs of `name`, in the order they appeared.
    fn uids(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, o) in self.of(name) {
            let uid = o.meta().uid.clone().unwrap_or_default();
            if !out.contains(&uid) {
                out.push(uid);
            }
        }
        out
    }
}

impl History<VirtualMachine> {
    /// The printableStatus values `name` went through, without repeats in a row.
    fn printables(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, vm) in self.of(name) {
            let p = vm
                .status
                .as_ref()
                .and_then(|s| s.printable_status.clone())
                .unwrap_or_default();
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Every state-change queue `name` had, in order (empty ones included).
    fn queues(&self, name: &str) -> Vec<Vec<StateChangeRequest>> {
        self.of(name)
            .into_iter()
            .map(|(_, vm)| {
                vm.status
                    .map(|s| s.state_change_requests)
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// `a` appears in `seq`, and `b` after it.
fn in_order(seq: &[String], a: &str, b: &str) -> bool {
    seq.iter()
        .position(|s| s == a)
        .is_some_and(|i| seq[i + 1..].iter().any(|s| s == b))
}

// ---------------------------------------------------------------------------------------------
// One playground per test, with its clients and histories

struct Env {
    client: Client,
    vms: Api<VirtualMachine>,
    vmis: Api<VirtualMachineInstance>,
    pods: Api<Pod>,
    vm_history: History<VirtualMachine>,
    vmi_history: History<VirtualMachineInstance>,
    _playground: Playground,
}

impl Env {
    async fn start() -> Env {
        let playground = start_playground();
        let client = client_for(&playground).await;
        let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), NS);
        let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), NS);
        Env {
            pods: Api::namespaced(client.clone(), NS),
            vm_history: History::record(vms.clone()).await,
            vmi_history: History::record(vmis.clone()).await,
            client,
            vms,
            vmis,
            _playground: playground,
        }
    }

    /// Waits until the VM history holds every revision of `name` up to its current one.
    async fn sync_vm(&self, name: &str) {
        let vm = self.vm(name).await;
        let rv = vm.resource_version().unwrap().parse().unwrap();
        self.vm_history.seen(rv).await;
    }

    /// Waits until the recorded VMI UIDs of `name` are `want`, in that order.
    async fn vmi_uids(&self, name: &str, want: &[String]) {
        self.vmi_history
            .until(&format!("VMI UIDs {want:?}"), |h| h.uids(name) == want)
            .await;
    }

    /// Waits until `n` VMIs named `name` were recorded.
    async fn vmi_count(&self, name: &str, n: usize) {
        self.vmi_history
            .until(&format!("{n} VMIs {name}"), |h| h.uids(name).len() == n)
            .await;
    }

    async fn create_vm(&self, manifest: Value) -> VirtualMachine {
        let vm: VirtualMachine = serde_json::from_value(manifest).unwrap();
        self.vms.create(&PostParams::default(), &vm).await.unwrap()
    }

    async fn vm(&self, name: &str) -> VirtualMachine {
        self.vms.get(name).await.unwrap()
    }

    async fn status(&self, name: &str) -> VirtualMachineStatus {
        self.vm(name).await.status.unwrap_or_default()
    }

    async fn vmi(&self, name: &str) -> Option<VirtualMachineInstance> {
        self.vmis.get_opt(name).await.unwrap()
    }

    /// Waits for printableStatus `want`.
    async fn printable_becomes(&self, name: &str, want: &str) -> VirtualMachineStatus {
        eventually(20, &format!("{name} {want}"), async || {
            let s = self.vms.get(name).await.ok()?.status?;
            (s.printable_status.as_deref() == Some(want)).then_some(s)
        })
        .await
    }

    /// Waits until the VM is Stopped with no VMI at all (a final VMI that still exists also
    /// shows Stopped, with `created: true`).
    async fn stopped_without_vmi(&self, name: &str) -> VirtualMachineStatus {
        eventually(20, &format!("{name} Stopped without a VMI"), async || {
            let s = self.vms.get(name).await.ok()?.status?;
            (s.printable_status.as_deref() == Some("Stopped") && !s.created && !s.ready)
                .then_some(s)
        })
        .await
    }

    /// Waits for a Running VMI `name` whose UID is not `not_uid`.
    async fn running_vmi(&self, name: &str, not_uid: Option<&str>) -> VirtualMachineInstance {
        eventually(20, &format!("a running VMI {name}"), async || {
            let v = self.vmis.get_opt(name).await.ok()??;
            (v.phase() == "Running" && v.metadata.uid.as_deref() != not_uid).then_some(v)
        })
        .await
    }

    /// Waits for the VMI `name` to be in `phase`.
    async fn vmi_phase(&self, name: &str, phase: &str) -> VirtualMachineInstance {
        eventually(20, &format!("VMI {name} {phase}"), async || {
            let v = self.vmis.get_opt(name).await.ok()??;
            (v.phase() == phase).then_some(v)
        })
        .await
    }

    async fn vmi_gone(&self, name: &str) {
        eventually(20, &format!("VMI {name} gone"), async || {
            self.vmis.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await
    }

    /// A VM that is running with its VMI Running and an empty queue.
    async fn running_vm(&self, manifest: Value) -> VirtualMachineInstance {
        let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
        self.create_vm(manifest).await;
        let vmi = self.running_vmi(&name, None).await;
        eventually(20, &format!("{name} Running, queue empty"), async || {
            let s = self.vms.get(&name).await.ok()?.status?;
            (s.printable_status.as_deref() == Some("Running") && s.state_change_requests.is_empty())
                .then_some(())
        })
        .await;
        vmi
    }

    /// The launcher Pods of the VMI with this UID.
    async fn launcher_pods(&self, vmi_uid: &str) -> Vec<Pod> {
        let lp = ListParams::default().labels(&format!(
            "kubevirt.io=virt-launcher,kubevirt.io/created-by={vmi_uid}"
        ));
        self.pods.list(&lp).await.unwrap().items
    }

    /// Kills a VMI's guest: its launcher Pod is deleted at once.
    async fn kill(&self, vmi: &VirtualMachineInstance) {
        let pods = self
            .launcher_pods(vmi.metadata.uid.as_deref().unwrap())
            .await;
        assert_eq!(pods.len(), 1, "one launcher pod");
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        self.pods.delete(&pods[0].name_any(), &dp).await.unwrap();
    }

    /// Adds [`HOLD`] to the VMI's finalizers.
    async fn hold(&self, name: &str) {
        let patch = json!([{"op": "add", "path": "/metadata/finalizers/-", "value": HOLD}]);
        self.vmis
            .patch(
                name,
                &PatchParams::default(),
                &Patch::<()>::Json(serde_json::from_value(patch).unwrap()),
            )
            .await
            .unwrap();
    }

    /// Removes [`HOLD`] from the VMI's finalizers.
    async fn release(&self, name: &str) {
        let vmi = self.vmis.get(name).await.unwrap();
        let kept: Vec<String> = vmi
            .finalizers()
            .iter()
            .filter(|f| *f != HOLD)
            .cloned()
            .collect();
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": vmi.finalizers()},
            {"op": "replace", "path": "/metadata/finalizers", "value": kept},
        ]);
        self.vmis
            .patch(
                name,
                &PatchParams::default(),
                &Patch::<()>::Json(serde_json::from_value(patch).unwrap()),
            )
            .await
            .unwrap();
    }

    async fn merge_vm(&self, name: &str, patch: Value) {
        self.vms
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// The VMI `name` stays absent for a while (no automatic restart).
    async fn stays_without_vmi(&self, name: &str) {
        stays(&format!("no VMI {name}"), async || {
            self.vmis.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }

    /// The VMI `name` keeps its UID and phase for a while.
    async fn stays_without_vmi_change(&self, name: &str, uid: &str, phase: &str) {
        stays(&format!("VMI {name} {uid} {phase}"), async || {
            self.vmis
                .get_opt(name)
                .await
                .unwrap()
                .is_some_and(|v| v.uid().as_deref() == Some(uid) && v.phase() == phase)
        })
        .await;
    }

    /// A lifecycle subresource call: `Ok` on 202 Accepted, else the code and Status message.
    async fn put(&self, vm: &str, action: &str, body: Value) -> Result<(), (u16, String)> {
        let path = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{NS}/virtualmachines/{vm}/{action}"
        );
        self.put_path(path, body, 202).await
    }

    /// pause/unpause: `Ok` on 200 OK, else the code and Status message.
    async fn put_vmi(&self, vmi: &str, action: &str, body: Value) -> Result<(), (u16, String)> {
        let path = format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances/{vmi}/{action}"
        );
        self.put_path(path, body, 200).await
    }

    async fn put_path(&self, path: String, body: Value, ok: u16) -> Result<(), (u16, String)> {
        let (code, status) = put_raw(&self.client, &path, serde_json::to_vec(&body).unwrap()).await;
        if code == ok {
            return Ok(());
        }
        let message = status["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_string);
        Err((code, message))
    }
}

/// Polls `f` every 50 ms until it gives a value, for at most `secs` seconds.
async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `f` holds every time it is checked over 1.5 s (for "nothing happens" checks).
async fn stays(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert!(f().await, "expected {what} to hold");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// KubeVirt's 409 message for the VM `vm`.
fn conflict(vm: &str, reason: &str) -> (u16, String) {
    (
        409,
        format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{vm}\": {reason}"),
    )
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// The seed's VM (`examples/vm-cirros.yaml`), as `kubevirt.io/v1` under another name,
/// with neither `running` nor `runStrategy`.
fn base_vm(name: &str) -> Value {
    let mut vm: Value = serde_saphyr::from_str(&test_support::example("vm-cirros.yaml")).unwrap();
    vm["apiVersion"] = json!("kubevirt.io/v1");
    vm["metadata"] = json!({"name": name, "labels": {"kubevirt.io/vm": name}});
    vm["spec"]["template"]["metadata"]["labels"] = json!({"kubevirt.io/vm": name});
    vm["spec"].as_object_mut().unwrap().remove("running");
    vm
}

/// A VM with `spec.runStrategy`.
fn vm_with_strategy(name: &str, strategy: &str) -> Value {
    let mut vm = base_vm(name);
    vm["spec"]["runStrategy"] = json!(strategy);
    vm
}

/// A VM with the deprecated `spec.running`.
fn vm_with_running(name: &str, running: bool) -> Value {
    let mut vm = base_vm(name);
    vm["spec"]["running"] = json!(running);
    vm
}

/// Adds annotations to the VM template (the simulated node's hooks).
fn with_template_annotations(mut vm: Value, annotations: &[(&str, &str)]) -> Value {
    for (k, v) in annotations {
        vm["spec"]["template"]["metadata"]["annotations"][*k] = json!(v);
    }
    vm
}

fn start_req() -> StateChangeRequest {
    StateChangeRequest::start()
}

fn stop_req(uid: &str) -> StateChangeRequest {
    StateChangeRequest::stop(uid)
}

// ---------------------------------------------------------------------------------------------
// Start

/// §6.1: start on `runStrategy: Halted` switches the spec to Always; the VMI comes up through
/// Starting to Running, and the state-change queue is never used.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_01_start_halted_run_strategy() {
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("vm1", "Halted")).await;
    env.printable_becomes("vm1", "Stopped").await;
    assert!(env.vmi("vm1").await.is_none());

    env.put("vm1", "start", json!({})).await.unwrap();
    let vmi = env.running_vmi("vm1", None).await;
    // KubeVirt's VMI controller labels the VMI with its node when it writes the node name.
    let node = vmi.status.as_ref().and_then(|s| s.node_name.clone());
    assert!(node.is_some(), "the running VMI has a node");
    assert_eq!(vmi.labels().get("kubevirt.io/nodeName"), node.as_ref());
    let s = env.printable_becomes("vm1", "Running").await;
    assert!(s.created && s.ready);
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Always")
    );
    assert_eq!(env.vm("vm1").await.spec.running, None);
    env.vmi_uids("vm1", &[vmi.uid().unwrap()]).await;
    env.sync_vm("vm1").await;
    let seq = env.vm_history.printables("vm1");
    assert!(in_order(&seq, "Starting", "Running"), "{seq:?}");
    assert!(
        env.vm_history.queues("vm1").iter().all(Vec::is_empty),
        "no state-change request was queued"
    );
}

/// §6.2: start on the deprecated `running: false` sets `running: true` and leaves
/// `runStrategy` unset.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_02_start_halted_running_false() {
    let env = Env::start().await;
    env.create_vm(vm_with_running("vm1", false)).await;
    env.printable_becomes("vm1", "Stopped").await;

    env.put("vm1", "start", json!({})).await.unwrap();
    env.running_vmi("vm1", None).await;
    env.printable_becomes("vm1", "Running").await;
    let vm = env.vm("vm1").await;
    assert_eq!(vm.spec.running, Some(true));
    assert_eq!(vm.spec.run_strategy, None);
    env.sync_vm("vm1").await;
    assert!(env.vm_history.queues("vm1").iter().all(Vec::is_empty));
}

/// §6.5: start on Manual queues `[Start]`; the VMI is created, the queue empties, the spec
/// stays Manual, and a second start is refused.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_05_start_manual() {
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("vm1", "Manual")).await;
    env.printable_becomes("vm1", "Stopped").await;
    env.stays_without_vmi("vm1").await;

    env.put("vm1", "start", json!({})).await.unwrap();
    let vmi = env.running_vmi("vm1", None).await;
    eventually(20, "queue drained", async || {
        let s = env.status("vm1").await;
        (s.printable_status.as_deref() == Some("Running") && s.state_change_requests.is_empty())
            .then_some(())
    })
    .await;
    env.sync_vm("vm1").await;
    let queues = env.vm_history.queues("vm1");
    assert!(queues.contains(&vec![start_req()]), "{queues:?}");
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Manual")
    );
    assert_eq!(vmi.spec.start_strategy, None);

    assert_eq!(
        env.put("vm1", "start", json!({})).await,
        Err(conflict("vm1", "VM is already running"))
    );
    env.vmi_count("vm1", 1).await;
}

/// §6.6: a paused start on Manual queues `Start{paused: "true"}`; the VMI starts paused and the
/// VM shows `Paused`.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_06_start_manual_paused() {
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("vm1", "Manual")).await;
    env.printable_becomes("vm1", "Stopped").await;

    env.put("vm1", "start", json!({"paused": true}))
        .await
        .unwrap();
    let vmi = env.running_vmi("vm1", None).await;
    assert_eq!(vmi.spec.start_strategy.as_deref(), Some("Paused"));
    let paused = vmi
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Paused")
        .expect("a Paused condition");
    assert_eq!(paused.status, "True");
    env.printable_becomes("vm1", "Paused").await;
    // The one request queued, on the wire.
    env.sync_vm("vm1").await;
    let queues = env.vm_history.queues("vm1");
    let queued: Vec<_> = queues.iter().filter(|q| !q.is_empty()).collect();
    assert!(!queued.is_empty());
    for q in queued {
        assert_eq!(
            serde_json::to_value(q).unwrap(),
            json!([{"action": "Start", "data": {"paused": "true"}}])
        );
    }
    eventually(20, "queue drained", async || {
        env.status("vm1")
            .await
            .state_change_requests
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        env.status("vm1").await.printable_status.as_deref(),
        Some("Paused")
    );
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Manual")
    );
}

/// §6.7: a paused start on Halted queues `Start{paused}`; the controller switches the spec to
/// Always and creates the VMI paused.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_07_start_halted_paused() {
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("vm1", "Halted")).await;
    env.printable_becomes("vm1", "Stopped").await;

    env.put("vm1", "start", json!({"paused": true}))
        .await
        .unwrap();
    let vmi = env.running_vmi("vm1", None).await;
    assert_eq!(vmi.spec.start_strategy.as_deref(), Some("Paused"));
    env.printable_becomes("vm1", "Paused").await;
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Always")
    );
    env.sync_vm("vm1").await;
    let queues = env.vm_history.queues("vm1");
    assert!(
        queues.contains(&vec![StateChangeRequest::start_paused()]),
        "{queues:?}"
    );
    // The spec was switched while the paused Start request was still queued.
    let switched_with_request = env.vm_history.of("vm1").iter().any(|(_, vm)| {
        vm.spec.run_strategy.as_deref() == Some("Always")
            && vm.status.as_ref().is_some_and(|s| {
                s.state_change_requests == vec![StateChangeRequest::start_paused()]
            })
    });
    assert!(switched_with_request);
    eventually(20, "queue drained", async || {
        env.status("vm1")
            .await
            .state_change_requests
            .is_empty()
            .then_some(())
    })
    .await;
    env.vmi_count("vm1", 1).await;
}

/// §6.8: under Manual a powered-off guest leaves its Succeeded VMI in place; start queues
/// `[Stop{old uid}, Start]`, the old VMI goes, a new one runs, and the queue empties.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_08_start_manual_after_guest_shutdown() {
    let env = Env::start().await;
    let vm = with_template_annotations(
        vm_with_strategy("vm1", "Manual"),
        &[(EXIT_CODE, "0"), (RUN_FOR, "1s")],
    );
    env.create_vm(vm).await;
    env.printable_becomes("vm1", "Stopped").await;
    env.put("vm1", "start", json!({})).await.unwrap();
    let first = env.running_vmi("vm1", None).await;
    let old_uid = first.uid().unwrap();

    // The guest powers off: the VMI stays, Succeeded, and the VM is Stopped.
    env.vmi_phase("vm1", "Succeeded").await;
    let s = env.printable_becomes("vm1", "Stopped").await;
    assert!(!s.ready);
    env.stays_without_vmi_change("vm1", &old_uid, "Succeeded")
        .await;

    // The next guest keeps running: the hook goes from the template.
    env.merge_vm(
        "vm1",
        json!({"spec": {"template": {"metadata": {"annotations": {EXIT_CODE: null, RUN_FOR: null}}}}}),
    )
    .await;
    env.put("vm1", "start", json!({})).await.unwrap();
    let second = env.running_vmi("vm1", Some(&old_uid)).await;
    eventually(20, "Running, queue drained", async || {
        let s = env.status("vm1").await;
        (s.printable_status.as_deref() == Some("Running") && s.state_change_requests.is_empty())
            .then_some(())
    })
    .await;
    env.sync_vm("vm1").await;
    let queues = env.vm_history.queues("vm1");
    assert!(
        queues.contains(&vec![stop_req(&old_uid), start_req()]),
        "{queues:?}"
    );
    env.vmi_uids("vm1", &[old_uid, second.uid().unwrap()]).await;
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Manual")
    );
}

/// §6.9: under Once a finished VMI (Succeeded or Failed) stays, and start is refused.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_09_start_once_after_completion() {
    let env = Env::start().await;
    for (name, code, phase) in [("vm-ok", "0", "Succeeded"), ("vm-crash", "3", "Failed")] {
        let vm = with_template_annotations(
            vm_with_strategy(name, "Once"),
            &[(EXIT_CODE, code), (RUN_FOR, "500ms")],
        );
        env.create_vm(vm).await;
        let vmi = env.vmi_phase(name, phase).await;
        env.printable_becomes(name, "Stopped").await;

        assert_eq!(
            env.put(name, "start", json!({})).await,
            Err(conflict(
                name,
                "Once does not support manual start requests"
            ))
        );
        env.stays_without_vmi_change(name, &vmi.uid().unwrap(), phase)
            .await;
        env.vmi_count(name, 1).await;
        let s = env.status(name).await;
        assert!(s.state_change_requests.is_empty());
        assert_eq!(s.printable_status.as_deref(), Some("Stopped"));
    }
}

/// §6.10: under RerunOnFailure a Failed VMI that is still present refuses start. (The VMI is
/// killed and held by a test finalizer, so the controller's deletion cannot complete.) Once it
/// goes, the Start the controller queued brings up a new VMI.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_10_start_rerun_on_failure_with_failed_vmi() {
    let env = Env::start().await;
    let first = env
        .running_vm(vm_with_strategy("vm1", "RerunOnFailure"))
        .await;
    env.hold("vm1").await;
    env.kill(&first).await;
    let failed = env.vmi_phase("vm1", "Failed").await;
    assert_eq!(failed.uid(), first.uid());

    assert_eq!(
        env.put("vm1", "start", json!({})).await,
        Err(conflict(
            "vm1",
            "RerunOnFailure does not support starting VM from failed state"
        ))
    );
    assert_eq!(env.vmi("vm1").await.unwrap().uid(), first.uid());

    env.release("vm1").await;
    let second = env.running_vmi("vm1", first.uid().as_deref()).await;
    assert_ne!(second.uid(), first.uid());
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("RerunOnFailure")
    );
}

// ---------------------------------------------------------------------------------------------
// Stop

/// §6.11: stop on Always switches the spec to Halted; the VMI goes through Stopping to
/// Stopped, with `created`/`ready` false and Ready=False (`VMINotExists`).
#[tokio::test(flavor = "multi_thread")]
async fn scenario_11_stop_always() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;

    env.put("vm1", "stop", json!({})).await.unwrap();
    env.vmi_gone("vm1").await;
    let s = env.stopped_without_vmi("vm1").await;
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Halted")
    );
    assert!(!s.created && !s.ready);
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("VMINotExists"));
    env.sync_vm("vm1").await;
    let seq = env.vm_history.printables("vm1");
    assert!(in_order(&seq, "Stopping", "Stopped"), "{seq:?}");
    assert!(env.launcher_pods(&vmi.uid().unwrap()).await.is_empty());
    env.stays_without_vmi("vm1").await;
}

/// A name that is not a VM name (percent-encoded `?` or `/`) never reaches another VM: the
/// request answers 404 for that name, and `vm1` keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn names_with_query_or_slash_address_no_other_vm() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;

    for (encoded, decoded) in [
        ("vm1%3Fanything", "vm1?anything"),
        ("vm1%2Fstop%3F", "vm1/stop?"),
        ("vm1%23x", "vm1#x"),
        ("VM1", "VM1"),
    ] {
        for action in ["stop", "restart"] {
            let not_found = (
                404,
                format!("virtualmachine.kubevirt.io \"{decoded}\" not found"),
            );
            assert_eq!(env.put(encoded, action, json!({})).await, Err(not_found));
        }
        let err = env.put_vmi(encoded, "pause", json!({})).await.unwrap_err();
        assert_eq!(err.0, 404, "{err:?}");
    }
    env.stays_without_vmi_change("vm1", &vmi.uid().unwrap(), "Running")
        .await;
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Always")
    );
}

/// A raw PUT to the subresource API: the HTTP code and the body as JSON (`null` when empty).
async fn put_raw(client: &Client, path: &str, body: impl Into<Vec<u8>>) -> (u16, Value) {
    let req = Request::put(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.into()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// virt-api's answers: a `dryRun` other than `["All"]` is refused and writes nothing; start
/// reads its body after the VM's state, stop before; conflicts and not-found carry details;
/// the version is KubeVirt's release with this build as metadata.
#[tokio::test(flavor = "multi_thread")]
async fn subresource_refusals_follow_virt_api() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;
    let path = |vm: &str, verb: &str| {
        format!("/apis/subresources.kubevirt.io/v1/namespaces/{NS}/virtualmachines/{vm}/{verb}")
    };

    // dryRun: anything but ["All"] is a 400, and the VM keeps running.
    for verb in ["stop", "restart"] {
        let (code, status) =
            put_raw(&env.client, &path("vm1", verb), br#"{"dryRun":["all"]}"#).await;
        assert_eq!(code, 400, "{verb}: {status}");
        assert_eq!(
            status["message"],
            "dryRun: Unsupported value: \"all\": supported values: \"All\""
        );
    }
    let err = env
        .put_vmi("vm1", "pause", json!({"dryRun": ["all"]}))
        .await
        .unwrap_err();
    assert_eq!(err.0, 400, "{err:?}");
    env.stays_without_vmi_change("vm1", &vmi.uid().unwrap(), "Running")
        .await;
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Always")
    );

    // A malformed body: start answers for the VM first, stop for the body first.
    let (code, status) = put_raw(&env.client, &path("nope", "start"), b"{not json").await;
    assert_eq!(code, 404, "{status}");
    assert_eq!(
        status["details"],
        json!({"name": "nope", "group": "kubevirt.io", "kind": "virtualmachine"})
    );
    let (code, status) = put_raw(&env.client, &path("vm1", "start"), b"{not json").await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running"
    );
    assert_eq!(
        status["details"],
        json!({"name": "vm1", "group": "kubevirt.io", "kind": "virtualmachine"})
    );
    let (code, status) = put_raw(&env.client, &path("nope", "stop"), b"{not json").await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Can not unmarshal Request body to struct, error: "),
        "{status}"
    );
    assert_eq!(status.get("details"), None, "{status}");

    // The version KubeVirt's virtctl compares its own with.
    let req = Request::get("/apis/subresources.kubevirt.io/v1/version")
        .body(Vec::new())
        .unwrap();
    let version: Value = env.client.request(req).await.unwrap();
    assert_eq!(
        version["gitVersion"],
        format!("v1.9.0+virt-toolkit.{}", env!("CARGO_PKG_VERSION"))
    );
}

/// A negative grace period is refused with restart's message, before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn stop_with_negative_grace_is_refused() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;
    let refused = Err((
        400,
        "gracePeriod has to be greater or equal to 0".to_string(),
    ));
    assert_eq!(
        env.put("vm1", "stop", json!({"gracePeriod": -5})).await,
        refused
    );
    assert_eq!(
        env.put("nope", "stop", json!({"gracePeriod": -5})).await,
        refused
    );
    env.stays_without_vmi_change("vm1", &vmi.uid().unwrap(), "Running")
        .await;
    assert_eq!(
        vmi.spec.termination_grace_period_seconds,
        env.vmis
            .get("vm1")
            .await
            .unwrap()
            .spec
            .termination_grace_period_seconds
    );
}

/// §6.12: stop on Manual or RerunOnFailure queues `[Stop{uid}]`; the VMI goes, the queue
/// empties, the strategy is kept, and nothing restarts.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_12_stop_manual_and_rerun_on_failure() {
    let env = Env::start().await;
    for (name, strategy) in [("vm-manual", "Manual"), ("vm-rerun", "RerunOnFailure")] {
        // Manual waits for a start; RerunOnFailure starts on its own.
        let vmi = if strategy == "Manual" {
            env.create_vm(vm_with_strategy(name, strategy)).await;
            env.put(name, "start", json!({})).await.unwrap();
            env.running_vmi(name, None).await
        } else {
            env.running_vm(vm_with_strategy(name, strategy)).await
        };
        eventually(20, "queue drained", async || {
            env.status(name)
                .await
                .state_change_requests
                .is_empty()
                .then_some(())
        })
        .await;
        let uid = vmi.uid().unwrap();

        env.put(name, "stop", json!({})).await.unwrap();
        env.vmi_gone(name).await;
        let s = env.stopped_without_vmi(name).await;
        eventually(20, "queue drained", async || {
            env.status(name)
                .await
                .state_change_requests
                .is_empty()
                .then_some(())
        })
        .await;
        assert!(!s.created);
        env.sync_vm(name).await;
        let queues = env.vm_history.queues(name);
        assert!(queues.contains(&vec![stop_req(&uid)]), "{queues:?}");
        assert_eq!(
            env.vm(name).await.spec.run_strategy.as_deref(),
            Some(strategy)
        );
        env.stays_without_vmi(name).await;
        env.vmi_uids(name, &[uid]).await;
    }
}

/// §6.14: stop on an Always VM that has no VMI (it is in crash-loop backoff) is accepted: the
/// spec becomes Halted and the start failure is cleared.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_14_stop_always_without_vmi() {
    let env = Env::start().await;
    let vm = with_template_annotations(
        vm_with_strategy("vm1", "Always"),
        &[(FAIL_BEFORE_RUNNING, "true")],
    );
    env.create_vm(vm).await;
    let s = env.printable_becomes("vm1", "CrashLoopBackOff").await;
    assert!(s.start_failure.unwrap().consecutive_fail_count >= 1);
    // The failed VMI goes; no new one comes while the VM backs off.
    env.vmi_gone("vm1").await;
    assert_eq!(
        env.status("vm1").await.printable_status.as_deref(),
        Some("CrashLoopBackOff")
    );

    env.put("vm1", "stop", json!({})).await.unwrap();
    assert_eq!(
        env.vm("vm1").await.spec.run_strategy.as_deref(),
        Some("Halted")
    );
    eventually(20, "startFailure cleared", async || {
        env.status("vm1")
            .await
            .start_failure
            .is_none()
            .then_some(())
    })
    .await;
    let s = env.stopped_without_vmi("vm1").await;
    assert_eq!(s.start_failure, None);
    env.stays_without_vmi("vm1").await;
}

// ---------------------------------------------------------------------------------------------
// Restart

/// §6.18: restart on Always, Manual and RerunOnFailure queues `[Stop{uid}, Start]`; a new VMI
/// runs, the strategy is kept, and the queue empties.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_18_restart_always_manual_rerun_on_failure() {
    let env = Env::start().await;
    for (name, strategy) in [
        ("vm-always", "Always"),
        ("vm-manual", "Manual"),
        ("vm-rerun", "RerunOnFailure"),
    ] {
        let vmi = if strategy == "Manual" {
            env.create_vm(vm_with_strategy(name, strategy)).await;
            env.put(name, "start", json!({})).await.unwrap();
            env.running_vmi(name, None).await
        } else {
            env.running_vm(vm_with_strategy(name, strategy)).await
        };
        eventually(20, "queue drained", async || {
            env.status(name)
                .await
                .state_change_requests
                .is_empty()
                .then_some(())
        })
        .await;
        let uid = vmi.uid().unwrap();

        env.put(name, "restart", json!({})).await.unwrap();
        let next = env.running_vmi(name, Some(&uid)).await;
        eventually(20, "Running, queue drained", async || {
            let s = env.status(name).await;
            (s.printable_status.as_deref() == Some("Running") && s.state_change_requests.is_empty())
                .then_some(())
        })
        .await;
        env.sync_vm(name).await;
        let queues = env.vm_history.queues(name);
        assert!(
            queues.contains(&vec![stop_req(&uid), start_req()]),
            "{strategy}: {queues:?}"
        );
        env.vmi_uids(name, &[uid, next.uid().unwrap()]).await;
        assert_eq!(
            env.vm(name).await.spec.run_strategy.as_deref(),
            Some(strategy)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Crash-loop backoff and failures

/// §6.24: a manual stop clears the crash-loop backoff, and so does the status patch of a start
/// (`remove /status/startFailure`): a start is not held back by a pending backoff.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_24_manual_stop_and_start_clear_backoff() {
    let env = Env::start().await;

    // An Always VM (deprecated `running: true`) whose VMIs never run: stop clears the backoff.
    let vm = with_template_annotations(
        vm_with_running("vm-crash", true),
        &[(FAIL_BEFORE_RUNNING, "true")],
    );
    env.create_vm(vm).await;
    let s = env.printable_becomes("vm-crash", "CrashLoopBackOff").await;
    assert!(s.start_failure.unwrap().consecutive_fail_count >= 1);
    env.put("vm-crash", "stop", json!({})).await.unwrap();
    assert_eq!(env.vm("vm-crash").await.spec.running, Some(false));
    eventually(20, "startFailure cleared", async || {
        let s = env.status("vm-crash").await;
        (s.start_failure.is_none() && s.printable_status.as_deref() == Some("Stopped"))
            .then_some(())
    })
    .await;

    // A stopped RerunOnFailure VM with a backoff that runs for minutes: start removes it and
    // the VMI starts at once.
    let first = env
        .running_vm(vm_with_strategy("vm-rerun", "RerunOnFailure"))
        .await;
    env.put("vm-rerun", "stop", json!({})).await.unwrap();
    env.vmi_gone("vm-rerun").await;
    env.printable_becomes("vm-rerun", "Stopped").await;
    let retry_after = (chrono::Utc::now() + chrono::Duration::seconds(300))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let failure = json!({"status": {"startFailure": {
        "consecutiveFailCount": 2,
        "lastFailedVMIUID": first.uid().unwrap(),
        "retryAfterTimestamp": retry_after,
    }}});
    env.vms
        .patch_status("vm-rerun", &PatchParams::default(), &Patch::Merge(&failure))
        .await
        .unwrap();
    env.printable_becomes("vm-rerun", "CrashLoopBackOff").await;
    assert!(env.vmi("vm-rerun").await.is_none());

    env.put("vm-rerun", "start", json!({})).await.unwrap();
    let s = env.status("vm-rerun").await;
    assert_eq!(s.start_failure, None, "the start request removed it");
    env.running_vmi("vm-rerun", first.uid().as_deref()).await;
    let s = env.printable_becomes("vm-rerun", "Running").await;
    assert_eq!(s.start_failure, None);
    env.sync_vm("vm-rerun").await;
    let queues = env.vm_history.queues("vm-rerun");
    assert!(queues.contains(&vec![start_req()]), "{queues:?}");
}

fn parse_time(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// §6.25: an Always VM whose VMI fails before it runs records `startFailure` (count 1, the
/// VMI's UID, a retry 10–15 s later), shows CrashLoopBackOff while it has no VMI, starts no
/// VMI before the retry time, and clears the failure once a VMI runs.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_25_crash_loop_backoff() {
    let env = Env::start().await;
    let vm = with_template_annotations(
        vm_with_strategy("vm1", "Always"),
        &[(FAIL_BEFORE_RUNNING, "true")],
    );
    env.create_vm(vm).await;
    let failure = eventually(20, "a start failure", async || {
        env.status("vm1").await.start_failure
    })
    .await;
    assert_eq!(failure.consecutive_fail_count, 1);
    let failed_uid = failure.last_failed_vmi_uid.clone().unwrap();
    env.vmi_uids("vm1", &[failed_uid]).await;

    // The VMI failed without ever running (revisions are recorded in order, and a Failed VMI
    // never changes phase again).
    env.vmi_history
        .until("the Failed VMI", |h| {
            h.of("vm1").iter().any(|(_, v)| v.phase() == "Failed")
        })
        .await;
    let revisions = env.vmi_history.of("vm1");
    assert!(revisions.iter().all(|(_, v)| v.phase() != "Running"));
    let failed_at = revisions
        .iter()
        .filter_map(|(_, v)| v.status.as_ref())
        .flat_map(|s| s.phase_transition_timestamps.clone())
        .find(|t| t.phase == "Failed")
        .and_then(|t| t.phase_transition_timestamp)
        .expect("a Failed transition");
    let retry_at = parse_time(failure.retry_after_timestamp.as_deref().unwrap());
    let delay = (retry_at - parse_time(&failed_at)).num_seconds();
    assert!((10..=16).contains(&delay), "retry after {delay} s");

    env.vmi_gone("vm1").await;
    assert_eq!(
        env.status("vm1").await.printable_status.as_deref(),
        Some("CrashLoopBackOff")
    );

    // The next guest will run; it is started only once the backoff is over.
    let patch = json!([{"op": "remove",
        "path": "/spec/template/metadata/annotations/localkube.dev~1fail-before-running"}]);
    env.vms
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(patch).unwrap()),
        )
        .await
        .unwrap();
    let next = eventually(25, "a VMI after the backoff", async || {
        let v = env.vmis.get_opt("vm1").await.ok()??;
        (v.phase() == "Running").then_some(v)
    })
    .await;
    let created = next.metadata.creation_timestamp.clone().unwrap().0;
    assert!(
        created.as_second() + 1 >= retry_at.timestamp(),
        "started at {created}, before the retry time {retry_at}"
    );
    let s = env.printable_becomes("vm1", "Running").await;
    assert_eq!(s.start_failure, None, "a VMI that runs clears it");
    env.sync_vm("vm1").await;
    let counts: Vec<i64> = env
        .vm_history
        .of("vm1")
        .iter()
        .filter_map(|(_, vm)| vm.status.as_ref()?.start_failure.as_ref())
        .map(|f| f.consecutive_fail_count)
        .collect();
    assert!(counts.iter().all(|c| *c == 1), "{counts:?}");
    env.vmi_count("vm1", 2).await;
}

/// §6.26: under RerunOnFailure a killed VMI (Failed) is replaced through a queued Start; a
/// guest poweroff (Succeeded) removes the VMI and nothing restarts.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_26_rerun_on_failure_after_failure() {
    let env = Env::start().await;
    let first = env
        .running_vm(vm_with_strategy("vm-kill", "RerunOnFailure"))
        .await;
    env.kill(&first).await;
    let second = env.running_vmi("vm-kill", first.uid().as_deref()).await;
    env.vmi_history
        .until("the killed VMI Failed", |h| {
            h.of("vm-kill")
                .iter()
                .any(|(_, v)| v.uid() == first.uid() && v.phase() == "Failed")
        })
        .await;
    env.sync_vm("vm-kill").await;
    let queues = env.vm_history.queues("vm-kill");
    assert!(queues.contains(&vec![start_req()]), "{queues:?}");
    env.vmi_uids("vm-kill", &[first.uid().unwrap(), second.uid().unwrap()])
        .await;
    env.printable_becomes("vm-kill", "Running").await;

    let vm = with_template_annotations(
        vm_with_strategy("vm-off", "RerunOnFailure"),
        &[(EXIT_CODE, "0"), (RUN_FOR, "1s")],
    );
    env.create_vm(vm).await;
    let ran = env.running_vmi("vm-off", None).await;
    env.vmi_gone("vm-off").await;
    env.vmi_history
        .until("the guest powered off (Succeeded)", |h| {
            h.of("vm-off").iter().any(|(_, v)| v.phase() == "Succeeded")
        })
        .await;
    env.printable_becomes("vm-off", "Stopped").await;
    env.stays_without_vmi("vm-off").await;
    env.vmi_uids("vm-off", &[ran.uid().unwrap()]).await;
    assert!(env.status("vm-off").await.state_change_requests.is_empty());
}

/// §6.27: a Halted VM that never had a VMI, switched to RerunOnFailure, starts one.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_27_switch_halted_to_rerun_on_failure() {
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("vm1", "Halted")).await;
    let s = env.printable_becomes("vm1", "Stopped").await;
    assert_eq!(s.run_strategy, None, "never created, so not recorded");

    env.merge_vm("vm1", json!({"spec": {"runStrategy": "RerunOnFailure"}}))
        .await;
    env.running_vmi("vm1", None).await;
    let s = env.printable_becomes("vm1", "Running").await;
    assert_eq!(s.run_strategy.as_deref(), Some("RerunOnFailure"));
    env.sync_vm("vm1").await;
    assert!(env.vm_history.queues("vm1").iter().all(Vec::is_empty));
}

// ---------------------------------------------------------------------------------------------
// Firmware UUID, deletion, adoption

/// §6.28, with Part A §3 in place of the mutating webhook: an empty firmware UUID is replaced
/// by the UUIDv5 of the VM name, a set one is never changed, and every VMI of a VM gets the
/// VM's UUID, across restarts.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_28_firmware_uuid() {
    const SET: &str = "3f0c6f52-8d5e-4b7a-9a61-2c4d8e9f1a07";
    let env = Env::start().await;
    env.create_vm(vm_with_strategy("testvm", "Halted")).await;
    let mut empty = vm_with_strategy("myvm", "Halted");
    empty["spec"]["template"]["spec"]["domain"]["firmware"] = json!({"uuid": ""});
    env.create_vm(empty).await;
    let mut set = vm_with_strategy("setvm", "Halted");
    set["spec"]["template"]["spec"]["domain"]["firmware"] = json!({"uuid": SET});
    env.create_vm(set).await;

    let uuid_of =
        |vm: &VirtualMachine| virt_reconciler::firmware::template_uuid(vm).map(str::to_string);
    for (name, want) in [
        ("testvm", "5a9fc181-957e-5c32-9e5a-2de5e9673531"),
        ("myvm", "cdf77e9e-871b-5acb-a707-80ef3d4b9849"),
        ("setvm", SET),
    ] {
        env.printable_becomes(name, "Stopped").await;
        let vm = env.vm(name).await;
        assert!(
            vm.finalizers()
                .iter()
                .any(|f| f.starts_with("kubevirt.io/")),
            "{name} was reconciled"
        );
        assert_eq!(uuid_of(&vm).as_deref(), Some(want), "{name}");
        // The set UUID was never rewritten, not even transiently.
        if name == "setvm" {
            env.sync_vm(name).await;
            assert!(
                env.vm_history
                    .of(name)
                    .iter()
                    .all(|(_, v)| uuid_of(v).as_deref() == Some(SET))
            );
        }

        env.put(name, "start", json!({})).await.unwrap();
        let first = env.running_vmi(name, None).await;
        let vmi_uuid = |v: &VirtualMachineInstance| {
            v.spec.domain.firmware.as_ref().and_then(|f| f.uuid.clone())
        };
        assert_eq!(vmi_uuid(&first).as_deref(), Some(want), "{name}");
        env.put(name, "restart", json!({})).await.unwrap();
        let second = env.running_vmi(name, first.uid().as_deref()).await;
        assert_eq!(vmi_uuid(&second).as_deref(), Some(want), "{name}");
        assert_eq!(uuid_of(&env.vm(name).await).as_deref(), Some(want));
    }
}

/// §6.32: deleting a running VM (background) deletes its VMI first, then the VM goes; with
/// `propagationPolicy: Orphan` the VM goes and the VMI keeps running with no owners.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_32_vm_deletion_cascade() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm-bg", "Always")).await;
    env.vms
        .delete("vm-bg", &DeleteParams::background())
        .await
        .unwrap();
    eventually(20, "VM and VMI gone", async || {
        (env.vms.get_opt("vm-bg").await.ok()?.is_none()
            && env.vmis.get_opt("vm-bg").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    env.vmi_history
        .until("the VMI deletion", |h| h.deleted("vm-bg"))
        .await;
    env.vm_history
        .until("the VM deletion", |h| h.deleted("vm-bg"))
        .await;
    let rv = |o: &kube::api::ObjectMeta| -> u64 {
        o.resource_version.as_deref().unwrap().parse().unwrap()
    };
    let gone = |deleted: Vec<(bool, kube::api::ObjectMeta)>| -> u64 {
        deleted
            .iter()
            .find(|(d, _)| *d)
            .map(|(_, m)| rv(m))
            .expect("a deletion")
    };
    let vmi_gone = gone(
        env.vmi_history
            .of("vm-bg")
            .into_iter()
            .map(|(d, v)| (d, v.metadata))
            .collect(),
    );
    let vm_gone = gone(
        env.vm_history
            .of("vm-bg")
            .into_iter()
            .map(|(d, v)| (d, v.metadata))
            .collect(),
    );
    assert!(vmi_gone < vm_gone, "the VMI went first");
    let seq = env.vm_history.printables("vm-bg");
    assert!(seq.contains(&"Terminating".to_string()), "{seq:?}");
    eventually(20, "launcher pod gone", async || {
        env.launcher_pods(&vmi.uid().unwrap())
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    let vmi = env
        .running_vm(vm_with_strategy("vm-orphan", "Always"))
        .await;
    let orphan = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..Default::default()
    };
    env.vms.delete("vm-orphan", &orphan).await.unwrap();
    eventually(20, "VM gone", async || {
        env.vms
            .get_opt("vm-orphan")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let left = env.vmi("vm-orphan").await.expect("the VMI stays");
    assert_eq!(left.uid(), vmi.uid());
    assert_eq!(left.phase(), "Running");
    assert!(left.owner_references().is_empty());
    assert!(left.metadata.deletion_timestamp.is_none());
    let pods = env.launcher_pods(&vmi.uid().unwrap()).await;
    assert_eq!(pods.len(), 1);
    assert!(pods[0].metadata.deletion_timestamp.is_none());
}

/// The controller reference a VM puts on its VMI.
fn assert_owned_by(vmi: &VirtualMachineInstance, vm: &VirtualMachine) {
    let owners = vmi.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let owner = &owners[0];
    assert_eq!(owner.api_version, "kubevirt.io/v1");
    assert_eq!(owner.kind, "VirtualMachine");
    assert_eq!(Some(&owner.name), vm.metadata.name.as_ref());
    assert_eq!(Some(&owner.uid), vm.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
}

/// §6.33: a VMI without owners (left by an orphaning delete) is adopted by a new VM of the
/// same name; no second VMI is created.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_33_orphan_adoption_after_orphaning_delete() {
    let env = Env::start().await;
    let first = env.running_vm(vm_with_strategy("vm1", "Always")).await;
    let orphan = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..Default::default()
    };
    env.vms.delete("vm1", &orphan).await.unwrap();
    eventually(20, "VM gone", async || {
        env.vms.get_opt("vm1").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(env.vmi("vm1").await.unwrap().owner_references().is_empty());

    let vm = env.create_vm(vm_with_strategy("vm1", "Always")).await;
    let adopted = eventually(20, "adopted", async || {
        let v = env.vmis.get("vm1").await.ok()?;
        (!v.owner_references().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(adopted.uid(), first.uid());
    assert_owned_by(&adopted, &vm);
    let s = env.printable_becomes("vm1", "Running").await;
    assert!(s.created && s.ready);
    env.stays_without_vmi_change("vm1", &first.uid().unwrap(), "Running")
        .await;
    env.vmi_uids("vm1", &[first.uid().unwrap()]).await;
}

/// §6.33 as written: a VMI created on its own (no owners, no finalizers) runs, and a VM of the
/// same name adopts it; no second VMI is created.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_33_orphan_adoption() {
    let env = Env::start().await;
    let template = base_vm("vm1")["spec"]["template"].clone();
    let vmi = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    let vmi: VirtualMachineInstance = serde_json::from_value(vmi).unwrap();
    env.vmis.create(&PostParams::default(), &vmi).await.unwrap();
    let orphan = env.running_vmi("vm1", None).await;
    assert!(orphan.owner_references().is_empty());

    let vm = env.create_vm(vm_with_strategy("vm1", "Always")).await;
    let adopted = eventually(20, "adopted", async || {
        let v = env.vmis.get("vm1").await.ok()?;
        (!v.owner_references().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(adopted.uid(), orphan.uid());
    assert_owned_by(&adopted, &vm);
    let s = env.printable_becomes("vm1", "Running").await;
    assert!(s.created && s.ready);
    env.stays_without_vmi_change("vm1", &orphan.uid().unwrap(), "Running")
        .await;
    env.vmi_uids("vm1", &[orphan.uid().unwrap()]).await;
}

/// §6.34 (server side) and §2.7: pause and unpause through the subresource API. The VMI gets
/// and loses `Paused=True`, the VM shows `Paused` and back `Running`, and the refusals carry
/// virt-api's codes and messages.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_34_pause_and_unpause() {
    let env = Env::start().await;
    let vmi_conflict = |reason: &str| {
        (
            409,
            format!(
                "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": {reason}"
            ),
        )
    };
    let not_found = (
        404,
        "virtualmachineinstance.kubevirt.io \"vm1\" not found".to_string(),
    );
    env.create_vm(vm_with_strategy("vm1", "Halted")).await;
    env.printable_becomes("vm1", "Stopped").await;
    assert_eq!(
        env.put_vmi("vm1", "pause", json!({})).await,
        Err(not_found.clone())
    );
    assert_eq!(
        env.put_vmi("vm1", "unpause", json!({})).await,
        Err(not_found)
    );
    env.vms.delete("vm1", &Default::default()).await.unwrap();
    env.vmi_gone("vm1").await;
    eventually(20, "vm1 gone", async || {
        env.vms.get_opt("vm1").await.ok()?.is_none().then_some(())
    })
    .await;

    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;
    let paused = |v: &VirtualMachineInstance| {
        v.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Paused"))
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
    };
    assert_eq!(
        env.put_vmi("vm1", "unpause", json!({})).await,
        Err(vmi_conflict("VMI is not paused"))
    );
    // A dry run checks and writes nothing.
    env.put_vmi("vm1", "pause", json!({"dryRun": ["All"]}))
        .await
        .unwrap();
    env.stays_without_vmi_change("vm1", &vmi.uid().unwrap(), "Running")
        .await;
    assert_eq!(paused(&env.vmi("vm1").await.unwrap()), None);

    env.put_vmi("vm1", "pause", json!({})).await.unwrap();
    let now = env.vmi("vm1").await.unwrap();
    assert_eq!(now.uid(), vmi.uid(), "pausing keeps the VMI");
    assert_eq!(paused(&now), Some(("True".into(), "PausedByUser".into())));
    let s = env.printable_becomes("vm1", "Paused").await;
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.status == "True")
    );
    // A paused VM is not Ready (so `kubectl wait --for=condition=Ready` does not pass).
    let ready_of = |conditions: &[virt_reconciler::types::Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
    };
    let not_ready = Some(("False".to_string(), "ReadinessGatesNotReady".to_string()));
    eventually(10, "the paused VM not Ready", async || {
        let vm = env.vm("vm1").await;
        let vmi = env.vmi("vm1").await?;
        let vm_ready = ready_of(&vm.status?.conditions);
        let vmi_ready = ready_of(&vmi.status?.conditions);
        (vm_ready == not_ready && vmi_ready == not_ready).then_some(())
    })
    .await;
    assert_eq!(
        env.put_vmi("vm1", "pause", json!({})).await,
        Err(vmi_conflict("VMI is already paused"))
    );
    // The VMI controller keeps the condition while it goes on syncing the launcher Pod.
    env.stays_without_vmi_change("vm1", &vmi.uid().unwrap(), "Running")
        .await;
    assert!(paused(&env.vmi("vm1").await.unwrap()).is_some());

    env.put_vmi("vm1", "unpause", json!({})).await.unwrap();
    assert_eq!(paused(&env.vmi("vm1").await.unwrap()), None);
    env.printable_becomes("vm1", "Running").await;
    eventually(10, "the unpaused VM Ready again", async || {
        let vm = env.vm("vm1").await;
        (ready_of(&vm.status?.conditions)?.0 == "True").then_some(())
    })
    .await;

    // A liveness probe other than the guest-agent ping cannot be paused (403).
    env.vmis
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"livenessProbe": {"tcpSocket": {"port": 22}}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        env.put_vmi("vm1", "pause", json!({})).await,
        Err((
            403,
            "virtualmachineinstance.kubevirt.io \"vm1\" is forbidden: Pausing VMIs with a \
             non-GuestAgentPing LivenessProbe is not supported"
                .to_string()
        ))
    );

    // Once stopped, the VMI is gone: 404 again.
    env.put("vm1", "stop", json!({})).await.unwrap();
    env.vmi_gone("vm1").await;
    assert_eq!(
        env.put_vmi("vm1", "pause", json!({})).await.unwrap_err().0,
        404
    );
}

// ---------------------------------------------------------------------------------------------
// The simulated node's hook used above

/// `localkube.dev/fail-before-running: "true"`: the node binds the pod and fails it without
/// ever reporting it Running.
#[tokio::test(flavor = "multi_thread")]
async fn node_hook_fails_a_pod_before_it_runs() {
    let env = Env::start().await;
    let history = History::record(env.pods.clone()).await;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "doomed", "annotations": {FAIL_BEFORE_RUNNING: "true"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    env.pods.create(&PostParams::default(), &pod).await.unwrap();
    let failed = eventually(20, "the pod Failed", async || {
        let p = env.pods.get("doomed").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    assert!(failed.spec.unwrap().node_name.is_some(), "it was bound");
    let status = failed.status.unwrap();
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("StartError"));
    assert!(status.pod_ip.is_none());
    history
        .until("the Failed pod", |h| {
            h.of("doomed")
                .iter()
                .any(|(_, p)| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        })
        .await;
    let phases: Vec<String> = history
        .of("doomed")
        .iter()
        .filter_map(|(_, p)| p.status.as_ref()?.phase.clone())
        .collect();
    assert!(!phases.iter().any(|p| p == "Running"), "{phases:?}");
}

/// A drained node, as `kubectl drain` leaves it: the launcher Pod is evicted, the VMI ends, and
/// the VM's next launcher Pod waits for the cordon to lift (the VM shows `ErrorUnschedulable`,
/// as on a one-node cluster); the uncordon runs it.
#[tokio::test(flavor = "multi_thread")]
async fn a_drained_node_evicts_the_vm_and_its_next_pod_waits_for_the_uncordon() {
    let env = Env::start().await;
    let vmi = env.running_vm(vm_with_strategy("vm1", "Always")).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
    let cordon = async |on: bool| {
        let patch = json!({"spec": {"unschedulable": on}});
        nodes
            .patch(
                "localkube-node",
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .unwrap();
    };
    cordon(true).await;
    let old = vmi.uid().unwrap();
    let launcher = env.launcher_pods(&old).await.remove(0);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    pods.evict(&launcher.name_any(), &Default::default())
        .await
        .unwrap();
    eventually(30, "vm1 waiting as ErrorUnschedulable", async || {
        let status = env.vms.get("vm1").await.ok()?.status?;
        (status.printable_status.as_deref() == Some("ErrorUnschedulable")).then_some(())
    })
    .await;
    let waiting = env.vmi("vm1").await.expect("the next VMI");
    assert_ne!(waiting.uid().as_deref(), Some(old.as_str()));
    let pending = env.launcher_pods(&waiting.uid().unwrap()).await;
    assert!(
        pending
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.is_none()),
        "{pending:?}"
    );
    cordon(false).await;
    env.running_vmi("vm1", Some(&old)).await;
    eventually(30, "vm1 Running again", async || {
        let status = env.vms.get("vm1").await.ok()?.status?;
        (status.printable_status.as_deref() == Some("Running")).then_some(())
    })
    .await;
}
