//! The subresource API `subresources.kubevirt.io` (Part A §4): PUT
//! `.../namespaces/{ns}/virtualmachines/{name}/{start|stop|restart}` and
//! `.../virtualmachineinstances/{name}/{pause|unpause}`, wire-compatible with KubeVirt's virt-api
//! and backed by `virt_reconciler::intent`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use http::StatusCode;
use kube::Api;
use kube::Client;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use virt_reconciler::intent::{
    self, IntentError, PauseOptions, RestartOptions, StartOptions, StopOptions,
};
use virt_reconciler::types::{VirtualMachine, VirtualMachineInstance};
use virt_reconciler::{controller, execute};

pub const GROUP: &str = "subresources.kubevirt.io";

/// The client the handlers act with; set once the API server is up.
#[derive(Default)]
pub struct SubresourceState {
    pub client: OnceCell<Client>,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn from_intent(e: IntentError) -> Response {
    status(e.code, e.reason, &e.message)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    grace_period: Option<i64>,
    #[serde(default)]
    grace_period_seconds: Option<i64>,
    #[serde(default)]
    dry_run: Option<Vec<String>>,
}

/// Bodies are optional JSON or YAML; a malformed one is a 400 in virt-api's words.
fn decode(bytes: &[u8]) -> Result<Body, IntentError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::default());
    }
    let parsed = serde_json::from_slice::<Body>(bytes).or_else(|json_err| {
        std::str::from_utf8(bytes)
            .map_err(|_| json_err.to_string())
            .and_then(|t| serde_saphyr::from_str::<Body>(t).map_err(|e| e.to_string()))
    });
    parsed.map_err(|e| {
        IntentError::bad_request(format!(
            "Can not unmarshal Request body to struct, error: {e}"
        ))
    })
}

fn dry_run(body: &Body) -> bool {
    body.dry_run
        .as_ref()
        .is_some_and(|d| d.iter().any(|v| v == "All"))
}

async fn lifecycle(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(client) = state.client.get() else {
        return status(503, "ServiceUnavailable", "the subresource API is starting");
    };
    let body = match decode(&body) {
        Ok(b) => b,
        Err(e) => return from_intent(e),
    };
    let dry = dry_run(&body);
    // restart validates its grace period before anything is fetched (Part B §2.5).
    if action == "restart"
        && let Err(e) = intent::check_restart_options(&RestartOptions {
            grace_period_seconds: body.grace_period_seconds,
            dry_run: dry,
        })
    {
        return from_intent(e);
    }
    let (vm, vmi) = match execute::fetch(client, &ns, &name).await {
        Ok(x) => x,
        Err(e) => return from_intent(e),
    };
    let plan = match action.as_str() {
        "start" => intent::start(
            &vm,
            vmi.as_ref(),
            &StartOptions {
                paused: body.paused.unwrap_or(false),
                dry_run: dry,
            },
        ),
        "stop" => intent::stop(
            &vm,
            vmi.as_ref(),
            &StopOptions {
                grace_period: body.grace_period,
                dry_run: dry,
            },
        ),
        "restart" => intent::restart(
            &vm,
            vmi.as_ref(),
            &RestartOptions {
                grace_period_seconds: body.grace_period_seconds,
                dry_run: dry,
            },
        ),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return from_intent(e),
    };
    match execute::execute(client, &ns, &name, &plan).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => from_intent(e),
    }
}

/// PUT `.../virtualmachineinstances/{name}/{pause|unpause}`: 200 on success (not 202).
async fn pause_or_unpause(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(client) = state.client.get() else {
        return status(503, "ServiceUnavailable", "the subresource API is starting");
    };
    let body = match decode(&body) {
        Ok(b) => b,
        Err(e) => return from_intent(e),
    };
    let opts = PauseOptions {
        dry_run: dry_run(&body),
    };
    let internal = |what: &str, e: kube::Error| {
        from_intent(IntentError::internal(format!(
            "unable to retrieve {what} [{name}]: {e}"
        )))
    };
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), &ns);
    let plan = match action.as_str() {
        "pause" => {
            let vmi = match vmis.get_opt(&name).await {
                Ok(v) => v,
                Err(e) => return internal("vmi", e),
            };
            intent::pause(&name, vmi.as_ref(), &opts, &controller::now())
        }
        "unpause" => {
            let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
            let vm = match vms.get_opt(&name).await {
                Ok(v) => v,
                Err(e) => return internal("vm", e),
            };
            let vmi = match vmis.get_opt(&name).await {
                Ok(v) => v,
                Err(e) => return internal("vmi", e),
            };
            intent::unpause(&name, vm.as_ref(), vmi.as_ref(), &opts)
        }
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return from_intent(e),
    };
    match execute::execute(client, &ns, &name, &plan).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => from_intent(e),
    }
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({
        "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")),
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
                put(pause_or_unpause),
            )
            .route(
                &format!("/apis/{GROUP}/{v}/version"),
                axum::routing::get(version),
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
