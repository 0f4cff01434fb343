//! Server-side Table rendering (`meta.k8s.io/v1` `Table`).
//!
//! kube-apiserver answers `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`
//! with a Table whose columns depend on the resource; kubectl prints those
//! tables verbatim (upper-casing the column names). This module reproduces the
//! column layouts and cell formatting kube-apiserver uses for the built-in
//! resources localkube serves, the CRD `additionalPrinterColumns` mechanism
//! (whose paths `crate::jsonpath` evaluates), and the generic default table.
//!
//! Like kube-apiserver, the cells of priority-1 ("wide") columns are always
//! present; kubectl hides them unless `-o wide` is requested.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use crate::jsonpath::JsonPath;

/// One `columnDefinitions` entry of a Table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// "string", "integer", "number", "boolean" or "date".
    pub type_: String,
    /// "name" for the object-name column, "" otherwise.
    pub format: String,
    pub description: String,
    /// 0 for default columns, 1 (or more) for `-o wide` columns.
    pub priority: i32,
}

/// The `includeObject` query parameter of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the exact values kube-apiserver accepts.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "None" => Some(Self::None),
            "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Assembles a `meta.k8s.io/v1` Table. `rows` pairs each row's cells with the
/// full object the row was rendered from.
pub fn build_table(
    columns: &[Column],
    rows: Vec<(Vec<Value>, Value)>,
    include_object: IncludeObject,
    resource_version: Option<&str>,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = Map::new();
    if let Some(rv) = resource_version {
        metadata.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(token) = continue_token {
        metadata.insert("continue".into(), json!(token));
    }
    let column_definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, obj)| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    row.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": meta,
                        }),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), obj);
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(metadata),
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------
// Small accessors over `serde_json::Value`.
// ---------------------------------------------------------------------------

const NONE: &str = "<none>";
const UNKNOWN: &str = "<unknown>";

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

