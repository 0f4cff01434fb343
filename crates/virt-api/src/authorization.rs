//! Which requests virt-api reviews, and how: a request under the group's namespaced paths
//! becomes a SubjectAccessReview of its verb on `<resource>/<subresource>` (as KubeVirt's
//! virt-api builds it, so KubeVirt's RBAC roles apply unchanged); discovery, version, health
//! and the admission webhooks are open. The decision rules are pure; [`review`] asks the API
//! server.

use http::Method;
use kube::Client;
use serde_json::{Value, json};

use crate::discovery::{GROUP, VERSIONS};
use crate::front_proxy::Identity;

/// `authorization.k8s.io/v1` ResourceAttributes of a reviewed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// What a request needs before it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone may call it.
    Open,
    /// Allowed only if the API server's authorizer allows these attributes.
    Review(ResourceAttributes),
    /// Nothing is served here (404).
    Unknown,
}

/// The access rule of `method` on `path`.
pub fn access(method: &Method, path: &str) -> Access {
    if is_open(path) {
        return Access::Open;
    }
    // "", "apis", group, version, "namespaces", ns, resource, name, subresource...
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 9
        || !parts[0].is_empty()
        || parts[1] != "apis"
        || parts[2] != GROUP
        || !VERSIONS.contains(&parts[3])
        || parts[4] != "namespaces"
        || parts[5].is_empty()
        || parts[7].is_empty()
    {
        return Access::Unknown;
    }
    let resource = parts[6];
    if resource != "virtualmachines" && resource != "virtualmachineinstances" {
        return Access::Unknown;
    }
    // `portforward/<port>/<protocol>` is reviewed as `portforward`.
    let subresource = if parts[8] == "portforward" {
        "portforward".to_string()
    } else {
        parts[8..].join("/")
    };
    let Some(verb) = rbac_verb(method) else {
        return Access::Unknown;
    };
    Access::Review(ResourceAttributes {
        namespace: parts[5].into(),
        verb: verb.into(),
        group: GROUP.into(),
        version: parts[3].into(),
        resource: resource.into(),
        subresource,
        name: parts[7].into(),
    })
}

/// Paths that need no identity: discovery, version and health of every version, and the
/// admission webhooks (the API server calls those, with no front-proxy certificate).
fn is_open(path: &str) -> bool {
    if matches!(path, "/" | "/apis" | "/healthz" | "/version") || path == format!("/apis/{GROUP}") {
        return true;
    }
    if virt_reconciler::admission::Webhook::from_path(path).is_some() {
        return true;
    }
    VERSIONS.iter().any(|v| {
        let base = format!("/apis/{GROUP}/{v}");
        path == base || path == format!("{base}/version") || path == format!("{base}/healthz")
    })
}

/// The RBAC verb of a request on a named object.
fn rbac_verb(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::POST => "create",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => return None,
    })
}

/// The SubjectAccessReview virt-api sends for `who` doing `what`.
pub fn access_review(who: &Identity, what: &ResourceAttributes) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who.user,
            "groups": who.groups,
            "extra": who.extra,
            "resourceAttributes": {
                "namespace": what.namespace,
                "verb": what.verb,
                "group": what.group,
                "version": what.version,
                "resource": what.resource,
                "subresource": what.subresource,
                "name": what.name,
            },
        },
    })
}

/// The message of a denial, in the API server's words for the same attributes, so users read
/// the same sentence whichever server refused them; the authorizer's reason follows.
pub fn forbidden_message(who: &Identity, what: &ResourceAttributes, reason: &str) -> String {
    let mut m = format!(
        "{}.{} {:?} is forbidden: User {:?} cannot {} resource \"{}/{}\" in API group {:?} in the namespace {:?}",
        what.resource,
        what.group,
        what.name,
        who.user,
        what.verb,
        what.resource,
        what.subresource,
        what.group,
        what.namespace
    );
    if !reason.is_empty() {
        m.push_str(": ");
        m.push_str(reason);
    }
    m
}

