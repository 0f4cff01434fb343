//! The admission rules' tests: one named test per rule (matrix style), the AdmissionReview
//! wire shapes, and the mutators' patches applied to the manifests in `examples/`.

use serde_json::{Value, json};

use super::mutate::Fresh;
use super::wire::{GroupVersionResource, UserInfo};
use super::*;

const SERIAL: &str = "00000000-0000-4000-8000-000000000001";
const CONTROLLER: &str = "system:serviceaccount:kubevirt:kubevirt-controller";

fn fixed_serial() -> String {
    SERIAL.to_string()
}

fn request(webhook: Webhook, op: &str, object: Value, old: Option<Value>) -> AdmissionRequest {
    AdmissionRequest {
        uid: "req-1".into(),
        resource: GroupVersionResource {
            group: "kubevirt.io".into(),
            version: "v1".into(),
            resource: webhook.resource().into(),
        },
        operation: op.into(),
        user_info: UserInfo {
            username: "alice".into(),
            ..Default::default()
        },
        object: Some(object),
        old_object: old,
        ..Default::default()
    }
}

fn review(webhook: Webhook, request: &AdmissionRequest) -> AdmissionResponse {
    Reviewer::kubevirt("kubevirt").review_with(
        webhook,
        request,
        &Fresh {
            serial: &fixed_serial,
        },
    )
}

/// A VM whose spec is `{runStrategy: Always}` merged with `spec` and whose template spec is
/// a valid one merged with `template`.
fn vm(spec: Value, template: Value) -> Value {
    let mut vm = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "namespace": "default"},
        "spec": {"runStrategy": "Always", "template": {"spec": valid_vmi_spec()}}
    });
    merge(&mut vm["spec"], spec);
    merge(&mut vm["spec"]["template"]["spec"], template);
    vm
}

fn vmi(spec: Value) -> Value {
    let mut vmi = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vmi1", "namespace": "default"},
        "spec": valid_vmi_spec()
    });
    merge(&mut vmi["spec"], spec);
    vmi
}

fn valid_vmi_spec() -> Value {
    json!({
        "domain": {
            "devices": {
                "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "masquerade": {}}]
            },
            "resources": {"requests": {"memory": "64M"}}
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "root", "containerDisk": {"image": "cirros"}}]
    })
}

/// JSON merge patch (RFC 7386): `null` removes a member.
fn merge(target: &mut Value, patch: Value) {
    json_patch::merge(target, &patch);
}

/// What a review must answer.
enum Want {
    Allowed(&'static [&'static str]),
    Denied(&'static str, &'static [(&'static str, &'static str)]),
    BadRequest(&'static str),
}
use Want::*;

fn check(name: &str, got: AdmissionResponse, want: Want) {
    match want {
        Allowed(warnings) => {
            assert!(got.allowed, "{name}: denied: {got:?}");
            assert_eq!(got.warnings, warnings, "{name}: warnings");
        }
        Denied(message, causes) => {
            assert!(!got.allowed, "{name}: allowed");
            let status = got.status.expect("a denial carries a status");
            assert_eq!(status.code, 422, "{name}");
            assert_eq!(status.reason, "Invalid", "{name}");
            assert_eq!(status.message, message, "{name}");
            let got_causes: Vec<(String, String)> = status
                .details
                .unwrap_or_default()
                .causes
                .into_iter()
                .map(|c| (c.type_, c.field))
                .collect();
            let want_causes: Vec<(String, String)> = causes
                .iter()
                .map(|(t, f)| (t.to_string(), f.to_string()))
                .collect();
            assert_eq!(got_causes, want_causes, "{name}: causes");
        }
        BadRequest(message) => {
            assert!(!got.allowed, "{name}: allowed");
            let status = got.status.expect("a refusal carries a status");
            assert_eq!(
                (status.code, status.message.as_str()),
                (400, message),
                "{name}"
            );
        }
    }
}

const INVALID: &str = "FieldValueInvalid";
const REQUIRED: &str = "FieldValueRequired";
const DUPLICATE: &str = "FieldValueDuplicate";
const NOT_SUPPORTED: &str = "FieldValueNotSupported";
const RUNNING_WARNING: &[&str] =
    &["spec.running is deprecated, please use spec.runStrategy instead."];

