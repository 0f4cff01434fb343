//! Test harness: the real `virtctl` binary against two kinds of cluster.
//!
//! - [`Cluster::playground`]: the `virt-playground` binary (localkube + simulated node +
//!   controllers + the `subresources.kubevirt.io` API). Cargo only builds a package's own
//!   binaries for its tests, so the harness runs `cargo build -p virt-playground` once per test
//!   process (a no-op when it is fresh) and starts `<target>/debug/virt-playground`, found next
//!   to the test executable.
//! - [`Cluster::plain`]: localkube in this process (the `localkube` library, a dev-dependency)
//!   with the KubeVirt CRDs and nothing else: no subresource group, so virtctl takes its
//!   client-side path, and no controllers, so the test sees exactly the objects the plan wrote.

#![allow(dead_code)]

pub mod fake;
pub mod guests;
pub mod ws_fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

/// What a virtctl run left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Exit 0, and stdout is exactly `stdout`.
    #[track_caller]
    pub fn ok(&self, stdout: &str) {
        assert_eq!(self.code, 0, "{self:#?}");
        assert_eq!(self.stdout, stdout, "{self:#?}");
    }

    /// Exit 1, nothing on stdout (unless `Dry Run execution`), stderr is exactly `line`.
    #[track_caller]
    pub fn fails_with(&self, line: &str) {
        assert_eq!(self.code, 1, "{self:#?}");
        assert_eq!(self.stderr.trim_end_matches('\n'), line, "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
    }

    /// Exit 1 and stderr contains `part`.
    #[track_caller]
    pub fn fails_containing(&self, part: &str) {
        assert_eq!(self.code, 1, "{self:#?}");
        assert!(self.stderr.contains(part), "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
    }
}

/// Runs virtctl with `args`, no kubeconfig from the environment, stdin closed.
pub fn virtctl_raw(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtctl"));
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("virtctl runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

enum Backend {
    /// Killed when dropped.
    Process(test_support::Playground),
    /// A `localkube` process; killed when dropped.
    Localkube(ChildProcess, tempfile::TempDir),
    InProcess(Option<localkube::Server>, tempfile::TempDir),
}

/// A cluster for one test.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    backend: Backend,
    /// How to start the playground again ([`Cluster::kill_9_and_restart`]).
    relaunch: Option<Relaunch>,
}

struct Relaunch {
    binary: PathBuf,
    args: Vec<String>,
    /// Earlier runs, dead, kept for their directories (the first one holds `kubeconfig`).
    retired: Vec<Backend>,
}

/// A child process killed on drop.
pub struct ChildProcess(std::process::Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the playground binary with `args` on a blocking thread, as its start blocks.
async fn start_playground(binary: PathBuf, args: Vec<String>) -> test_support::Playground {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        test_support::Playground::start_with_args(&binary, Stdio::inherit(), &args)
    })
    .await
    .unwrap()
}

/// Builds the `virt-playground` binary once per test process and returns its path.
fn playground_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| test_support::workspace_binary("virt-playground", "virt-playground"))
        .clone()
}

/// Builds the `localkube` binary once per test process and returns its path.
fn localkube_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| test_support::workspace_binary("localkube", "localkube"))
        .clone()
}

async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

impl Cluster {
    /// The playground: subresource API and controllers.
    pub async fn playground() -> Cluster {
        Self::playground_with_node_shutdown("0").await
    }

    /// The playground, with deleted pods Terminating for up to `shutdown` (e.g. `1s`).
    pub async fn playground_with_node_shutdown(shutdown: &'static str) -> Cluster {
        let binary = tokio::task::spawn_blocking(playground_binary)
            .await
            .unwrap();
        let playground = tokio::task::spawn_blocking(move || {
            test_support::Playground::start_with_node_shutdown(&binary, Stdio::null(), shutdown)
        })
        .await
        .unwrap();
        let kubeconfig = playground.kubeconfig.clone();
        let client = client_for(&kubeconfig).await;
        Cluster {
            kubeconfig,
            client,
            backend: Backend::Process(playground),
            relaunch: None,
        }
    }

