//! End to end: the real `virt-launcher` and `virt-tail` binaries with a real QEMU (TCG), driven
//! over the command socket in a temporary directory that stands for the container's root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const UID: &str = "0a1b2c3d-0000-4000-8000-00000000abcd";
const FIRMWARE_UUID: &str = "5a9fc181-957e-5c32-9e5a-2de5e9673531";
const QEMU: &str = "qemu-system-x86_64";
/// Only a guard against hangs; nothing here is expected to take this long.
const DEADLINE: Duration = Duration::from_secs(90);

/// True when QEMU can run; otherwise says SKIPPED (or fails under CI=true).
fn qemu_available(test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(QEMU).is_file()));
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: {QEMU} is required under CI=true but is not on PATH");
        }
        println!("SKIPPED: {test}: {QEMU} is not on PATH");
    }
    found
}

/// A 1 MiB raw disk whose boot sector is `code` (real mode, loaded at 0x7c00).
fn boot_disk(code: &[u8]) -> Vec<u8> {
    // SeaBIOS cannot read a disk much smaller than this.
    let mut disk = vec![0u8; 1 << 20];
    disk[..code.len()].copy_from_slice(code);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

/// Machine code that writes `text` to the first serial port.
fn serial_print(text: &[u8]) -> Vec<u8> {
    let mut code = vec![0xBA, 0xF8, 0x03]; // mov dx, 0x3f8
    for byte in text {
        code.extend([0xB0, *byte, 0xEE]); // mov al, byte; out dx, al
    }
    code
}

/// Writes its boot sector to sector 2 (int 13h), prints a line on the serial port and powers
/// the machine off through q35's ACPI PM1a control port (0x604).
fn self_powering_off_disk() -> Vec<u8> {
    let mut code: Vec<u8> = vec![
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xC0, // mov es, ax
        0xBB, 0x00, 0x7C, // mov bx, 0x7c00
        0xB8, 0x01, 0x03, // mov ax, 0x0301: write one sector
        0xB9, 0x02, 0x00, // mov cx, 2: cylinder 0, sector 2
        0x30, 0xF6, // xor dh, dh: head 0 (dl is the boot drive)
        0xCD, 0x13, // int 0x13
    ];
    code.extend(serial_print(b"guest says hi\r\n"));
    code.extend([
        0xBA, 0x04, 0x06, // mov dx, 0x604
        0xB8, 0x00, 0x20, // mov ax, 0x2000: SLP_EN, S5
        0xEF, // out dx, ax
        0xF4, 0xEB, 0xFD, // hlt; jmp back to hlt
    ]);
    boot_disk(&code)
}

/// Prints a line, then reports a panic on the pvpanic device's ISA port (0x505).
fn panicking_disk() -> Vec<u8> {
    let mut code = serial_print(b"about to panic\r\n");
    code.extend([
        0xBA, 0x05, 0x05, // mov dx, 0x505
        0xB0, 0x01, // mov al, 1: panicked
        0xEE, // out dx, al
        0xF4, 0xEB, 0xFD, // hlt; jmp back to hlt
    ]);
    boot_disk(&code)
}

fn vmi(image: &str) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "testvm", "namespace": "testns", "uid": UID},
        "spec": {
            "domain": {
                "firmware": {"uuid": FIRMWARE_UUID, "serial": "s-123"},
                "resources": {"requests": {"memory": "64Mi"}},
                "devices": {"disks": [
                    {"name": "containerdisk", "disk": {"bus": "virtio"}},
                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}
                ]}
            },
            "volumes": [
                {"name": "containerdisk", "containerDisk": {"image": image}},
                {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}
            ]
        }
    })
}

struct Launcher {
    root: tempfile::TempDir,
    child: Child,
}

impl Launcher {
    /// Starts the launcher in a fresh root holding `images` (name, bytes).
    fn start(grace_seconds: u64, images: &[(&str, Vec<u8>)]) -> Launcher {
        Launcher::start_with_pod_ip(grace_seconds, images, None)
    }

