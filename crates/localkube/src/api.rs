//! The semantics of the API verbs, independent of HTTP: create, get, list, update, patch and
//! delete, with defaulting, validation, pruning, managed fields, finalizers and dry runs.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

pub use crate::state::{Core, now_rfc3339};

use crate::registry::{ResourceType, View};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{StoreError, Stored, field_text, selectable_fields};
use crate::validation::{
    check_builtin_spec, check_labels_and_annotations, check_name, generate_name, go_quote,
    name_rule,
};
use crate::{apply, builtin, crd, events, openapi, schema, strategic};

/// The largest request body the server reads (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}, must be one of Ignore, Warn or Strict"
            ))),
        }
    }
}

/// Options every write accepts.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: bool,
    /// Who is writing, for the default field manager (the User-Agent's first word).
    pub user_agent: Option<String>,
}

impl WriteOptions {
    fn manager(&self) -> String {
        if let Some(m) = &self.field_manager {
            return m.clone();
        }
        self.user_agent
            .as_deref()
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub propagation: Option<Propagation>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (may be empty) over the query parameters already set.
    pub fn merge_body(&mut self, body: &Value) -> ApiResult<()> {
        if body.is_null() {
            return Ok(());
        }
        if !body.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        }
        if let Some(g) = body.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
            self.grace_period =
                Some(g.as_i64().ok_or_else(|| {
                    ApiError::bad_request("gracePeriodSeconds must be an integer")
                })?);
        }
        if let Some(p) = body.get("preconditions") {
            if let Some(u) = p.get("uid").and_then(Value::as_str) {
                self.precondition_uid = Some(u.to_string());
            }
            if let Some(r) = p.get("resourceVersion").and_then(Value::as_str) {
                self.precondition_rv = Some(r.to_string());
            }
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation = Some(parse_propagation(p)?);
        } else if let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool) {
            self.propagation = Some(if orphan {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        if let Some(d) = body.get("dryRun").and_then(Value::as_array) {
            for v in d {
                match v.as_str() {
                    Some("All") => self.dry_run = true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "unsupported dryRun value {other:?}, only \"All\" is supported"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn parse_propagation(p: &str) -> ApiResult<Propagation> {
    match p {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy {other:?} is not supported: use Background, Foreground or Orphan"
        ))),
    }
}

/// The result of a write.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    /// `object` as JSON, when the stored bytes are exactly what the view shows.
    pub json: Option<Bytes>,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// The result of a delete: the object as it is now, and whether it is gone.
#[derive(Debug)]
pub struct Deleted {
    pub object: Value,
    pub gone: bool,
}

/// The continue token of a page that ends with the last of `items`.
/// `seen` counts the items of every page so far, this one included.
fn continue_after(items: &[Arc<Stored>], seen: u64) -> String {
    items
        .last()
        .map(|last| encode_continue(last.namespace(), last.name(), seen))
        .unwrap_or_default()
}

/// A page of a list: stored objects, which `Core::view_json` or `Core::view_of` render.
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

fn meta(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj).get(field).and_then(Value::as_str).unwrap_or("")
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

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

/// A conflict from storage (the object changed under us), as opposed to a client precondition.
fn is_store_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict" && e.message.contains("the object has been modified")
}

/// Whether a patch carries a resourceVersion, which makes it conditional.
fn patch_sets_resource_version(patch_type: PatchType, patch: &Value) -> bool {
    match patch_type {
        PatchType::Json => patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
            })
        }),
        _ => patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
    }
}

/// Whether a deleted object whose finalizers are all gone may leave storage now: not while a
/// grace period runs, nor while a namespace still has spec finalizers.
fn removable_now(rt: &ResourceType, obj: &Value) -> bool {
    let grace = meta(obj)
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if grace > 0 {
        return false;
    }
    if rt.store == ("".to_string(), "namespaces".to_string()) {
        return obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    }
    true
}

/// The CustomResourceDefinition resource itself (not a custom resource in that group).
pub fn is_crd_type(rt: &ResourceType) -> bool {
    !rt.is_custom()
        && rt.group == "apiextensions.k8s.io"
        && rt.plural == "customresourcedefinitions"
}

/// Whether the resource's strategy maintains `metadata.generation`: custom resources and the
/// built-ins with a desired state that controllers observe.
fn tracks_generation(rt: &ResourceType) -> bool {
    rt.is_custom()
        || matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("apps", _) | ("apiextensions.k8s.io", _)
        )
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

