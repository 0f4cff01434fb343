//! Carries out an `intent` plan against the API server: the patches in order, then the pod
//! deletion of a force restart. The subresource API and virtctl's client-side fallback both
//! use it, so both paths give the same objects and the same messages.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::handler_client;
use crate::intent::{self, IntentError, PatchTarget, Plan, pause, reset};
use crate::kube_error::message as api_message;
use crate::names;
use crate::request::{LifecycleRequest, VmiRequest};
use crate::types::{VirtualMachine, VirtualMachineInstance};

/// Maps an API error from a plan's write to what virt-api answers:
/// - a failed JSON-patch `test` is a 409 Conflict (kube-apiserver answers it with 422 and no
///   detail, localkube with 422 and the operation; the plans' patches are otherwise valid, so a
///   422 means a failed test, or a field another writer removed in between: a lost race too;
///   a 409 is a write that lost on its resourceVersion);
/// - any other refusal of the API server keeps its code and message (a 404 stays a 404);
/// - a server error or a failed connection is a 500 with the server's message, as
///   `NewInternalError` words it.
pub fn map_error(vm_name: &str, e: kube::Error) -> IntentError {
    match e {
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => {
            IntentError::conflict(vm_name, &s.message)
        }
        kube::Error::Api(s) if (400..500).contains(&s.code) => IntentError {
            code: s.code,
            reason: reason_of(s.code),
            message: s.message.clone(),
            details: None,
        },
        other => IntentError::internal(api_message(&other)),
    }
}

/// The `metav1.Status` reason of an error code.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "",
    }
}

/// Reads the object `name`, if it exists, with virt-api's 500 when the read fails:
/// `unable to retrieve <what> [<name>]: <message>`.
pub async fn get_opt<K>(
    client: &Client,
    ns: &str,
    what: &str,
    name: &str,
) -> Result<Option<K>, IntentError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    // Such a name can never exist; in a URL its `?` or `/` would address another object.
    if !names::is_dns1123_subdomain(name) {
        return Ok(None);
    }
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.map_err(|e| {
        IntentError::internal(format!(
            "unable to retrieve {what} [{name}]: {}",
            api_message(&e)
        ))
    })
}

/// Reads the VM `name` and its VMI (if any), as the lifecycle commands need them, with
/// virt-api's answers when that fails: 404 for a missing VM, 500 otherwise.
pub async fn fetch(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(VirtualMachine, Option<VirtualMachineInstance>), IntentError> {
    let Some(vm) = get_opt::<VirtualMachine>(client, ns, "vm", name).await? else {
        return Err(IntentError::not_found("virtualmachine", name));
    };
    let vmi = get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?;
    Ok((vm, vmi))
}

/// How many times [`run`] makes a plan anew after one of its `test`s lost a race. Fifty
/// callers on one VM (`tests/contention.rs`) made a stop lose five races in a row: the queue it
/// tests changes with every request and every pop of the controller.
pub const ATTEMPTS: usize = 10;

/// How long [`run`] waits before making its plan for the `attempt`th time (2, 3, ...): 10 ms
/// doubling up to 160 ms, plus `jitter(that)` (a random amount up to as much again, clamped),
/// so that racing callers spread out instead of colliding again.
pub fn retry_delay(attempt: usize, jitter: impl FnOnce(u64) -> u64) -> std::time::Duration {
    let doublings = attempt.saturating_sub(2).min(4) as u32;
    let base = 10u64 << doublings;
    std::time::Duration::from_millis(base + jitter(base).min(base))
}

/// Reads the VM `name` and its VMI, makes a plan of them with `plan_for`, and runs it. When a
/// write's `test` fails because the VM changed in between (the controller popped a request, a
/// second client wrote first), the objects are read again and a new plan is made, after a
/// short [`retry_delay`], up to [`ATTEMPTS`] times, so that an accepted request is not refused
/// for a race it did not lose.
/// A refusal of the plan itself is returned at once.
pub async fn run(
    client: &Client,
    ns: &str,
    name: &str,
    plan_for: impl Fn(&VirtualMachine, Option<&VirtualMachineInstance>) -> Result<Plan, IntentError>,
) -> Result<(), IntentError> {
    let mut attempt = 1;
    loop {
        let (vm, vmi) = fetch(client, ns, name).await?;
        let plan = plan_for(&vm, vmi.as_ref())?;
        match execute_counting(client, ns, name, &plan).await {
            // Only while nothing is written, or only what the plan says may be (a stop's
            // removal of queued Starts): a plan decided again after another partial write
            // could refuse what its own first steps changed (e.g. a grace period no longer
            // shorter).
            Err((e, written))
                if e.code == 409 && written <= plan.redecidable_steps && attempt < ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(retry_delay(attempt, |max| rand::random_range(0..=max))).await;
            }
            done => return done.map_err(|(e, _)| e),
        }
    }
}

