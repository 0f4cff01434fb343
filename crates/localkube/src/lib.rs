//! localkube: a Kubernetes API server in one process, for tests and playgrounds.
//!
//! It serves the built-in resources that the toolkit and kubectl use, and any CRD it is given,
//! over HTTPS with a bearer token, and writes a kubeconfig that kubectl and kube-rs accept.
//! Objects live in memory. See the crate README for what is implemented and what is approximated.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = localkube::LocalKube::builder().start().await?;
//! let client = server.client().await?;
//! # let _ = client; Ok(()) }
//! ```

pub mod api;
pub mod apply;
pub mod builtin;
pub mod cli;
pub mod crd;
pub mod discovery;
pub mod events;
pub mod gc;
pub mod http;
pub mod kubeconfig;
pub mod node;
pub mod object_index;
pub mod openapi;
pub mod packing;
pub mod process;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selectors;
pub mod status;
pub mod store;
pub mod strategic;
pub mod table;
pub mod tls;
pub mod validation;

mod server;

pub use registry::MountedGroup;
pub use server::{Builder, LocalKube, Server};

/// The Kubernetes version the server reports and implements.
pub const KUBE_VERSION: &str = "v1.33.0";
