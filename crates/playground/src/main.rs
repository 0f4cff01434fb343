//! `virt-playground`: the playground. One process runs an embedded localkube with its
//! simulated node, installs the CRDs, mounts the subresource API, and runs both controllers.

mod subresources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::api::{Api, PostParams};
use virt_reconciler::controller::Metrics;

use clap::Parser;

use crate::subresources::SubresourceState;

/// The all-in-one playground: an embedded API server with a simulated node, the KubeVirt CRDs,
/// the subresource API and both controllers, in one process. It writes a kubeconfig for kubectl
/// and virtctl.
///
/// Examples:
///   virt-playground --kubeconfig-out ./virt-local.kubeconfig
///   KUBECONFIG=./virt-local.kubeconfig kubectl get vms
#[derive(Parser, Debug)]
#[command(
    name = "virt-playground",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    args: LocalArgs,

    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(clap::Args, Debug, Clone)]
struct LocalArgs {
    /// Keep state in this directory (not yet supported: state is in memory).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Address of the API server; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,

    /// Where to write the kubeconfig (mode 0600).
    #[arg(long, default_value = "virt-local.kubeconfig", value_name = "PATH")]
    kubeconfig_out: PathBuf,

    /// How long the simulated node takes to start a pod, e.g. 0, 500ms, 2s.
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    node_start_delay: Duration,

    /// The longest a deleted pod stays Terminating on the simulated node.
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    node_shutdown_time: Duration,

    /// Where to serve /metrics, /healthz and /readyz (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    metrics_addr: SocketAddr,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0, 250ms, 2s, 1m)"))
}

async fn run(args: LocalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.data_dir {
        bail!(
            "--data-dir {} is not yet supported: this release keeps all state in memory",
            dir.display()
        );
    }
    let state = Arc::new(SubresourceState::default());
    let server = localkube::LocalKube::builder()
        .listen(args.listen)
        .kubeconfig_out(&args.kubeconfig_out)
        .mount_group(
            subresources::mounted_group(),
            subresources::router(state.clone()),
        )
        .start()
        .await?;
    let client = server.client().await?;
    let _ = state.client.set(client.clone());
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .context("installing the KubeVirt CRDs")?;
    }
    let node_client = client.clone();
    let node = localkube::node::NodeConfig {
        start_delay: args.node_start_delay,
        shutdown_time: args.node_shutdown_time,
        ..Default::default()
    };
    let node_task = tokio::spawn(async move {
        if let Err(e) = localkube::node::run(node_client, node).await {
            eprintln!("virt-playground: simulated node stopped: {e:#}");
        }
    });
    let metrics = Arc::new(Metrics::default());
    metrics.leader.set(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ready = tokio::sync::watch::channel(true).1;
    let health = virt_controller::serve_health(args.metrics_addr, metrics.clone(), ready).await?;
    let controllers = tokio::spawn(virt_controller::run_controllers(
        client, metrics, 16, stop_rx,
    ));
    println!(
        "virt-playground ready at {} (kubeconfig: {}, metrics: http://{health}/metrics)",
        server.url,
        args.kubeconfig_out.display()
    );
    virt_controller::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), controllers).await;
    node_task.abort();
    server.shutdown().await;
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => {
            "virt_reconciler=debug,virt_controller=debug,virt_playground=debug,localkube=debug,info"
        }
        _ => "trace",
    };
    virt_controller::run_daemon("virt-playground", filter, run(cli.args));
}
