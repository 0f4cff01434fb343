//! console, vnc, port-forward, ssh and scp against a fake KubeVirt API (`common/ws_fake.rs`)
//! whose streams echo: the bytes a user types or sends come back through virtctl, the
//! refusals print KubeVirt's messages, and ssh/scp run the system's client (a fake one on the
//! PATH here) with a ProxyCommand that really connects.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::fake::{Recorded, status_body};
use common::ws_fake::{Answer, WsFake, vmi_json};
use common::{open_pty, virtctl_raw};

/// Long enough for a loaded machine; only a broken stream waits this long.
const DEADLINE: Duration = Duration::from_secs(60);

const SUB: &str = "/apis/subresources.kubevirt.io/v1/namespaces";

/// virt-api as the contract says: `vmi1` runs in `default` and `dev`; `stopped` is not
/// running; `headless` has no serial console or graphics; anything else does not exist.
fn kubevirt(r: &Recorded, _before: usize) -> Answer {
    let missing = |name: &str| {
        Answer::Reply(
            404,
            status_body(
                404,
                "NotFound",
                &format!("virtualmachineinstances.kubevirt.io \"{name}\" not found"),
            ),
        )
    };
    let path = r.line.split_once(' ').map(|(_, p)| p).unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/apis/kubevirt.io/v1/namespaces/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [ns, "virtualmachineinstances", "vmi1"] => Answer::Reply(200, vmi_json(ns, "vmi1")),
            [_, _, name] => missing(name),
            _ => Answer::Reply(404, String::new()),
        };
    }
    let Some(rest) = path.strip_prefix(&format!("{SUB}/")) else {
        return Answer::Reply(404, String::new());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [
        _ns,
        "virtualmachineinstances" | "virtualmachines",
        name,
        sub @ ..,
    ] = parts.as_slice()
    else {
        return Answer::Reply(404, String::new());
    };
    match (*name, sub) {
        ("vmi1", ["vnc"]) => Answer::Echo(b"RFB 003.008\n".to_vec()),
        ("vmi1", _) => Answer::Echo(Vec::new()),
        ("stopped", ["console" | "vnc"]) => {
            Answer::Reply(400, status_body(400, "BadRequest", "VMI is not running"))
        }
        ("headless", ["console"]) => Answer::Reply(
            400,
            status_body(400, "BadRequest", "No serial consoles are present."),
        ),
        ("paused", ["portforward", ..]) => {
            Answer::Reply(409, status_body(409, "Conflict", "VMI is paused"))
        }
        (name, _) => missing(name),
    }
}

/// virtctl as a child against `server`, with no kubeconfig from the environment.
fn spawn(server: &WsFake, args: &[&str], stdin: Stdio, stdout: Stdio, path: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtctl"));
    cmd.arg("-s")
        .arg(&server.url)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped());
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.spawn().expect("virtctl runs")
}

/// Lines of a child's pipe, read by a thread, so that a test waits with a deadline.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("no line from virtctl: {what}"))
}

/// Waits for the child to exit (killing it after the deadline) and returns its code.
fn exit_code(child: &mut Child) -> i32 {
    for _ in 0..(DEADLINE.as_millis() / 50) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    status
        .code()
        .expect("virtctl exited by itself, before the deadline")
}

/// Ctrl+C (SIGINT), then the exit code.
fn interrupt(child: &mut Child) -> i32 {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    exit_code(child)
}

/// Reads exactly `n` bytes, or fails at the deadline.
fn read_n(stream: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("the echo comes back");
    buf
}

/// The port of `Forwarding from 127.0.0.1:PORT -> REMOTE`.
fn forwarded_port(line: &str, remote: &str) -> u16 {
    let rest = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let (port, to) = rest.split_once(" -> ").expect("an arrow");
    assert!(to.starts_with(remote), "{line}");
    port.parse().expect("a port")
}

