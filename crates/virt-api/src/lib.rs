//! virt-api: KubeVirt's `subresources.kubevirt.io` API (v1 and v1alpha3) as an aggregated API
//! server, and the VM/VMI admission webhooks.
//!
//! A request reaches it from the API server's front proxy over TLS. virt-api checks the
//! proxy's client certificate against the request-header CA the API server publishes
//! (`front_proxy`), asks the API server whether the named user may do what the path says
//! (`authorization`: a SubjectAccessReview, as KubeVirt's RBAC roles expect), then serves it:
//! start/stop/restart/pause/... through `virt_reconciler::execute`, the streams through the
//! VMI's virt-handler (`subresources`). Discovery, version, health and the webhooks
//! (`webhooks`) are open: the API server calls webhooks without a client certificate.

pub mod authorization;
pub mod client_cert;
pub mod discovery;
pub mod front_proxy;
pub mod loopback;
pub mod subresources;
pub mod tls;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use virt_reconciler::admission::Reviewer;

use crate::authorization::Access;
use crate::front_proxy::RequestHeaderAuth;
use crate::subresources::SubresourceState;
use crate::tls::PeerName;

/// What a virt-api server needs.
pub struct Config {
    /// virt-api's own identity towards the API server.
    pub client: Client,
    /// The serving certificate chain and its key, PEM.
    pub cert_pem: String,
    pub key_pem: String,
    /// The front proxy's settings; [`request_header_auth`] reads them from the API server.
    pub front_proxy: RequestHeaderAuth,
    /// The admission rules' settings.
    pub reviewer: Reviewer,
}

/// The front proxy's settings, as the API server publishes them.
pub async fn request_header_auth(client: &Client) -> anyhow::Result<RequestHeaderAuth> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), front_proxy::CONFIG_MAP_NAMESPACE);
    let map = maps.get(front_proxy::CONFIG_MAP_NAME).await.map_err(loopback::plain).with_context(|| {
        format!(
            "reading {}/{} (virt-api needs `get` on it: bind the Role extension-apiserver-authentication-reader)",
            front_proxy::CONFIG_MAP_NAMESPACE,
            front_proxy::CONFIG_MAP_NAME
        )
    })?;
    let data: BTreeMap<String, String> = map.data.unwrap_or_default();
    RequestHeaderAuth::from_config_map_data(&data).map_err(anyhow::Error::msg)
}

struct Gate {
    client: Client,
    front_proxy: RequestHeaderAuth,
}

/// A `metav1.Status` failure.
fn status(code: StatusCode, reason: &'static str, message: &str) -> Response {
    subresources::from_intent(virt_reconciler::intent::IntentError {
        code: code.as_u16(),
        reason,
        message: message.to_string(),
        details: None,
    })
}

/// Lets a request through only when its path is open, or its front-proxy identity is allowed
/// what it asks by the API server's authorizer.
async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let what = match authorization::access(request.method(), request.uri().path()) {
        Access::Open => return next.run(request).await,
        Access::Unknown => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        Access::Review(what) => what,
    };
    let peer = request
        .extensions()
        .get::<PeerName>()
        .and_then(|p| p.0.as_deref());
    let who = match front_proxy::identity(&gate.front_proxy, peer, request.headers()) {
        Ok(who) => who,
        Err(e) => return status(StatusCode::UNAUTHORIZED, "Unauthorized", &e.0),
    };
    match authorization::review(&gate.client, &who, &what).await {
        Ok(Ok(())) => next.run(request).await,
        Ok(Err(reason)) => status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &authorization::forbidden_message(&who, &what, &reason),
        ),
        Err(e) => {
            tracing::warn!("SubjectAccessReview failed: {e}");
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("Internal error occurred: reviewing access: {e}"),
            )
        }
    }
}

/// Every route, behind the gate.
pub fn app(config: &Config) -> Router {
    let gate_state = Arc::new(Gate {
        client: config.client.clone(),
        front_proxy: config.front_proxy.clone(),
    });
    subresources::router(Arc::new(SubresourceState {
        client: config.client.clone(),
    }))
    .merge(discovery::router())
    .merge(webhooks::router(Arc::new(config.reviewer.clone())))
    .layer(axum::middleware::from_fn_with_state(gate_state, gate))
}

/// A running virt-api. Dropping it stops it.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting and ends open connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves virt-api on `listener`.
pub fn start(listener: TcpListener, config: Config) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let tls = tls::server_config(
        &config.cert_pem,
        &config.key_pem,
        &config.front_proxy.client_ca_pem,
    )?;
    let app = app(&config);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(tls::accept_loop(listener, tls, app, stop_rx));
    Ok(Running { addr, stop, task })
}

/// A CA and a serving certificate it signed for `names` (DNS names or IP addresses), PEM:
/// `(ca, cert, key)`. For the playground and tests; a cluster's come from deploy/certs.sh.
pub fn self_signed(names: &[&str]) -> anyhow::Result<(String, String, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "virt-api-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "virt-api");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok((ca_pem, cert.pem(), key.serialize_pem()))
}
