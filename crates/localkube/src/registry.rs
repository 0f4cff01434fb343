//! The resource types the server knows: built-in ones and those that CRDs add.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::store::StoreKey;

/// How an API view maps onto its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Stored as served (apart from apiVersion for multi-version CRDs).
    Plain,
    /// `events.k8s.io/v1` Events, stored as core `v1` Events.
    EventsV1,
}

/// Which strategy (`crate::strategy`) holds a type's rules; `api` maps it to the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyId {
    /// A built-in type with no rules of its own.
    Plain,
    Pod,
    Namespace,
    Service,
    ConfigMap,
    Secret,
    Deployment,
    /// A PodDisruptionBudget: its status starts empty.
    DisruptionBudget,
    CustomResourceDefinition,
    /// A resource that a CRD serves.
    CustomResource,
    /// An access review: answered on create, never stored (see `crate::access`).
    AccessReview,
    /// An APIService (see `crate::aggregation`).
    ApiService,
    /// A Validating- or MutatingWebhookConfiguration (see `crate::webhooks`).
    WebhookConfiguration,
}

impl StrategyId {
    /// The strategy of a built-in type, by where it is stored.
    fn of_builtin(store_group: &str, plural: &str) -> Self {
        match (store_group, plural) {
            ("", "pods") => Self::Pod,
            ("", "namespaces") => Self::Namespace,
            ("", "services") => Self::Service,
            ("", "configmaps") => Self::ConfigMap,
            ("", "secrets") => Self::Secret,
            ("apps", "deployments") => Self::Deployment,
            ("policy", "poddisruptionbudgets") => Self::DisruptionBudget,
            ("apiextensions.k8s.io", "customresourcedefinitions") => Self::CustomResourceDefinition,
            ("authorization.k8s.io", _) => Self::AccessReview,
            ("apiregistration.k8s.io", "apiservices") => Self::ApiService,
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
            ) => Self::WebhookConfiguration,
            _ => Self::Plain,
        }
    }
}

/// One served (group, version, resource).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub store: StoreKey,
    /// The apiVersion objects carry in storage.
    pub storage_api_version: String,
    pub view: View,
    /// For custom resources: the CRD's openAPIV3Schema for this version.
    pub crd_schema: Option<Arc<Value>>,
    /// For custom resources: the CRD's additionalPrinterColumns for this version.
    pub printer_columns: Option<Arc<Value>>,
    /// Set for custom resources: the owning CRD's name.
    pub crd: Option<String>,
    pub deprecated: bool,
    pub deprecation_warning: Option<String>,
    pub strategy: StrategyId,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.strategy == StrategyId::AccessReview {
            return vec!["create"];
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    categories: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    categories: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        short,
        namespaced,
        status,
        categories,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        &["ns"],
        false,
        true,
        &[],
    ),
    b("", "v1", "Pod", "pods", &["po"], true, true, &["all"]),
    b(
        "",
        "v1",
        "Service",
        "services",
        &["svc"],
        true,
        true,
        &["all"],
    ),
    b("", "v1", "Node", "nodes", &["no"], false, true, &[]),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        &["cm"],
        true,
        false,
        &[],
    ),
    b("", "v1", "Secret", "secrets", &[], true, false, &[]),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        &["sa"],
        true,
        false,
        &[],
    ),
    b("", "v1", "Event", "events", &["ev"], true, false, &[]),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["deploy"],
        true,
        true,
        &["all"],
    ),
    // Stored only: the node runs no controllers for them (deploy/ has one, for virt-handler).
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        &["ds"],
        true,
        true,
        &["all"],
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        true,
        true,
        &[],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        &[],
        true,
        false,
        &[],
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        &["ev"],
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        &[],
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        &[],
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        &[],
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        &[],
        false,
        false,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        &[],
        false,
        false,
        &["api-extensions"],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        &[],
        false,
        false,
        &["api-extensions"],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
        true,
        &["api-extensions"],
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        &[],
        false,
        false,
        &[],
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        &[],
        false,
        false,
        &[],
    ),
    b(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        &[],
        false,
        true,
        &["api-extensions"],
    ),
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|bi| {
            let events_view = bi.group == "events.k8s.io";
            let store_group = if events_view { "" } else { bi.group };
            let storage_api_version = if store_group.is_empty() {
                "v1".to_string()
            } else {
                format!("{}/{}", bi.group, bi.version)
            };
            Arc::new(ResourceType {
                group: bi.group.into(),
                version: bi.version.into(),
                kind: bi.kind.into(),
                plural: bi.plural.into(),
                singular: bi.kind.to_lowercase(),
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: bi.categories.iter().map(|s| s.to_string()).collect(),
                namespaced: bi.namespaced,
                status_subresource: bi.status,
                store: (store_group.into(), bi.plural.into()),
                storage_api_version,
                view: if events_view {
                    View::EventsV1
                } else {
                    View::Plain
                },
                crd_schema: None,
                printer_columns: None,
                crd: None,
                deprecated: false,
                deprecation_warning: None,
                strategy: StrategyId::of_builtin(store_group, bi.plural),
            })
        })
        .collect()
}

