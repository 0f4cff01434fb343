//! The handler's marks on its Node: the `kubevirt.io/schedulable` label (the VMI controller
//! then leaves Running to the handler) and the annotation with the HTTP API's address.

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use virt_reconciler::kube_error;
use virt_reconciler::vmi::{HANDLER_ADDRESS_ANNOTATION, SCHEDULABLE_LABEL};

/// The merge patch that marks a node served by a handler at `address`, or (`None`) unmarks it.
pub fn marks_patch(address: Option<&str>) -> Value {
    let label = address.map(|_| "true");
    json!({"metadata": {
        "labels": {SCHEDULABLE_LABEL: label},
        "annotations": {HANDLER_ADDRESS_ANNOTATION: address},
    }})
}

async fn patch(client: &Client, node: &str, address: Option<&str>) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let body = marks_patch(address);
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| anyhow::anyhow!(kube_error::message(&e)))
        .with_context(|| format!("cannot mark node {node:?}"))?;
    Ok(())
}

/// Labels the Node served and annotates the handler's address. A Node that is not registered
/// yet (the handler may start before its kubelet) is waited for, saying so once.
pub async fn mark_served(client: &Client, node: &str, address: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut said = false;
    while nodes
        .get_opt(node)
        .await
        .map_err(|e| anyhow::anyhow!(kube_error::message(&e)))
        .with_context(|| format!("cannot read node {node:?}"))?
        .is_none()
    {
        if !said {
            tracing::info!(node, "waiting for the Node to register");
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    patch(client, node, Some(address)).await
}

/// Takes the label and the annotation off again.
pub async fn mark_unserved(client: &Client, node: &str) -> anyhow::Result<()> {
    patch(client, node, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_go_on_and_come_off() {
        assert_eq!(
            marks_patch(Some("127.0.0.1:8186")),
            json!({"metadata": {
                "labels": {"kubevirt.io/schedulable": "true"},
                "annotations": {"virt-toolkit.dev/handler-address": "127.0.0.1:8186"},
            }})
        );
        assert_eq!(
            marks_patch(None),
            json!({"metadata": {
                "labels": {"kubevirt.io/schedulable": null},
                "annotations": {"virt-toolkit.dev/handler-address": null},
            }})
        );
    }
}
