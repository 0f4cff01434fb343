//! The pods/eviction subresource: deletes a pod when its PodDisruptionBudget allows it
//! (`crate::eviction` decides), taking one disruption from the budget first.

use serde_json::Value;

use super::{Core, DeleteOptions, Operation, WriteOptions, now_rfc3339};
use crate::eviction::{self, EvictionPlan};
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};

/// How often a budget that changed under the eviction is read again.
const BUDGET_RETRIES: usize = 16;

impl Core {
    fn served(&self, group: &str, plural: &str) -> ApiResult<std::sync::Arc<ResourceType>> {
        self.registry
            .find(group, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
    }

    /// POST pods/{name}/eviction with an `Eviction` body. `opts` are the query's delete
    /// options (`dryRun`); the body's `deleteOptions` are read over them, and its admission is
    /// that of the creation of an Eviction.
    pub fn evict(
        &self,
        ns: &str,
        name: &str,
        body: &Value,
        mut opts: DeleteOptions,
    ) -> ApiResult<()> {
        check_eviction(name, body)?;
        let mut body = body.clone();
        opts.admission
            .mutate(Operation::Create, name, &mut body, None)?;
        opts.admission
            .validate(Operation::Create, name, Some(&body), None)?;
        opts.merge_body(body.get("deleteOptions").unwrap_or(&Value::Null))?;
        // The pod's deletion is the eviction's own: it is not admitted again.
        opts.admission = Default::default();
        let pods = self.served("", "pods")?;
        let budgets = self.served("policy", "poddisruptionbudgets")?;
        for _ in 0..BUDGET_RETRIES {
            let pod = self
                .store
                .get(&pods.store, ns, name)
                .ok_or_else(|| ApiError::not_found("", "pods", name))?
                .value();
            let (stored, _) = self.store.list(&budgets.store, Some(ns));
            let current: Vec<Value> = stored.iter().map(|b| b.value()).collect();
            match eviction::plan(&pod, &current, &now_rfc3339())? {
                EvictionPlan::Delete { unchanged_since } => {
                    if opts.precondition_rv.is_none() {
                        opts.precondition_rv = unchanged_since;
                    }
                }
                EvictionPlan::TakeFromBudget { budget } if !opts.dry_run => {
                    let name = budget["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    match self.update(&budgets, ns, &name, budget, &WriteOptions::default(), true) {
                        Ok(_) => {}
                        // Changed since it was read: decide again on what it is now.
                        Err(e) if e.code == 409 => continue,
                        Err(e) => return Err(e),
                    }
                }
                EvictionPlan::TakeFromBudget { .. } => {}
            }
            return self.delete(&pods, ns, name, &opts).map(drop);
        }
        Err(ApiError::stale("policy", "poddisruptionbudgets", name))
    }
}

/// The body is an Eviction of the pod the path names (kube-apiserver's 400s otherwise).
fn check_eviction(name: &str, body: &Value) -> ApiResult<()> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "Eviction"
    {
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let version = api_version.rsplit('/').next().unwrap_or("");
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a Eviction: converting ({version}.{kind}) to (policy.Eviction): unknown conversion"
        )));
    }
    crate::openapi::check_builtin_types("policy", "Eviction", body)?;
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_eviction;

    #[test]
    fn the_body_must_be_an_eviction_of_the_named_pod() {
        let ok = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}});
        assert!(check_eviction("p", &ok).is_ok());
        assert!(check_eviction("p", &json!({"metadata": {"name": "p"}})).is_ok());
        let cases = [
            (
                json!({"kind": "Eviction", "metadata": {"name": "q"}}),
                "name in URL does not match name in Eviction object",
            ),
            (
                json!({"kind": "Eviction", "metadata": {}}),
                "name in URL does not match name in Eviction object",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
                "Pod in version \"v1\" cannot be handled as a Eviction: converting (v1.Pod) to (policy.Eviction): unknown conversion",
            ),
        ];
        for (body, message) in cases {
            let e = check_eviction("p", &body).expect_err("refused");
            assert_eq!((e.code, e.message.as_str()), (400, message), "{body}");
        }
        let e = check_eviction(
            "p",
            &json!({"kind": "Eviction", "metadata": {"name": "p"}, "deleteOptions": {"gracePeriodSeconds": "x"}}),
        )
        .expect_err("refused");
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .starts_with("Eviction in version \"v1\" cannot be handled as a Eviction: "),
            "{}",
            e.message
        );
    }
}
