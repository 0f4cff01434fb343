//! Name, label and annotation validation with Kubernetes' rules and messages.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use crate::status::Cause;

static DNS1123_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});
static DNS1035_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("static regex")
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex")
});

/// Which rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
    /// RBAC objects: anything but "/" and "%", and not "." or "..".
    PathSegment,
}

pub fn name_rule(group: &str, plural: &str) -> NameRule {
    match (group, plural) {
        ("", "namespaces") => NameRule::Dns1123Label,
        ("", "services") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Problems with a name, as kube words them (empty when the name is valid).
pub fn check_name(name: &str, rule: NameRule) -> Vec<String> {
    let mut out = Vec::new();
    match rule {
        NameRule::Dns1123Subdomain => {
            if name.len() > 253 {
                out.push("must be no more than 253 characters".to_string());
            }
            if !DNS1123_SUBDOMAIN.is_match(name) {
                out.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
            }
        }
        NameRule::Dns1123Label => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            if !DNS1123_LABEL.is_match(name) {
                out.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
            }
        }
        NameRule::Dns1035Label => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            if !DNS1035_LABEL.is_match(name) {
                out.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                out.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    out.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    out
}

/// Checks a label or annotation key: an optional DNS subdomain prefix and a qualified name.
fn check_qualified_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !DNS1123_SUBDOMAIN.is_match(p))
    {
        return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
    }
    if name.is_empty() || name.len() > 63 || !QUALIFIED_NAME.is_match(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into());
    }
    None
}

/// Checks metadata.labels and metadata.annotations; returns Invalid causes.
pub fn check_labels_and_annotations(meta: &Value, prefix: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(msg) = check_qualified_key(k) {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {k:?}: {msg}"),
                    field: format!("{prefix}.labels"),
                });
            }
            match v.as_str() {
                Some(s) if s.len() <= 63 && LABEL_VALUE.is_match(s) => {}
                Some(s) => causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {s:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
                    field: format!("{prefix}.labels"),
                }),
                None => causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: label values must be strings".into(),
                    field: format!("{prefix}.labels"),
                }),
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            if let Some(msg) = check_qualified_key(k) {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {k:?}: {msg}"),
                    field: format!("{prefix}.annotations"),
                });
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: must have at most 262144 bytes".into(),
                field: format!("{prefix}.annotations"),
            });
        }
    }
    causes
}

/// A string quoted as Go's `%q` does, which kube's messages use for values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

static CONFIG_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-._a-zA-Z0-9]+$").expect("static regex"));
static PORT_NAME_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-a-z0-9]+$").expect("static regex"));

/// Problems with a ConfigMap or Secret key, as kube words them.
pub fn check_config_key(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !CONFIG_KEY.is_match(key) {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if key == "." {
        out.push("must not be '.'".to_string());
    } else if key == ".." {
        out.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        out.push("must not start with '..'".to_string());
    }
    out
}

/// Problems with a port number.
pub fn check_port_number(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// Problems with a named port (an IANA_SVC_NAME).
pub fn check_port_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if !PORT_NAME_CHARS.is_match(name) {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

/// A value as kube's `Invalid value: ...` messages print it.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn invalid(field: String, value: &Value, problem: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {problem}", shown(value)),
        field,
    }
}

fn object_keys<'a>(obj: &'a Value, field: &str) -> Vec<&'a String> {
    obj.get(field)
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default()
}

// What kube-apiserver validates in built-in kinds beyond their schema's types, on the object as
// written, before defaults. The strategies in `builtin` call these.

/// A ConfigMap's keys and size.
pub fn check_config_map(obj: &Value) -> Vec<Cause> {
    let data = object_keys(obj, "data");
    let binary = object_keys(obj, "binaryData");
    let mut causes = Vec::new();
    for (field, keys, other, other_name) in [
        ("data", &data, &binary, "binaryData"),
        ("binaryData", &binary, &data, "data"),
    ] {
        for key in keys {
            let value = Value::String(key.to_string());
            for problem in check_config_key(key) {
                causes.push(invalid(format!("{field}[{key}]"), &value, &problem));
            }
            if other.contains(key) {
                causes.push(invalid(
                    format!("{field}[{key}]"),
                    &value,
                    &format!("duplicate of key present in {other_name}"),
                ));
            }
        }
    }
    // The values may hold 1 MiB in all (binaryData counts its decoded bytes).
    let text: usize = obj
        .get("data")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_str).map(str::len).sum())
        .unwrap_or(0);
    let binary: usize = obj
        .get("binaryData")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(Value::as_str)
                .map(|b| b.trim_end_matches('=').len() * 3 / 4)
                .sum()
        })
        .unwrap_or(0);
    if text + binary > MAX_CONFIG_MAP_BYTES {
        causes.push(Cause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: must have at most {MAX_CONFIG_MAP_BYTES} bytes"),
            field: "[]".into(),
        });
    }
    causes
}

