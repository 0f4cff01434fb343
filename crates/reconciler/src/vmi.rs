//! VMIs and their virt-launcher Pods, as pure functions: the VMI a VM creates (Part B §4.5),
//! the launcher Pod a VMI gets, and the VMI status read off that Pod (Part A §6).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    ObjectFieldSelector, Pod, PodReadinessGate, PodSpec, ResourceRequirements, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use crate::firmware;
use crate::launcher_api;
use crate::run_strategy;
use crate::status::{self, VM_GENERATION_ANNOTATION, condition_type, set_condition};
use crate::types::{
    Condition, InterfaceStatus, PhaseTransition, VirtualMachine, VirtualMachineInstance,
    VirtualMachineInstanceStatus,
};

/// Label on launcher Pods (and Service selectors): the VMI's [`id`].
pub const ID_LABEL: &str = "vmi.kubevirt.io/id";
/// Label on launcher Pods: `virt-launcher`.
pub const APP_LABEL: &str = "kubevirt.io";
/// Value of [`APP_LABEL`] on launcher Pods.
pub const VIRT_LAUNCHER: &str = "virt-launcher";
/// Label on launcher Pods: the UID of their VMI.
pub const CREATED_BY_LABEL: &str = "kubevirt.io/created-by";
/// Label on launcher Pods (deprecated in KubeVirt): the VMI's host name.
pub const VM_NAME_LABEL: &str = "vm.kubevirt.io/name";
/// Annotation on launcher Pods: the VMI name.
pub const DOMAIN_ANNOTATION: &str = "kubevirt.io/domain";
/// Finalizer the VM controller puts on VMs and on the VMIs it creates.
pub const VM_CONTROLLER_FINALIZER: &str = "kubevirt.io/virtualMachineControllerFinalize";
/// The VMI controller's finalizer: it holds a VMI until its launcher Pod is gone.
pub const VMI_CONTROLLER_FINALIZER: &str = "kubevirt.io/foregroundDeleteVirtualMachine";
/// The launcher image: this project's virt-launcher and virt-tail, not KubeVirt's (the
/// playground maps it to the built binaries; simulated nodes only read its name).
pub const LAUNCHER_IMAGE: &str = "virt-toolkit/virt-launcher:v0.1.0";
/// Prefix of the VMI annotations copied onto the launcher Pod. They are the test hooks of
/// localkube's simulated node (`localkube.dev/exit-code`, `localkube.dev/run-for`,
/// `localkube.dev/fail-before-running`), so that a VM template can ask the playground for a
/// guest that shuts down, crashes, or never starts. A real kubelet ignores them.
pub const NODE_HOOK_ANNOTATION_PREFIX: &str = "localkube.dev/";
/// Name of the launcher Pod's container that runs virt-launcher (and so QEMU).
pub const COMPUTE_CONTAINER: &str = "compute";
/// Name of the launcher Pod's container that prints the serial console to its log.
pub const CONSOLE_LOG_CONTAINER: &str = "guest-console-log";
/// The launcher Pod's volumes: its private emptyDir, the node's sockets directory and the
/// node's containerDisk images.
pub const PRIVATE_VOLUME: &str = "private";
pub const SOCKETS_VOLUME: &str = "sockets";
pub const IMAGES_VOLUME: &str = "images";
/// A VMI's grace period when `terminationGracePeriodSeconds` is unset (KubeVirt's default).
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;
/// Added to the VMI's grace period to get the Pod's, so that the guest shutdown gets the whole
/// VMI grace period before the kubelet kills the Pod.
pub const LAUNCHER_GRACE_MARGIN_SECONDS: i64 = 15;

const API_VERSION: &str = "kubevirt.io/v1";
const MAX_LABEL_VALUE: usize = 63;

/// SHA-1 of `data`. Used only to shorten long names into label values, not for security.
fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

