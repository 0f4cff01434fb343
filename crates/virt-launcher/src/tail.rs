//! virt-tail: follows the serial console log to stdout until the launcher is gone.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

/// The file the launcher writes before it exits.
pub const EXITED_FILE: &str = "launcher-exited";

const POLL: Duration = Duration::from_millis(100);
/// Probing the socket more often would only add connections to the launcher.
const SOCKET_PROBE_EVERY: u32 = 10;

/// Copies what the log gains, from `position` on, to `out`; returns the new position.
fn copy_new_bytes(log: &Path, position: u64, out: &mut impl Write) -> std::io::Result<u64> {
    let mut file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(position),
        Err(e) => return Err(e),
    };
    // A log that shrank was replaced: start it over.
    let position = if file.metadata()?.len() < position {
        0
    } else {
        position
    };
    file.seek(SeekFrom::Start(position))?;
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer)?;
    if !buffer.is_empty() {
        out.write_all(&buffer)?;
        out.flush()?;
    }
    Ok(position + buffer.len() as u64)
}

/// Where the socket stands, as far as virt-tail is concerned.
#[derive(Debug, Default)]
struct SocketWatch {
    seen_up: bool,
}

impl SocketWatch {
    /// True once the socket, having accepted a connection before, refuses one.
    fn launcher_gone(&mut self, socket: &Path) -> bool {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(_) => {
                self.seen_up = true;
                false
            }
            Err(_) => self.seen_up,
        }
    }
}

/// Follows `logfile` until the launcher is gone; always exits 0 after draining. SIGTERM (the
/// Pod is being deleted) does not end it while the launcher runs: the guest's last words,
/// its shutdown, are still to come, and the kubelet's grace period bounds the wait. A second
/// signal, or a launcher that never came up, ends it at once.
pub async fn run(logfile: PathBuf, socket: PathBuf) -> anyhow::Result<()> {
    let exited = logfile
        .parent()
        .map_or_else(|| PathBuf::from(EXITED_FILE), |dir| dir.join(EXITED_FILE));
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut stdout = std::io::stdout().lock();
    let mut position = 0;
    let mut socket_watch = SocketWatch::default();
    let mut ticks: u32 = 0;
    let mut terminating = false;
    loop {
        // Decide before copying, so the last copy drains what came before the decision.
        let probe = terminating || ticks.is_multiple_of(SOCKET_PROBE_EVERY);
        let done = exited.exists()
            || (probe && socket_watch.launcher_gone(&socket))
            || (terminating && !socket_watch.seen_up);
        position = copy_new_bytes(&logfile, position, &mut stdout)?;
        if done {
            return Ok(());
        }
        ticks = ticks.wrapping_add(1);
        let signalled = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            _ = sigterm.recv() => true,
            _ = sigint.recv() => true,
        };
        if signalled {
            if terminating {
                break;
            }
            terminating = true;
        }
    }
    copy_new_bytes(&logfile, position, &mut stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_bytes_are_copied_once_and_a_shrunk_log_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut out = Vec::new();
        assert_eq!(copy_new_bytes(&log, 0, &mut out).unwrap(), 0, "no file yet");
        std::fs::write(&log, b"SeaBIOS\r\n").unwrap();
        let at = copy_new_bytes(&log, 0, &mut out).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"no line end")
            .unwrap();
        let at = copy_new_bytes(&log, at, &mut out).unwrap();
        assert_eq!(out, b"SeaBIOS\r\nno line end");
        assert_eq!(at, 20);
        std::fs::write(&log, b"new").unwrap();
        copy_new_bytes(&log, at, &mut out).unwrap();
        assert_eq!(out, b"SeaBIOS\r\nno line endnew");
    }

    #[test]
    fn a_socket_counts_as_gone_only_after_it_was_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let mut watch = SocketWatch::default();
        assert!(!watch.launcher_gone(&path), "never up yet");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(!watch.launcher_gone(&path));
        drop(listener);
        assert!(watch.launcher_gone(&path), "refused after it was up");
    }
}
