//! In-memory object storage with a global resourceVersion and a bounded watch history.
//!
//! Every write takes one lock, bumps the global resourceVersion, records the event in the
//! history window and broadcasts it on its table's feed. Watchers subscribe under the same lock,
//! so a watch that starts at version N sees every event after N exactly once. Each table has its
//! own feed, so that a write wakes only the watchers of its table. `commit` is the only place where
//! state changes; with a data directory it also queues the change for [`crate::durable`].
//!
//! Objects are kept as their JSON bytes plus a small index ([`Stored`]) of what lists,
//! selectors and the garbage collector read, because a parsed `serde_json::Value` tree costs
//! about ten times the object's JSON size. The bytes are what the durable store persists:
//! [`Stored::decode`] rebuilds the index from them. Once a table holds enough objects, their
//! JSON is kept compressed with a dictionary trained on the table's first objects
//! ([`crate::packing`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, LazyLock, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::durable::{DataDir, Durability, Record, TokenRow};
pub use crate::object_index::OwnerRef;
use crate::object_index::{ObjectIndex, Parts};
use crate::packing::{Body, Dictionary, Trainer};

/// Which table an object lives in: (storage group, plural). Two API views may share one table
/// (core `events` and `events.k8s.io` events).
pub type StoreKey = (String, String);

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

/// The fields besides metadata.name and metadata.namespace that field selectors may use on a
/// table, as kube-apiserver allows them. Their values are indexed at write time.
pub fn selectable_fields(key: &StoreKey) -> &'static [&'static str] {
    match (key.0.as_str(), key.1.as_str()) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        _ => &[],
    }
}

/// A field's value as field selectors compare it: strings as they are, other values as JSON,
/// missing fields and null as "".
pub fn field_text(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return String::new(),
        };
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One stored object: its JSON (exactly as stored, resourceVersion included) and an index of
/// the parts that are read without parsing it.
#[derive(Debug)]
pub struct Stored {
    body: Body,
    rv: u64,
    namespace: Arc<str>,
    name: Arc<str>,
    api_version: Arc<str>,
    /// uid, labels, the values of the table's `selectable_fields` (in that order), finalizers
    /// and owner references.
    index: ObjectIndex,
    deleting: bool,
}

/// The index of an object, taken from its parsed form before the store lock is held.
struct Index {
    api_version: Arc<str>,
    index: ObjectIndex,
    deleting: bool,
}

