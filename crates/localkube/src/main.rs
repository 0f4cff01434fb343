//! The `localkube` binary: the API server with its node (simulated pods, or processes for mapped
//! images), or the node alone.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use localkube::cli::{NodeArgs, ServerArgs};

// jemalloc packs the store's many small long-lived allocations more tightly than glibc's
// malloc: about 15% less memory per stored object, measured in BENCHMARKS.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A Kubernetes API server in one process, with a simulated node.
///
/// It serves the built-in resources kubectl and the toolkit use, and any CRD you create, over
/// HTTPS with a random admin token (no RBAC). State lives in memory, or with --data-dir on disk
/// as well (each write before it is answered), so that a restart keeps it. Pods are simulated,
/// except those whose images are all mapped with --image, which run as host processes.
///
/// Examples:
///   localkube --kubeconfig-out ./lk.kubeconfig
///   localkube --data-dir ./lk-state --kubeconfig-out ./lk.kubeconfig   # kept across restarts
///   KUBECONFIG=./lk.kubeconfig kubectl get nodes
///   localkube --image example.com/tools=/usr/local/bin/tool --node-root ./node
#[derive(Parser, Debug)]
#[command(name = "localkube", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    server: ServerArgs,

    /// Do not run the embedded simulated node.
    #[arg(long)]
    no_node: bool,

    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run only the simulated node, against any cluster.
    Node {
        /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Node { kubeconfig, node }) = &cli.command {
        let config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let client = kube::Client::try_from(config)?;
        let cfg = node.config();
        eprintln!("localkube node {} running", cfg.name);
        tokio::select! {
            r = localkube::node::run(client, cfg) => r?,
            _ = daemon_main::shutdown_signal() => {}
        }
        return Ok(());
    }
    let server = cli.server.builder()?.start().await?;
    let mut node_task = None;
    if !cli.no_node {
        let client = server.client().await?;
        let cfg = cli.server.node_config();
        node_task = Some(tokio::spawn(async move {
            if let Err(e) = localkube::node::run(client, cfg).await {
                eprintln!("localkube: simulated node stopped: {e:#}");
            }
        }));
    }
    println!(
        "localkube ready at {} (kubeconfig: {})",
        server.url,
        cli.server.kubeconfig_out.display()
    );
    daemon_main::shutdown_signal().await;
    if let Some(t) = node_task {
        t.abort();
    }
    server.shutdown().await;
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "localkube=debug,info",
        _ => "trace",
    };
    daemon_main::run_daemon("localkube", filter, run(cli));
}
