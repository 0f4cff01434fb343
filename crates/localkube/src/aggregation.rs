//! The aggregation layer's rules (`apiregistration.k8s.io/v1` APIService), as pure decisions:
//! the name check, which APIService claims a request path, where its Service is reached, the
//! headers passed to the backend, and the `Available` condition a discovery probe yields.
//! The IO (TLS client, proxying, the probe loop) is in `aggregation_proxy`.

use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::state::Core;
use crate::status::{ApiError, ApiResult, Cause};
use crate::strategy::Strategy;

/// APIServices: named `<version>.<group>`; status is the probe's.
pub struct ApiServices;

impl Strategy for ApiServices {
    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let causes = check_api_service(obj);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
        }
    }

    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// kube-apiserver's checks of an APIService beyond its schema (the ones clients meet).
pub fn check_api_service(obj: &Value) -> Vec<Cause> {
    let name = str_at(obj, "/metadata/name");
    let (group, version) = (str_at(obj, "/spec/group"), str_at(obj, "/spec/version"));
    let mut causes = Vec::new();
    let invalid = |field: &str, value: &str, why: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {why}"),
        field: field.into(),
    };
    if name != format!("{version}.{group}") {
        causes.push(invalid(
            "metadata.name",
            name,
            &format!("must be `spec.version+\".\"+spec.group`: \"{version}.{group}\""),
        ));
    }
    if version.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.version".into(),
        });
    }
    let service = obj.pointer("/spec/service").filter(|s| !s.is_null());
    if let Some(svc) = service {
        for key in ["namespace", "name"] {
            if str_at(svc, &format!("/{key}")).is_empty() {
                causes.push(Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: format!("spec.service.{key}"),
                });
            }
        }
        let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
        if !(1..=65535).contains(&port) {
            causes.push(invalid(
                "spec.service.port",
                &port.to_string(),
                "port is not valid: must be between 1 and 65535, inclusive",
            ));
        }
        let skip = obj
            .pointer("/spec/insecureSkipTLSVerify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let ca = str_at(obj, "/spec/caBundle");
        if skip && !ca.is_empty() {
            causes.push(invalid(
                "spec.insecureSkipTLSVerify",
                "true",
                "may not be true if caBundle is present",
            ));
        }
    }
    causes
}

/// The APIService name that would claim `/apis/<group>/<version>/...`.
pub fn claiming_name(segments: &[&str]) -> Option<String> {
    match segments {
        ["apis", group, version, ..] if !group.is_empty() && !version.is_empty() => {
            Some(format!("{version}.{group}"))
        }
        _ => None,
    }
}

/// Where an APIService's backend is: its Service and port, and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub port: u16,
    /// PEM (or DER) CA bundle from `spec.caBundle`, decoded from base64.
    pub ca_bundle: Vec<u8>,
    pub insecure: bool,
}

impl Backend {
    /// The name the backend's certificate must carry, as kube-apiserver checks it.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }
}

