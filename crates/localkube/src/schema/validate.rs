//! Validation of an object against its structural schema, with kube-openapi's messages.

use serde_json::{Map, Value};

use super::format::*;
use super::*;

/// Validates `obj` against the schema, with kube-openapi's messages and field paths.
pub fn validate(obj: &Value, schema: &Schema) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_node(obj, schema, schema.root, "", &mut errs, 0);
    errs
}

fn push(errs: &mut Vec<FieldError>, field: &str, reason: &'static str, message: String) {
    errs.push(FieldError {
        field: field.to_string(),
        reason,
        message,
    });
}

fn push_invalid(errs: &mut Vec<FieldError>, path: &str, bad: String, detail: String) {
    let message = format!("Invalid value: {bad}: {} {detail}", subject(path));
    push(errs, path, "FieldValueInvalid", message);
}

fn push_type(errs: &mut Vec<FieldError>, path: &str, bad: String, expected: &str, actual: &str) {
    let message = format!(
        "Invalid value: {bad}: {} must be of type {expected}: {}",
        subject(path),
        go_quote(actual)
    );
    push(errs, path, "FieldValueTypeInvalid", message);
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn own_types(node: &Map<String, Value>) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) if t != "null" => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    }
}

/// `depth` counts schema hops (`$ref`, `allOf`, ...) at the same value; it restarts at 0
/// when descending into a child value.
fn validate_node<'a>(
    value: &Value,
    s: &Schema<'a>,
    node: &'a Value,
    path: &str,
    errs: &mut Vec<FieldError>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(obj) = node.as_object() else {
        return;
    };
    if value.is_null() {
        let view = View::new(s, node);
        if view.nullable() {
            return;
        }
        let types = if view.int_or_string() {
            vec!["integer", "string"]
        } else {
            view.types()
        };
        if !types.is_empty() {
            push_type(errs, path, go_quote("null"), &types.join(","), "null");
        }
        return;
    }
    let actual = type_name(value);
    if obj.get(INT_OR_STRING).and_then(Value::as_bool) == Some(true) {
        if !(value.is_string() || type_matches("integer", value)) {
            push_type(errs, path, go_quote(actual), "integer,string", actual);
            return;
        }
    } else {
        let types = own_types(obj);
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
            push_type(errs, path, go_quote(actual), &types.join(","), actual);
            return;
        }
    }
    if let Some(target) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| s.lookup(r))
        && !std::ptr::eq(target, node)
    {
        validate_node(value, s, target, path, errs, depth + 1);
    }
    if let Some(allowed) = obj.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_eq(a, value))
    {
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => go_quote(s),
                other => go_quote(&other.to_string()),
            })
            .collect();
        let message = format!(
            "Unsupported value: {}: supported values: {}",
            bad_value(value),
            supported.join(", ")
        );
        push(errs, path, "FieldValueNotSupported", message);
    }
    match value {
        Value::String(text) => validate_string(text, obj, path, errs),
        Value::Number(_) => validate_number(value, obj, path, errs),
        Value::Array(elems) => validate_array(elems, s, obj, path, errs),
        Value::Object(map) => validate_object(map, s, obj, path, errs),
        _ => {}
    }
    validate_composition(value, s, obj, path, errs, depth);
}

fn validate_composition<'a>(
    value: &Value,
    s: &Schema<'a>,
    obj: &'a Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
    depth: usize,
) {
    let passes = |sub: &'a Value| {
        let mut scratch = Vec::new();
        validate_node(value, s, sub, path, &mut scratch, depth + 1);
        scratch.is_empty()
    };
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate_node(value, s, sub, path, errs, depth + 1);
        }
    }
    if let Some(any) = obj.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        let detail = "must validate at least one schema (anyOf)".to_string();
        push_invalid(errs, path, go_quote(""), detail);
    }
    if let Some(one) = obj.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        let detail = "must validate one and only one schema (oneOf)".to_string();
        push_invalid(errs, path, go_quote(""), detail);
    }
    if let Some(not) = obj.get("not")
        && not.is_object()
        && passes(not)
    {
        let detail = "must not validate the schema (not)".to_string();
        push_invalid(errs, path, go_quote(""), detail);
    }
}

