//! The aggregation layer's IO: proxying `/apis/<group>/<version>/...` to the Service that an
//! APIService names (over TLS, with the front-proxy client certificate and `X-Remote-*`
//! identity headers, upgrades spliced through), and the periodic discovery probe that sets
//! `status.conditions[Available]` and feeds the backend's resources into discovery.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::aggregation::{self, Backend, Unreachable};
use crate::api::{Core, WriteOptions};
use crate::rbac::UserInfo;
use crate::registry::{MountedGroup, ResourceType};
use crate::status::ApiError;
use crate::store::EventType;
use crate::tls::FrontProxy;
use crate::tls_client::{self, Trust};

/// How often APIServices are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The longest a probe waits for a backend's discovery document.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document read from a backend.
const MAX_DISCOVERY: usize = 8 << 20;

fn api_services(core: &Core) -> Option<Arc<ResourceType>> {
    core.registry
        .find("apiregistration.k8s.io", "v1", "apiservices")
}

/// The APIService with a Service backend that claims `segments` (a request path), if any.
pub fn claiming(core: &Core, segments: &[&str]) -> Option<Value> {
    let name = aggregation::claiming_name(segments)?;
    let rt = api_services(core)?;
    let obj = core.get(&rt, "", &name).ok()?;
    aggregation::backend_of(&obj).map(|_| obj)
}

/// The answer when a backend cannot be reached, as kube-apiserver's: 503.
fn unavailable(message: impl std::fmt::Display) -> Response {
    let mut e = ApiError::internal(format!("service unavailable: {message}"));
    e.code = 503;
    e.reason = "ServiceUnavailable".into();
    e.into_response()
}

/// Where the APIService's backend is reached: (backend, host).
fn locate(core: &Core, api_service: &Value) -> Result<(Backend, String), Unreachable> {
    let backend = aggregation::backend_of(api_service).ok_or_else(|| Unreachable {
        reason: "Local",
        message: "served by this server".into(),
    })?;
    let service = core
        .registry
        .find("", "v1", "services")
        .and_then(|rt| core.get(&rt, &backend.namespace, &backend.service).ok());
    let host = aggregation::host_of(&backend, service.as_ref())?;
    Ok((backend, host))
}

/// A TLS connection to the backend: the front-proxy client certificate presented, the backend
/// verified with `caBundle` (or not at all when asked so).
async fn connect(
    front_proxy: &FrontProxy,
    backend: &Backend,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let trust = if backend.insecure {
        Trust::Anything
    } else {
        Trust::CaBundle(&backend.ca_bundle)
    };
    let identity = (
        front_proxy.client_cert_pem.as_str(),
        front_proxy.client_key_pem.as_str(),
    );
    let cfg = tls_client::client_config(trust, Some(identity)).map_err(|e| {
        if e.starts_with("caBundle") {
            format!("spec.{e} (and insecureSkipTLSVerify is not set)")
        } else {
            e
        }
    })?;
    tls_client::connect(cfg, host, backend.port, &backend.server_name())
        .await
        .map_err(|e| format!("error trying to reach service: {e}"))
}

/// The request as the backend gets it: same method, path and query; the client's headers
/// without credentials or identity claims; the authenticated user as `X-Remote-*`.
fn outgoing(req: &Request, backend: &Backend, body: Body) -> Result<http::Request<Body>, String> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut b = http::Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(
            header::HOST,
            format!("{}:{}", backend.server_name(), backend.port),
        );
    for (name, value) in req.headers() {
        if aggregation::passed_to_backend(name.as_str()) {
            b = b.header(name, value);
        }
    }
    // `handle` attached the authenticated identity; a request made inside is the admin's.
    let user = req
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::admin);
    b = b.header("X-Remote-User", &user.name);
    for g in &user.groups {
        b = b.header("X-Remote-Group", g);
    }
    b.body(body).map_err(|e| e.to_string())
}

