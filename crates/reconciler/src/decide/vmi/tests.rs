//! The VMI controller's decisions: one named test per VMI state × launcher Pod state, then
//! the cases around them (several Pods, grace periods, a status already written).

use super::*;
use crate::types::{VirtualMachineInstanceSpec, VirtualMachineInstanceStatus};
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

const NOW: &str = "2026-08-01T12:00:00Z";
const UID: &str = "vmi-uid";

#[derive(Clone, Copy, Debug)]
enum Vmi {
    /// Just created by the VM controller's client: no finalizer of this controller yet.
    Fresh,
    Pending,
    Scheduling,
    Scheduled,
    Running,
    Succeeded,
    Failed,
    /// Running, and deleted.
    Deleting,
    /// Succeeded, and deleted (still holding the finalizer).
    DeletingFinal,
}

#[derive(Clone, Copy, Debug)]
enum LauncherPod {
    None,
    /// None in the cache, but a creation is pending.
    Expected,
    /// Pending, not bound to a node.
    Unscheduled,
    /// Pending, bound to a node.
    Scheduled,
    /// Running and Ready.
    Running,
    Succeeded,
    Failed,
    /// Running, and being deleted.
    Terminating,
}

fn time(t: &str) -> Time {
    serde_json::from_value(json!(t)).expect("a valid time")
}

fn vmi(state: Vmi) -> VirtualMachineInstance {
    let phase = match state {
        Vmi::Fresh => "",
        Vmi::Pending => "Pending",
        Vmi::Scheduling => "Scheduling",
        Vmi::Scheduled => "Scheduled",
        Vmi::Running | Vmi::Deleting => "Running",
        Vmi::Succeeded | Vmi::DeletingFinal => "Succeeded",
        Vmi::Failed => "Failed",
    };
    let mut vmi = VirtualMachineInstance::new("vm1", VirtualMachineInstanceSpec::default());
    vmi.metadata.namespace = Some("default".into());
    vmi.metadata.uid = Some(UID.into());
    let mut finalizers = vec!["kubevirt.io/virtualMachineControllerFinalize".to_string()];
    if !matches!(state, Vmi::Fresh) {
        finalizers.push(VMI_CONTROLLER_FINALIZER.into());
    }
    vmi.metadata.finalizers = Some(finalizers);
    if matches!(state, Vmi::Deleting | Vmi::DeletingFinal) {
        vmi.metadata.deletion_timestamp = Some(time(NOW));
    }
    vmi.status = Some(VirtualMachineInstanceStatus {
        phase: (!phase.is_empty()).then(|| phase.into()),
        ..Default::default()
    });
    vmi
}

fn pod(state: LauncherPod) -> Option<Pod> {
    let (phase, node, ready) = match state {
        LauncherPod::None | LauncherPod::Expected => return None,
        LauncherPod::Unscheduled => ("Pending", None, false),
        LauncherPod::Scheduled => ("Pending", Some("node1"), false),
        LauncherPod::Running | LauncherPod::Terminating => ("Running", Some("node1"), true),
        LauncherPod::Succeeded => ("Succeeded", Some("node1"), false),
        LauncherPod::Failed => ("Failed", Some("node1"), false),
    };
    let mut pod = build_launcher_pod(&vmi(Vmi::Running));
    pod.metadata.name = Some("virt-launcher-vm1-abcde".into());
    pod.metadata.creation_timestamp = Some(time("2026-08-01T11:59:00Z"));
    if matches!(state, LauncherPod::Terminating) {
        pod.metadata.deletion_timestamp = Some(time(NOW));
    }
    pod.spec = Some(PodSpec {
        node_name: node.map(str::to_string),
        ..Default::default()
    });
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        pod_ip: ready.then(|| "10.244.0.2".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Some(pod)
}

/// The decision in a few words: what a reader of the table checks.
fn summary(decision: &Decision) -> String {
    let phase = |v: &VirtualMachineInstance| v.phase().to_string();
    match decision {
        Decision::Nothing => "nothing".into(),
        Decision::AddFinalizer => "add finalizer".into(),
        Decision::CreatePod(_) => "create pod".into(),
        Decision::DeletePods {
            names,
            grace_period_seconds,
        } => format!("delete {} grace {grace_period_seconds}", names.join(",")),
        Decision::Release(Some(v)) => format!("release {}", phase(v)),
        Decision::Release(None) => "release unchanged".into(),
        Decision::UpdateStatus(v) => format!("status {}", phase(v)),
    }
}

fn run(state: Vmi, launcher: LauncherPod) -> String {
    let pod = pod(launcher);
    let pods: Vec<&Pod> = pod.iter().collect();
    let expected = matches!(launcher, LauncherPod::Expected);
    summary(&decide(&vmi(state), &pods, expected, NOW))
}

macro_rules! matrix {
    ($($name:ident: $vmi:ident $pod:ident => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(run(Vmi::$vmi, LauncherPod::$pod), $want, "{}", stringify!($name));
        }
    )*};
}

