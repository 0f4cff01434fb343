//! Server-side apply and `metadata.managedFields` bookkeeping.
//!
//! Field ownership is kept in the real `FieldsV1` format: `f:<name>` for map keys,
//! `k:{"<key>":<value>}` for elements of lists merged by key, `v:<json>` for elements of lists of
//! primitives merged as sets, and `.` for an element that is itself owned besides its children.
//! The list strategies come from the same [`PatchMeta`] table as strategic merge patch.
//!
//! This is an approximation of kube-apiserver's structured-merge-diff, not a port of it:
//! - There is no OpenAPI schema: structs and maps are not told apart, so owned maps never get a
//!   `.` entry (only list elements do), and there are no atomic maps.
//! - Associative lists use the single strategic merge key (`k:{"containerPort":80}`), not the
//!   multi-key `x-kubernetes-list-map-keys` (`containerPort` + `protocol`).
//! - `null` in an apply configuration means "not set". Applied values are merged into the live
//!   object: maps recursively, keyed lists by key (live order kept, new elements appended),
//!   primitive sets as unions, atomic lists replaced.
//! - A conflict is a leaf the applier sets to a value different from the live one while another
//!   manager owns exactly that leaf. Entries of the same manager name (its `Update` entry) never
//!   conflict with its apply; they lose the leaves whose value the apply changes. With equal
//!   values ownership is shared, as in Kubernetes.
//! - Fields dropped from a manager's apply configuration are removed unless another entry owns
//!   them or something beneath them; key fields of kept elements are never removed, and maps and
//!   lists left empty by a removal are removed too.
//! - An object without managed fields gets no `before-first-apply` entry, ownership is not
//!   converted between API versions, and every entry owns only paths that exist in the object.
//! - `record_update` gives the changed leaves (all leaves on create) to the writer's `Update`
//!   entry and takes them from all other entries. Managed fields sent with a write replace the
//!   stored ones (except for subresources); an empty list (or `[{}]`) resets them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::strategic::{ListStrategy, PatchMeta};

/// A field another manager owns, which an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictField {
    /// The manager that owns the field.
    pub manager: String,
    /// The field, formatted like `.spec.replicas` or `.spec.containers[name="web"].image`.
    pub field: String,
}

/// Why a server-side apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change; retry with `force` to take them.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<ConflictField>),
    /// The apply configuration is not valid.
    #[error("invalid apply configuration: {0}")]
    Invalid(String),
}

fn conflict_message(conflicts: &[ConflictField]) -> String {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    format!(
        "Apply failed with {} conflict{}: {}",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// A field path as `FieldsV1` path elements (`f:spec`, `k:{"name":"x"}`, `v:"a"`).
type Path = Vec<String>;
/// The set of paths a manager owns. A path to a list element owns the element itself (`.`).
type FieldSet = BTreeSet<Path>;

/// Metadata fields that are never applied nor owned.
const IGNORED_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];
/// Metadata fields that identify the object and are not owned.
const IDENTITY_METADATA: &[&str] = &["name", "namespace"];

fn field(name: &str) -> String {
    format!("f:{name}")
}

fn key_element(key: &str, value: &Value) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), value.clone());
    format!("k:{}", Value::Object(m))
}

fn value_element(value: &Value) -> String {
    format!("v:{value}")
}

/// Whether `path` is under `prefix` (and not equal to it).
fn is_strictly_under(path: &[String], prefix: &[String]) -> bool {
    path.len() > prefix.len() && path[..prefix.len()] == *prefix
}

/// Whether `set` holds a path strictly under `prefix` (such paths sort right after it).
fn has_descendant(set: &FieldSet, prefix: &Path) -> bool {
    set.range::<Path, _>((
        std::ops::Bound::Excluded(prefix),
        std::ops::Bound::Unbounded,
    ))
    .next()
    .is_some_and(|p| is_strictly_under(p, prefix))
}

/// Renders a path like `.spec.containers[name="web"].image`.
fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for el in path {
        if let Some(name) = el.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = el.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![key.to_string()],
            };
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(&format!("[{el}]"));
        }
    }
    out
}

