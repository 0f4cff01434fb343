//! Access reviews (`authorization.k8s.io/v1` SubjectAccessReview and SelfSubjectAccessReview):
//! localkube's admin identity, and the decision kube-apiserver's authorizers would give (the
//! admin and `system:masters` may do anything, everyone else what RBAC grants). Reviews are
//! answered, never stored.

use serde_json::{Value, json};

use crate::rbac::{self, Attributes, Policy, UserInfo};
use crate::state::Core;
use crate::status::{ApiError, ApiResult, Cause};

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
    policy: impl Fn(&str) -> Policy,
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

/// The RBAC objects of the store that apply to requests in `namespace` (empty: cluster-wide).
pub(crate) fn policy(core: &Core, namespace: &str) -> Policy {
    let all = |plural: &str, ns: Option<&str>| -> Vec<Value> {
        core.registry
            .find(RBAC_GROUP, "v1", plural)
            .map(|rt| {
                core.store
                    .list(&rt.store, ns)
                    .0
                    .iter()
                    .map(|o| o.value())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut p = Policy {
        cluster_roles: all("clusterroles", None),
        cluster_role_bindings: all("clusterrolebindings", None),
        ..Default::default()
    };
    if !namespace.is_empty() {
        p.roles = all("roles", Some(namespace));
        p.role_bindings = all("rolebindings", Some(namespace));
    }
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
        review(kind, body, &requester, |_| Policy::default())
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
            |_| Policy::default(),
        )
        .unwrap();
        assert_eq!(out["status"]["allowed"], true);
        let out = rev("SelfSubjectAccessReview", body.clone()).unwrap();
        assert_eq!(out["status"]["allowed"], false);
        let granted = |ns: &str| Policy {
            role_bindings: vec![json!({"metadata": {"name": "b", "namespace": ns},
                "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]})],
            cluster_roles: vec![json!({"metadata": {"name": "r"},
                "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]})],
            ..Default::default()
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
