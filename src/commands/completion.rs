//! `virtctl completion SHELL`: the completion script of one shell, on stdout.

use std::io::Write;

pub use clap_complete::Shell;

/// Writes the completion script for `shell` of the command `cmd`, invoked as `bin_name`.
pub fn run(
    mut cmd: clap::Command,
    bin_name: &str,
    shell: Shell,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    clap_complete::generate(shell, &mut cmd, bin_name, out);
    out.flush()?;
    Ok(())
}
