//! Schemas of the built-in types (from k8s-openapi), and the OpenAPI v3 documents kubectl reads
//! for `explain`, for server-side field validation support, and for apply's patch metadata.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use k8s_openapi::api::{
    admissionregistration, apps, authorization, coordination, core, events, policy, rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};

pub struct BuiltinSchemas {
    pub components: Map<String, Value>,
    by_kind: Vec<(String, String, String)>,
}

const PREFIX: &str = "#/components/schemas/";

/// Patch metadata kube's Go types declare, which k8s-openapi's schemas leave out:
/// (schema, property, patch strategy, merge key).
const PATCH_EXTENSIONS: &[(&str, &str, &str, &str)] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        "name",
    ),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        "topologyKey",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        "containerPort",
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        "devicePath",
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        "",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        "",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        "uid",
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
];

const OPAQUE: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
];

struct Collector {
    generator: schemars::SchemaGenerator,
    by_kind: Vec<(String, String, String)>,
}

impl Collector {
    fn add<T: JsonSchema>(&mut self, group: &str, version: &str, kind: &str) {
        self.generator.subschema_for::<T>();
        self.by_kind.push((
            group.into(),
            kind.into(),
            format!("{}|{version}", T::schema_name()),
        ));
    }
}

pub fn builtin_schemas() -> &'static BuiltinSchemas {
    static SCHEMAS: OnceLock<BuiltinSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut c = Collector {
            generator: schemars::generate::SchemaSettings::openapi3().into_generator(),
            by_kind: Vec::new(),
        };
        c.add::<core::v1::Namespace>("", "v1", "Namespace");
        c.add::<core::v1::Pod>("", "v1", "Pod");
        c.add::<core::v1::Service>("", "v1", "Service");
        c.add::<core::v1::Node>("", "v1", "Node");
        c.add::<core::v1::ConfigMap>("", "v1", "ConfigMap");
        c.add::<core::v1::Secret>("", "v1", "Secret");
        c.add::<core::v1::ServiceAccount>("", "v1", "ServiceAccount");
        c.add::<core::v1::Event>("", "v1", "Event");
        c.add::<apps::v1::Deployment>("apps", "v1", "Deployment");
        c.add::<apps::v1::DaemonSet>("apps", "v1", "DaemonSet");
        c.add::<coordination::v1::Lease>("coordination.k8s.io", "v1", "Lease");
        c.add::<policy::v1::PodDisruptionBudget>("policy", "v1", "PodDisruptionBudget");
        c.add::<events::v1::Event>("events.k8s.io", "v1", "Event");
        c.add::<rbac::v1::Role>("rbac.authorization.k8s.io", "v1", "Role");
        c.add::<rbac::v1::ClusterRole>("rbac.authorization.k8s.io", "v1", "ClusterRole");
        c.add::<rbac::v1::RoleBinding>("rbac.authorization.k8s.io", "v1", "RoleBinding");
        c.add::<rbac::v1::ClusterRoleBinding>(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
        );
        c.add::<apiext::CustomResourceDefinition>(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        );
        c.add::<authorization::v1::SubjectAccessReview>(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
        );
        c.add::<authorization::v1::SelfSubjectAccessReview>(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
        );
        c.add::<apireg::APIService>("apiregistration.k8s.io", "v1", "APIService");
        c.add::<admissionregistration::v1::MutatingWebhookConfiguration>(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
        );
        c.add::<admissionregistration::v1::ValidatingWebhookConfiguration>(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        );
        let mut components = c.generator.take_definitions(true);
        let mut by_kind = Vec::new();
        for (group, kind, tagged) in c.by_kind {
            let (name, version) = tagged.split_once('|').expect("tagged above");
            if let Some(s) = components.get_mut(name) {
                s["x-kubernetes-group-version-kind"] =
                    json!([{"group": group, "version": version, "kind": kind}]);
            }
            by_kind.push((group, kind, name.to_string()));
        }
        // Opaque types hold arbitrary JSON: nothing below them is pruned.
        for name in OPAQUE {
            if let Some(m) = components.get_mut(*name).and_then(Value::as_object_mut) {
                m.remove("type");
                m.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            }
        }
        for (schema, prop, strategy, key) in PATCH_EXTENSIONS {
            if let Some(p) = components
                .get_mut(*schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(*prop))
                .and_then(Value::as_object_mut)
            {
                p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                if !key.is_empty() {
                    p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                }
            }
        }
        BuiltinSchemas {
            components,
            by_kind,
        }
    })
}

