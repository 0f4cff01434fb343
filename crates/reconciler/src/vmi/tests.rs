//! Unit tests of the VMI and launcher Pod constructions and of the VMI status read off the Pod.

use super::*;
use crate::types::{VirtualMachineInstanceSpec, VirtualMachineSpec};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const NOW: &str = "2026-08-01T12:00:00Z";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sha1_matches_known_digests() {
    assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(
        hex(&sha1(b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    assert_eq!(
        hex(&sha1(&[b'a'; 1000])),
        "291e9a6c66994949b57ba5e650361e98fc36b1ba"
    );
}

#[test]
fn id_keeps_short_names_and_hashes_long_ones() {
    assert_eq!(id("vm-cirros"), "vm-cirros");
    let max = "b".repeat(63);
    assert_eq!(id(&max), max);
    let long = "a".repeat(70);
    assert_eq!(id(&long), format!("{}-ed6c69d9", "a".repeat(54)));
    assert_eq!(id(&long).len(), 63);
}

#[test]
fn label_value_is_cut_to_63_and_ends_alphanumeric() {
    assert_eq!(label_value("vm1"), "vm1");
    let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    assert_eq!(label_value(&name), "a".repeat(62));
}

fn cirros_vm() -> VirtualMachine {
    let mut vm: VirtualMachine = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": "vm-cirros", "namespace": "default", "uid": "vm-uid-1",
            "generation": 3, "resourceVersion": "42",
            "labels": {"kubevirt.io/vm": "vm-cirros"},
            "annotations": {"vm-only": "x"}
        },
        "spec": {
            "running": false,
            "template": {
                "metadata": {
                    "name": "ignored", "generateName": "ignored-",
                    "labels": {"kubevirt.io/vm": "vm-cirros"},
                    "annotations": {"from-template": "y"}
                },
                "spec": {
                    "domain": {
                        "devices": {"disks": [{"disk": {"bus": "virtio"}, "name": "containerdisk"}]},
                        "resources": {"requests": {"memory": "64M", "cpu": 1}}
                    },
                    "terminationGracePeriodSeconds": 0,
                    "volumes": [
                        {"name": "containerdisk", "containerDisk": {"image": "kubevirt/cirros-container-disk-demo:latest"}},
                        {"name": "cloudinitdisk", "cloudInitNoCloud": {"userDataBase64": "IyEv"}}
                    ]
                }
            }
        }
    }))
    .unwrap();
    vm.status = None;
    vm
}

#[test]
fn build_vmi_copies_the_template_and_owns_it() {
    let vmi = build_vmi(&cirros_vm(), false);
    let m = &vmi.metadata;
    assert_eq!(m.name.as_deref(), Some("vm-cirros"));
    assert_eq!(m.generate_name, None);
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.resource_version, None);
    assert_eq!(
        m.labels
            .as_ref()
            .unwrap()
            .get("kubevirt.io/vm")
            .map(String::as_str),
        Some("vm-cirros")
    );
    let annotations = m.annotations.as_ref().unwrap();
    assert_eq!(
        annotations
            .get("kubevirt.io/vm-generation")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        annotations.get("from-template").map(String::as_str),
        Some("y")
    );
    assert!(!annotations.contains_key("vm-only"));
    assert_eq!(
        m.finalizers.as_deref(),
        Some(
            &[
                "kubevirt.io/virtualMachineControllerFinalize".to_string(),
                "kubevirt.io/foregroundDeleteVirtualMachine".to_string()
            ][..]
        )
    );
    let owner = &m.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        serde_json::to_value(owner).unwrap(),
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "vm-cirros",
               "uid": "vm-uid-1", "controller": true, "blockOwnerDeletion": true})
    );
    assert_eq!(vmi.spec.start_strategy, None);
    assert_eq!(vmi.spec.termination_grace_period_seconds, Some(0));
    assert_eq!(
        vmi.spec.domain.firmware.as_ref().unwrap().uuid.as_deref(),
        Some("0d2a2043-41c0-59c3-9b17-025022203668")
    );
    // The volume without a disk gets a default one.
    let disks = vmi
        .spec
        .domain
        .devices
        .as_ref()
        .unwrap()
        .disks
        .as_ref()
        .unwrap();
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[1], json!({"name": "cloudinitdisk"}));
    assert!(vmi.status.is_none());
}

