//! The command line: every flag and subcommand, as clap derive types (ARCHITECTURE.md: "the
//! clap definitions are in one place"). The commands never see these types; `main.rs` turns
//! them into each command's resolved options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use clap_complete::ArgValueCompleter;

use crate::cluster_completion;

/// kubectl's boolean flags: `--x` alone means true, `--x=false` is accepted, and the value is
/// never taken from the next argument (`--force vm1` keeps `vm1` positional).
trait KubectlBool {
    fn kubectl_bool(self) -> Self;
}

impl KubectlBool for clap::Arg {
    fn kubectl_bool(self) -> Self {
        self.value_name("BOOL")
            .num_args(0..=1)
            .require_equals(true)
            .hide_default_value(true)
            .hide_possible_values(true)
            .default_missing_value("true")
            .action(ArgAction::Set)
    }
}

/// The name shown in help and usage when virtctl runs as the kubectl plugin `kubectl-virt`.
pub const PLUGIN_DISPLAY_NAME: &str = "kubectl virt";

const START_USAGE: &str = "virtctl start (VM) [flags]";
const STOP_USAGE: &str = "virtctl stop (VM) [flags]";
const RESTART_USAGE: &str = "virtctl restart (VM) [flags]";
const EXPOSE_USAGE: &str = "virtctl expose (TYPE NAME) --name SERVICE [flags]";
const STATUS_USAGE: &str = "virtctl status [VM...] [flags]";
const PAUSE_USAGE: &str = "virtctl pause vm|vmi (VM)|(VMI) [flags]";
const UNPAUSE_USAGE: &str = "virtctl unpause vm|vmi (VM)|(VMI) [flags]";
const RESET_USAGE: &str = "virtctl reset (VMI) [flags]";
const SOFT_REBOOT_USAGE: &str = "virtctl soft-reboot (VMI) [flags]";
const CONSOLE_USAGE: &str = "virtctl console (VMI) [flags]";
const VNC_USAGE: &str = "virtctl vnc (VMI) [flags]";
const PORT_FORWARD_USAGE: &str =
    "virtctl port-forward TYPE/NAME[/NAMESPACE] [PROTOCOL/]LOCAL[:REMOTE]... [flags]";
const SSH_USAGE: &str = "virtctl ssh [USER@]TYPE/NAME[/NAMESPACE] [flags]";
const SCP_USAGE: &str = "virtctl scp SOURCE DESTINATION [flags]";

fn usage_of(subcommand: &str) -> Option<&'static str> {
    match subcommand {
        "start" => Some(START_USAGE),
        "stop" => Some(STOP_USAGE),
        "restart" => Some(RESTART_USAGE),
        "expose" => Some(EXPOSE_USAGE),
        "status" => Some(STATUS_USAGE),
        "pause" => Some(PAUSE_USAGE),
        "unpause" => Some(UNPAUSE_USAGE),
        "reset" => Some(RESET_USAGE),
        "soft-reboot" => Some(SOFT_REBOOT_USAGE),
        "console" => Some(CONSOLE_USAGE),
        "vnc" => Some(VNC_USAGE),
        "port-forward" => Some(PORT_FORWARD_USAGE),
        "ssh" => Some(SSH_USAGE),
        "scp" => Some(SCP_USAGE),
        _ => None,
    }
}

const ROOT_ABOUT: &str =
    "virtctl controls virtual machine related operations on your kubernetes cluster.";

const ROOT_AFTER_HELP: &str = "\
Examples:
  # Start a virtual machine called 'myvm':
  virtctl start myvm

  # Restart it, waiting until it runs again:
  virtctl restart myvm --wait

  # Expose its SSH port as a Service:
  virtctl expose vm myvm --name myvm-ssh --port 22

  # Reach its guest: the serial console, or SSH as user 'jdoe':
  virtctl console myvm
  virtctl ssh jdoe@vm/myvm

