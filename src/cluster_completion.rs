//! The completers that ask the cluster (Part A §8): VM names for start, stop, restart,
//! status and `expose vm`, VMI names for `expose vmi`, console and vnc, `type/name` targets
//! for port-forward and ssh, and namespaces for `-n`.
//!
//! `cli.rs` attaches them to its arguments; `commands/completion.rs` runs clap_complete's
//! engine when the shell calls virtctl back, and first records what was typed ([`remember`]).
//! They use the connection flags already typed (`--kubeconfig`, `-n`, `--context`, ...), give
//! up after [`LOOKUP_TIMEOUT`], and complete nothing on any error: a shell prompt must never
//! show an error or hang. This module depends on no other part of the command line.

use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::Duration;

use clap_complete::CompletionCandidate;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use crate::client::{ConnectOptions, connect};

/// How long one lookup in the cluster may take, connection included.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// What was typed before the word being completed.
#[derive(Debug, Clone, Default)]
pub struct Typed {
    pub connect: ConnectOptions,
    /// The positional arguments of the subcommand, e.g. `["vm"]` for `expose vm <TAB>`.
    pub positionals: Vec<String>,
    pub descriptions: bool,
}

static TYPED: OnceLock<Typed> = OnceLock::new();

/// Records what was typed, for the completers that the engine calls next.
pub fn remember(typed: Typed) {
    let _ = TYPED.set(typed);
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

/// The first argument of port-forward and ssh, `[user@]type/name`: the types first (`vm/`,
/// `vmi/`), then the names of the type typed, keeping what was typed before them.
pub fn typed_target(current: &OsStr) -> Vec<CompletionCandidate> {
    let first = TYPED.get().is_none_or(|t| t.positionals.is_empty());
    let Some(word) = current.to_str().filter(|_| first) else {
        return Vec::new();
    };
    let (user, rest) = match word.split_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), word),
    };
    let Some((kind, partial)) = rest.split_once('/') else {
        return ["vm/", "vmi/"]
            .iter()
            .filter(|t| t.starts_with(rest))
            .map(|t| CompletionCandidate::new(format!("{user}{t}")))
            .collect();
    };
    let names = match kind.to_lowercase().as_str() {
        "vm" | "vms" | "virtualmachine" | "virtualmachines" => vm_names(OsStr::new(partial)),
        "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => {
            vmi_names(OsStr::new(partial))
        }
        _ => Vec::new(),
    };
    names
        .into_iter()
        .map(|c| {
            let value = format!("{user}{kind}/{}", c.get_value().to_string_lossy());
            let help = c.get_help().cloned();
            CompletionCandidate::new(value).help(help)
        })
        .collect()
}
