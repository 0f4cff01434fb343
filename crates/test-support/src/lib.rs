//! Helpers shared by the workspace's end-to-end tests: finding kubectl (with the CI rule), and
//! running the `virt-controller local` playground on a random port with its own kubeconfig.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// kubectl: `$KUBECTL`, else `kubectl` from the PATH.
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Whether kubectl can run here. Under CI (`CI=true`) a missing kubectl fails the test;
/// elsewhere the test is skipped, and says so.
pub fn have_kubectl(test: &str) -> bool {
    let found = Command::new(kubectl_path())
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: kubectl is required under CI but was not found");
        }
        eprintln!("SKIPPED {test}: kubectl is not installed");
    }
    found
}

/// The line `virt-controller local` prints once it serves.
pub const PLAYGROUND_READY: &str = "virt-controller local ready at https://127.0.0.1:";

/// A running `virt-controller local` (node start delay and shutdown time 0); killed on drop.
pub struct Playground {
    pub child: Child,
    pub kubeconfig: PathBuf,
    /// The ready line, as printed.
    pub ready_line: String,
    _dir: tempfile::TempDir,
}

impl Playground {
    /// Starts `binary` (a virt-controller) in local mode on a free port and waits until it is
    /// ready. Its stderr goes to `stderr`.
    pub fn start(binary: &Path, stderr: Stdio) -> Playground {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(binary)
            .args([
                "local",
                "--listen",
                "127.0.0.1:0",
                "--node-start-delay",
                "0",
                "--node-shutdown-time",
                "0",
                "--kubeconfig-out",
            ])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut ready_line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut ready_line)
            .expect("the ready line");
        assert!(ready_line.starts_with(PLAYGROUND_READY), "{ready_line:?}");
        assert!(
            ready_line.contains(&format!("(kubeconfig: {}", kubeconfig.display())),
            "{ready_line:?}"
        );
        Playground {
            child,
            kubeconfig,
            ready_line,
            _dir: dir,
        }
    }
}

impl Playground {
    /// A private directory that lives as long as the playground (for caches, a HOME).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
