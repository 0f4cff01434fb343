//! The process runtime's decisions, kept pure: which host executable an image maps to, what a
//! container runs, its environment (downward-API `fieldRef`s included), when it restarts, and
//! the pod status that follows from its containers' states.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use serde_json::{Value, json};

/// What a scheduler says of a pod it cannot place because the one node is cordoned.
pub const UNSCHEDULABLE: &str = "0/1 nodes are available: 1 node(s) were unschedulable.";

/// Whether a pod may go to a cordoned node: it tolerates the `node.kubernetes.io/unschedulable`
/// NoSchedule taint (as DaemonSet pods do), or every taint.
pub fn tolerates_cordon(pod: &Pod) -> bool {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    tolerations.iter().any(|t| {
        let effect_fits = matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"));
        let exists = t.operator.as_deref() == Some("Exists");
        let key_fits = match t.key.as_deref() {
            None | Some("") => exists,
            Some(k) => k == "node.kubernetes.io/unschedulable",
        };
        effect_fits && key_fits
    })
}

/// Whether image `key` (from `--image KEY=PATH`) names `reference`. A key without a registry
/// host matches any host; a key without a tag or digest matches any tag or digest.
pub fn image_matches(key: &str, reference: &str) -> bool {
    let key = ImageRef::parse(key);
    let r = ImageRef::parse(reference);
    key.repository == r.repository
        && (key.registry.is_none() || key.registry == r.registry)
        && (key.version.is_none() || key.version == r.version)
}

/// The executable an image maps to: an exact key wins over a looser one.
pub fn entrypoint_for<'a>(images: &'a [(String, PathBuf)], reference: &str) -> Option<&'a Path> {
    images
        .iter()
        .find(|(k, _)| k == reference)
        .or_else(|| images.iter().find(|(k, _)| image_matches(k, reference)))
        .map(|(_, p)| p.as_path())
}

/// An image reference split as `[REGISTRY/]REPOSITORY[:TAG|@DIGEST]`.
#[derive(Debug, PartialEq, Eq)]
struct ImageRef<'a> {
    registry: Option<&'a str>,
    repository: &'a str,
    /// The tag or digest, with its `:` or `@`.
    version: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    fn parse(s: &'a str) -> Self {
        let (registry, rest) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, s),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let version_at = rest
            .find('@')
            .or_else(|| rest[last_slash..].rfind(':').map(|i| i + last_slash));
        let (repository, version) = match version_at {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        ImageRef {
            registry,
            repository,
            version,
        }
    }
}

/// What a container runs: a host program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// The container's program: its image's entrypoint, or, when it has a `command`, the file of
/// that name next to the entrypoint (an image is one directory of executables).
pub fn launch_of(entrypoint: &Path, container: &Container) -> Launch {
    let command = container.command.clone().unwrap_or_default();
    let mut args: Vec<String> = command.iter().skip(1).cloned().collect();
    args.extend(container.args.clone().unwrap_or_default());
    let program = match command.first() {
        Some(first) => {
            let file = Path::new(first)
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(first));
            entrypoint.parent().unwrap_or(Path::new("/")).join(file)
        }
        None => entrypoint.to_path_buf(),
    };
    Launch { program, args }
}

/// The `n`th pod IP (from 1) of a process pod on a node whose loopback network is
/// `127.{network}.0.0/16`: `127.{network}.x.y`, `y` counting 1..=254 before `x` moves on. Linux
/// routes all of 127/8 to the loopback device, so a process listening on its pod IP is
/// reachable from the host like a pod in its network namespace; a random `network` per node
/// keeps parallel nodes apart.
pub fn loopback_pod_ip(network: u8, n: u32) -> std::net::Ipv4Addr {
    let x = (n / 254) % 256;
    let y = n % 254 + 1;
    std::net::Ipv4Addr::new(127, network, x as u8, y as u8)
}

