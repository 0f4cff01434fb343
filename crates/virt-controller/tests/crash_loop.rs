//! A controller in a crash loop never gives a VM two launcher Pods, and converges once the
//! crashes stop (issue 14).
//!
//! 20 VMs (runStrategy Always) on an in-process localkube with the simulated node, virt-api's
//! subresources served in-process (so that `virtctl restart` takes the cluster's path), and
//! `virt-controller run` as its own process. For `CRASH_LOOP_SECS` (default 120) the
//! controller is SIGKILLed every 5 s ± 1.5 s and started again, while two loops run the real
//! `virtctl restart` on random VMs. The schedule comes from a seed, printed first
//! (`CRASH_LOOP_SEED` replays it).
//!
//! What is checked, while it runs:
//! - every 200 ms a list of the launcher Pods (`kubevirt.io=virt-launcher`): at most one **live**
//!   Pod per VM, live meaning phase Pending, Running or unset and no deletionTimestamp (a Pod
//!   that is being deleted or has finished runs no guest that matters). The same sample also
//!   asserts the stronger property this project keeps (Part A §6): at most one launcher Pod
//!   object per VM at all, since a VMI keeps its finalizer until its Pods are gone and the next
//!   VMI (same name) can only be created after that. KubeVirt itself only promises the first:
//!   its VMI may go while the old Pod is still terminating;
//! - a watch of every launcher Pod: no VMI ever gets a second Pod (a duplicate that lived less
//!   than a sample apart is caught here);
//! - a watch of every VMI: none fails unless it is being deleted (nothing fails on the
//!   simulated node, so a Failed VMI is one a restarted controller failed, e.g. for a Pod its
//!   cache did not show yet; a VMI deleted before it ran ends Failed by design), and there are
//!   no more VMIs than the VMs' first ones plus one per accepted restart;
//! - every `virtctl restart` is accepted (`VM x was scheduled to restart`) or refused with
//!   one of KubeVirt's answers for the moment it lands: no VMI (`VM is not running: Halted`),
//!   a restart still queued (`stop/start already underway`), or a lost race (409).
//!
//! After the last kill: within 30 s every VM is Running with exactly one Running VMI that it
//! controls, exactly one launcher Pod, and nothing left in its queue.

mod ha_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use virt_reconciler::vmi::{CREATED_BY_LABEL, VM_NAME_LABEL};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use ha_support::{Cluster, Controller};

const VMS: usize = 20;
const IDENTITY: &str = "crash-loop";
const DEFAULT_SECS: u64 = 120;
const KILL_EVERY_MS: u64 = 5_000;
const KILL_JITTER_MS: u64 = 1_500;
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
const RESTART_LOOPS: usize = 2;
const LAUNCHERS: &str = "kubevirt.io=virt-launcher";

/// One sample's count of a VM's launcher Pods.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodCount {
    live: Vec<String>,
    all: Vec<String>,
}

/// Whether a launcher Pod is live: it may run a guest (phase Pending, Running or not yet set)
/// and nobody has asked it to go.
fn is_live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none()
        && matches!(phase, None | Some("Pending") | Some("Running"))
}

/// A Pod as a failure message shows it: name, phase, and whether it is being deleted.
fn describe_pod(pod: &Pod) -> String {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let deleting = if pod.metadata.deletion_timestamp.is_some() {
        " deleting"
    } else {
        ""
    };
    format!(
        "{} ({}{deleting})",
        pod.name_any(),
        phase.unwrap_or("no phase")
    )
}

