//! `ssh --local-ssh=false`: virtctl's own SSH client (russh) over a port-forward stream, for
//! machines without OpenSSH's client. Public-key login with `-i` (or ~/.ssh/id_ed25519,
//! id_ecdsa, id_rsa); the guest's host key is trusted on first use and kept in `--known-hosts`
//! (~/.ssh/kubevirt_known_hosts); a changed key is refused. The command's stdout and stderr
//! are streamed, and virtctl exits with its exit status. `connect` is shared with native scp
//! (`native_scp.rs`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, known_hosts};

use crate::client::LazyConnection;
use crate::commands::Exit;
use crate::guest_access::LocalSsh;
use crate::stream;
use crate::terminal::RawMode;

/// The keys tried without `-i`, in OpenSSH's order of preference.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// How the guest's host key was judged.
pub(crate) struct HostKeys {
    host: String,
    port: u16,
    file: PathBuf,
    /// Why the key was refused, for the error message.
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeys {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            *self.refusal.lock().expect("not poisoned") =
                Some("the guest offered a host certificate, which is not supported".into());
            return Ok(false);
        };
        let refuse = |why: String| {
            *self.refusal.lock().expect("not poisoned") = Some(why);
            Ok(false)
        };
        match known_hosts::check_known_hosts_path(&self.host, self.port, key, &self.file) {
            Ok(true) => Ok(true),
            Ok(false) => {
                if let Err(e) =
                    known_hosts::learn_known_hosts_path(&self.host, self.port, key, &self.file)
                {
                    return refuse(format!(
                        "cannot record its host key in {}: {e}",
                        self.file.display()
                    ));
                }
                eprintln!(
                    "Warning: Permanently added '{}' ({}) to the list of known hosts ({}).",
                    self.host,
                    key.algorithm(),
                    self.file.display()
                );
                Ok(true)
            }
            Err(russh::keys::Error::KeyChanged { line }) => refuse(format!(
                "its host key changed: it does not match line {line} of {}; if the guest was \
                 re-created, remove that line",
                self.file.display()
            )),
            Err(e) => refuse(format!("cannot read {}: {e}", self.file.display())),
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `-i`, else the default keys that exist.
fn key_files(target: &LocalSsh) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(identity) = &target.identity_file {
        return Ok(vec![PathBuf::from(identity)]);
    }
    let found: Vec<PathBuf> = match home() {
        Some(h) => DEFAULT_KEYS
            .iter()
            .map(|k| h.join(".ssh").join(k))
            .filter(|p| p.exists())
            .collect(),
        None => Vec::new(),
    };
    if found.is_empty() {
        anyhow::bail!(
            "no private key to log in with: give one with -i (looked for ~/.ssh/{})",
            DEFAULT_KEYS.join(", ~/.ssh/")
        );
    }
    Ok(found)
}

/// Opens the stream to the guest's SSH port and logs in; also returns the guest's host name
/// (`TYPE.NAME.NAMESPACE`), for messages.
pub(crate) async fn connect(
    connection: &LazyConnection,
    target: &LocalSsh,
) -> anyhow::Result<(Handle<HostKeys>, String)> {
    let user = target.user.clone().ok_or_else(|| {
        anyhow::anyhow!("no user to log in as: give USER@ before the target, or -l USER")
    })?;
    let keys = key_files(target)?;
    let known = match &target.known_hosts {
        Some(path) => PathBuf::from(path),
        None => home()
            .map(|h| h.join(".ssh").join("kubevirt_known_hosts"))
            .ok_or_else(|| anyhow::anyhow!("no home directory: give --known-hosts"))?,
    };
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let port = target.port.to_string();
    let path = stream::path(
        target.target.owner,
        &target.namespace,
        &target.target.name,
        &["portforward", &port, "tcp"],
        "",
    );
    let ws = stream::dial(conn, &path).await.map_err(|e| {
        anyhow::anyhow!(
            "can't access {}/{}.{}: {e}",
            target.target.owner.short(),
            target.target.name,
            target.namespace
        )
    })?;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(stream::splice(ws, theirs));
    let host = target.target.host_name(&target.namespace);
    let refusal = Arc::new(Mutex::new(None));
    let handler = HostKeys {
        host: host.clone(),
        port: target.port,
        file: known,
        refusal: refusal.clone(),
    };
    let mut session = client::connect_stream(Arc::new(client::Config::default()), ours, handler)
        .await
        .map_err(|e| match refusal.lock().expect("not poisoned").take() {
            Some(why) => anyhow::anyhow!("ssh {host}: {why}"),
            None => anyhow::anyhow!("ssh {host}: {e}"),
        })?;
    let rsa_hash = session.best_supported_rsa_hash().await?.flatten();
    let mut problems = Vec::new();
    for file in &keys {
        let key = match russh::keys::load_secret_key(file, None) {
            Ok(key) => key,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        if session.authenticate_publickey(&user, key).await?.success() {
            return Ok((session, host));
        }
        problems.push(format!("{}: not accepted", file.display()));
    }
    anyhow::bail!(
        "{user}@{host}: Permission denied (publickey): {}",
        problems.join("; ")
    )
}

pub async fn ssh(
    connection: &LazyConnection,
    target: &LocalSsh,
    command: Option<&str>,
) -> anyhow::Result<()> {
    let (session, host) = connect(connection, target).await?;
    let mut channel = session.channel_open_session().await?;
    let terminal = command.is_none() && std::io::stdin().is_terminal();
    let _raw = if terminal {
        let size = rustix::termios::tcgetwinsize(std::io::stdin()).ok();
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
        let (cols, rows) = size.map_or((80, 24), |s| (u32::from(s.ws_col), u32::from(s.ws_row)));
        channel
            .request_pty(false, &term, cols, rows, 0, 0, &[])
            .await?;
        RawMode::enter()?
    } else {
        None
    };
    match command {
        Some(command) => channel.exec(true, command).await?,
        None => channel.request_shell(true).await?,
    }
    let mut input = stream::stdin_chunks();
    let mut input_open = true;
    let mut status = None;
    loop {
        tokio::select! {
            chunk = input.recv(), if input_open => match chunk {
                Some(chunk) => channel.data_bytes(chunk).await?,
                None => {
                    input_open = false;
                    channel.eof().await?;
                }
            },
            message = channel.wait() => match message {
                Some(ChannelMsg::Data { data }) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&data)?;
                    err.flush()?;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                Some(ChannelMsg::ExitSignal { .. }) => status = status.or(Some(255)),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
        }
    }
    drop(_raw);
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    match status {
        Some(0) => Ok(()),
        Some(code) => Err(Exit(i32::try_from(code).unwrap_or(255).min(255)).into()),
        None => anyhow::bail!("ssh {host}: the session ended without an exit status"),
    }
}
