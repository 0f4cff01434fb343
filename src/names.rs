//! Resource names as the API server accepts them, checked before any request, and the
//! percent-encoding of path segments: a name must never reach another object's URL.

use std::fmt::Write;

use virt_reconciler::names::is_dns1123_label_chars as is_label;

/// The kinds whose names virtctl is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    VirtualMachine,
    VirtualMachineInstance,
    VirtualMachineInstanceReplicaSet,
    Service,
}

impl NameKind {
    fn api_kind(self) -> &'static str {
        match self {
            NameKind::VirtualMachine => "VirtualMachine",
            NameKind::VirtualMachineInstance => "VirtualMachineInstance",
            NameKind::VirtualMachineInstanceReplicaSet => "VirtualMachineInstanceReplicaSet",
            NameKind::Service => "Service",
        }
    }

    /// The type words accepted before a `/` (`vm/vm-cirros`), lowercase, as kubectl's.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            NameKind::VirtualMachine => &["vm", "vms", "virtualmachine", "virtualmachines"],
            NameKind::VirtualMachineInstance => &[
                "vmi",
                "vmis",
                "virtualmachineinstance",
                "virtualmachineinstances",
            ],
            NameKind::VirtualMachineInstanceReplicaSet => &[
                "vmirs",
                "vmirss",
                "virtualmachineinstancereplicaset",
                "virtualmachineinstancereplicasets",
            ],
            // `--name` of expose is a name only.
            NameKind::Service => &[],
        }
    }
}

const SUBDOMAIN_MAX: usize = 253;
const LABEL_MAX: usize = 63;
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
characters or '-', and must start and end with an alphanumeric character";
const DNS1035_RULE: &str = "a DNS-1035 label must consist of lower case alphanumeric \
characters or '-', start with an alphabetic character, and end with an alphanumeric character";

/// kubectl's words for an empty name.
pub const EMPTY_NAME: &str = "resource name may not be empty";

/// Why `value` is not a DNS-1123 subdomain (the rule for KubeVirt's objects), if it is not.
pub fn subdomain_problem(value: &str) -> Option<String> {
    if value.len() > SUBDOMAIN_MAX {
        return Some(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    (!virt_reconciler::names::is_dns1123_subdomain(value)).then(|| SUBDOMAIN_RULE.to_string())
}

/// Why `value` is not a DNS-1123 label (the rule for namespaces), if it is not.
pub fn label_problem(value: &str) -> Option<String> {
    if value.len() > LABEL_MAX {
        return Some(format!("must be no more than {LABEL_MAX} characters"));
    }
    (!is_label(value)).then(|| LABEL_RULE.to_string())
}

/// Why `value` is not a DNS-1035 label (the rule for Services), if it is not.
pub fn dns1035_problem(value: &str) -> Option<String> {
    if value.len() > LABEL_MAX {
        return Some(format!("must be no more than {LABEL_MAX} characters"));
    }
    let starts_alpha = value.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    (!(starts_alpha && is_label(value))).then(|| DNS1035_RULE.to_string())
}

/// The name of a `kind` as typed, with an optional `vm/`-style type prefix, checked.
pub fn resource_name(kind: NameKind, typed: &str) -> anyhow::Result<String> {
    let name = strip_type_prefix(kind, typed);
    if name.is_empty() {
        return Err(anyhow::anyhow!(EMPTY_NAME));
    }
    let problem = match kind {
        NameKind::Service => dns1035_problem(name),
        _ => subdomain_problem(name),
    };
    match problem {
        Some(why) => Err(anyhow::anyhow!(
            "invalid {} name {typed:?}: {why}",
            kind.api_kind()
        )),
        None => Ok(name.to_string()),
    }
}

/// The namespace, checked: it goes into every URL.
pub fn check_namespace(namespace: &str) -> anyhow::Result<()> {
    match label_problem(namespace) {
        Some(why) => Err(anyhow::anyhow!("invalid namespace {namespace:?}: {why}")),
        None => Ok(()),
    }
}

fn strip_type_prefix(kind: NameKind, typed: &str) -> &str {
    match typed.split_once('/') {
        Some((word, rest))
            if kind
                .prefixes()
                .contains(&word.to_ascii_lowercase().as_str()) =>
        {
            rest
        }
        _ => typed,
    }
}

/// One URL path segment: everything but RFC 3986's unreserved characters percent-encoded.
pub fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in [
            "a",
            "vm-cirros",
            "a.b",
            "0abc",
            "x1.y-2.z",
            &"a".repeat(253),
        ] {
            assert_eq!(subdomain_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/b",
            "vm-cirros/start?",
            "vm-cirros?x",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "ä",
            "a b",
            "a%2Fb",
        ] {
            assert_eq!(subdomain_problem(bad), Some(SUBDOMAIN_RULE.into()), "{bad}");
        }
        assert_eq!(
            subdomain_problem(&"a".repeat(254)),
            Some("must be no more than 253 characters".into())
        );
    }

    #[test]
    fn labels() {
        assert_eq!(label_problem("default"), None);
        assert_eq!(label_problem("kube-system"), None);
        assert_eq!(label_problem("a.b"), Some(LABEL_RULE.into()));
        assert_eq!(label_problem("a/b"), Some(LABEL_RULE.into()));
        assert!(label_problem(&"a".repeat(64)).is_some());
        assert_eq!(dns1035_problem("svc-1"), None);
        assert_eq!(dns1035_problem("1svc"), Some(DNS1035_RULE.into()));
        assert_eq!(dns1035_problem("a.b"), Some(DNS1035_RULE.into()));
    }

    #[test]
    fn names_with_and_without_type_prefixes() {
        let vm = NameKind::VirtualMachine;
        assert_eq!(resource_name(vm, "vm-cirros").unwrap(), "vm-cirros");
        assert_eq!(resource_name(vm, "vm/vm-cirros").unwrap(), "vm-cirros");
        assert_eq!(resource_name(vm, "VirtualMachines/a").unwrap(), "a");
        let vmi = NameKind::VirtualMachineInstance;
        assert_eq!(resource_name(vmi, "vmi/a").unwrap(), "a");
        assert_eq!(
            resource_name(vm, "a/b").unwrap_err().to_string(),
            format!("invalid VirtualMachine name \"a/b\": {SUBDOMAIN_RULE}")
        );
        assert_eq!(
            resource_name(vm, "vmi/a").unwrap_err().to_string(),
            format!("invalid VirtualMachine name \"vmi/a\": {SUBDOMAIN_RULE}")
        );
        assert_eq!(resource_name(vm, "").unwrap_err().to_string(), EMPTY_NAME);
        assert_eq!(
            resource_name(vm, "vm/").unwrap_err().to_string(),
            EMPTY_NAME
        );
        assert_eq!(
            resource_name(NameKind::Service, "1svc")
                .unwrap_err()
                .to_string(),
            format!("invalid Service name \"1svc\": {DNS1035_RULE}")
        );
    }

    #[test]
    fn path_segments() {
        assert_eq!(path_segment("vm-cirros.x_y~z"), "vm-cirros.x_y~z");
        assert_eq!(path_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(path_segment("ä %"), "%C3%A4%20%25");
    }
}
