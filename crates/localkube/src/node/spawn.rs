//! Starting and signalling container processes: each runs in its own process group, with only
//! its container's environment (plus the node's PATH and HOME), its output appended to its log
//! file, and `PR_SET_PDEATHSIG` so that it dies with the node.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::Context;
use parking_lot::Mutex;

use super::rules::Launch;

/// What a container process is started with.
pub struct Spawn<'a> {
    pub launch: &'a Launch,
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub log: &'a Path,
}

/// Starts a container's process; its pid is also its process group id.
pub fn spawn(s: &Spawn) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.log)
        .with_context(|| format!("cannot open the log {}", s.log.display()))?;
    let err = log.try_clone()?;
    let mut cmd = tokio::process::Command::new(&s.launch.program);
    cmd.args(&s.launch.args)
        .env_clear()
        .current_dir(s.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0);
    // As a container runtime would give it: a PATH and a HOME, nothing else of the node's.
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(s.env.iter().map(|(k, v)| (k, v)));
    sys::die_with_parent(&mut cmd);
    cmd.spawn()
        .with_context(|| format!("cannot start {}", s.launch.program.display()))
}

/// Sends `signal` to process `pid`.
pub fn signal_process(pid: u32, signal: libc::c_int) {
    // A pid that does not fit is no process of ours.
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        sys::kill(pid, signal);
    }
}

/// SIGKILLs the process group `pgid`.
pub fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid)
        && pgid > 1
    {
        sys::kill(-pgid, libc::SIGKILL);
    }
}

/// The two system calls the runtime needs that std does not wrap.
#[allow(unsafe_code)]
mod sys {
    /// Asks the kernel to SIGKILL the child when the thread that started it ends. Container
    /// processes are started from the runtime's worker threads, which live as long as the node.
    pub fn die_with_parent(cmd: &mut tokio::process::Command) {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid) and allocates nothing (its errors are
        // raw OS errors).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The node may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }

    /// kill(2).
    pub fn kill(pid: libc::pid_t, signal: libc::c_int) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The process groups the node started and has not yet reaped; dropping the [`GroupsGuard`]
/// kills them all, so a node that ends normally leaves no process behind.
#[derive(Default, Clone)]
pub struct ProcessGroups(Arc<Mutex<HashSet<u32>>>);

impl ProcessGroups {
    pub fn add(&self, pgid: u32) {
        self.0.lock().insert(pgid);
    }

    pub fn remove(&self, pgid: u32) {
        self.0.lock().remove(&pgid);
    }

    pub fn kill_all(&self) {
        for pgid in self.0.lock().drain() {
            kill_group(pgid);
        }
    }
}

/// Kills the node's process groups, then removes its temporary root (if it made one).
pub struct GroupsGuard {
    pub groups: ProcessGroups,
    pub temp_root: Option<tempfile::TempDir>,
}

impl Drop for GroupsGuard {
    fn drop(&mut self) {
        self.groups.kill_all();
        if let Some(t) = self.temp_root.take() {
            let path: PathBuf = t.path().to_path_buf();
            if let Err(e) = t.close() {
                tracing::debug!("cannot remove the node root {}: {e}", path.display());
            }
        }
    }
}
