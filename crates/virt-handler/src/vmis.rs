//! The VMIs of this node: a watch of every VMI, one worker per VMI scheduled here that syncs
//! its launcher and writes each reported domain state onto the VMI and its Pod, and the one
//! `shutdown` a deleted VMI's launcher gets.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;
use virt_reconciler::launcher_api::{DomainStatus, Request};
use virt_reconciler::vmi::{DEFAULT_GRACE_PERIOD_SECONDS, launcher_pod_selector_of_uid, phase};
use virt_reconciler::{VirtualMachineInstance, controller, domain_status, kube_error};

use crate::access_credentials;
use crate::launcher::{self, Connection, LauncherError};
use crate::{Shared, Tracked, paths};

/// What the handler does about a VMI it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not this node's, or not started here yet, or finished: no worker.
    Ignore,
    /// Scheduled or Running here: a worker follows its launcher.
    Follow,
    /// As [`Role::Follow`], and deleted: its launcher gets one `shutdown`.
    FollowAndShutDown,
}

/// The handler's role for `vmi` on `node` (pure).
pub fn role(vmi: &VirtualMachineInstance, node: &str) -> Role {
    let on_node = vmi
        .status
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n == node);
    if !on_node || !matches!(vmi.phase(), phase::SCHEDULED | phase::RUNNING) {
        return Role::Ignore;
    }
    if vmi.metadata.deletion_timestamp.is_some() {
        Role::FollowAndShutDown
    } else {
        Role::Follow
    }
}

/// The grace period the launcher gets for a deleted VMI: its own (default 30 s).
pub fn shutdown_grace_seconds(vmi: &VirtualMachineInstance) -> u64 {
    let grace = vmi
        .spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS);
    u64::try_from(grace).unwrap_or(0)
}

/// Retry delays: from 100 ms, doubling, at most 5 s.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }
    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }
}

fn key(vmi: &VirtualMachineInstance) -> (String, String) {
    (
        vmi.metadata.namespace.clone().unwrap_or_default(),
        vmi.metadata.name.clone().unwrap_or_default(),
    )
}

fn uid(vmi: &VirtualMachineInstance) -> String {
    vmi.metadata.uid.clone().unwrap_or_default()
}

/// The workers, by VMI UID, and the UIDs whose launcher was asked to shut down.
#[derive(Default)]
struct Workers {
    running: HashMap<String, JoinHandle<()>>,
    shut_down: HashSet<String>,
}

impl Workers {
    fn stop(&mut self, shared: &Shared, vmi_uid: &str) {
        if let Some(worker) = self.running.remove(vmi_uid) {
            worker.abort();
        }
        let mut vmis = shared.vmis.lock().unwrap_or_else(|e| e.into_inner());
        vmis.retain(|_, t| t.uid != vmi_uid);
    }

    fn see(&mut self, shared: &Arc<Shared>, vmi: VirtualMachineInstance) {
        let vmi_uid = uid(&vmi);
        let role = role(&vmi, &shared.config.node_name);
        if role == Role::Ignore {
            self.stop(shared, &vmi_uid);
            return;
        }
        if role == Role::FollowAndShutDown && self.shut_down.insert(vmi_uid.clone()) {
            tokio::spawn(shut_down(shared.clone(), vmi.clone()));
        }
        if self.running.get(&vmi_uid).is_some_and(|w| !w.is_finished()) {
            return;
        }
        {
            let mut vmis = shared.vmis.lock().unwrap_or_else(|e| e.into_inner());
            vmis.insert(key(&vmi), Tracked::new(vmi_uid.clone()));
        }
        let worker = tokio::spawn(follow_launcher(shared.clone(), vmi));
        self.running.insert(vmi_uid, worker);
    }
}

/// Watches every VMI and keeps one worker per VMI this node runs. Never returns.
pub async fn follow(shared: Arc<Shared>) {
    let api: Api<VirtualMachineInstance> = Api::all(shared.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut workers = Workers::default();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(vmi)) => workers.see(&shared, vmi),
            Ok(Event::Delete(vmi)) => {
                let vmi_uid = uid(&vmi);
                workers.stop(&shared, &vmi_uid);
                workers.shut_down.remove(&vmi_uid);
            }
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(vmi)) => {
                listed.insert(uid(&vmi));
                workers.see(&shared, vmi);
            }
            Ok(Event::InitDone) => {
                // Gone while the watch was down: a relist does not say so otherwise.
                let gone: Vec<String> = workers
                    .running
                    .keys()
                    .filter(|u| !listed.contains(*u))
                    .cloned()
                    .collect();
                for vmi_uid in gone {
                    workers.stop(&shared, &vmi_uid);
                }
            }
            Err(e) => tracing::warn!("VMI watch: {}", kube_error::watch_message(&e)),
        }
    }
}

