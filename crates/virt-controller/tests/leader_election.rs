//! Two replicas with leader election: only one acts, and the other takes over when it dies.
//!
//! Two real `virt-controller run` processes share one Lease on an in-process localkube. Exactly
//! one is ready and named by the Lease, only that one reconciles (the other's metrics stay at
//! zero), and after the leader is killed with SIGKILL (no lease release) the standby becomes
//! ready and creates the VMI of a new VM within 20 s.

mod ha_support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use ha_support::{Cluster, Controller, LEASE_NAMESPACE, eventually, running_vm};

const RECONCILES: &str = "virt_controller_reconciles_total";
const WRITES: &str = "virt_controller_api_writes_total";
const LEADER: &str = "virt_controller_leader";
const QUEUE_DEPTH: &str = "virt_controller_queue_depth";

async fn holder(leases: &Api<Lease>) -> Option<(String, i32)> {
    let spec = leases.get_opt("virt-controller").await.ok()??.spec?;
    Some((spec.holder_identity?, spec.lease_transitions.unwrap_or(0)))
}

/// Waits until exactly one of the two is ready; returns (leader, standby).
async fn elected(a: Controller, b: Controller, secs: u64) -> (Controller, Controller) {
    let a_leads = eventually(secs, "exactly one ready replica", async || {
        match (a.ready().await?, b.ready().await?) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            (true, true) => panic!("both replicas are ready"),
            (false, false) => None,
        }
    })
    .await;
    if a_leads { (a, b) } else { (b, a) }
}

