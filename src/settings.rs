//! The settings step: the parsed command line (clap types from `cli.rs`) turned into each
//! command's checked settings, before any I/O. Every rule about the arguments alone lives
//! here, so a bad combination fails with exit 1 before a kubeconfig is read or a connection
//! is made, and commands never see clap types.

use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cli::{self, Cli, Command, ExposeArgs, GlobalArgs, SshFlags};
use crate::client::{self, ConnectOptions};
use crate::guest_access::{self, ForwardedPort, ScpLocations, SshTarget, Target};
use crate::names::{self, NameKind};

/// What `main` runs: the connection flags and one command's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect: ConnectOptions,
    pub command: CommandSettings,
}

/// One command's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandSettings {
    /// `virtctl` alone: the usage.
    Usage,
    Start(StartSettings),
    Stop(StopSettings),
    Restart(RestartSettings),
    /// Boxed: by far the largest.
    Expose(Box<ExposeSettings>),
    Pause(PauseSettings),
    /// `reset VMI`.
    Reset(VmiSettings),
    /// `soft-reboot VMI`.
    SoftReboot(VmiSettings),
    Status(StatusSettings),
    Version(VersionSettings),
    Completion(CompletionSettings),
    Console(ConsoleSettings),
    Vnc(VncSettings),
    PortForward(PortForwardSettings),
    Ssh(Box<SshSettings>),
    Scp(Box<ScpSettings>),
}

impl CommandSettings {
    /// Whether a failure is followed by the version-skew check: not for `version`, which
    /// shows both versions itself.
    pub fn checks_version_skew(&self) -> bool {
        !matches!(
            self,
            CommandSettings::Version(_) | CommandSettings::Ssh(_) | CommandSettings::Scp(_)
        )
    }
}

/// `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSettings {
    pub name: String,
    pub paused: bool,
    pub dry_run: bool,
    /// Wait at most this long for the VM to be Running.
    pub wait: Option<Duration>,
}

/// `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSettings {
    pub name: String,
    /// `Some` only with `--force`; then it is not negative.
    pub grace_period: Option<i64>,
    pub dry_run: bool,
    /// Wait at most this long for the VM to be Stopped.
    pub wait: Option<Duration>,
}

/// `restart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartSettings {
    pub name: String,
    /// `Some` only with `--force`; then it is not negative.
    pub grace_period: Option<i64>,
    pub dry_run: bool,
    /// Skip the force-restart confirmation.
    pub yes: bool,
    /// Wait at most this long for a new instance to be Running.
    pub wait: Option<Duration>,
}

impl StopSettings {
    pub fn force(&self) -> bool {
        self.grace_period.is_some()
    }
}

impl RestartSettings {
    pub fn force(&self) -> bool {
        self.grace_period.is_some()
    }
}

/// Pause or unpause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAction {
    Pause,
    Unpause,
}

/// What `pause`/`unpause` names: a VM (its instance of the same name) or a VMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseTarget {
    Vm,
    Vmi,
}

impl PauseTarget {
    /// TYPE, lowercased; only the singular forms, as KubeVirt's virtctl.
    pub fn parse(type_name: &str) -> anyhow::Result<PauseTarget> {
        match type_name.to_lowercase().as_str() {
            "vm" | "virtualmachine" => Ok(PauseTarget::Vm),
            "vmi" | "virtualmachineinstance" => Ok(PauseTarget::Vmi),
            _ => bail!("unsupported resource type: {type_name}"),
        }
    }

    /// The kind whose naming rule the NAME follows.
    pub fn name_kind(self) -> NameKind {
        match self {
            PauseTarget::Vm => NameKind::VirtualMachine,
            PauseTarget::Vmi => NameKind::VirtualMachineInstance,
        }
    }
}

/// `pause` and `unpause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseSettings {
    pub action: PauseAction,
    pub target: PauseTarget,
    pub name: String,
    pub dry_run: bool,
}

/// A command on one VMI by name (`reset`, `soft-reboot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmiSettings {
    pub name: String,
}

/// The kind of object `expose` exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExposeKind {
    Vmi,
    Vm,
    Vmirs,
}