fn validate_string(text: &str, obj: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let len = text.chars().count();
    if let Some(max) = as_count(obj.get("maxLength"))
        && len > max
    {
        let message = format!("Too long: may not be more than {max} bytes");
        push(errs, path, "FieldValueTooLong", message);
    }
    if let Some(min) = as_count(obj.get("minLength"))
        && len < min
    {
        let detail = format!("should be at least {min} chars long");
        push_invalid(errs, path, go_quote(text), detail);
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str)
        && let Some(re) = cached_regex(pattern)
        && !re.is_match(text)
    {
        let detail = format!("should match '{pattern}'");
        push_invalid(errs, path, go_quote(text), detail);
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && !string_format_ok(format, text)
    {
        push_type(errs, path, go_quote(text), format, text);
    }
}

fn string_format_ok(format: &str, text: &str) -> bool {
    match format {
        "date-time" => {
            chrono::DateTime::parse_from_rfc3339(text).is_ok()
                || chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z").is_ok()
        }
        "date" => text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        "byte" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok()
        }
        "uuid" => {
            cached_regex("(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
                .is_some_and(|re| re.is_match(text))
        }
        _ => true,
    }
}

fn number_format_ok(format: &str, value: &Value) -> bool {
    let in_range = |lo: i64, hi: i64| {
        if let Some(i) = value.as_i64() {
            (lo..=hi).contains(&i)
        } else if value.is_u64() {
            false
        } else {
            value
                .as_f64()
                .is_some_and(|f| f >= lo as f64 && f <= hi as f64)
        }
    };
    match format {
        "int32" => in_range(i32::MIN as i64, i32::MAX as i64),
        "int64" => in_range(i64::MIN, i64::MAX),
        _ => true,
    }
}

pub(super) fn is_multiple_of(value: &Value, factor: &Value) -> bool {
    if let (Some(v), Some(f)) = (value.as_i64(), factor.as_i64()) {
        return f == 0 || v % f == 0;
    }
    let (Some(v), Some(f)) = (value.as_f64(), factor.as_f64()) else {
        return true;
    };
    if f == 0.0 {
        return true;
    }
    let q = v / f;
    (q - q.round()).abs() <= 1e-9 * q.abs().max(1.0)
}

fn validate_number(
    value: &Value,
    obj: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(v) = as_f64(value) else {
        return;
    };
    let bad = || bad_value(value);
    let limit = |key: &str| obj.get(key).and_then(Value::as_number).map(go_number);
    if let Some(max) = obj.get("maximum").and_then(as_f64) {
        let exclusive = obj.get("exclusiveMaximum") == Some(&Value::Bool(true));
        let shown = limit("maximum").unwrap_or_default();
        if exclusive && v >= max {
            push_invalid(errs, path, bad(), format!("should be less than {shown}"));
        } else if !exclusive && v > max {
            let detail = format!("should be less than or equal to {shown}");
            push_invalid(errs, path, bad(), detail);
        }
    }
    if let Some(max) = obj.get("exclusiveMaximum").and_then(as_f64)
        && v >= max
    {
        let shown = limit("exclusiveMaximum").unwrap_or_default();
        push_invalid(errs, path, bad(), format!("should be less than {shown}"));
    }
    if let Some(min) = obj.get("minimum").and_then(as_f64) {
        let exclusive = obj.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let shown = limit("minimum").unwrap_or_default();
        if exclusive && v <= min {
            push_invalid(errs, path, bad(), format!("should be greater than {shown}"));
        } else if !exclusive && v < min {
            let detail = format!("should be greater than or equal to {shown}");
            push_invalid(errs, path, bad(), detail);
        }
    }
    if let Some(min) = obj.get("exclusiveMinimum").and_then(as_f64)
        && v <= min
    {
        let shown = limit("exclusiveMinimum").unwrap_or_default();
        push_invalid(errs, path, bad(), format!("should be greater than {shown}"));
    }
    if let Some(factor) = obj.get("multipleOf")
        && factor.is_number()
        && !is_multiple_of(value, factor)
    {
        let shown = limit("multipleOf").unwrap_or_default();
        push_invalid(
            errs,
            path,
            bad(),
            format!("should be a multiple of {shown}"),
        );
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && !number_format_ok(format, value)
    {
        push_type(errs, path, bad(), format, &bad_value(value));
    }
}

fn validate_array<'a>(
    elems: &[Value],
    s: &Schema<'a>,
    obj: &'a Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let len = elems.len();
    if let Some(max) = as_count(obj.get("maxItems"))
        && len > max
    {
        let message = format!("Too many: {len}: must have at most {max} items");
        push(errs, path, "FieldValueTooMany", message);
    }
    if let Some(min) = as_count(obj.get("minItems"))
        && len < min
    {
        let detail = format!("should have at least {min} items");
        push_invalid(errs, path, len.to_string(), detail);
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true))
        && (1..len).any(|i| elems[..i].iter().any(|e| json_eq(e, &elems[i])))
    {
        let detail = "shouldn't contain duplicates".to_string();
        push_invalid(errs, path, go_quote(""), detail);
    }
    if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
        for (i, elem) in elems.iter().enumerate() {
            validate_node(elem, s, items, &format!("{path}[{i}]"), errs, 0);
        }
    }
    match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for i in 1..len {
                if elems[..i].iter().any(|e| json_eq(e, &elems[i])) {
                    let message = format!("Duplicate value: {}", bad_value(&elems[i]));
                    push(
                        errs,
                        &format!("{path}[{i}]"),
                        "FieldValueDuplicate",
                        message,
                    );
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                return;
            }
            let key_of = |e: &Value| -> Value {
                let mut m = Map::new();
                for k in &keys {
                    m.insert(k.to_string(), e.get(*k).cloned().unwrap_or(Value::Null));
                }
                Value::Object(m)
            };
            let tuples: Vec<Value> = elems.iter().map(key_of).collect();
            for i in 1..len {
                if tuples[..i].iter().any(|t| json_eq(t, &tuples[i])) {
                    let message = format!("Duplicate value: {}", tuples[i]);
                    push(
                        errs,
                        &format!("{path}[{i}]"),
                        "FieldValueDuplicate",
                        message,
                    );
                }
            }
        }
        _ => {}
    }
}

