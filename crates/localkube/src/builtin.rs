//! The strategies of the built-in types, as kube-apiserver's registry has them: defaults and
//! status resets on create, the checks beyond the schema, service IP and node port allocation,
//! graceful deletion of pods, and namespaces that terminate. Controllers of these types are out
//! of scope.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::state::Core;
use crate::status::{ApiError, ApiResult, Cause};
use crate::strategy::{Created, Strategy};
use crate::validation::{
    check_config_map, check_disruption_budget, check_pod_spec, check_secret, check_service,
};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

fn default_field(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Pod spec defaults (also used for pod templates).
fn default_pod_spec(spec: &mut Value) {
    let Some(map) = spec.as_object_mut() else {
        return;
    };
    default_field(map, "restartPolicy", json!("Always"));
    default_field(map, "terminationGracePeriodSeconds", json!(30));
    default_field(map, "dnsPolicy", json!("ClusterFirst"));
    default_field(map, "schedulerName", json!("default-scheduler"));
    default_field(map, "securityContext", json!({}));
    default_field(map, "enableServiceLinks", json!(true));
    default_field(map, "preemptionPolicy", json!("PreemptLowerPriority"));
    default_field(map, "priority", json!(0));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = map.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let last = image.rsplit('/').next().unwrap_or("");
                let pull = if !last.contains(':') || image.ends_with(":latest") {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                let pull = if image.contains('@') {
                    "IfNotPresent"
                } else {
                    pull
                };
                default_field(c, "imagePullPolicy", json!(pull));
                default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
                default_field(c, "terminationMessagePolicy", json!("File"));
                default_field(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_field(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// The answer to failed checks of a built-in object's spec.
fn spec_checked(rt: &ResourceType, obj: &Value, causes: Vec<Cause>) -> ApiResult<()> {
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
}

/// A built-in type with no rules of its own (ServiceAccounts, Events, RBAC, Leases, ...).
pub struct Plain;

impl Strategy for Plain {}

pub struct Pods;

impl Strategy for Pods {
    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        spec_checked(rt, obj, check_pod_spec(spec, "spec"))
    }

    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        obj_mut(obj, "spec");
        default_pod_spec(&mut obj["spec"]);
        let spec = obj_mut(obj, "spec");
        if spec.get("serviceAccountName").is_none() {
            spec.insert("serviceAccountName".into(), json!("default"));
            spec.insert("serviceAccount".into(), json!("default"));
        }
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }

    /// Graceful deletion applies to pods that a node runs; a second delete may shorten it.
    fn grace_period(&self, pod: &Value, requested: Option<i64>) -> Option<i64> {
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let bound = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let mut grace = requested.unwrap_or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        if !bound || phase == "Succeeded" || phase == "Failed" {
            grace = 0;
        }
        if let Some(existing) = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            && existing < grace
        {
            grace = existing;
        }
        Some(grace)
    }
}

/// The namespaces that always exist.
const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

pub struct Namespaces;

impl Strategy for Namespaces {
    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        let name = obj["metadata"]["name"].clone();
        obj_mut(&mut obj["metadata"], "labels").insert("kubernetes.io/metadata.name".into(), name);
        obj_mut(obj, "spec").insert("finalizers".into(), json!(["kubernetes"]));
        obj["status"] = json!({"phase": "Active"});
    }

    fn admit_delete(&self, name: &str) -> ApiResult<()> {
        if IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    /// A namespace terminates until the garbage collector has removed its content.
    fn on_delete(&self, name: &str, already_deleting: bool, next: &mut Value) -> ApiResult<bool> {
        if already_deleting {
            return Err(ApiError::conflict(
                "",
                "namespaces",
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ));
        }
        next["status"]["phase"] = json!("Terminating");
        Ok(true)
    }

    /// Not while its spec finalizers (its content) remain.
    fn may_remove(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    }
}

pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        spec_checked(rt, obj, check_config_map(obj))
    }
}

pub struct Secrets;

impl Strategy for Secrets {
    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        spec_checked(rt, obj, check_secret(obj))
    }

    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            default_field(m, "type", json!("Opaque"));
        }
    }
}

