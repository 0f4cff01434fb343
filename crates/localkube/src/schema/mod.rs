//! OpenAPI v3 structural schemas (Kubernetes `JSONSchemaProps` form): pruning of unknown
//! fields, defaulting, validation with kube-openapi style messages, and a light structural
//! check for CRD creation.
//!
//! Schemas are plain JSON values. `$ref`s (`#/components/schemas/NAME`, `#/definitions/NAME`,
//! `#/$defs/NAME`) are followed through a caller supplied resolver, falling back to a JSON
//! pointer lookup inside the root schema, so schemars generated schemas of built-in types
//! (`$ref` with sibling keys, `allOf: [{$ref}]`, `type: [T, "null"]`) work as well.

use serde_json::Value;

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
    #[cfg(test)]
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

mod format;
mod structural;
mod validate;

pub use structural::check_structural;
pub use validate::validate;

#[cfg(test)]
mod tests;
