//! In-memory object storage with a global resourceVersion and a bounded watch history.
//!
//! Every write takes one lock, bumps the global resourceVersion, records the event in the
//! history window and broadcasts it. Watchers subscribe under the same lock, so a watch that
//! starts at version N sees every event after N exactly once. Durable storage would hook in
//! at `commit`, which is the only place where state changes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

/// Which table an object lives in: (storage group, plural). Two API views may share one table
/// (core `events` and `events.k8s.io` events).
pub type StoreKey = (String, String);

/// Key of one object inside a table: (namespace, name); cluster-scoped objects use "".
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    pub key: StoreKey,
    pub namespace: String,
    pub kind: EventType,
    /// The object after the change (for deletions: the last state, with the deletion's version).
    pub object: Arc<Value>,
    /// The object before the change, so that selector watches can turn a change into ADDED/DELETED.
    pub old: Option<Arc<Value>>,
    pub rv: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    AlreadyExists,
    NotFound,
    /// The stored version is not the expected one.
    Conflict,
}

/// Why a watch cannot start at the requested version.
#[derive(Debug)]
pub struct TooOld {
    pub oldest: u64,
}

struct Inner {
    rv: u64,
    /// Every change with rv > compacted is in `history`.
    compacted: u64,
    history: VecDeque<Arc<Change>>,
    window: usize,
    tables: HashMap<StoreKey, BTreeMap<ObjKey, Arc<Value>>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    /// Bumped by `compact`; open watches end when it changes.
    epoch: tokio::sync::watch::Sender<u64>,
}

/// A watcher's starting point: what happened since its version, and the live feed after it.
pub struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
}

