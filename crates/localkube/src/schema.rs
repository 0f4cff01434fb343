//! OpenAPI v3 structural schemas (Kubernetes `JSONSchemaProps` form): pruning of unknown
//! fields, defaulting, validation with kube-openapi style messages, and a light structural
//! check for CRD creation.
//!
//! Schemas are plain JSON values. `$ref`s (`#/components/schemas/NAME`, `#/definitions/NAME`,
//! `#/$defs/NAME`) are followed through a caller supplied resolver, falling back to a JSON
//! pointer lookup inside the root schema, so schemars generated schemas of built-in types
//! (`$ref` with sibling keys, `allOf: [{$ref}]`, `type: [T, "null"]`) work as well.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// A schema root plus a resolver for `$ref`s that point outside of it.
pub struct Schema<'a> {
    pub root: &'a Value,
    pub resolve: &'a dyn Fn(&str) -> Option<&'a Value>,
}

/// One validation failure, shaped like a Kubernetes `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path without leading dot, e.g. `spec.items[0].name`.
    pub field: String,
    /// metav1 CauseType, e.g. `FieldValueInvalid`.
    pub reason: &'static str,
    pub message: String,
}

impl FieldError {
    /// `field: message`, as Kubernetes prints field errors.
    pub fn display(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Kubernetes' strict field validation error text for the given unknown field paths.
pub fn unknown_fields_message(paths: &[String]) -> String {
    let parts: Vec<String> = paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    format!("strict decoding error: {}", parts.join(", "))
}

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];
const MAX_DEPTH: usize = 64;
const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";

impl<'a> Schema<'a> {
    /// Resolves a `$ref` through the resolver, then inside the root schema.
    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        if let Some(v) = (self.resolve)(reference) {
            return Some(v);
        }
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }
}

/// What `additionalProperties` allows for unknown keys.
enum Additional<'a> {
    /// Not given or `false`: unknown keys are not specified.
    No,
    /// `true`: anything is allowed, values are not descended into.
    Any,
    /// A schema for every value.
    Schema(&'a Value),
}

/// The structural view of one schema node: the node itself plus everything included through
/// `$ref` and `allOf` (and `anyOf`/`oneOf` branches when the node specifies nothing itself).
struct View<'a> {
    parts: Vec<&'a Value>,
}

fn collect<'a>(s: &Schema<'a>, node: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
    if depth > MAX_DEPTH || !node.is_object() || out.iter().any(|p| std::ptr::eq(*p, node)) {
        return;
    }
    out.push(node);
    if let Some(target) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| s.lookup(r))
    {
        collect(s, target, out, depth + 1);
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for sub in all {
            collect(s, sub, out, depth + 1);
        }
    }
}

impl<'a> View<'a> {
    fn new(s: &Schema<'a>, node: &'a Value) -> View<'a> {
        let mut parts = Vec::new();
        collect(s, node, &mut parts, 0);
        let mut view = View { parts };
        if view.unconstrained() {
            let branches: Vec<&'a Value> = view
                .parts
                .iter()
                .flat_map(|p| ["anyOf", "oneOf"].map(|k| p.get(k)))
                .flatten()
                .filter_map(Value::as_array)
                .flatten()
                .collect();
            for b in branches {
                collect(s, b, &mut view.parts, 1);
            }
        }
        view
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.parts.iter().find_map(|p| p.get(key))
    }

    fn flag(&self, key: &str) -> bool {
        self.parts
            .iter()
            .any(|p| p.get(key).and_then(Value::as_bool) == Some(true))
    }

    fn property(&self, name: &str) -> Option<&'a Value> {
        self.parts
            .iter()
            .find_map(|p| p.get("properties").and_then(|props| props.get(name)))
    }

    /// All specified properties, first definition wins.
    fn properties(&self) -> Vec<(&'a str, &'a Value)> {
        let mut out: Vec<(&'a str, &'a Value)> = Vec::new();
        for p in &self.parts {
            if let Some(props) = p.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    if !out.iter().any(|(n, _)| *n == k.as_str()) {
                        out.push((k.as_str(), v));
                    }
                }
            }
        }
        out
    }

    fn items(&self) -> Option<&'a Value> {
        self.parts
            .iter()
            .filter_map(|p| p.get("items"))
            .find(|i| i.is_object() || i.is_boolean())
    }

    fn additional(&self) -> Additional<'a> {
        match self.get("additionalProperties") {
            Some(Value::Bool(true)) => Additional::Any,
            Some(v @ Value::Object(_)) => Additional::Schema(v),
            _ => Additional::No,
        }
    }

    /// Declared types, `"null"` excluded.
    fn types(&self) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        for p in &self.parts {
            let names: Vec<&'a str> = match p.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for t in names {
                if t != "null" && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    }

    fn nullable(&self) -> bool {
        self.flag("nullable")
            || self.parts.iter().any(|p| match p.get("type") {
                Some(Value::String(t)) => t == "null",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
                _ => false,
            })
    }

    fn int_or_string(&self) -> bool {
        self.flag(INT_OR_STRING)
    }

    /// No type, properties, items or additionalProperties: anything goes.
    fn unconstrained(&self) -> bool {
        !self.parts.iter().any(|p| {
            p.get("type").is_some()
                || p.get("properties").is_some()
                || p.get("items").is_some()
                || p.get("additionalProperties").is_some()
        })
    }
}

