//! The virt-controller daemon: the VM and VMI controllers against a cluster (`run`) and the
//! CRD generator (`crds`). The all-in-one playground is `virt-playground`, its own crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use daemon_main::shutdown_signal;
use tokio::sync::Notify;
use virt_controller::health::{self, Bounds};
use virt_controller::{leader, ratelimit, run_controllers_with_launcher_args, serve_probes};
use virt_reconciler::controller::Metrics;
use virt_reconciler::launcher_api::accel_args;

/// Runs the KubeVirt VM and VMI controllers.
///
/// With no subcommand it runs the controllers (`run`).
///
/// /readyz answers 503 on a standby replica, and on the leader once a watch of the controllers
/// has been failing for --unready-after; /healthz answers 503 once one has been failing for
/// --unhealthy-after, so that the kubelet restarts the pod. When the API server rejects the
/// credentials (401) or its certificate does not verify, the kubeconfig (or in-cluster config)
/// is read again and the controllers restart with it.
#[derive(Parser, Debug)]
#[command(name = "virt-controller", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,

    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or the in-cluster config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,

    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    metrics_addr: SocketAddr,

    /// Reconciles that may run at once, per controller.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,

    /// The guests' acceleration, passed to every virt-launcher: tcg (its default; boots on any
    /// host), kvm, or auto.
    #[arg(long, value_name = "ACCEL", value_parser = clap::builder::PossibleValuesParser::new(virt_reconciler::launcher_api::ACCELS))]
    launcher_accel: Option<String>,

    /// Elect a leader on a Lease so that only one replica acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,

    /// Namespace of the leader Lease.
    #[arg(long, default_value = "kubevirt", env = "POD_NAMESPACE")]
    lease_namespace: String,

    /// Name of the leader Lease.
    #[arg(long, default_value = "virt-controller")]
    lease_name: String,

    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Requests a second the controllers may send to the API server, on average (client-side
    /// rate limit, as client-go's); 0 turns the limit off. Leader election is not limited.
    #[arg(long, default_value_t = ratelimit::DEFAULT_QPS, value_name = "QPS")]
    qps: f64,

    /// Requests the controllers may send at once before --qps paces them.
    #[arg(long, default_value_t = ratelimit::DEFAULT_BURST, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,

    /// Answer 503 on /readyz once a watch of the controllers has been failing this long (the API
    /// server unreachable, the credentials rejected), e.g. 30s, 1m30s; ok again once it works.
    #[arg(long, default_value = health::DEFAULT_UNREADY_AFTER, value_name = "DUR",
          value_parser = health::parse_bound)]
    unready_after: Duration,

    /// Answer 503 on /healthz once a watch has been failing this long, so that the kubelet
    /// restarts the pod (a fresh process reads its configuration again).
    #[arg(long, default_value = health::DEFAULT_UNHEALTHY_AFTER, value_name = "DUR",
          value_parser = health::parse_bound)]
    unhealthy_after: Duration,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers against a cluster whose CRDs come from deploy/crds.
    Run(RunArgs),
    /// Write the CustomResourceDefinitions (one YAML file per CRD) into a directory, or print
    /// them all to stdout.
    Crds {
        /// Directory to write into, e.g. deploy/crds.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

fn write_crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = virt_reconciler::crds::all();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, crd) in crds {
                let path = dir.join(file);
                std::fs::write(&path, virt_reconciler::crds::to_yaml(&crd))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            for (_, crd) in crds {
                println!("---\n{}", virt_reconciler::crds::to_yaml(&crd));
            }
        }
    }
    Ok(())
}

/// Reads the kubeconfig at `path`, or infers one (KUBECONFIG, ~/.kube/config, in-cluster).
async fn load_config(path: Option<&Path>) -> anyhow::Result<kube::Config> {
    Ok(match path {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig or in-cluster config")?,
    })
}

/// What fails in the watch health while no client can be built.
const CONFIG_FAILURE: &str = "kubeconfig";