/// Carries out the lifecycle `request` on the VM `name`: the one entry that the subresource
/// API and virtctl's client-side transport both call. stop and restart check their body before
/// anything is fetched (Part B §2.4–§2.5); start reads it after the VM's state (§2.3).
pub async fn lifecycle(
    client: &Client,
    ns: &str,
    name: &str,
    request: &LifecycleRequest,
) -> Result<(), IntentError> {
    match request {
        LifecycleRequest::Stop(o) => _ = intent::check_stop_options(o)?,
        LifecycleRequest::Restart(o) => _ = intent::check_restart_options(o)?,
        LifecycleRequest::Start(_) => {}
    }
    run(client, ns, name, |vm, vmi| match request {
        LifecycleRequest::Start(o) => intent::start(vm, vmi, o),
        LifecycleRequest::Stop(o) => intent::stop(vm, vmi, o),
        LifecycleRequest::Restart(o) => intent::restart(vm, vmi, o),
    })
    .await
}

/// [`lifecycle`] for the PUT body of `verb` as it came (`None` for a verb there is no such
/// subresource for). A body that does not decode is a 400, but for start only after the checks
/// virt-api makes first: the VM exists (404) and is not running (409).
pub async fn lifecycle_body(
    client: &Client,
    ns: &str,
    name: &str,
    verb: &str,
    body: &[u8],
) -> Option<Result<(), IntentError>> {
    let decoded = LifecycleRequest::decode(verb, body)?;
    Some(match decoded {
        Ok(request) => lifecycle(client, ns, name, &request).await,
        Err(undecodable) if verb == "start" => match fetch(client, ns, name).await {
            Ok((vm, vmi)) => intent::check_start_state(&vm, vmi.as_ref()).and(Err(undecodable)),
            Err(missing) => Err(missing),
        },
        Err(undecodable) => Err(undecodable),
    })
}

/// Carries out `pause`, `unpause`, `reset` or `softreboot` of the VMI `name`; `now` stamps the Paused condition.
pub async fn vmi_request(
    client: &Client,
    ns: &str,
    name: &str,
    request: &VmiRequest,
    now: &str,
) -> Result<(), IntentError> {
    let vmi = get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?;
    let (plan, verb) = match request {
        VmiRequest::Pause(o) => (intent::pause(name, vmi.as_ref(), o, now)?, "pause"),
        VmiRequest::Reset | VmiRequest::SoftReboot => {
            return reset_or_soft_reboot(client, ns, name, request, vmi.as_ref()).await;
        }
        VmiRequest::Unpause(o) => {
            let vm = get_opt::<VirtualMachine>(client, ns, "vm", name).await?;
            (
                intent::unpause(name, vm.as_ref(), vmi.as_ref(), o)?,
                "unpause",
            )
        }
    };
    let node_name = vmi
        .as_ref()
        .and_then(|v| v.status.as_ref()?.node_name.clone());
    let node = match node_name {
        Some(node) => get_node(client, &node).await?,
        None => None,
    };
    match pause::route(plan, node.as_ref()) {
        pause::Route::Write(plan) => execute(client, ns, name, &plan).await,
        pause::Route::Forward { address } => {
            forward(&address, &pause::handler_path(ns, name, verb)).await
        }
    }
}

/// Carries out `reset` or `softreboot`: checked as virt-api does, then sent to the VMI's node
/// handler; on a node without one (a simulated guest) there is nothing to reset.
async fn reset_or_soft_reboot(
    client: &Client,
    ns: &str,
    name: &str,
    request: &VmiRequest,
    vmi: Option<&VirtualMachineInstance>,
) -> Result<(), IntentError> {
    match request {
        VmiRequest::SoftReboot => reset::soft_reboot(name, vmi)?,
        _ => reset::reset(name, vmi)?,
    }
    let node_name = vmi.and_then(|v| v.status.as_ref()?.node_name.clone());
    let node = match node_name {
        Some(node) => get_node(client, &node).await?,
        None => None,
    };
    match reset::route(node.as_ref()) {
        reset::Route::Nothing => Ok(()),
        reset::Route::Forward { address } => {
            forward(&address, &pause::handler_path(ns, name, request.verb())).await
        }
    }
}

/// PUT to a node's virt-handler: its refusal keeps its code and message.
async fn forward(address: &str, path: &str) -> Result<(), IntentError> {
    match handler_client::put(address, path).await {
        Ok(answer) if answer.code == 200 => Ok(()),
        Ok(answer) => Err(IntentError {
            code: answer.code,
            reason: reason_of(answer.code),
            message: answer.message,
            details: None,
        }),
        Err(e) => Err(IntentError::internal(e)),
    }
}

/// Reads the Node `name`, if it exists (virt-api's 500 when the read fails).
async fn get_node(client: &Client, name: &str) -> Result<Option<Node>, IntentError> {
    let api: Api<Node> = Api::all(client.clone());
    api.get_opt(name).await.map_err(|e| {
        IntentError::internal(format!(
            "unable to retrieve node [{name}]: {}",
            api_message(&e)
        ))
    })
}