/// Removes fields the schema does not specify and returns their paths (`.spec.foo`).
///
/// Also drops `null`s of specified non-nullable properties without a default (not reported),
/// like the Kubernetes decoder does before defaulting.
pub fn prune(obj: &mut Value, schema: &Schema, is_root_resource: bool) -> Vec<String> {
    let mut removed = Vec::new();
    prune_node(
        obj,
        schema,
        schema.root,
        is_root_resource,
        false,
        "",
        &mut removed,
    );
    removed
}

fn prune_node<'a>(
    value: &mut Value,
    s: &Schema<'a>,
    node: &'a Value,
    is_root: bool,
    inherited_preserve: bool,
    path: &str,
    removed: &mut Vec<String>,
) {
    let view = View::new(s, node);
    if view.int_or_string() {
        return;
    }
    let preserve = inherited_preserve || view.flag(PRESERVE);
    if !preserve && view.unconstrained() {
        return;
    }
    match value {
        Value::Object(map) => {
            let embedded = view.flag(EMBEDDED);
            let additional = view.additional();
            map.retain(|key, child| {
                let is_meta = META_FIELDS.contains(&key.as_str());
                if is_root && is_meta {
                    return true;
                }
                let child_path = format!("{path}.{key}");
                match view.property(key) {
                    Some(prop) => {
                        if child.is_null() {
                            let pv = View::new(s, prop);
                            return pv.nullable() || pv.get("default").is_some();
                        }
                        prune_node(child, s, prop, false, false, &child_path, removed);
                        true
                    }
                    None if embedded && is_meta => true,
                    None => match additional {
                        Additional::Schema(a) => {
                            prune_node(child, s, a, false, false, &child_path, removed);
                            true
                        }
                        Additional::Any => true,
                        Additional::No if preserve => true,
                        Additional::No => {
                            removed.push(child_path);
                            false
                        }
                    },
                }
            });
        }
        Value::Array(elems) => {
            if let Some(items) = view.items() {
                for (i, elem) in elems.iter_mut().enumerate() {
                    let child_path = format!("{path}[{i}]");
                    prune_node(elem, s, items, false, preserve, &child_path, removed);
                }
            }
        }
        _ => {}
    }
}

/// Sets `default`s of missing properties (and of `null`s where the field is not nullable),
/// recursively through properties, array items and additionalProperties values.
pub fn apply_defaults(obj: &mut Value, schema: &Schema) {
    default_node(obj, schema, schema.root);
}

/// The default to put in place of `value`, if it is missing or a non-nullable null.
fn default_for<'a>(s: &Schema<'a>, node: &'a Value, value: Option<&Value>) -> Option<Value> {
    let view = View::new(s, node);
    let default = view.get("default")?;
    match value {
        None => Some(default.clone()),
        Some(Value::Null) if !view.nullable() && !default.is_null() => Some(default.clone()),
        Some(_) => None,
    }
}