    /// The playground with real guests (`--guests qemu`): QEMU, the guest image and
    /// `virt-launcher` are needed. `None` (after saying `SKIPPED`) when QEMU or the image is
    /// missing outside CI; under CI that fails the test.
    pub async fn with_guests(test: &str) -> Option<Cluster> {
        Self::with_guests_and(test, &[]).await
    }

    /// [`Cluster::with_guests`] with more flags for the playground.
    pub async fn with_guests_and(test: &str, extra: &[&str]) -> Option<Cluster> {
        let test = test.to_string();
        let (binary, image) = tokio::task::spawn_blocking(move || {
            let image = test_support::guest_image(&test)?;
            test_support::workspace_binary("virt-launcher", "virt-launcher");
            test_support::workspace_binary("virt-launcher", "virt-tail");
            Some((playground_binary(), image))
        })
        .await
        .unwrap()?;
        let mut args: Vec<String> = ["--guests", "qemu", "--guest-image"]
            .map(String::from)
            .to_vec();
        args.push(image.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let playground = start_playground(binary.clone(), args.clone()).await;
        let kubeconfig = playground.kubeconfig.clone();
        let client = client_for(&kubeconfig).await;
        Some(Cluster {
            kubeconfig,
            client,
            backend: Backend::Process(playground),
            relaunch: Some(Relaunch {
                binary,
                args,
                retired: Vec::new(),
            }),
        })
    }

    /// Kills the playground with SIGKILL (its node, and so its guests, die with it) and starts
    /// it again with the same flags. The kubeconfig and client of before are kept: with a data
    /// directory they must keep working.
    pub async fn kill_9_and_restart(&mut self) {
        let relaunch = self.relaunch.as_mut().expect("a playground process");
        if let Backend::Process(p) = &mut self.backend {
            p.child.kill().unwrap();
            p.child.wait().unwrap();
        }
        let next = start_playground(relaunch.binary.clone(), relaunch.args.clone()).await;
        let old = std::mem::replace(&mut self.backend, Backend::Process(next));
        relaunch.retired.push(old);
    }

    /// The `localkube` binary as its own process (so that a test can freeze it), with the
    /// CRDs only and no simulated node.
    pub async fn localkube_process() -> Cluster {
        let binary = tokio::task::spawn_blocking(localkube_binary).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--no-node", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = ChildProcess(child);
        let ready = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        assert!(ready.starts_with("localkube ready at "), "{ready:?}");
        let client = client_for(&kubeconfig).await;
        let cluster = Cluster {
            kubeconfig,
            client,
            backend: Backend::Localkube(child, dir),
            relaunch: None,
        };
        cluster.install_crds().await;
        cluster
    }

    /// The server's process id, when it runs in a process of its own.
    pub fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Process(p) => Some(p.child.id()),
            Backend::Localkube(c, _) => Some(c.0.id()),
            Backend::InProcess(..) => None,
        }
    }

    async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for (_, crd) in virt_reconciler::crds::all() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        // The CRDs are served once discovery lists them.
        self.eventually("the KubeVirt CRDs to be served", async || {
            let vms: Api<VirtualMachine> = Api::namespaced(self.client.clone(), "default");
            vms.list(&Default::default()).await.ok().map(|_| ())
        })
        .await;
    }

    /// localkube with the CRDs only: no subresource API, no controllers.
    pub async fn plain() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let server = localkube::LocalKube::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .kubeconfig_out(&kubeconfig)
            .start()
            .await
            .unwrap();
        let client = server.client().await.unwrap();
        let cluster = Cluster {
            kubeconfig,
            client,
            backend: Backend::InProcess(Some(server), dir),
            relaunch: None,
        };
        cluster.install_crds().await;
        cluster
    }

    /// The server of a cluster in this process ([`Cluster::plain`]).
    pub fn server(&self) -> &localkube::Server {
        match &self.backend {
            Backend::InProcess(Some(server), _) => server,
            _ => panic!("the cluster does not run in this process"),
        }
    }

    /// Runs virtctl against this cluster (`--kubeconfig` first, then `args`).
    pub async fn virtctl(&self, args: &[&str]) -> Out {
        let mut all = vec![
            "--kubeconfig".to_string(),
            self.kubeconfig.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            virtctl_raw(&refs, &[])
        })
        .await
        .unwrap()
    }

    pub fn vms(&self, ns: &str) -> Api<VirtualMachine> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn vmis(&self, ns: &str) -> Api<VirtualMachineInstance> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
    }

    /// Creates any object from JSON (apiVersion and kind inside).
    pub async fn create(&self, ns: &str, obj: Value) -> DynamicObject {
        let api_version = obj["apiVersion"].as_str().unwrap().to_string();
        let kind = obj["kind"].as_str().unwrap().to_string();
        let (group, version) = api_version
            .split_once('/')
            .unwrap_or(("", api_version.as_str()));
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(obj).unwrap(),
        )
        .await
        .unwrap()
    }

    /// Creates a VM with the given run strategy and template spec additions.
    pub async fn create_vm(
        &self,
        ns: &str,
        name: &str,
        strategy: &str,
        extra: Value,
    ) -> VirtualMachine {
        let mut vm = vm_json(name, strategy);
        merge(&mut vm, extra);
        self.create(ns, vm).await;
        self.vms(ns).get(name).await.unwrap()
    }

    /// Creates a VMI in `phase` (the VMI has no status subresource, so status is kept).
    pub async fn create_vmi(
        &self,
        ns: &str,
        name: &str,
        phase: &str,
        extra: Value,
    ) -> VirtualMachineInstance {
        let mut vmi = json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": name},
            // Memory, as KubeVirt's VMI webhook requires (the playground runs it).
            "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}},
            "status": {"phase": phase},
        });
        merge(&mut vmi, extra);
        self.create(ns, vmi).await;
        self.vmis(ns).get(name).await.unwrap()
    }

    pub async fn eventually<T>(&self, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..600 {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// The VM's printableStatus, "" when unset or missing.
    pub async fn printable(&self, ns: &str, name: &str) -> String {
        self.vms(ns)
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.status)
            .and_then(|s| s.printable_status)
            .unwrap_or_default()
    }

    pub async fn wait_printable(&self, ns: &str, name: &str, want: &str) {
        self.eventually(&format!("VM {name} to be {want}"), async || {
            (self.printable(ns, name).await == want).then_some(())
        })
        .await
    }

    /// The VM's `status.stateChangeRequests` as JSON (`null` when unset).
    pub async fn requests(&self, ns: &str, name: &str) -> Value {
        let vm = self.vms(ns).get(name).await.unwrap();
        let status = serde_json::to_value(vm.status).unwrap();
        status
            .get("stateChangeRequests")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// A minimal VM in `kubevirt.io/v1`.
pub fn vm_json(name: &str, strategy: &str) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": strategy,
            "template": {
                "metadata": {},
                "spec": {
                    "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}},
                    "terminationGracePeriodSeconds": 0
                }
            }
        }
    })
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

impl Cluster {
    /// Runs the VM and VMI controllers and the simulated node in this process, against this
    /// cluster, until the test's runtime ends.
    pub fn spawn_controllers(&self) {
        self.spawn_controllers_with_node_shutdown(Duration::ZERO);
    }

    /// [`Cluster::spawn_controllers`], with deleted pods Terminating for up to `shutdown`.
    pub fn spawn_controllers_with_node_shutdown(&self, shutdown: Duration) {
        let metrics = std::sync::Arc::new(virt_reconciler::controller::Metrics::default());
        let node = localkube::node::NodeConfig {
            start_delay: Duration::ZERO,
            shutdown_time: shutdown,
            ..Default::default()
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = localkube::node::run(client, node).await;
        });
        tokio::spawn(virt_reconciler::controller::run(
            self.client.clone(),
            metrics,
            4,
            std::future::pending::<()>(),
        ));
    }
}

/// A pseudo-terminal: (master, slave).
pub fn open_pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.to_str().unwrap(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .unwrap();
    (master, slave)
}
