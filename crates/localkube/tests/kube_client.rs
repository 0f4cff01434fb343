//! kube-rs as a client of an embedded localkube: watchers and reflectors across a forced
//! 410, update conflicts, the finalizer helper, and server-side apply.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": name},
    }))
    .unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn reflector_stays_in_sync_across_a_forced_410() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
    let (reader, writer) = reflector::store();
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::Init)) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        })
        .default_backoff()
        .for_each(|_| async {});
    let task = tokio::spawn(stream);
    eventually("initial sync", || reader.state().len() == 3).await;
    assert_eq!(inits.load(Ordering::SeqCst), 1);

    // Forget the history and end open watches: the watcher resumes from a version the
    // server no longer has, gets 410 Gone, and must relist.
    server.compact();
    api.create(&PostParams::default(), &cm("d")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    eventually("relist after 410", || inits.load(Ordering::SeqCst) >= 2).await;
    eventually("store matches the server", || {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names == ["b", "c", "d"]
    })
    .await;
    // And it keeps following live changes.
    api.create(&PostParams::default(), &cm("e")).await.unwrap();
    eventually("live event after relist", || reader.state().len() == 4).await;
    task.abort();
}

#[tokio::test]
async fn stale_updates_conflict() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let created = api.create(&PostParams::default(), &cm("x")).await.unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "1".to_string())].into());
    api.replace("x", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_string(), "2".to_string())].into());
    match api.replace("x", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert_eq!(e.reason, "Conflict");
            assert!(
                e.message.contains("the object has been modified"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let now = api.get("x").await.unwrap();
    assert_eq!(now.data.unwrap()["k"], "1");
}

#[tokio::test]
async fn finalizer_helper_flow() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &cm("f")).await.unwrap();
    let name = "example.com/cleanup";
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<&'static str>::new()));
    let run = |obj: ConfigMap| {
        let api = api.clone();
        let seen = seen.clone();
        async move {
            finalizer(&api, name, Arc::new(obj), |ev| async move {
                seen.lock().push(match ev {
                    FinalizerEvent::Apply(_) => "apply",
                    FinalizerEvent::Cleanup(_) => "cleanup",
                });
                Ok::<_, std::convert::Infallible>(Action::await_change())
            })
            .await
        }
    };
    // The first pass only adds the finalizer.
    run(api.get("f").await.unwrap()).await.unwrap();
    assert!(seen.lock().is_empty());
    let obj = api.get("f").await.unwrap();
    assert_eq!(
        obj.metadata.finalizers.as_deref(),
        Some(&[name.to_string()][..])
    );
    run(obj).await.unwrap();
    assert_eq!(*seen.lock(), ["apply"]);
    // Deleting sets deletionTimestamp and keeps the object until the finalizer goes.
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = api.get("f").await.unwrap();
    assert!(obj.metadata.deletion_timestamp.is_some());
    run(obj).await.unwrap();
    assert_eq!(*seen.lock(), ["apply", "cleanup"]);
    let gone = api.get_opt("f").await.unwrap();
    assert!(gone.is_none(), "the object goes with its last finalizer");
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_detects_conflicts() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let applied = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "s", "labels": {"team": "a"}},
        "data": {"one": "1", "two": "2"},
    });
    let pp = PatchParams::apply("manager-a");
    let out = api.patch("s", &pp, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(out.data.as_ref().unwrap().len(), 2);
    let mf = out.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("manager-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Re-applying without a field removes it.
    let smaller = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"one": "1"}});
    let out = api.patch("s", &pp, &Patch::Apply(&smaller)).await.unwrap();
    assert_eq!(out.data.unwrap().keys().collect::<Vec<_>>(), ["one"]);
    assert!(out.metadata.labels.unwrap_or_default().is_empty());
    // Another manager changing an owned field conflicts, unless it forces.
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"one": "uno"}});
    match api
        .patch(
            "s",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(&theirs),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert!(e.message.contains("manager-a"), "{}", e.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let out = api
        .patch(
            "s",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["one"], "uno");
    // Listing works with selectors through kube-rs too.
    let listed = api
        .list(&ListParams::default().fields("metadata.name=s"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

/// Past its first few hundred objects a table keeps their JSON compressed with a trained
/// dictionary; everything a client reads must still be the exact object it wrote.
#[tokio::test]
async fn objects_read_back_exactly_once_a_table_compresses_them() {
    use kube::api::WatchParams;
    use kube::core::WatchEvent;

    let server = localkube::LocalKube::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let start = api.list(&ListParams::default()).await.unwrap();
    let start_rv = start.metadata.resource_version.unwrap();
    let count = localkube::packing::SAMPLE_OBJECTS + 60;
    let mut created = Vec::new();
    for i in 0..count {
        let obj: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "labels": {"n": i.to_string()}},
            "data": {"text": format!("line {i}\n\"quoted\" \\ ünïcödé {}", "x".repeat(i % 97))},
        }))
        .unwrap();
        created.push(api.create(&PostParams::default(), &obj).await.unwrap());
    }
    for c in created.iter().rev().take(40) {
        let got = api.get(c.metadata.name.as_deref().unwrap()).await.unwrap();
        assert_eq!(&got, c);
    }
    let listed = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), count);
    for c in &created {
        assert!(
            listed.contains(c),
            "{:?} missing from the list",
            c.metadata.name
        );
    }
    let last = format!("cm-{}", count - 1);
    let selected = api
        .list(&ListParams::default().labels(&format!("n={}", count - 1)))
        .await
        .unwrap();
    assert_eq!(selected.items, [created[count - 1].clone()]);

    let patched = api
        .patch(
            &last,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"more": "ok"}})),
        )
        .await
        .unwrap();
    assert_eq!(api.get(&last).await.unwrap(), patched);
    assert_eq!(patched.data.as_ref().unwrap()["more"], "ok");
    assert_eq!(
        patched.data.as_ref().unwrap()["text"],
        created[count - 1].data.as_ref().unwrap()["text"]
    );
    api.delete(&last, &DeleteParams::default()).await.unwrap();

    let mut events = api
        .watch(&WatchParams::default().timeout(5), &start_rv)
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    while let Some(event) = events.next().await {
        match event.unwrap() {
            WatchEvent::Added(o) => added.push(o),
            WatchEvent::Deleted(o) => {
                assert_eq!(o.data, patched.data);
                break;
            }
            WatchEvent::Modified(o) => assert_eq!(o, patched),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, created);
}

