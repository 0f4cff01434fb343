//! `virt-controller run` when the API server goes away: /readyz and /healthz turn 503 once the
//! watches have been failing for `--unready-after` and `--unhealthy-after`, and ok again when the
//! server is back; and after the server restarts with a new CA and token (a new kubeconfig at the
//! same path), the controller reads the kubeconfig again and goes on reconciling.

mod ha_support;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use ha_support::{Cluster, Controller, LEASE_NAMESPACE, eventually, http_get, running_vm};

/// A TCP relay in front of the API server that can be cut and restored on the same port: an
/// outage as the controller sees it, while the server keeps its state (and its CA).
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Relay {
            addr,
            target,
            task: Some(Self::serve(listener, target)),
        }
    }

    fn serve(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
        tokio::spawn(async move {
            // Connections live in this set, so that aborting the task cuts them all.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
    }

    /// Closes the port and every open connection.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(Self::serve(listener, self.target));
    }
}

/// Installs the KubeVirt CRDs and the Lease's namespace.
async fn install(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": LEASE_NAMESPACE}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Creates a running VM and waits until the controller gives it a VMI.
async fn vm_gets_a_vmi(client: &kube::Client, name: &str, secs: u64) {
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), "default");
    vms.create(&PostParams::default(), &running_vm(name))
        .await
        .unwrap();
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    eventually(secs, &format!("a VMI for {name}"), async || {
        vmis.get_opt(name).await.ok().flatten()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_and_healthz_fail_while_the_api_server_is_unreachable_and_recover() {
    let cluster = Cluster::start(false).await;
    let mut relay = Relay::start(cluster.server.addr).await;
    let kubeconfig = cluster.dir.path().join("relay.kubeconfig");
    let via_relay = cluster
        .server
        .kubeconfig()
        .replace(&cluster.server.url, &format!("https://{}", relay.addr));
    std::fs::write(&kubeconfig, via_relay).unwrap();

    let controller = Controller::spawn_with(
        &kubeconfig,
        "outage-test",
        &["--unready-after", "2s", "--unhealthy-after", "3s"],
    );
    controller.wait_for(15, "/readyz", 200).await;
    assert_eq!(controller.code("/healthz").await, Some(200));

    // The outage stays well under the lease's 10 s renew deadline, so this replica keeps leading
    // and only the watches decide what the probes say.
    let cut_at = tokio::time::Instant::now();
    relay.cut().await;
    controller.wait_for(10, "/readyz", 503).await;
    let unready_after = cut_at.elapsed();
    assert!(
        unready_after >= Duration::from_secs(2),
        "not ready after {unready_after:?}, before the 2 s bound"
    );
    controller.wait_for(10, "/healthz", 503).await;
    let unhealthy_after = cut_at.elapsed();
    assert!(
        unhealthy_after >= Duration::from_secs(3),
        "not live after {unhealthy_after:?}, before the 3 s bound"
    );
    let (_, reason) = http_get(controller.addr, "/readyz").await.unwrap();
    assert!(reason.contains("watch failing for"), "{reason}");

    relay.restore().await;
    controller.wait_for(20, "/readyz", 200).await;
    controller.wait_for(5, "/healthz", 200).await;
    vm_gets_a_vmi(&cluster.client, "after-outage", 15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_api_server_restarts_with_a_new_ca_and_token_the_controller_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let first = localkube::LocalKube::builder()
        .kubeconfig_out(&kubeconfig)
        .start()
        .await
        .unwrap();
    let first_client = first.client().await.unwrap();
    install(&first_client).await;

    let controller =
        Controller::spawn_with(&kubeconfig, "rotation-test", &["--unready-after", "2s"]);
    controller.wait_for(15, "/readyz", 200).await;
    vm_gets_a_vmi(&first_client, "before-restart", 15).await;

    // A fresh server on the same port, with all state gone: a new CA, a new token, and a new
    // kubeconfig written over the old one.
    let port = first.addr;
    let (old_ca, old_token) = (first.ca_pem.clone(), first.token.clone());
    first.shutdown().await;
    let second = localkube::LocalKube::builder()
        .listen(port)
        .kubeconfig_out(&kubeconfig)
        .start()
        .await
        .unwrap();
    assert_ne!(second.ca_pem, old_ca, "localkube reused its CA");
    assert_ne!(second.token, old_token, "localkube reused its token");
    let client = second.client().await.unwrap();
    install(&client).await;

    vm_gets_a_vmi(&client, "after-restart", 30).await;
    // Leader election went on with the new credentials too: the new server's Lease is ours.
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    eventually(
        15,
        "the controller to hold the new server's Lease",
        async || {
            let lease = leases.get_opt("virt-controller").await.ok()??;
            (lease.spec?.holder_identity.as_deref() == Some("rotation-test")).then_some(())
        },
    )
    .await;
    controller.wait_for(10, "/readyz", 200).await;
    assert_eq!(controller.code("/healthz").await, Some(200));
}
