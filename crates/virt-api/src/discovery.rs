//! What virt-api says about itself: the group's discovery documents (`/apis`,
//! `/apis/subresources.kubevirt.io`, the APIResourceList of each version), `/version` and the
//! health endpoint. The API server's aggregator reads these to list the group; none of them
//! needs an identity.

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use virt_reconciler::version;

pub const GROUP: &str = "subresources.kubevirt.io";

/// The versions served, preferred first.
pub const VERSIONS: [&str; 2] = ["v1", "v1alpha3"];

/// The resources of each version, as KubeVirt's virt-api lists them (it lists no
/// `virtualmachines/portforward`, though it serves it).
pub fn resources() -> Value {
    let entry = |name: &str, kind: &str, verb: &str| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": [verb]});
    let mut list = Vec::new();
    for action in ["start", "stop", "restart"] {
        list.push(entry(
            &format!("virtualmachines/{action}"),
            "VirtualMachine",
            "update",
        ));
    }
    for action in ["pause", "unpause", "reset", "softreboot"] {
        list.push(entry(
            &format!("virtualmachineinstances/{action}"),
            "VirtualMachineInstance",
            "update",
        ));
    }
    for stream in ["console", "vnc", "portforward"] {
        list.push(entry(
            &format!("virtualmachineinstances/{stream}"),
            "VirtualMachineInstance",
            "get",
        ));
    }
    Value::Array(list)
}

fn group_version(version: &str) -> Value {
    json!({"groupVersion": format!("{GROUP}/{version}"), "version": version})
}

/// `metav1.APIGroup` of the group.
pub fn api_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": VERSIONS.iter().map(|v| group_version(v)).collect::<Vec<_>>(),
        "preferredVersion": group_version(VERSIONS[0]),
    })
}

/// `metav1.APIResourceList` of one version.
pub fn api_resource_list(version: &str) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{version}"),
        "resources": resources(),
    })
}

/// What `/version` and `/apis/subresources.kubevirt.io/{v}/version` answer (Part A §20).
pub fn version_info() -> Value {
    json!({
        "gitVersion": version::KUBEVIRT_COMPATIBLE,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (Rust)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// The routes, all open to anyone (the authorizer lets them through unreviewed).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new()
        .route(
            "/apis",
            get(|| async {
                axum::Json(
                    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]}),
                )
            }),
        )
        .route(
            &format!("/apis/{GROUP}"),
            get(|| async { axum::Json(api_group()) }),
        )
        .route("/version", get(|| async { axum::Json(version_info()) }))
        .route("/healthz", get(|| async { "ok" }));
    for v in VERSIONS {
        r = r
            .route(
                &format!("/apis/{GROUP}/{v}"),
                get(move || async move { axum::Json(api_resource_list(v)) }),
            )
            .route(
                &format!("/apis/{GROUP}/{v}/version"),
                get(|| async { axum::Json(version_info()) }),
            )
            .route(
                &format!("/apis/{GROUP}/{v}/healthz"),
                get(|| async { "ok" }),
            );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_lists_the_ten_subresources_with_their_verbs() {
        for v in VERSIONS {
            let list = api_resource_list(v);
            assert_eq!(list["groupVersion"], format!("{GROUP}/{v}"));
            let names: Vec<(&str, &str)> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["name"].as_str().unwrap(), r["verbs"][0].as_str().unwrap()))
                .collect();
            assert_eq!(names.len(), 10);
            assert!(names.contains(&("virtualmachines/start", "update")));
            assert!(names.contains(&("virtualmachineinstances/console", "get")));
        }
    }

    #[test]
    fn v1_is_the_preferred_version() {
        assert_eq!(api_group()["preferredVersion"]["version"], "v1");
    }
}