/// One `#[test]` per rule: `name: <webhook> <operation> <object> => <want>;`.
macro_rules! matrix {
    ($($name:ident: $webhook:ident $op:literal $object:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let object = $object;
            let old = ($op == "UPDATE").then(|| object.clone());
            let req = request(Webhook::$webhook, $op, object, old);
            check(stringify!($name), review(Webhook::$webhook, &req), $want);
        }
    )*};
}

matrix! {
    // vms-admitter.go validateRunStrategy and the running warning
    vm_run_strategy_alone_is_allowed: VmValidate "CREATE" vm(json!({}), json!({})) => Allowed(&[]);
    vm_running_alone_is_allowed_with_a_warning: VmValidate "CREATE"
        vm(json!({"runStrategy": null, "running": false}), json!({})) => Allowed(RUNNING_WARNING);
    vm_running_and_run_strategy_are_refused: VmValidate "CREATE"
        vm(json!({"running": true}), json!({})) =>
        Denied("Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead",
            &[(INVALID, "spec.running")]);
    vm_neither_running_nor_run_strategy_is_refused: VmValidate "UPDATE"
        vm(json!({"runStrategy": null}), json!({})) =>
        Denied("RunStrategy must be specified", &[(INVALID, "spec.running")]);
    vm_unknown_run_strategy_is_refused: VmValidate "CREATE"
        vm(json!({"runStrategy": "Sometimes"}), json!({})) =>
        Denied("Invalid RunStrategy (Sometimes)", &[(INVALID, "spec.runStrategy")]);
    vm_wait_as_receiver_needs_a_feature_gate: VmValidate "CREATE"
        vm(json!({"runStrategy": "WaitAsReceiver"}), json!({})) =>
        Denied("Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate is not enabled in kubevirt resource",
            &[(INVALID, "spec.runStrategy")]);
    vm_missing_template_is_refused: VmValidate "CREATE"
        json!({"metadata": {"name": "vm1"}, "spec": {"runStrategy": "Always"}}) =>
        Denied("missing virtual machine template.", &[(REQUIRED, "spec.template")]);
    vm_being_deleted_is_allowed: VmValidate "UPDATE"
        { let mut v = vm(json!({"runStrategy": null}), json!({}));
          v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"); v } => Allowed(&[]);
    vm_template_rules_use_the_template_path: VmValidate "CREATE"
        vm(json!({}), json!({"networks": [{"name": "other", "pod": {}}]})) =>
        Denied("spec.template.spec.networks[0].name 'other' not found., spec.template.spec.domain.devices.interfaces[0].name 'default' not found.",
            &[(REQUIRED, "spec.template.spec.networks[0].name"),
              (INVALID, "spec.template.spec.domain.devices.interfaces[0].name")]);
    vm_template_causes_come_before_run_strategy_causes: VmValidate "CREATE"
        vm(json!({"runStrategy": "Nope"}), json!({"startStrategy": "Later"})) =>
        Denied("spec.template.spec.startStrategy is set with an unrecognized option: Later, Invalid RunStrategy (Nope)",
            &[(INVALID, "spec.template.spec.startStrategy"), (INVALID, "spec.runStrategy")]);
    vm_volume_without_disk_is_allowed_in_a_template: VmValidate "CREATE"
        vm(json!({}), json!({"volumes": [{"name": "root", "containerDisk": {"image": "c"}},
                                          {"name": "extra", "emptyDisk": {"capacity": "1Gi"}}]})) =>
        Allowed(&[]);
    vm_malformed_running_is_a_bad_request: VmValidate "CREATE"
        vm(json!({"running": "yes", "runStrategy": null}), json!({})) =>
        BadRequest("invalid type: string \"yes\", expected a boolean");

    // vmi-create-admitter.go: memory
    vmi_valid_is_allowed: VmiValidate "CREATE" vmi(json!({})) => Allowed(&[]);
    vmi_negative_memory_request_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": {"requests": {"memory": "-64M"}}}})) =>
        Denied("spec.domain.resources.requests.memory '-64M': must be greater than or equal to 0.",
            &[(INVALID, "spec.domain.resources.requests.memory")]);
    vmi_memory_request_under_1m_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": {"requests": {"memory": "512k"}}}})) =>
        Denied("spec.domain.resources.requests.memory '512k': must be greater than or equal to 1M.",
            &[(INVALID, "spec.domain.resources.requests.memory")]);
    vmi_negative_memory_limit_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": {"limits": {"memory": "-1Gi"}}}})) =>
        Denied("spec.domain.resources.limits.memory '-1Gi': must be greater than or equal to 0.",
            &[(INVALID, "spec.domain.resources.limits.memory")]);
    vmi_memory_request_over_limit_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": {"requests": {"memory": "128M"}, "limits": {"memory": "64M"}}}})) =>
        Denied("spec.domain.resources.requests.memory '128M' is greater than spec.domain.resources.limits.memory '64M'",
            &[(INVALID, "spec.domain.resources.requests.memory")]);
    vmi_without_memory_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": null}})) =>
        Denied("no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.pageSize' or 'spec.domain.resources.requests.memory' must be set",
            &[(REQUIRED, "")]);
    vmi_guest_memory_alone_is_allowed: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": null, "memory": {"guest": "128Mi"}}})) => Allowed(&[]);
    vmi_malformed_memory_is_a_bad_request: VmiValidate "CREATE"
        vmi(json!({"domain": {"resources": {"requests": {"memory": "lots"}}}})) =>
        BadRequest(quantity::MALFORMED);

    // machine type and start strategy
    vmi_q35_machine_types_are_allowed: VmiValidate "CREATE"
        vmi(json!({"domain": {"machine": {"type": "pc-q35-rhel9.4.0"}}})) => Allowed(&[]);
    vmi_other_machine_type_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"machine": {"type": "pc-i440fx-8.0"}}})) =>
        Denied("spec.domain.machine.type is not supported: pc-i440fx-8.0 (allowed values: [q35* pc-q35*])",
            &[(INVALID, "spec.domain.machine.type")]);
    vmi_paused_start_is_allowed: VmiValidate "CREATE" vmi(json!({"startStrategy": "Paused"})) => Allowed(&[]);
    vmi_unknown_start_strategy_is_refused: VmiValidate "CREATE" vmi(json!({"startStrategy": "Later"})) =>
        Denied("spec.startStrategy is set with an unrecognized option: Later", &[(INVALID, "spec.startStrategy")]);
    vmi_paused_start_with_liveness_probe_is_refused: VmiValidate "CREATE"
        vmi(json!({"startStrategy": "Paused", "livenessProbe": {"tcpSocket": {"port": 22}}})) =>
        Denied("either spec.startStrategy or spec.livenessProbe should be provided.Pausing VMI with LivenessProbe is not supported",
            &[(INVALID, "spec.startStrategy")]);

    // pkg/network/admitter
    vmi_two_pod_networks_are_refused: VmiValidate "CREATE"
        vmi(json!({"networks": [{"name": "default", "pod": {}}, {"name": "second", "pod": {}}],
                   "domain": {"devices": {"interfaces": [{"name": "default"}, {"name": "second"}]}}})) =>
        Denied("more than one interface is connected to a pod network in spec.interfaces",
            &[(DUPLICATE, "spec.interfaces")]);
    vmi_duplicate_network_names_are_refused: VmiValidate "CREATE"
        vmi(json!({"networks": [{"name": "default", "pod": {}}, {"name": "default", "multus": {"networkName": "n"}}]})) =>
        Denied("Network with name \"default\" already exists, every network must have a unique name",
            &[(DUPLICATE, "spec.networks[1].name")]);
    vmi_network_without_interface_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"devices": {"interfaces": []}}})) =>
        Denied("spec.networks[0].name 'default' not found.", &[(REQUIRED, "spec.networks[0].name")]);
    vmi_duplicate_interface_names_are_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"devices": {"interfaces": [{"name": "default"}, {"name": "default"}]}}})) =>
        Denied("Only one interface can be connected to one specific network",
            &[(DUPLICATE, "spec.domain.devices.interfaces[1].name")]);
    vmi_interface_without_network_is_refused: VmiValidate "CREATE"
        vmi(json!({"networks": []})) =>
        Denied("spec.domain.devices.interfaces[0].name 'default' not found.",
            &[(INVALID, "spec.domain.devices.interfaces[0].name")]);
    vmi_interface_name_characters_are_checked: VmiValidate "CREATE"
        vmi(json!({"networks": [{"name": "a.b", "pod": {}}],
                   "domain": {"devices": {"interfaces": [{"name": "a.b"}]}}})) =>
        Denied("Network interface name can only contain alphabetical characters, numbers, dashes (-) or underscores (_)",
            &[(INVALID, "spec.domain.devices.interfaces[0].name")]);

    // disks and volumes
    vmi_disk_without_volume_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"devices": {"disks": [{"name": "root"}, {"name": "data"}]}}})) =>
        Denied("spec.domain.devices.disks[1].Name 'data' not found.",
            &[(INVALID, "spec.domain.devices.disks[1].name")]);
    vmi_empty_cdrom_needs_a_feature_gate: VmiValidate "CREATE"
        vmi(json!({"domain": {"devices": {"disks": [{"name": "root"}, {"name": "cd", "cdrom": {}}]}}})) =>
        Denied("DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk",
            &[(INVALID, "spec.domain.devices.disks[1].name")]);
    vmi_duplicate_boot_order_is_refused: VmiValidate "CREATE"
        vmi(json!({"domain": {"devices": {"disks": [{"name": "root", "bootOrder": 1}, {"name": "data", "bootOrder": 1}]}},
                   "volumes": [{"name": "root", "containerDisk": {"image": "c"}}, {"name": "data", "emptyDisk": {"capacity": "1Gi"}}]})) =>
        Denied("Boot order for spec.domain.devices.disks[1].bootOrder already set for a different device.",
            &[(INVALID, "spec.domain.devices.disks[1].bootOrder")]);
    vmi_volume_without_disk_is_refused: VmiValidate "CREATE"
        vmi(json!({"volumes": [{"name": "root", "containerDisk": {"image": "c"}}, {"name": "extra", "emptyDisk": {"capacity": "1Gi"}}]})) =>
        Denied("spec.domain.volumes[1].name 'extra' not found.", &[(INVALID, "spec.domain.volumes[1].name")]);
    vmi_volume_on_a_filesystem_is_allowed: VmiValidate "CREATE"
        vmi(json!({"volumes": [{"name": "root", "containerDisk": {"image": "c"}}, {"name": "share", "configMap": {"name": "cm"}}],
                   "domain": {"devices": {"filesystems": [{"name": "share", "virtiofs": {}}]}}})) => Allowed(&[]);
    vmi_duplicate_volume_names_are_refused: VmiValidate "CREATE"
        vmi(json!({"volumes": [{"name": "root", "containerDisk": {"image": "c"}}, {"name": "root", "emptyDisk": {"capacity": "1Gi"}}]})) =>
        Denied("spec.volumes[1] and spec.volumes[0] must not have the same Name.", &[(INVALID, "spec.volumes[1].name")]);
    vmi_volume_needs_exactly_one_source: VmiValidate "CREATE"
        vmi(json!({"volumes": [{"name": "root", "containerDisk": {"image": "c"}, "emptyDisk": {"capacity": "1Gi"}}]})) =>
        Denied("spec.volumes[0] must have exactly one source type set", &[(INVALID, "spec.volumes[0]")]);
}

