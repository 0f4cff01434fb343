//! The `virt-handler` binary: flags, kubeconfig and logging around [`virt_handler::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use virt_handler::HandlerConfig;

/// The node agent: follows the VMIs scheduled to this node, drives their virt-launchers over
/// the command socket and writes the domain's state onto the VMIs; serves pause and unpause.
#[derive(Parser, Debug)]
#[command(name = "virt-handler", version, about)]
struct Cli {
    /// The Node this handler serves.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The node's root directory (launcher sockets are under var/run/kubevirt/sockets there).
    #[arg(long, default_value = "/")]
    host_root: PathBuf,
    /// Where to serve the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8186")]
    listen: SocketAddr,
    /// The kubeconfig to use (default: in-cluster, then $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig found: pass --kubeconfig")?,
    };
    // Not kube's retry, which resends a write that timed out after it ran.
    Ok(virt_reconciler::client_retry::client(config)?)
}

async fn main_async(cli: Cli) -> anyhow::Result<()> {
    let client = client(cli.kubeconfig.as_ref()).await?;
    virt_handler::run(
        client,
        HandlerConfig {
            node_name: cli.node_name,
            host_root: cli.host_root,
            listen: cli.listen,
        },
    )
    .await
}

fn main() {
    let cli = Cli::parse();
    daemon_main::run_daemon("virt-handler", "virt_handler=info,warn", main_async(cli));
}