/// The API server's decision: allowed, or denied with its reason.
pub async fn review(
    client: &Client,
    who: &Identity,
    what: &ResourceAttributes,
) -> Result<Result<(), String>, kube::Error> {
    let body = serde_json::to_vec(&access_review(who, what)).map_err(kube::Error::SerdeError)?;
    let request = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    let answer: Value = client.request(request).await?;
    let status = &answer["status"];
    if status["allowed"].as_bool() == Some(true) {
        Ok(Ok(()))
    } else {
        Ok(Err(status["reason"].as_str().unwrap_or("").to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewed(method: Method, path: &str) -> ResourceAttributes {
        match access(&method, path) {
            Access::Review(a) => a,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn open_paths() {
        for path in [
            "/",
            "/apis",
            "/healthz",
            "/version",
            "/apis/subresources.kubevirt.io",
            "/apis/subresources.kubevirt.io/v1",
            "/apis/subresources.kubevirt.io/v1alpha3/version",
            "/apis/subresources.kubevirt.io/v1/healthz",
            "/virtualmachines-mutate",
            "/virtualmachineinstances-validate-update",
        ] {
            assert_eq!(access(&Method::GET, path), Access::Open, "{path}");
        }
    }

    #[test]
    fn the_lifecycle_verbs_are_updates_of_their_subresource() {
        let a = reviewed(
            Method::PUT,
            "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/start",
        );
        assert_eq!(
            a,
            ResourceAttributes {
                namespace: "default".into(),
                verb: "update".into(),
                group: "subresources.kubevirt.io".into(),
                version: "v1".into(),
                resource: "virtualmachines".into(),
                subresource: "start".into(),
                name: "vm-cirros".into(),
            }
        );
    }

    #[test]
    fn streams_are_gets_and_portforward_drops_its_port() {
        let a = reviewed(
            Method::GET,
            "/apis/subresources.kubevirt.io/v1alpha3/namespaces/ns/virtualmachineinstances/v/console",
        );
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str()),
            ("get", "console")
        );
        let a = reviewed(
            Method::GET,
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/v/portforward/22/tcp",
        );
        assert_eq!(a.subresource, "portforward");
    }

    #[test]
    fn unknown_paths_are_not_served() {
        for (method, path) in [
            (
                Method::PUT,
                "/apis/subresources.kubevirt.io/v1/namespaces/ns/pods/p/start",
            ),
            (
                Method::PUT,
                "/apis/subresources.kubevirt.io/v2/namespaces/ns/virtualmachines/v/start",
            ),
            (
                Method::PUT,
                "/apis/other.io/v1/namespaces/ns/virtualmachines/v/start",
            ),
            (
                Method::PUT,
                "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/v",
            ),
            (
                Method::PUT,
                "/apis/subresources.kubevirt.io/v1/namespaces//virtualmachines/v/start",
            ),
            (
                Method::OPTIONS,
                "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/v/start",
            ),
            (Method::GET, "/metrics"),
        ] {
            assert_eq!(access(&method, path), Access::Unknown, "{method} {path}");
        }
    }

    #[test]
    fn the_review_and_the_denial_name_the_subresource() {
        let who = Identity {
            user: "viewer".into(),
            groups: vec!["system:authenticated".into()],
            ..Identity::default()
        };
        let what = reviewed(
            Method::PUT,
            "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/vm1/start",
        );
        let sar = access_review(&who, &what);
        assert_eq!(sar["spec"]["resourceAttributes"]["subresource"], "start");
        assert_eq!(sar["spec"]["groups"][0], "system:authenticated");
        assert_eq!(
            forbidden_message(&who, &what, ""),
            "virtualmachines.subresources.kubevirt.io \"vm1\" is forbidden: User \"viewer\" cannot \
             update resource \"virtualmachines/start\" in API group \"subresources.kubevirt.io\" in \
             the namespace \"ns\""
        );
        assert!(forbidden_message(&who, &what, "no rule").ends_with(": no rule"));
    }
}
