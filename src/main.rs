//! virtctl: start, stop, restart and expose KubeVirt virtual machines.
//!
//! `main` parses the command line, resolves each command's options, runs it, and prints an
//! error once on stderr with exit code 1 (Part B §5). Help and `--version` exit 0.

mod cli;
mod client;
mod cluster_completion;
mod commands;
#[cfg(test)]
mod docs;
mod lifecycle;
mod names;
mod version_skew;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::client::ConnectOptions;
use crate::names::NameKind;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin = cli::is_plugin(&argv0);
    if let Some(code) = cluster_completion::complete_if_asked(plugin) {
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
    let proxy_url = cli.global.proxy_url.clone();
    let conn = connect_options(&cli.global);
    match runtime.block_on(run(cli, command, plugin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let input_error = e.downcast_ref::<commands::InputError>().is_some();
            if !input_error && let Some(warning) = runtime.block_on(version_skew::check(&conn)) {
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

pub(crate) fn connect_options(g: &GlobalArgs) -> ConnectOptions {
    ConnectOptions {
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        cluster: g.cluster.clone(),
        user: g.user.clone(),
        namespace: g.namespace.clone(),
        server: g.server.clone(),
        token: g.token.clone(),
        certificate_authority: g.certificate_authority.clone(),
        client_certificate: g.client_certificate.clone(),
        client_key: g.client_key.clone(),
        insecure_skip_tls_verify: g.insecure_skip_tls_verify,
        tls_server_name: g.tls_server_name.clone(),
        request_timeout: g.request_timeout.0,
        impersonate: g.as_user.clone(),
        impersonate_groups: g.as_group.clone(),
        impersonate_uid: g.as_uid.clone(),
        username: g.username.clone(),
        password: g.password.clone(),
        proxy_url: g.proxy_url.clone(),
        disable_compression: g.disable_compression,
    }
}

/// The VM name of start/stop/restart: exactly one argument, as cobra checks it, or the seed
/// document's form with the type first (`virtctl start vm vm-cirros`). Two arguments were an
/// error before, so accepting the type word changes no valid command. The name is checked.
fn vm_name_arg(args: &[String]) -> anyhow::Result<String> {
    let typed = match args {
        [name] => name,
        [kind, name]
            if matches!(
                kind.to_ascii_lowercase().as_str(),
                "vm" | "vms" | "virtualmachine" | "virtualmachines"
            ) =>
        {
            name
        }
        _ => anyhow::bail!("accepts 1 arg(s), received {}", args.len()),
    };
    names::resource_name(NameKind::VirtualMachine, typed)
}

/// cobra's argument-count rule: exactly `n` positional arguments.
fn exact_args(args: &[String], n: usize) -> anyhow::Result<()> {
    if args.len() != n {
        anyhow::bail!("accepts {n} arg(s), received {}", args.len());
    }
    Ok(())
}

async fn run(cli: Cli, mut command: clap::Command, plugin: bool) -> anyhow::Result<()> {
    let conn = connect_options(&cli.global);
    let Some(sub) = cli.command else {
        // The root command alone prints its usage and succeeds.
        command.print_help()?;
        println!();
        return Ok(());
    };
    match sub {
        Command::Start(a) => {
            let name = vm_name_arg(&a.args)?;
            let opts = commands::start::StartOptions {
                name,
                paused: a.paused,
                dry_run: a.dry_run,
                wait: commands::wait_timeout(a.wait.wait, a.wait.timeout),
            };
            commands::start::run(&conn, &opts).await
        }
        Command::Stop(a) => {
            let name = vm_name_arg(&a.args)?;
            let opts = commands::stop::StopOptions {
                name,
                force: a.force,
                grace_period: a.grace_period,
                dry_run: a.dry_run,
                wait: commands::wait_timeout(a.wait.wait, a.wait.timeout),
            };
            commands::stop::run(&conn, &opts).await
        }
        Command::Restart(a) => {
            let name = vm_name_arg(&a.args)?;
            let opts = commands::restart::RestartOptions {
                name,
                force: a.force,
                grace_period: a.grace_period,
                dry_run: a.dry_run,
                yes: a.yes,
                wait: commands::wait_timeout(a.wait.wait, a.wait.timeout),
            };
            commands::restart::run(&conn, &opts).await
        }
        Command::Expose(a) => {
            exact_args(&a.args, 2)?;
            let flags = commands::expose::ExposeFlags {
                resource_type: a.args[0].clone(),
                name: a.args[1].clone(),
                service_name: a.name,
                port: a.port,
                target_port: a.target_port,
                protocol: a.protocol,
                port_name: a.port_name,
                service_type: a.service_type,
                cluster_ip: a.cluster_ip,
                external_ip: a.external_ip,
                ip_family: a.ip_family,
                ip_family_policy: a.ip_family_policy,
                dry_run: a.dry_run,
            };
            commands::expose::run(&conn, &flags).await
        }
        Command::Pause(a) => {
            exact_args(&a.args, 2)?;
            let target = commands::pause::Target::parse(&a.args[0])?;
            let opts = commands::pause::PauseOptions {
                action: commands::pause::PauseAction::Pause,
                target,
                name: names::resource_name(target.name_kind(), &a.args[1])?,
                dry_run: a.dry_run,
            };
            commands::pause::run(&conn, &opts).await
        }
        Command::Unpause(a) => {
            exact_args(&a.args, 2)?;
            let target = commands::pause::Target::parse(&a.args[0])?;
            let name = names::resource_name(target.name_kind(), &a.args[1])?;
            commands::unpause::run(&conn, target, &name, a.dry_run).await
        }
        Command::Status(a) => {
            let opts = commands::status::StatusOptions {
                names: a
                    .names
                    .iter()
                    .map(|n| names::resource_name(NameKind::VirtualMachine, n))
                    .collect::<anyhow::Result<_>>()?,
                all_namespaces: a.all_namespaces,
                output: match a.output {
                    None => commands::status::Output::Table,
                    Some(cli::OutputFormat::Yaml) => commands::status::Output::Yaml,
                    Some(cli::OutputFormat::Json) => commands::status::Output::Json,
                },
            };
            commands::status::run(&conn, &opts).await
        }
        Command::Version => commands::version::run(&conn).await,
        Command::Completion(a) => {
            let bin = if plugin { "kubectl-virt" } else { "virtctl" };
            let mut stdout = std::io::stdout().lock();
            commands::completion::run(bin, a.shell, !a.no_descriptions, &mut stdout)
        }
    }
}
