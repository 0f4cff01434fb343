//! `reset` and `softreboot` of a VMI: virt-api's checks before it asks the node's virt-handler.
//!
//! `reset` (QMP `system_reset`) needs no guest cooperation. `softreboot` needs the guest agent or
//! an ACPI reboot; our guests have no agent and the launcher has no ACPI reboot, so it answers
//! the message KubeVirt gives when neither is possible (`docs/data-plane.md`).

use super::IntentError;
use crate::types::VirtualMachineInstance;

/// 409 of `softreboot` on a VMI that is not Running (virt-api's wording says VM).
pub const SOFT_REBOOT_NOT_RUNNING: &str = "VM is not running";
/// 409 of `softreboot` on a paused VMI.
pub const SOFT_REBOOT_PAUSED: &str = "VMI is paused";
/// 409 of `softreboot` without a guest agent (KubeVirt's words when ACPI is off as well).
pub const NO_AGENT: &str = "VMI neither have the agent connected nor the ACPI feature enabled";
/// The condition a guest agent sets.
const AGENT_CONNECTED: &str = "AgentConnected";

const VMI_RESOURCE: &str = "virtualmachineinstance";

/// Where a checked reset or soft reboot goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// No virt-handler on the VMI's node (a simulated guest): nothing to reset, success.
    Nothing,
    /// Ask the virt-handler at this address (`host:port`).
    Forward { address: String },
}

fn has_condition(vmi: &VirtualMachineInstance, type_: &str, status: Option<&str>) -> bool {
    vmi.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && status.is_none_or(|want| c.status == want))
    })
}

/// `reset` of the VMI `name`: 404 when it does not exist; 400 unless it is Running or Scheduled
/// (virt-api cannot reach a handler then, and says why the reset failed).
pub fn reset(name: &str, vmi: Option<&VirtualMachineInstance>) -> Result<(), IntentError> {
    let vmi = vmi.ok_or_else(|| IntentError::not_found(VMI_RESOURCE, name))?;
    let phase = vmi.phase();
    if phase != "Running" && phase != "Scheduled" {
        return Err(IntentError::bad_request(format!(
            "Failed to reset non-running VMI with phase {phase}: Unable to connect to \
             VirtualMachineInstance because phase is {phase} instead of Running or Scheduled"
        )));
    }
    Ok(())
}

/// `softreboot` of the VMI `name`. Checks, in virt-api's order: it exists (404), it is Running
/// (409), it is not paused (409), a guest agent is connected (409).
pub fn soft_reboot(name: &str, vmi: Option<&VirtualMachineInstance>) -> Result<(), IntentError> {
    let vmi = vmi.ok_or_else(|| IntentError::not_found(VMI_RESOURCE, name))?;
    if vmi.phase() != "Running" {
        return Err(IntentError::conflict_on(
            VMI_RESOURCE,
            name,
            SOFT_REBOOT_NOT_RUNNING,
        ));
    }
    if has_condition(vmi, "Paused", Some("True")) {
        return Err(IntentError::conflict_on(
            VMI_RESOURCE,
            name,
            SOFT_REBOOT_PAUSED,
        ));
    }
    if !has_condition(vmi, AGENT_CONNECTED, None) {
        return Err(IntentError::conflict_on(VMI_RESOURCE, name, NO_AGENT));
    }
    Ok(())
}

/// Where a checked request goes, given the VMI's Node: its virt-handler when it has one.
pub fn route(node: Option<&k8s_openapi::api::core::v1::Node>) -> Route {
    match node
        .filter(|n| crate::vmi::node_has_handler(n))
        .and_then(crate::vmi::handler_address)
    {
        Some(address) => Route::Forward {
            address: address.to_string(),
        },
        None => Route::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Condition, VirtualMachineInstanceStatus};

    fn vmi(phase: &str, conditions: &[(&str, &str)]) -> VirtualMachineInstance {
        let mut vmi = VirtualMachineInstance::new("vm1", Default::default());
        vmi.status = Some(VirtualMachineInstanceStatus {
            phase: Some(phase.into()),
            conditions: conditions
                .iter()
                .map(|(t, s)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        vmi
    }

    fn outcome(r: Result<(), IntentError>) -> (u16, String) {
        match r {
            Ok(()) => (200, String::new()),
            Err(e) => (e.code, e.message),
        }
    }

    const CONFLICT: &str =
        "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": ";

    #[test]
    fn reset_needs_a_running_or_scheduled_vmi() {
        let cases = [
            (
                None,
                404,
                "virtualmachineinstance.kubevirt.io \"vm1\" not found".to_string(),
            ),
            (Some(vmi("Running", &[])), 200, String::new()),
            (
                Some(vmi("Running", &[("Paused", "True")])),
                200,
                String::new(),
            ),
            (Some(vmi("Scheduled", &[])), 200, String::new()),
            (
                Some(vmi("Pending", &[])),
                400,
                "Failed to reset non-running VMI with phase Pending: Unable to connect to \
                 VirtualMachineInstance because phase is Pending instead of Running or Scheduled"
                    .into(),
            ),
            (
                Some(vmi("Succeeded", &[])),
                400,
                "Failed to reset non-running VMI with phase Succeeded: Unable to connect to \
                 VirtualMachineInstance because phase is Succeeded instead of Running or \
                 Scheduled"
                    .into(),
            ),
        ];
        for (v, code, message) in cases {
            assert_eq!(outcome(reset("vm1", v.as_ref())), (code, message), "{v:?}");
        }
    }

    #[test]
    fn soft_reboot_refusals_in_virt_api_order() {
        let cases = [
            (
                None,
                404,
                "virtualmachineinstance.kubevirt.io \"vm1\" not found".to_string(),
            ),
            (
                Some(vmi("Scheduled", &[("Paused", "True")])),
                409,
                format!("{CONFLICT}VM is not running"),
            ),
            (
                Some(vmi("Running", &[("Paused", "True")])),
                409,
                format!("{CONFLICT}VMI is paused"),
            ),
            (
                Some(vmi("Running", &[("Paused", "False")])),
                409,
                format!("{CONFLICT}{NO_AGENT}"),
            ),
            (
                Some(vmi("Running", &[("AgentConnected", "True")])),
                200,
                String::new(),
            ),
        ];
        for (v, code, message) in cases {
            assert_eq!(
                outcome(soft_reboot("vm1", v.as_ref())),
                (code, message),
                "{v:?}"
            );
        }
    }

    #[test]
    fn requests_go_to_the_nodes_handler_when_it_has_one() {
        use k8s_openapi::api::core::v1::Node;
        use std::collections::BTreeMap;
        let mut handled = Node::default();
        handled.metadata.labels = Some(BTreeMap::from([(
            "kubevirt.io/schedulable".into(),
            "true".into(),
        )]));
        handled.metadata.annotations = Some(BTreeMap::from([(
            "virt-toolkit.dev/handler-address".into(),
            "127.0.0.1:8186".into(),
        )]));
        assert_eq!(
            route(Some(&handled)),
            Route::Forward {
                address: "127.0.0.1:8186".into()
            }
        );
        assert_eq!(route(Some(&Node::default())), Route::Nothing);
        assert_eq!(route(None), Route::Nothing);
    }
}
