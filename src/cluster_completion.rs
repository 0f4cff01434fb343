//! Shell completion that asks the cluster (Part A §8): VM names for start, stop, restart,
//! status and `expose vm`, VMI names for `expose vmi`, and namespaces for `-n`.
//!
//! The completion scripts (`virtctl completion SHELL`, committed in `completions/`) call
//! `virtctl` back with `VIRTCTL_COMPLETE=<shell>` and the words typed so far; clap_complete's
//! engine then completes subcommands and flags, and the completers here fetch names. They use
//! the connection flags already typed (`--kubeconfig`, `-n`, `--context`, ...), give up after
//! [`LOOKUP_TIMEOUT`], and complete nothing on any error: a shell prompt must never show an
//! error or hang.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::FromArgMatches;
use clap_complete::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use crate::cli::{self, GlobalArgs};
use crate::client::{ConnectOptions, connect};

/// The variable the scripts set to the shell's name to ask for completions.
pub const COMPLETE_VAR: &str = "VIRTCTL_COMPLETE";

/// The same, for completions without descriptions (`completion SHELL --no-descriptions`).
pub const COMPLETE_NO_DESC_VAR: &str = "VIRTCTL_COMPLETE_NO_DESC";

/// How long one lookup in the cluster may take, connection included.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// The registration script for `shell`, which makes the shell call `bin` back for completions.
pub fn registration_script(
    shell: clap_complete::Shell,
    bin: &str,
    descriptions: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Elvish => &Elvish,
        other => anyhow::bail!("no completion script for {other}"),
    };
    let var = if descriptions {
        COMPLETE_VAR
    } else {
        COMPLETE_NO_DESC_VAR
    };
    completer.write_registration(var, bin, bin, bin, out)?;
    Ok(())
}

/// What was typed before the word being completed.
#[derive(Debug, Clone, Default)]
struct Typed {
    connect: ConnectOptions,
    /// The positional arguments of the subcommand, e.g. `["vm"]` for `expose vm <TAB>`.
    positionals: Vec<String>,
    descriptions: bool,
}

static TYPED: OnceLock<Typed> = OnceLock::new();

/// When the shell asks for completions, prints them and returns the exit code (always
/// success); otherwise returns `None` and virtctl runs normally.
pub fn complete_if_asked(plugin: bool) -> Option<ExitCode> {
    let asked = |var| std::env::var_os(var).is_some_and(|s| !s.is_empty() && s != "0");
    let (var, descriptions) = if asked(COMPLETE_VAR) {
        (COMPLETE_VAR, true)
    } else if asked(COMPLETE_NO_DESC_VAR) {
        (COMPLETE_NO_DESC_VAR, false)
    } else {
        return None;
    };
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(dash) = args.iter().position(|a| a == "--") {
        let words = &args[dash + 1..];
        // bash says which word is completed; the other shells complete the last one.
        let index = std::env::var("_CLAP_COMPLETE_INDEX")
            .ok()
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(words.len().saturating_sub(1))
            .min(words.len());
        let mut typed = typed_before(&words[..index], plugin);
        typed.descriptions = descriptions;
        let _ = TYPED.set(typed);
    }
    let current_dir = std::env::current_dir().ok();
    let factory = move || {
        let mut cmd = cli::command(plugin);
        if descriptions {
            return cmd;
        }
        // Built first, so that the generated --help and help lose their text too.
        cmd.build();
        without_descriptions(cmd)
    };
    // Errors are swallowed: nothing is completed, and the shell shows nothing.
    let _ = clap_complete::CompleteEnv::with_factory(factory)
        .var(var)
        .try_complete(args, current_dir.as_deref());
    Some(ExitCode::SUCCESS)
}

/// The command with no help text on any subcommand or argument.
fn without_descriptions(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd
        .about(None)
        .long_about(None)
        .mut_args(|a| a.help(None).long_help(None));
    for name in names {
        cmd = cmd.mut_subcommand(name, without_descriptions);
    }
    cmd
}

