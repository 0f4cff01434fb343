//! Publishes on each followed launcher the guest ports that Services target
//! ([`crate::service_ports`]): a Service reflector, and a pass over the followed VMIs whenever a
//! Service, a domain or a launcher Pod changes. `publish` is idempotent on the launcher; a
//! port is sent once per QEMU (a new QEMU gets them all again).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use virt_reconciler::kube_error;
use virt_reconciler::launcher_api::{DomainState, Protocol, Request};

use crate::launcher::{self, LauncherError};
use crate::service_ports::published_ports;
use crate::{Shared, paths};

/// A look now and then even without a change: a launcher that was unreachable gets retried.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Runs until aborted.
pub async fn run(shared: Arc<Shared>) {
    let api: Api<Service> = Api::all(shared.client.clone());
    let (store, writer) = reflector::store::<Service>();
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut retry = tokio::time::interval(RETRY_EVERY);
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!("Service watch: {}", kube_error::watch_message(&e));
                    continue;
                }
                // Look once the list is complete, not per listed Service.
                Some(Ok(Event::Init | Event::InitApply(_))) => continue,
                Some(Ok(_)) => {}
            },
            _ = shared.publish_wake.notified() => {}
            _ = retry.tick() => {}
        }
        publish_missing(&shared, &store).await;
    }
}

/// A followed VMI whose domain runs, with its Pod and what it has published.
struct Candidate {
    key: (String, String),
    uid: String,
    pod: Pod,
    published: std::collections::BTreeSet<(Protocol, u16)>,
}

async fn publish_missing(shared: &Shared, store: &Store<Service>) {
    let candidates: Vec<Candidate> = {
        let vmis = shared.vmis.lock().unwrap_or_else(|e| e.into_inner());
        vmis.iter()
            .filter(|(_, t)| {
                t.domain
                    .as_ref()
                    .is_some_and(|d| matches!(d.state, DomainState::Running | DomainState::Paused))
            })
            .filter_map(|(key, t)| {
                Some(Candidate {
                    key: key.clone(),
                    uid: t.uid.clone(),
                    pod: t.pod.clone()?,
                    published: t.published.clone(),
                })
            })
            .collect()
    };
    if candidates.is_empty() {
        return;
    }
    let services: Vec<Service> = store.state().iter().map(|s| (**s).clone()).collect();
    for candidate in candidates {
        let (ns, name) = &candidate.key;
        let wanted = published_ports(&services, &candidate.pod);
        let socket = paths::launcher_socket(&shared.config.host_root, &candidate.uid);
        for (protocol, port) in wanted.difference(&candidate.published) {
            let request = Request::Publish {
                port: *port,
                protocol: *protocol,
            };
            match launcher::call_for_address(&socket, &request).await {
                Ok(address) => {
                    tracing::info!(
                        "VMI {ns}/{name}: guest port {protocol}/{port} published on {address}"
                    );
                }
                Err(LauncherError::Refused(why, _)) => {
                    // Not retried for this QEMU: the answer would be the same.
                    tracing::warn!(
                        "VMI {ns}/{name}: cannot publish guest port {protocol}/{port}: {why}"
                    );
                }
                Err(e) => {
                    tracing::debug!("VMI {ns}/{name}: publish {protocol}/{port}: {e}");
                    continue;
                }
            }
            shared.record_published(&candidate.key, &candidate.uid, (*protocol, *port));
        }
    }
}
