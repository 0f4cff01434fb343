//! Users and RBAC, seen by kube-rs and kubectl: ServiceAccount tokens from TokenRequest, and
//! what RoleBindings, ClusterRoles (aggregated ones too) and access reviews let each token do.

mod common;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use serde_json::json;

use common::{Localkube, have_kubectl};

const EDITOR: &str = "system:serviceaccount:default:editor";
const VIEWER: &str = "system:serviceaccount:default:viewer";

/// Applies objects as the admin (server-side apply, so that a test can change them later).
async fn apply<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap();
}

/// ServiceAccounts `editor` and `viewer`, ClusterRoles for configmaps, and RoleBindings in
/// `default`.
async fn users(admin: &kube::Client) {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    for name in ["editor", "viewer"] {
        apply(
            &sas,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await;
    }
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for (name, verbs) in [
        ("cm-edit", json!(["get", "list", "update"])),
        ("cm-view", json!(["get", "list"])),
    ] {
        apply(
            &roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]}),
        )
        .await;
    }
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "default");
    for (sa, role) in [("editor", "cm-edit"), ("viewer", "cm-view")] {
        apply(&bindings, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{sa}-cm")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}]}))
        .await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    apply(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"k": "v"}})).await;
}

async fn token_request(
    admin: &kube::Client,
    name: &str,
    seconds: Option<i64>,
) -> kube::Result<TokenRequest> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let body = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: seconds,
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create_subresource("token", name, &PostParams::default(), &body)
        .await
}

async fn token(admin: &kube::Client, name: &str) -> String {
    token_request(admin, name, None)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

/// A kube-rs client that presents `token` instead of the admin's.
async fn client_with(server: &localkube::Server, token: &str) -> kube::Client {
    let text = server.kubeconfig().replace(&server.token, token);
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn api_error(r: kube::Result<impl std::fmt::Debug>) -> Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_carry_what_the_bindings_grant() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let admin = server.client().await.unwrap();
    users(&admin).await;

    let issued = token_request(&admin, "editor", None).await.unwrap();
    let status = issued.status.unwrap();
    assert!(status.token.len() >= 32);
    let left = status.expiration_timestamp.0.as_second() - jiff_now().as_second();
    assert!(
        (3590..=3600).contains(&left),
        "default lifetime is an hour, {left}s left"
    );
    assert_eq!(issued.spec.expiration_seconds, Some(3600));
    let missing = api_error(token_request(&admin, "nobody", None).await);
    assert_eq!(missing.code, 404);
    assert_eq!(missing.message, r#"serviceaccounts "nobody" not found"#);
    assert_eq!(
        api_error(token_request(&admin, "editor", Some(60)).await).code,
        422
    );

    let editor = client_with(&server, &status.token).await;
    let viewer = client_with(&server, &token(&admin, "viewer").await).await;
    for c in [&editor, &viewer] {
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        assert_eq!(cms.list(&Default::default()).await.unwrap().items.len(), 1);
        assert_eq!(cms.get("c1").await.unwrap().data.unwrap()["k"], "v");
        // Discovery is everyone's.
        c.apiserver_version().await.unwrap();
        assert!(!c.list_api_groups().await.unwrap().groups.is_empty());
        c.list_core_api_resources("v1").await.unwrap();
    }

    let mut cm = Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .get("c1")
        .await
        .unwrap();
    cm.data = Some([("k".to_string(), "edited".to_string())].into());
    let as_editor: Api<ConfigMap> = Api::namespaced(editor.clone(), "default");
    let as_viewer: Api<ConfigMap> = Api::namespaced(viewer.clone(), "default");
    let written = as_editor
        .replace("c1", &PostParams::default(), &cm)
        .await
        .unwrap();
    assert_eq!(written.data.unwrap()["k"], "edited");

    let denied = api_error(as_viewer.replace("c1", &PostParams::default(), &cm).await);
    assert_eq!(denied.code, 403);
    assert_eq!(denied.reason, "Forbidden");
    assert_eq!(
        denied.message,
        format!(
            r#"configmaps "c1" is forbidden: User "{VIEWER}" cannot update resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    let denied = api_error(as_editor.delete("c1", &DeleteParams::default()).await);
    assert_eq!(
        denied.message,
        format!(
            r#"configmaps "c1" is forbidden: User "{EDITOR}" cannot delete resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(editor.clone(), "kube-system");
    let denied = api_error(elsewhere.list(&Default::default()).await);
    assert_eq!(
        denied.message,
        format!(
            r#"configmaps is forbidden: User "{EDITOR}" cannot list resource "configmaps" in API group "" in the namespace "kube-system""#
        )
    );
    let nodes: Api<Node> = Api::all(viewer.clone());
    let denied = api_error(nodes.list(&Default::default()).await);
    assert_eq!(
        denied.message,
        format!(
            r#"nodes is forbidden: User "{VIEWER}" cannot list resource "nodes" in API group "" at the cluster scope"#
        )
    );

    // An unknown token is no one.
    let stranger = client_with(&server, "not-a-token").await;
    let err = api_error(stranger.apiserver_version().await);
    assert_eq!(err.code, 401);
    // A token dies with its ServiceAccount.
    Api::<ServiceAccount>::namespaced(admin.clone(), "default")
        .delete("viewer", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(as_viewer.get("c1").await).code,
        401,
        "the viewer's token after its ServiceAccount is deleted"
    );
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

#[tokio::test]
async fn aggregated_cluster_roles_grant_what_their_selected_roles_have() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let admin = server.client().await.unwrap();
    users(&admin).await;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    apply(&roles, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "aggregate"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-aggregate": "true"}}]}}))
    .await;
    let secrets_reader = |labelled: bool| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "secrets-reader", "labels": if labelled {
                json!({"example.com/aggregate-to-aggregate": "true"})
            } else {
                json!({"other": "x"})
            }},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]})
    };
    apply(&roles, secrets_reader(true)).await;
    apply(
        &Api::<RoleBinding>::namespaced(admin.clone(), "default"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "viewer-aggregate"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aggregate"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer"}]}),
    )
    .await;
    let viewer = client_with(&server, &token(&admin, "viewer").await).await;
    let secrets: Api<Secret> = Api::namespaced(viewer.clone(), "default");
    secrets.list(&Default::default()).await.unwrap();
    let denied = api_error(secrets.get("s").await);
    assert_eq!(
        denied.message,
        format!(
            r#"secrets "s" is forbidden: User "{VIEWER}" cannot get resource "secrets" in API group "" in the namespace "default""#
        )
    );
    // Aggregation is computed when a request is decided: unlabelled, the rule is gone.
    apply(&roles, secrets_reader(false)).await;
    assert_eq!(api_error(secrets.list(&Default::default()).await).code, 403);
}

