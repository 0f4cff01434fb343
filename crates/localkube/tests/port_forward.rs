//! `kubectl port-forward` through localkube, end to end: the real binary whose node runs an
//! echo server (socat, listening on the pod's loopback IP) as a process pod, and the real
//! kubectl, over both protocols it speaks (SPDY tunnelled in a websocket, and plain SPDY/3.1
//! after an HTTP upgrade), to a pod and through a Service; and its errors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{Localkube, have_kubectl, kubectl_path};

const IMAGE: &str = "localkube.test/echo";
/// Generous, only so that something broken fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(60);

/// Whether socat (the echo server) can run here: required under `CI=true`, else skipped.
fn have_socat(test: &str) -> bool {
    let found = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: socat is required under CI but was not found");
        }
        eprintln!("SKIPPED {test}: socat is not installed (scripts/install-deps.sh installs it)");
    }
    found
}

fn tools(test: &str) -> bool {
    have_kubectl(test) && have_socat(test)
}

/// A localkube whose node runs `localkube.test/echo` as a script: echo servers on 8080 and
/// 9090 of the pod's IP (`$POD_IP`, from the downward API).
fn start() -> (Localkube, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("echo");
    let script = "#!/bin/sh\n\
        socat TCP-LISTEN:8080,bind=$POD_IP,reuseaddr,fork EXEC:cat &\n\
        exec socat TCP-LISTEN:9090,bind=$POD_IP,reuseaddr,fork EXEC:cat\n";
    std::fs::write(&entry, script).unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = format!("{IMAGE}={}", entry.display());
    let lk = Localkube::start_with(&[
        "--node-start-delay",
        "0",
        "--node-shutdown-time",
        "0",
        "--image",
        &image,
    ]);
    (lk, dir)
}

const ECHO_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: localkube.test/echo:v1
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    ports:
    - {name: web, containerPort: 8080}
    - {name: other, containerPort: 9090}
";

/// Creates the echo pod and waits until both its ports accept connections on its pod IP.
fn echo_pod(lk: &Localkube) -> String {
    lk.apply_yaml(ECHO_POD);
    let mut ip = String::new();
    lk.eventually(60, "the echo pod's IP", || {
        ip = lk.ok(&["get", "pod", "echo", "-o", "jsonpath={.status.podIP}"]);
        !ip.is_empty()
    });
    assert!(
        ip.starts_with("127."),
        "a process pod's IP is on loopback: {ip}"
    );
    assert_ne!(ip, "127.0.0.1");
    lk.eventually(60, "the echo servers", || {
        [8080, 9090]
            .iter()
            .all(|p| TcpStream::connect((ip.as_str(), *p)).is_ok())
    });
    ip
}

/// A running `kubectl port-forward`, its local ports and what it printed on stderr.
struct PortForward {
    child: Child,
    /// (remote port, local port on 127.0.0.1), in the order kubectl printed them.
    ports: Vec<(u16, u16)>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl PortForward {
    /// Runs `kubectl port-forward TARGET PORTS.. -v=6`; waits for a local port for each.
    /// `spdy`: turn kubectl's websocket tunnel off, so that it upgrades to SPDY/3.1 itself.
    fn start(lk: &Localkube, target: &str, remote_ports: &[&str], spdy: bool) -> PortForward {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(["port-forward", target])
            .args(remote_ports)
            .arg("-v=6")
            .env("KUBECONFIG", &lk.kubeconfig)
            .env("KUBECACHEDIR", lk.dir.path().join("cache"))
            .env("HOME", lk.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // On by default since kubectl 1.31; set either way so that 1.30's alpha is on too.
        cmd.env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if spdy { "false" } else { "true" },
        );
        let mut child = cmd.spawn().expect("run kubectl port-forward");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            })
        };
        let (tx, rx) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut ports = Vec::new();
        let start = Instant::now();
        while ports.len() < remote_ports.len() {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "kubectl port-forward {target} printed no local port; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            };
            // "Forwarding from 127.0.0.1:40123 -> 8080"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                let (local, remote) = rest.split_once(" -> ").unwrap();
                ports.push((remote.parse().unwrap(), local.parse().unwrap()));
            }
        }
        PortForward {
            child,
            ports,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    fn local(&self, remote: u16) -> u16 {
        self.ports
            .iter()
            .find(|(r, _)| *r == remote)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| panic!("no local port for {remote}: {:?}", self.ports))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for kubectl to exit by itself.
    fn exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Everything kubectl wrote is read once the pipe ends.
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kubectl port-forward did not exit; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to kubectl's local port");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Sends `payload` through the local port, closes the sending side and reads the echo to
/// the end: what came back.
fn echo_through(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    let mut writer = s.try_clone().unwrap();
    let payload = payload.to_vec();
    let sending = std::thread::spawn(move || {
        writer.write_all(&payload).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read the echo");
    sending.join().unwrap();
    back
}

/// Distinct bytes for connection `n`.
fn payload(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + n * 13) % 251) as u8).collect()
}

