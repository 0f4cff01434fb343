//! RBAC as kube-apiserver evaluates it: the attributes of a request (kube's RequestInfo), the
//! rules of Roles and ClusterRoles (with aggregation) that bindings grant a user, the decision,
//! and the 403 Status of a denial. Pure: the caller reads the policy objects from the store.

use serde_json::{Value, json};

use crate::status::{ApiError, qualified};

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// localkube's admin (the kubeconfig's bearer token, and the server's own writes).
    pub fn admin() -> Self {
        UserInfo {
            name: crate::access::ADMIN_USER.into(),
            groups: crate::access::ADMIN_GROUPS.map(str::to_string).to_vec(),
        }
    }

    /// The identity of a ServiceAccount's token.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Members of `system:masters` pass every check, as kube-apiserver's privileged group.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What a request asks to do, as RBAC sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path (what non-resource rules match).
    pub path: String,
}

/// kube's RequestInfo: the attributes of an HTTP request from its method, path and query.
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/VERSION/RESOURCE... and /apis/GROUP/VERSION/RESOURCE...; shorter paths are discovery.
    let mut rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => rest,
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => {
            a.api_group = group.to_string();
            rest
        }
        _ => return a,
    };
    a.resource_request = true;
    let special = matches!(rest.first(), Some(&("watch" | "proxy"))) && rest.len() >= 2;
    if special {
        a.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        a.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest.first() == Some(&"namespaces")
        && let Some(ns) = rest.get(1)
    {
        a.namespace = ns.to_string();
        // Beyond the namespace's own subresources, the namespace only scopes a resource.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && a.verb != "proxy" {
        a.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        a.name = rest[1].to_string();
    }
    a.resource = rest.first().unwrap_or(&"").to_string();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    let param = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if a.name.is_empty() && a.verb == "get" {
        let watch = param("watch").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        a.verb = if watch { "watch" } else { "list" }.into();
        // A list of one name by field selector is authorized as that name.
        if let Some(name) = param("fieldSelector").and_then(exact_name) {
            a.name = name;
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// `metadata.name=X` (or `==`) as the whole field selector.
fn exact_name(selector: &str) -> Option<String> {
    let (k, v) = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))?;
    (k.trim() == "metadata.name" && !selector.contains(',') && !v.is_empty() && !v.contains('/'))
        .then(|| v.trim().to_string())
}

/// The Roles, ClusterRoles and bindings an evaluation reads: the cluster-wide ones and those
/// of the request's namespace.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub cluster_roles: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
    /// Roles of the request's namespace.
    pub roles: Vec<Value>,
    /// RoleBindings of the request's namespace.
    pub role_bindings: Vec<Value>,
}

/// An authorization decision with kube's RBAC reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Paths any authenticated user may get, as kube's bootstrap `system:discovery` and
/// `system:public-info-viewer` ClusterRoles grant `system:authenticated`.
const PUBLIC_PATHS: [&str; 9] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
];
const PUBLIC_EXACT: [&str; 2] = ["/livez", "/readyz"];

