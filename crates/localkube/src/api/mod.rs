//! The semantics of the API verbs, independent of HTTP: create, get, list, update, patch and
//! delete, with defaulting, validation, pruning, managed fields, finalizers and dry runs.
//!
//! One file per verb (`create`, `update`, `patch`, `delete`, `read` for get and list, `bind`
//! for pods/binding); `checks` holds what every write checks, `view` how a type shows its
//! stored objects. This file holds the options and results the verbs share, and the seam through
//! which a write is admitted (`Admission`: admission webhooks, see `crate::webhooks`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

pub use crate::state::{Core, now_rfc3339};

use crate::registry::{ResourceType, StrategyId};
use crate::status::{ApiError, ApiResult};
use crate::store::StoreError;
use crate::strategy::Strategy;
use crate::validation::go_quote;
use crate::{builtin, crd};

mod bind;
mod checks;
mod create;
mod delete;
mod evict;
pub mod options;
mod patch;
mod read;
mod update;
mod view;

pub use patch::apply_json_patch_ops;

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
    /// The directive `s` names (empty: the default); `None` for one kube does not know.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Warn" => Some(Self::Warn),
            "Ignore" => Some(Self::Ignore),
            "Strict" => Some(Self::Strict),
            _ => None,
        }
    }
}

/// The operation that admission sees a write as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// As `AdmissionRequest.operation` and webhook rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Admission of one request's writes, called by the verbs where kube-apiserver calls its
/// admission chain: `mutate` before the type's defaults and checks, `validate` after them,
/// just before storage. Neither is called with a storage lock held, so an implementation may
/// block on servers that call back into this one.
pub trait Admission: Send + Sync {
    /// May change `object` (None for DELETE, which has only `old`).
    fn mutate(
        &self,
        op: Operation,
        name: &str,
        object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()>;

    fn validate(
        &self,
        op: Operation,
        name: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()>;
}

/// The admission of a request's writes; none for the server's own writes.
#[derive(Clone, Default)]
pub struct AdmissionHook(Option<Arc<dyn Admission>>);

impl AdmissionHook {
    pub fn new(admission: Arc<dyn Admission>) -> Self {
        AdmissionHook(Some(admission))
    }

    fn get(&self) -> Option<&dyn Admission> {
        self.0.as_deref()
    }

    /// Whether writes are admitted by something (so may block on it).
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Mutating admission of a new or changed object.
    fn mutate(
        &self,
        op: Operation,
        name: &str,
        object: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        match self.get() {
            Some(a) => a.mutate(op, name, Some(object), old),
            None => Ok(()),
        }
    }

    fn validate(
        &self,
        op: Operation,
        name: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        match self.get() {
            Some(a) => a.validate(op, name, object, old),
            None => Ok(()),
        }
    }

    /// Admission of a connection (CONNECT) to `name` with these options.
    pub fn connect(&self, name: &str, mut options: Value) -> ApiResult<()> {
        self.mutate(Operation::Connect, name, &mut options, None)?;
        self.validate(Operation::Connect, name, Some(&options), None)
    }
}

impl std::fmt::Debug for AdmissionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AdmissionHook(some)"
        } else {
            "AdmissionHook(none)"
        })
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
    pub admission: AdmissionHook,
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
    pub admission: AdmissionHook,
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
            let values: Vec<&str> = d.iter().map(|v| v.as_str().unwrap_or_default()).collect();
            let dry = options::dry_run(&values)
                .map_err(|c| options::invalid(options::OptionsKind::Delete, vec![c]))?;
            self.dry_run |= dry;
        }
        Ok(())
    }
}

/// A `propagationPolicy` of DeleteOptions; another value is kube-apiserver's 422.
pub fn parse_propagation(p: &str) -> ApiResult<Propagation> {
    options::propagation(p).map_err(|c| options::invalid(options::OptionsKind::Delete, vec![c]))
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

/// A conflict from storage (the object changed under us), as opposed to a client precondition.
fn is_store_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict" && e.message.contains("the object has been modified")
}

/// The rules of a resource type.
fn strategy(rt: &ResourceType) -> &'static dyn Strategy {
    match rt.strategy {
        StrategyId::Plain => &builtin::Plain,
        StrategyId::Pod => &builtin::Pods,
        StrategyId::Namespace => &builtin::Namespaces,
        StrategyId::Service => &builtin::Services,
        StrategyId::ConfigMap => &builtin::ConfigMaps,
        StrategyId::Secret => &builtin::Secrets,
        StrategyId::Deployment => &builtin::Deployments,
        StrategyId::DisruptionBudget => &builtin::DisruptionBudgets,
        StrategyId::CustomResourceDefinition => &crd::Definitions,
        StrategyId::CustomResource => &crd::CustomResources,
        // Reviews never reach the verbs (http answers them); nothing to store.
        StrategyId::AccessReview => &builtin::Plain,
        StrategyId::ApiService => &crate::aggregation::ApiServices,
        StrategyId::WebhookConfiguration => &crate::webhooks::WebhookConfigurations,
    }
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
    let mut key = strategy(rt).storage_prefix(rt);
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
