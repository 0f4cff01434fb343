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

/// Bad input found before any request: the command's fault is the user's, not the cluster's,
/// so no version-skew check follows it.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Part B §2.1 step 4: `--force` and an explicit `--grace-period` go together.
pub fn check_force_and_grace(force: bool, grace_period: Option<i64>) -> anyhow::Result<()> {
    if force != grace_period.is_some() {
        anyhow::bail!("Must both use --force=true and set --grace-period.");
    }
    Ok(())
}

/// A negative `--grace-period` is refused before any request, with the server's reason
/// after `prefix`.
pub fn check_grace_not_negative(grace_period: Option<i64>, prefix: &str) -> anyhow::Result<()> {
    match grace_period {
        Some(g) if g < 0 => Err(InputError(format!(
            "{prefix}: {}",
            virt_reconciler::intent::NEGATIVE_GRACE_PERIOD
        ))
        .into()),
        _ => Ok(()),
    }
}

/// `--wait` / `--timeout`: `Some(timeout)` when the command should wait.
pub fn wait_timeout(wait: bool, timeout: Option<Duration>) -> Option<Duration> {
    match (wait, timeout) {
        (_, Some(t)) => Some(t),
        (true, None) => Some(crate::lifecycle::DEFAULT_WAIT_TIMEOUT),
        (false, None) => None,
    }
}
