//! A controller killed mid-flight and restarted converges, and no VM ever has two VMIs.
//!
//! `virt-controller run` drives 20 VMs (running: true) on an in-process localkube with the
//! simulated node. It is SIGKILLed twice at random-ish moments while VMs, VMIs and launcher
//! Pods are being created, and restarted each time. A watch that runs through the whole test
//! records every VMI and launcher Pod that ever existed. In the end every VM is Running with
//! exactly one VMI, each VM got exactly one VMI in its life (one uid: nothing here restarts
//! them), never two at once, and each VMI got exactly one launcher Pod.

mod ha_support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use ha_support::{Cluster, eventually, running_vm};

const VMS: usize = 20;
const IDENTITY: &str = "crash-test";

/// Everything the watches saw.
#[derive(Default)]
struct History {
    /// VMI uids by VM name, in the order they first appeared.
    vmis: HashMap<String, Vec<String>>,
    /// The VMI that exists now, by name.
    live_vmis: HashMap<String, String>,
    /// Launcher Pod uids by the uid of their VMI (`kubevirt.io/created-by`).
    pods: HashMap<String, HashSet<String>>,
    /// Invariants broken while it happened.
    violations: Vec<String>,
    vmis_synced: bool,
    pods_synced: bool,
}

impl History {
    fn vmi_seen(&mut self, vmi: &VirtualMachineInstance) {
        let name = vmi.name_any();
        let uid = vmi.uid().unwrap_or_default();
        if let Some(other) = self.live_vmis.get(&name)
            && *other != uid
        {
            self.violations.push(format!(
                "VM {name}: VMI {uid} appeared while VMI {other} still existed"
            ));
        }
        self.live_vmis.insert(name.clone(), uid.clone());
        let uids = self.vmis.entry(name).or_default();
        if !uids.contains(&uid) {
            uids.push(uid);
        }
    }

    fn vmi_gone(&mut self, vmi: &VirtualMachineInstance) {
        let name = vmi.name_any();
        if self.live_vmis.get(&name) == vmi.uid().as_ref() {
            self.live_vmis.remove(&name);
        }
    }

    fn pod_seen(&mut self, pod: &Pod) {
        let Some(vmi_uid) = pod.labels().get("kubevirt.io/created-by").cloned() else {
            return;
        };
        self.pods
            .entry(vmi_uid)
            .or_default()
            .insert(pod.uid().unwrap_or_default());
    }

    fn vmis_created(&self) -> usize {
        self.vmis.values().map(Vec::len).sum()
    }
}

/// Watches VMIs and launcher Pods in `default` for the rest of the test.
fn record(client: &kube::Client, history: Arc<Mutex<History>>) {
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let h = history.clone();
    tokio::spawn(async move {
        let mut events = watcher(vmis, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let mut h = h.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(v) | watcher::Event::InitApply(v)) => h.vmi_seen(&v),
                Ok(watcher::Event::Delete(v)) => h.vmi_gone(&v),
                // A relist: what it does not bring back is gone.
                Ok(watcher::Event::Init) => h.live_vmis.clear(),
                Ok(watcher::Event::InitDone) => h.vmis_synced = true,
                Err(e) => eprintln!("VMI watch: {e}"),
            }
        }
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    tokio::spawn(async move {
        let cfg = watcher::Config::default().labels("kubevirt.io=virt-launcher");
        let mut events = watcher(pods, cfg).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let mut h = history.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => h.pod_seen(&p),
                Ok(watcher::Event::InitDone) => h.pods_synced = true,
                Ok(_) => {}
                Err(e) => eprintln!("Pod watch: {e}"),
            }
        }
    });
}

/// The VMs, VMIs and launcher Pods in `default`.
struct Snapshot {
    vms: Vec<VirtualMachine>,
    vmis: Vec<VirtualMachineInstance>,
    pods: Vec<Pod>,
}

async fn snapshot(client: &kube::Client) -> Snapshot {
    let lp = ListParams::default();
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), "default");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Snapshot {
        vms: vms.list(&lp).await.unwrap().items,
        vmis: vmis.list(&lp).await.unwrap().items,
        pods: pods
            .list(&ListParams::default().labels("kubevirt.io=virt-launcher"))
            .await
            .unwrap()
            .items,
    }
}

impl Snapshot {
    fn converged(&self) -> bool {
        let running_vms = self
            .vms
            .iter()
            .filter(|v| {
                v.status
                    .as_ref()
                    .and_then(|s| s.printable_status.as_deref())
                    == Some("Running")
            })
            .count();
        let running_vmis = self.vmis.iter().filter(|v| v.phase() == "Running").count();
        running_vms == VMS && running_vmis == VMS
    }

