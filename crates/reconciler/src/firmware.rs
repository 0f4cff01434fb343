//! The firmware UUID of a VM (Part A §3, Part B §1.6).
//!
//! There is no mutating webhook here, so the VM controller itself writes a UUID into
//! `spec.template.spec.domain.firmware.uuid` when it is empty. The value is derived from the VM
//! name (UUIDv5), so it is the same every time it is computed, and every VMI of the VM gets it:
//! the guest sees the same system UUID across restarts.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::types::{Firmware, VirtualMachine};

/// Namespace of the name-based ("legacy") firmware UUIDs.
pub const LEGACY_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1a24a1_4061_4607_8bf4_a3963d0c5895);

/// Reason of the sync error raised when the firmware patch fails.
pub const FIRMWARE_UUID_ERROR_REASON: &str = "FirmwareUUIDError";

/// JSON pointer of the firmware object in a VM.
pub const FIRMWARE_PATH: &str = "/spec/template/spec/domain/firmware";

/// The name-based UUID of a VM: UUIDv5 (SHA-1) over [`LEGACY_UUID_NAMESPACE`] and the name bytes.
pub fn legacy_uuid(vm_name: &str) -> String {
    Uuid::new_v5(&LEGACY_UUID_NAMESPACE, vm_name.as_bytes()).to_string()
}

/// The UUID set in the VM's template, if it is set and not empty.
pub fn template_uuid(vm: &VirtualMachine) -> Option<&str> {
    vm.spec
        .template
        .spec
        .domain
        .firmware
        .as_ref()
        .and_then(|f| f.uuid.as_deref())
        .filter(|u| !u.is_empty())
}

/// The UUID the VM's VMIs get: the template's when set, else [`legacy_uuid`] of the VM name.
pub fn vm_uuid(vm: &VirtualMachine) -> String {
    match template_uuid(vm) {
        Some(u) => u.to_string(),
        None => legacy_uuid(vm.metadata.name.as_deref().unwrap_or_default()),
    }
}

/// The JSON patch (RFC 6902) that persists the legacy UUID in the VM, or `None` when the
/// template already has a UUID (which is never changed).
///
/// The patch tests the current firmware object (`null` when there is none), then adds the same
/// object with the UUID filled in, so it fails with a conflict if the VM changed meanwhile. A
/// failure is a sync error with reason [`FIRMWARE_UUID_ERROR_REASON`].
pub fn firmware_patch(vm: &VirtualMachine) -> Option<Value> {
    if template_uuid(vm).is_some() {
        return None;
    }
    let current = vm.spec.template.spec.domain.firmware.as_ref();
    let current_value = match current {
        Some(f) => serde_json::to_value(f).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let mut wanted: Firmware = current.cloned().unwrap_or_default();
    wanted.uuid = Some(legacy_uuid(vm.metadata.name.as_deref().unwrap_or_default()));
    let wanted_value = serde_json::to_value(&wanted).unwrap_or(Value::Null);
    Some(json!([
        {"op": "test", "path": FIRMWARE_PATH, "value": current_value},
        {"op": "add", "path": FIRMWARE_PATH, "value": wanted_value},
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::VirtualMachineSpec;

    fn vm(name: &str, firmware: Option<Firmware>) -> VirtualMachine {
        let mut vm = VirtualMachine::new(name, VirtualMachineSpec::default());
        vm.spec.template.spec.domain.firmware = firmware;
        vm
    }

    #[test]
    fn legacy_uuid_matches_the_reference_vectors() {
        assert_eq!(
            legacy_uuid("testvm"),
            "5a9fc181-957e-5c32-9e5a-2de5e9673531"
        );
        assert_eq!(legacy_uuid("myvm"), "cdf77e9e-871b-5acb-a707-80ef3d4b9849");
        assert_eq!(
            legacy_uuid("vm-cirros"),
            "0d2a2043-41c0-59c3-9b17-025022203668"
        );
    }

    #[test]
    fn patch_without_firmware_tests_null_and_adds_the_uuid() {
        let patch = firmware_patch(&vm("testvm", None)).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/spec/template/spec/domain/firmware", "value": null},
                {"op": "add", "path": "/spec/template/spec/domain/firmware",
                 "value": {"uuid": "5a9fc181-957e-5c32-9e5a-2de5e9673531"}},
            ])
        );
    }

    #[test]
    fn patch_keeps_other_firmware_fields() {
        let mut fw = Firmware {
            serial: Some("s-1".into()),
            uuid: Some(String::new()),
            ..Default::default()
        };
        fw.extra
            .insert("bootloader".into(), json!({"efi": {"secureBoot": false}}));
        let patch = firmware_patch(&vm("myvm", Some(fw))).unwrap();
        assert_eq!(
            patch[0]["value"],
            json!({"uuid": "", "serial": "s-1", "bootloader": {"efi": {"secureBoot": false}}})
        );
        assert_eq!(
            patch[1]["value"],
            json!({"uuid": "cdf77e9e-871b-5acb-a707-80ef3d4b9849", "serial": "s-1",
                   "bootloader": {"efi": {"secureBoot": false}}})
        );
    }

    #[test]
    fn a_set_uuid_is_never_changed() {
        let fw = Firmware {
            uuid: Some("11111111-2222-4333-8444-555555555555".into()),
            ..Default::default()
        };
        let vm = vm("myvm", Some(fw));
        assert_eq!(firmware_patch(&vm), None);
        assert_eq!(vm_uuid(&vm), "11111111-2222-4333-8444-555555555555");
    }

    #[test]
    fn vm_uuid_falls_back_to_the_legacy_uuid() {
        assert_eq!(
            vm_uuid(&vm("vm-cirros", None)),
            "0d2a2043-41c0-59c3-9b17-025022203668"
        );
    }
}
