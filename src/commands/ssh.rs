//! `virtctl ssh [USER@]TYPE/NAME[/NAMESPACE]`: the system's ssh, reaching the guest through
//! `virtctl port-forward --stdio=true` as its ProxyCommand (KubeVirt's way), with ssh's exit
//! status; or, with `--local-ssh=false`, virtctl's own client (`native_ssh.rs`).

use tokio::signal::unix::{SignalKind, signal};

use crate::client::LazyConnection;
use crate::commands::{Exit, native_ssh};
use crate::guest_access::{self, LocalSsh};
use crate::settings::{SshCommon, SshSettings};

pub async fn run(connection: &LazyConnection, opts: &SshSettings) -> anyhow::Result<()> {
    let local = local_ssh(connection, &opts.common).await?;
    if !opts.common.local {
        return native_ssh::ssh(connection, &local, opts.command.as_deref()).await;
    }
    run_local("ssh", &local.ssh_args(opts.command.as_deref())).await
}

/// The namespace resolved and the user chosen: what the local ssh or scp is given.
pub async fn local_ssh(
    connection: &LazyConnection,
    common: &SshCommon,
) -> anyhow::Result<LocalSsh> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let target = &common.target;
    // Only a dotted name may need the API (its older name.namespace reading).
    let resolved = match target.target.legacy_reading() {
        Some(_) => crate::commands::port_forward::resolve_target(conn, &target.target).await?,
        None => target.target.clone(),
    };
    let namespace = resolved
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone());
    let virtctl = std::env::current_exe()
        .map(|p| p.display().to_string())
        .or_else(|_| std::env::args().next().ok_or(()))
        .unwrap_or_else(|()| "virtctl".to_string());
    Ok(LocalSsh {
        virtctl,
        connection_flags: common.connection_flags.clone(),
        target: resolved,
        namespace,
        port: common.port,
        user: guest_access::ssh_user(target.user.as_deref(), common.username.as_deref(), |v| {
            std::env::var(v).ok()
        }),
        identity_file: common.identity_file.clone(),
        known_hosts: common.known_hosts.clone(),
        extra_options: common.local_ssh_opts.clone(),
    })
}

/// Runs `program` with `args` on this terminal and ends with its exit status. SIGINT is left
/// to it: virtctl waits.
pub async fn run_local(program: &str, args: &[String]) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "cannot run {program}: it is not on the PATH (install OpenSSH's client, or use \
                 --local-ssh=false)"
            ),
            _ => anyhow::anyhow!("cannot run {program}: {e}"),
        })?;
    let _sigint = signal(SignalKind::interrupt())?;
    let status = child.wait().await?;
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Exit(code).into()),
        (None, Some(sig)) => Err(Exit(128 + sig).into()),
        (None, None) => Err(Exit(1).into()),
    }
}
