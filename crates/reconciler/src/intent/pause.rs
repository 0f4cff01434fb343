//! `pause` and `unpause` of a VMI (Part B §2.7).
//!
//! KubeVirt's virt-api checks the request and then asks virt-handler to pause the domain, which
//! records the VMI's `Paused` condition. Here the same checks make a plan that writes that
//! condition itself (guarded by `test` operations so a concurrent change of the VMI turns into
//! a 409 instead of a lost write); [`route`] then says whether the VMI's node has a
//! virt-handler to forward the request to instead (`docs/data-plane.md`).

use serde_json::{Value, json};

use super::{IntentError, PatchTarget, Plan, StatusDetails};
use crate::request;
use crate::status::{self, condition_type};
use crate::types::{VirtualMachine, VirtualMachineInstance};
use crate::vmi::vmi_reason;

/// The group-resource KubeVirt names in its VMI messages.
pub const VMI_GROUP_RESOURCE: &str = "virtualmachineinstance.kubevirt.io";
/// 409 of `pause` on a VMI that is not Running (virt-api's wording says VM).
pub const PAUSE_NOT_RUNNING: &str = "VM is not running";
/// 409 of `unpause` on a VMI that is not Running.
pub const UNPAUSE_NOT_RUNNING: &str = "VMI is not running";
pub const ALREADY_PAUSED: &str = "VMI is already paused";
pub const NOT_PAUSED: &str = "VMI is not paused";
pub const SNAPSHOT_IN_PROGRESS: &str = "VM snapshot is in progress";
/// 403: a paused guest cannot answer any probe but the guest-agent ping.
pub const LIVENESS_PROBE_UNSUPPORTED: &str =
    "Pausing VMIs with a non-GuestAgentPing LivenessProbe is not supported";
/// The message of the `Paused` condition.
pub const PAUSED_MESSAGE: &str = "VMI was paused by user";

pub use crate::request::{PauseOptions, UnpauseOptions};

/// KubeVirt's resource name for VMIs in Status messages and details.
const VMI_RESOURCE: &str = "virtualmachineinstance";

fn vmi_conflict(name: &str, reason: &str) -> IntentError {
    IntentError::conflict_on(VMI_RESOURCE, name, reason)
}

fn vmi_not_found(name: &str) -> IntentError {
    IntentError::not_found(VMI_RESOURCE, name)
}

/// The index of the VMI's `Paused` condition, if it has one. virt-api looks at the type only.
fn paused_index(vmi: &VirtualMachineInstance) -> Option<usize> {
    vmi.status
        .as_ref()?
        .conditions
        .iter()
        .position(|c| c.type_ == condition_type::PAUSED)
}

/// A test of the VMI's resourceVersion: any change since it was read makes the patch a 409.
/// (Testing the conditions themselves would compare the typed re-encoding with what is
/// stored, which may hold fields this crate does not model.)
fn unchanged(vmi: &VirtualMachineInstance) -> Value {
    json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": vmi.metadata.resource_version,
    })
}

/// A liveness probe other than the guest-agent ping would fail while the guest is paused.
fn has_unsupported_liveness_probe(vmi: &VirtualMachineInstance) -> bool {
    match vmi.spec.extra.get("livenessProbe") {
        None | Some(Value::Null) => false,
        Some(probe) => probe.get("guestAgentPing").is_none(),
    }
}