#[test]
fn the_resource_must_be_the_webhooks() {
    let mut req = request(
        Webhook::VmValidate,
        "CREATE",
        vm(json!({}), json!({})),
        None,
    );
    req.resource.resource = "virtualmachineinstances".into();
    check(
        "vm",
        review(Webhook::VmValidate, &req),
        BadRequest("expect resource to be 'virtualmachines'"),
    );
    req.resource = GroupVersionResource {
        group: "kubevirt.io".into(),
        version: "v1alpha3".into(),
        resource: "virtualmachines".into(),
    };
    check("v1alpha3", review(Webhook::VmValidate, &req), Allowed(&[]));
    let req = request(
        Webhook::VmValidate,
        "CREATE",
        vm(json!({}), json!({})),
        None,
    );
    check(
        "vmi",
        review(Webhook::VmiValidate, &req),
        BadRequest("expect resource to be 'virtualmachineinstances'"),
    );
}

#[test]
fn delete_and_connect_are_allowed_untouched() {
    for op in ["DELETE", "CONNECT"] {
        for webhook in [Webhook::VmMutate, Webhook::VmValidate] {
            let req = request(
                webhook,
                op,
                vm(json!({"runStrategy": null}), json!({})),
                None,
            );
            assert_eq!(review(webhook, &req), AdmissionResponse::allowed(), "{op}");
        }
    }
}