impl ExposeKind {
    /// TYPE, lowercased, with KubeVirt's aliases.
    pub fn parse(lowercased: &str) -> anyhow::Result<ExposeKind> {
        match lowercased {
            "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => {
                Ok(ExposeKind::Vmi)
            }
            "vm" | "vms" | "virtualmachine" | "virtualmachines" => Ok(ExposeKind::Vm),
            "vmirs"
            | "vmirss"
            | "virtualmachineinstancereplicaset"
            | "virtualmachineinstancereplicasets" => Ok(ExposeKind::Vmirs),
            other => bail!("unsupported resource type: {other}"),
        }
    }

    fn name_kind(self) -> NameKind {
        match self {
            ExposeKind::Vmi => NameKind::VirtualMachineInstance,
            ExposeKind::Vm => NameKind::VirtualMachine,
            ExposeKind::Vmirs => NameKind::VirtualMachineInstanceReplicaSet,
        }
    }

    pub fn api_kind(self) -> &'static str {
        match self {
            ExposeKind::Vmi => "VirtualMachineInstance",
            ExposeKind::Vm => "VirtualMachine",
            ExposeKind::Vmirs => "VirtualMachineInstanceReplicaSet",
        }
    }
}

/// `expose`: the flags, checked and turned into what the Service needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposeSettings {
    /// TYPE as typed, lowercased (for the success line).
    pub type_name: String,
    pub kind: ExposeKind,
    pub name: String,
    pub service_name: String,
    /// With `--port`: the one port, replacing introspection.
    pub port: Option<ServicePort>,
    pub service_type: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub dry_run: bool,
}

/// How `status` prints the VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusOutput {
    #[default]
    Table,
    Yaml,
    Json,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusSettings {
    /// No names: every VM of the namespace (or of all namespaces).
    pub names: Vec<String>,
    pub all_namespaces: bool,
    pub output: StatusOutput,
}

/// `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionSettings {
    /// Only the client's version: no request.
    pub client_only: bool,
}

/// `console`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub name: String,
    /// How long to wait for the instance to run; zero tries once.
    pub timeout: Duration,
}

/// The VNC viewer `vnc` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// remote-viewer, else vncviewer, whichever is on the PATH first.
    Detect,
    /// TigerVNC's `vncviewer` (at this path, or found on the PATH).
    Tiger(Option<std::path::PathBuf>),
    /// virt-viewer's `remote-viewer` (at this path, or found on the PATH).
    Spice(Option<std::path::PathBuf>),
}

/// `vnc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncSettings {
    pub name: String,
    /// Where the proxy listens: `--address` with --proxy-only, else 127.0.0.1.
    pub address: std::net::IpAddr,
    pub port: u16,
    pub proxy_only: bool,
    pub preserve_session: bool,
    pub viewer: Viewer,
}

/// `port-forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardSettings {
    pub target: Target,
    pub ports: Vec<ForwardedPort>,
    /// stdin/stdout are the one port's connection.
    pub stdio: bool,
    pub address: std::net::IpAddr,
}

/// What ssh and scp share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommon {
    pub target: SshTarget,
    /// `--username`.
    pub username: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub port: u16,
    pub local_ssh_opts: Vec<String>,
    /// Run the system's ssh/scp.
    pub local: bool,
    /// The connection flags as given, for the ProxyCommand.
    pub connection_flags: Vec<String>,
}

/// `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub common: SshCommon,
    pub command: Option<String>,
}

/// `scp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpSettings {
    pub common: SshCommon,
    pub locations: ScpLocations,
    pub recursive: bool,
    pub preserve: bool,
}

/// `completion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionSettings {
    /// The name the script calls back: `virtctl`, or `kubectl-virt` for the plugin.
    pub bin: &'static str,
    pub shell: clap_complete::Shell,
    pub descriptions: bool,
}

/// The whole command line, checked.
pub fn resolve(mut cli: Cli, plugin: bool) -> anyhow::Result<Settings> {
    // ssh's and scp's --username is the guest's user, as in KubeVirt's virtctl (their flag
    // hides kubectl's basic-auth one).
    if let Some(Command::Ssh(cli::SshArgs { ssh, .. }) | Command::Scp(cli::ScpArgs { ssh, .. })) =
        &mut cli.command
        && let Some(user) = cli.global.username.take()
    {
        ssh.login = Some(user);
    }
    let connect = connect_options(&cli.global)?;
    let command = match cli.command {
        None => CommandSettings::Usage,
        Some(command) => command_settings(command, plugin, &cli.global)?,
    };
    Ok(Settings { connect, command })
}

