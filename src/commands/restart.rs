//! `virtctl restart VM`: stop the running instance and start a new one (Part B §2.1, Part A
//! §4, §5 and §8).

use std::io::IsTerminal;

use virt_reconciler::request::{self, LifecycleRequest};

use crate::client::LazyConnection;
use crate::lifecycle::{self, Goal, NO_ANSWER, within};
use crate::settings::RestartSettings;

/// Shown before every force restart that the server can accept.
pub const FORCE_WARNING: &str = "Warning: a force restart kills the running instance at once, \
without a clean shutdown of the guest. The guest's data may be corrupted.";

pub async fn run(connection: &LazyConnection, opts: &RestartSettings) -> anyhow::Result<()> {
    let conn = connection.get().await?;
    if opts.dry_run {
        println!("Dry Run execution");
    }
    // Only `--grace-period=0` is accepted (Part A §5); other values are refused by the
    // server (or the client-side plan) with its own message, so no warning for them.
    if opts.grace_period == Some(0) {
        eprintln!("{FORCE_WARNING}");
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if interactive && !opts.yes && !opts.dry_run && !confirm(&opts.name)? {
            anyhow::bail!(
                "force restart of VirtualMachine {} cancelled; nothing was changed",
                opts.name
            );
        }
    }
    let wait = opts.wait.filter(|_| !opts.dry_run);
    // --timeout bounds every request from here on (not the confirmation prompt).
    let deadline = wait.map(lifecycle::deadline_after);
    let before = lifecycle::vmi_uid_before(conn, &opts.name, deadline).await;
    let goal = Goal::Running {
        not_uid: before,
        paused: false,
    };
    let request = LifecycleRequest::Restart(request::RestartOptions {
        grace_period_seconds: opts.grace_period,
        dry_run: request::dry_run_values(opts.dry_run),
    });
    within(deadline, lifecycle::send(conn, &opts.name, &request))
        .await
        .ok_or_else(|| {
            lifecycle::timed_out(&opts.name, &goal, wait.unwrap_or_default(), NO_ANSWER)
        })?
        .map_err(|e| {
            if opts.force() {
                anyhow::anyhow!("error force restarting VirtualMachine: {}", e.message)
            } else {
                anyhow::anyhow!("error restarting VirtualMachine: {}", e.message)
            }
        })?;
    println!("VM {} was scheduled to restart", opts.name);
    if let (Some(timeout), Some(deadline)) = (wait, deadline) {
        lifecycle::wait(
            &conn.client,
            &conn.namespace,
            &opts.name,
            &goal,
            timeout,
            deadline,
        )
        .await?;
    }
    Ok(())
}

fn confirm(name: &str) -> anyhow::Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(format!("Force restart VirtualMachine {name}?"))
        .default(false)
        .interact()
        .map_err(|e| anyhow::anyhow!("cannot ask for confirmation: {e}"))
}
