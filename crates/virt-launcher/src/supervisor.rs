//! QEMU's life: waits for `sync`, prepares the disks, starts QEMU, follows it over QMP, carries
//! out pause, unpause, shutdown and kill, and decides the final state and exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use virt_reconciler::launcher_api::{DomainState, DomainStatus, Protocol, Response, SyncFailure};
use virt_reconciler::status::reason::ERR_IMAGE_PULL;

use crate::cloud_init::{add_authorized_keys, create_seed_file};
use crate::domain::{self, KillCause, Observed, PAUSED_BY_USER, ProcessEnd};
use crate::forwards::{self, ForwardTable, Kind};
use crate::qemu_command::{self, LaunchPlan, Settings};
use crate::qmp::{Event, Qmp};
use crate::server::{self, Status};

/// How long QEMU may take to open its QMP socket, and to answer one command.
const QMP_CONNECT_DEADLINE: Duration = Duration::from_secs(30);
const QMP_ANSWER_DEADLINE: Duration = Duration::from_secs(10);

pub struct Supervisor {
    pub vmi_uid: String,
    pub grace_period: Duration,
    pub qemu: PathBuf,
    pub settings: Settings,
    pub status: Status,
    pub commands: mpsc::Receiver<(server::Command, oneshot::Sender<Response>)>,
}

/// A started domain.
struct Domain {
    child: Child,
    pid: Option<u32>,
    qmp: Qmp,
    events: mpsc::UnboundedReceiver<Event>,
    observed: Observed,
    paused_by_user: bool,
    kill_at: Option<Instant>,
    /// `kill` requests answered once QEMU is gone.
    kill_replies: Vec<oneshot::Sender<Response>>,
    /// The pod network's netdev, through which ports are forwarded.
    netdev: Option<String>,
    forwards: ForwardTable,
}

/// How many free loopback ports a `forward` tries: another process may take the one picked
/// between its probe and QEMU's bind.
const FORWARD_ATTEMPTS: usize = 5;

pub fn log(message: impl std::fmt::Display) {
    eprintln!("virt-launcher: {message}");
}

impl Supervisor {
    fn status_now(&self) -> DomainStatus {
        self.status.borrow().clone()
    }

