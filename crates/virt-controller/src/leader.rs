//! Leader election on a coordination.k8s.io Lease.
//!
//! The algorithm is client-go's: a replica holds the lease while it renews `renewTime` before
//! `leaseDurationSeconds` pass; another replica takes it over only once it has expired. Every
//! write is conditional on the resourceVersion it read, so two replicas can never both win.
//! Written here (about a hundred lines) rather than taken from a crate, because the crates
//! available track other kube-rs releases than the one this workspace uses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;
use virt_reconciler::kube_error;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews, and others retry.
    pub retry: Duration,
}

fn micro(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One attempt to take or keep the lease. Returns whether this replica holds it now.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Utc::now();
    let spec = |transitions: i32, acquired: String| {
        json!({
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": cfg.duration.as_secs(),
            "acquireTime": acquired,
            "renewTime": micro(now),
            "leaseTransitions": transitions,
        })
    };
    let Some(current) = api.get_opt(&cfg.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": spec(0, micro(now)),
        }))
        .expect("a valid lease");
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let s = current.spec.clone().unwrap_or_default();
    let holder = s.holder_identity.clone().unwrap_or_default();
    let renewed = s.renew_time.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
    let ttl = i64::from(s.lease_duration_seconds.unwrap_or(0));
    let expired = renewed + ttl < now.timestamp();
    if holder != cfg.identity && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let transitions = s.lease_transitions.unwrap_or(0) + i32::from(holder != cfg.identity);
    let acquired = if holder == cfg.identity {
        s.acquire_time
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| micro(now))
    } else {
        micro(now)
    };
    let mut next = current.clone();
    next.spec =
        Some(serde_json::from_value(spec(transitions, acquired)).expect("a valid lease spec"));
    match api.replace(&cfg.name, &PostParams::default(), &next).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if this replica holds it: the holder is cleared, so a standby takes it at
/// its next retry instead of waiting for it to expire (client-go's `ReleaseOnCancel`).
/// Returns whether it was released.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    // A renewal that raced with this read makes the replace fail with 409: read again.
    for _ in 0..3 {
        let Some(current) = api.get_opt(&cfg.name).await? else {
            return Ok(false);
        };
        let mut next = current.clone();
        let Some(spec) = next.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match api.replace(&cfg.name, &PostParams::default(), &next).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Whether `e` is the API server's answer to a write into a namespace that does not exist.
fn is_missing_namespace(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status)
        if status.code == 404 && status.details.as_ref().is_some_and(|d| d.kind == "namespaces"))
}

/// What to tell the user when the Lease's namespace is missing: what, and the ways out.
fn missing_namespace_message(cfg: &LeaseConfig) -> String {
    format!(
        "virt-controller: namespace \"{ns}\" for the leader Lease does not exist; create it \
         (kubectl create namespace {ns}) or pass --lease-namespace with an existing namespace, or \
         run a single replica with --leader-elect=false; standing by and retrying every {every}",
        ns = cfg.namespace,
        every = humantime::format_duration(cfg.retry),
    )
}

/// Builds a new client from the kubeconfig (or in-cluster config), read again.
pub type Reconnect =
    Box<dyn Fn() -> futures::future::BoxFuture<'static, anyhow::Result<Client>> + Send + Sync>;

/// A running election: leadership changes on `leading`.
pub struct Elector {
    pub leading: watch::Receiver<bool>,
    /// The Lease API of the newest client: a reconnect replaces it.
    api: Arc<Mutex<Api<Lease>>>,
    cfg: LeaseConfig,
    task: tokio::task::JoinHandle<()>,
}

impl Elector {
    /// Stops renewing, then releases the lease if this replica holds it.
    pub async fn release(self) {
        self.task.abort();
        let _ = self.task.await;
        let api = self.api.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match release(&api, &self.cfg).await {
            Ok(true) => tracing::info!("released lease {}", self.cfg.name),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "lease {} not released: {}",
                self.cfg.name,
                kube_error::message(&e)
            ),
        }
    }
}

/// Keeps trying for the lease and renewing it; publishes leadership on `Elector::leading`.
/// When the API server rejects the credentials or its certificate, the next attempt uses a
/// client from `reconnect`, so a rotated kubeconfig or token keeps this replica leading.
pub fn run(client: Client, cfg: LeaseConfig, reconnect: Reconnect) -> Elector {
    let (tx, rx) = watch::channel(false);
    let shared = Arc::new(Mutex::new(Api::namespaced(client, &cfg.namespace)));
    let task = {
        let shared = shared.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let mut api: Api<Lease> = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // A leader that cannot renew steps down at the renew deadline, two thirds of the
            // lease (client-go's 10 s of 15 s), so it has stopped before a standby may take over.
            // Renewals are timed from when they were sent, as the standby sees `renewTime`.
            let renew_deadline = cfg.duration * 2 / 3;
            let mut last_renewal = tokio::time::Instant::now();
            // The problem last reported: the same one again is retried quietly.
            let mut reported: Option<String> = None;
            loop {
                let attempt = tokio::time::Instant::now();
                let outcome = tokio::time::timeout(cfg.retry, try_acquire(&api, &cfg)).await;
                let held = match outcome {
                    Ok(Ok(held)) => {
                        if held {
                            last_renewal = attempt;
                        }
                        reported = None;
                        held
                    }
                    Ok(Err(e)) => {
                        let problem = if is_missing_namespace(&e) {
                            missing_namespace_message(&cfg)
                        } else {
                            format!(
                                "lease {}/{}: {}",
                                cfg.namespace,
                                cfg.name,
                                kube_error::message(&e)
                            )
                        };
                        if reported.as_ref() != Some(&problem) {
                            if is_missing_namespace(&e) {
                                eprintln!("{problem}");
                            } else {
                                tracing::warn!("{problem}");
                            }
                            reported = Some(problem);
                        } else {
                            tracing::debug!("{problem}");
                        }
                        if crate::health::is_credential_failure(&e) {
                            match reconnect().await {
                                Ok(client) => {
                                    tracing::info!(
                                        "lease {}: read the kubeconfig again after: {}",
                                        cfg.name,
                                        kube_error::message(&e)
                                    );
                                    api = Api::namespaced(client, &cfg.namespace);
                                    *shared.lock().unwrap_or_else(|e| e.into_inner()) = api.clone();
                                }
                                Err(e) => tracing::warn!("lease {}: {e:#}", cfg.name),
                            }
                        }
                        *tx.borrow() && last_renewal.elapsed() < renew_deadline
                    }
                    Err(_) => {
                        tracing::warn!(
                            "lease {}: no answer within {}",
                            cfg.name,
                            humantime::format_duration(cfg.retry)
                        );
                        *tx.borrow() && last_renewal.elapsed() < renew_deadline
                    }
                };
                if *tx.borrow() != held {
                    tracing::info!("leadership of lease {}: {held}", cfg.name);
                    let _ = tx.send(held);
                }
                tokio::time::sleep(cfg.retry).await;
            }
        })
    };
    Elector {
        leading: rx,
        api: shared,
        cfg,
        task,
    }
}