/// Proxies `req` to the backend of `api_service`.
pub async fn proxy(
    core: &Core,
    front_proxy: &FrontProxy,
    api_service: &Value,
    mut req: Request,
) -> Response {
    let name = api_service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (backend, host) = match locate(core, api_service) {
        Ok(found) => found,
        Err(u) => return unavailable(format!("APIService {name}: {}", u.message)),
    };
    let stream = match connect(front_proxy, &backend, &host).await {
        Ok(s) => s,
        Err(e) => return unavailable(format!("APIService {name}: {e}")),
    };
    let upgrade = crate::node_proxy::is_upgrade(req.headers());
    let from_client = upgrade.then(|| hyper::upgrade::on(&mut req));
    let mut to_backend = match outgoing(&req, &backend, Body::empty()) {
        Ok(r) => r,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if !upgrade {
        // The request's body streams on.
        *to_backend.body_mut() = req.into_body();
    }
    match crate::node_proxy::exchange(stream, to_backend, from_client).await {
        Ok(r) => r,
        Err(e) => unavailable(format!(
            "APIService {name}: error trying to reach service: {e}"
        )),
    }
}

/// GETs the backend's `/apis/<group>/<version>` discovery document: its resources, or why not.
async fn discover(
    core: &Core,
    front_proxy: &FrontProxy,
    api_service: &Value,
    group: &str,
    version: &str,
) -> Result<Value, Unreachable> {
    let (backend, host) = locate(core, api_service)?;
    let failed = |why: String| Unreachable {
        reason: "FailedDiscoveryCheck",
        message: format!(
            "failing or missing response from https://{host}:{}/apis/{group}/{version}: {why}",
            backend.port
        ),
    };
    let stream = connect(front_proxy, &backend, &host)
        .await
        .map_err(failed)?;
    let probe = http::Request::builder()
        .uri(format!("/apis/{group}/{version}"))
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|e| failed(e.to_string()))?;
    let to_backend = outgoing(&probe, &backend, Body::empty()).map_err(failed)?;
    let answer = crate::node_proxy::exchange(stream, to_backend, None)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = answer.status();
    let body = http_body_util::Limited::new(answer.into_body(), MAX_DISCOVERY)
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(failed(format!("bad status from the backend: {status}")));
    }
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| failed(format!("the discovery document is not JSON: {e}")))?;
    Ok(doc.get("resources").cloned().unwrap_or_else(|| json!([])))
}

/// One probe of every APIService: their Available conditions, and the groups they add to
/// discovery.
pub async fn probe_all(core: &Core, front_proxy: &FrontProxy) {
    let Some(rt) = api_services(core) else {
        return;
    };
    let (Ok(labels), Ok(fields)) = (
        crate::selectors::parse_label_selector(""),
        crate::selectors::parse_field_selector(""),
    ) else {
        return;
    };
    let Ok(page) = core.list(&rt, None, &labels, &fields, None, None) else {
        return;
    };
    let mut groups: Vec<MountedGroup> = Vec::new();
    for stored in page.items {
        let obj = core.view_of(&rt, &stored);
        let group = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = obj
            .pointer("/spec/version")
            .and_then(Value::as_str)
            .unwrap_or("");
        let now = crate::state::now_rfc3339();
        let condition = if aggregation::backend_of(&obj).is_none() {
            aggregation::local_condition(&now)
        } else {
            let found = tokio::time::timeout(
                PROBE_TIMEOUT,
                discover(core, front_proxy, &obj, group, version),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Unreachable {
                    reason: "FailedDiscoveryCheck",
                    message: format!(
                        "failing or missing response from the backend of {group}/{version}: no answer in {}s",
                        PROBE_TIMEOUT.as_secs()
                    ),
                })
            });
            let result =
                found.map(
                    |resources| match groups.iter_mut().find(|g| g.group == group) {
                        Some(g) => {
                            g.versions.push(version.to_string());
                            g.resources.push((version.to_string(), resources));
                        }
                        None => groups.push(MountedGroup {
                            group: group.to_string(),
                            versions: vec![version.to_string()],
                            resources: vec![(version.to_string(), resources)],
                        }),
                    },
                );
            aggregation::available_condition(result, &now)
        };
        if let Some(status) = aggregation::next_status(&obj, condition) {
            let mut next = obj.clone();
            next["status"] = status;
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let opts = WriteOptions {
                field_manager: Some("localkube-aggregator".into()),
                ..Default::default()
            };
            if let Err(e) = core.update(&rt, "", name, next, &opts, true) {
                tracing::debug!("APIService {name} status: {e}");
            }
        }
    }
    core.registry.set_aggregated(groups);
}

/// Probes every `PROBE_INTERVAL` until `stop` is set.
pub fn spawn_probes(
    core: Arc<Core>,
    front_proxy: FrontProxy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // A new or changed APIService is probed at once, so that its group is served and
    // discovered without waiting for the next tick.
    let mut changes = api_services(&core).and_then(|rt| {
        core.store
            .subscribe_from(&rt.store, core.store.current_rv())
            .ok()
            .map(|s| s.live)
    });
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PROBE_INTERVAL);
        loop {
            let api_service_changed = async {
                match changes.as_mut() {
                    Some(live) => loop {
                        match live.recv().await {
                            Ok(c) if c.kind != EventType::Deleted => {
                                return;
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => probe_all(&core, &front_proxy).await,
                _ = api_service_changed => probe_all(&core, &front_proxy).await,
            }
        }
    })
}