/// The `vmi.kubevirt.io/id` label value of a VMI name (Part B §3.2): the name itself when it
/// fits in a label value (≤ 63 bytes), else its first 54 bytes, `-`, and the first 8 hex
/// digits of its SHA-1.
pub fn id(name: &str) -> String {
    if name.len() <= MAX_LABEL_VALUE {
        return name.to_string();
    }
    let digest = sha1(name.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", String::from_utf8_lossy(&name.as_bytes()[..54]))
}

/// The characters kube-apiserver draws a generated name's suffix from.
const GENERATED_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The launcher Pod's name: `virt-launcher-<vmi name>-` (cut at 58 characters, as
/// kube-apiserver cuts a `generateName`) and five characters of a generated name's alphabet,
/// taken from the VMI's uid. It reads like the name the server would generate, but it is the
/// VMI's own: a create sent again after its answer was lost (a timeout, a dropped connection,
/// a client that resends on a 504) is refused as AlreadyExists instead of making a second Pod.
pub fn launcher_pod_name(vmi_name: &str, vmi_uid: &str) -> String {
    let mut prefix = format!("virt-launcher-{vmi_name}-");
    let mut cut = prefix.len().min(58);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    prefix.truncate(cut);
    let digest = sha1(vmi_uid.as_bytes());
    let n = GENERATED_NAME_ALPHABET.len();
    let suffix: String = digest[..5]
        .iter()
        .map(|b| char::from(GENERATED_NAME_ALPHABET[usize::from(*b) % n]))
        .collect();
    prefix + &suffix
}

/// A name made into a valid label value: at most 63 bytes, ending in an alphanumeric.
fn label_value(name: &str) -> String {
    let mut end = name.len().min(MAX_LABEL_VALUE);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end]
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn controller_ref(kind: &str, name: Option<&String>, uid: Option<&String>) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: kind.to_string(),
        name: name.cloned().unwrap_or_default(),
        uid: uid.cloned().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller reference of a VM's VMI: `kubevirt.io/v1` VirtualMachine, with
/// `controller` and `blockOwnerDeletion` set (also used to adopt orphan VMIs, Part B §4.2).
pub fn owner_reference(vm: &VirtualMachine) -> OwnerReference {
    controller_ref(
        "VirtualMachine",
        vm.metadata.name.as_ref(),
        vm.metadata.uid.as_ref(),
    )
}

/// Adds a disk `{name}` for every volume that has neither a disk nor a filesystem.
fn add_default_disks(spec: &mut crate::types::VirtualMachineInstanceSpec) {
    let volume_names: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    if volume_names.is_empty() {
        return;
    }
    let devices = spec.domain.devices.get_or_insert_default();
    let named = |list: Option<&Vec<Value>>, name: &str| {
        list.into_iter()
            .flatten()
            .any(|d| d.get("name").and_then(Value::as_str) == Some(name))
    };
    let filesystems: Option<Vec<Value>> = devices
        .extra
        .get("filesystems")
        .and_then(|f| f.as_array().cloned());
    for name in volume_names {
        if named(devices.disks.as_ref(), &name) || named(filesystems.as_ref(), &name) {
            continue;
        }
        devices
            .disks
            .get_or_insert_default()
            .push(json!({ "name": name }));
    }
}

/// The VMI a VM starts (Part B §4.5 step 4, with steps 6 and 7).
///
/// - Metadata comes from `spec.template.metadata` (labels, annotations, …); the name is the
///   VM's, `generateName` is cleared, the namespace is the VM's, and fields the server assigns
///   (uid, resourceVersion, timestamps, generation, managedFields) are cleared.
/// - The VM is the controller owner. Annotation `kubevirt.io/vm-generation` records the VM
///   generation, and the VM controller's finalizer is added.
/// - The spec is the template's, with `startStrategy: Paused` when `start_paused`, the VM's
///   firmware UUID ([`firmware::vm_uuid`]), and a default disk for every volume without one.
///
/// ControllerRevisions, DataVolumes and instancetypes are out of scope (Part A §1).
pub fn build_vmi(vm: &VirtualMachine, start_paused: bool) -> VirtualMachineInstance {
    let template = &vm.spec.template;
    let mut metadata = template.metadata.clone().unwrap_or_default();
    metadata.name = vm.metadata.name.clone();
    metadata.generate_name = None;
    metadata.namespace = vm.metadata.namespace.clone();
    metadata.uid = None;
    metadata.resource_version = None;
    metadata.creation_timestamp = None;
    metadata.deletion_timestamp = None;
    metadata.deletion_grace_period_seconds = None;
    metadata.generation = None;
    metadata.managed_fields = None;
    metadata.self_link = None;
    metadata.owner_references = Some(vec![owner_reference(vm)]);
    metadata.annotations.get_or_insert_default().insert(
        VM_GENERATION_ANNOTATION.to_string(),
        vm.metadata.generation.unwrap_or(0).to_string(),
    );
    // Both controllers' finalizers go on at creation, which saves the VMI controller a write.
    let finalizers = metadata.finalizers.get_or_insert_default();
    for f in [VM_CONTROLLER_FINALIZER, VMI_CONTROLLER_FINALIZER] {
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.to_string());
        }
    }

    let mut spec = template.spec.clone();
    if start_paused {
        spec.start_strategy = Some("Paused".to_string());
    }
    let fw = spec.domain.firmware.get_or_insert_default();
    if fw.uuid.as_deref().is_none_or(str::is_empty) {
        fw.uuid = Some(firmware::vm_uuid(vm));
    }
    add_default_disks(&mut spec);

    VirtualMachineInstance {
        metadata,
        spec,
        status: None,
    }
}