    fn set_state(&self, state: DomainState, reason: Option<String>) {
        self.status.send_if_modified(|status| {
            if status.state == state && status.reason == reason {
                return false;
            }
            log(format_args!(
                "domain {:?}{}",
                state,
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
            status.state = state;
            status.reason = reason;
            true
        });
    }

    /// Runs until the domain has ended; returns the launcher's exit code.
    pub async fn run(mut self) -> anyhow::Result<i32> {
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut domain = loop {
            tokio::select! {
                Some((command, reply)) = self.commands.recv() => match command {
                    server::Command::Sync { vmi, ssh_authorized_keys } => match self.start(&vmi, &ssh_authorized_keys).await {
                        Ok(domain) => {
                            let _ = reply.send(Response::ok(self.status_now()));
                            break domain;
                        }
                        Err(e) if e.downcast_ref::<ImageMissing>().is_some() => {
                            let message = format!("{e:#}");
                            log(format_args!("waiting for the image: {message}"));
                            self.status.send_modify(|status| {
                                status.sync_failure = Some(SyncFailure {
                                    reason: ERR_IMAGE_PULL.to_string(),
                                    message: message.clone(),
                                });
                            });
                            let _ = reply.send(Response::error_with_status(message, self.status_now()));
                        }
                        Err(e) => {
                            let message = format!("{e:#}");
                            log(format_args!("cannot start the domain: {message}"));
                            self.set_state(DomainState::Crashed, Some(message.clone()));
                            let _ = reply.send(Response::error(message));
                            return Ok(1);
                        }
                    },
                    server::Command::Shutdown { .. } => {
                        self.set_state(DomainState::Shutoff, Some("shut down before it started".into()));
                        let _ = reply.send(Response::ok(self.status_now()));
                        return Ok(0);
                    }
                    server::Command::Kill => {
                        self.set_state(DomainState::Shutoff, Some("killed before it started".into()));
                        let _ = reply.send(Response::ok(self.status_now()));
                        return Ok(1);
                    }
                    server::Command::Pause
                    | server::Command::Unpause
                    | server::Command::Reset
                    | server::Command::Forward { .. }
                    | server::Command::Publish { .. } => {
                        let _ = reply.send(Response::error("the domain has not started (no sync yet)"));
                    }
                },
                _ = sigterm.recv() => return Ok(self.stopped_before_start("SIGTERM")),
                _ = sigint.recv() => return Ok(self.stopped_before_start("SIGINT")),
            }
        };
        loop {
            let kill_at = domain.kill_at.unwrap_or_else(Instant::now);
            tokio::select! {
                exit = domain.child.wait() => return Ok(self.finish(domain, exit).await),
                Some(event) = domain.events.recv() => self.on_event(&mut domain, event),
                Some((command, reply)) = self.commands.recv() => {
                    self.on_command(&mut domain, command, reply).await;
                }
                _ = sigterm.recv() => {
                    log("SIGTERM: shutting the guest down");
                    self.shutdown(&mut domain, self.grace_period).await;
                }
                _ = sigint.recv() => {
                    log("SIGINT: shutting the guest down");
                    self.shutdown(&mut domain, self.grace_period).await;
                }
                _ = sleep_until(kill_at), if domain.kill_at.is_some() => {
                    log("the guest did not power off within the grace period: killing QEMU");
                    domain.kill_at = None;
                    self.kill(&mut domain, KillCause::GraceExpired);
                }
            }
        }
    }

    fn stopped_before_start(&self, signal: &str) -> i32 {
        self.set_state(
            DomainState::Shutoff,
            Some(format!("{signal} before it started")),
        );
        0
    }

    async fn start(&self, vmi: &Value, ssh_authorized_keys: &[String]) -> anyhow::Result<Domain> {
        let uid = vmi.pointer("/metadata/uid").and_then(Value::as_str);
        if let Some(uid) = uid.filter(|u| *u != self.vmi_uid) {
            bail!(
                "sync for the VMI with UID {uid}, but this launcher runs {}",
                self.vmi_uid
            );
        }
        let mut plan = qemu_command::plan(vmi, &self.settings)?;
        add_keys_to_seed(&mut plan, ssh_authorized_keys);
        prepare_files(&plan, &self.settings)?;
        for (image, floor) in image_memory_floors(&plan)? {
            if let Some((asked, given)) = qemu_command::raise_memory(&mut plan, floor) {
                log(format_args!(
                    "guest memory raised from {asked} MiB to {given} MiB: {image} needs at least {given} MiB (its .meta.json)"
                ));
            }
        }
        log(format_args!(
            "starting QEMU: {} {}",
            self.qemu.display(),
            plan.argv.join(" ")
        ));
        if !plan.unforwarded_ports.is_empty() {
            log(format_args!(
                "not forwarding ports {:?}: POD_IP is not an IPv4 address of this host",
                plan.unforwarded_ports
            ));
        }
        let mut child = spawn_qemu(&self.qemu, &plan.argv)?;
        let pid = child.id();
        let (qmp, events) = timeout(
            QMP_CONNECT_DEADLINE,
            connect_qmp(&mut child, Path::new(&plan.qmp_socket)),
        )
        .await
        .context("QEMU's QMP socket did not answer within 30s")??;
        let run_status = timeout(QMP_ANSWER_DEADLINE, qmp.run_status())
            .await
            .context("QMP query-status timed out")??;
        let (state, reason) = domain::state_of_run_status(&run_status, plan.start_paused);
        self.status.send_modify(|status| {
            status.qemu_pid = pid;
            status.mac = plan.mac.clone();
            status.sync_failure = None;
        });
        let mut domain = Domain {
            child,
            pid,
            qmp,
            events,
            observed: Observed::default(),
            paused_by_user: plan.start_paused,
            kill_at: None,
            kill_replies: Vec::new(),
            netdev: plan.netdev.clone(),
            forwards: ForwardTable::default(),
        };
        // Declared ports: a port QEMU cannot bind (taken, or privileged for a non-root
        // launcher) is skipped and said, rather than failing the start.
        for (protocol, port) in &plan.declared_ports {
            match self.publish(&mut domain, *protocol, *port).await {
                Ok(address) => log(format_args!(
                    "declared port {protocol}/{port} forwarded on {address}"
                )),
                Err(e) => log(format_args!(
                    "not forwarding declared port {protocol}/{port}: {e}"
                )),
            }
        }
        self.set_state(state, reason);
        Ok(domain)
    }

    /// QMP `human-monitor-command` `hostfwd_add`.
    async fn hostfwd(
        &self,
        domain: &Domain,
        protocol: Protocol,
        host: SocketAddr,
        guest_port: u16,
    ) -> Result<(), String> {
        let netdev = domain
            .netdev
            .as_deref()
            .ok_or("the VMI has no pod network interface to forward through")?;
        let command = forwards::hostfwd_add(netdev, protocol, host, guest_port);
        let answer = timeout(
            QMP_ANSWER_DEADLINE,
            domain.qmp.execute(
                "human-monitor-command",
                Some(json!({"command-line": command})),
            ),
        )
        .await
        .map_err(|_| "QMP hostfwd_add timed out".to_string())?
        .map_err(|e| format!("{e:#}"))?;
        match forwards::hostfwd_error(answer.as_str().unwrap_or_default()) {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// Guest `port` reachable from the host: an existing forward, else a new one on a free
    /// loopback port.
    async fn forward(
        &self,
        domain: &mut Domain,
        protocol: Protocol,
        port: u16,
    ) -> Result<SocketAddr, String> {
        if port == 0 {
            return Err("port must be 1-65535".into());
        }
        if let Some(address) = domain.forwards.reachable(protocol, port) {
            return Ok(address);
        }
        let mut last_error = String::new();
        for _ in 0..FORWARD_ATTEMPTS {
            let host = free_loopback_port(protocol)
                .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
            match self.hostfwd(domain, protocol, host, port).await {
                Ok(()) => {
                    domain.forwards.record(protocol, port, Kind::Loopback, host);
                    log(format_args!(
                        "guest port {protocol}/{port} forwarded on {host}"
                    ));
                    return Ok(host);
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Guest `port` forwarded on `POD_IP:port`, as a declared port is.
    async fn publish(
        &self,
        domain: &mut Domain,
        protocol: Protocol,
        port: u16,
    ) -> Result<SocketAddr, String> {
        if port == 0 {
            return Err("port must be 1-65535".into());
        }
        let address = forwards::publish_address(self.settings.forward_address, port)?;
        if let Some(existing) = domain.forwards.find(protocol, port, Kind::PodIp) {
            return Ok(existing);
        }
        self.hostfwd(domain, protocol, address, port).await?;
        domain.forwards.record(protocol, port, Kind::PodIp, address);
        Ok(address)
    }

    fn on_event(&self, domain: &mut Domain, event: Event) {
        let shutting_down = self.status.borrow().state == DomainState::Shutdown;
        match event.name.as_str() {
            "SHUTDOWN" => {
                let by_guest = event.data.get("guest").and_then(Value::as_bool) == Some(true);
                domain.observed.guest_powered_off |= by_guest;
                log(format_args!("QEMU: SHUTDOWN {}", event.data));
            }
            "GUEST_PANICKED" => {
                domain.observed.guest_panicked = true;
                log(format_args!("QEMU: GUEST_PANICKED {}", event.data));
            }
            "STOP" if !shutting_down => {
                let reason = if domain.paused_by_user {
                    PAUSED_BY_USER
                } else {
                    "paused by QEMU"
                };
                self.set_state(DomainState::Paused, Some(reason.into()));
            }
            "RESUME" if !shutting_down => self.set_state(DomainState::Running, None),
            "RESET" => log("QEMU: the guest reset"),
            _ => {}
        }
    }

    async fn on_command(
        &self,
        domain: &mut Domain,
        command: server::Command,
        reply: oneshot::Sender<Response>,
    ) {
        let state = self.status.borrow().state;
        let answer = match command {
            server::Command::Sync { .. } => Ok(()),
            server::Command::Forward { port, protocol } => {
                let answer = self.forward(domain, protocol, port).await;
                let _ = reply.send(address_answer(answer));
                return;
            }
            server::Command::Publish { port, protocol } => {
                let answer = self.publish(domain, protocol, port).await;
                if let Ok(address) = &answer {
                    log(format_args!(
                        "guest port {protocol}/{port} published on {address}"
                    ));
                }
                let _ = reply.send(address_answer(answer));
                return;
            }
            server::Command::Pause | server::Command::Unpause | server::Command::Reset
                if state == DomainState::Shutdown =>
            {
                Err("the domain is shutting down".to_string())
            }
            server::Command::Pause => {
                domain.paused_by_user = true;
                self.qmp_then_refresh(domain, "stop").await
            }
            server::Command::Unpause => {
                domain.paused_by_user = false;
                self.qmp_then_refresh(domain, "cont").await
            }
            // A paused guest stays paused across the reset, as with libvirt.
            server::Command::Reset => self.qmp_then_refresh(domain, "system_reset").await,
            server::Command::Shutdown { grace_seconds } => {
                self.shutdown(domain, Duration::from_secs(grace_seconds))
                    .await;
                Ok(())
            }
            server::Command::Kill => {
                self.kill(domain, KillCause::Requested);
                domain.kill_replies.push(reply);
                return;
            }
        };
        let _ = reply.send(match answer {
            Ok(()) => Response::ok(self.status_now()),
            Err(message) => Response::error(message),
        });
    }

    /// Runs a QMP command, then reads the state back from `query-status`.
    async fn qmp_then_refresh(&self, domain: &Domain, command: &str) -> Result<(), String> {
        let answer = timeout(QMP_ANSWER_DEADLINE, async {
            domain.qmp.execute(command, None).await?;
            domain.qmp.run_status().await
        })
        .await;
        match answer {
            Ok(Ok(run_status)) => {
                let (state, reason) =
                    domain::state_of_run_status(&run_status, domain.paused_by_user);
                self.set_state(state, reason);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("QMP {command} timed out")),
        }
    }

    /// ACPI power button; QEMU is killed when the guest is still up after `grace`.
    async fn shutdown(&self, domain: &mut Domain, grace: Duration) {
        let deadline = Instant::now() + grace;
        domain.kill_at = Some(domain.kill_at.map_or(deadline, |at| at.min(deadline)));
        let state = self.status.borrow().state;
        if state == DomainState::Paused {
            // A paused guest cannot see the power button.
            domain.paused_by_user = false;
            if let Err(e) = self.qmp_then_refresh(domain, "cont").await {
                log(format_args!("resuming the guest to shut it down: {e}"));
            }
        }
        if state != DomainState::Shutdown {
            match timeout(
                QMP_ANSWER_DEADLINE,
                domain.qmp.execute("system_powerdown", None),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => log(format_args!("system_powerdown: {e:#}")),
                Err(_) => log("system_powerdown timed out"),
            }
            self.set_state(
                DomainState::Shutdown,
                Some(format!("ACPI shutdown, grace {}s", grace.as_secs())),
            );
        }
    }

    fn kill(&self, domain: &mut Domain, cause: KillCause) {
        domain.observed.killed.get_or_insert(cause);
        if let Err(e) = domain.child.start_kill() {
            log(format_args!("killing QEMU: {e}"));
        }
    }

    async fn finish(
        &self,
        mut domain: Domain,
        exit: std::io::Result<std::process::ExitStatus>,
    ) -> i32 {
        // Events QEMU sent before it exited (SHUTDOWN, GUEST_PANICKED) are still in the socket.
        while let Ok(Some(event)) = timeout(Duration::from_secs(1), domain.events.recv()).await {
            self.on_event(&mut domain, event);
        }
        let end = match &exit {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => ProcessEnd::Code(code),
                    (None, Some(signal)) => ProcessEnd::Signal(signal),
                    (None, None) => ProcessEnd::Code(-1),
                }
            }
            Err(e) => {
                log(format_args!("waiting for QEMU: {e}"));
                ProcessEnd::Code(-1)
            }
        };
        let (state, reason, code) = domain::ending(domain.observed, end);
        log(format_args!(
            "QEMU (pid {}) ended: {end:?}",
            domain.pid.map(|p| p.to_string()).unwrap_or_default()
        ));
        self.status.send_modify(|status| status.qemu_pid = None);
        self.set_state(state, Some(reason));
        for reply in domain.kill_replies.drain(..) {
            let _ = reply.send(Response::ok(self.status_now()));
        }
        code
    }
}

fn address_answer(answer: Result<SocketAddr, String>) -> Response {
    match answer {
        Ok(address) => Response::address(address.to_string()),
        Err(e) => Response::error(e),
    }
}

/// A loopback port free right now (the socket is closed again for QEMU to bind).
fn free_loopback_port(protocol: Protocol) -> std::io::Result<SocketAddr> {
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr(),
        Protocol::Udp => std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr(),
    }
}

/// The SSH keys of the VMI's `accessCredentials` go into the first NoCloud seed's user-data;
/// when they cannot, the guest boots without them and the log says why.
fn add_keys_to_seed(plan: &mut LaunchPlan, keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    let Some(seed) = plan.seeds.first_mut() else {
        log(format_args!(
            "{} SSH keys from accessCredentials not propagated: the VMI has no cloudInitNoCloud volume",
            keys.len()
        ));
        return;
    };
    match add_authorized_keys(&seed.files.user_data, keys) {
        Ok(user_data) => {
            seed.files.user_data = user_data;
            log(format_args!(
                "{} SSH keys from accessCredentials added to the user-data of {}",
                keys.len(),
                seed.path
            ));
        }
        Err(e) => log(format_args!(
            "{} SSH keys from accessCredentials not propagated: {e}",
            keys.len()
        )),
    }
}

/// The least memory (MiB) each containerDisk image needs, from its `<image>.meta.json`
/// (`{"minMemory": "80Mi"}`), when it has one.
fn image_memory_floors(plan: &LaunchPlan) -> anyhow::Result<Vec<(String, u64)>> {
    let mut floors = Vec::new();
    for image in &plan.images {
        let meta = format!("{image}.meta.json");
        let text = match std::fs::read_to_string(&meta) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {meta}")),
        };
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{meta}: not JSON"))?;
        if let Some(min) = value.get("minMemory") {
            let min = min
                .as_str()
                .with_context(|| format!("{meta}: minMemory must be a quantity string"))?;
            let bytes = crate::quantity::parse_bytes(min)
                .map_err(|e| anyhow::anyhow!("{meta}: minMemory: {e}"))?;
            floors.push((image.clone(), bytes.div_ceil(1024 * 1024)));
        }
    }
    Ok(floors)
}

/// A containerDisk image that is not on the node: the launcher waits for a later `sync`, as a
/// kubelet retries an image pull.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ImageMissing(String);

/// Checks the images and writes the seed and empty disks.
fn prepare_files(plan: &LaunchPlan, settings: &Settings) -> anyhow::Result<()> {
    for image in &plan.images {
        if !Path::new(image).is_file() {
            return Err(ImageMissing(format!(
                "containerDisk image file {image} does not exist (images are looked up in {})",
                settings.images_dir
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&settings.private_dir)
        .with_context(|| format!("creating {}", settings.private_dir))?;
    for seed in &plan.seeds {
        create_seed_file(Path::new(&seed.path), &seed.files)
            .with_context(|| format!("writing the cloud-init seed {}", seed.path))?;
    }
    for disk in &plan.empty_disks {
        let file = std::fs::File::create(&disk.path)
            .with_context(|| format!("creating the empty disk {}", disk.path))?;
        file.set_len(disk.bytes)
            .with_context(|| format!("sizing the empty disk {}", disk.path))?;
    }
    // QEMU listens on these; an old one left by an earlier launcher would be in the way.
    let private = settings.private_dir.trim_end_matches('/');
    for socket in ["qmp.sock", "virt-serial0", "virt-vnc"] {
        let _ = std::fs::remove_file(format!("{private}/{socket}"));
    }
    Ok(())
}

fn spawn_qemu(program: &Path, argv: &[String]) -> anyhow::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(argv)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C meant for the launcher reaches QEMU only through
        // the launcher's shutdown, and PR_SET_PDEATHSIG still ends it with the launcher.
        .process_group(0);
    die_with_parent(&mut command);
    command
        .spawn()
        .with_context(|| format!("starting QEMU ({})", program.display()))
}

#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid) without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher died before prctl: no signal will come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other(
                    "virt-launcher exited while QEMU started",
                ));
            }
            Ok(())
        });
    }
}

/// Connects once QEMU listens; the caller bounds the wait.
async fn connect_qmp(
    child: &mut Child,
    socket: &Path,
) -> anyhow::Result<(Qmp, mpsc::UnboundedReceiver<Event>)> {
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("QEMU exited before its QMP socket was up ({status}); see its messages above");
        }
        if let Ok(connected) = Qmp::connect(socket).await {
            return Ok(connected);
        }
        sleep(Duration::from_millis(50)).await;
    }
}