    fn start_with_pod_ip(
        grace_seconds: u64,
        images: &[(&str, Vec<u8>)],
        pod_ip: Option<&str>,
    ) -> Launcher {
        let root = tempfile::tempdir().unwrap();
        let images_dir = root.path().join("var/lib/virt-toolkit/images");
        std::fs::create_dir_all(&images_dir).unwrap();
        for (name, bytes) in images {
            std::fs::write(images_dir.join(name), bytes).unwrap();
        }
        let stderr = std::fs::File::create(root.path().join("launcher.stderr")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_virt-launcher"));
        match pod_ip {
            Some(ip) => command.env("POD_IP", ip),
            None => command.env_remove("POD_IP"),
        };
        let child = command
            .args(["--namespace", "testns", "--name", "testvm", "--uid", UID])
            .args(["--grace-period-seconds", &grace_seconds.to_string()])
            .env("VIRT_LAUNCHER_ACCEL", "tcg")
            .current_dir(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let launcher = Launcher { root, child };
        wait_for(|| launcher.socket().exists(), "the command socket");
        launcher
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn socket(&self) -> PathBuf {
        self.path(&format!("var/run/kubevirt/sockets/{UID}.sock"))
    }

    /// Connects, retrying while the socket is bound but not yet listening (a busy machine can
    /// show that instant); a launcher that has gone fails with its stderr.
    fn connect(&self) -> UnixStream {
        let start = Instant::now();
        loop {
            match UnixStream::connect(self.socket()) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(DEADLINE)).unwrap();
                    return stream;
                }
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!(
                    "cannot connect to the launcher: {e}; its stderr: {}",
                    self.stderr()
                ),
            }
        }
    }

    /// Sends one request line and reads its response line.
    fn request(&self, request: Value) -> Value {
        let mut stream = self.connect();
        writeln!(stream, "{request}").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn sync(&self, image: &str) -> Value {
        self.request(json!({"op": "sync", "vmi": vmi(image)}))
    }

    fn sync_vmi(&self, vmi: Value) -> Value {
        self.request(json!({"op": "sync", "vmi": vmi}))
    }

    /// Collects every line of a `watch` in the background.
    fn watch(&self) -> Arc<Mutex<Vec<Value>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut stream = self.connect();
        writeln!(stream, r#"{{"op":"watch"}}"#).unwrap();
        let lines = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        seen
    }

    fn wait(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status
                    .code()
                    .expect("the launcher exits, not killed by a signal");
            }
            assert!(start.elapsed() < DEADLINE, "the launcher did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("launcher.stderr")).unwrap()
    }

    fn exited_file(&self) -> String {
        std::fs::read_to_string(self.path("var/run/kubevirt-private/launcher-exited")).unwrap()
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state(response: &Value) -> &str {
    response["status"]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no state in {response}"))
}

fn qemu_pid(response: &Value) -> u32 {
    response["status"]["qemuPid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {response}")) as u32
}

/// The process's command line as `ps` shows it.
fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// The process has a SIGTERM handler (bit 15 of SigCgt in /proc/PID/status).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << 14) != 0)
}

fn states(watched: &Arc<Mutex<Vec<Value>>>) -> Vec<String> {
    watched
        .lock()
        .unwrap()
        .iter()
        .map(|r| state(r).to_string())
        .collect()
}

#[test]
fn pause_unpause_then_shutdown_of_a_guest_that_ignores_acpi_kills_it_after_the_grace() {
    if !qemu_available("pause/unpause/shutdown") {
        return;
    }
    let blank = vec![0u8; 1 << 20];
    let mut launcher = Launcher::start(30, &[("test_testdisk.img", blank)]);
    assert_eq!(state(&launcher.request(json!({"op": "status"}))), "NoState");
    let watched = launcher.watch();

    let synced = launcher.sync("quay.io/test/testdisk:latest");
    assert_eq!(state(&synced), "Running", "{synced}");
    let pid = qemu_pid(&synced);
    let argv = cmdline(pid);
    let joined = argv.join(" ");
    assert!(
        joined.contains("-name guest=testns_testvm,debug-threads=on"),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("-uuid {FIRMWARE_UUID}")),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("uuid={FIRMWARE_UUID},serial=s-123")),
        "{joined}"
    );
    assert!(
        joined
            .contains("file=var/lib/virt-toolkit/images/test_testdisk.img,format=raw,snapshot=on"),
        "{joined}"
    );
    // sync is idempotent: the same QEMU.
    assert_eq!(
        qemu_pid(&launcher.sync("quay.io/test/testdisk:latest")),
        pid
    );

    let paused = launcher.request(json!({"op": "pause"}));
    assert_eq!(state(&paused), "Paused", "{paused}");
    assert_eq!(paused["status"]["reason"], "Paused by user");
    assert_eq!(state(&launcher.request(json!({"op": "status"}))), "Paused");
    let resumed = launcher.request(json!({"op": "unpause"}));
    assert_eq!(state(&resumed), "Running", "{resumed}");

    // SeaBIOS writes to the serial console even without a bootable disk.
    let log = launcher.path("var/run/kubevirt-private/virt-serial0-log");
    wait_for(
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("SeaBIOS")),
        "SeaBIOS on the serial log",
    );

    let shutdown = launcher.request(json!({"op": "shutdown", "graceSeconds": 1}));
    assert_eq!(state(&shutdown), "Shutdown", "{shutdown}");
    assert_eq!(launcher.wait(), 1, "{}", launcher.stderr());
    assert!(!process_alive(pid), "QEMU {pid} still runs");
    assert_eq!(launcher.exited_file(), "1\n");
    let stderr = launcher.stderr();
    assert!(
        stderr.contains("did not power off within the grace period"),
        "{stderr}"
    );
    assert!(
        stderr.contains("starting QEMU: qemu-system-x86_64 -name guest=testns_testvm"),
        "{stderr}"
    );

    wait_for(
        || states(&watched).last().map(String::as_str) == Some("Shutoff"),
        "the final watch line",
    );
    let seen = states(&watched);
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            "NoState", "Running", "Paused", "Running", "Shutdown", "Shutoff"
        ],
        "{seen:?}"
    );
    let last = watched.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last["status"]["reason"],
        "killed after the shutdown grace period"
    );
    assert!(
        !launcher.socket().exists(),
        "the command socket is removed on exit"
    );
}

