//! `scp --local-ssh=false`: virtctl's own scp, SFTP (russh-sftp) over the SSH session of
//! `native_ssh.rs` (same login, keys and host-key trust). scp's rules: a file copied to a
//! directory keeps its name; a directory needs -r; --preserve keeps modes and times; the first
//! failure ends the copy with exit 1, naming the file that may be left partial.

use std::fs::{FileTimes, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use russh::ChannelMsg;
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, FileType, OpenFlags, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::client::LazyConnection;
use crate::commands::native_ssh;
use crate::guest_access::LocalSsh;
use crate::settings::ScpSettings;

/// How long one SFTP answer may take (a slow guest under TCG included).
const ANSWER_TIMEOUT_SECS: u64 = 120;

/// The last component of a slash-separated path, trailing slashes ignored; the empty path
/// (the login directory) is `.`, and `/` has none (`""`).
pub fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// `dir/name` for the guest's paths (SFTP's are always `/`-separated).
pub fn remote_join(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_string(),
        d if d.ends_with('/') => format!("{d}{name}"),
        d => format!("{d}/{name}"),
    }
}

/// The guest path SFTP is asked for: an empty path (`vmi/x:`) is the login directory.
pub fn remote_path(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// A name a directory listing may hold: one component, not `.` or `..` (a listing with
/// `../x` must not write outside the destination).
pub fn safe_entry_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// An I/O error as scp words it: without Rust's `(os error N)`.
pub fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// An SFTP error as scp words it.
pub fn sftp_reason(error: &SftpError) -> String {
    match error {
        SftpError::Status(status) => match status.status_code {
            StatusCode::NoSuchFile => "No such file or directory".to_string(),
            StatusCode::PermissionDenied => "Permission denied".to_string(),
            _ if !status.error_message.is_empty() => status.error_message.clone(),
            code => code.to_string(),
        },
        SftpError::Timeout => format!("no answer from the guest in {ANSWER_TIMEOUT_SECS}s"),
        other => other.to_string(),
    }
}

fn is_missing(error: &SftpError) -> bool {
    matches!(error, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

/// Seconds since the epoch as SFTP's 32-bit times carry them.
fn sftp_time(seconds: i64) -> u32 {
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

fn system_time(seconds: Option<u32>) -> Option<SystemTime> {
    seconds.map(|s| UNIX_EPOCH + Duration::from_secs(u64::from(s)))
}

/// The attributes a copy to the guest sets: the mode always (as scp), times with --preserve.
fn remote_attributes(meta: &std::fs::Metadata, preserve: bool) -> FileAttributes {
    FileAttributes {
        permissions: Some(meta.mode() & 0o7777),
        atime: preserve.then(|| sftp_time(meta.atime())),
        mtime: preserve.then(|| sftp_time(meta.mtime())),
        ..FileAttributes::default()
    }
}

pub async fn run(
    connection: &LazyConnection,
    target: &LocalSsh,
    opts: &ScpSettings,
) -> anyhow::Result<()> {
    let (session, host) = native_ssh::connect(connection, target).await?;
    let mut channel = session.channel_open_session().await?;
    channel.request_subsystem(true, "sftp").await?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => bail!(
                "ssh {host}: the guest's sshd refused the sftp subsystem (it needs an SFTP \
                 server such as OpenSSH's sftp-server)"
            ),
            Some(ChannelMsg::Close | ChannelMsg::Eof) | None => {
                bail!("ssh {host}: the guest closed the channel instead of starting SFTP")
            }
            Some(_) => {}
        }
    }
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| anyhow::anyhow!("ssh {host}: cannot start SFTP: {}", sftp_reason(&e)))?;
    sftp.set_timeout(ANSWER_TIMEOUT_SECS);
    let copy = Copy {
        sftp: &sftp,
        host: &host,
        recursive: opts.recursive,
        preserve: opts.preserve,
    };
    let locations = &opts.locations;
    let remote = remote_path(&locations.remote_path);
    let local = Path::new(&locations.local);
    let result = match locations.to_remote {
        true => copy.upload_top(local, remote).await,
        false => copy.download_top(remote, local).await,
    };
    let _ = sftp.close().await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    result
}

/// One copy's session and choices.
struct Copy<'a> {
    sftp: &'a SftpSession,
    /// `TYPE.NAME.NAMESPACE`, to name the guest's files in messages.
    host: &'a str,
    recursive: bool,
    preserve: bool,
}

