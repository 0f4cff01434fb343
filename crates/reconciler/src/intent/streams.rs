//! The stream subresources (`console`, `vnc`, `portforward`): virt-api's checks before it dials
//! the virt-handler of the VMI's node, in KubeVirt's order and with its codes and messages, and
//! the handler endpoint each stream is carried on (`docs/data-plane.md`).
//!
//! The order is virt-api's: fetch the VMI (for a VM's portforward: the VM, then its VMI), the
//! stream's own check, then the handler of the VMI's node, then the port of a forward.

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::IntentError;
use crate::types::{VirtualMachine, VirtualMachineInstance};

/// 400 of console and vnc on a VMI that is not Running.
pub const VMI_NOT_RUNNING: &str = "VMI is not running";
/// 409 of console on a Failed VMI.
pub const VMI_FAILED: &str = "VMI is in failed status";
/// 400 of console when `autoattachSerialConsole` is false.
pub const NO_SERIAL_CONSOLE: &str = "No serial consoles are present.";
/// 400 of vnc when `autoattachGraphicsDevice` is false.
pub const NO_GRAPHICS: &str = "No graphics devices are present.";
/// 409 of portforward on a paused VMI.
pub const VMI_PAUSED: &str = "VMI is paused";
/// 409 of a VM's portforward while the VM has no VMI created.
pub const VMI_NOT_STARTED: &str = "VMI is not started";
/// 400 of a forward to a port outside 1-65535 (the handler's words too).
pub const BAD_PORT: &str = "port must be 1-65535";
/// 400 of a forward with a protocol other than tcp or udp (the handler's words too).
pub const BAD_PROTOCOL: &str = "protocol must be tcp or udp";

const VMI_RESOURCE: &str = "virtualmachineinstance";
const VM_RESOURCE: &str = "virtualmachine";

/// A stream subresource as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    Console,
    Vnc,
    /// `portforward/{port}[/{protocol}]`, the path's segments as they came.
    PortForward {
        port: String,
        protocol: Option<String>,
    },
}

/// The transport of a forward (one type from the launcher's wire to virtctl's flags).
pub use crate::launcher_api::Protocol;

/// Where a checked stream goes: the virt-handler at `address` (`host:port`), at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerTarget {
    pub address: String,
    pub path: String,
}

/// The VMI of the VM `name` for the VM's portforward, as virt-api finds it: the VM exists
/// (404), it has created a VMI (409 `VMI is not started`), the VMI exists (404) and the VM owns
/// it (500, with the `<nil>` Go prints for the missing error).
pub fn vmi_of_vm<'a>(
    name: &str,
    vm: Option<&VirtualMachine>,
    vmi: Option<&'a VirtualMachineInstance>,
) -> Result<&'a VirtualMachineInstance, IntentError> {
    let vm = vm.ok_or_else(|| IntentError::not_found(VM_RESOURCE, name))?;
    if !vm.status.as_ref().is_some_and(|s| s.created) {
        return Err(IntentError::conflict_on(VM_RESOURCE, name, VMI_NOT_STARTED));
    }
    let vmi = vmi.ok_or_else(|| IntentError::not_found(VMI_RESOURCE, name))?;
    let vm_uid = vm.metadata.uid.as_deref();
    let owned = vmi
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| Some(r.uid.as_str()) == vm_uid);
    if !owned {
        return Err(IntentError::internal(format!(
            "unable to retrieve vmi [{name}] for vm: <nil>"
        )));
    }
    Ok(vmi)
}

/// The VMI `name` for `stream`: it exists (404), then the stream's own check:
/// - console: `autoattachSerialConsole: false` (400), Failed (409), not Running (400);
/// - vnc: `autoattachGraphicsDevice: false` (400), not Running (400);
/// - portforward: a `Paused` condition of any status (409).
pub fn check<'a>(
    stream: &Stream,
    name: &str,
    vmi: Option<&'a VirtualMachineInstance>,
) -> Result<&'a VirtualMachineInstance, IntentError> {
    let vmi = vmi.ok_or_else(|| IntentError::not_found(VMI_RESOURCE, name))?;
    let running = vmi.phase() == "Running";
    match stream {
        Stream::Console => {
            if device_off(vmi, "autoattachSerialConsole") {
                return Err(IntentError::bad_request(NO_SERIAL_CONSOLE));
            }
            if vmi.phase() == "Failed" {
                return Err(IntentError::conflict_on(VMI_RESOURCE, name, VMI_FAILED));
            }
            if !running {
                return Err(IntentError::bad_request(VMI_NOT_RUNNING));
            }
        }
        Stream::Vnc => {
            if device_off(vmi, "autoattachGraphicsDevice") {
                return Err(IntentError::bad_request(NO_GRAPHICS));
            }
            if !running {
                return Err(IntentError::bad_request(VMI_NOT_RUNNING));
            }
        }
        Stream::PortForward { .. } => {
            let paused = vmi
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Paused"));
            if paused {
                return Err(IntentError::conflict_on(VMI_RESOURCE, name, VMI_PAUSED));
            }
        }
    }
    Ok(vmi)
}