#[test]
fn more_than_ten_causes_are_counted_in_the_message() {
    let interfaces: Vec<Value> = (0..12).map(|i| json!({"name": format!("n{i}")})).collect();
    let req = request(
        Webhook::VmiValidate,
        "CREATE",
        vmi(json!({"networks": [], "domain": {"devices": {"interfaces": interfaces}}})),
        None,
    );
    let got = review(Webhook::VmiValidate, &req);
    let status = got.status.unwrap();
    assert_eq!(status.details.unwrap().causes.len(), 10);
    assert!(
        status.message.ends_with(
            "spec.domain.devices.interfaces[9].name 'n9' not found., and 2 more validation errors"
        ),
        "{}",
        status.message
    );
}

// VMI update rules

fn update(webhook: Webhook, new: Value, old: Value, user: &str) -> AdmissionResponse {
    let mut req = request(webhook, "UPDATE", new, Some(old));
    req.user_info.username = user.into();
    review(webhook, &req)
}

#[test]
fn vmi_spec_changes_are_restricted_to_kubevirt() {
    let old = vmi(json!({}));
    let new = vmi(json!({"startStrategy": "Paused"}));
    check(
        "user",
        update(Webhook::VmiValidate, new.clone(), old.clone(), "alice"),
        Denied("update of VMI object is restricted", &[(NOT_SUPPORTED, "")]),
    );
    check(
        "controller",
        update(Webhook::VmiValidate, new, old.clone(), CONTROLLER),
        Allowed(&[]),
    );
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"app": "x"});
    check(
        "metadata only",
        update(Webhook::VmiValidate, labelled, old, "alice"),
        Allowed(&[]),
    );
}