/// Finds the value at `path`.
fn value_at<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = root;
    for el in path {
        cur = step(cur, el)?;
    }
    Some(cur)
}

/// The index or key that path element `el` selects in `v`.
enum Slot {
    Key(String),
    Index(usize),
}

fn locate(v: &Value, el: &str) -> Option<Slot> {
    if let Some(name) = el.strip_prefix("f:") {
        return v
            .as_object()?
            .contains_key(name)
            .then(|| Slot::Key(name.to_string()));
    }
    let list = v.as_array()?;
    let index = if let Some(key) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        list.iter()
            .position(|e| key.iter().all(|(k, kv)| e.get(k) == Some(kv)))?
    } else if let Some(value) = el.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        list.iter().position(|e| *e == value)?
    } else {
        let i: usize = el.strip_prefix("i:")?.parse().ok()?;
        (i < list.len()).then_some(i)?
    };
    Some(Slot::Index(index))
}

fn step<'v>(v: &'v Value, el: &str) -> Option<&'v Value> {
    match locate(v, el)? {
        Slot::Key(k) => v.get(k),
        Slot::Index(i) => v.get(i),
    }
}

fn step_mut<'v>(v: &'v mut Value, el: &str) -> Option<&'v mut Value> {
    match locate(v, el)? {
        Slot::Key(k) => v.get_mut(k),
        Slot::Index(i) => v.get_mut(i),
    }
}

/// Removes the value at `path`; returns whether it was there.
fn remove_at(root: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = root;
    for el in parents {
        match step_mut(cur, el) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    match (locate(cur, last), cur) {
        (Some(Slot::Key(k)), Value::Object(m)) => m.shift_remove(&k).is_some(),
        (Some(Slot::Index(i)), Value::Array(a)) => {
            a.remove(i);
            true
        }
        _ => false,
    }
}

/// Collects the owned paths of a value: leaves, list elements and set members.
struct Collector<'m> {
    meta: &'m dyn PatchMeta,
    /// Apply configurations are validated; stored objects fall back to atomic lists.
    strict: bool,
}

impl Collector<'_> {
    /// The fields of an object, without apiVersion, kind, name, namespace and server-set
    /// metadata.
    fn object(&self, obj: &Value) -> Result<FieldSet, ApplyError> {
        let mut out = FieldSet::new();
        let Some(root) = obj.as_object() else {
            return Ok(out);
        };
        let mut names = Vec::new();
        let mut path = Vec::new();
        for (k, v) in root {
            match (k.as_str(), v) {
                ("apiVersion" | "kind", _) => {}
                ("metadata", Value::Object(m)) => {
                    names.push(k.clone());
                    path.push(field(k));
                    for (mk, mv) in m {
                        if IGNORED_METADATA.contains(&mk.as_str())
                            || IDENTITY_METADATA.contains(&mk.as_str())
                        {
                            continue;
                        }
                        self.walk(mv, mk, &mut names, &mut path, &mut out)?;
                    }
                    names.pop();
                    path.pop();
                }
                _ => self.walk(v, k, &mut names, &mut path, &mut out)?,
            }
        }
        Ok(out)
    }

    fn walk(
        &self,
        v: &Value,
        name: &str,
        names: &mut Vec<String>,
        path: &mut Path,
        out: &mut FieldSet,
    ) -> Result<(), ApplyError> {
        names.push(name.to_string());
        path.push(field(name));
        let result = self.value(v, names, path, out);
        names.pop();
        path.pop();
        result
    }

    fn value(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut Path,
        out: &mut FieldSet,
    ) -> Result<(), ApplyError> {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    self.walk(child, k, names, path, out)?;
                }
            }
            Value::Array(items) if !items.is_empty() => self.list(items, names, path, out)?,
            _ => {
                out.insert(path.clone());
            }
        }
        Ok(())
    }

    fn list(
        &self,
        items: &[Value],
        names: &mut Vec<String>,
        path: &mut Path,
        out: &mut FieldSet,
    ) -> Result<(), ApplyError> {
        let strategy = {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            self.meta.list_strategy(&names)
        };
        let elements: Result<Vec<String>, String> = match &strategy {
            ListStrategy::Atomic => {
                out.insert(path.clone());
                return Ok(());
            }
            ListStrategy::Merge { key: None } => Ok(items.iter().map(value_element).collect()),
            ListStrategy::Merge { key: Some(key) } => items
                .iter()
                .enumerate()
                .map(|(i, it)| match it.get(key) {
                    Some(kv) if it.is_object() && !kv.is_null() => Ok(key_element(key, kv)),
                    _ => Err(format!(
                        "{}: element {i} of a list merged by key must be an object with the field {key:?}",
                        render_path(path)
                    )),
                })
                .collect(),
        };
        let elements = match elements {
            Ok(els) if els.iter().collect::<BTreeSet<_>>().len() == els.len() => els,
            Ok(_) if self.strict => {
                return Err(ApplyError::Invalid(format!(
                    "{}: the list has duplicate entries",
                    render_path(path)
                )));
            }
            Err(e) if self.strict => return Err(ApplyError::Invalid(e)),
            _ => {
                out.insert(path.clone());
                return Ok(());
            }
        };
        for (el, item) in elements.into_iter().zip(items) {
            path.push(el);
            out.insert(path.clone());
            if let (ListStrategy::Merge { key: Some(_) }, Value::Object(m)) = (&strategy, item) {
                for (k, child) in m {
                    self.walk(child, k, names, path, out)?;
                }
            }
            path.pop();
        }
        Ok(())
    }
}