#[test]
fn reset_restarts_the_machine_in_the_same_qemu_and_is_refused_before_sync() {
    if !qemu_available("reset") {
        return;
    }
    let blank = vec![0u8; 1 << 20];
    let mut launcher = Launcher::start(30, &[("test_testdisk.img", blank)]);
    let early = launcher.request(json!({"op": "reset"}));
    assert_eq!(early["ok"], false, "{early}");
    assert_eq!(early["error"], "the domain has not started (no sync yet)");

    let synced = launcher.sync("quay.io/test/testdisk:latest");
    let pid = qemu_pid(&synced);
    let log = launcher.path("var/run/kubevirt-private/virt-serial0-log");
    let seabios_count = || {
        std::fs::read_to_string(&log)
            .map(|l| l.matches("SeaBIOS").count())
            .unwrap_or(0)
    };
    wait_for(|| seabios_count() >= 1, "SeaBIOS on the serial log");
    let before = seabios_count();

    let reset = launcher.request(json!({"op": "reset"}));
    assert_eq!(reset["ok"], true, "{reset}");
    assert_eq!(state(&reset), "Running", "{reset}");
    assert_eq!(qemu_pid(&reset), pid, "the same QEMU after a reset");
    // The firmware starts over: its banner appears once more.
    wait_for(|| seabios_count() > before, "SeaBIOS again after the reset");
    assert!(process_alive(pid), "QEMU {pid} ended");

    assert_eq!(state(&launcher.request(json!({"op": "kill"}))), "Shutoff");
    assert_eq!(launcher.wait(), 1, "{}", launcher.stderr());
}