impl BuiltinSchemas {
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        let name = reference
            .strip_prefix(PREFIX)
            .or_else(|| reference.strip_prefix("#/definitions/"))
            .or_else(|| reference.strip_prefix("#/$defs/"))?;
        self.components.get(name)
    }

    pub fn object_meta(&self) -> Option<&Value> {
        self.components
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    }

    fn name_for_kind(&self, group: &str, kind: &str) -> Option<&str> {
        self.by_kind
            .iter()
            .find(|(g, k, _)| g == group && k == kind)
            .map(|(_, _, n)| n.as_str())
    }

    /// The schema of a built-in kind, by its storage group.
    pub fn for_kind(&self, group: &str, kind: &str) -> Option<&Value> {
        self.components.get(self.name_for_kind(group, kind)?)
    }
}

fn decode_as<T: DeserializeOwned>(obj: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(obj.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks that a built-in object decodes into its type (wrong JSON types are 400s, as in kube).
pub fn check_builtin_types(group: &str, kind: &str, obj: &Value) -> ApiResult<()> {
    match builtin_type_error(group, kind, obj) {
        None => Ok(()),
        Some(e) => Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))),
    }
}

/// Why a built-in object does not decode into its type, if it does not (and the type is one
/// whose fields are checked).
pub fn builtin_type_error(group: &str, kind: &str, obj: &Value) -> Option<String> {
    let decoded = match (group, kind) {
        ("", "Namespace") => decode_as::<core::v1::Namespace>(obj),
        ("", "Pod") => decode_as::<core::v1::Pod>(obj),
        ("", "Service") => decode_as::<core::v1::Service>(obj),
        ("", "Node") => decode_as::<core::v1::Node>(obj),
        ("", "ConfigMap") => decode_as::<core::v1::ConfigMap>(obj),
        ("", "Secret") => decode_as::<core::v1::Secret>(obj),
        ("", "ServiceAccount") => decode_as::<core::v1::ServiceAccount>(obj),
        ("", "Event") => decode_as::<core::v1::Event>(obj),
        ("apps", "Deployment") => decode_as::<apps::v1::Deployment>(obj),
        ("apps", "DaemonSet") => decode_as::<apps::v1::DaemonSet>(obj),
        ("coordination.k8s.io", "Lease") => decode_as::<coordination::v1::Lease>(obj),
        ("policy", "PodDisruptionBudget") => decode_as::<policy::v1::PodDisruptionBudget>(obj),
        ("policy", "Eviction") => decode_as::<policy::v1::Eviction>(obj),
        ("events.k8s.io", "Event") => decode_as::<events::v1::Event>(obj),
        ("rbac.authorization.k8s.io", "Role") => decode_as::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => decode_as::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => decode_as::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            decode_as::<rbac::v1::ClusterRoleBinding>(obj)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            decode_as::<apiext::CustomResourceDefinition>(obj)
        }
        ("apiregistration.k8s.io", "APIService") => decode_as::<apireg::APIService>(obj),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            decode_as::<admissionregistration::v1::MutatingWebhookConfiguration>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            decode_as::<admissionregistration::v1::ValidatingWebhookConfiguration>(obj)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            decode_as::<authorization::v1::SubjectAccessReview>(obj)
        }
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            decode_as::<authorization::v1::SelfSubjectAccessReview>(obj)
        }
        _ => Ok(()),
    };
    decoded.err()
}

/// The name kube gives a custom resource's schema: reversed group, version, kind.
fn crd_schema_name(rt: &ResourceType) -> String {
    let mut parts: Vec<&str> = rt.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), rt.version, rt.kind)
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(name) = x.as_str().and_then(|r| r.strip_prefix(PREFIX))
                {
                    out.insert(name.to_string());
                }
                collect_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid value: All",
        ),
        param(
            "fieldManager",
            "The name of the actor or entity that is making these changes.",
        ),
        param(
            "fieldValidation",
            "How the server handles unknown or duplicate fields: Ignore, Warn or Strict.",
        ),
    ];
    if patch {
        p.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    p
}