/// The pause before reading the kubeconfig again, doubled after each reload up to the maximum,
/// so that credentials that stay broken are retried ever more slowly rather than in a loop.
const RELOAD_PAUSE: Duration = Duration::from_secs(1);
const RELOAD_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Runs the controllers until `stop` fires. When the API server rejects their credentials or
/// its certificate, they stop, the kubeconfig is read again, and they start over with a new
/// client, as after a restart: that is how a rotated CA or token is picked up.
async fn drive_controllers(
    first: kube::Config,
    args: &RunArgs,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut config = Some(first);
    let mut pause = RELOAD_PAUSE;
    loop {
        let config = match config.take() {
            Some(config) => Ok(config),
            None => load_config(args.kubeconfig.as_deref()).await,
        };
        let rejected = Arc::new(Notify::new());
        let client = config.and_then(|config| {
            let client = ratelimit::client(config, args.qps, args.burst)?;
            Ok(health::check_credentials(client, rejected.clone()))
        });
        match client {
            Ok(client) => {
                metrics.watches.succeeded(CONFIG_FAILURE);
                let started = Instant::now();
                tokio::select! {
                    _ = run_controllers_with_launcher_args(
                        client,
                        metrics.clone(),
                        args.concurrency,
                        accel_args(args.launcher_accel.as_deref()),
                        stop.clone(),
                    ) => return,
                    _ = rejected.notified() => {}
                }
                // Dropping the controllers cancelled them; a long healthy run starts the pauses over.
                if started.elapsed() > 2 * RELOAD_PAUSE_MAX {
                    pause = RELOAD_PAUSE;
                }
                eprintln!(
                    "virt-controller: the API server rejected the credentials or its certificate; \
                     reading the kubeconfig (or in-cluster config) again in {}",
                    humantime::format_duration(pause)
                );
            }
            Err(e) => {
                eprintln!(
                    "virt-controller: {e:#}; trying again in {}",
                    humantime::format_duration(pause)
                );
                metrics.watches.failed(CONFIG_FAILURE, format!("{e:#}"));
            }
        }
        let mut stopping = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        pause = (pause * 2).min(RELOAD_PAUSE_MAX);
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(args.kubeconfig.as_deref()).await?;
    if !args.qps.is_finite() || args.qps < 0.0 {
        anyhow::bail!(
            "--qps must be 0 (no limit) or a positive number, not {}",
            args.qps
        );
    }
    let bounds = Bounds {
        unready_after: args.unready_after,
        unhealthy_after: args.unhealthy_after,
    };
    // The controllers share one rate-limited client. Leader election has its own client, so
    // that a burst of reconciles can never delay a renewal until the lease is lost.
    let lease_client = virt_reconciler::client_retry::client(config.clone())?;
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut elector = None;
    let leading = if args.leader_elect {
        let identity = args.identity.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| format!("virt-controller-{}", std::process::id()))
        });
        let kubeconfig = args.kubeconfig.clone();
        let reconnect: leader::Reconnect = Box::new(move || {
            let kubeconfig = kubeconfig.clone();
            Box::pin(async move {
                let config = load_config(kubeconfig.as_deref()).await?;
                Ok(virt_reconciler::client_retry::client(config)?)
            })
        });
        let e = leader::run(
            lease_client,
            leader::LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity,
                duration: Duration::from_secs(15),
                retry: Duration::from_secs(2),
            },
            reconnect,
        );
        let leading = e.leading.clone();
        elector = Some(e);
        leading
    } else {
        // Leading for good: the sender lives as long as the process, so `lost` never fires.
        let (always, rx) = tokio::sync::watch::channel(true);
        std::mem::forget(always);
        rx
    };
    let addr = serve_probes(args.metrics_addr, metrics.clone(), leading.clone(), bounds).await?;
    eprintln!("virt-controller serving /metrics, /healthz and /readyz on {addr}");
    let mut leading_rx = leading.clone();
    let mut stopping = stop_rx.clone();
    let controllers = async {
        // Standby until this replica leads; a leader that loses the lease exits, so that its
        // caches and expectations never act on a cluster another replica now drives.
        tokio::select! {
            _ = leading_rx.wait_for(|l| *l) => {}
            _ = stopping.wait_for(|s| *s) => return Ok(()),
        }
        metrics.leader.set(1);
        eprintln!("virt-controller: leading");
        let lost = {
            let mut rx = leading.clone();
            async move {
                let _ = rx.wait_for(|l| !*l).await;
            }
        };
        tokio::select! {
            _ = drive_controllers(config, &args, metrics.clone(), stop_rx) => Ok(()),
            _ = lost => Err(anyhow::anyhow!("lost the leader lease")),
        }
    };
    let mut controllers = Box::pin(controllers);
    let result = tokio::select! {
        r = &mut controllers => r,
        _ = shutdown_signal() => {
            let _ = stop_tx.send(true);
            // In-flight reconciles finish first (kube-runtime's graceful shutdown; it does not wait
            // for delayed retries, which the tests check). Whatever still runs after 10 s is
            // cancelled.
            if tokio::time::timeout(Duration::from_secs(10), &mut controllers).await.is_err() {
                eprintln!("virt-controller: reconciles still pending after 10 s; cancelling them");
            }
            Ok(())
        }
    };
    // Dropping the controllers cancels whatever still runs before the lease is handed over.
    drop(controllers);
    if let Some(elector) = elector {
        elector.release().await;
    }
    result
}

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "virt_reconciler=debug,virt_controller=debug,info",
        _ => "trace",
    };
    daemon_main::run_daemon("virt-controller", filter, async {
        match cli.command {
            Some(Command::Crds { out }) => write_crds(out),
            Some(Command::Run(args)) => run(args).await,
            None => run(cli.run).await,
        }
    });
}