#[test]
fn a_guest_that_powers_off_ends_the_launcher_with_0_and_virt_tail_shows_its_console() {
    if !qemu_available("guest poweroff and virt-tail") {
        return;
    }
    let disk = self_powering_off_disk();
    let mut launcher = Launcher::start(30, &[("poweroff.img", disk.clone())]);
    let tail = Command::new(env!("CARGO_BIN_EXE_virt-tail"))
        .args(["--logfile", "/var/run/kubevirt-private/virt-serial0-log"])
        .args(["--socket", &format!("/var/run/kubevirt/sockets/{UID}.sock")])
        .current_dir(launcher.root.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let synced = launcher.sync("poweroff");
    assert!(synced["ok"] == true, "{synced}");
    assert_eq!(launcher.wait(), 0, "{}", launcher.stderr());
    assert_eq!(launcher.exited_file(), "0\n");
    assert!(
        launcher
            .stderr()
            .contains("domain Shutoff (guest powered off)"),
        "{}",
        launcher.stderr()
    );

    let output = tail.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let console = String::from_utf8_lossy(&output.stdout);
    assert!(console.contains("SeaBIOS"), "{console}");
    assert!(console.contains("guest says hi\r\n"), "{console}");

    // The guest wrote its sector 2, but snapshot=on kept the base image as it was.
    let image = std::fs::read(launcher.path("var/lib/virt-toolkit/images/poweroff.img")).unwrap();
    assert!(image == disk, "the base image changed");
}

#[test]
fn a_guest_panic_is_crashed_and_exit_1() {
    if !qemu_available("guest panic") {
        return;
    }
    let mut launcher = Launcher::start(30, &[("panic.img", panicking_disk())]);
    let watched = launcher.watch();
    let synced = launcher.sync("panic");
    assert!(synced["ok"] == true, "{synced}");
    assert_eq!(launcher.wait(), 1, "{}", launcher.stderr());
    assert_eq!(launcher.exited_file(), "1\n");
    wait_for(
        || states(&watched).last().map(String::as_str) == Some("Crashed"),
        "Crashed",
    );
    let last = watched.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last["status"]["reason"],
        "guest panicked",
        "{}",
        launcher.stderr()
    );
    let log = std::fs::read_to_string(launcher.path("var/run/kubevirt-private/virt-serial0-log"));
    assert!(log.unwrap().contains("about to panic"));
}

