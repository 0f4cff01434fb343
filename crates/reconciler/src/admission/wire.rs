//! The `admission.k8s.io/v1` AdmissionReview wire shapes this toolkit reads and writes, and
//! the three answers KubeVirt's webhooks give: allowed (maybe with a JSON Patch and warnings),
//! denied with causes (422 `Invalid`), and a bad request (400).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The envelope of both the API server's request and the webhook's answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

impl AdmissionReview {
    /// The answer to `self`: same `apiVersion` (as KubeVirt echoes it), kind `AdmissionReview`,
    /// no request, and `response.uid` set to the request's uid.
    pub fn answer(&self, mut response: AdmissionResponse) -> AdmissionReview {
        response.uid = self
            .request
            .as_ref()
            .map(|r| r.uid.clone())
            .unwrap_or_default();
        AdmissionReview {
            api_version: self.api_version.clone(),
            kind: "AdmissionReview".into(),
            request: None,
            response: Some(response),
        }
    }
}

/// `metav1.GroupVersionKind`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// `metav1.GroupVersionResource`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
}

/// `authenticationv1.UserInfo`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
pub mod operation {
    pub const CREATE: &str = "CREATE";
    pub const UPDATE: &str = "UPDATE";
    pub const DELETE: &str = "DELETE";
    pub const CONNECT: &str = "CONNECT";
}

/// `admissionv1.AdmissionRequest`: the fields the rules read; `object` and `oldObject` stay
/// raw JSON so that a patch is computed against exactly what the API server sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub resource: GroupVersionResource,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub operation: String,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// `admissionv1.AdmissionResponse`. `patch` holds the base64 of the JSON Patch bytes, as Go's
/// `[]byte` is encoded in JSON.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AdmissionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The only patch type admission v1 knows.
pub const PATCH_TYPE_JSON_PATCH: &str = "JSONPatch";

/// KubeVirt answers at most this many causes; the message counts the rest.
pub const MAX_CAUSES: usize = 10;

/// `metav1.Status` as a webhook fills it (Go always writes the empty `metadata`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionStatus {
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

/// `metav1.StatusDetails`, only its causes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// `metav1.StatusCause`: its Go field `Type` is `reason` on the wire.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCause {
    #[serde(rename = "reason", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `metav1.CauseType` values the rules use.
pub mod cause_type {
    pub const INVALID: &str = "FieldValueInvalid";
    pub const REQUIRED: &str = "FieldValueRequired";
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
}

impl StatusCause {
    pub fn new(type_: &str, message: impl Into<String>, field: impl Into<String>) -> Self {
        StatusCause {
            type_: type_.to_string(),
            message: message.into(),
            field: field.into(),
        }
    }
}

impl AdmissionResponse {
    /// Allowed, nothing to change.
    pub fn allowed() -> Self {
        AdmissionResponse {
            allowed: true,
            ..Default::default()
        }
    }

    /// Allowed with these warnings (none is the same as [`AdmissionResponse::allowed`]).
    pub fn allowed_with_warnings(warnings: Vec<String>) -> Self {
        AdmissionResponse {
            allowed: true,
            warnings,
            ..Default::default()
        }
    }

    /// Allowed with a JSON Patch (an array of operations); an empty array is no patch.
    pub fn patched(ops: Vec<Value>) -> Self {
        if ops.is_empty() {
            return Self::allowed();
        }
        let bytes = serde_json::to_vec(&Value::Array(ops)).unwrap_or_default();
        AdmissionResponse {
            allowed: true,
            patch: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            patch_type: Some(PATCH_TYPE_JSON_PATCH.into()),
            ..Default::default()
        }
    }

    /// KubeVirt's `ToAdmissionResponse`: 422 `Invalid`, the first [`MAX_CAUSES`] causes'
    /// messages joined with `", "`, then `", and N more validation errors"` for the rest.
    pub fn denied(causes: Vec<StatusCause>) -> Self {
        let mut shown = causes;
        let more = shown.len().saturating_sub(MAX_CAUSES);
        shown.truncate(MAX_CAUSES);
        let mut message = shown
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            message = format!("{message}, and {more} more validation errors");
        }
        AdmissionResponse {
            allowed: false,
            status: Some(AdmissionStatus {
                message,
                reason: "Invalid".into(),
                code: 422,
                details: Some(StatusDetails { causes: shown }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// KubeVirt's `ToAdmissionResponseError`: 400 with the error text and no reason.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AdmissionResponse {
            allowed: false,
            status: Some(AdmissionStatus {
                message: message.into(),
                code: 400,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The JSON Patch this response carries, decoded; `None` when there is none or it is not
    /// base64 of a JSON array.
    pub fn patch_ops(&self) -> Option<Value> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.patch.as_deref()?)
            .ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_array)
    }
}
