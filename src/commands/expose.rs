//! `virtctl expose TYPE NAME --name SVC`: a Service for a VMI, a VM or a VMI replica set
//! (Part B §3, plus `--dry-run` from Part A §7).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use serde_json::Value;
use virt_reconciler::{
    VirtualMachine, VirtualMachineInstance, VirtualMachineInstanceReplicaSet,
    VirtualMachineInstanceSpec,
};

use crate::client::{ConnectOptions, connect, error_chain};
use crate::names::{self, NameKind};

/// The kind of object to expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vmi,
    Vm,
    Vmirs,
}

impl Kind {
    /// TYPE, lowercased, with KubeVirt's aliases.
    pub fn parse(lowercased: &str) -> anyhow::Result<Kind> {
        match lowercased {
            "vmi" | "vmis" | "virtualmachineinstance" | "virtualmachineinstances" => Ok(Kind::Vmi),
            "vm" | "vms" | "virtualmachine" | "virtualmachines" => Ok(Kind::Vm),
            "vmirs"
            | "vmirss"
            | "virtualmachineinstancereplicaset"
            | "virtualmachineinstancereplicasets" => Ok(Kind::Vmirs),
            other => bail!("unsupported resource type: {other}"),
        }
    }

    fn name_kind(self) -> NameKind {
        match self {
            Kind::Vmi => NameKind::VirtualMachineInstance,
            Kind::Vm => NameKind::VirtualMachine,
            Kind::Vmirs => NameKind::VirtualMachineInstanceReplicaSet,
        }
    }

    fn api_kind(self) -> &'static str {
        match self {
            Kind::Vmi => "VirtualMachineInstance",
            Kind::Vm => "VirtualMachine",
            Kind::Vmirs => "VirtualMachineInstanceReplicaSet",
        }
    }
}

/// The flags of `expose`, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExposeFlags {
    pub resource_type: String,
    pub name: String,
    pub service_name: String,
    pub port: i32,
    pub target_port: String,
    pub protocol: String,
    pub port_name: String,
    pub service_type: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ip_family: String,
    pub ip_family_policy: String,
    pub dry_run: bool,
}

/// The flags, checked and turned into what the Service needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposeOptions {
    /// TYPE as typed, lowercased (for the success line).
    pub type_name: String,
    pub kind: Kind,
    pub name: String,
    pub service_name: String,
    /// With `--port`: the one port, replacing introspection.
    pub port: Option<ServicePort>,
    pub service_type: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub dry_run: bool,
}

/// Step 2 of Part B §3.1: parse the flag values (protocol, type, IP families, policy), and
/// check both names.
pub fn resolve(flags: &ExposeFlags) -> anyhow::Result<ExposeOptions> {
    let type_name = flags.resource_type.to_lowercase();
    let kind = Kind::parse(&type_name)?;
    let name = names::resource_name(kind.name_kind(), &flags.name)?;
    let service_name = names::resource_name(NameKind::Service, &flags.service_name)?;
    let protocol = match flags.protocol.to_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        _ => bail!("unknown protocol: {}", flags.protocol),
    };
    let service_type = match flags.service_type.to_lowercase().as_str() {
        "clusterip" => "ClusterIP",
        "nodeport" => "NodePort",
        "loadbalancer" => "LoadBalancer",
        "externalname" => bail!("type: {} not supported", flags.service_type),
        _ => bail!("unknown service type: {}", flags.service_type),
    };
    let ip_families: Vec<String> = match flags.ip_family.to_lowercase().as_str() {
        "" => vec![],
        "ipv4" => vec!["IPv4".into()],
        "ipv6" => vec!["IPv6".into()],
        "ipv4,ipv6" => vec!["IPv4".into(), "IPv6".into()],
        "ipv6,ipv4" => vec!["IPv6".into(), "IPv4".into()],
        _ => bail!("unknown IPFamily/s: {}", flags.ip_family),
    };
    let ip_family_policy = match flags.ip_family_policy.to_lowercase().as_str() {
        "" if ip_families.len() == 2 => Some("PreferDualStack"),
        "" => None,
        "singlestack" => Some("SingleStack"),
        "preferdualstack" => Some("PreferDualStack"),
        "requiredualstack" => Some("RequireDualStack"),
        _ => bail!("unknown IPFamilyPolicy/s: {}", flags.ip_family_policy),
    };
    let port = (flags.port != 0).then(|| ServicePort {
        name: Some(flags.port_name.clone()).filter(|n| !n.is_empty()),
        protocol: Some(protocol.to_string()),
        port: flags.port,
        target_port: Some(int_or_string(&flags.target_port)),
        ..Default::default()
    });
    Ok(ExposeOptions {
        type_name,
        kind,
        name,
        service_name,
        port,
        service_type: service_type.to_string(),
        cluster_ip: flags.cluster_ip.clone(),
        external_ip: flags.external_ip.clone(),
        ip_families,
        ip_family_policy: ip_family_policy.map(str::to_string),
        dry_run: flags.dry_run,
    })
}

