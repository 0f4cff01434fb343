//! Harness for the tests that run `virt-controller run` as real processes against an in-process
//! localkube: the cluster, the controller processes, and plain-HTTP probes of their
//! /healthz, /readyz and /metrics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use virt_reconciler::VirtualMachine;

/// The namespace of the leader Lease, as deploy/ has it.
pub const LEASE_NAMESPACE: &str = "kubevirt";

pub struct Cluster {
    pub server: localkube::Server,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    node: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// An API server with the KubeVirt CRDs and the `kubevirt` namespace; with `node`, also the
    /// simulated node, which starts and stops pods at once.
    pub async fn start(node: bool) -> Cluster {
        let cluster = Self::without_lease_namespace(node).await;
        cluster.create_lease_namespace().await;
        cluster
    }

    /// [`Cluster::start`], without the `kubevirt` namespace.
    pub async fn without_lease_namespace(node: bool) -> Cluster {
        let server = localkube::LocalKube::builder().start().await.unwrap();
        let client = server.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for (_, crd) in virt_reconciler::crds::all() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
        let node = node.then(|| {
            let node_client = client.clone();
            tokio::spawn(async move {
                let cfg = localkube::node::NodeConfig {
                    start_delay: Duration::ZERO,
                    shutdown_time: Duration::ZERO,
                    ..Default::default()
                };
                if let Err(e) = localkube::node::run(node_client, cfg).await {
                    eprintln!("simulated node stopped: {e:#}");
                }
            })
        });
        Cluster {
            server,
            client,
            kubeconfig,
            dir,
            node,
        }
    }

    /// Creates the namespace of the leader Lease.
    pub async fn create_lease_namespace(&self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": LEASE_NAMESPACE}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }

    /// Starts `virt-controller run` with leader election as `identity`.
    pub fn controller(&self, identity: &str) -> Controller {
        Controller::spawn(&self.kubeconfig, identity)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.abort();
        }
    }
}

/// A `virt-controller run` process; killed when dropped.
pub struct Controller {
    child: Child,
    pub identity: String,
    /// Where it serves /metrics, /healthz and /readyz.
    pub addr: SocketAddr,
    /// What it wrote to stderr after the line that names `addr`.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Controller {
    pub fn spawn(kubeconfig: &std::path::Path, identity: &str) -> Controller {
        Self::spawn_with(kubeconfig, identity, &[])
    }

    /// [`Controller::spawn`] with extra flags (e.g. `--unready-after 2s`).
    pub fn spawn_with(kubeconfig: &std::path::Path, identity: &str, flags: &[&str]) -> Controller {
        // Port 0: the process picks a free port and prints it, so two tests never race for one.
        let mut child = Command::new(env!("CARGO_BIN_EXE_virt-controller"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--identity",
                identity,
                "--lease-namespace",
                LEASE_NAMESPACE,
            ])
            .args(flags)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn virt-controller");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let prefix = "virt-controller serving /metrics, /healthz and /readyz on ";
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let n = stderr
                .read_line(&mut line)
                .expect("read virt-controller's stderr");
            assert!(n > 0, "virt-controller {identity} exited before it served");
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                break rest.parse::<SocketAddr>().unwrap();
            }
            eprint!("[{identity}] {line}");
        };
        // Keep passing its log on, marked with its identity, and keep it for the test.
        let tag = identity.to_string();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                eprintln!("[{tag}] {line}");
                keep.lock().unwrap().push(line);
            }
        });
        Controller {
            child,
            identity: identity.to_string(),
            addr,
            stderr: kept,
        }
    }

    /// The lines it has written to stderr since it served its probes.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success());
        self.child.wait().ok()?.code()
    }

    /// Whether the process has ended by itself (e.g. a leader that lost its lease exits).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL: no goodbye, no lease release, requests cut off wherever they are.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether /readyz answers 200 (this replica leads); `None` if it does not answer.
    pub async fn ready(&self) -> Option<bool> {
        let (code, _) = http_get(self.addr, "/readyz").await?;
        Some(code == 200)
    }

    pub async fn healthy(&self) -> bool {
        http_get(self.addr, "/healthz")
            .await
            .is_some_and(|(c, _)| c == 200)
    }

    /// The value of a metric, summed over its label sets; 0 when it has no series yet.
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics_text().await, name)
    }

    /// The `/metrics` exposition.
    pub async fn metrics_text(&self) -> String {
        let (code, body) = http_get(self.addr, "/metrics")
            .await
            .unwrap_or_else(|| panic!("{}: /metrics does not answer", self.identity));
        assert_eq!(code, 200, "{body}");
        body
    }
}

impl Controller {
    /// The status code of `path`; `None` if nothing answers.
    pub async fn code(&self, path: &str) -> Option<u16> {
        http_get(self.addr, path).await.map(|(code, _)| code)
    }

    /// Waits until `path` answers `code`.
    pub async fn wait_for(&self, secs: u64, path: &str, code: u16) {
        eventually(secs, &format!("{path} to answer {code}"), async || {
            (self.code(path).await == Some(code)).then_some(())
        })
        .await;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sums the samples of `name` in a Prometheus/OpenMetrics text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// One HTTP/1.1 GET over a plain TCP stream: (status code, body), or `None` when nothing
/// answers within two seconds.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// Polls `f` every 50 ms until it gives a value, or fails the test after `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small VM that runs (`running: true`) in `default`.
pub fn running_vm(name: &str) -> VirtualMachine {
    serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "running": true,
            "template": {
                "metadata": {"labels": {"kubevirt.io/vm": name}},
                "spec": {
                    "domain": {
                        "devices": {},
                        "resources": {"requests": {"memory": "64M"}},
                    },
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }))
    .unwrap()
}
