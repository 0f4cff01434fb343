//! The controller loops: VM → VMI (`vm`) and VMI → launcher Pod (`vmi`). They are thin: they
//! read caches, call the pure rules of this crate, and send the resulting writes.

pub mod expectations;
pub mod vm;
pub mod vmi;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::api::Patch;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("encoding: {0}")]
    Serde(serde_json::Error),
    #[error("{0}")]
    Sync(String),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// Prometheus metrics of the controllers.
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub errors: Family<ControllerLabel, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    /// API writes (creates, updates, patches, deletes) the controllers sent.
    pub writes: Counter,
    pub leader: Gauge,
    writes_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
            }),
            writes: Counter::default(),
            leader: Gauge::default(),
            writes_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "virt_controller_reconciles",
            "Reconciles run, by controller",
            self.reconciles.clone(),
        );
        registry.register(
            "virt_controller_reconcile_errors",
            "Reconciles that failed, by controller",
            self.errors.clone(),
        );
        registry.register(
            "virt_controller_reconcile_duration_seconds",
            "Time spent in one reconcile, by controller",
            self.duration.clone(),
        );
        registry.register(
            "virt_controller_api_writes",
            "API writes sent by the controllers",
            self.writes.clone(),
        );
        registry.register(
            "virt_controller_leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
    }

    pub fn reconciled(&self, controller: &str, took: Duration, failed: bool) {
        let l = ControllerLabel {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        if failed {
            self.errors.get_or_create(&l).inc();
        }
    }

    pub fn write(&self) {
        self.writes.inc();
        self.writes_total.fetch_add(1, Ordering::Relaxed);
    }

    /// API writes so far (for benchmarks and tests).
    pub fn writes_so_far(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }
}

/// A JSON patch that replaces the finalizers, guarded by a test of the current list.
/// The current time as Kubernetes writes it in conditions (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn finalizer_patch(current: &[String], next: &[String]) -> Result<Patch<()>, Error> {
    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": if current.is_empty() { Value::Null } else { json!(current) }},
        {"op": "replace", "path": "/metadata/finalizers", "value": next},
    ]);
    Ok(Patch::Json(
        serde_json::from_value(ops).map_err(Error::Serde)?,
    ))
}
