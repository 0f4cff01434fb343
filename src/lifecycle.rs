//! What start, stop and restart share: the request (Part A §4) over one of two transports,
//! and `--wait` (Part A §8).
//!
//! - **Subresource API.** One PUT to
//!   `/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/{action}` with
//!   the body KubeVirt's virtctl sends (Part B §2.1 step 5).
//! - **Client side.** When that PUT gets a 404 and discovery confirms that the cluster does not
//!   serve `subresources.kubevirt.io/v1`, virtctl hands the same request to the same executor
//!   the subresource API runs (`virt_reconciler::execute::lifecycle`).
//!
//! Both give the same `metav1.Status` message on failure, which the commands wrap.

use std::io::IsTerminal;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use tokio::time::Instant;
use virt_reconciler::intent::IntentError;
use virt_reconciler::kube_error;
use virt_reconciler::request::{LifecycleRequest, VmiRequest};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance, execute};

use crate::client::{Connection, error_chain};
use crate::names::path_segment;

/// The API group of the lifecycle subresources.
pub const SUBRESOURCE_GROUP: &str = "subresources.kubevirt.io";

/// How long `--wait` waits without `--timeout`.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// How the request was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Subresource,
    ClientSide,
}

/// A refused or failed request: the `metav1.Status` message (or the transport error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub message: String,
}

impl From<IntentError> for RequestError {
    fn from(e: IntentError) -> Self {
        RequestError { message: e.message }
    }
}

/// Sends `request` for VM `name` in `ns`, through the subresource API when the cluster serves
/// it and from the client otherwise.
pub async fn send(
    conn: &Connection,
    name: &str,
    request: &LifecycleRequest,
) -> Result<Transport, RequestError> {
    let (client, ns) = (&conn.client, conn.namespace.as_str());
    let path = subresource_path("virtualmachines", ns, name, request.verb());
    let put = http::Request::put(path.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(request.body())
        .map_err(|e| RequestError {
            message: format!("invalid request: {e}"),
        })?;
    match client.request_text(put).await {
        Ok(_) => Ok(Transport::Subresource),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            if group_served(client).await {
                Err(RequestError {
                    message: status.message.clone(),
                })
            } else {
                execute::lifecycle(client, ns, name, request).await?;
                Ok(Transport::ClientSide)
            }
        }
        Err(kube::Error::Api(status)) => Err(RequestError {
            message: status.message.clone(),
        }),
        // As Go's virtctl: the method, the URL, then why it failed.
        Err(e) => Err(RequestError {
            message: format!(
                "Put \"{}{path}\": {}",
                conn.server.trim_end_matches('/'),
                error_chain(&e)
            ),
        }),
    }
}

/// `/apis/subresources.kubevirt.io/v1/namespaces/{ns}/{plural}/{name}/{verb}`, each segment
/// percent-encoded so that no name can turn into another path or a query.
fn subresource_path(plural: &str, ns: &str, name: &str, verb: &str) -> String {
    format!(
        "/apis/{SUBRESOURCE_GROUP}/v1/namespaces/{}/{plural}/{}/{}",
        path_segment(ns),
        path_segment(name),
        path_segment(verb)
    )
}

/// Why a VMI subresource request (pause, unpause) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmiRequestError {
    /// 404 from a cluster that serves the group: the VMI does not exist.
    NotFound(String),
    /// The cluster does not serve `subresources.kubevirt.io`: there is no client-side way.
    GroupNotServed,
    /// Any other refusal or transport error.
    Other(String),
}

/// A VMI command with no options of its own (`reset`, `soft-reboot`): sends `request`, prints
/// `VMI NAME was scheduled to COMMAND`, or fails with `Error DOING VirtualMachineInstance NAME: …`
/// (`doing` in KubeVirt's words, which scripts may match on).
pub async fn run_plain_vmi_command(
    connection: &crate::client::LazyConnection,
    name: &str,
    request: &VmiRequest,
    command: &str,
    doing: &str,
) -> anyhow::Result<()> {
    let conn = connection
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("Cannot obtain KubeVirt client: {e:#}"))?;
    let prefix = format!("Error {doing} VirtualMachineInstance {name}");
    match send_vmi(conn, name, request).await {
        Ok(()) => {
            println!("VMI {name} was scheduled to {command}");
            Ok(())
        }
        Err(VmiRequestError::GroupNotServed) => anyhow::bail!(
            "{prefix}: {command} needs the KubeVirt subresource API ({SUBRESOURCE_GROUP}), \
             which this cluster does not serve"
        ),
        Err(VmiRequestError::NotFound(msg) | VmiRequestError::Other(msg)) => {
            anyhow::bail!("{prefix}: {msg}")
        }
    }
}

