//! The HTTP face of the server: authentication, routing of Kubernetes API paths, body and
//! content negotiation, tables and watches. The semantics live in `api`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tower::ServiceExt;

use crate::api::options::{self, OptionsKind};
use crate::api::{
    AdmissionHook, Core, DeleteOptions, FieldValidation, MAX_BODY, PatchType, Propagation,
    WriteOptions, parse_propagation,
};
use crate::discovery;
use crate::openapi;
use crate::rbac::{self, UserInfo};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector, parse_field_selector, parse_label_selector};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{Change, EventType, Stored, watch_line};
use crate::table;
use crate::validation::{NameRule, check_name, go_quote};
use crate::webhook_dispatch::{
    Clients as WebhookClients, RequestInfo, WebhookAdmission, admission_for, run_write,
};
use crate::webhooks::Gvk;

pub struct AppState {
    pub core: Arc<Core>,
    pub token: String,
    pub server_address: String,
    pub mounted: Vec<(String, Router)>,
    pub bookmark_interval: Duration,
    /// The client certificate for proxying to APIServices' backends.
    pub front_proxy: crate::tls::FrontProxy,
    /// TLS client configurations for admission webhooks.
    pub webhook_clients: Arc<WebhookClients>,
    /// ServiceAccount tokens issued by TokenRequest.
    pub sa_tokens: crate::sa_tokens::Tokens,
    /// The RBAC objects last read, per namespace.
    pub policies: crate::access::PolicyCache,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter as kube-apiserver reads one: present and neither `0` nor `false`.
    fn bool(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// An integer parameter, refused with Go's words as kube-apiserver does. An empty value
    /// counts as absent.
    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        let Some(v) = self.get(key).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        v.parse::<i64>().map(Some).map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            ApiError::bad_request(format!("strconv.ParseInt: parsing {}: {why}", go_quote(v)))
        })
    }

    /// kube-apiserver's checks of a list's options (a watch has its own).
    fn check_list_options(&self) -> ApiResult<()> {
        let Some(m) = self.get("resourceVersionMatch").filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let rv = self.get("resourceVersion").unwrap_or("");
        let forbidden = |why: &str| Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {why}"),
            field: "resourceVersionMatch".into(),
        };
        let mut causes = Vec::new();
        if rv.is_empty() {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if self.get("continue").is_some_and(|c| !c.is_empty()) {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {}: supported values: \"Exact\", \"NotOlderThan\", \"\"",
                    go_quote(m)
                ),
                field: "resourceVersionMatch".into(),
            });
        }
        if m == "Exact" && rv == "0" {
            causes.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        if causes.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes))
    }

    /// Every value of a parameter given more than once (`dryRun=All&dryRun=All`).
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `dryRun` asks for a dry run (its problem, for the options' 422, if any).
    fn dry_run(&self) -> Result<bool, Cause> {
        crate::api::options::dry_run(&self.all("dryRun"))
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = parse_label_selector(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = parse_field_selector(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok((labels, fields))
    }
}

/// How the client wants objects rendered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rendering {
    Object,
    Table(table::IncludeObject),
    PartialMetadata,
}

fn rendering(headers: &HeaderMap, q: &Query) -> ApiResult<Rendering> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Rendering::Object);
    }
    let mut json_ok = false;
    for part in accept.split(',') {
        let part = part.trim();
        let media = part.split(';').next().unwrap_or("").trim();
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        if part.contains("as=Table") && part.contains("g=meta.k8s.io") {
            let include = q
                .get("includeObject")
                .map(|s| {
                    table::IncludeObject::parse(s).ok_or_else(|| {
                        ApiError::bad_request(format!("includeObject {s:?} is not supported"))
                    })
                })
                .transpose()?
                .unwrap_or(table::IncludeObject::Metadata);
            return Ok(Rendering::Table(include));
        }
        if part.contains("as=PartialObjectMetadata") {
            return Ok(Rendering::PartialMetadata);
        }
        if !part.contains("as=") {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Rendering::Object)
    } else {
        Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json (asked for {accept:?})"
        )))
    }
}

/// A response whose JSON body is already serialized.
fn json_bytes_response(code: StatusCode, body: Bytes, warnings: &[String]) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_warnings(r.headers_mut(), warnings);
    r
}

/// `Warning: 299 - "text"` headers, which kubectl prints as `Warning: text`.
fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, v);
        }
    }
}

fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    json_bytes_response(
        code,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        warnings,
    )
}

/// The response to a write: the written object's stored bytes when they are what the client
/// asked for, else the object rendered.
fn written_response(
    code: StatusCode,
    rt: &ResourceType,
    w: crate::api::Written,
    how: Rendering,
    warnings: &[String],
) -> Response {
    match (how, w.json) {
        (Rendering::Object, Some(json)) => json_bytes_response(code, json, warnings),
        _ => json_response(code, &render_one(rt, w.object, how), warnings),
    }
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body, &[])
}

/// Serves a request; a write is answered only once it is durable (with a data directory):
/// whatever the request changed has a version no later than the store's when it was served.
async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !writes {
        return serve(&state, req).await;
    }
    let _writer = state.core.store.writer();
    let response = serve(&state, req).await;
    let rv = state.core.store.current_rv();
    match state.core.store.durable(rv).await {
        Ok(()) => response,
        Err(why) => ApiError::internal(format!(
            "the change could not be written to the data directory: {why}"
        ))
        .into_response(),
    }
}

