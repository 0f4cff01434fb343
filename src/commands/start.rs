//! `virtctl start VM`: ask for the VM to run (Part B §2.1, Part A §4 and §8).

use std::time::Duration;

use crate::client::{ConnectOptions, connect};
use crate::lifecycle::{self, Action, Goal};

/// The resolved options of `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOptions {
    pub name: String,
    pub paused: bool,
    pub dry_run: bool,
    /// Wait at most this long for the VM to be Running.
    pub wait: Option<Duration>,
}

pub async fn run(connect_opts: &ConnectOptions, opts: &StartOptions) -> anyhow::Result<()> {
    let conn = connect(connect_opts).await?;
    if opts.dry_run {
        println!("Dry Run execution");
    }
    let before = match opts.wait {
        Some(_) if !opts.dry_run => {
            lifecycle::current_vmi_uid(&conn.client, &conn.namespace, &opts.name).await
        }
        _ => None,
    };
    let action = Action::Start {
        paused: opts.paused,
    };
    lifecycle::send(&conn, &opts.name, action, opts.dry_run)
        .await
        .map_err(|e| anyhow::anyhow!("Error starting VirtualMachine {}", e.message))?;
    println!("VM {} was scheduled to start", opts.name);
    if let Some(timeout) = opts.wait.filter(|_| !opts.dry_run) {
        let goal = Goal::Running {
            not_uid: before,
            paused: opts.paused,
        };
        lifecycle::wait(&conn.client, &conn.namespace, &opts.name, &goal, timeout).await?;
    }
    Ok(())
}