/// Interns apiVersion strings, which only take as many values as there are served types.
fn intern(s: &str) -> Arc<str> {
    static SEEN: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);
    let mut seen = SEEN.lock();
    if let Some(a) = seen.get(s) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(s);
    seen.insert(a.clone());
    a
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Index {
    fn of(key: &StoreKey, obj: &Value) -> Index {
        let meta = obj.get("metadata").unwrap_or(&Value::Null);
        let labels: Vec<(String, String)> = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), label_text(v))).collect())
            .unwrap_or_default();
        let fields: Vec<String> = selectable_fields(key)
            .iter()
            .map(|f| field_text(obj, f))
            .collect();
        let finalizers: Vec<&str> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let owners: Vec<OwnerRef> = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| OwnerRef {
                        uid: r.get("uid").and_then(Value::as_str).unwrap_or(""),
                        block_owner_deletion: r.get("blockOwnerDeletion").and_then(Value::as_bool)
                            == Some(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Index {
            api_version: intern(obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")),
            index: ObjectIndex::new(&Parts {
                uid: meta_str(obj, "uid"),
                labels: &labels,
                fields: &fields,
                finalizers: &finalizers,
                owners: &owners,
            }),
            deleting: meta.get("deletionTimestamp").is_some_and(|v| !v.is_null()),
        }
    }
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The JSON of an object, in an allocation of exactly its size.
fn encode(obj: &Value) -> Bytes {
    let json = serde_json::to_vec(obj).unwrap_or_default();
    Bytes::from(json.into_boxed_slice())
}

/// One watch event line, `{"type":KIND,"object":OBJECT}` and a newline, from the object's JSON.
pub fn watch_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object_json.len() + kind.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object_json);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

impl Stored {
    fn new(index: Index, body: Body, rv: u64, namespace: Arc<str>, name: Arc<str>) -> Stored {
        Stored {
            body,
            rv,
            namespace,
            name,
            api_version: index.api_version,
            index: index.index,
            deleting: index.deleting,
        }
    }

    /// A later version of this object, sharing its namespace and name.
    fn next_version(&self, index: Index, body: Body, rv: u64) -> Stored {
        Stored::new(index, body, rv, self.namespace.clone(), self.name.clone())
    }

    /// Rebuilds a stored object of table `key` from its JSON, as a durable store would load it.
    pub fn decode(key: &StoreKey, json: Bytes) -> Result<Stored, serde_json::Error> {
        let obj: Value = serde_json::from_slice(&json)?;
        Ok(Stored::from_parsed(key, json, &obj))
    }

    fn from_parsed(key: &StoreKey, json: Bytes, obj: &Value) -> Stored {
        let index = Index::of(key, obj);
        Stored::new(
            index,
            Body::Plain(json),
            object_rv(obj),
            Arc::from(meta_str(obj, "namespace")),
            Arc::from(meta_str(obj, "name")),
        )
    }

    /// Rebuilds the object a durable row of table `key` at `namespace/name` holds, or says why
    /// the row is unusable: not a JSON object, or an object of another name.
    pub fn decode_row(
        key: &StoreKey,
        namespace: &str,
        name: &str,
        json: Bytes,
    ) -> Result<Stored, String> {
        let obj: Value =
            serde_json::from_slice(&json).map_err(|e| format!("the body is not JSON: {e}"))?;
        if !obj.is_object() {
            return Err("the body is not a JSON object".into());
        }
        let (found_ns, found_name) = (meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        if (found_ns, found_name) != (namespace, name) {
            return Err(format!(
                "the body names {found_ns:?}/{found_name:?}, not the row's {namespace:?}/{name:?}"
            ));
        }
        Ok(Stored::from_parsed(key, json, &obj))
    }

    /// The object's JSON as stored (decompressed when the store keeps it packed).
    pub fn json(&self) -> Bytes {
        self.body.json()
    }

    /// Appends the object's JSON to `out`.
    pub fn append_json(&self, out: &mut Vec<u8>) {
        self.body.append_json(out);
    }

    /// The length of the object's JSON.
    pub fn json_len(&self) -> usize {
        self.body.json_len()
    }

    /// How many bytes the store holds for the JSON.
    pub fn stored_len(&self) -> usize {
        self.body.stored_len()
    }

    /// The object, parsed.
    pub fn value(&self) -> Value {
        // The bytes were serialized from a Value, so they parse.
        serde_json::from_slice(&self.json()).unwrap_or(Value::Null)
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The namespace ("" for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The apiVersion the object is stored as.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn uid(&self) -> &str {
        self.index.uid()
    }

    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.index.labels()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of the `i`th of its table's `selectable_fields`.
    pub fn field(&self, i: usize) -> Option<&str> {
        self.index.field(i)
    }

    pub fn finalizers(&self) -> impl Iterator<Item = &str> {
        self.index.finalizers()
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers().any(|x| x == f)
    }

    pub fn owner_refs(&self) -> Vec<OwnerRef<'_>> {
        self.index.owners().collect()
    }

    /// Whether metadata.deletionTimestamp is set.
    pub fn deleting(&self) -> bool {
        self.deleting
    }
}

/// One change, as recorded in the history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    pub key: StoreKey,
    pub kind: EventType,
    /// The object after the change (for deletions: the last state, with the deletion's version).
    pub object: Arc<Stored>,
    /// The object before the change, so that selector watches can turn a change into ADDED/DELETED.
    pub old: Option<Arc<Stored>>,
    pub rv: u64,
    /// The event as plain JSON, built by the first watcher that sends it and shared by the others.
    line: OnceLock<Bytes>,
}

impl Change {
    pub fn namespace(&self) -> &str {
        self.object.namespace()
    }

    /// The event line `{"type":..,"object":..}` with the object as stored.
    pub fn line(&self) -> Bytes {
        self.line
            .get_or_init(|| watch_line(self.kind.as_str(), &self.object.json()))
            .clone()
    }
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

/// The result of a write: the stored object, and the same object parsed (with its new
/// resourceVersion), so that callers need not parse it again.
#[derive(Debug)]
pub struct Committed {
    pub stored: Arc<Stored>,
    pub object: Value,
}

/// One table's objects by namespace, then name. The namespace key is shared by its objects.
type Table = BTreeMap<Arc<str>, BTreeMap<Arc<str>, Arc<Stored>>>;

struct Inner {
    rv: u64,
    /// Every change with rv > compacted is in `history`.
    compacted: u64,
    /// Continue tokens of lists older than this expire: the last compaction or restart.
    list_floor: u64,
    history: VecDeque<Arc<Change>>,
    window: usize,
    tables: HashMap<StoreKey, Table>,
    /// Each table's compression dictionary, or the samples it is collecting for one.
    trainers: HashMap<StoreKey, Trainer>,
    count: usize,
    /// How many stored objects name each uid as an owner.
    owned: HashMap<Box<str>, usize>,
    /// Each watched table's live feed, made at its first subscription.
    feeds: HashMap<StoreKey, broadcast::Sender<Arc<Change>>>,
}

/// How many changes of one table a live feed holds for its slowest watcher; a watcher that falls
/// further behind is ended with 410 Gone and relists.
const FEED_CAPACITY: usize = 16_384;

pub struct Store {
    inner: Mutex<Inner>,
    /// Bumped by `compact`; open watches end when it changes.
    epoch: tokio::sync::watch::Sender<u64>,
    /// The committer of a server with a data directory.
    durable: Option<Durability>,
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

impl Inner {
    fn subscribe(&mut self, key: &StoreKey) -> broadcast::Receiver<Arc<Change>> {
        self.feeds
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(FEED_CAPACITY).0)
            .subscribe()
    }

    fn lookup(&self, key: &StoreKey, ns: &str, name: &str) -> Option<&Arc<Stored>> {
        self.tables.get(key)?.get(ns)?.get(name)
    }

    fn list(&self, key: &StoreKey, ns: Option<&str>) -> Vec<Arc<Stored>> {
        let Some(table) = self.tables.get(key) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => table
                .get(ns)
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default(),
            None => table.values().flat_map(|t| t.values().cloned()).collect(),
        }
    }

    /// Puts an object in its table; the namespace's key is reused when it exists.
    fn insert(&mut self, key: &StoreKey, ns: &str, build: impl FnOnce(Arc<str>) -> Arc<Stored>) {
        let table = self.tables.entry(key.clone()).or_default();
        let ns_key = match table.get_key_value(ns) {
            Some((k, _)) => k.clone(),
            None => Arc::from(ns),
        };
        let obj = build(ns_key.clone());
        let name = obj.name.clone();
        for r in obj.owner_refs() {
            *self.owned.entry(r.uid.into()).or_default() += 1;
        }
        match table.entry(ns_key).or_default().insert(name, obj) {
            None => self.count += 1,
            Some(old) => self.disown(&old),
        }
    }

    /// Forgets the owners a stored object named.
    fn disown(&mut self, obj: &Stored) {
        for r in obj.owner_refs() {
            if let Some(n) = self.owned.get_mut(r.uid) {
                *n -= 1;
                if *n == 0 {
                    self.owned.remove(r.uid);
                }
            }
        }
    }

    /// The JSON of a new version in its stored form, and the table's samples when they are
    /// complete and a dictionary should be trained from them.
    fn pack(&mut self, key: &StoreKey, json: Bytes) -> (Body, Option<Vec<Bytes>>) {
        if !self.trainers.contains_key(key) {
            self.trainers.insert(key.clone(), Trainer::default());
        }
        let trainer = self.trainers.get_mut(key).expect("inserted above");
        let samples = trainer.sample(&json);
        (Body::new(json, trainer.dictionary()), samples)
    }

    fn remove(&mut self, key: &StoreKey, ns: &str, name: &str) {
        let Some(table) = self.tables.get_mut(key) else {
            return;
        };
        let Some(names) = table.get_mut(ns) else {
            return;
        };
        let removed = names.remove(name);
        if names.is_empty() {
            table.remove(ns);
        }
        if let Some(old) = removed {
            self.count -= 1;
            self.disown(&old);
        }
    }
}

impl Store {
    /// `window` is how many changes the history keeps for watches that resume from a version.
    pub fn new(window: usize) -> Self {
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                compacted: 1,
                list_floor: 1,
                history: VecDeque::new(),
                window: window.max(1),
                tables: HashMap::new(),
                trainers: HashMap::new(),
                count: 0,
                owned: HashMap::new(),
                feeds: HashMap::new(),
            }),
            epoch: tokio::sync::watch::Sender::new(0),
            durable: None,
        }
    }

    /// A store that keeps its state in `data`: the objects stored there are loaded, and every
    /// later change is written back. The version moves past the stored one, and the history
    /// starts empty, so watches and continue tokens from before get 410 and clients relist.
    ///
    /// A row that cannot be read (not JSON, another object's body) is left out and moved to
    /// the database's `quarantine` table, with one warning per row, so the server still starts.
    pub fn open(window: usize, data: DataDir) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut store = Store::new(window);
        let stored_rv = data.version()?;
        let mut max_rv = stored_rv;
        {
            let inner = store.inner.get_mut();
            let (_, set_aside) = data
                .load(|row| {
                    let stored =
                        Stored::decode_row(&row.key, &row.namespace, &row.name, row.body?)?;
                    max_rv = max_rv.max(stored.rv);
                    let key = row.key;
                    let (body, samples) = inner.pack(&key, stored.json());
                    inner.insert(&key, &row.namespace, |ns_key| {
                        Arc::new(Stored {
                            body,
                            namespace: ns_key,
                            ..stored
                        })
                    });
                    // Trained at once, so that the objects loaded after the samples are packed.
                    if let Some(samples) = samples
                        && let Some(trainer) = inner.trainers.get_mut(&key)
                    {
                        trainer.finish(Dictionary::train(&samples));
                    }
                    Ok(())
                })
                .with_context(|| format!("cannot read the objects in {}", data.path().display()))?;
            let total = set_aside.len();
            for (i, r) in set_aside.iter().enumerate() {
                let resource = match r.key.0.as_str() {
                    "" => r.key.1.clone(),
                    group => format!("{}.{group}", r.key.1),
                };
                let object = match r.namespace.as_str() {
                    "" => r.name.clone(),
                    ns => format!("{ns}/{}", r.name),
                };
                tracing::warn!(
                    "set aside the stored {resource} {object} ({} of {total} unreadable rows, moved to the quarantine table of {}): {}",
                    i + 1,
                    data.database().display(),
                    r.error
                );
            }
            inner.rv = max_rv + 1;
            inner.compacted = inner.rv;
            inner.list_floor = inner.rv;
        }
        let durable = Durability::start(data, stored_rv);
        durable.push(Record::Version(store.inner.get_mut().rv));
        store.durable = Some(durable);
        Ok(store)
    }

    /// Queues an issued ServiceAccount token for the data directory under a version of its own
    /// (so a write request's wait covers it), issued at `now` (Unix seconds). Without a data
    /// directory it does nothing. Tokens are no object: no table, list, watch or count has them.
    pub fn persist_token(&self, token: TokenRow, now: i64) {
        let Some(d) = &self.durable else { return };
        let mut inner = self.inner.lock();
        inner.rv += 1;
        d.push(Record::Token {
            rv: inner.rv,
            token,
            now,
        });
    }

    /// Waits until every change up to `rv` is durable (at once without a data directory).
    pub async fn durable(&self, rv: u64) -> Result<(), String> {
        match &self.durable {
            Some(d) => d.wait(rv).await,
            None => Ok(()),
        }
    }

    /// Announces a write request (with a data directory): the changes queued meanwhile are
    /// committed by its [`Store::durable`] wait rather than by another thread.
    pub fn writer(&self) -> Option<crate::durable::Writer<'_>> {
        self.durable.as_ref().map(Durability::writer)
    }

    /// The committer's counters, with a data directory.
    pub fn durability_stats(&self) -> Option<crate::durable::Stats> {
        self.durable.as_ref().map(Durability::stats)
    }

    /// Writes what is queued and releases the data directory; later changes stay in memory.
    pub fn close(&self) {
        if let Some(d) = &self.durable {
            d.close();
        }
    }

    /// Whether a list that was consistent with version `rv` may still be continued.
    pub fn continuable(&self, rv: u64) -> bool {
        rv >= self.inner.lock().list_floor
    }

    /// Changes when the history is compacted; watches end then, as they would when an API
    /// server restarts after an etcd compaction.
    pub fn epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    pub fn get(&self, key: &StoreKey, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.inner.lock().lookup(key, ns, name).cloned()
    }

    /// All objects of a table (in one namespace when `ns` is given), in (namespace, name)
    /// order, and the version the list is consistent with.
    pub fn list(&self, key: &StoreKey, ns: Option<&str>) -> (Vec<Arc<Stored>>, u64) {
        let inner = self.inner.lock();
        (inner.list(key, ns), inner.rv)
    }

    /// Visits a table's objects (in one namespace when `ns` is given) in (namespace, name) order,
    /// starting after `after`, until `visit` returns false. Returns the version the walk is
    /// consistent with, and how many objects the table (or namespace) holds in all. The walk
    /// holds the store's lock, so `visit` should be quick.
    pub fn scan(
        &self,
        key: &StoreKey,
        ns: Option<&str>,
        after: Option<(&str, &str)>,
        mut visit: impl FnMut(&Arc<Stored>) -> bool,
    ) -> (u64, usize) {
        let inner = self.inner.lock();
        let rv = inner.rv;
        let Some(table) = inner.tables.get(key) else {
            return (rv, 0);
        };
        let total = match ns {
            Some(ns) => table.get(ns).map_or(0, BTreeMap::len),
            None => table.values().map(BTreeMap::len).sum(),
        };
        let first_ns = match (ns, after) {
            (Some(ns), _) => Bound::Included(ns),
            (None, Some((after_ns, _))) => Bound::Included(after_ns),
            (None, None) => Bound::Unbounded,
        };
        for (table_ns, names) in table.range::<str, _>((first_ns, Bound::Unbounded)) {
            if ns.is_some_and(|ns| ns != &**table_ns) {
                break;
            }
            let first_name = match after {
                Some((after_ns, after_name)) if after_ns == &**table_ns => {
                    Bound::Excluded(after_name)
                }
                Some((after_ns, _)) if after_ns > &**table_ns => continue,
                _ => Bound::Unbounded,
            };
            for obj in names
                .range::<str, _>((first_name, Bound::Unbounded))
                .map(|(_, o)| o)
            {
                if !visit(obj) {
                    return (rv, total);
                }
            }
        }
        (rv, total)
    }

    /// Every object of every table, taken under one lock, so that owners and dependents are
    /// seen at the same version.
    pub fn snapshot(&self) -> Vec<(StoreKey, Vec<Arc<Stored>>)> {
        let inner = self.inner.lock();
        inner
            .tables
            .keys()
            .map(|k| (k.clone(), inner.list(k, None)))
            .filter(|(_, items)| !items.is_empty())
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

    /// Records a change in the history, queues it for the data directory, and sends it to
    /// watchers.
    fn commit(
        &self,
        inner: &mut Inner,
        key: &StoreKey,
        kind: EventType,
        object: Arc<Stored>,
        old: Option<Arc<Stored>>,
    ) {
        if let Some(d) = &self.durable {
            d.push(match kind {
                EventType::Deleted => Record::Delete {
                    key: key.clone(),
                    namespace: object.namespace.clone(),
                    name: object.name.clone(),
                    rv: object.rv,
                },
                _ => Record::Put {
                    key: key.clone(),
                    object: object.clone(),
                },
            });
        }
        let change = Arc::new(Change {
            key: key.clone(),
            kind,
            rv: object.rv,
            object,
            old,
            line: OnceLock::new(),
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > inner.window {
            if let Some(c) = inner.history.pop_front() {
                inner.compacted = c.rv;
            }
        }
        if let Some(feed) = inner.feeds.get(key) {
            // Nobody listening any more is fine.
            let _ = feed.send(change);
        }
    }

    pub fn create(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Committed, StoreError> {
        let index = Index::of(key, &obj);
        let mut inner = self.inner.lock();
        if inner.lookup(key, ns, name).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let (body, samples) = inner.pack(key, encode(&obj));
        let mut stored = None;
        inner.insert(key, ns, |ns_key| {
            let s = Arc::new(Stored::new(index, body, rv, ns_key, Arc::from(name)));
            stored = Some(s.clone());
            s
        });
        let stored = stored.expect("insert builds the object");
        self.commit(&mut inner, key, EventType::Added, stored.clone(), None);
        drop(inner);
        self.train(key, samples);
        Ok(Committed {
            stored,
            object: obj,
        })
    }

    /// Replaces the object if its stored version is still `expected_rv`.
    pub fn update(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        expected_rv: u64,
        mut obj: Value,
    ) -> Result<Committed, StoreError> {
        let index = Index::of(key, &obj);
        let mut inner = self.inner.lock();
        let old = inner
            .lookup(key, ns, name)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if old.rv != expected_rv {
            return Err(StoreError::Conflict);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let (body, samples) = inner.pack(key, encode(&obj));
        let stored = Arc::new(old.next_version(index, body, rv));
        inner.insert(key, ns, |_| stored.clone());
        self.commit(
            &mut inner,
            key,
            EventType::Modified,
            stored.clone(),
            Some(old),
        );
        drop(inner);
        self.train(key, samples);
        Ok(Committed {
            stored,
            object: obj,
        })
    }

    /// Trains a table's dictionary from its samples, outside the lock: later writes of the
    /// table are compressed with it.
    fn train(&self, key: &StoreKey, samples: Option<Vec<Bytes>>) {
        let Some(samples) = samples else { return };
        let dictionary = Dictionary::train(&samples);
        if let Some(trainer) = self.inner.lock().trainers.get_mut(key) {
            trainer.finish(dictionary);
        }
    }

    /// Removes the object if its stored version is still `expected_rv` (any version when None).
    pub fn delete(
        &self,
        key: &StoreKey,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
    ) -> Result<Committed, StoreError> {
        let mut inner = self.inner.lock();
        let old = inner
            .lookup(key, ns, name)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if expected_rv.is_some_and(|rv| rv != old.rv) {
            return Err(StoreError::Conflict);
        }
        inner.remove(key, ns, name);
        inner.rv += 1;
        let rv = inner.rv;
        // The DELETED event carries the last state stamped with the deletion's version, as etcd3 does.
        let mut last = old.value();
        set_rv(&mut last, rv);
        let index = Index::of(key, &last);
        let dictionary = inner.trainers.get(key).and_then(Trainer::dictionary);
        let body = Body::new(encode(&last), dictionary);
        let stored = Arc::new(old.next_version(index, body, rv));
        self.commit(
            &mut inner,
            key,
            EventType::Deleted,
            stored.clone(),
            Some(old),
        );
        Ok(Committed {
            stored,
            object: last,
        })
    }

    /// Starts a watch of one table after version `from`: its changes since then, and its live feed.
    pub fn subscribe_from(&self, key: &StoreKey, from: u64) -> Result<Subscription, TooOld> {
        let mut inner = self.inner.lock();
        if from < inner.compacted {
            return Err(TooOld {
                oldest: inner.compacted,
            });
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > from && c.key == *key)
            .cloned()
            .collect();
        Ok(Subscription {
            backlog,
            live: inner.subscribe(key),
        })
    }

    /// Starts a watch at the current state: a snapshot of the table, its version, and the live feed.
    pub fn subscribe_with_snapshot(
        &self,
        key: &StoreKey,
        ns: Option<&str>,
    ) -> (Vec<Arc<Stored>>, u64, broadcast::Receiver<Arc<Change>>) {
        let mut inner = self.inner.lock();
        let items = inner.list(key, ns);
        (items, inner.rv, inner.subscribe(key))
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
        inner.list_floor = inner.rv;
        if let Some(d) = &self.durable {
            d.push(Record::Version(inner.rv));
        }
        drop(inner);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn object_count(&self) -> usize {
        self.inner.lock().count
    }

    /// Whether some stored object names `uid` in its ownerReferences.
    pub fn has_dependents(&self, uid: &str) -> bool {
        self.inner.lock().owned.contains_key(uid)
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
        let rv = a.stored.rv();
        assert!(rv > 1);
        assert_eq!(object_rv(&a.object), rv);
        assert_eq!(
            s.create(&key(), "default", "a", cm("a")).unwrap_err(),
            StoreError::AlreadyExists
        );
        let b = s.update(&key(), "default", "a", rv, cm("a")).unwrap();
        assert!(b.stored.rv() > rv);
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
        let (all, _) = s.list(&key(), None);
        let order: Vec<_> = all.iter().map(|o| (o.namespace(), o.name())).collect();
        assert_eq!(order, [("a", "x"), ("ab", "z"), ("b", "y")]);
        assert_eq!(s.object_count(), 3);
        s.delete(&key(), "ab", "z", None).unwrap();
        assert_eq!(s.object_count(), 2);
        assert_eq!(s.keys(), vec![key()]);
    }

    #[test]
    fn owners_are_counted_through_create_update_and_delete() {
        let s = Store::new(100);
        let with_owners = |name: &str, owners: &[&str]| {
            let mut obj = cm(name);
            obj["metadata"]["ownerReferences"] =
                json!(owners.iter().map(|u| json!({"uid": u})).collect::<Vec<_>>());
            obj
        };
        s.create(&key(), "default", "a", with_owners("a", &["o-1", "o-2"]))
            .unwrap();
        s.create(&key(), "default", "b", with_owners("b", &["o-1"]))
            .unwrap();
        let owned = |uids: [&str; 3]| uids.map(|u| s.has_dependents(u));
        assert_eq!(owned(["o-1", "o-2", "o-3"]), [true, true, false]);
        // An update that changes the references moves the counts.
        let a = s.get(&key(), "default", "a").unwrap();
        s.update(&key(), "default", "a", a.rv(), with_owners("a", &["o-3"]))
            .unwrap();
        assert_eq!(owned(["o-1", "o-2", "o-3"]), [true, false, true]);
        s.delete(&key(), "default", "b", None).unwrap();
        assert_eq!(owned(["o-1", "o-2", "o-3"]), [false, false, true]);
        s.delete(&key(), "default", "a", None).unwrap();
        assert_eq!(owned(["o-1", "o-2", "o-3"]), [false, false, false]);
    }

    #[test]
    fn stored_bytes_and_index_agree_with_the_object() {
        let s = Store::new(100);
        let mut obj = cm("a");
        obj["metadata"]["labels"] = json!({"app": "web"});
        obj["metadata"]["uid"] = json!("u-1");
        obj["metadata"]["finalizers"] = json!(["f"]);
        obj["metadata"]["ownerReferences"] =
            json!([{"uid": "o-1", "blockOwnerDeletion": true}, {"uid": "o-2"}]);
        let c = s.create(&key(), "default", "a", obj).unwrap();
        let got = s.get(&key(), "default", "a").unwrap();
        assert_eq!(got.value(), c.object);
        assert_eq!(got.label("app"), Some("web"));
        assert_eq!(got.uid(), "u-1");
        assert_eq!(got.api_version(), "v1");
        assert!(got.has_finalizer("f") && !got.deleting());
        assert_eq!(got.owner_refs().len(), 2);
        assert!(got.owner_refs()[0].block_owner_deletion);
        let again = Stored::decode(&key(), got.json().clone()).unwrap();
        assert_eq!(
            (again.rv(), again.name(), again.namespace()),
            (got.rv(), "a", "default")
        );
        let gone = s.delete(&key(), "default", "a", Some(got.rv())).unwrap();
        assert!(gone.stored.rv() > got.rv());
        assert_eq!(object_rv(&gone.stored.value()), gone.stored.rv());
    }

    #[test]
    fn watch_lines_are_built_once_and_shared() {
        let s = Store::new(100);
        let sub = s.subscribe_from(&key(), s.current_rv()).unwrap();
        let mut live = sub.live;
        s.create(&key(), "default", "a", cm("a")).unwrap();
        let change = live.try_recv().unwrap();
        let a = change.line();
        let b = change.line();
        assert_eq!(a.as_ptr(), b.as_ptr());
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["metadata"]["name"], "a");
        assert!(a.ends_with(b"\n"));
    }

    #[test]
    fn a_watch_is_fed_only_its_own_tables_changes() {
        let s = Store::new(100);
        let secrets: StoreKey = (String::new(), "secrets".into());
        let start = s.current_rv();
        s.create(&secrets, "default", "early", cm("early")).unwrap();
        s.create(&key(), "default", "early", cm("early")).unwrap();
        let sub = s.subscribe_from(&key(), start).unwrap();
        let backlog: Vec<_> = sub.backlog.iter().map(|c| c.key.1.as_str()).collect();
        assert_eq!(backlog, ["configmaps"]);
        let mut live = sub.live;
        s.create(&secrets, "default", "late", cm("late")).unwrap();
        assert!(
            live.try_recv().is_err(),
            "a secret reached the ConfigMaps' feed"
        );
        s.create(&key(), "default", "late", cm("late")).unwrap();
        assert_eq!(live.try_recv().unwrap().object.name(), "late");
        let (_, _, mut snapshot_live) = s.subscribe_with_snapshot(&key(), None);
        s.create(&secrets, "default", "later", cm("later")).unwrap();
        s.create(&key(), "default", "later", cm("later")).unwrap();
        assert_eq!(snapshot_live.try_recv().unwrap().object.name(), "later");
        assert!(snapshot_live.try_recv().is_err());
    }

    /// ConfigMap `cm-i`, alike enough to its neighbours to be packed, each one different.
    fn numbered_cm(i: usize) -> (String, Value) {
        let name = format!("cm-{i}");
        let mut obj = cm(&name);
        obj["metadata"]["labels"] = json!({"app": "web", "i": i.to_string()});
        obj["data"] = json!({"value": format!("{i:x}-{}", i * 7919)});
        (name, obj)
    }

    #[test]
    fn a_table_past_its_samples_stores_compressed_json_that_reads_back() {
        let s = Store::new(1000);
        let n = crate::packing::SAMPLE_OBJECTS + 20;
        let mut written = Vec::new();
        for i in 0..n {
            let (name, obj) = numbered_cm(i);
            written.push(s.create(&key(), "default", &name, obj).unwrap());
        }
        let first = &written[0].stored;
        assert_eq!(first.stored_len(), first.json().len(), "samples stay plain");
        let late = s.get(&key(), "default", &format!("cm-{}", n - 1)).unwrap();
        assert!(
            late.stored_len() * 2 < late.json().len(),
            "{} of {}",
            late.stored_len(),
            late.json().len()
        );
        for c in &written {
            let got = s.get(&key(), "default", c.stored.name()).unwrap();
            assert_eq!(got.value(), c.object);
            assert_eq!(got.label("i"), c.object["metadata"]["labels"]["i"].as_str());
        }
        let rv = late.rv();
        let mut obj = late.value();
        obj["data"]["value"] = json!("changed");
        let updated = s.update(&key(), "default", late.name(), rv, obj).unwrap();
        assert!(updated.stored.stored_len() < updated.stored.json().len());
        assert_eq!(updated.stored.value(), updated.object);
        let gone = s
            .delete(&key(), "default", late.name(), Some(updated.stored.rv()))
            .unwrap();
        assert_eq!(gone.stored.value(), gone.object);
        assert_eq!(gone.object["data"]["value"], "changed");
    }

    #[test]
    fn a_reopened_store_has_its_objects_versions_and_packing() {
        let dir = tempfile::tempdir().unwrap();
        let n = crate::packing::SAMPLE_OBJECTS + 50;
        let (last_rv, written) = {
            let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
            let mut written = Vec::new();
            for i in 0..n {
                let (name, obj) = numbered_cm(i);
                written.push(s.create(&key(), "default", &name, obj).unwrap().object);
            }
            s.delete(&key(), "default", "cm-0", None).unwrap();
            let rv = s.current_rv();
            s.close();
            (rv, written)
        };
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        assert!(s.current_rv() > last_rv);
        assert!(s.get(&key(), "default", "cm-0").is_none());
        for obj in &written[1..] {
            let got = s.get(&key(), "default", meta_str(obj, "name")).unwrap();
            assert_eq!(&got.value(), obj);
        }
        // Loaded in name order: cm-99 comes after the samples.
        let late = s.get(&key(), "default", "cm-99").unwrap();
        assert!(
            late.stored_len() * 2 < late.json_len(),
            "loaded objects are packed: {} of {}",
            late.stored_len(),
            late.json_len()
        );
        // Old versions are gone with the history: a watch from before must relist.
        assert!(s.subscribe_from(&key(), last_rv).is_err());
        assert!(!s.continuable(last_rv));
        assert!(s.subscribe_from(&key(), s.current_rv()).is_ok());
    }

    #[test]
    fn versions_keep_increasing_across_reopens_whatever_the_last_write_was() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        let mut last = 0;
        // A create, an update and a delete each end the history before a reopen: a put's
        // version is in its row, the others' in the meta table.
        for step in ["create", "update", "delete", "create"] {
            let s = open();
            assert!(
                s.current_rv() > last,
                "{step}: {} after {last}",
                s.current_rv()
            );
            match step {
                "create" => drop(s.create(&key(), "default", "a", cm("a")).unwrap()),
                "update" => {
                    let a = s.get(&key(), "default", "a").unwrap();
                    s.update(&key(), "default", "a", a.rv(), cm("a")).unwrap();
                }
                _ => drop(s.delete(&key(), "default", "a", None).unwrap()),
            }
            last = s.current_rv();
            s.close();
        }
        assert!(open().current_rv() > last);
    }

    #[test]
    fn rows_that_do_not_hold_their_object_are_refused() {
        let good = br#"{"metadata":{"name":"a","namespace":"default","resourceVersion":"7"}}"#;
        let table: [(&[u8], &str, Option<&str>); 6] = [
            (good, "a", None),
            (b"{\"metadata\":", "a", Some("the body is not JSON")),
            (b"[1]", "a", Some("not a JSON object")),
            (
                b"{}",
                "a",
                Some(r#"names ""/"", not the row's "default"/"a""#),
            ),
            (
                good,
                "b",
                Some(r#"names "default"/"a", not the row's "default"/"b""#),
            ),
            (
                br#"{"metadata":{"name":"a"}}"#,
                "a",
                Some(r#"names ""/"a", not"#),
            ),
        ];
        for (body, name, want) in table {
            let got = Stored::decode_row(&key(), "default", name, Bytes::from_static(body));
            match (got, want) {
                (Ok(s), None) => assert_eq!((s.name(), s.rv()), ("a", 7)),
                (Err(e), Some(w)) => assert!(e.contains(w), "{e} lacks {w}"),
                (got, want) => panic!("{got:?} for {want:?}"),
            }
        }
    }

    #[test]
    fn a_reopen_sets_unreadable_rows_aside_and_frees_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        s.create(&key(), "default", "good", cm("good")).unwrap();
        s.close();
        drop(s);
        let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        let bodies: [(&str, rusqlite::types::Value); 3] = [
            ("text", rusqlite::types::Value::Text("{\"not".into())),
            ("number", rusqlite::types::Value::Integer(7)),
            (
                "other",
                rusqlite::types::Value::Blob(cm("x").to_string().into()),
            ),
        ];
        for (name, body) in bodies {
            db.execute(
                "INSERT INTO objects (grp, resource, namespace, name, rv, body)
                 VALUES ('', 'configmaps', 'default', ?1, 3, ?2)",
                rusqlite::params![name, body],
            )
            .unwrap();
        }
        drop(db);
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(s.object_count(), 1);
        assert!(s.get(&key(), "default", "good").is_some());
        s.create(&key(), "default", "number", cm("number")).unwrap();
        s.close();
        drop(s);
        let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        let mut stmt = db
            .prepare("SELECT name, error FROM quarantine ORDER BY name")
            .unwrap();
        let kept: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["number", "other", "text"]);
        assert!(kept[0].1.contains("Integer, not bytes"), "{}", kept[0].1);
        assert!(kept[2].1.contains("not JSON"), "{}", kept[2].1);
        drop(stmt);
        drop(db);
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(s.object_count(), 2, "the good one and the new one");
    }

    #[test]
    fn issued_tokens_are_kept_beside_the_objects_and_expired_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let token = |hash: u8, expires: i64| TokenRow {
            hash: [hash; 32],
            namespace: "ns".into(),
            name: "sa".into(),
            uid: "u".into(),
            expires,
        };
        let accounts: StoreKey = ("".into(), "serviceaccounts".into());
        let account = |name: &str, uid: &str| {
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": name, "namespace": "ns", "uid": uid}})
        };
        let before = {
            let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
            s.create(&accounts, "ns", "sa", account("sa", "u")).unwrap();
            s.persist_token(token(1, 100), 50);
            s.persist_token(token(2, 300), 60);
            // Expired by the time the third is issued: dropped with it.
            s.persist_token(token(3, 1000), 200);
            assert_eq!(
                s.object_count(),
                1,
                "a token is no object: only the account is"
            );
            assert_eq!(s.keys(), vec![accounts.clone()]);
            assert_eq!(s.snapshot().len(), 1);
            let rv = s.current_rv();
            s.close();
            rv
        };
        let data = DataDir::open(dir.path()).unwrap();
        let kept = |now| -> Vec<u8> {
            data.tokens(now)
                .unwrap()
                .iter()
                .map(|t| t.hash[0])
                .collect()
        };
        assert_eq!(
            kept(150),
            [2, 3],
            "the first was dropped when the third came"
        );
        assert_eq!(kept(500), [3]);
        drop(data);
        // The version a token took is not given out again.
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        assert!(s.current_rv() > before, "{} after {before}", s.current_rv());
        // A token dies with its ServiceAccount, also when one of that name comes back: the
        // next start drops it from the disk.
        s.persist_token(
            TokenRow {
                hash: [5; 32],
                name: "other".into(),
                uid: "o".into(),
                ..token(5, 1000)
            },
            500,
        );
        s.create(&accounts, "ns", "other", account("other", "o"))
            .unwrap();
        s.delete(&accounts, "ns", "sa", None).unwrap();
        s.create(&accounts, "ns", "sa", account("sa", "u2"))
            .unwrap();
        s.close();
        drop(s);
        let data = DataDir::open(dir.path()).unwrap();
        let hashes: Vec<u8> = data
            .tokens(500)
            .unwrap()
            .iter()
            .map(|t| t.hash[0])
            .collect();
        assert_eq!(
            hashes,
            [5],
            "the old account's token is gone, the other one's stays"
        );
        // Without a data directory nothing is kept and no version is taken.
        let memory = Store::new(10);
        let rv = memory.current_rv();
        memory.persist_token(token(4, 100), 0);
        assert_eq!(memory.current_rv(), rv);
    }

    /// Waits (up to 10 s) until the committers wrote `records` changes.
    async fn committed(s: &Store, records: u64) {
        for _ in 0..1000 {
            if s.durability_stats().unwrap().records >= records {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "only {:?} of {records} records committed",
            s.durability_stats()
        );
    }

    #[tokio::test]
    async fn changes_no_request_waits_on_are_committed_by_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        // The reopen's version record, then a change made outside any request (as the
        // garbage collector's).
        s.create(&key(), "default", "a", cm("a")).unwrap();
        committed(&s, 2).await;
        // A request in flight that never waits, then ends: the change made meanwhile is
        // handed to the thread when it ends.
        let writer = s.writer();
        s.create(&key(), "default", "b", cm("b")).unwrap();
        drop(writer);
        committed(&s, 3).await;
    }

    #[tokio::test]
    async fn a_writer_left_alone_commits_what_it_waits_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        let mine = s.writer();
        let other = s.writer();
        s.create(&key(), "default", "a", cm("a")).unwrap();
        let rv = s.current_rv();
        let wait = s.durable(rv);
        tokio::pin!(wait);
        // Two writers: the thread commits. Whoever commits, the wait ends, also after the
        // other writer leaves without waiting.
        let early = tokio::time::timeout(std::time::Duration::from_millis(1), &mut wait).await;
        drop(other);
        let done = match early {
            Ok(r) => r,
            Err(_) => tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                .await
                .expect("the wait ends"),
        };
        assert_eq!(done, Ok(()));
        drop(mine);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_all_get_durable_writes_that_a_reopen_finds() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..40 {
                        let name = format!("cm-{t}-{i}");
                        let _writer = s.writer();
                        s.create(&key(), "default", &name, cm(&name)).unwrap();
                        s.durable(s.current_rv()).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .expect("every writer finishes")
                .unwrap();
        }
        let stats = s.durability_stats().unwrap();
        assert!(stats.records > 640 && stats.commits <= stats.records);
        s.close();
        drop(s);
        let again = Store::open(100, DataDir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(again.object_count(), 640);
    }

    #[test]
    fn history_window_and_compaction_expire_old_versions() {
        let s = Store::new(2);
        let start = s.current_rv();
        for n in ["a", "b", "c"] {
            s.create(&key(), "default", n, cm(n)).unwrap();
        }
        assert!(s.subscribe_from(&key(), start).is_err());
        let sub = s.subscribe_from(&key(), start + 1).unwrap();
        assert_eq!(sub.backlog.len(), 2);
        let before = s.current_rv();
        s.compact();
        assert!(s.subscribe_from(&key(), before).is_err());
        assert!(s.subscribe_from(&key(), s.current_rv()).is_ok());
    }
}