async fn serve(state: &Arc<AppState>, req: Request) -> Response {
    let state = state.clone();
    let path = req.uri().path().to_string();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return (StatusCode::OK, "ok").into_response();
    }
    let Some(user) = authenticate(&state, req.headers()) else {
        return ApiError::unauthorized().into_response();
    };
    // Authorized before anything serves it: dispatch, aggregated and mounted groups alike.
    if !user.is_master() {
        let attrs = rbac::request_attributes(req.method().as_str(), &path, req.uri().query());
        let policy = crate::access::policy(&state.core, &state.policies, &attrs.namespace);
        if !rbac::authorize(&policy, &user, &attrs).allowed {
            return rbac::forbidden(&user, &attrs).into_response();
        }
    }
    let mut req = req;
    req.extensions_mut().insert(user);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // A group/version that an APIService with a Service claims goes to that Service.
    if let Some(api_service) = crate::aggregation_proxy::claiming(&state.core, &segments) {
        return crate::aggregation_proxy::proxy(&state.core, &state.front_proxy, &api_service, req)
            .await;
    }
    // Mounted API groups get their requests, except for discovery which the server answers.
    if segments.len() > 3
        && segments[0] == "apis"
        && let Some((_, router)) = state.mounted.iter().find(|(g, _)| g == segments[1])
    {
        return match router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
    }
    match dispatch(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The identity of the request's bearer token: the admin's, or a live ServiceAccount token's.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Option<UserInfo> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?
        .trim();
    if constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Some(UserInfo::admin());
    }
    let core = &state.core;
    let accounts = core.registry.find("", "v1", "serviceaccounts")?;
    state
        .sa_tokens
        .resolve(token, chrono::Utc::now(), |ns, name| {
            core.store
                .get(&accounts.store, ns, name)
                .map(|sa| sa.uid().to_string())
        })
}

/// The identity `handle` attached to a request (the admin's for requests made inside).
fn user_of(req: &Request) -> UserInfo {
    req.extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::admin)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn kube_version() -> Value {
    let (major, minor) = crate::KUBE_VERSION
        .trim_start_matches('v')
        .split_once('.')
        .map(|(a, b)| {
            (
                a.to_string(),
                b.split('.').next().unwrap_or("0").to_string(),
            )
        })
        .unwrap_or_default();
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("{}-localkube", crate::KUBE_VERSION),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

/// Where a resource request points.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve_target(core: &Core, group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let find = |plural: &str| {
        core.registry
            .find(group, version, plural)
            .ok_or_else(ApiError::not_found_path)
    };
    let t = match rest {
        ["namespaces", name] if group.is_empty() => Target {
            rt: find("namespaces")?,
            namespace: None,
            name: Some(name.to_string()),
            subresource: None,
        },
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => Target {
            rt: find("namespaces")?,
            namespace: None,
            name: Some(name.to_string()),
            subresource: Some(sub.to_string()),
        },
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            let rt = find(plural)?;
            if !rt.namespaced {
                return Err(ApiError::not_found_path());
            }
            Target {
                rt,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                subresource: tail.get(1).map(|s| s.to_string()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let rt = find(plural)?;
            if rt.namespaced && !tail.is_empty() {
                return Err(ApiError::not_found_path());
            }
            Target {
                rt,
                namespace: None,
                name: tail.first().map(|s| s.to_string()),
                subresource: tail.get(1).map(|s| s.to_string()),
            }
        }
        _ => return Err(ApiError::not_found_path()),
    };
    if let Some(n) = &t.name {
        if n.is_empty() {
            return Err(ApiError::not_found_path());
        }
        // No stored object has such a name; kube-apiserver refuses it before looking.
        let problems = check_name(n, NameRule::PathSegment);
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Name parameter invalid: {}: {}",
                go_quote(n),
                problems.join(";")
            )));
        }
    }
    Ok(t)
}

/// The request path with its percent-escapes decoded, as kube-apiserver routes on it: an
/// escaped `/` separates segments like a plain one.
fn decode_path(raw: &str) -> ApiResult<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "the request path {raw:?} has an invalid percent-escape"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's plain-text answer for a path that nothing serves: kube-apiserver's for a group that is
/// not built in (unknown, or a CRD's group without that version or resource), and any path
/// outside `/api` and `/apis`. Built-in groups answer with a Status.
fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// `error`, or Go's plain 404 when it is a 404 for the path and `group` is not built in.
fn not_found_in(core: &Core, group: &str, error: ApiError) -> ApiResult<Response> {
    if error == ApiError::not_found_path() && !core.registry.is_builtin_group(group) {
        return Ok(page_not_found());
    }
    Err(error)
}

async fn dispatch(state: &Arc<AppState>, req: Request) -> ApiResult<Response> {
    let core = &state.core;
    // Go's HTTP server refuses a path with a bad escape before kube-apiserver sees it, with
    // this plain text over HTTP/1.1 (over HTTP/2 it resets the stream).
    let Ok(path) = decode_path(req.uri().path()) else {
        return Ok((
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "400 Bad Request",
        )
            .into_response());
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let q = Query::parse(req.uri().query())?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let discovery_only = |r: Response| -> ApiResult<Response> {
        if method == Method::GET {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )))
        }
    };
    match segments.as_slice() {
        ["version"] => return discovery_only(ok(&kube_version())),
        ["api"] => {
            if discovery::wants_aggregated(&accept) {
                return discovery_only(aggregated_response(&discovery::aggregated(
                    &core.registry,
                    true,
                )));
            }
            return discovery_only(ok(&discovery::api_versions(&state.server_address)));
        }
        ["apis"] => {
            if discovery::wants_aggregated(&accept) {
                return discovery_only(aggregated_response(&discovery::aggregated(
                    &core.registry,
                    false,
                )));
            }
            return discovery_only(ok(&discovery::api_group_list(&core.registry)));
        }
        ["api", "v1"] => {
            let doc = discovery::api_resource_list(&core.registry, "", "v1")
                .ok_or_else(ApiError::not_found_path)?;
            return discovery_only(ok(&doc));
        }
        ["apis", group] => {
            return match discovery::api_group_doc(&core.registry, group) {
                Some(doc) => discovery_only(ok(&doc)),
                None => not_found_in(core, group, ApiError::not_found_path()),
            };
        }
        ["apis", group, version] => {
            return match discovery::api_resource_list(&core.registry, group, version) {
                Some(doc) => discovery_only(ok(&doc)),
                None => not_found_in(core, group, ApiError::not_found_path()),
            };
        }
        ["openapi", "v3"] => return discovery_only(ok(&openapi_index(core))),
        ["openapi", "v3", "api", "v1"] => {
            return discovery_only(openapi_doc(core, "", "v1"));
        }
        ["openapi", "v3", "apis", group, version] => {
            return discovery_only(openapi_doc(core, group, version));
        }
        ["api", "v1", rest @ ..] => {
            let target = resolve_target(core, "", "v1", rest)?;
            return resource_request(state, target, method, headers, q, req).await;
        }
        ["apis", group, version, rest @ ..] => {
            let target = match resolve_target(core, group, version, rest) {
                Ok(t) => t,
                Err(e) => return not_found_in(core, group, e),
            };
            return resource_request(state, target, method, headers, q, req).await;
        }
        ["api", ..] => {}
        _ => return Ok(page_not_found()),
    }
    Err(ApiError::not_found_path())
}

