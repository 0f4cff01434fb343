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

/// 404 for an action this API does not have.
fn no_such_action() -> IntentError {
    IntentError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
    }
}

/// What every handler starts with: the client, once the API server is up, and the decoded body.
fn prepare<'a>(
    state: &'a SubresourceState,
    body: &[u8],
) -> Result<(&'a Client, Body), IntentError> {
    let client = state.client.get().ok_or(IntentError {
        code: 503,
        reason: "ServiceUnavailable",
        message: "the subresource API is starting".into(),
    })?;
    Ok((client, decode(body)?))
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
    respond(
        run_lifecycle(&state, &ns, &name, &action, &body).await,
        StatusCode::ACCEPTED,
    )
}

async fn run_lifecycle(
    state: &SubresourceState,
    ns: &str,
    name: &str,
    action: &str,
    body: &[u8],
) -> Result<(), IntentError> {
    if !matches!(action, "start" | "stop" | "restart") {
        return Err(no_such_action());
    }
    let (client, body) = prepare(state, body)?;
    let dry = dry_run(&body);
    let restart = RestartOptions {
        grace_period_seconds: body.grace_period_seconds,
        dry_run: dry,
    };
    let start = StartOptions {
        paused: body.paused.unwrap_or(false),
        dry_run: dry,
    };
    let stop = StopOptions {
        grace_period: body.grace_period,
        dry_run: dry,
    };
    // Grace periods are checked before anything is fetched (Part B §2.5).
    match action {
        "restart" => intent::check_restart_options(&restart)?,
        "stop" => intent::check_stop_options(&stop)?,
        _ => {}
    }
    execute::run(client, ns, name, |vm, vmi| match action {
        "start" => intent::start(vm, vmi, &start),
        "stop" => intent::stop(vm, vmi, &stop),
        _ => intent::restart(vm, vmi, &restart),
    })
    .await
}

/// PUT `.../virtualmachineinstances/{name}/{pause|unpause}`: 200 on success (not 202).
async fn pause_or_unpause(
    State(state): State<Arc<SubresourceState>>,
    Path((ns, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    respond(
        run_pause_or_unpause(&state, &ns, &name, &action, &body).await,
        StatusCode::OK,
    )
}

async fn run_pause_or_unpause(
    state: &SubresourceState,
    ns: &str,
    name: &str,
    action: &str,
    body: &[u8],
) -> Result<(), IntentError> {
    if !matches!(action, "pause" | "unpause") {
        return Err(no_such_action());
    }
    let (client, body) = prepare(state, body)?;
    let opts = PauseOptions {
        dry_run: dry_run(&body),
    };
    let vmi = execute::get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?;
    let plan = if action == "pause" {
        intent::pause(name, vmi.as_ref(), &opts, &controller::now())?
    } else {
        let vm = execute::get_opt::<VirtualMachine>(client, ns, "vm", name).await?;
        intent::unpause(name, vm.as_ref(), vmi.as_ref(), &opts)?
    };
    execute::execute(client, ns, name, &plan).await
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
