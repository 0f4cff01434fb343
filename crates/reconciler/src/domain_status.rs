//! What virt-handler writes when its launcher reports the domain's state, as pure functions:
//! the VMI status (phase Running, the `Paused` and `Ready` conditions, `interfaces`) and the
//! launcher Pod's readiness-gate condition, each as a patch that is `None` when nothing
//! changes, so an unchanged domain costs no write.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use serde_json::{Map, Value, json};

use crate::intent::pause::PAUSED_MESSAGE;
use crate::launcher_api::{DomainState, DomainStatus};
use crate::status::{self, condition_type, set_condition};
use crate::types::{Condition, InterfaceStatus, PhaseTransition, VirtualMachineInstance};
use crate::vmi::{
    UNPAUSED_READINESS_GATE, paused_ready_condition, phase, pod_interface_name, vmi_reason,
};

/// `infoSource` of an interface read off the domain.
pub const INFO_SOURCE_DOMAIN: &str = "domain";
/// Reason of the Pod's readiness-gate condition while the domain is paused.
pub const GATE_REASON_PAUSED: &str = "Paused";

/// The domain is up: QEMU runs the guest, or holds it paused.
fn domain_up(domain: &DomainStatus) -> bool {
    matches!(domain.state, DomainState::Running | DomainState::Paused)
}

/// The VMI as virt-handler leaves it once the domain is in `domain`'s state. `pod_ip` is the
/// launcher Pod's address, shown when the guest's own is not known; `now` (RFC 3339) stamps
/// new conditions and phase transitions.
///
/// Only a VMI in phase Scheduled or Running changes. A `sync` the launcher could not carry out
/// (`sync_failure`, e.g. a missing containerDisk image) is `Synchronized=False` with its reason
/// and message, and goes once a sync succeeds. With the domain Running or Paused:
/// - phase Scheduled → Running (with a `phaseTransitionTimestamps` entry);
/// - `Paused=True` (`PausedByUser`) iff the domain is paused, and then `Ready=False` as the
///   controller words it; once it runs again, `Ready=True` (the controller refines it from the
///   Pod's Ready condition);
/// - `interfaces[0]`: the pod network's interface name, the domain's MAC, the guest's address
///   (else the Pod's) and `infoSource: domain`; later interfaces are kept.
pub fn vmi_with_domain(
    vmi: &VirtualMachineInstance,
    domain: &DomainStatus,
    pod_ip: Option<&str>,
    now: &str,
) -> VirtualMachineInstance {
    let mut next = vmi.clone();
    let current = vmi.phase();
    if !matches!(current, phase::SCHEDULED | phase::RUNNING) {
        return next;
    }
    let status = next.status.get_or_insert_default();
    match &domain.sync_failure {
        Some(failure) => set_condition(
            &mut status.conditions,
            status::new_condition(
                condition_type::SYNCHRONIZED,
                "False",
                &failure.reason,
                &failure.message,
                now,
            ),
        ),
        None => status
            .conditions
            .retain(|c| !(c.type_ == condition_type::SYNCHRONIZED && c.status == "False")),
    }
    if !domain_up(domain) {
        return next;
    }
    if current != phase::RUNNING {
        status.phase = Some(phase::RUNNING.to_string());
        status.phase_transition_timestamps.push(PhaseTransition {
            phase: phase::RUNNING.to_string(),
            phase_transition_timestamp: Some(now.to_string()),
        });
    }
    if domain.state == DomainState::Paused {
        set_condition(
            &mut status.conditions,
            status::new_condition(
                condition_type::PAUSED,
                "True",
                vmi_reason::PAUSED_BY_USER,
                PAUSED_MESSAGE,
                now,
            ),
        );
        set_condition(&mut status.conditions, paused_ready_condition(now));
    } else {
        status::remove_condition(&mut status.conditions, condition_type::PAUSED);
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == condition_type::READY && c.status == "True");
        if !ready {
            set_condition(
                &mut status.conditions,
                Condition {
                    type_: condition_type::READY.to_string(),
                    status: "True".to_string(),
                    last_probe_time: Some(now.to_string()),
                    last_transition_time: Some(now.to_string()),
                    reason: None,
                    message: None,
                },
            );
        }
    }
    let ip = domain
        .guest_ip
        .as_deref()
        .or(pod_ip)
        .filter(|ip| !ip.is_empty());
    let interface = InterfaceStatus {
        name: Some(pod_interface_name(vmi)),
        mac: domain.mac.clone(),
        ip_address: ip.map(str::to_string),
        ip_addresses: ip.map(str::to_string).into_iter().collect(),
        info_source: Some(INFO_SOURCE_DOMAIN.to_string()),
    };
    match status.interfaces.first_mut() {
        Some(first) => *first = interface,
        None => status.interfaces.push(interface),
    }
    next
}

/// The JSON patch (RFC 6902) that takes `vmi` to [`vmi_with_domain`]'s VMI: a test of the
/// resourceVersion (so a concurrent writer turns it into a conflict, not a lost write), then
/// one `add` or `remove` per top-level status field that changed. `None` when nothing does.
pub fn vmi_status_patch(
    vmi: &VirtualMachineInstance,
    domain: &DomainStatus,
    pod_ip: Option<&str>,
    now: &str,
) -> Option<Value> {
    let next = vmi_with_domain(vmi, domain, pod_ip, now);
    if next == *vmi {
        return None;
    }
    let old = status_fields(vmi);
    let new = status_fields(&next);
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": vmi.metadata.resource_version,
    })];
    if vmi.status.is_none() {
        ops.push(json!({"op": "add", "path": "/status", "value": new}));
        return Some(Value::Array(ops));
    }
    for (key, value) in &new {
        if old.get(key) != Some(value) {
            ops.push(json!({"op": "add", "path": format!("/status/{key}"), "value": value}));
        }
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/status/{key}")}));
    }
    Some(Value::Array(ops))
}

fn status_fields(vmi: &VirtualMachineInstance) -> Map<String, Value> {
    match vmi.status.as_ref().map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    }
}

/// The Pod's [`UNPAUSED_READINESS_GATE`] condition for this domain state: True while it runs,
/// False (reason `Paused`) while paused, `None` for any other state.
pub fn readiness_gate_condition(domain: &DomainStatus, now: &str) -> Option<PodCondition> {
    let (status, reason, message) = match domain.state {
        DomainState::Running => ("True", None, None),
        DomainState::Paused => (
            "False",
            Some(GATE_REASON_PAUSED.to_string()),
            Some(PAUSED_MESSAGE.to_string()),
        ),
        _ => return None,
    };
    Some(PodCondition {
        type_: UNPAUSED_READINESS_GATE.to_string(),
        status: status.to_string(),
        reason,
        message,
        last_transition_time: serde_json::from_value(json!(now)).ok(),
        ..Default::default()
    })
}

/// The strategic-merge patch of `pods/status` that sets the Pod's readiness-gate condition
/// for this domain state, touching no other condition. `None` when the Pod already shows it
/// (same status and reason) or the state sets none.
pub fn pod_gate_patch(pod: &Pod, domain: &DomainStatus, now: &str) -> Option<Value> {
    let want = readiness_gate_condition(domain, now)?;
    let has = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == want.type_));
    if has.is_some_and(|c| c.status == want.status && c.reason == want.reason) {
        return None;
    }
    Some(json!({"status": {"conditions": [want]}}))
}

#[cfg(test)]
mod tests;
