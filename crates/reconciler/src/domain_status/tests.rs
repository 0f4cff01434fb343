//! Tests of the handler's status changes: one table over VMI phase × domain state, then the
//! patches (what they write, and that no change writes nothing).

use super::*;
use crate::types::{VirtualMachineInstanceSpec, VirtualMachineInstanceStatus};
use k8s_openapi::api::core::v1::PodStatus;

const NOW: &str = "2026-08-01T12:00:00Z";
const LATER: &str = "2026-08-01T12:05:00Z";

fn vmi(phase: &str) -> VirtualMachineInstance {
    let mut vmi = VirtualMachineInstance::new("vm1", VirtualMachineInstanceSpec::default());
    vmi.metadata.namespace = Some("default".into());
    vmi.metadata.resource_version = Some("9".into());
    vmi.status = Some(VirtualMachineInstanceStatus {
        phase: Some(phase.into()),
        node_name: Some("node1".into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: Some("GuestNotRunning".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    vmi
}

fn domain(state: DomainState) -> DomainStatus {
    DomainStatus {
        state,
        guest_ip: Some("10.0.2.15".into()),
        mac: Some("52:54:00:12:34:56".into()),
        ..Default::default()
    }
}

/// `(phase, Paused condition?, Ready status)` of the VMI after the domain reports `state`.
fn outcome(phase: &str, state: DomainState) -> (String, bool, String) {
    let next = vmi_with_domain(&vmi(phase), &domain(state), None, NOW);
    let status = next.status.unwrap();
    let cond = |t: &str| status.conditions.iter().find(|c| c.type_ == t).cloned();
    (
        status.phase.unwrap_or_default(),
        cond("Paused").is_some(),
        cond("Ready").map(|c| c.status).unwrap_or_default(),
    )
}

#[test]
fn phase_and_conditions_follow_the_domain() {
    use DomainState::*;
    let cases = [
        // (VMI phase, domain state) => (phase, paused, ready)
        ("Scheduled", NoState, ("Scheduled", false, "False")),
        ("Scheduled", Running, ("Running", false, "True")),
        ("Scheduled", Paused, ("Running", true, "False")),
        ("Running", Running, ("Running", false, "True")),
        ("Running", Paused, ("Running", true, "False")),
        // Shutting down or gone: the Pod's end moves the VMI (the controller's part).
        ("Running", Shutdown, ("Running", false, "False")),
        ("Running", Shutoff, ("Running", false, "False")),
        ("Running", Crashed, ("Running", false, "False")),
        // Not the handler's phases.
        ("Scheduling", Running, ("Scheduling", false, "False")),
        ("Succeeded", Running, ("Succeeded", false, "False")),
        ("Failed", Paused, ("Failed", false, "False")),
    ];
    for (phase, state, (want_phase, want_paused, want_ready)) in cases {
        assert_eq!(
            outcome(phase, state),
            (want_phase.to_string(), want_paused, want_ready.to_string()),
            "{phase} with the domain {state:?}"
        );
    }
}

#[test]
fn paused_conditions_read_as_kubevirts() {
    let next = vmi_with_domain(&vmi("Running"), &domain(DomainState::Paused), None, NOW);
    let conditions = serde_json::to_value(&next.status.unwrap().conditions).unwrap();
    assert_eq!(
        conditions,
        json!([
            {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
             "message": "the status of pod readiness gate \"kubevirt.io/virtual-machine-unpaused\" is not \"True\", but False",
             "lastProbeTime": NOW, "lastTransitionTime": NOW},
            {"type": "Paused", "status": "True", "reason": "PausedByUser",
             "message": "VMI was paused by user",
             "lastProbeTime": NOW, "lastTransitionTime": NOW},
        ])
    );
}

#[test]
fn running_again_drops_paused_and_is_ready() {
    let paused = vmi_with_domain(&vmi("Running"), &domain(DomainState::Paused), None, NOW);
    let resumed = vmi_with_domain(&paused, &domain(DomainState::Running), None, LATER);
    let conditions = serde_json::to_value(&resumed.status.unwrap().conditions).unwrap();
    assert_eq!(
        conditions,
        json!([{"type": "Ready", "status": "True",
                "lastProbeTime": LATER, "lastTransitionTime": LATER}])
    );
}

#[test]
fn the_first_interface_comes_from_the_domain() {
    let cases = [
        // (guest IP, pod IP) => shown IP
        (Some("10.0.2.15"), Some("10.244.0.5"), Some("10.0.2.15")),
        (None, Some("10.244.0.5"), Some("10.244.0.5")),
        (None, None, None),
    ];
    for (guest, pod, want) in cases {
        let mut d = domain(DomainState::Running);
        d.guest_ip = guest.map(str::to_string);
        let next = vmi_with_domain(&vmi("Scheduled"), &d, pod, NOW);
        let interfaces = serde_json::to_value(&next.status.unwrap().interfaces).unwrap();
        let mut want_iface = json!({"name": "default", "mac": "52:54:00:12:34:56",
                                    "infoSource": "domain"});
        if let Some(ip) = want {
            want_iface["ipAddress"] = json!(ip);
            want_iface["ipAddresses"] = json!([ip]);
        }
        assert_eq!(
            interfaces,
            json!([want_iface]),
            "guest {guest:?} pod {pod:?}"
        );
    }
}

#[test]
fn later_interfaces_and_other_fields_are_kept() {
    let mut v = vmi("Running");
    let status = v.status.as_mut().unwrap();
    status.interfaces = vec![
        InterfaceStatus {
            name: Some("old".into()),
            ..Default::default()
        },
        InterfaceStatus {
            name: Some("second".into()),
            ..Default::default()
        },
    ];
    status
        .extra
        .insert("guestOSInfo".into(), json!({"id": "cirros"}));
    let next = vmi_with_domain(&v, &domain(DomainState::Running), None, NOW);
    let status = next.status.unwrap();
    assert_eq!(status.interfaces[0].name.as_deref(), Some("default"));
    assert_eq!(status.interfaces[1].name.as_deref(), Some("second"));
    assert_eq!(status.extra["guestOSInfo"], json!({"id": "cirros"}));
    assert_eq!(status.node_name.as_deref(), Some("node1"));
}

#[test]
fn the_status_patch_writes_only_what_changed() {
    let v = vmi("Scheduled");
    let patch = vmi_status_patch(&v, &domain(DomainState::Running), None, NOW).unwrap();
    let ops = patch.as_array().unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "9"})
    );
    let paths: Vec<&str> = ops[1..]
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/status/phase",
            "/status/conditions",
            "/status/interfaces",
            "/status/phaseTransitionTimestamps"
        ]
    );
    assert_eq!(ops[1]["value"], "Running");

    // Applied, the same report again writes nothing, even at a later time.
    let mut doc = serde_json::to_value(&v).unwrap();
    let p: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut doc, &p).unwrap();
    let applied: VirtualMachineInstance = serde_json::from_value(doc).unwrap();
    assert_eq!(
        applied,
        vmi_with_domain(&v, &domain(DomainState::Running), None, NOW)
    );
    assert_eq!(
        vmi_status_patch(&applied, &domain(DomainState::Running), None, LATER),
        None
    );
    // A state the handler does not act on writes nothing either.
    assert_eq!(
        vmi_status_patch(&v, &domain(DomainState::NoState), None, NOW),
        None
    );
}