/// A tree of path elements, for converting a [`FieldSet`] to `FieldsV1`.
#[derive(Default)]
struct Node {
    owned: bool,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.owned && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for el in p {
            n = n.children.entry(el.clone()).or_default();
        }
        n.owned = true;
    }
    root.to_json()
}

fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else {
            return;
        };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in m {
            if k == "." {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
                continue;
            }
            path.push(k.clone());
            walk(c, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

impl Entry {
    fn parse(v: &Value) -> Option<Entry> {
        let m = v.as_object()?;
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        if s("fieldsType").is_some_and(|t| t != "FieldsV1") {
            return None;
        }
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation").unwrap_or_default(),
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time").unwrap_or_default(),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            fields: m.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("time".into(), json!(self.time));
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), to_fields_v1(&self.fields));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// Records that `manager` wrote with `operation` now: updates its entry or adds one.
    fn upsert<'e>(
        entries: &'e mut Vec<Entry>,
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
        api_version: &str,
        now: &str,
    ) -> &'e mut Entry {
        let pos = match entries
            .iter()
            .position(|e| e.is(manager, operation, subresource))
        {
            Some(pos) => pos,
            None => {
                entries.push(Entry {
                    manager: manager.to_string(),
                    operation: operation.to_string(),
                    api_version: String::new(),
                    time: String::new(),
                    subresource: subresource.map(str::to_string),
                    fields: FieldSet::new(),
                });
                entries.len() - 1
            }
        };
        let e = &mut entries[pos];
        e.api_version = api_version.to_string();
        e.time = now.to_string();
        e
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Drops owned paths that are not in `obj` and entries that own nothing.
fn retain_existing(entries: &mut Vec<Entry>, obj: &Value) {
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(obj, p).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(m)) = root.get_mut("metadata") {
            m.shift_remove("managedFields");
        }
        return;
    }
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["managedFields"] = Value::Array(entries.iter().map(Entry::to_json).collect());
}

/// The apply configuration without nulls and server-set metadata.
fn clean_config(applied: &Value) -> Value {
    fn strip_nulls(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
            other => other.clone(),
        }
    }
    let mut v = strip_nulls(applied);
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        for k in IGNORED_METADATA {
            m.shift_remove(*k);
        }
    }
    v
}