fn aggregated_response(doc: &Value) -> Response {
    let mut r = ok(doc);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    r
}

fn openapi_index(core: &Core) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in core.registry.groups() {
        for v in versions {
            let key = if group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{group}/{v}")
            };
            let doc = openapi_document(core, &group, &v);
            let hash = openapi::document_hash(&doc);
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn openapi_document(core: &Core, group: &str, version: &str) -> Value {
    let types: Vec<_> = core
        .registry
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    openapi::group_version_document(&types)
}

fn openapi_doc(core: &Core, group: &str, version: &str) -> Response {
    if !core.registry.serves(group, version) {
        return ApiError::not_found_path().into_response();
    }
    ok(&openapi_document(core, group, version))
}

/// How much of a request body over the limit the server still reads, and for how long, so
/// that the client can finish sending and read the 413: closing the connection (HTTP/1.1) or
/// resetting the stream (HTTP/2) while it sends makes clients such as curl and hyper's lose
/// the answer. The refused bytes are dropped as they come, so memory stays flat.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(30);

async fn read_body(req: Request) -> ApiResult<Bytes> {
    use futures::StreamExt;
    let expected = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = req.into_body().into_data_stream();
    // A body announced as too large is refused before any of it is kept.
    if expected > MAX_BODY {
        tokio::spawn(drain(body));
        return Err(ApiError::too_large(MAX_BODY));
    }
    let mut out = Vec::with_capacity(expected);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("the request body could not be read: {e}"))
        })?;
        if out.len() + chunk.len() > MAX_BODY {
            tokio::spawn(drain(body));
            return Err(ApiError::too_large(MAX_BODY));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Reads and drops the rest of a refused body, up to `DRAIN_BYTES` and `DRAIN_TIME`.
async fn drain(mut body: axum::body::BodyDataStream) {
    use futures::StreamExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async move {
        let mut left = DRAIN_BYTES;
        while let Some(Ok(chunk)) = body.next().await {
            if chunk.len() >= left {
                return;
            }
            left -= chunk.len();
        }
    })
    .await;
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// Parses a JSON or YAML body into a value.
pub(crate) fn parse_document(bytes: &[u8], yaml: bool) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(_) if !yaml => parse_json_as_go(bytes),
        Err(_) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
            match serde_saphyr::from_str::<Value>(text) {
                Ok(v) => Ok(v),
                // As kube-apiserver's YAML decoder, the first document is the body.
                Err(e) if is_multiple_documents(&e) => serde_saphyr::from_multiple::<Value>(text)
                    .map(|docs| docs.into_iter().next().unwrap_or(Value::Null))
                    .map_err(|e| ApiError::bad_request(yaml_error_message(&e))),
                Err(e) => Err(ApiError::bad_request(yaml_error_message(&e))),
            }
        }
    }
}

/// JSON that serde_json refuses but Go's encoding/json reads, read as Go does: invalid UTF-8
/// and escaped lone surrogates (`"\ud800"`) become U+FFFD in strings. Anything else is the
/// 400 it was.
fn parse_json_as_go(bytes: &[u8]) -> ApiResult<Value> {
    let text = String::from_utf8_lossy(bytes);
    let text = crate::go_json::replace_lone_surrogates(&text);
    serde_json::from_str::<Value>(&text)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn is_multiple_documents(e: &serde_saphyr::Error) -> bool {
    let mut inner = e;
    while let serde_saphyr::Error::WithSnippet { error, .. } = inner {
        inner = error;
    }
    matches!(inner, serde_saphyr::Error::MultipleDocuments { .. })
}

/// One sentence about what is wrong with a YAML body, without the parser's internals.
fn yaml_error_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let budget = serde_saphyr::Budget::default();
    match inner {
        E::Budget { breach, .. } => match breach {
            B::Nodes { .. } | B::Events { .. } => format!(
                "the YAML document is too large: more than {} nodes",
                budget.max_nodes
            ),
            B::Depth { .. } => format!(
                "the YAML document nests deeper than {} levels",
                budget.max_depth
            ),
            B::Aliases { .. }
            | B::Anchors { .. }
            | B::AliasAnchorRatio { .. }
            | B::RecordedAnchorEvents { .. }
            | B::RecordedAnchorBytes { .. }
            | B::MergeKeys { .. } => {
                "the YAML document uses too many anchors, aliases or merge keys".to_string()
            }
            B::Documents { .. } => "the YAML body has too many documents".to_string(),
            _ => "the YAML document is too large".to_string(),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "the YAML document expands its aliases too far".to_string()
        }
        E::DuplicateMappingKey { key, location } => {
            let at = if location.line() > 0 {
                format!(" at line {}, column {}", location.line(), location.column())
            } else {
                String::new()
            };
            match key {
                Some(k) => format!("the YAML document has a duplicate key {k:?}{at}"),
                None => format!("the YAML document has a duplicate key{at}"),
            }
        }
        _ => {
            // The message alone: the default rendering adds a multi-line source snippet.
            let text = inner.to_string();
            // serde_json's maps need string keys, and the parser words a null one for Rust.
            if text.starts_with("cannot deserialize null into string") {
                let at = inner
                    .location()
                    .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default();
                return format!("the YAML document has an empty mapping key{at}");
            }
            format!("the request body is not valid YAML: {text}")
        }
    }
}

fn parse_object_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let media = ct.split(';').next().unwrap_or("").trim();
    match media {
        "application/json" | "" => parse_document(bytes, false),
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_document(bytes, true),
        // client-go's typed clients (kubectl create configmap, ...) send protobuf.
        m if crate::protobuf::is_protobuf(m) => {
            crate::protobuf::decode_object(bytes).map_err(ApiError::bad_request)
        }
        _ => Err(ApiError::unsupported_media_type(&ct)),
    }
}