fn default_node<'a>(value: &mut Value, s: &Schema<'a>, node: &'a Value) {
    let view = View::new(s, node);
    if view.int_or_string() {
        return;
    }
    match value {
        Value::Object(map) => {
            for (name, prop) in view.properties() {
                if let Some(d) = default_for(s, prop, map.get(name)) {
                    map.insert(name.to_string(), d);
                }
            }
            let additional = view.additional();
            for (key, child) in map.iter_mut() {
                if let Some(prop) = view.property(key) {
                    default_node(child, s, prop);
                } else if let Additional::Schema(a) = additional {
                    if let Some(d) = default_for(s, a, Some(child)) {
                        *child = d;
                    }
                    default_node(child, s, a);
                }
            }
        }
        Value::Array(elems) => {
            if let Some(items) = view.items() {
                for elem in elems.iter_mut() {
                    if let Some(d) = default_for(s, items, Some(elem)) {
                        *elem = d;
                    }
                    default_node(elem, s, items);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Value formatting in the style of Go / apimachinery field errors.
// ---------------------------------------------------------------------------------------

/// Go's `%q` for a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` for a float64.
fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let e = format!("{f:e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if f.fract() == 0.0 {
        return format!("{f:.0}");
    }
    format!("{f}")
}

fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// The bad value as printed after `Invalid value: `.
fn bad_value(v: &Value) -> String {
    match v {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The JSON type name of a value as kube-openapi reports it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `spec.x in body` (kube-openapi's subject of a message).
fn subject(path: &str) -> String {
    if path.is_empty() {
        "in body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn as_count(v: Option<&Value>) -> Option<usize> {
    let v = v?;
    v.as_u64()
        .map(|n| n as usize)
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as usize))
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn cached_regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if guard.len() > 1024 {
        guard.clear();
    }
    guard
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

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

fn is_multiple_of(value: &Value, factor: &Value) -> bool {
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

// ---------------------------------------------------------------------------------------
// Structural check for CRD creation
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_refs<'a>(_: &str) -> Option<&'a Value> {
        None
    }

    fn plain(root: &Value) -> Schema<'_> {
        Schema {
            root,
            resolve: &no_refs,
        }
    }

    fn vm_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "running": {"type": "boolean"},
                        "template": {
                            "type": "object",
                            "properties": {
                                "metadata": {
                                    "type": "object",
                                    "nullable": true,
                                    "x-kubernetes-preserve-unknown-fields": true
                                },
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": true,
                                    "properties": {
                                        "domain": {
                                            "type": "object",
                                            "properties": {
                                                "cpu": {
                                                    "type": "object",
                                                    "properties": {
                                                        "cores": {"type": "integer"}
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        },
                        "dataVolumeTemplates": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}}
                            }
                        }
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    fn vm_object() -> Value {
        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "vm1", "whatever": {"deep": 1}},
            "extra": 1,
            "spec": {
                "running": true,
                "foo": "bar",
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "domain": {
                            "cpu": {"cores": 2, "bogus": true},
                            "devices": {"disks": [{"name": "d"}]}
                        },
                        "volumes": [{"name": "v", "containerDisk": {"image": "x"}}]
                    },
                    "junk": 3
                },
                "dataVolumeTemplates": [{"name": "a"}, {"name": "b", "extra": {"x": 1}}]
            },
            "status": {"anything": {"goes": [1, 2]}}
        })
    }

    #[test]
    fn prune_vm_like_schema() {
        let schema = vm_schema();
        let mut obj = vm_object();
        let removed = prune(&mut obj, &plain(&schema), true);
        assert_eq!(
            removed,
            vec![
                ".extra",
                ".spec.foo",
                ".spec.template.spec.domain.cpu.bogus",
                // Preservation applies to template.spec itself, not to its specified children.
                ".spec.template.spec.domain.devices",
                ".spec.template.junk",
                ".spec.dataVolumeTemplates[1].extra",
            ]
        );
        assert_eq!(obj["metadata"]["whatever"]["deep"], 1);
        assert_eq!(obj["spec"]["template"]["metadata"]["labels"]["a"], "b");
        assert!(
            obj["spec"]["template"]["spec"]["domain"]
                .get("devices")
                .is_none()
        );
        assert_eq!(
            obj["spec"]["template"]["spec"]["volumes"][0]["containerDisk"]["image"],
            "x"
        );
        assert_eq!(
            obj["spec"]["template"]["spec"]["domain"]["cpu"],
            json!({"cores": 2})
        );
        assert_eq!(obj["status"]["anything"]["goes"], json!([1, 2]));
        assert_eq!(obj["spec"]["dataVolumeTemplates"][1], json!({"name": "b"}));
        // Key order is preserved and pruning again is a no-op.
        let keys: Vec<&String> = obj.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
        assert!(prune(&mut obj, &plain(&schema), true).is_empty());
        assert!(validate(&obj, &plain(&schema)).is_empty());
    }

    #[test]
    fn prune_not_root_prunes_meta_fields() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {}, "a": "x"});
        let removed = prune(&mut obj, &plain(&schema), false);
        assert_eq!(removed, vec![".apiVersion", ".kind", ".metadata"]);
        assert_eq!(obj, json!({"a": "x"}));
        let mut root = json!({"apiVersion": "v1", "kind": "K", "metadata": {"x": 1}});
        assert!(prune(&mut root, &plain(&schema), true).is_empty());
    }

    #[test]
    fn prune_embedded_resource() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "template": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {}}}
                        }
                    }
                }
            }
        });
        let mut obj = json!({"spec": {"template": {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"x": 1}, "other": 2
        }}});
        let removed = prune(&mut obj, &plain(&schema), true);
        assert_eq!(
            removed,
            vec![".spec.template.spec.x", ".spec.template.other"]
        );
        assert_eq!(obj["spec"]["template"]["metadata"]["name"], "p");
        assert_eq!(obj["spec"]["template"]["kind"], "Pod");

        let missing = json!({"spec": {"template": {"kind": ""}}});
        let errs = validate(&missing, &plain(&schema));
        let fields: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                (
                    "spec.template.apiVersion",
                    "Required value: must not be empty"
                ),
                ("spec.template.kind", "Required value: must not be empty"),
            ]
        );
    }

    #[test]
    fn prune_anything_goes_and_int_or_string() {
        let schema = json!({
            "type": "object",
            "properties": {
                "free": {"description": "schemars output for a raw value"},
                "empty": {},
                "port": {"x-kubernetes-int-or-string": true},
                "map": {"type": "object", "additionalProperties": true},
                "typed": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"a": {"type": "string"}}
                }},
                "closed": {"type": "object"}
            }
        });
        let mut obj = json!({
            "free": {"x": {"y": 1}},
            "empty": [{"z": 1}],
            "port": {"weird": true},
            "map": {"k": {"v": 1}},
            "typed": {"one": {"a": "x", "b": "y"}},
            "closed": {"gone": 1}
        });
        let removed = prune(&mut obj, &plain(&schema), false);
        assert_eq!(removed, vec![".typed.one.b", ".closed.gone"]);
        assert_eq!(obj["free"]["x"]["y"], 1);
        assert_eq!(obj["empty"][0]["z"], 1);
        assert_eq!(obj["port"]["weird"], true);
        assert_eq!(obj["map"]["k"]["v"], 1);
    }

    #[test]
    fn prune_preserved_array_items_and_nulls() {
        let schema = json!({
            "type": "object",
            "properties": {
                "list": {
                    "type": "array",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}}
                },
                "plain": {"type": "string"},
                "nullable": {"type": "string", "nullable": true},
                "defaulted": {"type": "string", "default": "d"},
                "schemars": {"type": ["string", "null"]}
            }
        });
        let mut obj = json!({
            "list": [{"a": "x", "b": "kept"}],
            "plain": null, "nullable": null, "defaulted": null, "schemars": null
        });
        let s = plain(&schema);
        assert!(prune(&mut obj, &s, false).is_empty());
        assert_eq!(obj["list"][0]["b"], "kept");
        assert!(obj.get("plain").is_none());
        assert!(obj["nullable"].is_null());
        assert!(obj["schemars"].is_null());
        assert!(obj["defaulted"].is_null());
        apply_defaults(&mut obj, &s);
        assert_eq!(obj["defaulted"], "d");
        assert!(obj["nullable"].is_null());
        assert!(validate(&obj, &s).is_empty());
    }

    fn components() -> Value {
        json!({
            "Spec": {
                "type": "object",
                "description": "target",
                "properties": {
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0},
                    "selector": {"allOf": [{"$ref": "#/components/schemas/Selector"}],
                                 "description": "sibling"},
                    "child": {"$ref": "#/components/schemas/Tree"}
                },
                "required": ["replicas"]
            },
            "Selector": {
                "type": "object",
                "properties": {
                    "matchLabels": {"type": "object",
                                    "additionalProperties": {"type": "string"}}
                }
            },
            "Tree": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "default": "leaf"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}
                }
            }
        })
    }

    #[test]
    fn refs_and_all_of_are_followed() {
        let comps = components();
        let resolve = |r: &str| {
            r.strip_prefix("#/components/schemas/")
                .and_then(|name| comps.get(name))
        };
        let root = json!({
            "type": "object",
            "properties": {
                "spec": {"$ref": "#/components/schemas/Spec", "description": "sibling"},
                "local": {"$ref": "#/$defs/Local"},
                "legacy": {"$ref": "#/definitions/Legacy"},
                "missing": {"$ref": "#/components/schemas/Nope"}
            },
            "$defs": {"Local": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "definitions": {"Legacy": {"type": "object", "properties": {"b": {"type": "string"}}}}
        });
        let s = Schema {
            root: &root,
            resolve: &resolve,
        };
        let mut obj = json!({
            "spec": {
                "replicas": 1,
                "x": 1,
                "selector": {"matchLabels": {"a": "b"}, "y": 2},
                "child": {"children": [{"children": [{"z": 3}]}]}
            },
            "local": {"a": "x", "b": "y"},
            "legacy": {"a": "x", "b": "y"},
            "missing": {"kept": true}
        });
        let removed = prune(&mut obj, &s, false);
        assert_eq!(
            removed,
            vec![
                ".spec.x",
                ".spec.selector.y",
                ".spec.child.children[0].children[0].z",
                ".local.b",
                ".legacy.a",
            ]
        );
        assert_eq!(obj["missing"]["kept"], true);
        apply_defaults(&mut obj, &s);
        assert_eq!(obj["spec"]["child"]["name"], "leaf");
        assert_eq!(
            obj["spec"]["child"]["children"][0]["children"][0]["name"],
            "leaf"
        );
        assert!(validate(&obj, &s).is_empty());

        let bad = json!({"spec": {"replicas": 3000000000i64, "selector": {"matchLabels": {"a": 1}}},
                         "local": {"a": 2}});
        let errs: Vec<String> = validate(&bad, &s).iter().map(FieldError::display).collect();
        assert_eq!(
            errs,
            vec![
                "spec.replicas: Invalid value: 3000000000: spec.replicas in body must be of type \
                 int32: \"3000000000\"",
                "spec.selector.matchLabels.a: Invalid value: \"integer\": \
                 spec.selector.matchLabels.a in body must be of type string: \"integer\"",
                "local.a: Invalid value: \"integer\": local.a in body must be of type string: \
                 \"integer\"",
            ]
        );
        let missing = json!({"spec": {}});
        let errs = validate(&missing, &s);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.replicas");
        assert_eq!(errs[0].reason, "FieldValueRequired");
        assert_eq!(errs[0].message, "Required value");
    }

    #[test]
    fn self_referencing_ref_terminates() {
        let root = json!({"$ref": "#", "type": "object", "properties": {"a": {"$ref": "#"}}});
        let mut obj = json!({"a": {"a": {"b": 1}}, "c": null});
        let s = plain(&root);
        assert_eq!(prune(&mut obj, &s, false), vec![".a.a.b", ".c"]);
        apply_defaults(&mut obj, &s);
        assert!(validate(&obj, &s).is_empty());
    }

    #[test]
    fn defaults_in_nested_arrays_and_maps() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "strategy": {
                            "type": "object",
                            "default": {},
                            "properties": {
                                "type": {"type": "string", "default": "Rolling"},
                                "maxSurge": {"x-kubernetes-int-or-string": true, "default": "25%"}
                            }
                        },
                        "containers": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "ports": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "integer"},
                                                "protocol": {"type": "string", "default": "TCP"}
                                            }
                                        }
                                    }
                                }
                            }
                        },
                        "tags": {"type": "array", "items": {"type": "string", "default": "none"}},
                        "limits": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "default": {"max": 1},
                                "properties": {"min": {"type": "integer", "default": 0}}
                            }
                        },
                        "keep": {"type": "string", "nullable": true, "default": "x"},
                        "given": {"type": "string", "default": "x"}
                    }
                }
            }
        });
        let mut obj = json!({"spec": {
            "containers": [
                {"name": "a", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
                {"name": "b"}
            ],
            "tags": ["a", null],
            "limits": {"cpu": {}, "mem": null},
            "keep": null,
            "given": "y"
        }});
        apply_defaults(&mut obj, &plain(&schema));
        let spec = &obj["spec"];
        assert_eq!(
            spec["strategy"],
            json!({"type": "Rolling", "maxSurge": "25%"})
        );
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["ports"][1]["protocol"], "UDP");
        assert!(spec["containers"][1].get("ports").is_none());
        assert_eq!(spec["tags"], json!(["a", "none"]));
        assert_eq!(spec["limits"]["cpu"], json!({"min": 0}));
        assert_eq!(spec["limits"]["mem"], json!({"max": 1, "min": 0}));
        assert!(spec["keep"].is_null());
        assert_eq!(spec["given"], "y");
    }

    /// Validates `{"x": value}` against `{"properties": {"x": prop}}` under `spec`.
    fn errors_for(prop: Value, value: Value) -> Vec<FieldError> {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object", "properties": {"x": prop}
        }}});
        validate(&json!({"spec": {"x": value}}), &plain(&schema))
    }

    fn one(prop: Value, value: Value) -> (String, &'static str) {
        let errs = errors_for(prop, value);
        assert_eq!(errs.len(), 1, "{errs:?}");
        (errs[0].display(), errs[0].reason)
    }

    #[test]
    fn keyword_messages() {
        let cases: Vec<(Value, Value, &str, &str)> = vec![
            (
                json!({"type": "integer"}),
                json!("string"),
                "spec.x: Invalid value: \"string\": spec.x in body must be of type integer: \
                 \"string\"",
                "FieldValueTypeInvalid",
            ),
            (
                json!({"type": "integer"}),
                json!(1.5),
                "spec.x: Invalid value: \"number\": spec.x in body must be of type integer: \
                 \"number\"",
                "FieldValueTypeInvalid",
            ),
            (
                json!({"type": "string", "enum": ["a", "b"]}),
                json!("x"),
                "spec.x: Unsupported value: \"x\": supported values: \"a\", \"b\"",
                "FieldValueNotSupported",
            ),
            (
                json!({"type": "integer", "enum": [1, 2]}),
                json!(3),
                "spec.x: Unsupported value: 3: supported values: \"1\", \"2\"",
                "FieldValueNotSupported",
            ),
            (
                json!({"type": "integer", "maximum": 100}),
                json!(300),
                "spec.x: Invalid value: 300: spec.x in body should be less than or equal to 100",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "integer", "maximum": 100, "exclusiveMaximum": true}),
                json!(100),
                "spec.x: Invalid value: 100: spec.x in body should be less than 100",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "number", "minimum": 0.5}),
                json!(0.25),
                "spec.x: Invalid value: 0.25: spec.x in body should be greater than or equal to \
                 0.5",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}),
                json!(0),
                "spec.x: Invalid value: 0: spec.x in body should be greater than 0",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "integer", "multipleOf": 5}),
                json!(12),
                "spec.x: Invalid value: 12: spec.x in body should be a multiple of 5",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "string", "maxLength": 5}),
                json!("abcdef"),
                "spec.x: Too long: may not be more than 5 bytes",
                "FieldValueTooLong",
            ),
            (
                json!({"type": "string", "minLength": 3}),
                json!("ab"),
                "spec.x: Invalid value: \"ab\": spec.x in body should be at least 3 chars long",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "string", "pattern": "^[a-z]+$"}),
                json!("abc1"),
                "spec.x: Invalid value: \"abc1\": spec.x in body should match '^[a-z]+$'",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "array", "maxItems": 3}),
                json!([1, 2, 3, 4]),
                "spec.x: Too many: 4: must have at most 3 items",
                "FieldValueTooMany",
            ),
            (
                json!({"type": "array", "minItems": 2}),
                json!([1]),
                "spec.x: Invalid value: 1: spec.x in body should have at least 2 items",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "array", "uniqueItems": true}),
                json!([1, 2, 1]),
                "spec.x: Invalid value: \"\": spec.x in body shouldn't contain duplicates",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "object", "maxProperties": 1}),
                json!({"a": 1, "b": 2}),
                "spec.x: Too many: 2: must have at most 1 items",
                "FieldValueTooMany",
            ),
            (
                json!({"type": "object", "minProperties": 2}),
                json!({"a": 1}),
                "spec.x: Invalid value: 1: spec.x in body should have at least 2 properties",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "object", "required": ["name"]}),
                json!({}),
                "spec.x.name: Required value",
                "FieldValueRequired",
            ),
            (
                json!({"type": "object", "additionalProperties": false}),
                json!({"a": 1}),
                "spec.x: Invalid value: \"a\": spec.x.a in body is a forbidden property",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "boolean"}),
                json!(null),
                "spec.x: Invalid value: \"null\": spec.x in body must be of type boolean: \"null\"",
                "FieldValueTypeInvalid",
            ),
            (
                json!({"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 1}]}),
                json!(5),
                "spec.x: Invalid value: \"\": spec.x in body must validate at least one schema \
                 (anyOf)",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "integer", "oneOf": [{"minimum": 1}, {"minimum": 2}]}),
                json!(5),
                "spec.x: Invalid value: \"\": spec.x in body must validate one and only one \
                 schema (oneOf)",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "string", "not": {"enum": ["forbidden"]}}),
                json!("forbidden"),
                "spec.x: Invalid value: \"\": spec.x in body must not validate the schema (not)",
                "FieldValueInvalid",
            ),
            (
                json!({"type": "object", "allOf": [{"required": ["a"]}, {"required": ["b"]}]}),
                json!({"a": 1}),
                "spec.x.b: Required value",
                "FieldValueRequired",
            ),
        ];
        for (prop, value, message, reason) in cases {
            assert_eq!(one(prop, value), (message.to_string(), reason));
        }
    }

    #[test]
    fn formats() {
        let bad: Vec<(&str, Value)> = vec![
            ("int32", json!(2147483648i64)),
            ("int64", json!(18446744073709551615u64)),
            ("date-time", json!("2024-01-01 10:00")),
            ("date", json!("2024-13-01")),
            ("byte", json!("not base64!")),
            ("uuid", json!("1234")),
        ];
        for (format, value) in bad {
            let t = if value.is_string() {
                "string"
            } else {
                "integer"
            };
            let (msg, reason) = one(json!({"type": t, "format": format}), value.clone());
            assert_eq!(reason, "FieldValueTypeInvalid", "{format}");
            assert!(
                msg.contains(&format!("must be of type {format}: ")),
                "{format}: {msg}"
            );
        }
        let (msg, _) = one(
            json!({"type": "string", "format": "date-time"}),
            json!("abc"),
        );
        assert_eq!(
            msg,
            "spec.x: Invalid value: \"abc\": spec.x in body must be of type date-time: \"abc\""
        );
        let good: Vec<(&str, Value)> = vec![
            ("int32", json!(-2147483648i64)),
            ("int64", json!(9223372036854775807i64)),
            ("date-time", json!("2024-01-01T10:00:00Z")),
            ("date-time", json!("2024-01-01T10:00:00.123+02:00")),
            ("date", json!("2024-02-29")),
            ("byte", json!("aGVsbG8=")),
            ("uuid", json!("123e4567-e89b-12d3-a456-426614174000")),
            ("hostname-ish-unknown", json!("anything")),
        ];
        for (format, value) in good {
            let t = if value.is_string() {
                "string"
            } else {
                "integer"
            };
            let errs = errors_for(json!({"type": t, "format": format}), value);
            assert!(errs.is_empty(), "{format}: {errs:?}");
        }
    }

    #[test]
    fn int_or_string_validation() {
        let prop = json!({"x-kubernetes-int-or-string": true});
        assert!(errors_for(prop.clone(), json!(8080)).is_empty());
        assert!(errors_for(prop.clone(), json!("http")).is_empty());
        let (msg, reason) = one(prop.clone(), json!(true));
        assert_eq!(reason, "FieldValueTypeInvalid");
        assert_eq!(
            msg,
            "spec.x: Invalid value: \"boolean\": spec.x in body must be of type \
             integer,string: \"boolean\""
        );
        let (msg, _) = one(prop, json!(null));
        assert!(
            msg.contains("must be of type integer,string: \"null\""),
            "{msg}"
        );
        let with_pattern = json!({"x-kubernetes-int-or-string": true, "pattern": "^[0-9]+%$"});
        assert!(errors_for(with_pattern.clone(), json!(5)).is_empty());
        assert_eq!(errors_for(with_pattern, json!("5")).len(), 1);
    }

    #[test]
    fn list_type_duplicates() {
        let set = json!({"type": "array", "x-kubernetes-list-type": "set",
                         "items": {"type": "string"}});
        let errs = errors_for(set, json!(["a", "b", "a"]));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].display(), "spec.x[2]: Duplicate value: \"a\"");
        assert_eq!(errs[0].reason, "FieldValueDuplicate");

        let map = json!({
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "protocol"],
            "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "protocol": {"type": "string"},
                "port": {"type": "integer"}
            }}
        });
        let value = json!([
            {"name": "a", "protocol": "TCP", "port": 1},
            {"name": "a", "protocol": "UDP", "port": 2},
            {"name": "a", "protocol": "TCP", "port": 3}
        ]);
        let errs = errors_for(map.clone(), value);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].display(),
            "spec.x[2]: Duplicate value: {\"name\":\"a\",\"protocol\":\"TCP\"}"
        );
        assert!(errors_for(map, json!([{"name": "a"}, {"name": "b"}])).is_empty());
        let atomic = json!({"type": "array", "x-kubernetes-list-type": "atomic"});
        assert!(errors_for(atomic, json!([1, 1])).is_empty());
    }

    #[test]
    fn null_handling_in_validation() {
        let list = json!({"type": "array", "items": {"type": "string"}});
        let errs = errors_for(list, json!(["a", null]));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].display(),
            "spec.x[1]: Invalid value: \"null\": spec.x[1] in body must be of type string: \
             \"null\""
        );
        let nullable = json!({"type": "array", "items": {"type": "string", "nullable": true}});
        assert!(errors_for(nullable, json!(["a", null])).is_empty());
        assert!(errors_for(json!({"type": ["string", "null"]}), json!(null)).is_empty());
        assert!(errors_for(json!({"description": "free"}), json!(null)).is_empty());
        let nested_ok = json!({"type": "object", "properties": {"y": {"type": "number"}}});
        assert!(errors_for(nested_ok.clone(), json!({"y": 1})).is_empty());
        assert!(errors_for(nested_ok, json!({"y": 1.5, "z": "unchecked"})).is_empty());
    }

    #[test]
    fn display_and_unknown_fields_message() {
        let e = FieldError {
            field: "spec.x".into(),
            reason: "FieldValueInvalid",
            message: "Invalid value: 1: bad".into(),
        };
        assert_eq!(e.display(), "spec.x: Invalid value: 1: bad");
        let root = FieldError {
            field: String::new(),
            ..e
        };
        assert_eq!(root.display(), "Invalid value: 1: bad");
        assert_eq!(
            unknown_fields_message(&["spec.foo".into(), "spec.bar".into()]),
            "strict decoding error: unknown field \"spec.foo\", unknown field \"spec.bar\""
        );
    }

    #[test]
    fn go_style_numbers_and_quotes() {
        assert_eq!(go_float(300.0), "300");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-5), "1.5e-05");
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
        assert_eq!(bad_value(&json!({"a": [1]})), "{\"a\":[1]}");
        assert!(is_multiple_of(&json!(0.3), &json!(0.1)));
        assert!(!is_multiple_of(&json!(0.35), &json!(0.1)));
    }

    #[test]
    fn structural_check() {
        assert!(check_structural(&vm_schema()).is_empty());
        assert_eq!(
            check_structural(&json!({"properties": {}})),
            vec!["type: Required value: must not be empty at the root"]
        );
        assert_eq!(
            check_structural(&json!({"type": "array", "items": {"type": "string"}})),
            vec!["type: Invalid value: \"array\": must be object at the root"]
        );
        let untyped = json!({"type": "object", "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "list": {"type": "array", "items": {"items": {"type": "string"}}},
            "free": {"x-kubernetes-preserve-unknown-fields": true, "properties": {}},
            "port": {"x-kubernetes-int-or-string": true},
            "desc": {"description": "no type, nothing specified"}
        }});
        assert_eq!(
            check_structural(&untyped),
            vec![
                "properties[spec].type: Required value: must not be empty for specified object \
                 fields",
                "properties[list].items.type: Required value: must not be empty for specified \
                 array items",
            ]
        );
        let name_only = json!({"type": "object", "properties": {"metadata": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 10}}
        }}});
        assert!(check_structural(&name_only).is_empty());
        let labels = json!({"type": "object", "properties": {"metadata": {
            "type": "object",
            "properties": {"labels": {"type": "object"}}
        }}});
        let problems = check_structural(&labels);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("properties[metadata]: Forbidden"));
    }
}
