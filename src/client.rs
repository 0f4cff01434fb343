//! Builds the API client and the namespace from the global flags, the way kubectl does
//! (Part B §5): an explicit `--kubeconfig`, else the files in `KUBECONFIG` (merged), else
//! `~/.kube/config`, else the in-cluster service account; `--context`, `--cluster` and
//! `--user` pick the entries; the connection flags override what those entries say. The client
//! sends a request again only as `crate::retry` says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use kube::config::{
    AuthInfo, Cluster, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// The connection flags, resolved from the command line.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub certificate_authority: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub insecure_skip_tls_verify: Option<bool>,
    pub tls_server_name: Option<String>,
    pub request_timeout: Option<Duration>,
    pub impersonate: Option<String>,
    pub impersonate_groups: Vec<String>,
    pub impersonate_uid: Option<String>,
    /// Basic authentication.
    pub username: Option<String>,
    pub password: Option<String>,
    pub proxy_url: Option<String>,
    pub disable_compression: Option<bool>,
}

/// What a command needs to talk to the cluster.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

/// At most this long for the TCP connection and the TLS handshake together, as kubectl's
/// TLS handshake timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The in-cluster namespace file of the service account.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The client configuration and the namespace, without connecting.
pub async fn config(opts: &ConnectOptions) -> anyhow::Result<(kube::Config, String)> {
    let (mut config, context_namespace, in_cluster) = match load_kubeconfig(opts)? {
        Some(kc) => {
            let context_ns = context_namespace(&kc, opts);
            let kc = apply_overrides(kc, opts)?;
            let selection = KubeConfigOptions {
                context: opts.context.clone(),
                cluster: opts.cluster.clone(),
                user: opts.user.clone(),
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &selection)
                .await
                .map_err(|e| anyhow!("invalid configuration: {}", error_chain(&e)))?;
            (config, context_ns, false)
        }
        None => {
            let mut config = kube::Config::incluster().map_err(|e| {
                anyhow!(
                    "invalid configuration: no configuration has been provided: no kubeconfig \
                     was found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and this is not a \
                     pod in a cluster ({}); set --kubeconfig or --server",
                    error_chain(&e)
                )
            })?;
            apply_incluster_overrides(&mut config, opts)?;
            (config, None, true)
        }
    };
    check_bearer_token(&config.auth_info)?;
    // The connect timeout also bounds the TLS handshake (kube wraps the TLS connector in it),
    // which a frozen server, whose kernel still accepts the TCP connection, never finishes.
    config.connect_timeout = Some(
        opts.request_timeout
            .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)),
    );
    if let Some(t) = opts.request_timeout {
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
    }
    // kube resends any request on a 429, 503 or 504, a PUT to `start` that may have run
    // included: `connect` puts virtctl's own policy (crate::retry) in its place.
    config.default_retry = false;
    let namespace = resolve_namespace(opts, context_namespace, in_cluster);
    crate::names::check_namespace(&namespace)?;
    config.default_namespace = namespace.clone();
    Ok((config, namespace))
}

/// kube panics on a bearer token that cannot be an HTTP header value: refuse it first. The
/// token is a secret that only serialization shows.
fn check_bearer_token(auth_info: &AuthInfo) -> anyhow::Result<()> {
    let fields = serde_json::to_value(auth_info).unwrap_or_default();
    if let Some(token) = fields.get("token").and_then(|t| t.as_str())
        && http::HeaderValue::from_str(&format!("Bearer {token}")).is_err()
    {
        anyhow::bail!(
            "invalid bearer token (from --token or the kubeconfig): it must be printable ASCII \
             on one line"
        );
    }
    Ok(())
}

/// The client and the namespace.
pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<Connection> {
    let (config, namespace) = config(opts).await?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow!("cannot create the API client: {}", error_chain(&e)))?;
    Ok(Connection {
        client: virt_reconciler::client_retry::with_policy(client, crate::retry::next_try),
        namespace,
        server,
    })
}

/// The one connection of a run, built when first asked for: a command that needs none never
/// reads the kubeconfig, and the version-skew check after a failure reuses the command's.
pub struct LazyConnection {
    options: ConnectOptions,
    /// The outcome of the one attempt; an error is kept as its message.
    built: tokio::sync::OnceCell<Result<Connection, String>>,
}