/// The launcher Pods of one sample by VM (`vm.kubevirt.io/name`), and what breaks the rules:
/// more than one live Pod for a VM, or more than one Pod at all.
fn census(pods: &[Pod]) -> (BTreeMap<String, PodCount>, Vec<String>) {
    let mut by_vm: BTreeMap<String, PodCount> = BTreeMap::new();
    for pod in pods {
        let vm = pod.labels().get(VM_NAME_LABEL).cloned().unwrap_or_default();
        let count = by_vm.entry(vm).or_default();
        if is_live(pod) {
            count.live.push(describe_pod(pod));
        }
        count.all.push(describe_pod(pod));
    }
    let mut broken = Vec::new();
    for (vm, count) in &by_vm {
        if count.live.len() > 1 {
            broken.push(format!(
                "VM {vm}: {} live launcher Pods: {:?}",
                count.live.len(),
                count.live
            ));
        } else if count.all.len() > 1 {
            broken.push(format!(
                "VM {vm}: {} launcher Pods: {:?}",
                count.all.len(),
                count.all
            ));
        }
    }
    (by_vm, broken)
}

/// What the test saw going wrong, with the time since the start.
#[derive(Default)]
struct Findings {
    violations: Vec<String>,
    samples: usize,
    /// Launcher Pod uids by the uid of their VMI, from the watch.
    pods_of_vmi: HashMap<String, HashSet<String>>,
    pods_synced: bool,
    /// The uids of every VMI seen, from the watch.
    vmis: HashSet<String>,
    /// The uids of the VMIs seen Failed.
    failed: HashSet<String>,
    vmis_synced: bool,
    /// virtctl restart answers by kind.
    restarts: BTreeMap<&'static str, usize>,
    kills: usize,
}

impl Findings {
    fn violation(&mut self, since: Instant, what: String) {
        eprintln!(
            "VIOLATION at {:.1} s: {what}",
            since.elapsed().as_secs_f64()
        );
        self.violations
            .push(format!("at {:.1} s: {what}", since.elapsed().as_secs_f64()));
    }
}

type Shared = Arc<Mutex<Findings>>;

/// A VM with runStrategy Always in `default` that stops at once.
fn always_vm(name: &str) -> VirtualMachine {
    serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"kubevirt.io/vm": name}},
                "spec": {
                    "domain": {"devices": {}, "resources": {"requests": {"memory": "64M"}}},
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }))
    .unwrap()
}

fn vm_name(i: usize) -> String {
    format!("vm-{i:02}")
}

/// How long the crash loop runs: `CRASH_LOOP_SECS`, default two minutes.
fn chaos_duration() -> Duration {
    let secs = std::env::var("CRASH_LOOP_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("CRASH_LOOP_SECS={s:?} is not a number of seconds"))
        })
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs(secs)
}

/// Every 200 ms: the launcher Pods, counted per VM.
fn sample(
    client: kube::Client,
    findings: Shared,
    since: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let listed = pods.list(&ListParams::default().labels(LAUNCHERS)).await;
            let mut f = findings.lock().unwrap();
            match listed {
                Ok(list) => {
                    f.samples += 1;
                    for broken in census(&list.items).1 {
                        f.violation(since, broken);
                    }
                }
                Err(e) => f.violation(since, format!("listing launcher Pods failed: {e}")),
            }
        }
    })
}

/// Watches every launcher Pod for the whole test: each VMI must get one at most.
fn watch_pods(
    client: kube::Client,
    findings: Shared,
    since: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let mut events = watcher(pods, watcher::Config::default().labels(LAUNCHERS))
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let mut f = findings.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    let Some(vmi) = p.labels().get(CREATED_BY_LABEL).cloned() else {
                        continue;
                    };
                    let uid = p.uid().unwrap_or_default();
                    let seen = f.pods_of_vmi.entry(vmi.clone()).or_default();
                    // How many Pods the VMI has had, when this one is new to it.
                    let n = if seen.insert(uid) { seen.len() } else { 0 };
                    if n > 1 {
                        f.violation(
                            since,
                            format!(
                                "VMI {vmi} got launcher Pod number {n}: {}",
                                describe_pod(&p)
                            ),
                        );
                    }
                }
                Ok(watcher::Event::InitDone) => f.pods_synced = true,
                Ok(_) => {}
                Err(e) => eprintln!("launcher Pod watch: {e}"),
            }
        }
    })
}