/// The connection flags. Those that need no file or network are checked here: `-n` and the
/// form of `--server`.
pub fn connect_options(g: &GlobalArgs) -> anyhow::Result<ConnectOptions> {
    if let Some(ns) = g.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        names::check_namespace(ns)?;
    }
    if let Some(server) = &g.server {
        client::server_url(server)
            .map_err(|why| anyhow::anyhow!("invalid --server {server:?}: {why}"))?;
    }
    Ok(connect_options_unchecked(g))
}

/// The connection flags as typed, for shell completion, which must never fail.
pub fn connect_options_unchecked(g: &GlobalArgs) -> ConnectOptions {
    ConnectOptions {
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        cluster: g.cluster.clone(),
        user: g.user.clone(),
        namespace: g.namespace.clone(),
        server: g.server.clone(),
        token: g.token.clone(),
        certificate_authority: g.certificate_authority.clone(),
        client_certificate: g.client_certificate.clone(),
        client_key: g.client_key.clone(),
        insecure_skip_tls_verify: g.insecure_skip_tls_verify,
        tls_server_name: g.tls_server_name.clone(),
        request_timeout: g.request_timeout.0,
        impersonate: g.as_user.clone(),
        impersonate_groups: g.as_group.clone(),
        impersonate_uid: g.as_uid.clone(),
        username: g.username.clone(),
        password: g.password.clone(),
        proxy_url: g.proxy_url.clone(),
        disable_compression: g.disable_compression,
    }
}