impl LazyConnection {
    pub fn new(options: ConnectOptions) -> LazyConnection {
        LazyConnection {
            options,
            built: tokio::sync::OnceCell::new(),
        }
    }

    /// The connection, built on the first call; later calls give the same one (or error).
    pub async fn get(&self) -> anyhow::Result<&Connection> {
        let built = self
            .built
            .get_or_init(|| async { connect(&self.options).await.map_err(|e| format!("{e:#}")) })
            .await;
        built.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// The connection if a command has built one, without building it.
    pub fn built(&self) -> Option<&Connection> {
        self.built.get().and_then(|b| b.as_ref().ok())
    }
}

/// Part B §5's order: `--namespace`, the context's namespace, in a pod `POD_NAMESPACE` or the
/// service account's namespace, then `default`.
fn resolve_namespace(
    opts: &ConnectOptions,
    context_namespace: Option<String>,
    in_cluster: bool,
) -> String {
    if let Some(ns) = opts.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        return ns.to_string();
    }
    if let Some(ns) = context_namespace.filter(|ns| !ns.is_empty()) {
        return ns;
    }
    if in_cluster {
        if let Some(ns) = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty())
        {
            return ns;
        }
        if let Ok(ns) = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE) {
            let ns = ns.trim();
            if !ns.is_empty() {
                return ns.to_string();
            }
        }
    }
    "default".to_string()
}

/// Loads the kubeconfig, or returns `None` when there is none (then the in-cluster config is
/// tried). With `--server` and no file at all, a one-cluster kubeconfig is made up.
fn load_kubeconfig(opts: &ConnectOptions) -> anyhow::Result<Option<Kubeconfig>> {
    let loaded = if let Some(path) = &opts.kubeconfig {
        Some(read(path)?)
    } else if let Some(paths) = std::env::var_os("KUBECONFIG") {
        // As client-go does: every listed file that exists, merged; the first to set a value wins.
        let mut merged: Option<Kubeconfig> = None;
        for path in std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
            if !path.exists() {
                continue;
            }
            let next = read(&path)?;
            merged = Some(match merged {
                None => next,
                Some(m) => m
                    .merge(next)
                    .with_context(|| format!("cannot merge kubeconfig {}", path.display()))?,
            });
        }
        merged
    } else {
        match home_kubeconfig() {
            Some(path) if path.exists() => Some(read(&path)?),
            _ => None,
        }
    };
    match loaded {
        Some(kc) => Ok(Some(kc)),
        None if opts.server.is_some() => Ok(Some(Kubeconfig::default())),
        None => Ok(None),
    }
}

fn read(path: &Path) -> anyhow::Result<Kubeconfig> {
    if let Err(e) = std::fs::metadata(path) {
        anyhow::bail!("cannot load kubeconfig {}: {e}", path.display());
    }
    Kubeconfig::read_from(path).map_err(|e| {
        let why = match &e {
            kube::config::KubeconfigError::Parse(yaml) => {
                format!("failed to parse kubeconfig YAML: {}", yaml_problem(yaml))
            }
            other => error_chain(other),
        };
        anyhow!("cannot load kubeconfig {}: {why}", path.display())
    })
}

/// One line about what is wrong with a kubeconfig's YAML: the parser's message without the
/// source snippet it adds below, and its limits in words.
fn yaml_problem(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let at = inner
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
        .unwrap_or_default();
    match inner {
        E::Budget {
            breach: B::Depth { .. },
            ..
        } => format!("it nests too deeply{at}"),
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "it is too large once its aliases are expanded".to_string()
        }
        _ => inner
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".kube").join("config"))
}

/// The name of the context in use: `--context`, else `current-context`.
fn context_name(kc: &Kubeconfig, opts: &ConnectOptions) -> Option<String> {
    opts.context
        .clone()
        .or_else(|| kc.current_context.clone())
        .filter(|c| !c.is_empty())
}

