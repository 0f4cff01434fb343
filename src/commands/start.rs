//! `virtctl start VM`: ask for the VM to run (Part B §2.1, Part A §4 and §8).

use virt_reconciler::request::{self, LifecycleRequest};

use crate::client::LazyConnection;
use crate::lifecycle::{self, Goal, NO_ANSWER, within};
use crate::settings::StartSettings;

pub async fn run(connection: &LazyConnection, opts: &StartSettings) -> anyhow::Result<()> {
    let conn = connection.get().await?;
    if opts.dry_run {
        println!("Dry Run execution");
    }
    let wait = opts.wait.filter(|_| !opts.dry_run);
    // --timeout bounds the whole command, so every request, from the first one.
    let deadline = wait.map(lifecycle::deadline_after);
    let before = lifecycle::vmi_uid_before(conn, &opts.name, deadline).await;
    let goal = Goal::Running {
        not_uid: before,
        paused: opts.paused,
    };
    let request = LifecycleRequest::Start(request::StartOptions {
        paused: opts.paused,
        dry_run: request::dry_run_values(opts.dry_run),
    });
    within(deadline, lifecycle::send(conn, &opts.name, &request))
        .await
        .ok_or_else(|| {
            lifecycle::timed_out(&opts.name, &goal, wait.unwrap_or_default(), NO_ANSWER)
        })?
        .map_err(|e| anyhow::anyhow!("Error starting VirtualMachine {}", e.message))?;
    println!("VM {} was scheduled to start", opts.name);
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
