//! The structural check of a CRD's schema, on CRD creation and update.

use serde_json::Value;

use super::format::*;
use super::*;

/// A light check that a CRD's `openAPIV3Schema` is structural. Returns human readable
/// problems (paths relative to the schema root); empty means acceptable.
pub fn check_structural(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !schema.is_object() {
        problems.push("Invalid value: must be an object schema".to_string());
        return problems;
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        None => problems.push("type: Required value: must not be empty at the root".into()),
        Some(other) => problems.push(format!(
            "type: Invalid value: {}: must be object at the root",
            bad_value(other)
        )),
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        check_root_metadata(meta, &mut problems);
    }
    check_node(schema, "", true, &mut problems, 0);
    problems
}

fn check_root_metadata(meta: &Value, problems: &mut Vec<String>) {
    const MSG: &str = "properties[metadata]: Forbidden: must not specify anything other than \
                       name and generateName, but metadata is implicitly specified";
    let Some(m) = meta.as_object() else {
        problems.push(MSG.into());
        return;
    };
    let type_ok = match m.get("type") {
        None => true,
        Some(t) => t == "object",
    };
    let keys_ok = m
        .keys()
        .all(|k| matches!(k.as_str(), "type" | "description" | "properties"));
    let props_ok = match m.get("properties") {
        None => true,
        Some(Value::Object(p)) => p.keys().all(|k| k == "name" || k == "generateName"),
        Some(_) => false,
    };
    if !(type_ok && keys_ok && props_ok) {
        problems.push(MSG.into());
    }
}

fn check_node(node: &Value, path: &str, is_root: bool, problems: &mut Vec<String>, depth: usize) {
    let Some(obj) = node.as_object() else {
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    let join = |suffix: &str| {
        if path.is_empty() {
            suffix.to_string()
        } else {
            format!("{path}.{suffix}")
        }
    };
    let flagged = |key: &str| obj.get(key).and_then(Value::as_bool) == Some(true);
    let exempt = flagged(INT_OR_STRING) || flagged(PRESERVE);
    if !is_root && !exempt && obj.get("type").is_none() {
        if obj.contains_key("properties")
            || obj
                .get("additionalProperties")
                .is_some_and(Value::is_object)
        {
            problems.push(format!(
                "{}: Required value: must not be empty for specified object fields",
                join("type")
            ));
        } else if obj.contains_key("items") {
            problems.push(format!(
                "{}: Required value: must not be empty for specified array items",
                join("type")
            ));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if is_root && k == "metadata" {
                continue;
            }
            check_node(
                v,
                &join(&format!("properties[{k}]")),
                false,
                problems,
                depth + 1,
            );
        }
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => {
            check_node(items, &join("items"), false, problems, depth + 1)
        }
        Some(Value::Array(list)) => {
            for (i, items) in list.iter().enumerate() {
                check_node(
                    items,
                    &join(&format!("items[{i}]")),
                    false,
                    problems,
                    depth + 1,
                );
            }
        }
        _ => {}
    }
    if let Some(a @ Value::Object(_)) = obj.get("additionalProperties") {
        check_node(a, &join("additionalProperties"), false, problems, depth + 1);
    }
}
