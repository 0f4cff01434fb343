//! Name, label and annotation validation with Kubernetes' rules and messages.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

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
}
