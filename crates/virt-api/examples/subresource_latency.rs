//! Benchmark: the latency of one subresource call (PUT `start`, then `stop`, on the seed's VM)
//! by the path it takes.
//!
//! - `in-process`: localkube with virt-api's routes mounted in its own process (the old
//!   playground path: no second TLS hop, no access review);
//! - `aggregated`: localkube in this process, virt-api on loopback behind its APIServices
//!   (client → localkube → front-proxy TLS → virt-api → SubjectAccessReview → executor);
//! - `aggregated+webhooks`: the same, and the VM's update calls virt-api's mutating and
//!   validating webhooks, as in the playground;
//! - `--kubeconfig PATH`: any API server that already serves the group (e.g. a real
//!   kube-apiserver with `virt-api --register-loopback` registered), with a VM `vm-cirros` in
//!   `default` that this creates if missing.
//!
//! Prints p50/p90/p99 in milliseconds over N calls after a warm-up.
//!
//!   cargo run --release -p virt-api --example subresource_latency -- in-process 2000
//!   cargo run --release -p virt-api --example subresource_latency -- aggregated 2000
//!   cargo run --release -p virt-api --example subresource_latency -- --kubeconfig K 2000

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, PostParams};

const VM_PATH: &str =
    "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros";

const SEED_VM: &str = r#"{
  "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
  "metadata": {"name": "vm-cirros", "namespace": "default"},
  "spec": {"running": false, "template": {"spec": {
    "domain": {"devices": {}, "resources": {"requests": {"memory": "64M"}}},
    "terminationGracePeriodSeconds": 0
  }}}
}"#;

async fn put(client: &kube::Client, action: &str) -> anyhow::Result<()> {
    let request = http::Request::put(format!("{VM_PATH}/{action}")).body(b"{}".to_vec())?;
    let response = client.send(request.map(Into::into)).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{action}: HTTP {}",
        response.status()
    );
    Ok(())
}

async fn ensure_vm(client: &kube::Client) -> anyhow::Result<()> {
    let resource = ApiResource {
        group: "kubevirt.io".into(),
        version: "v1".into(),
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachine".into(),
        plural: "virtualmachines".into(),
    };
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let vm: DynamicObject = serde_json::from_str(SEED_VM)?;
    match vms.create(&PostParams::default(), &vm).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    // A CRD serves a moment after it is created.
    for _ in 0..200 {
        if ensure_vm(client).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure_vm(client).await
}

fn mounted_group() -> localkube::MountedGroup {
    let resources = virt_api::discovery::resources();
    localkube::MountedGroup {
        group: virt_api::discovery::GROUP.into(),
        versions: virt_api::discovery::VERSIONS
            .iter()
            .map(|v| v.to_string())
            .collect(),
        resources: virt_api::discovery::VERSIONS
            .iter()
            .map(|v| (v.to_string(), resources.clone()))
            .collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(client: &kube::Client, calls: usize) -> anyhow::Result<Vec<Duration>> {
    for i in 0..100 {
        put(client, if i % 2 == 0 { "start" } else { "stop" }).await?;
    }
    let mut took = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        put(client, if i % 2 == 0 { "start" } else { "stop" }).await?;
        took.push(t.elapsed());
    }
    took.sort();
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: subresource_latency (in-process | aggregated | aggregated+webhooks | --kubeconfig PATH) [CALLS]";
    let (mode, rest) = args.split_first().ok_or_else(|| anyhow::anyhow!(usage))?;
    let (kubeconfig, rest) = if mode == "--kubeconfig" {
        let (path, rest) = rest.split_first().ok_or_else(|| anyhow::anyhow!(usage))?;
        (Some(path.clone()), rest)
    } else {
        (None, rest)
    };
    let calls: usize = rest.first().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let mut _keep = Vec::new();
    let client = match (mode.as_str(), kubeconfig) {
        (_, Some(path)) => {
            let kc = kube::config::Kubeconfig::read_from(&path)?;
            let client = kube::Client::try_from(
                kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
            )?;
            ensure_vm(&client).await?;
            client
        }
        ("in-process" | "aggregated" | "aggregated+webhooks", None) => {
            let mut builder = localkube::LocalKube::builder();
            let in_process = mode == "in-process";
            if in_process {
                // Mounted with the client filled in below, once the server is up.
                let cell = std::sync::Arc::new(tokio::sync::OnceCell::<kube::Client>::new());
                let lazy = cell.clone();
                let router =
                    axum::Router::new().fallback(move |request: axum::extract::Request| {
                        let lazy = lazy.clone();
                        async move {
                            use tower::ServiceExt;
                            let client = lazy.get().expect("client set").clone();
                            virt_api::subresources::router(std::sync::Arc::new(
                                virt_api::subresources::SubresourceState { client },
                            ))
                            .oneshot(request)
                            .await
                            .expect("infallible")
                        }
                    });
                builder = builder.mount_group(mounted_group(), router);
                let server = builder.start().await?;
                let client = server.client().await?;
                cell.set(client.clone()).ok();
                install_crds(&client).await?;
                _keep.push(Box::new(server) as Box<dyn std::any::Any>);
                client
            } else {
                let server = builder.start().await?;
                let client = server.client().await?;
                install_crds(&client).await?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let running = virt_api::loopback::serve(
                    &client,
                    listener,
                    virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
                    mode == "aggregated+webhooks",
                )
                .await?;
                _keep.push(Box::new(running) as Box<dyn std::any::Any>);
                _keep.push(Box::new(server) as Box<dyn std::any::Any>);
                client
            }
        }
        _ => anyhow::bail!(usage),
    };
    let took = measure(&client, calls).await?;
    println!(
        "{mode}: {calls} calls, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
        percentile(&took, 0.5),
        percentile(&took, 0.9),
        percentile(&took, 0.99)
    );
    Ok(())
}
