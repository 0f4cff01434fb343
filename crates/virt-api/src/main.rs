//! `virt-api`: serves `subresources.kubevirt.io` as an aggregated API server, and the VM/VMI
//! admission webhooks, over HTTPS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use virt_reconciler::admission::Reviewer;

/// KubeVirt's virt-api: the subresource API (start, stop, restart, pause, console, vnc,
/// port-forward, ...) behind the API server's aggregation layer, and the VM and VMI admission
/// webhooks. It authenticates the API server's front proxy with the request-header CA from
/// kube-system/extension-apiserver-authentication, and asks the API server (a
/// SubjectAccessReview) whether the user may do what each request asks.
///
/// Examples:
///   virt-api --tls-cert-file /etc/virt-api/certificates/tls.crt \
///            --tls-private-key-file /etc/virt-api/certificates/tls.key
///   virt-api --kubeconfig ~/.kube/config --bind-address 127.0.0.1 --port 8443 \
///            --tls-cert-file tls.crt --tls-private-key-file tls.key
#[derive(Parser, Debug)]
#[command(name = "virt-api", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// The kubeconfig to act with; in a Pod, its service account when not given.
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    kubeconfig: Option<PathBuf>,

    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    bind_address: IpAddr,

    /// The HTTPS port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8443)]
    port: u16,

    /// The serving certificate (PEM; the chain, leaf first).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "register_loopback"
    )]
    tls_cert_file: Option<PathBuf>,

    /// The serving certificate's private key (PEM).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "register_loopback"
    )]
    tls_private_key_file: Option<PathBuf>,

    /// For an API server on this machine (development): serve on loopback with a fresh
    /// self-signed certificate, and register this virt-api with the API server: the namespace
    /// kubevirt, a Service kubevirt/virt-api of type ExternalName (localhost), the APIServices
    /// of subresources.kubevirt.io with this certificate's CA, and the webhook configurations
    /// virt-api-mutator and virt-api-validator by URL.
    #[arg(long, conflicts_with_all = ["tls_cert_file", "tls_private_key_file"])]
    register_loopback: bool,

    /// The namespace KubeVirt is installed in: its service accounts there may change a VMI's
    /// spec and status.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubevirt")]
    namespace: String,

    /// Another user trusted like KubeVirt's service accounts by the VMI webhooks (repeatable).
    #[arg(long = "trusted-user", value_name = "USER")]
    trusted_users: Vec<String>,

    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no in-cluster service account")?,
    };
    // Not kube's retry, which resends a write that timed out after it ran.
    Ok(virt_reconciler::client_retry::client(config)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = client(cli.kubeconfig.as_ref()).await?;
    let mut reviewer = Reviewer::kubevirt(&cli.namespace);
    reviewer.trusted_users.extend(cli.trusted_users);
    let addr = SocketAddr::new(cli.bind_address, cli.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let running = match (&cli.tls_cert_file, &cli.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let front_proxy = virt_api::request_header_auth(&client).await?;
            virt_api::start(
                listener,
                virt_api::Config {
                    client,
                    cert_pem: read(cert)?,
                    key_pem: read(key)?,
                    front_proxy,
                    reviewer,
                },
            )?
        }
        _ => {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "--register-loopback serves on loopback: give --bind-address 127.0.0.1"
            );
            virt_api::loopback::serve(&client, listener, reviewer, true).await?
        }
    };
    println!("virt-api serving on https://{}", running.addr);
    daemon_main::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn,virt_api=info",
        1 => "virt_api=debug,virt_reconciler=debug,info",
        _ => "trace",
    };
    daemon_main::run_daemon("virt-api", filter, run(cli));
}
