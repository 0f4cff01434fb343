//! A frozen API server (SIGSTOP: the kernel still accepts TCP connections, nothing answers):
//! `--wait --timeout` bounds every request of the command, and without any timeout flag a
//! connection (TCP and TLS handshake) gives up after 10 s, as kubectl's.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Out};
use serde_json::json;

/// SIGSTOPs a process; SIGCONTs it when dropped, even when the test fails.
struct Frozen(u32);

impl Frozen {
    fn stop(pid: u32) -> Frozen {
        signal("-STOP", pid);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(which: &str, pid: u32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {which} {pid} failed");
}

fn spawn_virtctl(c: &Cluster, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_virtctl"))
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virtctl runs")
}

/// Waits for `child` at most `limit` (then kills it: the bound did not hold) and returns
/// what it left, with the time from `started`.
fn finish(mut child: Child, started: Instant, limit: Duration) -> (Out, Duration) {
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (
        Out {
            code,
            stdout,
            stderr,
        },
        took,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_cannot_stretch_the_deadline() {
    let c = Cluster::localkube_process().await;
    // No controllers: the VM is asked to run but never does, so --wait keeps polling.
    c.create_vm("default", "vm1", "Halted", json!({})).await;
    let pid = c.pid().unwrap();

    // Frozen while waiting: the polls on the open connection must end at the deadline.
    let started = Instant::now();
    let mut child = spawn_virtctl(&c, &["start", "vm1", "--wait", "--timeout", "4s"]);
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "VM vm1 was scheduled to start\n");
    let frozen = Frozen::stop(pid);
    let (out, took) = finish(child, started, Duration::from_secs(40));
    assert_eq!(out.code, 1, "{out:#?} after {took:?}");
    assert!(took < Duration::from_secs(9), "{out:#?} after {took:?}");
    assert!(
        out.stderr
            .contains("timed out after 4s waiting for VM vm1 to be Running"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:#?}");

    // Frozen before the command: the first request ends at the deadline too.
    let started = Instant::now();
    let child = spawn_virtctl(&c, &["start", "vm1", "--wait", "--timeout", "3s"]);
    let (out, took) = finish(child, started, Duration::from_secs(40));
    assert_eq!(out.code, 1, "{out:#?} after {took:?}");
    assert!(took < Duration::from_secs(8), "{out:#?} after {took:?}");
    assert!(
        out.stderr.contains(
            "timed out after 3s waiting for VM vm1 to be Running; last status: no answer from \
             the API server"
        ),
        "{out:#?}"
    );

    // No timeout flag at all: the TLS handshake gives up after 10 s (and the version check
    // after 1 s more), not after kube's default of 30 s.
    let started = Instant::now();
    let child = spawn_virtctl(&c, &["status"]);
    let (out, took) = finish(child, started, Duration::from_secs(60));
    assert_eq!(out.code, 1, "{out:#?} after {took:?}");
    assert!(took < Duration::from_secs(16), "{out:#?} after {took:?}");
    assert!(!out.stderr.contains("panicked"), "{out:#?}");
    drop(frozen);

    // Thawed, the server answers again.
    c.virtctl(&["status", "vm1"]).await;
    let out = c.virtctl(&["status", "vm1"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
}
