//! `virtctl pause vm|vmi NAME`: pause the guest of a running instance (Part B §2.7), through
//! the subresource API only: the pause is done by the node agent, which a client cannot reach.
//! `unpause` shares everything here but the words.

use anyhow::bail;
use kube::api::Api;
use virt_reconciler::VirtualMachine;
use virt_reconciler::kube_error;
use virt_reconciler::run_strategy::{self, RunStrategy};

use virt_reconciler::request::{self, VmiRequest};

use crate::client::LazyConnection;
use crate::lifecycle::{self, SUBRESOURCE_GROUP, VmiRequestError};
use crate::settings::{PauseAction, PauseSettings, PauseTarget};

fn verb(action: PauseAction) -> &'static str {
    match action {
        PauseAction::Pause => "pause",
        PauseAction::Unpause => "unpause",
    }
}

/// The word in error messages: "pausing" or "unpausing".
fn gerund(action: PauseAction) -> &'static str {
    match action {
        PauseAction::Pause => "pausing",
        PauseAction::Unpause => "unpausing",
    }
}

pub async fn run(connection: &LazyConnection, opts: &PauseSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("Cannot obtain KubeVirt client: {e:#}"))?;
    let name = opts.name.as_str();
    let (verb, gerund) = (verb(opts.action), gerund(opts.action));
    let prefix = format!("Error {gerund} VirtualMachineInstance {name}");
    let vm = match opts.target {
        PauseTarget::Vm => {
            let vms: Api<VirtualMachine> = Api::namespaced(conn.client.clone(), &conn.namespace);
            let vm = vms.get(name).await.map_err(|e| {
                anyhow::anyhow!(
                    "Error getting VirtualMachine {name}: {}",
                    kube_error::message(&e)
                )
            })?;
            Some(vm)
        }
        PauseTarget::Vmi => None,
    };
    if opts.dry_run {
        println!("Dry Run execution");
    }
    let dry_run = request::dry_run_values(opts.dry_run);
    let request = match opts.action {
        PauseAction::Pause => VmiRequest::Pause(request::PauseOptions { dry_run }),
        PauseAction::Unpause => VmiRequest::Unpause(request::UnpauseOptions { dry_run }),
    };
    match lifecycle::send_vmi(conn, name, &request).await {
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