/// Bytes both ways through both ports, several connections at once, then more after them.
fn exercise(pf: &PortForward) {
    let mut threads = Vec::new();
    for n in 0..6 {
        let port = pf.local(if n % 2 == 0 { 8080 } else { 9090 });
        threads.push(std::thread::spawn(move || {
            let sent = payload(n, 200_000 + n * 1000);
            let back = echo_through(port, &sent);
            assert!(back == sent, "connection {n}: {} bytes back", back.len());
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    // Interactive: each line comes back before the next is sent.
    let mut s = connect(pf.local(8080));
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for line in ["hello\n", "again\n"] {
        s.write_all(line.as_bytes()).unwrap();
        let mut got = String::new();
        reader.read_line(&mut got).unwrap();
        assert_eq!(got, line);
    }
}

/// Whether kubectl's `-v=6` log shows the portforward request answered 101 after `method`
/// (kubectl 1.32: `GET https://... 101 Switching Protocols in 4 milliseconds`; 1.33:
/// `"Response" verb="GET" url="https://..." status="101 Switching Protocols"`).
fn upgraded_with(log: &str, method: &str) -> bool {
    log.lines().any(|l| {
        l.contains("/pods/echo/portforward")
            && l.contains("101 Switching Protocols")
            && (l.contains(&format!("] {method} https://"))
                || l.contains(&format!("verb=\"{method}\"")))
    })
}

#[test]
fn kubectl_forwards_to_a_process_pod_over_websocket_and_spdy() {
    if !tools("kubectl_forwards_to_a_process_pod_over_websocket_and_spdy") {
        return;
    }
    let (lk, _dir) = start();
    echo_pod(&lk);
    // kubectl 1.31+ first: SPDY tunnelled in a websocket (GET, subprotocol
    // SPDY/3.1+portforward.k8s.io).
    let pf = PortForward::start(&lk, "pod/echo", &[":8080", ":9090"], false);
    exercise(&pf);
    let log = pf.stderr();
    assert!(log.contains("Before WebSocket Upgrade Connection"), "{log}");
    assert!(upgraded_with(&log, "GET"), "{log}");
    assert!(
        log.contains("negotiated protocol: portforward.k8s.io"),
        "{log}"
    );
    drop(pf);
    // Plain SPDY/3.1 (POST with Upgrade: SPDY/3.1).
    let pf = PortForward::start(&lk, "pod/echo", &[":8080", ":9090"], true);
    exercise(&pf);
    let log = pf.stderr();
    assert!(!log.contains("WebSocket"), "{log}");
    assert!(upgraded_with(&log, "POST"), "{log}");
}

#[test]
fn kubectl_forwards_to_a_service_by_target_port_name() {
    if !tools("kubectl_forwards_to_a_service_by_target_port_name") {
        return;
    }
    let (lk, _dir) = start();
    echo_pod(&lk);
    lk.apply_yaml(
        "apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: other, port: 90, targetPort: 9090}
",
    );
    let pf = PortForward::start(&lk, "svc/echo", &[":80", ":90"], false);
    // kubectl maps the service port to the pod's: 80 -> web (8080), 90 -> 9090.
    let mut remotes: Vec<u16> = pf.ports.iter().map(|(r, _)| *r).collect();
    remotes.sort();
    assert_eq!(remotes, [8080, 9090]);
    for remote in [8080, 9090] {
        let sent = payload(remote as usize, 10_000);
        assert!(echo_through(pf.local(remote), &sent) == sent);
    }
}

/// Opens a connection through kubectl's local port and sees it closed without an answer.
fn closed_without_answer(port: u16) {
    let mut s = connect(port);
    let _ = s.write_all(b"anyone?\n");
    let mut back = Vec::new();
    // A reset counts as closed too.
    let _ = s.read_to_end(&mut back);
    assert!(back.is_empty(), "{back:?}");
}

#[test]
fn a_port_nothing_listens_on_closes_the_connection_with_kubelets_error() {
    if !tools("a_port_nothing_listens_on_closes_the_connection_with_kubelets_error") {
        return;
    }
    let (lk, _dir) = start();
    let ip = echo_pod(&lk);
    for spdy in [false, true] {
        let mut pf = PortForward::start(&lk, "pod/echo", &[":7070"], spdy);
        closed_without_answer(pf.local(7070));
        // kubectl reports the error stream's message, then gives up on the pod.
        assert!(!pf.exit().success());
        let log = pf.stderr();
        let want = format!(
            "error forwarding port 7070 to pod default/echo, uid {}: failed to connect to {ip}:7070 inside the pod's network: dial tcp {ip}:7070: connect: connection refused",
            lk.ok(&["get", "pod", "echo", "-o", "jsonpath={.metadata.uid}"])
        );
        assert!(log.contains(&want), "spdy={spdy}: {log}");
        assert!(log.contains("error: lost connection to pod"), "{log}");
    }
}

#[test]
fn a_simulated_pod_says_it_has_no_processes() {
    if !tools("a_simulated_pod_says_it_has_no_processes") {
        return;
    }
    let (lk, _dir) = start();
    lk.apply_yaml(
        "apiVersion: v1
kind: Pod
metadata: {name: sim}
spec:
  containers:
  - {name: web, image: nginx:1.27}
",
    );
    lk.eventually(60, "the simulated pod running", || {
        lk.ok(&["get", "pod", "sim", "-o", "jsonpath={.status.phase}"]) == "Running"
    });
    let mut pf = PortForward::start(&lk, "pod/sim", &[":80"], false);
    closed_without_answer(pf.local(80));
    assert!(!pf.exit().success());
    let log = pf.stderr();
    assert!(
        log.contains("pod default/sim has no processes on this node (simulated): port-forward needs a process pod"),
        "{log}"
    );
}

#[test]
fn missing_and_unscheduled_pods_are_refused_before_the_upgrade() {
    if !have_kubectl("missing_and_unscheduled_pods_are_refused_before_the_upgrade") {
        return;
    }
    let (lk, _dir) = start();
    let err = lk.fails(&["port-forward", "pod/nope", ":80"]);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    // The API's own answers (kubectl checks the pod itself first).
    let raw = "/api/v1/namespaces/default/pods/nope/portforward";
    let err = lk.fails(&["get", "--raw", raw]);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    lk.apply_yaml(
        "apiVersion: v1
kind: Pod
metadata: {name: unscheduled}
spec:
  schedulerName: nobody
  containers:
  - {name: web, image: nginx:1.27}
",
    );
    let raw = "/api/v1/namespaces/default/pods/unscheduled/portforward";
    let err = lk.fails(&["get", "--raw", raw]);
    assert!(
        err.contains("pod unscheduled does not have a host assigned"),
        "{err}"
    );
    let err = lk.fails(&["port-forward", "pod/unscheduled", ":80"]);
    assert!(
        err.contains("unable to forward port because pod is not running. Current status=Pending"),
        "{err}"
    );
}

#[test]
fn a_request_without_upgrade_is_refused() {
    if !tools("a_request_without_upgrade_is_refused") {
        return;
    }
    let (lk, _dir) = start();
    echo_pod(&lk);
    let err = lk.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/echo/portforward",
    ]);
    assert!(err.contains("Upgrade request required"), "{err}");
}

/// The status line and body of a raw HTTP/1.1 request to the node's kubelet endpoint.
fn kubelet_answer(port: u16, request: &str) -> (String, String) {
    let mut s = connect(port);
    s.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status.trim().to_string(), String::from_utf8(body).unwrap())
}

#[test]
fn the_kubelet_endpoint_refuses_before_upgrading() {
    if !tools("the_kubelet_endpoint_refuses_before_upgrading") {
        return;
    }
    let (lk, _dir) = start();
    echo_pod(&lk);
    let port: u16 = lk
        .ok(&[
            "get",
            "node",
            "localkube-node",
            "-o",
            "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
        ])
        .parse()
        .unwrap();
    let spdy = |path: &str, version: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {version}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let cases = [
        (
            spdy("/portForward/default/nope", "portforward.k8s.io"),
            "404",
            "pod does not exist".to_string(),
        ),
        (
            spdy("/portForward/default/echo", "v4.channel.k8s.io"),
            "403",
            r#"unable to upgrade: unable to negotiate protocol: client supports ["v4.channel.k8s.io"], server supports ["portforward.k8s.io"]"#.to_string(),
        ),
        (
            "GET /portForward/default/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
                .to_string(),
            "400",
            r#"unable to upgrade: unable to negotiate protocol: client supports ["v5.channel.k8s.io"], server supports ["SPDY/3.1+portforward.k8s.io"]"#.to_string(),
        ),
        (
            "GET /portForward/default/echo HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "400",
            "Upgrade request required".to_string(),
        ),
    ];
    for (request, code, body) in cases {
        let (status, got) = kubelet_answer(port, &request);
        assert!(
            status.starts_with(&format!("HTTP/1.1 {code} ")),
            "{request}: {status}"
        );
        assert_eq!(got, body, "{request}");
    }
}
