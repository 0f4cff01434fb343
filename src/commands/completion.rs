//! `virtctl completion SHELL`: the completion script of one shell, on stdout. The script calls
//! virtctl back for every completion (see `cluster_completion`).

use std::io::Write;

pub use clap_complete::Shell;

/// Writes the completion script for `shell`, for the command invoked as `bin_name`; with
/// `descriptions`, the completions show what each subcommand, flag or VM is (where the shell
/// can show it).
pub fn run(
    bin_name: &str,
    shell: Shell,
    descriptions: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    crate::cluster_completion::registration_script(shell, bin_name, descriptions, out)?;
    out.flush()?;
    Ok(())
}
