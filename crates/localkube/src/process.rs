//! What the workspace's daemons do the same way around their work: logs on stderr, a
//! multi-threaded runtime, and a one-line error with exit status 1.

use std::future::Future;
use std::time::Duration;

/// Logs to stderr with `default_filter` unless `RUST_LOG` is set, runs `work` on a
/// multi-threaded runtime, and exits with status 1 and `PROGRAM: ERROR` when it fails.
pub fn run_daemon<F>(program: &str, default_filter: &str, work: F)
where
    F: Future<Output = anyhow::Result<()>>,
{
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