/// `pause` of the VMI `name` (`vmi` is `None` when it does not exist). Checks, in order: the
/// VMI exists (404), it is Running (409), its liveness probe (403), it is not already paused
/// (409). The plan adds `Paused=True` (`PausedByUser`) to its conditions, stamped `now`, if
/// the VMI has not changed since it was read.
pub fn pause(
    name: &str,
    vmi: Option<&VirtualMachineInstance>,
    opts: &PauseOptions,
    now: &str,
) -> Result<Plan, IntentError> {
    let vmi = vmi.ok_or_else(|| vmi_not_found(name))?;
    if vmi.phase() != "Running" {
        return Err(vmi_conflict(name, PAUSE_NOT_RUNNING));
    }
    if has_unsupported_liveness_probe(vmi) {
        return Err(IntentError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{VMI_GROUP_RESOURCE} \"{name}\" is forbidden: {LIVENESS_PROBE_UNSUPPORTED}"
            ),
            details: Some(StatusDetails::of(VMI_RESOURCE, name)),
        });
    }
    if paused_index(vmi).is_some() {
        return Err(vmi_conflict(name, ALREADY_PAUSED));
    }
    let dry_run = request::dry_run(&opts.dry_run)?;
    let condition = status::new_condition(
        condition_type::PAUSED,
        "True",
        vmi_reason::PAUSED_BY_USER,
        PAUSED_MESSAGE,
        now,
    );
    let mut conditions = vmi
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.push(condition);
    let mut plan = Plan::new(dry_run);
    plan.push(
        PatchTarget::Vmi,
        json!([
            unchanged(vmi),
            {"op": "test", "path": "/status/phase", "value": "Running"},
            {"op": "add", "path": "/status/conditions", "value": conditions},
        ]),
    );
    Ok(plan)
}

/// `unpause` of the VMI `name`. `vm` is the VM of the same name, if any. Checks, in order: a
/// snapshot in progress on that VM (409), the VMI exists (404), it is Running (409), it is
/// paused (409). The plan removes the `Paused` condition.
pub fn unpause(
    name: &str,
    vm: Option<&VirtualMachine>,
    vmi: Option<&VirtualMachineInstance>,
    opts: &UnpauseOptions,
) -> Result<Plan, IntentError> {
    let snapshotting = vm
        .and_then(|vm| vm.status.as_ref())
        .and_then(|s| s.extra.get("snapshotInProgress"))
        .is_some_and(|v| !v.is_null());
    if snapshotting {
        return Err(vmi_conflict(name, SNAPSHOT_IN_PROGRESS));
    }
    let vmi = vmi.ok_or_else(|| vmi_not_found(name))?;
    if vmi.phase() != "Running" {
        return Err(vmi_conflict(name, UNPAUSE_NOT_RUNNING));
    }
    let Some(index) = paused_index(vmi) else {
        return Err(vmi_conflict(name, NOT_PAUSED));
    };
    let dry_run = request::dry_run(&opts.dry_run)?;
    let path = format!("/status/conditions/{index}");
    let mut plan = Plan::new(dry_run);
    plan.push(
        PatchTarget::Vmi,
        json!([
            unchanged(vmi),
            {"op": "test", "path": format!("{path}/type"), "value": condition_type::PAUSED},
            {"op": "remove", "path": path},
        ]),
    );
    Ok(plan)
}

/// How a checked pause or unpause is carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Write the plan's patches (no virt-handler on the VMI's node, or a dry run).
    Write(Plan),
    /// Ask the virt-handler at this address (`host:port`) and write nothing: it records the
    /// `Paused` condition once the domain is paused.
    Forward { address: String },
}

/// Where `plan` (a checked `pause` or `unpause`) goes, given the Node the VMI runs on: to the
/// node's virt-handler when it has one (labelled `kubevirt.io/schedulable=true` with a
/// `virt-toolkit.dev/handler-address`), else written as before. A dry run is always written:
/// the API server checks it and nothing changes.
pub fn route(plan: Plan, node: Option<&k8s_openapi::api::core::v1::Node>) -> Route {
    let handler = node
        .filter(|n| crate::vmi::node_has_handler(n))
        .and_then(crate::vmi::handler_address);
    match handler {
        Some(address) if !plan.dry_run => Route::Forward {
            address: address.to_string(),
        },
        _ => Route::Write(plan),
    }
}