/// The backend of an APIService, or None for a local one (served by this server).
pub fn backend_of(api_service: &Value) -> Option<Backend> {
    use base64::Engine;
    let svc = api_service
        .pointer("/spec/service")
        .filter(|s| s.is_object())?;
    let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
    Some(Backend {
        namespace: str_at(svc, "/namespace").to_string(),
        service: str_at(svc, "/name").to_string(),
        port: u16::try_from(port).unwrap_or(443),
        ca_bundle: base64::engine::general_purpose::STANDARD
            .decode(str_at(api_service, "/spec/caBundle"))
            .unwrap_or_default(),
        insecure: api_service
            .pointer("/spec/insecureSkipTLSVerify")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Why a backend cannot be reached, as the `Available` condition's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub reason: &'static str,
    pub message: String,
}

/// The host that an APIService's Service leads to: only `ExternalName` Services do here,
/// since ClusterIPs are not routable from localkube.
pub fn host_of(backend: &Backend, service: Option<&Value>) -> Result<String, Unreachable> {
    let Some(service) = service else {
        return Err(Unreachable {
            reason: "ServiceNotFound",
            message: format!(
                "service/{} in \"{}\" is not present",
                backend.service, backend.namespace
            ),
        });
    };
    let ty = str_at(service, "/spec/type");
    let external = str_at(service, "/spec/externalName");
    if ty == "ExternalName" && !external.is_empty() {
        return Ok(external.to_string());
    }
    Err(Unreachable {
        reason: "EndpointsNotFound",
        message: format!(
            "service/{} in \"{}\" is of type {}: localkube cannot reach Service IPs or endpoints; use a Service of type ExternalName (e.g. externalName: localhost)",
            backend.service,
            backend.namespace,
            if ty.is_empty() { "ClusterIP" } else { ty }
        ),
    })
}

/// Request headers not passed to a backend: our credentials, what the new connection sets,
/// and identity headers a client could forge (the aggregator sets its own).
pub fn passed_to_backend(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !(matches!(
        name.as_str(),
        "authorization" | "host" | "transfer-encoding" | "proxy-authorization" | "keep-alive"
    ) || name.starts_with("x-remote-")
        || name.starts_with("impersonate-"))
}

/// The `Available` condition after a probe; `result` is Err((reason, message)) on failure.
pub fn available_condition(result: Result<(), Unreachable>, now: &str) -> Value {
    let (status, reason, message) = match result {
        Ok(()) => ("True", "Passed", "all checks passed".to_string()),
        Err(u) => ("False", u.reason, u.message),
    };
    json!({
        "type": "Available",
        "status": status,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

/// The Available condition for an APIService served by this server.
pub fn local_condition(now: &str) -> Value {
    json!({
        "type": "Available",
        "status": "True",
        "lastTransitionTime": now,
        "reason": "Local",
        "message": "Local APIServices are always available",
    })
}

/// The status an APIService gets, keeping the transition time when nothing changed.
/// None: the stored status already says this.
pub fn next_status(stored: &Value, condition: Value) -> Option<Value> {
    let old = stored
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    if let Some(old) = old {
        let same = ["status", "reason", "message"]
            .iter()
            .all(|k| old.get(*k) == condition.get(*k));
        if same {
            return None;
        }
    }
    Some(json!({"conditions": [condition]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_service(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn names_must_be_version_dot_group() {
        let table = [
            ("v1.example.com", "example.com", "v1", true),
            ("v1beta1.metrics.k8s.io", "metrics.k8s.io", "v1beta1", true),
            ("example.com", "example.com", "v1", false),
            ("v2.example.com", "example.com", "v1", false),
        ];
        for (name, group, version, ok) in table {
            let causes = check_api_service(&api_service(
                name,
                json!({"group": group, "version": version}),
            ));
            assert_eq!(causes.is_empty(), ok, "{name}: {causes:?}");
        }
    }

    #[test]
    fn service_refs_need_a_name_and_a_valid_port() {
        let bad = api_service(
            "v1.g.io",
            json!({"group": "g.io", "version": "v1", "service": {"namespace": "ns", "port": 0}}),
        );
        let fields: Vec<String> = check_api_service(&bad)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.service.name", "spec.service.port"]);
    }

    #[test]
    fn paths_under_a_group_version_are_claimed_by_its_name() {
        assert_eq!(
            claiming_name(&["apis", "g.io", "v1", "things"]).as_deref(),
            Some("v1.g.io")
        );
        assert_eq!(
            claiming_name(&["apis", "g.io", "v1"]).as_deref(),
            Some("v1.g.io")
        );
        assert_eq!(claiming_name(&["apis", "g.io"]), None);
        assert_eq!(claiming_name(&["api", "v1", "pods"]), None);
    }

    #[test]
    fn backends_default_to_port_443_and_local_ones_have_none() {
        let with = api_service(
            "v1.g.io",
            json!({"group": "g.io", "version": "v1", "service": {"namespace": "ns", "name": "s"}, "caBundle": "YWJj"}),
        );
        let b = backend_of(&with).unwrap();
        assert_eq!(b.port, 443);
        assert_eq!(b.ca_bundle, b"abc");
        assert_eq!(b.server_name(), "s.ns.svc");
        assert!(backend_of(&api_service("v1.g.io", json!({"group": "g.io"}))).is_none());
    }

    #[test]
    fn only_external_name_services_are_reachable() {
        let b = backend_of(&api_service(
            "v1.g.io",
            json!({"service": {"namespace": "ns", "name": "s", "port": 8443}}),
        ))
        .unwrap();
        assert_eq!(host_of(&b, None).unwrap_err().reason, "ServiceNotFound");
        let ext = json!({"spec": {"type": "ExternalName", "externalName": "localhost"}});
        assert_eq!(host_of(&b, Some(&ext)).unwrap(), "localhost");
        let cluster_ip = json!({"spec": {"type": "ClusterIP"}});
        let e = host_of(&b, Some(&cluster_ip)).unwrap_err();
        assert_eq!(e.reason, "EndpointsNotFound");
        assert!(e.message.contains("ExternalName"), "{}", e.message);
    }

    #[test]
    fn identity_headers_from_clients_are_dropped() {
        for (name, passed) in [
            ("X-Remote-User", false),
            ("x-remote-group", false),
            ("X-Remote-Extra-Scopes", false),
            ("Impersonate-User", false),
            ("authorization", false),
            ("accept", true),
            ("upgrade", true),
            ("content-type", true),
        ] {
            assert_eq!(passed_to_backend(name), passed, "{name}");
        }
    }

    #[test]
    fn status_changes_only_when_the_condition_does() {
        let ok = available_condition(Ok(()), "t1");
        let stored = json!({"status": {"conditions": [available_condition(Ok(()), "t0")]}});
        assert_eq!(next_status(&stored, ok.clone()), None);
        let failed = available_condition(
            Err(Unreachable {
                reason: "FailedDiscoveryCheck",
                message: "no".into(),
            }),
            "t1",
        );
        let next = next_status(&stored, failed).unwrap();
        assert_eq!(next["conditions"][0]["status"], "False");
        assert_eq!(next["conditions"][0]["reason"], "FailedDiscoveryCheck");
        assert!(next_status(&json!({}), ok).is_some());
    }
}
