//! Access reviews (`authorization.k8s.io/v1` SubjectAccessReview and SelfSubjectAccessReview):
//! localkube's admin identity, and the decision kube-apiserver's authorizers would give (the
//! admin and `system:masters` may do anything, everyone else what RBAC grants). Reviews are
//! answered, never stored.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::rbac::{self, Attributes, Policy, UserInfo};
use crate::state::Core;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::Stored;

/// The user name of the bearer token in localkube's kubeconfig (besides ServiceAccount tokens).
pub const ADMIN_USER: &str = "localkube-admin";

/// The groups of the admin: `system:masters` is allowed everything, as in kube-apiserver.
pub const ADMIN_GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

const GROUP: &str = "authorization.k8s.io";

/// The answer to one review: the request echoed with its `status`. A SelfSubjectAccessReview
/// asks about `requester`; `policy` gives the RBAC objects that apply in a namespace.
pub(crate) fn review(
    kind: &str,
    mut body: Value,
    requester: &UserInfo,
    policy: impl Fn(&str) -> Arc<Policy>,
) -> ApiResult<Value> {
    check(kind, &body)?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let subject = match kind {
        "SelfSubjectAccessReview" => requester.clone(),
        _ => UserInfo {
            name: spec
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            groups: string_list(spec.get("groups")),
        },
    };
    let attrs = rbac::review_attributes(&spec);
    body["status"] = decide(&subject, &attrs, &policy(&attrs.namespace));
    body["apiVersion"] = json!(format!("{GROUP}/v1"));
    body["kind"] = json!(kind);
    if body.get("metadata").is_none_or(Value::is_null) {
        body["metadata"] = json!({});
    }
    Ok(body)
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The decision for a subject: the admin and `system:masters` members may do anything; anyone
/// else what RBAC grants. A denial has no reason, as with kube's RBAC authorizer.
pub(crate) fn decide(user: &UserInfo, attrs: &Attributes, policy: &Policy) -> Value {
    if user.name == ADMIN_USER || user.is_master() {
        return json!({
            "allowed": true,
            "reason": "localkube: the admin (group system:masters) is allowed everything",
        });
    }
    let d = rbac::authorize(policy, user, attrs);
    if d.allowed {
        json!({"allowed": true, "reason": d.reason})
    } else {
        json!({"allowed": false})
    }
}

/// Policies already read, per namespace, with the resourceVersions of the objects they were
/// read from: a request parses roles and bindings only after one of them changed.
#[derive(Default)]
pub(crate) struct PolicyCache {
    by_namespace: Mutex<HashMap<String, ReadPolicy>>,
}

/// A policy and the resourceVersions of what it was read from.
type ReadPolicy = (Vec<u64>, Arc<Policy>);

/// Namespaces remembered at most; past that the cache starts over.
const CACHED_NAMESPACES: usize = 1024;

/// The RBAC objects of the store that apply to requests in `namespace` (empty: cluster-wide).
pub(crate) fn policy(core: &Core, cache: &PolicyCache, namespace: &str) -> Arc<Policy> {
    let stored = |plural: &str, ns: Option<&str>| -> Vec<Arc<Stored>> {
        core.registry
            .find(RBAC_GROUP, "v1", plural)
            .map(|rt| core.store.list(&rt.store, ns).0)
            .unwrap_or_default()
    };
    let namespaced = |plural: &str| {
        if namespace.is_empty() {
            Vec::new()
        } else {
            stored(plural, Some(namespace))
        }
    };
    let tables = [
        stored("clusterroles", None),
        stored("clusterrolebindings", None),
        namespaced("roles"),
        namespaced("rolebindings"),
    ];
    // resourceVersions are unique in the store: the same list of them is the same objects.
    let key: Vec<u64> = tables
        .iter()
        .flat_map(|t| t.iter().map(|o| o.rv()).chain([u64::MAX]))
        .collect();
    if let Some((k, p)) = cache.by_namespace.lock().get(namespace)
        && *k == key
    {
        return p.clone();
    }
    let values = |t: &[Arc<Stored>]| t.iter().map(|o| o.value()).collect::<Vec<Value>>();
    let p = Arc::new(Policy {
        cluster_roles: values(&tables[0]),
        cluster_role_bindings: values(&tables[1]),
        roles: values(&tables[2]),
        role_bindings: values(&tables[3]),
    });
    let mut by_namespace = cache.by_namespace.lock();
    if by_namespace.len() >= CACHED_NAMESPACES {
        by_namespace.clear();
    }
    by_namespace.insert(namespace.to_string(), (key, p.clone()));
    p
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// kube-apiserver's validation of a review's spec (and its empty metadata).
fn check(kind: &str, body: &Value) -> ApiResult<()> {
    let spec = body.get("spec").unwrap_or(&Value::Null);
    let present = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    let mut causes = Vec::new();
    let invalid = |field: &str, value: &str, why: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field: field.into(),
    };
    match (
        present("resourceAttributes"),
        present("nonResourceAttributes"),
    ) {
        (true, true) => causes.push(invalid(
            "spec.nonResourceAttributes",
            "\"object\"",
            "cannot be specified in combination with resourceAttributes",
        )),
        (false, false) => causes.push(invalid(
            "spec.resourceAttributes",
            "\"null\"",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    if kind == "SubjectAccessReview" {
        let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
        if user.is_empty() && string_list(spec.get("groups")).is_empty() {
            causes.push(invalid(
                "spec.user",
                "\"\"",
                "at least one of user or group must be specified",
            ));
        }
    }
    let meta_empty = body
        .get("metadata")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| k == "creationTimestamp" || k == "managedFields" || v.is_null())
        });
    if !meta_empty {
        causes.push(invalid("metadata", "\"object\"", "must be empty"));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(GROUP, kind, "", causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(kind: &str, body: Value) -> ApiResult<Value> {
        let requester = UserInfo::service_account("default", "sa");
        review(kind, body, &requester, |_| Arc::new(Policy::default()))
    }

    fn sar(spec: Value) -> Value {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
    }

    #[test]
    fn decisions_by_subject() {
        let attrs = json!({"verb": "get", "resource": "pods"});
        let table = [
            (json!({"user": ADMIN_USER}), true),
            (
                json!({"user": "someone", "groups": ["system:masters"]}),
                true,
            ),
            (json!({"groups": ["system:masters"]}), true),
            (json!({"user": "system:anonymous"}), false),
            (
                json!({"user": "alice", "groups": ["system:authenticated"]}),
                false,
            ),
            (json!({"groups": ["devs"]}), false),
        ];
        for (subject, allowed) in table {
            let mut spec = subject.clone();
            spec["resourceAttributes"] = attrs.clone();
            let out = rev("SubjectAccessReview", sar(spec.clone())).unwrap();
            assert_eq!(out["status"]["allowed"], allowed, "{subject}");
            assert_eq!(
                out["status"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                allowed,
                "a reason for allowing, none for denying"
            );
            assert_eq!(out["spec"], spec, "the spec is echoed");
            assert_eq!(out["kind"], "SubjectAccessReview");
        }
    }

    #[test]
    fn invalid_specs_are_422_with_the_field() {
        let table = [
            (json!({"user": "a"}), "spec.resourceAttributes"),
            (
                json!({"user": "a", "resourceAttributes": {}, "nonResourceAttributes": {}}),
                "spec.nonResourceAttributes",
            ),
            (json!({"resourceAttributes": {"verb": "get"}}), "spec.user"),
        ];
        for (spec, field) in table {
            let e = rev("SubjectAccessReview", sar(spec)).unwrap_err();
            assert_eq!(e.code, 422);
            assert!(e.message.contains(field), "{}", e.message);
        }
        let named =
            json!({"metadata": {"name": "x"}, "spec": {"user": "a", "resourceAttributes": {}}});
        assert_eq!(rev("SubjectAccessReview", named).unwrap_err().code, 422);
    }

    #[test]
    fn self_reviews_ask_about_the_requester() {
        let body = json!({"spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}});
        let out = review(
            "SelfSubjectAccessReview",
            body.clone(),
            &UserInfo::admin(),
            |_| Arc::new(Policy::default()),
        )
        .unwrap();
        assert_eq!(out["status"]["allowed"], true);
        let out = rev("SelfSubjectAccessReview", body.clone()).unwrap();
        assert_eq!(out["status"]["allowed"], false);
        let granted = |ns: &str| {
            Arc::new(Policy {
                role_bindings: vec![json!({"metadata": {"name": "b", "namespace": ns},
                "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]})],
                cluster_roles: vec![json!({"metadata": {"name": "r"},
                "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]})],
                ..Default::default()
            })
        };
        let out = review(
            "SelfSubjectAccessReview",
            body,
            &UserInfo::service_account("default", "sa"),
            granted,
        )
        .unwrap();
        assert_eq!(out["status"]["allowed"], true);
        assert_eq!(
            out["status"]["reason"],
            r#"RBAC: allowed by RoleBinding "b/default" of ClusterRole "r" to ServiceAccount "sa/default""#
        );
        assert_eq!(out["kind"], "SelfSubjectAccessReview");
        assert_eq!(out["spec"]["resourceAttributes"]["verb"], "create");
    }
}