/// kube-apiserver's answer to an update that changes metadata.uid. It validates object
/// metadata twice on update and lists the cause twice (the message has it once).
fn uid_immutable(rt: &ResourceType, name: &str, uid: &str) -> ApiError {
    let mut e = ApiError::invalid_field(
        &rt.group,
        &rt.kind,
        name,
        "metadata.uid",
        "FieldValueInvalid",
        format!("Invalid value: {}: field is immutable", go_quote(uid)),
    );
    if let Some(causes) = e
        .details
        .as_mut()
        .and_then(|d| d.get_mut("causes"))
        .and_then(Value::as_array_mut)
    {
        causes.extend(causes.clone());
    }
    e
}

/// Where kube-apiserver keeps an object in etcd, which its storage errors name.
fn storage_key(rt: &ResourceType, ns: &str, name: &str) -> String {
    let mut key = if rt.is_custom() {
        format!("/registry/{}/{}", rt.group, rt.plural)
    } else if rt.store == ("".to_string(), "services".to_string()) {
        "/registry/services/specs".to_string()
    } else {
        format!("/registry/{}", rt.plural)
    };
    if !ns.is_empty() {
        key.push('/');
        key.push_str(ns);
    }
    key.push('/');
    key.push_str(name);
    key
}

fn store_err(rt: &ResourceType, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists => ApiError::already_exists(&rt.group, &rt.plural, name),
        StoreError::NotFound => ApiError::not_found(&rt.group, &rt.plural, name),
        StoreError::Conflict => ApiError::stale(&rt.group, &rt.plural, name),
    }
}

impl Core {
    /// The stored object as the resource type's view shows it.
    pub fn to_view(&self, rt: &ResourceType, stored: &Value) -> Value {
        match rt.view {
            View::EventsV1 => events::from_core(stored),
            View::Plain => {
                let mut v = stored.clone();
                let av = rt.api_version();
                if v.get("apiVersion").and_then(Value::as_str) != Some(av.as_str()) {
                    v["apiVersion"] = Value::String(av);
                }
                v
            }
        }
    }