Use \"virtctl <command> --help\" for more information about a given command.";

const START_AFTER_HELP: &str = "\
Examples:
  # Start a virtual machine called 'myvm':
  virtctl start myvm

  # Start it with the guest paused, in namespace 'dev':
  virtctl start myvm --paused -n dev

  # Start it and wait until it is Running (at most 2 minutes):
  virtctl start myvm --wait --timeout 2m

  # Show what would happen, changing nothing:
  virtctl start myvm --dry-run";

const STOP_AFTER_HELP: &str = "\
Examples:
  # Stop a virtual machine called 'myvm':
  virtctl stop myvm

  # Stop it at once, without waiting for the guest to shut down:
  virtctl stop myvm --force --grace-period=0

  # Stop it and wait until it is Stopped:
  virtctl stop myvm --wait";

const RESTART_AFTER_HELP: &str = "\
Examples:
  # Restart a virtual machine called 'myvm':
  virtctl restart myvm

  # Force a restart (kills the running guest; may corrupt its data):
  virtctl restart myvm --force --grace-period=0 --yes

  # Restart it and wait until a new instance is Running:
  virtctl restart myvm --wait";

const EXPOSE_AFTER_HELP: &str = "\
Examples:
  # Expose SSH of the virtual machine 'myvm' as a node port:
  virtctl expose vm myvm --name myvm-ssh --port 22 --type NodePort

  # Expose the ports its pod network interface declares:
  virtctl expose vmi myvm --name myvm-svc

  # Expose a replica set of instances on port 80, forwarding to 8080:
  virtctl expose vmirs myrs --name web --port 80 --target-port 8080

  # Print the Service that would be created, as YAML, creating nothing:
  virtctl expose vm myvm --name myvm-ssh --port 22 --dry-run";

const PAUSE_AFTER_HELP: &str = "\
Examples:
  # Pause the guest of the running virtual machine 'myvm':
  virtctl pause vm myvm

  # Pause a virtual machine instance:
  virtctl pause vmi myvm

Pausing needs the cluster's KubeVirt subresource API (subresources.kubevirt.io).";

const UNPAUSE_AFTER_HELP: &str = "\
Examples:
  # Resume the paused guest of the virtual machine 'myvm':
  virtctl unpause vm myvm

  # Resume a virtual machine instance:
  virtctl unpause vmi myvm

Unpausing needs the cluster's KubeVirt subresource API (subresources.kubevirt.io).";

const RESET_AFTER_HELP: &str = "\
Examples:
  # Reset a virtualmachineinstance called 'myvmi':
  virtctl reset myvmi

The machine restarts at once, like pressing its reset button: the guest is not asked to shut
down, and it keeps its QEMU process. Needs the cluster's KubeVirt subresource API.";

const SOFT_REBOOT_AFTER_HELP: &str = "\
Examples:
  # Soft-Reboot a virtualmachineinstance called 'myvmi':
  virtctl soft-reboot myvmi

A soft reboot asks the guest to reboot itself, through its guest agent. Without a connected
agent it fails with KubeVirt's message (this toolkit's guests have none; use reset).";

const CONSOLE_AFTER_HELP: &str = "\
Examples:
  # Connect to the serial console of the instance 'myvmi':
  virtctl console myvmi

  # Give up when it is not running within one minute (default 5):
  virtctl console --timeout=1 myvmi

Press Ctrl+] (or Ctrl+5) to leave the console; every other key, Ctrl+C included, goes to the
guest. When stdin is not a terminal, its bytes are sent as they come and the console ends at
the end of the input.";

const VNC_AFTER_HELP: &str = "\
Examples:
  # Open the screen of 'myvmi' in remote-viewer (or vncviewer), whichever is installed:
  virtctl vnc myvmi

  # Only run the local proxy, on port 5901 of every interface, for a viewer started by hand:
  virtctl vnc myvmi --proxy-only --port 5901 --address 0.0.0.0