/// A write's options from the query, checked as kube-apiserver checks them (its 422 names
/// `kind`, and `patch` the type of a patch, which has rules of its own).
fn write_options(
    headers: &HeaderMap,
    q: &Query,
    kind: OptionsKind,
    patch: Option<PatchType>,
) -> ApiResult<WriteOptions> {
    let mut causes = match patch {
        Some(t) => options::patch_rules(t, q.get("fieldManager"), q.get("force").is_some()),
        None => Vec::new(),
    };
    let dry_run = q.dry_run().unwrap_or_else(|c| {
        causes.push(c);
        false
    });
    let field_validation =
        options::field_validation(q.get("fieldValidation")).unwrap_or_else(|c| {
            causes.push(c);
            FieldValidation::default()
        });
    if !causes.is_empty() {
        return Err(options::invalid(kind, causes));
    }
    Ok(WriteOptions {
        dry_run,
        field_manager: q.get("fieldManager").map(str::to_string),
        field_validation,
        force: q.bool("force"),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        admission: AdmissionHook::default(),
    })
}

fn render_one(rt: &ResourceType, obj: Value, how: Rendering) -> Value {
    match how {
        Rendering::Object => obj,
        Rendering::PartialMetadata => partial_metadata(&obj),
        Rendering::Table(include) => table_of(rt, vec![obj], include, None, None, true),
    }
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn table_columns(rt: &ResourceType) -> Vec<table::Column> {
    match &rt.printer_columns {
        Some(cols) => table::printer_columns_from_crd(cols),
        None if rt.is_custom() => table::printer_columns_from_crd(&json!([])),
        None => table::builtin_columns(&rt.group, &rt.plural),
    }
}

fn table_cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    match &rt.printer_columns {
        Some(cols) => table::crd_cells_with_age(cols, obj, chrono::Utc::now()),
        None if rt.is_custom() => table::crd_cells_with_age(&json!([]), obj, chrono::Utc::now()),
        None => table::builtin_cells(&rt.group, &rt.plural, obj, chrono::Utc::now()),
    }
}

fn table_of(
    rt: &ResourceType,
    items: Vec<Value>,
    include: table::IncludeObject,
    rv: Option<&str>,
    continue_token: Option<&str>,
    with_columns: bool,
) -> Value {
    let columns = if with_columns {
        table_columns(rt)
    } else {
        Vec::new()
    };
    let rows = items
        .into_iter()
        .map(|o| (table_cells(rt, &o), o))
        .collect();
    table::build_table(&columns, rows, include, rv, continue_token)
}

async fn resource_request(
    state: &Arc<AppState>,
    target: Target,
    method: Method,
    headers: HeaderMap,
    q: Query,
    req: Request,
) -> ApiResult<Response> {
    let mut admitted = None;
    let result = serve_resource(state, target, method, headers, q, req, &mut admitted).await;
    // Webhooks' warnings reach the client whether the request succeeded or not.
    let warnings = admitted.map(|a| a.warnings()).unwrap_or_default();
    if warnings.is_empty() {
        return result;
    }
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    add_warnings(response.headers_mut(), &warnings);
    Ok(response)
}

/// The admission of a request's writes by webhooks, when any are configured: of `subresource`
/// of `rt`, whose objects are `kind`. Kept in `admitted` for the warnings webhooks answer with.
struct Admitting<'a> {
    state: &'a AppState,
    rt: &'a Arc<ResourceType>,
    ns: &'a str,
    q: &'a Query,
    admitted: &'a mut Option<Arc<WebhookAdmission>>,
    user: &'a UserInfo,
}

impl Admitting<'_> {
    fn hook(&mut self, subresource: &str, kind: Gvk, delete_options: Value) -> AdmissionHook {
        let info = RequestInfo {
            rt: self.rt.clone(),
            subresource: subresource.to_string(),
            kind,
            namespace: self.ns.to_string(),
            dry_run: self.q.dry_run().unwrap_or_default(),
            field_manager: self.q.get("fieldManager").map(str::to_string),
            field_validation: self.q.get("fieldValidation").map(str::to_string),
            delete_options,
            user: self.user.clone(),
        };
        match admission_for(&self.state.core, &self.state.webhook_clients, info) {
            Some(a) => {
                *self.admitted = Some(a.clone());
                AdmissionHook::new(a)
            }
            None => AdmissionHook::default(),
        }
    }

    /// Of the resource itself or a subresource that writes it (status, finalize).
    fn of_objects(&mut self, subresource: &str, delete_options: Value) -> AdmissionHook {
        let kind = Gvk::of(self.rt);
        self.hook(subresource, kind, delete_options)
    }
}

/// A TokenRequest: a new token for an existing ServiceAccount.
fn token_request(
    state: &AppState,
    accounts: &ResourceType,
    ns: &str,
    name: &str,
    body: &Value,
    warnings: &[String],
) -> ApiResult<Response> {
    let account = state.core.get_stored(accounts, ns, name)?;
    let seconds = crate::sa_tokens::requested_seconds(body)?;
    let expires = crate::sa_tokens::expiry(chrono::Utc::now(), seconds);
    let (token, kept) = state.sa_tokens.issue(ns, name, account.uid(), expires);
    // With a data directory, `handle` answers once this is durable too.
    state
        .core
        .store
        .persist_token(kept, chrono::Utc::now().timestamp());
    let answer = crate::sa_tokens::response(body, ns, name, seconds, &token, expires);
    Ok(json_response(StatusCode::CREATED, &answer, warnings))
}

/// DeleteOptions as an AdmissionRequest carries them.
fn delete_options_object(opts: &DeleteOptions) -> Value {
    let mut o = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
    if let Some(g) = opts.grace_period {
        o["gracePeriodSeconds"] = json!(g);
    }
    let mut pre = serde_json::Map::new();
    if let Some(uid) = &opts.precondition_uid {
        pre.insert("uid".into(), json!(uid));
    }
    if let Some(rv) = &opts.precondition_rv {
        pre.insert("resourceVersion".into(), json!(rv));
    }
    if !pre.is_empty() {
        o["preconditions"] = Value::Object(pre);
    }
    if let Some(p) = opts.propagation {
        o["propagationPolicy"] = json!(match p {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        });
    }
    if opts.dry_run {
        o["dryRun"] = json!(["All"]);
    }
    o
}

