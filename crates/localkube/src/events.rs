//! The two views of Events: core `v1` (how they are stored) and `events.k8s.io/v1`.

use serde_json::{Map, Value};

/// Field renames between events.k8s.io/v1 (left) and core v1 (right).
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, api_version: &str, to_core: bool) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let key = RENAMES
            .iter()
            .find_map(|(ev, core)| {
                if to_core && k == ev {
                    Some(*core)
                } else if !to_core && k == core {
                    Some(*ev)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as it is stored (core v1).
pub fn to_core(ev: &Value) -> Value {
    rename(ev, "v1", true)
}

/// A stored core v1 Event as events.k8s.io/v1 shows it.
pub fn from_core(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", false)
}

/// The core field that an events.k8s.io field selector key refers to.
pub fn core_field(key: &str) -> String {
    for (ev, core) in RENAMES {
        if key == *ev {
            return core.to_string();
        }
        if let Some(rest) = key.strip_prefix(&format!("{ev}.")) {
            return format!("{core}.{rest}");
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn views_round_trip() {
        let ev = json!({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e"},
            "regarding":{"kind":"Pod","name":"p"},"note":"hello","reason":"Started",
            "reportingController":"kubelet","type":"Normal"});
        let core = to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(from_core(&core), ev);
        assert_eq!(core_field("regarding.name"), "involvedObject.name");
    }
}