#[test]
fn build_vmi_paused_and_with_a_template_uuid() {
    let mut vm = cirros_vm();
    vm.spec.template.spec.domain.firmware = Some(crate::types::Firmware {
        uuid: Some("11111111-2222-4333-8444-555555555555".into()),
        ..Default::default()
    });
    let vmi = build_vmi(&vm, true);
    assert_eq!(vmi.spec.start_strategy.as_deref(), Some("Paused"));
    assert_eq!(
        vmi.spec.domain.firmware.as_ref().unwrap().uuid.as_deref(),
        Some("11111111-2222-4333-8444-555555555555")
    );
}

#[test]
fn build_vmi_without_template_metadata() {
    let mut vm = VirtualMachine::new("bare", VirtualMachineSpec::default());
    vm.metadata.namespace = Some("ns1".into());
    let vmi = build_vmi(&vm, false);
    assert_eq!(vmi.metadata.name.as_deref(), Some("bare"));
    assert_eq!(vmi.metadata.labels, None);
    assert_eq!(
        vmi.metadata.annotations.as_ref().unwrap()["kubevirt.io/vm-generation"],
        "0"
    );
    assert_eq!(vmi.spec.domain.devices, None);
}

fn vmi_named(name: &str, uid: &str) -> VirtualMachineInstance {
    let mut vmi = VirtualMachineInstance::new(name, VirtualMachineInstanceSpec::default());
    vmi.metadata.namespace = Some("default".into());
    vmi.metadata.uid = Some(uid.into());
    vmi
}

#[test]
fn launcher_pod_has_the_labels_owner_and_container() {
    let mut vmi = build_vmi(&cirros_vm(), false);
    vmi.metadata.uid = Some("vmi-uid-1".into());
    vmi.spec.extra.insert(
        "nodeSelector".into(),
        json!({"kubernetes.io/hostname": "node-a"}),
    );
    let pod = build_launcher_pod(&vmi);
    let v = serde_json::to_value(&pod).unwrap();
    assert_eq!(
        v["metadata"]["name"],
        launcher_pod_name("vm-cirros", "vmi-uid-1")
    );
    assert_eq!(v["metadata"]["generateName"], Value::Null);
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(
        v["metadata"]["labels"],
        json!({
            "kubevirt.io": "virt-launcher",
            "kubevirt.io/created-by": "vmi-uid-1",
            "kubevirt.io/vm": "vm-cirros",
            "vm.kubevirt.io/name": "vm-cirros",
            "vmi.kubevirt.io/id": "vm-cirros"
        })
    );
    assert_eq!(
        v["metadata"]["ownerReferences"],
        json!([{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "name": "vm-cirros", "uid": "vmi-uid-1", "controller": true,
                "blockOwnerDeletion": true}])
    );
    assert_eq!(v["spec"]["restartPolicy"], "Never");
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 15);
    assert_eq!(
        v["spec"]["nodeSelector"],
        json!({"kubernetes.io/hostname": "node-a"})
    );
    assert_eq!(
        v["spec"]["containers"],
        json!([
            {"name": "compute", "image": "virt-toolkit/virt-launcher:v0.1.0",
             "command": ["/usr/bin/virt-launcher", "--namespace", "default", "--name",
                         "vm-cirros", "--uid", "vmi-uid-1", "--grace-period-seconds", "0"],
             "workingDir": "/",
             "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
             "resources": {"requests": {"cpu": "1", "memory": "64M"}},
             "volumeMounts": [
                 {"name": "private", "mountPath": "/var/run/kubevirt-private"},
                 {"name": "sockets", "mountPath": "/var/run/kubevirt/sockets"},
                 {"name": "images", "mountPath": "/var/lib/virt-toolkit/images", "readOnly": true},
             ]},
            {"name": "guest-console-log", "image": "virt-toolkit/virt-launcher:v0.1.0",
             "command": ["/usr/bin/virt-tail",
                         "--logfile", "/var/run/kubevirt-private/virt-serial0-log",
                         "--socket", "/var/run/kubevirt/sockets/vmi-uid-1.sock"],
             "workingDir": "/",
             "resources": {"requests": {"cpu": "5m", "memory": "35M"}},
             "volumeMounts": [
                 {"name": "private", "mountPath": "/var/run/kubevirt-private"},
                 {"name": "sockets", "mountPath": "/var/run/kubevirt/sockets"},
             ]},
        ])
    );
    assert_eq!(
        v["spec"]["volumes"],
        json!([
            {"name": "private", "emptyDir": {}},
            {"name": "sockets", "hostPath": {"path": "/var/run/kubevirt/sockets",
                                             "type": "DirectoryOrCreate"}},
            {"name": "images", "hostPath": {"path": "/var/lib/virt-toolkit/images"}},
        ])
    );
    assert_eq!(
        v["spec"]["readinessGates"],
        json!([{"conditionType": "kubevirt.io/virtual-machine-unpaused"}])
    );
    assert!(is_launcher_pod_of(&pod, &vmi));
    assert!(!is_launcher_pod_of(&pod, &vmi_named("vm-cirros", "other")));
    assert_eq!(
        launcher_pod_selector(&vmi),
        "kubevirt.io=virt-launcher,kubevirt.io/created-by=vmi-uid-1"
    );
    assert_eq!(
        launcher_pod_selector_of_uid("vmi-uid-1"),
        launcher_pod_selector(&vmi)
    );
    assert_eq!(all_launcher_pods_selector(), "kubevirt.io=virt-launcher");
}