async fn serve_resource(
    state: &Arc<AppState>,
    target: Target,
    method: Method,
    headers: HeaderMap,
    q: Query,
    req: Request,
    admitted: &mut Option<Arc<WebhookAdmission>>,
) -> ApiResult<Response> {
    let core = state.core.clone();
    let rt = target.rt.clone();
    let ns = target.namespace.clone().unwrap_or_default();
    let user = user_of(&req);
    let mut admitting = Admitting {
        state,
        rt: &rt,
        ns: &ns,
        q: &q,
        admitted,
        user: &user,
    };
    let how = rendering(&headers, &q)?;
    let mut warnings: Vec<String> = Vec::new();
    if let Some(w) = &rt.deprecation_warning {
        warnings.push(w.clone());
    } else if rt.deprecated {
        warnings.push(format!(
            "{} is deprecated",
            if rt.group.is_empty() {
                rt.version.clone()
            } else {
                format!("{}/{} {}", rt.group, rt.version, rt.kind)
            }
        ));
    }
    if rt.strategy == crate::registry::StrategyId::AccessReview {
        if method != Method::POST || target.name.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )));
        }
        let body = parse_object_body(&headers, &read_body(req).await?)?;
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the body is a {kind}, not a {}",
                rt.kind
            )));
        }
        crate::openapi::check_builtin_types(&rt.group, &rt.kind, &body)?;
        let answer = crate::access::review(&rt.kind, body, &user, |ns| {
            crate::access::policy(&state.core, &state.policies, ns)
        })?;
        return Ok(json_response(StatusCode::CREATED, &answer, &warnings));
    }
    if target.subresource.as_deref() == Some("token")
        && rt.group.is_empty()
        && rt.plural == "serviceaccounts"
    {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )));
        }
        let name = target.name.clone().unwrap_or_default();
        let body = parse_object_body(&headers, &read_body(req).await?)?;
        return token_request(state, &rt, &ns, &name, &body, &warnings);
    }
    if target.subresource.as_deref() == Some("binding")
        && rt.group.is_empty()
        && rt.plural == "pods"
    {
        let name = target.name.clone().unwrap_or_default();
        if method != Method::POST {
            return Err(ApiError::method_not_allowed("bindings can only be created"));
        }
        let mut opts = write_options(&headers, &q, OptionsKind::Create, None)?;
        let body = parse_object_body(&headers, &read_body(req).await?)?;
        opts.admission = admitting.hook("binding", Gvk::core_v1("Binding"), Value::Null);
        let (core, ns) = (core.clone(), ns.clone());
        run_write(opts.admission.is_set(), move || {
            core.bind(&ns, &name, &body, &opts)
        })
        .await?;
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        return Ok(json_response(StatusCode::CREATED, &status, &warnings));
    }
    if target.subresource.as_deref() == Some("eviction")
        && rt.group.is_empty()
        && rt.plural == "pods"
    {
        let name = target.name.clone().unwrap_or_default();
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let mut opts = DeleteOptions {
            dry_run: q
                .dry_run()
                .map_err(|c| options::invalid(OptionsKind::Create, vec![c]))?,
            ..Default::default()
        };
        let body = parse_object_body(&headers, &read_body(req).await?)?;
        let eviction = Gvk {
            group: "policy".into(),
            version: "v1".into(),
            kind: "Eviction".into(),
        };
        opts.admission = admitting.hook("eviction", eviction, Value::Null);
        let (core, ns) = (core.clone(), ns.clone());
        run_write(opts.admission.is_set(), move || {
            core.evict(&ns, &name, &body, opts)
        })
        .await?;
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        return Ok(json_response(StatusCode::CREATED, &status, &warnings));
    }
    if target.subresource.as_deref() == Some("log") && rt.group.is_empty() && rt.plural == "pods" {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed("pods/log can only be read"));
        }
        let name = target.name.clone().unwrap_or_default();
        return crate::pod_log::serve(&core, &ns, &name, &q.0).await;
    }
    if target.subresource.as_deref() == Some("portforward")
        && rt.group.is_empty()
        && rt.plural == "pods"
    {
        if method != Method::GET && method != Method::POST {
            return Err(ApiError::method_not_allowed(
                "pods/portforward takes GET or POST",
            ));
        }
        let name = target.name.clone().unwrap_or_default();
        let query = req.uri().query().map(str::to_string);
        // Connecting is admitted as CONNECT of the PodPortForwardOptions.
        let forward = Gvk::core_v1("PodPortForwardOptions");
        let hook = admitting.hook("portforward", forward, Value::Null);
        if hook.is_set() {
            let ports: Vec<Value> =
                q.0.iter()
                    .filter(|(k, _)| k == "ports")
                    .flat_map(|(_, v)| v.split(','))
                    .filter_map(|p| p.trim().parse::<u16>().ok())
                    .map(|p| json!(p))
                    .collect();
            let mut options = json!({"kind": "PodPortForwardOptions", "apiVersion": "v1"});
            if !ports.is_empty() {
                options["ports"] = Value::Array(ports);
            }
            let name = name.clone();
            run_write(true, move || hook.connect(&name, options)).await?;
        }
        return crate::node_proxy::port_forward(&core, &ns, &name, query.as_deref(), req).await;
    }
    let status_only = match target.subresource.as_deref() {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some("finalize") if rt.plural == "namespaces" && rt.group.is_empty() => {
            if method != Method::PUT {
                return Err(ApiError::method_not_allowed(
                    "namespaces/finalize only supports update (PUT)",
                ));
            }
            true
        }
        Some(_) => return Err(ApiError::not_found_path()),
    };
    match (&target.name, method.clone()) {
        (None, Method::GET) => {
            if q.bool("watch") {
                return watch(state, &rt, target.namespace.as_deref(), &q, how).await;
            }
            let (labels, fields) = q.selectors()?;
            q.int("timeoutSeconds")?;
            // A limit of zero or less is no limit.
            let limit = q
                .int("limit")?
                .and_then(|l| usize::try_from(l).ok())
                .filter(|l| *l > 0);
            q.check_list_options()?;
            if let Some(rv) = q.get("resourceVersion")
                && !rv.is_empty()
            {
                let n: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                if n > core.store.current_rv() {
                    return Err(too_large_rv(n, core.store.current_rv()));
                }
            }
            let page = core.list(
                &rt,
                target.namespace.as_deref(),
                &labels,
                &fields,
                limit,
                q.get("continue"),
            )?;
            let rv = page.resource_version.to_string();
            let body = match how {
                Rendering::Table(include) => table_of(
                    &rt,
                    page.items.iter().map(|o| core.view_of(&rt, o)).collect(),
                    include,
                    Some(&rv),
                    page.continue_token.as_deref(),
                    true,
                ),
                Rendering::PartialMetadata => {
                    let items: Vec<Value> = page
                        .items
                        .iter()
                        .map(|o| partial_metadata(&core.view_of(&rt, o)))
                        .collect();
                    list_body(
                        "meta.k8s.io/v1",
                        "PartialObjectMetadataList",
                        items,
                        &rv,
                        &page.continue_token,
                        page.remaining,
                    )
                }
                Rendering::Object => {
                    // The items' stored JSON goes into the list as it is, one item at a time.
                    let head = list_head(
                        &rt.api_version(),
                        &rt.list_kind(),
                        &rv,
                        &page.continue_token,
                        page.remaining,
                    );
                    let body = list_json(
                        head,
                        &page.items,
                        |o| o.json_len(),
                        |o, out| core.append_view_json(&rt, o, out),
                    );
                    return Ok(json_bytes_response(StatusCode::OK, body, &warnings));
                }
            };
            Ok(json_response(StatusCode::OK, &body, &warnings))
        }
        (None, Method::POST) => {
            if target.namespace.is_none() && rt.namespaced {
                return Err(ApiError::method_not_allowed(
                    "create requires a namespace in the path for namespaced resources",
                ));
            }
            let mut opts = write_options(&headers, &q, OptionsKind::Create, None)?;
            let body = parse_object_body(&headers, &read_body(req).await?)?;
            opts.admission = admitting.of_objects("", Value::Null);
            let (core, rt2, ns) = (core.clone(), rt.clone(), ns.clone());
            let mut w = run_write(opts.admission.is_set(), move || {
                core.create(&rt2, &ns, body, &opts)
            })
            .await?;
            warnings.append(&mut w.warnings);
            Ok(written_response(
                StatusCode::CREATED,
                &rt,
                w,
                how,
                &warnings,
            ))
        }
        (None, Method::DELETE) => {
            if target.namespace.is_none() && rt.namespaced {
                return Err(ApiError::method_not_allowed(
                    "deletecollection requires a namespace in the path for namespaced resources",
                ));
            }
            let (labels, fields) = q.selectors()?;
            let mut opts = delete_options(&q, &content_type(&headers), &read_body(req).await?)?;
            opts.admission = admitting.of_objects("", delete_options_object(&opts));
            let (core2, rt2, ns2) = (core.clone(), rt.clone(), target.namespace.clone());
            let items = run_write(opts.admission.is_set(), move || {
                core2.delete_collection(&rt2, ns2.as_deref(), &labels, &fields, &opts)
            })
            .await?;
            let head = list_head(
                &rt.api_version(),
                &rt.list_kind(),
                &core.store.current_rv().to_string(),
                &None,
                None,
            );
            let body = list_json(head, &items, Bytes::len, |b, out| out.extend_from_slice(b));
            Ok(json_bytes_response(StatusCode::OK, body, &warnings))
        }
        (Some(name), Method::GET) => {
            let stored = core.get_stored(&rt, &ns, name)?;
            if how == Rendering::Object {
                let json = core.view_json(&rt, &stored);
                return Ok(json_bytes_response(StatusCode::OK, json, &warnings));
            }
            let out = render_one(&rt, core.view_of(&rt, &stored), how);
            Ok(json_response(StatusCode::OK, &out, &warnings))
        }
        (Some(name), Method::PUT) => {
            let mut opts = write_options(&headers, &q, OptionsKind::Update, None)?;
            let body = parse_object_body(&headers, &read_body(req).await?)?;
            let sub = target.subresource.clone().unwrap_or_default();
            opts.admission = admitting.of_objects(&sub, Value::Null);
            let (core, rt2, ns, name) = (core.clone(), rt.clone(), ns.clone(), name.clone());
            let mut w = run_write(opts.admission.is_set(), move || {
                if sub == "finalize" {
                    finalize_namespace(&core, &rt2, &name, body, &opts)
                } else {
                    core.update(&rt2, &ns, &name, body, &opts, status_only)
                }
            })
            .await?;
            warnings.append(&mut w.warnings);
            Ok(written_response(StatusCode::OK, &rt, w, how, &warnings))
        }
        (Some(name), Method::PATCH) => {
            let ct = content_type(&headers);
            let pt = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            let mut opts = write_options(&headers, &q, OptionsKind::Patch, Some(pt))?;
            let bytes = read_body(req).await?;
            // kube-apiserver reads an empty apply body as null (and refuses it as such).
            let patch = if pt == PatchType::Apply && bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                parse_document(&bytes, pt == PatchType::Apply)?
            };
            let sub = target.subresource.clone().unwrap_or_default();
            opts.admission = admitting.of_objects(&sub, Value::Null);
            let (core, rt2, ns, name) = (core.clone(), rt.clone(), ns.clone(), name.clone());
            let mut w = run_write(opts.admission.is_set(), move || {
                core.patch(&rt2, &ns, &name, pt, &patch, &opts, status_only)
            })
            .await?;
            warnings.append(&mut w.warnings);
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written_response(code, &rt, w, how, &warnings))
        }
        (Some(name), Method::DELETE) => {
            if status_only {
                return Err(ApiError::method_not_allowed("status cannot be deleted"));
            }
            let mut opts = delete_options(&q, &content_type(&headers), &read_body(req).await?)?;
            opts.admission = admitting.of_objects("", delete_options_object(&opts));
            let (core, rt2, ns2, name2) = (core.clone(), rt.clone(), ns.clone(), name.clone());
            let d = run_write(opts.admission.is_set(), move || {
                core.delete(&rt2, &ns2, &name2, &opts)
            })
            .await?;
            if d.gone && !rt.is_custom() {
                let body = json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": d.object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    },
                });
                return Ok(json_response(StatusCode::OK, &body, &warnings));
            }
            Ok(json_response(StatusCode::OK, &d.object, &warnings))
        }
        (_, m) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// PUT /api/v1/namespaces/{name}/finalize: replaces spec.finalizers.
