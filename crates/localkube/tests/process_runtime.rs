//! The node's process runtime, end to end: the real `localkube` binary with `--image` mapped to
//! small shell scripts, driven with kube-rs and kubectl. Pods run as processes with their env,
//! volumes and logs; statuses follow exits; deletion signals the processes; nothing outlives
//! localkube.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Localkube, have_kubectl, kubectl_path};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const IMAGE: &str = "localkube.test/scripts";

/// A localkube whose node runs the image `localkube.test/scripts` (any tag) from a directory
/// of scripts, with its node root in a known place.
struct Cluster {
    lk: Localkube,
    scripts: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
    pods: Api<Pod>,
}

impl Cluster {
    async fn start(scripts: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("scripts");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&bin).unwrap();
        write_script(&bin, "entry", "echo entrypoint without a command\n");
        for (name, body) in scripts {
            write_script(&bin, name, body);
        }
        let image = format!("{IMAGE}={}", bin.join("entry").display());
        let lk = Localkube::start_with(&[
            "--node-start-delay",
            "0",
            "--node-shutdown-time",
            "0",
            "--image",
            &image,
            "--node-root",
            root.to_str().unwrap(),
        ]);
        let kc = kube::config::Kubeconfig::read_from(&lk.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        Cluster {
            lk,
            scripts: bin,
            root,
            _dir: dir,
            pods: Api::namespaced(client, "default"),
        }
    }

    async fn create(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    /// Polls the pod until `f` holds (a generous deadline only avoids hanging).
    async fn wait_pod(&self, name: &str, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(p) = self.pods.get(name).await {
                if f(&p) {
                    return p;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for pod {name}: {what}; last seen: {}",
            serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap()
        );
    }

    async fn wait_gone(&self, name: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.pods.get_opt(name).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pod {name} was not removed");
    }

    /// A hostPath directory as the node lays it out.
    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn container_status(p: &Pod, name: &str) -> Value {
    let statuses = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    statuses
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| serde_json::to_value(c).unwrap())
        .unwrap_or(Value::Null)
}

fn condition(p: &Pod, ty: &str) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == ty))
        .map(|c| c.status.clone())
}

/// A pod of the scripts image whose containers run the named scripts, with a hostPath volume
/// `out` (at `/out`, host directory `/srv/<pod>`).
fn pod(name: &str, policy: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(c, script)| {
            json!({"name": c, "image": format!("{IMAGE}:v1"), "command": [format!("/scripts/{script}")],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]})
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": policy,
            "containers": containers,
            "volumes": [{"name": "out", "hostPath": {"path": format!("/srv/{name}"), "type": "DirectoryOrCreate"}}],
        },
    })
}

fn alive(pid: &str) -> bool {
    // A zombie has ended; only its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

async fn wait_file(path: &Path) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} was never written", path.display());
}

async fn wait_dead(pid: &str, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} (pid {}) is still alive", pid.trim());
}

/// Loops until killed, after writing its pid to `out/pid`.
const LOOP: &str = "echo $$ > out/pid\nwhile true; do sleep 0.1; done\n";