#[test]
fn launcher_pod_carries_only_the_node_hook_annotations() {
    let mut vmi = vmi_named("vm1", "u1");
    vmi.metadata.annotations = Some(BTreeMap::from([
        ("localkube.dev/exit-code".to_string(), "0".to_string()),
        ("localkube.dev/run-for".to_string(), "2s".to_string()),
        (VM_GENERATION_ANNOTATION.to_string(), "3".to_string()),
        ("example.com/other".to_string(), "x".to_string()),
    ]));
    let pod = build_launcher_pod(&vmi);
    assert_eq!(
        pod.metadata.annotations,
        Some(BTreeMap::from([
            (DOMAIN_ANNOTATION.to_string(), "vm1".to_string()),
            ("localkube.dev/exit-code".to_string(), "0".to_string()),
            ("localkube.dev/run-for".to_string(), "2s".to_string()),
        ]))
    );
}

#[test]
fn launcher_pod_defaults() {
    let long = "x".repeat(70);
    let vmi = vmi_named(&long, "u1");
    let pod = build_launcher_pod(&vmi);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    assert_eq!(spec.containers[0].resources, None);
    // The launcher gets the VMI's grace period, the default when unset.
    let command = spec.containers[0].command.as_ref().unwrap();
    assert_eq!(
        command[command.len() - 2..],
        ["--grace-period-seconds", "30"]
    );
    assert_eq!(spec.node_selector, None);
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[ID_LABEL], id(&long));
    assert_eq!(labels[VM_NAME_LABEL], "x".repeat(63));
}

fn time(s: &str) -> Time {
    serde_json::from_value(json!(s)).unwrap()
}

/// A launcher Pod in the given pod phase, optionally bound and ready.
fn pod(phase: &str, node: Option<&str>, ready: bool) -> Pod {
    let mut conditions = vec![];
    if node.is_some() {
        conditions.push(PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(time("2026-08-01T11:59:00Z")),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some("virt-launcher-vm1-abcde".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            pod_ip: ready.then(|| "10.0.0.7".to_string()),
            pod_ips: ready.then(|| {
                vec![PodIP {
                    ip: "10.0.0.7".into(),
                }]
            }),
            ..Default::default()
        }),
    }
}

fn with_phase(mut vmi: VirtualMachineInstance, phase: &str) -> VirtualMachineInstance {
    vmi.status.get_or_insert_default().phase = Some(phase.into());
    vmi
}

fn cond<'a>(s: &'a VirtualMachineInstanceStatus, t: &str) -> Option<&'a Condition> {
    s.conditions.iter().find(|c| c.type_ == t)
}

#[test]
fn no_pod_yet_is_pending() {
    let vmi = vmi_named("vm1", "u1");
    let s = vmi_status_from_pod(&vmi, None, false, NOW);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("PodNotExists"));
    assert_eq!(
        ready.message.as_deref(),
        Some("virt-launcher pod has not yet been scheduled")
    );
    assert_eq!(s.phase_transition_timestamps.len(), 1);
    assert_eq!(s.phase_transition_timestamps[0].phase, "Pending");
    assert_eq!(
        s.phase_transition_timestamps[0]
            .phase_transition_timestamp
            .as_deref(),
        Some("2026-08-01T12:00:00Z")
    );
    // Pending again: no new transition entry.
    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    let s = vmi_status_from_pod(&vmi, None, false, NOW);
    assert_eq!(s.phase_transition_timestamps.len(), 1);
}

