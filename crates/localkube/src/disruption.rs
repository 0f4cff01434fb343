//! The disruption controller: keeps each PodDisruptionBudget's status (how many of its pods are
//! healthy, how many must be, how many may go) as kube-controller-manager's does, so that
//! evictions (`crate::eviction`) have something to decide on. `budget_status` is the pure
//! decision; `run` watches pods and budgets and writes what changed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{Core, WriteOptions};
use crate::selectors::label_selector_from_object;

/// How long an evicted pod counts as going before it is counted again (the controller's
/// `DeletionTimeout`).
const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// How often budgets are computed again without a change (expired evictions).
const RESYNC: Duration = Duration::from_secs(30);

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whether the pod is being deleted.
pub fn is_deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Whether the pod's `Ready` condition is true.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The pods of the budget's namespace that its selector picks: none without a selector (or
/// with one that does not parse), all with an empty one.
fn selected<'a>(pdb: &Value, pods: &'a [Value]) -> Vec<&'a Value> {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let Ok(sel) = label_selector_from_object(sel) else {
        return Vec::new();
    };
    let none = Map::new();
    pods.iter()
        .filter(|p| {
            sel.matches(
                p.pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .unwrap_or(&none),
            )
        })
        .collect()
}

/// The status a budget should have now, among `pods` (those of its namespace); `None` when it
/// already has it.
pub fn budget_status(pdb: &Value, pods: &[Value], now: DateTime<Utc>) -> Option<Value> {
    let old = pdb.get("status").cloned().unwrap_or_else(|| json!({}));
    let pods = selected(pdb, pods);
    let status = match healthy_counts(pdb, &pods, &old, now) {
        Ok(s) => s,
        // As kube-controller-manager's fail-safe: nothing may go, the budget says why, and
        // its observedGeneration stays behind (evictions answer that it is being processed).
        Err(why) => {
            let mut s = old.clone();
            s["disruptionsAllowed"] = json!(0);
            let observed = s.get("observedGeneration").cloned().unwrap_or(json!(0));
            set_condition(&mut s, false, "SyncFailed", &why, observed, &stamp(now));
            s
        }
    };
    (status != old).then_some(status)
}

/// The counts of a budget that can be computed, with its condition.
fn healthy_counts(
    pdb: &Value,
    pods: &[&Value],
    old: &Value,
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let spec = pdb.get("spec").cloned().unwrap_or_else(|| json!({}));
    let (expected, desired) = match (spec.get("minAvailable"), spec.get("maxUnavailable")) {
        (Some(Value::Number(n)), _) => (pods.len() as i64, n.as_i64().unwrap_or(0)),
        (Some(Value::Null) | None, Some(Value::Null) | None) => (pods.len() as i64, 0),
        // A percentage, or maxUnavailable, needs the scale of the pods' controllers; localkube
        // serves none with a scale, as the controller finds none for a bare pod.
        _ => match pods.first() {
            None => (0, 0),
            Some(pod) => {
                return Err(format!("found no controllers for pod \"{}\"", name(pod)));
            }
        },
    };
    // Evicted pods still there count as going, until the timeout says the eviction failed.
    let mut disrupted = Map::new();
    if let Some(listed) = old.get("disruptedPods").and_then(Value::as_object) {
        for pod in pods.iter().filter(|p| !is_deleting(p)) {
            if let Some(at) = listed.get(name(pod))
                && time(at).is_some_and(|t| t + DELETION_TIMEOUT > now)
            {
                disrupted.insert(name(pod).to_string(), at.clone());
            }
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| !is_deleting(p) && !disrupted.contains_key(name(p)) && is_ready(p))
        .count() as i64;
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = pdb
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(0));
    let mut status = json!({
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(disrupted);
    }
    if let Some(c) = old.get("conditions") {
        status["conditions"] = c.clone();
    }
    let (ok, reason) = if allowed > 0 {
        (true, "SufficientPods")
    } else {
        (false, "InsufficientPods")
    };
    set_condition(&mut status, ok, reason, "", generation, &stamp(now));
    Ok(status)
}

/// Sets a budget status's `DisruptionAllowed` condition at `now` (RFC 3339); its transition
/// time moves only with its status.
pub fn set_condition(
    status: &mut Value,
    allowed: bool,
    reason: &str,
    message: &str,
    observed: Value,
    now: &str,
) {
    let value = if allowed { "True" } else { "False" };
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let mut fresh = json!({"type": "DisruptionAllowed", "status": value, "reason": reason,
        "message": message, "observedGeneration": observed,
        "lastTransitionTime": now});
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(c) => {
            if c["status"] == value {
                fresh["lastTransitionTime"] = c["lastTransitionTime"].clone();
            }
            *c = fresh;
        }
        None => conditions.push(fresh),
    }
}