/// `spec.domain.devices.<field>` is explicitly `false` (unset means attached).
fn device_off(vmi: &VirtualMachineInstance, field: &str) -> bool {
    vmi.spec
        .domain
        .devices
        .as_ref()
        .and_then(|d| d.extra.get(field))
        .is_some_and(|v| *v == Value::Bool(false))
}

/// The handler endpoint for a checked `stream` of `vmi`, given the Node it runs on: the VMI is
/// Running or Scheduled (400 `Unable to connect to VirtualMachineInstance because phase is ...`),
/// its node has a virt-handler (400 `No virt-handler on node NODE found`), and a forward's port
/// and protocol are valid (400).
pub fn handler_target(
    stream: &Stream,
    vmi: &VirtualMachineInstance,
    node: Option<&Node>,
) -> Result<HandlerTarget, IntentError> {
    let phase = vmi.phase();
    if phase != "Running" && phase != "Scheduled" {
        return Err(IntentError::bad_request(format!(
            "Unable to connect to VirtualMachineInstance because phase is {phase} instead of \
             Running or Scheduled"
        )));
    }
    let node_name = vmi
        .status
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let address = node
        .filter(|n| crate::vmi::node_has_handler(n))
        .and_then(crate::vmi::handler_address)
        .ok_or_else(|| {
            IntentError::bad_request(format!("No virt-handler on node {node_name} found"))
        })?;
    let ns = vmi.metadata.namespace.as_deref().unwrap_or("default");
    let name = vmi.metadata.name.as_deref().unwrap_or_default();
    let tail = match stream {
        Stream::Console => "console".to_string(),
        Stream::Vnc => "vnc".to_string(),
        Stream::PortForward { port, protocol } => {
            let (port, protocol) = forward(port, protocol.as_deref())?;
            format!("portforward/{port}/{}", protocol.as_str())
        }
    };
    Ok(HandlerTarget {
        address: address.to_string(),
        path: format!("/v1/namespaces/{ns}/virtualmachineinstances/{name}/{tail}"),
    })
}

