//! What every daemon of the workspace (localkube, virt-controller, the playground, the node
//! agents) does the same way around its work: logs on stderr, fewer malloc arenas, a
//! multi-threaded runtime, a one-line error with exit status 1, and stopping on Ctrl-C or
//! SIGTERM.

use std::future::Future;
use std::time::Duration;

/// Limits malloc arenas, logs to stderr with `default_filter` unless `RUST_LOG` is set, runs
/// `work` on a multi-threaded runtime, and exits with status 1 and `PROGRAM: ERROR` when it fails.
pub fn run_daemon<F>(program: &str, default_filter: &str, work: F)
where
    F: Future<Output = anyhow::Result<()>>,
{
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(work);
    // Watches and connections end with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(200));
    if let Err(e) = result {
        eprintln!("{program}: {e:#}");
        std::process::exit(1);
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// glibc gives threads that allocate at once their own heap arenas (up to eight per core). The
/// caches are built from several runtime threads, and the arenas' fragmentation costs more
/// memory than the lock contention they avoid is worth here (1,000 VMs: 54 → 46 MiB peak RSS).
/// `MALLOC_ARENA_MAX`, when set, still wins.
#[allow(unsafe_code)] // The one unsafe call of the workspace: a C allocator setting.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs before any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
