//! `virtctl expose TYPE NAME --name SVC`: a Service for a VMI, a VM or a VMI replica set
//! (Part B §3, plus `--dry-run` from Part A §7).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use serde_json::Value;
use virt_reconciler::kube_error;
use virt_reconciler::{
    VirtualMachine, VirtualMachineInstance, VirtualMachineInstanceReplicaSet,
    VirtualMachineInstanceSpec,
};

use crate::client::LazyConnection;
use crate::settings::{ExposeKind, ExposeSettings};

pub async fn run(connection: &LazyConnection, opts: &ExposeSettings) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let target = fetch(&conn.client, &conn.namespace, opts).await?;
    let service = build_service(opts, &conn.namespace, target)?;
    if opts.dry_run {
        let yaml = serde_saphyr::to_string(&service)
            .map_err(|e| anyhow!("cannot print the Service as YAML: {e}"))?;
        print!("{yaml}");
        if !yaml.ends_with('\n') {
            println!();
        }
        return Ok(());
    }
    let services: Api<Service> = Api::namespaced(conn.client.clone(), &conn.namespace);
    services
        .create(&PostParams::default(), &service)
        .await
        .map_err(|e| anyhow!("service creation failed: {}", kube_error::message(&e)))?;
    println!(
        "Service {} successfully created for {} {}",
        opts.service_name, opts.type_name, opts.name
    );
    Ok(())
}

/// What the Service is built from: its owner, selector and introspected ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub uid: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Option<Vec<ServicePort>>,
}

fn id_selector(name: &str) -> BTreeMap<String, String> {
    [(
        virt_reconciler::vmi::ID_LABEL.to_string(),
        virt_reconciler::vmi::id(name),
    )]
    .into()
}

async fn fetch(client: &kube::Client, ns: &str, opts: &ExposeSettings) -> anyhow::Result<Target> {
    let name = opts.name.as_str();
    match opts.kind {
        ExposeKind::Vmi => {
            let api: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
            let vmi = api.get(name).await.map_err(|e| {
                anyhow!(
                    "error fetching VirtualMachineInstance: {}",
                    kube_error::message(&e)
                )
            })?;
            Ok(Target {
                uid: vmi.metadata.uid.clone().unwrap_or_default(),
                selector: id_selector(name),
                ports: pod_network_ports(&vmi.spec),
            })
        }
        ExposeKind::Vm => {
            let api: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
            let vm = api.get(name).await.map_err(|e| {
                anyhow!("error fetching VirtualMachine: {}", kube_error::message(&e))
            })?;
            Ok(Target {
                uid: vm.metadata.uid.clone().unwrap_or_default(),
                selector: id_selector(name),
                ports: pod_network_ports(&vm.spec.template.spec),
            })
        }
        ExposeKind::Vmirs => {
            let api: Api<VirtualMachineInstanceReplicaSet> = Api::namespaced(client.clone(), ns);
            let rs = api.get(name).await.map_err(|e| {
                anyhow!(
                    "error fetching VirtualMachineInstanceReplicaSet: {}",
                    kube_error::message(&e)
                )
            })?;
            let selector = replica_set_selector(rs.spec.selector.as_ref())?;
            let ports = rs
                .spec
                .template
                .as_ref()
                .and_then(|t| t.get("spec"))
                .and_then(|s| serde_json::from_value::<VirtualMachineInstanceSpec>(s.clone()).ok())
                .and_then(|spec| pod_network_ports(&spec));
            Ok(Target {
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                selector,
                ports,
            })
        }
    }
}

/// `spec.selector.matchLabels` of a replica set, refusing what a Service cannot express.
pub fn replica_set_selector(selector: Option<&Value>) -> anyhow::Result<BTreeMap<String, String>> {
    let labels: BTreeMap<String, String> = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    if labels.is_empty() {
        bail!("cannot expose VirtualMachineInstanceReplicaSet without any selector labels");
    }
    let has_expressions = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(|e| e.as_array())
        .is_some_and(|e| !e.is_empty());
    if has_expressions {
        bail!("cannot expose VirtualMachineInstanceReplicaSet with match expressions");
    }
    Ok(labels)
}

/// The ports declared on the interface of the first pod network, as `port-<i>` (Part B §3.2).
pub fn pod_network_ports(spec: &VirtualMachineInstanceSpec) -> Option<Vec<ServicePort>> {
    let network = spec
        .networks
        .as_ref()?
        .iter()
        .find(|n| n.pod.as_ref().is_some_and(|p| !p.is_null()))?;
    let interface = spec
        .domain
        .devices
        .as_ref()?
        .interfaces
        .as_ref()?
        .iter()
        .find(|i| i.name == network.name)?;
    let ports = interface.ports.as_ref()?;
    Some(
        ports
            .iter()
            .enumerate()
            .map(|(i, p)| ServicePort {
                name: Some(format!("port-{}", i + 1)),
                protocol: p.protocol.clone().filter(|p| !p.is_empty()),
                port: p.port,
                ..Default::default()
            })
            .collect(),
    )
}

/// The Service of Part B §3.3.
pub fn build_service(opts: &ExposeSettings, ns: &str, target: Target) -> anyhow::Result<Service> {
    let ports = match &opts.port {
        Some(p) => vec![p.clone()],
        None => target.ports.unwrap_or_default(),
    };
    if ports.is_empty() {
        bail!("couldn't find port via --port flag or introspection");
    }
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(opts.service_name.clone()),
            namespace: Some(ns.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "kubevirt.io/v1".into(),
                kind: opts.kind.api_kind().into(),
                name: opts.name.clone(),
                uid: target.uid,
                controller: Some(true),
                block_owner_deletion: Some(false),
            }]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(ports),
            selector: Some(target.selector),
            cluster_ip: Some(opts.cluster_ip.clone()).filter(|ip| !ip.is_empty()),
            type_: Some(opts.service_type.clone()),
            external_ips: Some(vec![opts.external_ip.clone()])
                .filter(|_| !opts.external_ip.is_empty()),
            ip_families: Some(opts.ip_families.clone()).filter(|f| !f.is_empty()),
            ip_family_policy: opts.ip_family_policy.clone(),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_set_selectors() {
        assert!(replica_set_selector(None).is_err());
        let empty = serde_json::json!({"matchLabels": {}});
        assert_eq!(
            replica_set_selector(Some(&empty)).unwrap_err().to_string(),
            "cannot expose VirtualMachineInstanceReplicaSet without any selector labels"
        );
        let expr = serde_json::json!({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]});
        assert_eq!(
            replica_set_selector(Some(&expr)).unwrap_err().to_string(),
            "cannot expose VirtualMachineInstanceReplicaSet with match expressions"
        );
    }

    #[test]
    fn introspected_ports() {
        let spec: VirtualMachineInstanceSpec = serde_json::from_value(serde_json::json!({
            "domain": {"devices": {"interfaces": [
                {"name": "default", "masquerade": {}, "ports": [
                    {"name": "a", "protocol": "TCP", "port": 80},
                    {"name": "b", "protocol": "UDP", "port": 81}
                ]}
            ]}},
            "networks": [{"name": "default", "pod": {}}]
        }))
        .unwrap();
        let ports = pod_network_ports(&spec).unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].name.as_deref(), Some("port-1"));
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert_eq!(ports[1].port, 81);
        assert!(pod_network_ports(&VirtualMachineInstanceSpec::default()).is_none());
    }
}