fn command_settings(
    command: Command,
    plugin: bool,
    global: &GlobalArgs,
) -> anyhow::Result<CommandSettings> {
    Ok(match command {
        Command::Start(a) => CommandSettings::Start(StartSettings {
            name: vm_name_arg(&a.args)?,
            paused: a.paused,
            dry_run: a.dry_run,
            wait: wait_timeout(a.wait.wait, a.wait.timeout),
        }),
        Command::Stop(a) => {
            let name = vm_name_arg(&a.args)?;
            let grace_period = force_grace_period(
                a.force,
                a.grace_period,
                "error force stopping VirtualMachine",
            )?;
            CommandSettings::Stop(StopSettings {
                name,
                grace_period,
                dry_run: a.dry_run,
                wait: wait_timeout(a.wait.wait, a.wait.timeout),
            })
        }
        Command::Restart(a) => {
            let name = vm_name_arg(&a.args)?;
            let grace_period = force_grace_period(
                a.force,
                a.grace_period,
                "error force restarting VirtualMachine",
            )?;
            CommandSettings::Restart(RestartSettings {
                name,
                grace_period,
                dry_run: a.dry_run,
                yes: a.yes,
                wait: wait_timeout(a.wait.wait, a.wait.timeout),
            })
        }
        Command::Expose(a) => CommandSettings::Expose(Box::new(expose(&a)?)),
        Command::Pause(a) => CommandSettings::Pause(pause(PauseAction::Pause, &a.args, a.dry_run)?),
        Command::Unpause(a) => {
            CommandSettings::Pause(pause(PauseAction::Unpause, &a.args, a.dry_run)?)
        }
        Command::Reset(a) => CommandSettings::Reset(vmi_settings(&a.args)?),
        Command::SoftReboot(a) => CommandSettings::SoftReboot(vmi_settings(&a.args)?),
        Command::Status(a) => {
            if a.all_namespaces && !a.names.is_empty() {
                bail!("a resource cannot be retrieved by name across all namespaces");
            }
            CommandSettings::Status(StatusSettings {
                names: a
                    .names
                    .iter()
                    .map(|n| names::resource_name(NameKind::VirtualMachine, n))
                    .collect::<anyhow::Result<_>>()?,
                all_namespaces: a.all_namespaces,
                output: match a.output {
                    None => StatusOutput::Table,
                    Some(cli::OutputFormat::Yaml) => StatusOutput::Yaml,
                    Some(cli::OutputFormat::Json) => StatusOutput::Json,
                },
            })
        }
        Command::Version(a) => CommandSettings::Version(VersionSettings {
            client_only: a.client,
        }),
        Command::Completion(a) => CommandSettings::Completion(CompletionSettings {
            bin: if plugin { "kubectl-virt" } else { "virtctl" },
            shell: a.shell,
            descriptions: !a.no_descriptions,
        }),
        Command::Console(a) => {
            exact_args(&a.args, 1)?;
            CommandSettings::Console(ConsoleSettings {
                name: names::resource_name(NameKind::VirtualMachineInstance, &a.args[0])?,
                timeout: Duration::from_secs(u64::from(a.timeout) * 60),
            })
        }
        Command::Vnc(a) => CommandSettings::Vnc(vnc(&a)?),
        Command::PortForward(a) => {
            if a.args.len() < 2 {
                bail!(
                    "requires at least 2 arg(s), only received {}: TYPE/NAME[/NAMESPACE] and a \
                     port",
                    a.args.len()
                );
            }
            let target = guest_access::parse_target(&a.args[0])?;
            let ports = a.args[1..]
                .iter()
                .map(|p| guest_access::parse_port(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if a.stdio && ports.len() != 1 {
                bail!("only one port supported when forwarding to stdout");
            }
            CommandSettings::PortForward(PortForwardSettings {
                target,
                ports,
                stdio: a.stdio,
                address: listen_address(&a.address)?,
            })
        }
        Command::Ssh(a) => {
            exact_args(&a.args, 1)?;
            let target = guest_access::parse_ssh_target(&a.args[0])?;
            CommandSettings::Ssh(Box::new(SshSettings {
                common: ssh_common(target, &a.ssh, global)?,
                command: a.command,
            }))
        }
        Command::Scp(a) => {
            exact_args(&a.args, 2)?;
            let locations = guest_access::parse_scp(&a.args[0], &a.args[1])?;
            CommandSettings::Scp(Box::new(ScpSettings {
                common: ssh_common(locations.remote.clone(), &a.ssh, global)?,
                locations,
                recursive: a.recursive,
                preserve: a.preserve,
            }))
        }
    })
}

/// `--address`: an IP address, or `localhost` (127.0.0.1).
fn listen_address(value: &str) -> anyhow::Result<std::net::IpAddr> {
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    value.parse().map_err(|_| {
        anyhow::anyhow!("invalid --address {value:?}: it must be an IP address or localhost")
    })
}

fn vnc(a: &cli::VncArgs) -> anyhow::Result<VncSettings> {
    if a.args.first().map(String::as_str) == Some("screenshot") {
        bail!(
            "vnc screenshot is not supported by this virtctl; connect a viewer with \
             `virtctl vnc VMI` or `virtctl vnc VMI --proxy-only`"
        );
    }
    exact_args(&a.args, 1)?;
    let name = names::resource_name(NameKind::VirtualMachineInstance, &a.args[0])?;
    let path = a.vnc_path.clone();
    let viewer = match a.vnc_type.as_deref() {
        None if path.is_some() => bail!("--vnc-path needs --vnc-type (tiger or remote-viewer)"),
        None => Viewer::Detect,
        Some("tiger") => Viewer::Tiger(path),
        Some("remote-viewer") => Viewer::Spice(path),
        Some(other @ ("chicken" | "real")) => {
            bail!("unsupported vnc-type for {}: {other}", std::env::consts::OS)
        }
        Some(other) => bail!("unsupported vnc-type: {other}"),
    };
    // As KubeVirt's virtctl: a viewer started here connects to 127.0.0.1.
    let address = match a.proxy_only {
        true => listen_address(&a.address)?,
        false => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    };
    Ok(VncSettings {
        name,
        address,
        port: a.port,
        proxy_only: a.proxy_only,
        preserve_session: a.preserve_session,
        viewer,
    })
}

fn ssh_common(
    target: SshTarget,
    flags: &SshFlags,
    global: &GlobalArgs,
) -> anyhow::Result<SshCommon> {
    if flags.port == 0 {
        bail!("invalid --port 0: it must be a number from 1 to 65535");
    }
    let path = |p: &std::path::PathBuf| p.display().to_string();
    Ok(SshCommon {
        target,
        username: flags.login.clone().filter(|u| !u.is_empty()),
        identity_file: flags.identity_file.as_ref().map(path),
        known_hosts: flags.known_hosts.as_ref().map(path),
        port: flags.port,
        local_ssh_opts: flags.local_ssh_opts.clone(),
        local: flags.local_ssh,
        connection_flags: proxy_connection_flags(global),
    })
}

/// The connection flags given, as arguments for the `port-forward` that ssh's ProxyCommand
/// runs: the same cluster, user and options. Paths are made absolute; `-n` is not passed (the
/// target names its namespace), nor `--request-timeout` (it would cut the stream).
pub fn proxy_connection_flags(g: &GlobalArgs) -> Vec<String> {
    let absolute = |p: &std::path::PathBuf| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    };
    let mut flags = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            flags.push(format!("--{name}={v}"));
        }
    };
    add("kubeconfig", g.kubeconfig.as_ref().map(absolute));
    add("context", g.context.clone());
    add("cluster", g.cluster.clone());
    add("user", g.user.clone());
    add("server", g.server.clone());
    add("token", g.token.clone());
    add(
        "certificate-authority",
        g.certificate_authority.as_ref().map(absolute),
    );
    add(
        "client-certificate",
        g.client_certificate.as_ref().map(absolute),
    );
    add("client-key", g.client_key.as_ref().map(absolute));
    add(
        "insecure-skip-tls-verify",
        g.insecure_skip_tls_verify.map(|b| b.to_string()),
    );
    add("tls-server-name", g.tls_server_name.clone());
    add("as", g.as_user.clone());
    for group in &g.as_group {
        add("as-group", Some(group.clone()));
    }
    add("as-uid", g.as_uid.clone());
    add("password", g.password.clone());
    add("proxy-url", g.proxy_url.clone());
    add(
        "disable-compression",
        g.disable_compression.map(|b| b.to_string()),
    );
    flags
}

