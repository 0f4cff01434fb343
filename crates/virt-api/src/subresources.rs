//! The subresource API `subresources.kubevirt.io` (Part A §4): PUT
//! `.../namespaces/{ns}/virtualmachines/{name}/{start|stop|restart}` and
//! `.../virtualmachineinstances/{name}/{pause|unpause|reset|softreboot}`, wire-compatible with KubeVirt's virt-api
//! and backed by `virt_reconciler::execute`, the executor virtctl's client-side transport runs
//! too; and the websocket streams (GET `.../virtualmachineinstances/{name}/{console|vnc}`,
//! `.../{virtualmachineinstances|virtualmachines}/{name}/portforward/{port}[/{protocol}]`), in
//! `streams`. The handlers only route and answer.

mod streams;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http::StatusCode;
use kube::Client;
use serde_json::json;
use virt_reconciler::intent::IntentError;
use virt_reconciler::{controller, execute};

pub use crate::discovery::GROUP;

/// What the handlers act with: the API client of virt-api's own identity.
pub struct SubresourceState {
    pub client: Client,
}

/// The refusal as the `metav1.Status` virt-api writes: details carry the object's name and
/// KubeVirt's group-resource for conflicts and not-found.
pub(crate) fn from_intent(e: IntentError) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": e.message, "reason": e.reason,
    });
    if let Some(d) = &e.details {
        body["details"] = json!({"name": d.name, "group": d.group, "kind": d.kind});
    }
    body["code"] = json!(e.code);
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 404 for an action this API does not have.
fn no_such_action() -> IntentError {
    IntentError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    }
}

/// The response: `ok` with no body, or the refusal as a `metav1.Status`.
fn respond(result: Result<(), IntentError>, ok: StatusCode) -> Response {
    match result {
        Ok(()) => ok.into_response(),
        Err(e) => from_intent(e),
    }
}

/// PUT `.../virtualmachines/{name}/{start|stop|restart}`: 202 on success.
async fn lifecycle(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let result = execute::lifecycle_body(&state.client, &ns, &name, &action, &body)
        .await
        .unwrap_or(Err(no_such_action()));
    respond(result, StatusCode::ACCEPTED)
}

/// PUT `.../virtualmachineinstances/{name}/{pause|unpause|reset|softreboot}`: 200 on success
/// (not 202), with no body, as virt-api.
async fn pause_or_unpause(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let result = execute::vmi_request_body(
        &state.client,
        &ns,
        &name,
        &action,
        &body,
        &controller::now(),
    )
    .await
    .unwrap_or(Err(no_such_action()));
    respond(result, StatusCode::OK)
}

/// The router, for every path under `/apis/subresources.kubevirt.io/{v1,v1alpha3}/`.
pub fn router(state: Arc<SubresourceState>) -> Router {
    let mut r = Router::new();
    for v in ["v1", "v1alpha3"] {
        r = r
            .route(
                &format!("/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachines/{{name}}/{{action}}"),
                put(lifecycle),
            )
            .route(
                &format!(
                    "/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachineinstances/{{name}}/{{action}}"
                ),
                put(pause_or_unpause).get(streams::vmi_console_or_vnc),
            )
            .route(
                &format!(
                    "/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachineinstances/{{name}}/portforward/{{port}}"
                ),
                get(streams::vmi_port_forward),
            )
            .route(
                &format!(
                    "/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachineinstances/{{name}}/portforward/{{port}}/{{protocol}}"
                ),
                get(streams::vmi_port_forward),
            )
            .route(
                &format!(
                    "/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachines/{{name}}/portforward/{{port}}"
                ),
                get(streams::vm_port_forward),
            )
            .route(
                &format!(
                    "/apis/{GROUP}/{v}/namespaces/{{ns}}/virtualmachines/{{name}}/portforward/{{port}}/{{protocol}}"
                ),
                get(streams::vm_port_forward),
            )
            ;
    }
    r.with_state(state)
}