#[test]
fn vmi_status_changes_by_users_are_undone() {
    let mut old = vmi(json!({}));
    old["status"] = json!({"phase": "Running"});
    let mut new = old.clone();
    new["status"] = json!({"phase": "Failed"});
    let got = update(Webhook::VmiMutate, new.clone(), old.clone(), "alice");
    assert_eq!(applied(&new, &got)["status"], json!({"phase": "Running"}));
    let got = update(Webhook::VmiMutate, new.clone(), old.clone(), CONTROLLER);
    assert_eq!(got, AdmissionResponse::allowed());
    // A status added by a user is removed; one removed by a user comes back.
    let bare = vmi(json!({}));
    let got = update(Webhook::VmiMutate, new.clone(), bare.clone(), "alice");
    assert_eq!(applied(&new, &got), bare);
    let got = update(Webhook::VmiMutate, bare.clone(), old.clone(), "alice");
    assert_eq!(applied(&bare, &got), old);
}

// Mutators

/// `object` with the response's patch applied (it must apply cleanly).
fn applied(object: &Value, response: &AdmissionResponse) -> Value {
    assert!(response.allowed, "{response:?}");
    assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
    let ops = response.patch_ops().expect("base64 of a JSON Patch array");
    let patch: json_patch::Patch = serde_json::from_value(ops).unwrap();
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &patch).expect("the patch applies");
    doc
}

fn mutated(webhook: Webhook, op: &str, object: &Value) -> Value {
    let req = request(webhook, op, object.clone(), None);
    applied(object, &review(webhook, &req))
}

#[test]
fn vm_create_gets_the_controllers_uuid_a_serial_and_defaults() {
    let object = json!({"metadata": {"name": "vm1"},
                        "spec": {"runStrategy": "Always", "template": {"spec": {}}}});
    let got = mutated(Webhook::VmMutate, "CREATE", &object);
    let uuid = crate::firmware::legacy_uuid("vm1");
    assert_eq!(
        got,
        json!({
            "metadata": {"name": "vm1", "annotations": {
                "kubevirt.io/latest-observed-api-version": "v1",
                "kubevirt.io/storage-observed-api-version": "v1"}},
            "spec": {"runStrategy": "Always", "template": {"spec": {
                "domain": {"firmware": {"uuid": uuid, "serial": SERIAL},
                           "machine": {"type": "q35"}},
                "architecture": "amd64"}}}
        })
    );
    // The webhook's UUID is the one the controller would write: its patch is then a no-op.
    let vm: VirtualMachine = serde_json::from_value(got).unwrap();
    assert_eq!(crate::firmware::firmware_patch(&vm), None);
    assert_eq!(crate::firmware::vm_uuid(&vm), uuid);
}