    /// Whether the view shows a stored object exactly as stored, so that its bytes can be
    /// sent as they are.
    pub fn shows_as_stored(rt: &ResourceType, stored: &Stored) -> bool {
        if rt.view != View::Plain {
            return false;
        }
        let av = stored.api_version();
        if rt.group.is_empty() {
            av == rt.version
        } else {
            av.strip_prefix(rt.group.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(rt.version.as_str())
        }
    }

    /// A stored object, parsed, as the resource type's view shows it.
    pub fn view_of(&self, rt: &ResourceType, stored: &Stored) -> Value {
        if Self::shows_as_stored(rt, stored) {
            stored.value()
        } else {
            self.to_view(rt, &stored.value())
        }
    }

    /// Appends a stored object's JSON, as the resource type's view shows it, to `out`.
    pub fn append_view_json(&self, rt: &ResourceType, stored: &Stored, out: &mut Vec<u8>) {
        if Self::shows_as_stored(rt, stored) {
            stored.append_json(out);
        } else {
            // Serializing a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(out, &self.to_view(rt, &stored.value()));
        }
    }

    /// A stored object as JSON, as the resource type's view shows it: the stored bytes
    /// themselves when the view is the storage form.
    pub fn view_json(&self, rt: &ResourceType, stored: &Stored) -> Bytes {
        if Self::shows_as_stored(rt, stored) {
            // Plain stored JSON is shared, not copied.
            return stored.json();
        }
        let mut json = Vec::new();
        self.append_view_json(rt, stored, &mut json);
        Bytes::from(json)
    }

    fn to_storage(&self, rt: &ResourceType, obj: Value) -> Value {
        match rt.view {
            View::EventsV1 => events::to_core(&obj),
            View::Plain => {
                let mut v = obj;
                v["apiVersion"] = Value::String(rt.storage_api_version.clone());
                v
            }
        }
    }

    fn check_namespace(&self, rt: &ResourceType, ns: &str, creating: bool) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns_key = ("".to_string(), "namespaces".to_string());
        match self.store.get(&ns_key, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if creating && n.deleting() => Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                crate::status::qualified(&rt.group, &rt.plural),
            ))),
            Some(_) => Ok(()),
        }
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.get_stored(rt, ns, name).map(|o| self.view_of(rt, &o))
    }

    /// The stored object, unparsed (`view_json` renders it).
    pub fn get_stored(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Stored>> {
        self.store
            .get(&rt.store, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The storage name of a field selector key, or an error when the key is not supported.
    /// `Ok(None)` stands for metadata.name and metadata.namespace; `Ok(Some(i))` for the
    /// table's `i`th selectable field.
    fn field_slot(rt: &ResourceType, key: &str) -> ApiResult<Option<(usize, String)>> {
        let key = if rt.view == View::EventsV1 {
            events::core_field(key)
        } else {
            key.to_string()
        };
        if key == "metadata.name" || key == "metadata.namespace" {
            return Ok(None);
        }
        match selectable_fields(&rt.store).iter().position(|f| *f == key) {
            Some(i) => Ok(Some((i, key))),
            None => Err(ApiError::bad_request(format!(
                "field label not supported: {key}"
            ))),
        }
    }

    /// The value of a field selector key on an object, or an error when the key is not supported.
    pub fn field_value(rt: &ResourceType, obj: &Value, key: &str) -> ApiResult<String> {
        Ok(match Self::field_slot(rt, key)? {
            Some((_, path)) => field_text(obj, &path),
            None => field_text(obj, key),
        })
    }

    /// The value of a field selector key on a stored object, from its index.
    pub fn stored_field_value(rt: &ResourceType, obj: &Stored, key: &str) -> Option<String> {
        match Self::field_slot(rt, key).ok()? {
            Some((i, _)) => obj.field(i).map(str::to_string),
            None if key == "metadata.name" => Some(obj.name().to_string()),
            None => Some(obj.namespace().to_string()),
        }
    }

    /// Whether a stored object passes the selectors (field selectors see the view's fields).
    pub fn matches(
        rt: &ResourceType,
        obj: &Stored,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> bool {
        if !labels.is_empty() && !labels.matches_with(|k| obj.label(k).map(str::to_string)) {
            return false;
        }
        if fields.requirements().is_empty() {
            return true;
        }
        fields.matches(|k| Self::stored_field_value(rt, obj, k))
    }

    pub fn check_field_selector(rt: &ResourceType, fields: &FieldSelector) -> ApiResult<()> {
        let probe = json!({});
        for k in fields.keys() {
            Self::field_value(rt, &probe, k)?;
        }
        Ok(())
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<ListPage> {
        Self::check_field_selector(rt, fields)?;
        let start_after = match continue_token {
            Some(t) if !t.is_empty() => Some(decode_continue(t)?),
            _ => None,
        };
        let after = start_after
            .as_ref()
            .map(|c| (c.namespace.as_str(), c.name.as_str()));
        let seen_before = start_after.as_ref().map_or(0, |c| c.seen);
        let limit = limit.filter(|l| *l > 0);
        let full = |items: &Vec<Arc<Stored>>| limit.is_some_and(|l| items.len() >= l);
        let mut items = Vec::new();
        let mut more = false;
        let mut remaining = None;
        let resource_version = if labels.is_empty() && fields.requirements().is_empty() {
            // Unselected: the walk takes one page and stops. remainingItemCount is the table's
            // count less the items of this and earlier pages (which the token carries): an
            // estimate when objects came or went in between, as kube-apiserver's is.
            let (rv, total) = self.store.scan(&rt.store, ns, after, |o| {
                if full(&items) {
                    more = true;
                    return false;
                }
                items.push(o.clone());
                true
            });
            let seen = seen_before + items.len() as u64;
            remaining = more.then(|| (total as u64).saturating_sub(seen).max(1));
            rv
        } else {
            // Selectors are matched outside the store's lock, so the walk only collects. Like
            // kube-apiserver, a selected list has no remainingItemCount.
            let mut candidates = Vec::new();
            let (rv, _) = self.store.scan(&rt.store, ns, after, |o| {
                candidates.push(o.clone());
                true
            });
            for obj in candidates {
                if !Self::matches(rt, &obj, labels, fields) {
                    continue;
                }
                if full(&items) {
                    more = true;
                    break;
                }
                items.push(obj);
            }
            rv
        };
        Ok(ListPage {
            continue_token: more.then(|| continue_after(&items, seen_before + items.len() as u64)),
            remaining,
            items,
            resource_version,
        })
    }

    /// Checks the body's apiVersion and kind against the endpoint.
    fn check_type(&self, rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        };
        let expected_av = rt.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(expected_av));
            }
            Some(av) if av == expected_av => {}
            Some(av) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({expected_av})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(rt.kind));
            }
            Some(k) if k == rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({}) of {}",
                    rt.kind,
                    crate::status::qualified(&rt.group, &rt.plural)
                )));
            }
        }
        match map.get("metadata") {
            None | Some(Value::Null) => {
                map.insert("metadata".into(), json!({}));
            }
            Some(Value::Object(_)) => {}
            Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
        }
        Ok(())
    }

    /// Prunes unknown fields and validates the object against its schema. Returns warnings.
    fn check_schema(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        validation: FieldValidation,
        name: &str,
    ) -> ApiResult<Vec<String>> {
        let builtin = openapi::builtin_schemas();
        let resolve = |r: &str| builtin.resolve(r);
        let mut unknown = Vec::new();
        if let Some(crd_schema) = &rt.crd_schema {
            let s = schema::Schema {
                root: crd_schema,
                resolve: &resolve,
            };
            unknown.extend(schema::prune(obj, &s, true));
            schema::apply_defaults(obj, &s);
            if let Some(meta_schema) = builtin.object_meta() {
                let ms = schema::Schema {
                    root: meta_schema,
                    resolve: &resolve,
                };
                if let Some(m) = obj.get_mut("metadata") {
                    unknown.extend(
                        schema::prune(m, &ms, false)
                            .into_iter()
                            .map(|p| format!(".metadata{p}")),
                    );
                }
            }
            let errors = schema::validate(obj, &s);
            if !errors.is_empty() {
                let causes = errors
                    .into_iter()
                    .map(|e| Cause {
                        reason: e.reason.to_string(),
                        message: e.message,
                        field: e.field,
                    })
                    .collect();
                return Err(ApiError::invalid(&rt.group, &rt.kind, name, causes));
            }
        } else if let Some(root) = builtin.for_kind(&rt.group, &rt.kind) {
            let s = schema::Schema {
                root,
                resolve: &resolve,
            };
            unknown.extend(schema::prune(obj, &s, true));
            if let Some(meta_schema) = builtin.object_meta() {
                let ms = schema::Schema {
                    root: meta_schema,
                    resolve: &resolve,
                };
                if let Some(m) = obj.get_mut("metadata") {
                    unknown.extend(
                        schema::prune(m, &ms, false)
                            .into_iter()
                            .map(|p| format!(".metadata{p}")),
                    );
                }
            }
            openapi::check_builtin_types(&rt.group, &rt.kind, obj)?;
        }
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let trimmed: Vec<String> = unknown
            .iter()
            .map(|p| p.trim_start_matches('.').to_string())
            .collect();
        match validation {
            FieldValidation::Ignore => Ok(Vec::new()),
            FieldValidation::Warn => Ok(trimmed
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect()),
            FieldValidation::Strict => Err(ApiError::bad_request(schema::unknown_fields_message(
                &trimmed,
            ))),
        }
    }

    fn check_metadata(&self, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let name = meta_str(obj, "name");
        let mut causes = Vec::new();
        for problem in check_name(name, name_rule(&rt.group, &rt.plural)) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {}: {problem}", go_quote(name)),
                field: "metadata.name".into(),
            });
        }
        causes.extend(check_labels_and_annotations(meta(obj), "metadata"));
        if let Some(f) = meta(obj).get("finalizers")
            && !f.is_null()
            && !f
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())))
        {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: finalizers must be a list of non-empty strings".into(),
                field: "metadata.finalizers".into(),
            });
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, name, causes));
        }
        Ok(())
    }

    /// What kube-apiserver validates in built-in objects beyond their types; runs after the
    /// types are checked, as kube decodes before it validates.
    fn check_spec(&self, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        if rt.is_custom() {
            return Ok(());
        }
        let causes = check_builtin_spec(&rt.group, &rt.kind, obj);
        if causes.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            meta_str(obj, "name"),
            causes,
        ))
    }

    fn services_in_use(&self, except: Option<(&str, &str)>) -> (HashSet<String>, HashSet<i64>) {
        let key = ("".to_string(), "services".to_string());
        let (all, _) = self.store.list(&key, None);
        let mut ips = HashSet::new();
        let mut ports = HashSet::new();
        for s in all {
            if except.is_some_and(|(ns, n)| s.namespace() == ns && s.name() == n) {
                continue;
            }
            let s = s.value();
            if let Some(ip) = s.pointer("/spec/clusterIP").and_then(Value::as_str) {
                ips.insert(ip.to_string());
            }
            for p in s
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                    ports.insert(np);
                }
            }
        }
        (ips, ports)
    }

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
    fn create_with(
        &self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        managed_fields: Option<Value>,
    ) -> ApiResult<Written> {
        self.check_type(rt, &mut obj)?;
        if let Some(crd_name) = &rt.crd
            && crd::terminating(self, crd_name)
        {
            return Err(ApiError::method_not_allowed(format!(
                "create not allowed while custom resource definition is terminating ({crd_name})"
            )));
        }
        {
            let m = obj["metadata"].as_object_mut().expect("checked");
            let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
            if rt.namespaced {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            if m.get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
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
            if tracks_generation(rt) {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let name = meta_str(&obj, "name").to_string();
        self.check_metadata(rt, &obj)?;
        let warnings = self.check_schema(rt, &mut obj, opts.field_validation, &name)?;
        self.check_spec(rt, &obj)?;
        if rt.status_subresource
            && rt.is_custom()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if !rt.is_custom() {
            builtin::prepare_create(&rt.store.0, &rt.store.1, &mut obj);
        }
        if is_crd_type(rt) {
            crd::prepare(&self.registry, None, &mut obj)?;
        }
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
        let stored = self.to_storage(rt, obj);
        let key_ns = if rt.namespaced { ns } else { "" };
        let (result, stored) = if rt.store == ("".to_string(), "services".to_string()) {
            let _guard = self.alloc_lock.lock();
            let mut stored = stored;
            let (ips, ports) = self.services_in_use(None);
            builtin::assign_cluster_ip(&mut stored, self.service_cidr, &ips)?;
            builtin::assign_node_ports(&mut stored, &ports);
            self.commit_create(rt, key_ns, &name, stored, opts)?
        } else {
            self.commit_create(rt, key_ns, &name, stored, opts)?
        };
        if is_crd_type(rt) && !opts.dry_run {
            crd::established(self, &result)?;
        }
        if meta(&result).get("ownerReferences").is_some() && !opts.dry_run {
            // The owner may already be gone.
            self.gc_wake.notify_one();
        }
        let (object, json) = if is_crd_type(rt) && !opts.dry_run {
            // Established since: show the stored state.
            match self.store.get(&rt.store, "", &name) {
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

    /// A written object as the view shows it, and its JSON when the stored bytes are that.
    fn written_view(
        &self,
        rt: &ResourceType,
        object: Value,
        stored: Option<&Arc<Stored>>,
    ) -> (Value, Option<Bytes>) {
        match stored {
            Some(s) if Self::shows_as_stored(rt, s) => (object, Some(s.json())),
            _ => (self.to_view(rt, &object), None),
        }
    }

    fn commit_create(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        stored: Value,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Option<Arc<Stored>>)> {
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
    fn replace(
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
        self.check_spec(rt, &obj)?;
        if !rt.is_custom() && rt.store.1 == "services" {
            // The cluster IP is immutable; keep the allocated one when the update omits it.
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if obj.pointer(&format!("/spec/{f}")).is_none()
                    && let Some(v) = current_view.pointer(&format!("/spec/{f}"))
                {
                    obj["spec"][f] = v.clone();
                }
            }
            let old_ip = current_view.pointer("/spec/clusterIP");
            if old_ip.is_some() && obj.pointer("/spec/clusterIP") != old_ip {
                return Err(ApiError::invalid_field(
                    "",
                    "Service",
                    name,
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    "Invalid value: field is immutable",
                ));
            }
        }
        if is_crd_type(rt) {
            crd::prepare(&self.registry, Some(&current_view), &mut obj)?;
            if let Some(s) = current_view.get("status")
                && !status_only
            {
                obj["status"] = s.clone();
            }
        }
        if tracks_generation(rt) && spec_part(&obj) != spec_part(&current_view) {
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
        if deleting && finalizers(&stored).is_empty() && removable_now(rt, &stored) {
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
        if is_crd_type(rt) {
            crd::register(self, &written.object)?;
        }
        let (object, json) = self.written_view(rt, written.object, Some(&written.stored));
        Ok(Written {
            object,
            json,
            warnings,
            created: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        opts: &WriteOptions,
        status_only: bool,
    ) -> ApiResult<Written> {
        if patch_type == PatchType::Apply && opts.field_manager.is_none() {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            ));
        }
        if patch_type == PatchType::Apply {
            // kube-apiserver's words for an apply configuration that is not an object.
            let not = match patch {
                Value::Object(_) => None,
                Value::Null => {
                    return Err(ApiError::bad_request(format!(
                        "Incorrect version specified in apply patch. Specified patch version: , expected: {}",
                        rt.api_version()
                    )));
                }
                Value::Array(_) => Some("array"),
                Value::String(_) => Some("string"),
                Value::Number(_) => Some("number"),
                Value::Bool(_) => Some("bool"),
            };
            if let Some(what) = not {
                return Err(ApiError::bad_request(format!(
                    "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {what} into Go value of type map[string]interface {{}}"
                )));
            }
        }
        if patch_type != PatchType::Apply && opts.force {
            return Err(ApiError::bad_request(
                "force may not be set for non-apply patch",
            ));
        }
        let key_ns = if rt.namespaced { ns } else { "" };
        // Patches retry on a concurrent change, as kube-apiserver's do.
        for _ in 0..16 {
            let Some(current) = self.store.get(&rt.store, key_ns, name) else {
                if patch_type == PatchType::Apply {
                    let mut obj = patch.clone();
                    self.check_type(rt, &mut obj)?;
                    let body_name = meta_str(&obj, "name");
                    if !body_name.is_empty() && body_name != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({body_name}) does not match the name on the URL ({name})"
                        )));
                    }
                    obj["metadata"]["name"] = json!(name);
                    let applied = apply::server_side_apply(
                        None,
                        &obj,
                        opts.field_manager.as_deref().unwrap_or_default(),
                        opts.force,
                        &*self.patch_meta(rt),
                        &rt.api_version(),
                        &now_rfc3339(),
                    )
                    .map_err(|e| apply_error(rt, name, e))?;
                    if status_only {
                        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                    }
                    let managed = applied["metadata"]["managedFields"].clone();
                    match self.create_with(rt, ns, applied, opts, Some(managed)) {
                        // Another apply created it first: apply onto that one.
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => return other,
                    }
                }
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            };
            let current_view = self.view_of(rt, &current);
            let mut managed_override = None;
            let patched = match patch_type {
                PatchType::Json => {
                    if let Some(n) = patch.as_array().map(Vec::len)
                        && n > MAX_JSON_PATCH_OPS
                    {
                        return Err(ApiError::entity_too_large(format!(
                            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPS}, got {n}"
                        )));
                    }
                    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    let mut doc = current_view.clone();
                    match apply_json_patch(&mut doc, ops, MAX_JSON_PATCH_COPY_BYTES) {
                        Ok(()) => doc,
                        // kube-apiserver answers with a generic 422 that drops the reason.
                        Err(JsonPatchError::CopyLimit) => {
                            return Err(ApiError::unprocessable());
                        }
                        Err(JsonPatchError::Op(e)) => {
                            if matches!(e.kind, json_patch::PatchErrorKind::TestFailed) {
                                return Err(ApiError::conflict(
                                    &rt.group,
                                    &rt.plural,
                                    name,
                                    format!("the JSON patch test operation failed: {e}"),
                                ));
                            }
                            return Err(ApiError::invalid_field(
                                &rt.group,
                                &rt.kind,
                                name,
                                "",
                                "FieldValueInvalid",
                                format!("the JSON patch could not be applied: {e}"),
                            ));
                        }
                    }
                }
                PatchType::Merge => {
                    if !patch.is_object() {
                        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                    }
                    let mut doc = current_view.clone();
                    json_patch::merge(&mut doc, patch);
                    doc
                }
                PatchType::Strategic => {
                    if rt.is_custom() {
                        return Err(ApiError::unsupported_media_type(
                            "application/strategic-merge-patch+json is not supported for custom resources",
                        ));
                    }
                    strategic::strategic_merge(&current_view, patch, &*self.patch_meta(rt))
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                PatchType::Apply => {
                    let mut applied = patch.clone();
                    self.check_type(rt, &mut applied)?;
                    // The apply result keeps the live uid; a different one is a change of it.
                    let uid = meta_str(&applied, "uid");
                    if !uid.is_empty() && uid != current.uid() {
                        return Err(uid_immutable(rt, name, uid));
                    }
                    let out = apply::server_side_apply(
                        Some(&current_view),
                        &applied,
                        opts.field_manager.as_deref().unwrap_or_default(),
                        opts.force,
                        &*self.patch_meta(rt),
                        &rt.api_version(),
                        &now_rfc3339(),
                    )
                    .map_err(|e| apply_error(rt, name, e))?;
                    managed_override = Some(out["metadata"]["managedFields"].clone());
                    out
                }
            };
            if !patched.is_object() {
                return Err(ApiError::bad_request("the patched object is not an object"));
            }
            let size = json_len(&patched);
            if size > MAX_PATCHED_OBJECT {
                return Err(ApiError::entity_too_large(format!(
                    "the patched object is {size} bytes of JSON, more than the limit of {MAX_PATCHED_OBJECT} bytes"
                )));
            }
            // A patch may not move or rename the object.
            let patched_name = meta_str(&patched, "name");
            if patched_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                )));
            }
            let patched_ns = meta_str(&patched, "namespace");
            if rt.namespaced && !patched_ns.is_empty() && patched_ns != key_ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the object ({patched_ns}) does not match the namespace on the request ({key_ns})"
                )));
            }
            // A resourceVersion in the patch is a precondition.
            let conditional = patch_sets_resource_version(patch_type, patch);
            let patched_rv = meta_str(&patched, "resourceVersion").to_string();
            if conditional && patched_rv != meta_str(&current_view, "resourceVersion") {
                return Err(ApiError::stale(&rt.group, &rt.plural, name));
            }
            let mut patched = patched;
            self.check_type(rt, &mut patched)?;
            match self.replace(
                rt,
                key_ns,
                name,
                &current,
                current_view,
                patched,
                opts,
                status_only,
                managed_override,
            ) {
                Err(e) if is_store_conflict(&e) && !conditional => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(&rt.group, &rt.plural, name))
    }

    pub fn patch_meta(&self, rt: &ResourceType) -> Box<dyn strategic::PatchMeta> {
        if rt.is_custom() {
            Box::new(strategic::JsonMergeMeta)
        } else {
            Box::new(strategic::BuiltinPatchMeta {
                group: rt.store.0.clone(),
                kind: rt.kind.clone(),
            })
        }
    }

    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let key_ns = if rt.namespaced { ns } else { "" };
        if rt.store == ("".to_string(), "namespaces".to_string())
            && ["default", "kube-system", "kube-public"].contains(&name)
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
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
        let is_pod = rt.store == ("".to_string(), "pods".to_string());
        let is_ns = rt.store == ("".to_string(), "namespaces".to_string());
        // Graceful deletion applies to pods that a node runs.
        let mut grace = 0i64;
        if is_pod {
            let phase = current
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let bound = current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            grace = opts.grace_period.unwrap_or_else(|| {
                current
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            if !bound || phase == "Succeeded" || phase == "Failed" {
                grace = 0;
            }
            if let Some(existing) = meta(current)
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                && existing < grace
            {
                grace = existing;
            }
        }
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
        if is_ns && already {
            return Err(ApiError::conflict(
                "",
                "namespaces",
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ));
        }
        let pending = !fins.is_empty() || grace > 0 || is_ns;
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
            // A pod's grace period may be shortened by a second delete.
            let shortened = is_pod
                && m.get("deletionGracePeriodSeconds").and_then(Value::as_i64) != Some(grace);
            if !already || shortened {
                m.insert("deletionTimestamp".into(), json!(ts));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                changed = true;
            }
        }
        if is_ns && !already {
            next["status"]["phase"] = json!("Terminating");
            changed = true;
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

    /// Removes an object from storage if it is still at `current`'s version, and returns its
    /// last state as the view shows it.
    fn remove_now(
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
        self.gc_wake.notify_one();
        if is_crd_type(rt) {
            crd::unregister(self, &gone.object);
        }
        Ok(self.to_view(rt, &gone.object))
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

fn apply_error(rt: &ResourceType, name: &str, e: apply::ApplyError) -> ApiError {
    match e {
        apply::ApplyError::Conflict(conflicts) => {
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                .collect();
            let mut err = ApiError::conflict(&rt.group, &rt.plural, name, "");
            err.message = format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                lines.join("\n")
            );
            err
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// The most operations a JSON patch may have, as in kube-apiserver.
const MAX_JSON_PATCH_OPS: usize = 10_000;

/// How many bytes of JSON the `copy` operations of one JSON patch may add, as kube-apiserver
/// allows: without a bound, a copy of a value into itself doubles the document each time.
const MAX_JSON_PATCH_COPY_BYTES: usize = MAX_BODY;

/// The largest object, in bytes of JSON, that a patch may produce.
const MAX_PATCHED_OBJECT: usize = MAX_BODY;

/// Counts bytes written, for the size of a value's JSON without keeping the JSON.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of a value's compact JSON.
fn json_len(v: &Value) -> usize {
    let mut count = ByteCount(0);
    // Counting cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// Why a JSON patch was not applied.
#[derive(Debug)]
enum JsonPatchError {
    Op(json_patch::PatchError),
    /// The `copy` operations would add more than the limit of bytes in all.
    CopyLimit,
}

impl From<json_patch::PatchError> for JsonPatchError {
    fn from(e: json_patch::PatchError) -> Self {
        JsonPatchError::Op(e)
    }
}

/// Applies RFC 6902 operations one by one, with the leniencies of the json-patch library
/// kube-apiserver uses (evanphx/json-patch v4), which clients rely on:
/// - a `test` for `null` passes when the path does not exist (kube-rs's finalizer helper);
/// - a `replace` of a missing key of an existing object acts as an `add` (KubeVirt's
///   test-then-replace patches on fields that may be unset).
///
/// Like that library as kube-apiserver sets it up, the values that `copy` operations add may
/// total at most `copy_limit` bytes of JSON; the check comes before each copy is made.
fn apply_json_patch(
    doc: &mut Value,
    ops: json_patch::Patch,
    copy_limit: usize,
) -> Result<(), JsonPatchError> {
    use json_patch::{AddOperation, PatchOperation};
    let mut copied = 0usize;
    for op in ops.0 {
        if let PatchOperation::Copy(c) = &op
            && let Some(from) = doc.pointer(c.from.as_str())
        {
            copied = copied.saturating_add(json_len(from));
            if copied > copy_limit {
                return Err(JsonPatchError::CopyLimit);
            }
        }
        let op = match op {
            PatchOperation::Test(t)
                if t.value.is_null() && doc.pointer(t.path.as_str()).is_none() =>
            {
                continue;
            }
            PatchOperation::Replace(r) if doc.pointer(r.path.as_str()).is_none() => {
                let parent_is_object = r
                    .path
                    .parent()
                    .and_then(|p| doc.pointer(p.as_str()))
                    .is_some_and(Value::is_object);
                if parent_is_object {
                    PatchOperation::Add(AddOperation {
                        path: r.path,
                        value: r.value,
                    })
                } else {
                    PatchOperation::Replace(r)
                }
            }
            other => other,
        };
        json_patch::patch(doc, &[op])?;
    }
    Ok(())
}

/// Where a list continues: after this object, with `seen` items already returned.
#[derive(Debug, PartialEq)]
struct ContinueKey {
    namespace: String,
    name: String,
    seen: u64,
}

fn encode_continue(ns: &str, name: &str, seen: u64) -> String {
    use base64::Engine;
    let raw = json!({"v": "localkube.v1", "start": [ns, name], "seen": seen}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<ContinueKey> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_array).ok_or_else(bad)?;
    match (
        start.first().and_then(Value::as_str),
        start.get(1).and_then(Value::as_str),
    ) {
        (Some(ns), Some(name)) => Ok(ContinueKey {
            namespace: ns.to_string(),
            name: name.to_string(),
            seen: v.get("seen").and_then(Value::as_u64).unwrap_or(0),
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_has_the_go_library_leniencies() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let ops: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "replace", "path": "/metadata/finalizers", "value": ["a"]},
        ]))
        .unwrap();
        apply_json_patch(&mut doc, ops, MAX_JSON_PATCH_COPY_BYTES).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["a"]));
        let bad: json_patch::Patch =
            serde_json::from_value(json!([{"op": "replace", "path": "/nope/x", "value": 1}]))
                .unwrap();
        assert!(apply_json_patch(&mut doc, bad, MAX_JSON_PATCH_COPY_BYTES).is_err());
        let failing: json_patch::Patch = serde_json::from_value(
            json!([{"op": "test", "path": "/metadata/name", "value": null}]),
        )
        .unwrap();
        assert!(apply_json_patch(&mut doc, failing, MAX_JSON_PATCH_COPY_BYTES).is_err());
    }

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

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue("default", "web-1", 500);
        assert_eq!(
            decode_continue(&t).unwrap(),
            ContinueKey {
                namespace: "default".into(),
                name: "web-1".into(),
                seen: 500
            }
        );
        assert_eq!(decode_continue("%%%").unwrap_err().code, 400);
    }
}