#[test]
fn pod_lifecycle_maps_to_scheduling_scheduled_running() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Pending");
    let s = vmi_status_from_pod(&vmi, Some(&pod("Pending", None, false)), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Scheduling"));
    assert_eq!(s.node_name, None);

    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    let s = vmi_status_from_pod(
        &vmi,
        Some(&pod("Pending", Some("node-a"), false)),
        true,
        NOW,
    );
    assert_eq!(s.phase.as_deref(), Some("Scheduled"));
    assert_eq!(s.node_name.as_deref(), Some("node-a"));
    assert_eq!(
        cond(&s, "Ready").unwrap().reason.as_deref(),
        Some("GuestNotRunning")
    );

    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("node-a"), true)), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(
        ready.last_transition_time.as_deref(),
        Some("2026-08-01T11:59:00Z")
    );
    assert_eq!(s.interfaces.len(), 1);
    assert_eq!(s.interfaces[0].name.as_deref(), Some("default"));
    assert_eq!(s.interfaces[0].ip_address.as_deref(), Some("10.0.0.7"));
    assert_eq!(s.interfaces[0].ip_addresses, vec!["10.0.0.7".to_string()]);
    assert!(cond(&s, "Paused").is_none());
    let phases: Vec<_> = s
        .phase_transition_timestamps
        .iter()
        .map(|t| t.phase.as_str())
        .collect();
    assert_eq!(phases, ["Scheduling", "Scheduled", "Running"]);

    // A Pod that is no longer ready does not move the phase back.
    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    let s = vmi_status_from_pod(
        &vmi,
        Some(&pod("Running", Some("node-a"), false)),
        true,
        NOW,
    );
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&s, "Ready").unwrap().status, "False");
    assert_eq!(s.phase_transition_timestamps.len(), 3);
}

#[test]
fn running_without_ready_condition_reports_it_missing() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    let mut p = pod("Running", Some("node-a"), true);
    p.status.as_mut().unwrap().conditions = Some(vec![]);
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodConditionMissing"));
    assert_eq!(
        ready.message.as_deref(),
        Some("virt-launcher pod is missing the Ready condition")
    );
}

#[test]
fn pod_final_phases_map_to_final_vmi_phases() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    let s = vmi_status_from_pod(&vmi, Some(&pod("Succeeded", Some("n"), false)), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        cond(&s, "Ready").unwrap().reason.as_deref(),
        Some("PodTerminating")
    );
    let s = vmi_status_from_pod(&vmi, Some(&pod("Failed", Some("n"), false)), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}

#[test]
fn pod_gone_while_running_fails_the_vmi() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    // had_pod is implied by the phase.
    let s = vmi_status_from_pod(&vmi, None, false, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    // A Pod creation the cache does not show yet: nothing is concluded.
    let s = vmi_status_from_pod(&vmi, None, true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let pending = with_phase(vmi_named("vm1", "u1"), "Pending");
    let s = vmi_status_from_pod(&pending, None, true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
}

#[test]
fn after_shutdown_the_vmi_is_final() {
    let running = with_phase(vmi_named("vm1", "u1"), "Running");
    let s = vmi_status_after_shutdown(&running, NOW);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        cond(&s, "Ready").unwrap().reason.as_deref(),
        Some("PodNotExists")
    );
    assert_eq!(
        s.phase_transition_timestamps.last().unwrap().phase,
        "Succeeded"
    );
    let pending = with_phase(vmi_named("vm1", "u1"), "Pending");
    let s = vmi_status_after_shutdown(&pending, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    let failed = with_phase(vmi_named("vm1", "u1"), "Failed");
    let s = vmi_status_after_shutdown(&failed, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}

#[test]
fn owner_reference_points_at_the_vm() {
    let r = owner_reference(&cirros_vm());
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "vm-cirros",
               "uid": "vm-uid-1", "controller": true, "blockOwnerDeletion": true})
    );
}