/// PUT `.../virtualmachineinstances/{name}/{verb}` with `{}` or `{"dryRun":["All"]}`.
pub async fn send_vmi(
    conn: &Connection,
    name: &str,
    request: &VmiRequest,
) -> Result<(), VmiRequestError> {
    let path = subresource_path(
        "virtualmachineinstances",
        &conn.namespace,
        name,
        request.verb(),
    );
    let put = http::Request::put(path.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(request.body())
        .map_err(|e| VmiRequestError::Other(format!("invalid request: {e}")))?;
    match conn.client.request_text(put).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            if group_served(&conn.client).await {
                Err(VmiRequestError::NotFound(status.message.clone()))
            } else {
                Err(VmiRequestError::GroupNotServed)
            }
        }
        Err(kube::Error::Api(status)) => Err(VmiRequestError::Other(status.message.clone())),
        Err(e) => Err(VmiRequestError::Other(format!(
            "Put \"{}{path}\": {}",
            conn.server.trim_end_matches('/'),
            error_chain(&e)
        ))),
    }
}

/// Whether discovery lists `subresources.kubevirt.io/v1`. Only a 404 counts as "no": on any
/// other answer the original 404 is reported as it is.
async fn group_served(client: &Client) -> bool {
    let request = http::Request::get(format!("/apis/{SUBRESOURCE_GROUP}/v1"))
        .body(Vec::new())
        .expect("static request");
    !matches!(
        client.request_text(request).await,
        Err(kube::Error::Api(status)) if status.code == 404
    )
}

/// What `--wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// printableStatus Running (Paused for `start --paused`) with a Running VMI whose UID is
    /// not `not_uid` (the VMI that existed before the request).
    Running {
        not_uid: Option<String>,
        paused: bool,
    },
    /// printableStatus Stopped and no VMI.
    Stopped,
}

impl Goal {
    fn describe(&self) -> &'static str {
        match self {
            Goal::Running { paused: true, .. } => "Paused",
            Goal::Running { .. } => "Running",
            Goal::Stopped => "Stopped",
        }
    }
}

/// The UID of the VM's current VMI, read before a request that waits (`deadline` set) and
/// bounded by that deadline; `None` when nothing waits, or there is no VMI.
pub async fn vmi_uid_before(
    conn: &Connection,
    name: &str,
    deadline: Option<Instant>,
) -> Option<String> {
    deadline?;
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(conn.client.clone(), &conn.namespace);
    within(deadline, vmis.get_opt(name))
        .await?
        .ok()
        .flatten()
        .and_then(|v| v.metadata.uid)
}

/// What a waiting command says when its deadline passes.
pub fn timed_out(name: &str, goal: &Goal, timeout: Duration, last: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "timed out after {} waiting for VM {name} to be {}; last status: {last}",
        humantime::format_duration(timeout),
        goal.describe()
    )
}

/// The last status when the API server did not answer before the deadline.
pub const NO_ANSWER: &str = "no answer from the API server";

/// `timeout` from now; a timeout too long for the clock means no deadline in practice.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// `request`, unless `deadline` passes first (then `None`); no deadline, no limit.
pub async fn within<F: Future>(deadline: Option<Instant>, request: F) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, request).await.ok(),
        None => Some(request.await),
    }
}

/// Polls the VM and its VMI until `goal` holds, or fails at `deadline` (`timeout` after the
/// command began) with the last status seen; every request ends by the deadline too. Status
/// changes are shown on stderr when it is a terminal.
pub async fn wait(
    client: &Client,
    ns: &str,
    name: &str,
    goal: &Goal,
    timeout: Duration,
    deadline: Instant,
) -> anyhow::Result<()> {
    let progress = std::io::stderr().is_terminal();
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
    let mut last = String::from("unknown");
    loop {
        let vm = within(Some(deadline), vms.get_opt(name)).await;
        let vmi = within(Some(deadline), vmis.get_opt(name)).await;
        let status = match &vm {
            Some(Ok(Some(vm))) => vm
                .status
                .as_ref()
                .and_then(|s| s.printable_status.clone())
                .unwrap_or_else(|| "Unknown".to_string()),
            Some(Ok(None)) => "NotFound".to_string(),
            Some(Err(e)) => format!("unreachable ({})", kube_error::message(e)),
            None => NO_ANSWER.to_string(),
        };
        if status != last {
            if progress {
                eprintln!("VM {name}: {status}");
            }
            last = status.clone();
        }
        let vmi = vmi.and_then(Result::ok).flatten();
        let done = match goal {
            Goal::Running { not_uid, paused } => {
                let want = if *paused { "Paused" } else { "Running" };
                status == want
                    && vmi.as_ref().is_some_and(|v| {
                        v.phase() == "Running" && v.metadata.uid.as_ref() != not_uid.as_ref()
                    })
            }
            Goal::Stopped => status == "Stopped" && vmi.is_none(),
        };
        if done {
            return Ok(());
        }
        if matches!(vm, Some(Ok(None))) {
            anyhow::bail!(
                "VM {name} was deleted while waiting for it to be {}",
                goal.describe()
            );
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(name, goal, timeout, &last));
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(250))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresource_paths_encode_every_segment() {
        assert_eq!(
            subresource_path("virtualmachines", "default", "vm1", "start"),
            "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start"
        );
        assert_eq!(
            subresource_path("virtualmachines", "a/b", "vm1/start?", "stop"),
            "/apis/subresources.kubevirt.io/v1/namespaces/a%2Fb/virtualmachines/vm1%2Fstart%3F/stop"
        );
    }
}