With --proxy-only, the port is printed as JSON ({\"port\":N}) and every viewer that connects
gets its own stream to the instance's screen, until Ctrl+C. Without a viewer on the PATH,
virtctl says where to connect one and keeps the proxy running.";

const PORT_FORWARD_AFTER_HELP: &str = "\
Examples:
  # Forward local port 8080 to port 8080 of the instance 'myvmi':
  virtctl port-forward vmi/myvmi 8080

  # Forward local port 2222 to port 22 of the virtual machine 'myvm' in namespace 'dev':
  virtctl port-forward vm/myvm/dev 2222:22

  # A free local port to port 80 (the port chosen is printed):
  virtctl port-forward vmi/myvmi :80

  # UDP: local port 5353 to the instance's port 53:
  virtctl port-forward vmi/myvmi udp/5353:53

  # Use stdin and stdout as the connection (an ssh ProxyCommand):
  virtctl port-forward --stdio=true vmi/myvmi 22

TYPE is vm or vmi (or virtualmachine, virtualmachineinstance, and their plurals). A dot is part
of NAME; when no object has that name and no /NAMESPACE is given, vm/NAME.NAMESPACE is read
the older way, as NAME in NAMESPACE, with a warning. Each local TCP connection, and each local UDP peer, gets its own stream through the
Kubernetes API server, so heavy traffic loads the control plane: for that, expose a Service.";

const SSH_AFTER_HELP: &str = "\
Examples:
  # Log in to the instance 'myvmi' as jdoe:
  virtctl ssh jdoe@vmi/myvmi

  # The virtual machine 'myvm' in namespace 'dev', with a given key:
  virtctl ssh jdoe@vm/myvm/dev -i ~/.ssh/id_ed25519

  # Run one command and return its exit status:
  virtctl ssh jdoe@vmi/myvmi --command 'uname -a'

  # Pass options to the local ssh:
  virtctl ssh jdoe@vmi/myvmi -t '-o StrictHostKeyChecking=no'

By default the system's ssh runs, reaching the guest through
`virtctl port-forward --stdio=true` as its ProxyCommand; its host name is TYPE.NAME.NAMESPACE
(the key of its known_hosts entry), and virtctl exits with its exit status. With
--local-ssh=false, virtctl's own client logs in with the key of -i (or ~/.ssh/id_ed25519,
id_ecdsa, id_rsa), trusting the guest's host key on first use (in --known-hosts).";

const SCP_AFTER_HELP: &str = "\
Examples:
  # Copy a file to the home directory of jdoe on the instance 'myvmi':
  virtctl scp myfile.bin jdoe@vmi/myvmi:myfile.bin

  # Copy a directory, recursively:
  virtctl scp -r ~/mydir/ jdoe@vmi/myvmi:./mydir

  # Copy a file from the virtual machine 'myvm' in namespace 'dev' to here:
  virtctl scp jdoe@vm/myvm/dev:/etc/os-release .

One of the two locations is [USER@]TYPE/NAME[/NAMESPACE]:PATH; an empty PATH is the login
directory. The system's scp runs, through the same ProxyCommand as virtctl ssh, and virtctl
exits with its exit status. With --local-ssh=false, virtctl copies over SFTP itself (the guest
needs an SFTP server), logging in as virtctl ssh --local-ssh=false does: a file copied to a
directory keeps its name, a directory needs -r, and the first failure ends the copy with exit
status 1, naming the file that may be partial.";

const STATUS_AFTER_HELP: &str = "\
Examples:
  # Every virtual machine of the current namespace:
  virtctl status

  # Two of them, in namespace 'dev':
  virtctl status myvm othervm -n dev

  # Every virtual machine of every namespace:
  virtctl status -A

  # The VirtualMachine object itself, as YAML:
  virtctl status myvm -o yaml";

const VERSION_AFTER_HELP: &str = "\
Examples:
  # Print the client's version and the KubeVirt version of the cluster:
  virtctl version

  # Print only the client's version, without asking the cluster:
  virtctl version --client";

const COMPLETION_AFTER_HELP: &str = "\
Examples:
  # Load completions into the current bash session:
  source <(virtctl completion bash)

  # Install them for zsh:
  virtctl completion zsh > \"${fpath[1]}/_virtctl\"

  # Install them for fish, without descriptions:
  virtctl completion fish --no-descriptions > ~/.config/fish/completions/virtctl.fish

The scripts call virtctl back to complete, so it must be on the PATH; VM and namespace
names come from the cluster of the flags typed so far (or the kubeconfig).";

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "virtctl",
    version,
    about = ROOT_ABOUT,
    after_help = ROOT_AFTER_HELP,
    subcommand_value_name = "COMMAND",
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that every command takes: where the cluster is and who we are (kubectl's names).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Cluster connection (global)")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// The namespace of the request (a leading "ns/" or "namespace/" is ignored).
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAME",
        value_parser = parse_namespace,
        add = ArgValueCompleter::new(cluster_completion::namespaces)
    )]
    pub namespace: Option<String>,

    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for authentication to the API server.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Path to a cert file for the certificate authority.
    #[arg(long, global = true, value_name = "PATH")]
    pub certificate_authority: Option<PathBuf>,

    /// Path to a client certificate file for TLS.
    #[arg(long, global = true, value_name = "PATH")]
    pub client_certificate: Option<PathBuf>,

    /// Path to a client key file for TLS.
    #[arg(long, global = true, value_name = "PATH")]
    pub client_key: Option<PathBuf>,

    /// Do not check the server's certificate (makes HTTPS insecure).
    #[arg(long, global = true, kubectl_bool())]
    pub insecure_skip_tls_verify: Option<bool>,

    /// Server name to use for certificate validation (default: the server's host name).
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout.
    #[arg(long, global = true, value_name = "DUR", default_value = "0", value_parser = parse_request_timeout)]
    pub request_timeout: RequestTimeout,

    /// Username to impersonate for the operation.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate for the operation; repeat it for several groups.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,

    /// UID to impersonate for the operation.
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    pub as_uid: Option<String>,

    /// Username for basic authentication to the API server.
    #[arg(long, global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Password for basic authentication to the API server.
    #[arg(long, global = true, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Proxy for every request to the API server (http, https or socks5 URL).
    #[arg(long, global = true, value_name = "URL")]
    pub proxy_url: Option<String>,

    /// Do not ask the API server for compressed responses.
    #[arg(long, global = true, kubectl_bool())]
    pub disable_compression: Option<bool>,

    /// Log verbosity (accepted for compatibility; virtctl prints no logs).
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "LEVEL",
        default_value_t = 2,
        hide = true
    )]
    pub verbosity: i32,
}