#[tokio::test]
async fn a_process_pod_gets_its_env_volumes_and_logs() {
    if !have_kubectl("a_process_pod_gets_its_env_volumes_and_logs") {
        return;
    }
    let a = r#"echo "name=$POD_NAME ns=$POD_NS uid=$POD_UID node=$NODE ip=$POD_IP host=$HOST_IP label=$LABEL ann=$ANN greeting=$GREETING"
echo "cargo=${CARGO_PKG_NAME:-unset} path=${PATH:+set}"
echo "pwd=$(pwd)"
echo "shared->$(readlink var/shared)"
echo from-a > var/shared/a.txt
i=0; while [ ! -f var/shared/b.txt ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "b says $(cat var/shared/b.txt)"
echo hello > out/from-host-path.txt
"#;
    let b = r#"echo from-b > shared/b.txt
i=0; while [ ! -f shared/a.txt ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "a says $(cat shared/a.txt)" >&2
"#;
    let cl = Cluster::start(&[("a", a), ("b", b)]).await;
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut p = pod("envy", "Never", &[("a", "a"), ("b", "b")]);
    p["metadata"]["labels"] = json!({"app": "web"});
    p["metadata"]["annotations"] = json!({"note/x": "hi"});
    p["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "shared", "emptyDir": {}}));
    p["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "shared", "mountPath": "/var/shared"}));
    p["spec"]["containers"][1]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "shared", "mountPath": "/shared"}));
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "GREETING", "value": "hello world"},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_NS", "valueFrom": field("metadata.namespace")},
        {"name": "POD_UID", "valueFrom": field("metadata.uid")},
        {"name": "NODE", "valueFrom": field("spec.nodeName")},
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "HOST_IP", "valueFrom": field("status.hostIP")},
        {"name": "LABEL", "valueFrom": field("metadata.labels['app']")},
        {"name": "ANN", "valueFrom": field("metadata.annotations['note/x']")},
    ]);
    let created = cl.create(p).await;
    let uid = created.metadata.uid.clone().unwrap();
    let done = cl
        .wait_pod("envy", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    for c in ["a", "b"] {
        let t = &container_status(&done, c)["state"]["terminated"];
        assert_eq!(t["exitCode"], 0, "{c}: {t}");
        assert_eq!(t["reason"], "Completed");
        assert!(t["startedAt"].is_string() && t["finishedAt"].is_string());
    }
    let pod_ip = done.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let host_ip = done.status.as_ref().unwrap().host_ip.clone().unwrap();

    let logs = cl.lk.ok(&["logs", "envy", "-c", "a"]);
    let pod_dir = cl.root.join("var/lib/kubelet/pods").join(&uid);
    let empty_dir = pod_dir.join("volumes/kubernetes.io~empty-dir/shared");
    let want = [
        format!(
            "name=envy ns=default uid={uid} node=localkube-node ip={pod_ip} host={host_ip} label=web ann=hi greeting=hello world"
        ),
        // Not the node's environment, except PATH.
        "cargo=unset path=set".to_string(),
        format!("pwd={}", pod_dir.join("rootfs/a").display()),
        format!("shared->{}", empty_dir.display()),
        "b says from-b".to_string(),
    ];
    assert_eq!(logs.lines().collect::<Vec<_>>(), want, "{logs}");
    // stderr goes to the log too.
    assert_eq!(cl.lk.ok(&["logs", "envy", "-c", "b"]), "a says from-a\n");
    assert_eq!(
        cl.lk.ok(&["logs", "envy", "-c", "a", "--tail=1"]),
        "b says from-b\n"
    );
    // kubectl picks a container itself; the API's own answer without one:
    let err = cl
        .lk
        .fails(&["get", "--raw", "/api/v1/namespaces/default/pods/envy/log"]);
    assert!(
        err.contains("a container name must be specified for pod envy, choose one of: [a b]"),
        "{err}"
    );
    let err = cl.lk.fails(&["logs", "nope"]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    assert_eq!(
        std::fs::read_to_string(cl.host("/srv/envy/from-host-path.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(empty_dir.join("a.txt")).unwrap(),
        "from-a\n"
    );
    let _ = &cl.scripts;
}

#[tokio::test]
async fn exit_codes_follow_the_restart_policy() {
    if !have_kubectl("exit_codes_follow_the_restart_policy") {
        return;
    }
    let cl = Cluster::start(&[("fail", "echo try\nexit 3\n")]).await;
    cl.create(pod("never", "Never", &[("c", "fail")])).await;
    cl.create(pod("again", "OnFailure", &[("c", "fail")])).await;
    let failed = cl
        .wait_pod("never", "Failed", |p| phase(p) == "Failed")
        .await;
    let t = &container_status(&failed, "c")["state"]["terminated"];
    assert_eq!(t["exitCode"], 3);
    assert_eq!(t["reason"], "Error");
    let again = cl
        .wait_pod("again", "restarted", |p| {
            container_status(p, "c")["restartCount"]
                .as_i64()
                .is_some_and(|n| n >= 1)
        })
        .await;
    assert_ne!(phase(&again), "Failed");
    assert_eq!(
        container_status(&again, "c")["lastState"]["terminated"]["exitCode"],
        3
    );
    // The run before the restart.
    assert_eq!(
        cl.lk.ok(&["logs", "again", "-c", "c", "--previous"]),
        "try\n"
    );
}

#[tokio::test]
async fn deletion_sends_term_then_kills_the_group() {
    if !have_kubectl("deletion_sends_term_then_kills_the_group") {
        return;
    }
    let graceful = "trap 'echo bye > out/trapped; exit 0' TERM\necho $$ > out/pid\nwhile true; do sleep 0.1; done\n";
    let stubborn = "trap '' TERM\nsleep 1000 &\necho $! > out/child\necho $$ > out/pid\nwhile true; do sleep 0.1; done\n";
    let cl = Cluster::start(&[
        ("graceful", graceful),
        ("stubborn", stubborn),
        ("loop", LOOP),
    ])
    .await;
    cl.create(pod("graceful", "Never", &[("c", "graceful")]))
        .await;
    cl.create(pod("stubborn", "Never", &[("c", "stubborn")]))
        .await;
    cl.create(pod("forced", "Never", &[("c", "loop")])).await;
    cl.create(pod("shortened", "Never", &[("c", "stubborn")]))
        .await;
    for name in ["graceful", "stubborn", "forced", "shortened"] {
        cl.wait_pod(name, "Running", |p| phase(p) == "Running")
            .await;
    }
    let graceful_pid = wait_file(&cl.host("/srv/graceful/pid")).await;
    let stubborn_pid = wait_file(&cl.host("/srv/stubborn/pid")).await;
    let child_pid = wait_file(&cl.host("/srv/stubborn/child")).await;
    let forced_pid = wait_file(&cl.host("/srv/forced/pid")).await;

    // The trap runs and the pod goes as soon as its process ends, long before 30 s.
    let grace = |s: u32| DeleteParams {
        grace_period_seconds: Some(s),
        ..Default::default()
    };
    cl.pods.delete("graceful", &grace(30)).await.unwrap();
    assert_eq!(wait_file(&cl.host("/srv/graceful/trapped")).await, "bye\n");
    cl.wait_gone("graceful").await;
    wait_dead(&graceful_pid, "the graceful script").await;

    // TERM is ignored: the process outlives it until the grace period ends, then the whole
    // group is killed, its child too.
    cl.pods.delete("stubborn", &grace(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(&stubborn_pid), "killed before its grace period ended");
    cl.wait_gone("stubborn").await;
    wait_dead(&stubborn_pid, "the stubborn script").await;
    wait_dead(&child_pid, "the stubborn script's child").await;

    // A second delete with a shorter grace period brings the kill forward (the wait is far
    // below the first grace period).
    let shortened_pid = wait_file(&cl.host("/srv/shortened/pid")).await;
    cl.pods.delete("shortened", &grace(600)).await.unwrap();
    cl.pods.delete("shortened", &grace(1)).await.unwrap();
    cl.wait_gone("shortened").await;
    wait_dead(&shortened_pid, "the shortened pod's script").await;

    cl.lk
        .ok(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    wait_dead(&forced_pid, "the force-deleted pod's script").await;
    cl.wait_gone("forced").await;
}

#[tokio::test]
async fn logs_follow_streams_until_the_container_ends() {
    if !have_kubectl("logs_follow_streams_until_the_container_ends") {
        return;
    }
    let script = "echo first\nwhile [ ! -f out/go ]; do sleep 0.1; done\necho second\necho third\n";
    let cl = Cluster::start(&[("talk", script)]).await;
    cl.create(pod("talk", "Never", &[("c", "talk")])).await;
    cl.wait_pod("talk", "Running", |p| phase(p) == "Running")
        .await;
    let mut follow = Command::new(kubectl_path())
        .args(["logs", "-f", "talk"])
        .env("KUBECONFIG", &cl.lk.kubeconfig)
        .env("HOME", cl.lk.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    std::fs::write(cl.host("/srv/talk/go"), "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest, ["second", "third"]);
    let status = follow.wait().unwrap();
    assert!(status.success(), "kubectl logs -f: {status}");
}

#[tokio::test]
async fn an_unmapped_image_stays_simulated() {
    if !have_kubectl("an_unmapped_image_stays_simulated") {
        return;
    }
    let cl = Cluster::start(&[("loop", LOOP)]).await;
    let mut mixed = pod("mixed", "Always", &[("c", "loop"), ("d", "loop")]);
    mixed["spec"]["containers"][1]["image"] = json!("nginx:1.27");
    let created = cl.create(mixed).await;
    let mut plain = pod("plain", "Always", &[("c", "loop")]);
    plain["spec"]["containers"][0]["image"] = json!("busybox");
    cl.create(plain).await;
    for name in ["mixed", "plain"] {
        let p = cl
            .wait_pod(name, "Running", |p| phase(p) == "Running")
            .await;
        assert_eq!(condition(&p, "Ready").as_deref(), Some("True"));
    }
    // No process ran: no pod directory, no pid; the log is empty.
    let uid = created.metadata.uid.unwrap();
    assert!(!cl.root.join("var/lib/kubelet/pods").join(uid).exists());
    assert!(!cl.host("/srv/mixed/pid").exists());
    assert_eq!(cl.lk.ok(&["logs", "plain"]), "");
}

#[tokio::test]
async fn no_process_outlives_a_killed_localkube() {
    let cl = Cluster::start(&[("loop", LOOP)]).await;
    cl.create(pod("orphan", "Always", &[("c", "loop")])).await;
    let pid = wait_file(&cl.host("/srv/orphan/pid")).await;
    assert!(alive(&pid));
    let Cluster { lk, _dir, .. } = cl;
    // Dropping the harness SIGKILLs localkube.
    drop(lk);
    wait_dead(&pid, "the pod's script after localkube was SIGKILLed").await;
}

#[tokio::test]
async fn a_stopped_localkube_kills_its_processes() {
    let cl = Cluster::start(&[(
        "stubborn",
        "trap '' TERM\necho $$ > out/pid\nwhile true; do sleep 0.1; done\n",
    )])
    .await;
    cl.create(pod("left", "Always", &[("c", "stubborn")])).await;
    let pid = wait_file(&cl.host("/srv/left/pid")).await;
    let Cluster { lk, _dir, .. } = cl;
    let status = lk.terminate();
    assert!(status.success(), "localkube on SIGTERM: {status}");
    wait_dead(&pid, "the pod's script after localkube stopped").await;
}

#[tokio::test]
async fn readiness_gates_hold_ready_and_survive_node_writes() {
    let gate = "example.com/gate";
    let b = "while [ ! -f out/stop-b ]; do sleep 0.1; done\n";
    let cl = Cluster::start(&[("loop", LOOP), ("b", b)]).await;
    let mut p = pod("gated", "OnFailure", &[("a", "loop"), ("b", "b")]);
    p["spec"]["readinessGates"] = json!([{"conditionType": gate}]);
    cl.create(p).await;
    let running = cl
        .wait_pod("gated", "containers ready", |p| {
            condition(p, "ContainersReady").as_deref() == Some("True")
        })
        .await;
    assert_eq!(condition(&running, "Ready").as_deref(), Some("False"));

    // Another client sets the gate's condition, as virt-handler would.
    let patch = json!({"status": {"conditions": [{"type": gate, "status": "True"}]}});
    cl.pods
        .patch_status("gated", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let ready = cl
        .wait_pod("gated", "Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    // A condition that turned True keeps no reason from when it was False (kubectl describe
    // would show `True  ReadinessGatesNotReady`).
    for ty in ["Ready", "ContainersReady"] {
        let reason = ready
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == ty))
            .and_then(|c| c.reason.clone());
        assert_eq!(reason, None, "{ty}");
    }

    // The node writes again when b ends; the gate's condition stays.
    std::fs::write(cl.host("/srv/gated/stop-b"), "").unwrap();
    let after = cl
        .wait_pod("gated", "b terminated", |p| {
            container_status(p, "b")["state"]["terminated"].is_object()
        })
        .await;
    assert_eq!(condition(&after, gate).as_deref(), Some("True"));
    assert_eq!(condition(&after, "Ready").as_deref(), Some("False"));
    assert_eq!(phase(&after), "Running");
}