#[test]
fn port_forward_tcp_connections_echo_through_the_stream() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["port-forward", "vmi/vmi1", "0:22"],
        Stdio::null(),
        Stdio::piped(),
        None,
    );
    let out = lines(child.stdout.take().unwrap());
    let port = forwarded_port(&next_line(&out, "forwarding"), "22");
    for round in 0..2 {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        let message = format!("hello {round}");
        conn.write_all(message.as_bytes()).unwrap();
        assert_eq!(read_n(&mut conn, message.len()), message.as_bytes());
    }
    assert_eq!(interrupt(&mut child), 0, "Ctrl+C ends it");
    let upgrades = server.upgrades();
    assert_eq!(upgrades.len(), 2, "one stream per connection: {upgrades:?}");
    for r in upgrades {
        assert_eq!(
            r.line,
            format!("GET {SUB}/default/virtualmachineinstances/vmi1/portforward/22/tcp")
        );
        assert_eq!(
            r.header("sec-websocket-protocol"),
            Some("plain.kubevirt.io")
        );
    }
}

#[test]
fn port_forward_reads_a_dotted_name_as_name_dot_namespace_when_only_that_exists() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["port-forward", "vmi/vmi1.dev", "0:22"],
        Stdio::null(),
        Stdio::piped(),
        None,
    );
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let port = forwarded_port(&next_line(&out, "forwarding"), "22");
    assert_eq!(
        next_line(&err, "the warning"),
        "Warning: vmi/vmi1.dev means vmi/vmi1/dev (the older type/name.namespace form); \
         write vmi/vmi1/dev"
    );
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(b"legacy").unwrap();
    assert_eq!(read_n(&mut conn, 6), b"legacy");
    assert_eq!(interrupt(&mut child), 0);
    let upgrades = server.upgrades();
    assert_eq!(
        upgrades[0].line,
        format!("GET {SUB}/dev/virtualmachineinstances/vmi1/portforward/22/tcp")
    );
}

#[test]
fn port_forward_udp_datagrams_echo() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["port-forward", "vmi/vmi1/dev", "udp/0:53"],
        Stdio::null(),
        Stdio::piped(),
        None,
    );
    let out = lines(child.stdout.take().unwrap());
    let port = forwarded_port(&next_line(&out, "forwarding"), "53 (udp)");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    for datagram in [&b"first"[..], b"second datagram"] {
        socket.send_to(datagram, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 100];
        let (n, _) = socket.recv_from(&mut buf).expect("the datagram comes back");
        assert_eq!(&buf[..n], datagram);
    }
    assert_eq!(interrupt(&mut child), 0, "Ctrl+C ends it");
    let upgrades = server.upgrades();
    assert_eq!(upgrades.len(), 1, "one stream per peer: {upgrades:?}");
    assert_eq!(
        upgrades[0].line,
        format!("GET {SUB}/dev/virtualmachineinstances/vmi1/portforward/53/udp")
    );
}

#[test]
fn port_forward_stdio_is_the_connection() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["port-forward", "--stdio=true", "vm/vmi1/dev", "2222"],
        Stdio::piped(),
        Stdio::piped(),
        None,
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"SSH-2.0-test\r\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(read_n(&mut stdout, 14), b"SSH-2.0-test\r\n");
    stdin.write_all(b"more").unwrap();
    // The end of stdin still delivers what the server sends back.
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"more");
    assert_eq!(exit_code(&mut child), 0);
    assert_eq!(
        server.upgrades()[0].line,
        format!("GET {SUB}/dev/virtualmachines/vmi1/portforward/2222/tcp")
    );
}

#[test]
fn port_forward_refusals_and_bad_arguments() {
    let server = WsFake::start(kubevirt);
    let run = |args: &[&str]| {
        let mut all = vec!["-s", server.url.as_str()];
        all.extend_from_slice(args);
        virtctl_raw(&all, &[])
    };
    run(&["port-forward", "vmi/nope", "22"])
        .fails_with("virtualmachineinstances.kubevirt.io \"nope\" not found");
    run(&["port-forward", "--stdio=true", "vmi/paused", "22"])
        .fails_with("can't access vmi/paused.default: VMI is paused");
    run(&["port-forward", "vmi/vmi1"]).fails_with(
        "requires at least 2 arg(s), only received 1: TYPE/NAME[/NAMESPACE] and a port",
    );
    run(&["port-forward", "pod/x", "22"]).fails_with("unsupported resource type 'pod'");
    run(&["port-forward", "--stdio=true", "vmi/vmi1", "22", "23"])
        .fails_with("only one port supported when forwarding to stdout");
    run(&["port-forward", "vmi/vmi1", "sctp/22"])
        .fails_with("unknown protocol: sctp (use tcp or udp)");
    run(&["port-forward", "--address", "nowhere", "vmi/vmi1", "22"])
        .fails_with("invalid --address \"nowhere\": it must be an IP address or localhost");
    // Bad input never reaches the server: only the `nope` and `paused` requests came (and
    // the version-skew check after each failure).
    let asked: Vec<String> = server
        .requests()
        .into_iter()
        .map(|r| r.line)
        .filter(|l| l != "GET /apis/subresources.kubevirt.io")
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
}

