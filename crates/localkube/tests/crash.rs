//! kill -9 of `localkube --data-dir` at random moments while one or several clients write: after each
//! restart every acknowledged write is there, each object is whole (its labels, finalizers and
//! owner reference agree with its data), and label selectors (the rebuilt index) agree with
//! the objects.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use common::DataDirServer;

const ROUNDS: usize = 20;
const CLIENTS: usize = 6;
const OBJECTS_PER_CLIENT: usize = 6;
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn start(dir: &Path) -> DataDirServer {
    DataDirServer::start(dir, &["--no-node"]).expect("localkube starts on its data dir")
}

/// What one object should hold at version `seq` of its owner's writes: every part derives
/// from `seq`, so a torn object shows.
fn content(name: &str, seq: u64, anchor_uid: &str) -> Value {
    let mut meta = json!({
        "name": name,
        "labels": {"parity": (seq % 2).to_string(), "seq": seq.to_string()},
    });
    if seq % 3 == 1 {
        meta["finalizers"] = json!([format!("test.example.com/f{seq}")]);
    }
    if seq.is_multiple_of(2) {
        meta["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
            "name": "anchor", "uid": anchor_uid}]);
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
           "data": {"seq": seq.to_string(), "check": format!("{name}/{seq}")}})
}

/// The seq an object holds, after checking that all of it agrees with that seq.
fn seq_of(obj: &Value, anchor_uid: &str) -> u64 {
    let name = obj["metadata"]["name"].as_str().unwrap();
    let seq: u64 = obj["data"]["seq"].as_str().unwrap().parse().unwrap();
    let want = content(name, seq, anchor_uid);
    assert_eq!(obj["data"], want["data"], "torn object {obj}");
    assert_eq!(
        obj["metadata"]["labels"], want["metadata"]["labels"],
        "{obj}"
    );
    let finalizers = obj["metadata"]
        .get("finalizers")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        finalizers,
        want["metadata"]
            .get("finalizers")
            .cloned()
            .unwrap_or(Value::Null),
        "{obj}"
    );
    let owners = obj["metadata"]
        .get("ownerReferences")
        .map(|o| o[0]["uid"].clone())
        .unwrap_or(Value::Null);
    let want_owners = want["metadata"]
        .get("ownerReferences")
        .map(|o| o[0]["uid"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(owners, want_owners, "{obj}");
    seq
}

/// One object's known state: the last acknowledged write (None: absent) and a write whose
/// answer never came (it may or may not have happened).
#[derive(Clone, Default)]
struct Slot {
    acked: Option<u64>,
    in_flight: Option<Option<u64>>,
    /// The resourceVersion of the acknowledged state, for updates.
    rv: String,
}

type Model = Arc<Mutex<HashMap<String, Slot>>>;

async fn send(client: &kube::Client, req: Request<Vec<u8>>) -> Result<Value, kube::Error> {
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Writes to its own objects until the server goes away.
async fn writer(client: kube::Client, model: Model, owner: usize, anchor: String, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut writes = 0u64;
    loop {
        let name = format!("c{owner}-{}", rng.random_range(0..OBJECTS_PER_CLIENT));
        let slot = model.lock()[&name].clone();
        let next_seq = slot
            .acked
            .unwrap_or(0)
            .max(slot.in_flight.flatten().unwrap_or(0))
            + 1;
        // What this write leads to, and the request.
        let (after, req) = match slot.acked {
            None => (
                Some(next_seq),
                Request::post(CMS)
                    .header("content-type", "application/json")
                    .body(content(&name, next_seq, &anchor).to_string().into_bytes())
                    .unwrap(),
            ),
            // Deletes only when no finalizer holds the object.
            Some(seq) if seq % 3 != 1 && rng.random_bool(0.25) => (
                None,
                Request::delete(format!("{CMS}/{name}"))
                    .body(vec![])
                    .unwrap(),
            ),
            Some(_) if rng.random_bool(0.5) => {
                let mut body = content(&name, next_seq, &anchor);
                body["metadata"]["resourceVersion"] = json!(slot.rv);
                (
                    Some(next_seq),
                    Request::put(format!("{CMS}/{name}"))
                        .header("content-type", "application/json")
                        .body(body.to_string().into_bytes())
                        .unwrap(),
                )
            }
            Some(_) => {
                // A merge patch: nulls remove what the next content does not have.
                let mut body = content(&name, next_seq, &anchor);
                for field in ["finalizers", "ownerReferences"] {
                    if body["metadata"].get(field).is_none() {
                        body["metadata"][field] = Value::Null;
                    }
                }
                (
                    Some(next_seq),
                    Request::patch(format!("{CMS}/{name}"))
                        .header("content-type", "application/merge-patch+json")
                        .body(body.to_string().into_bytes())
                        .unwrap(),
                )
            }
        };
        model.lock().get_mut(&name).unwrap().in_flight = Some(after);
        match send(&client, req).await {
            Ok(answer) => {
                let mut m = model.lock();
                let s = m.get_mut(&name).unwrap();
                s.acked = after;
                s.in_flight = None;
                s.rv = answer["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                writes += 1;
            }
            Err(kube::Error::Api(e)) => panic!("{name}: the server refused a write: {e:?}"),
            // The server was killed: the write's fate is unknown.
            Err(_) => {
                eprintln!("client {owner}: {writes} writes acknowledged this round");
                return;
            }
        }
    }
}

/// Checks the restarted server against the model, and makes the model what the server holds.
async fn verify(client: &kube::Client, model: &Model, anchor: &str) -> usize {
    let list = send(client, Request::get(CMS).body(vec![]).unwrap())
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    let found: HashMap<String, &Value> = items
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_string(), o))
        .filter(|(n, _)| n != "anchor")
        .collect();
    let mut present = 0;
    for (name, slot) in model.lock().iter_mut() {
        let got = found.get(name).map(|o| seq_of(o, anchor));
        let allowed = got == slot.acked || slot.in_flight == Some(got);
        assert!(
            allowed,
            "{name}: found {got:?}, acknowledged {:?}, in flight {:?}",
            slot.acked, slot.in_flight
        );
        slot.acked = got;
        slot.in_flight = None;
        slot.rv = found
            .get(name)
            .map(|o| {
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap_or_default();
        present += usize::from(got.is_some());
    }
    // The label index agrees with the objects.
    for parity in ["0", "1"] {
        let selected = send(
            client,
            Request::get(format!("{CMS}?labelSelector=parity%3D{parity}"))
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
        let mut by_index: Vec<&str> = selected["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        let mut by_object: Vec<&str> = items
            .iter()
            .filter(|o| o["metadata"]["labels"]["parity"] == parity)
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        by_index.sort();
        by_object.sort();
        assert_eq!(by_index, by_object, "parity={parity}");
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let seed = test_support::seed_from_env("CRASH_SEED");
    eprintln!("seed {seed} (CRASH_SEED={seed} replays the kill times and writes)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let model: Model = Arc::default();
    for c in 0..CLIENTS {
        for k in 0..OBJECTS_PER_CLIENT {
            model.lock().insert(format!("c{c}-{k}"), Slot::default());
        }
    }
    let mut server = start(dir.path());
    let anchor = send(
        &server.client().await,
        Request::post(CMS)
            .header("content-type", "application/json")
            .body(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "anchor"}})
                    .to_string()
                    .into_bytes(),
            )
            .unwrap(),
    )
    .await
    .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..ROUNDS {
        let client = server.client().await;
        // Every fourth round one client writes alone: a lone request commits on its own task,
        // the others share the commit thread.
        let active = if round % 4 == 0 { 1 } else { CLIENTS };
        let writers: Vec<_> = (0..active)
            .map(|c| {
                tokio::spawn(writer(
                    client.clone(),
                    model.clone(),
                    c,
                    anchor.clone(),
                    rng.random(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        server.kill_9();
        for w in writers {
            w.await.unwrap();
        }
        server = start(dir.path());
        let present = verify(&server.client().await, &model, &anchor).await;
        eprintln!("round {round}: {present} objects present and as acknowledged");
    }
    server.kill_9();
}
