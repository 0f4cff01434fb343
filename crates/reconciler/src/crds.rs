//! The CustomResourceDefinitions of the KubeVirt types, generated from the Rust types.
//!
//! `v1` is served and stored; `v1alpha3` is served, deprecated and identical (no conversion).
//! `deploy/crds/` holds the committed output; `virt-controller crds` regenerates it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::types::{VirtualMachine, VirtualMachineInstance, VirtualMachineInstanceReplicaSet};

/// Schema of an object whose fields are kept as they are (`x-kubernetes-preserve-unknown-fields`).
pub fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The run strategies the API accepts.
pub const RUN_STRATEGIES: &[&str] = &[
    "Always",
    "Halted",
    "Manual",
    "RerunOnFailure",
    "Once",
    "WaitAsReceiver",
];

fn schema_mut<'a>(crd: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut cur = crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema")?;
    for p in path {
        cur = cur.get_mut("properties")?.get_mut(*p)?;
    }
    Some(cur)
}

/// Adds `v1alpha3` as a served, deprecated copy of `v1`.
fn add_v1alpha3(crd: &mut Value, kind: &str) {
    let mut alpha = crd["spec"]["versions"][0].clone();
    alpha["name"] = json!("v1alpha3");
    alpha["storage"] = json!(false);
    alpha["deprecated"] = json!(true);
    alpha["deprecationWarning"] = json!(format!(
        "kubevirt.io/v1alpha3 {kind} is deprecated; use kubevirt.io/v1"
    ));
    if let Some(versions) = crd["spec"]["versions"].as_array_mut() {
        versions.push(alpha);
    }
}

fn finish(
    crd: CustomResourceDefinition,
    kind: &str,
    edit: impl FnOnce(&mut Value),
) -> CustomResourceDefinition {
    let mut v = serde_json::to_value(&crd).expect("a CRD serializes");
    edit(&mut v);
    add_v1alpha3(&mut v, kind);
    serde_json::from_value(v).expect("an edited CRD deserializes")
}

pub fn virtual_machine() -> CustomResourceDefinition {
    finish(VirtualMachine::crd(), "VirtualMachine", |v| {
        if let Some(spec) = schema_mut(v, &["spec"]) {
            // Keep fields this toolkit does not model (dataVolumeTemplates, instancetype, ...).
            spec["x-kubernetes-preserve-unknown-fields"] = json!(true);
            // running and runStrategy are mutually exclusive: virt-api's webhook says so in
            // KubeVirt's words; where no webhook runs, this CEL rule (Kubernetes 1.25+) does.
            // No structural `not` rule: it would refuse first, with a message that names
            // neither field (Part A §3).
            spec["x-kubernetes-validations"] = json!([{
                "rule": "!(has(self.running) && has(self.runStrategy))",
                "message": "Running and RunStrategy are mutually exclusive"
            }]);
        }
        if let Some(rs) = schema_mut(v, &["spec", "runStrategy"]) {
            rs["enum"] = json!(RUN_STRATEGIES);
        }
        if let Some(status) = schema_mut(v, &["status"]) {
            status["x-kubernetes-preserve-unknown-fields"] = json!(true);
        }
    })
}

pub fn virtual_machine_instance() -> CustomResourceDefinition {
    finish(
        VirtualMachineInstance::crd(),
        "VirtualMachineInstance",
        |v| {
            // As in KubeVirt, the VMI has no status subresource: status sent on create is kept.
            if let Some(sub) = v
                .pointer_mut("/spec/versions/0/subresources")
                .and_then(Value::as_object_mut)
            {
                sub.remove("status");
            }
            // Any valid KubeVirt VMI applies unchanged: the typed fields are a client-side view.
            for part in ["spec", "status"] {
                if let Some(s) = schema_mut(v, &[part]) {
                    let description = s.get("description").cloned();
                    *s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
                    if let Some(d) = description {
                        s["description"] = d;
                    }
                }
            }
        },
    )
}

pub fn virtual_machine_instance_replica_set() -> CustomResourceDefinition {
    finish(
        VirtualMachineInstanceReplicaSet::crd(),
        "VirtualMachineInstanceReplicaSet",
        |v| {
            if let Some(spec) = schema_mut(v, &["spec"]) {
                spec["x-kubernetes-preserve-unknown-fields"] = json!(true);
            }
            if let Some(root) = v.pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties")
            {
                root["status"] =
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
            }
        },
    )
}

/// Every CRD, with the file name it is committed under in `deploy/crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("virtualmachines.kubevirt.io.yaml", virtual_machine()),
        (
            "virtualmachineinstances.kubevirt.io.yaml",
            virtual_machine_instance(),
        ),
        (
            "virtualmachineinstancereplicasets.kubevirt.io.yaml",
            virtual_machine_instance_replica_set(),
        ),
    ]
}

/// A CRD as the YAML committed in `deploy/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let header = "# Generated by `virt-controller crds --out deploy/crds` from the types in\n# crates/reconciler/src/types.rs. Do not edit by hand.\n";
    let body = serde_saphyr::to_string(crd).expect("a CRD serializes to YAML");
    format!("{header}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(crd: &CustomResourceDefinition) -> (Vec<String>, Vec<String>) {
        let n = &crd.spec.names;
        (
            n.short_names.clone().unwrap_or_default(),
            n.categories.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn virtual_machines_have_the_kubevirt_names_columns_and_versions() {
        let crd = virtual_machine();
        assert_eq!(
            names(&crd),
            (vec!["vm".into(), "vms".into()], vec!["all".into()])
        );
        let versions: Vec<(&str, bool, bool, Option<bool>)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage, v.deprecated))
            .collect();
        assert_eq!(
            versions,
            [
                ("v1", true, true, None),
                ("v1alpha3", true, false, Some(true))
            ]
        );
        let v1 = &crd.spec.versions[0];
        assert!(v1.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<&str> = v1
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Age", "Status", "Ready"]);
        let schema = serde_json::to_value(&v1.schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert!(
            spec.get("not").is_none(),
            "the webhook's message must reach users"
        );
        assert_eq!(
            spec["x-kubernetes-validations"][0]["message"],
            "Running and RunStrategy are mutually exclusive"
        );
        assert_eq!(
            spec["properties"]["template"]["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
            json!(true)
        );
    }

    #[test]
    fn instances_keep_status_on_create_and_replica_sets_exist() {
        let vmi = virtual_machine_instance();
        assert_eq!(names(&vmi).0, ["vmi", "vmis"]);
        assert!(
            vmi.spec.versions[0]
                .subresources
                .as_ref()
                .is_none_or(|s| s.status.is_none())
        );
        let rs = virtual_machine_instance_replica_set();
        assert_eq!(names(&rs).0, ["vmirs", "vmirss"]);
    }
}