/// The VMI with one interface declaring `port`.
fn vmi_with_port(port: u16) -> Value {
    let mut vmi = vmi("testdisk");
    vmi["spec"]["domain"]["devices"]["interfaces"] =
        json!([{"name": "default", "masquerade": {}, "ports": [{"port": port}]}]);
    vmi["spec"]["networks"] = json!([{"name": "default", "pod": {}}]);
    vmi
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn declared_ports_are_forwarded_on_a_local_pod_ip_only() {
    if !qemu_available("port forwarding") {
        return;
    }
    let port = free_port();
    // A declared port QEMU cannot bind (here: taken) is skipped; QEMU starts all the same.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut vmi = vmi_with_port(port);
    vmi["spec"]["domain"]["devices"]["interfaces"][0]["ports"] =
        json!([{"port": port}, {"port": taken_port}]);
    let launcher = Launcher::start_with_pod_ip(
        30,
        &[("testdisk.img", vec![0u8; 1 << 20])],
        Some("127.0.0.1"),
    );
    let response = launcher.sync_vmi(vmi);
    assert_eq!(state(&response), "Running", "{response}");
    // QEMU's user-mode network listens on the Pod IP for the guest.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the forwarded port listens");
    let stderr = launcher.stderr();
    assert!(
        stderr.contains(&format!(
            "declared port tcp/{port} forwarded on 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("not forwarding declared port tcp/{taken_port}: ")),
        "{stderr}"
    );
    // A forward of a declared port answers the Pod IP's address.
    let forward = launcher.request(json!({"op": "forward", "port": port, "protocol": "tcp"}));
    assert_eq!(
        forward,
        json!({"ok": true, "address": format!("127.0.0.1:{port}")})
    );

    // 192.0.2.1 (TEST-NET-1) is no address of this host: nothing is forwarded, and it is said.
    let simulated = Launcher::start_with_pod_ip(
        30,
        &[("testdisk.img", vec![0u8; 1 << 20])],
        Some("192.0.2.1"),
    );
    let pid = qemu_pid(&simulated.sync_vmi(vmi_with_port(port)));
    assert!(!cmdline(pid).join(" ").contains("hostfwd"));
    let stderr = simulated.stderr();
    assert!(
        stderr.contains(&format!("not forwarding ports [{port}]")),
        "{stderr}"
    );
    let publish = simulated.request(json!({"op": "publish", "port": 22, "protocol": "tcp"}));
    assert_eq!(
        publish,
        json!({"ok": false, "error": "cannot publish port 22: POD_IP is not an address of this host"})
    );
}

#[test]
fn forward_picks_a_loopback_port_once_per_port_and_protocol() {
    if !qemu_available("forward") {
        return;
    }
    let launcher = Launcher::start(30, &[("testdisk.img", vec![0u8; 1 << 20])]);
    let before = launcher.request(json!({"op": "forward", "port": 22, "protocol": "tcp"}));
    assert_eq!(
        before,
        json!({"ok": false, "error": "the domain has not started (no sync yet)"})
    );
    launcher.sync_vmi(vmi_with_port(8080));
    let first = launcher.request(json!({"op": "forward", "port": 22, "protocol": "tcp"}));
    let address = first["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"));
    assert!(address.starts_with("127.0.0.1:"), "{first}");
    let again = launcher.request(json!({"op": "forward", "port": 22, "protocol": "tcp"}));
    assert_eq!(again, first);
    let udp = launcher.request(json!({"op": "forward", "port": 22, "protocol": "udp"}));
    let udp_address = udp["address"].as_str().unwrap_or_else(|| panic!("{udp}"));
    assert_ne!(udp_address, address);
    let bad = launcher.request(json!({"op": "forward", "port": 0, "protocol": "tcp"}));
    assert_eq!(bad, json!({"ok": false, "error": "port must be 1-65535"}));
    // slirp listens there for the guest.
    std::net::TcpStream::connect(address).expect("the forward listens");
}

#[test]
fn shutting_down_a_paused_guest_resumes_it_first() {
    if !qemu_available("shutdown while paused") {
        return;
    }
    let mut launcher = Launcher::start(30, &[("poweroff.img", self_powering_off_disk())]);
    // Started paused (QEMU -S), the guest powers off only once resumed.
    let mut vmi = vmi("poweroff");
    vmi["spec"]["startStrategy"] = json!("Paused");
    let synced = launcher.sync_vmi(vmi);
    assert_eq!(state(&synced), "Paused", "{synced}");
    assert_eq!(synced["status"]["reason"], "Paused by user");
    let shutdown = launcher.request(json!({"op": "shutdown", "graceSeconds": 60}));
    assert_eq!(state(&shutdown), "Shutdown", "{shutdown}");
    assert_eq!(launcher.wait(), 0, "{}", launcher.stderr());
}

#[test]
fn kill_ends_qemu_and_the_launcher_at_once() {
    if !qemu_available("kill") {
        return;
    }
    let mut launcher = Launcher::start(30, &[("testdisk.img", vec![0u8; 1 << 20])]);
    let pid = qemu_pid(&launcher.sync("testdisk"));
    let killed = launcher.request(json!({"op": "kill"}));
    assert_eq!(state(&killed), "Shutoff", "{killed}");
    assert_eq!(killed["status"]["reason"], "killed");
    assert_eq!(launcher.wait(), 1);
    assert!(!process_alive(pid));
    assert_eq!(launcher.exited_file(), "1\n");
}

#[test]
fn sigterm_shuts_the_guest_down_with_the_grace_period() {
    if !qemu_available("SIGTERM") {
        return;
    }
    let mut launcher = Launcher::start(1, &[("testdisk.img", vec![0u8; 1 << 20])]);
    let pid = qemu_pid(&launcher.sync("testdisk"));
    let watched = launcher.watch();
    wait_for(|| !states(&watched).is_empty(), "the watch");
    // What a Pod deletion sends.
    let status = Command::new("kill")
        .args(["-TERM", &launcher.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(launcher.wait(), 1, "{}", launcher.stderr());
    assert!(!process_alive(pid));
    let stderr = launcher.stderr();
    assert!(
        stderr.contains("SIGTERM: shutting the guest down"),
        "{stderr}"
    );
    wait_for(
        || states(&watched).last().map(String::as_str) == Some("Shutoff"),
        "Shutoff",
    );
    assert!(
        states(&watched).contains(&"Shutdown".to_string()),
        "{:?}",
        states(&watched)
    );
}

#[test]
fn sigkill_of_the_launcher_takes_qemu_with_it() {
    if !qemu_available("SIGKILL") {
        return;
    }
    let mut launcher = Launcher::start(30, &[("testdisk.img", vec![0u8; 1 << 20])]);
    let pid = qemu_pid(&launcher.sync("testdisk"));
    assert!(process_alive(pid));
    launcher.child.kill().unwrap();
    launcher.child.wait().unwrap();
    wait_for(|| !process_alive(pid), "QEMU to die with its launcher");
}

#[test]
fn a_missing_image_is_err_image_pull_and_the_launcher_waits_for_a_later_sync() {
    // QEMU never starts here, so this runs without it.
    let mut launcher = Launcher::start(30, &[]);
    let file = "var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img";
    for _ in 0..2 {
        let answer = launcher.sync("quay.io/kubevirt/cirros-container-disk-demo:latest");
        assert_eq!(answer["ok"], false);
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("containerDisk image file {file} does not exist")),
            "{error}"
        );
        assert_eq!(answer["status"]["state"], "NoState", "{answer}");
        assert_eq!(
            answer["status"]["syncFailure"]["reason"], "ErrImagePull",
            "{answer}"
        );
        assert!(
            answer["status"]["syncFailure"]["message"]
                .as_str()
                .unwrap()
                .contains(file),
            "{answer}"
        );
        // Like a kubelet retrying a pull, it is still there for the next sync.
        assert!(
            launcher.child.try_wait().unwrap().is_none(),
            "still running"
        );
    }
    assert!(launcher.stderr().contains(file), "{}", launcher.stderr());
    let answer = launcher.request(json!({"op": "kill"}));
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(launcher.wait(), 1);
}

#[test]
fn virt_tail_ends_when_the_socket_refuses_after_being_up() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("log");
    let socket = root.path().join("s.sock");
    std::fs::write(&log, b"first\n").unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let tail = Command::new(env!("CARGO_BIN_EXE_virt-tail"))
        .args(["--logfile", "log", "--socket", "s.sock"])
        .current_dir(root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // virt-tail probes the socket at once: once it has connected, the launcher "goes".
    listener.accept().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"second")
        .unwrap();
    drop(listener);
    std::fs::remove_file(&socket).unwrap();
    let output = tail.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "first\nsecond");
}