/// A forward's port (1-65535, decimal) and protocol (`tcp` when not given).
pub fn forward(port: &str, protocol: Option<&str>) -> Result<(u16, Protocol), IntentError> {
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| IntentError::bad_request(BAD_PORT))?;
    let protocol = match protocol {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(_) => return Err(IntentError::bad_request(BAD_PROTOCOL)),
    };
    Ok((port, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Condition, VirtualMachineInstanceStatus, VirtualMachineStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOT_FOUND: &str = "virtualmachineinstance.kubevirt.io \"vm1\" not found";
    const CONFLICT: &str =
        "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"vm1\": ";

    /// The VMI `vm1` in `default` on `node1`, in `phase`, with these conditions and devices.
    fn vmi(phase: &str, conditions: &[&str], devices: Value) -> VirtualMachineInstance {
        let mut vmi = VirtualMachineInstance::new("vm1", Default::default());
        vmi.metadata.namespace = Some("default".into());
        vmi.spec.domain.devices = Some(serde_json::from_value(devices).unwrap());
        vmi.status = Some(VirtualMachineInstanceStatus {
            phase: (!phase.is_empty()).then(|| phase.into()),
            node_name: Some("node1".into()),
            conditions: conditions
                .iter()
                .map(|t| Condition {
                    type_: (*t).into(),
                    status: "True".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        vmi
    }

    fn outcome(r: Result<&VirtualMachineInstance, IntentError>) -> (u16, String) {
        match r {
            Ok(_) => (101, String::new()),
            Err(e) => (e.code, e.message),
        }
    }

    fn pf() -> Stream {
        Stream::PortForward {
            port: "22".into(),
            protocol: None,
        }
    }

    /// One named test per rule: `name: stream, phase, [conditions], devices => (code, message)`.
    macro_rules! matrix {
        ($($name:ident: $stream:expr, $phase:expr, $conds:expr, $devices:expr => $code:expr, $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                let v = vmi($phase, &$conds, $devices);
                assert_eq!(
                    outcome(check(&$stream, "vm1", Some(&v))),
                    ($code, String::from($msg)),
                    "{}", stringify!($name)
                );
            }
        )*};
    }

    matrix! {
        console_running: Stream::Console, "Running", [], json!({}) => 101, "";
        console_running_paused: Stream::Console, "Running", ["Paused"], json!({}) => 101, "";
        console_attached_explicitly: Stream::Console, "Running", [], json!({"autoattachSerialConsole": true}) => 101, "";
        console_no_serial_console_wins_over_failed: Stream::Console, "Failed", [], json!({"autoattachSerialConsole": false}) => 400, NO_SERIAL_CONSOLE;
        console_failed: Stream::Console, "Failed", [], json!({}) => 409, format!("{CONFLICT}VMI is in failed status");
        console_scheduled: Stream::Console, "Scheduled", [], json!({}) => 400, VMI_NOT_RUNNING;
        console_pending: Stream::Console, "Pending", [], json!({}) => 400, VMI_NOT_RUNNING;
        console_succeeded: Stream::Console, "Succeeded", [], json!({}) => 400, VMI_NOT_RUNNING;
        console_no_phase: Stream::Console, "", [], json!({}) => 400, VMI_NOT_RUNNING;
        vnc_running: Stream::Vnc, "Running", [], json!({}) => 101, "";
        vnc_no_graphics_wins_over_not_running: Stream::Vnc, "Pending", [], json!({"autoattachGraphicsDevice": false}) => 400, NO_GRAPHICS;
        vnc_serial_console_off_is_no_matter: Stream::Vnc, "Running", [], json!({"autoattachSerialConsole": false}) => 101, "";
        vnc_failed_is_not_running: Stream::Vnc, "Failed", [], json!({}) => 400, VMI_NOT_RUNNING;
        vnc_scheduled: Stream::Vnc, "Scheduled", [], json!({}) => 400, VMI_NOT_RUNNING;
        portforward_running: pf(), "Running", [], json!({}) => 101, "";
        portforward_paused: pf(), "Running", ["Paused"], json!({}) => 409, format!("{CONFLICT}VMI is paused");
        portforward_devices_are_no_matter: pf(), "Running", [], json!({"autoattachSerialConsole": false, "autoattachGraphicsDevice": false}) => 101, "";
        // The phase is the handler lookup's business (handler_target), not the check's.
        portforward_pending_passes_the_check: pf(), "Pending", [], json!({}) => 101, "";
    }

    #[test]
    fn a_missing_vmi_is_404_for_every_stream() {
        for stream in [Stream::Console, Stream::Vnc, pf()] {
            assert_eq!(
                outcome(check(&stream, "vm1", None)),
                (404, NOT_FOUND.to_string()),
                "{stream:?}"
            );
        }
        let e = check(&Stream::Console, "vm1", None).unwrap_err();
        assert_eq!(e.reason, "NotFound");
    }

    fn vm(created: bool, uid: &str) -> VirtualMachine {
        let mut vm = VirtualMachine::new("vm1", Default::default());
        vm.metadata.uid = Some(uid.into());
        vm.status = Some(VirtualMachineStatus {
            created,
            ..Default::default()
        });
        vm
    }

    fn owned_by(uid: &str) -> VirtualMachineInstance {
        let mut v = vmi("Running", &[], json!({}));
        v.metadata.owner_references = Some(vec![OwnerReference {
            uid: uid.into(),
            name: "vm1".into(),
            kind: "VirtualMachine".into(),
            api_version: "kubevirt.io/v1".into(),
            ..Default::default()
        }]);
        v
    }

    #[test]
    fn a_vms_portforward_finds_its_vmi_as_virt_api_does() {
        let mine = owned_by("uid-1");
        let foreign = owned_by("uid-2");
        let orphan = vmi("Running", &[], json!({}));
        let cases = [
            (
                None,
                None,
                404,
                "virtualmachine.kubevirt.io \"vm1\" not found".to_string(),
            ),
            // Not created wins over a VMI that exists.
            (
                Some(vm(false, "uid-1")),
                Some(&mine),
                409,
                "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VMI is not \
                 started"
                    .into(),
            ),
            (Some(vm(true, "uid-1")), None, 404, NOT_FOUND.into()),
            (
                Some(vm(true, "uid-1")),
                Some(&foreign),
                500,
                "Internal error occurred: unable to retrieve vmi [vm1] for vm: <nil>".into(),
            ),
            (
                Some(vm(true, "uid-1")),
                Some(&orphan),
                500,
                "Internal error occurred: unable to retrieve vmi [vm1] for vm: <nil>".into(),
            ),
            (Some(vm(true, "uid-1")), Some(&mine), 101, String::new()),
        ];
        for (vm, vmi, code, message) in cases {
            assert_eq!(
                outcome(vmi_of_vm("vm1", vm.as_ref(), vmi)),
                (code, message),
                "{vm:?}"
            );
        }
        // A VM without a status has created nothing.
        let mut bare = vm(true, "uid-1");
        bare.status = None;
        assert_eq!(outcome(vmi_of_vm("vm1", Some(&bare), Some(&mine))).0, 409);
    }

    fn node(label: Option<&str>, address: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("node1".into());
        n.metadata.labels =
            label.map(|v| BTreeMap::from([("kubevirt.io/schedulable".into(), v.into())]));
        n.metadata.annotations = address
            .map(|a| BTreeMap::from([("virt-toolkit.dev/handler-address".into(), a.into())]));
        n
    }

    fn target(
        stream: &Stream,
        phase: &str,
        node: Option<&Node>,
    ) -> Result<(String, String), (u16, String)> {
        let v = vmi(phase, &[], json!({}));
        handler_target(stream, &v, node)
            .map(|t| (t.address, t.path))
            .map_err(|e| (e.code, e.message))
    }

    #[test]
    fn streams_go_to_the_handler_of_the_vmis_node() {
        let handled = node(Some("true"), Some("127.0.0.1:8186"));
        let at = |tail: &str| {
            Ok((
                "127.0.0.1:8186".to_string(),
                format!("/v1/namespaces/default/virtualmachineinstances/vm1/{tail}"),
            ))
        };
        let forward = |port: &str, protocol: Option<&str>| Stream::PortForward {
            port: port.into(),
            protocol: protocol.map(str::to_string),
        };
        let no_handler = Err((400, "No virt-handler on node node1 found".to_string()));
        let phase_is = |p: &str| {
            Err((
                400,
                format!(
                    "Unable to connect to VirtualMachineInstance because phase is {p} instead \
                     of Running or Scheduled"
                ),
            ))
        };
        let cases = [
            // (stream, phase, node, want)
            (Stream::Console, "Running", Some(&handled), at("console")),
            (Stream::Vnc, "Running", Some(&handled), at("vnc")),
            (Stream::Console, "Scheduled", Some(&handled), at("console")),
            (
                forward("22", None),
                "Running",
                Some(&handled),
                at("portforward/22/tcp"),
            ),
            (
                forward("53", Some("udp")),
                "Running",
                Some(&handled),
                at("portforward/53/udp"),
            ),
            (
                forward("65535", Some("tcp")),
                "Running",
                Some(&handled),
                at("portforward/65535/tcp"),
            ),
            (
                forward("22", None),
                "Pending",
                Some(&handled),
                phase_is("Pending"),
            ),
            (
                forward("22", None),
                "Succeeded",
                Some(&handled),
                phase_is("Succeeded"),
            ),
            (forward("22", None), "", Some(&handled), phase_is("")),
            // The phase comes before the node, the node before the port.
            (forward("0", None), "Failed", None, phase_is("Failed")),
            (forward("0", None), "Running", None, no_handler.clone()),
            (Stream::Console, "Running", None, no_handler.clone()),
            (
                Stream::Console,
                "Running",
                Some(&node(None, Some("127.0.0.1:8186"))),
                no_handler.clone(),
            ),
            (
                Stream::Console,
                "Running",
                Some(&node(Some("false"), Some("127.0.0.1:8186"))),
                no_handler.clone(),
            ),
            (
                Stream::Console,
                "Running",
                Some(&node(Some("true"), None)),
                no_handler.clone(),
            ),
            (
                Stream::Console,
                "Running",
                Some(&node(Some("true"), Some(""))),
                no_handler.clone(),
            ),
            (
                forward("0", None),
                "Running",
                Some(&handled),
                Err((400, BAD_PORT.into())),
            ),
            (
                forward("65536", None),
                "Running",
                Some(&handled),
                Err((400, BAD_PORT.into())),
            ),
            (
                forward("+22", None),
                "Running",
                Some(&handled),
                Err((400, BAD_PORT.into())),
            ),
            (
                forward("ssh", None),
                "Running",
                Some(&handled),
                Err((400, BAD_PORT.into())),
            ),
            (
                forward("", None),
                "Running",
                Some(&handled),
                Err((400, BAD_PORT.into())),
            ),
            (
                forward("22", Some("sctp")),
                "Running",
                Some(&handled),
                Err((400, BAD_PROTOCOL.into())),
            ),
            (
                forward("22", Some("TCP")),
                "Running",
                Some(&handled),
                Err((400, BAD_PROTOCOL.into())),
            ),
        ];
        for (stream, phase, n, want) in cases {
            assert_eq!(
                target(&stream, phase, n),
                want,
                "{stream:?} {phase:?} {n:?}"
            );
        }
    }
}