/// Writes the status of every budget that changed; budgets that changed meanwhile wait for
/// the next pass.
fn pass(core: &Core) {
    let (Some(budgets), Some(pods)) = (
        core.registry.find("policy", "v1", "poddisruptionbudgets"),
        core.registry.find("", "v1", "pods"),
    ) else {
        return;
    };
    let opts = WriteOptions {
        field_manager: Some("disruption-controller".into()),
        ..Default::default()
    };
    let now = Utc::now();
    for pdb in core.store.list(&budgets.store, None).0 {
        let pdb = pdb.value();
        let ns = pdb
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let in_ns: Vec<Value> = core
            .store
            .list(&pods.store, Some(ns))
            .0
            .iter()
            .map(|p| p.value())
            .collect();
        if let Some(status) = budget_status(&pdb, &in_ns, now) {
            let mut next = pdb.clone();
            next["status"] = status;
            if let Err(e) = core.update(&budgets, ns, name(&pdb), next, &opts, true) {
                tracing::debug!("PodDisruptionBudget {ns}/{}: {e}", name(&pdb));
            }
        }
    }
}

/// Computes the budgets again whenever a pod or a budget changes, and every `RESYNC`.
pub async fn run(core: Arc<Core>) {
    let feed = |group: &str, plural: &str| {
        let rt = core.registry.find(group, "v1", plural)?;
        let sub = core
            .store
            .subscribe_from(&rt.store, core.store.current_rv());
        sub.ok().map(|s| s.live)
    };
    let (Some(mut pods), Some(mut budgets)) =
        (feed("", "pods"), feed("policy", "poddisruptionbudgets"))
    else {
        return;
    };
    loop {
        pass(&core);
        // Any news, lost news (lagged) included, means a pass; a closed feed, the end.
        let changed = async {
            tokio::select! {
                r = pods.recv() => r,
                r = budgets.recv() => r,
            }
        };
        if let Ok(Err(RecvError::Closed)) = tokio::time::timeout(RESYNC, changed).await {
            return;
        }
        // Let a burst of changes settle into one pass; drop what queued meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while pods.try_recv().is_ok() {}
        while budgets.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-07T23:30:00Z".parse().unwrap()
    }

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
               "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn budget(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "pb", "namespace": "default", "generation": 2},
               "spec": spec, "status": status})
    }

    fn fresh() -> Value {
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    }

    #[test]
    fn min_available_counts_ready_pods_and_allows_the_surplus() {
        let pods = [
            pod("a", true),
            pod("b", true),
            pod("c", true),
            pod("d", false),
        ];
        let status = budget_status(&budget(json!({"minAvailable": 2}), fresh()), &pods, now())
            .expect("a new status");
        assert_eq!(
            status,
            json!({"observedGeneration": 2, "disruptionsAllowed": 1, "currentHealthy": 3,
                   "desiredHealthy": 2, "expectedPods": 4,
                   "conditions": [{"type": "DisruptionAllowed", "status": "True",
                       "reason": "SufficientPods", "message": "", "observedGeneration": 2,
                       "lastTransitionTime": "2026-12-07T23:30:00Z"}]})
        );
        // Computed again with nothing changed: nothing to write.
        let again = budget(json!({"minAvailable": 2}), status);
        assert_eq!(budget_status(&again, &pods, now()), None);
    }

    #[test]
    fn too_few_healthy_allows_nothing() {
        let pods = [pod("a", true), pod("b", false)];
        let status =
            budget_status(&budget(json!({"minAvailable": 2}), fresh()), &pods, now()).unwrap();
        assert_eq!(status["disruptionsAllowed"], 0);
        assert_eq!(status["conditions"][0]["reason"], "InsufficientPods");
        // No pods at all: nothing may go either.
        let status =
            budget_status(&budget(json!({"minAvailable": 0}), fresh()), &[], now()).unwrap();
        assert_eq!(
            (&status["expectedPods"], &status["disruptionsAllowed"]),
            (&json!(0), &json!(0))
        );
    }

    #[test]
    fn an_evicted_pod_counts_as_going_until_it_goes_or_the_timeout_passes() {
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let recent = "2026-12-07T23:29:00Z";
        let mut status = fresh();
        status["disruptedPods"] = json!({"a": recent, "gone": recent});
        let s = budget_status(
            &budget(json!({"minAvailable": 1}), status.clone()),
            &pods,
            now(),
        )
        .unwrap();
        assert_eq!(s["disruptedPods"], json!({"a": recent}));
        assert_eq!(
            (&s["currentHealthy"], &s["disruptionsAllowed"]),
            (&json!(2), &json!(1))
        );
        // Two minutes later the pod is still there: the eviction is taken as failed.
        let late = "2026-12-07T23:27:59Z";
        status["disruptedPods"] = json!({"a": late});
        let s = budget_status(&budget(json!({"minAvailable": 1}), status), &pods, now()).unwrap();
        assert!(s.get("disruptedPods").is_none(), "{s}");
        assert_eq!(s["currentHealthy"], 3);
        // A pod being deleted is neither healthy nor listed.
        let mut going = pod("b", true);
        going["metadata"]["deletionTimestamp"] = json!(recent);
        let s = budget_status(
            &budget(json!({"minAvailable": 1}), fresh()),
            &[pod("a", true), going],
            now(),
        )
        .unwrap();
        assert_eq!(s["currentHealthy"], 1);
    }

    #[test]
    fn percentages_and_max_unavailable_fail_safe_without_controllers() {
        let pods = [pod("a", true), pod("b", true)];
        for spec in [json!({"minAvailable": "50%"}), json!({"maxUnavailable": 1})] {
            let s = budget_status(&budget(spec.clone(), fresh()), &pods, now()).unwrap();
            assert_eq!(s["disruptionsAllowed"], 0, "{spec}");
            assert!(s.get("observedGeneration").is_none(), "{s}");
            let c = &s["conditions"][0];
            assert_eq!(
                (&c["status"], &c["reason"], &c["message"]),
                (
                    &json!("False"),
                    &json!("SyncFailed"),
                    &json!("found no controllers for pod \"a\"")
                )
            );
        }
    }

    #[test]
    fn selectors_pick_the_pods() {
        let mut other = pod("x", true);
        other["metadata"]["labels"] = json!({"app": "db"});
        let pods = [pod("a", true), other];
        let mut b = budget(json!({"minAvailable": 0}), fresh());
        assert_eq!(budget_status(&b, &pods, now()).unwrap()["expectedPods"], 1);
        b["spec"]["selector"] = json!({});
        assert_eq!(budget_status(&b, &pods, now()).unwrap()["expectedPods"], 2);
        b["spec"]["selector"] = Value::Null;
        assert_eq!(budget_status(&b, &pods, now()).unwrap()["expectedPods"], 0);
    }
}
