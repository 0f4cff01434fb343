//! `virt-playground`: the playground. One process runs an embedded localkube with its
//! simulated node, installs the CRDs, mounts the subresource API, and runs both controllers.

mod subresources;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube::api::{Api, PostParams};
use localkube::cli::ServerArgs;
use virt_reconciler::controller::Metrics;

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
    verbatim_doc_comment,
    mut_arg("kubeconfig_out", |a| a.default_value("virt-local.kubeconfig"))
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
    /// The API server's and the simulated node's flags, as localkube's.
    #[command(flatten)]
    server: ServerArgs,

    /// Where to serve /metrics, /healthz and /readyz (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    metrics_addr: SocketAddr,
}

async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let state = Arc::new(SubresourceState::default());
    let server = args
        .server
        .builder()?
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
    let node = args.server.node.config();
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
        args.server.kubeconfig_out.display()
    );
    daemon_main::shutdown_signal().await;
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
    daemon_main::run_daemon("virt-playground", filter, run(cli.args));
}