fn finalize_namespace(
    core: &Core,
    rt: &ResourceType,
    name: &str,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<crate::api::Written> {
    let mut current = core.get(rt, "", name)?;
    current["spec"]["finalizers"] = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let w = core.update(rt, "", name, current, opts, false)?;
    core.gc_wake.notify_one();
    Ok(w)
}

fn list_body(
    api_version: &str,
    kind: &str,
    items: Vec<Value>,
    rv: &str,
    continue_token: &Option<String>,
    remaining: Option<u64>,
) -> Value {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "items": items})
}

/// The start of a list's JSON, as `list_body` writes it, up to the opening of `items`.
fn list_head(
    api_version: &str,
    kind: &str,
    rv: &str,
    continue_token: &Option<String>,
    remaining: Option<u64>,
) -> Vec<u8> {
    let empty = list_body(api_version, kind, Vec::new(), rv, continue_token, remaining);
    let mut out = serde_json::to_vec(&empty).unwrap_or_default();
    // Ends with `"items":[]}`.
    out.truncate(out.len().saturating_sub(2));
    out
}

/// A list's JSON: `head` from `list_head`, then each item as `append_json` writes it
/// (`json_len` sizes the buffer).
fn list_json<T>(
    mut head: Vec<u8>,
    items: &[T],
    json_len: impl Fn(&T) -> usize,
    mut append_json: impl FnMut(&T, &mut Vec<u8>),
) -> Bytes {
    head.reserve(items.iter().map(|i| json_len(i) + 1).sum::<usize>() + 2);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        append_json(item, &mut head);
    }
    head.extend_from_slice(b"]}");
    Bytes::from(head)
}

