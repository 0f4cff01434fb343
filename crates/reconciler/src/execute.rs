//! Carries out an `intent` plan against the API server: the patches in order, then the pod
//! deletion of a force restart. The subresource API and virtctl's client-side fallback both
//! use it, so both paths give the same objects and the same messages.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::intent::{IntentError, PatchTarget, Plan};
use crate::names;
use crate::types::{VirtualMachine, VirtualMachineInstance};

/// The group-resource KubeVirt names in its messages.
const VM_RESOURCE: &str = "virtualmachine.kubevirt.io";

/// Maps an API error from a plan's write to the status KubeVirt's virt-api answers with: a
/// failed JSON-patch `test` is a 409 (localkube answers it with 409, kube-apiserver with 422;
/// the plans' patches are otherwise valid, so a 422 means a failed test); anything else is a 500.
pub fn map_error(vm_name: &str, e: kube::Error) -> IntentError {
    match e {
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => IntentError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {VM_RESOURCE} \"{vm_name}\": {}",
                s.message
            ),
        },
        kube::Error::Api(s) if s.code == 404 => IntentError {
            code: 404,
            reason: "NotFound",
            message: format!("{VM_RESOURCE} \"{vm_name}\" not found"),
        },
        other => IntentError {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {other}"),
        },
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
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
        return Err(IntentError {
            code: 404,
            reason: "NotFound",
            message: format!("{VM_RESOURCE} \"{name}\" not found"),
        });
    };
    let vmi = get_opt::<VirtualMachineInstance>(client, ns, "vmi", name).await?;
    Ok((vm, vmi))
}

/// How many times [`run`] makes a plan anew after one of its `test`s lost a race.
pub const ATTEMPTS: usize = 5;

/// Reads the VM `name` and its VMI, makes a plan of them with `plan_for`, and runs it. When a
/// write's `test` fails because the VM changed in between (the controller popped a request, a
/// second client wrote first), the objects are read again and a new plan is made, up to
/// [`ATTEMPTS`] times, so that an accepted request is not refused for a race it did not lose.
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
            // Only while nothing is written: a plan decided again after a partial write could
            // refuse what its own first steps changed (e.g. a grace period no longer shorter).
            Err((e, 0)) if e.code == 409 && attempt < ATTEMPTS => attempt += 1,
            done => return done.map_err(|(e, _)| e),
        }
    }
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