impl Copy<'_> {
    /// The guest's `path` as messages name it.
    fn shown(&self, path: &str) -> String {
        format!("{}:{path}", self.host)
    }

    fn remote_error(&self, path: &str, error: &SftpError) -> anyhow::Error {
        anyhow::anyhow!("{}: {}", self.shown(path), sftp_reason(error))
    }

    /// A file that failed after its destination was opened.
    fn partial(&self, from: &str, to: &str, why: &str) -> anyhow::Error {
        anyhow::anyhow!("copying {from} to {to} failed: {why}; {to} may be partial")
    }

    /// To the guest: into `remote` when it is a directory, else as `remote`.
    async fn upload_top(&self, local: &Path, remote: &str) -> anyhow::Result<()> {
        let into_dir = match self.sftp.metadata(remote).await {
            Ok(meta) => meta.is_dir(),
            Err(e) if is_missing(&e) => false,
            Err(e) => return Err(self.remote_error(remote, &e)),
        };
        let destination = match into_dir {
            true => {
                let name = match local.file_name() {
                    Some(name) => PathBuf::from(name),
                    // `.` or `..`: the directory's own name.
                    None => std::fs::canonicalize(local)
                        .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?
                        .file_name()
                        .map(PathBuf::from)
                        .unwrap_or_default(),
                };
                let name = name
                    .to_str()
                    .with_context(|| format!("{}: the name is not UTF-8", local.display()))?;
                remote_join(remote, name)
            }
            false => remote.to_string(),
        };
        self.upload(local, &destination).await
    }

    async fn upload(&self, local: &Path, remote: &str) -> anyhow::Result<()> {
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
        if meta.is_file() {
            return self.upload_file(local, remote, &meta).await;
        }
        if !meta.is_dir() || !self.recursive {
            bail!("{}: not a regular file", local.display());
        }
        match self.sftp.metadata(remote).await {
            Ok(existing) if existing.is_dir() => {}
            Ok(_) => bail!("{}: Not a directory", self.shown(remote)),
            Err(e) if is_missing(&e) => {
                self.sftp
                    .create_dir(remote)
                    .await
                    .map_err(|e| self.remote_error(remote, &e))?;
                // Writable by us while it fills; --preserve sets the exact mode after.
                let mode = FileAttributes {
                    permissions: Some((meta.mode() & 0o777) | 0o700),
                    ..FileAttributes::default()
                };
                self.sftp
                    .set_metadata(remote, mode)
                    .await
                    .map_err(|e| self.remote_error(remote, &e))?;
            }
            Err(e) => return Err(self.remote_error(remote, &e)),
        }
        let mut entries = Vec::new();
        let mut listing = tokio::fs::read_dir(local)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
        while let Some(entry) = listing
            .next_entry()
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?
        {
            entries.push(entry.file_name());
        }
        entries.sort();
        for name in entries {
            let child = local.join(&name);
            let name = name
                .to_str()
                .with_context(|| format!("{}: the name is not UTF-8", child.display()))?;
            Box::pin(self.upload(&child, &remote_join(remote, name))).await?;
        }
        if self.preserve {
            self.sftp
                .set_metadata(remote, remote_attributes(&meta, true))
                .await
                .map_err(|e| self.remote_error(remote, &e))?;
        }
        Ok(())
    }

    async fn upload_file(
        &self,
        local: &Path,
        remote: &str,
        meta: &std::fs::Metadata,
    ) -> anyhow::Result<()> {
        let mut source = tokio::fs::File::open(local)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
        let mut destination = self
            .sftp
            .open_with_flags_and_attributes(
                remote,
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                remote_attributes(meta, false),
            )
            .await
            .map_err(|e| self.remote_error(remote, &e))?;
        let copied = async {
            tokio::io::copy(&mut source, &mut destination).await?;
            destination.shutdown().await
        }
        .await;
        if let Err(e) = copied {
            return Err(self.partial(
                &local.display().to_string(),
                &self.shown(remote),
                &io_reason(&e),
            ));
        }
        if self.preserve {
            self.sftp
                .set_metadata(remote, remote_attributes(meta, true))
                .await
                .map_err(|e| self.remote_error(remote, &e))?;
        }
        Ok(())
    }

    /// From the guest: into `local` when it is a directory, else as `local`.
    async fn download_top(&self, remote: &str, local: &Path) -> anyhow::Result<()> {
        let into_dir = tokio::fs::metadata(local)
            .await
            .is_ok_and(|meta| meta.is_dir());
        if !into_dir {
            return self.download(remote, local).await;
        }
        let mut name = base_name(remote).to_string();
        if name.is_empty() || name == "." || name == ".." {
            // The directory's own name, as the guest resolves it.
            let absolute = self
                .sftp
                .canonicalize(remote)
                .await
                .map_err(|e| self.remote_error(remote, &e))?;
            name = base_name(&absolute).to_string();
        }
        let destination = match safe_entry_name(&name) {
            true => local.join(name),
            false => local.to_path_buf(),
        };
        self.download(remote, &destination).await
    }

    async fn download(&self, remote: &str, local: &Path) -> anyhow::Result<()> {
        let meta = self
            .sftp
            .metadata(remote)
            .await
            .map_err(|e| self.remote_error(remote, &e))?;
        match meta.file_type() {
            FileType::File => return self.download_file(remote, local, &meta).await,
            FileType::Dir if self.recursive => {}
            _ => bail!("{}: not a regular file", self.shown(remote)),
        }
        match tokio::fs::metadata(local).await {
            Ok(existing) if existing.is_dir() => {}
            Ok(_) => bail!("{}: Not a directory", local.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::create_dir(local)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
                let mode = (meta.permissions.unwrap_or(0o755) & 0o777) | 0o700;
                set_local_mode(local, mode)?;
            }
            Err(e) => bail!("{}: {}", local.display(), io_reason(&e)),
        }
        let mut names: Vec<String> = self
            .sftp
            .read_dir(remote)
            .await
            .map_err(|e| self.remote_error(remote, &e))?
            .map(|entry| entry.file_name())
            .collect();
        names.sort();
        for name in names {
            if !safe_entry_name(&name) {
                bail!(
                    "{}: refusing the entry {name:?} the guest listed",
                    self.shown(remote)
                );
            }
            Box::pin(self.download(&remote_join(remote, &name), &local.join(&name))).await?;
        }
        if self.preserve {
            set_local_mode(local, meta.permissions.unwrap_or(0o755) & 0o7777)?;
            let dir = std::fs::File::open(local)
                .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
            set_local_times(&dir, local, &meta)?;
        }
        Ok(())
    }

    async fn download_file(
        &self,
        remote: &str,
        local: &Path,
        meta: &FileAttributes,
    ) -> anyhow::Result<()> {
        let mut source = self
            .sftp
            .open(remote)
            .await
            .map_err(|e| self.remote_error(remote, &e))?;
        let mode = meta.permissions.unwrap_or(0o644) & 0o777;
        let mut destination = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(local)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", local.display(), io_reason(&e)))?;
        let copied = async {
            tokio::io::copy(&mut source, &mut destination).await?;
            destination.flush().await
        }
        .await;
        if let Err(e) = copied {
            return Err(self.partial(
                &self.shown(remote),
                &local.display().to_string(),
                &io_reason(&e),
            ));
        }
        if self.preserve {
            set_local_mode(local, meta.permissions.unwrap_or(0o644) & 0o7777)?;
            let file = destination.into_std().await;
            set_local_times(&file, local, meta)?;
        }
        Ok(())
    }
}