fn context_namespace(kc: &Kubeconfig, opts: &ConnectOptions) -> Option<String> {
    let name = context_name(kc, opts)?;
    kc.contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

/// Writes the connection flags into the cluster and user entries that will be used, creating
/// them when needed (so `--server` and `--token` work without any kubeconfig).
fn apply_overrides(mut kc: Kubeconfig, opts: &ConnectOptions) -> anyhow::Result<Kubeconfig> {
    let ctx_name = context_name(&kc, opts);
    let ctx = ctx_name
        .as_ref()
        .and_then(|n| kc.contexts.iter().find(|c| &c.name == n))
        .and_then(|c| c.context.clone());
    if let Some(name) = &ctx_name
        && ctx.is_none()
    {
        anyhow::bail!("invalid configuration: context \"{name}\" does not exist");
    }
    let cluster_name = opts
        .cluster
        .clone()
        .or_else(|| ctx.as_ref().map(|c| c.cluster.clone()))
        .unwrap_or_else(|| "virtctl-cluster".to_string());
    let user_name = opts
        .user
        .clone()
        .or_else(|| ctx.as_ref().and_then(|c| c.user.clone()))
        .unwrap_or_else(|| "virtctl-user".to_string());
    if ctx.is_none() {
        // No usable context: make one from the selected (or made-up) cluster and user.
        let name = ctx_name.unwrap_or_else(|| "virtctl".to_string());
        if !kc.contexts.iter().any(|c| c.name == name) {
            kc.contexts.push(NamedContext {
                name: name.clone(),
                context: Some(kube::config::Context {
                    cluster: cluster_name.clone(),
                    user: Some(user_name.clone()),
                    ..Default::default()
                }),
                other: Default::default(),
            });
        }
        if opts.context.is_none() {
            kc.current_context = Some(name);
        }
    }

    let cluster_override = opts.server.is_some()
        || opts.certificate_authority.is_some()
        || opts.insecure_skip_tls_verify.is_some()
        || opts.tls_server_name.is_some()
        || opts.proxy_url.is_some()
        || opts.disable_compression.is_some();
    if cluster_override {
        if !kc.clusters.iter().any(|c| c.name == cluster_name) {
            kc.clusters.push(NamedCluster {
                name: cluster_name.clone(),
                cluster: Some(Cluster::default()),
                ..Default::default()
            });
        }
        let entry = kc
            .clusters
            .iter_mut()
            .find(|c| c.name == cluster_name)
            .expect("just ensured");
        let cluster = entry.cluster.get_or_insert_with(Cluster::default);
        if let Some(server) = &opts.server {
            cluster.server = Some(
                server_url(server).map_err(|why| anyhow!("invalid --server {server:?}: {why}"))?,
            );
        }
        if let Some(ca) = &opts.certificate_authority {
            cluster.certificate_authority = Some(ca.display().to_string());
            cluster.certificate_authority_data = None;
        }
        if let Some(insecure) = opts.insecure_skip_tls_verify {
            cluster.insecure_skip_tls_verify = Some(insecure);
            if insecure {
                cluster.certificate_authority = None;
                cluster.certificate_authority_data = None;
            }
        }
        if let Some(name) = &opts.tls_server_name {
            cluster.tls_server_name = Some(name.clone());
        }
        if let Some(proxy) = &opts.proxy_url {
            cluster.proxy_url = Some(proxy.clone());
        }
        if let Some(disable) = opts.disable_compression {
            cluster.disable_compression = Some(disable);
        }
    }

    let user_override = opts.token.is_some()
        || opts.client_certificate.is_some()
        || opts.client_key.is_some()
        || opts.impersonate.is_some()
        || !opts.impersonate_groups.is_empty()
        || opts.impersonate_uid.is_some()
        || opts.username.is_some()
        || opts.password.is_some();
    if user_override || !kc.auth_infos.iter().any(|u| u.name == user_name) {
        if !kc.auth_infos.iter().any(|u| u.name == user_name) {
            kc.auth_infos.push(NamedAuthInfo {
                name: user_name.clone(),
                auth_info: Some(AuthInfo::default()),
                other: Default::default(),
            });
        }
        let entry = kc
            .auth_infos
            .iter_mut()
            .find(|u| u.name == user_name)
            .expect("just ensured");
        let user = entry.auth_info.get_or_insert_with(AuthInfo::default);
        if let Some(token) = &opts.token {
            user.token = Some(token.clone().into());
            user.token_file = None;
        }
        if let Some(cert) = &opts.client_certificate {
            user.client_certificate = Some(cert.display().to_string());
            user.client_certificate_data = None;
        }
        if let Some(key) = &opts.client_key {
            user.client_key = Some(key.display().to_string());
            user.client_key_data = None;
        }
        if let Some(who) = &opts.impersonate {
            user.impersonate = Some(who.clone());
        }
        if !opts.impersonate_groups.is_empty() {
            user.impersonate_groups = Some(opts.impersonate_groups.clone());
        }
        if let Some(uid) = &opts.impersonate_uid {
            user.impersonate_uid = Some(uid.clone());
        }
        apply_basic_auth(user, opts);
    }
    let mut server = kc
        .clusters
        .iter_mut()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_mut())
        .and_then(|c| c.server.as_mut());
    if let Some(server) = server.as_mut().filter(|s| !s.is_empty()) {
        let url = server_url(server).map_err(|why| {
            anyhow!(
                "invalid configuration: the server {server:?} of cluster \"{cluster_name}\" in \
                 the kubeconfig is not valid: {why}"
            )
        })?;
        **server = url;
    }
    if server.is_none_or(|s| s.is_empty()) {
        if kc.clusters.iter().any(|c| c.name == cluster_name) {
            anyhow::bail!("invalid configuration: no server found for cluster \"{cluster_name}\"");
        }
        if opts.cluster.is_some() || ctx.is_some() {
            anyhow::bail!("invalid configuration: cluster \"{cluster_name}\" does not exist");
        }
        anyhow::bail!(
            "invalid configuration: no configuration has been provided; set --kubeconfig or --server"
        );
    }
    Ok(kc)
}

