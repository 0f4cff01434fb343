//! What the VMI controller does about a VMI's launcher Pod (Part A §6), as a pure function of
//! the VMI, its launcher Pods, the controller's pending Pod creation and the clock.

use k8s_openapi::api::core::v1::Pod;

use crate::run_strategy::{is_deleting, is_final};
use crate::types::VirtualMachineInstance;
use crate::vmi::{
    DEFAULT_GRACE_PERIOD_SECONDS, NODE_NAME_LABEL, VMI_CONTROLLER_FINALIZER, build_launcher_pod,
    vmi_status_after_shutdown, vmi_status_from_pod_on_node,
};

/// The one thing the VMI controller does in a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do until the VMI or its Pod changes.
    Nothing,
    /// Add the VMI controller's finalizer, before any Pod exists.
    AddFinalizer,
    /// Create this launcher Pod.
    CreatePod(Box<Pod>),
    /// The VMI is deleted: delete these launcher Pods (by name), with the VMI's grace period.
    DeletePods {
        names: Vec<String>,
        grace_period_seconds: u32,
    },
    /// The VMI is deleted and its Pods are gone: write it final and without the finalizer
    /// (`None` when it already is), and forget the Pod it waited for.
    Release(Option<Box<VirtualMachineInstance>>),
    /// Write the VMI with its status read off the Pod.
    UpdateStatus(Box<VirtualMachineInstance>),
}

/// The newest of a VMI's launcher Pods (the first one, on equal creation times).
pub fn newest_pod<'a>(pods: &[&'a Pod]) -> Option<&'a Pod> {
    pods.iter().copied().reduce(|best, p| {
        if p.metadata.creation_timestamp > best.metadata.creation_timestamp {
            p
        } else {
            best
        }
    })
}

fn has_finalizer(vmi: &VirtualMachineInstance) -> bool {
    vmi.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == VMI_CONTROLLER_FINALIZER)
}

/// What the VMI controller does about `vmi` (Part A §6).
///
/// `pods` are the VMI's launcher Pods (see [`crate::vmi::is_launcher_pod_of`]), in any order;
/// `pod_create_expected` says a Pod creation was issued that `pods` does not show yet; `now`
/// is the clock (RFC 3339), written into conditions.
///
/// - A deleted VMI: its Pods that are not going yet, or going with a longer grace period than
///   the VMI's now is, are deleted with the VMI's grace period (default 30 s); once none is
///   left, it is written final and loses the finalizer.
/// - The finalizer goes on first.
/// - A VMI not yet started (phase unset or Pending, no Pod, none expected) gets its Pod.
/// - While a new Pod is not seen yet, nothing.
/// - Otherwise the status is read off the newest Pod ([`crate::vmi::vmi_status_from_pod`]),
///   and written when it changed.
///
/// The Pod's node is taken to have no virt-handler (see [`decide_on_node`]).
pub fn decide(
    vmi: &VirtualMachineInstance,
    pods: &[&Pod],
    pod_create_expected: bool,
    now: &str,
) -> Decision {
    decide_on_node(vmi, pods, pod_create_expected, false, now)
}

/// [`decide`], knowing whether the newest Pod's node is served by virt-handler
/// (`node_has_handler`). There the status is [`vmi_status_from_pod_on_node`]'s (the VMI stops
/// at Scheduled; the handler owns Running, Paused and interfaces).
///
/// On every node, a VMI that is not final gets the label `kubevirt.io/nodeName=<node>` in the
/// write that gives it `status.nodeName`, as KubeVirt's VMI controller labels it when it
/// writes the node name (node agents and clients select a node's VMIs by it).
pub fn decide_on_node(
    vmi: &VirtualMachineInstance,
    pods: &[&Pod],
    pod_create_expected: bool,
    node_has_handler: bool,
    now: &str,
) -> Decision {
    if is_deleting(vmi) {
        if !pods.is_empty() {
            let grace = vmi
                .spec
                .termination_grace_period_seconds
                .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS)
                .clamp(0, i64::from(u32::MAX));
            // A Pod already going is deleted again when the VMI's grace period was cut since
            // (a second, shorter stop): the API server then shortens the Pod's.
            let names: Vec<String> = pods
                .iter()
                .filter(|p| match &p.metadata.deletion_timestamp {
                    None => true,
                    Some(_) => p
                        .metadata
                        .deletion_grace_period_seconds
                        .is_some_and(|going| going > grace),
                })
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
            if names.is_empty() {
                return Decision::Nothing;
            }
            return Decision::DeletePods {
                names,
                grace_period_seconds: u32::try_from(grace).unwrap_or(u32::MAX),
            };
        }
        let mut next = vmi.clone();
        if !is_final(vmi) {
            next.status = Some(vmi_status_after_shutdown(vmi, now));
        }
        if has_finalizer(vmi) {
            next.metadata.finalizers = Some(
                vmi.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != VMI_CONTROLLER_FINALIZER)
                    .cloned()
                    .collect(),
            );
        }
        return Decision::Release((next != *vmi).then(|| Box::new(next)));
    }
    if !has_finalizer(vmi) {
        return Decision::AddFinalizer;
    }
    let pod = newest_pod(pods);
    if pod.is_none() && pod_create_expected {
        // Its arrival triggers the next reconcile at once: one write per start saved.
        return Decision::Nothing;
    }
    if pod.is_none() && !is_final(vmi) && matches!(vmi.phase(), "" | "Pending") {
        return Decision::CreatePod(Box::new(build_launcher_pod(vmi)));
    }
    let status = vmi_status_from_pod_on_node(vmi, pod, pod_create_expected, node_has_handler, now);
    let mut next = vmi.clone();
    if !is_final(vmi)
        && let Some(node) = status.node_name.as_deref()
    {
        next.metadata
            .labels
            .get_or_insert_default()
            .insert(NODE_NAME_LABEL.to_string(), node.to_string());
    }
    next.status = Some(status);
    if next == *vmi {
        return Decision::Nothing;
    }
    Decision::UpdateStatus(Box::new(next))
}

#[cfg(test)]
mod tests;
