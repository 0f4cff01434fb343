//! The checks every write runs on the object it is given: type, metadata, schema (with
//! pruning and defaulting), and the namespace. The per-type rules are the strategies'.

use serde_json::{Value, json};

use super::{Core, FieldValidation, meta, meta_str};
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult, Cause};
use crate::validation::{
    check_depth, check_labels_and_annotations, check_name, go_quote, name_rule,
};
use crate::{openapi, schema};

/// The Go JSON type of a value that Go cannot read into a string (null it reads as "").
fn non_string(v: &Value) -> Option<&'static str> {
    match v {
        Value::Null | Value::String(_) => None,
        Value::Bool(_) => Some("bool"),
        Value::Number(_) => Some("number"),
        Value::Array(_) => Some("array"),
        Value::Object(_) => Some("object"),
    }
}

/// Go reads apiVersion and kind first, and stops at one that is not a string.
fn version_kind_problem(map: &serde_json::Map<String, Value>) -> Option<String> {
    ["apiVersion", "kind"].into_iter().find_map(|field| {
        map.get(field).and_then(non_string).map(|what| {
            format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {what} into Go struct field .{field} of type string"
            )
        })
    })
}

/// The first of the metadata's names that is not a string, in Go's words.
fn metadata_names_problem(metadata: &Value) -> Option<String> {
    ["name", "generateName", "namespace", "uid", "resourceVersion"]
        .into_iter()
        .find_map(|field| {
            metadata.get(field).and_then(non_string).map(|what| {
                format!(
                    "json: cannot unmarshal {what} into Go struct field ObjectMeta.metadata.{field} of type string"
                )
            })
        })
}

impl Core {
    /// Checks the body's apiVersion and kind against the endpoint, and that it nests no deeper
    /// than a stored object may.
    pub(super) fn check_type(&self, rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        check_depth(obj).map_err(ApiError::bad_request)?;
        // Go decodes a JSON null into an empty object: it is then refused as one.
        if obj.is_null() {
            *obj = json!({});
        }
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        };
        if let Some(why) = version_kind_problem(map) {
            return Err(ApiError::bad_request(why));
        }
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
        // The names are read before the type's own checks: a name that is no string must not
        // pass for a missing one.
        if let Some(why) = metadata_names_problem(&map["metadata"]) {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {why}",
                kind = rt.kind,
                version = rt.version,
            )));
        }
        Ok(())
    }

    /// Why the object `obj` (a patch's result) would not decode into its Go type, in Go's
    /// words, if it would not: apiVersion or kind not strings, metadata not an object, names
    /// not strings, and for the built-in types any field of the wrong JSON type.
    pub(super) fn undecodable(&self, rt: &ResourceType, obj: &Value) -> Option<String> {
        let map = obj.as_object()?;
        if let Some(why) = version_kind_problem(map) {
            return Some(why);
        }
        match map.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(_)) => {
                if let Some(why) = metadata_names_problem(&map["metadata"]) {
                    return Some(why);
                }
            }
            Some(other) => {
                return Some(format!(
                    "json: cannot unmarshal {} into Go struct field {}.metadata of type v1.ObjectMeta",
                    non_string(other).unwrap_or("value"),
                    rt.kind
                ));
            }
        }
        openapi::builtin_type_error(&rt.group, &rt.kind, obj)
    }

    pub(super) fn check_metadata(&self, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let name = meta_str(obj, "name");
        let mut causes = Vec::new();
        // A prefix may end with '-', which a name may not.
        let prefix = meta_str(obj, "generateName");
        if !prefix.is_empty() {
            let masked = match prefix.strip_suffix('-') {
                Some(head) if !head.is_empty() => format!("{head}a"),
                _ => prefix.to_string(),
            };
            for problem in check_name(&masked, name_rule(&rt.group, &rt.plural)) {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {}: {problem}", go_quote(prefix)),
                    field: "metadata.generateName".into(),
                });
            }
        }
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

    /// Prunes unknown fields and validates the object against its schema. Returns warnings.
    pub(super) fn check_schema(
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
            unknown.extend(prune_metadata(obj));
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
            unknown.extend(prune_metadata(obj));
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

    pub(super) fn check_namespace(
        &self,
        rt: &ResourceType,
        ns: &str,
        creating: bool,
    ) -> ApiResult<()> {
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
}

/// Prunes unknown fields from the object's metadata against ObjectMeta's schema, and returns
/// their paths (`.metadata.…`).
fn prune_metadata(obj: &mut Value) -> Vec<String> {
    let builtin = openapi::builtin_schemas();
    let resolve = |r: &str| builtin.resolve(r);
    let (Some(meta_schema), Some(m)) = (builtin.object_meta(), obj.get_mut("metadata")) else {
        return Vec::new();
    };
    let ms = schema::Schema {
        root: meta_schema,
        resolve: &resolve,
    };
    schema::prune(m, &ms, false)
        .into_iter()
        .map(|p| format!(".metadata{p}"))
        .collect()
}