fn set_local_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), io_reason(&e)))
}

fn set_local_times(file: &std::fs::File, path: &Path, meta: &FileAttributes) -> anyhow::Result<()> {
    let mut times = FileTimes::new();
    if let Some(accessed) = system_time(meta.atime) {
        times = times.set_accessed(accessed);
    }
    if let Some(modified) = system_time(meta.mtime) {
        times = times.set_modified(modified);
    }
    file.set_times(times)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), io_reason(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::Status;

    #[test]
    fn base_names() {
        for (path, name) in [
            ("file.bin", "file.bin"),
            ("dir/file.bin", "file.bin"),
            ("/etc/os-release", "os-release"),
            ("mydir/", "mydir"),
            ("a/b//", "b"),
            ("/", ""),
            ("", "."),
            (".", "."),
        ] {
            assert_eq!(base_name(path), name, "{path:?}");
        }
    }

    #[test]
    fn remote_joins() {
        for (dir, name, joined) in [
            (".", "f", "./f"),
            ("dir", "f", "dir/f"),
            ("dir/", "f", "dir/f"),
            ("/", "f", "/f"),
            ("", "f", "f"),
        ] {
            assert_eq!(remote_join(dir, name), joined);
        }
        assert_eq!(remote_path(""), ".");
        assert_eq!(remote_path("x"), "x");
    }

    #[test]
    fn listed_names_stay_inside() {
        for (name, ok) in [
            ("a.txt", true),
            (".hidden", true),
            ("", false),
            (".", false),
            ("..", false),
            ("../x", false),
            ("a/b", false),
        ] {
            assert_eq!(safe_entry_name(name), ok, "{name:?}");
        }
    }

    #[test]
    fn reasons_read_like_scp() {
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&missing), "No such file or directory");
        let plain = std::io::Error::other("boom");
        assert_eq!(io_reason(&plain), "boom");
        let status = |status_code, message: &str| {
            SftpError::Status(Status {
                id: 1,
                status_code,
                error_message: message.to_string(),
                language_tag: "en".to_string(),
            })
        };
        for (error, reason) in [
            (
                status(StatusCode::NoSuchFile, "no such file"),
                "No such file or directory",
            ),
            (
                status(StatusCode::PermissionDenied, "denied"),
                "Permission denied",
            ),
            (status(StatusCode::Failure, "disk full"), "disk full"),
            (status(StatusCode::Failure, ""), "Failure"),
        ] {
            assert_eq!(sftp_reason(&error), reason);
        }
        assert!(is_missing(&status(StatusCode::NoSuchFile, "")));
        assert!(!is_missing(&status(StatusCode::Failure, "")));
    }

    #[test]
    fn times_fit_sftp() {
        assert_eq!(sftp_time(-5), 0);
        assert_eq!(sftp_time(1_700_000_000), 1_700_000_000);
        assert_eq!(sftp_time(i64::MAX), u32::MAX);
    }
}