/// A number is a port number; anything else (even "") is a port name.
fn int_or_string(value: &str) -> IntOrString {
    match value.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(value.to_string()),
    }
}

pub async fn run(connect_opts: &ConnectOptions, flags: &ExposeFlags) -> anyhow::Result<()> {
    let opts = resolve(flags)?;
    let conn = connect(connect_opts)
        .await
        .map_err(|e| anyhow!("cannot obtain KubeVirt client: {e:#}"))?;
    let target = fetch(&conn.client, &conn.namespace, &opts).await?;
    let service = build_service(&opts, &conn.namespace, target)?;
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
        .map_err(|e| anyhow!("service creation failed: {}", message(&e)))?;
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

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => error_chain(other),
    }
}

fn id_selector(name: &str) -> BTreeMap<String, String> {
    [(
        virt_reconciler::vmi::ID_LABEL.to_string(),
        virt_reconciler::vmi::id(name),
    )]
    .into()
}

async fn fetch(client: &kube::Client, ns: &str, opts: &ExposeOptions) -> anyhow::Result<Target> {
    let name = opts.name.as_str();
    match opts.kind {
        Kind::Vmi => {
            let api: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
            let vmi = api
                .get(name)
                .await
                .map_err(|e| anyhow!("error fetching VirtualMachineInstance: {}", message(&e)))?;
            Ok(Target {
                uid: vmi.metadata.uid.clone().unwrap_or_default(),
                selector: id_selector(name),
                ports: pod_network_ports(&vmi.spec),
            })
        }
        Kind::Vm => {
            let api: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
            let vm = api
                .get(name)
                .await
                .map_err(|e| anyhow!("error fetching VirtualMachine: {}", message(&e)))?;
            Ok(Target {
                uid: vm.metadata.uid.clone().unwrap_or_default(),
                selector: id_selector(name),
                ports: pod_network_ports(&vm.spec.template.spec),
            })
        }
        Kind::Vmirs => {
            let api: Api<VirtualMachineInstanceReplicaSet> = Api::namespaced(client.clone(), ns);
            let rs = api.get(name).await.map_err(|e| {
                anyhow!(
                    "error fetching VirtualMachineInstanceReplicaSet: {}",
                    message(&e)
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
pub fn build_service(opts: &ExposeOptions, ns: &str, target: Target) -> anyhow::Result<Service> {
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

    fn flags() -> ExposeFlags {
        ExposeFlags {
            resource_type: "VM".into(),
            name: "vm1".into(),
            service_name: "svc".into(),
            protocol: "TCP".into(),
            service_type: "ClusterIP".into(),
            ..Default::default()
        }
    }

    fn err(f: ExposeFlags) -> String {
        resolve(&f).unwrap_err().to_string()
    }

    #[test]
    fn validation_messages() {
        let mut f = flags();
        f.resource_type = "Kaboom".into();
        assert_eq!(err(f), "unsupported resource type: kaboom");
        let mut f = flags();
        f.service_type = "externalname".into();
        assert_eq!(err(f), "type: externalname not supported");
        let mut f = flags();
        f.service_type = "weird".into();
        assert_eq!(err(f), "unknown service type: weird");
        let mut f = flags();
        f.protocol = "sctp".into();
        assert_eq!(err(f), "unknown protocol: sctp");
        let mut f = flags();
        f.ip_family = "ipv5".into();
        assert_eq!(err(f), "unknown IPFamily/s: ipv5");
        let mut f = flags();
        f.ip_family_policy = "sometimes".into();
        assert_eq!(err(f), "unknown IPFamilyPolicy/s: sometimes");
    }

    #[test]
    fn dual_stack_defaults_to_prefer() {
        let mut f = flags();
        f.ip_family = "ipv4,ipv6".into();
        let o = resolve(&f).unwrap();
        assert_eq!(o.ip_families, vec!["IPv4", "IPv6"]);
        assert_eq!(o.ip_family_policy.as_deref(), Some("PreferDualStack"));
        f.ip_family = "IPv6".into();
        assert_eq!(resolve(&f).unwrap().ip_family_policy, None);
    }

    #[test]
    fn target_port_is_int_or_string() {
        assert_eq!(int_or_string("8080"), IntOrString::Int(8080));
        assert_eq!(int_or_string("http"), IntOrString::String("http".into()));
        assert_eq!(int_or_string(""), IntOrString::String(String::new()));
    }

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