/// `--request-timeout`: `None` for "0" (no timeout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a virtual machine.
    #[command(after_help = START_AFTER_HELP, override_usage = START_USAGE)]
    Start(StartArgs),

    /// Stop a virtual machine.
    #[command(after_help = STOP_AFTER_HELP, override_usage = STOP_USAGE)]
    Stop(StopArgs),

    /// Restart a virtual machine.
    #[command(after_help = RESTART_AFTER_HELP, override_usage = RESTART_USAGE)]
    Restart(RestartArgs),

    /// Expose a virtual machine instance, virtual machine or replica set as a new Service.
    #[command(
        long_about = "Expose a virtual machine instance (vmi), virtual machine (vm) or \
virtual machine instance replica set (vmirs) as a new Kubernetes Service.\n\n\
TYPE is one of vmi (virtualmachineinstance), vm (virtualmachine) or vmirs \
(virtualmachineinstancereplicaset). The Service selects the instance by its \
vmi.kubevirt.io/id label (for a replica set: by the set's selector), and is owned by \
the exposed object, so it is deleted with it.\n\n\
Without --port, the ports are those declared on the interface of the pod network.",
        after_help = EXPOSE_AFTER_HELP,
        override_usage = EXPOSE_USAGE
    )]
    Expose(ExposeArgs),

    /// Pause the guest of a running virtual machine or instance.
    #[command(after_help = PAUSE_AFTER_HELP, override_usage = PAUSE_USAGE)]
    Pause(PauseArgs),

    /// Resume the paused guest of a virtual machine or instance.
    #[command(after_help = UNPAUSE_AFTER_HELP, override_usage = UNPAUSE_USAGE)]
    Unpause(PauseArgs),

    /// Reset a virtual machine instance.
    #[command(after_help = RESET_AFTER_HELP, override_usage = RESET_USAGE)]
    Reset(VmiArgs),

    /// Soft reboot a virtual machine instance.
    #[command(after_help = SOFT_REBOOT_AFTER_HELP, override_usage = SOFT_REBOOT_USAGE)]
    SoftReboot(VmiArgs),

    /// Connect to the serial console of a virtual machine instance.
    #[command(after_help = CONSOLE_AFTER_HELP, override_usage = CONSOLE_USAGE)]
    Console(ConsoleArgs),

    /// Open a VNC connection to a virtual machine instance.
    #[command(after_help = VNC_AFTER_HELP, override_usage = VNC_USAGE)]
    Vnc(VncArgs),

    /// Forward local ports to a virtual machine or virtual machine instance.
    #[command(after_help = PORT_FORWARD_AFTER_HELP, override_usage = PORT_FORWARD_USAGE)]
    PortForward(PortForwardArgs),

    /// Open an SSH connection to a virtual machine or instance.
    #[command(after_help = SSH_AFTER_HELP, override_usage = SSH_USAGE)]
    Ssh(SshArgs),

    /// Copy files from or to a virtual machine or instance (SCP).
    #[command(after_help = SCP_AFTER_HELP, override_usage = SCP_USAGE)]
    Scp(ScpArgs),

    /// Show virtual machines: status, readiness, and their instance's phase, node and IP.
    #[command(after_help = STATUS_AFTER_HELP, override_usage = STATUS_USAGE)]
    Status(StatusArgs),

    /// Print the client and server version information.
    #[command(after_help = VERSION_AFTER_HELP)]
    Version(VersionArgs),

    /// Print a shell completion script (bash, zsh, fish, powershell or elvish).
    #[command(after_help = COMPLETION_AFTER_HELP)]
    Completion(CompletionArgs),
}