#[test]
fn vnc_proxy_only_prints_the_port_and_passes_the_handshake() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["vnc", "vmi1", "--proxy-only"],
        Stdio::null(),
        Stdio::piped(),
        None,
    );
    let out = lines(child.stdout.take().unwrap());
    let line = next_line(&out, "the port");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let port = json["port"].as_u64().expect("a port") as u16;
    for _ in 0..2 {
        let mut viewer = TcpStream::connect(("127.0.0.1", port)).unwrap();
        viewer.set_read_timeout(Some(DEADLINE)).unwrap();
        assert_eq!(read_n(&mut viewer, 12), b"RFB 003.008\n");
        viewer.write_all(b"RFB 003.008\n").unwrap();
        assert_eq!(read_n(&mut viewer, 12), b"RFB 003.008\n");
    }
    assert_eq!(interrupt(&mut child), 0, "Ctrl+C ends it");
    let upgrades = server.upgrades();
    assert_eq!(upgrades.len(), 2, "one stream per viewer");
    assert_eq!(
        upgrades[0].line,
        format!("GET {SUB}/default/virtualmachineinstances/vmi1/vnc?preserveSession=false")
    );
}

#[test]
fn vnc_without_a_viewer_says_where_to_connect() {
    let server = WsFake::start(kubevirt);
    let empty = tempfile::tempdir().unwrap();
    let mut child = spawn(
        &server,
        &["vnc", "vmi1"],
        Stdio::null(),
        Stdio::null(),
        Some(empty.path().to_str().unwrap()),
    );
    let err = lines(child.stderr.take().unwrap());
    let line = next_line(&err, "the advice");
    assert!(
        line.starts_with("No VNC viewer found (remote-viewer or vncviewer on the PATH). Connect one to 127.0.0.1:"),
        "{line}"
    );
    assert_eq!(interrupt(&mut child), 0, "Ctrl+C ends it");
}

#[test]
fn vnc_and_console_refusals() {
    let server = WsFake::start(kubevirt);
    let run = |args: &[&str]| {
        let mut all = vec!["-s", server.url.as_str()];
        all.extend_from_slice(args);
        virtctl_raw(&all, &[])
    };
    run(&["vnc", "nope", "--proxy-only"]).fails_with(
        "can't access VMI nope: virtualmachineinstances.kubevirt.io \"nope\" not found",
    );
    run(&["vnc", "stopped"]).fails_with("can't access VMI stopped: VMI is not running");
    run(&["vnc", "screenshot", "vmi1"]).fails_containing("vnc screenshot is not supported");
    run(&["console", "nope"]).fails_with("virtualmachineinstances.kubevirt.io \"nope\" not found");
    run(&["console", "headless"]).fails_with("No serial consoles are present.");
    let out = run(&["console", "stopped", "--timeout", "0"]);
    out.fails_containing(
        "Timeout trying to connect to the virtual machine instance: stopped still answers \"VMI is not running\"",
    );
}

#[test]
fn console_waits_for_the_instance_to_run() {
    // Not running for the first two attempts.
    let server = WsFake::start(|r, before| {
        if r.line.ends_with("/late/console") && before < 2 {
            return Answer::Reply(400, status_body(400, "BadRequest", "VMI is not running"));
        }
        Answer::Echo(Vec::new())
    });
    let mut child = spawn(
        &server,
        &["console", "late"],
        Stdio::piped(),
        Stdio::piped(),
        None,
    );
    let err = lines(child.stderr.take().unwrap());
    assert_eq!(
        next_line(&err, "waiting"),
        "Waiting for VMI late to be running (at most 5m): VMI is not running"
    );
    assert_eq!(
        next_line(&err, "connected"),
        "Successfully connected to late console. Press Ctrl+] or Ctrl+5 to exit console."
    );
    // Not a terminal: the bytes pass as they come, and the end of the input ends it.
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"uname\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(read_n(&mut stdout, 6), b"uname\n");
    drop(stdin);
    assert_eq!(exit_code(&mut child), 0);
    assert_eq!(server.upgrades().len(), 3);
}