/// Follows one VMI's launcher for as long as the worker lives: waits for its socket, sends
/// `sync` once, then writes every state of its `watch` stream; reconnects with backoff.
async fn follow_launcher(shared: Arc<Shared>, vmi: VirtualMachineInstance) {
    let (ns, name) = key(&vmi);
    let vmi_uid = uid(&vmi);
    let socket = paths::launcher_socket(&shared.config.host_root, &vmi_uid);
    let mut backoff = Backoff::new();
    let mut synced = false;
    let vmi_json = serde_json::to_value(&vmi).unwrap_or_default();
    let sources = access_credentials::ssh_key_sources(&vmi_json);
    for why in &sources.ignored {
        tracing::warn!("VMI {ns}/{name}: accessCredentials: {why}");
    }
    loop {
        if !socket.exists() {
            // The launcher is starting.
            backoff.wait().await;
            continue;
        }
        if !synced {
            // As a Pod waits for its Secret volumes, the domain waits for the key Secrets.
            let ssh_authorized_keys =
                match access_credentials::read_keys(&shared.client, &ns, &sources).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::warn!("VMI {ns}/{name}: accessCredentials: {e}");
                        backoff.wait().await;
                        continue;
                    }
                };
            let sync = Request::Sync {
                vmi: vmi_json.clone(),
                ssh_authorized_keys,
            };
            match launcher::call(&socket, &sync).await {
                Ok(_) => synced = true,
                Err(LauncherError::Refused(why, Some(domain))) => {
                    // The launcher waits (e.g. for its image): show why on the VMI, try again.
                    tracing::warn!("VMI {ns}/{name}: sync: {why}");
                    if let Err(e) = apply(&shared, &ns, &name, &vmi_uid, &domain).await {
                        tracing::warn!("VMI {ns}/{name}: {e:#}");
                    }
                    backoff.wait().await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("VMI {ns}/{name}: sync: {e}");
                    backoff.wait().await;
                    continue;
                }
            }
        }
        match watch(&shared, &socket, &ns, &name, &vmi_uid, &mut backoff).await {
            Ok(()) => tracing::debug!("VMI {ns}/{name}: the launcher closed the watch"),
            Err(e) => tracing::debug!("VMI {ns}/{name}: watch: {e}"),
        }
        backoff.wait().await;
    }
}

/// One `watch` connection: every state it reports is recorded and written.
async fn watch(
    shared: &Shared,
    socket: &Path,
    ns: &str,
    name: &str,
    vmi_uid: &str,
    backoff: &mut Backoff,
) -> Result<(), LauncherError> {
    let mut conn = Connection::open(socket).await?;
    conn.send(&Request::Watch).await?;
    while let Some(domain) = conn.next().await? {
        backoff.reset();
        shared.record_domain(ns, name, vmi_uid, &domain);
        if let Err(e) = apply(shared, ns, name, vmi_uid, &domain).await {
            tracing::warn!("VMI {ns}/{name}: cannot write the domain's state: {e:#}");
        }
    }
    Ok(())
}

/// The VMI's launcher Pod (the newest, should there be several).
pub async fn launcher_pod(shared: &Shared, ns: &str, vmi_uid: &str) -> anyhow::Result<Option<Pod>> {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    let lp = ListParams::default().labels(&launcher_pod_selector_of_uid(vmi_uid));
    let pod = pods
        .list(&lp)
        .await
        .map_err(|e| anyhow::anyhow!("listing its launcher Pod: {}", kube_error::message(&e)))?
        .items
        .into_iter()
        .max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
    Ok(pod)
}

/// How many times a status write is retried after another writer changed the VMI.
const CONFLICT_RETRIES: usize = 5;

