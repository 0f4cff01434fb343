//! KubeVirt's mutating rules for VMs and VMIs, as JSON Patch operations against the object the
//! API server sent. Each operation is applied to a working copy as it is added, so later ones
//! see earlier ones and the whole patch applies cleanly in order.
//!
//! Sources (KubeVirt v1.9): `pkg/virt-api/webhooks/mutating-webhook/mutators/vm-mutator.go`
//! (firmware on create), `vmi-mutator.go` (create defaults, foreground finalizer, status
//! protection), `pkg/defaults/defaults.go` (architecture, machine type, guest memory,
//! default disks), `pkg/controller/controller.go` (`SetLatestApiVersionAnnotation`).

use serde_json::{Value, json};

use super::validate::at;
use crate::firmware;
use crate::types::VirtualMachine;
use crate::vmi::VMI_CONTROLLER_FINALIZER;

/// The default architecture (KubeVirt: the cluster's, `runtime.GOARCH` of virt-controller).
pub const DEFAULT_ARCHITECTURE: &str = "amd64";
/// The default machine type on amd64.
pub const DEFAULT_MACHINE_TYPE: &str = "q35";
/// Annotation naming the newest `kubevirt.io` version KubeVirt's controllers have seen.
pub const LATEST_OBSERVED_API_VERSION: &str = "kubevirt.io/latest-observed-api-version";
/// Annotation naming the storage version KubeVirt's controllers have seen.
pub const STORAGE_OBSERVED_API_VERSION: &str = "kubevirt.io/storage-observed-api-version";
/// The value of both annotations: `v1` is the latest and the storage version.
pub const OBSERVED_API_VERSION: &str = "v1";

/// JSON Patch operations built against a working copy of the object.
pub struct PatchBuilder {
    doc: Value,
    ops: Vec<Value>,
}

/// `key` escaped for a JSON pointer (RFC 6901).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl PatchBuilder {
    pub fn new(doc: &Value) -> Self {
        PatchBuilder {
            doc: doc.clone(),
            ops: Vec::new(),
        }
    }

    /// The operations, in order.
    pub fn into_ops(self) -> Vec<Value> {
        self.ops
    }

    /// The object with the operations applied.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    fn get(&self, pointer: &str) -> Option<&Value> {
        self.doc.pointer(pointer).filter(|v| !v.is_null())
    }

    /// `add` at `pointer` (which replaces an existing member), applied to the copy.
    pub fn add(&mut self, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        let key = key.replace("~1", "/").replace("~0", "~");
        match self.doc.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.insert(key, value.clone());
            }
            Some(Value::Array(list)) if key == "-" => list.push(value.clone()),
            // A parent that is not a container: ensure_object always runs first, so this is
            // a caller's bug; keep the op out rather than emit one that cannot apply.
            _ => return,
        }
        self.ops
            .push(json!({"op": "add", "path": pointer, "value": value}));
    }

    /// `replace` at `pointer`, or `remove` when `value` is `None` (the member must exist).
    pub fn replace_or_remove(&mut self, pointer: &str, value: Option<Value>) {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        let Some(Value::Object(map)) = self.doc.pointer_mut(parent) else {
            return;
        };
        match value {
            Some(v) => {
                map.insert(key.to_string(), v.clone());
                self.ops
                    .push(json!({"op": "replace", "path": pointer, "value": v}));
            }
            None => {
                map.remove(key);
                self.ops.push(json!({"op": "remove", "path": pointer}));
            }
        }
    }

    /// Adds `{}` at `pointer` and at each missing (or null, or non-object) ancestor.
    pub fn ensure_object(&mut self, pointer: &str) {
        let mut prefix = String::new();
        for segment in pointer.split('/').skip(1) {
            prefix.push('/');
            prefix.push_str(segment);
            if !self.doc.pointer(&prefix).is_some_and(Value::is_object) {
                self.add(&prefix.clone(), json!({}));
            }
        }
    }

    /// Sets a string member when it is absent or empty.
    pub fn default_string(&mut self, object: &str, key: &str, value: &str) {
        let pointer = format!("{object}/{}", escape(key));
        let current = self
            .get(&pointer)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if current.is_empty() {
            self.ensure_object(object);
            self.add(&pointer, json!(value));
        }
    }
}

/// What a mutation may need from outside the object: a fresh serial for VMs created without
/// one (KubeVirt: a random UUIDv4).
pub struct Fresh<'a> {
    pub serial: &'a dyn Fn() -> String,
}

const TEMPLATE_SPEC: &str = "/spec/template/spec";
const FIRMWARE: &str = "/spec/template/spec/domain/firmware";

/// The observed-API-version annotations, when either is missing or not `v1`.
fn observed_api_version(patch: &mut PatchBuilder) {
    for key in [LATEST_OBSERVED_API_VERSION, STORAGE_OBSERVED_API_VERSION] {
        let pointer = format!("/metadata/annotations/{}", escape(key));
        if patch.get(&pointer).and_then(Value::as_str) != Some(OBSERVED_API_VERSION) {
            patch.ensure_object("/metadata/annotations");
            patch.add(&pointer, json!(OBSERVED_API_VERSION));
        }
    }
}

