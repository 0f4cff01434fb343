//! patch: JSON patch, merge patch, strategic merge patch and server-side apply.

use json_patch::jsonptr::PointerBuf;
use serde_json::{Value, json};

use super::{
    Core, MAX_BODY, PatchType, WriteOptions, Written, is_store_conflict, meta_str, now_rfc3339,
    options, uid_immutable,
};
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult, Cause};
use crate::validation::{check_depth, go_quote, nesting_depth};
use crate::{apply, strategic};

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

impl Core {
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
        let rules = options::patch_rules(patch_type, opts.field_manager.as_deref(), opts.force);
        if !rules.is_empty() {
            return Err(options::invalid(options::OptionsKind::Patch, rules));
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
                    // Not a list is a 400; an operation that is not one, or does not apply
                    // (a failed `test` too), is kube-apiserver's 422, which says no more than
                    // "the server rejected our request due to an error in our request".
                    // localkube's has the same shape and says what went wrong.
                    if !patch.is_array() {
                        let e = serde_json::from_value::<json_patch::Patch>(patch.clone())
                            .err()
                            .map_or_else(|| "not a list".to_string(), |e| e.to_string());
                        return Err(ApiError::bad_request(format!("invalid JSON patch: {e}")));
                    }
                    let unprocessable = ApiError::unprocessable_because;
                    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                        .map_err(|e| unprocessable(format!("invalid JSON patch: {e}")))?;
                    let mut doc = current_view.clone();
                    match apply_json_patch(&mut doc, ops, MAX_JSON_PATCH_COPY_BYTES) {
                        Ok(()) => doc,
                        // kube-apiserver answers with a generic 422 that drops the reason.
                        Err(JsonPatchError::CopyLimit) => {
                            return Err(ApiError::unprocessable());
                        }
                        Err(JsonPatchError::TooDeep) => {
                            return Err(ApiError::bad_request(JsonPatchError::TooDeep.to_string()));
                        }
                        Err(JsonPatchError::Op(e)) => {
                            if matches!(e.kind, json_patch::PatchErrorKind::TestFailed) {
                                return Err(unprocessable(format!(
                                    "the JSON patch test operation failed: {e}"
                                )));
                            }
                            return Err(unprocessable(format!(
                                "the JSON patch could not be applied: {e}"
                            )));
                        }
                    }
                }
                PatchType::Merge => {
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
                let what = go_json_type(&patched);
                return Err(undecodable_result(
                    &patched,
                    &format!(
                        "couldn't get version/kind; json parse error: json: cannot unmarshal {what} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
                    ),
                ));
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
            // The depth bound first: what nests deeper is not decoded at all.
            check_depth(&patched).map_err(ApiError::bad_request)?;
            if let Some(why) = self.undecodable(rt, &patched) {
                return Err(undecodable_result(&patched, &why));
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
                kind: rt.kind.clone(),
            })
        }
    }
}

/// kube-apiserver's 422 for a patch whose result does not decode into the type: of no kind
/// or name, about the field `patch`, with the patched object's JSON and the decoder's words.
fn undecodable_result(patched: &Value, why: &str) -> ApiError {
    let json = serde_json::to_string(patched).unwrap_or_default();
    ApiError::invalid(
        "",
        "",
        "",
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {}: {why}", go_quote(&json)),
            field: "patch".into(),
        }],
    )
}

/// How Go's encoding/json names the JSON type of a value in its errors.
fn go_json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
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

/// How deep a JSON patch may make the document while it applies. The result is checked
/// against `MAX_OBJECT_DEPTH` after; this bound is for while it applies: each `copy` of a
/// subtree into its own deepest point doubles the depth, and copies (and the checks after)
/// recurse, so without it a 200 KB patch overflows the stack.
const MAX_JSON_PATCH_DEPTH: usize = 128;

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
    /// An operation would make the document nest deeper than `MAX_JSON_PATCH_DEPTH`.
    TooDeep,
}

impl std::fmt::Display for JsonPatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonPatchError::Op(e) => write!(f, "{e}"),
            JsonPatchError::CopyLimit => write!(
                f,
                "the copy operations of the patch add more than {MAX_JSON_PATCH_COPY_BYTES} bytes"
            ),
            JsonPatchError::TooDeep => write!(
                f,
                "the JSON patch makes the object nest deeper than {MAX_JSON_PATCH_DEPTH} levels"
            ),
        }
    }
}

