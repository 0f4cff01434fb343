//! get and list: selectors, pages and continue tokens.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Core;
use crate::events;
use crate::registry::{ResourceType, View};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{Stored, field_text, selectable_fields};

/// A page of a list: stored objects, which `Core::view_json` or `Core::view_of` render.
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The continue token of a page that ends with the last of `items`, of a list consistent
/// with version `rv`. `seen` counts the items of every page so far, this one included.
fn continue_after(items: &[Arc<Stored>], seen: u64, rv: u64) -> String {
    items
        .last()
        .map(|last| encode_continue(last.namespace(), last.name(), seen, rv))
        .unwrap_or_default()
}

/// kube-apiserver's answer to a continue token older than the last compaction.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

impl Core {
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.get_stored(rt, ns, name).map(|o| self.view_of(rt, &o))
    }

    /// The stored object, unparsed (`view_json` renders it).
    pub fn get_stored(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Stored>> {
        self.store
            .get(&rt.store, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The storage name of a field selector key, or an error when the key is not supported.
    /// `Ok(None)` stands for metadata.name and metadata.namespace; `Ok(Some(i))` for the
    /// table's `i`th selectable field.
    fn field_slot(rt: &ResourceType, key: &str) -> ApiResult<Option<(usize, String)>> {
        let key = if rt.view == View::EventsV1 {
            events::core_field(key)
        } else {
            key.to_string()
        };
        if key == "metadata.name" || key == "metadata.namespace" {
            return Ok(None);
        }
        match selectable_fields(&rt.store).iter().position(|f| *f == key) {
            Some(i) => Ok(Some((i, key))),
            None => Err(ApiError::bad_request(format!(
                "field label not supported: {key}"
            ))),
        }
    }

    /// The value of a field selector key on an object, or an error when the key is not supported.
    pub fn field_value(rt: &ResourceType, obj: &Value, key: &str) -> ApiResult<String> {
        Ok(match Self::field_slot(rt, key)? {
            Some((_, path)) => field_text(obj, &path),
            None => field_text(obj, key),
        })
    }

    /// The value of a field selector key on a stored object, from its index.
    pub fn stored_field_value(rt: &ResourceType, obj: &Stored, key: &str) -> Option<String> {
        match Self::field_slot(rt, key).ok()? {
            Some((i, _)) => obj.field(i).map(str::to_string),
            None if key == "metadata.name" => Some(obj.name().to_string()),
            None => Some(obj.namespace().to_string()),
        }
    }

    /// Whether a stored object passes the selectors (field selectors see the view's fields).
    pub fn matches(
        rt: &ResourceType,
        obj: &Stored,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> bool {
        if !labels.is_empty() && !labels.matches_with(|k| obj.label(k).map(str::to_string)) {
            return false;
        }
        if fields.requirements().is_empty() {
            return true;
        }
        fields.matches(|k| Self::stored_field_value(rt, obj, k))
    }

    pub fn check_field_selector(rt: &ResourceType, fields: &FieldSelector) -> ApiResult<()> {
        let probe = json!({});
        for k in fields.keys() {
            Self::field_value(rt, &probe, k)?;
        }
        Ok(())
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<ListPage> {
        Self::check_field_selector(rt, fields)?;
        let start_after = match continue_token {
            Some(t) if !t.is_empty() => Some(decode_continue(t)?),
            _ => None,
        };
        // A list that began before a restart or a compaction cannot be continued consistently.
        if let Some(c) = &start_after
            && !self.store.continuable(c.rv)
        {
            return Err(ApiError::gone(CONTINUE_EXPIRED));
        }
        let after = start_after
            .as_ref()
            .map(|c| (c.namespace.as_str(), c.name.as_str()));
        let seen_before = start_after.as_ref().map_or(0, |c| c.seen);
        let limit = limit.filter(|l| *l > 0);
        let full = |items: &Vec<Arc<Stored>>| limit.is_some_and(|l| items.len() >= l);
        let mut items = Vec::new();
        let mut more = false;
        let mut remaining = None;
        let resource_version = if labels.is_empty() && fields.requirements().is_empty() {
            // Unselected: the walk takes one page and stops. remainingItemCount is the table's
            // count less the items of this and earlier pages (which the token carries): an
            // estimate when objects came or went in between, as kube-apiserver's is.
            let (rv, total) = self.store.scan(&rt.store, ns, after, |o| {
                if full(&items) {
                    more = true;
                    return false;
                }
                items.push(o.clone());
                true
            });
            let seen = seen_before + items.len() as u64;
            remaining = more.then(|| (total as u64).saturating_sub(seen).max(1));
            rv
        } else {
            // Selectors are matched outside the store's lock, so the walk only collects. Like
            // kube-apiserver, a selected list has no remainingItemCount.
            let mut candidates = Vec::new();
            let (rv, _) = self.store.scan(&rt.store, ns, after, |o| {
                candidates.push(o.clone());
                true
            });
            for obj in candidates {
                if !Self::matches(rt, &obj, labels, fields) {
                    continue;
                }
                if full(&items) {
                    more = true;
                    break;
                }
                items.push(obj);
            }
            rv
        };
        Ok(ListPage {
            continue_token: more.then(|| {
                let rv = start_after.as_ref().map_or(resource_version, |c| c.rv);
                continue_after(&items, seen_before + items.len() as u64, rv)
            }),
            remaining,
            items,
            resource_version,
        })
    }
}

/// Where a list continues: after this object, with `seen` items already returned.
#[derive(Debug, PartialEq)]
struct ContinueKey {
    namespace: String,
    name: String,
    seen: u64,
    /// The version of the list's first page.
    rv: u64,
}

fn encode_continue(ns: &str, name: &str, seen: u64, rv: u64) -> String {
    use base64::Engine;
    let raw = json!({"v": "localkube.v1", "start": [ns, name], "seen": seen, "rv": rv}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<ContinueKey> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_array).ok_or_else(bad)?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    match (
        start.first().and_then(Value::as_str),
        start.get(1).and_then(Value::as_str),
    ) {
        (Some(ns), Some(name)) => Ok(ContinueKey {
            namespace: ns.to_string(),
            name: name.to_string(),
            seen: v.get("seen").and_then(Value::as_u64).unwrap_or(0),
            rv,
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue("default", "web-1", 500, 42);
        assert_eq!(
            decode_continue(&t).unwrap(),
            ContinueKey {
                namespace: "default".into(),
                name: "web-1".into(),
                seen: 500,
                rv: 42,
            }
        );
        assert_eq!(decode_continue("%%%").unwrap_err().code, 400);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
        ))]

        /// A client's continue token is anything at all: a token, or a 400.
        #[test]
        fn continue_tokens_decode_or_are_bad_requests(
            garbage in "\\PC{0,80}",
            json in "[{}\\[\\]\":,a-z0-9 -]{0,60}",
            ns in "\\PC{0,20}",
            name in "\\PC{0,20}",
            seen: u64,
            rv: u64,
        ) {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&json);
            for token in [garbage.as_str(), &encoded] {
                if let Err(e) = decode_continue(token) {
                    prop_assert_eq!(e.code, 400);
                }
            }
            let key = decode_continue(&encode_continue(&ns, &name, seen, rv)).unwrap();
            prop_assert_eq!(key, ContinueKey { namespace: ns, name, seen, rv });
        }
    }
}