/// `--username` / `--password` replace the entry's credentials, so that the flags, not a
/// token from the kubeconfig, authenticate the request.
fn apply_basic_auth(user: &mut AuthInfo, opts: &ConnectOptions) {
    if opts.username.is_none() && opts.password.is_none() {
        return;
    }
    if opts.token.is_none() {
        user.token = None;
        user.token_file = None;
    }
    if let Some(name) = &opts.username {
        user.username = Some(name.clone());
    }
    if let Some(password) = &opts.password {
        user.password = Some(password.clone().into());
    }
}

/// In a pod, the connection flags still apply to the service-account configuration.
fn apply_incluster_overrides(
    config: &mut kube::Config,
    opts: &ConnectOptions,
) -> anyhow::Result<()> {
    if let Some(server) = &opts.server {
        config.cluster_url = server_url(server)
            .and_then(|url| url.parse().map_err(|_| NOT_A_SERVER_URL.to_string()))
            .map_err(|why| anyhow!("invalid --server {server:?}: {why}"))?;
    }
    if let Some(insecure) = opts.insecure_skip_tls_verify {
        config.accept_invalid_certs = insecure;
    }
    if let Some(name) = &opts.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(token) = &opts.token {
        config.auth_info.token = Some(token.clone().into());
        config.auth_info.token_file = None;
    }
    if let Some(who) = &opts.impersonate {
        config.auth_info.impersonate = Some(who.clone());
    }
    if !opts.impersonate_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(opts.impersonate_groups.clone());
    }
    if let Some(uid) = &opts.impersonate_uid {
        config.auth_info.impersonate_uid = Some(uid.clone());
    }
    apply_basic_auth(&mut config.auth_info, opts);
    if let Some(proxy) = &opts.proxy_url {
        config.proxy_url = Some(
            proxy
                .parse()
                .with_context(|| format!("invalid --proxy-url {proxy:?}"))?,
        );
    }
    if let Some(disable) = opts.disable_compression {
        config.disable_compression = disable;
    }
    Ok(())
}

const NOT_A_SERVER_URL: &str = "it must be a URL such as https://host:6443, or host:port";

/// The API server's URL from `--server` or a kubeconfig: `host:port` gets `https://` as
/// kubectl gives it; anything that is not an http(s) URL with a host is refused.
pub fn server_url(raw: &str) -> Result<String, String> {
    let url = if raw.contains("://") {
        raw.to_string()
    } else {
        let authority = raw.split('/').next().unwrap_or_default();
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                format!("https://{raw}")
            }
            _ => return Err(NOT_A_SERVER_URL.to_string()),
        }
    };
    let uri: http::Uri = url.parse().map_err(|_| NOT_A_SERVER_URL.to_string())?;
    let scheme_ok = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !scheme_ok {
        return Err("the scheme must be http or https".to_string());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(NOT_A_SERVER_URL.to_string());
    }
    Ok(url)
}

