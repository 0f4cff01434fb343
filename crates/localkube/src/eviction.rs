//! What an eviction (pods/eviction) does, decided from the pod and the PodDisruptionBudgets of
//! its namespace, as kube-apiserver decides it. The budget's status is what the disruption
//! controller (`crate::disruption`) last wrote. `api::evict` carries the plan out.

use serde_json::{Map, Value, json};

use crate::disruption::{is_deleting, is_ready, set_condition};
use crate::selectors::label_selector_from_object;
use crate::status::ApiError;

/// The most evictions a budget may record before a controller confirms them.
pub const MAX_DISRUPTED_PODS: usize = 2000;

/// How long a client is told to wait while a budget has not been processed.
const UNPROCESSED_RETRY_SECONDS: u64 = 10;

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// What to do for one eviction.
#[derive(Debug, Clone, PartialEq)]
pub enum EvictionPlan {
    /// Delete the pod; with `unchanged_since`, only if it is still at that resourceVersion (a
    /// pod that is not ready may go without taking from its budget, but not if it changed).
    Delete { unchanged_since: Option<String> },
    /// Write `budget` back as read but for its status (one disruption taken, the pod recorded),
    /// so at the resourceVersion read, then delete the pod.
    TakeFromBudget { budget: Value },
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A pod that has ended, has not started, or is already going needs no budget's leave.
fn needs_no_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || is_deleting(pod)
}

/// Whether budget `pdb` covers a pod with these labels. A budget with no selector, an empty
/// one or one that does not parse covers nothing (not everything).
fn covers(pdb: &Value, labels: &Map<String, Value>) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return false;
    };
    match label_selector_from_object(sel) {
        Ok(s) => !s.is_empty() && s.matches(labels),
        Err(_) => false,
    }
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The 429 of a budget that forbids the eviction, with its cause.
fn too_many_requests(cause: String, retry_after: u64) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError {
        code: 429,
        reason: "TooManyRequests".into(),
        message: VIOLATION.into(),
        details: Some(Box::new(details)),
    }
}

fn budget_forbidden(name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "poddisruptionbudgets.policy \"{name}\" is forbidden: {why}"
    ));
    e.details = Some(Box::new(
        json!({"name": name, "group": "policy", "kind": "poddisruptionbudget"}),
    ));
    e
}