/// The most bytes of values a ConfigMap may hold, as kube allows.
const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// A Secret's keys.
/// A PodDisruptionBudget's spec: at most one of its two bounds.
pub fn check_disruption_budget(obj: &Value) -> Vec<Cause> {
    let set = |field: &str| {
        obj.pointer(&format!("/spec/{field}"))
            .is_some_and(|v| !v.is_null())
    };
    if set("minAvailable") && set("maxUnavailable") {
        // kube-apiserver prints the whole spec struct here; its Go form says nothing to a client.
        return vec![invalid(
            "spec".into(),
            &Value::String("object".into()),
            "minAvailable and maxUnavailable cannot be both set",
        )];
    }
    Vec::new()
}

pub fn check_secret(obj: &Value) -> Vec<Cause> {
    // stringData is merged into data before kube validates, so its keys are data's.
    let mut keys = object_keys(obj, "data");
    for k in object_keys(obj, "stringData") {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut causes = Vec::new();
    for key in keys {
        for problem in check_config_key(key) {
            causes.push(invalid(
                format!("data[{key}]"),
                &Value::String(key.to_string()),
                &problem,
            ));
        }
    }
    causes
}

/// A Service's ports: names, numbers, protocols and node ports.
pub fn check_service(obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let require_name = ports.len() > 1;
    let mut names: Vec<&str> = Vec::new();
    let mut causes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            if require_name {
                causes.push(Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: at("name"),
                });
            }
        } else {
            for problem in check_name(name, NameRule::Dns1123Label) {
                causes.push(invalid(at("name"), &json!(name), &problem));
            }
            if names.contains(&name) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: {}", go_quote(name)),
                    field: at("name"),
                });
            } else {
                names.push(name);
            }
        }
        let port = p.get("port").cloned().unwrap_or(json!(0));
        for problem in check_port_number(port.as_i64().unwrap_or(0)) {
            causes.push(invalid(at("port"), &port, &problem));
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !["SCTP", "TCP", "UDP"].contains(&proto)
        {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {}: supported values: \"SCTP\", \"TCP\", \"UDP\"",
                    go_quote(proto)
                ),
                field: at("protocol"),
            });
        }
        // kube validates after defaults: an unset, empty or zero targetPort is the port.
        match p.get("targetPort") {
            Some(Value::String(s)) if !s.is_empty() => {
                for problem in check_port_name(s) {
                    causes.push(invalid(at("targetPort"), &json!(s), &problem));
                }
            }
            Some(Value::Number(n)) if n.as_i64() != Some(0) => {
                for problem in check_port_number(n.as_i64().unwrap_or(0)) {
                    causes.push(invalid(
                        at("targetPort"),
                        &Value::Number(n.clone()),
                        &problem,
                    ));
                }
            }
            _ => {
                for problem in check_port_number(port.as_i64().unwrap_or(0)) {
                    causes.push(invalid(at("targetPort"), &port, &problem));
                }
            }
        }
        if let Some(node_port) = p.get("nodePort").and_then(Value::as_i64)
            && node_port != 0
        {
            if kind == "ClusterIP" {
                causes.push(Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: may not be used when `type` is 'ClusterIP'".into(),
                    field: at("nodePort"),
                });
            } else if matches!(kind, "NodePort" | "LoadBalancer")
                && !(30000..=32767).contains(&node_port)
            {
                causes.push(invalid(
                    at("nodePort"),
                    &json!(node_port),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
        }
    }
    causes
}

