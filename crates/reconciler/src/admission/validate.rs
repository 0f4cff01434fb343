//! KubeVirt's validating rules for VMs and VMIs, as far as this toolkit's objects carry the
//! fields: each rule yields KubeVirt's `StatusCause`s (same type, message and field path), in
//! the order KubeVirt checks them, so a denial reads exactly as KubeVirt's.
//!
//! Sources (KubeVirt v1.9): `pkg/virt-api/webhooks/validating-webhook/admitters/vms-admitter.go`
//! (run strategy, warning), `vmi-create-admitter.go` (memory, machine type, start strategy,
//! disks, volumes, mandatory memory), `pkg/network/admitter/` (networks and interfaces) and
//! `vmi-update-admitter.go` (spec changes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::quantity::{self, Quantity};
use super::wire::{StatusCause, cause_type};

/// The run strategies KubeVirt accepts without a feature gate.
pub const VALID_RUN_STRATEGIES: [&str; 5] =
    ["Halted", "Manual", "Always", "RerunOnFailure", "Once"];

/// The warning on every VM that sets `spec.running`.
pub const RUNNING_DEPRECATED_WARNING: &str =
    "spec.running is deprecated, please use spec.runStrategy instead.";

/// The machine types KubeVirt emulates on amd64 by default (globs).
pub const EMULATED_MACHINES: [&str; 2] = ["q35*", "pc-q35*"];

/// The volume sources of which exactly one must be set.
const VOLUME_SOURCES: [&str; 16] = [
    "persistentVolumeClaim",
    "sysprep",
    "cloudInitNoCloud",
    "cloudInitConfigDrive",
    "containerDisk",
    "ephemeral",
    "emptyDisk",
    "hostDisk",
    "dataVolume",
    "configMap",
    "secret",
    "downwardAPI",
    "serviceAccount",
    "downwardMetrics",
    "memoryDump",
    "containerPath",
];

/// The value at `path` under `v`, with `null` read as absent (Go's nil pointer).
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or_default()
}

fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    str_at(v, &["name"])
}

/// The memory quantities of a VMI spec, read once; a malformed one is a decode error (400).
struct Memory {
    requests: Option<Quantity>,
    limits: Option<Quantity>,
}

fn memory(spec: &Value) -> Result<Memory, String> {
    Ok(Memory {
        requests: quantity::from_json(at(spec, &["domain", "resources", "requests", "memory"]))?,
        limits: quantity::from_json(at(spec, &["domain", "resources", "limits", "memory"]))?,
    })
}

fn value(q: &Option<Quantity>) -> f64 {
    q.as_ref().map_or(0.0, |q| q.value)
}

fn text(q: &Option<Quantity>) -> &str {
    q.as_ref().map_or("0", |q| q.text.as_str())
}

/// A VMI spec's rules shared by VMI create and the VM's template (`field` is `spec` or
/// `spec.template.spec`). Errors are malformed quantities.
pub fn vmi_spec_causes(field: &str, spec: &Value) -> Result<Vec<StatusCause>, String> {
    let mut causes = Vec::new();
    let mem = memory(spec)?;
    memory_causes(field, &mem, &mut causes);
    machine_type_causes(field, spec, &mut causes);
    start_strategy_causes(field, spec, &mut causes);
    network_causes(field, spec, &mut causes);
    disk_causes(field, spec, &mut causes);
    volume_causes(field, spec, &mut causes);
    Ok(causes)
}