/// `--wait` and `--timeout` of start, stop and restart (Part A §8).
#[derive(Args, Debug, Clone, Default)]
pub struct WaitArgs {
    /// Block until the command has taken effect (Running, Stopped, or running again).
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub wait: bool,

    /// With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `virtctl start`.
#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// The virtual machine.
    #[arg(value_name = "VM", hide = true, add = ArgValueCompleter::new(cluster_completion::vm_names))]
    pub args: Vec<String>,

    /// Start the virtual machine with its guest paused.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub paused: bool,

    /// Only print what would happen: the request is sent with dryRun=All and changes nothing.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub dry_run: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `virtctl stop`.
#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// The virtual machine.
    #[arg(value_name = "VM", hide = true, add = ArgValueCompleter::new(cluster_completion::vm_names))]
    pub args: Vec<String>,

    /// Stop at once with the given --grace-period instead of the guest's own (needs --grace-period).
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub force: bool,

    /// With --force: the grace period in seconds given to the guest (default -1: its own).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub grace_period: Option<i64>,

    /// Only print what would happen: the request is sent with dryRun=All and changes nothing.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub dry_run: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `virtctl restart`.
#[derive(Args, Debug, Clone)]
pub struct RestartArgs {
    /// The virtual machine.
    #[arg(value_name = "VM", hide = true, add = ArgValueCompleter::new(cluster_completion::vm_names))]
    pub args: Vec<String>,

