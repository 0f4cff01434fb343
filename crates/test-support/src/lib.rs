//! Helpers shared by the workspace's end-to-end tests: finding kubectl (with the CI rule), building
//! another package's binary, and running the `virt-playground` binary on a random port with its
//! own kubeconfig; the seeds of randomized tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// The line `virt-playground` prints once it serves.
pub const PLAYGROUND_READY: &str = "virt-playground ready at https://127.0.0.1:";

/// A running `virt-playground` (node start delay and shutdown time 0); killed on drop.
pub struct Playground {
    pub child: Child,
    pub kubeconfig: PathBuf,
    /// The ready line, as printed.
    pub ready_line: String,
    _dir: tempfile::TempDir,
}

impl Playground {
    /// Starts `binary` (the `virt-playground` binary) on a free port and waits until it is
    /// ready. Its stderr goes to `stderr`.
    pub fn start(binary: &Path, stderr: Stdio) -> Playground {
        Self::start_with_node_shutdown(binary, stderr, "0")
    }

    /// [`Playground::start`], with deleted pods Terminating for up to `shutdown` (a duration
    /// such as `1s`) instead of going at once.
    pub fn start_with_node_shutdown(binary: &Path, stderr: Stdio, shutdown: &str) -> Playground {
        Self::start_with_args(
            binary,
            stderr,
            &["--guests", "simulated", "--node-shutdown-time", shutdown],
        )
    }

    /// Starts `binary` on a free port with `args` added (node start delay 0 unless `args`
    /// say otherwise) and waits until it is ready.
    pub fn start_with_args(binary: &Path, stderr: Stdio, args: &[&str]) -> Playground {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--node-start-delay", "0"])
            .args(args)
            .arg("--kubeconfig-out")
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

/// Runs kubectl against `kubeconfig`, with its cache and HOME in the private directory `home`,
/// feeding it `stdin` when given.
pub fn run_kubectl(kubeconfig: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl_path());
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", home.join("cache"))
        .env("HOME", home)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("kubectl's stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// The stdout of a kubectl run that must have succeeded; otherwise the test fails with its
/// stderr.
#[track_caller]
pub fn kubectl_stdout(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from kubectl")
}

/// A manifest from this repository's `examples/` (never from outside the checkout, so that a
/// fresh clone passes its own tests).
pub fn example_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file)
}

/// The text of `examples/<file>`.
pub fn example(file: &str) -> String {
    let path = example_path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<target>/debug`, from the running test executable's path (`<target>/debug/deps/<test>-<hash>`).
pub fn target_debug_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds binary `bin` of workspace package `package` and returns its path. Cargo builds a
/// package's own binaries for its tests only, so a test that runs another package's binary
/// builds it here (a no-op when it is fresh); call it once per test process.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // Cargo sets these for the test only; ring's build script tracks some of them, so
    // passing them on would rebuild the TLS stack, and everything above it, every run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_test = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "CARGO_TARGET_TMPDIR";
        if per_test {
            cargo.env_remove(key.as_ref());
        }
    }
    let status = cargo
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = target_debug_dir().join(bin);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Whether a test may boot real guests: QEMU is installed and the guest image builds (with
/// `scripts/build-guest-image.sh`, cached after the first build). Returns the image. Under CI
/// (`CI=true`) anything missing fails the test; elsewhere the test is skipped, and says so.
pub fn guest_image(test: &str) -> Option<PathBuf> {
    static IMAGE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let found = IMAGE.get_or_init(build_guest_image);
    match found {
        Ok(path) => Some(path.clone()),
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: real guests are required under CI: {why}");
            }
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

fn build_guest_image() -> Result<PathBuf, String> {
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !qemu.is_ok_and(|s| s.success()) {
        return Err(
            "qemu-system-x86_64 is not installed (run scripts/install-deps.sh as root)".into(),
        );
    }
    let script = workspace_root().join("scripts/build-guest-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); run scripts/install-deps.sh as root first",
            script.display(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} printed no image path (last line {:?})",
            script.display(),
            path
        ))
    }
}

/// The seed of a randomized test: `$var` replays a run, else one from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}
