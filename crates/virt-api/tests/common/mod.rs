//! What virt-api's tests share: localkube in this process with the KubeVirt CRDs, and the
//! seed's VM.

#![allow(dead_code)]

use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};

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

/// Creates the seed's VM (`examples/vm-cirros.yaml`, as written) in `default`.
pub async fn create_seed_vm(client: &kube::Client) {
    let text = std::fs::read_to_string(test_support::example_path("vm-cirros.yaml")).unwrap();
    let vm: DynamicObject = serde_saphyr::from_str(&text).unwrap();
    let resource = ApiResource {
        group: "kubevirt.io".into(),
        version: "v1alpha3".into(),
        api_version: "kubevirt.io/v1alpha3".into(),
        kind: "VirtualMachine".into(),
        plural: "virtualmachines".into(),
    };
    Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource)
        .create(&PostParams::default(), &vm)
        .await
        .unwrap();
}