    /// Kill the running instance at once (only with --grace-period=0). This may corrupt the guest's data.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub force: bool,

    /// With --force: the grace period in seconds; only 0 is supported (default -1).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub grace_period: Option<i64>,

    /// Only print what would happen: the request is sent with dryRun=All and changes nothing.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub dry_run: bool,

    /// Do not ask for confirmation before a force restart.
    #[arg(short = 'y', long)]
    pub yes: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `virtctl expose`.
#[derive(Args, Debug, Clone)]
pub struct ExposeArgs {
    /// The kind of object (vm, vmi or vmirs) and its name.
    #[arg(
        value_name = "TYPE NAME",
        hide = true,
        add = ArgValueCompleter::new(cluster_completion::expose_args)
    )]
    pub args: Vec<String>,

    /// Name of the Service to create (required).
    // Checked after the argument count, as cobra does, not by clap (see settings::expose).
    #[arg(long, value_name = "SERVICE")]
    pub name: Option<String>,

    /// The port the Service serves; without it, the ports are found by introspection.
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: i32,

    /// With --port: the port number or name on the instance to forward to (default: --port).
    #[arg(long, value_name = "PORT", default_value = "")]
    pub target_port: String,

    /// With --port: the protocol, TCP or UDP.
    #[arg(long, value_name = "PROTOCOL", default_value = "TCP")]
    pub protocol: String,

    /// With --port: the name of the port.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub port_name: String,

    /// Service type: ClusterIP, NodePort or LoadBalancer.
    #[arg(long = "type", value_name = "TYPE", default_value = "ClusterIP")]
    pub service_type: String,

    /// Cluster IP of the Service; empty allocates one, "None" makes it headless.
    #[arg(long, value_name = "IP", default_value = "")]
    pub cluster_ip: String,

    /// An external IP the Service also accepts traffic on.
    #[arg(long, value_name = "IP", default_value = "")]
    pub external_ip: String,

    /// IP family or families: IPv4, IPv6, "IPv4,IPv6" or "IPv6,IPv4".
    #[arg(long, value_name = "FAMILIES", default_value = "")]
    pub ip_family: String,

    /// IP family policy: SingleStack, PreferDualStack or RequireDualStack.
    #[arg(long, value_name = "POLICY", default_value = "")]
    pub ip_family_policy: String,

    /// Print the Service as YAML instead of creating it.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub dry_run: bool,
}

/// `virtctl pause` and `virtctl unpause`.
#[derive(Args, Debug, Clone)]
pub struct PauseArgs {
    /// vm or vmi, and its name.
    #[arg(
        value_name = "TYPE NAME",
        hide = true,
        add = ArgValueCompleter::new(cluster_completion::pause_args)
    )]
    pub args: Vec<String>,

    /// Only print what would happen: the request is sent with dryRun=All and changes nothing.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub dry_run: bool,
}

/// `virtctl reset` and `virtctl soft-reboot`: one instance, no flags of their own.
#[derive(Args, Debug, Clone)]
pub struct VmiArgs {
    /// The instance's name.
    #[arg(value_name = "VMI", hide = true, add = ArgValueCompleter::new(cluster_completion::vmi_names))]
    pub args: Vec<String>,
}

/// `virtctl console`.
#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// The instance's name.
    #[arg(value_name = "VMI", hide = true, add = ArgValueCompleter::new(cluster_completion::vmi_names))]
    pub args: Vec<String>,

    /// The number of minutes to wait for the instance to be running (0: do not wait).
    #[arg(long, value_name = "MINUTES", default_value_t = 5)]
    pub timeout: u32,
}

/// `virtctl vnc`.
#[derive(Args, Debug, Clone)]
pub struct VncArgs {
    /// The instance's name.
    #[arg(value_name = "VMI", hide = true, add = ArgValueCompleter::new(cluster_completion::vmi_names))]
    pub args: Vec<String>,

