//! The admission webhooks over HTTP: `POST /virtualmachines-mutate`, `-validate`,
//! `/virtualmachineinstances-mutate`, `-validate-create` and `-validate-update`, each an
//! `admission.k8s.io/v1` AdmissionReview in and out. The rules are `virt_reconciler::admission`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{StatusCode, Uri, header};
use virt_reconciler::admission::{AdmissionReview, Reviewer, Webhook};

async fn review(State(reviewer): State<Arc<Reviewer>>, uri: Uri, body: Bytes) -> Response {
    let Some(webhook) = Webhook::from_path(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let review: AdmissionReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not an AdmissionReview: {e}"),
            )
                .into_response();
        }
    };
    let Some(request) = &review.request else {
        return (
            StatusCode::BAD_REQUEST,
            "the AdmissionReview has no request",
        )
            .into_response();
    };
    let answer = review.answer(reviewer.review(webhook, request));
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response()
}

/// One route per registered webhook.
pub fn router(reviewer: Arc<Reviewer>) -> Router {
    let mut r = Router::new();
    for hook in MUTATING.iter().chain(&VALIDATING) {
        r = r.route(hook.path, post(review));
    }
    r.with_state(reviewer)
}

/// One webhook as KubeVirt registers it: its name, path, operations and resource.
struct Hook {
    name: &'static str,
    path: &'static str,
    operations: &'static [&'static str],
    resource: &'static str,
}

const MUTATING: [Hook; 2] = [
    Hook {
        name: "virtualmachines-mutator.kubevirt.io",
        path: "/virtualmachines-mutate",
        operations: &["CREATE", "UPDATE"],
        resource: "virtualmachines",
    },
    Hook {
        name: "virtualmachineinstances-mutator.kubevirt.io",
        path: "/virtualmachineinstances-mutate",
        operations: &["CREATE", "UPDATE"],
        resource: "virtualmachineinstances",
    },
];

const VALIDATING: [Hook; 3] = [
    Hook {
        name: "virtualmachineinstances-create-validator.kubevirt.io",
        path: "/virtualmachineinstances-validate-create",
        operations: &["CREATE"],
        resource: "virtualmachineinstances",
    },
    Hook {
        name: "virtualmachineinstances-update-validator.kubevirt.io",
        path: "/virtualmachineinstances-validate-update",
        operations: &["UPDATE"],
        resource: "virtualmachineinstances",
    },
    Hook {
        name: "virtualmachine-validator.kubevirt.io",
        path: "/virtualmachines-validate",
        operations: &["CREATE", "UPDATE"],
        resource: "virtualmachines",
    },
];

/// The names of the two configurations, as KubeVirt's.
pub const MUTATING_CONFIGURATION: &str = "virt-api-mutator";
pub const VALIDATING_CONFIGURATION: &str = "virt-api-validator";

fn webhooks(
    hooks: &[Hook],
    client_config: &dyn Fn(&str) -> serde_json::Value,
) -> serde_json::Value {
    hooks
        .iter()
        .map(|h| {
            serde_json::json!({
                "name": h.name,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "rules": [{
                    "operations": h.operations,
                    "apiGroups": ["kubevirt.io"],
                    "apiVersions": virt_reconciler::admission::WEBHOOK_VERSIONS,
                    "resources": [h.resource],
                }],
                "clientConfig": client_config(h.path),
            })
        })
        .collect()
}

/// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration that send VM and VMI
/// writes to virt-api, with `client_config(path)` as each webhook's `clientConfig`.
pub fn configurations(client_config: &dyn Fn(&str) -> serde_json::Value) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": MUTATING_CONFIGURATION},
            "webhooks": webhooks(&MUTATING, client_config),
        }),
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VALIDATING_CONFIGURATION},
            "webhooks": webhooks(&VALIDATING, client_config),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_path_is_registered_once_with_kubevirts_settings() {
        let [mutating, validating] = configurations(&|path| serde_json::json!({"url": path}));
        let mut paths: Vec<&str> = [&mutating, &validating]
            .iter()
            .flat_map(|c| c["webhooks"].as_array().unwrap())
            .map(|w| w["clientConfig"]["url"].as_str().unwrap())
            .collect();
        // Every registered path is one the admission rules answer, and none twice.
        assert!(
            paths.iter().all(|p| Webhook::from_path(p).is_some()),
            "{paths:?}"
        );
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 5);
        let w = &validating["webhooks"][2];
        assert_eq!(w["name"], "virtualmachine-validator.kubevirt.io");
        assert_eq!(
            w["rules"][0]["apiVersions"],
            serde_json::json!(["v1alpha3", "v1"])
        );
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["sideEffects"], "None");
    }
}