impl From<json_patch::PatchError> for JsonPatchError {
    fn from(e: json_patch::PatchError) -> Self {
        JsonPatchError::Op(e)
    }
}

/// A JSON patch applied as a PATCH request's is (the leniencies and the copy limit below), for
/// the other patches the server applies: admission webhooks' answers.
pub fn apply_json_patch_ops(doc: &mut Value, ops: json_patch::Patch) -> Result<(), String> {
    apply_json_patch(doc, ops, MAX_JSON_PATCH_COPY_BYTES).map_err(|e| e.to_string())
}

/// `path` with each negative array index made the index it counts back to in `doc` (`-1`:
/// the last element; for the last token of an `add`'s path, `-1` is one past it, where an
/// append goes), as evanphx/json-patch v4 reads them. Tokens below a missing node, and an
/// index before the start, are left as they are: the operation fails on them.
fn resolve_negative_indices(doc: &Value, path: PointerBuf, adding: bool) -> PointerBuf {
    let tokens: Vec<String> = path.tokens().map(|t| t.decoded().into_owned()).collect();
    let mut node = Some(doc);
    let mut resolved = Vec::with_capacity(tokens.len());
    let mut changed = false;
    for (i, token) in tokens.iter().enumerate() {
        let mut token = token.clone();
        if let Some(Value::Array(items)) = node
            && let Some(back) = token.strip_prefix('-')
            && !back.is_empty()
            && back.bytes().all(|b| b.is_ascii_digit())
        {
            let len = items.len() + usize::from(adding && i + 1 == tokens.len());
            if let Some(index) = back.parse::<usize>().ok().and_then(|n| len.checked_sub(n)) {
                token = index.to_string();
                changed = true;
            }
        }
        node = node.and_then(|n| match n {
            Value::Array(items) => token.parse::<usize>().ok().and_then(|k| items.get(k)),
            Value::Object(map) => map.get(&token),
            _ => None,
        });
        resolved.push(token);
    }
    if changed {
        PointerBuf::from_tokens(resolved)
    } else {
        path
    }
}

/// An operation with its pointers' negative indices resolved against `doc`.
fn with_negative_indices(
    doc: &Value,
    op: json_patch::PatchOperation,
) -> json_patch::PatchOperation {
    use json_patch::PatchOperation as Op;
    match op {
        Op::Add(mut a) => {
            a.path = resolve_negative_indices(doc, a.path, true);
            Op::Add(a)
        }
        Op::Remove(mut r) => {
            r.path = resolve_negative_indices(doc, r.path, false);
            Op::Remove(r)
        }
        Op::Replace(mut r) => {
            r.path = resolve_negative_indices(doc, r.path, false);
            Op::Replace(r)
        }
        Op::Move(mut m) => {
            m.from = resolve_negative_indices(doc, m.from, false);
            m.path = resolve_negative_indices(doc, m.path, true);
            Op::Move(m)
        }
        Op::Copy(mut c) => {
            c.from = resolve_negative_indices(doc, c.from, false);
            c.path = resolve_negative_indices(doc, c.path, true);
            Op::Copy(c)
        }
        Op::Test(mut t) => {
            t.path = resolve_negative_indices(doc, t.path, false);
            Op::Test(t)
        }
    }
}