/// Decides the eviction of `pod` among `budgets` (the namespace's PodDisruptionBudgets) at
/// `now` (RFC 3339).
pub fn plan(pod: &Value, budgets: &[Value], now: &str) -> Result<EvictionPlan, ApiError> {
    if needs_no_budget(pod) {
        return Ok(EvictionPlan::Delete {
            unchanged_since: None,
        });
    }
    let no_labels = Map::new();
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&no_labels);
    let covering: Vec<&Value> = budgets.iter().filter(|b| covers(b, labels)).collect();
    let pdb = match covering.as_slice() {
        [] => {
            return Ok(EvictionPlan::Delete {
                unchanged_since: None,
            });
        }
        [one] => *one,
        _ => {
            return Err(ApiError {
                code: 500,
                reason: "".into(),
                message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                details: None,
            });
        }
    };
    let name = pdb
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let current = int(pdb, "/status/currentHealthy");
    let desired = int(pdb, "/status/desiredHealthy");
    // A pod that is not ready does not count as healthy: it may go while the budget is met.
    if !is_ready(pod) && desired > 0 && current >= desired {
        let version = pod
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok(EvictionPlan::Delete {
            unchanged_since: Some(version.to_string()),
        });
    }
    if int(pdb, "/status/observedGeneration") < int(pdb, "/metadata/generation") {
        return Err(too_many_requests(
            format!("The disruption budget {name} is still being processed by the server."),
            UNPROCESSED_RETRY_SECONDS,
        ));
    }
    let allowed = int(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(budget_forbidden(
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(budget_forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            ),
            0,
        ));
    }
    let mut status = pdb.get("status").cloned().unwrap_or_else(|| json!({}));
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        let observed = status
            .get("observedGeneration")
            .cloned()
            .unwrap_or(json!(0));
        set_condition(&mut status, false, "InsufficientPods", "", observed, now);
    }
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !status.get("disruptedPods").is_some_and(Value::is_object) {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod_name] = json!(now);
    let mut budget = pdb.clone();
    budget["status"] = status;
    Ok(EvictionPlan::TakeFromBudget { budget })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-07T22:55:00Z";

    fn pod(phase: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": "web-1", "resourceVersion": "41", "labels": {"app": "web"}},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    }

    fn budget(name: &str, selector: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": name, "generation": 1, "resourceVersion": "7"},
            "spec": {"selector": selector, "minAvailable": 2},
            "status": status
        })
    }

    fn processed(allowed: i64) -> Value {
        json!({"observedGeneration": 1, "disruptionsAllowed": allowed,
               "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3})
    }

    fn web() -> Value {
        json!({"matchLabels": {"app": "web"}})
    }

    fn delete() -> EvictionPlan {
        EvictionPlan::Delete {
            unchanged_since: None,
        }
    }

    fn refused(r: Result<EvictionPlan, ApiError>) -> Value {
        r.expect_err("refused").to_status()
    }

    #[test]
    fn a_pod_that_needs_no_budget_is_deleted() {
        let none = budget("pb", web(), processed(0));
        for phase in ["Pending", "Succeeded", "Failed"] {
            assert_eq!(
                plan(&pod(phase, false), std::slice::from_ref(&none), NOW),
                Ok(delete())
            );
        }
        let mut going = pod("Running", true);
        going["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(plan(&going, &[none], NOW), Ok(delete()));
    }

    #[test]
    fn budgets_that_cover_nothing_are_passed_over() {
        let running = pod("Running", true);
        let budgets = [
            budget("other", json!({"matchLabels": {"app": "db"}}), processed(0)),
            budget("empty", json!({}), processed(0)),
            budget("null", Value::Null, processed(0)),
            budget(
                "bad",
                json!({"matchExpressions": [{"key": "app", "operator": "Near"}]}),
                processed(0),
            ),
        ];
        assert_eq!(plan(&running, &budgets, NOW), Ok(delete()));
        assert_eq!(plan(&running, &[], NOW), Ok(delete()));
    }

    #[test]
    fn two_budgets_are_kube_apiservers_500() {
        let s = refused(plan(
            &pod("Running", true),
            &[
                budget("a", web(), processed(1)),
                budget(
                    "b",
                    json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                    processed(1),
                ),
            ],
            NOW,
        ));
        assert_eq!(s["code"], 500);
        assert!(s.get("reason").is_none(), "{s}");
        assert_eq!(
            s["message"],
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        );
    }

    #[test]
    fn a_pod_not_ready_goes_at_its_version_while_the_budget_is_met() {
        let b = budget("pb", web(), processed(0));
        assert_eq!(
            plan(&pod("Running", false), &[b], NOW),
            Ok(EvictionPlan::Delete {
                unchanged_since: Some("41".into())
            })
        );
        // Not met: the budget decides.
        let mut short = processed(0);
        short["currentHealthy"] = json!(1);
        let s = refused(plan(
            &pod("Running", false),
            &[budget("pb", web(), short)],
            NOW,
        ));
        assert_eq!(s["code"], 429);
    }

    #[test]
    fn an_unprocessed_budget_asks_to_retry_in_ten_seconds() {
        let fresh = budget(
            "pb",
            web(),
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        );
        let s = refused(plan(&pod("Running", true), &[fresh], NOW));
        assert_eq!(
            s,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                   "reason": "TooManyRequests",
                   "details": {"causes": [{"reason": "DisruptionBudget",
                       "message": "The disruption budget pb is still being processed by the server."}],
                       "retryAfterSeconds": 10},
                   "code": 429})
        );
    }

    #[test]
    fn a_budget_with_nothing_left_refuses_with_its_counts() {
        let s = refused(plan(
            &pod("Running", true),
            &[budget("pb", web(), processed(0))],
            NOW,
        ));
        assert_eq!(s["code"], 429);
        assert_eq!(
            s["details"],
            json!({"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget pb needs 2 healthy pods and has 3 currently"}]})
        );
    }

    #[test]
    fn broken_budgets_are_forbidden() {
        let s = refused(plan(
            &pod("Running", true),
            &[budget("pb", web(), processed(-1))],
            NOW,
        ));
        assert_eq!(s["code"], 403);
        assert_eq!(
            s["message"],
            "poddisruptionbudgets.policy \"pb\" is forbidden: pdb disruptions allowed is negative"
        );
        let mut full = processed(1);
        full["disruptedPods"] = Value::Object(
            (0..=MAX_DISRUPTED_PODS)
                .map(|i| (format!("p{i}"), json!(NOW)))
                .collect(),
        );
        let s = refused(plan(
            &pod("Running", true),
            &[budget("pb", web(), full)],
            NOW,
        ));
        assert_eq!(s["code"], 403);
    }

    #[test]
    fn taking_the_last_disruption_records_the_pod_and_the_condition() {
        let Ok(EvictionPlan::TakeFromBudget { budget }) = plan(
            &pod("Running", true),
            &[budget("pb", web(), processed(1))],
            NOW,
        ) else {
            panic!("expected a budget write");
        };
        assert_eq!(
            (
                &budget["metadata"]["name"],
                &budget["metadata"]["resourceVersion"]
            ),
            (&json!("pb"), &json!("7"))
        );
        assert_eq!(
            budget["status"],
            json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 3,
                   "desiredHealthy": 2, "expectedPods": 3,
                   "disruptedPods": {"web-1": NOW},
                   "conditions": [{"type": "DisruptionAllowed", "status": "False",
                       "reason": "InsufficientPods", "message": "", "observedGeneration": 1,
                       "lastTransitionTime": NOW}]})
        );
    }

    #[test]
    fn taking_one_of_several_keeps_the_condition_alone() {
        let mut before = processed(2);
        before["conditions"] = json!([{"type": "DisruptionAllowed", "status": "True",
            "reason": "SufficientPods", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        let Ok(EvictionPlan::TakeFromBudget { budget: taken }) = plan(
            &pod("Running", true),
            &[budget("pb", web(), before.clone())],
            NOW,
        ) else {
            panic!("expected a budget write");
        };
        let status = &taken["status"];
        assert_eq!(status["disruptionsAllowed"], 1);
        assert_eq!(status["conditions"], before["conditions"]);
        assert_eq!(status["disruptedPods"], json!({"web-1": NOW}));
    }
}
