//! virt-reconciler: the KubeVirt API types and their CRDs, the lifecycle rules (what start,
//! stop and restart mean for each run strategy) and the status rules, as pure functions, and
//! the controller loops that make a cluster match (VM → VMI → launcher Pod).

pub mod admission;
pub mod client_retry;
pub mod controller;
pub mod crds;
pub mod decide;
pub mod domain_status;
pub mod execute;
pub mod firmware;
pub mod handler_client;
pub mod intent;
pub mod kube_error;
pub mod launcher_api;
pub mod names;
pub mod request;
pub mod run_strategy;
pub mod status;
pub mod types;
pub mod version;
pub mod vmi;

pub use types::*;
