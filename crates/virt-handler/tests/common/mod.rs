//! What virt-handler's end-to-end tests share: localkube in this process with the KubeVirt
//! CRDs and one Node, and polling with a deadline.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;
use virt_reconciler::VirtualMachineInstance;

/// Polls `f` every 50 ms until it gives a value, for at most 30 s.
pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub struct Cluster {
    _server: localkube::Server,
    pub client: kube::Client,
}

/// localkube with the KubeVirt CRDs served and a Node named `node`.
pub async fn cluster(node: &str) -> Cluster {
    let server = localkube::LocalKube::builder()
        .start()
        .await
        .expect("localkube starts");
    let client = server.client().await.expect("a client of localkube");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": node}})).unwrap(),
        )
        .await
        .unwrap();
    // CRDs take a moment to serve.
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    eventually("the VMI CRD served", async || {
        vmis.list(&Default::default()).await.ok()
    })
    .await;
    Cluster {
        _server: server,
        client,
    }
}