#[test]
fn virt_tail_exits_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_virt-tail"))
        .args(["--logfile", "no-such-log", "--socket", "no-such.sock"])
        .current_dir(root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| catches_sigterm(tail.id()), "virt-tail's SIGTERM handler");
    let status = Command::new("kill")
        .args(["-TERM", &tail.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < DEADLINE, "virt-tail ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
}

/// The Pod's deletion sends SIGTERM to every container at once: virt-tail must go on until the
/// launcher is gone, so that what the guest prints while it shuts down reaches the log.
#[test]
fn virt_tail_outlives_sigterm_while_the_launcher_runs() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join("l.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::write(root.path().join("log"), "booting\n").unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_virt-tail"))
        .args(["--logfile", "log", "--socket", "l.sock"])
        .current_dir(root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| catches_sigterm(tail.id()), "virt-tail's SIGTERM handler");
    // Let it see the launcher up (it probes the socket when it starts).
    std::thread::sleep(Duration::from_millis(300));
    let kill = |pid: u32| {
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill(tail.id());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        tail.try_wait().unwrap().is_none(),
        "virt-tail keeps following while the launcher runs"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(root.path().join("log"))
        .unwrap()
        .write_all(b"guest: clean shutdown\n")
        .unwrap();
    std::fs::write(root.path().join("launcher-exited"), "0\n").unwrap();
    drop(listener);
    let out = tail.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "booting\nguest: clean shutdown\n"
    );
}