/// The path of a pause or unpause on virt-handler's HTTP API.
pub fn handler_path(ns: &str, name: &str, verb: &str) -> String {
    format!("/v1/namespaces/{ns}/virtualmachineinstances/{name}/{verb}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Condition, VirtualMachineInstanceStatus};
    use k8s_openapi::api::core::v1::Node;
    use std::collections::BTreeMap;

    fn node(label: Option<&str>, address: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("node1".into());
        n.metadata.labels =
            label.map(|v| BTreeMap::from([("kubevirt.io/schedulable".into(), v.into())]));
        n.metadata.annotations = address
            .map(|a| BTreeMap::from([("virt-toolkit.dev/handler-address".into(), a.into())]));
        n
    }

    #[test]
    fn pauses_go_to_the_nodes_handler_when_it_has_one() {
        let plan = pause("vm1", Some(&vmi("Running", vec![])), &OPTS, NOW).unwrap();
        let forward = Route::Forward {
            address: "127.0.0.1:8186".into(),
        };
        let cases = [
            // (node, route)
            (None, Route::Write(plan.clone())),
            (Some(node(None, None)), Route::Write(plan.clone())),
            (Some(node(Some("true"), Some("127.0.0.1:8186"))), forward),
            // A handler that left (label gone or false) is not asked.
            (
                Some(node(None, Some("127.0.0.1:8186"))),
                Route::Write(plan.clone()),
            ),
            (
                Some(node(Some("false"), Some("127.0.0.1:8186"))),
                Route::Write(plan.clone()),
            ),
            (Some(node(Some("true"), None)), Route::Write(plan.clone())),
            (
                Some(node(Some("true"), Some(""))),
                Route::Write(plan.clone()),
            ),
        ];
        for (n, want) in cases {
            assert_eq!(route(plan.clone(), n.as_ref()), want, "{n:?}");
        }
        let dry = pause(
            "vm1",
            Some(&vmi("Running", vec![])),
            &PauseOptions {
                dry_run: request::dry_run_values(true),
            },
            NOW,
        )
        .unwrap();
        let handled = node(Some("true"), Some("127.0.0.1:8186"));
        assert_eq!(route(dry.clone(), Some(&handled)), Route::Write(dry));
        assert_eq!(
            handler_path("default", "vm1", "unpause"),
            "/v1/namespaces/default/virtualmachineinstances/vm1/unpause"
        );
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn vmi(phase: &str, conditions: Vec<Condition>) -> VirtualMachineInstance {
        let mut vmi = VirtualMachineInstance::new("vm1", Default::default());
        vmi.metadata.resource_version = Some("7".into());
        vmi.status = Some(VirtualMachineInstanceStatus {
            phase: Some(phase.into()),
            conditions,
            ..Default::default()
        });
        vmi
    }

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn paused_vmi() -> VirtualMachineInstance {
        vmi(
            "Running",
            vec![cond("Ready", "True"), cond("Paused", "True")],
        )
    }

    fn err(r: Result<Plan, IntentError>) -> (u16, &'static str, String) {
        let e = r.expect_err("expected a refusal");
        (e.code, e.reason, e.message)
    }

    const OPTS: PauseOptions = PauseOptions {
        dry_run: Vec::new(),
    };
    const UNPAUSE: UnpauseOptions = UnpauseOptions {
        dry_run: Vec::new(),
    };

    #[test]
    fn pause_refusals_in_virt_api_order() {
        assert_eq!(
            err(pause("vm1", None, &OPTS, NOW)),
            (
                404,
                "NotFound",
                "virtualmachineinstance.kubevirt.io \"vm1\" not found".into()
            )
        );
        for phase in [
            "",
            "Pending",
            "Scheduling",
            "Scheduled",
            "Succeeded",
            "Failed",
        ] {
            // Not running wins over an existing Paused condition.
            let v = vmi(phase, vec![cond("Paused", "True")]);
            assert_eq!(
                err(pause("vm1", Some(&v), &OPTS, NOW)),
                (
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": \
                     VM is not running"
                        .into()
                ),
                "phase {phase:?}"
            );
        }
        let mut probed = paused_vmi();
        probed
            .spec
            .extra
            .insert("livenessProbe".into(), json!({"httpGet": {"port": 80}}));
        assert_eq!(
            err(pause("vm1", Some(&probed), &OPTS, NOW)),
            (
                403,
                "Forbidden",
                "virtualmachineinstance.kubevirt.io \"vm1\" is forbidden: Pausing VMIs with a \
                 non-GuestAgentPing LivenessProbe is not supported"
                    .into()
            )
        );
        assert_eq!(
            err(pause("vm1", Some(&paused_vmi()), &OPTS, NOW)).2,
            "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": \
             VMI is already paused"
        );
    }

    #[test]
    fn pause_adds_the_condition_if_the_vmi_is_unchanged() {
        let mut v = vmi("Running", vec![cond("Ready", "True")]);
        v.spec
            .extra
            .insert("livenessProbe".into(), json!({"guestAgentPing": {}}));
        let plan = pause(
            "vm1",
            Some(&v),
            &PauseOptions {
                dry_run: request::dry_run_values(true),
            },
            NOW,
        )
        .unwrap();
        assert!(plan.dry_run);
        assert_eq!(plan.delete_pods, None);
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.steps[0].target, PatchTarget::Vmi);
        assert_eq!(
            plan.steps[0].patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "test", "path": "/status/phase", "value": "Running"},
                {"op": "add", "path": "/status/conditions", "value": [
                    {"type": "Ready", "status": "True"},
                    {"type": "Paused", "status": "True", "reason": "PausedByUser",
                     "message": "VMI was paused by user",
                     "lastProbeTime": NOW, "lastTransitionTime": NOW},
                ]},
            ])
        );
        // No conditions yet: the list is created with the one condition.
        let bare = vmi("Running", vec![]);
        let plan = pause("vm1", Some(&bare), &OPTS, NOW).unwrap();
        assert_eq!(plan.steps[0].patch[2]["value"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn any_paused_condition_counts_as_paused() {
        // virt-api looks at the condition's type only.
        let v = vmi("Running", vec![cond("Paused", "False")]);
        assert_eq!(err(pause("vm1", Some(&v), &OPTS, NOW)).0, 409);
        assert!(unpause("vm1", None, Some(&v), &UNPAUSE).is_ok());
    }

    #[test]
    fn unpause_refusals_in_virt_api_order() {
        let mut vm = VirtualMachine::new("vm1", Default::default());
        vm.status = Some(Default::default());
        vm.status
            .as_mut()
            .unwrap()
            .extra
            .insert("snapshotInProgress".into(), json!("snap1"));
        // The snapshot check comes before the VMI is even looked at.
        assert_eq!(
            err(unpause("vm1", Some(&vm), None, &UNPAUSE)).2,
            "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": \
             VM snapshot is in progress"
        );
        assert_eq!(err(unpause("vm1", None, None, &UNPAUSE)).0, 404);
        let stopped = vmi("Succeeded", vec![cond("Paused", "True")]);
        assert_eq!(
            err(unpause("vm1", None, Some(&stopped), &UNPAUSE)).2,
            "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": \
             VMI is not running"
        );
        let running = vmi("Running", vec![cond("Ready", "True")]);
        assert_eq!(
            err(unpause("vm1", None, Some(&running), &UNPAUSE)).2,
            "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": \
             VMI is not paused"
        );
    }

    #[test]
    fn unpause_removes_the_paused_condition_at_its_index() {
        let plan = unpause("vm1", None, Some(&paused_vmi()), &UNPAUSE).unwrap();
        assert!(!plan.dry_run);
        assert_eq!(
            plan.steps,
            vec![super::super::PatchStep {
                target: PatchTarget::Vmi,
                patch: json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                    {"op": "test", "path": "/status/conditions/1/type", "value": "Paused"},
                    {"op": "remove", "path": "/status/conditions/1"},
                ]),
            }]
        );
    }
}
