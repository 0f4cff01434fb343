//! `virtctl stop VM`: ask for the VM to stop (Part B §2.1, Part A §4 and §8).

use std::time::Duration;

use crate::client::{ConnectOptions, connect};
use virt_reconciler::request::{self, LifecycleRequest};

use crate::lifecycle::{self, Goal, NO_ANSWER, within};

/// The resolved options of `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOptions {
    pub name: String,
    pub force: bool,
    /// `Some` only when `--grace-period` was given.
    pub grace_period: Option<i64>,
    pub dry_run: bool,
    /// Wait at most this long for the VM to be Stopped.
    pub wait: Option<Duration>,
}

pub async fn run(connect_opts: &ConnectOptions, opts: &StopOptions) -> anyhow::Result<()> {
    let conn = connect(connect_opts).await?;
    if opts.dry_run {
        println!("Dry Run execution");
    }
    super::check_force_and_grace(opts.force, opts.grace_period)?;
    super::check_grace_not_negative(opts.grace_period, "error force stopping VirtualMachine")?;
    let request = LifecycleRequest::Stop(request::StopOptions {
        grace_period: if opts.force { opts.grace_period } else { None },
        dry_run: request::dry_run_values(opts.dry_run),
    });
    let wait = opts.wait.filter(|_| !opts.dry_run);
    // --timeout bounds the whole command, so every request, from the first one.
    let deadline = wait.map(lifecycle::deadline_after);
    within(deadline, lifecycle::send(&conn, &opts.name, &request))
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
            if opts.force {
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
