//! `virtctl pause vm|vmi NAME`: pause the guest of a running instance (Part B §2.7), through
//! the subresource API only: the pause is done by the node agent, which a client cannot reach.
//! `unpause` shares everything here but the words.

use anyhow::bail;
use kube::api::Api;
use virt_reconciler::VirtualMachine;
use virt_reconciler::run_strategy::{self, RunStrategy};

use crate::client::{ConnectOptions, connect, error_chain};
use virt_reconciler::request::{self, VmiRequest};

use crate::lifecycle::{self, SUBRESOURCE_GROUP, VmiRequestError};
use crate::names::NameKind;

/// Pause or unpause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAction {
    Pause,
    Unpause,
}

impl PauseAction {
    fn verb(self) -> &'static str {
        match self {
            PauseAction::Pause => "pause",
            PauseAction::Unpause => "unpause",
        }
    }

    /// The word in error messages: "pausing" or "unpausing".
    fn gerund(self) -> &'static str {
        match self {
            PauseAction::Pause => "pausing",
            PauseAction::Unpause => "unpausing",
        }
    }
}

/// What is named: a VM (its instance of the same name is paused) or a VMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Vm,
    Vmi,
}

impl Target {
    /// TYPE, lowercased; only the singular forms, as KubeVirt's virtctl.
    pub fn parse(type_name: &str) -> anyhow::Result<Target> {
        match type_name.to_lowercase().as_str() {
            "vm" | "virtualmachine" => Ok(Target::Vm),
            "vmi" | "virtualmachineinstance" => Ok(Target::Vmi),
            _ => bail!("unsupported resource type: {type_name}"),
        }
    }

    /// The kind whose naming rule the NAME follows.
    pub fn name_kind(self) -> NameKind {
        match self {
            Target::Vm => NameKind::VirtualMachine,
            Target::Vmi => NameKind::VirtualMachineInstance,
        }
    }
}

/// The resolved options of `pause` and `unpause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseOptions {
    pub action: PauseAction,
    pub target: Target,
    pub name: String,
    pub dry_run: bool,
}

pub async fn run(connect_opts: &ConnectOptions, opts: &PauseOptions) -> anyhow::Result<()> {
    let conn = connect(connect_opts)
        .await
        .map_err(|e| anyhow::anyhow!("Cannot obtain KubeVirt client: {e:#}"))?;
    let name = opts.name.as_str();
    let (verb, gerund) = (opts.action.verb(), opts.action.gerund());
    let prefix = format!("Error {gerund} VirtualMachineInstance {name}");
    let vm = match opts.target {
        Target::Vm => {
            let vms: Api<VirtualMachine> = Api::namespaced(conn.client.clone(), &conn.namespace);
            let vm = vms.get(name).await.map_err(|e| {
                anyhow::anyhow!("Error getting VirtualMachine {name}: {}", message(&e))
            })?;
            Some(vm)
        }
        Target::Vmi => None,
    };
    if opts.dry_run {
        println!("Dry Run execution");
    }
    let dry_run = request::dry_run_values(opts.dry_run);
    let request = match opts.action {
        PauseAction::Pause => VmiRequest::Pause(request::PauseOptions { dry_run }),
        PauseAction::Unpause => VmiRequest::Unpause(request::UnpauseOptions { dry_run }),
    };
    match lifecycle::send_vmi(&conn, name, &request).await {
        Ok(()) => {
            println!("VMI {name} was scheduled to {verb}");
            Ok(())
        }
        Err(VmiRequestError::GroupNotServed) => bail!(
            "{prefix}: {verb} needs the KubeVirt subresource API ({SUBRESOURCE_GROUP}), which \
             this cluster does not serve; only KubeVirt's node agent can {verb} a guest"
        ),
        Err(VmiRequestError::NotFound(msg)) => match &vm {
            Some(vm) if is_halted(vm) => {
                bail!("{prefix}. VirtualMachine {name} is not set to run")
            }
            Some(_) => bail!("{prefix}, it was not found"),
            None => bail!("{prefix}: {msg}"),
        },
        Err(VmiRequestError::Other(msg)) => bail!("{prefix}: {msg}"),
    }
}

/// runStrategy Halted, or the deprecated `running: false`.
fn is_halted(vm: &VirtualMachine) -> bool {
    matches!(run_strategy::effective(vm), Ok(RunStrategy::Halted))
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_singular_types() {
        assert_eq!(Target::parse("VM").unwrap(), Target::Vm);
        assert_eq!(Target::parse("virtualmachine").unwrap(), Target::Vm);
        assert_eq!(Target::parse("vmi").unwrap(), Target::Vmi);
        assert_eq!(
            Target::parse("VirtualMachineInstance").unwrap(),
            Target::Vmi
        );
        assert_eq!(
            Target::parse("vms").unwrap_err().to_string(),
            "unsupported resource type: vms"
        );
    }
}
