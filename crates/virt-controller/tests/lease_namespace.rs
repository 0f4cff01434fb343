//! `virt-controller run` against a cluster without the namespace of its leader Lease: it says
//! once what is missing and how to fix it, keeps retrying quietly, and leads as soon as the
//! namespace exists.

mod ha_support;

use std::time::Duration;

use ha_support::{Cluster, eventually};

const MISSING: &str = "namespace \"kubevirt\" for the leader Lease does not exist";

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_lease_namespace_is_reported_once_and_leading_starts_once_it_exists() {
    let cluster = Cluster::without_lease_namespace(false).await;
    let controller = cluster.controller("replica-a");
    // Three retries (one every 2 s) and more: still one message, and a standby meanwhile.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let lines = controller.stderr_lines();
    let reports: Vec<&String> = lines.iter().filter(|l| l.contains(MISSING)).collect();
    assert_eq!(reports.len(), 1, "{lines:#?}");
    let report = reports[0];
    for fix in [
        "kubectl create namespace kubevirt",
        "--lease-namespace",
        "--leader-elect=false",
    ] {
        assert!(report.contains(fix), "{report}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Status {") || l.contains("ErrorResponse")),
        "no debug dumps: {lines:#?}"
    );
    assert_eq!(controller.ready().await, Some(false));

    cluster.create_lease_namespace().await;
    eventually(10, "the controller leads", async || {
        controller.ready().await.filter(|r| *r)
    })
    .await;
    let lines = controller.stderr_lines();
    assert!(
        lines.iter().any(|l| l == "virt-controller: leading"),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(MISSING)).count(),
        1,
        "{lines:#?}"
    );
}
