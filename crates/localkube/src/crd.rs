//! CustomResourceDefinitions: checking them, and serving their resources.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Core, now_rfc3339};
use crate::registry::{ResourceType, View};
use crate::schema;
use crate::status::{ApiError, ApiResult, Cause};

fn invalid(name: &str, field: &str, reason: &str, message: impl Into<String>) -> Cause {
    let _ = name;
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

/// Validates a CRD and fills the defaults the API server sets (singular, listKind).
pub fn prepare(crd: &mut Value) -> ApiResult<()> {
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
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            causes,
        ));
    }
    let names = &mut crd["spec"]["names"];
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    Ok(())
}

/// The resource types a CRD serves, one per served version.
pub fn types_of(crd: &Value) -> Vec<ResourceType> {
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
        })
        .collect()
}

/// Starts serving a stored CRD's resources (after create or update).
pub fn register(core: &Core, crd: &Value) -> ApiResult<()> {
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

/// Registers a new CRD and marks it Established and NamesAccepted, as the API server does.
pub fn established(core: &Core, crd: &Value) -> ApiResult<()> {
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
    let mut next = (*current).clone();
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
    let rv = crate::store::object_rv(&current);
    let _ = core.store.update(&key, "", name, rv, next);
    Ok(())
}

/// Stops serving a deleted CRD's resources and removes its objects.
pub fn unregister(core: &Core, crd: &Value) {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let types = types_of(crd);
    core.registry.set_crd_types(name, Vec::new());
    if let Some(t) = types.first() {
        let (all, _) = core.store.list(&t.store, None);
        for obj in all {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let n = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let _ = core.store.delete(&t.store, ns, n, None);
        }
    }
}