matrix! {
    // Fresh VMI
    new_vmi_no_pod: Fresh None => "add finalizer";
    new_vmi_pod_expected: Fresh Expected => "add finalizer";
    new_vmi_pod_unscheduled: Fresh Unscheduled => "add finalizer";
    new_vmi_pod_scheduled: Fresh Scheduled => "add finalizer";
    new_vmi_pod_running: Fresh Running => "add finalizer";
    new_vmi_pod_succeeded: Fresh Succeeded => "add finalizer";
    new_vmi_pod_failed: Fresh Failed => "add finalizer";
    new_vmi_pod_terminating: Fresh Terminating => "add finalizer";
    // Pending VMI
    pending_no_pod: Pending None => "create pod";
    pending_pod_expected: Pending Expected => "nothing";
    pending_pod_unscheduled: Pending Unscheduled => "status Scheduling";
    pending_pod_scheduled: Pending Scheduled => "status Scheduled";
    pending_pod_running: Pending Running => "status Running";
    pending_pod_succeeded: Pending Succeeded => "status Succeeded";
    pending_pod_failed: Pending Failed => "status Failed";
    pending_pod_terminating: Pending Terminating => "status Failed";
    // Scheduling VMI
    scheduling_no_pod: Scheduling None => "status Failed";
    scheduling_pod_expected: Scheduling Expected => "nothing";
    scheduling_pod_unscheduled: Scheduling Unscheduled => "status Scheduling";
    scheduling_pod_scheduled: Scheduling Scheduled => "status Scheduled";
    scheduling_pod_running: Scheduling Running => "status Running";
    scheduling_pod_succeeded: Scheduling Succeeded => "status Succeeded";
    scheduling_pod_failed: Scheduling Failed => "status Failed";
    scheduling_pod_terminating: Scheduling Terminating => "status Failed";
    // Scheduled VMI
    scheduled_no_pod: Scheduled None => "status Failed";
    scheduled_pod_expected: Scheduled Expected => "nothing";
    scheduled_pod_unscheduled: Scheduled Unscheduled => "status Scheduled";
    scheduled_pod_scheduled: Scheduled Scheduled => "status Scheduled";
    scheduled_pod_running: Scheduled Running => "status Running";
    scheduled_pod_succeeded: Scheduled Succeeded => "status Succeeded";
    scheduled_pod_failed: Scheduled Failed => "status Failed";
    scheduled_pod_terminating: Scheduled Terminating => "status Failed";
    // Running VMI
    running_no_pod: Running None => "status Failed";
    running_pod_expected: Running Expected => "nothing";
    running_pod_unscheduled: Running Unscheduled => "status Running";
    running_pod_scheduled: Running Scheduled => "status Running";
    running_pod_running: Running Running => "status Running";
    running_pod_succeeded: Running Succeeded => "status Succeeded";
    running_pod_failed: Running Failed => "status Failed";
    running_pod_terminating: Running Terminating => "status Failed";
    // Succeeded VMI
    succeeded_no_pod: Succeeded None => "status Succeeded";
    succeeded_pod_expected: Succeeded Expected => "nothing";
    succeeded_pod_unscheduled: Succeeded Unscheduled => "status Succeeded";
    succeeded_pod_scheduled: Succeeded Scheduled => "status Succeeded";
    succeeded_pod_running: Succeeded Running => "status Succeeded";
    succeeded_pod_succeeded: Succeeded Succeeded => "status Succeeded";
    succeeded_pod_failed: Succeeded Failed => "status Succeeded";
    succeeded_pod_terminating: Succeeded Terminating => "status Succeeded";
    // Failed VMI
    failed_no_pod: Failed None => "status Failed";
    failed_pod_expected: Failed Expected => "nothing";
    failed_pod_unscheduled: Failed Unscheduled => "status Failed";
    failed_pod_scheduled: Failed Scheduled => "status Failed";
    failed_pod_running: Failed Running => "status Failed";
    failed_pod_succeeded: Failed Succeeded => "status Failed";
    failed_pod_failed: Failed Failed => "status Failed";
    failed_pod_terminating: Failed Terminating => "status Failed";
    // Deleting VMI
    deleted_no_pod: Deleting None => "release Succeeded";
    deleted_pod_expected: Deleting Expected => "release Succeeded";
    deleted_pod_unscheduled: Deleting Unscheduled => "delete virt-launcher-vm1-abcde grace 30";
    deleted_pod_scheduled: Deleting Scheduled => "delete virt-launcher-vm1-abcde grace 30";
    deleted_pod_running: Deleting Running => "delete virt-launcher-vm1-abcde grace 30";
    deleted_pod_succeeded: Deleting Succeeded => "delete virt-launcher-vm1-abcde grace 30";
    deleted_pod_failed: Deleting Failed => "delete virt-launcher-vm1-abcde grace 30";
    deleted_pod_terminating: Deleting Terminating => "nothing";
    // DeletingFinal VMI
    deleted_final_no_pod: DeletingFinal None => "release Succeeded";
    deleted_final_pod_expected: DeletingFinal Expected => "release Succeeded";
    deleted_final_pod_unscheduled: DeletingFinal Unscheduled => "delete virt-launcher-vm1-abcde grace 30";
    deleted_final_pod_scheduled: DeletingFinal Scheduled => "delete virt-launcher-vm1-abcde grace 30";
    deleted_final_pod_running: DeletingFinal Running => "delete virt-launcher-vm1-abcde grace 30";
    deleted_final_pod_succeeded: DeletingFinal Succeeded => "delete virt-launcher-vm1-abcde grace 30";
    deleted_final_pod_failed: DeletingFinal Failed => "delete virt-launcher-vm1-abcde grace 30";
    deleted_final_pod_terminating: DeletingFinal Terminating => "nothing";
}