/// `validateMemoryRequestsNegativeOrNull` and `validateMemoryLimitsNegativeOrNull`.
fn memory_causes(field: &str, mem: &Memory, causes: &mut Vec<StatusCause>) {
    let requests_field = format!("{field}.domain.resources.requests.memory");
    let limits_field = format!("{field}.domain.resources.limits.memory");
    let (requests, limits) = (value(&mem.requests), value(&mem.limits));
    if requests < 0.0 {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!(
                "{requests_field} '{}': must be greater than or equal to 0.",
                text(&mem.requests)
            ),
            &requests_field,
        ));
    } else if requests > 0.0 && requests < 1e6 {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!(
                "{requests_field} '{}': must be greater than or equal to 1M.",
                text(&mem.requests)
            ),
            &requests_field,
        ));
    }
    if limits < 0.0 {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!(
                "{limits_field} '{}': must be greater than or equal to 0.",
                text(&mem.limits)
            ),
            &limits_field,
        ));
    }
    if limits > 0.0 && requests > limits {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!(
                "{requests_field} '{}' is greater than {limits_field} '{}'",
                text(&mem.requests),
                text(&mem.limits)
            ),
            &requests_field,
        ));
    }
}

/// Go's `filepath.Match` for the patterns used here: a literal prefix and a trailing `*`
/// that matches anything but `/`.
fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.contains('/')),
        None => pattern == name,
    }
}

/// `validateEmulatedMachine`: an explicit machine type must match one of [`EMULATED_MACHINES`].
fn machine_type_causes(field: &str, spec: &Value, causes: &mut Vec<StatusCause>) {
    let machine = str_at(spec, &["domain", "machine", "type"]);
    if machine.is_empty() || EMULATED_MACHINES.iter().any(|p| glob_matches(p, machine)) {
        return;
    }
    let path = format!("{field}.domain.machine.type");
    causes.push(StatusCause::new(
        cause_type::INVALID,
        format!(
            "{path} is not supported: {machine} (allowed values: [{}])",
            EMULATED_MACHINES.join(" ")
        ),
        &path,
    ));
}

/// `validateStartStrategy`: only `Paused`, and not with a liveness probe.
fn start_strategy_causes(field: &str, spec: &Value, causes: &mut Vec<StatusCause>) {
    let Some(strategy) = at(spec, &["startStrategy"]) else {
        return;
    };
    let path = format!("{field}.startStrategy");
    let strategy = strategy.as_str().unwrap_or_default();
    if strategy != "Paused" {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!("{path} is set with an unrecognized option: {strategy}"),
            &path,
        ));
    } else if at(spec, &["livenessProbe"]).is_some() {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!(
                "either {path} or {field}.livenessProbe should be provided.Pausing VMI with LivenessProbe is not supported"
            ),
            &path,
        ));
    }
}