    /// With --proxy-only: the address the proxy listens on (0.0.0.0: every interface).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub address: String,

    /// Only run the proxy and print its port, for a viewer started by hand.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub proxy_only: bool,

    /// The port the proxy listens on; 0 chooses a free one.
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,

    /// Keep an existing VNC session instead of dropping it.
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub preserve_session: bool,

    /// The viewer to run: tiger (vncviewer) or remote-viewer (default: the first on the PATH).
    #[arg(long, value_name = "TYPE")]
    pub vnc_type: Option<String>,

    /// The viewer's executable, with --vnc-type.
    #[arg(long, value_name = "PATH")]
    pub vnc_path: Option<PathBuf>,
}

/// `virtctl port-forward`.
#[derive(Args, Debug, Clone)]
pub struct PortForwardArgs {
    /// TYPE/NAME[/NAMESPACE], then one or more [PROTOCOL/]LOCAL[:REMOTE].
    #[arg(
        value_name = "TARGET PORT",
        hide = true,
        add = ArgValueCompleter::new(cluster_completion::typed_target)
    )]
    pub args: Vec<String>,

    /// Use stdin and stdout as the connection to the one port given (an ssh ProxyCommand).
    #[arg(long, kubectl_bool(), default_value = "false")]
    pub stdio: bool,

    /// The local address the ports are opened on.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub address: String,
}

/// The flags of ssh and scp.
#[derive(Args, Debug, Clone)]
pub struct SshFlags {
    /// The user to log in as, also --username (default: the target's USER@, else the local
    /// user).
    #[arg(short = 'l', value_name = "USER")]
    pub login: Option<String>,

    /// A private key to authenticate with (default: ssh's own choice, or its agent).
    #[arg(short = 'i', long, value_name = "PATH")]
    pub identity_file: Option<PathBuf>,

    /// The known_hosts file (default: ssh's own; with --local-ssh=false
    /// ~/.ssh/kubevirt_known_hosts).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,

    /// The guest's SSH port.
    #[arg(short = 'p', long, value_name = "PORT", default_value_t = 22)]
    pub port: u16,

    /// An option for the local ssh or scp, e.g. '-o StrictHostKeyChecking=no'; repeatable.
    #[arg(
        short = 't',
        long = "local-ssh-opts",
        value_name = "OPT",
        allow_hyphen_values = true
    )]
    pub local_ssh_opts: Vec<String>,

    /// Run the system's ssh/scp (true), or virtctl's own SSH client (false).
    #[arg(long, kubectl_bool(), default_value = "true")]
    pub local_ssh: bool,
}

/// `virtctl ssh`.
#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// [USER@]TYPE/NAME[/NAMESPACE].
    #[arg(
        value_name = "TARGET",
        hide = true,
        add = ArgValueCompleter::new(cluster_completion::typed_target)
    )]
    pub args: Vec<String>,

    #[command(flatten)]
    pub ssh: SshFlags,

    /// A command to run in the guest instead of a login shell.
    #[arg(short = 'c', long, value_name = "COMMAND")]
    pub command: Option<String>,
}

/// `virtctl scp`.
#[derive(Args, Debug, Clone)]
pub struct ScpArgs {
    /// SOURCE and DESTINATION; one of them [USER@]TYPE/NAME[/NAMESPACE]:PATH.
    #[arg(value_name = "SOURCE DESTINATION", hide = true)]
    pub args: Vec<String>,

    #[command(flatten)]
    pub ssh: SshFlags,

    /// Copy directories with their contents.
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Keep modification times, access times and modes.
    #[arg(long)]
    pub preserve: bool,
}