/// What kube's bootstrap `system:basic-user` lets every authenticated user create: reviews of
/// their own access and identity.
const SELF_REVIEWS: [(&str, &str); 3] = [
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// Whether `user` may do `attrs` under `policy`.
pub fn authorize(policy: &Policy, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.is_master() {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    if !attrs.resource_request
        && attrs.verb == "get"
        && user.groups.iter().any(|g| g == "system:authenticated")
        && (PUBLIC_EXACT.contains(&attrs.path.as_str())
            || PUBLIC_PATHS.iter().any(|p| url_matches(p, &attrs.path)))
    {
        return Decision {
            allowed: true,
            reason: "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\"".into(),
        };
    }
    if attrs.resource_request
        && attrs.verb == "create"
        && user.groups.iter().any(|g| g == "system:authenticated")
        && SELF_REVIEWS.contains(&(attrs.api_group.as_str(), attrs.resource.as_str()))
        && attrs.subresource.is_empty()
    {
        return Decision {
            allowed: true,
            reason: "RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"".into(),
        };
    }
    for b in &policy.cluster_role_bindings {
        let Some(subject) = matching_subject(b, user, "") else {
            continue;
        };
        let role_name = str_at(b, "/roleRef/name");
        if str_at(b, "/roleRef/kind") != "ClusterRole" {
            continue;
        }
        if cluster_role_rules(policy, role_name)
            .iter()
            .any(|r| rule_allows(r, attrs))
        {
            return allowed(format!(
                "ClusterRoleBinding {:?} of ClusterRole {role_name:?} to {}",
                str_at(b, "/metadata/name"),
                describe_subject(subject, "")
            ));
        }
    }
    if attrs.namespace.is_empty() {
        return denied();
    }
    for b in &policy.role_bindings {
        if str_at(b, "/metadata/namespace") != attrs.namespace {
            continue;
        }
        let Some(subject) = matching_subject(b, user, &attrs.namespace) else {
            continue;
        };
        let (kind, role_name) = (str_at(b, "/roleRef/kind"), str_at(b, "/roleRef/name"));
        let rules = match kind {
            "ClusterRole" => cluster_role_rules(policy, role_name),
            "Role" => policy
                .roles
                .iter()
                .filter(|r| {
                    str_at(r, "/metadata/name") == role_name
                        && str_at(r, "/metadata/namespace") == attrs.namespace
                })
                .flat_map(rules_of)
                .collect(),
            _ => continue,
        };
        if rules.iter().any(|r| rule_allows(r, attrs)) {
            return allowed(format!(
                "RoleBinding {:?} of {kind} {role_name:?} to {}",
                format!("{}/{}", str_at(b, "/metadata/name"), attrs.namespace),
                describe_subject(subject, &attrs.namespace)
            ));
        }
    }
    denied()
}

fn allowed(by: String) -> Decision {
    Decision {
        allowed: true,
        reason: format!("RBAC: allowed by {by}"),
    }
}

fn denied() -> Decision {
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The first subject of a binding that names `user` (a RoleBinding's namespace is the default
/// of its ServiceAccount subjects).
fn matching_subject<'a>(
    binding: &'a Value,
    user: &UserInfo,
    binding_namespace: &str,
) -> Option<&'a Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| {
            let name = str_at(s, "/name");
            match str_at(s, "/kind") {
                "User" => user.name == name,
                "Group" => user.groups.iter().any(|g| g == name),
                "ServiceAccount" => {
                    let ns = match str_at(s, "/namespace") {
                        "" => binding_namespace,
                        ns => ns,
                    };
                    !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

/// A subject in kube's reason words: `User "alice"`, `ServiceAccount "name/namespace"`.
fn describe_subject(s: &Value, binding_namespace: &str) -> String {
    let (kind, name) = (str_at(s, "/kind"), str_at(s, "/name"));
    if kind == "ServiceAccount" {
        let ns = match str_at(s, "/namespace") {
            "" => binding_namespace,
            ns => ns,
        };
        return format!("{kind} {:?}", format!("{name}/{ns}"));
    }
    format!("{kind} {name:?}")
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A ClusterRole's rules; with an `aggregationRule`, the rules of every ClusterRole its
/// selectors match (what kube's controller-manager would have written into it).
fn cluster_role_rules(policy: &Policy, name: &str) -> Vec<Value> {
    let Some(role) = policy
        .cluster_roles
        .iter()
        .find(|r| str_at(r, "/metadata/name") == name)
    else {
        return Vec::new();
    };
    let Some(selectors) = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    else {
        return rules_of(role);
    };
    policy
        .cluster_roles
        .iter()
        .filter(|r| str_at(r, "/metadata/name") != name)
        .filter(|r| {
            let labels = r.pointer("/metadata/labels");
            selectors.iter().any(|s| selector_matches(s, labels))
        })
        .flat_map(rules_of)
        .collect()
}

/// A metav1.LabelSelector (matchLabels and matchExpressions) against an object's labels. An
/// empty selector matches nothing here, as kube's aggregation controller skips it.
fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let exprs_ok = exprs.into_iter().flatten().all(|e| {
        let key = str_at(e, "/key");
        let values = strings(e, "values");
        match str_at(e, "/operator") {
            "In" => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => label(key).is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// kube's RuleAllows.
fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let has =
        |key: &str, want: &str, all: &str| strings(rule, key).iter().any(|x| x == all || x == want);
    if !has("verbs", &a.verb, "*") {
        return false;
    }
    if !a.resource_request {
        return strings(rule, "nonResourceURLs")
            .iter()
            .any(|u| url_matches(u, &a.path));
    }
    if !has("apiGroups", &a.api_group, "*") {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    // `*/sub` matches a subresource of any resource; `res/*` is no wildcard in kube.
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.contains(&a.name)
}

/// A nonResourceURLs entry: exact, or a prefix ending in `*`.
fn url_matches(rule_url: &str, path: &str) -> bool {
    rule_url == "*"
        || rule_url == path
        || rule_url
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// The 403 kube-apiserver answers a denied request with (its ForbiddenStatusError).
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    let mut why = format!("User {:?} cannot {}", user.name, a.verb);
    if !a.resource_request {
        why.push_str(&format!(" path {:?}", a.path));
        let mut e = ApiError::forbidden(format!("forbidden: {why}"));
        // No resource: kube's details are all empty.
        e.details = Some(Box::new(json!({})));
        return e;
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    why.push_str(&format!(
        " resource {resource:?} in API group {:?}",
        a.api_group
    ));
    if a.namespace.is_empty() {
        why.push_str(" at the cluster scope");
    } else {
        why.push_str(&format!(" in the namespace {:?}", a.namespace));
    }
    let what = qualified(&a.api_group, &a.resource);
    let message = if a.name.is_empty() {
        format!("{what} is forbidden: {why}")
    } else {
        format!("{what} {:?} is forbidden: {why}", a.name)
    };
    let mut details = serde_json::Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), json!(a.name));
    }
    if !a.api_group.is_empty() {
        details.insert("group".into(), json!(a.api_group));
    }
    details.insert("kind".into(), json!(a.resource));
    let mut e = ApiError::forbidden(message);
    e.details = Some(Box::new(Value::Object(details)));
    e
}

/// The attributes of a SubjectAccessReview's spec (`resourceAttributes` or
/// `nonResourceAttributes`).
pub fn review_attributes(spec: &Value) -> Attributes {
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let subresource = str_at(r, "/subresource").to_string();
        return Attributes {
            verb: str_at(r, "/verb").into(),
            resource_request: true,
            api_group: str_at(r, "/group").into(),
            resource: str_at(r, "/resource").into(),
            subresource,
            namespace: str_at(r, "/namespace").into(),
            name: str_at(r, "/name").into(),
            path: String::new(),
        };
    }
    let n = spec.get("nonResourceAttributes").unwrap_or(&Value::Null);
    Attributes {
        verb: str_at(n, "/verb").into(),
        path: str_at(n, "/path").into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn request_info_from_method_path_and_query() {
        let table = [
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                None,
                attrs("list", "", "pods", "", "default", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                Some("watch=true"),
                attrs("watch", "", "pods", "", "default", ""),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/default/pods",
                None,
                attrs("watch", "", "pods", "", "default", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/p1",
                None,
                attrs("get", "", "pods", "", "default", "p1"),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/p1/log",
                None,
                attrs("get", "", "pods", "log", "default", "p1"),
            ),
            (
                "POST",
                "/api/v1/namespaces/default/serviceaccounts/sa/token",
                None,
                attrs("create", "", "serviceaccounts", "token", "default", "sa"),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                None,
                attrs("update", "apps", "deployments", "scale", "ns", "d"),
            ),
            (
                "PATCH",
                "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1/status",
                None,
                attrs(
                    "patch",
                    "kubevirt.io",
                    "virtualmachines",
                    "status",
                    "default",
                    "vm1",
                ),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/configmaps",
                None,
                attrs("deletecollection", "", "configmaps", "", "default", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/configmaps/c",
                None,
                attrs("delete", "", "configmaps", "", "default", "c"),
            ),
            (
                "GET",
                "/api/v1/nodes",
                None,
                attrs("list", "", "nodes", "", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                None,
                attrs("get", "", "namespaces", "", "kube-system", "kube-system"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/x/finalize",
                None,
                attrs("update", "", "namespaces", "finalize", "x", "x"),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/configmaps",
                Some("fieldSelector=metadata.name%3Dc1"),
                attrs("list", "", "configmaps", "", "default", "c1"),
            ),
        ];
        for (method, path, query, mut want) in table {
            want.path = path.into();
            assert_eq!(
                request_attributes(method, path, query),
                want,
                "{method} {path}"
            );
        }
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/version",
            "/openapi/v2",
        ] {
            let a = request_attributes("GET", path, None);
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, "get");
        }
    }

    fn sa(name: &str) -> UserInfo {
        UserInfo::service_account("default", name)
    }

    fn policy() -> Policy {
        Policy {
            cluster_roles: vec![
                json!({"metadata": {"name": "cm-edit"}, "rules": [
                    {"verbs": ["get", "list", "update"], "apiGroups": [""], "resources": ["configmaps"]}]}),
                json!({"metadata": {"name": "vm-status"}, "rules": [
                    {"verbs": ["*"], "apiGroups": ["kubevirt.io"], "resources": ["*/status"]}]}),
                json!({"metadata": {"name": "pods-star"}, "rules": [
                    {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}]}),
                json!({"metadata": {"name": "named"}, "rules": [
                    {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}]}),
                json!({"metadata": {"name": "nodes"}, "rules": [
                    {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]},
                    {"verbs": ["get"], "nonResourceURLs": ["/metrics", "/logs/*"]}]}),
                json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [
                    {"matchLabels": {"agg": "yes"}}]}, "rules": []}),
                json!({"metadata": {"name": "part", "labels": {"agg": "yes"}}, "rules": [
                    {"verbs": ["create"], "apiGroups": ["apps"], "resources": ["deployments"]}]}),
            ],
            cluster_role_bindings: vec![json!({"metadata": {"name": "nodes-to-ops"},
                "roleRef": {"kind": "ClusterRole", "name": "nodes"},
                "subjects": [{"kind": "Group", "name": "ops"}]})],
            roles: vec![
                json!({"metadata": {"name": "local", "namespace": "default"}, "rules": [
                {"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "ed", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "cm-edit"},
                    "subjects": [{"kind": "ServiceAccount", "name": "editor"}]}),
                json!({"metadata": {"name": "many", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "agg"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
                json!({"metadata": {"name": "st", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "vm-status"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
                json!({"metadata": {"name": "ps", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "pods-star"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
                json!({"metadata": {"name": "nm", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "named"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
                json!({"metadata": {"name": "lr", "namespace": "default"},
                    "roleRef": {"kind": "Role", "name": "local"},
                    "subjects": [{"kind": "Group", "name": "system:serviceaccounts:default"}]}),
            ],
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn decisions() {
        let p = policy();
        let alice = user("alice", &["system:authenticated"]);
        let ops = user("bob", &["ops", "system:authenticated"]);
        let table = [
            (
                sa("editor"),
                attrs("update", "", "configmaps", "", "default", "c"),
                true,
            ),
            (
                sa("editor"),
                attrs("delete", "", "configmaps", "", "default", "c"),
                false,
            ),
            (
                sa("editor"),
                attrs("get", "", "configmaps", "", "other", "c"),
                false,
            ),
            (
                sa("editor"),
                attrs("get", "apps", "configmaps", "", "default", "c"),
                false,
            ),
            (
                sa("editor"),
                attrs("get", "", "configmaps", "", "", ""),
                false,
            ),
            (
                sa("viewer"),
                attrs("get", "", "configmaps", "", "default", "c"),
                false,
            ),
            // Group subject: every ServiceAccount of the namespace.
            (
                sa("viewer"),
                attrs("delete", "", "pods", "", "default", "p"),
                true,
            ),
            (
                UserInfo::service_account("other", "viewer"),
                attrs("delete", "", "pods", "", "default", "p"),
                false,
            ),
            // Aggregation.
            (
                alice.clone(),
                attrs("create", "apps", "deployments", "", "default", ""),
                true,
            ),
            (
                alice.clone(),
                attrs("create", "apps", "deployments", "", "other", ""),
                false,
            ),
            // */sub
            (
                alice.clone(),
                attrs(
                    "patch",
                    "kubevirt.io",
                    "virtualmachines",
                    "status",
                    "default",
                    "vm",
                ),
                true,
            ),
            (
                alice.clone(),
                attrs(
                    "patch",
                    "kubevirt.io",
                    "virtualmachines",
                    "",
                    "default",
                    "vm",
                ),
                false,
            ),
            // res/* is literal in kube.
            (
                alice.clone(),
                attrs("get", "", "pods", "log", "default", "p"),
                false,
            ),
            (
                alice.clone(),
                attrs("get", "", "pods", "*", "default", "p"),
                true,
            ),
            // resourceNames
            (
                alice.clone(),
                attrs("get", "", "secrets", "", "default", "s1"),
                true,
            ),
            (
                alice.clone(),
                attrs("get", "", "secrets", "", "default", "s2"),
                false,
            ),
            (
                alice.clone(),
                attrs("list", "", "secrets", "", "default", ""),
                false,
            ),
            // ClusterRoleBinding, any namespace and the cluster scope.
            (ops.clone(), attrs("list", "", "nodes", "", "", ""), true),
            (ops.clone(), attrs("get", "", "nodes", "", "", "n"), false),
            (
                user("x", &["system:masters"]),
                attrs("delete", "", "nodes", "", "", "n"),
                true,
            ),
        ];
        for (who, a, want) in table {
            assert_eq!(authorize(&p, &who, &a).allowed, want, "{} {a:?}", who.name);
        }
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        let anyone = user("x", &["system:authenticated"]);
        for (who, p_, want) in [
            (&anyone, "/api", true),
            (&anyone, "/apis/apps/v1", true),
            (&anyone, "/version", true),
            (&anyone, "/openapi/v3/apis/apps/v1", true),
            (&anyone, "/metrics", false),
            (&ops, "/metrics", true),
            (&ops, "/logs/kubelet", true),
            (&user("y", &[]), "/api", false),
        ] {
            assert_eq!(authorize(&p, who, &path(p_)).allowed, want, "{p_}");
        }
    }

    #[test]
    fn reasons_name_the_binding_role_and_subject() {
        let p = policy();
        let d = authorize(
            &p,
            &sa("editor"),
            &attrs("get", "", "configmaps", "", "default", "c"),
        );
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "ed/default" of ClusterRole "cm-edit" to ServiceAccount "editor/default""#
        );
        let d = authorize(
            &p,
            &user("bob", &["ops"]),
            &attrs("list", "", "nodes", "", "", ""),
        );
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by ClusterRoleBinding "nodes-to-ops" of ClusterRole "nodes" to Group "ops""#
        );
        assert_eq!(
            authorize(&p, &sa("viewer"), &attrs("list", "", "nodes", "", "", "")),
            Decision {
                allowed: false,
                reason: String::new()
            }
        );
    }

    #[test]
    fn forbidden_is_worded_as_kube_apiserver() {
        let viewer = sa("viewer");
        let e = forbidden(
            &viewer,
            &attrs(
                "patch",
                "kubevirt.io",
                "virtualmachines",
                "status",
                "default",
                "vm1",
            ),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"virtualmachines.kubevirt.io "vm1" is forbidden: User "system:serviceaccount:default:viewer" cannot patch resource "virtualmachines/status" in API group "kubevirt.io" in the namespace "default""#
        );
        let s = e.to_status();
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(
            s["details"],
            json!({"name": "vm1", "group": "kubevirt.io", "kind": "virtualmachines"})
        );
        let e = forbidden(&viewer, &attrs("list", "", "nodes", "", "", ""));
        assert_eq!(
            e.message,
            r#"nodes is forbidden: User "system:serviceaccount:default:viewer" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        assert_eq!(e.to_status()["details"], json!({"kind": "nodes"}));
        let e = forbidden(
            &viewer,
            &Attributes {
                verb: "get".into(),
                path: "/metrics".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            e.message,
            r#"forbidden: User "system:serviceaccount:default:viewer" cannot get path "/metrics""#
        );
        assert_eq!(e.to_status()["details"], json!({}));
    }
}
