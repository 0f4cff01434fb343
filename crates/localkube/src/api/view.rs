//! How a resource type shows its stored objects: the view (events.k8s.io over core Events,
//! multi-version CRDs) and its JSON, shared rather than copied when the view is the storage.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::Core;
use crate::events;
use crate::registry::{ResourceType, View};
use crate::store::Stored;

impl Core {
    /// The stored object as the resource type's view shows it.
    pub fn to_view(&self, rt: &ResourceType, stored: &Value) -> Value {
        match rt.view {
            View::EventsV1 => events::from_core(stored),
            View::Plain => {
                let mut v = stored.clone();
                let av = rt.api_version();
                if v.get("apiVersion").and_then(Value::as_str) != Some(av.as_str()) {
                    v["apiVersion"] = Value::String(av);
                }
                v
            }
        }
    }

    /// Whether the view shows a stored object exactly as stored, so that its bytes can be
    /// sent as they are.
    pub fn shows_as_stored(rt: &ResourceType, stored: &Stored) -> bool {
        if rt.view != View::Plain {
            return false;
        }
        let av = stored.api_version();
        if rt.group.is_empty() {
            av == rt.version
        } else {
            av.strip_prefix(rt.group.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                == Some(rt.version.as_str())
        }
    }

    /// A stored object, parsed, as the resource type's view shows it.
    pub fn view_of(&self, rt: &ResourceType, stored: &Stored) -> Value {
        if Self::shows_as_stored(rt, stored) {
            stored.value()
        } else {
            self.to_view(rt, &stored.value())
        }
    }

    /// Appends a stored object's JSON, as the resource type's view shows it, to `out`.
    pub fn append_view_json(&self, rt: &ResourceType, stored: &Stored, out: &mut Vec<u8>) {
        if Self::shows_as_stored(rt, stored) {
            stored.append_json(out);
        } else {
            // Serializing a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(out, &self.to_view(rt, &stored.value()));
        }
    }

    /// A stored object as JSON, as the resource type's view shows it: the stored bytes
    /// themselves when the view is the storage form.
    pub fn view_json(&self, rt: &ResourceType, stored: &Stored) -> Bytes {
        if Self::shows_as_stored(rt, stored) {
            // Plain stored JSON is shared, not copied.
            return stored.json();
        }
        let mut json = Vec::new();
        self.append_view_json(rt, stored, &mut json);
        Bytes::from(json)
    }

    pub(crate) fn to_storage(&self, rt: &ResourceType, obj: Value) -> Value {
        match rt.view {
            View::EventsV1 => events::to_core(&obj),
            View::Plain => {
                let mut v = obj;
                v["apiVersion"] = Value::String(rt.storage_api_version.clone());
                v
            }
        }
    }

    /// A written object as the view shows it, and its JSON when the stored bytes are that.
    pub(super) fn written_view(
        &self,
        rt: &ResourceType,
        object: Value,
        stored: Option<&Arc<Stored>>,
    ) -> (Value, Option<Bytes>) {
        match stored {
            Some(s) if Self::shows_as_stored(rt, s) => (object, Some(s.json())),
            _ => (self.to_view(rt, &object), None),
        }
    }
}