/// Merges the apply configuration `config` into `live`.
fn merge_config(live: &mut Value, config: &Value, names: &mut Vec<String>, meta: &dyn PatchMeta) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, cv) in c {
                names.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) => merge_config(lv, cv, names, meta),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(l), Value::Array(c)) => {
            let strategy = {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                meta.list_strategy(&names)
            };
            match strategy {
                ListStrategy::Atomic => *l = c.clone(),
                ListStrategy::Merge { key: None } => {
                    for it in c {
                        if !l.contains(it) {
                            l.push(it.clone());
                        }
                    }
                }
                ListStrategy::Merge { key: Some(key) } => {
                    for it in c {
                        let kv = it.get(&key);
                        match l.iter_mut().find(|e| kv.is_some() && e.get(&key) == kv) {
                            Some(e) => merge_config(e, it, names, meta),
                            None => l.push(it.clone()),
                        }
                    }
                }
            }
        }
        (l, c) => *l = c.clone(),
    }
}

/// Whether `path` is the key field of a list element (`...k:{"name":"x"}, f:name`).
fn is_element_key_field(path: &[String]) -> bool {
    let [.., parent, last] = path else {
        return false;
    };
    let (Some(key), Some(name)) = (parent.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|m| m.contains_key(name))
}

/// After removing `removed`, removes the maps and lists above it that became empty, unless
/// someone owns them.
fn remove_empty_parents(obj: &mut Value, removed: &[String], owned: &FieldSet) {
    for len in (1..removed.len()).rev() {
        let parent = &removed[..len];
        let protected =
            len == 1 && ["f:metadata", "f:spec", "f:status"].contains(&parent[0].as_str());
        if protected || !parent[len - 1].starts_with("f:") || owned.contains(parent) {
            return;
        }
        let empty = match value_at(obj, parent) {
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if !empty {
            return;
        }
        remove_at(obj, parent);
    }
}

/// Server-side apply of `applied` by `manager` onto `live` (`None` when creating).
///
/// Returns the new object with its `metadata.managedFields` updated, or the conflicts with other
/// managers when `force` is not set. See the module documentation for the semantics.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    meta: &dyn PatchMeta,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the apply configuration must be a JSON object".into(),
        ));
    }
    if applied.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApplyError::Invalid("metadata must be an object".into()));
    }
    if manager.is_empty() {
        return Err(ApplyError::Invalid("a field manager is required".into()));
    }
    let config = clean_config(applied);
    let applied_set = Collector { meta, strict: true }.object(&config)?;
    let Some(live) = live else {
        let mut obj = config;
        let mut entries = Vec::new();
        Entry::upsert(&mut entries, manager, APPLY, None, api_version, now).fields = applied_set;
        retain_existing(&mut entries, &obj);
        write_entries(&mut obj, &entries);
        return Ok(obj);
    };
    let mut entries = read_entries(live);
    let is_self = |e: &Entry| e.is(manager, APPLY, None);

    // Leaves whose value changes, and who else owns them.
    let mut conflicts: Vec<ConflictField> = Vec::new();
    let mut taken: Vec<(usize, &Path)> = Vec::new();
    for p in &applied_set {
        if !p.last().is_some_and(|el| el.starts_with("f:")) {
            continue;
        }
        let (Some(new_v), Some(live_v)) = (value_at(&config, p), value_at(live, p)) else {
            continue;
        };
        if new_v == live_v || (new_v.is_object() && live_v.is_object()) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if is_self(e) || !e.fields.contains(p) {
                continue;
            }
            if e.manager != manager {
                let c = ConflictField {
                    manager: e.manager.clone(),
                    field: render_path(p),
                };
                if !conflicts.contains(&c) {
                    conflicts.push(c);
                }
            }
            taken.push((i, p));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflict(conflicts));
    }
    for (i, p) in taken {
        entries[i].fields.remove(p);
    }

    let mut obj = live.clone();
    merge_config(&mut obj, &config, &mut Vec::new(), meta);

    // Remove what this manager applied before but no longer does, unless others own it.
    let previous = entries
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_self(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut owned_after = others.clone();
    owned_after.extend(applied_set.iter().cloned());
    for r in previous.difference(&applied_set) {
        if others.contains(r) || has_descendant(&owned_after, r) || is_element_key_field(r) {
            continue;
        }
        if remove_at(&mut obj, r) {
            remove_empty_parents(&mut obj, r, &owned_after);
        }
    }

    Entry::upsert(&mut entries, manager, APPLY, None, api_version, now).fields = applied_set;
    retain_existing(&mut entries, &obj);
    write_entries(&mut obj, &entries);
    Ok(obj)
}

