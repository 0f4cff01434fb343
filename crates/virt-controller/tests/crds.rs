//! The committed CRDs match the Rust types, and an API server accepts them with the seed's VM.

use std::path::Path;

use http::Request;
use serde_json::Value;

fn deploy_crds() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

#[test]
fn committed_crds_are_up_to_date() {
    for (file, crd) in virt_reconciler::crds::all() {
        let path = deploy_crds().join(file);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == virt_reconciler::crds::to_yaml(&crd),
            "{} is stale: run `cargo run -p virt-controller -- crds --out deploy/crds`",
            path.display()
        );
    }
}

fn seed_vm() -> String {
    test_support::example("vm-cirros.yaml")
}

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value, kube::Error> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client
        .request_text(req)
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
}

#[tokio::test]
async fn localkube_serves_the_crds_and_accepts_the_seed_vm() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    for (_, crd) in virt_reconciler::crds::all() {
        send(
            &client,
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            serde_json::to_value(&crd).unwrap(),
        )
        .await
        .unwrap();
    }
    // The seed's VM is v1alpha3 with running: false, and is accepted as written.
    let seed: Value = serde_saphyr::from_str(&seed_vm()).unwrap();
    let made = send(
        &client,
        "POST",
        "/apis/kubevirt.io/v1alpha3/namespaces/default/virtualmachines",
        seed.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        made["spec"]["template"]["spec"],
        seed["spec"]["template"]["spec"]
    );
    let v1 = send(
        &client,
        "GET",
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(v1["apiVersion"], "kubevirt.io/v1");
    // It reads back into the typed VirtualMachine without losing fields.
    let vm: virt_reconciler::VirtualMachine = serde_json::from_value(v1.clone()).unwrap();
    assert_eq!(vm.spec.running, Some(false));
    assert_eq!(serde_json::to_value(&vm.spec).unwrap(), v1["spec"]);
    // running together with runStrategy: virt-api's webhook refuses it, and servers that
    // evaluate CEL refuse it by the CRD's rule; localkube has neither here, and the CRD has no
    // structural rule that would answer before the webhook (Part A §3), so it is stored.
    let mut both = seed.clone();
    both["metadata"]["name"] = "both".into();
    both["spec"]["runStrategy"] = "Always".into();
    send(
        &client,
        "POST",
        "/apis/kubevirt.io/v1alpha3/namespaces/default/virtualmachines",
        both,
    )
    .await
    .expect("the schema alone accepts running with runStrategy");
    // An unknown run strategy is refused by the schema.
    let mut bad = seed;
    bad["metadata"]["name"] = "bad".into();
    bad["spec"].as_object_mut().unwrap().remove("running");
    bad["spec"]["runStrategy"] = "Sometimes".into();
    match send(
        &client,
        "POST",
        "/apis/kubevirt.io/v1alpha3/namespaces/default/virtualmachines",
        bad,
    )
    .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message.contains("Unsupported value: \"Sometimes\""),
                "{}",
                e.message
            );
        }
        other => panic!("an unknown run strategy should be refused: {other:?}"),
    }
}