fn delete_options(q: &Query, content_type: &str, body: &[u8]) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: q
            .dry_run()
            .map_err(|c| options::invalid(OptionsKind::Delete, vec![c]))?,
        ..Default::default()
    };
    if let Some(g) = q.int("gracePeriodSeconds")? {
        opts.grace_period = Some(g);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation = Some(parse_propagation(p)?);
    } else if let Some(o) = q.get("orphanDependents") {
        opts.propagation = Some(if o == "true" {
            crate::api::Propagation::Orphan
        } else {
            crate::api::Propagation::Background
        });
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = if crate::protobuf::is_protobuf(content_type) {
            crate::protobuf::decode_object(body).map_err(ApiError::bad_request)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        opts.merge_body(&v)?;
    }
    Ok(opts)
}

/// Which state of a changed object a watcher is sent.
enum WatchObject<'a> {
    /// The object after the change.
    Current(&'a Arc<Stored>),
    /// The object before the change, for a watcher whose selectors it no longer matches; sent
    /// as DELETED with the change's version.
    LeftSelection(&'a Arc<Stored>),
}

/// What a watcher sends for one change, if anything, given its selectors.
fn watch_event<'a>(
    rt: &ResourceType,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    change: &'a Change,
) -> Option<(EventType, WatchObject<'a>)> {
    if change.key != rt.store {
        return None;
    }
    if let Some(ns) = ns
        && change.namespace() != ns
    {
        return None;
    }
    let now_matches = Core::matches(rt, &change.object, labels, fields);
    let old_matches = change
        .old
        .as_ref()
        .is_some_and(|o| Core::matches(rt, o, labels, fields));
    let current = WatchObject::Current(&change.object);
    Some(match change.kind {
        EventType::Added if now_matches => (EventType::Added, current),
        EventType::Deleted if old_matches || now_matches => (EventType::Deleted, current),
        EventType::Modified => match (old_matches, now_matches, &change.old) {
            (true, true, _) => (EventType::Modified, current),
            (false, true, _) => (EventType::Added, current),
            (true, false, Some(old)) => (EventType::Deleted, WatchObject::LeftSelection(old)),
            _ => return None,
        },
        _ => return None,
    })
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

async fn watch(
    state: &Arc<AppState>,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    q: &Query,
    how: Rendering,
) -> ApiResult<Response> {
    let core = state.core.clone();
    let (labels, fields) = q.selectors()?;
    Core::check_field_selector(rt, &fields)?;
    let bookmarks = q.bool("allowWatchBookmarks");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let timeout = q
        .int("timeoutSeconds")?
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800)
        .min(MAX_WATCH_SECONDS);
    let rv_param = q.get("resourceVersion").unwrap_or("").to_string();
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::invalid_field(
            "meta.k8s.io",
            "ListOptions",
            "",
            "allowWatchBookmarks",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    if send_initial == Some(true) && q.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid_field(
            "meta.k8s.io",
            "ListOptions",
            "",
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let ns = ns.map(str::to_string);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut task = WatchTask {
        core: core.clone(),
        rt: rt.clone(),
        ns: ns.clone(),
        labels,
        fields,
        how,
        tx,
        initial: Vec::new(),
        backlog: Vec::new(),
        live: None,
        last_rv: 0,
        timeout: Duration::from_secs(timeout),
        bookmarks,
        bookmark_every: state.bookmark_interval,
        initial_end_bookmark: send_initial == Some(true),
        kind: rt.kind.clone(),
        api_version: rt.api_version(),
    };
    if rv_param.is_empty() || rv_param == "0" || send_initial == Some(true) {
        // Start at the current state: synthetic ADDED events, then the live feed.
        let (items, rv, live) = core.store.subscribe_with_snapshot(&rt.store, ns.as_deref());
        if send_initial != Some(false) {
            task.initial = items;
        }
        task.last_rv = rv;
        task.live = Some(live);
    } else {
        let from: u64 = rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv_param:?}")))?;
        if from > core.store.current_rv() {
            return Err(too_large_rv(from, core.store.current_rv()));
        }
        match core.store.subscribe_from(&rt.store, from) {
            Ok(sub) => {
                task.backlog = sub.backlog;
                task.live = Some(sub.live);
                task.last_rv = from;
            }
            Err(too_old) => {
                let status = ApiError::gone(format!(
                    "too old resource version: {from} ({})",
                    too_old.oldest
                ))
                .to_status();
                let _ = task.tx.send(Ok(event_line("ERROR", &status))).await;
                return Ok(stream_response(rx));
            }
        }
    }
    spawn_watch(task);
    Ok(stream_response(rx))
}

/// The longest a watch may run (a year): larger timeouts are capped.
const MAX_WATCH_SECONDS: u64 = 365 * 24 * 3600;

/// kube-apiserver's answer to a resourceVersion it has not reached yet.
fn too_large_rv(asked: u64, current: u64) -> ApiError {
    ApiError {
        code: 504,
        reason: "Timeout".into(),
        message: format!("Too large resource version: {asked}, current: {current}"),
        details: Some(Box::new(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        }))),
    }
}

