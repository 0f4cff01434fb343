//! Watch semantics, the extension point for mounted API groups, and the less common verbs,
//! through kube-rs against an embedded server.

use std::time::Duration;

use futures::StreamExt;
use http::Request;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent};
use serde_json::{Value, json};

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = kube::Result<WatchEvent<Value>>> + Send>>;

async fn watch(client: &kube::Client, query: &str) -> Events {
    let req = Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&{query}"
    ))
    .body(vec![])
    .unwrap();
    client.request_events::<Value>(req).await.unwrap().boxed()
}

async fn next(events: &mut Events) -> WatchEvent<Value> {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5s")
        .expect("stream open")
        .expect("event decodes")
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

#[tokio::test]
async fn watch_resource_versions_selectors_bookmarks_and_timeouts() {
    let server = localkube::LocalKube::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    let after_a = a.metadata.resource_version.unwrap();

    // "" starts with the current state.
    let mut w = watch(&client, "labelSelector=app%3Dx").await;
    match next(&mut w).await {
        WatchEvent::Added(o) => assert_eq!(name_of(&o), "a"),
        other => panic!("expected ADDED a, got {other:?}"),
    }
    // Leaving the selector is a DELETED, coming back an ADDED.
    let relabel = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    api.patch("a", &PatchParams::default(), &relabel("y"))
        .await
        .unwrap();
    assert!(matches!(next(&mut w).await, WatchEvent::Deleted(o) if name_of(&o) == "a"));
    api.patch("a", &PatchParams::default(), &relabel("x"))
        .await
        .unwrap();
    assert!(matches!(next(&mut w).await, WatchEvent::Added(o) if name_of(&o) == "a"));

    // A version starts after it: only later changes arrive.
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let mut w = watch(&client, &format!("resourceVersion={after_a}")).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        match next(&mut w).await {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => seen.push(name_of(&o).to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["a", "a", "b"], "two relabels of a, then b");

    // Bookmarks when allowed; a timeout ends the stream.
    let mut w = watch(
        &client,
        "resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=2",
    )
    .await;
    let mut bookmarks = 0;
    let started = std::time::Instant::now();
    while let Some(ev) = w.next().await {
        if let Ok(WatchEvent::Bookmark(b)) = ev {
            assert!(!b.metadata.resource_version.is_empty());
            bookmarks += 1;
        }
    }
    assert!(bookmarks >= 2, "got {bookmarks} bookmarks");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );

    // Streaming lists: initial events, then a bookmark that marks their end.
    let mut w = watch(
        &client,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await;
    let mut names = Vec::new();
    loop {
        match next(&mut w).await {
            WatchEvent::Added(o) => names.push(name_of(&o).to_string()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test]
async fn a_bookmark_carries_writes_to_other_kinds_so_a_quiet_watch_resumes_inside_the_window() {
    let server = localkube::LocalKube::builder()
        .bookmark_interval(Duration::from_millis(200))
        .watch_window(4)
        .start()
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let mut w = watch(&client, "allowWatchBookmarks=true").await;
    api.create(&PostParams::default(), &cm("quiet", json!({})))
        .await
        .unwrap();
    let mut last_secret = 0;
    for i in 0..8 {
        let s = serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
        let made = secrets.create(&PostParams::default(), &s).await.unwrap();
        last_secret = made.metadata.resource_version.unwrap().parse().unwrap();
    }
    // The ConfigMap first, then a bookmark past every secret.
    assert!(matches!(next(&mut w).await, WatchEvent::Added(o) if name_of(&o) == "quiet"));
    let bookmark = loop {
        match next(&mut w).await {
            WatchEvent::Bookmark(b) => {
                let rv: u64 = b.metadata.resource_version.parse().unwrap();
                if rv >= last_secret {
                    break rv;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    // The window of 4 changes no longer holds the ConfigMap's own version, but holds the
    // bookmark's: the watch resumes there and sees the next ConfigMap.
    let mut w = watch(&client, &format!("resourceVersion={bookmark}")).await;
    api.create(&PostParams::default(), &cm("next", json!({})))
        .await
        .unwrap();
    match next(&mut w).await {
        WatchEvent::Added(o) => assert_eq!(name_of(&o), "next"),
        other => panic!("expected ADDED next, got {other:?}"),
    }
}

#[tokio::test]
async fn create_generate_name_dry_run_preconditions_and_deletecollection() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let generated: ConfigMap = serde_json::from_value(
        json!({"metadata": {"generateName": "job-", "labels": {"batch": "1"}}}),
    )
    .unwrap();
    let made = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = made.metadata.name.clone().unwrap();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    // As in kube, ConfigMaps carry no generation (custom resources and apps do; see the CRD tests).
    assert_eq!(made.metadata.generation, None);
    assert!(made.metadata.uid.is_some() && made.metadata.creation_timestamp.is_some());

    // Dry runs write nothing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &cm("ghost", json!({}))).await.unwrap();
    assert!(api.get_opt("ghost").await.unwrap().is_none());
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete(&name, &dry_delete).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_some());

    // Preconditions on delete.
    let wrong_uid = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &wrong_uid).await {
        Err(kube::Error::Api(e)) if e.code == 409 => {
            assert!(e.message.contains("Precondition failed"), "{}", e.message)
        }
        other => panic!("expected a precondition conflict, got {other:?}"),
    }

    // deletecollection by label.
    for n in ["c1", "c2"] {
        api.create(&PostParams::default(), &cm(n, json!({"batch": "1"})))
            .await
            .unwrap();
    }
    api.create(&PostParams::default(), &cm("keep", json!({})))
        .await
        .unwrap();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=1"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["keep"]);
}

#[tokio::test]
async fn crds_serve_every_version_from_one_storage() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false, "deprecated": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let req = Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&crd).unwrap())
        .unwrap();
    let made: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    let conditions = made["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );

    let post = Request::post("/apis/example.com/v1beta1/gadgets")
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"example.com/v1beta1","kind":"Gadget","metadata":{"name":"g"},"spec":{"x":1}}"#.to_vec())
        .unwrap();
    client.request_text(post).await.unwrap();
    let v1: Value = serde_json::from_str(
        &client
            .request_text(
                Request::get("/apis/example.com/v1/gadgets/g")
                    .body(vec![])
                    .unwrap(),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"]["x"], 1);
    // Deleting the CRD waits for its custom resources' finalizers, refuses new ones meanwhile,
    // and then stops serving the resource.
    let send = |method: &str, path: &str, ct: &str, body: &[u8]| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(body.to_vec())
            .unwrap()
    };
    client
        .request_text(send(
            "PATCH",
            "/apis/example.com/v1/gadgets/g",
            "application/merge-patch+json",
            br#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ))
        .await
        .unwrap();
    client
        .request_text(send(
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
            "application/json",
            b"",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let g: Value = serde_json::from_str(
        &client
            .request_text(send(
                "GET",
                "/apis/example.com/v1/gadgets/g",
                "application/json",
                b"",
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(g["metadata"]["deletionTimestamp"].is_string(), "{g}");
    let refused = client
        .request_text(send(
            "POST",
            "/apis/example.com/v1/gadgets",
            "application/json",
            br#"{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"h"}}"#,
        ))
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 405),
        "{refused:?}"
    );
    client
        .request_text(send(
            "PATCH",
            "/apis/example.com/v1/gadgets/g",
            "application/json-patch+json",
            br#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ))
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        let r = client
            .request_text(send(
                "GET",
                "/apis/example.com/v1/gadgets",
                "application/json",
                b"",
            ))
            .await;
        if matches!(&r, Err(kube::Error::Api(e)) if e.code == 404) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "the resource is no longer served once the CRD is gone"
    );
}

#[tokio::test]
async fn mounted_groups_are_served_and_discovered() {
    use axum::routing::put;
    let router = axum::Router::new().route(
        "/apis/poke.example.io/v1/namespaces/{ns}/things/{name}/poke",
        put(
            |axum::extract::Path((ns, name)): axum::extract::Path<(String, String)>| async move {
                axum::Json(json!({"poked": format!("{ns}/{name}")}))
            },
        ),
    );
    let group = localkube::MountedGroup {
        group: "poke.example.io".into(),
        versions: vec!["v1".into()],
        resources: vec![(
            "v1".into(),
            json!([
                {"name": "things", "singularName": "thing", "namespaced": true, "kind": "Thing", "verbs": []},
                {"name": "things/poke", "singularName": "", "namespaced": true, "kind": "Thing", "verbs": ["update"]}
            ]),
        )],
    };
    let server = localkube::LocalKube::builder()
        .mount_group(group, router)
        .start()
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    let get = |path: &str| Request::get(path).body(vec![]).unwrap();
    let groups: Value =
        serde_json::from_str(&client.request_text(get("/apis")).await.unwrap()).unwrap();
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "poke.example.io")
    );
    let list: Value = serde_json::from_str(
        &client
            .request_text(get("/apis/poke.example.io/v1"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list["resources"][1]["name"], "things/poke");
    let agg_req = Request::get("/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .body(vec![])
        .unwrap();
    let agg: Value = serde_json::from_str(&client.request_text(agg_req).await.unwrap()).unwrap();
    let item = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "poke.example.io")
        .expect("mounted group in aggregated discovery");
    assert_eq!(
        item["versions"][0]["resources"][0]["subresources"][0]["subresource"],
        "poke"
    );
    let poke = Request::put("/apis/poke.example.io/v1/namespaces/default/things/t1/poke")
        .body(vec![])
        .unwrap();
    let out: Value = serde_json::from_str(&client.request_text(poke).await.unwrap()).unwrap();
    assert_eq!(out["poked"], "default/t1");
    // The mounted router sits behind the same authentication.
    let mut cfg = server.kube_config().await.unwrap();
    cfg.auth_info = Default::default();
    let anonymous = kube::Client::try_from(cfg).unwrap();
    let denied = anonymous
        .request_text(
            Request::put("/apis/poke.example.io/v1/namespaces/default/things/t1/poke")
                .body(vec![])
                .unwrap(),
        )
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 401),
        "{denied:?}"
    );
}

#[tokio::test]
async fn crds_may_not_take_protected_groups_or_built_in_names() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let crd = |group: &str, plural: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        })
    };
    for (group, plural, why) in [
        (
            "rbac.authorization.k8s.io",
            "roles",
            "api-approved.kubernetes.io",
        ),
        ("apps", "deployments", "built-in"),
    ] {
        let req = Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&crd(group, plural)).unwrap())
            .unwrap();
        match client.request_text(req).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422);
                assert!(e.message.contains(why), "{}", e.message);
            }
            other => panic!("{group}/{plural} should be refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_patches_all_land_and_terminating_namespaces_wait_for_content() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("shared", json!({})))
        .await
        .unwrap();
    let patches = (0..24).map(|i| {
        let api = api.clone();
        async move {
            let p = Patch::Merge(json!({"data": {format!("k{i}"): "v"}}));
            api.patch("shared", &PatchParams::default(), &p).await
        }
    });
    for r in futures::future::join_all(patches).await {
        r.expect("an unconditional patch retries instead of conflicting");
    }
    assert_eq!(api.get("shared").await.unwrap().data.unwrap().len(), 24);

    // A namespace whose content is held by a finalizer stays Terminating, even when written to.
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let held: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let obj: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    held.create(&PostParams::default(), &obj).await.unwrap();
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let label = Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}}));
    nss.patch("doomed", &PatchParams::default(), &label)
        .await
        .unwrap();
    let phase = nss.get("doomed").await.unwrap().status.unwrap().phase;
    assert_eq!(phase.as_deref(), Some("Terminating"));
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}])).unwrap();
    held.patch("held", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if nss.get_opt("doomed").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the namespace goes once its content is gone");
}