#[test]
fn pod_deleted_under_a_live_vmi_fails_it() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    let mut p = pod("Running", Some("n"), true);
    p.metadata.deletion_timestamp = Some(time("2026-08-01T11:59:30Z"));
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}

#[test]
fn deleted_vmi_finishes_when_its_pod_is_gone() {
    let mut vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    vmi.metadata.deletion_timestamp = Some(time("2026-08-01T11:59:30Z"));
    let mut p = pod("Running", Some("n"), true);
    p.metadata.deletion_timestamp = Some(time("2026-08-01T11:59:31Z"));
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(
        cond(&s, "Ready").unwrap().reason.as_deref(),
        Some("PodTerminating")
    );
    let s = vmi_status_from_pod(&vmi, None, true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));

    let mut pending = vmi_named("vm1", "u1");
    pending.metadata.deletion_timestamp = Some(time("2026-08-01T11:59:30Z"));
    let s = vmi_status_from_pod(&pending, None, false, NOW);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}

#[test]
fn final_phase_never_changes() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Succeeded");
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("n"), true)), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert!(s.phase_transition_timestamps.is_empty());
}

#[test]
fn unschedulable_pod_sets_pod_scheduled_false_and_clears_it_later() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Scheduling");
    let mut p = pod("Pending", None, false);
    p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some("0/1 nodes are available".into()),
        ..Default::default()
    }]);
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    assert_eq!(s.phase.as_deref(), Some("Scheduling"));
    let c = cond(&s, "PodScheduled").unwrap();
    assert_eq!(c.status, "False");
    assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(c.message.as_deref(), Some("0/1 nodes are available"));

    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    let s = vmi_status_from_pod(&vmi, Some(&pod("Pending", Some("n"), false)), true, NOW);
    assert!(cond(&s, "PodScheduled").is_none());
}

fn waiting(reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: "compute".into(),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some(format!("{reason}: image not found")),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn image_pull_errors_set_synchronized_false() {
    let vmi = with_phase(vmi_named("vm1", "u1"), "Scheduled");
    let mut p = pod("Pending", Some("n"), false);
    p.status.as_mut().unwrap().container_statuses = Some(vec![waiting("ErrImagePull")]);
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    let c = cond(&s, "Synchronized").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("ErrImagePull"))
    );
    assert_eq!(c.message.as_deref(), Some("ErrImagePull: image not found"));

    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    p.status.as_mut().unwrap().container_statuses = Some(vec![waiting("ImagePullBackOff")]);
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    let c = cond(&s, "Synchronized").unwrap();
    assert_eq!(c.reason.as_deref(), Some("ImagePullBackOff"));

    let vmi = VirtualMachineInstance {
        status: Some(s),
        ..vmi
    };
    p.status.as_mut().unwrap().container_statuses = Some(vec![waiting("ContainerCreating")]);
    let s = vmi_status_from_pod(&vmi, Some(&p), true, NOW);
    assert!(cond(&s, "Synchronized").is_none());
}

#[test]
fn paused_start_shows_paused_once_running() {
    let mut vmi = with_phase(vmi_named("vm1", "u1"), "Scheduled");
    vmi.spec.start_strategy = Some("Paused".into());
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("n"), true)), true, NOW);
    let c = cond(&s, "Paused").unwrap();
    assert_eq!(c.status, "True");
    assert_eq!(c.reason.as_deref(), Some("PausedByUser"));
    assert_eq!(c.message.as_deref(), Some("VMI was paused by user"));
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ReadinessGatesNotReady")),
        "paused from its first Running status on"
    );

    // Unpaused later (condition removed): not added back.
    let mut s2 = s.clone();
    s2.conditions.retain(|c| c.type_ != "Paused");
    let vmi = VirtualMachineInstance {
        status: Some(s2),
        ..vmi
    };
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("n"), true)), true, NOW);
    assert!(cond(&s, "Paused").is_none());
}

