//! `virtctl stop VM`: ask for the VM to stop (Part B §2.1, Part A §4 and §8).

use virt_reconciler::request::{self, LifecycleRequest};

use crate::client::LazyConnection;
use crate::lifecycle::{self, Goal, NO_ANSWER, within};
use crate::settings::StopSettings;

pub async fn run(connection: &LazyConnection, opts: &StopSettings) -> anyhow::Result<()> {
    let conn = connection.get().await?;
    if opts.dry_run {
        println!("Dry Run execution");
    }
    let request = LifecycleRequest::Stop(request::StopOptions {
        grace_period: opts.grace_period,
        dry_run: request::dry_run_values(opts.dry_run),
    });
    let wait = opts.wait.filter(|_| !opts.dry_run);
    // --timeout bounds the whole command, so every request, from the first one.
    let deadline = wait.map(lifecycle::deadline_after);
    within(deadline, lifecycle::send(conn, &opts.name, &request))
        .await
        .ok_or_else(|| {
            lifecycle::timed_out(
                &opts.name,
                &Goal::Stopped,
                wait.unwrap_or_default(),
                NO_ANSWER,
            )
        })?
        .map_err(|e| {
            if opts.force() {
                anyhow::anyhow!("error force stopping VirtualMachine: {}", e.message)
            } else {
                anyhow::anyhow!("error stopping VirtualMachine {}", e.message)
            }
        })?;
    println!("VM {} was scheduled to stop", opts.name);
    if let (Some(timeout), Some(deadline)) = (wait, deadline) {
        lifecycle::wait(
            &conn.client,
            &conn.namespace,
            &opts.name,
            &Goal::Stopped,
            timeout,
            deadline,
        )
        .await?;
    }
    Ok(())
}