/// Checks a pod spec (`path` is where it sits).
pub fn check_pod_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(v) = spec.get("activeDeadlineSeconds").filter(|v| !v.is_null())
        && !v
            .as_i64()
            .is_some_and(|n| (1..=i64::from(i32::MAX)).contains(&n))
    {
        causes.push(invalid(
            format!("{path}.activeDeadlineSeconds"),
            v,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    // A negative terminationGracePeriodSeconds passes: kube-apiserver 1.24 stores it as given.
    causes
}

/// Characters that generateName suffixes use (no vowels, no look-alikes), as kube does.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    // Cut on a character boundary: the prefix is client input and not yet validated.
    let mut cut = prefix.len().min(58);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let base = prefix[..cut].to_string();
    let suffix: String = (0..5)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect();
    base + &suffix
}

/// How deep an object's own fields may nest, counting the object itself as one level.
///
/// The server's JSON parser (like every serde_json client's) stops at 127 levels. A stored
/// object is deeper than its fields: its managedFields mirror them 4 levels down (plus 1 for
/// the leaves), a list adds 2 and an AdmissionReview or a watch event more. 100 leaves room
/// for all of that, so that whatever is stored can be read back, by the server and by clients.
pub const MAX_OBJECT_DEPTH: usize = 100;

/// How many containers (objects and arrays) nest at the deepest point of `v`: 0 for a scalar.
/// Iterative, so that any depth is safe to measure.
pub fn nesting_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, level)) = stack.pop() {
        match v {
            Value::Object(m) => {
                deepest = deepest.max(level);
                stack.extend(m.values().map(|c| (c, level + 1)));
            }
            Value::Array(a) => {
                deepest = deepest.max(level);
                stack.extend(a.iter().map(|c| (c, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Why an object may not be stored for how deep it nests, if it may not: its fields may nest
/// `MAX_OBJECT_DEPTH` levels, its managedFields `MAX_OBJECT_DEPTH + 3` (a list of entries
/// whose fieldsV1 mirror the fields, with a level for the leaves).
pub fn check_depth(obj: &Value) -> Result<(), String> {
    let too_deep = || format!("the object nests deeper than {MAX_OBJECT_DEPTH} levels");
    let Some(map) = obj.as_object() else {
        return (nesting_depth(obj) <= MAX_OBJECT_DEPTH)
            .then_some(())
            .ok_or_else(too_deep);
    };
    for (key, value) in map {
        let managed = match (key.as_str(), value) {
            ("metadata", Value::Object(meta)) => meta.get("managedFields"),
            _ => None,
        };
        let Some(managed) = managed else {
            if 1 + nesting_depth(value) > MAX_OBJECT_DEPTH {
                return Err(too_deep());
            }
            continue;
        };
        if nesting_depth(managed) > MAX_OBJECT_DEPTH + 3 {
            return Err(format!(
                "metadata.managedFields nests deeper than {} levels",
                MAX_OBJECT_DEPTH + 3
            ));
        }
        for (k, v) in value.as_object().into_iter().flatten() {
            if k != "managedFields" && 2 + nesting_depth(v) > MAX_OBJECT_DEPTH {
                return Err(too_deep());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_each_rule() {
        assert!(check_name("web-1.example", NameRule::Dns1123Subdomain).is_empty());
        assert!(!check_name("Web", NameRule::Dns1123Subdomain).is_empty());
        assert!(!check_name("a.b", NameRule::Dns1123Label).is_empty());
        assert!(!check_name("1abc", NameRule::Dns1035Label).is_empty());
        assert!(check_name("system:controller", NameRule::PathSegment).is_empty());
        assert!(!check_name("a/b", NameRule::PathSegment).is_empty());
        assert!(!check_name(&"a".repeat(254), NameRule::Dns1123Subdomain).is_empty());
    }

    #[test]
    fn labels_are_checked() {
        let ok = json!({"labels": {"kubevirt.io/vm": "vm-cirros", "a": ""}});
        assert!(check_labels_and_annotations(&ok, "metadata").is_empty());
        let bad = json!({"labels": {"bad key!": "x", "k": "white space"}});
        assert_eq!(check_labels_and_annotations(&bad, "metadata").len(), 2);
    }

    #[test]
    fn long_multibyte_prefixes_are_cut_safely() {
        let n = generate_name(&"あ".repeat(20));
        assert!(n.chars().count() > 5);
    }

    #[test]
    fn generated_names_have_a_five_char_suffix() {
        let n = generate_name("vm-");
        assert_eq!(n.len(), 8);
        assert!(n.starts_with("vm-"));
    }

    /// `levels` objects, each the only field of the one around it, around `leaf`.
    fn nested(levels: usize, leaf: Value) -> Value {
        (0..levels).fold(leaf, |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn nesting_depth_counts_containers_at_any_depth() {
        assert_eq!(nesting_depth(&json!("x")), 0);
        assert_eq!(nesting_depth(&json!({})), 1);
        assert_eq!(nesting_depth(&json!([[], {"a": [1]}])), 3);
        // Far deeper than a recursive walk could go on a thread's stack. The value is
        // leaked: dropping it would recurse.
        let mut deep = json!(1);
        for _ in 0..200_000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(nesting_depth(&deep), 200_000);
        std::mem::forget(deep);
    }

    #[test]
    fn objects_and_their_managed_fields_have_depth_limits() {
        let fields = |levels: usize| nested(levels - 1, json!("x"));
        let obj = |spec: Value, managed: Value| json!({"metadata": {"name": "n", "managedFields": managed}, "spec": spec});
        assert_eq!(check_depth(&obj(fields(100), json!([]))), Ok(()));
        assert_eq!(
            check_depth(&obj(fields(101), json!([]))),
            Err("the object nests deeper than 100 levels".into())
        );
        // managedFields `levels` deep, as fields that deep record them.
        let mirror =
            |levels: usize| json!([{"manager": "m", "fieldsV1": nested(levels - 3, json!({}))}]);
        assert_eq!(
            check_depth(&obj(json!({}), mirror(MAX_OBJECT_DEPTH + 3))),
            Ok(())
        );
        assert_eq!(
            check_depth(&obj(json!({}), mirror(MAX_OBJECT_DEPTH + 4))),
            Err("metadata.managedFields nests deeper than 103 levels".into())
        );
        let labels = json!({"metadata": {"labels": nested(99, json!(1))}});
        assert!(check_depth(&labels).is_err());
        assert!(check_depth(&nested(101, json!(1))).is_err());
    }
}