/// The addresses a downward-API `fieldRef` may ask for, which the pod object may not hold yet.
#[derive(Debug, Clone, Default)]
pub struct PodAddresses {
    pub pod_ip: String,
    pub host_ip: String,
}

/// A container's environment from its `env`: values and downward-API `fieldRef`s.
pub fn resolve_env(
    env: &[EnvVar],
    pod: &Pod,
    addrs: &PodAddresses,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for var in env {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match &from.field_ref {
                Some(f) => field_value(pod, &f.field_path, addrs)
                    .map_err(|why| format!("env {}: {why}", var.name))?,
                None => {
                    return Err(format!(
                        "env {}: only value and valueFrom.fieldRef are supported by localkube's process runtime",
                        var.name
                    ));
                }
            },
            (Some(v), None) => v.clone(),
            (None, None) => String::new(),
        };
        // A later entry of the same name wins, as in kubelet.
        out.retain(|(k, _)| *k != var.name);
        out.push((var.name.clone(), value));
    }
    Ok(out)
}

/// The value of a downward-API field path.
pub fn field_value(pod: &Pod, path: &str, addrs: &PodAddresses) -> Result<String, String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => addrs.pod_ip.clone(),
        "status.hostIP" => addrs.host_ip.clone(),
        _ => {
            if let Some(k) = keyed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = keyed("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("fieldRef {path:?} is not supported"));
            }
        }
    };
    Ok(value)
}

/// Whether a container that exited with `exit_code` is started again under `restart_policy`.
pub fn restarts(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The wait before restart number `restarts + 1`: 1 s doubling, at most 30 s.
pub fn back_off(restarts: i32) -> std::time::Duration {
    let secs = 1u64 << restarts.clamp(0, 5);
    std::time::Duration::from_secs(secs.min(30))
}

/// One container's state, as the runtime knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        started_at: String,
        finished_at: String,
    },
}

/// A container of a process pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRun {
    pub name: String,
    pub image: String,
    pub state: RunState,
    /// The previous run's end, shown as `lastState` while restarting.
    pub last_terminated: Option<RunState>,
    pub restart_count: i32,
}

