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
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use virt_reconciler::intent::IntentError;
use virt_reconciler::{controller, execute, version};

pub const GROUP: &str = "subresources.kubevirt.io";

/// The client the handlers act with; set once the API server is up.
#[derive(Default)]
pub struct SubresourceState {
    pub client: OnceCell<Client>,
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

/// The client the handlers act with, once the API server is up.
pub(crate) fn client(state: &SubresourceState) -> Result<&Client, IntentError> {
    state.client.get().ok_or(IntentError {
        code: 503,
        reason: "ServiceUnavailable",
        message: "the subresource API is starting".into(),
        details: None,
    })
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
    let result = match client(&state) {
        Ok(client) => execute::lifecycle_body(client, &ns, &name, &action, &body)
            .await
            .unwrap_or(Err(no_such_action())),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::ACCEPTED)
}

/// PUT `.../virtualmachineinstances/{name}/{pause|unpause|reset|softreboot}`: 200 on success
/// (not 202), with no body, as virt-api.
async fn pause_or_unpause(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let result = match client(&state) {
        Ok(client) => {
            execute::vmi_request_body(client, &ns, &name, &action, &body, &controller::now())
                .await
                .unwrap_or(Err(no_such_action()))
        }
        Err(e) => Err(e),
    };
    respond(result, StatusCode::OK)
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({
        "gitVersion": version::KUBEVIRT_COMPATIBLE,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (Rust)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    }))
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
            .route(
                &format!("/apis/{GROUP}/{v}/version"),
                get(version),
            );
    }
    r.with_state(state)
}

/// The discovery description of the group, for `localkube::MountedGroup`.
pub fn mounted_group() -> localkube::MountedGroup {
    let resources = json!([
        {"name": "virtualmachines/start", "singularName": "", "namespaced": true, "kind": "VirtualMachine", "verbs": ["update"]},
        {"name": "virtualmachines/stop", "singularName": "", "namespaced": true, "kind": "VirtualMachine", "verbs": ["update"]},
        {"name": "virtualmachines/restart", "singularName": "", "namespaced": true, "kind": "VirtualMachine", "verbs": ["update"]},
        {"name": "virtualmachineinstances/pause", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["update"]},
        {"name": "virtualmachineinstances/unpause", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["update"]},
        {"name": "virtualmachineinstances/reset", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["update"]},
        {"name": "virtualmachineinstances/softreboot", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["update"]},
        // The streams, as virt-api lists them (it lists no `virtualmachines/portforward`).
        {"name": "virtualmachineinstances/console", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["get"]},
        {"name": "virtualmachineinstances/vnc", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["get"]},
        {"name": "virtualmachineinstances/portforward", "singularName": "", "namespaced": true, "kind": "VirtualMachineInstance", "verbs": ["get"]},
    ]);
    localkube::MountedGroup {
        group: GROUP.into(),
        versions: vec!["v1".into(), "v1alpha3".into()],
        resources: vec![
            ("v1".into(), resources.clone()),
            ("v1alpha3".into(), resources),
        ],
    }
}