/// The label selector of every launcher Pod (the VMI controller's Pod watch).
pub fn all_launcher_pods_selector() -> String {
    format!("{APP_LABEL}={VIRT_LAUNCHER}")
}

/// The label selector of a VMI's launcher Pods (also used by force restart, Part A §5).
pub fn launcher_pod_selector(vmi: &VirtualMachineInstance) -> String {
    launcher_pod_selector_of_uid(vmi.metadata.uid.as_deref().unwrap_or_default())
}

/// [`launcher_pod_selector`] of the VMI with this UID: the one spelling of that selector.
pub fn launcher_pod_selector_of_uid(vmi_uid: &str) -> String {
    format!(
        "{},{CREATED_BY_LABEL}={vmi_uid}",
        all_launcher_pods_selector()
    )
}

/// The Pod carries the launcher labels of this VMI (same `kubevirt.io/created-by` UID).
pub fn is_launcher_pod_of(pod: &Pod, vmi: &VirtualMachineInstance) -> bool {
    let Some(uid) = vmi.metadata.uid.as_deref() else {
        return false;
    };
    pod.metadata.labels.as_ref().is_some_and(|l| {
        l.get(APP_LABEL).map(String::as_str) == Some(VIRT_LAUNCHER)
            && l.get(CREATED_BY_LABEL).map(String::as_str) == Some(uid)
    })
}

/// The Pod's grace period: the VMI's (default 30 s) plus [`LAUNCHER_GRACE_MARGIN_SECONDS`].
pub fn launcher_grace_period_seconds(vmi: &VirtualMachineInstance) -> i64 {
    vmi.spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS)
        .max(0)
        .saturating_add(LAUNCHER_GRACE_MARGIN_SECONDS)
}

/// `spec.domain.resources.requests` memory and cpu, as Pod resource requests.
fn launcher_resources(vmi: &VirtualMachineInstance) -> Option<ResourceRequirements> {
    let requests = vmi
        .spec
        .domain
        .extra
        .get("resources")?
        .get("requests")?
        .as_object()?;
    let mut out = BTreeMap::new();
    for key in ["memory", "cpu"] {
        let value = match requests.get(key) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        out.insert(key.to_string(), Quantity(value));
    }
    (!out.is_empty()).then(|| ResourceRequirements {
        requests: Some(out),
        ..Default::default()
    })
}

/// A field of the VMI spec (kept in `extra`), parsed into a Kubernetes type; `None` when it is
/// absent or does not parse.
fn spec_field<T: serde::de::DeserializeOwned>(
    vmi: &VirtualMachineInstance,
    key: &str,
) -> Option<T> {
    vmi.spec
        .extra
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A mount of `volume` at its own host path (given relative, as in [`launcher_api`]).
fn mount(volume: &str, relative_path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: format!("/{relative_path}"),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn host_path_volume(name: &str, relative_path: &str, type_: Option<&str>) -> Volume {
    Volume {
        name: name.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: format!("/{relative_path}"),
            type_: type_.map(str::to_string),
        }),
        ..Default::default()
    }
}

