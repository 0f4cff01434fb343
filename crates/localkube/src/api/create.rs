//! create: a new object, named or generated, defaulted and validated, then stored.

use serde_json::{Value, json};

use super::{
    Core, Operation, WriteOptions, Written, meta, meta_str, now_rfc3339, store_err, strategy,
};
use crate::apply;
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};
use crate::strategy::Created;
use crate::validation::generate_name;

impl Core {
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        self.create_with(rt, ns, obj, opts, None)
    }

    /// Create, with the managed fields given (server-side apply) or recorded as an update.
    pub(super) fn create_with(
        &self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        managed_fields: Option<Value>,
    ) -> ApiResult<Written> {
        let strategy = strategy(rt);
        self.check_type(rt, &mut obj)?;
        strategy.admit_create(self, rt)?;
        settle_namespace(rt, ns, &mut obj)?;
        if meta(&obj)
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        // Mutating admission sees the object before its name is generated and before the
        // type's defaults, as kube-apiserver's does; what it returns is checked again.
        let requested_name = meta_str(&obj, "name").to_string();
        opts.admission
            .mutate(Operation::Create, &requested_name, &mut obj, None)?;
        self.check_type(rt, &mut obj)?;
        settle_namespace(rt, ns, &mut obj)?;
        {
            let m = obj["metadata"].as_object_mut().expect("checked");
            let name = m.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                match m.get("generateName").and_then(Value::as_str) {
                    Some(prefix) if !prefix.is_empty() => {
                        let n = generate_name(prefix);
                        m.insert("name".into(), json!(n));
                    }
                    _ => {
                        return Err(ApiError::invalid_field(
                            &rt.group,
                            &rt.kind,
                            "",
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        ));
                    }
                }
            }
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
            if strategy.tracks_generation() {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let name = meta_str(&obj, "name").to_string();
        self.check_metadata(rt, &obj)?;
        let warnings = self.check_schema(rt, &mut obj, opts.field_validation, &name)?;
        strategy.validate_create(self, rt, &obj)?;
        strategy.prepare_for_create(rt, &mut obj);
        {
            let m = obj["metadata"].as_object_mut().expect("checked");
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        }
        match managed_fields {
            Some(mf) => obj["metadata"]["managedFields"] = mf,
            None => apply::record_update(
                None,
                &mut obj,
                &opts.manager(),
                None,
                &rt.api_version(),
                &now_rfc3339(),
            ),
        }
        self.check_namespace(rt, ns, true)?;
        opts.admission
            .validate(Operation::Create, &name, Some(&obj), None)?;
        let stored = self.to_storage(rt, obj);
        let key_ns = if rt.namespaced { ns } else { "" };
        let (result, stored) = strategy.commit_create(self, stored, &mut |stored| {
            self.commit_create(rt, key_ns, &name, stored, opts)
        })?;
        let rewritten = !opts.dry_run && strategy.after_create(self, &result)?;
        if meta(&result).get("ownerReferences").is_some() && !opts.dry_run {
            // The owner may already be gone.
            self.gc_wake.notify_one();
        }
        let (object, json) = if rewritten {
            // Written again since: show the stored state.
            match self.store.get(&rt.store, key_ns, &name) {
                Some(o) => self.written_view(rt, o.value(), Some(&o)),
                None => self.written_view(rt, result, stored.as_ref()),
            }
        } else {
            self.written_view(rt, result, stored.as_ref())
        };
        Ok(Written {
            object,
            json,
            warnings,
            created: true,
        })
    }

    fn commit_create(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        stored: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Created> {
        if opts.dry_run {
            if self.store.get(&rt.store, ns, name).is_some() {
                return Err(ApiError::already_exists(&rt.group, &rt.plural, name));
            }
            return Ok((stored, None));
        }
        self.store
            .create(&rt.store, ns, name, stored)
            .map(|c| (c.object, Some(c.stored)))
            .map_err(|e| store_err(rt, name, e))
    }
}

/// The object's namespace as the request's: set when absent, cleared for cluster-scoped types,
/// refused when it differs.
fn settle_namespace(rt: &ResourceType, ns: &str, obj: &mut Value) -> ApiResult<()> {
    let m = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
    if !rt.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    if !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    m.insert("namespace".into(), json!(ns));
    Ok(())
}
