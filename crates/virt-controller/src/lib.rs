//! virt-controller as a library: serving its probes and metrics, running the controllers,
//! leader election and the client-side rate limit, for the `virt-controller` daemon and the
//! playground. It links no API server.

pub mod health;
pub mod leader;
pub mod ratelimit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use virt_reconciler::controller::{self, Metrics};

use health::Bounds;

/// Serves /metrics, /healthz and /readyz with the default bounds.
pub async fn serve_health(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    serve_probes(addr, metrics, ready, Bounds::default()).await
}

/// Serves /metrics, /healthz and /readyz: ready while `leading` and the watches work, live
/// until they have failed for `bounds.unhealthy_after` (see [`health::health`]).
pub async fn serve_probes(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    leading: tokio::sync::watch::Receiver<bool>,
    bounds: Bounds,
) -> anyhow::Result<SocketAddr> {
    use axum::routing::get;
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let now_health = {
        let metrics = metrics.clone();
        move || {
            let failure = metrics.watches.longest_failure();
            health::health(Instant::now(), *leading.borrow(), failure.as_ref(), bounds)
        }
    };
    let answer = |probe: Result<(), String>| match probe {
        Ok(()) => (http::StatusCode::OK, "ok".to_string()),
        Err(reason) => (http::StatusCode::SERVICE_UNAVAILABLE, reason),
    };
    let live = now_health.clone();
    let app = axum::Router::new()
        .route("/healthz", get(move || async move { answer(live().live) }))
        .route(
            "/readyz",
            get(move || async move { answer(now_health().ready) }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        out,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

/// Runs both controllers until `stop` fires.
pub async fn run_controllers(
    client: kube::Client,
    metrics: Arc<Metrics>,
    concurrency: u16,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    run_controllers_with_launcher_args(client, metrics, concurrency, Vec::new(), stop).await
}

/// [`run_controllers`], adding `launcher_args` to every launcher Pod's command.
pub async fn run_controllers_with_launcher_args(
    client: kube::Client,
    metrics: Arc<Metrics>,
    concurrency: u16,
    launcher_args: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    controller::run_with_launcher_args(client, metrics, concurrency, launcher_args, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await;
}