fn op(action: &str, rt: &ResourceType, schema_ref: &str, params: Vec<Value>) -> Value {
    let mut o = json!({
        "operationId": format!("{action}{}", rt.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    o
}

/// The OpenAPI v3 document of one group/version.
pub fn group_version_document(types: &[std::sync::Arc<ResourceType>]) -> Value {
    let builtin = builtin_schemas();
    let mut schemas = Map::new();
    let mut paths = Map::new();
    let mut wanted = BTreeSet::new();
    for rt in types {
        let schema_name = if rt.is_custom() {
            let name = crd_schema_name(rt);
            let mut s = rt
                .crd_schema
                .as_deref()
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            if let Some(props) = s
                .as_object_mut()
                .map(|m| m.entry("properties").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            {
                props.insert(
                    "apiVersion".into(),
                    json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
                );
                props.insert(
                    "kind".into(),
                    json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
                );
                props.insert(
                    "metadata".into(),
                    json!({"allOf": [{"$ref": format!("{PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}], "description": "Standard object's metadata."}),
                );
            }
            s["x-kubernetes-group-version-kind"] =
                json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
            wanted.insert("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_string());
            schemas.insert(name.clone(), s);
            name
        } else {
            match builtin.name_for_kind(&rt.group, &rt.kind) {
                Some(n) => {
                    wanted.insert(n.to_string());
                    n.to_string()
                }
                None => continue,
            }
        };
        let schema_ref = format!("{PREFIX}{schema_name}");
        let prefix = if rt.group.is_empty() {
            format!("/api/{}", rt.version)
        } else {
            format!("/apis/{}/{}", rt.group, rt.version)
        };
        let collection = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        if rt.strategy == crate::registry::StrategyId::AccessReview {
            // Create is the only verb of a review.
            paths.insert(
                collection,
                json!({"post": op("post", rt, &schema_ref, write_params(false))}),
            );
            continue;
        }
        paths.insert(
            collection.clone(),
            json!({
                "get": op("list", rt, &schema_ref, vec![]),
                "post": op("post", rt, &schema_ref, write_params(false)),
                "delete": op("deletecollection", rt, &schema_ref, vec![]),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", rt, &schema_ref, vec![]),
                "put": op("put", rt, &schema_ref, write_params(false)),
                "patch": op("patch", rt, &schema_ref, write_params(true)),
                "delete": op("delete", rt, &schema_ref, vec![]),
            }),
        );
        if rt.status_subresource {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({
                    "get": op("get", rt, &schema_ref, vec![]),
                    "put": op("put", rt, &schema_ref, write_params(false)),
                    "patch": op("patch", rt, &schema_ref, write_params(true)),
                }),
            );
        }
    }
    // Add every built-in schema that the wanted ones refer to, transitively.
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = wanted.into_iter().collect();
    for s in schemas.values() {
        let mut refs = BTreeSet::new();
        collect_refs(s, &mut refs);
        todo.extend(refs);
    }
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || schemas.contains_key(&name) {
            continue;
        }
        if let Some(s) = builtin.components.get(&name) {
            let mut refs = BTreeSet::new();
            collect_refs(s, &mut refs);
            todo.extend(refs);
            schemas.insert(name, s.clone());
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A stable hash of a document, for the `?hash=` that lets kubectl cache it.
pub fn document_hash(doc: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_carry_gvk_and_patch_keys() {
        let s = builtin_schemas();
        let pod = s.for_kind("", "Pod").expect("pod schema");
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let spec = &s.components["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert!(s.object_meta().is_some());
    }

    #[test]
    fn wrong_types_in_builtins_are_bad_requests() {
        let bad =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":1}});
        let e = check_builtin_types("", "ConfigMap", &bad).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .starts_with("ConfigMap in version \"v1\" cannot be handled")
        );
    }
}
