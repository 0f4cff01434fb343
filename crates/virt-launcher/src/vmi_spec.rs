//! The part of a VirtualMachineInstance the launcher reads, as strict serde types: a field of
//! the wrong type is an error that names it, unknown fields are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Vmi {
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `Paused`: QEMU starts with its CPUs stopped until `unpause`.
    pub start_strategy: Option<String>,
    #[serde(default)]
    pub domain: Domain,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub networks: Vec<Network>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Domain {
    #[serde(default)]
    pub machine: Option<Machine>,
    #[serde(default)]
    pub cpu: Option<Cpu>,
    #[serde(default)]
    pub memory: Option<Memory>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub firmware: Option<Firmware>,
    #[serde(default)]
    pub devices: Devices,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Machine {
    #[serde(default, rename = "type")]
    pub type_: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cpu {
    pub cores: Option<u32>,
    pub sockets: Option<u32>,
    pub threads: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Memory {
    /// A quantity: a string, or a number of bytes.
    pub guest: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, Value>,
    #[serde(default)]
    pub limits: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Firmware {
    pub uuid: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Devices {
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    pub autoattach_pod_interface: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub name: String,
    pub boot_order: Option<u32>,
    pub disk: Option<DiskTarget>,
    pub cdrom: Option<Value>,
    pub lun: Option<Value>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskTarget {
    pub bus: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    pub model: Option<String>,
    pub mac_address: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Port {
    pub port: u16,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    pub name: String,
    pub pod: Option<Value>,
    pub multus: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub container_disk: Option<ContainerDisk>,
    pub cloud_init_no_cloud: Option<CloudInitNoCloud>,
    pub empty_disk: Option<EmptyDisk>,
    /// Every other key: the volume types the launcher does not support.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContainerDisk {
    pub image: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudInitNoCloud {
    pub user_data: Option<String>,
    pub user_data_base64: Option<String>,
    pub secret_ref: Option<Value>,
    pub network_data: Option<String>,
    pub network_data_base64: Option<String>,
    pub network_data_secret_ref: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmptyDisk {
    pub capacity: Value,
}

impl Vmi {
    /// Reads the VMI; the error names the offending field.
    pub fn from_value(vmi: &Value) -> Result<Vmi, String> {
        serde_json::from_value(vmi.clone()).map_err(|e| format!("the VMI does not parse: {e}"))
    }
}
