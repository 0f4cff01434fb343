//! `--data-dir`: what a restart keeps (objects with their metadata, the versions, the served
//! CRDs, the CA and token), and what it ends (watches and continue tokens: 410, relist).

use http::Request;
use kube::Client;
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn start(dir: &std::path::Path) -> localkube::Server {
    localkube::LocalKube::builder()
        .data_dir(dir)
        .start()
        .await
        .unwrap()
}

async fn send(client: &Client, method: &str, path: &str, ct: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.to_string().into_bytes())
        .unwrap();
    let text = client.request_text(req).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn get(client: &Client, path: &str) -> Value {
    let text = client
        .request_text(Request::get(path).body(vec![]).unwrap())
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The HTTP code and body of a request that may fail.
async fn raw(client: &Client, path: &str) -> (u16, Value) {
    match client
        .request_text(Request::get(path).body(vec![]).unwrap())
        .await
    {
        Ok(text) => (200, serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(e)) => (e.code, json!({"reason": e.reason, "message": e.message})),
        Err(e) => panic!("{e}"),
    }
}

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
}"#;

#[tokio::test]
async fn objects_come_back_after_a_restart_exactly_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client().await.unwrap();
    let crd: Value = serde_json::from_str(CRD).unwrap();
    send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        crd,
    )
    .await;
    for i in 0..5 {
        send(
            &client,
            "POST",
            CMS,
            "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": format!("cm-{i}"), "labels": {"i": i.to_string()}},
                   "data": {"n": i.to_string()}}),
        )
        .await;
    }
    // managedFields from server-side apply, a finalizer, an update, a status, and a delete.
    send(
        &client,
        "PATCH",
        &format!("{CMS}/cm-1?fieldManager=tester"),
        "application/apply-patch+yaml",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-1"}, "data": {"applied": "yes"}}),
    )
    .await;
    send(
        &client,
        "PATCH",
        &format!("{CMS}/cm-2"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": ["example.com/keep"]}}),
    )
    .await;
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    send(
        &client,
        "POST",
        widgets,
        "application/json",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}),
    )
    .await;
    send(
        &client,
        "PATCH",
        &format!("{widgets}/w"),
        "application/merge-patch+json",
        json!({"spec": {"size": 2}}),
    )
    .await;
    let req = Request::delete(format!("{CMS}/cm-3")).body(vec![]).unwrap();
    client.request_text(req).await.unwrap();
    let req = Request::delete(format!("{CMS}/cm-2")).body(vec![]).unwrap();
    client.request_text(req).await.unwrap();

    let cms_before = get(&client, CMS).await;
    let widget_before = get(&client, &format!("{widgets}/w")).await;
    let ns_before = get(&client, "/api/v1/namespaces/default").await;
    let last_rv: u64 = cms_before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(widget_before["metadata"]["generation"], 2);
    server.shutdown().await;

    let server = start(dir.path()).await;
    let client = server.client().await.unwrap();
    let cms_after = get(&client, CMS).await;
    assert_eq!(cms_after["items"], cms_before["items"]);
    let names: Vec<&str> = cms_after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-4"]);
    assert_eq!(
        cms_after["items"][2]["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
    assert!(cms_after["items"][2]["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        cms_after["items"][1]["metadata"]["managedFields"][1]["manager"],
        "tester"
    );
    // The CRD is served again, and its object is unchanged (generation included).
    assert_eq!(get(&client, &format!("{widgets}/w")).await, widget_before);
    assert_eq!(get(&client, "/api/v1/namespaces/default").await, ns_before);
    // Label selectors use the rebuilt index.
    let selected = get(&client, &format!("{CMS}?labelSelector=i%3D4")).await;
    assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    // Versions keep increasing.
    let next = send(
        &client,
        "POST",
        CMS,
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}),
    )
    .await;
    let next_rv: u64 = next["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next_rv > last_rv, "{next_rv} after {last_rv}");
    server.shutdown().await;

    // Deleting the finalizer after a second restart completes the deletion that began before.
    let server = start(dir.path()).await;
    let client = server.client().await.unwrap();
    send(
        &client,
        "PATCH",
        &format!("{CMS}/cm-2"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(raw(&client, &format!("{CMS}/cm-2")).await.0, 404);
    assert_eq!(raw(&client, &format!("{CMS}/after")).await.0, 200);
}

#[tokio::test]
async fn watches_and_continue_tokens_from_before_a_restart_are_expired() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client().await.unwrap();
    for i in 0..3 {
        send(
            &client,
            "POST",
            CMS,
            "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}}),
        )
        .await;
    }
    let page = get(&client, &format!("{CMS}?limit=1")).await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let rv = page["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Before the restart the token continues the list.
    let (code, _) = raw(&client, &format!("{CMS}?limit=1&continue={token}")).await;
    assert_eq!(code, 200);
    server.shutdown().await;

    let server = start(dir.path()).await;
    let client = server.client().await.unwrap();
    let (code, status) = raw(&client, &format!("{CMS}?limit=1&continue={token}")).await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    let text = client
        .request_text(
            Request::get(format!("{CMS}?watch=true&resourceVersion={rv}"))
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    let ev: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // A fresh list gives a version that can be watched from.
    let list = get(&client, CMS).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let fresh = list["metadata"]["resourceVersion"].as_str().unwrap();
    let text = client
        .request_text(
            Request::get(format!(
                "{CMS}?watch=true&resourceVersion={fresh}&timeoutSeconds=1"
            ))
            .body(vec![])
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(text, "", "no event, and no error, after a fresh list");
}

#[tokio::test]
async fn the_ca_token_and_address_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (url, token, ca) = (
        server.url.clone(),
        server.token.clone(),
        server.ca_pem.clone(),
    );
    let kubeconfig = server.kubeconfig().to_string();
    server.shutdown().await;
    let server = start(dir.path()).await;
    assert_eq!(server.url, url, "the port of the last run is taken again");
    assert_eq!(server.token, token);
    assert_eq!(server.ca_pem, ca);
    // The kubeconfig written before the restart works.
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(cfg).unwrap();
    assert_eq!(raw(&client, "/api/v1/namespaces/default").await.0, 200);
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path()).await;
    let err = localkube::LocalKube::builder()
        .data_dir(dir.path())
        .start()
        .await
        .err()
        .expect("the directory is locked");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is in use by another localkube")
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
}

/// Runs the binary on `dir` until it is ready, or returns its exit code and stderr.
fn run_binary(dir: &std::path::Path) -> Result<std::process::Child, (Option<i32>, String)> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_localkube"))
        .args(["--listen", "127.0.0.1:0", "--no-node", "--data-dir"])
        .arg(dir)
        .arg("--kubeconfig-out")
        .arg(dir.join("kubeconfig"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.starts_with("localkube ready at") {
        return Ok(child);
    }
    let out = child.wait_with_output().unwrap();
    Err((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn the_binary_refuses_a_directory_in_use_and_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = run_binary(dir.path()).expect("the first server starts");
    let (code, err) = run_binary(dir.path()).expect_err("the second is refused");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "is in use by another localkube (pid {})",
            first.id()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    first.kill().unwrap();
    first.wait().unwrap();

    // A later release's format is refused, and the directory is left as it was.
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    db.execute(
        "UPDATE meta SET value = CAST('2' AS BLOB) WHERE key = 'format'",
        [],
    )
    .unwrap();
    drop(db);
    let (code, err) = run_binary(dir.path()).expect_err("format 2 is refused");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("was written by a newer localkube (data format 2; this one reads format 1"),
        "{err}"
    );
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let format: Vec<u8> = db
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(format, b"2");
}