fn validate_object<'a>(
    map: &Map<String, Value>,
    s: &Schema<'a>,
    obj: &'a Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let count = map.len();
    if let Some(max) = as_count(obj.get("maxProperties"))
        && count > max
    {
        let message = format!("Too many: {count}: must have at most {max} items");
        push(errs, path, "FieldValueTooMany", message);
    }
    if let Some(min) = as_count(obj.get("minProperties"))
        && count < min
    {
        let detail = format!("should have at least {min} properties");
        push_invalid(errs, path, count.to_string(), detail);
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                let field = child_path(path, name);
                push(errs, &field, "FieldValueRequired", "Required value".into());
            }
        }
    }
    if obj.get(EMBEDDED).and_then(Value::as_bool) == Some(true) {
        for name in ["apiVersion", "kind"] {
            if map
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                let field = child_path(path, name);
                let message = "Required value: must not be empty".to_string();
                push(errs, &field, "FieldValueRequired", message);
            }
        }
    }
    let props = obj.get("properties").and_then(Value::as_object);
    let additional = obj.get("additionalProperties");
    for (key, child) in map {
        let field = child_path(path, key);
        if let Some(prop) = props.and_then(|p| p.get(key)) {
            validate_node(child, s, prop, &field, errs, 0);
        } else if let Some(a @ Value::Object(_)) = additional {
            validate_node(child, s, a, &field, errs, 0);
        } else if additional == Some(&Value::Bool(false)) {
            let detail = "is a forbidden property".to_string();
            let message = format!(
                "Invalid value: {}: {} {detail}",
                go_quote(key),
                subject(&field)
            );
            push(errs, path, "FieldValueInvalid", message);
        }
    }
}