#[test]
fn a_paused_vmi_is_not_ready_and_ready_again_once_unpaused() {
    let running = with_phase(vmi_named("vm1", "u1"), "Running");
    let pod = pod("Running", Some("n"), true);
    let s = vmi_status_from_pod(&running, Some(&pod), true, NOW);
    assert_eq!(cond(&s, "Ready").unwrap().status, "True");

    let mut paused = VirtualMachineInstance {
        status: Some(s),
        ..running
    };
    let conditions = &mut paused.status.as_mut().unwrap().conditions;
    conditions.push(Condition {
        type_: "Paused".into(),
        status: "True".into(),
        reason: Some("PausedByUser".into()),
        ..Default::default()
    });
    let s = vmi_status_from_pod(&paused, Some(&pod), true, NOW);
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some(
            "the status of pod readiness gate \"kubevirt.io/virtual-machine-unpaused\" is not \"True\", but False"
        )
    );

    let mut unpaused = VirtualMachineInstance {
        status: Some(s),
        ..paused
    };
    let conditions = &mut unpaused.status.as_mut().unwrap().conditions;
    conditions.retain(|c| c.type_ != "Paused");
    let s = vmi_status_from_pod(&unpaused, Some(&pod), true, NOW);
    assert_eq!(cond(&s, "Ready").unwrap().status, "True");
}

#[test]
fn extra_status_fields_and_interface_names_are_kept() {
    let mut vmi = with_phase(vmi_named("vm1", "u1"), "Running");
    let st = vmi.status.as_mut().unwrap();
    st.extra
        .insert("guestOSInfo".into(), json!({"id": "cirros"}));
    st.interfaces.push(InterfaceStatus {
        name: Some("nic0".into()),
        ..Default::default()
    });
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("n"), true)), true, NOW);
    assert_eq!(s.extra["guestOSInfo"], json!({"id": "cirros"}));
    assert_eq!(s.interfaces[0].name.as_deref(), Some("nic0"));
    assert_eq!(s.interfaces[0].ip_address.as_deref(), Some("10.0.0.7"));
}

#[test]
fn interface_name_comes_from_the_pod_network() {
    let mut vmi = with_phase(vmi_named("vm1", "u1"), "Scheduled");
    vmi.spec.networks = Some(vec![crate::types::Network {
        name: "podnet".into(),
        pod: Some(json!({})),
        ..Default::default()
    }]);
    let s = vmi_status_from_pod(&vmi, Some(&pod("Running", Some("n"), true)), true, NOW);
    assert_eq!(s.interfaces[0].name.as_deref(), Some("podnet"));
}

#[test]
fn launcher_settings_go_to_the_compute_command_only() {
    let vmi = vmi_named("vm1", "uid-1");
    let mut pod = build_launcher_pod(&vmi);
    let before = pod.clone();
    with_launcher_args(&mut pod, &[]);
    assert_eq!(pod, before, "no settings, no change");
    with_launcher_args(&mut pod, &crate::launcher_api::accel_args(Some("kvm")));
    let spec = pod.spec.unwrap();
    let command = |name: &str| {
        spec.containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.command.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        command("compute")[command("compute").len() - 2..],
        ["--accel", "kvm"]
    );
    assert!(!command("guest-console-log").contains(&"--accel".to_string()));
}

#[test]
fn a_launcher_pod_name_is_its_vmi_s_own_and_reads_like_a_generated_one() {
    let name = launcher_pod_name("vm-cirros", "0b6f6d5e-4a0e-4a55-9f7e-1c2d3e4f5a6b");
    // The same VMI always gets the same name: a create sent twice cannot make two Pods.
    assert_eq!(
        name,
        launcher_pod_name("vm-cirros", "0b6f6d5e-4a0e-4a55-9f7e-1c2d3e4f5a6b")
    );
    let suffix = name.strip_prefix("virt-launcher-vm-cirros-").unwrap();
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix.bytes().all(|b| GENERATED_NAME_ALPHABET.contains(&b)),
        "{suffix}"
    );
    // Another VMI of the same name (the VM restarted): another Pod name.
    assert_ne!(name, launcher_pod_name("vm-cirros", "another-uid"));
    // A long name is cut as kube-apiserver cuts a generateName: 58 + 5 characters.
    let long = "v".repeat(100);
    let cut = launcher_pod_name(&long, "u");
    assert_eq!(cut.len(), 63);
    assert!(cut.starts_with(&format!("virt-launcher-{}", &long[..44])));
    // Cut on a character boundary, whatever the name holds.
    let odd = format!("{}é", "v".repeat(42));
    assert!(launcher_pod_name(&odd, "u").len() <= 63);
}
