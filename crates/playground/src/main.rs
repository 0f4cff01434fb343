//! `virt-playground`: the playground. One process runs an embedded localkube with its node,
//! installs the CRDs, serves virt-api on loopback behind localkube's aggregation layer (the
//! cluster's topology: APIServices, front-proxy TLS, SubjectAccessReviews), and runs both
//! controllers; with real guests (`--guests qemu`) the node runs launcher Pods as processes and
//! virt-handler drives them.

mod guests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube::api::{Api, Patch, PatchParams};
use localkube::cli::ServerArgs;
use virt_reconciler::controller::Metrics;

/// The all-in-one playground: an embedded API server with a node, the KubeVirt CRDs, virt-api
/// (the subresource API and the admission webhooks, aggregated as on a cluster), both
/// controllers and virt-handler, in one process. With `--guests qemu`
/// (the default) every VM boots a real guest under QEMU; with `--guests simulated` the node
/// only pretends, which needs nothing but this binary. It writes a kubeconfig for kubectl and
/// virtctl.
///
/// Examples:
///   virt-playground --guest-image "$(scripts/build-guest-image.sh | tail -n 1)"
///   virt-playground --guests simulated --kubeconfig-out ./virt-local.kubeconfig
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

    #[command(flatten)]
    guests: guests::GuestArgs,
}

async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let server = args.server.builder()?.start().await?;
    // Every component's client, as they have it on a cluster: no resending of a write that
    // timed out after it ran (kube's retry does that).
    let client = virt_reconciler::client_retry::client(server.kube_config().await?)?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    // Applied, so that a playground kept in a data directory gets this release's CRDs.
    for (_, crd) in virt_reconciler::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("virt-playground").force(),
            &Patch::Apply(&crd),
        )
        .await
        .context("installing the KubeVirt CRDs")?;
    }
    // Every component here acts as localkube's one user, so the VMI webhooks trust it.
    let virt_api = virt_api::loopback::serve(
        &client,
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
        true,
    )
    .await
    .context("starting virt-api")?;
    let mut node = args.server.node_config();
    let data_plane = guests::prepare(&args.guests, &mut node)?;
    let node_client = client.clone();
    let node_task = tokio::spawn(async move {
        if let Err(e) = localkube::node::run(node_client, node).await {
            eprintln!("virt-playground: the node stopped: {e:#}");
        }
    });
    let handler_task = data_plane.spawn_handler(client.clone());
    let metrics = Arc::new(Metrics::default());
    metrics.leader.set(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ready = tokio::sync::watch::channel(true).1;
    let health = virt_controller::serve_health(args.metrics_addr, metrics.clone(), ready).await?;
    let launcher_args = virt_reconciler::launcher_api::accel_args(args.guests.accel.as_deref());
    let controllers = tokio::spawn(virt_controller::run_controllers_with_launcher_args(
        client,
        metrics,
        16,
        launcher_args,
        stop_rx,
    ));
    println!(
        "virt-playground ready at {} (kubeconfig: {}, metrics: http://{health}/metrics)",
        server.url,
        args.server.kubeconfig_out.display()
    );
    daemon_main::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), controllers).await;
    if let Some(handler) = handler_task {
        handler.abort();
    }
    node_task.abort();
    virt_api.shutdown().await;
    server.shutdown().await;
    drop(data_plane);
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => {
            "virt_reconciler=debug,virt_controller=debug,virt_playground=debug,virt_handler=debug,localkube=debug,info"
        }
        _ => "trace",
    };
    daemon_main::run_daemon("virt-playground", filter, run(cli.args));
}