pub struct Services;

impl Strategy for Services {
    fn storage_prefix(&self, _rt: &ResourceType) -> String {
        "/registry/services/specs".to_string()
    }

    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        spec_checked(rt, obj, check_service(obj))
    }

    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        default_field(spec, "type", json!("ClusterIP"));
        default_field(spec, "sessionAffinity", json!("None"));
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                default_field(p, "protocol", json!("TCP"));
                // An unset, empty or zero targetPort means the port itself.
                let unset = match p.get("targetPort") {
                    None | Some(Value::Null) => true,
                    Some(Value::String(t)) => t.is_empty(),
                    Some(Value::Number(n)) => n.as_i64() == Some(0),
                    Some(_) => false,
                };
                if unset {
                    let port = p.get("port").cloned().unwrap_or(Value::Null);
                    p.insert("targetPort".into(), port);
                }
            }
        }
        obj["status"] = json!({"loadBalancer": {}});
    }

    /// The cluster IP is immutable; an update that omits it keeps the allocated one.
    fn prepare_for_update(
        &self,
        old: &Value,
        obj: &mut Value,
        _status_only: bool,
    ) -> ApiResult<()> {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if obj.pointer(&format!("/spec/{f}")).is_none()
                && let Some(v) = old.pointer(&format!("/spec/{f}"))
            {
                obj["spec"][f] = v.clone();
            }
        }
        let old_ip = old.pointer("/spec/clusterIP");
        if old_ip.is_some() && obj.pointer("/spec/clusterIP") != old_ip {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(ApiError::invalid_field(
                "",
                "Service",
                name,
                "spec.clusterIPs[0]",
                "FieldValueInvalid",
                "Invalid value: field is immutable",
            ));
        }
        Ok(())
    }

    /// Cluster IPs and node ports are unique: they are chosen and stored under one lock.
    fn commit_create(
        &self,
        core: &Core,
        mut stored: Value,
        commit: &mut dyn FnMut(Value) -> ApiResult<Created>,
    ) -> ApiResult<Created> {
        let _guard = core.alloc_lock.lock();
        let (ips, ports) = services_in_use(core);
        assign_cluster_ip(&mut stored, core.service_cidr, &ips)?;
        assign_node_ports(&mut stored, &ports);
        commit(stored)
    }
}

/// The cluster IPs and node ports that stored services hold.
fn services_in_use(core: &Core) -> (HashSet<String>, HashSet<i64>) {
    let key = ("".to_string(), "services".to_string());
    let (all, _) = core.store.list(&key, None);
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for s in all {
        let s = s.value();
        if let Some(ip) = s.pointer("/spec/clusterIP").and_then(Value::as_str) {
            ips.insert(ip.to_string());
        }
        for p in s
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                ports.insert(np);
            }
        }
    }
    (ips, ports)
}

pub struct Deployments;

impl Strategy for Deployments {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        default_field(spec, "replicas", json!(1));
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(spec, "progressDeadlineSeconds", json!(600));
        default_field(
            spec,
            "strategy",
            json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}),
        );
        if let Some(tspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(tspec);
        }
        obj["status"] = json!({});
    }
}

pub struct DisruptionBudgets;

impl Strategy for DisruptionBudgets {
    fn tracks_generation(&self) -> bool {
        true
    }

    /// The status is the disruption controller's: it starts with every count at zero.
    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        obj["status"] = json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0});
    }

    fn validate_create(&self, _core: &Core, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        spec_checked(rt, obj, check_disruption_budget(obj))
    }
}

