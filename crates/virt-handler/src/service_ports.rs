//! Which guest ports Services reach on a launcher Pod (pure). KubeVirt's masquerade binding
//! forwards every port when a VMI declares none; slirp cannot, so the handler publishes on
//! each launcher the target ports of the Services that select its Pod.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use virt_reconciler::launcher_api::Protocol;

/// The `(protocol, port)` pairs that Services in the Pod's namespace whose selector matches
/// its labels target: `targetPort` as a number, or a name resolved through the Pod's container
/// ports (of the same protocol), or, when unset, the Service port itself. SCTP, selector-less
/// Services and unresolvable names give nothing.
pub fn published_ports(services: &[Service], pod: &Pod) -> BTreeSet<(Protocol, u16)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let mut ports = BTreeSet::new();
    for service in services {
        if service.metadata.namespace.as_deref().unwrap_or("default") != namespace {
            continue;
        }
        let Some(spec) = &service.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP")) else {
                continue;
            };
            let target = match &port.target_port {
                None => Some(port.port),
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(name)) => named_port(pod, name, protocol),
            };
            if let Some(target) = target
                .and_then(|t| u16::try_from(t).ok())
                .filter(|t| *t > 0)
            {
                ports.insert((protocol, target));
            }
        }
    }
    ports
}

/// A container port of the Pod by name, of the given protocol.
fn named_port(pod: &Pod, name: &str, protocol: Protocol) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name)
                && Protocol::parse(p.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)
        })
        .map(|p| p.container_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "virt-launcher-vm1-abcde", "namespace": "ns1",
                "labels": {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "vm1", "app": "db"}},
            "spec": {"containers": [{"name": "compute", "ports": [
                {"name": "ssh", "containerPort": 22, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}
            ]}]}
        }))
        .unwrap()
    }

    fn service(namespace: &str, selector: Value, ports: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "svc", "namespace": namespace},
            "spec": {"selector": selector, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn services_selecting_the_pod_publish_their_target_ports() {
        let vm1 = json!({"vm.kubevirt.io/name": "vm1"});
        type Case = (&'static str, Service, Vec<(Protocol, u16)>);
        let cases: Vec<Case> = vec![
            (
                "virtctl expose --port 27017 --target-port 22",
                service(
                    "ns1",
                    vm1.clone(),
                    json!([{"port": 27017, "targetPort": 22}]),
                ),
                vec![(Protocol::Tcp, 22)],
            ),
            (
                "no targetPort: the port itself",
                service("ns1", vm1.clone(), json!([{"port": 8080}])),
                vec![(Protocol::Tcp, 8080)],
            ),
            (
                "UDP, lowercase accepted, SCTP skipped",
                service(
                    "ns1",
                    vm1.clone(),
                    json!([{"port": 53, "protocol": "UDP"}, {"port": 99, "protocol": "SCTP"}]),
                ),
                vec![(Protocol::Udp, 53)],
            ),
            (
                "named target ports resolve through the container ports, by protocol",
                service(
                    "ns1",
                    vm1.clone(),
                    json!([
                        {"name": "a", "port": 2222, "targetPort": "ssh"},
                        {"name": "b", "port": 5353, "targetPort": "dns", "protocol": "UDP"},
                        {"name": "c", "port": 5354, "targetPort": "dns"},
                        {"name": "d", "port": 1, "targetPort": "nope"}
                    ]),
                ),
                vec![(Protocol::Tcp, 22), (Protocol::Udp, 53)],
            ),
            (
                "several selector labels must all match",
                service(
                    "ns1",
                    json!({"vm.kubevirt.io/name": "vm1", "app": "web"}),
                    json!([{"port": 80}]),
                ),
                vec![],
            ),
            (
                "another namespace",
                service("ns2", vm1.clone(), json!([{"port": 80}])),
                vec![],
            ),
            (
                "an empty selector selects nothing",
                service("ns1", json!({}), json!([{"port": 80}])),
                vec![],
            ),
        ];
        for (what, service, want) in cases {
            let got: Vec<_> = published_ports(&[service], &pod()).into_iter().collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn ports_of_several_services_are_merged_once() {
        let vm1 = json!({"vm.kubevirt.io/name": "vm1"});
        let services = [
            service(
                "ns1",
                vm1.clone(),
                json!([{"port": 27017, "targetPort": 22}]),
            ),
            service("ns1", vm1, json!([{"port": 22}, {"port": 80}])),
        ];
        let got: Vec<_> = published_ports(&services, &pod()).into_iter().collect();
        assert_eq!(got, [(Protocol::Tcp, 22), (Protocol::Tcp, 80)]);
    }
}
