//! The playground end to end: the real `virt-playground` binary, driven over HTTP with
//! kube-rs, through the seed's VM lifecycle.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use http::Request;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use test_support::Playground;
use virt_reconciler::{VirtualMachine, VirtualMachineInstance, firmware};

fn start() -> Playground {
    Playground::start(
        Path::new(env!("CARGO_BIN_EXE_virt-playground")),
        Stdio::inherit(),
    )
}

async fn client(p: &Playground) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&p.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn seed_vm() -> Value {
    serde_saphyr::from_str(&test_support::example("vm-cirros.yaml")).unwrap()
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn printable(vms: &Api<VirtualMachine>, name: &str) -> String {
    vms.get(name)
        .await
        .ok()
        .and_then(|v| v.status)
        .and_then(|s| s.printable_status)
        .unwrap_or_default()
}

async fn subresource(
    client: &kube::Client,
    vm: &str,
    action: &str,
    body: Value,
) -> Result<(), kube::Error> {
    let req = Request::put(format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/{vm}/{action}"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&body).unwrap())
    .unwrap();
    client.request_text(req).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_vm_starts_restarts_stops_and_cascades() {
    let p = start();
    let client = client(&p).await;
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), "default");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "kubevirt.io",
            "v1alpha3",
            "VirtualMachine",
        )),
    );
    raw.create(
        &PostParams::default(),
        &serde_json::from_value(seed_vm()).unwrap(),
    )
    .await
    .unwrap();
    eventually("Stopped", async || {
        (printable(&vms, "vm-cirros").await == "Stopped").then_some(())
    })
    .await;
    assert!(vmis.get_opt("vm-cirros").await.unwrap().is_none());
    // The firmware UUID is the name-based one (Part A §3).
    let vm = vms.get("vm-cirros").await.unwrap();
    assert_eq!(
        firmware::template_uuid(&vm),
        Some("0d2a2043-41c0-59c3-9b17-025022203668")
    );

    // Start through the subresource API: Stopped → Starting → Running.
    subresource(&client, "vm-cirros", "start", json!({}))
        .await
        .unwrap();
    let vm = eventually("Running", async || {
        let vm = vms.get("vm-cirros").await.ok()?;
        let s = vm.status.clone()?;
        (s.printable_status.as_deref() == Some("Running") && s.ready && s.created).then_some(vm)
    })
    .await;
    assert_eq!(vm.spec.running, Some(true));
    let first = vmis.get("vm-cirros").await.unwrap();
    let first_uid = first.metadata.uid.clone().unwrap();
    assert_eq!(first.phase(), "Running");

    // A second start is refused with KubeVirt's message.
    let again = subresource(&client, "vm-cirros", "start", json!({})).await;
    match again {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert_eq!(
                e.message,
                "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm-cirros\": VM is already running"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Force restart: a new VMI uid, Running again, and the queue drains.
    subresource(
        &client,
        "vm-cirros",
        "restart",
        json!({"gracePeriodSeconds": 0}),
    )
    .await
    .unwrap();
    eventually("a new VMI running", async || {
        let v = vmis.get_opt("vm-cirros").await.ok()??;
        (v.metadata.uid.as_deref() != Some(first_uid.as_str()) && v.phase() == "Running")
            .then_some(())
    })
    .await;
    eventually("Running with an empty queue", async || {
        let s = vms.get("vm-cirros").await.ok()?.status?;
        (s.printable_status.as_deref() == Some("Running") && s.state_change_requests.is_empty())
            .then_some(())
    })
    .await;

    // Stop: running false, the VMI goes, Stopped.
    vms.patch(
        "vm-cirros",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"running": false}})),
    )
    .await
    .unwrap();
    eventually("Stopped again", async || {
        let s = vms.get("vm-cirros").await.ok()?.status?;
        (s.printable_status.as_deref() == Some("Stopped") && !s.created).then_some(())
    })
    .await;
    assert!(vmis.get_opt("vm-cirros").await.unwrap().is_none());

    // Deleting a running VM deletes its VMI first, then the VM goes.
    vms.patch(
        "vm-cirros",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"running": true}})),
    )
    .await
    .unwrap();
    eventually("running for the cascade", async || {
        (vmis.get_opt("vm-cirros").await.ok()??.phase() == "Running").then_some(())
    })
    .await;
    vms.delete("vm-cirros", &DeleteParams::default())
        .await
        .unwrap();
    eventually("VM and VMI gone", async || {
        (vms.get_opt("vm-cirros").await.ok()?.is_none()
            && vmis.get_opt("vm-cirros").await.ok()?.is_none())
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphaned_vmis_survive_and_are_adopted_again() {
    let p = start();
    let client = client(&p).await;
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), "default");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let mut seed = seed_vm();
    seed["apiVersion"] = json!("kubevirt.io/v1");
    seed["spec"]["running"] = json!(true);
    let vm: VirtualMachine = serde_json::from_value(seed.clone()).unwrap();
    vms.create(&PostParams::default(), &vm).await.unwrap();
    let running = eventually("running", async || {
        let v = vmis.get_opt("vm-cirros").await.ok()??;
        (v.phase() == "Running").then_some(v)
    })
    .await;
    let orphan = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..Default::default()
    };
    vms.delete("vm-cirros", &orphan).await.unwrap();
    eventually("VM gone", async || {
        vms.get_opt("vm-cirros").await.ok()?.is_none().then_some(())
    })
    .await;
    let left = vmis.get("vm-cirros").await.unwrap();
    assert_eq!(
        left.metadata.uid, running.metadata.uid,
        "the VMI keeps running"
    );
    assert!(
        left.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    // Re-creating the VM adopts the VMI instead of starting a second one.
    vms.create(&PostParams::default(), &vm).await.unwrap();
    let adopted = eventually("adopted", async || {
        let v = vmis.get("vm-cirros").await.ok()?;
        (!v.metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .is_empty())
        .then_some(v)
    })
    .await;
    assert_eq!(adopted.metadata.uid, running.metadata.uid);
    eventually("Running", async || {
        (printable(&vms, "vm-cirros").await == "Running").then_some(())
    })
    .await;
}
