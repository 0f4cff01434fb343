//! Starting and stopping the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Core, WriteOptions};
use crate::durable::DataDir;
use crate::http::{AppState, router};
use crate::registry::MountedGroup;
use crate::store::Store;

/// Entry point: `LocalKube::builder()...start()`.
pub struct LocalKube;

impl LocalKube {
    pub fn builder() -> Builder {
        Builder::default()
    }
}

pub struct Builder {
    listen: SocketAddr,
    kubeconfig_out: Option<PathBuf>,
    watch_window: usize,
    bookmark_interval: Duration,
    service_cidr: (std::net::Ipv4Addr, u8),
    mounted: Vec<(MountedGroup, Router)>,
    data_dir: Option<PathBuf>,
    faults: Option<crate::faults::FaultPlan>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            listen: "127.0.0.1:0".parse().expect("static address"),
            kubeconfig_out: None,
            watch_window: 10_000,
            bookmark_interval: Duration::from_secs(60),
            service_cidr: ("10.96.0.0".parse().expect("static address"), 12),
            mounted: Vec::new(),
            data_dir: None,
            faults: None,
        }
    }
}

impl Builder {
    /// Address to listen on; port 0 picks a free port.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Where to write the kubeconfig (mode 0600).
    pub fn kubeconfig_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig_out = Some(path.into());
        self
    }

    /// Keeps all state in this directory (created if missing): objects, the version, and the
    /// server's CA, certificate and token, so that a restart keeps objects and kubeconfigs.
    /// Without it, state lives in memory and is gone when the server stops.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Injects faults into requests from the start (for tests; off by default). See
    /// [`crate::faults`]; [`Server::faults`] changes them while the server runs.
    pub fn faults(mut self, plan: crate::faults::FaultPlan) -> Self {
        self.faults = Some(plan);
        self
    }

    /// How many changes the watch history keeps; older resourceVersions get 410 Gone.
    pub fn watch_window(mut self, changes: usize) -> Self {
        self.watch_window = changes;
        self
    }

    /// How often watches that allow bookmarks get one.
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Mounts an extra API group, served by `router` for every path under
    /// `/apis/{group}/{version}/`, and listed in discovery, as the aggregation layer does.
    /// Requests reach it authenticated and unbuffered, with their upgrade (HTTP/1.1 `Upgrade`,
    /// HTTP/2 extended CONNECT) intact, so axum's `WebSocketUpgrade` works in it.
    pub fn mount_group(mut self, group: MountedGroup, router: Router) -> Self {
        self.mounted.push((group, router));
        self
    }

    pub async fn start(self) -> anyhow::Result<Server> {
        let data = match &self.data_dir {
            Some(dir) => Some(DataDir::open(dir)?),
            None => None,
        };
        let stored = match &data {
            Some(d) => Identity::read(d)?,
            None => None,
        };
        let listener = listen(self.listen, stored.as_ref().map(|i| i.address)).await?;
        let addr = listener.local_addr()?;
        let (pki, token) = match stored {
            Some(i) => (i.pki.for_address(addr.ip())?, i.token),
            None => (crate::tls::generate(addr.ip())?, random_token()),
        };
        let tls = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&pki)?);
        let mut kept_tokens = Vec::new();
        let store = match data {
            Some(d) => {
                Identity::write(&d, &pki, &token, addr)?;
                kept_tokens = d.tokens(chrono::Utc::now().timestamp()).with_context(|| {
                    format!(
                        "cannot read the ServiceAccount tokens in {}",
                        d.database().display()
                    )
                })?;
                Store::open(self.watch_window, d)?
            }
            None => Store::new(self.watch_window),
        };
        let core = Arc::new(Core::with_store(store, self.service_cidr));
        crate::crd::serve_stored(&core);
        bootstrap(&core)?;
        publish_authentication(&core, &pki)?;
        let mut mounted_routers = Vec::new();
        for (group, r) in self.mounted {
            mounted_routers.push((group.group.clone(), r));
            core.registry.mount(group);
        }
        let state = Arc::new(AppState {
            core: core.clone(),
            token: token.clone(),
            server_address: addr.to_string(),
            mounted: mounted_routers,
            bookmark_interval: self.bookmark_interval,
            front_proxy: pki.front_proxy.clone(),
            webhook_clients: Default::default(),
            sa_tokens: crate::sa_tokens::Tokens::restore(kept_tokens),
            policies: Default::default(),
        });
        let faults = Arc::new(crate::faults::FaultInjector::new(self.faults));
        let app = router(state).layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            crate::faults::inject,
        ));
        let url = format!("https://{addr}");
        let kubeconfig = crate::kubeconfig::render(&url, &pki.ca_pem, &token);
        if let Some(path) = &self.kubeconfig_out {
            crate::kubeconfig::write(path, &kubeconfig)
                .with_context(|| format!("cannot write the kubeconfig to {}", path.display()))?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let gc = tokio::spawn(crate::gc::run(core.clone()));
        let disruption = tokio::spawn(crate::disruption::run(core.clone()));
        let probes = crate::aggregation_proxy::spawn_probes(
            core.clone(),
            pki.front_proxy.clone(),
            stop_rx.clone(),
        );
        let accept = tokio::spawn(accept_loop(listener, tls, app, stop_rx));
        Ok(Server {
            addr,
            url,
            token,
            ca_pem: pki.ca_pem,
            front_proxy: pki.front_proxy,
            kubeconfig,
            kubeconfig_path: self.kubeconfig_out,
            core,
            faults,
            stop: stop_tx,
            tasks: vec![accept, gc, disruption, probes],
        })
    }
}

