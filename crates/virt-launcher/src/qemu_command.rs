//! The QEMU command line for a VMI, as a pure function: VMI JSON and the launcher's settings in,
//! argv (no shell) and the files the launcher must prepare out.

use std::net::IpAddr;

use base64::Engine;
use serde_json::Value;
use thiserror::Error;
use virt_reconciler::launcher_api::Protocol;

use crate::cloud_init::SeedFiles;
use crate::image_ref::image_file_name;
use crate::quantity::parse_bytes;
use crate::vmi_spec::{Disk, Interface, Network, Vmi, Volume};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PlanError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

/// TCG's translation cache, in MiB. QEMU's default reserves 1 GiB and a small guest's boot fills
/// about 56 MiB of it; 16 MiB boots the guest as fast (measured: BENCHMARKS.md, "Real guests")
/// and keeps the Pod's overhead down, while 8 MiB retranslates so often that a boot takes 3x.
const TCG_TB_SIZE_MIB: u32 = 16;

/// The `-accel` option.
fn accel_option(accel: Accel) -> String {
    match accel {
        Accel::Tcg => format!("tcg,tb-size={TCG_TB_SIZE_MIB}"),
        Accel::Kvm => "kvm".to_string(),
    }
}

/// What the launcher decided before reading the VMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub accel: Accel,
    /// The containerDisk images, relative to the working directory.
    pub images_dir: String,
    /// QEMU's sockets, the console log and the generated disks.
    pub private_dir: String,
    /// The Pod's IP when it is local to this host: declared ports are forwarded on it.
    pub forward_address: Option<IpAddr>,
}

/// A seed disk to write before QEMU starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedDisk {
    pub path: String,
    pub files: SeedFiles,
}

/// A sparse raw file to create before QEMU starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDisk {
    pub path: String,
    pub bytes: u64,
}

/// Everything needed to start the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// QEMU's arguments, without the program.
    pub argv: Vec<String>,
    /// containerDisk files that must exist.
    pub images: Vec<String>,
    pub seeds: Vec<SeedDisk>,
    pub empty_disks: Vec<EmptyDisk>,
    pub qmp_socket: String,
    pub serial_log: String,
    /// Declared ports that are not forwarded (no local Pod IP).
    pub unforwarded_ports: Vec<u16>,
    /// Declared ports to forward on the local Pod IP once QEMU runs (QMP `hostfwd_add`, so
    /// that a port that cannot be bound is skipped instead of failing QEMU's start).
    pub declared_ports: Vec<(Protocol, u16)>,
    /// The pod network's `-netdev` id, which forwards name; none without an interface.
    pub netdev: Option<String>,
    /// The first interface's MAC address, when the VMI sets one.
    pub mac: Option<String>,
    /// `startStrategy: Paused`: QEMU starts stopped (`-S`).
    pub start_paused: bool,
}

/// The machine type KubeVirt reports on RHEL builds, unknown to upstream QEMU.
const RHEL_Q35_PREFIX: &str = "pc-q35-rhel";
/// User-mode networking laid out as KubeVirt's masquerade binding: the guest is 10.0.2.2
/// behind the gateway 10.0.2.1.
const USER_NETWORK: &str = "net=10.0.2.0/24,host=10.0.2.1,dhcpstart=10.0.2.2";

/// A value inside a QEMU `-opt a=b,c=d` list: commas are doubled.
pub fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

