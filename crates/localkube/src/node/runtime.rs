//! The process runtime: runs the containers of a pod whose images are all mapped to host
//! executables (`--image`) as processes, reports their states in the pod's status, restarts
//! them as the restart policy says, and stops them when the pod is deleted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;

use super::layout;
use super::rules::{self, ContainerRun, Launch, PodAddresses, PodView, RunState};
use super::spawn::{self, ProcessGroups, Spawn};

/// The node's process runtime: its images, root directory and running pods.
pub struct Runtime {
    pub root: PathBuf,
    images: Vec<(String, PathBuf)>,
    groups: ProcessGroups,
    client: Client,
    pods: Mutex<HashMap<String, Arc<PodRun>>>,
}

/// A pod the runtime runs.
pub struct PodRun {
    uid: String,
    namespace: String,
    name: String,
    pub dir: PathBuf,
    /// The pod as last seen (its readiness gates' conditions change under us).
    pod: Mutex<Pod>,
    launches: Vec<(Container, Launch)>,
    containers: Mutex<Vec<ContainerRun>>,
    /// The main process of each running container, by container name.
    pids: Mutex<HashMap<String, u32>>,
    addrs: PodAddresses,
    start_time: String,
    deleting: AtomicBool,
    /// Status writes one at a time, so that an older one never lands last.
    writing: tokio::sync::Mutex<()>,
}

const MANAGER: &str = "localkube-node";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

impl Runtime {
    pub fn new(client: Client, root: PathBuf, images: Vec<(String, PathBuf)>) -> Self {
        Runtime {
            root,
            images,
            groups: ProcessGroups::default(),
            client,
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// The node's API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn groups(&self) -> ProcessGroups {
        self.groups.clone()
    }

    /// What each container of `pod` runs, when every one of its images is mapped.
    pub fn plan(&self, pod: &Pod) -> Option<Vec<(Container, Launch)>> {
        if self.images.is_empty() {
            return None;
        }
        let containers = &pod.spec.as_ref()?.containers;
        if containers.is_empty() {
            return None;
        }
        containers
            .iter()
            .map(|c| {
                let ep = rules::entrypoint_for(&self.images, c.image.as_deref()?)?;
                Some((c.clone(), rules::launch_of(ep, c)))
            })
            .collect()
    }

    pub fn get(&self, uid: &str) -> Option<Arc<PodRun>> {
        self.pods.lock().get(uid).cloned()
    }

    /// The pod `namespace/name` if the runtime runs it.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodRun>> {
        self.pods
            .lock()
            .values()
            .find(|p| p.namespace == namespace && p.name == name)
            .cloned()
    }

    /// Takes `pod` on and starts its containers.
    pub fn admit(
        self: &Arc<Self>,
        pod: Pod,
        launches: Vec<(Container, Launch)>,
        addrs: PodAddresses,
    ) {
        let uid = pod.uid().unwrap_or_default();
        let containers = launches
            .iter()
            .map(|(c, _)| ContainerRun::creating(&c.name, c.image.as_deref().unwrap_or("")))
            .collect();
        let run = Arc::new(PodRun {
            uid: uid.clone(),
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            dir: layout::pod_dir(&self.root, &uid),
            pod: Mutex::new(pod),
            launches,
            containers: Mutex::new(containers),
            pids: Mutex::new(HashMap::new()),
            addrs,
            start_time: now(),
            deleting: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
        });
        self.pods.lock().insert(uid, run.clone());
        tokio::spawn(self.clone().start(run));
    }

    async fn start(self: Arc<Self>, run: Arc<PodRun>) {
        self.write_status(&run).await;
        let pod = run.pod.lock().clone();
        let volumes = match layout::prepare_volumes(&self.root, &pod) {
            Ok(v) => v,
            Err(e) => {
                let message = format!("{e:#}");
                for c in run.containers.lock().iter_mut() {
                    c.state = RunState::Waiting {
                        reason: "CreateContainerError".into(),
                        message: Some(message.clone()),
                    };
                }
                self.write_status(&run).await;
                return;
            }
        };
        let volumes = Arc::new(volumes);
        for index in 0..run.launches.len() {
            tokio::spawn(self.clone().supervise(run.clone(), index, volumes.clone()));
        }
    }

