//! `virtctl completion SHELL`: the completion script of one shell, on stdout. The script calls
//! virtctl back for every completion with `VIRTCTL_COMPLETE=<shell>` and the words typed so
//! far; [`complete_if_asked`] then runs clap_complete's engine, which completes subcommands and
//! flags itself and names with the completers of `cluster_completion`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::{self, GlobalArgs};
use crate::cluster_completion::{self, Typed};
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
    registration_script(shell, bin, descriptions, out)?;
    out.flush()?;
    Ok(())
}

/// The variable the scripts set to the shell's name to ask for completions.
pub const COMPLETE_VAR: &str = "VIRTCTL_COMPLETE";

/// The same, for completions without descriptions (`completion SHELL --no-descriptions`).
pub const COMPLETE_NO_DESC_VAR: &str = "VIRTCTL_COMPLETE_NO_DESC";

/// The registration script for `shell`, which makes the shell call `bin` back for completions.
fn registration_script(
    shell: clap_complete::Shell,
    bin: &str,
    descriptions: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Elvish => &Elvish,
        other => anyhow::bail!("no completion script for {other}"),
    };
    let var = if descriptions {
        COMPLETE_VAR
    } else {
        COMPLETE_NO_DESC_VAR
    };
    completer.write_registration(var, bin, bin, bin, out)?;
    Ok(())
}

/// When the shell asks for completions, prints them and returns the exit code (always
/// success); otherwise returns `None` and virtctl runs normally.
pub fn complete_if_asked(plugin: bool) -> Option<ExitCode> {
    let asked = |var| std::env::var_os(var).is_some_and(|s| !s.is_empty() && s != "0");
    let (var, descriptions) = if asked(COMPLETE_VAR) {
        (COMPLETE_VAR, true)
    } else if asked(COMPLETE_NO_DESC_VAR) {
        (COMPLETE_NO_DESC_VAR, false)
    } else {
        return None;
    };
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(dash) = args.iter().position(|a| a == "--") {
        let words = &args[dash + 1..];
        // bash says which word is completed; the other shells complete the last one.
        let index = std::env::var("_CLAP_COMPLETE_INDEX")
            .ok()
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(words.len().saturating_sub(1))
            .min(words.len());
        let mut typed = typed_before(&words[..index], plugin);
        typed.descriptions = descriptions;
        cluster_completion::remember(typed);
    }
    let current_dir = std::env::current_dir().ok();
    let factory = move || {
        let mut cmd = cli::command(plugin);
        if descriptions {
            return cmd;
        }
        // Built first, so that the generated --help and help lose their text too.
        cmd.build();
        without_descriptions(cmd)
    };
    // Errors are swallowed: nothing is completed, and the shell shows nothing.
    let _ = clap_complete::CompleteEnv::with_factory(factory)
        .var(var)
        .try_complete(args, current_dir.as_deref());
    Some(ExitCode::SUCCESS)
}

/// The command with no help text on any subcommand or argument.
fn without_descriptions(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd
        .about(None)
        .long_about(None)
        .mut_args(|a| a.help(None).long_help(None));
    for name in names {
        cmd = cmd.mut_subcommand(name, without_descriptions);
    }
    cmd
}

/// Parses the words before the cursor as far as they go.
fn typed_before(words: &[OsString], plugin: bool) -> Typed {
    let Ok(matches) = cli::command(plugin)
        .ignore_errors(true)
        .try_get_matches_from(words)
    else {
        return Typed::default();
    };
    let global = GlobalArgs::from_arg_matches(&matches).unwrap_or_default();
    let positionals = matches
        .subcommand()
        .and_then(|(_, sub)| {
            let id = sub
                .ids()
                .find(|id| ["args", "names"].contains(&id.as_str()))?;
            sub.get_many::<String>(id.as_str())
        })
        .map(|values| values.cloned().collect())
        .unwrap_or_default();
    Typed {
        connect: crate::settings::connect_options_unchecked(&global),
        positionals,
        descriptions: true,
    }
}