/// hyper's proxy errors name neither the proxy nor what it did; say both.
pub fn explain_proxy_error(message: &str, proxy_url: Option<&str>) -> String {
    match proxy_url {
        Some(proxy) if message.contains("tunnel error") => format!(
            "{} (through the proxy {proxy})",
            message.replace(
                "tunnel error: unsuccessful",
                "tunnel error: the proxy refused to connect to the API server"
            )
        ),
        _ => message.to_string(),
    }
}

/// An error and its causes, joined with `: `, without repeating a cause that the previous
/// message already contains.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    virt_reconciler::kube_error::chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: a
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:1"}
- name: c2
  cluster: {server: "https://127.0.0.1:2"}
users:
- name: u1
  user: {token: t1}
contexts:
- name: a
  context: {cluster: c1, user: u1, namespace: ns-a}
- name: b
  context: {cluster: c2, user: u1}
"#;

    fn opts(dir: &Path) -> ConnectOptions {
        let path = dir.join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        ConnectOptions {
            kubeconfig: Some(path),
            ..Default::default()
        }
    }

    #[test]
    fn server_urls() {
        let ok = [
            ("https://10.0.0.1:6443", "https://10.0.0.1:6443"),
            ("http://127.0.0.1:1", "http://127.0.0.1:1"),
            ("127.0.0.1:6443", "https://127.0.0.1:6443"),
            ("localhost:6443/prefix", "https://localhost:6443/prefix"),
            ("[::1]:6443", "https://[::1]:6443"),
            ("https://kube.example", "https://kube.example"),
        ];
        for (raw, want) in ok {
            assert_eq!(server_url(raw).as_deref(), Ok(want), "{raw}");
        }
        for raw in [
            "not-a-url",
            "http://[::1",
            "https://",
            "::::",
            "",
            "127.0.0.1",
            "host:99999",
            ":6443",
            "ftp://host:21",
            "https://exa mple",
        ] {
            assert!(server_url(raw).is_err(), "{raw}");
        }
    }

    #[tokio::test]
    async fn namespace_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        assert_eq!(config(&o).await.unwrap().1, "ns-a");
        o.context = Some("b".into());
        let (cfg, ns) = config(&o).await.unwrap();
        assert_eq!(ns, "default");
        assert_eq!(cfg.cluster_url.to_string(), "https://127.0.0.1:2/");
        o.namespace = Some("explicit".into());
        assert_eq!(config(&o).await.unwrap().1, "explicit");
    }

    #[tokio::test]
    async fn server_and_token_override() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.server = Some("https://10.0.0.1:6443".into());
        o.token = Some("secret".into());
        o.cluster = Some("c2".into());
        let (cfg, _) = config(&o).await.unwrap();
        assert_eq!(cfg.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert!(cfg.auth_info.token.is_some());
    }

    #[tokio::test]
    async fn proxy_compression_uid_and_basic_auth_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        let (cfg, _) = config(&o).await.unwrap();
        assert_eq!(cfg.proxy_url, None);
        assert!(!cfg.disable_compression);
        o.proxy_url = Some("http://proxy.example:3128".into());
        o.disable_compression = Some(true);
        o.impersonate_uid = Some("1234".into());
        o.username = Some("admin".into());
        o.password = Some("pw".into());
        let (cfg, _) = config(&o).await.unwrap();
        assert_eq!(
            cfg.proxy_url.map(|u| u.to_string()).as_deref(),
            Some("http://proxy.example:3128/")
        );
        assert!(cfg.disable_compression);
        assert_eq!(cfg.auth_info.impersonate_uid.as_deref(), Some("1234"));
        assert_eq!(cfg.auth_info.username.as_deref(), Some("admin"));
        // The kubeconfig's token gives way to the basic-auth flags.
        assert!(cfg.auth_info.token.is_none());
    }

    #[tokio::test]
    async fn server_without_any_kubeconfig() {
        let o = ConnectOptions {
            kubeconfig: None,
            server: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        // Only meaningful when no KUBECONFIG/home config is around; then it must work.
        if std::env::var_os("KUBECONFIG").is_none()
            && !home_kubeconfig().is_some_and(|p| p.exists())
        {
            let (cfg, ns) = config(&o).await.unwrap();
            assert_eq!(cfg.cluster_url.to_string(), "http://127.0.0.1:9/");
            assert_eq!(ns, "default");
        }
    }
}