pub fn plan(vmi: &Value, settings: &Settings) -> Result<LaunchPlan, PlanError> {
    let vmi = Vmi::from_value(vmi).map_err(PlanError)?;
    let name = &vmi.metadata.name;
    if name.is_empty() {
        return fail("the VMI has no metadata.name");
    }
    let namespace = vmi.metadata.namespace.as_deref().unwrap_or("default");
    let domain = &vmi.spec.domain;
    let private = settings.private_dir.trim_end_matches('/');
    let serial_socket = format!("{private}/virt-serial0");
    let serial_log = format!("{private}/virt-serial0-log");
    let qmp_socket = format!("{private}/qmp.sock");

    let mut argv: Vec<String> = Vec::new();
    let mut arg = |flag: &str, value: String| {
        argv.push(flag.to_string());
        argv.push(value);
    };
    arg(
        "-name",
        format!("guest={namespace}_{name},debug-threads=on"),
    );

    let uuid = domain
        .firmware
        .as_ref()
        .and_then(|f| f.uuid.clone())
        .filter(|u| !u.is_empty())
        .or_else(|| vmi.metadata.uid.clone().filter(|u| !u.is_empty()));
    if let Some(uuid) = &uuid {
        if !is_uuid(uuid) {
            return fail(format!("firmware UUID {uuid:?} is not a UUID"));
        }
        arg("-uuid", uuid.clone());
    }

    // graphics=off: SeaBIOS writes to the serial console, so the console log shows the boot.
    arg("-machine", format!("{},graphics=off", machine_type(&vmi)?));
    arg("-accel", accel_option(settings.accel));
    arg("-smp", smp(&vmi)?);
    arg("-m", memory_mib(&vmi)?.to_string());

    let mut smbios = "type=1,manufacturer=KubeVirt,product=None,family=KubeVirt".to_string();
    if let Some(uuid) = &uuid {
        smbios.push_str(&format!(",uuid={uuid}"));
    }
    if let Some(serial) = domain.firmware.as_ref().and_then(|f| f.serial.as_deref()) {
        smbios.push_str(&format!(",serial={}", qemu_escape(serial)));
    }
    arg("-smbios", smbios);

    for flag in ["-nodefaults", "-no-user-config"] {
        argv.push(flag.to_string());
    }
    let start_paused = match vmi.spec.start_strategy.as_deref() {
        None | Some("") => false,
        Some("Paused") => true,
        Some(other) => return fail(format!("startStrategy {other:?} is not Paused")),
    };
    if start_paused {
        argv.push("-S".to_string());
    }
    let mut arg = |flag: &str, value: &str| {
        argv.push(flag.to_string());
        argv.push(value.to_string());
    };
    arg("-display", "none");
    arg("-boot", "strict=on");

    // A guest panic ends QEMU with a failure, which the launcher reports as Crashed.
    arg("-action", "panic=exit-failure");
    arg("-device", "pvpanic");
    arg(
        "-chardev",
        &format!(
            "socket,id=serial0,path={},server=on,wait=off,logfile={},logappend=on",
            qemu_escape(&serial_socket),
            qemu_escape(&serial_log)
        ),
    );
    arg("-serial", "chardev:serial0");
    arg(
        "-vnc",
        &format!("unix:{}", qemu_escape(&format!("{private}/virt-vnc"))),
    );
    arg(
        "-qmp",
        &format!("unix:{},server=on,wait=off", qemu_escape(&qmp_socket)),
    );

    let mut plan = LaunchPlan {
        argv,
        images: Vec::new(),
        seeds: Vec::new(),
        empty_disks: Vec::new(),
        qmp_socket,
        serial_log,
        unforwarded_ports: Vec::new(),
        declared_ports: Vec::new(),
        netdev: None,
        mac: None,
        start_paused,
    };
    add_disks(&vmi, settings, &mut plan)?;
    add_network(&vmi, settings, &mut plan)?;
    Ok(plan)
}

/// Raises the guest's memory (`-m`, MiB) to `floor_mib` when it asks for less: an image can
/// need more than a VM requests (docs/data-plane.md, "Images"). Returns `(asked, given)` when
/// it raised it.
pub fn raise_memory(plan: &mut LaunchPlan, floor_mib: u64) -> Option<(u64, u64)> {
    let at = plan.argv.iter().position(|a| a == "-m")? + 1;
    let asked: u64 = plan.argv.get(at)?.parse().ok()?;
    if asked >= floor_mib {
        return None;
    }
    plan.argv[at] = floor_mib.to_string();
    Some((asked, floor_mib))
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn machine_type(vmi: &Vmi) -> Result<String, PlanError> {
    let wanted = vmi
        .spec
        .domain
        .machine
        .as_ref()
        .map(|m| m.type_.as_str())
        .unwrap_or("");
    if wanted.is_empty() || wanted.starts_with(RHEL_Q35_PREFIX) {
        return Ok("q35".to_string());
    }
    if !wanted
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return fail(format!(
            "machine type {wanted:?} is not a QEMU machine name"
        ));
    }
    Ok(wanted.to_string())
}

fn smp(vmi: &Vmi) -> Result<String, PlanError> {
    let cpu = vmi.spec.domain.cpu.clone().unwrap_or_default();
    let sockets = cpu.sockets.unwrap_or(1);
    let cores = cpu.cores.unwrap_or(1);
    let threads = cpu.threads.unwrap_or(1);
    if sockets == 0 || cores == 0 || threads == 0 {
        return fail("spec.domain.cpu: sockets, cores and threads must be at least 1");
    }
    let total = sockets
        .checked_mul(cores)
        .and_then(|n| n.checked_mul(threads))
        .filter(|n| *n <= 1024)
        .ok_or_else(|| PlanError("spec.domain.cpu: more than 1024 vCPUs".into()))?;
    Ok(format!(
        "{total},sockets={sockets},cores={cores},threads={threads}"
    ))
}

