//! Reaching real guests (issue 12): `virtctl console` in a pseudo-terminal, `vnc --proxy-only`,
//! `port-forward`, `ssh` and `scp` (OpenSSH's and the built-in client) with a key from
//! cloud-init, and the seed's exposed Service through `kubectl port-forward`, all against the
//! playground's real guests (QEMU under TCG).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::guests::*;
use common::{Cluster, open_pty};
use serde_json::{Value, json};

/// Generous: guests boot under TCG, several at once; only a broken path waits this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// What the guest prints once sshd listens (docs/guest-image.md).
const SSHD_UP: &str = "guest: sshd listening on 22";
const BANNER: &str = "SSH-2.0-dropbear";

/// A free local port (closed again: the command under test binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary of the virtctl under test.
fn virtctl_binary() -> &'static str {
    env!("CARGO_BIN_EXE_virtctl")
}

/// A long-running command whose output is collected as it comes.
struct Running {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    fn collect(mut reader: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        output
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `what`; returns the output so far.
    fn expect(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what:?} after {DEADLINE:?}; output so far: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exit_code(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < DEADLINE, "still running: {}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts virtctl with stdout and stderr collected together.
fn start_virtctl(kubeconfig: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(virtctl_binary())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virtctl runs");
    let stderr = child.stderr.take().unwrap();
    let output = Running::collect(child.stdout.take().unwrap());
    let errors = output.clone();
    std::thread::spawn(move || {
        let mut stderr = stderr;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                return;
            }
            errors.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Running { child, output }
}

/// The first line of a banner read from `port` on loopback.
fn banner(port: u16) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) {
            tcp.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.contains(&b'\n') {
                match tcp.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            return String::from_utf8_lossy(&got).trim().to_string();
        }
        assert!(start.elapsed() < DEADLINE, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// ssh-keygen and ssh, which the ssh and scp tests need: missing fails under CI, else skips.
fn ssh_tools(test: &str) -> bool {
    let found = ["ssh", "scp", "ssh-keygen"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI: the OpenSSH client is required ({test})"
        );
        eprintln!("SKIPPED {test}: no OpenSSH client (ssh, scp, ssh-keygen) on the PATH");
    }
    found
}

/// A new ed25519 key pair in `dir`; returns (private key path, public key line).
fn key_pair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "reach-guests", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// The seed's VM with a `#cloud-config` that authorizes `key` and declares ssh's port.
fn vm_with_key(name: &str, key: &str) -> Value {
    let mut vm = seed_vm(name, "Always", "", 0);
    let template = &mut vm["spec"]["template"]["spec"];
    for volume in template["volumes"].as_array_mut().unwrap() {
        if volume.get("cloudInitNoCloud").is_some() {
            volume["cloudInitNoCloud"] = json!({
                "userData": format!("#cloud-config\nssh_authorized_keys:\n  - {key}\n"),
            });
        }
    }
    vm
}

/// Options that keep OpenSSH from asking about or recording the guest's host key.
const NO_HOST_KEYS: [&str; 4] = [
    "-t",
    "-o StrictHostKeyChecking=no",
    "-t",
    "-o UserKnownHostsFile=/dev/null",
];

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn console_logs_in_runs_a_command_and_leaves_on_ctrl_close_bracket_and_vnc_answers_rfb() {
    let Some(c) = Cluster::with_guests("reach_guests::console").await else {
        return;
    };
    c.create_and_start_the_seed_vm().await;
    c.wait_vmi_phase("vm-cirros", "Running").await;
    let uid = c.vmi_uid("vm-cirros").await;
    c.wait_console(&uid, "guest: ready").await;
    let qemu = one_qemu("vm-cirros").await;

    let kubeconfig = c.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        let (master, slave) = open_pty();
        let child = Command::new(virtctl_binary())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["console", "vm-cirros"])
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("virtctl runs");
        let mut terminal = std::fs::File::from(master);
        let output = Running::collect(terminal.try_clone().unwrap());
        let mut console = Running { child, output };
        console.expect(
            "Successfully connected to vm-cirros console. Press Ctrl+] or Ctrl+5 to exit console.",
        );
        // The login prompt, then a shell that runs what is typed.
        terminal.write_all(b"\r").unwrap();
        console.expect("vm-cirros login: ");
        terminal.write_all(b"cirros\r").unwrap();
        console.expect("Password: ");
        terminal.write_all(b"gocubsgo\r").unwrap();
        console.expect("$ ");
        terminal.write_all(b"echo reached-$((6*7))\r").unwrap();
        console.expect("reached-42");
        terminal.write_all(&[0x1d]).unwrap();
        assert_eq!(console.exit_code(), 0, "{}", console.text());
    })
    .await
    .unwrap();
    assert!(alive(qemu), "the guest keeps running after the console");
    assert_eq!(c.vmi_phase("vm-cirros").await, "Running");

    // vnc --proxy-only: a client gets QEMU's RFB greeting through the proxy.
    let kubeconfig = c.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        let vnc = start_virtctl(&kubeconfig, &["vnc", "--proxy-only", "vm-cirros"]);
        let printed = vnc.expect("}");
        let json_line = printed.lines().find(|l| l.contains("\"port\"")).unwrap();
        let port: Value = serde_json::from_str(json_line.trim()).unwrap();
        let port = port["port"].as_u64().unwrap() as u16;
        assert_eq!(banner(port), "RFB 003.008");
    })
    .await
    .unwrap();

    // A missing VMI, then a stopped VM: KubeVirt's not-found, exit 1, no wait.
    c.virtctl(&["console", "nope"])
        .await
        .fails_with("virtualmachineinstance.kubevirt.io \"nope\" not found");
    c.virtctl(&["stop", "vm-cirros"])
        .await
        .ok("VM vm-cirros was scheduled to stop\n");
    within(DEADLINE, "the VMI to go", async || {
        c.vmi_json("vm-cirros").await.is_none().then_some(())
    })
    .await;
    c.virtctl(&["console", "--timeout", "1", "vm-cirros"])
        .await
        .fails_with("virtualmachineinstance.kubevirt.io \"vm-cirros\" not found");
    c.virtctl(&["vnc", "--proxy-only", "vm-cirros"])
        .await
        .fails_containing("virtualmachineinstance.kubevirt.io \"vm-cirros\" not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_scp_and_port_forward_reach_the_guests_sshd_with_a_key_from_cloud_init() {
    if !ssh_tools("reach_guests::ssh") {
        return;
    }
    let Some(c) = Cluster::with_guests("reach_guests::ssh").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(dir.path());
    c.create_vm_json(vm_with_key("vm-ssh", &public)).await;
    c.wait_vmi_phase("vm-ssh", "Running").await;
    let uid = c.vmi_uid("vm-ssh").await;
    let console = c.wait_console(&uid, SSHD_UP).await;
    assert!(
        console.contains("guest: 1 ssh authorized keys from cloud-config"),
        "{console}"
    );

    // port-forward vm/vm-ssh L:22: the guest's banner.
    let kubeconfig = c.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        let local = free_port();
        let forward = start_virtctl(
            &kubeconfig,
            &["port-forward", "vm/vm-ssh", &format!("{local}:22")],
        );
        forward.expect(&format!("Forwarding from 127.0.0.1:{local} -> 22"));
        assert!(banner(local).starts_with(BANNER), "{}", forward.text());
        // Twice: each connection is a stream of its own.
        assert!(banner(local).starts_with(BANNER), "{}", forward.text());
    })
    .await
    .unwrap();

    // ssh runs a command and returns its exit code; the native client too.
    let key_arg = key.display().to_string();
    let mut args = vec!["ssh", "-i", &key_arg];
    args.extend(NO_HOST_KEYS);
    args.extend(["cirros@vm/vm-ssh", "-c", "uname -a; exit 3"]);
    let out = c.virtctl(&args).await;
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("Linux vm-ssh "), "{out:#?}");
    let known = dir.path().join("known_hosts").display().to_string();
    let out = c
        .virtctl(&[
            "ssh",
            "--local-ssh=false",
            "-i",
            &key_arg,
            "--known-hosts",
            &known,
            "cirros@vm/vm-ssh",
            "-c",
            "echo native-$((40+2)); exit 4",
        ])
        .await;
    assert_eq!(out.code, 4, "{out:#?}");
    assert_eq!(out.stdout, "native-42\n", "{out:#?}");

    // scp in and out: the same bytes come back.
    let sent = dir.path().join("sent.bin");
    let mut data = Vec::with_capacity(1 << 20);
    let mut x: u32 = 12345;
    for _ in 0..(1 << 20) {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        data.push((x >> 16) as u8);
    }
    std::fs::write(&sent, &data).unwrap();
    let back = dir.path().join("back.bin");
    let (sent_s, back_s) = (sent.display().to_string(), back.display().to_string());
    let mut args = vec!["scp", "-i", &key_arg];
    args.extend(NO_HOST_KEYS);
    args.extend([sent_s.as_str(), "cirros@vm/vm-ssh:/tmp/sent.bin"]);
    let out = c.virtctl(&args).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let mut args = vec!["scp", "-i", &key_arg];
    args.extend(NO_HOST_KEYS);
    args.extend(["cirros@vm/vm-ssh:/tmp/sent.bin", back_s.as_str()]);
    let out = c.virtctl(&args).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(sha256(&sent), sha256(&back));
    // The built-in client (SFTP to the guest's sftp-server), both ways.
    let native_back = dir.path().join("native-back.bin");
    let native_back_s = native_back.display().to_string();
    let native = [
        "scp",
        "--local-ssh=false",
        "-i",
        &key_arg,
        "--known-hosts",
        &known,
    ];
    let mut args = native.to_vec();
    args.extend([sent_s.as_str(), "cirros@vm/vm-ssh:/tmp/native.bin"]);
    let out = c.virtctl(&args).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let mut args = native.to_vec();
    args.extend(["cirros@vm/vm-ssh:/tmp/native.bin", native_back_s.as_str()]);
    let out = c.virtctl(&args).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(sha256(&sent), sha256(&native_back));

    // A port nothing listens on in the guest: an error saying so, exit 1, at once.
    let kubeconfig = c.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        let mut forward = Command::new(virtctl_binary())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["port-forward", "--stdio", "vm/vm-ssh", "23"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // stdin stays open (as ssh keeps it), so only the guest's refusal can end it.
        let _stdin = forward.stdin.take();
        let errors = Running::collect(forward.stderr.take().unwrap());
        let mut run = Running {
            child: forward,
            output: errors,
        };
        assert_eq!(run.exit_code(), 1);
        assert!(
            run.text()
                .contains("dialing VM: connection refused: nothing listens on guest port 23/tcp"),
            "{}",
            run.text()
        );
    })
    .await
    .unwrap();

    // A missing VM.
    c.virtctl(&["port-forward", "--stdio", "vm/nope", "22"])
        .await
        .fails_containing("\"nope\" not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_exposed_service_reaches_the_guests_sshd_through_kubectl_port_forward() {
    let Some(c) = Cluster::with_guests("reach_guests::expose").await else {
        return;
    };
    // The seed's example: a VM named vmi-ephemeral, exposed before it runs.
    c.create_vm_json(seed_vm("vmi-ephemeral", "Halted", "", 0))
        .await;
    c.virtctl(&[
        "expose",
        "virtualmachine",
        "vmi-ephemeral",
        "--name",
        "vmiservice",
        "--port",
        "27017",
        "--target-port",
        "22",
    ])
    .await
    .ok("Service vmiservice successfully created for virtualmachine vmi-ephemeral\n");
    c.virtctl(&["start", "vmi-ephemeral"])
        .await
        .ok("VM vmi-ephemeral was scheduled to start\n");
    c.wait_vmi_phase("vmi-ephemeral", "Running").await;
    let uid = c.vmi_uid("vmi-ephemeral").await;
    c.wait_console(&uid, SSHD_UP).await;

    let kubeconfig = c.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        let local = free_port();
        let mut child = Command::new(test_support::kubectl_path())
            .args(["port-forward", "svc/vmiservice", &format!("{local}:27017")])
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let stderr = child.stderr.take().unwrap();
        let output = Running::collect(child.stdout.take().unwrap());
        let forward = Running { child, output };
        let _errors = Running::collect(stderr);
        forward.expect(&format!("Forwarding from 127.0.0.1:{local} -> 22"));
        let got = banner(local);
        assert!(got.starts_with(BANNER), "{got:?}; {}", forward.text());
    })
    .await
    .unwrap();
}