#[test]
fn the_pod_created_is_the_vmis_launcher() {
    let vmi = vmi(Vmi::Pending);
    let Decision::CreatePod(pod) = decide(&vmi, &[], false, NOW) else {
        panic!("a pod is created");
    };
    assert_eq!(*pod, build_launcher_pod(&vmi));
    assert!(crate::vmi::is_launcher_pod_of(&pod, &vmi));
}

#[test]
fn a_released_vmi_loses_only_this_controllers_finalizer() {
    let Decision::Release(Some(released)) = decide(&vmi(Vmi::Deleting), &[], false, NOW) else {
        panic!("the VMI is released");
    };
    assert_eq!(
        released.metadata.finalizers,
        Some(vec![
            "kubevirt.io/virtualMachineControllerFinalize".to_string()
        ])
    );
    let mut gone = vmi(Vmi::DeletingFinal);
    gone.metadata.finalizers = None;
    assert_eq!(
        summary(&decide(&gone, &[], false, NOW)),
        "release unchanged",
        "nothing left to write"
    );
}

#[test]
fn a_deleted_vmis_pods_go_with_its_own_grace_period() {
    let mut deleted = vmi(Vmi::Deleting);
    deleted.spec.termination_grace_period_seconds = Some(0);
    let running = pod(LauncherPod::Running).expect("a pod");
    let mut other = running.clone();
    other.metadata.name = Some("virt-launcher-vm1-fghij".into());
    let going = pod(LauncherPod::Terminating).expect("a pod");
    assert_eq!(
        summary(&decide(&deleted, &[&running, &going, &other], false, NOW)),
        "delete virt-launcher-vm1-abcde,virt-launcher-vm1-fghij grace 0"
    );
    deleted.spec.termination_grace_period_seconds = Some(-5);
    assert_eq!(
        summary(&decide(&deleted, &[&running], false, NOW)),
        "delete virt-launcher-vm1-abcde grace 0",
        "a negative grace period counts as 0"
    );
}