/// Writes the domain's state onto the VMI (status) and its launcher Pod (readiness gate), each
/// only if it changes them.
pub async fn apply(
    shared: &Shared,
    ns: &str,
    name: &str,
    vmi_uid: &str,
    domain: &DomainStatus,
) -> anyhow::Result<()> {
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(shared.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    let pod = launcher_pod(shared, ns, vmi_uid).await?;
    if let Some(pod) = &pod {
        shared.record_pod(ns, name, vmi_uid, pod);
    }
    let pod_ip = pod.as_ref().and_then(|p| p.status.as_ref()?.pod_ip.clone());
    for attempt in 1..=CONFLICT_RETRIES {
        let Some(vmi) = vmis.get_opt(name).await? else {
            return Ok(());
        };
        if vmi.metadata.uid.as_deref() != Some(vmi_uid) {
            return Ok(());
        }
        let now = controller::now();
        let Some(ops) = domain_status::vmi_status_patch(&vmi, domain, pod_ip.as_deref(), &now)
        else {
            break;
        };
        let ops: json_patch::Patch = serde_json::from_value(ops)?;
        match vmis
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e))
                if (e.code == 409 || e.code == 422) && attempt < CONFLICT_RETRIES => {}
            Err(e) => anyhow::bail!("patching the VMI: {}", kube_error::message(&e)),
        }
    }
    if let Some(pod) = pod
        && let Some(patch) = domain_status::pod_gate_patch(&pod, domain, &controller::now())
    {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        pods.patch_status(
            &pod_name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "patching Pod {pod_name}'s readiness gate: {}",
                kube_error::message(&e)
            )
        })?;
    }
    Ok(())
}

/// Asks a deleted VMI's launcher, once, for an ACPI shutdown with the VMI's grace period.
/// A launcher still starting gets a few more tries; one already gone needs none.
async fn shut_down(shared: Arc<Shared>, vmi: VirtualMachineInstance) {
    let (ns, name) = key(&vmi);
    let socket = paths::launcher_socket(&shared.config.host_root, &uid(&vmi));
    let request = Request::Shutdown {
        grace_seconds: shutdown_grace_seconds(&vmi),
    };
    let mut backoff = Backoff::new();
    for _ in 0..5 {
        match launcher::call(&socket, &request).await {
            Ok(_) => {
                tracing::info!("VMI {ns}/{name}: asked the launcher to shut down");
                return;
            }
            Err(e @ LauncherError::Refused(..)) => {
                tracing::warn!("VMI {ns}/{name}: shutdown refused: {e}");
                return;
            }
            Err(e) => {
                tracing::debug!("VMI {ns}/{name}: shutdown: {e}");
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virt_reconciler::types::VirtualMachineInstanceStatus;

    fn vmi(
        node: Option<&str>,
        phase: &str,
        deleted: bool,
        grace: Option<i64>,
    ) -> VirtualMachineInstance {
        let mut v = VirtualMachineInstance::new("vm1", Default::default());
        v.status = Some(VirtualMachineInstanceStatus {
            phase: Some(phase.into()),
            node_name: node.map(str::to_string),
            ..Default::default()
        });
        if deleted {
            v.metadata.deletion_timestamp =
                Some(serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).unwrap());
        }
        v.spec.termination_grace_period_seconds = grace;
        v
    }

    #[test]
    fn only_scheduled_and_running_vmis_of_this_node_are_followed() {
        let cases = [
            (Some("n1"), "Scheduled", false, Role::Follow),
            (Some("n1"), "Running", false, Role::Follow),
            (Some("n1"), "Running", true, Role::FollowAndShutDown),
            (Some("n1"), "Scheduled", true, Role::FollowAndShutDown),
            (Some("n2"), "Running", false, Role::Ignore),
            (None, "Running", false, Role::Ignore),
            (Some("n1"), "Scheduling", false, Role::Ignore),
            (Some("n1"), "Succeeded", true, Role::Ignore),
            (Some("n1"), "Failed", false, Role::Ignore),
        ];
        for (node, phase, deleted, want) in cases {
            assert_eq!(
                role(&vmi(node, phase, deleted, None), "n1"),
                want,
                "{node:?} {phase} deleted={deleted}"
            );
        }
    }

    #[test]
    fn shutdown_gets_the_vmis_grace() {
        for (grace, want) in [(None, 30), (Some(0), 0), (Some(120), 120), (Some(-5), 0)] {
            assert_eq!(
                shutdown_grace_seconds(&vmi(Some("n1"), "Running", true, grace)),
                want
            );
        }
    }
}