/// The VM name of start/stop/restart: exactly one argument, as cobra checks it, or the seed
/// document's form with the type first (`virtctl start vm vm-cirros`). Two arguments were an
/// error before, so accepting the type word changes no valid command. The name is checked.
fn vm_name_arg(args: &[String]) -> anyhow::Result<String> {
    let typed = match args {
        [name] => name,
        [kind, name]
            if matches!(
                kind.to_ascii_lowercase().as_str(),
                "vm" | "vms" | "virtualmachine" | "virtualmachines"
            ) =>
        {
            name
        }
        _ => bail!("accepts 1 arg(s), received {}", args.len()),
    };
    names::resource_name(NameKind::VirtualMachine, typed)
}

/// cobra's argument-count rule: exactly `n` positional arguments.
fn exact_args(args: &[String], n: usize) -> anyhow::Result<()> {
    if args.len() != n {
        bail!("accepts {n} arg(s), received {}", args.len());
    }
    Ok(())
}

/// Part B §2.1 step 4: `--force` and an explicit `--grace-period` go together, and a negative
/// grace period is refused with the server's reason after `prefix`. `Some` means force.
fn force_grace_period(
    force: bool,
    grace_period: Option<i64>,
    prefix: &str,
) -> anyhow::Result<Option<i64>> {
    if force != grace_period.is_some() {
        bail!("Must both use --force=true and set --grace-period.");
    }
    match grace_period {
        Some(g) if g < 0 => bail!(
            "{prefix}: {}",
            virt_reconciler::intent::NEGATIVE_GRACE_PERIOD
        ),
        other => Ok(other),
    }
}

/// `--wait` / `--timeout`: `Some(timeout)` when the command should wait.
fn wait_timeout(wait: bool, timeout: Option<Duration>) -> Option<Duration> {
    match (wait, timeout) {
        (_, Some(t)) => Some(t),
        (true, None) => Some(crate::lifecycle::DEFAULT_WAIT_TIMEOUT),
        (false, None) => None,
    }
}

fn pause(action: PauseAction, args: &[String], dry_run: bool) -> anyhow::Result<PauseSettings> {
    exact_args(args, 2)?;
    let target = PauseTarget::parse(&args[0])?;
    Ok(PauseSettings {
        action,
        target,
        name: names::resource_name(target.name_kind(), &args[1])?,
        dry_run,
    })
}

/// Exactly one VMI name, checked as a name.
fn vmi_settings(args: &[String]) -> anyhow::Result<VmiSettings> {
    exact_args(args, 1)?;
    Ok(VmiSettings {
        name: names::resource_name(NameKind::VirtualMachineInstance, &args[0])?,
    })
}

