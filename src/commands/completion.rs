//! `virtctl completion SHELL`: the completion script of one shell, on stdout. The script calls
//! virtctl back for every completion (see `cluster_completion`).

use std::io::Write;

use crate::settings::CompletionSettings;

/// Writes the completion script for `settings.shell`, for the command invoked as
/// `settings.bin`; with `descriptions`, the completions show what each subcommand, flag or VM
/// is (where the shell can show it).
pub fn run(settings: &CompletionSettings, out: &mut dyn Write) -> anyhow::Result<()> {
    let CompletionSettings {
        bin,
        shell,
        descriptions,
    } = *settings;
    crate::cluster_completion::registration_script(shell, bin, descriptions, out)?;
    out.flush()?;
    Ok(())
}