/// Watches every VMI for the whole test: none may fail unless it is being deleted (nothing fails
/// on the simulated node, so a Failed VMI is one the controller failed, e.g. for a launcher Pod
/// it did not see yet).
fn watch_vmis(
    client: kube::Client,
    findings: Shared,
    since: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let vmis: Api<VirtualMachineInstance> = Api::namespaced(client, "default");
        let mut events = watcher(vmis, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let mut f = findings.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(v) | watcher::Event::InitApply(v)) => {
                    let uid = v.uid().unwrap_or_default();
                    f.vmis.insert(uid.clone());
                    // A VMI deleted before it ran ends Failed (Part A §6): that is a restart's.
                    let deleting = v.metadata.deletion_timestamp.is_some();
                    if v.phase() == "Failed" && !deleting && f.failed.insert(uid.clone()) {
                        let name = v.name_any();
                        f.violation(since, format!("VMI {name} ({uid}) Failed"));
                    }
                }
                Ok(watcher::Event::InitDone) => f.vmis_synced = true,
                Ok(_) => {}
                Err(e) => eprintln!("VMI watch: {e}"),
            }
        }
    })
}

/// How a `virtctl restart` ended, by kind, or `None` when it is none of KubeVirt's answers.
fn restart_answer(vm: &str, code: i32, stdout: &str, stderr: &str) -> Option<&'static str> {
    let conflict = format!(
        "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{vm}\": "
    );
    let stderr = stderr.trim_end();
    match code {
        0 if stdout == format!("VM {vm} was scheduled to restart\n") => Some("accepted"),
        1 if stderr == format!("{conflict}VM is not running: Halted") => Some("refused: no VMI"),
        1 if stderr
            == "error restarting VirtualMachine: Internal error occurred: unable to complete \
                request: stop/start already underway" =>
        {
            Some("refused: already underway")
        }
        1 if stderr.starts_with(&conflict) && !stderr.contains('\n') => Some("refused: lost race"),
        _ => None,
    }
}

fn virtctl_restart(
    virtctl: &Path,
    kubeconfig: &Path,
    home: &Path,
    vm: &str,
) -> std::process::Output {
    std::process::Command::new(virtctl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["restart", vm])
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("virtctl runs")
}

/// Runs `virtctl restart` on random VMs, 50 to 400 ms apart, until `stop`.
#[allow(clippy::too_many_arguments)]
fn restart_loop(
    virtctl: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    seed: u64,
    findings: Shared,
    since: Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        while !stop.load(Ordering::Relaxed) {
            let vm = vm_name(rng.random_range(0..VMS));
            let pause = Duration::from_millis(rng.random_range(50..=400));
            let (virtctl, kubeconfig, home, name) = (
                virtctl.clone(),
                kubeconfig.clone(),
                home.clone(),
                vm.clone(),
            );
            let out = tokio::task::spawn_blocking(move || {
                virtctl_restart(&virtctl, &kubeconfig, &home, &name)
            })
            .await
            .unwrap();
            let code = out.status.code().unwrap_or(-1);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            {
                let mut f = findings.lock().unwrap();
                match restart_answer(&vm, code, &stdout, &stderr) {
                    Some(kind) => *f.restarts.entry(kind).or_default() += 1,
                    None => f.violation(
                        since,
                        format!("virtctl restart {vm}: exit {code}, stdout {stdout:?}, stderr {stderr:?}"),
                    ),
                }
            }
            tokio::time::sleep(pause).await;
        }
    })
}

/// Five distinct VMs to restart just before the last kill.
fn last_burst(rng: &mut StdRng) -> Vec<String> {
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < 5 {
        picked.insert(rng.random_range(0..VMS));
    }
    picked.into_iter().map(vm_name).collect()
}

/// Starts the controller on a blocking thread (it reads the process's first lines).
async fn start_controller(kubeconfig: PathBuf) -> Controller {
    tokio::task::spawn_blocking(move || Controller::spawn(&kubeconfig, IDENTITY))
        .await
        .unwrap()
}

