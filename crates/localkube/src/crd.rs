//! CustomResourceDefinitions: checking them, and serving their resources.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType, StrategyId, View};
use crate::schema;
use crate::state::{Core, now_rfc3339};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::StoreKey;
use crate::strategy::Strategy;

fn invalid(name: &str, field: &str, reason: &str, message: impl Into<String>) -> Cause {
    let _ = name;
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

/// The finalizer that keeps a deleted CRD until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Groups that only approved APIs may use.
fn protected_group(group: &str) -> bool {
    group == "k8s.io"
        || group == "kubernetes.io"
        || group.ends_with(".k8s.io")
        || group.ends_with(".kubernetes.io")
}

/// Validates a CRD (against `old` on update).
fn validate(registry: &Registry, old: Option<&Value>, crd: &Value) -> ApiResult<()> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut causes = Vec::new();
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if group.is_empty() {
        causes.push(invalid(
            &name,
            "spec.group",
            "FieldValueRequired",
            "Required value",
        ));
    } else if !group.contains('.') {
        causes.push(invalid(
            &name,
            "spec.group",
            "FieldValueInvalid",
            format!("Invalid value: {group:?}: should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(invalid(
            &name,
            "spec.names.plural",
            "FieldValueRequired",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(invalid(
            &name,
            "spec.names.kind",
            "FieldValueRequired",
            "Required value",
        ));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(invalid(
            &name,
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match crd.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Namespaced") | Some("Cluster") => {}
        other => causes.push(invalid(
            &name,
            "spec.scope",
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                other.unwrap_or("")
            ),
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(invalid(
            &name,
            "spec.versions",
            "FieldValueInvalid",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(invalid(
            &name,
            "spec.versions",
            "FieldValueInvalid",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            causes.push(invalid(
                &name,
                &format!("spec.versions[{i}].name"),
                "FieldValueRequired",
                "Required value",
            ));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => {
                for problem in schema::check_structural(s) {
                    causes.push(invalid(
                        &name,
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        "FieldValueInvalid",
                        problem,
                    ));
                }
            }
            None => causes.push(invalid(
                &name,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "FieldValueRequired",
                "Required value: schemas are required",
            )),
        }
    }
    if protected_group(&group)
        && crd
            .pointer("/metadata/annotations/api-approved.kubernetes.io")
            .is_none()
    {
        causes.push(invalid(
            &name,
            "metadata.annotations[api-approved.kubernetes.io]",
            "FieldValueRequired",
            "Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        ));
    }
    if registry
        .all()
        .iter()
        .any(|t| !t.is_custom() && t.store == (group.clone(), plural.clone()))
    {
        causes.push(invalid(
            &name,
            "spec.names.plural",
            "FieldValueInvalid",
            format!("Invalid value: {plural:?}: is already served by a built-in API"),
        ));
    }
    if let Some(old) = old {
        for field in ["scope", "group"] {
            let before = old.pointer(&format!("/spec/{field}"));
            let after = crd.pointer(&format!("/spec/{field}"));
            if before != after {
                causes.push(invalid(
                    &name,
                    &format!("spec.{field}"),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: field is immutable",
                        after.cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            causes,
        ));
    }
    Ok(())
}

/// Fills the defaults the API server sets on a valid CRD: singular, listKind, and on create the
/// cleanup finalizer.
fn set_defaults(creating: bool, crd: &mut Value) {
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if creating {
        let fins = crd["metadata"]
            .as_object_mut()
            .map(|m| m.entry("finalizers").or_insert_with(|| json!([])));
        if let Some(Value::Array(a)) = fins
            && !a.iter().any(|f| f == CLEANUP_FINALIZER)
        {
            a.push(json!(CLEANUP_FINALIZER));
        }
    }
    let names = &mut crd["spec"]["names"];
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
}

/// The rules of the CustomResourceDefinition type itself.
pub struct Definitions;

impl Strategy for Definitions {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate_create(&self, core: &Core, _rt: &ResourceType, crd: &Value) -> ApiResult<()> {
        validate(&core.registry, None, crd)
    }

    fn validate_update(
        &self,
        core: &Core,
        _rt: &ResourceType,
        old: &Value,
        crd: &Value,
    ) -> ApiResult<()> {
        validate(&core.registry, Some(old), crd)
    }

    fn prepare_for_create(&self, _rt: &ResourceType, crd: &mut Value) {
        set_defaults(true, crd);
    }

    /// The status is the server's: only the status subresource writes it.
    fn prepare_for_update(&self, old: &Value, crd: &mut Value, status_only: bool) -> ApiResult<()> {
        set_defaults(false, crd);
        if let Some(s) = old.get("status")
            && !status_only
        {
            crd["status"] = s.clone();
        }
        Ok(())
    }

    fn after_create(&self, core: &Core, crd: &Value) -> ApiResult<bool> {
        established(core, crd)?;
        Ok(true)
    }

    fn after_update(&self, core: &Core, crd: &Value) -> ApiResult<()> {
        register(core, crd)
    }

    fn after_remove(&self, core: &Core, crd: &Value) {
        unregister(core, crd);
    }
}

/// The rules of the resources that CRDs serve.
pub struct CustomResources;

impl Strategy for CustomResources {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn storage_prefix(&self, rt: &ResourceType) -> String {
        format!("/registry/{}/{}", rt.group, rt.plural)
    }

    fn admit_create(&self, core: &Core, rt: &ResourceType) -> ApiResult<()> {
        if let Some(crd_name) = &rt.crd
            && terminating(core, crd_name)
        {
            return Err(ApiError::method_not_allowed(format!(
                "create not allowed while custom resource definition is terminating ({crd_name})"
            )));
        }
        Ok(())
    }

    /// With a status subresource, a create does not set the status.
    fn prepare_for_create(&self, rt: &ResourceType, obj: &mut Value) {
        if rt.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
    }
}

/// The resource types a CRD serves, one per served version.
fn types_of(crd: &Value) -> Vec<ResourceType> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("v1")
        .to_string();
    versions
        .iter()
        .filter(|v| v["served"].as_bool() != Some(false))
        .map(|v| ResourceType {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("").to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            store: (group.clone(), plural.clone()),
            storage_api_version: format!("{group}/{storage_version}"),
            view: View::Plain,
            crd_schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
            printer_columns: v.get("additionalPrinterColumns").cloned().map(Arc::new),
            crd: Some(name.clone()),
            deprecated: v["deprecated"].as_bool().unwrap_or(false),
            deprecation_warning: v["deprecationWarning"].as_str().map(str::to_string),
            strategy: StrategyId::CustomResource,
        })
        .collect()
}

/// Starts serving a stored CRD's resources (after create or update).
fn register(core: &Core, crd: &Value) -> ApiResult<()> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if crd
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Ok(());
    }
    core.registry.set_crd_types(name, types_of(crd));
    Ok(())
}

/// Serves the resources of every stored CRD (at start, with a data directory).
pub fn serve_stored(core: &Core) {
    let key = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    for crd in core.store.list(&key, None).0 {
        let _ = register(core, &crd.value());
    }
}

/// Registers a new CRD and marks it Established and NamesAccepted, as the API server does.
fn established(core: &Core, crd: &Value) -> ApiResult<()> {
    register(core, crd)?;
    let key = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(current) = core.store.get(&key, "", name) else {
        return Ok(());
    };
    let mut next = current.value();
    let now = now_rfc3339();
    let condition = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    let stored_versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    next["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored_versions,
    });
    let _ = core.store.update(&key, "", name, current.rv(), next);
    Ok(())
}

/// Where a CRD's custom resources are stored.
pub fn store_key(crd: &Value) -> StoreKey {
    let get = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (get("/spec/group"), get("/spec/names/plural"))
}

/// Stops serving a removed CRD's resources. The cleanup finalizer has already seen its
/// custom resources deleted; anything left (a CRD removed without it) goes too.
fn unregister(core: &Core, crd: &Value) {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    core.registry.set_crd_types(name, Vec::new());
    let key = store_key(crd);
    let (all, _) = core.store.list(&key, None);
    for obj in all {
        let _ = core.store.delete(&key, obj.namespace(), obj.name(), None);
    }
}

/// Whether the CRD that serves a custom resource type is being deleted.
fn terminating(core: &Core, crd_name: &str) -> bool {
    let key = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    core.store
        .get(&key, "", crd_name)
        .is_some_and(|c| c.deleting())
}