/// Paging with `limit` and `continue`, in one namespace and across namespaces, with and without
/// a selector: the pages add up to the whole list, in order, and only unselected pages say how
/// many items follow them (as kube-apiserver does).
#[tokio::test]
async fn pages_add_up_to_the_list_and_count_what_follows() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::ResourceExt;

    let server = localkube::LocalKube::builder().start().await.unwrap();
    let client = server.client().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["page-a", "page-b", "page-c"] {
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for i in 0..7 {
            let mut obj = cm(&format!("cm-{i}"));
            obj.metadata.labels = Some([("odd".to_string(), (i % 2).to_string())].into());
            api.create(&PostParams::default(), &obj).await.unwrap();
        }
    }
    let names = |items: &[ConfigMap]| -> Vec<String> {
        items
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap(),
                    o.name_any()
                )
            })
            .collect()
    };
    let cases: [(Api<ConfigMap>, &str); 4] = [
        (Api::namespaced(client.clone(), "page-b"), ""),
        (Api::namespaced(client.clone(), "page-b"), "odd=1"),
        (Api::all(client.clone()), ""),
        (Api::all(client.clone()), "odd=1"),
    ];
    for (api, selector) in cases {
        let whole = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        let whole = names(&whole.items);
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().labels(selector).limit(2);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = api.list(&params).await.unwrap();
            paged.extend(names(&page.items));
            let remaining = page.metadata.remaining_item_count;
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            match (&token, selector) {
                (Some(_), "") => assert_eq!(
                    remaining,
                    Some((whole.len() - paged.len()) as i64),
                    "{selector:?} after {paged:?}"
                ),
                _ => assert_eq!(remaining, None, "{selector:?} after {paged:?}"),
            }
            if token.is_none() {
                break;
            }
        }
        assert_eq!(paged, whole, "selector {selector:?}");
        assert!(whole.len() >= 3, "more than one page: {whole:?}");
    }
}