    /// Runs container `index` of `run` until it ends for good or the pod goes away.
    async fn supervise(
        self: Arc<Self>,
        run: Arc<PodRun>,
        index: usize,
        volumes: Arc<HashMap<String, PathBuf>>,
    ) {
        let (container, launch) = &run.launches[index];
        let name = container.name.clone();
        let log = layout::log_file(&run.dir, &name);
        loop {
            if run.deleting.load(Ordering::SeqCst) {
                return;
            }
            let pod = run.pod.lock().clone();
            let prepared = layout::prepare_rootfs(&run.dir, container, &volumes)
                .map_err(|e| ("CreateContainerError", format!("{e:#}")))
                .and_then(|cwd| {
                    let env = container.env.clone().unwrap_or_default();
                    rules::resolve_env(&env, &pod, &run.addrs)
                        .map(|env| (cwd, env))
                        .map_err(|e| ("CreateContainerConfigError", e))
                });
            let (cwd, env) = match prepared {
                Ok(p) => p,
                Err((reason, message)) => {
                    run.set_state(
                        index,
                        RunState::Waiting {
                            reason: reason.into(),
                            message: Some(message),
                        },
                    );
                    self.write_status(&run).await;
                    return;
                }
            };
            let started_at = now();
            let child = spawn::spawn(&Spawn {
                launch,
                env: &env,
                cwd: &cwd,
                log: &log,
            });
            let exit_code = match child {
                Ok(mut child) => {
                    let pid = child.id().unwrap_or(0);
                    self.groups.add(pid);
                    run.pids.lock().insert(name.clone(), pid);
                    run.set_state(
                        index,
                        RunState::Running {
                            started_at: started_at.clone(),
                        },
                    );
                    self.write_status(&run).await;
                    let code = match child.wait().await {
                        Ok(status) => exit_code_of(status),
                        Err(_) => 128,
                    };
                    // As a container's end ends all its processes.
                    spawn::kill_group(pid);
                    self.groups.remove(pid);
                    run.pids.lock().remove(&name);
                    code
                }
                Err(e) => {
                    let _ = std::fs::write(&log, format!("localkube: {e:#}\n"));
                    128
                }
            };
            run.set_state(
                index,
                RunState::Terminated {
                    exit_code,
                    started_at,
                    finished_at: now(),
                },
            );
            if run.deleting.load(Ordering::SeqCst) {
                return;
            }
            if !rules::restarts(&restart_policy(&pod), exit_code) {
                self.write_status(&run).await;
                return;
            }
            let restarts = {
                let mut cs = run.containers.lock();
                let c = &mut cs[index];
                c.last_terminated = Some(c.state.clone());
                c.state = RunState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!("back-off restarting failed container {name}")),
                };
                c.restart_count
            };
            self.write_status(&run).await;
            tokio::time::sleep(rules::back_off(restarts)).await;
            if run.deleting.load(Ordering::SeqCst) {
                return;
            }
            // The previous run's log stays readable with `previous=true`.
            let _ = std::fs::rename(&log, layout::previous_log_file(&run.dir, &name));
            run.containers.lock()[index].restart_count += 1;
        }
    }

    /// Writes the pod's status from its containers' states; best effort.
    async fn write_status(&self, run: &PodRun) {
        let _one_at_a_time = run.writing.lock().await;
        if run.deleting.load(Ordering::SeqCst) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &run.namespace);
        // The latest conditions, so that a gate's transition is seen and times are kept.
        if let Ok(current) = super::retry::settled(|| async { api.get(&run.name).await }).await {
            if current.uid().as_deref() != Some(run.uid.as_str()) {
                return;
            }
            *run.pod.lock() = current;
        }
        let status = run.status();
        let written = super::retry::settled(|| async {
            api.patch_status(
                &run.name,
                &PatchParams::apply(MANAGER),
                &Patch::Strategic(status.clone()),
            )
            .await
        })
        .await;
        if let Err(e) = written {
            tracing::debug!("status of {}/{} not written: {e}", run.namespace, run.name);
        }
    }

    /// Notes a newer version of a pod it runs; writes its status again when another client's
    /// change (a readiness gate's condition) changes whether it is Ready.
    pub fn updated(self: &Arc<Self>, pod: Pod) {
        let Some(run) = self.get(&pod.uid().unwrap_or_default()) else {
            return;
        };
        let is_ready = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status == "True")
        };
        let shown = is_ready(&pod);
        *run.pod.lock() = pod;
        let status = run.status();
        let wanted = status
            .pointer("/status/conditions")
            .and_then(|cs| cs.as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"] == "True");
        if shown.is_some() && shown != wanted && !run.deleting.load(Ordering::SeqCst) {
            let this = self.clone();
            tokio::spawn(async move { this.write_status(&run).await });
        }
    }

    /// Stops a deleted pod's containers: SIGTERM to each main process, SIGKILL to every process
    /// group once the grace period (which `grace_now` may shorten) is over, then removes the pod.
    pub async fn terminate(
        self: Arc<Self>,
        pod: Pod,
        mut grace_now: tokio::sync::watch::Receiver<u64>,
    ) {
        let uid = pod.uid().unwrap_or_default();
        let Some(run) = self.get(&uid) else { return };
        run.deleting.store(true, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let mut deadline = started + Duration::from_secs(*grace_now.borrow_and_update());
        for pid in run.pids.lock().values() {
            spawn::signal_process(*pid, libc::SIGTERM);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut cuts_open = true;
        loop {
            if run.pids.lock().is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tick.tick() => {}
                cut = grace_now.changed(), if cuts_open => match cut {
                    Ok(()) => {
                        let grace = *grace_now.borrow_and_update();
                        deadline = deadline.min(started + Duration::from_secs(grace));
                    }
                    Err(_) => cuts_open = false,
                },
            }
        }
        run.kill_all();
        // The supervisors reap the killed processes; wait for them (bounded, not to hang).
        let reaped = tokio::time::Instant::now() + Duration::from_secs(10);
        while !run.pids.lock().is_empty() && tokio::time::Instant::now() < reaped {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &run.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _ = super::retry::settled(|| async { api.delete(&run.name, &dp).await }).await;
        self.forget(&uid);
    }

    /// Kills what is left of a pod that is gone (force-deleted) and forgets it.
    pub fn forget(&self, uid: &str) {
        let Some(run) = self.pods.lock().remove(uid) else {
            return;
        };
        run.deleting.store(true, Ordering::SeqCst);
        run.kill_all();
        let dir = run.dir.clone();
        tokio::spawn(async move {
            let reaped = tokio::time::Instant::now() + Duration::from_secs(10);
            while !run.pids.lock().is_empty() && tokio::time::Instant::now() < reaped {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = tokio::fs::remove_dir_all(&dir).await;
        });
    }
}

impl PodRun {
    fn set_state(&self, index: usize, state: RunState) {
        self.containers.lock()[index].state = state;
    }

    fn kill_all(&self) {
        for pid in self.pids.lock().values() {
            spawn::kill_group(*pid);
        }
    }

    fn status(&self) -> serde_json::Value {
        let pod = self.pod.lock().clone();
        let containers = self.containers.lock().clone();
        rules::process_pod_status(&PodView {
            pod: &pod,
            containers: &containers,
            addrs: &self.addrs,
            start_time: &self.start_time,
            now: &now(),
            uid: &self.uid,
        })
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The pod's IP (on loopback: see [`rules::loopback_pod_ip`]).
    pub fn pod_ip(&self) -> &str {
        &self.addrs.pod_ip
    }

    /// Whether `container` exists in this pod.
    pub fn has_container(&self, container: &str) -> bool {
        self.launches.iter().any(|(c, _)| c.name == container)
    }

    /// The run number of a running container (its restart count), or None once it ended.
    pub fn running_run(&self, container: &str) -> Option<i32> {
        self.containers
            .lock()
            .iter()
            .find(|c| c.name == container)
            .filter(|c| matches!(c.state, RunState::Running { .. }))
            .map(|c| c.restart_count)
    }

    pub fn log_file(&self, container: &str) -> PathBuf {
        layout::log_file(&self.dir, container)
    }

    pub fn previous_log_file(&self, container: &str) -> PathBuf {
        layout::previous_log_file(&self.dir, container)
    }
}

/// A process's exit code as a container runtime reports it: 128 + the signal that killed it.
fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 128,
    }
}

/// The node's root directory: the given one, or `<data dir>/nodes/<node>`, or a new temporary
/// directory (returned too, so that the caller removes it at exit).
pub fn node_root(given: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    use anyhow::Context;
    match given {
        Some(p) => {
            std::fs::create_dir_all(p)
                .with_context(|| format!("cannot create the node root {}", p.display()))?;
            Ok((p.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("localkube-node-")
                .tempdir()
                .context("cannot create a temporary node root")?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}
