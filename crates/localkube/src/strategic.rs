//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in resources.
//!
//! Kubernetes decides how each list in a built-in object is patched from tags on its Go types
//! (`patchStrategy:"merge"` and `patchMergeKey`). This module keeps a hand-written table of the
//! merge keys that matter for what kubectl patches and applies in practice
//! ([`BuiltinPatchMeta`]); every other list is replaced as a whole. [`JsonMergeMeta`] treats all
//! lists as atomic, which makes [`strategic_merge`] behave like a JSON merge patch plus the
//! directives below.
//!
//! Supported directives: `$patch: replace | merge | delete` (on a map, or as a list element),
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`. Directives
//! never appear in the result. Differences from kube-apiserver: a map deleted with
//! `$patch: delete` inside another map is removed rather than left as `{}`, and elements that a
//! `$setElementOrder` list does not mention are placed after the listed ones, in their previous
//! relative order.

use serde_json::{Map, Value};

/// How a list at some path in an object is patched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch replaces the whole list.
    Atomic,
    /// Elements are merged: by the value of `key` for lists of maps, or as a set when `key` is
    /// `None` (lists of primitives).
    Merge { key: Option<String> },
}

impl ListStrategy {
    fn keyed(key: &str) -> Self {
        ListStrategy::Merge {
            key: Some(key.to_string()),
        }
    }

    fn set() -> Self {
        ListStrategy::Merge { key: None }
    }
}

/// Patch metadata of a resource type, looked up by the field names from the object root with list
/// indices skipped (`spec.containers.ports` is the ports list inside any container).
pub trait PatchMeta {
    /// How the list at `path` is merged.
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;

    /// Whether the map at `path` declares the `retainKeys` patch strategy.
    fn retain_keys(&self, path: &[&str]) -> bool {
        let _ = path;
        false
    }
}

/// Patch metadata where every list is atomic (JSON merge patch semantics).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonMergeMeta;

impl PatchMeta for JsonMergeMeta {
    fn list_strategy(&self, _path: &[&str]) -> ListStrategy {
        ListStrategy::Atomic
    }
}

/// Patch metadata of a built-in kind, from a hand-written table of the merge keys declared by
/// the Kubernetes Go types. The kind decides where pod specs and object metadata are nested.
#[derive(Debug, Clone, Default)]
pub struct BuiltinPatchMeta {
    pub kind: String,
}

/// Where a pod template (metadata + spec) sits in objects of `kind`.
fn pod_template_prefix(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        "PodTemplate" => Some(&["template"]),
        _ => None,
    }
}

fn strip<'p, 'q>(path: &'p [&'q str], prefix: &[&str]) -> Option<&'p [&'q str]> {
    if path.len() >= prefix.len() && path[..prefix.len()] == *prefix {
        Some(&path[prefix.len()..])
    } else {
        None
    }
}

/// Merge strategy of lists inside `ObjectMeta`.
fn object_meta_strategy(rest: &[&str]) -> Option<ListStrategy> {
    match rest {
        ["finalizers"] => Some(ListStrategy::set()),
        ["ownerReferences"] => Some(ListStrategy::keyed("uid")),
        _ => None,
    }
}

/// Merge strategy of lists inside a `PodSpec`.
fn pod_spec_strategy(rest: &[&str]) -> Option<ListStrategy> {
    let key = match rest {
        ["containers" | "initContainers" | "ephemeralContainers"] => "name",
        [
            "containers" | "initContainers" | "ephemeralContainers",
            field,
        ] => match *field {
            "ports" => "containerPort",
            "env" => "name",
            "volumeMounts" => "mountPath",
            "volumeDevices" => "devicePath",
            "resizePolicy" => "resourceName",
            _ => return None,
        },
        ["volumes"] => "name",
        ["imagePullSecrets"] => "name",
        ["hostAliases"] => "ip",
        ["topologySpreadConstraints"] => "topologyKey",
        ["schedulingGates"] => "name",
        ["resourceClaims"] => "name",
        _ => return None,
    };
    Some(ListStrategy::keyed(key))
}

impl BuiltinPatchMeta {
    /// Paths of every `ObjectMeta` in objects of this kind.
    fn object_meta_prefixes(&self) -> Vec<Vec<&'static str>> {
        let mut out = vec![vec!["metadata"]];
        if let Some(t) = pod_template_prefix(&self.kind) {
            let mut p = t.to_vec();
            p.push("metadata");
            out.push(p);
        }
        if self.kind == "CronJob" {
            out.push(vec!["spec", "jobTemplate", "metadata"]);
        }
        out
    }

    /// Path of the `PodSpec` in objects of this kind.
    fn pod_spec_prefix(&self) -> Option<Vec<&'static str>> {
        if self.kind == "Pod" {
            return Some(vec!["spec"]);
        }
        pod_template_prefix(&self.kind).map(|t| {
            let mut p = t.to_vec();
            p.push("spec");
            p
        })
    }
}

impl PatchMeta for BuiltinPatchMeta {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        for prefix in self.object_meta_prefixes() {
            if let Some(s) = strip(path, &prefix).and_then(object_meta_strategy) {
                return s;
            }
        }
        if let Some(s) = self
            .pod_spec_prefix()
            .and_then(|prefix| strip(path, &prefix).and_then(pod_spec_strategy))
        {
            return s;
        }
        match (self.kind.as_str(), path) {
            (_, ["status", "conditions"]) => ListStrategy::keyed("type"),
            ("Node", ["status", "addresses"]) => ListStrategy::keyed("type"),
            ("Service", ["spec", "ports"]) => ListStrategy::keyed("port"),
            ("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration", ["webhooks"]) => {
                ListStrategy::keyed("name")
            }
            _ => ListStrategy::Atomic,
        }
    }

    fn retain_keys(&self, path: &[&str]) -> bool {
        if self.kind == "Deployment" && path == ["spec", "strategy"] {
            return true;
        }
        self.pod_spec_prefix()
            .and_then(|prefix| strip(path, &prefix).map(|rest| rest == ["volumes"]))
            .unwrap_or(false)
    }
}

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid strategic merge patch: {message}")]
pub struct PatchError {
    pub message: String,
}

impl PatchError {
    fn at(path: &[&str], message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if path.is_empty() {
            message
        } else {
            format!("{}: {message}", path.join("."))
        };
        PatchError { message }
    }
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Applies a strategic merge `patch` to `original` and returns the patched object.
///
/// `original` that is not an object is treated as `{}`. The patch must be a JSON object.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    meta: &dyn PatchMeta,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::at(
            &[],
            format!("the patch must be a JSON object, not {}", type_name(patch)),
        ));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = Merger { meta }.map(original, patch, &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

struct Merger<'m> {
    meta: &'m dyn PatchMeta,
}

impl Merger<'_> {
    /// Merges a map; `None` means the map is deleted (`$patch: delete`).
    fn map<'a>(
        &self,
        mut original: Map<String, Value>,
        patch: &'a Map<String, Value>,
        path: &mut Vec<&'a str>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch.get(PATCH) {
            None => {}
            Some(Value::String(s)) => match s.as_str() {
                "replace" => original = Map::new(),
                "delete" => return Ok(None),
                "merge" => {}
                other => {
                    return Err(PatchError::at(
                        path,
                        format!(
                            "unknown $patch directive {other:?} (expected \"replace\", \"merge\" or \"delete\")"
                        ),
                    ));
                }
            },
            Some(other) => {
                return Err(PatchError::at(
                    path,
                    format!("$patch must be a string, not {}", type_name(other)),
                ));
            }
        }
        if let Some(keys) = patch.get(RETAIN_KEYS) {
            let keys: Vec<&str> = keys
                .as_array()
                .and_then(|a| a.iter().map(Value::as_str).collect::<Option<_>>())
                .ok_or_else(|| PatchError::at(path, "$retainKeys must be a list of strings"))?;
            original.retain(|k, _| keys.contains(&k.as_str()));
        }
        for (k, v) in patch {
            let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
                continue;
            };
            let Value::Array(remove) = v else {
                return Err(PatchError::at(
                    path,
                    format!("{k} must be a list, not {}", type_name(v)),
                ));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|x| !remove.contains(x));
            }
        }
        for (k, v) in patch {
            if is_directive(k) {
                continue;
            }
            path.push(k);
            if v.is_null() {
                original.shift_remove(k);
            } else {
                let current = original
                    .get_mut(k)
                    .map(std::mem::take)
                    .unwrap_or(Value::Null);
                match self.value(current, v, path)? {
                    Some(merged) => {
                        original.insert(k.clone(), merged);
                    }
                    None => {
                        original.shift_remove(k);
                    }
                }
            }
            path.pop();
        }
        for (k, v) in patch {
            let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let Value::Array(order) = v else {
                return Err(PatchError::at(
                    path,
                    format!("{k} must be a list, not {}", type_name(v)),
                ));
            };
            path.push(field);
            if let Some(Value::Array(list)) = original.get_mut(field) {
                reorder(list, order, &self.meta.list_strategy(path));
            }
            path.pop();
        }
        Ok(Some(original))
    }

    /// Merges any value; `None` means the field is deleted.
    fn value<'a>(
        &self,
        current: Value,
        patch: &'a Value,
        path: &mut Vec<&'a str>,
    ) -> Result<Option<Value>, PatchError> {
        match patch {
            Value::Object(p) => {
                let current = match current {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                Ok(self.map(current, p, path)?.map(Value::Object))
            }
            Value::Array(p) => {
                let current = match current {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                };
                Ok(Some(Value::Array(self.list(current, p, path)?)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn list<'a>(
        &self,
        mut current: Vec<Value>,
        patch: &'a [Value],
        path: &mut Vec<&'a str>,
    ) -> Result<Vec<Value>, PatchError> {
        let mut replace = false;
        let mut deletes = Vec::new();
        let mut items = Vec::new();
        for el in patch {
            let Some(directive) = el.get(PATCH) else {
                items.push(el);
                continue;
            };
            match directive.as_str() {
                Some("replace") => replace = true,
                Some("delete") => deletes.push(el),
                Some("merge") => {
                    if el.as_object().is_some_and(|m| m.len() > 1) {
                        items.push(el);
                    }
                }
                _ => {
                    return Err(PatchError::at(
                        path,
                        format!("invalid $patch directive {directive} in a list element"),
                    ));
                }
            }
        }
        let key = match self.meta.list_strategy(path) {
            ListStrategy::Atomic => {
                if !deletes.is_empty() {
                    return Err(PatchError::at(
                        path,
                        "$patch: delete is only allowed in lists merged by key",
                    ));
                }
                return Ok(items.into_iter().cloned().collect());
            }
            ListStrategy::Merge { key: None } => {
                if !deletes.is_empty() {
                    return Err(PatchError::at(
                        path,
                        "$patch: delete is not allowed in a list of primitives; use $deleteFromPrimitiveList",
                    ));
                }
                if replace {
                    current.clear();
                }
                for it in items {
                    if !current.contains(it) {
                        current.push(it.clone());
                    }
                }
                return Ok(current);
            }
            ListStrategy::Merge { key: Some(key) } => key,
        };
        if replace {
            current.clear();
        }
        for d in deletes {
            let Some(kv) = d.get(&key) else {
                return Err(PatchError::at(
                    path,
                    format!("a $patch: delete element must carry the merge key {key:?}"),
                ));
            };
            current.retain(|e| e.get(&key) != Some(kv));
        }
        for it in items {
            let Value::Object(m) = it else {
                if !current.contains(it) {
                    current.push(it.clone());
                }
                continue;
            };
            let Some(kv) = m.get(&key) else {
                return Err(PatchError::at(
                    path,
                    format!("a list element does not contain the merge key {key:?}"),
                ));
            };
            match current.iter().position(|e| e.get(&key) == Some(kv)) {
                Some(pos) => {
                    let existing = match std::mem::take(&mut current[pos]) {
                        Value::Object(o) => o,
                        _ => Map::new(),
                    };
                    match self.map(existing, m, path)? {
                        Some(merged) => current[pos] = Value::Object(merged),
                        None => {
                            current.remove(pos);
                        }
                    }
                }
                None => {
                    if let Some(merged) = self.map(Map::new(), m, path)? {
                        current.push(Value::Object(merged));
                    }
                }
            }
        }
        Ok(current)
    }
}

/// Puts the elements named by `order` first, in that order; the others follow in their
/// previous relative order.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: &ListStrategy) {
    let key = match strategy {
        ListStrategy::Merge { key: Some(k) } => Some(k.as_str()),
        _ => None,
    };
    let matches = |el: &Value, want: &Value| match (key, want) {
        (Some(k), Value::Object(w)) if w.contains_key(k) => el.get(k) == w.get(k),
        _ => el == want,
    };
    let mut rest: Vec<Option<Value>> = list.drain(..).map(Some).collect();
    let mut out = Vec::with_capacity(rest.len());
    for want in order {
        if let Some(slot) = rest
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|el| matches(el, want)))
        {
            out.extend(slot.take());
        }
    }
    out.extend(rest.into_iter().flatten());
    *list = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(kind: &str) -> BuiltinPatchMeta {
        BuiltinPatchMeta { kind: kind.into() }
    }

    fn merge(kind: &str, original: Value, patch: Value) -> Value {
        strategic_merge(&original, &patch, &meta(kind)).unwrap()
    }

    #[test]
    fn builtin_table() {
        let d = meta("Deployment");
        let key = |k: &str| ListStrategy::Merge {
            key: Some(k.into()),
        };
        assert_eq!(
            d.list_strategy(&["spec", "template", "spec", "containers"]),
            key("name")
        );
        assert_eq!(
            d.list_strategy(&["spec", "template", "spec", "initContainers", "ports"]),
            key("containerPort")
        );
        assert_eq!(
            d.list_strategy(&["spec", "template", "metadata", "finalizers"]),
            ListStrategy::Merge { key: None }
        );
        assert_eq!(
            d.list_strategy(&["spec", "containers"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            d.list_strategy(&["spec", "template", "spec", "containers", "args"]),
            ListStrategy::Atomic
        );
        assert!(d.retain_keys(&["spec", "strategy"]));
        assert!(d.retain_keys(&["spec", "template", "spec", "volumes"]));
        assert!(!d.retain_keys(&["spec"]));

        let p = meta("Pod");
        assert_eq!(p.list_strategy(&["spec", "containers", "env"]), key("name"));
        assert_eq!(p.list_strategy(&["spec", "volumes"]), key("name"));
        assert_eq!(p.list_strategy(&["status", "conditions"]), key("type"));
        assert_eq!(
            p.list_strategy(&["metadata", "ownerReferences"]),
            key("uid")
        );

        let c = meta("CronJob");
        assert_eq!(
            c.list_strategy(&[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
                "volumeMounts"
            ]),
            key("mountPath")
        );
        assert_eq!(
            meta("Service").list_strategy(&["spec", "ports"]),
            key("port")
        );
        assert_eq!(
            meta("Node").list_strategy(&["status", "addresses"]),
            key("type")
        );
        assert_eq!(
            meta("Pod").list_strategy(&["spec", "ports"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            JsonMergeMeta.list_strategy(&["metadata", "finalizers"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = merge(
            "ConfigMap",
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"y": "2"}, "extra": {"gone": null}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "2"}, "extra": {}})
        );
    }

    #[test]
    fn non_object_patch_is_an_error() {
        let err = strategic_merge(&json!({}), &json!([1]), &JsonMergeMeta).unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
        let err = strategic_merge(
            &json!({}),
            &json!({"a": {"$patch": "bogus"}}),
            &JsonMergeMeta,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("a: unknown $patch directive"),
            "{err}"
        );
        let err =
            strategic_merge(&json!({}), &json!({"$retainKeys": "x"}), &JsonMergeMeta).unwrap_err();
        assert!(err.to_string().contains("$retainKeys"), "{err}");
    }

    #[test]
    fn containers_merge_by_name() {
        let original = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}});
        let out = merge(
            "Pod",
            original,
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "b", "image": "b:2"},
                {"name": "c", "image": "c:1"}
            ])
        );
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let out = merge(
            "Pod",
            json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
            json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
        let out = strategic_merge(
            &json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": ["b"]}}),
            &JsonMergeMeta,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn primitive_lists_union_and_delete() {
        let out = merge(
            "Pod",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = merge(
            "Pod",
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "d"]));
    }

    #[test]
    fn list_directives() {
        let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let out = merge(
            "Pod",
            original.clone(),
            json!({"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        let out = merge(
            "Pod",
            original.clone(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "x": null}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));
        let out = merge(
            "Pod",
            original.clone(),
            json!({"spec": {"containers": [{"name": "b", "$patch": "merge", "image": "i"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b", "image": "i"}])
        );
        let err = strategic_merge(
            &original,
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            &meta("Pod"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("spec.containers"), "{err}");
        assert!(err.to_string().contains("merge key \"name\""), "{err}");
    }

    #[test]
    fn map_directives() {
        let original = json!({"spec": {"selector": {"a": "1", "b": "2"}, "other": {"x": 1}}});
        let out = merge(
            "Service",
            original.clone(),
            json!({"spec": {"selector": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(out["spec"]["selector"], json!({"c": "3"}));
        let out = merge(
            "Service",
            original.clone(),
            json!({"spec": {"other": {"$patch": "delete"}}}),
        );
        assert_eq!(out["spec"], json!({"selector": {"a": "1", "b": "2"}}));
        let out = merge("Service", original, json!({"$patch": "replace", "a": 1}));
        assert_eq!(out, json!({"a": 1}));
    }

    #[test]
    fn retain_keys() {
        let out = merge(
            "Deployment",
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn set_element_order() {
        let out = merge(
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                "containers": [{"name": "c"}]
            }}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c"}, {"name": "b"}, {"name": "a"}, {"name": "x"}])
        );
        let out = merge(
            "Pod",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn kubectl_apply_patch() {
        let original = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}",
                    "keep": "yes"
                },
                "labels": {"app": "web", "tier": "old"}
            },
            "spec": {
                "replicas": 1,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ]}
                }
            }
        });
        let patch = json!({
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"},
                "labels": {"tier": null}
            },
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [
                        {"name": "web", "image": "nginx:2"},
                        {"$patch": "delete", "name": "sidecar"}
                    ]
                }}
            }
        });
        let out = merge("Deployment", original, patch);
        assert_eq!(
            out,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}",
                        "keep": "yes"
                    },
                    "labels": {"app": "web"}
                },
                "spec": {
                    "replicas": 3,
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [
                            {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                        ]}
                    }
                }
            })
        );
        // Key order of the original is kept.
        let keys: Vec<&String> = out["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "annotations", "labels"]);
    }

    #[test]
    fn new_fields_are_cleaned_of_directives() {
        let out = merge(
            "Pod",
            json!({}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E", "value": "1"}], "gone": null}],
                            "$setElementOrder/containers": [{"name": "a"}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E", "value": "1"}]}]}})
        );
    }

    #[test]
    fn primitive_list_directives() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = merge(
            "Pod",
            original.clone(),
            json!({"metadata": {"finalizers": [{"$patch": "replace"}, "c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c"]));
        let err = strategic_merge(
            &original,
            &json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
            &meta("Pod"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("$deleteFromPrimitiveList"),
            "{err}"
        );
        let err = strategic_merge(
            &original,
            &json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
            &meta("Pod"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("metadata: $setElementOrder/finalizers must be a list"),
            "{err}"
        );
    }
}
