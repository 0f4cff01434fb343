//! `localkube --data-dir`, with its node, after kill -9 and after a plain stop: the node's
//! Lease keeps its uid and is renewed again, the Node's Ready heartbeat goes on, and a Lease a
//! client holds (as a controller's leader election does) is there as it was, renewable at the
//! resourceVersion its holder read before the restart.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use http::Request;
use serde_json::{Value, json};

use common::DataDirServer;

const NODE: &str = "localkube-node";
const NODE_LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/localkube-node";
const NODE_PATH: &str = "/api/v1/nodes/localkube-node";
const HELD_LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const HELD: &str = "virt-controller";
/// The node renews every 10 s (as a kubelet does); slack for a busy machine.
const BEAT_BOUND: Duration = Duration::from_secs(20);

fn start(dir: &std::path::Path) -> DataDirServer {
    DataDirServer::start(
        dir,
        &["--node-start-delay", "0", "--node-shutdown-time", "0"],
    )
    .expect("localkube starts on its data dir")
}

/// The object at `path`, None when it is not there (404).
async fn get(client: &kube::Client, path: &str) -> Option<Value> {
    match client
        .request_text(Request::get(path).body(vec![]).unwrap())
        .await
    {
        Ok(text) => Some(serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// Sends `body`; the answer, or the HTTP code of a refusal.
async fn send(client: &kube::Client, method: &str, path: &str, body: &Value) -> Result<Value, u16> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    match client.request_text(req).await {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(e)) => Err(e.code),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn now_micro() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .into()
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the node last reported: its Lease's uid and renewTime, its Ready heartbeat.
#[derive(Debug, Clone)]
struct Beat {
    lease_uid: String,
    renewed: DateTime<Utc>,
    heartbeat: DateTime<Utc>,
}

/// The node's Lease and Ready condition now; None until both are there and the node is Ready.
async fn beat(client: &kube::Client) -> Option<Beat> {
    let lease = get(client, NODE_LEASE).await?;
    let node = get(client, NODE_PATH).await?;
    let ready = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    assert_eq!(lease["spec"]["holderIdentity"], NODE, "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40, "{lease}");
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"], node["metadata"]["uid"],
        "the node's Lease is owned by its Node: {lease}"
    );
    if ready["status"] != "True" {
        return None;
    }
    Some(Beat {
        lease_uid: lease["metadata"]["uid"].as_str().unwrap().to_string(),
        renewed: time(&lease["spec"]["renewTime"]),
        heartbeat: time(&ready["lastHeartbeatTime"]),
    })
}

/// Waits until the node renewed its Lease and posted a Ready heartbeat after `since`.
async fn next_beat(client: &kube::Client, since: &Beat, bound: Duration, what: &str) -> Beat {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < bound {
        if let Some(b) = beat(client).await {
            if b.renewed > since.renewed && b.heartbeat > since.heartbeat {
                eprintln!("{what}: after {:?}", start.elapsed());
                return b;
            }
            last = Some(b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what}: no Lease renewal and Ready heartbeat after {since:?} within {bound:?}; last seen {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_the_node_heartbeat_resume_after_kill_9_and_after_a_plain_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let client = server.client().await;
    let mut before = {
        let start = Instant::now();
        loop {
            if let Some(b) = beat(&client).await {
                break b;
            }
            if start.elapsed() > BEAT_BOUND {
                let lease = get(&client, NODE_LEASE).await;
                let node = get(&client, NODE_PATH).await;
                panic!(
                    "no node Lease and Ready Node within {BEAT_BOUND:?}: Lease {lease:?}, Node {node:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // A Lease as client-go's leader election holds it.
    let t = now_micro();
    let mut held = send(
        &client,
        "POST",
        HELD_LEASES,
        &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": HELD, "namespace": "kube-system"},
                "spec": {"holderIdentity": "virt-controller-7d9f_3b2a", "leaseDurationSeconds": 15,
                         "acquireTime": t, "renewTime": t, "leaseTransitions": 0}}),
    )
    .await
    .expect("the held Lease is created");
    let held_path = format!("{HELD_LEASES}/{HELD}");

    for stop in ["kill -9", "a plain stop"] {
        // Heartbeats have seconds: one after the restart must be able to be a later one.
        let wait = before.heartbeat + chrono::Duration::milliseconds(1100) - Utc::now();
        tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
        if stop == "kill -9" {
            server.kill_9();
        } else {
            let status = server.terminate();
            assert!(status.success(), "a plain stop exits 0: {status}");
        }
        server = start(dir.path());
        let client = server.client().await;

        // The holder's Lease is as it was, and its holder renews it at the version it read.
        let found = get(&client, &held_path).await.expect("the held Lease");
        assert_eq!(found, held, "after {stop}, the held Lease is unchanged");
        let mut renewal = held.clone();
        renewal["spec"]["renewTime"] = json!(now_micro());
        let renewed = send(&client, "PUT", &held_path, &renewal)
            .await
            .unwrap_or_else(|code| {
                panic!("after {stop}, renewing at the pre-restart version got {code}")
            });
        assert!(rv(&renewed) > rv(&held), "{renewed}");
        assert_eq!(renewed["spec"]["renewTime"], renewal["spec"]["renewTime"]);
        assert_eq!(renewed["metadata"]["uid"], held["metadata"]["uid"]);
        // That version is stale now.
        assert_eq!(
            send(&client, "PUT", &held_path, &renewal).await.err(),
            Some(409),
            "after {stop}, a renewal at a stale version conflicts"
        );
        held = renewed;

        // The node renews its own Lease (the same object) and posts its heartbeat again, and
        // keeps doing so.
        let after = next_beat(
            &client,
            &before,
            BEAT_BOUND,
            &format!("first beat after {stop}"),
        )
        .await;
        assert_eq!(
            after.lease_uid, before.lease_uid,
            "after {stop}, the node's Lease is the same object"
        );
        before = next_beat(
            &client,
            &after,
            BEAT_BOUND,
            &format!("second beat after {stop}"),
        )
        .await;
    }
    server.kill_9();
}