#[test]
fn a_pod_going_with_a_longer_grace_goes_again_with_the_vmis_shorter_one() {
    let mut deleted = vmi(Vmi::Deleting);
    let mut going = pod(LauncherPod::Terminating).expect("a pod");
    going.metadata.deletion_grace_period_seconds = Some(30);
    assert_eq!(
        summary(&decide(&deleted, &[&going], false, NOW)),
        "nothing",
        "the VMI's default grace is the Pod's: it is going as it should"
    );
    deleted.spec.termination_grace_period_seconds = Some(0);
    assert_eq!(
        summary(&decide(&deleted, &[&going], false, NOW)),
        "delete virt-launcher-vm1-abcde grace 0",
        "a second, shorter stop cut the VMI's grace"
    );
    going.metadata.deletion_grace_period_seconds = Some(0);
    assert_eq!(summary(&decide(&deleted, &[&going], false, NOW)), "nothing");
}

#[test]
fn the_status_is_read_off_the_newest_pod() {
    let old = pod(LauncherPod::Failed).expect("a pod");
    let mut new = pod(LauncherPod::Running).expect("a pod");
    new.metadata.creation_timestamp = Some(time("2026-08-01T11:59:30Z"));
    for pods in [[&old, &new], [&new, &old]] {
        assert_eq!(
            summary(&decide(&vmi(Vmi::Scheduled), &pods, false, NOW)),
            "status Running"
        );
    }
}

#[test]
fn a_status_already_written_is_not_written_again() {
    let running = pod(LauncherPod::Running).expect("a pod");
    let Decision::UpdateStatus(updated) = decide(&vmi(Vmi::Scheduled), &[&running], false, NOW)
    else {
        panic!("the status is written");
    };
    assert_eq!(decide(&updated, &[&running], false, NOW), Decision::Nothing);
}

/// The decision for a Pod on a node served by virt-handler, and the VMI it writes.
fn run_on_handler_node(
    state: Vmi,
    launcher: LauncherPod,
) -> (String, Option<VirtualMachineInstance>) {
    let pod = pod(launcher);
    let pods: Vec<&Pod> = pod.iter().collect();
    let expected = matches!(launcher, LauncherPod::Expected);
    let decision = decide_on_node(&vmi(state), &pods, expected, true, NOW);
    let written = match &decision {
        Decision::UpdateStatus(v) => Some((**v).clone()),
        _ => None,
    };
    (summary(&decision), written)
}

