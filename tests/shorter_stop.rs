//! A second, shorter stop is honoured: `stop --force --grace-period=0` on a VM whose guest is
//! already shutting down with a long grace period cuts the shutdown short, as kubelet does when
//! a terminating pod is deleted again with a shorter grace period.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

const NS: &str = "default";
const VM: &str = "vm-slow";
/// The guest's grace period; the node lets a pod take up to 5 minutes to stop.
const GRACE: i64 = 60;

async fn launcher_pods(c: &Cluster) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let lp = ListParams::default().labels(&virt_reconciler::vmi::all_launcher_pods_selector());
    pods.list(&lp).await.unwrap().items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_shorter_stop_cuts_the_shutdown_short() {
    let c = Cluster::playground_with_node_shutdown("5m").await;
    let grace = json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": GRACE}}}});
    c.create_vm(NS, VM, "Always", grace).await;
    c.wait_printable(NS, VM, "Running").await;

    c.virtctl(&["stop", VM])
        .await
        .ok("VM vm-slow was scheduled to stop\n");
    let going = c
        .eventually("the launcher pod to be terminating", async || {
            launcher_pods(&c)
                .await
                .into_iter()
                .find(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
    assert_eq!(going.metadata.deletion_grace_period_seconds, Some(GRACE));

    c.virtctl(&["stop", VM, "--force", "--grace-period=0"])
        .await
        .ok("VM vm-slow was scheduled to stop\n");
    // Well inside the first stop's 60 s: only the second stop can have ended it this soon.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let vmi_gone = c.vmis(NS).get_opt(VM).await.unwrap().is_none();
        if vmi_gone && launcher_pods(&c).await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the guest was still shutting down 20 s after stop --force --grace-period=0"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait_printable(NS, VM, "Stopped").await;
}
