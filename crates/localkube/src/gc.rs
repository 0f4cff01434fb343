//! The garbage collector (ownerReferences with background, foreground and orphan propagation)
//! and the namespace lifecycle (deleting a namespace deletes its contents).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Core, DeleteOptions, Propagation, WriteOptions};
use crate::crd;
use crate::registry::{ResourceType, StrategyId};
use crate::store::{OwnerRef, StoreKey, Stored};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(5);

struct Entry {
    rt: Arc<ResourceType>,
    obj: Arc<Stored>,
}

impl Entry {
    fn ns(&self) -> &str {
        self.obj.namespace()
    }
    fn name(&self) -> &str {
        self.obj.name()
    }
    fn uid(&self) -> &str {
        self.obj.uid()
    }
    fn deleting(&self) -> bool {
        self.obj.deleting()
    }
    fn has_finalizer(&self, f: &str) -> bool {
        self.obj.has_finalizer(f)
    }
    fn owner_refs(&self) -> Vec<OwnerRef<'_>> {
        self.obj.owner_refs()
    }
}

fn gc_options() -> WriteOptions {
    WriteOptions {
        field_manager: Some("garbage-collector".into()),
        ..Default::default()
    }
}

fn snapshot(core: &Core) -> Vec<Entry> {
    let types = core.registry.all();
    let mut by_store: HashMap<StoreKey, Arc<ResourceType>> = HashMap::new();
    for t in types {
        if t.view == crate::registry::View::Plain {
            by_store.entry(t.store.clone()).or_insert(t);
        }
    }
    let mut out = Vec::new();
    for (key, items) in core.store.snapshot() {
        let Some(rt) = by_store.get(&key) else {
            continue;
        };
        out.extend(items.into_iter().map(|obj| Entry {
            rt: rt.clone(),
            obj,
        }));
    }
    out
}

fn remove_finalizer(core: &Core, e: &Entry, finalizer: &str) -> bool {
    let mut next = e.obj.value();
    if let Some(a) = next
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        a.retain(|x| x.as_str() != Some(finalizer));
    }
    let view = core.to_view(&e.rt, &next);
    core.update(&e.rt, e.ns(), e.name(), view, &gc_options(), false)
        .is_ok()
}

/// Keeps the owner references whose uid is in `keep`.
fn set_owner_refs(core: &Core, e: &Entry, keep: &HashSet<&str>) -> bool {
    let mut next = e.obj.value();
    let refs: Vec<Value> = next
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| keep.contains(r.get("uid").and_then(Value::as_str).unwrap_or("")))
        .cloned()
        .collect();
    if refs.is_empty() {
        if let Some(m) = next["metadata"].as_object_mut() {
            m.remove("ownerReferences");
        }
    } else {
        next["metadata"]["ownerReferences"] = json!(refs);
    }
    let view = core.to_view(&e.rt, &next);
    core.update(&e.rt, e.ns(), e.name(), view, &gc_options(), false)
        .is_ok()
}

fn delete(core: &Core, e: &Entry, propagation: Propagation) -> bool {
    // The uid precondition spares an object that was recreated under the same name.
    let opts = DeleteOptions {
        propagation: Some(propagation),
        precondition_uid: Some(e.uid().to_string()),
        ..Default::default()
    };
    core.delete(&e.rt, e.ns(), e.name(), &opts).is_ok()
}

