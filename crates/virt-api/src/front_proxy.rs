//! Who is asking, as an aggregated API server learns it: the API server's front proxy presents
//! a client certificate signed by the request-header CA, and names the user in headers. The
//! settings come from `kube-system/extension-apiserver-authentication`, which every API server
//! publishes. Pure: the TLS layer verifies the certificate chain and hands over its common name.

use std::collections::BTreeMap;

use http::HeaderMap;

/// The ConfigMap every API server publishes for the servers it aggregates.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

/// The front proxy's settings (the `requestheader-*` keys of the ConfigMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderAuth {
    /// PEM of the CA(s) that sign the front proxy's client certificate.
    pub client_ca_pem: String,
    /// Common names the certificate may carry; empty allows any the CA signed.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_header_prefixes: Vec<String>,
}

impl RequestHeaderAuth {
    /// The settings from the ConfigMap's data; an API server without a front proxy publishes
    /// no `requestheader-client-ca-file`, and then no request can be authenticated.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let ca = data
            .get("requestheader-client-ca-file")
            .filter(|ca| !ca.trim().is_empty())
            .ok_or_else(|| {
                format!(
                    "{CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} has no requestheader-client-ca-file: \
                     the API server is not configured to aggregate APIs (--requestheader-client-ca-file)"
                )
            })?;
        let list = |key: &str| -> Result<Vec<String>, String> {
            match data.get(key).map(|s| s.trim()) {
                None | Some("") => Ok(Vec::new()),
                Some(text) => serde_json::from_str(text).map_err(|e| {
                    format!("{CONFIG_MAP_NAME}: {key} is not a JSON list of strings: {e}")
                }),
            }
        };
        Ok(RequestHeaderAuth {
            client_ca_pem: ca.clone(),
            allowed_names: list("requestheader-allowed-names")?,
            username_headers: list("requestheader-username-headers")?,
            group_headers: list("requestheader-group-headers")?,
            extra_header_prefixes: list("requestheader-extra-headers-prefix")?,
        })
    }
}

/// The user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a request has no identity; answered 401 with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthenticated(pub String);

/// The identity of a request whose TLS client certificate (verified against the request-header
/// CA) has common name `peer_cn`, or `None` when the client sent no certificate.
pub fn identity(
    auth: &RequestHeaderAuth,
    peer_cn: Option<&str>,
    headers: &HeaderMap,
) -> Result<Identity, Unauthenticated> {
    let Some(cn) = peer_cn else {
        return Err(Unauthenticated("request is not authenticated".into()));
    };
    if !auth.allowed_names.is_empty() && !auth.allowed_names.iter().any(|n| n == cn) {
        return Err(Unauthenticated(format!(
            "client certificate common name {cn:?} is not one of requestheader-allowed-names {:?}",
            auth.allowed_names
        )));
    }
    let user = auth
        .username_headers
        .iter()
        .find_map(|h| {
            headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        })
        .ok_or_else(|| {
            Unauthenticated("a valid user header is required for authorization".into())
        })?;
    let groups = auth
        .group_headers
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()).iter())
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for prefix in &auth.extra_header_prefixes {
        for (name, value) in headers {
            // Header names are lower case here; prefixes are compared without case.
            let Some(key) = strip_prefix_ignore_case(name.as_str(), prefix) else {
                continue;
            };
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .to_lowercase();
            if let Ok(v) = value.to_str() {
                extra.entry(key).or_default().push(v.to_string());
            }
        }
    }
    Ok(Identity {
        user: user.to_string(),
        groups,
        extra,
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> RequestHeaderAuth {
        let data: BTreeMap<String, String> = [
            (
                "requestheader-client-ca-file",
                "-----BEGIN CERTIFICATE-----\n",
            ),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        RequestHeaderAuth::from_config_map_data(&data).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_config_map_lists_are_json() {
        let a = auth();
        assert_eq!(a.allowed_names, ["front-proxy-client"]);
        assert_eq!(a.extra_header_prefixes, ["X-Remote-Extra-"]);
    }

    #[test]
    fn a_config_map_without_the_request_header_ca_is_refused_with_the_flag_to_set() {
        let e = RequestHeaderAuth::from_config_map_data(&BTreeMap::new()).unwrap_err();
        assert!(e.contains("--requestheader-client-ca-file"), "{e}");
    }

    #[test]
    fn a_list_that_is_not_json_is_refused() {
        let mut data = BTreeMap::new();
        data.insert("requestheader-client-ca-file".into(), "pem".into());
        data.insert(
            "requestheader-allowed-names".into(),
            "front-proxy-client".into(),
        );
        let e = RequestHeaderAuth::from_config_map_data(&data).unwrap_err();
        assert!(e.contains("requestheader-allowed-names"), "{e}");
    }

    #[test]
    fn identity_table() {
        let a = auth();
        let user = ("X-Remote-User", "alice");
        // (case, certificate CN, headers, the user or a part of the refusal)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Vec<(&'a str, &'a str)>,
            Result<&'a str, &'a str>,
        );
        let cases: &[Case] = &[
            (
                "no certificate",
                None,
                vec![user],
                Err("request is not authenticated"),
            ),
            (
                "a name not allowed",
                Some("someone"),
                vec![user],
                Err("is not one of"),
            ),
            (
                "no user header",
                Some("front-proxy-client"),
                vec![],
                Err("a valid user header"),
            ),
            (
                "empty user header",
                Some("front-proxy-client"),
                vec![("X-Remote-User", "")],
                Err("a valid user header"),
            ),
            (
                "the front proxy",
                Some("front-proxy-client"),
                vec![user],
                Ok("alice"),
            ),
        ];
        for (name, cn, h, want) in cases {
            let got = identity(&a, *cn, &headers(h));
            match (got, want) {
                (Ok(id), Ok(u)) => assert_eq!(id.user, *u, "{name}"),
                (Err(Unauthenticated(m)), Err(part)) => assert!(m.contains(part), "{name}: {m}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn groups_are_every_value_and_extras_are_unescaped_lower_case_keys() {
        let id = identity(
            &auth(),
            Some("front-proxy-client"),
            &headers(&[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "devs"),
                ("X-Remote-Group", "system:authenticated"),
                ("X-Remote-Extra-Scopes", "a"),
                ("x-remote-extra-acme.com%2Fproject", "p1"),
            ]),
        )
        .unwrap();
        assert_eq!(id.groups, ["devs", "system:authenticated"]);
        assert_eq!(id.extra["scopes"], ["a"]);
        assert_eq!(id.extra["acme.com/project"], ["p1"]);
    }

    #[test]
    fn any_signed_name_is_allowed_when_no_names_are_listed() {
        let mut a = auth();
        a.allowed_names.clear();
        let id = identity(
            &a,
            Some("aggregator"),
            &headers(&[("X-Remote-User", "bob")]),
        )
        .unwrap();
        assert_eq!(id.user, "bob");
    }
}