#[test]
fn a_vmi_without_a_phase_is_not_the_handlers() {
    let mut bare = vmi("Running");
    bare.status = None;
    assert_eq!(
        vmi_status_patch(&bare, &domain(DomainState::Running), None, NOW),
        None
    );
}

fn pod_with_gate(gate: Option<(&str, Option<&str>)>) -> Pod {
    let mut conditions = vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    }];
    if let Some((status, reason)) = gate {
        conditions.push(PodCondition {
            type_: UNPAUSED_READINESS_GATE.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            ..Default::default()
        });
    }
    Pod {
        status: Some(PodStatus {
            conditions: Some(conditions),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn the_pod_gate_follows_the_domain_and_touches_one_condition() {
    use DomainState::*;
    let running_gate = json!({"status": {"conditions": [
        {"type": "kubevirt.io/virtual-machine-unpaused", "status": "True",
         "lastTransitionTime": NOW}]}});
    let paused_gate = json!({"status": {"conditions": [
        {"type": "kubevirt.io/virtual-machine-unpaused", "status": "False", "reason": "Paused",
         "message": "VMI was paused by user", "lastTransitionTime": NOW}]}});
    let cases = [
        // (gate on the Pod, domain) => patch
        (None, Running, Some(running_gate.clone())),
        (None, Paused, Some(paused_gate.clone())),
        (Some(("True", None)), Running, None),
        (Some(("True", None)), Paused, Some(paused_gate)),
        (Some(("False", Some("Paused"))), Paused, None),
        (Some(("False", Some("Paused"))), Running, Some(running_gate)),
        (None, NoState, None),
        (Some(("True", None)), Shutoff, None),
    ];
    for (gate, state, want) in cases {
        let got = pod_gate_patch(&pod_with_gate(gate), &domain(state), NOW);
        assert_eq!(got, want, "gate {gate:?}, domain {state:?}");
    }
}

#[test]
fn a_sync_failure_is_synchronized_false_until_the_domain_starts() {
    let synchronized = |vmi: &VirtualMachineInstance| {
        vmi.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .find(|c| c.type_ == "Synchronized")
            .map(|c| {
                (
                    c.status.clone(),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            })
    };
    let waiting = DomainStatus {
        sync_failure: Some(crate::launcher_api::SyncFailure {
            reason: "ErrImagePull".into(),
            message: "containerDisk image file x.img does not exist".into(),
        }),
        ..Default::default()
    };
    // (VMI phase, domain) => Synchronized condition
    let failed = vmi_with_domain(&vmi("Scheduled"), &waiting, None, NOW);
    assert_eq!(
        synchronized(&failed),
        Some((
            "False".into(),
            "ErrImagePull".into(),
            "containerDisk image file x.img does not exist".into()
        ))
    );
    assert_eq!(
        failed.status.as_ref().unwrap().phase.as_deref(),
        Some("Scheduled")
    );
    assert!(vmi_status_patch(&vmi("Scheduled"), &waiting, None, NOW).is_some());
    assert!(
        vmi_status_patch(&failed, &waiting, None, LATER).is_none(),
        "the same failure again writes nothing"
    );
    let started = vmi_with_domain(&failed, &domain(DomainState::Running), None, LATER);
    assert_eq!(synchronized(&started), None, "gone once the domain runs");
    assert_eq!(started.status.unwrap().phase.as_deref(), Some("Running"));
    // Not the handler's phases: nothing changes.
    let final_vmi = vmi_with_domain(&vmi("Failed"), &waiting, None, NOW);
    assert_eq!(synchronized(&final_vmi), None);
}
