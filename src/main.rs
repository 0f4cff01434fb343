//! virtctl: start, stop, restart, expose and reach (console, vnc, port-forward, ssh, scp)
//! KubeVirt virtual machines.
//!
//! `main` parses the command line, resolves it into checked settings (`settings.rs`) before
//! any I/O, runs the command, and prints an error once on stderr with exit code 1 (Part B
//! §5). Help and `--version` exit 0.

mod cli;
mod client;
mod cluster_completion;
mod commands;
#[cfg(test)]
mod docs;
mod guest_access;
mod kubevirt_version;
mod lifecycle;
mod names;
mod retry;
mod settings;
mod stream;
mod terminal;
mod version_skew;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::Cli;
use crate::client::LazyConnection;
use crate::settings::{CommandSettings, PauseAction};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin = cli::is_plugin(&argv0);
    if let Some(code) = commands::completion::complete_if_asked(plugin) {
        return code;
    }
    let command = cli::command(plugin);
    let parsed = command
        .clone()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => return clap_failure(&err),
    };
    // Every argument is checked before any I/O.
    let settings = match settings::resolve(cli, plugin) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy_url = settings.connect.proxy_url.clone();
    // Built only when a command first needs it; the skew check reuses it.
    let connection = LazyConnection::new(settings.connect);
    let checks_skew = settings.command.checks_version_skew();
    match runtime.block_on(run(settings.command, &connection, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Exit>().is_some() => {
            let code = e.downcast_ref::<commands::Exit>().map_or(1, |x| x.0);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(e) => {
            let skew = match checks_skew {
                true => runtime.block_on(version_skew::check(&connection)),
                false => None,
            };
            if let Some(warning) = skew {
                eprintln!("{warning}");
            }
            let message = format!("{e:#}");
            eprintln!(
                "{}",
                client::explain_proxy_error(&message, proxy_url.as_deref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout with exit 0; every other clap error is printed once, in
/// cobra's words where KubeVirt's virtctl has them, with exit 1.
fn clap_failure(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{}", clap_message(err));
            ExitCode::FAILURE
        }
    }
}

fn context_string(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        _ => None,
    }
}

/// The one-line message for a clap error.
fn clap_message(err: &clap::Error) -> String {
    match err.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(arg) = context_string(err, ContextKind::InvalidArg) {
                let flag = arg.split('=').next().unwrap_or(&arg).to_string();
                if flag.starts_with("--") {
                    return format!("unknown flag: {flag}");
                }
                if let Some(short) = flag.strip_prefix('-') {
                    let c = short.chars().next().unwrap_or('-');
                    return format!("unknown shorthand flag: '{c}' in {flag}");
                }
                return format!("unexpected argument \"{arg}\"");
            }
        }
        ErrorKind::InvalidSubcommand => {
            if let Some(sub) = context_string(err, ContextKind::InvalidSubcommand) {
                return format!("unknown command \"{sub}\" for \"virtctl\"");
            }
        }
        ErrorKind::MissingRequiredArgument => {
            if let Some(ContextValue::Strings(args)) = err.get(ContextKind::InvalidArg) {
                let names: Vec<String> = args
                    .iter()
                    .map(|a| {
                        let flag = a.split_whitespace().next().unwrap_or(a);
                        format!("\"{}\"", flag.trim_start_matches('-'))
                    })
                    .collect();
                return format!("required flag(s) {} not set", names.join(", "));
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            if let (Some(arg), Some(value)) = (
                context_string(err, ContextKind::InvalidArg),
                context_string(err, ContextKind::InvalidValue),
            ) {
                let flag = arg.split_whitespace().next().unwrap_or(&arg).to_string();
                let reason = match (
                    std::error::Error::source(err),
                    err.get(ContextKind::ValidValue),
                ) {
                    (Some(src), _) => src.to_string(),
                    (None, Some(ContextValue::Strings(valid))) => {
                        format!("must be one of {}", valid.join(", "))
                    }
                    _ => "invalid value".to_string(),
                };
                if flag.starts_with('-') {
                    return format!("invalid argument \"{value}\" for \"{flag}\" flag: {reason}");
                }
                let name = flag.trim_start_matches('<').trim_end_matches('>');
                return format!("invalid argument \"{value}\" for {name}: {reason}");
            }
        }
        _ => {}
    }
    // Clap's own first line, without its "error: " prefix and usage tip.
    let rendered = err.render().to_string();
    rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_string()
}

async fn run(
    settings: CommandSettings,
    conn: &LazyConnection,
    mut command: clap::Command,
) -> anyhow::Result<()> {
    match settings {
        CommandSettings::Usage => {
            // The root command alone prints its usage and succeeds.
            command.print_help()?;
            println!();
            Ok(())
        }
        CommandSettings::Start(s) => commands::start::run(conn, &s).await,
        CommandSettings::Stop(s) => commands::stop::run(conn, &s).await,
        CommandSettings::Restart(s) => commands::restart::run(conn, &s).await,
        CommandSettings::Expose(s) => commands::expose::run(conn, &s).await,
        CommandSettings::Pause(s) => match s.action {
            PauseAction::Pause => commands::pause::run(conn, &s).await,
            PauseAction::Unpause => commands::unpause::run(conn, &s).await,
        },
        CommandSettings::Reset(s) => commands::reset::run(conn, &s).await,
        CommandSettings::SoftReboot(s) => commands::soft_reboot::run(conn, &s).await,
        CommandSettings::Status(s) => commands::status::run(conn, &s).await,
        CommandSettings::Version(s) => commands::version::run(conn, &s).await,
        CommandSettings::Console(s) => commands::console::run(conn, &s).await,
        CommandSettings::Vnc(s) => commands::vnc::run(conn, &s).await,
        CommandSettings::PortForward(s) => commands::port_forward::run(conn, &s).await,
        CommandSettings::Ssh(s) => commands::ssh::run(conn, &s).await,
        CommandSettings::Scp(s) => commands::scp::run(conn, &s).await,
        CommandSettings::Completion(s) => {
            let mut stdout = std::io::stdout().lock();
            commands::completion::run(&s, &mut stdout)
        }
    }
}
