//! delete and deletecollection: preconditions, propagation, grace periods and finalizers.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{
    Core, DeleteOptions, Deleted, Operation, Propagation, finalizers, is_deleting, meta, store_err,
    strategy,
};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::Stored;
use crate::strategy::Strategy;

/// Whether a deleted object whose finalizers are all gone may leave storage now: not while a
/// grace period runs, nor while its type keeps it (a namespace with content).
pub(super) fn removable_now(strategy: &dyn Strategy, obj: &Value) -> bool {
    let grace = meta(obj)
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    grace <= 0 && strategy.may_remove(obj)
}

impl Core {
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let key_ns = if rt.namespaced { ns } else { "" };
        strategy(rt).admit_delete(name)?;
        if let Some(g) = opts.grace_period
            && g < 0
        {
            return Err(ApiError::invalid_field(
                "",
                "DeleteOptions",
                "",
                "gracePeriodSeconds",
                "FieldValueInvalid",
                format!("Invalid value: {g}: must be greater than or equal to 0"),
            ));
        }
        for _ in 0..16 {
            let current = self
                .store
                .get(&rt.store, key_ns, name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let uid = current.uid();
            if let Some(want) = &opts.precondition_uid
                && want != uid
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    format!(
                        "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                    ),
                ));
            }
            let rv = current.rv().to_string();
            if let Some(want) = &opts.precondition_rv
                && *want != rv
            {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
                    ),
                ));
            }
            if let Some(admission) = opts.admission.get() {
                // A deletion is admitted with the object as it is now, after the preconditions.
                let old = self.view_of(rt, &current);
                admission.mutate(Operation::Delete, name, None, Some(&old))?;
                admission.validate(Operation::Delete, name, None, Some(&old))?;
            }
            match self.try_delete(rt, key_ns, name, &current, opts) {
                Err(e) if e.reason == "Conflict" && e.message.contains("has been modified") => {
                    continue;
                }
                other => return other,
            }
        }
        Err(ApiError::stale(&rt.group, &rt.plural, name))
    }

    fn try_delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        stored: &Arc<Stored>,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let mut next = stored.value();
        let current = &next.clone();
        let mut fins = finalizers(current);
        let mut changed = false;
        let now = Utc::now();
        let strategy = strategy(rt);
        let graceful = strategy.grace_period(current, opts.grace_period);
        let grace = graceful.unwrap_or(0);
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        match policy {
            Propagation::Foreground if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.retain(|f| f != "orphan");
                fins.push("foregroundDeletion".into());
                changed = true;
            }
            Propagation::Orphan if !fins.iter().any(|f| f == "orphan") => {
                fins.retain(|f| f != "foregroundDeletion");
                fins.push("orphan".into());
                changed = true;
            }
            _ => {}
        }
        let already = is_deleting(current);
        let stays = strategy.on_delete(name, already, &mut next)?;
        changed |= stays;
        let pending = !fins.is_empty() || grace > 0 || stays;
        if !pending {
            let object = self.remove_now(rt, ns, name, stored, opts.dry_run)?;
            return Ok(Deleted { object, gone: true });
        }
        {
            let m = next["metadata"]
                .as_object_mut()
                .expect("stored objects have metadata");
            if changed {
                m.insert("finalizers".into(), json!(fins));
            }
            let when = chrono::Duration::try_seconds(grace)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "",
                        "DeleteOptions",
                        "",
                        "gracePeriodSeconds",
                        "FieldValueInvalid",
                        format!("Invalid value: {grace}: is too large"),
                    )
                })?;
            let ts = when.to_rfc3339_opts(SecondsFormat::Secs, true);
            // A graceful deletion may be shortened by a second delete.
            let shortened = graceful.is_some()
                && m.get("deletionGracePeriodSeconds").and_then(Value::as_i64) != Some(grace);
            if !already || shortened {
                m.insert("deletionTimestamp".into(), json!(ts));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                changed = true;
            }
        }
        if !changed || opts.dry_run {
            return Ok(Deleted {
                object: self.to_view(rt, if opts.dry_run { &next } else { current }),
                gone: false,
            });
        }
        let written = self
            .store
            .update(&rt.store, ns, name, stored.rv(), next)
            .map_err(|e| store_err(rt, name, e))?;
        self.gc_wake.notify_one();
        Ok(Deleted {
            object: self.to_view(rt, &written.object),
            gone: false,
        })
    }

    /// Removes an object from storage if it is still at `current`'s version, and returns its
    /// last state as the view shows it.
    pub(super) fn remove_now(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        current: &Arc<Stored>,
        dry_run: bool,
    ) -> ApiResult<Value> {
        if dry_run {
            return Ok(self.view_of(rt, current));
        }
        let gone = self
            .store
            .delete(&rt.store, ns, name, Some(current.rv()))
            .map_err(|e| store_err(rt, name, e))?;
        if self.removal_concerns_gc(rt, ns, &gone.stored) {
            self.gc_wake.notify_one();
        }
        strategy(rt).after_remove(self, &gone.object);
        Ok(self.to_view(rt, &gone.object))
    }

    /// Whether the garbage collector has work after `gone` left storage: its dependents go,
    /// an owner in foreground deletion may finish, or its namespace may be emptied. A pass
    /// reads every object, so removals that concern nobody (most of them) skip it.
    fn removal_concerns_gc(&self, rt: &ResourceType, ns: &str, gone: &Stored) -> bool {
        !gone.owner_refs().is_empty()
            || self.store.has_dependents(gone.uid())
            || (rt.namespaced
                && self
                    .store
                    .get(&("".to_string(), "namespaces".to_string()), "", ns)
                    .is_none_or(|n| n.deleting()))
    }

    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Bytes>> {
        let page = self.list(rt, ns, labels, fields, None, None)?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            match self.delete(rt, item.namespace(), item.name(), opts) {
                // As JSON at once: a parsed copy of every deleted object would cost ten times more.
                Ok(d) => out.push(Bytes::from(
                    serde_json::to_vec(&d.object).unwrap_or_default(),
                )),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