fn quantity_bytes(value: &Value, field: &str) -> Result<u64, PlanError> {
    match value {
        Value::String(text) => parse_bytes(text).map_err(|e| PlanError(format!("{field}: {e}"))),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| PlanError(format!("{field}: {n} is not a whole number of bytes"))),
        other => fail(format!("{field}: {other} is not a quantity")),
    }
}

/// `-m` in MiB, rounded down: `64M` (64,000,000 bytes) is 61.
fn memory_mib(vmi: &Vmi) -> Result<u64, PlanError> {
    let domain = &vmi.spec.domain;
    let resources = domain.resources.clone().unwrap_or_default();
    let (value, field) = if let Some(guest) = domain.memory.as_ref().and_then(|m| m.guest.as_ref())
    {
        (guest, "spec.domain.memory.guest")
    } else if let Some(request) = resources.requests.get("memory") {
        (request, "spec.domain.resources.requests.memory")
    } else if let Some(limit) = resources.limits.get("memory") {
        (limit, "spec.domain.resources.limits.memory")
    } else {
        return fail(
            "the VMI sets no memory (spec.domain.memory.guest or spec.domain.resources.requests.memory)",
        );
    };
    let mib = quantity_bytes(value, field)? >> 20;
    if mib == 0 {
        return fail(format!("{field}: less than 1Mi"));
    }
    Ok(mib)
}

fn find_volume<'a>(vmi: &'a Vmi, disk: &Disk) -> Result<&'a Volume, PlanError> {
    vmi.spec
        .volumes
        .iter()
        .find(|v| v.name == disk.name)
        .ok_or_else(|| PlanError(format!("disk {:?} has no volume of that name", disk.name)))
}

fn add_disks(vmi: &Vmi, settings: &Settings, plan: &mut LaunchPlan) -> Result<(), PlanError> {
    let disks = &vmi.spec.domain.devices.disks;
    let any_boot_order = disks.iter().any(|d| d.boot_order.is_some());
    let private = settings.private_dir.trim_end_matches('/');
    for (index, disk) in disks.iter().enumerate() {
        let name = &disk.name;
        if disk.cdrom.is_some() || disk.lun.is_some() {
            return fail(format!(
                "disk {name:?}: cdrom and lun disks are not supported; use disk"
            ));
        }
        let target = disk.disk.clone().unwrap_or_default();
        match target.bus.as_deref() {
            None | Some("virtio") => {}
            Some(bus) => {
                return fail(format!(
                    "disk {name:?}: bus {bus:?} is not supported; use virtio"
                ));
            }
        }
        let volume = find_volume(vmi, disk)?;
        let mut drive = match volume_source(vmi, volume)? {
            VolumeSource::ContainerDisk(image) => {
                let file = format!(
                    "{}/{}",
                    settings.images_dir.trim_end_matches('/'),
                    image_file_name(image).map_err(|e| PlanError(e.to_string()))?
                );
                plan.images.push(file.clone());
                // snapshot=on: writes go to a temporary overlay, the image is never written.
                format!("file={},format=raw,snapshot=on", qemu_escape(&file))
            }
            VolumeSource::NoCloud(files) => {
                let path = format!("{private}/{name}-nocloud.img");
                let drive = format!("file={},format=raw", qemu_escape(&path));
                plan.seeds.push(SeedDisk { path, files });
                drive
            }
            VolumeSource::Empty(bytes) => {
                let path = format!("{private}/{name}-empty.img");
                let drive = format!("file={},format=raw", qemu_escape(&path));
                plan.empty_disks.push(EmptyDisk { path, bytes });
                drive
            }
        };
        drive.push_str(&format!(",if=none,id=drive-ua-{name}"));
        if target.read_only {
            drive.push_str(",readonly=on");
        }
        let mut device = format!("virtio-blk-pci,drive=drive-ua-{name},id=ua-{name}");
        if let Some(serial) = &disk.serial {
            device.push_str(&format!(",serial={}", qemu_escape(serial)));
        }
        let boot_index = match disk.boot_order {
            Some(order) => Some(order),
            None if !any_boot_order && index == 0 => Some(1),
            None => None,
        };
        if let Some(order) = boot_index {
            device.push_str(&format!(",bootindex={order}"));
        }
        plan.argv
            .extend(["-drive".into(), drive, "-device".into(), device]);
    }
    Ok(())
}

enum VolumeSource<'a> {
    ContainerDisk(&'a str),
    NoCloud(SeedFiles),
    Empty(u64),
}