#[test]
fn console_escape_ends_the_session_without_sending_it() {
    let server = WsFake::start(kubevirt);
    let mut child = spawn(
        &server,
        &["console", "vmi1"],
        Stdio::piped(),
        Stdio::piped(),
        None,
    );
    let err = lines(child.stderr.take().unwrap());
    next_line(&err, "connected");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"ab").unwrap();
    stdin.flush().unwrap();
    assert_eq!(read_n(&mut stdout, 2), b"ab");
    stdin.write_all(b"c\x1dnot sent").unwrap();
    stdin.flush().unwrap();
    assert_eq!(exit_code(&mut child), 0);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest == b"c" || rest.is_empty(), "{rest:?}");
}

#[test]
fn console_in_a_terminal_is_raw_and_restored() {
    let server = WsFake::start(kubevirt);
    let (master, slave) = open_pty();
    let before = rustix::termios::tcgetattr(&slave).unwrap();
    assert!(
        before
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON)
    );
    let mut child = spawn(
        &server,
        &["console", "vmi1"],
        Stdio::from(slave.try_clone().unwrap()),
        Stdio::from(slave.try_clone().unwrap()),
        None,
    );
    let err = lines(child.stderr.take().unwrap());
    assert_eq!(
        next_line(&err, "connected"),
        "Successfully connected to vmi1 console. Press Ctrl+] or Ctrl+5 to exit console."
    );
    let during = rustix::termios::tcgetattr(&slave).unwrap();
    assert!(
        !during
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON),
        "raw mode while connected"
    );
    let mut terminal = std::fs::File::from(master);
    // No newline: in raw mode each key goes at once; Ctrl+C is a byte for the guest.
    terminal.write_all(b"ls\x03").unwrap();
    let (tx, rx) = mpsc::channel();
    let mut reader = terminal.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut echoed = Vec::new();
    while echoed.len() < 3 {
        echoed.extend(rx.recv_timeout(DEADLINE).expect("the echo comes back"));
    }
    assert_eq!(echoed, b"ls\x03");
    terminal.write_all(&[0x1d]).unwrap();
    assert_eq!(exit_code(&mut child), 0);
    let after = rustix::termios::tcgetattr(&slave).unwrap();
    assert!(
        after
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON),
        "the terminal is restored"
    );
}