/// An API group mounted by the embedder (like an aggregated API server).
#[derive(Debug, Clone)]
pub struct MountedGroup {
    pub group: String,
    pub versions: Vec<String>,
    /// The `APIResourceList.resources` for each version, as JSON.
    pub resources: Vec<(String, Value)>,
}

pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
    mounted: RwLock<Vec<MountedGroup>>,
    /// Groups that APIServices proxy to, with the resources their backends last listed.
    aggregated: RwLock<Vec<MountedGroup>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            types: RwLock::new(builtin_types()),
            mounted: RwLock::new(Vec::new()),
            aggregated: RwLock::new(Vec::new()),
        }
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().clone()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .read()
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// True when the group/version is served at all (to tell a 404 for a path from one for an object).
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .read()
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// Whether `group` is one of the server's own (not a CRD's): kube-apiserver answers a
    /// path in it that nothing serves with a Status, and one elsewhere with plain text.
    pub fn is_builtin_group(&self, group: &str) -> bool {
        self.types
            .read()
            .iter()
            .any(|t| t.group == group && !t.is_custom())
    }

    /// The distinct groups in discovery order (built-ins first), with their versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.read().iter() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone())
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    /// Replaces the types that belong to the CRD `crd_name` (empty `types` removes them).
    pub fn set_crd_types(&self, crd_name: &str, types: Vec<ResourceType>) {
        let mut all = self.types.write();
        all.retain(|t| t.crd.as_deref() != Some(crd_name));
        all.extend(types.into_iter().map(Arc::new));
    }

    pub fn mount(&self, group: MountedGroup) {
        let mut m = self.mounted.write();
        m.retain(|g| g.group != group.group);
        m.push(group);
    }

    /// The groups served by something else than the registry's types: mounted ones, then
    /// those of available APIServices (a group both mount and aggregate shows as mounted).
    pub fn mounted(&self) -> Vec<MountedGroup> {
        let mut all = self.mounted.read().clone();
        for g in self.aggregated.read().iter() {
            if !all.iter().any(|m| m.group == g.group) {
                all.push(g.clone());
            }
        }
        all
    }

    /// Replaces the groups of available APIServices.
    pub fn set_aggregated(&self, groups: Vec<MountedGroup>) {
        *self.aggregated.write() = groups;
    }
}

/// Preferred version order of Kubernetes: GA before beta before alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, i64, i64) {
    let re = regex::Regex::new(r"^v(\d+)(?:(alpha|beta)(\d+))?$").expect("static regex");
    match re.captures(v) {
        Some(c) => {
            let major: i64 = c[1].parse().unwrap_or(0);
            let (stage, minor) = match c.get(2).map(|m| m.as_str()) {
                None => (3, 0),
                Some("beta") => (2, c[3].parse().unwrap_or(0)),
                _ => (1, c[3].parse().unwrap_or(0)),
            };
            (stage, major, minor)
        }
        None => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_share_one_table() {
        let r = Registry::new();
        let core = r.find("", "v1", "events").unwrap();
        let ev = r.find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.store, ev.store);
        assert_eq!(ev.view, View::EventsV1);
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "v1beta1", "v1", "v1beta2"];
        v.sort_by_key(|s| std::cmp::Reverse(version_priority(s)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }
}