/// `virtctl status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The virtual machines; none means all of them.
    #[arg(value_name = "VM", hide = true, add = ArgValueCompleter::new(cluster_completion::vm_names))]
    pub names: Vec<String>,

    /// List the virtual machines of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Print the VirtualMachine objects instead of the table: yaml or json.
    #[arg(
        short = 'o',
        long,
        value_enum,
        value_name = "FORMAT",
        hide_possible_values = true
    )]
    pub output: Option<OutputFormat>,
}

/// `status -o`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// `virtctl version`.
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Client version only (no server required).
    #[arg(short = 'c', long, kubectl_bool(), default_value = "false")]
    pub client: bool,
}

/// `virtctl completion`.
#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to print the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,

    /// Complete without descriptions of the commands, flags and names.
    #[arg(long)]
    pub no_descriptions: bool,
}

/// `-n ns/foo`, `-n Namespace/foo` and `-n namespaces/foo` all mean `foo`, as in kubectl.
pub fn parse_namespace(value: &str) -> Result<String, String> {
    Ok(strip_namespace_prefix(value).to_string())
}

/// Strips one leading `ns/`, `namespace/` or `namespaces/`, case-insensitively.
pub fn strip_namespace_prefix(value: &str) -> &str {
    for prefix in ["namespaces/", "namespace/", "ns/"] {
        if value.len() >= prefix.len()
            && value.is_char_boundary(prefix.len())
            && value[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            return &value[prefix.len()..];
        }
    }
    value
}

/// A duration such as `90s`, `5m` or `1h30m`; a bare number is seconds.
pub use cli_duration::parse_duration;

fn parse_request_timeout(value: &str) -> Result<RequestTimeout, String> {
    let d = parse_duration(value)?;
    Ok(RequestTimeout((!d.is_zero()).then_some(d)))
}

/// Whether argv[0] names the kubectl plugin (`kubectl-virt`, or anything ending in `-virt`).
pub fn is_plugin(argv0: &str) -> bool {
    let base = std::path::Path::new(argv0)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(argv0);
    base.ends_with("-virt")
}

/// The clap command, with every `virtctl` in help and usage replaced by `kubectl virt` when
/// running as the kubectl plugin.
pub fn command(plugin: bool) -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    if !plugin {
        return cmd;
    }
    let rename = |text: &str| text.replace("virtctl", PLUGIN_DISPLAY_NAME);
    let mut cmd = cmd
        .bin_name(PLUGIN_DISPLAY_NAME)
        .display_name(PLUGIN_DISPLAY_NAME);
    if let Some(h) = cmd.get_after_help().map(|h| rename(&h.to_string())) {
        cmd = cmd.after_help(h);
    }
    if let Some(a) = cmd.get_about().map(|h| rename(&h.to_string())) {
        cmd = cmd.about(a);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |mut sub| {
            if let Some(h) = sub.get_after_help().map(|h| rename(&h.to_string())) {
                sub = sub.after_help(h);
            }
            if let Some(u) = usage_of(sub.get_name()) {
                sub = sub.override_usage(rename(u));
            }
            sub
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes_are_stripped_case_insensitively() {
        assert_eq!(strip_namespace_prefix("ns/foo"), "foo");
        assert_eq!(strip_namespace_prefix("NS/foo"), "foo");
        assert_eq!(strip_namespace_prefix("Namespace/foo"), "foo");
        assert_eq!(strip_namespace_prefix("namespaces/foo"), "foo");
        assert_eq!(strip_namespace_prefix("foo"), "foo");
        assert_eq!(strip_namespace_prefix("nsx/foo"), "nsx/foo");
    }

    #[test]
    fn plugin_names() {
        assert!(is_plugin("/usr/local/bin/kubectl-virt"));
        assert!(is_plugin("kubectl-virt.exe"));
        assert!(!is_plugin("virtctl"));
    }

    #[test]
    fn cli_is_consistent() {
        command(false).debug_assert();
        command(true).debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_request_timeout("0"), Ok(RequestTimeout(None)));
    }
}