/// Applies RFC 6902 operations one by one, with the leniencies of the json-patch library
/// kube-apiserver uses (evanphx/json-patch v4), which clients rely on:
/// - a `test` for `null` passes when the path does not exist (kube-rs's finalizer helper);
/// - a `replace` of a missing key of an existing object acts as an `add` (KubeVirt's
///   test-then-replace patches on fields that may be unset);
/// - a negative array index counts from the end (`/finalizers/-1` is the last one).
///
/// Like that library as kube-apiserver sets it up, the values that `copy` operations add may
/// total at most `copy_limit` bytes of JSON; the check comes before each copy is made. The
/// document may nest at most `MAX_JSON_PATCH_DEPTH` levels, checked before each operation.
fn apply_json_patch(
    doc: &mut Value,
    ops: json_patch::Patch,
    copy_limit: usize,
) -> Result<(), JsonPatchError> {
    use json_patch::{AddOperation, PatchOperation};
    let mut copied = 0usize;
    // At least as deep as the document is (moves may leave it shallower).
    let mut depth = nesting_depth(doc);
    for op in ops.0 {
        let op = with_negative_indices(doc, op);
        // A value of depth d put at a path of n tokens reaches level n + d.
        let placed = match &op {
            PatchOperation::Add(a) => a.path.count() + nesting_depth(&a.value),
            PatchOperation::Replace(r) => r.path.count() + nesting_depth(&r.value),
            PatchOperation::Copy(c) => doc
                .pointer(c.from.as_str())
                .map_or(0, |from| c.path.count() + nesting_depth(from)),
            PatchOperation::Move(m) => m.path.count() + depth.saturating_sub(m.from.count()),
            PatchOperation::Remove(_) | PatchOperation::Test(_) => 0,
        };
        depth = depth.max(placed);
        if depth > MAX_JSON_PATCH_DEPTH {
            return Err(JsonPatchError::TooDeep);
        }
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
    fn negative_indices_count_from_the_end_as_in_the_go_library() {
        let apply = |doc: &mut Value, list: Value| {
            apply_json_patch(doc, ops(list), MAX_JSON_PATCH_COPY_BYTES)
        };
        let mut doc = json!({"f": ["a", "b", "c"], "m": [{"x": [1, 2]}]});
        apply(
            &mut doc,
            json!([
                {"op": "test", "path": "/f/-1", "value": "c"},
                {"op": "remove", "path": "/f/-3"},
                {"op": "replace", "path": "/m/-1/x/-1", "value": 3},
                // An add's -1 is one past the end: an append.
                {"op": "add", "path": "/f/-1", "value": "d"},
                {"op": "copy", "from": "/f/-1", "path": "/f/0"},
                {"op": "move", "from": "/f/-2", "path": "/g"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"f": ["d", "b", "d"], "g": "c", "m": [{"x": [1, 3]}]})
        );
        // Before the start, as a positive index past the end, is an error.
        for path in ["/f/-4", "/f/-99999999999999999999"] {
            let e = apply(&mut doc.clone(), json!([{"op": "remove", "path": path}]));
            assert!(matches!(e, Err(JsonPatchError::Op(_))), "{path}: {e:?}");
        }
        // A key of an object is a key.
        let mut doc = json!({"o": {"-1": "k"}});
        apply(&mut doc, json!([{"op": "remove", "path": "/o/-1"}])).unwrap();
        assert_eq!(doc, json!({"o": {}}));
    }

    /// `levels` objects, each the only field `a` of the one around it, around 1.
    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    fn ops(v: Value) -> json_patch::Patch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn json_patches_may_not_nest_the_document_too_deep() {
        // Copying a subtree into its own deepest point doubles the depth each time: without
        // the bound, ten copies of 1.2 MB in all overflow the stack.
        let mut list = vec![json!({"op": "add", "path": "/x", "value": nested(100)})];
        let mut levels = 100;
        for _ in 0..10 {
            list.push(
                json!({"op": "copy", "from": "/x", "path": format!("/x{}", "/a".repeat(levels))}),
            );
            levels *= 2;
        }
        let mut doc = json!({"metadata": {"name": "x"}});
        let e = apply_json_patch(&mut doc, ops(json!(list)), MAX_JSON_PATCH_COPY_BYTES);
        assert!(matches!(e, Err(JsonPatchError::TooDeep)), "{e:?}");
        // A value added at a deep path counts the path's levels.
        let mut doc = json!({"metadata": {"name": "x"}});
        let e = apply_json_patch(
            &mut doc,
            ops(json!([{"op": "add", "path": "/x", "value": nested(100)},
                {"op": "add", "path": format!("/x{}", "/a".repeat(99)), "value": nested(30)}])),
            MAX_JSON_PATCH_COPY_BYTES,
        );
        assert!(matches!(e, Err(JsonPatchError::TooDeep)), "{e:?}");
        // Moving a subtree deeper counts too.
        let mut doc = json!({"a": nested(100), "b": nested(100)});
        let e = apply_json_patch(
            &mut doc,
            ops(json!([{"op": "move", "from": "/a", "path": format!("/b{}", "/a".repeat(50))}])),
            MAX_JSON_PATCH_COPY_BYTES,
        );
        assert!(matches!(e, Err(JsonPatchError::TooDeep)), "{e:?}");
        // Up to the bound, patches apply.
        let mut doc = json!({"metadata": {"name": "x"}});
        apply_json_patch(
            &mut doc,
            ops(json!([{"op": "add", "path": "/x", "value": nested(MAX_JSON_PATCH_DEPTH - 1)}])),
            MAX_JSON_PATCH_COPY_BYTES,
        )
        .unwrap();
        assert_eq!(nesting_depth(&doc), MAX_JSON_PATCH_DEPTH);
    }
}