/// One pass over every object. Returns whether anything changed.
pub fn pass(core: &Core) -> bool {
    let entries = snapshot(core);
    let by_uid: HashMap<&str, &Entry> = entries.iter().map(|e| (e.uid(), e)).collect();
    let mut changed = false;
    // Dependents of each owner uid: (index, blockOwnerDeletion).
    let mut dependents: HashMap<String, Vec<(usize, bool)>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        for r in e.owner_refs() {
            dependents
                .entry(r.uid.to_string())
                .or_default()
                .push((i, r.block_owner_deletion));
        }
    }
    let terminating_namespaces: HashSet<&str> = entries
        .iter()
        .filter(|e| e.rt.strategy == StrategyId::Namespace && e.deleting())
        .map(|e| e.name())
        .collect();
    for e in &entries {
        // Namespaced objects in a terminating namespace go.
        if e.rt.namespaced && terminating_namespaces.contains(e.ns()) {
            if !e.deleting() || e.rt.strategy == StrategyId::Pod {
                changed |= !e.deleting() && delete(core, e, Propagation::Background);
            }
            continue;
        }
        let refs = e.owner_refs();
        if refs.is_empty() {
            continue;
        }
        let mut keep = HashSet::new();
        let mut kept = 0;
        let mut absent = 0;
        let mut foreground_owner = false;
        for r in &refs {
            let uid = r.uid;
            match by_uid.get(uid) {
                None => absent += 1,
                Some(owner) if owner.deleting() && owner.has_finalizer("orphan") => {}
                Some(owner) => {
                    if owner.deleting() && owner.has_finalizer("foregroundDeletion") {
                        foreground_owner = true;
                    }
                    keep.insert(uid);
                    kept += 1;
                }
            }
        }
        if absent == refs.len() {
            if !e.deleting() {
                changed |= delete(core, e, Propagation::Background);
            }
        } else if kept != refs.len() {
            // Forget owners that are gone or that orphan their dependents.
            changed |= set_owner_refs(core, e, &keep);
        } else if foreground_owner && !e.deleting() {
            changed |= delete(core, e, Propagation::Foreground);
        }
    }
    // Owners waiting on their dependents.
    for e in entries.iter().filter(|e| e.deleting()) {
        let deps = dependents.get(e.uid()).cloned().unwrap_or_default();
        if e.has_finalizer("foregroundDeletion") {
            let blocking = deps
                .iter()
                .filter(|(i, block)| *block && entries[*i].uid() != e.uid())
                .count();
            if blocking == 0 {
                changed |= remove_finalizer(core, e, "foregroundDeletion");
            }
        } else if e.has_finalizer("orphan") && deps.is_empty() {
            changed |= remove_finalizer(core, e, "orphan");
        }
        if e.rt.strategy == StrategyId::Namespace {
            let left = entries
                .iter()
                .any(|x| x.rt.namespaced && x.ns() == e.name());
            if !left {
                changed |= finish_namespace(core, e);
            }
        }
        if e.rt.strategy == StrategyId::CustomResourceDefinition
            && e.has_finalizer(crd::CLEANUP_FINALIZER)
        {
            changed |= clean_up_crd(core, e, &entries);
        }
    }
    changed
}

/// Deletes a terminating CRD's custom resources (their finalizers are honoured), and
/// releases the CRD when none is left.
fn clean_up_crd(core: &Core, e: &Entry, entries: &[Entry]) -> bool {
    let key = crd::store_key(&e.obj.value());
    let mut left = 0;
    let mut changed = false;
    for cr in entries.iter().filter(|x| x.rt.store == key) {
        left += 1;
        if !cr.deleting() {
            changed |= delete(core, cr, Propagation::Background);
        }
    }
    if left == 0 {
        changed |= remove_finalizer(core, e, crd::CLEANUP_FINALIZER);
    }
    changed
}

fn finish_namespace(core: &Core, e: &Entry) -> bool {
    let mut next = e.obj.value();
    let has_spec_finalizer = next
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|f| f.as_str() == Some("kubernetes")));
    if has_spec_finalizer {
        next["spec"]["finalizers"] = json!([]);
        if core
            .update(&e.rt, "", e.name(), next, &gc_options(), false)
            .is_err()
        {
            return false;
        }
    }
    let meta_finalizers = core
        .store
        .get(&e.rt.store, "", e.name())
        .map(|o| o.finalizers().count())
        .unwrap_or(0);
    if meta_finalizers == 0 {
        return core.store.delete(&e.rt.store, "", e.name(), None).is_ok();
    }
    has_spec_finalizer
}

/// Runs the collector whenever a write may have left work for it, and every few seconds in
/// case a step lost a race and must be tried again.
pub async fn run(core: Arc<Core>) {
    loop {
        let _ = tokio::time::timeout(RESYNC, core.gc_wake.notified()).await;
        // Let a burst of deletions settle into one pass.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for _ in 0..64 {
            if !pass(&core) {
                break;
            }
        }
    }
}