/// Part B §3.1 in KubeVirt's order: the argument count, `--name`, the flag values (protocol,
/// service type, IP families, policy), then TYPE; then both names (Part A §14).
fn expose(a: &ExposeArgs) -> anyhow::Result<ExposeSettings> {
    exact_args(&a.args, 2)?;
    let Some(typed_service_name) = a.name.as_deref() else {
        bail!("required flag(s) \"name\" not set");
    };
    let protocol = match a.protocol.to_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        _ => bail!("unknown protocol: {}", a.protocol),
    };
    let service_type = match a.service_type.to_lowercase().as_str() {
        "clusterip" => "ClusterIP",
        "nodeport" => "NodePort",
        "loadbalancer" => "LoadBalancer",
        "externalname" => bail!("type: {} not supported", a.service_type),
        _ => bail!("unknown service type: {}", a.service_type),
    };
    let ip_families: Vec<String> = match a.ip_family.to_lowercase().as_str() {
        "" => vec![],
        "ipv4" => vec!["IPv4".into()],
        "ipv6" => vec!["IPv6".into()],
        "ipv4,ipv6" => vec!["IPv4".into(), "IPv6".into()],
        "ipv6,ipv4" => vec!["IPv6".into(), "IPv4".into()],
        _ => bail!("unknown IPFamily/s: {}", a.ip_family),
    };
    let ip_family_policy = match a.ip_family_policy.to_lowercase().as_str() {
        "" if ip_families.len() == 2 => Some("PreferDualStack"),
        "" => None,
        "singlestack" => Some("SingleStack"),
        "preferdualstack" => Some("PreferDualStack"),
        "requiredualstack" => Some("RequireDualStack"),
        _ => bail!("unknown IPFamilyPolicy/s: {}", a.ip_family_policy),
    };
    let type_name = a.args[0].to_lowercase();
    let kind = ExposeKind::parse(&type_name)?;
    let name = names::resource_name(kind.name_kind(), &a.args[1])?;
    let service_name = names::resource_name(NameKind::Service, typed_service_name)?;
    let port = (a.port != 0).then(|| ServicePort {
        name: Some(a.port_name.clone()).filter(|n| !n.is_empty()),
        protocol: Some(protocol.to_string()),
        port: a.port,
        target_port: Some(int_or_string(&a.target_port)),
        ..Default::default()
    });
    Ok(ExposeSettings {
        type_name,
        kind,
        name,
        service_name,
        port,
        service_type: service_type.to_string(),
        cluster_ip: a.cluster_ip.clone(),
        external_ip: a.external_ip.clone(),
        ip_families,
        ip_family_policy: ip_family_policy.map(str::to_string),
        dry_run: a.dry_run,
    })
}

