//! localkube: a Kubernetes API server in one process, for tests and playgrounds.
//!
//! It serves the built-in resources that the toolkit and kubectl use, and any CRD it is given,
//! over HTTPS with a bearer token, and writes a kubeconfig that kubectl and kube-rs accept.
//! That token is the admin's (`system:masters`); ServiceAccount tokens from TokenRequest are
//! authorized by RBAC, as kube-apiserver does.
//! Objects live in memory; with a data directory ([`Builder::data_dir`]) they are also written
//! to disk before each write is answered, and a restart finds them again ([`durable`]). See the
//! project README for what is implemented and what is approximated.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = localkube::LocalKube::builder().start().await?;
//! let client = server.client().await?;
//! # let _ = client; Ok(()) }
//! ```

pub mod access;
pub(crate) mod aggregation;
pub(crate) mod aggregation_proxy;
pub(crate) mod api;
pub(crate) mod apply;
pub(crate) mod builtin;
pub mod cli;
pub(crate) mod crd;
pub(crate) mod discovery;
pub(crate) mod disruption;
pub mod durable;
pub(crate) mod events;
pub(crate) mod eviction;
pub mod faults;
#[cfg(test)]
mod fuzz;
pub(crate) mod gc;
pub(crate) mod go_json;
pub(crate) mod http;
pub(crate) mod jsonpath;
pub(crate) mod kubeconfig;
pub mod node;
pub(crate) mod node_proxy;
pub(crate) mod object_index;
pub(crate) mod openapi;
pub mod packing;
pub(crate) mod pod_log;
pub(crate) mod protobuf;
pub(crate) mod rbac;
pub(crate) mod registry;
pub(crate) mod sa_tokens;
pub(crate) mod schema;
pub(crate) mod selectors;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod strategic;
pub(crate) mod strategy;
pub(crate) mod table;
pub(crate) mod tls;
pub(crate) mod tls_client;
pub(crate) mod validation;
pub(crate) mod webhook_dispatch;
pub(crate) mod webhooks;

mod server;

pub use faults::{Fault, FaultInjector, FaultPlan};
pub use registry::MountedGroup;
pub use server::{Builder, LocalKube, Server};
pub use tls::{FRONT_PROXY_CLIENT_CN, FrontProxy};

/// The Kubernetes version the server reports and implements.
pub const KUBE_VERSION: &str = "v1.33.0";