/// The launcher Pod's volumes (see `docs/data-plane.md`).
fn launcher_volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: PRIVATE_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        host_path_volume(
            SOCKETS_VOLUME,
            launcher_api::SOCKETS_DIR,
            Some("DirectoryOrCreate"),
        ),
        host_path_volume(IMAGES_VOLUME, launcher_api::IMAGES_DIR, None),
    ]
}

/// The `compute` container: virt-launcher for this VMI.
fn compute_container(vmi: &VirtualMachineInstance) -> Container {
    let arg = |s: Option<&String>| s.cloned().unwrap_or_default();
    let grace = vmi
        .spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS)
        .max(0);
    Container {
        name: COMPUTE_CONTAINER.to_string(),
        image: Some(LAUNCHER_IMAGE.to_string()),
        command: Some(vec![
            "/usr/bin/virt-launcher".to_string(),
            "--namespace".to_string(),
            arg(vmi.metadata.namespace.as_ref()),
            "--name".to_string(),
            arg(vmi.metadata.name.as_ref()),
            "--uid".to_string(),
            arg(vmi.metadata.uid.as_ref()),
            "--grace-period-seconds".to_string(),
            grace.to_string(),
        ]),
        working_dir: Some("/".to_string()),
        env: Some(vec![EnvVar {
            name: "POD_IP".to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        resources: launcher_resources(vmi),
        volume_mounts: Some(vec![
            mount(PRIVATE_VOLUME, launcher_api::PRIVATE_DIR, false),
            mount(SOCKETS_VOLUME, launcher_api::SOCKETS_DIR, false),
            mount(IMAGES_VOLUME, launcher_api::IMAGES_DIR, true),
        ]),
        ..Default::default()
    }
}

/// The `guest-console-log` container: virt-tail following the serial log until the launcher
/// is gone.
fn console_log_container(vmi: &VirtualMachineInstance) -> Container {
    let uid = vmi.metadata.uid.as_deref().unwrap_or_default();
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity("5m".to_string())),
        ("memory".to_string(), Quantity("35M".to_string())),
    ]);
    Container {
        name: CONSOLE_LOG_CONTAINER.to_string(),
        image: Some(LAUNCHER_IMAGE.to_string()),
        command: Some(vec![
            "/usr/bin/virt-tail".to_string(),
            "--logfile".to_string(),
            format!("/{}", launcher_api::SERIAL_LOG),
            "--socket".to_string(),
            format!("/{}", launcher_api::socket_path(uid)),
        ]),
        working_dir: Some("/".to_string()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(PRIVATE_VOLUME, launcher_api::PRIVATE_DIR, false),
            mount(SOCKETS_VOLUME, launcher_api::SOCKETS_DIR, false),
        ]),
        ..Default::default()
    }
}

