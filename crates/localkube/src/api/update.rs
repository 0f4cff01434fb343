//! update (PUT), and the replace step that update and patch share: what the server keeps,
//! what it checks, generation, finalizers of deleted objects, and no-op writes.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::delete::removable_now;
use super::{
    Core, Operation, WriteOptions, Written, finalizers, is_deleting, is_store_conflict, meta,
    meta_str, now_rfc3339, storage_key, store_err, strategy, uid_immutable,
};
use crate::apply;
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};
use crate::store::Stored;
use crate::validation::go_quote;

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Compares two objects ignoring resourceVersion and managedFields, to detect no-op writes.
fn same_content(a: &Value, b: &Value) -> bool {
    const IGNORED: [&str; 2] = ["resourceVersion", "managedFields"];
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let same_meta = match (a.get("metadata"), b.get("metadata")) {
        (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
            let kept = |m: &'_ serde_json::Map<String, Value>| {
                m.iter()
                    .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
                    .count()
            };
            kept(ma) == kept(mb)
                && ma
                    .iter()
                    .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
                    .all(|(k, v)| mb.get(k) == Some(v))
        }
        (ma, mb) => ma == mb,
    };
    same_meta
        && a.len() == b.len()
        && a.iter()
            .filter(|(k, _)| k.as_str() != "metadata")
            .all(|(k, v)| b.get(k) == Some(v))
}