impl ContainerRun {
    pub fn creating(name: &str, image: &str) -> Self {
        ContainerRun {
            name: name.into(),
            image: image.into(),
            state: RunState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    fn has_started(&self) -> bool {
        !matches!(self.state, RunState::Waiting { .. }) || self.last_terminated.is_some()
    }

    /// Ended and not to be started again.
    fn finished(&self, restart_policy: &str) -> Option<i32> {
        match self.state {
            RunState::Terminated { exit_code, .. } if !restarts(restart_policy, exit_code) => {
                Some(exit_code)
            }
            _ => None,
        }
    }
}

/// The pod phase that follows from its containers: Succeeded or Failed once every container
/// ended for good, Running once one has started, Pending before.
pub fn pod_phase(restart_policy: &str, containers: &[ContainerRun]) -> &'static str {
    let ends: Option<Vec<i32>> = containers
        .iter()
        .map(|c| c.finished(restart_policy))
        .collect();
    match ends {
        Some(codes) if !codes.is_empty() => {
            if codes.iter().all(|c| *c == 0) {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ if containers.iter().any(ContainerRun::has_started) => "Running",
        _ => "Pending",
    }
}

/// The readiness gates of `pod` whose condition is not `True` in its status.
pub fn unmet_readiness_gates(pod: &Pod) -> Vec<String> {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.condition_type)
        .filter(|t| {
            !conditions
                .iter()
                .any(|c| c.type_ == *t && c.status == "True")
        })
        .collect()
}

fn state_json(state: &RunState) -> Value {
    match state {
        RunState::Waiting { reason, message } => match message {
            Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
            None => json!({"waiting": {"reason": reason}}),
        },
        RunState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        RunState::Terminated {
            exit_code,
            started_at,
            finished_at,
        } => json!({"terminated": {
            "exitCode": exit_code,
            "reason": if *exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": started_at, "finishedAt": finished_at,
        }}),
    }
}

/// What the status of a process pod is made of.
pub struct PodView<'a> {
    /// The pod as last read: its restart policy, readiness gates and current conditions.
    pub pod: &'a Pod,
    pub containers: &'a [ContainerRun],
    pub addrs: &'a PodAddresses,
    pub start_time: &'a str,
    pub now: &'a str,
    /// The pod's container IDs are `localkube://<uid>-<container>`.
    pub uid: &'a str,
}

/// The status the node writes for a process pod, as a strategic merge patch: conditions merge
/// by type, so conditions other clients own (readiness gates) are kept.
pub fn process_pod_status(v: &PodView) -> Value {
    let policy = v
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let phase = pod_phase(&policy, v.containers);
    let unready: Vec<&str> = v
        .containers
        .iter()
        .filter(|c| !c.running())
        .map(|c| c.name.as_str())
        .collect();
    let gates = unmet_readiness_gates(v.pod);
    let containers_ready = unready.is_empty();
    let ready = containers_ready && gates.is_empty();
    let statuses: Vec<Value> = v
        .containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c.name, "image": c.image, "imageID": format!("localkube://{}", c.image),
                "containerID": format!("localkube://{}-{}", v.uid, c.name),
                "ready": c.running(), "started": c.running(), "restartCount": c.restart_count,
                "state": state_json(&c.state),
            });
            if let Some(last) = &c.last_terminated {
                s["lastState"] = state_json(last);
            }
            s
        })
        .collect();
    let existing = v
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |ty: &str, ok: bool, reason: Option<String>| {
        let status = if ok { "True" } else { "False" };
        // The transition time moves only when the status does.
        let since = existing
            .iter()
            .find(|c| c.type_ == ty && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| json!(v.now));
        let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        // A condition that became True loses the reason it had while False: in this strategic
        // merge, null removes the field.
        c["reason"] = reason.map_or(Value::Null, |r| json!(r));
        c
    };
    let not_ready = if !containers_ready {
        Some("ContainersNotReady".to_string())
    } else if !gates.is_empty() {
        Some("ReadinessGatesNotReady".to_string())
    } else {
        None
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", true, None),
            cond("Initialized", true, None),
            cond("Ready", ready, not_ready),
            cond("ContainersReady", containers_ready, (!containers_ready).then(|| "ContainersNotReady".to_string())),
            cond("PodScheduled", true, None),
        ],
        "hostIP": v.addrs.host_ip, "hostIPs": [{"ip": v.addrs.host_ip}],
        "startTime": v.start_time,
        "containerStatuses": statuses,
    });
    if !v.addrs.pod_ip.is_empty() {
        status["podIP"] = json!(v.addrs.pod_ip);
        status["podIPs"] = json!([{"ip": v.addrs.pod_ip}]);
    }
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_pod_ips_count_up_inside_the_nodes_network() {
        let cases = [
            (7, 1, "127.7.0.2"),
            (7, 2, "127.7.0.3"),
            (7, 253, "127.7.0.254"),
            (7, 254, "127.7.1.1"),
            (200, 254 * 256 + 1, "127.200.0.2"),
        ];
        for (network, n, want) in cases {
            assert_eq!(loopback_pod_ip(network, n).to_string(), want, "{n}");
        }
    }

    #[test]
    fn image_keys_match_refs() {
        let cases = [
            ("kubevirt/x", "quay.io/kubevirt/x:v1", true),
            ("kubevirt/x", "kubevirt/x", true),
            ("kubevirt/x", "kubevirt/x@sha256:ab", true),
            ("kubevirt/x", "kubevirt/y:v1", false),
            ("kubevirt/x", "other/kubevirt/x", false),
            ("kubevirt/x:v1", "quay.io/kubevirt/x:v1", true),
            ("kubevirt/x:v1", "kubevirt/x:v2", false),
            ("quay.io/kubevirt/x:v1", "quay.io/kubevirt/x:v1", true),
            ("quay.io/kubevirt/x:v1", "docker.io/kubevirt/x:v1", false),
            ("quay.io/kubevirt/x", "kubevirt/x", false),
            ("localhost:5000/a", "localhost:5000/a:latest", true),
            ("busybox", "busybox:1.36", true),
            ("busybox", "library/busybox", false),
        ];
        for (key, reference, want) in cases {
            assert_eq!(image_matches(key, reference), want, "{key} vs {reference}");
        }
    }

    #[test]
    fn exact_key_wins() {
        let images = vec![
            ("x".to_string(), PathBuf::from("/loose/x")),
            ("x:v2".to_string(), PathBuf::from("/exact/x")),
        ];
        assert_eq!(entrypoint_for(&images, "x:v2"), Some(Path::new("/exact/x")));
        assert_eq!(entrypoint_for(&images, "x:v1"), Some(Path::new("/loose/x")));
        assert_eq!(entrypoint_for(&images, "y"), None);
    }

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn command_replaces_the_entrypoint_in_its_directory() {
        let ep = Path::new("/bin/target/virt-launcher");
        let cases = [
            (
                json!({"name": "c", "args": ["a"]}),
                "/bin/target/virt-launcher",
                vec!["a"],
            ),
            (
                json!({"name": "c", "command": ["/usr/bin/virt-tail", "--x"], "args": ["y"]}),
                "/bin/target/virt-tail",
                vec!["--x", "y"],
            ),
            (
                json!({"name": "c", "command": ["sh"]}),
                "/bin/target/sh",
                vec![],
            ),
        ];
        for (c, program, args) in cases {
            let l = launch_of(ep, &container(c));
            assert_eq!(l.program, PathBuf::from(program));
            assert_eq!(l.args, args);
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        }))
        .unwrap()
    }

    #[test]
    fn env_resolves_values_and_field_refs() {
        let env: Vec<EnvVar> = serde_json::from_value(json!([
            {"name": "A", "value": "1"},
            {"name": "E"},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "U", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HIP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "AN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['a/b']"}}},
            {"name": "A", "value": "2"},
        ]))
        .unwrap();
        let addrs = PodAddresses {
            pod_ip: "10.244.0.2".into(),
            host_ip: "10.89.0.10".into(),
        };
        let got = resolve_env(&env, &pod(), &addrs).unwrap();
        let want = [
            ("E", ""),
            ("N", "p"),
            ("NS", "ns"),
            ("U", "u1"),
            ("NODE", "n1"),
            ("IP", "10.244.0.2"),
            ("HIP", "10.89.0.10"),
            ("L", "web"),
            ("AN", "c"),
            ("A", "2"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unsupported_env_sources_are_refused_by_name() {
        let cases = [
            json!([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
            json!([{"name": "S", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]),
        ];
        for env in cases {
            let env: Vec<EnvVar> = serde_json::from_value(env).unwrap();
            let err = resolve_env(&env, &pod(), &PodAddresses::default()).unwrap_err();
            assert!(err.starts_with("env S: "), "{err}");
        }
    }

    fn run(state: RunState) -> ContainerRun {
        ContainerRun {
            name: "c".into(),
            image: "i".into(),
            state,
            last_terminated: None,
            restart_count: 0,
        }
    }

    fn exited(code: i32) -> ContainerRun {
        run(RunState::Terminated {
            exit_code: code,
            started_at: "t0".into(),
            finished_at: "t1".into(),
        })
    }

    fn running() -> ContainerRun {
        run(RunState::Running {
            started_at: "t0".into(),
        })
    }

    #[test]
    fn phase_follows_exits_and_restart_policy() {
        let creating = ContainerRun::creating("c", "i");
        let cases: Vec<(&str, Vec<ContainerRun>, &str)> = vec![
            ("Never", vec![creating.clone()], "Pending"),
            ("Never", vec![running()], "Running"),
            ("Never", vec![exited(0), exited(0)], "Succeeded"),
            ("Never", vec![exited(0), exited(3)], "Failed"),
            ("Never", vec![exited(3), running()], "Running"),
            ("OnFailure", vec![exited(0)], "Succeeded"),
            ("OnFailure", vec![exited(3)], "Running"),
            ("Always", vec![exited(0)], "Running"),
            ("Always", vec![exited(1)], "Running"),
        ];
        for (policy, containers, want) in cases {
            assert_eq!(
                pod_phase(policy, &containers),
                want,
                "{policy} {containers:?}"
            );
        }
    }

    #[test]
    fn restart_and_back_off() {
        assert!(!restarts("Never", 1));
        assert!(!restarts("OnFailure", 0));
        assert!(restarts("OnFailure", 2));
        assert!(restarts("Always", 0));
        assert_eq!(back_off(0).as_secs(), 1);
        assert_eq!(back_off(3).as_secs(), 8);
        assert_eq!(back_off(40).as_secs(), 30);
    }

    fn condition(status: &Value, ty: &str) -> String {
        status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == ty)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    }

    #[test]
    fn ready_needs_running_containers_and_true_gates() {
        let gated = |gate_status: Option<&str>| -> Pod {
            let mut p = json!({
                "metadata": {"name": "p", "uid": "u"},
                "spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "x/ok"}]},
            });
            if let Some(s) = gate_status {
                p["status"] = json!({"conditions": [{"type": "x/ok", "status": s}]});
            }
            serde_json::from_value(p).unwrap()
        };
        let addrs = PodAddresses::default();
        let cases = [
            (gated(None), running(), "False", "True"),
            (gated(Some("False")), running(), "False", "True"),
            (gated(Some("True")), running(), "True", "True"),
            (gated(Some("True")), exited(0), "False", "False"),
            (pod(), running(), "True", "True"),
        ];
        for (p, c, ready, containers_ready) in cases {
            let containers = [c];
            let s = process_pod_status(&PodView {
                pod: &p,
                containers: &containers,
                addrs: &addrs,
                start_time: "t",
                now: "t",
                uid: "u",
            });
            assert_eq!(condition(&s, "Ready"), ready);
            assert_eq!(condition(&s, "ContainersReady"), containers_ready);
            // The gate's own condition is another client's: never in the node's patch.
            assert!(
                s["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["type"] != "x/ok")
            );
        }
    }

    #[test]
    fn terminated_status_has_code_reason_and_times() {
        let containers = [exited(3)];
        let s = process_pod_status(&PodView {
            pod: &serde_json::from_value(
                json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}),
            )
            .unwrap(),
            containers: &containers,
            addrs: &PodAddresses {
                pod_ip: "10.244.0.9".into(),
                host_ip: "h".into(),
            },
            start_time: "t",
            now: "t",
            uid: "u",
        });
        assert_eq!(s["status"]["phase"], "Failed");
        assert_eq!(s["status"]["podIP"], "10.244.0.9");
        let t = &s["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 3);
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["startedAt"], "t0");
        assert_eq!(t["finishedAt"], "t1");
    }

    #[test]
    fn only_pods_that_tolerate_the_cordon_may_go_to_a_cordoned_node() {
        let with = |tolerations: Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c"}], "tolerations": tolerations}}))
            .unwrap()
        };
        let cases = [
            (json!([]), false),
            (
                json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]),
                true,
            ),
            (
                json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
                true,
            ),
            (
                json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoExecute"}]),
                false,
            ),
            (json!([{"operator": "Exists"}]), true),
            (json!([{"key": "", "operator": "Equal"}]), false),
            (
                json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
                false,
            ),
        ];
        for (tolerations, fits) in cases {
            assert_eq!(
                tolerates_cordon(&with(tolerations.clone())),
                fits,
                "{tolerations}"
            );
        }
    }
}