pub fn object_rv(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// `window` is how many changes the history keeps for watches that resume from a version.
    pub fn new(window: usize) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                compacted: 1,
                history: VecDeque::new(),
                window: window.max(1),
                tables: HashMap::new(),
            }),
            tx,
            epoch: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes when the history is compacted; watches end then, as they would when an API
    /// server restarts after an etcd compaction.
    pub fn epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    pub fn get(&self, key: &StoreKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.inner.lock();
        inner
            .tables
            .get(key)
            .and_then(|t| t.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// All objects of a table (in one namespace when `ns` is given), in key order, and the
    /// version the list is consistent with.
    pub fn list(&self, key: &StoreKey, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.inner.lock();
        (Self::list_locked(&inner, key, ns), inner.rv)
    }

    fn list_locked(inner: &Inner, key: &StoreKey, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(table) = inner.tables.get(key) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => table
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => table.values().cloned().collect(),
        }
    }

    /// Every object of every table, taken under one lock, so that owners and dependents are
    /// seen at the same version.
    pub fn snapshot(&self) -> Vec<(StoreKey, Vec<Arc<Value>>)> {
        let inner = self.inner.lock();
        inner
            .tables
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(k, t)| (k.clone(), t.values().cloned().collect()))
            .collect()
    }

    /// Every table key that holds at least one object.
    pub fn keys(&self) -> Vec<StoreKey> {
        let inner = self.inner.lock();
        inner
            .tables
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        inner: &mut Inner,
        tx: &broadcast::Sender<Arc<Change>>,
        key: &StoreKey,
        namespace: &str,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
        rv: u64,
    ) {
        let change = Arc::new(Change {
            key: key.clone(),
            namespace: namespace.to_string(),
            kind,
            object,
            old,
            rv,
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > inner.window {
            if let Some(c) = inner.history.pop_front() {
                inner.compacted = c.rv;
            }
        }
        // Nobody listening is fine.
        let _ = tx.send(change);
    }

    pub fn create(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.inner.lock();
        let k = (ns.to_string(), name.to_string());
        if inner.tables.get(key).is_some_and(|t| t.contains_key(&k)) {
            return Err(StoreError::AlreadyExists);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        inner
            .tables
            .entry(key.clone())
            .or_default()
            .insert(k, obj.clone());
        Self::commit(
            &mut inner,
            &self.tx,
            key,
            ns,
            EventType::Added,
            obj.clone(),
            None,
            rv,
        );
        Ok(obj)
    }

    fn stored(
        inner: &Inner,
        key: &StoreKey,
        ns: &str,
        name: &str,
    ) -> Result<(ObjKey, Arc<Value>), StoreError> {
        let k = (ns.to_string(), name.to_string());
        let old = inner
            .tables
            .get(key)
            .and_then(|t| t.get(&k))
            .cloned()
            .ok_or(StoreError::NotFound)?;
        Ok((k, old))
    }

    /// Replaces the object if its stored version is still `expected_rv`.
    pub fn update(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        expected_rv: u64,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.inner.lock();
        let (k, old) = Self::stored(&inner, key, ns, name)?;
        if object_rv(&old) != expected_rv {
            return Err(StoreError::Conflict);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        inner
            .tables
            .get_mut(key)
            .expect("table exists")
            .insert(k, obj.clone());
        Self::commit(
            &mut inner,
            &self.tx,
            key,
            ns,
            EventType::Modified,
            obj.clone(),
            Some(old),
            rv,
        );
        Ok(obj)
    }

    /// Removes the object if its stored version is still `expected_rv` (any version when None).
    pub fn delete(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
    ) -> Result<Arc<Value>, StoreError> {
        let mut inner = self.inner.lock();
        let (k, old) = Self::stored(&inner, key, ns, name)?;
        if expected_rv.is_some_and(|rv| rv != object_rv(&old)) {
            return Err(StoreError::Conflict);
        }
        inner.tables.get_mut(key).expect("table exists").remove(&k);
        inner.rv += 1;
        let rv = inner.rv;
        // The DELETED event carries the last state stamped with the deletion's version, as etcd3 does.
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        Self::commit(
            &mut inner,
            &self.tx,
            key,
            ns,
            EventType::Deleted,
            last.clone(),
            Some(old),
            rv,
        );
        Ok(last)
    }

    /// Starts a watch after version `from`: the changes since then, and the live feed.
    pub fn subscribe_from(&self, from: u64) -> Result<Subscription, TooOld> {
        let inner = self.inner.lock();
        if from < inner.compacted {
            return Err(TooOld {
                oldest: inner.compacted,
            });
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > from)
            .cloned()
            .collect();
        Ok(Subscription {
            backlog,
            live: self.tx.subscribe(),
        })
    }

    /// Starts a watch at the current state: a snapshot of the table, its version, and the live feed.
    pub fn subscribe_with_snapshot(
        &self,
        key: &StoreKey,
        ns: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Change>>) {
        let inner = self.inner.lock();
        let items = Self::list_locked(&inner, key, ns);
        (items, inner.rv, self.tx.subscribe())
    }

    /// Forgets the watch history, so that watches from any earlier version get 410 Gone, and
    /// ends open watches. Tests use it to force clients to relist.
    pub fn compact(&self) {
        let mut inner = self.inner.lock();
        inner.history.clear();
        // A revision of its own, as etcd's compaction has: every version a client holds is
        // now too old, while a fresh list returns one that can be watched from.
        inner.rv += 1;
        inner.compacted = inner.rv;
        drop(inner);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn object_count(&self) -> usize {
        self.inner.lock().tables.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> StoreKey {
        ("".into(), "configmaps".into())
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"}})
    }

    #[test]
    fn versions_increase_and_conflicts_are_detected() {
        let s = Store::new(100);
        let a = s.create(&key(), "default", "a", cm("a")).unwrap();
        let rv = object_rv(&a);
        assert!(rv > 1);
        assert_eq!(
            s.create(&key(), "default", "a", cm("a")).unwrap_err(),
            StoreError::AlreadyExists
        );
        let b = s.update(&key(), "default", "a", rv, cm("a")).unwrap();
        assert!(object_rv(&b) > rv);
        assert_eq!(
            s.update(&key(), "default", "a", rv, cm("a")).unwrap_err(),
            StoreError::Conflict
        );
    }

    #[test]
    fn list_is_scoped_to_a_namespace() {
        let s = Store::new(100);
        s.create(&key(), "a", "x", cm("x")).unwrap();
        s.create(&key(), "b", "y", cm("y")).unwrap();
        s.create(&key(), "ab", "z", cm("z")).unwrap();
        assert_eq!(s.list(&key(), Some("a")).0.len(), 1);
        assert_eq!(s.list(&key(), None).0.len(), 3);
    }

    #[test]
    fn history_window_and_compaction_expire_old_versions() {
        let s = Store::new(2);
        let start = s.current_rv();
        for n in ["a", "b", "c"] {
            s.create(&key(), "default", n, cm(n)).unwrap();
        }
        assert!(s.subscribe_from(start).is_err());
        let sub = s.subscribe_from(start + 1).unwrap();
        assert_eq!(sub.backlog.len(), 2);
        let before = s.current_rv();
        s.compact();
        assert!(s.subscribe_from(before).is_err());
        assert!(s.subscribe_from(s.current_rv()).is_ok());
    }
}