#[test]
fn vm_create_keeps_what_is_set() {
    let object = vm(
        json!({}),
        json!({"architecture": "arm64", "domain": {
            "firmware": {"uuid": "11111111-2222-4333-8444-555555555555", "serial": "s-1"},
            "machine": {"type": "pc-q35-9.0"}}}),
    );
    let mut want = object.clone();
    want["metadata"]["annotations"] = json!({
        "kubevirt.io/latest-observed-api-version": "v1",
        "kubevirt.io/storage-observed-api-version": "v1"});
    assert_eq!(mutated(Webhook::VmMutate, "CREATE", &object), want);
    // With the annotations there too, nothing is left to patch.
    let req = request(Webhook::VmMutate, "CREATE", want, None);
    assert_eq!(
        review(Webhook::VmMutate, &req),
        AdmissionResponse::allowed()
    );
}

#[test]
fn vm_update_does_not_touch_the_firmware() {
    let object = vm(json!({}), json!({"domain": {"machine": null}}));
    let mut req = request(
        Webhook::VmMutate,
        "UPDATE",
        object.clone(),
        Some(object.clone()),
    );
    req.user_info.username = "alice".into();
    let got = applied(&object, &review(Webhook::VmMutate, &req));
    assert_eq!(
        got["spec"]["template"]["spec"]["domain"].get("firmware"),
        None
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["domain"]["machine"],
        json!({"type": "q35"})
    );
}

#[test]
fn vm_create_without_a_name_leaves_the_uuid_to_the_controller() {
    let object = json!({"metadata": {"generateName": "vm-"},
                        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"firmware": {"uuid": ""}}}}}});
    let got = mutated(Webhook::VmMutate, "CREATE", &object);
    assert_eq!(
        got["spec"]["template"]["spec"]["domain"]["firmware"],
        json!({"uuid": "", "serial": SERIAL})
    );
}

#[test]
fn the_random_serial_is_a_uuid_v4() {
    let object = vm(json!({}), json!({}));
    let req = request(Webhook::VmMutate, "CREATE", object.clone(), None);
    let got = applied(
        &object,
        &Reviewer::default().review(Webhook::VmMutate, &req),
    );
    let serial = got["spec"]["template"]["spec"]["domain"]["firmware"]["serial"]
        .as_str()
        .unwrap();
    assert_eq!(uuid::Uuid::parse_str(serial).unwrap().get_version_num(), 4);
}

#[test]
fn vmi_create_defaults_memory_disks_and_finalizer() {
    let object = json!({"metadata": {"name": "vmi1", "finalizers": ["other"]},
        "spec": {"domain": {"resources": {"limits": {"memory": "1Gi"}}, "devices": {}},
                 "volumes": [{"name": "a", "emptyDisk": {"capacity": "1Gi"}},
                             {"name": "b", "emptyDisk": {"capacity": "1Gi"}}]}});
    let got = mutated(Webhook::VmiMutate, "CREATE", &object);
    assert_eq!(
        got,
        json!({"metadata": {"name": "vmi1",
                "finalizers": ["other", "kubevirt.io/foregroundDeleteVirtualMachine"],
                "annotations": {"kubevirt.io/latest-observed-api-version": "v1",
                                "kubevirt.io/storage-observed-api-version": "v1"}},
            "spec": {"domain": {"resources": {"limits": {"memory": "1Gi"}},
                                "devices": {"disks": [{"name": "a"}, {"name": "b"}]},
                                "machine": {"type": "q35"},
                                "memory": {"guest": "1Gi"}},
                     "architecture": "amd64",
                     "volumes": [{"name": "a", "emptyDisk": {"capacity": "1Gi"}},
                                 {"name": "b", "emptyDisk": {"capacity": "1Gi"}}]}})
    );
    // The mutated VMI passes validation.
    let req = request(Webhook::VmiValidate, "CREATE", got, None);
    check(
        "validated",
        review(Webhook::VmiValidate, &req),
        Allowed(&[]),
    );
}