impl Core {
    /// PUT: replaces the object (or only its status when `status_only`).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
        status_only: bool,
    ) -> ApiResult<Written> {
        self.check_type(rt, &mut obj)?;
        let body_name = meta_str(&obj, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&obj, "namespace");
        if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({body_ns}) does not match the namespace on the request ({ns})"
            )));
        }
        let key_ns = if rt.namespaced { ns } else { "" };
        let rv = meta_str(&obj, "resourceVersion").to_string();
        // An update without a resourceVersion is unconditional: it retries a concurrent change.
        for _ in 0..16 {
            let current = self
                .store
                .get(&rt.store, key_ns, name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if !rv.is_empty() && rv.parse::<u64>().ok() != Some(current.rv()) {
                return Err(ApiError::stale(&rt.group, &rt.plural, name));
            }
            // A uid in the body of a PUT is a precondition, as kube's storage treats it.
            let uid = meta_str(&obj, "uid");
            if !uid.is_empty() && uid != current.uid() {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    format!(
                        "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        storage_key(rt, key_ns, name),
                        current.uid()
                    ),
                ));
            }
            match self.replace(
                rt,
                key_ns,
                name,
                &current,
                self.view_of(rt, &current),
                obj.clone(),
                opts,
                status_only,
                None,
            ) {
                Err(e) if is_store_conflict(&e) && rv.is_empty() => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(&rt.group, &rt.plural, name))
    }

    /// The common path of update and patch: merges server-owned parts of `current` into the
    /// new object, validates, and writes if `current` is still the stored version.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn replace(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        current: &Arc<Stored>,
        current_view: Value,
        mut obj: Value,
        opts: &WriteOptions,
        status_only: bool,
        managed_override: Option<Value>,
    ) -> ApiResult<Written> {
        let strategy = strategy(rt);
        // Mutating admission sees the object as sent (or patched), before what the server
        // keeps is put back; it may not rename or move it.
        if opts.admission.is_set()
            && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            // Webhooks see the object where it is, as kube-apiserver shows it to them.
            for (field, value) in [("name", name), ("namespace", ns)] {
                if !value.is_empty()
                    && m.get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    m.insert(field.to_string(), json!(value));
                }
            }
        }
        let before = [
            meta_str(&obj, "name").to_string(),
            meta_str(&obj, "namespace").to_string(),
        ];
        opts.admission
            .mutate(Operation::Update, name, &mut obj, Some(&current_view))?;
        self.check_type(rt, &mut obj)?;
        for (field, was) in ["name", "namespace"].into_iter().zip(before) {
            let now = meta_str(&obj, field);
            if now != was {
                return Err(ApiError::invalid_field(
                    &rt.group,
                    &rt.kind,
                    name,
                    &format!("metadata.{field}"),
                    "FieldValueInvalid",
                    format!("Invalid value: {}: field is immutable", go_quote(now)),
                ));
            }
        }
        if status_only {
            // Only the status stanza moves; everything else stays as stored.
            let status = obj.get("status").cloned();
            let mut next = current_view.clone();
            match status {
                Some(s) => next["status"] = s,
                None => {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            obj = next;
        } else if rt.status_subresource {
            match current_view.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let uid = meta_str(&obj, "uid");
        if !uid.is_empty() && uid != meta_str(&current_view, "uid") {
            return Err(uid_immutable(rt, name, uid));
        }
        {
            let cur_meta = meta(&current_view).clone();
            let m = obj["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match cur_meta.get(f) {
                    Some(v) => m.insert(f.to_string(), v.clone()),
                    None => m.remove(f),
                };
            }
            m.remove("selfLink");
            if m.get("generateName").is_none()
                && let Some(g) = cur_meta.get("generateName")
            {
                m.insert("generateName".into(), g.clone());
            }
        }
        self.check_metadata(rt, &obj)?;
        let warnings = self.check_schema(rt, &mut obj, opts.field_validation, name)?;
        strategy.validate_update(self, rt, &current_view, &obj)?;
        strategy.prepare_for_update(&current_view, &mut obj, status_only)?;
        if strategy.tracks_generation() && spec_part(&obj) != spec_part(&current_view) {
            let gen_ = meta(&current_view)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            obj["metadata"]["generation"] = json!(gen_ + 1);
        }
        // Removing finalizers from a deleted object: is it gone now?
        let deleting = is_deleting(&current_view);
        if deleting {
            let old_f: HashSet<String> = finalizers(&current_view).into_iter().collect();
            for f in finalizers(&obj) {
                if !old_f.contains(&f) {
                    return Err(ApiError::forbidden(format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers [\"{f}\"]"
                    )));
                }
            }
        }
        opts.admission
            .validate(Operation::Update, name, Some(&obj), Some(&current_view))?;
        if same_content(&obj, &current_view) && managed_override.is_none() {
            let json = Self::shows_as_stored(rt, current).then(|| current.json());
            return Ok(Written {
                object: current_view,
                json,
                warnings,
                created: false,
            });
        }
        match managed_override {
            Some(mf) => obj["metadata"]["managedFields"] = mf,
            None => apply::record_update(
                Some(&current_view),
                &mut obj,
                &opts.manager(),
                status_only.then_some("status"),
                &rt.api_version(),
                &now_rfc3339(),
            ),
        }
        let stored = self.to_storage(rt, obj);
        let expected = current.rv();
        if deleting && finalizers(&stored).is_empty() && removable_now(strategy, &stored) {
            let object = if opts.dry_run {
                self.to_view(rt, &stored)
            } else {
                self.remove_now(rt, ns, name, current, false)?
            };
            return Ok(Written {
                object,
                json: None,
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object: self.to_view(rt, &stored),
                json: None,
                warnings,
                created: false,
            });
        }
        let finalizers_changed = finalizers(&stored) != finalizers(&current_view)
            || meta(&stored).get("ownerReferences") != meta(&current_view).get("ownerReferences");
        let written = self
            .store
            .update(&rt.store, ns, name, expected, stored)
            .map_err(|e| store_err(rt, name, e))?;
        if finalizers_changed {
            self.gc_wake.notify_one();
        }
        strategy.after_update(self, &written.object)?;
        let (object, json) = self.written_view(rt, written.object, Some(&written.stored));
        Ok(Written {
            object,
            json,
            warnings,
            created: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_content_ignores_only_version_and_managed_fields() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "managedFields": []}, "data": {"k": "v"}});
        let b = json!({"data": {"k": "v"}, "metadata": {"resourceVersion": "2", "name": "x"}});
        assert!(same_content(&a, &b));
        let c = json!({"metadata": {"name": "x", "labels": {}}, "data": {"k": "v"}});
        assert!(!same_content(&a, &c));
        let d = json!({"metadata": {"name": "x"}, "data": {"k": "v"}, "extra": 1});
        assert!(!same_content(&a, &d) && !same_content(&d, &a));
        let e = json!({"metadata": {"name": "x"}, "data": {"k": "w"}});
        assert!(!same_content(&a, &e));
    }
}