/// Parses the words before the cursor as far as they go.
fn typed_before(words: &[OsString], plugin: bool) -> Typed {
    let Ok(matches) = cli::command(plugin)
        .ignore_errors(true)
        .try_get_matches_from(words)
    else {
        return Typed::default();
    };
    let global = GlobalArgs::from_arg_matches(&matches).unwrap_or_default();
    let positionals = matches
        .subcommand()
        .and_then(|(_, sub)| {
            let id = sub
                .ids()
                .find(|id| ["args", "names"].contains(&id.as_str()))?;
            sub.get_many::<String>(id.as_str())
        })
        .map(|values| values.cloned().collect())
        .unwrap_or_default();
    Typed {
        connect: crate::settings::connect_options_unchecked(&global),
        positionals,
        descriptions: true,
    }
}

/// Candidates from the cluster, or none when it does not answer in time.
fn lookup<F>(current: &OsStr, fetch: F) -> Vec<CompletionCandidate>
where
    F: AsyncFnOnce(ConnectOptions) -> anyhow::Result<Vec<(String, Option<String>)>>,
{
    let Some(prefix) = current.to_str() else {
        return Vec::new();
    };
    let typed = TYPED.get().cloned().unwrap_or_default();
    let mut opts = typed.connect;
    opts.request_timeout = Some(LOOKUP_TIMEOUT);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let found = runtime.block_on(async {
        tokio::time::timeout(LOOKUP_TIMEOUT, fetch(opts))
            .await
            .ok()
            .and_then(Result::ok)
    });
    let mut names = found.unwrap_or_default();
    names.retain(|(name, _)| name.starts_with(prefix));
    names.sort();
    names
        .into_iter()
        .map(|(name, help)| {
            let help = help.filter(|_| typed.descriptions).map(Into::into);
            CompletionCandidate::new(name).help(help)
        })
        .collect()
}

/// VM names, described by their printableStatus.
pub fn vm_names(current: &OsStr) -> Vec<CompletionCandidate> {
    lookup(current, async |opts| {
        let conn = connect(&opts).await?;
        let api: Api<VirtualMachine> = Api::namespaced(conn.client, &conn.namespace);
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|vm| {
                let status = vm.status.and_then(|s| s.printable_status);
                Some((vm.metadata.name?, status))
            })
            .collect())
    })
}

/// VMI names, described by their phase.
pub fn vmi_names(current: &OsStr) -> Vec<CompletionCandidate> {
    lookup(current, async |opts| {
        let conn = connect(&opts).await?;
        let api: Api<VirtualMachineInstance> = Api::namespaced(conn.client, &conn.namespace);
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|vmi| {
                let phase = vmi.status.and_then(|s| s.phase);
                Some((vmi.metadata.name?, phase))
            })
            .collect())
    })
}

/// Namespace names.
pub fn namespaces(current: &OsStr) -> Vec<CompletionCandidate> {
    lookup(current, async |opts| {
        let conn = connect(&opts).await?;
        let api: Api<Namespace> = Api::all(conn.client);
        let list = api.list_metadata(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|ns| Some((ns.metadata.name?, None)))
            .collect())
    })
}

/// `expose TYPE NAME`: the type first, then the names of that type.
pub fn expose_args(current: &OsStr) -> Vec<CompletionCandidate> {
    type_then_name(current, &["vm", "vmi", "vmirs"])
}

/// `pause|unpause vm|vmi NAME`.
pub fn pause_args(current: &OsStr) -> Vec<CompletionCandidate> {
    type_then_name(current, &["vm", "vmi"])
}

fn type_then_name(current: &OsStr, types: &[&'static str]) -> Vec<CompletionCandidate> {
    let typed = TYPED
        .get()
        .map(|t| t.positionals.as_slice())
        .unwrap_or_default();
    match typed {
        [] => {
            let prefix = current.to_str().unwrap_or_default();
            types
                .iter()
                .filter(|t| t.starts_with(prefix))
                .map(|t| CompletionCandidate::new(*t))
                .collect()
        }
        [kind] => match kind.to_lowercase().as_str() {
            "vm" | "vms" | "virtualmachine" | "virtualmachines" => vm_names(current),
            "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => {
                vmi_names(current)
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
