//! Shared harness: runs the real `localkube` binary on a random port with a temporary
//! kubeconfig (or on a data directory it is restarted on), and runs kubectl against it;
//! `tls_backend` serves what localkube calls over TLS.
#![allow(dead_code)]

pub mod tls_backend;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Localkube {
    child: Child,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Localkube {
    /// Starts the binary with a node that starts and stops pods at once.
    pub fn start() -> Self {
        Self::start_with(&["--node-start-delay", "0", "--node-shutdown-time", "0"])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_localkube"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn localkube");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        assert!(
            line.starts_with("localkube ready at https://127.0.0.1:"),
            "unexpected first line: {line:?}"
        );
        assert!(line.contains(&format!("(kubeconfig: {})", kubeconfig.display())));
        let url = line
            .trim()
            .trim_start_matches("localkube ready at ")
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        Localkube {
            child,
            kubeconfig,
            url,
            dir,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        test_support::run_kubectl(&self.kubeconfig, self.dir.path(), args, stdin)
    }

    /// Runs kubectl and returns stdout, failing the test with stderr when it exits non-zero.
    pub fn ok(&self, args: &[&str]) -> String {
        test_support::kubectl_stdout(args, self.kubectl(args))
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed, printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn apply_yaml(&self, yaml: &str) -> String {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates a ConfigMap from a manifest (kubectl's typed `create configmap` speaks protobuf).
    pub fn create_configmap(&self, name: &str, data: &[(&str, &str)]) {
        let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
        if !data.is_empty() {
            yaml.push_str("data:\n");
            for (k, v) in data {
                yaml.push_str(&format!("  {k}: {v:?}\n"));
            }
        }
        let out = self.kubectl_stdin(&["create", "-f", "-"], Some(&yaml));
        assert!(
            out.status.success(),
            "kubectl create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Polls until `f` returns true (at most `secs` seconds).
    pub fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the server exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        sigterm(&mut self.child)
    }
}

/// A plain stop (SIGTERM) of `child`, and its exit status.
fn sigterm(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    child.wait().expect("wait")
}

impl Drop for Localkube {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `localkube --data-dir DIR` with its kubeconfig at `DIR/kubeconfig`: started again on the
/// same directory after [`DataDirServer::kill_9`] or [`DataDirServer::terminate`]. Killed when
/// dropped (also when a check fails).
#[derive(Debug)] // For `expect_err` on a start that should be refused.
pub struct DataDirServer {
    child: Child,
    pub kubeconfig: PathBuf,
    pub url: String,
    /// Holds the server's stderr (outside the data directory), written as it logs.
    logs: tempfile::TempDir,
}

/// A server that exited instead of becoming ready: its exit code and its stderr.
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    pub stderr: String,
}

impl DataDirServer {
    /// Starts `localkube --listen 127.0.0.1:0 --data-dir DIR --kubeconfig-out DIR/kubeconfig
    /// EXTRA...` and waits for its ready line. Its stderr goes to a file (a file cannot fill
    /// up and stop a chatty server the way a pipe can), read by [`DataDirServer::stderr`], and
    /// returned if the server exits instead.
    pub fn start(dir: &Path, extra: &[&str]) -> Result<Self, StartFailure> {
        let kubeconfig = dir.join("kubeconfig");
        let logs = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(logs.path().join("stderr")).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_localkube"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn localkube");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        // A read error is a server that went away: its exit status says more.
        let _ = BufReader::new(stdout).read_line(&mut line);
        let server = |url: String| DataDirServer {
            child,
            kubeconfig,
            url,
            logs,
        };
        let Some(url) = line.strip_prefix("localkube ready at ") else {
            let mut failed = server(String::new());
            let status = failed.child.wait().expect("wait for localkube");
            return Err(StartFailure {
                code: status.code(),
                stderr: failed.stderr(),
            });
        };
        Ok(server(
            url.split(' ').next().unwrap_or_default().to_string(),
        ))
    }

    /// What the server has written to stderr so far (everything it logged before its ready
    /// line, at least).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// A kube-rs client from the server's kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        kube::Client::try_from(cfg).expect("client")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// SIGTERM (a plain stop) and the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        sigterm(&mut self.child)
    }
}

impl Drop for DataDirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unused_imports)] // Not every test binary uses both.
pub use test_support::{have_kubectl, kubectl_path};