/// Architecture and machine type of a VMI spec at `spec` (`setDefaultArchitecture`,
/// `setDefaultMachineType` / `setVMDefaultMachineType`).
fn architecture_and_machine(patch: &mut PatchBuilder, spec: &str) {
    patch.default_string(spec, "architecture", DEFAULT_ARCHITECTURE);
    patch.default_string(
        &format!("{spec}/domain/machine"),
        "type",
        DEFAULT_MACHINE_TYPE,
    );
}

/// The VM mutator. On create: the firmware UUID (the same name-based UUID the VM controller
/// derives, [`firmware::legacy_uuid`]; skipped while the name is not yet known, as with
/// `generateName`) and a serial when empty. On create and update: architecture, machine type
/// and the observed-API-version annotations.
pub fn vm_patch(object: &Value, vm: &VirtualMachine, create: bool, fresh: &Fresh) -> Vec<Value> {
    let mut patch = PatchBuilder::new(object);
    if create {
        let name = vm.metadata.name.as_deref().unwrap_or_default();
        if firmware::template_uuid(vm).is_none() && !name.is_empty() {
            patch.default_string(FIRMWARE, "uuid", &firmware::legacy_uuid(name));
        }
        let serial = at(
            object,
            &["spec", "template", "spec", "domain", "firmware", "serial"],
        )
        .and_then(Value::as_str)
        .unwrap_or_default();
        if serial.is_empty() {
            patch.default_string(FIRMWARE, "serial", &(fresh.serial)());
        }
    }
    architecture_and_machine(&mut patch, TEMPLATE_SPEC);
    observed_api_version(&mut patch);
    patch.into_ops()
}

/// The VMI mutator on create: architecture, machine type, guest memory, a disk for every
/// volume without one, the foreground-delete finalizer, and the annotations.
pub fn vmi_create_patch(object: &Value) -> Vec<Value> {
    let mut patch = PatchBuilder::new(object);
    architecture_and_machine(&mut patch, "/spec");
    guest_memory(&mut patch);
    default_disks(&mut patch);
    let has_finalizer = at(object, &["metadata", "finalizers"])
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == VMI_CONTROLLER_FINALIZER));
    if !has_finalizer {
        if patch
            .get("/metadata/finalizers")
            .is_some_and(Value::is_array)
        {
            patch.add("/metadata/finalizers/-", json!(VMI_CONTROLLER_FINALIZER));
        } else {
            patch.ensure_object("/metadata");
            patch.add("/metadata/finalizers", json!([VMI_CONTROLLER_FINALIZER]));
        }
    }
    observed_api_version(&mut patch);
    patch.into_ops()
}

/// `setGuestMemory`: when `memory.guest` is unset, the memory request, else the limit, else
/// the hugepage size. A zero or malformed quantity does not count (the validator speaks).
fn guest_memory(patch: &mut PatchBuilder) {
    if patch.get("/spec/domain/memory/guest").is_some() {
        return;
    }
    let nonzero = |p: &PatchBuilder, pointer: &str| {
        p.get(pointer)
            .filter(|v| {
                super::quantity::from_json(Some(v))
                    .ok()
                    .flatten()
                    .is_some_and(|q| q.value != 0.0)
            })
            .cloned()
    };
    let guest = nonzero(patch, "/spec/domain/resources/requests/memory")
        .or_else(|| nonzero(patch, "/spec/domain/resources/limits/memory"))
        .or_else(|| {
            patch
                .get("/spec/domain/memory/hugepages/pageSize")
                .filter(|v| {
                    v.as_str()
                        .is_some_and(|s| super::quantity::parse(s).is_ok())
                })
                .cloned()
        });
    if let Some(guest) = guest {
        patch.ensure_object("/spec/domain/memory");
        patch.add("/spec/domain/memory/guest", guest);
    }
}

/// `SetDefaultVolumeDisk`: a disk `{name}` for every volume with neither disk nor filesystem.
fn default_disks(patch: &mut PatchBuilder) {
    let names = |p: &PatchBuilder, pointer: &str| -> Vec<String> {
        p.get(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let volumes = names(patch, "/spec/volumes");
    for volume in volumes {
        let mut taken = names(patch, "/spec/domain/devices/disks");
        taken.extend(names(patch, "/spec/domain/devices/filesystems"));
        if taken.contains(&volume) {
            continue;
        }
        if patch
            .get("/spec/domain/devices/disks")
            .is_some_and(Value::is_array)
        {
            patch.add("/spec/domain/devices/disks/-", json!({"name": volume}));
        } else {
            patch.ensure_object("/spec/domain/devices");
            patch.add("/spec/domain/devices/disks", json!([{"name": volume}]));
        }
    }
}

/// The VMI mutator on update: a status change from anyone but KubeVirt's service accounts is
/// undone (the VMI has no status subresource).
pub fn vmi_update_patch(object: &Value, old: &Value, trusted: bool) -> Vec<Value> {
    let new_status = at(object, &["status"]);
    let old_status = at(old, &["status"]);
    if trusted || new_status == old_status {
        return Vec::new();
    }
    let mut patch = PatchBuilder::new(object);
    match (new_status, old_status) {
        (None, Some(old)) => patch.add("/status", old.clone()),
        (Some(_), old) => patch.replace_or_remove("/status", old.cloned()),
        (None, None) => {}
    }
    patch.into_ops()
}