/// [`vmi_request`] for the PUT body of `verb` as it came (`None` for no such subresource).
pub async fn vmi_request_body(
    client: &Client,
    ns: &str,
    name: &str,
    verb: &str,
    body: &[u8],
    now: &str,
) -> Option<Result<(), IntentError>> {
    let decoded = VmiRequest::decode(verb, body)?;
    Some(match decoded {
        Ok(request) => vmi_request(client, ns, name, &request, now).await,
        Err(undecodable) => Err(undecodable),
    })
}

/// Runs `plan` for the VM `vm_name` in `ns`.
pub async fn execute(
    client: &Client,
    ns: &str,
    vm_name: &str,
    plan: &Plan,
) -> Result<(), IntentError> {
    execute_counting(client, ns, vm_name, plan)
        .await
        .map_err(|(e, _)| e)
}

/// [`execute`], telling with a failure how many steps were written before it.
async fn execute_counting(
    client: &Client,
    ns: &str,
    vm_name: &str,
    plan: &Plan,
) -> Result<(), (IntentError, usize)> {
    let params = PatchParams {
        dry_run: plan.dry_run,
        ..Default::default()
    };
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
    for (written, step) in plan.steps.iter().enumerate() {
        let ops: json_patch::Patch = serde_json::from_value(step.patch.clone()).map_err(|e| {
            let e = IntentError::internal(format!("bad patch: {e}"));
            (e, written)
        })?;
        let patch = Patch::<()>::Json(ops);
        let result = match step.target {
            PatchTarget::Vm => vms.patch(vm_name, &params, &patch).await.map(|_| ()),
            PatchTarget::VmStatus => vms.patch_status(vm_name, &params, &patch).await.map(|_| ()),
            PatchTarget::Vmi => vmis.patch(vm_name, &params, &patch).await.map(|_| ()),
        };
        result.map_err(|e| (map_error(vm_name, e), written))?;
    }
    let written = plan.steps.len();
    if let Some(del) = &plan.delete_pods {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default()
            .labels(&del.label_selector)
            .fields(&del.field_selector);
        let found = pods
            .list(&lp)
            .await
            .map_err(|e| (map_error(vm_name, e), written))?;
        let dp = DeleteParams {
            grace_period_seconds: Some(del.grace_period_seconds.max(0) as u32),
            dry_run: plan.dry_run,
            ..Default::default()
        };
        for pod in found.items {
            match pods.delete(&pod.name_any(), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err((map_error(vm_name, e), written)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn retries_wait_longer_each_time_with_jitter_up_to_as_much_again() {
        let ms = std::time::Duration::from_millis;
        let table = [
            (2, 0, ms(10)),
            (3, 0, ms(20)),
            (4, 5, ms(45)),
            (6, 160, ms(320)),
            (10, 0, ms(160)),
        ];
        for (attempt, jitter, want) in table {
            assert_eq!(retry_delay(attempt, |_| jitter), want, "attempt {attempt}");
        }
        assert_eq!(retry_delay(3, |_| u64::MAX), ms(40), "jitter is clamped");
        let mut offered = 0;
        retry_delay(5, |max| {
            offered = max;
            0
        });
        assert_eq!(offered, 80);
        let total: std::time::Duration = (2..=ATTEMPTS).map(|a| retry_delay(a, |max| max)).sum();
        assert!(total < std::time::Duration::from_secs(3), "{total:?}");
    }

    #[test]
    fn write_errors_map_as_virt_api_maps_them() {
        let table = [
            // A failed `test`: kube-apiserver's bare 422, localkube's 422 with the operation.
            (
                api(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                ),
                (
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": the server rejected our request due to an error in our request",
                ),
            ),
            (
                api(
                    422,
                    "Invalid",
                    "the JSON patch test operation failed: operation '/0' failed at path '/metadata/generation': value did not match",
                ),
                (
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": the JSON patch test operation failed: operation '/0' failed at path '/metadata/generation': value did not match",
                ),
            ),
            // A write that lost on its resourceVersion.
            (
                api(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                ),
                (
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": the object has been modified; please apply your changes to the latest version and try again",
                ),
            ),
            // Other refusals keep their code and the server's message.
            (
                api(
                    404,
                    "NotFound",
                    "virtualmachineinstances.kubevirt.io \"vm1\" not found",
                ),
                (
                    404,
                    "NotFound",
                    "virtualmachineinstances.kubevirt.io \"vm1\" not found",
                ),
            ),
            (
                api(403, "Forbidden", "forbidden: no"),
                (403, "Forbidden", "forbidden: no"),
            ),
            // Server errors and failed connections are 500s with the message, never Debug.
            (
                api(503, "ServiceUnavailable", "etcd is down"),
                (
                    500,
                    "InternalError",
                    "Internal error occurred: etcd is down",
                ),
            ),
            (
                kube::Error::ReadEvents(std::io::Error::other("reset")),
                (
                    500,
                    "InternalError",
                    "Internal error occurred: Error reading events stream: reset",
                ),
            ),
        ];
        for (error, (code, reason, message)) in table {
            let got = map_error("vm1", error);
            assert_eq!(
                (got.code, got.reason, got.message.as_str()),
                (code, reason, message)
            );
            assert!(!got.message.contains("Status {"), "{got:?}");
        }
    }
}