/// Built-in API groups; objects of other groups are custom resources.
const BUILTIN_GROUPS: &[&str] = &[
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// The patch metadata for objects of `api_version` and `kind`: the built-in table for built-in
/// groups (any group without a dot, or a listed `*.k8s.io` group), all-atomic lists otherwise.
pub fn patch_meta_for(api_version: &str, kind: &str) -> Box<dyn PatchMeta> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if !group.contains('.') || BUILTIN_GROUPS.contains(&group) {
        Box::new(super::strategic::BuiltinPatchMeta {
            kind: kind.to_string(),
        })
    } else {
        Box::new(super::strategic::JsonMergeMeta)
    }
}

/// Records a create, update or patch (not an apply) by `manager` in `new`'s managed fields.
///
/// The leaves that differ between `old` and `new` (all of them on create) go to the manager's
/// `Update` entry for `subresource` and are taken from every other entry. List strategies come
/// from [`patch_meta_for`] with `api_version` and `new`'s kind.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) {
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or_default();
    let meta = patch_meta_for(api_version, kind);
    record_update_with(old, new, manager, subresource, api_version, now, &*meta);
}

/// [`record_update`] with explicit patch metadata.
pub fn record_update_with(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
    meta: &dyn PatchMeta,
) {
    if !new.is_object() {
        return;
    }
    let from_old = || old.map(read_entries).unwrap_or_default();
    let supplied = new.get("metadata").and_then(|m| m.get("managedFields"));
    let mut entries = match supplied {
        // `[]` (and `[{}]`, as Kubernetes documents) resets managed fields.
        Some(Value::Array(a)) if a.iter().all(|e| e.as_object().is_some_and(Map::is_empty)) => {
            Vec::new()
        }
        Some(Value::Array(a)) if subresource.is_none() => {
            let parsed: Vec<Entry> = a.iter().filter_map(Entry::parse).collect();
            if parsed.iter().all(|e| e.fields.is_empty()) {
                from_old()
            } else {
                parsed
            }
        }
        _ => from_old(),
    };
    let collector = Collector {
        meta,
        strict: false,
    };
    let all = collector.object(new).unwrap_or_default();
    let changed: FieldSet = match old {
        None => all,
        Some(old) => all
            .into_iter()
            .filter(|p| match value_at(old, p) {
                None => true,
                Some(ov) => {
                    p.last().is_some_and(|el| el.starts_with("f:")) && Some(ov) != value_at(new, p)
                }
            })
            .collect(),
    };
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            if !e.is(manager, UPDATE, subresource) {
                e.fields.retain(|p| !changed.contains(p));
            }
        }
        Entry::upsert(&mut entries, manager, UPDATE, subresource, api_version, now)
            .fields
            .extend(changed);
    }
    retain_existing(&mut entries, new);
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::super::strategic::{BuiltinPatchMeta, JsonMergeMeta};
    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";

    fn deploy_meta() -> BuiltinPatchMeta {
        BuiltinPatchMeta {
            kind: "Deployment".into(),
        }
    }

    fn deployment(replicas: i64, labels: Value, containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": containers}}
            }
        })
    }

    fn apply(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        server_side_apply(live, applied, manager, force, &deploy_meta(), "apps/v1", T1)
    }

    fn entry<'v>(obj: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    fn owns(obj: &Value, manager: &str, operation: &str, path: &[&str]) -> bool {
        entry(obj, manager, operation).is_some_and(|e| {
            let path: Path = path.iter().map(|s| s.to_string()).collect();
            from_fields_v1(&e["fieldsV1"]).contains(&path)
        })
    }

    #[test]
    fn create_via_apply_records_fields_v1() {
        let applied = deployment(
            2,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]),
        );
        let mut applied_with_junk = applied.clone();
        applied_with_junk["metadata"]["resourceVersion"] = json!("7");
        applied_with_junk["metadata"]["managedFields"] = json!([{"manager": "evil"}]);
        applied_with_junk["metadata"]["annotations"] = json!({"gone": null});
        let out = apply(None, &applied_with_junk, "tool", false).unwrap();
        assert!(out["metadata"].get("resourceVersion").is_none());
        assert_eq!(out["metadata"]["annotations"], json!({}));
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{
                "manager": "tool",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:annotations": {}, "f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"web\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}
                            }
                        }}}
                    }
                }
            }])
        );
        let mut without = out.clone();
        without["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("managedFields");
        let mut expected = applied;
        expected["metadata"]["annotations"] = json!({});
        assert_eq!(without, expected);
    }

    #[test]
    fn fields_v1_round_trip() {
        let set: FieldSet = [
            vec!["f:metadata", "f:finalizers", "v:\"a\""],
            vec!["f:spec", "f:ports", "k:{\"port\":80}"],
            vec!["f:spec", "f:ports", "k:{\"port\":80}", "f:port"],
            vec!["f:spec", "f:selector"],
        ]
        .into_iter()
        .map(|p| p.into_iter().map(String::from).collect())
        .collect();
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {
                    "f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}}},
                    "f:selector": {}
                }
            })
        );
        assert_eq!(
            serde_json::to_string(&v["f:spec"]["f:ports"]).unwrap(),
            r#"{"k:{\"port\":80}":{".":{},"f:port":{}}}"#
        );
        assert_eq!(from_fields_v1(&v), set);
        assert_eq!(
            render_path(&set.iter().nth(2).unwrap().clone()),
            ".spec.ports[port=80].port"
        );
        assert_eq!(
            render_path(&set.iter().next().unwrap().clone()),
            ".metadata.finalizers[=\"a\"]"
        );
    }

    #[test]
    fn reapply_removes_dropped_fields() {
        let first = deployment(
            2,
            json!({"app": "web", "tier": "front"}),
            json!([{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": "busybox"}]),
        );
        let live = apply(None, &first, "tool", false).unwrap();
        let second = deployment(
            2,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx"}]),
        );
        let mut second = second;
        second["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        let out = apply(Some(&live), &second, "tool", false).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx"}])
        );
        assert!(!owns(&out, "tool", "Apply", &["f:spec", "f:replicas"]));
        assert!(owns(
            &out,
            "tool",
            "Apply",
            &["f:metadata", "f:labels", "f:app"]
        ));

        // Removing the last label removes the emptied map too.
        let mut third = second.clone();
        third["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("labels");
        let out = apply(Some(&out), &third, "tool", false).unwrap();
        assert!(out["metadata"].get("labels").is_none(), "{out}");
        assert_eq!(out["metadata"]["name"], "web");
    }

    #[test]
    fn conflicts_between_managers_and_force() {
        let live = apply(
            None,
            &deployment(
                1,
                json!({"app": "web"}),
                json!([{"name": "web", "image": "nginx:1"}]),
            ),
            "alice",
            false,
        )
        .unwrap();
        let bob = deployment(
            3,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx:2"}]),
        );
        let err = apply(Some(&live), &bob, "bob", false).unwrap_err();
        let ApplyError::Conflict(conflicts) = &err else {
            panic!("{err}")
        };
        assert_eq!(
            conflicts,
            &vec![
                ConflictField {
                    manager: "alice".into(),
                    field: ".spec.replicas".into()
                },
                ConflictField {
                    manager: "alice".into(),
                    field: ".spec.template.spec.containers[name=\"web\"].image".into()
                },
            ]
        );
        assert!(
            err.to_string().starts_with(
                "Apply failed with 2 conflicts: conflict with \"alice\": .spec.replicas\n"
            ),
            "{err}"
        );

        let out = apply(Some(&live), &bob, "bob", true).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(owns(&out, "bob", "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&out, "alice", "Apply", &["f:spec", "f:replicas"]));
        // Equal values are shared, not conflicts.
        assert!(owns(
            &out,
            "alice",
            "Apply",
            &["f:metadata", "f:labels", "f:app"]
        ));
        assert!(owns(
            &out,
            "bob",
            "Apply",
            &["f:metadata", "f:labels", "f:app"]
        ));

        // Alice drops the label, but bob still owns it, so it stays.
        let mut alice = deployment(1, json!({}), json!([{"name": "web", "image": "nginx:1"}]));
        alice["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("labels");
        alice["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        alice["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .shift_remove("image");
        let out = apply(Some(&out), &alice, "alice", false).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
    }

    #[test]
    fn apply_merges_containers_by_name() {
        let mut live = deployment(
            1,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}]}]),
        );
        record_update(None, &mut live, "kubectl-create", None, "apps/v1", T0);
        let applied = deployment(
            1,
            json!({"app": "web"}),
            json!([
                {"name": "web", "env": [{"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "busybox", "args": ["sleep"]}
            ]),
        );
        let out = apply(Some(&live), &applied, "tool", false).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "busybox", "args": ["sleep"]}
            ])
        );
        let sidecar = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"sidecar\"}",
        ];
        assert!(owns(&out, "tool", "Apply", &sidecar));
        assert!(owns(
            &out,
            "tool",
            "Apply",
            &[&sidecar[..], &["f:args"]].concat()
        ));
        assert!(owns(
            &out,
            "kubectl-create",
            "Update",
            &[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                "k:{\"name\":\"web\"}",
                "f:image"
            ]
        ));
        assert_eq!(entry(&out, "kubectl-create", "Update").unwrap()["time"], T0);

        // Dropping the sidecar removes it; the web container stays (others own parts of it).
        let applied = deployment(
            1,
            json!({"app": "web"}),
            json!([{"name": "web", "env": [{"name": "B", "value": "2"}]}]),
        );
        let out2 = apply(Some(&out), &applied, "tool", false).unwrap();
        assert_eq!(
            out2["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Dropping the web container entirely keeps it with the fields another manager owns.
        let applied = deployment(1, json!({"app": "web"}), json!([]));
        let out3 = apply(Some(&out2), &applied, "tool", false).unwrap();
        assert_eq!(
            out3["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}]}])
        );
    }

    #[test]
    fn same_manager_update_entry_does_not_conflict() {
        let mut live = deployment(1, json!({}), json!([{"name": "web", "image": "a"}]));
        record_update(None, &mut live, "tool", None, "apps/v1", T0);
        let out = apply(
            Some(&live),
            &deployment(2, json!({}), json!([{"name": "web", "image": "a"}])),
            "tool",
            false,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(owns(&out, "tool", "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&out, "tool", "Update", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn invalid_apply_configurations() {
        assert!(matches!(
            apply(None, &json!([]), "tool", false),
            Err(ApplyError::Invalid(_))
        ));
        let err = apply(
            None,
            &deployment(1, json!({}), json!([{"image": "x"}])),
            "tool",
            false,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(".spec.template.spec.containers: element 0"),
            "{err}"
        );
        let err = apply(
            None,
            &deployment(1, json!({}), json!([{"name": "a"}, {"name": "a"}])),
            "tool",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn record_update_moves_ownership() {
        let mut created = deployment(
            1,
            json!({"app": "web"}),
            json!([{"name": "web", "image": "nginx:1"}]),
        );
        record_update(None, &mut created, "alice", None, "apps/v1", T0);
        let image = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ];
        assert!(owns(&created, "alice", "Update", &image));
        assert!(owns(
            &created,
            "alice",
            "Update",
            &["f:metadata", "f:labels", "f:app"]
        ));
        assert!(!owns(
            &created,
            "alice",
            "Update",
            &["f:metadata", "f:name"]
        ));

        let mut updated = created.clone();
        updated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        updated["metadata"]["labels"] = json!({"app": "web", "new": "x"});
        record_update(Some(&created), &mut updated, "bob", None, "apps/v1", T1);
        assert!(owns(&updated, "bob", "Update", &image));
        assert!(owns(
            &updated,
            "bob",
            "Update",
            &["f:metadata", "f:labels", "f:new"]
        ));
        assert!(!owns(
            &updated,
            "bob",
            "Update",
            &["f:metadata", "f:labels", "f:app"]
        ));
        assert!(!owns(&updated, "alice", "Update", &image));
        assert!(owns(&updated, "alice", "Update", &["f:spec", "f:replicas"]));
        assert_eq!(entry(&updated, "alice", "Update").unwrap()["time"], T0);
        assert_eq!(entry(&updated, "bob", "Update").unwrap()["time"], T1);

        // A status write is recorded with its subresource.
        let mut status = updated.clone();
        status["status"] = json!({"conditions": [{"type": "Available", "status": "True"}]});
        record_update(
            Some(&updated),
            &mut status,
            "ctrl",
            Some("status"),
            "apps/v1",
            T1,
        );
        let e = entry(&status, "ctrl", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );

        // Removing bob's label drops it from his entry; an entry that owns nothing goes away.
        let mut removed = status.clone();
        removed["metadata"]["labels"] = json!({"app": "web"});
        removed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1");
        record_update(Some(&status), &mut removed, "alice", None, "apps/v1", T1);
        assert!(entry(&removed, "bob", "Update").is_none());
        assert!(owns(&removed, "alice", "Update", &image));
    }

    #[test]
    fn record_update_resets_and_accepts_supplied_managed_fields() {
        let mut created = deployment(1, json!({}), json!([]));
        record_update(None, &mut created, "alice", None, "apps/v1", T0);
        assert!(entry(&created, "alice", "Update").is_some());

        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([]);
        record_update(Some(&created), &mut reset, "bob", None, "apps/v1", T1);
        assert!(reset["metadata"].get("managedFields").is_none(), "{reset}");

        // Managed fields that are not sent are kept.
        let mut kept = created.clone();
        kept["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("managedFields");
        kept["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut kept, "bob", None, "apps/v1", T1);
        assert!(owns(
            &kept,
            "alice",
            "Update",
            &["f:spec", "f:template", "f:spec", "f:containers"]
        ));
        assert!(owns(&kept, "bob", "Update", &["f:spec", "f:replicas"]));

        // No change and no entries: nothing recorded.
        let mut same = created.clone();
        record_update(Some(&created), &mut same, "bob", None, "apps/v1", T1);
        assert_eq!(same, created);
    }

    #[test]
    fn custom_resources_use_atomic_lists() {
        let mut obj = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "finalizers": ["a"]},
            "spec": {"items": [{"name": "x"}]}
        });
        record_update(None, &mut obj, "m", None, "example.com/v1", T0);
        assert!(owns(&obj, "m", "Update", &["f:spec", "f:items"]));
        assert!(owns(&obj, "m", "Update", &["f:metadata", "f:finalizers"]));
        let out = server_side_apply(Some(&obj), &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}), "a", false, &JsonMergeMeta, "example.com/v1", T1).unwrap();
        assert_eq!(out["spec"], json!({"items": [{"name": "x"}], "size": 1}));

        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]}});
        record_update(None, &mut pod, "m", None, "v1", T0);
        assert!(owns(
            &pod,
            "m",
            "Update",
            &["f:metadata", "f:finalizers", "v:\"a\""]
        ));
    }

    #[test]
    fn apply_prunes_set_elements() {
        let meta = BuiltinPatchMeta {
            kind: "ConfigMap".into(),
        };
        let cm = |finalizers: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "finalizers": finalizers}, "data": {"k": "v"}})
        };
        let live =
            server_side_apply(None, &cm(json!(["a", "b"])), "m", false, &meta, "v1", T0).unwrap();
        let mut other = live.clone();
        other["metadata"]["finalizers"] = json!(["a", "b", "c"]);
        record_update(Some(&live), &mut other, "ctrl", None, "v1", T0);
        assert!(owns(
            &other,
            "ctrl",
            "Update",
            &["f:metadata", "f:finalizers", "v:\"c\""]
        ));
        let out = server_side_apply(Some(&other), &cm(json!(["a"])), "m", false, &meta, "v1", T1)
            .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(out["data"], json!({"k": "v"}));
    }
}