#[test]
fn on_a_handler_node_a_running_pod_only_schedules_the_vmi() {
    let cases = [
        // (VMI, Pod, decision)
        (Vmi::Pending, LauncherPod::Scheduled, "status Scheduled"),
        (Vmi::Pending, LauncherPod::Running, "status Scheduled"),
        (Vmi::Scheduling, LauncherPod::Running, "status Scheduled"),
        (Vmi::Scheduled, LauncherPod::Running, "status Scheduled"),
        // The handler moved it on: the controller never moves it back.
        (Vmi::Running, LauncherPod::Running, "status Running"),
        // Pod ends and deletions are the controller's, as anywhere.
        (Vmi::Running, LauncherPod::Succeeded, "status Succeeded"),
        (Vmi::Scheduled, LauncherPod::Failed, "status Failed"),
        (Vmi::Running, LauncherPod::Terminating, "status Failed"),
        (
            Vmi::Deleting,
            LauncherPod::Running,
            "delete virt-launcher-vm1-abcde grace 30",
        ),
        (Vmi::Pending, LauncherPod::None, "create pod"),
    ];
    for (state, launcher, want) in cases {
        let (got, written) = run_on_handler_node(state, launcher);
        assert_eq!(got, want);
        let Some(written) = written else { continue };
        let status = written.status.as_ref().unwrap();
        // Neither interfaces nor a Paused condition: the handler's.
        assert!(status.interfaces.is_empty(), "{want}: {status:?}");
        assert!(
            !status.conditions.iter().any(|c| c.type_ == "Paused"),
            "{want}: {status:?}"
        );
        if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            assert_eq!(status.node_name.as_deref(), Some("node1"));
            assert_eq!(
                written.metadata.labels.as_ref().unwrap()["kubevirt.io/nodeName"],
                "node1"
            );
        }
    }
}

#[test]
fn on_a_handler_node_a_paused_start_is_left_to_the_handler() {
    let mut paused = vmi(Vmi::Scheduled);
    paused.spec.start_strategy = Some("Paused".into());
    let running = pod(LauncherPod::Running).unwrap();
    let Decision::UpdateStatus(next) = decide_on_node(&paused, &[&running], false, true, NOW)
    else {
        panic!("expected a status write");
    };
    let status = next.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Scheduled"));
    assert!(!status.conditions.iter().any(|c| c.type_ == "Paused"));
    // Written once: the same inputs again are no write.
    let again = decide_on_node(
        &VirtualMachineInstance {
            status: Some(status),
            ..*next
        },
        &[&running],
        false,
        true,
        NOW,
    );
    assert_eq!(again, Decision::Nothing);
}

/// The label `kubevirt.io/nodeName` of the VMI a decision writes, or `None` when it writes
/// none (or no VMI).
fn node_name_label(state: Vmi, launcher: LauncherPod, handler: bool) -> Option<String> {
    let pod = pod(launcher);
    let pods: Vec<&Pod> = pod.iter().collect();
    let expected = matches!(launcher, LauncherPod::Expected);
    match decide_on_node(&vmi(state), &pods, expected, handler, NOW) {
        Decision::UpdateStatus(v) => v
            .metadata
            .labels
            .unwrap_or_default()
            .remove(NODE_NAME_LABEL),
        _ => None,
    }
}

#[test]
fn the_node_name_label_comes_with_the_node_name_on_every_node() {
    let cases = [
        // (VMI, Pod, label written, on a simulated node and on a handler node)
        (Vmi::Pending, LauncherPod::Unscheduled, None),
        (Vmi::Pending, LauncherPod::Scheduled, Some("node1")),
        (Vmi::Scheduling, LauncherPod::Running, Some("node1")),
        (Vmi::Scheduled, LauncherPod::Running, Some("node1")),
        // A VMI ending now still gets its node, as in KubeVirt it keeps the label it had.
        (Vmi::Running, LauncherPod::Failed, Some("node1")),
        // A final VMI is never relabelled; no Pod yet is a Pod creation.
        (Vmi::Succeeded, LauncherPod::Succeeded, None),
        (Vmi::Pending, LauncherPod::None, None),
    ];
    for (state, launcher, want) in cases {
        for handler in [false, true] {
            assert_eq!(
                node_name_label(state, launcher, handler).as_deref(),
                want,
                "{state:?} {launcher:?} handler={handler}"
            );
        }
    }
}