fn attributes(verb: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        namespace: Some("default".into()),
        verb: Some(verb.into()),
        resource: Some("configmaps".into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn access_reviews_answer_as_requests_are_decided() {
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let admin = server.client().await.unwrap();
    users(&admin).await;
    let sar = |verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(EDITOR.into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:default".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(attributes(verb, "c1")),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let pp = PostParams::default();
    let status = api
        .create(&pp, &sar("update"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some(
            r#"RBAC: allowed by RoleBinding "editor-cm/default" of ClusterRole "cm-edit" to ServiceAccount "editor/default""#
        )
    );
    let status = api
        .create(&pp, &sar("delete"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(!status.allowed);
    assert_eq!(status.reason.unwrap_or_default(), "");

    // The same questions asked by the editor about itself.
    let editor = client_with(&server, &token(&admin, "editor").await).await;
    let selves: Api<SelfSubjectAccessReview> = Api::all(editor.clone());
    for (verb, allowed) in [("update", true), ("delete", false), ("list", true)] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes(verb, "c1")),
                ..Default::default()
            },
            ..Default::default()
        };
        let status = selves.create(&pp, &review).await.unwrap().status.unwrap();
        assert_eq!(status.allowed, allowed, "{verb}");
    }
    // Reviews of others are not the editor's to ask.
    let denied = api_error(
        Api::<SubjectAccessReview>::all(editor)
            .create(&pp, &sar("get"))
            .await,
    );
    assert_eq!(
        denied.message,
        format!(
            r#"subjectaccessreviews.authorization.k8s.io is forbidden: User "{EDITOR}" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
        )
    );
}

#[test]
fn kubectl_create_token_gives_a_token_kubectl_can_use() {
    if !have_kubectl("kubectl_create_token_gives_a_token_kubectl_can_use") {
        return;
    }
    let lk = Localkube::start();
    lk.apply_yaml(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: editor}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cm-edit}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: editor-cm}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cm-edit}
subjects:
- {kind: ServiceAccount, name: editor, namespace: default}
"#,
    );
    lk.create_configmap("c1", &[("k", "v")]);
    let token = lk.ok(&["create", "token", "editor"]).trim().to_string();
    assert!(!token.is_empty());
    let with_token = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        lk.kubectl(&all)
    };
    let out = with_token(&["get", "configmaps", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "configmap/c1");
    let out = with_token(&["delete", "configmap", "c1"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            r#"Error from server (Forbidden): configmaps "c1" is forbidden: User "{EDITOR}" cannot delete resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    let out = with_token(&["auth", "can-i", "update", "configmaps"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    let out = with_token(&["auth", "can-i", "delete", "configmaps"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    let out = lk.kubectl(&["--token", "nope", "get", "configmaps"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What RBAC costs a request: gets of one ConfigMap as the admin (no evaluation) and as the
/// editor (roles and bindings read and matched per request), with 100 unrelated ClusterRoles
/// and bindings in the store. Run with
/// `cargo test -p localkube --test rbac -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_the_cost_of_authorization() {
    const N: usize = 500;
    let server = localkube::LocalKube::builder().start().await.unwrap();
    let admin = server.client().await.unwrap();
    users(&admin).await;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for i in 0..100 {
        apply(
            &roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("filler-{i}")},
            "rules": [{"apiGroups": ["example.com"], "resources": ["things"], "verbs": ["get"]}]}),
        )
        .await;
        apply(
            &Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone()),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("filler-{i}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("filler-{i}")},
                "subjects": [{"kind": "User", "name": format!("user-{i}")}]}),
        )
        .await;
    }
    let editor = client_with(&server, &token(&admin, "editor").await).await;
    for (who, client) in [("admin", &admin), ("editor", &editor)] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut took = Vec::with_capacity(N);
        for _ in 0..N {
            let started = std::time::Instant::now();
            cms.get("c1").await.unwrap();
            took.push(started.elapsed());
        }
        took.sort();
        let mean = took.iter().sum::<std::time::Duration>() / N as u32;
        println!(
            "{N} gets as the {who}: mean {mean:?}, p50 {:?}, p99 {:?}",
            took[N / 2],
            took[N * 99 / 100]
        );
    }
}