/// A fake `ssh`/`scp` on the PATH: records its arguments, runs the ProxyCommand it was given
/// with `hello-guest` as input, keeps what came back, and exits 7.
fn fake_client(dir: &Path, name: &str) {
    let script = format!(
        r#"#!/bin/sh
printf '%s\n' "$@" > "{dir}/{name}.args"
for a in "$@"; do
  case "$a" in ProxyCommand=*) pc="${{a#ProxyCommand=}}" ;; esac
done
pc=$(printf '%s' "$pc" | sed 's/%%/%/g')
printf 'hello-guest' | sh -c "$pc" > "{dir}/{name}.out" 2> "{dir}/{name}.err"
exit 7
"#,
        dir = dir.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_with_path(
    server: &WsFake,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let path = format!("{}:/usr/bin:/bin", dir.display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtctl"));
    cmd.arg("-s")
        .arg(&server.url)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home-for-virtctl-tests")
        .env("PATH", path)
        .env_remove("USER")
        .env_remove("USERNAME")
        .env_remove("LOGNAME")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn recorded_args(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.args")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ssh_runs_the_local_client_with_a_working_proxy_command() {
    let server = WsFake::start(kubevirt);
    let dir = tempfile::tempdir().unwrap();
    fake_client(dir.path(), "ssh");
    let (code, stderr) = run_with_path(
        &server,
        dir.path(),
        &[
            "ssh",
            "jdoe@vmi/vmi1/dev",
            "-i",
            "/keys/id_ed25519",
            "-p",
            "2222",
            "-t",
            "-o StrictHostKeyChecking=no",
            "-c",
            "uname -a",
        ],
        &[],
    );
    assert_eq!(code, 7, "ssh's exit status: {stderr}");
    assert_eq!(stderr, "", "nothing of virtctl's own");
    let virtctl = env!("CARGO_BIN_EXE_virtctl");
    let proxy = format!(
        "ProxyCommand={virtctl} --server={} port-forward --stdio=true vmi/vmi1/dev 2222",
        server.url
    );
    assert_eq!(
        recorded_args(dir.path(), "ssh"),
        [
            "-o",
            &proxy,
            "-o StrictHostKeyChecking=no",
            "-i",
            "/keys/id_ed25519",
            "jdoe@vmi.vmi1.dev",
            "uname -a"
        ]
    );
    let echoed = std::fs::read_to_string(dir.path().join("ssh.out")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("ssh.err")).unwrap();
    assert_eq!(echoed, "hello-guest", "the ProxyCommand's stream: {err}");
    assert_eq!(
        server.upgrades()[0].line,
        format!("GET {SUB}/dev/virtualmachineinstances/vmi1/portforward/2222/tcp")
    );
}

#[test]
fn ssh_user_comes_from_the_flag_or_the_environment() {
    let server = WsFake::start(kubevirt);
    let dir = tempfile::tempdir().unwrap();
    fake_client(dir.path(), "ssh");
    run_with_path(
        &server,
        dir.path(),
        &["ssh", "vm/vm1", "--username", "cirros"],
        &[],
    );
    let args = recorded_args(dir.path(), "ssh");
    assert_eq!(args.last().unwrap(), "cirros@vm.vm1.default");
    run_with_path(&server, dir.path(), &["ssh", "vm/vm1"], &[("USER", "me")]);
    let args = recorded_args(dir.path(), "ssh");
    assert_eq!(args.last().unwrap(), "me@vm.vm1.default");
    run_with_path(
        &server,
        dir.path(),
        &["-n", "ns1", "ssh", "vm/vm1", "-l", "root"],
        &[],
    );
    let args = recorded_args(dir.path(), "ssh");
    assert_eq!(args.last().unwrap(), "root@vm.vm1.ns1");
}

#[test]
fn scp_runs_the_local_client_in_both_directions() {
    let server = WsFake::start(kubevirt);
    let dir = tempfile::tempdir().unwrap();
    fake_client(dir.path(), "scp");
    let (code, _) = run_with_path(
        &server,
        dir.path(),
        &["scp", "-r", "local dir", "jdoe@vmi/vmi1:/tmp/x"],
        &[],
    );
    assert_eq!(code, 7);
    let args = recorded_args(dir.path(), "scp");
    assert_eq!(
        args[args.len() - 3..],
        ["-r", "local dir", "jdoe@vmi.vmi1.default:/tmp/x"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("scp.out")).unwrap(),
        "hello-guest"
    );
    run_with_path(
        &server,
        dir.path(),
        &["scp", "--preserve", "vm/vm1/dev:/etc/hostname", "."],
        &[("USER", "me")],
    );
    let args = recorded_args(dir.path(), "scp");
    assert_eq!(
        args[args.len() - 3..],
        ["-p", "me@vm.vm1.dev:/etc/hostname", "."]
    );
}

#[test]
fn ssh_and_scp_bad_arguments() {
    let server = WsFake::start(kubevirt);
    let dir = tempfile::tempdir().unwrap();
    // Only the empty directory on the PATH: no ssh.
    let only_dir = dir.path().to_str().unwrap();
    let run = |args: &[&str]| run_with_path(&server, dir.path(), args, &[("PATH", only_dir)]);
    let cases: [(&[&str], &str); 5] = [
        (
            &["ssh", "vmi1"],
            "target must contain type and name separated by '/'",
        ),
        (&["ssh", "@vmi/x"], "expected username before '@'"),
        (
            &["scp", "a", "b"],
            "none of the two provided locations seems to be a remote location: \"a\" to \"b\"",
        ),
        (
            &["ssh", "vmi/x", "-p", "0"],
            "invalid --port 0: it must be a number from 1 to 65535",
        ),
        (
            &["ssh", "vmi/x"],
            "cannot run ssh: it is not on the PATH (install OpenSSH's client, or use --local-ssh=false)",
        ),
    ];
    for (args, want) in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(stderr.trim_end(), want, "{args:?}");
    }
}