#[test]
fn vmi_create_with_only_a_limit_is_refused_without_the_mutator_and_admitted_after_it() {
    let object =
        vmi(json!({"domain": {"resources": {"requests": null, "limits": {"memory": "64M"}}}}));
    let req = request(Webhook::VmiValidate, "CREATE", object.clone(), None);
    assert!(!review(Webhook::VmiValidate, &req).allowed);
    let got = mutated(Webhook::VmiMutate, "CREATE", &object);
    let req = request(Webhook::VmiValidate, "CREATE", got, None);
    check("mutated", review(Webhook::VmiValidate, &req), Allowed(&[]));
}

#[test]
fn escape_follows_rfc_6901() {
    assert_eq!(mutate::escape("kubevirt.io/a~b"), "kubevirt.io~1a~0b");
}

// Wire format

#[test]
fn an_api_server_review_decodes_and_the_answer_encodes_as_kubevirt_writes_it() {
    let wire = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{
        "uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind":{"group":"kubevirt.io","version":"v1","kind":"VirtualMachine"},
        "resource":{"group":"kubevirt.io","version":"v1","resource":"virtualmachines"},
        "requestKind":{"group":"kubevirt.io","version":"v1","kind":"VirtualMachine"},
        "name":"vm1","namespace":"default","operation":"CREATE",
        "userInfo":{"username":"admin","uid":"014fbff9a07c","groups":["system:authenticated"],
                    "extra":{"some-key":["some-value1"]}},
        "object":{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine",
                  "metadata":{"name":"vm1","namespace":"default"},
                  "spec":{"running":true,"runStrategy":"Always","template":{"spec":{}}}},
        "oldObject":null,"dryRun":false,
        "options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}"#;
    let review_in: AdmissionReview = serde_json::from_str(wire).unwrap();
    let request = review_in.request.clone().unwrap();
    assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(request.kind.kind, "VirtualMachine");
    assert_eq!(request.namespace, "default");
    assert_eq!(request.user_info.username, "admin");
    assert_eq!(request.user_info.extra["some-key"], ["some-value1"]);
    assert_eq!(request.old_object, None);
    assert_eq!(request.dry_run, Some(false));

    let answer = review_in.answer(review(Webhook::VmValidate, &request));
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        concat!(
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"#,
            r#""uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":false,"status":{"metadata":{},"#,
            r#""message":"Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead","#,
            r#""reason":"Invalid","details":{"causes":[{"reason":"FieldValueInvalid","#,
            r#""message":"Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead","#,
            r#""field":"spec.running"}]},"code":422}}}"#
        )
    );
    let back: AdmissionReview =
        serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
    assert_eq!(back, answer);
}

#[test]
fn a_patch_answer_is_base64_json_patch_with_its_type() {
    let object = json!({"metadata": {"name": "vm1", "annotations": {
            "kubevirt.io/latest-observed-api-version": "v1",
            "kubevirt.io/storage-observed-api-version": "v1"}},
        "spec": {"runStrategy": "Always", "template": {"spec": {"architecture": "amd64",
            "domain": {"machine": {"type": "q35"}, "firmware": {"serial": "s"}}}}}});
    let req = request(Webhook::VmMutate, "CREATE", object, None);
    let answer = AdmissionReview {
        api_version: "admission.k8s.io/v1".into(),
        request: Some(req.clone()),
        ..Default::default()
    }
    .answer(review(Webhook::VmMutate, &req));
    let uuid = crate::firmware::legacy_uuid("vm1");
    let ops = format!(
        r#"[{{"op":"add","path":"/spec/template/spec/domain/firmware/uuid","value":"{uuid}"}}]"#
    );
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(ops);
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": "req-1", "allowed": true, "patch": encoded, "patchType": "JSONPatch"}})
    );
}

