//! virt-handler's HTTP API: `PUT /v1/namespaces/{ns}/virtualmachineinstances/{name}/pause`
//! (and `unpause`, `reset`, `softreboot`), answered once the launcher confirms; the websocket
//! streams `GET .../{name}/console`, `.../vnc`, `.../portforward/{port}[/{protocol}]`
//! ([`crate::streams`]); and `GET /healthz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http::StatusCode;
use serde_json::json;
use virt_reconciler::intent::pause::{ALREADY_PAUSED, NOT_PAUSED, UNPAUSE_NOT_RUNNING};
use virt_reconciler::intent::reset::NO_AGENT;
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Request};

use crate::launcher::{self, LauncherError};
use crate::{Shared, paths, streams, vmis};

/// A pause, unpause or reset the launcher should carry out, or why not (pure).
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Send(Request),
    Refuse(StatusCode, String),
}

fn not_here() -> Check {
    Check::Refuse(
        StatusCode::NOT_FOUND,
        "the VMI does not run on this node".into(),
    )
}

/// Checks `verb` against the VMI's last known domain state (`None`: not followed here).
pub fn check(verb: &str, followed: bool, domain: Option<&DomainStatus>) -> Check {
    let request = match verb {
        "pause" => Request::Pause,
        "unpause" => Request::Unpause,
        "reset" => Request::Reset,
        // The guests have no agent and the launcher no ACPI reboot.
        "softreboot" if followed => return Check::Refuse(StatusCode::CONFLICT, NO_AGENT.into()),
        "softreboot" => return not_here(),
        _ => {
            return Check::Refuse(
                StatusCode::NOT_FOUND,
                format!("no such action {verb:?}: use pause, unpause, reset or softreboot"),
            );
        }
    };
    if !followed {
        return not_here();
    }
    let state = domain.map(|d| d.state).unwrap_or_default();
    match (&request, state) {
        (Request::Pause, DomainState::Paused) => {
            Check::Refuse(StatusCode::CONFLICT, ALREADY_PAUSED.into())
        }
        (Request::Unpause, DomainState::Running) => {
            Check::Refuse(StatusCode::CONFLICT, NOT_PAUSED.into())
        }
        (_, DomainState::Running | DomainState::Paused) => Check::Send(request),
        _ => Check::Refuse(StatusCode::CONFLICT, UNPAUSE_NOT_RUNNING.into()),
    }
}

/// metav1.Status's `reason` for a code, as the API server names it.
fn reason(code: StatusCode) -> Option<&'static str> {
    Some(match code.as_u16() {
        400 => "BadRequest",
        404 => "NotFound",
        409 => "Conflict",
        500 | 502 => "InternalError",
        503 => "ServiceUnavailable",
        _ => return None,
    })
}

/// A metav1.Status answer with `message`.
pub(crate) fn status(code: StatusCode, message: &str) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code.is_success() { "Success" } else { "Failure" },
        "message": message, "code": code.as_u16(),
    });
    if let Some(reason) = reason(code).filter(|_| !code.is_success()) {
        body["reason"] = json!(reason);
    }
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn pause_or_unpause(
    State(shared): State<Arc<Shared>>,
    Path((ns, name, verb)): Path<(String, String, String)>,
) -> Response {
    let tracked = shared.tracked(&ns, &name);
    let request = match check(
        &verb,
        tracked.is_some(),
        tracked.as_ref().and_then(|t| t.domain.as_ref()),
    ) {
        Check::Send(r) => r,
        Check::Refuse(code, why) => {
            return status(code, &format!("VMI {ns}/{name}: {why}"));
        }
    };
    let Some(tracked) = tracked else {
        return status(StatusCode::NOT_FOUND, "the VMI does not run on this node");
    };
    let socket = paths::launcher_socket(&shared.config.host_root, &tracked.uid);
    match launcher::call(&socket, &request).await {
        Ok(domain) => {
            // Written now rather than on the watch's report, so the caller sees it at once.
            shared.record_domain(&ns, &name, &tracked.uid, &domain);
            if let Err(e) = vmis::apply(&shared, &ns, &name, &tracked.uid, &domain).await {
                tracing::warn!("VMI {ns}/{name}: cannot write the domain's state: {e:#}");
            }
            let done = match verb.as_str() {
                "reset" => "reset",
                other => &format!("{other}d"),
            };
            status(StatusCode::OK, &format!("VMI {ns}/{name}: {done}"))
        }
        Err(e @ LauncherError::Refused(..)) => status(
            StatusCode::CONFLICT,
            &format!("VMI {ns}/{name}: the launcher refused to {verb}: {e}"),
        ),
        Err(e) => status(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("VMI {ns}/{name}: {e}"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/namespaces/{ns}/virtualmachineinstances/{name}/{verb}",
            put(pause_or_unpause).get(streams::named),
        )
        .route(
            "/v1/namespaces/{ns}/virtualmachineinstances/{name}/portforward/{port}",
            get(streams::port_forward_tcp),
        )
        .route(
            "/v1/namespaces/{ns}/virtualmachineinstances/{name}/portforward/{port}/{protocol}",
            get(streams::port_forward),
        )
        .route("/healthz", get(healthz))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(state: DomainState) -> DomainStatus {
        DomainStatus {
            state,
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked_against_the_domain() {
        use DomainState::*;
        let refuse = |code: StatusCode, why: &str| Check::Refuse(code, why.to_string());
        let cases = [
            ("pause", true, Some(Running), Check::Send(Request::Pause)),
            ("unpause", true, Some(Paused), Check::Send(Request::Unpause)),
            ("reset", true, Some(Running), Check::Send(Request::Reset)),
            ("reset", true, Some(Paused), Check::Send(Request::Reset)),
            (
                "reset",
                true,
                Some(Shutoff),
                refuse(StatusCode::CONFLICT, "VMI is not running"),
            ),
            (
                "softreboot",
                true,
                Some(Running),
                refuse(
                    StatusCode::CONFLICT,
                    "VMI neither have the agent connected nor the ACPI feature enabled",
                ),
            ),
            (
                "softreboot",
                false,
                None,
                refuse(StatusCode::NOT_FOUND, "the VMI does not run on this node"),
            ),
            (
                "pause",
                true,
                Some(Paused),
                refuse(StatusCode::CONFLICT, "VMI is already paused"),
            ),
            (
                "unpause",
                true,
                Some(Running),
                refuse(StatusCode::CONFLICT, "VMI is not paused"),
            ),
            (
                "pause",
                true,
                None,
                refuse(StatusCode::CONFLICT, "VMI is not running"),
            ),
            (
                "pause",
                true,
                Some(Shutoff),
                refuse(StatusCode::CONFLICT, "VMI is not running"),
            ),
            (
                "pause",
                false,
                None,
                refuse(StatusCode::NOT_FOUND, "the VMI does not run on this node"),
            ),
            (
                "stop",
                true,
                Some(Running),
                refuse(
                    StatusCode::NOT_FOUND,
                    "no such action \"stop\": use pause, unpause, reset or softreboot",
                ),
            ),
        ];
        for (verb, followed, state, want) in cases {
            let d = state.map(domain);
            assert_eq!(
                check(verb, followed, d.as_ref()),
                want,
                "{verb} {followed} {state:?}"
            );
        }
    }
}
