//! What virt-api's tests share: localkube in this process with the KubeVirt CRDs.

use std::path::Path;

use kube::api::{Api, PostParams};

/// localkube (writing its kubeconfig to `kubeconfig` when given) with the CRDs installed, and
/// a client of it.
pub async fn localkube_with_crds(kubeconfig: Option<&Path>) -> (localkube::Server, kube::Client) {
    let mut builder = localkube::LocalKube::builder();
    if let Some(path) = kubeconfig {
        builder = builder.kubeconfig_out(path);
    }
    let server = builder.start().await.expect("localkube starts");
    let client = server.client().await.unwrap();
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    (server, client)
}