fn stream_response(rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

struct WatchTask {
    core: Arc<Core>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    how: Rendering,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>,
    initial: Vec<Arc<Stored>>,
    backlog: Vec<Arc<Change>>,
    live: Option<tokio::sync::broadcast::Receiver<Arc<Change>>>,
    last_rv: u64,
    timeout: Duration,
    bookmarks: bool,
    bookmark_every: Duration,
    initial_end_bookmark: bool,
    kind: String,
    api_version: String,
}

impl WatchTask {
    fn render(&self, obj: Value, first: &mut bool) -> Value {
        match self.how {
            Rendering::Table(include) => {
                let v = table_of(&self.rt, vec![obj], include, None, None, *first);
                *first = false;
                v
            }
            Rendering::PartialMetadata => partial_metadata(&obj),
            Rendering::Object => obj,
        }
    }

    /// Whether the watcher sends objects as stored, so that event lines can be made from
    /// the stored bytes without parsing them.
    fn sends_as_stored(&self, obj: &Stored) -> bool {
        self.how == Rendering::Object && Core::shows_as_stored(&self.rt, obj)
    }

    /// The line for an object of the initial state.
    fn initial_line(&self, obj: &Stored, first: &mut bool) -> Bytes {
        if self.sends_as_stored(obj) {
            return watch_line("ADDED", &obj.json());
        }
        let view = self.core.view_of(&self.rt, obj);
        event_line("ADDED", &self.render(view, first))
    }

    /// The line this watcher sends for a change, if any. Watchers that send the change as it
    /// is share one line, serialized once.
    fn change_line(&self, change: &Change, first: &mut bool) -> Option<Bytes> {
        let (kind, what) = watch_event(
            &self.rt,
            self.ns.as_deref(),
            &self.labels,
            &self.fields,
            change,
        )?;
        let view = match what {
            WatchObject::Current(obj) if self.sends_as_stored(obj) => {
                return Some(if kind == change.kind {
                    change.line()
                } else {
                    watch_line(kind.as_str(), &obj.json())
                });
            }
            WatchObject::Current(obj) => self.core.view_of(&self.rt, obj),
            WatchObject::LeftSelection(old) => {
                let mut last = old.value();
                if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(change.rv.to_string()));
                }
                self.core.to_view(&self.rt, &last)
            }
        };
        Some(event_line(kind.as_str(), &self.render(view, first)))
    }

    /// Sends one message of the live feed on; false when the watch is over.
    async fn forward(&mut self, msg: Result<Arc<Change>, RecvError>, first: &mut bool) -> bool {
        match msg {
            Ok(change) if change.rv <= self.last_rv => true,
            Ok(change) => {
                self.last_rv = change.rv;
                match self.change_line(&change, first) {
                    Some(line) => self.tx.send(Ok(line)).await.is_ok(),
                    None => true,
                }
            }
            Err(RecvError::Lagged(_)) => {
                let status =
                    ApiError::gone("the watcher fell too far behind; relist and watch again")
                        .to_status();
                let _ = self.tx.send(Ok(event_line("ERROR", &status))).await;
                false
            }
            Err(RecvError::Closed) => false,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta}),
        )
    }
}

fn spawn_watch(mut t: WatchTask) {
    tokio::spawn(async move {
        let mut first = true;
        let deadline = tokio::time::Instant::now() + t.timeout;
        for obj in std::mem::take(&mut t.initial) {
            if !Core::matches(&t.rt, &obj, &t.labels, &t.fields) {
                continue;
            }
            let line = t.initial_line(&obj, &mut first);
            if t.tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if t.initial_end_bookmark {
            let line = t.bookmark(t.last_rv, true);
            if t.tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        for change in std::mem::take(&mut t.backlog) {
            if change.rv <= t.last_rv {
                continue;
            }
            t.last_rv = change.rv;
            if let Some(line) = t.change_line(&change, &mut first)
                && t.tx.send(Ok(line)).await.is_err()
            {
                return;
            }
        }
        let Some(mut live) = t.live.take() else {
            return;
        };
        let mut ticker = tokio::time::interval(t.bookmark_every);
        ticker.tick().await;
        let mut epoch = t.core.store.epoch();
        loop {
            tokio::select! {
                _ = epoch.changed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = t.tx.closed() => return,
                _ = ticker.tick(), if t.bookmarks => {
                    // A bookmark carries the store's progress, as kube-apiserver's do, so that a
                    // watch of a quiet table resumes inside the history window. Every change of
                    // this table up to `now` is already in the feed: those go out first.
                    let now = t.core.store.current_rv();
                    loop {
                        let msg = match live.try_recv() {
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                            Err(TryRecvError::Closed) => Err(RecvError::Closed),
                            Ok(change) => Ok(change),
                        };
                        if !t.forward(msg, &mut first).await {
                            return;
                        }
                    }
                    t.last_rv = t.last_rv.max(now);
                    let line = t.bookmark(t.last_rv, false);
                    if t.tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                msg = live.recv() => if !t.forward(msg, &mut first).await {
                    return;
                },
            }
        }
    });
}
