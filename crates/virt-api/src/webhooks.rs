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

/// The paths KubeVirt's virt-api serves its VM and VMI webhooks at.
pub const PATHS: [&str; 5] = [
    "/virtualmachines-mutate",
    "/virtualmachines-validate",
    "/virtualmachineinstances-mutate",
    "/virtualmachineinstances-validate-create",
    "/virtualmachineinstances-validate-update",
];

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
        return (StatusCode::BAD_REQUEST, "the AdmissionReview has no request").into_response();
    };
    let answer = review.answer(reviewer.review(webhook, request));
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response()
}

/// The five webhook routes.
pub fn router(reviewer: Arc<Reviewer>) -> Router {
    let mut r = Router::new();
    for path in PATHS {
        r = r.route(path, post(review));
    }
    r.with_state(reviewer)
}