/// The string at `path`, or "" when missing or not a string.
fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` when present and non-empty.
fn opt_text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn int(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(value_as_i64).unwrap_or(0)
}

fn value_as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| v.as_f64().map(|f| f as i64))
}

fn flag(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// Number of keys of the object at `path` (0 when missing).
fn key_count(v: &Value, path: &[&str]) -> usize {
    get(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        NONE.to_string()
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------
// Time formatting.
// ---------------------------------------------------------------------------

/// Parses an RFC 3339 timestamp (`metav1.Time` or `metav1.MicroTime`).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// kube's `duration.HumanDuration`: a succinct duration with about two
/// significant figures ("45s", "3m5s", "15m", "3h5m", "20h", "2d3h", "40d",
/// "2y100d", "9y").
pub fn human_duration(d: TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Time elapsed since `ts`, "<unknown>" when the timestamp is missing or
/// unparseable (kube's `translateTimestampSince`).
fn since(ts: Option<&str>, now: DateTime<Utc>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => UNKNOWN.to_string(),
    }
}

/// The AGE cell of an object.
fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(opt_text(obj, &["metadata", "creationTimestamp"]), now)
}

/// The creation timestamp as the default table's "Created At" cell: RFC 3339
/// in UTC with second precision, like kube's default table convertor.
fn created_at(obj: &Value) -> Value {
    let raw = text(obj, &["metadata", "creationTimestamp"]);
    match parse_time(raw) {
        Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None if raw.is_empty() => json!("0001-01-01T00:00:00Z"),
        None => json!(raw),
    }
}

// ---------------------------------------------------------------------------
// Column definitions of the built-in resources.
// ---------------------------------------------------------------------------

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

fn col(name: &str, type_: &str, description: &str, priority: i32) -> Column {
    Column {
        name: name.to_string(),
        type_: type_.to_string(),
        format: String::new(),
        description: description.to_string(),
        priority,
    }
}

fn name_col(priority: i32) -> Column {
    Column {
        format: "name".to_string(),
        ..col("Name", "string", NAME_DESC, priority)
    }
}

fn age_col() -> Column {
    col("Age", "string", CREATED_DESC, 0)
}

/// The generic table kube-apiserver serves for resources without a printer.
fn default_columns() -> Vec<Column> {
    vec![name_col(0), col("Created At", "date", CREATED_DESC, 0)]
}

fn event_columns() -> Vec<Column> {
    vec![
        col(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
            0,
        ),
        col(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
            0,
        ),
        col(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            0,
        ),
        col(
            "Object",
            "string",
            "The object that this event is about.",
            0,
        ),
        col(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            1,
        ),
        col(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
            1,
        ),
        col(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
            0,
        ),
        col(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            1,
        ),
        col(
            "Count",
            "string",
            "The number of times this event has occurred.",
            1,
        ),
        name_col(1),
    ]
}

fn binding_columns(kind: &str) -> Vec<Column> {
    vec![
        name_col(0),
        col(
            "Role",
            "string",
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
            0,
        ),
        age_col(),
        col("Users", "string", &format!("Users in the {kind}"), 1),
        col("Groups", "string", &format!("Groups in the {kind}"), 1),
        col(
            "ServiceAccounts",
            "string",
            &format!("ServiceAccounts in the {kind}"),
            1,
        ),
    ]
}

/// Column definitions kube-apiserver uses for a built-in resource
/// (`group` is "" for the core group); the generic Name / Created At pair for
/// anything else.
pub fn builtin_columns(group: &str, resource: &str) -> Vec<Column> {
    match (group, resource) {
        ("", "pods") => vec![
            name_col(0),
            col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age_col(),
            col(
                "IP",
                "string",
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                1,
            ),
            col(
                "Node",
                "string",
                "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.",
                1,
            ),
            col(
                "Nominated Node",
                "string",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
                1,
            ),
            col(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ),
        ],
        ("", "services") => vec![
            name_col(0),
            col(
                "Type",
                "string",
                "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.",
                0,
            ),
            col(
                "Cluster-IP",
                "string",
                "clusterIP is the IP address of the service and is usually assigned randomly.",
                0,
            ),
            col(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                0,
            ),
            col(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
                0,
            ),
            age_col(),
            col(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ),
        ],
        ("", "nodes") => vec![
            name_col(0),
            col("Status", "string", "The status of the node", 0),
            col("Roles", "string", "The roles of the node", 0),
            age_col(),
            col(
                "Version",
                "string",
                "Kubelet Version reported by the node.",
                0,
            ),
            col(
                "Internal-IP",
                "string",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "External-IP",
                "string",
                "List of addresses reachable to the node.",
                1,
            ),
            col(
                "OS-Image",
                "string",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                1,
            ),
            col(
                "Kernel-Version",
                "string",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                1,
            ),
            col(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                1,
            ),
        ],
        ("", "namespaces") => vec![
            name_col(0),
            col("Status", "string", "The status of the namespace", 0),
            age_col(),
        ],
        ("", "configmaps") => vec![
            name_col(0),
            col("Data", "string", "Data contains the configuration data.", 0),
            age_col(),
        ],
        ("", "secrets") => vec![
            name_col(0),
            col(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
                0,
            ),
            col("Data", "string", "Data contains the secret data.", 0),
            age_col(),
        ],
        ("", "serviceaccounts") => vec![
            name_col(0),
            col(
                "Secrets",
                "string",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                0,
            ),
            age_col(),
        ],
        ("", "events") | ("events.k8s.io", "events") => event_columns(),
        ("coordination.k8s.io", "leases") => vec![
            name_col(0),
            col(
                "Holder",
                "string",
                "holderIdentity contains the identity of the holder of a current lease.",
                0,
            ),
            age_col(),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            name_col(0),
            col(
                "Min Available",
                "string",
                "The minimum number or percentage of available pods this budget requires.",
                0,
            ),
            col(
                "Max Unavailable",
                "string",
                "The maximum number or percentage of unavailable pods this budget allows.",
                0,
            ),
            col(
                "Allowed Disruptions",
                "integer",
                "Number of pod disruptions that are currently allowed.",
                0,
            ),
            age_col(),
        ],
        ("apps", "deployments") => vec![
            name_col(0),
            col("Ready", "string", "Number of the pod with ready state", 0),
            col(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age_col(),
            col("Containers", "string", CONTAINERS_DESC, 1),
            col("Images", "string", IMAGES_DESC, 1),
            col(
                "Selector",
                "string",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                1,
            ),
        ],
        ("rbac.authorization.k8s.io", "rolebindings") => binding_columns("roleBinding"),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            binding_columns("clusterRoleBinding")
        }
        ("apiregistration.k8s.io", "apiservices") => vec![
            name_col(0),
            col(
                "Service",
                "string",
                "The reference to the service that hosts this API endpoint.",
                0,
            ),
            col(
                "Available",
                "string",
                "Whether this service is available.",
                0,
            ),
            age_col(),
        ],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => vec![
            name_col(0),
            col(
                "Webhooks",
                "integer",
                "Webhooks indicates the number of webhooks registered in this configuration",
                0,
            ),
            age_col(),
        ],
        _ => default_columns(),
    }
}

// ---------------------------------------------------------------------------
// Cells of the built-in resources.
// ---------------------------------------------------------------------------

/// The row cells for `obj`, matching [`builtin_columns`] for the same
/// resource. `now` is the reference time for AGE-like cells.
pub fn builtin_cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match (group, resource) {
        ("", "pods") => pod_cells(obj, now),
        ("", "services") => service_cells(obj, now),
        ("", "nodes") => node_cells(obj, now),
        ("", "namespaces") => {
            let phase = opt_text(obj, &["status", "phase"]).unwrap_or("Active");
            vec![name_cell(obj), json!(phase), json!(age(obj, now))]
        }
        ("", "configmaps") => {
            let n = key_count(obj, &["data"]) + key_count(obj, &["binaryData"]);
            vec![name_cell(obj), json!(n), json!(age(obj, now))]
        }
        ("", "secrets") => {
            let ty = opt_text(obj, &["type"]).unwrap_or("Opaque");
            vec![
                name_cell(obj),
                json!(ty),
                json!(secret_data_count(obj)),
                json!(age(obj, now)),
            ]
        }
        ("", "serviceaccounts") => {
            let n = list(obj, &["secrets"]).len();
            vec![name_cell(obj), json!(n), json!(age(obj, now))]
        }
        ("", "events") => event_cells(&EventView::core(obj), now),
        ("events.k8s.io", "events") => event_cells(&EventView::events_v1(obj), now),
        ("coordination.k8s.io", "leases") => vec![
            name_cell(obj),
            json!(text(obj, &["spec", "holderIdentity"])),
            json!(age(obj, now)),
        ],
        ("policy", "poddisruptionbudgets") => {
            // An int or a percentage, as set; N/A when unset.
            let bound = |field: &str| match get(obj, &["spec", field]) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".to_string(),
            };
            vec![
                name_cell(obj),
                json!(bound("minAvailable")),
                json!(bound("maxUnavailable")),
                json!(int(obj, &["status", "disruptionsAllowed"])),
                json!(age(obj, now)),
            ]
        }
        ("apps", "deployments") => deployment_cells(obj, now),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            binding_cells(obj, now)
        }
        ("apiregistration.k8s.io", "apiservices") => vec![
            name_cell(obj),
            json!(api_service_backend(obj)),
            json!(api_service_available(obj)),
            json!(age(obj, now)),
        ],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => vec![
            name_cell(obj),
            json!(list(obj, &["webhooks"]).len()),
            json!(age(obj, now)),
        ],
        _ => vec![name_cell(obj), created_at(obj)],
    }
}

/// `namespace/name` of an APIService's Service, or `Local` for one served in-process.
fn api_service_backend(obj: &Value) -> String {
    match obj.pointer("/spec/service").filter(|s| s.is_object()) {
        Some(svc) => format!(
            "{}/{}",
            svc["namespace"].as_str().unwrap_or(""),
            svc["name"].as_str().unwrap_or("")
        ),
        None => "Local".to_string(),
    }
}

/// The Available condition as kubectl prints it: `True`, or `False (Reason)`.
fn api_service_available(obj: &Value) -> String {
    let cond = list(obj, &["status", "conditions"])
        .iter()
        .find(|c| c["type"] == "Available");
    match cond {
        None => "Unknown".to_string(),
        Some(c) => {
            let status = c["status"].as_str().unwrap_or("Unknown");
            match c["reason"]
                .as_str()
                .filter(|r| !r.is_empty() && status != "True")
            {
                Some(reason) => format!("{status} ({reason})"),
                None => status.to_string(),
            }
        }
    }
}

fn name_cell(obj: &Value) -> Value {
    json!(text(obj, &["metadata", "name"]))
}

fn secret_data_count(obj: &Value) -> usize {
    let mut keys: Vec<&String> = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(m) = get(obj, &[field]).and_then(Value::as_object) {
            keys.extend(m.keys());
        }
    }
    keys.sort();
    keys.dedup();
    keys.len()
}

// --- pods ------------------------------------------------------------------

fn is_true_condition(obj: &Value, ty: &str) -> bool {
    list(obj, &["status", "conditions"])
        .iter()
        .any(|c| text(c, &["type"]) == ty && text(c, &["status"]) == "True")
}

/// Keeps the later of `latest` and the container's last termination time.
fn note_last_termination(status: &Value, latest: &mut Option<DateTime<Utc>>) {
    let finished =
        opt_text(status, &["lastState", "terminated", "finishedAt"]).and_then(parse_time);
    if let Some(t) = finished
        && latest.is_none_or(|l| l < t)
    {
        *latest = Some(t);
    }
}

/// The "Init:..." or "..." reason of a terminated container without a reason.
fn exit_reason(terminated: &Value) -> String {
    let signal = int(terminated, &["signal"]);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int(terminated, &["exitCode"]))
    }
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list(pod, &["spec", "initContainers"]);
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, &["name"]) == name && text(c, &["restartPolicy"]) == "Always")
    };
    let mut total = list(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| text(c, &["restartPolicy"]) == "Always")
        .count();

    let phase = text(pod, &["status", "phase"]);
    let mut reason = opt_text(pod, &["status", "reason"])
        .unwrap_or(phase)
        .to_string();
    let gated = list(pod, &["status", "conditions"])
        .iter()
        .any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".to_string();
    }

    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut sidecar_last_restart: Option<DateTime<Utc>> = None;
    let mut initializing = false;
    let init_statuses = list(pod, &["status", "initContainerStatuses"]);
    for (i, st) in init_statuses.iter().enumerate() {
        restarts += int(st, &["restartCount"]);
        note_last_termination(st, &mut last_restart);
        let sidecar = is_sidecar(text(st, &["name"]));
        if sidecar {
            sidecar_restarts += int(st, &["restartCount"]);
            note_last_termination(st, &mut sidecar_last_restart);
        }
        let terminated = get(st, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting_reason = text(st, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(st, &["started"]) {
            if flag(st, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match opt_text(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:{}", exit_reason(t)),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || is_true_condition(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for st in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(st, &["restartCount"]);
            note_last_termination(st, &mut last_restart);
            let terminated = get(st, &["state", "terminated"]).filter(|t| t.is_object());
            if let Some(w) = opt_text(st, &["state", "waiting", "reason"]) {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match opt_text(t, &["reason"]) {
                    Some(r) => r.to_string(),
                    None => exit_reason(t),
                };
            } else if flag(st, &["ready"])
                && get(st, &["state", "running"]).is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if is_true_condition(pod, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = get(pod, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
    if deleting && text(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let ip = list(pod, &["status", "podIPs"])
        .first()
        .map(|p| text(p, &["ip"]))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text(pod, &["status", "podIP"]));
    let gates = list(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        NONE.to_string()
    } else {
        let conditions = list(pod, &["status", "conditions"]);
        let satisfied = gates
            .iter()
            .filter(|g| {
                let ty = text(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| text(c, &["type"]) == ty)
                    .is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };

    vec![
        name_cell(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(pod, now)),
        json!(or_none(ip)),
        json!(or_none(text(pod, &["spec", "nodeName"]))),
        json!(or_none(text(pod, &["status", "nominatedNodeName"]))),
        json!(gates_cell),
    ]
}

// --- services --------------------------------------------------------------

/// kube's `labels.FormatLabels`: sorted `k=v` pairs, "<none>" when empty.
fn format_labels(v: Option<&Value>) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return NONE.to_string();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn load_balancer_ips(svc: &Value) -> Vec<String> {
    let mut ips: Vec<String> = list(svc, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| opt_text(i, &["ip"]).or_else(|| opt_text(i, &["hostname"])))
        .map(str::to_string)
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external: Vec<&str> = list(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                NONE.to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_ips(svc);
            if all.is_empty() && external.is_empty() {
                return "<pending>".to_string();
            }
            all.extend(external.iter().map(|s| s.to_string()));
            all.join(",")
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => UNKNOWN.to_string(),
    }
}

/// `80/TCP,443:30443/TCP`.
fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let proto = opt_text(p, &["protocol"]).unwrap_or("TCP");
            match int(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = opt_text(svc, &["spec", "type"]).unwrap_or("ClusterIP");
    let cluster_ip = list(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text(svc, &["spec", "clusterIP"]));
    vec![
        name_cell(svc),
        json!(ty),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(svc, ty)),
        json!(service_ports(svc)),
        json!(age(svc, now)),
        json!(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

// --- nodes -----------------------------------------------------------------

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role"
                && let Some(role) = v.as_str().filter(|s| !s.is_empty())
            {
                roles.push(role);
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    or_none(&roles.join(","))
}

fn node_address(node: &Value, ty: &str) -> String {
    list(node, &["status", "addresses"])
        .iter()
        .find(|a| text(a, &["type"]) == ty)
        .map(|a| text(a, &["address"]).to_string())
        .unwrap_or_else(|| NONE.to_string())
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    let ready = list(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| text(c, &["type"]) == "Ready");
    match ready {
        Some(c) if text(c, &["status"]) == "True" => status.push("Ready"),
        Some(_) => status.push("NotReady"),
        None => status.push("Unknown"),
    }
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| -> String {
        opt_text(node, &["status", "nodeInfo", field])
            .unwrap_or(UNKNOWN)
            .to_string()
    };
    vec![
        name_cell(node),
        json!(status.join(",")),
        json!(node_roles(node)),
        json!(age(node, now)),
        json!(text(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

// --- events ----------------------------------------------------------------

/// The fields the event printer needs, read from either a core/v1 Event or an
/// events.k8s.io/v1 Event (which kube-apiserver stores as the same object).
struct EventView<'a> {
    name: &'a str,
    type_: &'a str,
    reason: &'a str,
    message: &'a str,
    object_kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    first_timestamp: Option<&'a str>,
    last_timestamp: Option<&'a str>,
    event_time: Option<&'a str>,
    count: i64,
    series: Option<&'a Value>,
}

impl<'a> EventView<'a> {
    fn core(e: &'a Value) -> Self {
        EventView {
            name: text(e, &["metadata", "name"]),
            type_: text(e, &["type"]),
            reason: text(e, &["reason"]),
            message: text(e, &["message"]),
            object_kind: text(e, &["involvedObject", "kind"]),
            object_name: text(e, &["involvedObject", "name"]),
            field_path: text(e, &["involvedObject", "fieldPath"]),
            source_component: text(e, &["source", "component"]),
            source_host: text(e, &["source", "host"]),
            reporting_controller: text(e, &["reportingComponent"]),
            reporting_instance: text(e, &["reportingInstance"]),
            first_timestamp: opt_text(e, &["firstTimestamp"]),
            last_timestamp: opt_text(e, &["lastTimestamp"]),
            event_time: opt_text(e, &["eventTime"]),
            count: int(e, &["count"]),
            series: get(e, &["series"]).filter(|s| s.is_object()),
        }
    }

    fn events_v1(e: &'a Value) -> Self {
        EventView {
            name: text(e, &["metadata", "name"]),
            type_: text(e, &["type"]),
            reason: text(e, &["reason"]),
            message: text(e, &["note"]),
            object_kind: text(e, &["regarding", "kind"]),
            object_name: text(e, &["regarding", "name"]),
            field_path: text(e, &["regarding", "fieldPath"]),
            source_component: text(e, &["deprecatedSource", "component"]),
            source_host: text(e, &["deprecatedSource", "host"]),
            reporting_controller: text(e, &["reportingController"]),
            reporting_instance: text(e, &["reportingInstance"]),
            first_timestamp: opt_text(e, &["deprecatedFirstTimestamp"]),
            last_timestamp: opt_text(e, &["deprecatedLastTimestamp"]),
            event_time: opt_text(e, &["eventTime"]),
            count: int(e, &["deprecatedCount"]),
            series: get(e, &["series"]).filter(|s| s.is_object()),
        }
    }
}

fn event_cells(e: &EventView<'_>, now: DateTime<Utc>) -> Vec<Value> {
    let first_seen = match e.first_timestamp {
        Some(ts) => since(Some(ts), now),
        None => since(e.event_time, now),
    };
    let mut last_seen = match e.last_timestamp {
        Some(ts) => since(Some(ts), now),
        None => first_seen.clone(),
    };
    let mut count = e.count;
    if let Some(series) = e.series {
        last_seen = since(opt_text(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let object = if e.object_name.is_empty() {
        e.object_kind.to_lowercase()
    } else {
        format!("{}/{}", e.object_kind.to_lowercase(), e.object_name)
    };
    let component = if e.source_component.is_empty() {
        e.reporting_controller
    } else {
        e.source_component
    };
    let host = if e.source_host.is_empty() {
        e.reporting_instance
    } else {
        e.source_host
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last_seen),
        json!(e.type_),
        json!(e.reason),
        json!(object),
        json!(e.field_path),
        json!(source),
        json!(e.message.trim()),
        json!(first_seen),
        json!(count),
        json!(e.name),
    ]
}

// --- deployments -----------------------------------------------------------

/// kube's label-selector string (`metav1.LabelSelectorAsSelector(..).String()`):
/// requirements sorted by key, e.g. `app=web,tier in (a,b),!legacy`.
fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = get(sel, &["matchLabels"]).and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for expr in list(sel, &["matchExpressions"]) {
        let key = text(expr, &["key"]);
        let mut values: Vec<&str> = list(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let s = match text(expr, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<invalid>".to_string(),
        };
        reqs.push((key.to_string(), s));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

/// Container names and images of a pod template, each comma-joined.
fn container_cells(obj: &Value) -> (String, String) {
    let containers = list(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn deployment_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let desired = get(obj, &["spec", "replicas"])
        .and_then(value_as_i64)
        .unwrap_or(1);
    let ready = int(obj, &["status", "readyReplicas"]);
    let (names, images) = container_cells(obj);
    vec![
        name_cell(obj),
        json!(format!("{ready}/{desired}")),
        json!(int(obj, &["status", "updatedReplicas"])),
        json!(int(obj, &["status", "availableReplicas"])),
        json!(age(obj, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

// --- rbac ------------------------------------------------------------------

fn binding_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(obj, &["roleRef", "kind"]),
        text(obj, &["roleRef", "name"])
    );
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for s in list(obj, &["subjects"]) {
        let name = text(s, &["name"]);
        match text(s, &["kind"]) {
            "User" => users.push(name.to_string()),
            "Group" => groups.push(name.to_string()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{name}", text(s, &["namespace"])));
            }
            _ => {}
        }
    }
    vec![
        name_cell(obj),
        json!(role),
        json!(age(obj, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(service_accounts.join(", ")),
    ]
}

// ---------------------------------------------------------------------------
// CustomResourceDefinition printer columns.
// ---------------------------------------------------------------------------

/// One declared (or defaulted) `additionalPrinterColumns` entry.
struct CrdColumn {
    column: Column,
    json_path: String,
}

/// The declared columns, or kube's default single `Age` column (type "date",
/// `.metadata.creationTimestamp`) when the CRD declares none.
fn crd_columns(cols: &Value) -> Vec<CrdColumn> {
    let declared = cols.as_array().map(Vec::as_slice).unwrap_or(&[]);
    if declared.is_empty() {
        return vec![CrdColumn {
            column: col("Age", "date", CREATED_DESC, 0),
            json_path: ".metadata.creationTimestamp".to_string(),
        }];
    }
    declared
        .iter()
        .map(|c| {
            let json_path = text(c, &["jsonPath"]).to_string();
            let description = match opt_text(c, &["description"]) {
                Some(d) => d.to_string(),
                None => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
            };
            let priority = get(c, &["priority"])
                .and_then(value_as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0);
            CrdColumn {
                column: Column {
                    name: text(c, &["name"]).to_string(),
                    type_: opt_text(c, &["type"]).unwrap_or("string").to_string(),
                    format: text(c, &["format"]).to_string(),
                    description,
                    priority,
                },
                json_path,
            }
        })
        .collect()
}

/// Table columns for a custom resource from one CRD version's
/// `additionalPrinterColumns` (an array, possibly empty): `Name` first, then
/// the declared columns, or `Age` when none are declared.
pub fn printer_columns_from_crd(cols: &Value) -> Vec<Column> {
    std::iter::once(name_col(0))
        .chain(crd_columns(cols).into_iter().map(|c| c.column))
        .collect()
}

/// Row cells for a custom resource, matching [`printer_columns_from_crd`].
/// Missing values are `null`; integer, number and boolean columns keep their
/// JSON types; date columns carry the timestamp string; several string results
/// are joined with ",".
#[cfg(test)]
pub fn crd_cells(cols: &Value, obj: &Value) -> Vec<Value> {
    crd_cells_impl(cols, obj, None)
}

/// Like [`crd_cells`], but renders "date" cells the way kube-apiserver does
/// for custom resources: as the age relative to `now` (e.g. "5m"), or
/// "<invalid>" for a string that is not a timestamp.
pub fn crd_cells_with_age(cols: &Value, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    crd_cells_impl(cols, obj, Some(now))
}

fn crd_cells_impl(cols: &Value, obj: &Value, now: Option<DateTime<Utc>>) -> Vec<Value> {
    std::iter::once(name_cell(obj))
        .chain(
            crd_columns(cols)
                .iter()
                .map(|c| match JsonPath::parse(&c.json_path) {
                    Ok(path) => typed_cell(&c.column.type_, &path.select(obj), now),
                    Err(_) => Value::Null,
                }),
        )
        .collect()
}

/// Text of one JSONPath result as kubectl's jsonpath printer shows it.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn typed_cell(type_: &str, found: &[&Value], now: Option<DateTime<Utc>>) -> Value {
    let values: Vec<&Value> = found.iter().copied().filter(|v| !v.is_null()).collect();
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match type_ {
        "integer" => match first {
            Value::Number(n) if n.is_i64() || n.is_u64() => (*first).clone(),
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
            _ => Value::Null,
        },
        "number" => match first {
            Value::Number(_) => (*first).clone(),
            _ => Value::Null,
        },
        "boolean" => match first {
            Value::Bool(_) => (*first).clone(),
            _ => Value::Null,
        },
        "date" => match (first.as_str(), now) {
            (Some(s), Some(now)) => match parse_time(s) {
                Some(t) => json!(human_duration(now - t)),
                None => json!("<invalid>"),
            },
            (Some(s), None) => json!(s),
            (None, _) => Value::Null,
        },
        _ => {
            let texts: Vec<String> = values.iter().map(|v| value_text(v)).collect();
            json!(texts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T12:00:00Z").unwrap()
    }

    fn names(cols: &[Column]) -> Vec<&str> {
        cols.iter().map(|c| c.name.as_str()).collect()
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": "2024-05-01T11:57:00Z"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            "status": status,
        })
    }

    #[test]
    fn human_duration_matches_kube() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (185, "3m5s"),
            (9 * 60 + 59, "9m59s"),
            (15 * 60 + 30, "15m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (20 * 3600 + 59 * 60, "20h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (40 * 86400 + 7 * 3600, "40d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (830 * 86400, "2y100d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(TimeDelta::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn age_is_unknown_without_timestamp() {
        let obj = json!({"metadata": {"name": "x"}});
        assert_eq!(age(&obj, now()), "<unknown>");
        let bad = json!({"metadata": {"creationTimestamp": "yesterday"}});
        assert_eq!(age(&bad, now()), "<unknown>");
    }

    #[test]
    fn pod_columns_match_kube() {
        let cols = builtin_columns("", "pods");
        assert_eq!(
            names(&cols),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(cols[0].format, "name");
        assert!(cols[1..].iter().all(|c| c.format.is_empty()));
        let priorities: Vec<i32> = cols.iter().map(|c| c.priority).collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert!(cols.iter().all(|c| c.type_ == "string"));
    }

    #[test]
    fn pending_pod() {
        let p = pod(json!({"phase": "Pending"}));
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("3m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pending_pod_waiting_for_image() {
        let p = pod(json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }));
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[2], json!("ContainerCreating"));
        assert_eq!(cells[1], json!("0/1"));
    }

    #[test]
    fn running_pod_with_restarts() {
        let mut p = pod(json!({
            "phase": "Running",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2024-05-01T11:55:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2024-05-01T11:55:00Z"}}}],
        }));
        p["spec"]["nodeName"] = json!("node-1");
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[1], json!("1/1"));
        assert_eq!(cells[2], json!("Running"));
        assert_eq!(cells[3], json!("2 (5m ago)"));
        assert_eq!(cells[5], json!("10.0.0.7"));
        assert_eq!(cells[6], json!("node-1"));
    }

    #[test]
    fn terminating_pod() {
        let mut p = pod(json!({
            "phase": "Running",
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {}}}],
        }));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[2], json!("Terminating"));
        assert_eq!(cells[1], json!("1/1"));

        // A finished pod being deleted keeps its terminal status.
        let mut done = pod(json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(
            builtin_cells("", "pods", &done, now())[2],
            json!("Succeeded")
        );

        let mut lost = pod(json!({"phase": "Running", "reason": "NodeLost"}));
        lost["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(builtin_cells("", "pods", &lost, now())[2], json!("Unknown"));
    }

    #[test]
    fn completed_pod() {
        let p = pod(json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        }));
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[2], json!("Completed"));
        assert_eq!(cells[3], json!("0"));
    }

    #[test]
    fn crash_looping_pod() {
        let p = pod(json!({
            "phase": "Running",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1,
                    "finishedAt": "2024-05-01T11:59:30Z"}}}],
        }));
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[2], json!("CrashLoopBackOff"));
        assert_eq!(cells[3], json!("5 (30s ago)"));
    }

    #[test]
    fn terminated_without_reason_shows_exit_code_or_signal() {
        let p = pod(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 137}}}],
        }));
        assert_eq!(
            builtin_cells("", "pods", &p, now())[2],
            json!("ExitCode:137")
        );
        let p = pod(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "signal": 9}}}],
        }));
        assert_eq!(builtin_cells("", "pods", &p, now())[2], json!("Signal:9"));
    }

    #[test]
    fn completed_container_with_running_sibling() {
        let mut p = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "job", "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
            ],
        }));
        p["spec"]["containers"] = json!([{"name": "job"}, {"name": "app"}]);
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[1], json!("1/2"));
        assert_eq!(cells[2], json!("NotReady"));
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(builtin_cells("", "pods", &p, now())[2], json!("Running"));
    }

    #[test]
    fn init_container_states() {
        let mut p = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "init-a", "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-b", "restartCount": 0, "state": {"running": {}}},
            ],
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}],
        }));
        p["spec"]["initContainers"] = json!([{"name": "init-a"}, {"name": "init-b"}]);
        assert_eq!(builtin_cells("", "pods", &p, now())[2], json!("Init:1/2"));

        p["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        p["status"]["initContainerStatuses"][1]["restartCount"] = json!(3);
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(cells[3], json!("3"));

        p["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(
            builtin_cells("", "pods", &p, now())[2],
            json!("Init:ExitCode:2")
        );
    }

    #[test]
    fn sidecar_init_containers_count_towards_ready() {
        let mut p = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {}}}],
        }));
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[1], json!("2/2"));
        assert_eq!(cells[2], json!("Running"));
        assert_eq!(cells[3], json!("1"));
    }

    #[test]
    fn readiness_gates_and_nominated_node() {
        let mut p = pod(json!({
            "phase": "Pending",
            "nominatedNodeName": "node-2",
            "conditions": [{"type": "example.com/lb", "status": "True"},
                           {"type": "example.com/dns", "status": "False"}],
        }));
        p["spec"]["readinessGates"] =
            json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
        let cells = builtin_cells("", "pods", &p, now());
        assert_eq!(cells[7], json!("node-2"));
        assert_eq!(cells[8], json!("1/2"));
    }

    #[test]
    fn scheduling_gated_pod() {
        let p = pod(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False",
                            "reason": "SchedulingGated"}],
        }));
        assert_eq!(
            builtin_cells("", "pods", &p, now())[2],
            json!("SchedulingGated")
        );
    }

    #[test]
    fn service_with_node_ports() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-29T09:00:00Z"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "selector": {"tier": "front", "app": "web"},
                "ports": [
                    {"port": 80, "protocol": "TCP", "nodePort": 30080},
                    {"port": 443, "nodePort": 30443},
                    {"port": 53, "protocol": "UDP"},
                ],
            },
        });
        assert_eq!(
            names(&builtin_columns("", "services")),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let cells = builtin_cells("", "services", &svc, now());
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,443:30443/TCP,53/UDP"),
                json!("2d3h"),
                json!("app=web,tier=front"),
            ]
        );
    }

    #[test]
    fn service_external_ips() {
        let lb = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.2",
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}});
        let cells = builtin_cells("", "services", &lb, now());
        assert_eq!(cells[3], json!("<pending>"));
        assert_eq!(cells[5], json!("<unknown>"));
        assert_eq!(cells[6], json!("<none>"));

        let mut ready = lb.clone();
        ready["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "b.example"},
                                                              {"ip": "1.2.3.4"}]}});
        ready["spec"]["externalIPs"] = json!(["5.6.7.8"]);
        assert_eq!(
            builtin_cells("", "services", &ready, now())[3],
            json!("1.2.3.4,b.example,5.6.7.8")
        );

        let ext = json!({"metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let cells = builtin_cells("", "services", &ext, now());
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[3], json!("db.example.com"));
        assert_eq!(cells[4], json!("<none>"));

        let headless = json!({"metadata": {"name": "h"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                     "externalIPs": ["9.9.9.9"]}});
        let cells = builtin_cells("", "services", &headless, now());
        assert_eq!(cells[1], json!("ClusterIP"));
        assert_eq!(cells[2], json!("None"));
        assert_eq!(cells[3], json!("9.9.9.9"));
    }

    #[test]
    fn node_row() {
        let node = json!({
            "metadata": {"name": "node-1", "creationTimestamp": "2024-03-22T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "",
                           "node-role.kubernetes.io/worker": "true",
                           "kubernetes.io/hostname": "node-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 12",
                             "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"},
            },
        });
        let cols = builtin_columns("", "nodes");
        assert_eq!(
            names(&cols),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(cols.iter().filter(|c| c.priority == 1).count(), 5);
        let cells = builtin_cells("", "nodes", &node, now());
        assert_eq!(
            cells,
            vec![
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("40d"),
                json!("v1.31.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("containerd://1.7.0"),
            ]
        );
    }

    #[test]
    fn node_status_variants() {
        let not_ready = json!({"metadata": {"name": "n", "labels": {"kubernetes.io/role": "edge"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let cells = builtin_cells("", "nodes", &not_ready, now());
        assert_eq!(cells[1], json!("NotReady"));
        assert_eq!(cells[2], json!("edge"));
        assert_eq!(cells[7], json!("<unknown>"));

        let bare = json!({"metadata": {"name": "n"}});
        let cells = builtin_cells("", "nodes", &bare, now());
        assert_eq!(cells[1], json!("Unknown"));
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[5], json!("<none>"));
    }

    #[test]
    fn simple_core_resources() {
        let ns = json!({"metadata": {"name": "dev", "creationTimestamp": "2024-05-01T11:59:15Z"},
                        "status": {"phase": "Terminating"}});
        assert_eq!(
            builtin_cells("", "namespaces", &ns, now()),
            vec![json!("dev"), json!("Terminating"), json!("45s")]
        );
        let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"},
                        "binaryData": {"c": "AA=="}});
        assert_eq!(builtin_cells("", "configmaps", &cm, now())[1], json!(3));
        let secret = json!({"metadata": {"name": "s"}, "data": {"x": "eA=="},
                            "type": "kubernetes.io/tls"});
        assert_eq!(
            builtin_cells("", "secrets", &secret, now()),
            vec![
                json!("s"),
                json!("kubernetes.io/tls"),
                json!(1),
                json!("<unknown>")
            ]
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "tok"}]});
        assert_eq!(
            builtin_cells("", "serviceaccounts", &sa, now())[1],
            json!(1)
        );
        let lease = json!({"metadata": {"name": "kube-scheduler"},
                           "spec": {"holderIdentity": "sched-1_abc"}});
        assert_eq!(
            builtin_cells("coordination.k8s.io", "leases", &lease, now())[1],
            json!("sched-1_abc")
        );
    }

    #[test]
    fn core_event_row() {
        let ev = json!({
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled",
            "message": "Successfully pulled image\n",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:00:00Z",
            "lastTimestamp": "2024-05-01T11:58:00Z",
            "count": 4,
        });
        let cols = builtin_columns("", "events");
        assert_eq!(
            names(&cols),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(cols[9].format, "name");
        assert_eq!(cols[9].priority, 1);
        let cells = builtin_cells("", "events", &ev, now());
        assert_eq!(
            cells,
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image"),
                json!("60m"),
                json!(4),
                json!("web.17a"),
            ]
        );
    }

    #[test]
    fn events_v1_row() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "node-1.1"},
            "regarding": {"kind": "Node", "name": "node-1"},
            "note": "Node became ready",
            "reason": "NodeReady",
            "type": "Normal",
            "reportingController": "localkube",
            "reportingInstance": "localkube-0",
            "eventTime": "2024-05-01T11:50:00.123456Z",
        });
        assert_eq!(
            builtin_columns("events.k8s.io", "events"),
            builtin_columns("", "events")
        );
        let cells = builtin_cells("events.k8s.io", "events", &ev, now());
        // 9m59.876s: fractions truncate, as in kube.
        assert_eq!(cells[0], json!("9m59s"));
        assert_eq!(cells[3], json!("node/node-1"));
        assert_eq!(cells[5], json!("localkube, localkube-0"));
        assert_eq!(cells[6], json!("Node became ready"));
        assert_eq!(cells[7], json!("9m59s"));
        assert_eq!(cells[8], json!(1));

        let mut series = ev.clone();
        series["series"] = json!({"count": 7, "lastObservedTime": "2024-05-01T11:59:00.000000Z"});
        series["deprecatedCount"] = json!(2);
        let cells = builtin_cells("events.k8s.io", "events", &series, now());
        assert_eq!(cells[0], json!("60s"));
        assert_eq!(cells[8], json!(7));

        let mut legacy = ev.clone();
        legacy["deprecatedFirstTimestamp"] = json!("2024-05-01T10:00:00Z");
        legacy["deprecatedLastTimestamp"] = json!("2024-05-01T11:00:00Z");
        legacy["deprecatedCount"] = json!(3);
        legacy["deprecatedSource"] = json!({"component": "kubelet"});
        let cells = builtin_cells("events.k8s.io", "events", &legacy, now());
        assert_eq!(cells[0], json!("60m"));
        assert_eq!(cells[5], json!("kubelet, localkube-0"));
        assert_eq!(cells[7], json!("120m"));
        assert_eq!(cells[8], json!(3));
    }

    #[test]
    fn deployment_row() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"},
                             "matchExpressions": [
                                 {"key": "tier", "operator": "In", "values": ["b", "a"]},
                                 {"key": "legacy", "operator": "DoesNotExist"}]},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25"},
                    {"name": "sidecar", "image": "envoy:1.30"}]}},
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        let cols = builtin_columns("apps", "deployments");
        assert_eq!(
            names(&cols),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            builtin_cells("apps", "deployments", &d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3h"),
                json!("app,sidecar"),
                json!("nginx:1.25,envoy:1.30"),
                json!("app=web,!legacy,tier in (a,b)"),
            ]
        );
        let bare = json!({"metadata": {"name": "x"}});
        let cells = builtin_cells("apps", "deployments", &bare, now());
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[7], json!(""));
    }

    #[test]
    fn role_binding_row() {
        let rb = json!({
            "metadata": {"name": "admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "admin"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "ops"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
            ],
        });
        for resource in ["rolebindings", "clusterrolebindings"] {
            let cols = builtin_columns("rbac.authorization.k8s.io", resource);
            assert_eq!(
                names(&cols),
                ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
            );
            assert_eq!(
                builtin_cells("rbac.authorization.k8s.io", resource, &rb, now()),
                vec![
                    json!("admins"),
                    json!("ClusterRole/admin"),
                    json!("<unknown>"),
                    json!("alice, bob"),
                    json!("ops"),
                    json!("build/ci"),
                ]
            );
        }
    }

    #[test]
    fn default_table_for_other_resources() {
        let role = json!({"metadata": {"name": "reader",
                                       "creationTimestamp": "2024-05-01T10:00:00.5+02:00"}});
        for (group, resource) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("", "endpoints"),
        ] {
            let cols = builtin_columns(group, resource);
            assert_eq!(names(&cols), ["Name", "Created At"]);
            assert_eq!(cols[1].type_, "date");
            assert_eq!(
                builtin_cells(group, resource, &role, now()),
                vec![json!("reader"), json!("2024-05-01T08:00:00Z")]
            );
        }
    }

    #[test]
    fn cells_match_columns_for_every_builtin() {
        let empty = json!({});
        for (group, resource) in [
            ("", "pods"),
            ("", "services"),
            ("", "nodes"),
            ("", "namespaces"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("coordination.k8s.io", "leases"),
            ("policy", "poddisruptionbudgets"),
            ("apps", "deployments"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("example.com", "widgets"),
        ] {
            let cols = builtin_columns(group, resource);
            let cells = builtin_cells(group, resource, &empty, now());
            assert_eq!(cols.len(), cells.len(), "{group}/{resource}");
            assert_eq!(cols.iter().filter(|c| c.format == "name").count(), 1);
        }
    }

    fn vm() -> Value {
        json!({
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "vm-1", "creationTimestamp": "2024-05-01T11:00:00Z",
                         "labels": {"kubevirt.io/vm": "vm-1", "tier": "db"}},
            "spec": {"replicas": 3, "ratio": 1.5, "paused": false,
                     "disks": [{"name": "root", "size": 10}, {"name": "data", "size": 20}]},
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Paused", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "Booted"},
                ],
            },
        })
    }

    fn printer_columns() -> Value {
        json!([
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Ready", "type": "string", "description": "VMI readiness",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "VM", "type": "string", "jsonPath": ".metadata.labels.kubevirt\\.io/vm"},
            {"name": "Disks", "type": "string", "priority": 1, "jsonPath": ".spec.disks[*].name"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Node", "type": "string", "jsonPath": ".status.nodeName"},
            {"name": "Created", "type": "date", "format": "date-time",
             "jsonPath": ".metadata.creationTimestamp"},
        ])
    }

    #[test]
    fn crd_printer_columns() {
        let cols = printer_columns_from_crd(&printer_columns());
        assert_eq!(
            names(&cols),
            [
                "Name", "Phase", "Ready", "VM", "Disks", "Replicas", "Ratio", "Paused", "Node",
                "Created"
            ]
        );
        assert_eq!(cols[0].format, "name");
        assert_eq!(cols[0].type_, "string");
        assert_eq!(cols[2].description, "VMI readiness");
        assert_eq!(
            cols[1].description,
            "Custom resource definition column (in JSONPath format): .status.phase"
        );
        assert_eq!(cols[4].priority, 1);
        assert_eq!(cols[5].type_, "integer");
        assert_eq!(cols[9].format, "date-time");
        assert!(!names(&cols).contains(&"Age"));

        let cells = crd_cells(&printer_columns(), &vm());
        assert_eq!(cells.len(), cols.len());
        assert_eq!(
            cells,
            vec![
                json!("vm-1"),
                json!("Running"),
                json!("True"),
                json!("vm-1"),
                json!("root,data"),
                json!(3),
                json!(1.5),
                json!(false),
                Value::Null,
                json!("2024-05-01T11:00:00Z"),
            ]
        );
        let aged = crd_cells_with_age(&printer_columns(), &vm(), now());
        assert_eq!(aged[9], json!("60m"));
        assert_eq!(aged[..9], cells[..9]);
    }

    #[test]
    fn crd_cells_type_coercion() {
        let cols = json!([
            {"name": "I", "type": "integer", "jsonPath": ".a"},
            {"name": "S", "type": "integer", "jsonPath": ".s"},
            {"name": "B", "type": "boolean", "jsonPath": ".s"},
            {"name": "Obj", "type": "string", "jsonPath": ".o"},
            {"name": "Num", "type": "string", "jsonPath": ".a"},
            {"name": "Nil", "type": "string", "jsonPath": ".n"},
            {"name": "Bad", "type": "string", "jsonPath": ".x[abc]"},
            {"name": "D", "type": "date", "jsonPath": ".s"},
        ]);
        let obj = json!({"metadata": {"name": "o"}, "a": 2.9, "s": "text",
                         "o": {"k": [1, true]}, "n": null});
        let cells = crd_cells(&cols, &obj);
        assert_eq!(
            cells,
            vec![
                json!("o"),
                json!(2),
                Value::Null,
                Value::Null,
                json!("{\"k\":[1,true]}"),
                json!("2.9"),
                Value::Null,
                Value::Null,
                json!("text"),
            ]
        );
        assert_eq!(
            crd_cells_with_age(&cols, &obj, now())[8],
            json!("<invalid>")
        );
    }

    #[test]
    fn crd_without_printer_columns_gets_age() {
        for cols in [json!([]), Value::Null] {
            let defs = printer_columns_from_crd(&cols);
            assert_eq!(names(&defs), ["Name", "Age"]);
            assert_eq!(defs[1].type_, "date");
            assert_eq!(defs[1].priority, 0);
            assert_eq!(
                crd_cells(&cols, &vm()),
                vec![json!("vm-1"), json!("2024-05-01T11:00:00Z")]
            );
            assert_eq!(
                crd_cells_with_age(&cols, &vm(), now()),
                vec![json!("vm-1"), json!("60m")]
            );
        }
        let no_ts = json!({"metadata": {"name": "x"}});
        assert_eq!(crd_cells(&json!([]), &no_ts), vec![json!("x"), Value::Null]);
    }
    #[test]
    fn include_object_parse() {
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
        assert_eq!(IncludeObject::parse(""), None);
    }

    #[test]
    fn build_table_shapes() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "cfg", "resourceVersion": "7"},
                        "data": {"a": "1"}});
        let cols = builtin_columns("", "configmaps");
        let cells = builtin_cells("", "configmaps", &cm, now());
        let t = build_table(
            &cols,
            vec![(cells.clone(), cm.clone())],
            IncludeObject::Metadata,
            Some("42"),
            Some("tok"),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": NAME_DESC, "priority": 0})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 3);
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", 1, "<unknown>"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "cfg", "resourceVersion": "7"}})
        );

        let t = build_table(
            &cols,
            vec![(cells.clone(), cm.clone())],
            IncludeObject::Object,
            None,
            None,
        );
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], cm);

        let t = build_table(&[], vec![(cells, cm)], IncludeObject::None, Some("1"), None);
        assert_eq!(t["columnDefinitions"], json!([]));
        assert_eq!(t["metadata"], json!({"resourceVersion": "1"}));
        assert!(t["rows"][0].get("object").is_none());

        let empty = build_table(&cols, Vec::new(), IncludeObject::Metadata, None, None);
        assert_eq!(empty["rows"], json!([]));
    }
}
