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
    // KubeVirt's virtctl says so before it reads anything.
    if opts.dry_run {
        println!("Dry Run execution");
    }
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
    let dry_run = request::dry_run_values(opts.dry_run);
    let request = match opts.action {
        PauseAction::Pause => VmiRequest::Pause(request::PauseOptions { dry_run }),
        PauseAction::Unpause => VmiRequest::Unpause(request::UnpauseOptions { dry_run }),
    };
    match lifecycle::send_vmi(conn, name, &request).await {
        Ok(()) => {
            println!("VMI {name} was scheduled to {}", verb(opts.action));
            Ok(())
        }
        Err(refused) => bail!("{}", refusal(opts.action, name, vm.as_ref(), &refused)),
    }
}

/// The error line of a refused request (Part B §2.7). Only pause words a 404 for `vm`
/// its own way (the VM not set to run, or its instance not found); unpause, as KubeVirt's,
/// shows the server's message like any other refusal.
fn refusal(
    action: PauseAction,
    name: &str,
    vm: Option<&VirtualMachine>,
    refused: &VmiRequestError,
) -> String {
    let (verb, gerund) = (verb(action), gerund(action));
    let prefix = format!("Error {gerund} VirtualMachineInstance {name}");
    match (refused, action, vm) {
        (VmiRequestError::GroupNotServed, _, _) => format!(
            "{prefix}: {verb} needs the KubeVirt subresource API ({SUBRESOURCE_GROUP}), which \
             this cluster does not serve; only KubeVirt's node agent can {verb} a guest"
        ),
        (VmiRequestError::NotFound(_), PauseAction::Pause, Some(vm)) => {
            match run_strategy::effective(vm) {
                Ok(RunStrategy::Halted) => {
                    format!("{prefix}. VirtualMachine {name} is not set to run")
                }
                Ok(_) => format!("{prefix}, it was not found"),
                Err(e) => format!("{prefix}: {e}"),
            }
        }
        (VmiRequestError::NotFound(msg) | VmiRequestError::Other(msg), _, _) => {
            format!("{prefix}: {msg}")
        }
    }
}

#[cfg(test)]
mod tests {
    use virt_reconciler::VirtualMachineSpec;

    use super::*;

    fn vm(running: Option<bool>, strategy: Option<&str>) -> VirtualMachine {
        VirtualMachine::new(
            "vm1",
            VirtualMachineSpec {
                running,
                run_strategy: strategy.map(str::to_string),
                ..Default::default()
            },
        )
    }

    #[test]
    fn pause_and_unpause_word_their_refusals_their_own_way() {
        use PauseAction::{Pause, Unpause};
        let not_found = || {
            VmiRequestError::NotFound("virtualmachineinstance.kubevirt.io \"vm1\" not found".into())
        };
        let server_not_found = "virtualmachineinstance.kubevirt.io \"vm1\" not found";
        let halted = vm(None, Some("Halted"));
        let stopped = vm(Some(false), None);
        let always = vm(None, Some("Always"));
        let both = vm(Some(true), Some("Always"));
        let cases = [
            // (action, VM read first (type vm), refusal, message after the prefix)
            (
                Pause,
                Some(&halted),
                not_found(),
                ". VirtualMachine vm1 is not set to run",
            ),
            (
                Pause,
                Some(&stopped),
                not_found(),
                ". VirtualMachine vm1 is not set to run",
            ),
            (Pause, Some(&always), not_found(), ", it was not found"),
            (
                Pause,
                Some(&both),
                not_found(),
                ": running and runstrategy are mutually exclusive",
            ),
            (Pause, None, not_found(), &format!(": {server_not_found}")),
            // unpause has no words of its own for a missing instance.
            (
                Unpause,
                Some(&halted),
                not_found(),
                &format!(": {server_not_found}"),
            ),
            (
                Unpause,
                Some(&always),
                not_found(),
                &format!(": {server_not_found}"),
            ),
            (Unpause, None, not_found(), &format!(": {server_not_found}")),
            (
                Pause,
                Some(&always),
                VmiRequestError::Other("VMI is already paused".into()),
                ": VMI is already paused",
            ),
            (
                Unpause,
                Some(&always),
                VmiRequestError::Other("VMI is not paused".into()),
                ": VMI is not paused",
            ),
        ];
        for (action, vm, refused, want) in cases {
            let prefix = match action {
                Pause => "Error pausing VirtualMachineInstance vm1",
                Unpause => "Error unpausing VirtualMachineInstance vm1",
            };
            assert_eq!(
                refusal(action, "vm1", vm, &refused),
                format!("{prefix}{want}"),
                "{action:?} {refused:?}"
            );
        }
        assert!(
            refusal(Unpause, "vm1", None, &VmiRequestError::GroupNotServed).starts_with(
                "Error unpausing VirtualMachineInstance vm1: unpause needs the KubeVirt \
                 subresource API"
            )
        );
    }
}
