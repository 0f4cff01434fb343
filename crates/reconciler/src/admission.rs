//! KubeVirt's admission webhooks for VMs and VMIs as pure functions: an `AdmissionRequest`
//! in, the `AdmissionResponse` KubeVirt's virt-api would give out (allowed with a JSON Patch
//! and warnings, or denied with KubeVirt's causes and message). No server here: virt-api
//! wraps [`Reviewer::review`] in HTTP (see docs/lifecycle.md, "Admission").

pub mod mutate;
pub mod quantity;
pub mod validate;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::Value;

use crate::types::{VirtualMachine, VirtualMachineInstance};
pub use wire::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, AdmissionStatus, StatusCause, operation,
};

/// The webhooks, named by KubeVirt's paths on virt-api.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `/virtualmachines-mutate`
    VmMutate,
    /// `/virtualmachineinstances-mutate`
    VmiMutate,
    /// `/virtualmachines-validate`
    VmValidate,
    /// `/virtualmachineinstances-validate-create` and `-update` (one set of rules, chosen by
    /// the operation).
    VmiValidate,
}

impl Webhook {
    /// The webhook KubeVirt serves at `path`.
    pub fn from_path(path: &str) -> Option<Webhook> {
        match path {
            "/virtualmachines-mutate" => Some(Webhook::VmMutate),
            "/virtualmachineinstances-mutate" => Some(Webhook::VmiMutate),
            "/virtualmachines-validate" => Some(Webhook::VmValidate),
            "/virtualmachineinstances-validate-create"
            | "/virtualmachineinstances-validate-update" => Some(Webhook::VmiValidate),
            _ => None,
        }
    }

    /// The plural resource the webhook accepts.
    pub fn resource(self) -> &'static str {
        match self {
            Webhook::VmMutate | Webhook::VmValidate => "virtualmachines",
            Webhook::VmiMutate | Webhook::VmiValidate => "virtualmachineinstances",
        }
    }
}

/// The API versions KubeVirt's webhooks accept (`ApiSupportedWebhookVersions`).
pub const WEBHOOK_VERSIONS: [&str; 2] = ["v1alpha3", "v1"];

/// The usernames of KubeVirt's own service accounts in `namespace`: they may change a VMI's
/// spec and status (`KubeVirtServiceAccounts`).
pub fn kubevirt_service_accounts(namespace: &str) -> BTreeSet<String> {
    [
        "kubevirt-apiserver",
        "kubevirt-controller",
        "kubevirt-handler",
        "kubevirt-synchronization-controller",
    ]
    .iter()
    .map(|sa| format!("system:serviceaccount:{namespace}:{sa}"))
    .collect()
}

/// The webhooks' settings.
#[derive(Debug, Clone, Default)]
pub struct Reviewer {
    /// Users trusted like KubeVirt's service accounts (VMI spec and status changes).
    pub trusted_users: BTreeSet<String>,
}

impl Reviewer {
    /// KubeVirt's trust: its service accounts in `namespace`.
    pub fn kubevirt(namespace: &str) -> Self {
        Reviewer {
            trusted_users: kubevirt_service_accounts(namespace),
        }
    }

    /// The answer of `webhook` to `request`, with a random serial for new VMs (`uid` is left
    /// empty; [`AdmissionReview::answer`] fills it).
    pub fn review(&self, webhook: Webhook, request: &AdmissionRequest) -> AdmissionResponse {
        let serial = || uuid::Uuid::new_v4().to_string();
        self.review_with(webhook, request, &mutate::Fresh { serial: &serial })
    }

    /// [`Reviewer::review`] with the fresh values given (deterministic).
    pub fn review_with(
        &self,
        webhook: Webhook,
        request: &AdmissionRequest,
        fresh: &mutate::Fresh,
    ) -> AdmissionResponse {
        match self.try_review(webhook, request, fresh) {
            Ok(response) => response,
            Err(message) => AdmissionResponse::bad_request(message),
        }
    }

    fn try_review(
        &self,
        webhook: Webhook,
        request: &AdmissionRequest,
        fresh: &mutate::Fresh,
    ) -> Result<AdmissionResponse, String> {
        let resource = webhook.resource();
        let gvr = &request.resource;
        if gvr.group != crate::intent::KUBEVIRT_GROUP
            || gvr.resource != resource
            || !WEBHOOK_VERSIONS.contains(&gvr.version.as_str())
        {
            return Err(format!("expect resource to be '{resource}'"));
        }
        let create = request.operation == operation::CREATE;
        let update = request.operation == operation::UPDATE;
        if !create && !update {
            return Ok(AdmissionResponse::allowed());
        }
        let object = request
            .object
            .as_ref()
            .filter(|o| o.is_object())
            .ok_or("the request carries no object")?;
        let old = if update {
            Some(
                request
                    .old_object
                    .as_ref()
                    .filter(|o| o.is_object())
                    .ok_or("the update request carries no oldObject")?,
            )
        } else {
            None
        };
        let trusted = self.trusted_users.contains(&request.user_info.username);
        let being_deleted = validate::at(object, &["metadata", "deletionTimestamp"]).is_some();
        Ok(match webhook {
            Webhook::VmMutate | Webhook::VmValidate => {
                if being_deleted {
                    return Ok(AdmissionResponse::allowed());
                }
                if webhook == Webhook::VmValidate {
                    // A missing template is KubeVirt's cause, not a decoding error.
                    let has_template = validate::at(object, &["spec", "template"]).is_some();
                    if has_template {
                        decode::<VirtualMachine>(object)?;
                    }
                    let causes = validate::vm_causes(object)?;
                    if !causes.is_empty() {
                        return Ok(AdmissionResponse::denied(causes));
                    }
                    AdmissionResponse::allowed_with_warnings(validate::vm_warnings(object))
                } else {
                    let vm = decode::<VirtualMachine>(object)?;
                    AdmissionResponse::patched(mutate::vm_patch(object, &vm, create, fresh))
                }
            }
            Webhook::VmiMutate => {
                decode::<VirtualMachineInstance>(object)?;
                match old {
                    None => AdmissionResponse::patched(mutate::vmi_create_patch(object)),
                    Some(old) => {
                        decode::<VirtualMachineInstance>(old)?;
                        AdmissionResponse::patched(mutate::vmi_update_patch(object, old, trusted))
                    }
                }
            }
            Webhook::VmiValidate => {
                decode::<VirtualMachineInstance>(object)?;
                let causes = match old {
                    None => {
                        let empty = Value::Object(Default::default());
                        let spec = validate::at(object, &["spec"]).unwrap_or(&empty);
                        let mut causes = validate::vmi_spec_causes("spec", spec)?;
                        causes.extend(validate::vmi_create_only_causes(spec)?);
                        causes
                    }
                    Some(old) => {
                        decode::<VirtualMachineInstance>(old)?;
                        validate::vmi_update_causes(object, old, trusted)
                    }
                };
                if causes.is_empty() {
                    AdmissionResponse::allowed()
                } else {
                    AdmissionResponse::denied(causes)
                }
            }
        })
    }
}

/// The object as the typed resource; a mismatch is the 400 KubeVirt answers when its decoding
/// fails.
fn decode<T: serde::de::DeserializeOwned>(object: &Value) -> Result<T, String> {
    T::deserialize(object).map_err(|e| e.to_string())
}