/// The VMs, VMIs and launcher Pods in `default`, and why they are not converged yet, if so.
async fn convergence(client: &kube::Client) -> Result<(), String> {
    let lp = ListParams::default();
    let vms: Vec<VirtualMachine> = Api::namespaced(client.clone(), "default")
        .list(&lp)
        .await
        .map_err(|e| e.to_string())?
        .items;
    let vmis: Vec<VirtualMachineInstance> = Api::namespaced(client.clone(), "default")
        .list(&lp)
        .await
        .map_err(|e| e.to_string())?
        .items;
    let pods: Vec<Pod> = Api::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(LAUNCHERS))
        .await
        .map_err(|e| e.to_string())?
        .items;
    let (by_vm, _) = census(&pods);
    let mut not_yet = Vec::new();
    for vm in &vms {
        let name = vm.name_any();
        let status = vm.status.clone().unwrap_or_default();
        let printable = status.printable_status.clone().unwrap_or_default();
        let vmi = vmis.iter().find(|v| v.name_any() == name);
        let controlled = vmi.is_some_and(|v| {
            v.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == vm.meta().uid.as_ref())
        });
        let pods = by_vm.get(&name).map(|c| c.all.clone()).unwrap_or_default();
        let ok = printable == "Running"
            && vmi
                .is_some_and(|v| v.phase() == "Running" && v.metadata.deletion_timestamp.is_none())
            && controlled
            && pods.len() == 1
            && status.state_change_requests.is_empty();
        if !ok {
            not_yet.push(format!(
                "{name}: {printable:?}, VMI {:?}, controlled {controlled}, pods {pods:?}, queue {:?}, \
                 startFailure {:?}",
                vmi.map(|v| (v.uid().unwrap_or_default(), v.phase().to_string())),
                status.state_change_requests,
                status.start_failure
            ));
        }
    }
    if vms.len() != VMS {
        not_yet.push(format!("{} VMs", vms.len()));
    }
    if not_yet.is_empty() {
        Ok(())
    } else {
        Err(not_yet.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_in_a_crash_loop_never_gives_a_vm_two_launcher_pods() {
    let seed = test_support::seed_from_env("CRASH_LOOP_SEED");
    let chaos = chaos_duration();
    eprintln!(
        "seed {seed} (CRASH_LOOP_SEED={seed} replays it); {} s of crashes (CRASH_LOOP_SECS)",
        chaos.as_secs()
    );
    let virtctl =
        tokio::task::spawn_blocking(|| test_support::workspace_binary("virtctl", "virtctl"))
            .await
            .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);

    let cluster = Cluster::start(true).await;
    let _virt_api = virt_api::loopback::serve(
        &cluster.client,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
        false,
    )
    .await
    .expect("virt-api serves the subresources");
    let home = cluster.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let since = Instant::now();
    let findings: Shared = Arc::default();
    let pod_watch = watch_pods(cluster.client.clone(), findings.clone(), since);
    let vmi_watch = watch_vmis(cluster.client.clone(), findings.clone(), since);
    ha_support::eventually(10, "the launcher Pod watch to sync", async || {
        let f = findings.lock().unwrap();
        (f.pods_synced && f.vmis_synced).then_some(())
    })
    .await;
    let vms: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), "default");
    for i in 0..VMS {
        vms.create(&PostParams::default(), &always_vm(&vm_name(i)))
            .await
            .unwrap();
    }

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample(
        cluster.client.clone(),
        findings.clone(),
        since,
        stop_sampling.clone(),
    );
    let mut controller = start_controller(cluster.kubeconfig.clone()).await;
    let stop_restarts = Arc::new(AtomicBool::new(false));
    let restarters: Vec<_> = (0..RESTART_LOOPS)
        .map(|i| {
            restart_loop(
                virtctl.clone(),
                cluster.kubeconfig.clone(),
                home.clone(),
                seed.wrapping_add(1 + i as u64),
                findings.clone(),
                since,
                stop_restarts.clone(),
            )
        })
        .collect();

    // The crash loop: SIGKILL, a pause of up to 300 ms (a kubelet restarting the container),
    // and a new process, which leads at once (the Lease is its identity's).
    let chaos_ends = Instant::now() + chaos;
    loop {
        let wait = KILL_EVERY_MS - KILL_JITTER_MS + rng.random_range(0..=2 * KILL_JITTER_MS);
        let next_kill = Instant::now() + Duration::from_millis(wait);
        if next_kill >= chaos_ends {
            break;
        }
        tokio::time::sleep_until(next_kill.into()).await;
        controller.kill();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=300))).await;
        controller = start_controller(cluster.kubeconfig.clone()).await;
        findings.lock().unwrap().kills += 1;
    }
    tokio::time::sleep_until(chaos_ends.into()).await;
    stop_restarts.store(true, Ordering::Relaxed);
    for r in restarters {
        r.await.unwrap();
    }

    // The last kill lands right after a burst of restarts, so that the next controller has
    // them to carry out; each accepted one must replace its VM's VMI.
    let burst = last_burst(&mut rng);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(cluster.client.clone(), "default");
    let mut before = Vec::new();
    for vm in &burst {
        before.push(vmis.get_opt(vm).await.unwrap().and_then(|v| v.uid()));
    }
    let answers = futures::future::join_all(burst.iter().map(|vm| {
        let (virtctl, kubeconfig, home, vm) = (
            virtctl.clone(),
            cluster.kubeconfig.clone(),
            home.clone(),
            vm.clone(),
        );
        tokio::task::spawn_blocking(move || virtctl_restart(&virtctl, &kubeconfig, &home, &vm))
    }))
    .await;
    controller.kill();
    findings.lock().unwrap().kills += 1;
    let last_kill = Instant::now();
    let mut controller = start_controller(cluster.kubeconfig.clone()).await;
    let mut shown = false;
    let converged = loop {
        let state = convergence(&cluster.client).await;
        if state.is_ok() || last_kill.elapsed() > CONVERGE_WITHIN {
            break state;
        }
        // A leader that lost its lease (an API server too starved to answer renewals for 10 s)
        // exits, and its kubelet would start it again.
        if controller.has_exited() {
            eprintln!(
                "the controller exited by itself {:.1} s after the last kill; starting it again",
                last_kill.elapsed().as_secs_f64()
            );
            controller = start_controller(cluster.kubeconfig.clone()).await;
        }
        // What is slow to converge, for a run that takes long.
        if !shown && last_kill.elapsed() > Duration::from_secs(5) {
            shown = true;
            eprintln!(
                "not converged 5 s after the last kill:\n{}",
                state.unwrap_err()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = last_kill.elapsed();
    // A late duplicate Pod would show in the next samples.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_sampling.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    pod_watch.abort();
    vmi_watch.abort();
    drop(controller);
    let mut replaced = 0;
    let mut burst_accepted = 0;
    for ((vm, answer), old_uid) in burst.iter().zip(answers).zip(before) {
        let out = answer.unwrap();
        let code = out.status.code().unwrap_or(-1);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let kind = restart_answer(vm, code, &stdout, &stderr);
        let now = vmis.get_opt(vm).await.unwrap().and_then(|v| v.uid());
        let mut f = findings.lock().unwrap();
        match kind {
            Some("accepted") if now.is_some() && now == old_uid => f.violation(
                since,
                format!("the restart of {vm} just before the last kill was accepted and never carried out"),
            ),
            Some("accepted") => {
                replaced += 1;
                burst_accepted += 1;
            }
            Some(_) => {}
            None => f.violation(
                since,
                format!("virtctl restart {vm}: exit {code}, stdout {stdout:?}, stderr {stderr:?}"),
            ),
        }
    }

    let f = findings.lock().unwrap();
    let ran = since.elapsed();
    eprintln!(
        "{} kills, {} samples (one every {} ms on average), restarts {:?}, {} VMIs had launcher \
         Pods; {replaced} of {} restarts sent just before the last kill carried out after it; \
         converged {:.1} s after the last kill",
        f.kills,
        f.samples,
        ran.as_millis() / f.samples.max(1) as u128,
        f.restarts,
        f.pods_of_vmi.len(),
        burst.len(),
        took.as_secs_f64()
    );
    // Every finding at once, so that one run shows all that went wrong.
    let mut failures = f.violations.clone();
    if let Err(why) = converged {
        failures.push(format!(
            "not converged {} s after the last kill:\n{why}",
            CONVERGE_WITHIN.as_secs()
        ));
    }
    if f.restarts.get("accepted").copied().unwrap_or(0) == 0 {
        failures.push(format!("no restart was accepted: {:?}", f.restarts));
    }
    // Each VM's first VMI, and one more for each accepted restart at most (two restarts of one
    // VMI coalesce).
    let accepted = f.restarts.get("accepted").copied().unwrap_or(0) + burst_accepted;
    if f.vmis.len() > VMS + accepted {
        failures.push(format!(
            "{} VMIs for {VMS} VMs and {accepted} accepted restarts",
            f.vmis.len()
        ));
    }
    // The sampler kept going through the crashes (on a starved machine more slowly than every
    // 200 ms; the average is printed above).
    if f.samples <= f.kills {
        failures.push(format!("only {} samples for {} kills", f.samples, f.kills));
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_vm_with_two_live_pods_or_two_pods_at_all_is_reported() {
    fn pod(name: &str, vm: &str, phase: Option<&str>, deleting: bool) -> Pod {
        let deletion = deleting.then_some("2025-01-01T00:00:00Z");
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {VM_NAME_LABEL: vm}, "deletionTimestamp": deletion},
            "status": {"phase": phase},
        }))
        .unwrap()
    }
    let table: Vec<(Vec<Pod>, Vec<&str>)> = vec![
        (vec![], vec![]),
        (vec![pod("a", "vm1", Some("Running"), false)], vec![]),
        (
            vec![
                pod("a", "vm1", Some("Running"), false),
                pod("b", "vm2", None, false),
            ],
            vec![],
        ),
        (
            vec![
                pod("a", "vm1", Some("Running"), false),
                pod("b", "vm1", None, false),
            ],
            vec!["VM vm1: 2 live launcher Pods: [\"a (Running)\", \"b (no phase)\"]"],
        ),
        (
            vec![
                pod("a", "vm1", Some("Running"), true),
                pod("b", "vm1", Some("Pending"), false),
            ],
            vec!["VM vm1: 2 launcher Pods: [\"a (Running deleting)\", \"b (Pending)\"]"],
        ),
        (
            vec![
                pod("a", "vm1", Some("Succeeded"), false),
                pod("b", "vm1", Some("Running"), false),
            ],
            vec!["VM vm1: 2 launcher Pods: [\"a (Succeeded)\", \"b (Running)\"]"],
        ),
    ];
    for (pods, want) in table {
        assert_eq!(census(&pods).1, want, "{pods:?}");
    }
}

#[test]
fn virtctl_restart_answers_are_kubevirts_or_reported() {
    let conflict = "error restarting VirtualMachine: Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm-01\": ";
    let table = [
        (
            0,
            "VM vm-01 was scheduled to restart\n",
            "",
            Some("accepted"),
        ),
        (0, "VM vm-02 was scheduled to restart\n", "", None),
        (
            1,
            "",
            &*format!("{conflict}VM is not running: Halted\n"),
            Some("refused: no VMI"),
        ),
        (
            1,
            "",
            "error restarting VirtualMachine: Internal error occurred: unable to complete request: stop/start already underway\n",
            Some("refused: already underway"),
        ),
        (
            1,
            "",
            &*format!("{conflict}the JSON patch test operation failed\n"),
            Some("refused: lost race"),
        ),
        (
            1,
            "",
            "error restarting VirtualMachine: Internal error occurred: connection refused\n",
            None,
        ),
        (101, "", "thread 'main' panicked", None),
    ];
    for (code, stdout, stderr, want) in table {
        assert_eq!(
            restart_answer("vm-01", code, stdout, stderr),
            want,
            "{stderr}"
        );
    }
}