/// The network admitter's name rules: one pod network, unique network names, every network
/// used by an interface, unique interface names, every interface backed by a network, and
/// the interface name's characters.
fn network_causes(field: &str, spec: &Value, causes: &mut Vec<StatusCause>) {
    let networks = list_at(spec, &["networks"]);
    let interfaces = list_at(spec, &["domain", "devices", "interfaces"]);
    let network_names: BTreeSet<&str> = networks.iter().map(name_of).collect();
    let interface_names: BTreeSet<&str> = interfaces.iter().map(name_of).collect();

    if networks
        .iter()
        .filter(|n| at(n, &["pod"]).is_some())
        .count()
        > 1
    {
        causes.push(StatusCause::new(
            cause_type::DUPLICATE,
            format!("more than one interface is connected to a pod network in {field}.interfaces"),
            format!("{field}.interfaces"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, n) in networks.iter().enumerate() {
        if !seen.insert(name_of(n)) {
            causes.push(StatusCause::new(
                cause_type::DUPLICATE,
                format!(
                    "Network with name {:?} already exists, every network must have a unique name",
                    name_of(n)
                ),
                format!("{field}.networks[{i}].name"),
            ));
        }
    }
    for (i, n) in networks.iter().enumerate() {
        if !interface_names.contains(name_of(n)) {
            let path = format!("{field}.networks[{i}].name");
            causes.push(StatusCause::new(
                cause_type::REQUIRED,
                format!("{path} '{}' not found.", name_of(n)),
                &path,
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, iface) in interfaces.iter().enumerate() {
        if !seen.insert(name_of(iface)) {
            causes.push(StatusCause::new(
                cause_type::DUPLICATE,
                "Only one interface can be connected to one specific network",
                format!("{field}.domain.devices.interfaces[{i}].name"),
            ));
        }
    }
    for (i, iface) in interfaces.iter().enumerate() {
        if !network_names.contains(name_of(iface)) {
            let path = format!("{field}.domain.devices.interfaces[{i}].name");
            causes.push(StatusCause::new(
                cause_type::INVALID,
                format!("{path} '{}' not found.", name_of(iface)),
                &path,
            ));
        }
    }
    for (i, iface) in interfaces.iter().enumerate() {
        let name = name_of(iface);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            causes.push(StatusCause::new(
                cause_type::INVALID,
                "Network interface name can only contain alphabetical characters, numbers, dashes (-) or underscores (_)",
                format!("{field}.domain.devices.interfaces[{i}].name"),
            ));
        }
    }
}

/// `validateBootOrder`'s disk rules: every disk but an empty CD-ROM names a volume (an empty
/// CD-ROM needs a feature gate that is off here), and no two disks share a boot order.
fn disk_causes(field: &str, spec: &Value, causes: &mut Vec<StatusCause>) {
    let volume_names: BTreeSet<&str> = list_at(spec, &["volumes"]).iter().map(name_of).collect();
    let mut boot_orders = BTreeSet::new();
    for (i, disk) in list_at(spec, &["domain", "devices", "disks"])
        .iter()
        .enumerate()
    {
        let disk_field = format!("{field}.domain.devices.disks[{i}]");
        if !volume_names.contains(name_of(disk)) {
            let message = if at(disk, &["cdrom"]).is_none() {
                // KubeVirt spells the path in the message `Name`, in the field `name`.
                format!("{disk_field}.Name '{}' not found.", name_of(disk))
            } else {
                "DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk".to_string()
            };
            causes.push(StatusCause::new(
                cause_type::INVALID,
                message,
                format!("{disk_field}.name"),
            ));
        }
        if let Some(order) = at(disk, &["bootOrder"]).and_then(Value::as_u64)
            && !boot_orders.insert(order)
        {
            causes.push(StatusCause::new(
                cause_type::INVALID,
                format!(
                    "Boot order for {disk_field}.bootOrder already set for a different device."
                ),
                format!("{disk_field}.bootOrder"),
            ));
        }
    }
}

/// `validateVolumes`' name and source rules.
fn volume_causes(field: &str, spec: &Value, causes: &mut Vec<StatusCause>) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, volume) in list_at(spec, &["volumes"]).iter().enumerate() {
        let volume_field = format!("{field}.volumes[{i}]");
        match first_index.get(name_of(volume)) {
            Some(other) => causes.push(StatusCause::new(
                cause_type::INVALID,
                format!("{volume_field} and {field}.volumes[{other}] must not have the same Name."),
                format!("{volume_field}.name"),
            )),
            None => {
                first_index.insert(name_of(volume), i);
            }
        }
        let sources = VOLUME_SOURCES
            .iter()
            .filter(|s| at(volume, &[s]).is_some())
            .count();
        if sources != 1 {
            causes.push(StatusCause::new(
                cause_type::INVALID,
                format!("{volume_field} must have exactly one source type set"),
                &volume_field,
            ));
        }
    }
}

/// Rules only a VMI's own review applies (not a VM's template): every volume but a memory
/// dump has a disk or filesystem (`validateVirtualMachineInstanceSpecVolumeDisks`), and some
/// memory is asked for (`ValidateVirtualMachineInstanceMandatoryFields`).
pub fn vmi_create_only_causes(spec: &Value) -> Result<Vec<StatusCause>, String> {
    let mut causes = Vec::new();
    let devices: BTreeSet<&str> = list_at(spec, &["domain", "devices", "disks"])
        .iter()
        .chain(list_at(spec, &["domain", "devices", "filesystems"]))
        .map(name_of)
        .collect();
    for (i, volume) in list_at(spec, &["volumes"]).iter().enumerate() {
        if at(volume, &["memoryDump"]).is_some() || devices.contains(name_of(volume)) {
            continue;
        }
        // KubeVirt's path says `domain.volumes` although the volumes are `spec.volumes`.
        let path = format!("spec.domain.volumes[{i}].name");
        causes.push(StatusCause::new(
            cause_type::INVALID,
            format!("{path} '{}' not found.", name_of(volume)),
            &path,
        ));
    }
    let requests = memory(spec)?.requests;
    let memory_set = at(spec, &["domain", "memory", "guest"]).is_some()
        || at(spec, &["domain", "memory", "hugepages"]).is_some();
    if value(&requests) == 0.0 && !memory_set {
        causes.push(StatusCause::new(
            cause_type::REQUIRED,
            "no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.pageSize' or 'spec.domain.resources.requests.memory' must be set",
            "",
        ));
    }
    Ok(causes)
}

/// `validateRunStrategy`: exactly one of `running` and `runStrategy`, and a known strategy.
/// `WaitAsReceiver` needs the DecentralizedLiveMigration feature gate, which is off here.
pub fn run_strategy_causes(vm_spec: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let running = at(vm_spec, &["running"]);
    let strategy = at(vm_spec, &["runStrategy"]);
    if running.is_some() && strategy.is_some() {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            "Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead",
            "spec.running",
        ));
    }
    if running.is_none() && strategy.is_none() {
        causes.push(StatusCause::new(
            cause_type::INVALID,
            "RunStrategy must be specified",
            "spec.running",
        ));
    }
    if let Some(strategy) = strategy {
        let strategy = strategy.as_str().unwrap_or_default();
        if strategy == "WaitAsReceiver" {
            causes.push(StatusCause::new(
                cause_type::INVALID,
                format!(
                    "Invalid RunStrategy ({strategy}), DecentralizedLiveMigration feature gate is not enabled in kubevirt resource"
                ),
                "spec.runStrategy",
            ));
        } else if !VALID_RUN_STRATEGIES.contains(&strategy) {
            causes.push(StatusCause::new(
                cause_type::INVALID,
                format!("Invalid RunStrategy ({strategy})"),
                "spec.runStrategy",
            ));
        }
    }
    causes
}

/// `ValidateVirtualMachineSpec`: a template is required; its spec gets the shared VMI rules
/// under `spec.template.spec`; then the run strategy. KubeVirt checks a defaulted copy of the
/// template; the defaults it applies (machine type, default disks and interface, guest memory)
/// change no outcome of the rules here, so the template is checked as sent.
pub fn vm_causes(vm: &Value) -> Result<Vec<StatusCause>, String> {
    let spec = at(vm, &["spec"]).unwrap_or(&Value::Null);
    let Some(template_spec) = at(spec, &["template"]) else {
        return Ok(vec![StatusCause::new(
            cause_type::REQUIRED,
            "missing virtual machine template.",
            "spec.template",
        )]);
    };
    let empty = Value::Object(Default::default());
    let template_spec = at(template_spec, &["spec"]).unwrap_or(&empty);
    let mut causes = vmi_spec_causes("spec.template.spec", template_spec)?;
    causes.extend(run_strategy_causes(spec));
    Ok(causes)
}

/// The warnings of an admitted VM.
pub fn vm_warnings(vm: &Value) -> Vec<String> {
    if at(vm, &["spec", "running"]).is_some() {
        vec![RUNNING_DEPRECATED_WARNING.to_string()]
    } else {
        Vec::new()
    }
}

/// `vmi-update-admitter`: only KubeVirt's own service accounts may change a VMI's spec.
pub fn vmi_update_causes(new: &Value, old: &Value, trusted: bool) -> Vec<StatusCause> {
    if trusted || at(new, &["spec"]) == at(old, &["spec"]) {
        return Vec::new();
    }
    vec![StatusCause::new(
        cause_type::NOT_SUPPORTED,
        "update of VMI object is restricted",
        "",
    )]
}
