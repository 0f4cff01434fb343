//! The pods/binding subresource: assigns an unscheduled pod to a node.

use serde_json::{Value, json};

use super::{Core, Operation, WriteOptions, now_rfc3339, store_err};
use crate::status::{ApiError, ApiResult};
use crate::store::StoreError;

/// The Go JSON type of a value that Go cannot read into a struct (null it reads as empty).
fn go_non_object(v: &Value) -> Option<&'static str> {
    match v {
        Value::Null | Value::Object(_) => None,
        Value::Bool(_) => Some("bool"),
        Value::Number(_) => Some("number"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("array"),
    }
}

impl Core {
    /// POST pods/{name}/binding: assigns an unscheduled pod to a node.
    pub fn bind(
        &self,
        ns: &str,
        name: &str,
        binding: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<()> {
        let rt = self
            .registry
            .find("", "v1", "pods")
            .expect("pods are built in");
        // Go decodes the body into a Binding first: a target that is no object does not.
        if let Some(what) = binding.get("target").and_then(go_non_object) {
            return Err(ApiError::bad_request(format!(
                "Binding in version \"v1\" cannot be handled as a Binding: json: cannot unmarshal {what} into Go struct field Binding.target of type v1.ObjectReference"
            )));
        }
        // pods/binding is admitted as the creation of a Binding.
        let mut binding = binding.clone();
        opts.admission
            .mutate(Operation::Create, name, &mut binding, None)?;
        let binding = &binding;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid_field(
                "",
                "Binding",
                name,
                "target.name",
                "FieldValueRequired",
                "Required value",
            ));
        }
        for _ in 0..16 {
            let current = self
                .store
                .get(&rt.store, ns, name)
                .ok_or_else(|| ApiError::not_found("", "pods", name))?;
            if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str)
                && !uid.is_empty()
                && uid != current.uid()
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    "Precondition failed: UID in precondition does not match the pod",
                ));
            }
            let cur = current.value();
            if let Some(assigned) = cur.pointer("/spec/nodeName").and_then(Value::as_str)
                && !assigned.is_empty()
            {
                return Err(ApiError::conflict(
                    "",
                    "pods",
                    name,
                    format!("pod {name} is already assigned to node \"{assigned}\""),
                ));
            }
            if current.deleting() {
                return Err(ApiError::conflict("", "pods", name, "pod is being deleted"));
            }
            let mut next = cur;
            next["spec"]["nodeName"] = json!(node);
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
            match next
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                Some(c) => {
                    c.retain(|x| x["type"] != "PodScheduled");
                    c.push(cond);
                }
                None => next["status"]["conditions"] = json!([cond]),
            }
            opts.admission
                .validate(Operation::Create, name, Some(binding), None)?;
            if opts.dry_run {
                return Ok(());
            }
            match self.store.update(&rt.store, ns, name, current.rv(), next) {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(&rt, name, e)),
            }
        }
        Err(ApiError::stale("", "pods", name))
    }
}
