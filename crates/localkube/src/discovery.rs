//! Discovery documents: legacy (`/api`, `/apis`, group and resource lists) and aggregated
//! (`apidiscovery.k8s.io/v2`), built from the registry and the mounted groups.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{MountedGroup, Registry, ResourceType, version_priority};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery (v2 or v2beta1).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        part.contains("g=apidiscovery.k8s.io")
            && part.contains("as=APIGroupDiscoveryList")
            && part.contains("v=v2")
            && !part.contains("v=v2beta1")
    })
}

fn sorted_versions(mut versions: Vec<String>) -> Vec<String> {
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    versions
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let versions = sorted_versions(versions.to_vec());
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

fn all_groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    for m in registry.mounted() {
        groups.push((m.group.clone(), m.versions.clone()));
    }
    groups
}

pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = all_groups(registry)
        .iter()
        .map(|(g, vs)| {
            let mut v = api_group(g, vs);
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group_doc(registry: &Registry, group: &str) -> Option<Value> {
    all_groups(registry)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| api_group(&g, &vs))
}

/// A subresource besides status: (name, group, version, kind, verbs); an empty group means
/// the parent's group and version.
type Subresource = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The served subresources besides status, in kube-apiserver's order and words: kubectl
/// drain, for one, evicts only where discovery lists pods/eviction.
fn other_subresources(t: &ResourceType) -> &'static [Subresource] {
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "pods") => &[
            ("binding", "", "", "Binding", &["create"]),
            ("eviction", "policy", "v1", "Eviction", &["create"]),
            ("log", "", "", "Pod", &["get"]),
            (
                "portforward",
                "",
                "",
                "PodPortForwardOptions",
                &["create", "get"],
            ),
        ],
        ("", "serviceaccounts") => &[(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )],
        _ => &[],
    }
}

fn legacy_resources(t: &ResourceType) -> Vec<Value> {
    let mut r = json!({
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": t.verbs(),
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let mut out = vec![r];
    for &(sub, group, version, kind, verbs) in other_subresources(t) {
        let mut e = json!({"name": format!("{}/{sub}", t.plural), "singularName": "",
                           "namespaced": t.namespaced, "kind": kind, "verbs": verbs});
        if !group.is_empty() {
            e["group"] = json!(group);
            e["version"] = json!(version);
        }
        out.push(e);
    }
    if t.status_subresource {
        out.push(json!({
            "name": format!("{}/status", t.plural),
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

pub fn api_resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let gv = group_version(group, version);
    if let Some(m) = registry
        .mounted()
        .into_iter()
        .find(|m| m.group == group && m.versions.iter().any(|v| v == version))
    {
        let resources = m
            .resources
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| json!([]));
        return Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        );
    }
    let types: Vec<Arc<ResourceType>> = registry
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let resources: Vec<Value> = types.iter().flat_map(|t| legacy_resources(t)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let mut r = json!({
        "resource": t.plural,
        "responseKind": kind,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs(),
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let mut subresources: Vec<Value> = other_subresources(t)
        .iter()
        .map(|&(sub, group, version, sub_kind, verbs)| {
            let (group, version) = if group.is_empty() {
                (t.group.as_str(), t.version.as_str())
            } else {
                (group, version)
            };
            json!({"subresource": sub,
                   "responseKind": {"group": group, "version": version, "kind": sub_kind},
                   "verbs": verbs})
        })
        .collect();
    if t.status_subresource {
        subresources.push(json!({
            "subresource": "status",
            "responseKind": kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

/// Converts a mounted group's legacy resource list into aggregated entries.
fn aggregated_from_legacy(group: &str, version: &str, resources: &Value) -> Vec<Value> {
    let mut list = resources.as_array().cloned().unwrap_or_default();
    // Subresources whose parent is not listed (as in KubeVirt's subresource group) still
    // need a parent entry to hang from.
    let parents: Vec<String> = list
        .iter()
        .filter_map(|r| {
            r["name"]
                .as_str()?
                .split_once('/')
                .map(|(p, _)| p.to_string())
        })
        .collect();
    for parent in parents {
        if !list.iter().any(|r| r["name"] == parent.as_str()) {
            let child = list
                .iter()
                .find(|r| {
                    r["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{parent}/")))
                })
                .cloned()
                .unwrap_or_default();
            list.push(json!({
                "name": parent,
                "singularName": "",
                "namespaced": child["namespaced"],
                "kind": child["kind"],
                "verbs": [],
            }));
        }
    }
    let mut out: Vec<Value> = Vec::new();
    for r in list.iter() {
        let name = r["name"].as_str().unwrap_or("");
        if name.contains('/') {
            continue;
        }
        let kind = json!({"group": group, "version": version, "kind": r["kind"]});
        let subresources: Vec<Value> = list
            .iter()
            .filter_map(|s| {
                let n = s["name"].as_str()?;
                let (parent, sub) = n.split_once('/')?;
                (parent == name).then(|| {
                    json!({"subresource": sub, "responseKind": {"group": group, "version": version, "kind": s["kind"]}, "verbs": s["verbs"]})
                })
            })
            .collect();
        out.push(json!({
            "resource": name,
            "responseKind": kind,
            "scope": if r["namespaced"].as_bool() == Some(true) { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"],
            "verbs": r["verbs"],
            "subresources": subresources,
        }));
    }
    out
}

fn aggregated_group(
    registry: &Registry,
    group: &str,
    versions: &[String],
    mounted: Option<&MountedGroup>,
) -> Value {
    let versions = sorted_versions(versions.to_vec());
    let all = registry.all();
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = match mounted {
                Some(m) => m
                    .resources
                    .iter()
                    .find(|(mv, _)| mv == v)
                    .map(|(_, r)| aggregated_from_legacy(group, v, r))
                    .unwrap_or_default(),
                None => all
                    .iter()
                    .filter(|t| t.group == group && &t.version == v)
                    .map(|t| aggregated_resource(t))
                    .collect(),
            };
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut item = json!({"metadata": {"name": group}, "versions": entries});
    if group.is_empty() {
        item["metadata"] = json!({});
    }
    item
}

/// `/api` (core only) or `/apis` (every other group) in the aggregated format.
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(registry, "", &["v1".to_string()], None)]
    } else {
        let mounted = registry.mounted();
        all_groups(registry)
            .iter()
            .map(|(g, vs)| {
                aggregated_group(registry, g, vs, mounted.iter().find(|m| &m.group == g))
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_kubectl_accept_header() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn core_resources_are_listed_with_status_subresources() {
        let r = Registry::new();
        let list = api_resource_list(&r, "", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods") && names.contains(&"pods/status"));
        let agg = aggregated(&r, false);
        let apps = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        assert_eq!(
            apps["versions"][0]["resources"][0]["resource"],
            "deployments"
        );
    }
}
