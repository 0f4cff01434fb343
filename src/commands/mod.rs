//! One file per subcommand. Each takes its resolved options (never clap types) and the
//! connection flags, and returns an error whose text is printed once, as it is.

pub mod completion;
pub mod expose;
pub mod pause;
pub mod restart;
pub mod start;
pub mod status;
pub mod stop;
pub mod unpause;
pub mod version;

use std::time::Duration;

/// Part B §2.1 step 4: `--force` and an explicit `--grace-period` go together.
pub fn check_force_and_grace(force: bool, grace_period: Option<i64>) -> anyhow::Result<()> {
    if force != grace_period.is_some() {
        anyhow::bail!("Must both use --force=true and set --grace-period.");
    }
    Ok(())
}

/// `--wait` / `--timeout`: `Some(timeout)` when the command should wait.
pub fn wait_timeout(wait: bool, timeout: Option<Duration>) -> Option<Duration> {
    match (wait, timeout) {
        (_, Some(t)) => Some(t),
        (true, None) => Some(crate::lifecycle::DEFAULT_WAIT_TIMEOUT),
        (false, None) => None,
    }
}
