//! `--data-dir`: what a restart keeps (objects with their metadata, the versions, the served
//! CRDs, the CA and token, issued ServiceAccount tokens), what it ends (watches and continue
//! tokens: 410, relist), and what it sets aside (stored rows that cannot be read).

mod common;

use http::Request;
use kube::Client;

use common::{DataDirServer, StartFailure};
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

#[test]
fn the_binary_refuses_a_directory_in_use_and_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path());
    let StartFailure { code, stderr: err } =
        DataDirServer::start(dir.path(), &["--no-node"]).expect_err("the second is refused");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "is in use by another localkube (pid {})",
            first.pid()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    first.kill_9();

    // A later release's format is refused, and the directory is left as it was.
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    db.execute(
        "UPDATE meta SET value = CAST('2' AS BLOB) WHERE key = 'format'",
        [],
    )
    .unwrap();
    drop(db);
    let StartFailure { code, stderr: err } =
        DataDirServer::start(dir.path(), &["--no-node"]).expect_err("format 2 is refused");
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

/// The binary on `dir`, ready.
fn serve(dir: &std::path::Path) -> DataDirServer {
    DataDirServer::start(dir, &["--no-node"]).expect("localkube starts on its data dir")
}

/// A client of the server of `kubeconfig`, with `token` as its bearer (the admin's when None).
async fn client_of(kubeconfig: &std::path::Path, token: Option<&str>) -> Client {
    let mut yaml = std::fs::read_to_string(kubeconfig).unwrap();
    if let Some(token) = token {
        let admin = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .expect("the kubeconfig has a token")
            .to_string();
        yaml = yaml.replace(&admin, token);
    }
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_service_account_token_survives_a_crash_and_dies_with_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let admin = client_of(&server.kubeconfig, None).await;
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}});
    let sas = "/api/v1/namespaces/default/serviceaccounts";
    send(&admin, "POST", sas, "application/json", sa.clone()).await;
    send(
        &admin,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        "application/json",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "read-configmaps"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
    )
    .await;
    send(
        &admin,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        "application/json",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]}),
    )
    .await;
    send(
        &admin,
        "POST",
        CMS,
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
    )
    .await;
    let objects_before = what_lists_show(&admin).await;
    let issued = send(
        &admin,
        "POST",
        &format!("{sas}/reader/token"),
        "application/json",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await;
    let token = issued["status"]["token"].as_str().unwrap().to_string();
    // A token is no object: nothing lists it.
    assert_eq!(what_lists_show(&admin).await, objects_before);

    let works_as_the_reader = |kubeconfig: std::path::PathBuf, token: String| async move {
        let reader = client_of(&kubeconfig, Some(&token)).await;
        let (code, cm) = raw(&reader, &format!("{CMS}/cm")).await;
        assert_eq!((code, &cm["metadata"]["name"]), (200, &json!("cm")), "{cm}");
        let (code, status) = raw(&reader, "/api/v1/namespaces/default/secrets").await;
        assert_eq!(code, 403, "{status}");
        let message = status["message"].as_str().unwrap();
        assert!(
            message.contains("system:serviceaccount:default:reader"),
            "{message}"
        );
    };
    works_as_the_reader(server.kubeconfig.clone(), token.clone()).await;

    // Killed: the answered TokenRequest was durable.
    server.kill_9();
    assert_eq!(
        files_containing(dir.path(), token.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "the token is not on disk"
    );
    let mut server = serve(dir.path());
    works_as_the_reader(server.kubeconfig.clone(), token.clone()).await;

    // A ServiceAccount of the same name is another account: the token is dead.
    let admin = client_of(&server.kubeconfig, None).await;
    let req = Request::delete(format!("{sas}/reader"))
        .body(vec![])
        .unwrap();
    admin.request_text(req).await.unwrap();
    send(&admin, "POST", sas, "application/json", sa).await;
    let reader = client_of(&server.kubeconfig, Some(&token)).await;
    let (code, status) = raw(&reader, &format!("{CMS}/cm")).await;
    assert_eq!(code, 401, "{status}");
    server.kill_9();
    // Its row left the disk with the account, not at the next start.
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM serviceaccount_tokens", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0);
    drop(db);
    let mut server = serve(dir.path());
    let reader = client_of(&server.kubeconfig, Some(&token)).await;
    assert_eq!(raw(&reader, &format!("{CMS}/cm")).await.0, 401);
    server.kill_9();
    assert!(files_containing(dir.path(), token.as_bytes()).is_empty());
}

/// What discovery and lists show of the stored objects: every served resource with its count.
async fn what_lists_show(client: &Client) -> Vec<(String, usize)> {
    let mut seen = Vec::new();
    for path in ["/api/v1", "/apis/rbac.authorization.k8s.io/v1"] {
        let list = get(client, path).await;
        for r in list["resources"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            if name.contains('/') || !r["verbs"].as_array().unwrap().contains(&json!("list")) {
                continue;
            }
            let items = get(client, &format!("{path}/{name}")).await;
            seen.push((
                name.to_string(),
                items["items"].as_array().map_or(0, Vec::len),
            ));
        }
    }
    let groups = get(client, "/apis").await;
    seen.push(("groups".into(), groups["groups"].as_array().unwrap().len()));
    seen
}

#[tokio::test]
async fn unreadable_rows_are_set_aside_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    server.kill_9();
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let row = |name: &str, body: &[u8]| {
        db.execute(
            "INSERT INTO objects (grp, resource, namespace, name, rv, body)
             VALUES ('', 'configmaps', 'default', ?1, 5, ?2)",
            rusqlite::params![name, body],
        )
        .unwrap();
    };
    row(
        "good",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"good","namespace":"default","resourceVersion":"5","uid":"u-good"},"data":{"k":"v"}}"#,
    );
    row("broken", br#"{"apiVersion":"v1","kind":"Conf"#);
    row(
        "renamed",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other","namespace":"default"}}"#,
    );
    drop(db);

    let mut server = serve(dir.path());
    let stderr = server.stderr();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("set aside")).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains("configmaps default/broken (1 of 2 unreadable rows")
            && warnings[0].contains("not JSON")
            && warnings[0].contains("quarantine"),
        "{stderr}"
    );
    assert!(
        warnings[1].contains("configmaps default/renamed (2 of 2")
            && warnings[1].contains("\"default\"/\"other\""),
        "{stderr}"
    );
    let admin = client_of(&server.kubeconfig, None).await;
    let ready = admin
        .request_text(Request::get("/readyz").body(vec![]).unwrap())
        .await
        .unwrap();
    assert_eq!(ready, "ok");
    let (code, good) = raw(&admin, &format!("{CMS}/good")).await;
    assert_eq!((code, &good["data"]["k"]), (200, &json!("v")), "{good}");
    assert_eq!(raw(&admin, "/api/v1/namespaces/default").await.0, 200);
    for name in ["broken", "renamed", "other"] {
        assert_eq!(raw(&admin, &format!("{CMS}/{name}")).await.0, 404, "{name}");
    }
    // The set-aside row does not hold its name.
    let made = send(
        &admin,
        "POST",
        CMS,
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "broken"}, "data": {"new": "yes"}}),
    )
    .await;
    assert_eq!(made["data"]["new"], "yes", "{made}");
    server.kill_9();

    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT name, body, error, set_aside_at FROM quarantine ORDER BY id")
        .unwrap();
    let kept: Vec<(String, Vec<u8>, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0].0, "broken");
    assert_eq!(kept[0].1, br#"{"apiVersion":"v1","kind":"Conf"#);
    assert!(kept[0].2.contains("not JSON"), "{}", kept[0].2);
    assert!(kept[0].3.starts_with("20"), "a timestamp: {}", kept[0].3);
    assert_eq!(kept[1].0, "renamed");
    drop(stmt);
    drop(db);
    // The next start finds nothing more to set aside, and the new object.
    let mut server = serve(dir.path());
    let stderr = server.stderr();
    assert!(!stderr.contains("set aside"), "{stderr}");
    let admin = client_of(&server.kubeconfig, None).await;
    assert_eq!(
        get(&admin, &format!("{CMS}/broken")).await["data"]["new"],
        "yes"
    );
    server.kill_9();
}