/// What a restart keeps besides the objects, so that kubeconfigs written before still work.
#[derive(serde::Serialize, serde::Deserialize)]
struct Identity {
    pki: crate::tls::Pki,
    token: String,
    address: SocketAddr,
}

impl Identity {
    fn read(data: &DataDir) -> anyhow::Result<Option<Identity>> {
        let Some(bytes) = data.meta("identity")? else {
            return Ok(None);
        };
        let identity = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the server identity stored in {} is not valid",
                data.path().display()
            )
        })?;
        Ok(Some(identity))
    }

    fn write(
        data: &DataDir,
        pki: &crate::tls::Pki,
        token: &str,
        address: SocketAddr,
    ) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(&json!({"pki": pki, "token": token, "address": address}))?;
        data.set_meta(&[("identity", &bytes)])?;
        Ok(())
    }
}

/// Binds the listener. With port 0 and the address of an earlier run at hand, that address
/// is tried first, so that kubeconfigs written then keep working.
async fn listen(wanted: SocketAddr, earlier: Option<SocketAddr>) -> anyhow::Result<TcpListener> {
    if wanted.port() == 0
        && let Some(earlier) = earlier.filter(|e| e.ip() == wanted.ip())
    {
        match TcpListener::bind(earlier).await {
            Ok(l) => return Ok(l),
            Err(e) => eprintln!(
                "localkube: the address of the last run, {earlier}, is not free ({e}): listening on another port, so kubeconfigs written before must be replaced"
            ),
        }
    }
    TcpListener::bind(wanted)
        .await
        .with_context(|| format!("cannot listen on {wanted}"))
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bootstrap(core: &Core) -> anyhow::Result<()> {
    let ns = core
        .registry
        .find("", "v1", "namespaces")
        .expect("namespaces are built in");
    let opts = WriteOptions {
        field_manager: Some("localkube".into()),
        ..Default::default()
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if core.store.get(&ns.store, "", name).is_some() {
            continue;
        }
        core.create(&ns, "", json!({"metadata": {"name": name}}), &opts)
            .map_err(|e| anyhow::anyhow!("bootstrapping namespace {name}: {e}"))?;
    }
    Ok(())
}

/// The `kube-system/extension-apiserver-authentication` ConfigMap, as kube-apiserver writes
/// it at start: the CAs and request headers that extension API servers trust.
fn publish_authentication(core: &Core, pki: &crate::tls::Pki) -> anyhow::Result<()> {
    let cm = core
        .registry
        .find("", "v1", "configmaps")
        .expect("configmaps are built in");
    let opts = WriteOptions {
        field_manager: Some("localkube".into()),
        ..Default::default()
    };
    let body = extension_apiserver_authentication(&pki.ca_pem, &pki.front_proxy.ca_pem);
    let name = "extension-apiserver-authentication";
    let result = match core.store.get(&cm.store, "kube-system", name) {
        None => core.create(&cm, "kube-system", body, &opts).map(drop),
        // A restart: the stored one is replaced only if it says something else.
        Some(stored) if stored.value()["data"] == body["data"] => Ok(()),
        Some(_) => core
            .update(&cm, "kube-system", name, body, &opts, false)
            .map(drop),
    };
    result.map_err(|e| anyhow::anyhow!("publishing {name}: {e}"))?;
    Ok(())
}

/// The ConfigMap's body. The list values are JSON arrays, as kube-apiserver writes them.
fn extension_apiserver_authentication(
    client_ca: &str,
    requestheader_ca: &str,
) -> serde_json::Value {
    let list = |items: &[&str]| serde_json::to_string(items).expect("strings serialize");
    json!({
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": client_ca,
            "requestheader-client-ca-file": requestheader_ca,
            "requestheader-allowed-names": list(&[crate::tls::FRONT_PROXY_CLIENT_CN]),
            "requestheader-username-headers": list(&["X-Remote-User"]),
            "requestheader-group-headers": list(&["X-Remote-Group"]),
            "requestheader-extra-headers-prefix": list(&["X-Remote-Extra-"]),
        },
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // HTTP/2 clients open websockets with extended CONNECT (RFC 8441); HTTP/1.1
            // upgrades pass through `serve_connection_with_upgrades`.
            builder.http2().enable_connect_protocol();
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// A running server. Dropping it stops it.
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    pub token: String,
    pub ca_pem: String,
    front_proxy: crate::tls::FrontProxy,
    kubeconfig: String,
    kubeconfig_path: Option<PathBuf>,
    core: Arc<Core>,
    faults: Arc<crate::faults::FaultInjector>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// The kubeconfig text (also written to the path given to the builder, if any).
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    pub fn kubeconfig_path(&self) -> Option<&std::path::Path> {
        self.kubeconfig_path.as_deref()
    }

    /// The front-proxy CA and client certificate, for proxying to extension API servers.
    pub fn front_proxy(&self) -> &crate::tls::FrontProxy {
        &self.front_proxy
    }

    /// The API semantics behind the HTTP server, for embedders and tests.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The injected faults (for tests): set or turn off a plan, count what was injected.
    pub fn faults(&self) -> &crate::faults::FaultInjector {
        &self.faults
    }

    /// Forgets the watch history, so that every watch must relist (as after an etcd compaction).
    pub fn compact(&self) {
        self.core.store.compact();
    }

    /// A kube-rs configuration for this server.
    pub async fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig)?;
        Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
    }

    /// A kube-rs client for this server.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config().await?)?)
    }

    /// Stops accepting connections, ends open ones, and writes what is pending to the data
    /// directory (then releases it).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        let core = self.core.clone();
        let _ = tokio::task::spawn_blocking(move || core.store.close()).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.core.store.close();
    }
}
