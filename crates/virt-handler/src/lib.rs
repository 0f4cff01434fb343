//! virt-handler: the node agent. It marks its Node as served, follows the VMIs scheduled to
//! it, drives each one's virt-launcher over the command socket (`sync`, `watch`, `shutdown`)
//! and writes the domain's state onto the VMI and its launcher Pod; its HTTP API pauses and
//! unpauses, and streams the console, VNC and forwarded ports over websockets; it publishes
//! the guest ports Services target (`docs/data-plane.md`). Embeddable ([`run_until`]) and a
//! binary (`main.rs`).
//!
//! Pure parts: [`stream_checks`], [`service_ports`], [`access_credentials`], the checks in
//! [`api`] and [`vmis`].

pub mod access_credentials;
pub mod api;
pub mod launcher;
pub mod node;
pub mod paths;
pub mod publisher;
pub mod service_ports;
pub mod stream_checks;
pub mod streams;
pub mod vmis;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use virt_reconciler::launcher_api::{DomainStatus, Protocol};

/// What a handler serves and where.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// The Node this handler serves.
    pub node_name: String,
    /// The node's root directory: launcher sockets are under
    /// `<host_root>/var/run/kubevirt/sockets/`.
    pub host_root: PathBuf,
    /// Where the HTTP API listens (port 0 picks one; the Node annotation has the real one).
    pub listen: SocketAddr,
}

/// A VMI this handler follows, as the HTTP API needs it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub uid: String,
    /// The domain's last reported state, once the launcher has answered.
    pub domain: Option<DomainStatus>,
    /// Its launcher Pod, as last read.
    pub pod: Option<Pod>,
    /// The guest ports published on the launcher (for Services) since its QEMU started.
    pub published: BTreeSet<(Protocol, u16)>,
}

impl Tracked {
    pub fn new(uid: String) -> Tracked {
        Tracked {
            uid,
            domain: None,
            pod: None,
            published: BTreeSet::new(),
        }
    }
}

/// What the VMI workers and the HTTP API share.
pub struct Shared {
    pub client: Client,
    pub config: HandlerConfig,
    /// By `(namespace, name)`.
    pub vmis: Mutex<HashMap<(String, String), Tracked>>,
    /// Woken when a domain or a launcher Pod changes: the publisher looks again.
    pub publish_wake: tokio::sync::Notify,
    /// The console connection of each VMI (one at a time).
    pub consoles: streams::Consoles,
}

impl Shared {
    fn tracked(&self, ns: &str, name: &str) -> Option<Tracked> {
        let vmis = self.vmis.lock().unwrap_or_else(|e| e.into_inner());
        vmis.get(&(ns.to_string(), name.to_string())).cloned()
    }

    fn record_domain(&self, ns: &str, name: &str, uid: &str, domain: &DomainStatus) {
        let mut vmis = self.vmis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = vmis.get_mut(&(ns.to_string(), name.to_string()))
            && t.uid == uid
        {
            // A new QEMU has none of the earlier forwards.
            if t.domain.as_ref().and_then(|d| d.qemu_pid) != domain.qemu_pid {
                t.published.clear();
            }
            t.domain = Some(domain.clone());
        }
        drop(vmis);
        self.publish_wake.notify_one();
    }

    fn record_pod(&self, ns: &str, name: &str, uid: &str, pod: &Pod) {
        let mut vmis = self.vmis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = vmis.get_mut(&(ns.to_string(), name.to_string()))
            && t.uid == uid
        {
            t.pod = Some(pod.clone());
        }
        drop(vmis);
        self.publish_wake.notify_one();
    }

    fn record_published(&self, key: &(String, String), uid: &str, port: (Protocol, u16)) {
        let mut vmis = self.vmis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = vmis.get_mut(key)
            && t.uid == uid
        {
            t.published.insert(port);
        }
    }
}

/// Runs the handler until `shutdown` resolves, then takes its label off the Node.
pub async fn run_until(
    client: Client,
    config: HandlerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    node::mark_served(&client, &config.node_name, &address.to_string()).await?;
    tracing::info!(node = %config.node_name, %address, "virt-handler serving");
    let shared = Arc::new(Shared {
        client: client.clone(),
        config: config.clone(),
        vmis: Mutex::new(HashMap::new()),
        publish_wake: tokio::sync::Notify::new(),
        consoles: streams::Consoles::default(),
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut http_stop = stop_rx.clone();
    // No Nagle delay: a console keystroke goes out at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    let server =
        axum::serve(listener, api::router(shared.clone())).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        });
    let server = tokio::spawn(async move { server.await });
    let follow = tokio::spawn(vmis::follow(shared.clone()));
    let publish = tokio::spawn(publisher::run(shared.clone()));
    tokio::select! {
        _ = shutdown => {}
        _ = stop_rx.wait_for(|s| *s) => {}
    }
    let _ = stop_tx.send(true);
    follow.abort();
    publish.abort();
    let _ = server.await;
    node::mark_unserved(&client, &config.node_name).await?;
    tracing::info!(node = %config.node_name, "virt-handler stopped");
    Ok(())
}

/// Runs the handler until SIGINT or SIGTERM.
pub async fn run(client: Client, config: HandlerConfig) -> anyhow::Result<()> {
    run_until(client, config, daemon_main::shutdown_signal()).await
}