async fn launchers(pods: &Api<Pod>, vmi: &VirtualMachineInstance) -> Vec<Pod> {
    let selector = format!(
        "kubevirt.io=virt-launcher,kubevirt.io/created-by={}",
        vmi.uid().unwrap_or_default()
    );
    pods.list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn vmi_of(vmis: &Api<VirtualMachineInstance>, vm: &str) -> Option<VirtualMachineInstance> {
    vmis.get_opt(vm).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_acts_and_the_standby_takes_over_when_it_dies() {
    let cluster = Cluster::start(false).await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), LEASE_NAMESPACE);
    let vms: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), "default");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");

    let a = cluster.controller("replica-a");
    let b = cluster.controller("replica-b");
    assert!(a.healthy().await && b.healthy().await);
    let (leader, standby) = elected(a, b, 15).await;
    assert_eq!(
        holder(&leases).await,
        Some((leader.identity.clone(), 0)),
        "the Lease names the ready replica"
    );
    // Both live, one ready; and it stays that way over a few renewal periods (2 s each).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(leader.healthy().await && standby.healthy().await);
    assert_eq!(leader.ready().await, Some(true));
    assert_eq!(standby.ready().await, Some(false));
    assert_eq!(holder(&leases).await, Some((leader.identity.clone(), 0)));

    // Only the leader acts: one VMI for a running VM, and no reconcile nor write by the standby.
    vms.create(&PostParams::default(), &running_vm("vm-before"))
        .await
        .unwrap();
    let first = eventually(10, "the VMI of vm-before", async || {
        vmi_of(&vmis, "vm-before").await
    })
    .await;
    eventually(10, "the leader's reconciles in its metrics", async || {
        (leader.metric(RECONCILES).await > 0.0).then_some(())
    })
    .await;
    assert_eq!(leader.metric(LEADER).await, 1.0);
    assert!(leader.metric(WRITES).await > 0.0);
    assert_eq!(standby.metric(RECONCILES).await, 0.0);
    assert_eq!(standby.metric(WRITES).await, 0.0);
    assert_eq!(standby.metric(LEADER).await, 0.0);
    let all = vmis.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 1);
    // Writes are counted by kind, and both work queues drain once the VM runs.
    let text = leader.metrics_text().await;
    assert!(
        text.contains(r#"virt_controller_api_writes_total{resource="vmi",verb="create"} 1"#),
        "{text}"
    );
    for controller in ["vm", "vmi"] {
        let gauge = format!(r#"virt_controller_queue_depth{{controller="{controller}"}}"#);
        assert!(text.contains(&gauge), "{gauge} missing from {text}");
    }
    eventually(10, "empty work queues", async || {
        (leader.metric(QUEUE_DEPTH).await == 0.0).then_some(())
    })
    .await;
    eventually(10, "vm-before's launcher Pod", async || {
        (launchers(&pods, &first).await.len() == 1).then_some(())
    })
    .await;

    // The leader dies without a word; the standby takes over and acts within 20 s.
    let dead = leader.identity.clone();
    leader.kill();
    let killed = Instant::now();
    vms.create(&PostParams::default(), &running_vm("vm-after"))
        .await
        .unwrap();
    eventually(20, "the standby to become ready", async || {
        (standby.ready().await == Some(true)).then_some(())
    })
    .await;
    eventually(20, "the new leader to create vm-after's VMI", async || {
        vmi_of(&vmis, "vm-after").await
    })
    .await;
    let took = killed.elapsed();
    eprintln!("the standby took over and acted {took:?} after the leader died");
    assert!(took < Duration::from_secs(20), "took over after {took:?}");
    let (new_holder, transitions) = holder(&leases).await.unwrap();
    assert_eq!(new_holder, standby.identity);
    assert_ne!(new_holder, dead);
    assert_eq!(transitions, 1);
    assert_eq!(standby.metric(LEADER).await, 1.0);
    assert!(standby.metric(RECONCILES).await > 0.0);

    // The new leader kept the old leader's work: still one VMI per VM, vm-before's unchanged,
    // and one launcher Pod per VMI (the new leader's VMI controller has run once vm-after's
    // VMI has its Pod).
    let after = vmi_of(&vmis, "vm-after").await.unwrap();
    eventually(10, "vm-after's launcher Pod", async || {
        (launchers(&pods, &after).await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = vmis.list(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = all.items.iter().map(|v| v.name_any()).collect();
    names.sort();
    assert_eq!(names, ["vm-after", "vm-before"]);
    let now = vmi_of(&vmis, "vm-before").await.unwrap();
    assert_eq!(
        now.uid(),
        first.uid(),
        "the new leader replaced vm-before's VMI (the old one ended in phase {:?})",
        now.phase()
    );
    let before_pods = launchers(&pods, &first).await;
    assert_eq!(
        before_pods.len(),
        1,
        "vm-before's VMI (phase {:?}) has launcher Pods {:?} after the takeover",
        now.phase(),
        before_pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
}

/// A leader stopped with SIGTERM gives the Lease up on its way out, so the standby takes over at
/// its next retry (every 2 s) instead of after the 15 s lease expires.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_leader_releases_the_lease() {
    let cluster = Cluster::start(false).await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), LEASE_NAMESPACE);
    let a = cluster.controller("replica-a");
    let b = cluster.controller("replica-b");
    let (leader, standby) = elected(a, b, 15).await;
    // A leader at work: its VM has a VMI.
    let vms: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), "default");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(cluster.client.clone(), "default");
    vms.create(&PostParams::default(), &running_vm("vm-busy"))
        .await
        .unwrap();
    eventually(10, "the VMI of vm-busy", async || {
        vmi_of(&vmis, "vm-busy").await
    })
    .await;
    let took = terminate_and_hand_over(leader, &standby, &leases).await;
    assert!(
        took < Duration::from_secs(12),
        "took over after {took:?}: the lease was not released"
    );
    assert_eq!(
        holder(&leases).await.map(|(h, _)| h),
        Some(standby.identity.clone())
    );
}

/// SIGTERMs the leader and checks that it exits cleanly and at once, clears the Lease, and that
/// the standby then leads. Returns the time from the signal to the standby leading.
///
/// Shutdown waits only for reconciles that are running, so an idle leader exits at once. Five
/// seconds leaves room for a loaded machine, and is half of the 10 s limit on waiting.
async fn terminate_and_hand_over(
    leader: Controller,
    standby: &Controller,
    leases: &Api<Lease>,
) -> Duration {
    let gone = leader.identity.clone();
    let stopped = Instant::now();
    assert_eq!(leader.terminate(), Some(0), "a clean exit on SIGTERM");
    let exited = stopped.elapsed();
    assert!(
        exited < Duration::from_secs(5),
        "SIGTERM to exit took {exited:?}: shutdown waited for more than the running reconciles"
    );
    let (holder_now, _) = holder(leases).await.unwrap_or_default();
    assert_ne!(
        holder_now, gone,
        "the Lease still names the stopped replica"
    );
    eventually(12, "the standby to lead", async || {
        (standby.ready().await == Some(true)).then_some(())
    })
    .await;
    stopped.elapsed()
}

/// A VM in crash-loop backoff leaves a reconcile scheduled seconds ahead. Shutdown must not
/// wait for it: the next leader will run it.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_with_a_delayed_retry_pending_exits_at_once() {
    let cluster = Cluster::start(true).await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), LEASE_NAMESPACE);
    let a = cluster.controller("replica-a");
    let b = cluster.controller("replica-b");
    let (leader, standby) = elected(a, b, 15).await;
    let vms: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), "default");
    let mut vm = running_vm("vm-crash");
    vm.spec.template.metadata.as_mut().unwrap().annotations = Some(
        [(
            "localkube.dev/fail-before-running".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    vms.create(&PostParams::default(), &vm).await.unwrap();
    eventually(20, "vm-crash in CrashLoopBackOff", async || {
        let vm = vms.get("vm-crash").await.ok()?;
        let status = vm.status?;
        (status.printable_status.as_deref() == Some("CrashLoopBackOff")).then_some(())
    })
    .await;
    terminate_and_hand_over(leader, &standby, &leases).await;
}