fn volume_source<'a>(vmi: &Vmi, volume: &'a Volume) -> Result<VolumeSource<'a>, PlanError> {
    let name = &volume.name;
    let mut kinds: Vec<&str> = volume.other.keys().map(String::as_str).collect();
    if volume.container_disk.is_some() {
        kinds.push("containerDisk");
    }
    if volume.cloud_init_no_cloud.is_some() {
        kinds.push("cloudInitNoCloud");
    }
    if volume.empty_disk.is_some() {
        kinds.push("emptyDisk");
    }
    if kinds.len() != 1 {
        return fail(format!(
            "volume {name:?} must have exactly one type, has {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        ));
    }
    if let Some(disk) = &volume.container_disk {
        return Ok(VolumeSource::ContainerDisk(&disk.image));
    }
    if let Some(empty) = &volume.empty_disk {
        let bytes = quantity_bytes(&empty.capacity, &format!("volume {name:?} capacity"))?;
        if bytes == 0 {
            return fail(format!("volume {name:?}: emptyDisk capacity must not be 0"));
        }
        return Ok(VolumeSource::Empty(bytes.next_multiple_of(512)));
    }
    if volume.cloud_init_no_cloud.is_some() {
        return Ok(VolumeSource::NoCloud(seed_files(vmi, volume)?));
    }
    fail(format!(
        "volume {name:?}: {} volumes are not supported (containerDisk, cloudInitNoCloud and emptyDisk are)",
        kinds[0]
    ))
}

/// The seed's files from a `cloudInitNoCloud` volume.
pub fn seed_files(vmi: &Vmi, volume: &Volume) -> Result<SeedFiles, PlanError> {
    let name = &volume.name;
    let source = volume.cloud_init_no_cloud.clone().unwrap_or_default();
    let user_data = choose_data(
        name,
        "userData",
        source.user_data,
        source.user_data_base64,
        source.secret_ref.is_some(),
    )?
    .unwrap_or_default();
    let network_config = choose_data(
        name,
        "networkData",
        source.network_data,
        source.network_data_base64,
        source.network_data_secret_ref.is_some(),
    )?;
    let instance_id = vmi.metadata.uid.as_deref().unwrap_or(&vmi.metadata.name);
    Ok(SeedFiles {
        user_data,
        meta_data: SeedFiles::meta_data(instance_id, &vmi.metadata.name),
        network_config,
    })
}

fn choose_data(
    volume: &str,
    field: &str,
    plain: Option<String>,
    base64: Option<String>,
    secret: bool,
) -> Result<Option<Vec<u8>>, PlanError> {
    if secret {
        return fail(format!(
            "volume {volume:?}: cloudInitNoCloud {field} from a secretRef is not supported; put it inline"
        ));
    }
    match (plain, base64) {
        (Some(_), Some(_)) => fail(format!(
            "volume {volume:?}: set {field} or {field}Base64, not both"
        )),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map(Some)
            .map_err(|e| {
                PlanError(format!(
                    "volume {volume:?}: {field}Base64 is not base64: {e}"
                ))
            }),
        (None, None) => Ok(None),
    }
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn add_network(vmi: &Vmi, settings: &Settings, plan: &mut LaunchPlan) -> Result<(), PlanError> {
    let devices = &vmi.spec.domain.devices;
    let default_interface = Interface {
        name: "default".into(),
        model: None,
        mac_address: None,
        ports: Vec::new(),
    };
    let interfaces: Vec<&Interface> = if devices.interfaces.is_empty() {
        if devices.autoattach_pod_interface == Some(false) {
            return Ok(());
        }
        vec![&default_interface]
    } else {
        devices.interfaces.iter().collect()
    };
    if interfaces.len() > 1 {
        return fail("only one interface (on the pod network) is supported");
    }
    for interface in interfaces {
        let name = &interface.name;
        let network: Option<&Network> = vmi.spec.networks.iter().find(|n| &n.name == name);
        if !vmi.spec.networks.is_empty() && network.is_none() {
            return fail(format!("interface {name:?} has no network of that name"));
        }
        if network.is_some_and(|n| n.multus.is_some() || n.pod.is_none()) {
            return fail(format!(
                "interface {name:?}: only the pod network is supported"
            ));
        }
        let model = match interface.model.as_deref() {
            None | Some("virtio") => "virtio-net-pci",
            Some(model @ ("e1000" | "e1000e" | "rtl8139")) => model,
            Some(other) => {
                return fail(format!(
                    "interface {name:?}: model {other:?} is not supported (virtio, e1000, e1000e, rtl8139 are)"
                ));
            }
        };
        let netdev = format!(
            "user,id=netdev-ua-{name},{USER_NETWORK},hostname={}",
            qemu_escape(&vmi.metadata.name)
        );
        for port in &interface.ports {
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "TCP" | "tcp" => Protocol::Tcp,
                "UDP" | "udp" => Protocol::Udp,
                other => {
                    return fail(format!(
                        "interface {name:?}: port {}: protocol {other:?} is not TCP or UDP",
                        port.port
                    ));
                }
            };
            match settings.forward_address {
                // QEMU 7.2's hostfwd binds IPv4 addresses only.
                Some(IpAddr::V4(_)) => plan.declared_ports.push((protocol, port.port)),
                _ => plan.unforwarded_ports.push(port.port),
            }
        }
        plan.netdev = Some(format!("netdev-ua-{name}"));
        let mut device = format!("{model},netdev=netdev-ua-{name},id=ua-{name},romfile=");
        if let Some(mac) = &interface.mac_address {
            if !is_mac(mac) {
                return fail(format!("interface {name:?}: {mac:?} is not a MAC address"));
            }
            device.push_str(&format!(",mac={mac}"));
            plan.mac.get_or_insert(mac.clone());
        }
        plan.argv
            .extend(["-netdev".into(), netdev, "-device".into(), device]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            accel: Accel::Tcg,
            images_dir: "var/lib/virt-toolkit/images".into(),
            private_dir: "var/run/kubevirt-private".into(),
            forward_address: None,
        }
    }

    /// The seed document's vm-cirros, as its VMI.
    fn cirros() -> Value {
        json!({
            "metadata": {"name": "vm-cirros", "namespace": "ns1", "uid": "11111111-2222-3333-4444-555555555555"},
            "spec": {
                "domain": {
                    "devices": {"disks": [
                        {"name": "containerdisk", "disk": {"bus": "virtio"}},
                        {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}
                    ]},
                    "firmware": {"uuid": "5a9fc181-957e-5c32-9e5a-2de5e9673531"},
                    "machine": {"type": ""},
                    "resources": {"requests": {"memory": "64M"}}
                },
                "volumes": [
                    {"name": "containerdisk", "containerDisk": {"image": "kubevirt/cirros-container-disk-demo:latest"}},
                    {"name": "cloudinitdisk", "cloudInitNoCloud": {"userDataBase64": "IyEvYmluL3NoCmVjaG8gaGkK"}}
                ]
            }
        })
    }

    fn with(mut vmi: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = vmi.pointer_mut(parent).unwrap();
        match target {
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            _ => {
                target[key] = value;
            }
        }
        vmi
    }

    /// The value after `flag`, for each time the flag occurs.
    fn values(argv: &[String], flag: &str) -> Vec<String> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    #[test]
    fn an_image_floor_raises_the_guest_memory_and_never_lowers_it() {
        for (floor, want_m, want_change) in [
            (80, "80", Some((61, 80))),
            (61, "61", None),
            (32, "61", None),
        ] {
            let mut p = plan(&cirros(), &settings()).unwrap();
            assert_eq!(raise_memory(&mut p, floor), want_change, "floor {floor}");
            assert_eq!(
                values(&p.argv, "-m"),
                vec![want_m.to_string()],
                "floor {floor}"
            );
        }
    }

    #[test]
    fn the_cirros_vmi_makes_this_command() {
        let plan = plan(&cirros(), &settings()).unwrap();
        let want: Vec<&str> = vec![
            "-name",
            "guest=ns1_vm-cirros,debug-threads=on",
            "-uuid",
            "5a9fc181-957e-5c32-9e5a-2de5e9673531",
            "-machine",
            "q35,graphics=off",
            "-accel",
            "tcg,tb-size=16",
            "-smp",
            "1,sockets=1,cores=1,threads=1",
            "-m",
            "61",
            "-smbios",
            "type=1,manufacturer=KubeVirt,product=None,family=KubeVirt,uuid=5a9fc181-957e-5c32-9e5a-2de5e9673531",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-boot",
            "strict=on",
            "-action",
            "panic=exit-failure",
            "-device",
            "pvpanic",
            "-chardev",
            "socket,id=serial0,path=var/run/kubevirt-private/virt-serial0,server=on,wait=off,logfile=var/run/kubevirt-private/virt-serial0-log,logappend=on",
            "-serial",
            "chardev:serial0",
            "-vnc",
            "unix:var/run/kubevirt-private/virt-vnc",
            "-qmp",
            "unix:var/run/kubevirt-private/qmp.sock,server=on,wait=off",
            "-drive",
            "file=var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img,format=raw,snapshot=on,if=none,id=drive-ua-containerdisk",
            "-device",
            "virtio-blk-pci,drive=drive-ua-containerdisk,id=ua-containerdisk,bootindex=1",
            "-drive",
            "file=var/run/kubevirt-private/cloudinitdisk-nocloud.img,format=raw,if=none,id=drive-ua-cloudinitdisk",
            "-device",
            "virtio-blk-pci,drive=drive-ua-cloudinitdisk,id=ua-cloudinitdisk",
            "-netdev",
            "user,id=netdev-ua-default,net=10.0.2.0/24,host=10.0.2.1,dhcpstart=10.0.2.2,hostname=vm-cirros",
            "-device",
            "virtio-net-pci,netdev=netdev-ua-default,id=ua-default,romfile=",
        ];
        assert_eq!(plan.argv, want);
        assert_eq!(
            plan.images,
            ["var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img"]
        );
        assert_eq!(plan.qmp_socket, "var/run/kubevirt-private/qmp.sock");
        assert_eq!(plan.serial_log, "var/run/kubevirt-private/virt-serial0-log");
        assert_eq!(
            plan.seeds,
            [SeedDisk {
                path: "var/run/kubevirt-private/cloudinitdisk-nocloud.img".into(),
                files: SeedFiles {
                    user_data: b"#!/bin/sh\necho hi\n".to_vec(),
                    meta_data: "instance-id: 11111111-2222-3333-4444-555555555555\nlocal-hostname: vm-cirros\n".into(),
                    network_config: None,
                },
            }]
        );
        assert!(plan.empty_disks.is_empty());
        assert_eq!(plan.mac, None);
    }

    #[test]
    fn each_field_changes_its_flag() {
        // (what, pointer, value, flag, the flag's values)
        let cases: Vec<(&str, &str, Value, &str, Vec<&str>)> = vec![
            (
                "machine type",
                "/spec/domain/machine/type",
                json!("pc-i440fx-7.2"),
                "-machine",
                vec!["pc-i440fx-7.2,graphics=off"],
            ),
            (
                "RHEL machine type",
                "/spec/domain/machine/type",
                json!("pc-q35-rhel9.4.0"),
                "-machine",
                vec!["q35,graphics=off"],
            ),
            (
                "cpu topology",
                "/spec/domain/cpu",
                json!({"cores": 2, "sockets": 2, "threads": 1}),
                "-smp",
                vec!["4,sockets=2,cores=2,threads=1"],
            ),
            (
                "cores only",
                "/spec/domain/cpu",
                json!({"cores": 3}),
                "-smp",
                vec!["3,sockets=1,cores=3,threads=1"],
            ),
            (
                "guest memory wins",
                "/spec/domain/memory",
                json!({"guest": "1Gi"}),
                "-m",
                vec!["1024"],
            ),
            (
                "memory as bytes",
                "/spec/domain/resources/requests/memory",
                json!(134217728),
                "-m",
                vec!["128"],
            ),
            (
                "limits alone",
                "/spec/domain/resources",
                json!({"limits": {"memory": "2G"}}),
                "-m",
                vec!["1907"],
            ),
            (
                "firmware serial",
                "/spec/domain/firmware/serial",
                json!("abc,def"),
                "-smbios",
                vec![
                    "type=1,manufacturer=KubeVirt,product=None,family=KubeVirt,uuid=5a9fc181-957e-5c32-9e5a-2de5e9673531,serial=abc,,def",
                ],
            ),
            (
                "the VMI UID when no firmware UUID",
                "/spec/domain/firmware",
                json!({}),
                "-uuid",
                vec!["11111111-2222-3333-4444-555555555555"],
            ),
            (
                "boot order",
                "/spec/domain/devices/disks/1/bootOrder",
                json!(1),
                "-device",
                vec![
                    "pvpanic",
                    "virtio-blk-pci,drive=drive-ua-containerdisk,id=ua-containerdisk",
                    "virtio-blk-pci,drive=drive-ua-cloudinitdisk,id=ua-cloudinitdisk,bootindex=1",
                    "virtio-net-pci,netdev=netdev-ua-default,id=ua-default,romfile=",
                ],
            ),
            (
                "read-only disk",
                "/spec/domain/devices/disks/0/disk/readOnly",
                json!(true),
                "-drive",
                vec![
                    "file=var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img,format=raw,snapshot=on,if=none,id=drive-ua-containerdisk,readonly=on",
                    "file=var/run/kubevirt-private/cloudinitdisk-nocloud.img,format=raw,if=none,id=drive-ua-cloudinitdisk",
                ],
            ),
            (
                "registry image",
                "/spec/volumes/0/containerDisk/image",
                json!("quay.io/kubevirt/cirros-container-disk-demo:v1"),
                "-drive",
                vec![
                    "file=var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img,format=raw,snapshot=on,if=none,id=drive-ua-containerdisk",
                    "file=var/run/kubevirt-private/cloudinitdisk-nocloud.img,format=raw,if=none,id=drive-ua-cloudinitdisk",
                ],
            ),
            (
                "empty disk",
                "/spec/volumes/1",
                json!({"name": "cloudinitdisk", "emptyDisk": {"capacity": "1Gi"}}),
                "-drive",
                vec![
                    "file=var/lib/virt-toolkit/images/kubevirt_cirros-container-disk-demo.img,format=raw,snapshot=on,if=none,id=drive-ua-containerdisk",
                    "file=var/run/kubevirt-private/cloudinitdisk-empty.img,format=raw,if=none,id=drive-ua-cloudinitdisk",
                ],
            ),
            (
                "interface with MAC, model and ports (not forwarded)",
                "/spec/domain/devices/interfaces",
                json!([{"name": "default", "model": "e1000", "macAddress": "02:00:00:aa:bb:cc", "masquerade": {}, "ports": [{"port": 22}]}]),
                "-device",
                vec![
                    "pvpanic",
                    "virtio-blk-pci,drive=drive-ua-containerdisk,id=ua-containerdisk,bootindex=1",
                    "virtio-blk-pci,drive=drive-ua-cloudinitdisk,id=ua-cloudinitdisk",
                    "e1000,netdev=netdev-ua-default,id=ua-default,romfile=,mac=02:00:00:aa:bb:cc",
                ],
            ),
            (
                "no interface when autoattach is off",
                "/spec/domain/devices/autoattachPodInterface",
                json!(false),
                "-netdev",
                vec![],
            ),
        ];
        for (what, pointer, value, flag, want) in cases {
            let plan = plan(&with(cirros(), pointer, value), &settings())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(values(&plan.argv, flag), want, "{what}");
        }
    }

    #[test]
    fn start_strategy_paused_starts_qemu_stopped() {
        let vmi = with(cirros(), "/spec/startStrategy", json!("Paused"));
        let plan = plan(&vmi, &settings()).unwrap();
        assert!(plan.start_paused);
        let at = plan
            .argv
            .iter()
            .position(|a| a == "-no-user-config")
            .unwrap();
        assert_eq!(plan.argv[at + 1], "-S");
        let other = with(cirros(), "/spec/startStrategy", json!("Later"));
        assert_eq!(
            super::plan(&other, &settings()),
            Err(PlanError(r#"startStrategy "Later" is not Paused"#.into()))
        );
    }

    #[test]
    fn ports_are_forwarded_on_a_local_pod_ip() {
        let vmi = with(
            cirros(),
            "/spec/domain/devices/interfaces",
            json!([{"name": "default", "ports": [{"port": 22}, {"port": 53, "protocol": "UDP"}]}]),
        );
        let local = Settings {
            forward_address: Some("127.0.0.1".parse().unwrap()),
            accel: Accel::Kvm,
            ..settings()
        };
        let plan_local = plan(&vmi, &local).unwrap();
        // Forwarded over QMP once QEMU runs, not on its command line.
        assert_eq!(
            values(&plan_local.argv, "-netdev"),
            [
                "user,id=netdev-ua-default,net=10.0.2.0/24,host=10.0.2.1,dhcpstart=10.0.2.2,hostname=vm-cirros"
            ]
        );
        assert_eq!(
            plan_local.declared_ports,
            [(Protocol::Tcp, 22), (Protocol::Udp, 53)]
        );
        assert_eq!(plan_local.netdev.as_deref(), Some("netdev-ua-default"));
        assert_eq!(values(&plan_local.argv, "-accel"), ["kvm"]);
        assert!(plan_local.unforwarded_ports.is_empty());
        let simulated = plan(&vmi, &settings()).unwrap();
        assert_eq!(simulated.unforwarded_ports, [22, 53]);
        assert!(simulated.declared_ports.is_empty());
        let no_interface = with(
            cirros(),
            "/spec/domain/devices/autoattachPodInterface",
            json!(false),
        );
        assert_eq!(plan(&no_interface, &local).unwrap().netdev, None);
    }

    #[test]
    fn cloud_init_data_is_decoded() {
        // (the volume's source, user-data, network-config)
        type Case = (Value, &'static [u8], Option<&'static [u8]>);
        let cases: Vec<Case> = vec![
            (
                json!({"userData": "#cloud-config\n"}),
                b"#cloud-config\n",
                None,
            ),
            (
                json!({"userDataBase64": "aGk=", "networkData": "version: 2\n"}),
                b"hi",
                Some(b"version: 2\n"),
            ),
            (json!({"networkDataBase64": "djI="}), b"", Some(b"v2")),
        ];
        for (source, user_data, network) in cases {
            let vmi = with(cirros(), "/spec/volumes/1/cloudInitNoCloud", source.clone());
            let plan = plan(&vmi, &settings()).unwrap();
            assert_eq!(plan.seeds[0].files.user_data, user_data, "{source}");
            assert_eq!(
                plan.seeds[0].files.network_config.as_deref(),
                network,
                "{source}"
            );
        }
    }

    #[test]
    fn bad_vmis_are_refused_with_a_clear_error() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/metadata/name", json!(""), "the VMI has no metadata.name"),
            (
                "/spec/domain/resources",
                json!({}),
                "the VMI sets no memory (spec.domain.memory.guest or spec.domain.resources.requests.memory)",
            ),
            (
                "/spec/domain/resources/requests/memory",
                json!("64Q"),
                r#"spec.domain.resources.requests.memory: invalid quantity "64Q": unknown suffix"#,
            ),
            (
                "/spec/domain/resources/requests/memory",
                json!("512Ki"),
                "spec.domain.resources.requests.memory: less than 1Mi",
            ),
            (
                "/spec/domain/cpu",
                json!({"cores": 0}),
                "spec.domain.cpu: sockets, cores and threads must be at least 1",
            ),
            (
                "/spec/domain/firmware/uuid",
                json!("nope"),
                r#"firmware UUID "nope" is not a UUID"#,
            ),
            (
                "/spec/domain/machine/type",
                json!("q35,accel=kvm"),
                r#"machine type "q35,accel=kvm" is not a QEMU machine name"#,
            ),
            (
                "/spec/domain/devices/disks/0/disk/bus",
                json!("sata"),
                r#"disk "containerdisk": bus "sata" is not supported; use virtio"#,
            ),
            (
                "/spec/domain/devices/disks/0",
                json!({"name": "containerdisk", "cdrom": {}}),
                r#"disk "containerdisk": cdrom and lun disks are not supported; use disk"#,
            ),
            (
                "/spec/domain/devices/disks/0/name",
                json!("other"),
                r#"disk "other" has no volume of that name"#,
            ),
            (
                "/spec/volumes/0",
                json!({"name": "containerdisk", "persistentVolumeClaim": {"claimName": "x"}}),
                r#"volume "containerdisk": persistentVolumeClaim volumes are not supported (containerDisk, cloudInitNoCloud and emptyDisk are)"#,
            ),
            (
                "/spec/volumes/0",
                json!({"name": "containerdisk"}),
                r#"volume "containerdisk" must have exactly one type, has none"#,
            ),
            (
                "/spec/volumes/0/containerDisk/image",
                json!("Bad/Image"),
                r#"containerDisk image "Bad/Image": the repository may hold only lowercase letters, digits, '.', '_', '-' and '/'"#,
            ),
            (
                "/spec/volumes/1/cloudInitNoCloud",
                json!({"secretRef": {"name": "s"}}),
                r#"volume "cloudinitdisk": cloudInitNoCloud userData from a secretRef is not supported; put it inline"#,
            ),
            (
                "/spec/volumes/1/cloudInitNoCloud",
                json!({"userDataBase64": "%%%"}),
                r#"volume "cloudinitdisk": userDataBase64 is not base64: Invalid symbol 37, offset 0."#,
            ),
            (
                "/spec/volumes/1/cloudInitNoCloud",
                json!({"userData": "a", "userDataBase64": "YQ=="}),
                r#"volume "cloudinitdisk": set userData or userDataBase64, not both"#,
            ),
            (
                "/spec/domain/devices/interfaces",
                json!([{"name": "default", "model": "ne2k_pci"}]),
                r#"interface "default": model "ne2k_pci" is not supported (virtio, e1000, e1000e, rtl8139 are)"#,
            ),
            (
                "/spec/domain/devices/interfaces",
                json!([{"name": "default", "macAddress": "zz"}]),
                r#"interface "default": "zz" is not a MAC address"#,
            ),
            (
                "/spec/domain/devices/interfaces",
                json!([{"name": "a"}, {"name": "b"}]),
                "only one interface (on the pod network) is supported",
            ),
            (
                "/spec/networks",
                json!([{"name": "default", "multus": {"networkName": "x"}}]),
                r#"interface "default": only the pod network is supported"#,
            ),
        ];
        for (pointer, value, want) in cases {
            let got = plan(&with(cirros(), pointer, value.clone()), &settings());
            assert_eq!(
                got.map(|_| ()),
                Err(PlanError(want.into())),
                "{pointer} = {value}"
            );
        }
        let not_a_vmi = plan(&json!({"spec": 5}), &settings()).unwrap_err().0;
        assert!(
            not_a_vmi.starts_with("the VMI does not parse: "),
            "{not_a_vmi}"
        );
    }
}
