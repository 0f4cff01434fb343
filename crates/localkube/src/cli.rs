//! The command-line flags of a localkube server and its simulated node, defined once: the
//! `localkube` binary and the playground flatten them into their own command lines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cli_duration::parse_duration;

use crate::faults::FaultPlan;
use crate::node::NodeConfig;
use crate::server::Builder;

/// Where the API server listens, where its kubeconfig goes, and its simulated node.
///
/// The kubeconfig's default is `localkube.kubeconfig`; a program with another default sets it
/// with `#[command(mut_arg("kubeconfig_out", |a| a.default_value("...")))]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Keep all state in this directory (created if missing), so that a restart keeps every
    /// object, the CA, the certificate, the token and (when free) the port: kubeconfigs written
    /// before keep working. Each write is on disk before it is answered. One server at a time
    /// may use a directory. Without it, state lives in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where to write the kubeconfig (mode 0600).
    #[arg(long, default_value = "localkube.kubeconfig", value_name = "PATH")]
    pub kubeconfig_out: PathBuf,

    /// For testing clients by hand: this fraction of requests (0 to 1) gets an injected fault
    /// (500, 409, 429, a 504 after a hang, a dropped watch; see `localkube::faults`). Hidden
    /// from --help: nobody should meet it by accident.
    #[arg(long, hide = true, value_name = "RATE", value_parser = FaultPlan::parse_rate)]
    pub inject_faults: Option<f64>,

    #[command(flatten)]
    pub node: NodeArgs,
}

impl ServerArgs {
    /// A server builder with these flags, or why they cannot be honoured.
    pub fn builder(&self) -> anyhow::Result<Builder> {
        let mut builder = crate::LocalKube::builder()
            .listen(self.listen)
            .kubeconfig_out(&self.kubeconfig_out);
        if let Some(dir) = &self.data_dir {
            builder = builder.data_dir(dir);
        }
        if let Some(rate) = self.inject_faults.filter(|r| *r > 0.0) {
            eprintln!(
                "localkube: injecting faults into {:.1}% of the requests (--inject-faults)",
                rate * 100.0
            );
            builder = builder.faults(FaultPlan::mixed(rate));
        }
        Ok(builder)
    }
}

impl ServerArgs {
    /// The embedded node: its root defaults to `<data dir>/nodes/<node>` with a data dir.
    pub fn node_config(&self) -> NodeConfig {
        let mut cfg = self.node.config();
        if cfg.node_root.is_none()
            && let Some(dir) = &self.data_dir
        {
            cfg.node_root = Some(dir.join("nodes").join(&cfg.name));
        }
        cfg
    }
}

/// The node's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// How long a pod takes to start running once bound, e.g. 0, 500ms, 2s.
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    pub node_start_delay: Duration,

    /// The longest a pod stays Terminating; its grace period is used when shorter.
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    pub node_shutdown_time: Duration,

    /// The simulated node's name.
    #[arg(long, default_value = "localkube-node", value_name = "NAME")]
    pub node_name: String,

    /// Run pods whose images are all mapped as host processes: IMAGE (its tag and registry
    /// optional) runs PATH; a container's command runs the file of that name beside PATH.
    /// Repeatable.
    #[arg(long = "image", value_name = "IMAGE=PATH", value_parser = parse_image)]
    pub images: Vec<(String, PathBuf)>,

    /// The node's root directory, where hostPath volumes and pod directories live
    /// (default: a temporary directory, removed at exit).
    #[arg(long, value_name = "DIR")]
    pub node_root: Option<PathBuf>,
}

/// `IMAGE=PATH`.
fn parse_image(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((image, path)) if !image.is_empty() && !path.is_empty() => {
            Ok((image.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected IMAGE=PATH, got {s:?}")),
    }
}

impl NodeArgs {
    /// The node these flags describe.
    pub fn config(&self) -> NodeConfig {
        NodeConfig {
            name: self.node_name.clone(),
            start_delay: self.node_start_delay,
            shutdown_time: self.node_shutdown_time,
            images: self.images.clone(),
            node_root: self.node_root.clone(),
        }
    }
}
