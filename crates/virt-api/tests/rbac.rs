//! The user roles of `deploy/13-user-roles.yaml` enforced end to end: localkube's RBAC decides
//! the subresource requests of ServiceAccount tokens before they reach virt-api (which asks
//! localkube again for the user the front proxy names), and the roles keep users off status.

mod common;

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};

const START: &str =
    "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/start";
const VM_STATUS: &str = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/status";

/// A request with `client`'s credentials: (status, body as JSON or text).
async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    ct: &str,
    body: Value,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        })
        .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn created(client: &kube::Client, path: &str, body: Value) -> Value {
    let (code, answer) = send(client, Method::POST, path, "application/json", body).await;
    assert!((200..300).contains(&code), "POST {path}: {code} {answer}");
    answer
}

/// The ClusterRoles and ClusterRoleBindings of the deploy file, created as the admin.
async fn user_roles(admin: &kube::Client) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/13-user-roles.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    for doc in text.split("\n---\n") {
        let obj: Value = serde_saphyr::from_str(doc).unwrap();
        let plural = match obj["kind"].as_str() {
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            other => panic!("{path}: unexpected kind {other:?}"),
        };
        created(
            admin,
            &format!("/apis/rbac.authorization.k8s.io/v1/{plural}"),
            obj,
        )
        .await;
    }
}

/// A ServiceAccount bound to `role` in `default`, and a client with its token.
async fn user(
    server: &localkube::Server,
    admin: &kube::Client,
    name: &str,
    role: &str,
) -> kube::Client {
    created(
        admin,
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"metadata": {"name": name}}),
    )
    .await;
    created(
        admin,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [{"kind": "ServiceAccount", "name": name}]}),
    )
    .await;
    let issued = created(
        admin,
        &format!("/api/v1/namespaces/default/serviceaccounts/{name}/token"),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await;
    let token = issued["status"]["token"].as_str().unwrap();
    let kc =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig().replace(&server.token, token))
            .unwrap();
    kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn editors_start_vms_viewers_do_not_and_no_user_writes_status() {
    let (server, admin) = common::localkube_with_crds(None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _virt_api = virt_api::loopback::serve(
        &admin,
        listener,
        virt_api::loopback::reviewer_trusting(localkube::access::ADMIN_USER),
        true,
    )
    .await
    .expect("virt-api starts and registers");
    common::create_seed_vm(&admin).await;
    user_roles(&admin).await;
    let editor = user(&server, &admin, "editor", "kubevirt.io:edit").await;
    let viewer = user(&server, &admin, "viewer", "kubevirt.io:view").await;

    let (code, body) = send(&editor, Method::PUT, START, "application/json", json!({})).await;
    assert_eq!(code, 202, "{body}");

    let (code, body) = send(&viewer, Method::PUT, START, "application/json", json!({})).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        r#"virtualmachines.subresources.kubevirt.io "vm-cirros" is forbidden: User "system:serviceaccount:default:viewer" cannot update resource "virtualmachines/start" in API group "subresources.kubevirt.io" in the namespace "default""#
    );
    // The viewer still reads the VM.
    let (code, body) = send(
        &viewer,
        Method::GET,
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // And virt-api's version, as every signed-in user (a ClusterRoleBinding to a Group).
    let (code, body) = send(
        &viewer,
        Method::GET,
        "/apis/subresources.kubevirt.io/v1/version",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = send(
        &editor,
        Method::PATCH,
        VM_STATUS,
        "application/merge-patch+json",
        json!({"status": {"ready": true}}),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        r#"virtualmachines.kubevirt.io "vm-cirros" is forbidden: User "system:serviceaccount:default:editor" cannot patch resource "virtualmachines/status" in API group "kubevirt.io" in the namespace "default""#
    );
}
