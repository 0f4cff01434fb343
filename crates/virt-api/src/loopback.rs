//! A virt-api outside the cluster, on the API server's machine (the playground, tests, and
//! `virt-api --register-loopback` against a development API server), registered as in-cluster
//! one would be: a Service `kubevirt/virt-api` of type ExternalName (localhost) names it, and the
//! APIServices `v1` and `v1alpha3` of `subresources.kubevirt.io` point the aggregation layer at
//! its port with its CA. Every subresource call then goes client → API server → front-proxy
//! TLS → virt-api → SubjectAccessReview → executor, the path a cluster takes.

use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use virt_reconciler::admission::Reviewer;

/// Where KubeVirt is installed on a cluster; the playground uses the same names.
pub const NAMESPACE: &str = "kubevirt";
pub const SERVICE: &str = "virt-api";

/// The APIServices of the API server of `client`.
pub fn api_services(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    };
    Api::all_with(client.clone(), &resource)
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// The certificate names a loopback virt-api serves under: the Service's, as the API server
/// verifies it, and loopback's.
pub fn serving_names() -> [String; 3] {
    [
        format!("{SERVICE}.{NAMESPACE}.svc"),
        "localhost".into(),
        "127.0.0.1".into(),
    ]
}

/// A Reviewer for a loopback virt-api whose API server has one identity, `user`, that every
/// component acts as: the VMI webhooks trust it as they trust KubeVirt's service accounts.
pub fn reviewer_trusting(user: &str) -> Reviewer {
    let mut reviewer = Reviewer::kubevirt(NAMESPACE);
    reviewer.trusted_users.insert(user.to_string());
    reviewer
}

/// Registers the virt-api listening on loopback `port` with a serving certificate signed by
/// `ca_pem`; returns once the API server reports both APIServices Available.
pub async fn register(client: &Client, port: u16, ca_pem: &str) -> anyhow::Result<()> {
    let pp = PostParams::default();
    ignore_exists(
        Api::<Namespace>::all(client.clone())
            .create(&pp, &from_json(json!({"metadata": {"name": NAMESPACE}}))?)
            .await,
    )
    .map_err(plain)
    .context("creating the kubevirt namespace")?;
    ignore_exists(
        Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .create(
                &pp,
                &from_json(json!({
                    "metadata": {"name": SERVICE},
                    "spec": {"type": "ExternalName", "externalName": "localhost"},
                }))?,
            )
            .await,
    )
    .map_err(plain)
    .context("creating the virt-api Service")?;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let names: Vec<String> = crate::discovery::VERSIONS
        .iter()
        .map(|v| format!("{v}.{}", crate::discovery::GROUP))
        .collect();
    for (name, version) in names.iter().zip(crate::discovery::VERSIONS) {
        let api_service = json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name},
            "spec": {
                "group": crate::discovery::GROUP,
                "version": version,
                "service": {"namespace": NAMESPACE, "name": SERVICE, "port": port},
                "caBundle": ca_bundle,
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
            },
        });
        let api = api_services(client);
        let obj: DynamicObject = from_json(api_service)?;
        // A new port and CA replace an earlier registration's.
        api.patch(
            name,
            &PatchParams::apply("virt-api").force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("registering the APIService {name}"))?;
    }
    wait_available(client, &names).await
}

/// Waits until every named APIService is Available (localkube probes a new one at once).
async fn wait_available(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    for name in names {
        loop {
            let obj = api_services(client).get(name).await?;
            let available = obj.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Available");
            if available.is_some_and(|c| c["status"] == "True") {
                break;
            }
            if Instant::now() > deadline {
                let why = available
                    .and_then(|c| c["message"].as_str())
                    .unwrap_or("no probe yet");
                anyhow::bail!("the APIService {name} did not become Available: {why}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Creating what already exists is fine: a registration may be repeated.
fn ignore_exists<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Serves virt-api on `listener` (a loopback address) with a fresh self-signed certificate,
/// and registers it with the API server of `client`: the APIServices, and with `webhooks` the
/// admission webhooks too.
pub async fn serve(
    client: &Client,
    listener: tokio::net::TcpListener,
    reviewer: Reviewer,
    webhooks: bool,
) -> anyhow::Result<crate::Running> {
    let names = serving_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (ca_pem, cert_pem, key_pem) = crate::self_signed(&names)?;
    let running = crate::start(
        listener,
        crate::Config {
            client: client.clone(),
            cert_pem,
            key_pem,
            front_proxy: crate::request_header_auth(client).await?,
            reviewer,
        },
    )?;
    register(client, running.addr.port(), &ca_pem).await?;
    if webhooks {
        register_webhooks(client, running.addr.port(), &ca_pem).await?;
    }
    Ok(running)
}

/// Sends VM and VMI writes of the API server of `client` to the virt-api listening on loopback
/// `port` (webhooks by `url`, as an API server outside the cluster reaches them).
pub async fn register_webhooks(client: &Client, port: u16, ca_pem: &str) -> anyhow::Result<()> {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let client_config = |path: &str| json!({"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_bundle});
    for configuration in crate::webhooks::configurations(&client_config) {
        let kind = configuration["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let resource = ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind: kind.clone(),
        };
        let obj: DynamicObject = from_json(configuration)?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        Api::<DynamicObject>::all_with(client.clone(), &resource)
            .patch(
                &name,
                &PatchParams::apply("virt-api").force(),
                &Patch::Apply(&obj),
            )
            .await
            .map_err(plain)
            .with_context(|| format!("registering the {kind} {name}"))?;
    }
    Ok(())
}

/// The API server's message, not the client's debug dump.
pub(crate) fn plain(e: kube::Error) -> anyhow::Error {
    anyhow::anyhow!(virt_reconciler::kube_error::message(&e))
}