    /// One line per VM that is not Running, with its VMI and Pods, for a failure message.
    fn describe(&self) -> String {
        let mut out = format!(
            "{} VMs, {} VMIs, {} launcher Pods; not Running:\n",
            self.vms.len(),
            self.vmis.len(),
            self.pods.len()
        );
        for vm in &self.vms {
            let status = vm.status.as_ref();
            let printable = status.and_then(|s| s.printable_status.clone());
            let vmi = self.vmis.iter().find(|v| v.name_any() == vm.name_any());
            if printable.as_deref() == Some("Running")
                && vmi.is_some_and(|v| v.phase() == "Running")
            {
                continue;
            }
            out.push_str(&format!(
                "VM {} {printable:?} finalizers={:?}\n",
                vm.name_any(),
                vm.finalizers()
            ));
            if let Some(v) = vmi {
                let uid = v.uid().unwrap_or_default();
                out.push_str(&format!(
                    "  VMI {uid} phase={:?} finalizers={:?} deleting={}\n",
                    v.phase(),
                    v.finalizers(),
                    v.metadata.deletion_timestamp.is_some()
                ));
                for p in self
                    .pods
                    .iter()
                    .filter(|p| p.labels().get("kubevirt.io/created-by") == Some(&uid))
                {
                    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                    out.push_str(&format!(
                        "    Pod {} {phase:?} deleting={}\n",
                        p.name_any(),
                        p.metadata.deletion_timestamp.is_some()
                    ));
                }
            } else {
                out.push_str("  no VMI\n");
            }
        }
        out
    }
}

async fn wait_ready(c: &ha_support::Controller) {
    eventually(15, "the controller to lead", async || {
        (c.ready().await == Some(true)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_killed_mid_flight_converges_without_a_second_vmi() {
    let seed = test_support::seed_from_env("CRASH_TEST_SEED");
    // Kill the first controller once this many VMIs exist (1..=8), and the second this long
    // after it leads (50..=300 ms).
    let first_kill_at = 1 + (seed % 8) as usize;
    let second_kill_after = Duration::from_millis(50 + (seed / 8) % 251);
    eprintln!(
        "seed {seed} (CRASH_TEST_SEED replays it): first kill after {first_kill_at} VMIs, \
         second {second_kill_after:?} after the restart"
    );

    let cluster = Cluster::start(true).await;
    let history = Arc::new(Mutex::new(History::default()));
    record(&cluster.client, history.clone());
    eventually(10, "the watches to sync", async || {
        let h = history.lock().unwrap();
        (h.vmis_synced && h.pods_synced).then_some(())
    })
    .await;

    let first = cluster.controller(IDENTITY);
    wait_ready(&first).await;

    // The VMs arrive over about 300 ms, so the kill lands while creates are in flight.
    let vms: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), "default");
    let creates: Vec<_> = (0..VMS)
        .map(|i| {
            let vms = vms.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(15 * i as u64)).await;
                vms.create(&PostParams::default(), &running_vm(&format!("vm-{i:02}")))
                    .await
                    .unwrap();
            })
        })
        .collect();
    eventually(15, "the first VMIs", async || {
        (history.lock().unwrap().vmis_created() >= first_kill_at).then_some(())
    })
    .await;
    first.kill();
    eprintln!(
        "killed the first controller with {} VMIs created",
        history.lock().unwrap().vmis_created()
    );

    // The same identity holds the Lease, so the restarted process leads at once.
    let second = cluster.controller(IDENTITY);
    wait_ready(&second).await;
    tokio::time::sleep(second_kill_after).await;
    second.kill();
    eprintln!(
        "killed the second controller with {} VMIs created",
        history.lock().unwrap().vmis_created()
    );
    for c in creates {
        c.await.unwrap();
    }

    let third = cluster.controller(IDENTITY);
    wait_ready(&third).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let state = snapshot(&cluster.client).await;
        if state.converged() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not converged after 40 s:\n{}",
            state.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a late duplicate the time to show itself.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let Snapshot {
        vms: vm_list,
        vmis: vmi_list,
        pods,
    } = snapshot(&cluster.client).await;
    assert_eq!(vm_list.len(), VMS);
    assert_eq!(vmi_list.len(), VMS);
    assert_eq!(pods.len(), VMS, "one launcher Pod per VMI");
    let h = history.lock().unwrap();
    assert!(h.violations.is_empty(), "{:#?}", h.violations);
    for vm in &vm_list {
        let name = vm.name_any();
        let vmi = vmi_list
            .iter()
            .find(|v| v.name_any() == name)
            .unwrap_or_else(|| panic!("{name} has no VMI"));
        let owner = vmi.owner_references();
        assert!(
            owner
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == vm.meta().uid.as_ref()),
            "{name}'s VMI is not controlled by it: {owner:?}"
        );
        let uid = vmi.uid().unwrap();
        assert_eq!(
            h.vmis.get(&name),
            Some(&vec![uid.clone()]),
            "{name} got more than one VMI over the test"
        );
        let launchers = h.pods.get(&uid).map(HashSet::len).unwrap_or(0);
        assert_eq!(launchers, 1, "{name}'s VMI got {launchers} launcher Pods");
    }
    drop(h);
    third.kill();
}