/// A number is a port number; anything else (even "") is a port name.
fn int_or_string(value: &str) -> IntOrString {
    match value.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn resolve_line(line: &str) -> anyhow::Result<Settings> {
        let args = std::iter::once("virtctl").chain(line.split_whitespace());
        resolve(Cli::try_parse_from(args).expect("clap accepts it"), false)
    }

    fn command(line: &str) -> CommandSettings {
        resolve_line(line).expect("valid").command
    }

    fn error(line: &str) -> String {
        format!("{:#}", resolve_line(line).expect_err("invalid"))
    }

    const FORCE_GRACE: &str = "Must both use --force=true and set --grace-period.";
    const NEGATIVE_STOP: &str =
        "error force stopping VirtualMachine: gracePeriod has to be greater or equal to 0";
    const NEGATIVE_RESTART: &str =
        "error force restarting VirtualMachine: gracePeriod has to be greater or equal to 0";

    #[test]
    fn bad_combinations() {
        let cases = [
            ("start", "accepts 1 arg(s), received 0"),
            ("stop a b", "accepts 1 arg(s), received 2"),
            ("start vmi a", "accepts 1 arg(s), received 2"),
            (
                "start Vm1",
                "invalid VirtualMachine name \"Vm1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ),
            ("stop vm1 --force", FORCE_GRACE),
            ("stop vm1 --grace-period=0", FORCE_GRACE),
            ("restart vm1 --force --dry-run", FORCE_GRACE),
            ("restart vm1 --grace-period 0", FORCE_GRACE),
            ("stop vm1 --force --grace-period=-5", NEGATIVE_STOP),
            ("restart vm1 --force --grace-period=-1", NEGATIVE_RESTART),
            (
                "status vm1 -A",
                "a resource cannot be retrieved by name across all namespaces",
            ),
            ("pause vm", "accepts 2 arg(s), received 1"),
            ("unpause vms vm1", "unsupported resource type: vms"),
            ("expose vm --name svc", "accepts 2 arg(s), received 1"),
            (
                "expose Kaboom vm1 --name svc",
                "unsupported resource type: kaboom",
            ),
            (
                "expose vm vm1 --name svc --type externalname",
                "type: externalname not supported",
            ),
            (
                "expose vm vm1 --name svc --type weird",
                "unknown service type: weird",
            ),
            (
                "expose vm vm1 --name svc --protocol sctp",
                "unknown protocol: sctp",
            ),
            (
                "expose vm vm1 --name svc --ip-family ipv5",
                "unknown IPFamily/s: ipv5",
            ),
            (
                "expose vm vm1 --name svc --ip-family-policy sometimes",
                "unknown IPFamilyPolicy/s: sometimes",
            ),
            (
                "-s ftp://host:21 version",
                "invalid --server \"ftp://host:21\": the scheme must be http or https",
            ),
        ];
        for (line, want) in cases {
            let got = error(line);
            if want.starts_with("invalid VirtualMachine name") {
                assert!(
                    got.starts_with("invalid VirtualMachine name \"Vm1\""),
                    "{line}: {got}"
                );
            } else {
                assert_eq!(got, want, "{line}");
            }
        }
        assert!(error("-n Bad_NS status").starts_with("invalid namespace \"Bad_NS\""));
    }

    /// KubeVirt's order of expose's checks: with several things wrong, the first in this
    /// order is reported.
    #[test]
    fn expose_checks_in_kubevirts_order() {
        let cases = [
            // (command line, the error reported)
            ("expose kaboom", "accepts 2 arg(s), received 1"),
            (
                "expose kaboom Bad_Name",
                "required flag(s) \"name\" not set",
            ),
            (
                "expose kaboom Bad_Name --name Bad_Svc --protocol sctp --type weird",
                "unknown protocol: sctp",
            ),
            (
                "expose kaboom Bad_Name --name Bad_Svc --type externalname --ip-family ipv5",
                "type: externalname not supported",
            ),
            (
                "expose kaboom Bad_Name --name Bad_Svc --ip-family ipv5 --ip-family-policy x",
                "unknown IPFamily/s: ipv5",
            ),
            (
                "expose kaboom Bad_Name --name Bad_Svc --ip-family-policy sometimes",
                "unknown IPFamilyPolicy/s: sometimes",
            ),
            (
                "expose kaboom Bad_Name --name Bad_Svc",
                "unsupported resource type: kaboom",
            ),
            (
                "expose vmi Bad_Name --name Bad_Svc",
                "invalid VirtualMachineInstance name \"Bad_Name\"",
            ),
            (
                "expose vm vm1 --name Bad_Svc",
                "invalid Service name \"Bad_Svc\"",
            ),
        ];
        for (line, want) in cases {
            let got = error(line);
            assert!(got.starts_with(want), "{line}: {got}");
        }
    }

    #[test]
    fn lifecycle_settings() {
        assert_eq!(
            command("start vm vm-cirros --paused --timeout 2m"),
            CommandSettings::Start(StartSettings {
                name: "vm-cirros".into(),
                paused: true,
                dry_run: false,
                wait: Some(Duration::from_secs(120)),
            })
        );
        let CommandSettings::Stop(stop) = command("stop vm1 --force --grace-period=0 --wait")
        else {
            panic!("stop");
        };
        assert!(stop.force());
        assert_eq!(stop.grace_period, Some(0));
        assert_eq!(stop.wait, Some(crate::lifecycle::DEFAULT_WAIT_TIMEOUT));
        let CommandSettings::Restart(restart) = command("restart vm/vm1 -y") else {
            panic!("restart");
        };
        assert!(!restart.force());
        assert!(restart.yes);
        assert_eq!(restart.wait, None);
    }

    #[test]
    fn other_settings() {
        assert_eq!(command(""), CommandSettings::Usage);
        assert_eq!(
            command("unpause VMI vmi1 --dry-run"),
            CommandSettings::Pause(PauseSettings {
                action: PauseAction::Unpause,
                target: PauseTarget::Vmi,
                name: "vmi1".into(),
                dry_run: true,
            })
        );
        assert_eq!(
            command("status -A -o json"),
            CommandSettings::Status(StatusSettings {
                names: vec![],
                all_namespaces: true,
                output: StatusOutput::Json,
            })
        );
        assert_eq!(
            command("version -c"),
            CommandSettings::Version(VersionSettings { client_only: true })
        );
        assert_eq!(
            command("version --client=false"),
            CommandSettings::Version(VersionSettings { client_only: false })
        );
        let settings = resolve_line("-n ns/dev -s 127.0.0.1:6443 version").unwrap();
        assert_eq!(settings.connect.namespace.as_deref(), Some("dev"));
        assert_eq!(settings.connect.server.as_deref(), Some("127.0.0.1:6443"));
    }

    #[test]
    fn guest_access_settings() {
        assert_eq!(
            command("console vmi1 --timeout 2"),
            CommandSettings::Console(ConsoleSettings {
                name: "vmi1".into(),
                timeout: Duration::from_secs(120),
            })
        );
        let CommandSettings::Vnc(v) =
            command("vnc vmi1 --proxy-only --address 0.0.0.0 --port 5901")
        else {
            panic!("vnc");
        };
        assert_eq!((v.address.to_string().as_str(), v.port), ("0.0.0.0", 5901));
        // Without --proxy-only the viewer connects to 127.0.0.1, as KubeVirt's virtctl.
        let CommandSettings::Vnc(v) = command("vnc vmi1 --address 0.0.0.0") else {
            panic!("vnc");
        };
        assert_eq!(v.address.to_string(), "127.0.0.1");
        let CommandSettings::PortForward(p) = command("port-forward vm/vm1/dev 8080:80 udp/53")
        else {
            panic!("port-forward");
        };
        assert_eq!(p.ports.len(), 2);
        assert_eq!(p.target.namespace.as_deref(), Some("dev"));
        let settings =
            resolve_line("--kubeconfig kc --context c ssh vmi/x --username jdoe -p 2222")
                .expect("valid");
        let CommandSettings::Ssh(s) = settings.command else {
            panic!("ssh");
        };
        // ssh's --username is the guest user, not kubectl's basic-auth one.
        assert_eq!(s.common.username.as_deref(), Some("jdoe"));
        assert_eq!(settings.connect.username, None);
        assert_eq!(s.common.port, 2222);
        let kubeconfig = std::path::absolute("kc").unwrap();
        assert_eq!(
            s.common.connection_flags,
            [
                format!("--kubeconfig={}", kubeconfig.display()),
                "--context=c".into()
            ]
        );
        for (line, want) in [
            ("console", "accepts 1 arg(s), received 0"),
            (
                "vnc vmi1 --vnc-type chicken",
                "unsupported vnc-type for linux: chicken",
            ),
            (
                "vnc vmi1 --vnc-path /x",
                "--vnc-path needs --vnc-type (tiger or remote-viewer)",
            ),
            ("scp a", "accepts 2 arg(s), received 1"),
        ] {
            assert_eq!(error(line), want, "{line}");
        }
    }

    #[test]
    fn pause_types_are_singular() {
        assert_eq!(PauseTarget::parse("VM").unwrap(), PauseTarget::Vm);
        assert_eq!(
            PauseTarget::parse("virtualmachine").unwrap(),
            PauseTarget::Vm
        );
        assert_eq!(PauseTarget::parse("vmi").unwrap(), PauseTarget::Vmi);
        assert_eq!(
            PauseTarget::parse("VirtualMachineInstance").unwrap(),
            PauseTarget::Vmi
        );
    }

    #[test]
    fn expose_dual_stack_defaults_to_prefer() {
        let CommandSettings::Expose(e) = command("expose VM vm1 --name svc --ip-family ipv4,ipv6")
        else {
            panic!("expose");
        };
        assert_eq!(e.type_name, "vm");
        assert_eq!(e.kind, ExposeKind::Vm);
        assert_eq!(e.ip_families, vec!["IPv4", "IPv6"]);
        assert_eq!(e.ip_family_policy.as_deref(), Some("PreferDualStack"));
        let CommandSettings::Expose(e) = command("expose vm vm1 --name svc --ip-family IPv6")
        else {
            panic!("expose");
        };
        assert_eq!(e.ip_family_policy, None);
    }

    #[test]
    fn expose_target_port_is_int_or_string() {
        assert_eq!(int_or_string("8080"), IntOrString::Int(8080));
        assert_eq!(int_or_string("http"), IntOrString::String("http".into()));
        assert_eq!(int_or_string(""), IntOrString::String(String::new()));
    }
}
