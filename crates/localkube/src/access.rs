//! Access reviews (`authorization.k8s.io/v1` SubjectAccessReview and SelfSubjectAccessReview):
//! who localkube's one identity is, and the decision kube-apiserver's authorizer would give.
//! Reviews are answered, never stored.

use serde_json::{Value, json};

use crate::status::{ApiError, ApiResult, Cause};

/// The user name of the bearer token in localkube's kubeconfig (its only credential).
pub const ADMIN_USER: &str = "localkube-admin";

/// The groups of the admin: `system:masters` is allowed everything, as in kube-apiserver.
pub const ADMIN_GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

const GROUP: &str = "authorization.k8s.io";

/// The answer to one review: the request echoed with its `status`.
pub fn review(kind: &str, mut body: Value) -> ApiResult<Value> {
    check(kind, &body)?;
    let status = match kind {
        // Only the admin's bearer token gets this far.
        "SelfSubjectAccessReview" => allowed_admin(),
        _ => decide(
            body.pointer("/spec/user")
                .and_then(Value::as_str)
                .unwrap_or(""),
            &string_list(body.pointer("/spec/groups")),
        ),
    };
    body["status"] = status;
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

fn allowed_admin() -> Value {
    json!({
        "allowed": true,
        "reason": "localkube: the admin (group system:masters) is allowed everything",
    })
}

/// The decision for a subject: the admin and `system:masters` members may do anything;
/// localkube knows no one else, so it has no rule that allows them anything.
pub fn decide(user: &str, groups: &[String]) -> Value {
    if user == ADMIN_USER || groups.iter().any(|g| g == "system:masters") {
        return allowed_admin();
    }
    let who = if user.is_empty() {
        format!("groups {groups:?}")
    } else {
        format!("user {user:?}")
    };
    json!({
        "allowed": false,
        "reason": format!("localkube: no rule allows {who}; only {ADMIN_USER:?} and members of \"system:masters\" are allowed"),
    })
}

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
            let out = review("SubjectAccessReview", sar(spec.clone())).unwrap();
            assert_eq!(out["status"]["allowed"], allowed, "{subject}");
            assert!(
                out["status"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty())
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
            let e = review("SubjectAccessReview", sar(spec)).unwrap_err();
            assert_eq!(e.code, 422);
            assert!(e.message.contains(field), "{}", e.message);
        }
        let named =
            json!({"metadata": {"name": "x"}, "spec": {"user": "a", "resourceAttributes": {}}});
        assert_eq!(review("SubjectAccessReview", named).unwrap_err().code, 422);
    }

    #[test]
    fn self_reviews_need_no_subject_and_are_allowed() {
        let body = json!({"spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}});
        let out = review("SelfSubjectAccessReview", body).unwrap();
        assert_eq!(out["status"]["allowed"], true);
        assert_eq!(out["kind"], "SelfSubjectAccessReview");
        assert_eq!(out["spec"]["resourceAttributes"]["verb"], "create");
    }
}
