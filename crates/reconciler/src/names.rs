//! Object names: KubeVirt's VMs and VMIs (and most Kubernetes objects) are named by lowercase
//! RFC 1123 subdomains. A name that is not one can never exist, so callers refuse it before it
//! reaches a URL, where a `?` or `/` in it would address another object.

/// kube's message for a name that is not a lowercase RFC 1123 subdomain.
pub const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character (e.g. 'example.com', regex used for validation is \
     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// kube's message for a name longer than 253 bytes.
pub const TOO_LONG_MESSAGE: &str = "must be no more than 253 characters";

/// What is wrong with `name` as a lowercase RFC 1123 subdomain, in kube's words (empty when it
/// is valid).
pub fn dns1123_subdomain_problems(name: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push(TOO_LONG_MESSAGE);
    }
    if !name.split('.').all(is_dns1123_label_chars) {
        problems.push(DNS1123_SUBDOMAIN_MESSAGE);
    }
    problems
}

/// Whether `label` has the characters of a lowercase RFC 1123 label: lowercase alphanumerics
/// and '-', starting and ending alphanumeric (its length is not checked).
pub fn is_dns1123_label_chars(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Whether `name` can name a VM or VMI.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    dns1123_subdomain_problems(name).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["a", "vm-cirros", "a.b", "0", "a-0.b-1.c", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(ok), "{ok:?} should be valid");
        }
        for bad in [
            "",
            "A",
            "a/b",
            "vm-cirros?x",
            "vm-cirros/start?",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "é",
            "a b",
            "a%2Fb",
        ] {
            assert_eq!(
                dns1123_subdomain_problems(bad),
                vec![DNS1123_SUBDOMAIN_MESSAGE],
                "{bad:?}"
            );
        }
        assert_eq!(
            dns1123_subdomain_problems(&"a".repeat(254)),
            vec![TOO_LONG_MESSAGE]
        );
    }
}