#[test]
fn an_allowed_answer_carries_warnings_and_no_status() {
    let req = request(
        Webhook::VmValidate,
        "CREATE",
        vm(json!({"runStrategy": null, "running": true}), json!({})),
        None,
    );
    assert_eq!(
        serde_json::to_value(review(Webhook::VmValidate, &req)).unwrap(),
        json!({"uid": "", "allowed": true,
               "warnings": ["spec.running is deprecated, please use spec.runStrategy instead."]})
    );
}

#[test]
fn webhook_paths_are_kubevirts() {
    for (path, webhook) in [
        ("/virtualmachines-mutate", Webhook::VmMutate),
        ("/virtualmachineinstances-mutate", Webhook::VmiMutate),
        ("/virtualmachines-validate", Webhook::VmValidate),
        (
            "/virtualmachineinstances-validate-create",
            Webhook::VmiValidate,
        ),
        (
            "/virtualmachineinstances-validate-update",
            Webhook::VmiValidate,
        ),
    ] {
        assert_eq!(Webhook::from_path(path), Some(webhook), "{path}");
    }
    assert_eq!(Webhook::from_path("/pods-mutate"), None);
}

// The manifests in examples/

fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_example_vm_is_admitted_and_mutated_cleanly() {
    for name in [
        "vm-cirros.yaml",
        "vm-manual.yaml",
        "vm-rerun.yaml",
        "vm-ssh.yaml",
    ] {
        let object = example(name);
        let got = mutated(Webhook::VmMutate, "CREATE", &object);
        // The UUID the controller would give the VM: the manifest's, else the name-based one.
        let typed: VirtualMachine = serde_json::from_value(object.clone()).unwrap();
        let firmware = &got["spec"]["template"]["spec"]["domain"]["firmware"];
        assert_eq!(
            firmware["uuid"],
            json!(crate::firmware::vm_uuid(&typed)),
            "{name}"
        );
        assert_eq!(firmware["serial"], json!(SERIAL), "{name}");
        assert_eq!(
            got["spec"]["template"]["spec"]["domain"]["machine"]["type"], "q35",
            "{name}"
        );
        let req = request(Webhook::VmValidate, "CREATE", got, None);
        let answer = review(Webhook::VmValidate, &req);
        assert!(answer.allowed, "{name}: {answer:?}");
    }
}

#[test]
fn vm_cirros_is_mutated_to_the_expected_object() {
    let object = example("vm-cirros.yaml");
    let got = mutated(Webhook::VmMutate, "CREATE", &object);
    let mut want = object.clone();
    want["metadata"]["annotations"] = json!({
        "kubevirt.io/latest-observed-api-version": "v1",
        "kubevirt.io/storage-observed-api-version": "v1"});
    let template = &mut want["spec"]["template"]["spec"];
    template["domain"]["firmware"] =
        json!({"uuid": "0d2a2043-41c0-59c3-9b17-025022203668", "serial": SERIAL});
    template["domain"]["machine"]["type"] = json!("q35");
    template["architecture"] = json!("amd64");
    assert_eq!(got, want);
    // running: false is the seed's: admitted with KubeVirt's deprecation warning.
    let req = request(Webhook::VmValidate, "CREATE", got, None);
    check(
        "vm-cirros",
        review(Webhook::VmValidate, &req),
        Allowed(RUNNING_WARNING),
    );
}

#[test]
fn vmi_ephemeral_is_mutated_to_the_expected_object_and_admitted() {
    let object = example("vmi-ephemeral.yaml");
    let got = mutated(Webhook::VmiMutate, "CREATE", &object);
    let mut want = object.clone();
    want["metadata"]["annotations"] = json!({
        "kubevirt.io/latest-observed-api-version": "v1",
        "kubevirt.io/storage-observed-api-version": "v1"});
    want["metadata"]["finalizers"] = json!(["kubevirt.io/foregroundDeleteVirtualMachine"]);
    want["spec"]["architecture"] = json!("amd64");
    want["spec"]["domain"]["machine"] = json!({"type": "q35"});
    want["spec"]["domain"]["memory"] = json!({"guest": "64M"});
    assert_eq!(got, want);
    let req = request(Webhook::VmiValidate, "CREATE", got, None);
    check(
        "vmi-ephemeral",
        review(Webhook::VmiValidate, &req),
        Allowed(&[]),
    );
}