/// A service's cluster IP: the requested one, "None" (headless), or a free one from the CIDR.
/// `used` are the IPs that other services hold.
fn assign_cluster_ip(
    obj: &mut Value,
    cidr: (Ipv4Addr, u8),
    used: &HashSet<String>,
) -> ApiResult<()> {
    let spec = obj_mut(obj, "spec");
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if kind == "ExternalName" {
        return Ok(());
    }
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (base, prefix) = cidr;
    let size: u32 = 1u32 << (32 - u32::from(prefix));
    let base_n = u32::from(base);
    let ip = if requested == "None" {
        "None".to_string()
    } else if !requested.is_empty() {
        let parsed: Ipv4Addr = requested.parse().map_err(|_| {
            ApiError::invalid_field(
                "",
                "Service",
                "",
                "spec.clusterIPs",
                "FieldValueInvalid",
                format!("Invalid value: {requested:?}: must be a valid IP address"),
            )
        })?;
        let n = u32::from(parsed);
        if n < base_n || n >= base_n + size {
            return Err(ApiError::invalid_field(
                "",
                "Service",
                "",
                "spec.clusterIPs",
                "FieldValueInvalid",
                format!(
                    "Invalid value: [{requested:?}]: failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {base}/{prefix}"
                ),
            ));
        }
        if used.contains(&requested) {
            return Err(ApiError::invalid_field(
                "",
                "Service",
                "",
                "spec.clusterIPs",
                "FieldValueInvalid",
                format!(
                    "Invalid value: [{requested:?}]: failed to allocate IP {requested}: provided IP is already allocated"
                ),
            ));
        }
        requested
    } else {
        // .0 is the network, .1 is the kubernetes service by convention.
        (2..size.saturating_sub(1))
            .map(|i| Ipv4Addr::from(base_n + i).to_string())
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if ip != "None" || spec.get("ipFamilies").is_none() {
        default_field(spec, "ipFamilies", json!(["IPv4"]));
        default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    Ok(())
}

/// Gives NodePort and LoadBalancer service ports a node port from 30000-32767.
fn assign_node_ports(obj: &mut Value, used: &HashSet<i64>) {
    let spec = obj_mut(obj, "spec");
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "NodePort" && kind != "LoadBalancer" {
        return;
    }
    if kind == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    let mut taken = used.clone();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if p.get("nodePort").and_then(Value::as_i64).is_none()
                && let Some(free) = (30000..=32767).find(|n| !taken.contains(n))
            {
                taken.insert(free);
                p.insert("nodePort".into(), json!(free));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    /// Any type: the built-in strategies' create hooks do not look at it.
    fn plain_rt() -> ResourceType {
        (*Registry::new().find("", "v1", "configmaps").unwrap()).clone()
    }

    #[test]
    fn pods_get_defaults_and_pending_status() {
        let mut pod = json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":"Running"}});
        Pods.prepare_for_create(&plain_rt(), &mut pod);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
    }

    #[test]
    fn empty_target_ports_default_to_the_port() {
        let mut svc = json!({"spec":{"ports":[{"port":22,"targetPort":""},{"port":80}]}});
        Services.prepare_for_create(&plain_rt(), &mut svc);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 22);
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], 80);
    }

    #[test]
    fn cluster_ips_are_allocated_once() {
        let cidr = ("10.96.0.0".parse().unwrap(), 12);
        let mut used = HashSet::new();
        let mut a = json!({"spec":{"ports":[{"port":80}]}});
        assign_cluster_ip(&mut a, cidr, &used).unwrap();
        let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert_eq!(ip, "10.96.0.2");
        used.insert(ip.clone());
        let mut b = json!({"spec":{"clusterIP": ip}});
        assert_eq!(
            assign_cluster_ip(&mut b, cidr, &used).unwrap_err().code,
            422
        );
        let mut c = json!({"spec":{"clusterIP":"192.168.1.1"}});
        assert_eq!(
            assign_cluster_ip(&mut c, cidr, &used).unwrap_err().code,
            422
        );
        let mut d = json!({"spec":{"clusterIP":"None"}});
        assign_cluster_ip(&mut d, cidr, &used).unwrap();
        assert_eq!(d["spec"]["clusterIPs"][0], "None");
    }
}