/// The virt-launcher Pod of a VMI (Part A §6, and `docs/data-plane.md`).
///
/// - Named [`launcher_pod_name`] (`virt-launcher-<vmi name>-xxxxx`, the suffix from the VMI's
///   uid), in the VMI's namespace, controlled by the VMI.
/// - Labels: the VMI's, plus `kubevirt.io=virt-launcher`, `kubevirt.io/created-by=<vmi uid>`,
///   `vmi.kubevirt.io/id=<id(name)>` and `vm.kubevirt.io/name=<name>` (cut to a valid label
///   value). Annotation `kubevirt.io/domain=<name>`, plus the VMI's annotations whose keys
///   start with [`NODE_HOOK_ANNOTATION_PREFIX`] (test hooks of the simulated node).
/// - Container `compute` runs `/usr/bin/virt-launcher --namespace NS --name NAME --uid UID
///   --grace-period-seconds N` from [`LAUNCHER_IMAGE`], with `POD_IP` from the downward API and
///   the memory/cpu requests of `spec.domain.resources.requests`; container
///   `guest-console-log` runs `/usr/bin/virt-tail` on the serial log. Both work in `/`.
/// - Volumes: `private` (emptyDir), `sockets` (hostPath, `DirectoryOrCreate`) and `images`
///   (hostPath, mounted read-only), each at the path [`launcher_api`] names.
/// - Readiness gate [`UNPAUSED_READINESS_GATE`]; restart policy Never; grace period from
///   [`launcher_grace_period_seconds`]. The VMI's `nodeSelector`, `tolerations` and `affinity`
///   are copied, so scheduling constraints (and `ErrorUnschedulable`) work.
pub fn build_launcher_pod(vmi: &VirtualMachineInstance) -> Pod {
    let name = vmi.metadata.name.clone().unwrap_or_default();
    let mut labels = vmi.metadata.labels.clone().unwrap_or_default();
    labels.insert(APP_LABEL.to_string(), VIRT_LAUNCHER.to_string());
    labels.insert(
        CREATED_BY_LABEL.to_string(),
        vmi.metadata.uid.clone().unwrap_or_default(),
    );
    labels.insert(ID_LABEL.to_string(), id(&name));
    labels.insert(VM_NAME_LABEL.to_string(), label_value(&name));

    let mut annotations: BTreeMap<String, String> = vmi
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(NODE_HOOK_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(DOMAIN_ANNOTATION.to_string(), name.clone());

    let metadata = ObjectMeta {
        name: Some(launcher_pod_name(
            &name,
            vmi.metadata.uid.as_deref().unwrap_or_default(),
        )),
        namespace: vmi.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![controller_ref(
            "VirtualMachineInstance",
            vmi.metadata.name.as_ref(),
            vmi.metadata.uid.as_ref(),
        )]),
        ..Default::default()
    };
    let spec = PodSpec {
        containers: vec![compute_container(vmi), console_log_container(vmi)],
        volumes: Some(launcher_volumes()),
        readiness_gates: Some(vec![PodReadinessGate {
            condition_type: UNPAUSED_READINESS_GATE.to_string(),
        }]),
        restart_policy: Some("Never".to_string()),
        termination_grace_period_seconds: Some(launcher_grace_period_seconds(vmi)),
        node_selector: spec_field::<BTreeMap<String, String>>(vmi, "nodeSelector"),
        tolerations: spec_field::<Vec<Toleration>>(vmi, "tolerations"),
        affinity: spec_field::<Affinity>(vmi, "affinity"),
        ..Default::default()
    };
    Pod {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// Adds `args` to the launcher Pod's `compute` command: the cluster's launcher settings (for
/// example `--accel kvm`), which the VMI does not carry.
pub fn with_launcher_args(pod: &mut Pod, args: &[String]) {
    if args.is_empty() {
        return;
    }
    let compute = pod
        .spec
        .iter_mut()
        .flat_map(|spec| spec.containers.iter_mut())
        .find(|c| c.name == COMPUTE_CONTAINER);
    if let Some(compute) = compute {
        compute
            .command
            .get_or_insert_default()
            .extend(args.iter().cloned());
    }
}

/// VMI phases.
pub mod phase {
    pub const PENDING: &str = "Pending";
    pub const SCHEDULING: &str = "Scheduling";
    pub const SCHEDULED: &str = "Scheduled";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
}

/// Reasons of the VMI conditions written here.
pub mod vmi_reason {
    pub const POD_NOT_EXISTS: &str = "PodNotExists";
    pub const POD_TERMINATING: &str = "PodTerminating";
    pub const GUEST_NOT_RUNNING: &str = "GuestNotRunning";
    pub const POD_CONDITION_MISSING: &str = "PodConditionMissing";
    pub const PAUSED_BY_USER: &str = "PausedByUser";
    /// kubelet's reason for a pod whose readiness gates are not all True.
    pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
}

/// KubeVirt's readiness gate on launcher Pods: False while the guest is paused, so that a paused
/// VM is not Ready and its Pod leaves Service endpoints.
pub const UNPAUSED_READINESS_GATE: &str = "kubevirt.io/virtual-machine-unpaused";

/// Order of the non-final phases; the phase never moves backwards.
fn rank(phase: &str) -> u8 {
    match phase {
        phase::SCHEDULING => 1,
        phase::SCHEDULED => 2,
        phase::RUNNING => 3,
        _ => 0,
    }
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn pod_condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The Pod is finished or being deleted.
fn pod_down_or_going_down(pod: &Pod) -> bool {
    matches!(pod_phase(pod), "Succeeded" | "Failed") || pod.metadata.deletion_timestamp.is_some()
}

/// `(reason, message)` of the first (init) container waiting on an image pull error.
fn image_error(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find_map(|w| {
            let reason = w.reason.as_deref()?;
            matches!(
                reason,
                status::reason::ERR_IMAGE_PULL | status::reason::IMAGE_PULL_BACK_OFF
            )
            .then(|| (reason.to_string(), w.message.clone().unwrap_or_default()))
        })
}

fn time_string(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<String> {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
}

/// A Pod condition as a VMI condition (same type, status, reason, message and timestamps).
fn from_pod_condition(c: &k8s_openapi::api::core::v1::PodCondition) -> Condition {
    Condition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        last_probe_time: c.last_probe_time.as_ref().and_then(time_string),
        last_transition_time: c.last_transition_time.as_ref().and_then(time_string),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

/// The phase the VMI moves to, given its Pod. On a node served by virt-handler a running Pod
/// only makes the VMI Scheduled: the handler moves it on once the domain runs.
fn next_phase(
    vmi: &VirtualMachineInstance,
    pod: Option<&Pod>,
    pod_create_expected: bool,
    deleting: bool,
    node_has_handler: bool,
) -> String {
    let current = vmi.phase();
    if run_strategy::is_final(vmi) {
        return current.to_string();
    }
    let Some(pod) = pod else {
        let had_pod = rank(current) > 0;
        let next = match (had_pod, deleting) {
            // The cache may be behind a Pod just created: nothing is concluded yet.
            _ if pod_create_expected && !deleting && had_pod => current,
            (false, false) => phase::PENDING,
            (true, false) | (false, true) => phase::FAILED,
            (true, true) => phase::SUCCEEDED,
        };
        return next.to_string();
    };
    match pod_phase(pod) {
        "Succeeded" => return phase::SUCCEEDED.to_string(),
        "Failed" => return phase::FAILED.to_string(),
        _ => {}
    }
    if pod.metadata.deletion_timestamp.is_some() && !deleting {
        return phase::FAILED.to_string();
    }
    let ready = pod_condition(pod, "Ready").is_some_and(|c| c.status == "True");
    let observed = if pod_phase(pod) == "Running" && ready && !node_has_handler {
        phase::RUNNING
    } else if pod_node(pod).is_some() {
        phase::SCHEDULED
    } else {
        phase::SCHEDULING
    };
    if rank(observed) >= rank(current) {
        observed.to_string()
    } else {
        current.to_string()
    }
}

/// The VMI's `Ready` condition for this Pod and the VMI's new phase.
/// The VMI's Ready condition, read off its launcher Pod. A paused VMI is not Ready, with the
/// words the Pod's Ready condition has in KubeVirt once virt-handler sets the
/// [`UNPAUSED_READINESS_GATE`] False; until a node agent writes that gate here (Part A §6),
/// the VMI's own `Paused` condition stands in for it, which costs no write at start.
fn vmi_ready_condition(pod: Option<&Pod>, new_phase: &str, paused: bool, now: &str) -> Condition {
    let not_ready = |reason: &str, message: &str| {
        status::new_condition(condition_type::READY, "False", reason, message, now)
    };
    let Some(pod) = pod else {
        return not_ready(
            vmi_reason::POD_NOT_EXISTS,
            "virt-launcher pod has not yet been scheduled",
        );
    };
    if pod_down_or_going_down(pod) {
        return not_ready(
            vmi_reason::POD_TERMINATING,
            "virt-launcher pod is terminating",
        );
    }
    if new_phase != phase::RUNNING {
        return not_ready(
            vmi_reason::GUEST_NOT_RUNNING,
            "Guest VM is not reported as running",
        );
    }
    if paused {
        return paused_ready_condition(now);
    }
    match pod_condition(pod, "Ready") {
        Some(c) => from_pod_condition(c),
        None => not_ready(
            vmi_reason::POD_CONDITION_MISSING,
            "virt-launcher pod is missing the Ready condition",
        ),
    }
}

/// The VMI's Ready condition while it is paused: False, worded as the Pod's Ready condition
/// once the [`UNPAUSED_READINESS_GATE`] is False.
pub fn paused_ready_condition(now: &str) -> Condition {
    status::new_condition(
        condition_type::READY,
        "False",
        vmi_reason::READINESS_GATES_NOT_READY,
        &format!(
            "the status of pod readiness gate \"{UNPAUSED_READINESS_GATE}\" is not \"True\", but False"
        ),
        now,
    )
}

/// The name of the VMI's pod-network interface: the first network with a `pod` source, else
/// the first interface, else `default`.
pub(crate) fn pod_interface_name(vmi: &VirtualMachineInstance) -> String {
    let from_network = vmi
        .spec
        .networks
        .iter()
        .flatten()
        .find(|n| n.pod.is_some())
        .map(|n| n.name.clone());
    let first_interface = || {
        vmi.spec
            .domain
            .devices
            .as_ref()
            .and_then(|d| d.interfaces.as_ref())
            .and_then(|i| i.first())
            .map(|i| i.name.clone())
    };
    from_network
        .or_else(first_interface)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// The VMI status read off its launcher Pod (Part A §6). `pod` is the VMI's launcher Pod as
/// seen now, if any; `pod_create_expected` says a Pod creation was issued that the cache does
/// not show yet; `now` is an RFC 3339 timestamp, written as is into conditions and
/// `phaseTransitionTimestamps`.
///
/// Phase (never moves backwards; a final phase never changes):
/// - no Pod, and the VMI never had one (phase unset or Pending) → `Pending`: the Pod is not
///   created yet, or not seen yet.
/// - no Pod after having had one (phase Scheduling, Scheduled or Running) → `Failed` while the
///   VMI is not being deleted, unless `pod_create_expected` (then unchanged); `Succeeded` when
///   it is being deleted (the stop that was asked for). A VMI deleted before it ever had a Pod
///   → `Failed`. Either way it becomes final, so its finalizers can go.
/// - Pod `Succeeded` → `Succeeded`; Pod `Failed` → `Failed`; Pod being deleted while the VMI
///   is not → `Failed`.
/// - Pod `Running` and Ready → `Running`; bound to a node → `Scheduled`; else `Scheduling`.
///
/// Also: `nodeName` once the Pod is bound; the Pod IP(s) as `interfaces[0]` while Running; the
/// `Ready` condition; `PodScheduled=False` copied from the Pod (removed once it schedules);
/// `Synchronized=False` with reason `ErrImagePull`/`ImagePullBackOff` and the container's
/// message while a container waits on its image; `Paused=True` (`PausedByUser`) when a VMI
/// with `startStrategy: Paused` becomes Running (only then, so an unpause is not undone);
/// a `phaseTransitionTimestamps` entry when the phase changes. Other status fields are kept.
pub fn vmi_status_from_pod(
    vmi: &VirtualMachineInstance,
    pod: Option<&Pod>,
    pod_create_expected: bool,
    now: &str,
) -> VirtualMachineInstanceStatus {
    vmi_status_from_pod_on_node(vmi, pod, pod_create_expected, false, now)
}

/// [`vmi_status_from_pod`] for a Pod on a node that may be served by virt-handler
/// (`node_has_handler`: the Node is labelled [`SCHEDULABLE_LABEL`]). There the VMI stops at
/// `Scheduled` while its Pod runs, and the phase `Running`, the `Paused` condition and
/// `interfaces` are left to the handler, which reads them off the domain.
pub fn vmi_status_from_pod_on_node(
    vmi: &VirtualMachineInstance,
    pod: Option<&Pod>,
    pod_create_expected: bool,
    node_has_handler: bool,
    now: &str,
) -> VirtualMachineInstanceStatus {
    status_for(
        vmi,
        pod,
        pod_create_expected,
        run_strategy::is_deleting(vmi),
        node_has_handler,
        now,
    )
}

/// The Node label virt-handler sets on the node it serves (value `"true"`).
pub const SCHEDULABLE_LABEL: &str = "kubevirt.io/schedulable";
/// The Node annotation where virt-handler says where it serves its HTTP API (`host:port`).
pub const HANDLER_ADDRESS_ANNOTATION: &str = "virt-toolkit.dev/handler-address";
/// The VMI label naming the node it runs on (set with `status.nodeName` on handler nodes).
pub const NODE_NAME_LABEL: &str = "kubevirt.io/nodeName";

/// The Node is served by a virt-handler (labelled [`SCHEDULABLE_LABEL`]`=true`).
pub fn node_has_handler(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SCHEDULABLE_LABEL))
        .is_some_and(|v| v == "true")
}

/// The virt-handler address of the Node, if a handler serves it.
pub fn handler_address(node: &k8s_openapi::api::core::v1::Node) -> Option<&str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(HANDLER_ADDRESS_ANNOTATION)
        .map(String::as_str)
        .filter(|a| !a.is_empty())
}

/// The status of a VMI whose launcher Pod is gone after the VMI was deleted: final
/// (`Succeeded` if it had a Pod, else `Failed`), as [`vmi_status_from_pod`] gives for a
/// deleted VMI without a Pod. A final VMI keeps its phase.
pub fn vmi_status_after_shutdown(
    vmi: &VirtualMachineInstance,
    now: &str,
) -> VirtualMachineInstanceStatus {
    status_for(vmi, None, false, true, false, now)
}

fn status_for(
    vmi: &VirtualMachineInstance,
    pod: Option<&Pod>,
    pod_create_expected: bool,
    deleting: bool,
    node_has_handler: bool,
    now: &str,
) -> VirtualMachineInstanceStatus {
    let mut status = vmi.status.clone().unwrap_or_default();
    let old_phase = vmi.phase().to_string();
    let new_phase = next_phase(vmi, pod, pod_create_expected, deleting, node_has_handler);
    let is_final = matches!(new_phase.as_str(), phase::SUCCEEDED | phase::FAILED);

    if let Some(node) = pod.and_then(pod_node) {
        status.node_name = Some(node.to_string());
    }

    if new_phase == phase::RUNNING
        && !node_has_handler
        && let Some(pod_status) = pod.and_then(|p| p.status.as_ref())
        && let Some(ip) = pod_status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
    {
        let mut ips: Vec<String> = pod_status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.clone())
            .filter(|ip| !ip.is_empty())
            .collect();
        if ips.is_empty() {
            ips.push(ip.to_string());
        }
        if status.interfaces.is_empty() {
            status.interfaces.push(InterfaceStatus {
                name: Some(pod_interface_name(vmi)),
                ..Default::default()
            });
        }
        let first = &mut status.interfaces[0];
        first.ip_address = Some(ip.to_string());
        first.ip_addresses = ips;
    }

    // A paused start is paused from its first Running status on.
    let starts_paused = !is_final
        && !node_has_handler
        && new_phase == phase::RUNNING
        && old_phase != phase::RUNNING
        && vmi.spec.start_strategy.as_deref() == Some("Paused");
    let paused = starts_paused
        || run_strategy::has_true_condition(&status.conditions, condition_type::PAUSED);
    let conditions = &mut status.conditions;
    set_condition(
        conditions,
        vmi_ready_condition(pod, &new_phase, paused, now),
    );
    if !is_final {
        let unscheduled = pod
            .and_then(|p| pod_condition(p, condition_type::POD_SCHEDULED))
            .filter(|c| c.status == "False");
        match unscheduled {
            Some(c) => set_condition(conditions, from_pod_condition(c)),
            None => status::remove_condition(conditions, condition_type::POD_SCHEDULED),
        }
        match pod.and_then(image_error) {
            Some((reason, message)) => set_condition(
                conditions,
                status::new_condition(
                    condition_type::SYNCHRONIZED,
                    "False",
                    &reason,
                    &message,
                    now,
                ),
            ),
            // On a handler's node the handler also reports images (a containerDisk missing on
            // the node) and clears the condition once the domain starts.
            None if node_has_handler => {}
            None => conditions.retain(|c| {
                c.type_ != condition_type::SYNCHRONIZED
                    || !matches!(
                        c.reason.as_deref(),
                        Some(status::reason::ERR_IMAGE_PULL | status::reason::IMAGE_PULL_BACK_OFF)
                    )
            }),
        }
    }
    if is_final {
        status::remove_condition(conditions, condition_type::PAUSED);
    } else if starts_paused {
        set_condition(
            conditions,
            status::new_condition(
                condition_type::PAUSED,
                "True",
                vmi_reason::PAUSED_BY_USER,
                "VMI was paused by user",
                now,
            ),
        );
    }

    if new_phase != old_phase {
        status.phase_transition_timestamps.push(PhaseTransition {
            phase: new_phase.clone(),
            phase_transition_timestamp: Some(now.to_string()),
        });
    }
    status.phase = Some(new_phase);
    status
}

#[cfg(test)]
mod tests;
