//! `localkube-bench`: a load generator for any Kubernetes API server, written for localkube.
//!
//! It measures what a client sees: HTTPS with the kubeconfig's credentials, through kube-rs, with
//! one `kube::Client` (so one connection) per simulated client. For each operation (create, get,
//! patch, watch delivery) and each concurrency it reports requests per second, p50/p99 latency and
//! errors; given `--server-pid` (a server on this machine) it also reports the server's CPU time
//! per request and its resident memory. `--objects 10000,100000` fills the namespace with small
//! ConfigMaps and reports the server's resident memory per stored object.
//!
//! ```text
//! localkube-bench --kubeconfig lk.kubeconfig --server-pid 1234 --clients 1,8,64 --duration 5s
//! ```
//!
//! Run by `scripts/bench-localkube.sh`; results and method are in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// Load generator for a Kubernetes API server: create, get, patch and watch throughput, latency,
/// server CPU per request and server memory per stored object.
///
/// Works against any API server its kubeconfig reaches; `--server-pid` (CPU and memory figures)
/// needs the server to run on this machine.
#[derive(Parser, Debug)]
#[command(
    name = "localkube-bench",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    /// The kubeconfig of the server to measure.
    #[arg(long, value_name = "PATH")]
    kubeconfig: PathBuf,

    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,

    /// Namespace for the benchmark's ConfigMaps; created if missing and deleted at the end if
    /// this run created it.
    #[arg(long, default_value = "localkube-bench", value_name = "NS")]
    namespace: String,

    /// Concurrent clients per phase (comma-separated); each has its own connection.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,8,64",
        value_name = "N,..."
    )]
    clients: Vec<usize>,

    /// How long each (operation, concurrency) phase runs, e.g. 5s, 500ms.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DUR")]
    duration: Duration,

    /// Operations to measure: create, get, list (one page of --pool objects), patch, delete
    /// (of what create made: list it after create), watch; or "none" (with --objects).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,get,list,patch,watch",
        value_name = "OP,..."
    )]
    ops: Vec<String>,

    /// PID of the server process (same machine): adds its CPU time per request and its memory.
    /// Several PIDs (e.g. kube-apiserver,etcd) are summed.
    #[arg(long, value_delimiter = ',', value_name = "PID[,PID]")]
    server_pid: Vec<u32>,

    /// Cumulative numbers of small ConfigMaps to store, measuring the server's memory at each
    /// (e.g. 10000,100000). Runs before the throughput phases, then deletes them.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    objects: Vec<usize>,

    /// Concurrent clients used to fill the store for --objects and the get/patch pool.
    #[arg(long, default_value_t = 16, value_name = "N")]
    fill_clients: usize,

    /// How many ConfigMaps the get and patch phases read and patch.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pool: usize,

    /// Writers creating ConfigMaps during the watch phase.
    #[arg(long, default_value_t = 1, value_name = "N")]
    watch_writers: usize,

    /// Leave the benchmark's objects (and namespace) in place.
    #[arg(long)]
    keep: bool,

    /// Print the results as JSON on stdout (the readable report goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Get,
    /// One page of `--pool` ConfigMaps from the namespace (`limit=POOL`).
    List,
    Patch,
    /// Deletes what the create phase of the same concurrency created, in order; a client
    /// stops at the first one missing.
    Delete,
    Watch,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::List => "list",
            Op::Patch => "patch",
            Op::Delete => "delete",
            Op::Watch => "watch",
        }
    }
}

fn parse_ops(ops: &[String]) -> anyhow::Result<Vec<Op>> {
    let mut out = Vec::new();
    for op in ops {
        match op.trim() {
            "create" => out.push(Op::Create),
            "get" => out.push(Op::Get),
            "list" => out.push(Op::List),
            "patch" => out.push(Op::Patch),
            "delete" => out.push(Op::Delete),
            "watch" => out.push(Op::Watch),
            "none" | "" => {}
            other => {
                bail!("unknown operation {other:?} (create, get, list, patch, delete, watch, none)")
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The server process, read from /proc.

/// Clock ticks per second of /proc/PID/stat (USER_HZ); 100 on every common Linux.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Busy clock ticks of the whole machine (everything but idle and iowait, steal included).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(v.iter().sum::<u64>() - v.get(3)? - v.get(4)?)
}

/// CPU time and memory of the server (if its PID is known) and of this process.
#[derive(Clone)]
struct Probe {
    /// The server's processes; empty when unknown.
    server: Vec<String>,
    tick_ms: f64,
}

#[derive(Clone, Copy)]
struct Sample {
    server_ticks: Option<u64>,
    own_ticks: Option<u64>,
    machine_ticks: Option<u64>,
}

/// CPU used during a phase, in ms.
#[derive(Default, Clone, Copy)]
struct CpuUse {
    server: Option<f64>,
    client: Option<f64>,
    /// Everything else on the machine (other processes, steal): what disturbs the figures.
    other: Option<f64>,
}

impl Probe {
    fn new(pids: &[u32]) -> anyhow::Result<Self> {
        let server: Vec<String> = pids.iter().map(u32::to_string).collect();
        for p in &server {
            if cpu_ticks(p).is_none() {
                bail!(
                    "cannot read /proc/{p}/stat: is --server-pid a running process on this machine?"
                );
            }
        }
        Ok(Probe {
            server,
            tick_ms: 1000.0 / clock_ticks_per_second() as f64,
        })
    }

    fn sample(&self) -> Sample {
        Sample {
            server_ticks: self.sum(cpu_ticks),
            own_ticks: cpu_ticks("self"),
            machine_ticks: machine_busy_ticks(),
        }
    }

    /// CPU used between two samples.
    fn cpu_ms(&self, a: Sample, b: Sample) -> CpuUse {
        let d = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64 * self.tick_ms);
        let server = d(a.server_ticks, b.server_ticks);
        let client = d(a.own_ticks, b.own_ticks);
        let machine = d(a.machine_ticks, b.machine_ticks);
        let other = machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
        CpuUse {
            server,
            client,
            other,
        }
    }

    /// A figure summed over the server's processes; None if unknown or unreadable.
    fn sum(&self, f: impl Fn(&str) -> Option<u64>) -> Option<u64> {
        if self.server.is_empty() {
            return None;
        }
        self.server.iter().map(|p| f(p)).sum()
    }

    /// (VmRSS, VmHWM) of the server, in KiB (for several processes: the sums).
    fn memory_kib(&self) -> (Option<u64>, Option<u64>) {
        (
            self.sum(|p| status_kib(p, "VmRSS")),
            self.sum(|p| status_kib(p, "VmHWM")),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// Latencies in microseconds, sorted on demand.
#[derive(Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// The q-quantile (0..=1) in milliseconds, nearest-rank.
    fn quantile_ms(&mut self, q: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        Some(self.0[rank - 1] as f64 / 1000.0)
    }
}

/// Errors by message (first occurrences kept short), so that a report can show what failed.
#[derive(Default)]
struct Errors {
    count: u64,
    kinds: BTreeMap<String, u64>,
}

impl Errors {
    fn record(&mut self, e: &kube::Error) {
        self.record_msg(match e {
            kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
            other => other.to_string(),
        });
    }

    fn record_msg(&mut self, msg: String) {
        self.count += 1;
        let msg: String = msg.chars().take(160).collect();
        if self.kinds.len() < 8 || self.kinds.contains_key(&msg) {
            *self.kinds.entry(msg).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for (k, v) in other.kinds {
            if self.kinds.len() < 8 || self.kinds.contains_key(&k) {
                *self.kinds.entry(k).or_default() += v;
            }
        }
    }

    fn to_json(&self) -> Value {
        json!({"count": self.count, "samples": self.kinds})
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn opt_round(x: Option<f64>, digits: i32) -> Value {
    x.map_or(Value::Null, |v| json!(round(v, digits)))
}

// ---------------------------------------------------------------------------------------------
// The server under test.

#[derive(Clone)]
struct Target {
    config: kube::Config,
    namespace: String,
}

impl Target {
    async fn load(
        path: &PathBuf,
        context: Option<String>,
        namespace: String,
    ) -> anyhow::Result<Self> {
        let kc = Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        let opts = KubeConfigOptions {
            context,
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .context("cannot use the kubeconfig")?;
        // Count 429/503/504 as errors instead of retrying them behind the measurement's back.
        config.default_retry = false;
        Ok(Target { config, namespace })
    }

    /// A new client: its own connection pool, so its own connection.
    fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config.clone())?)
    }

    fn configmaps(&self, client: kube::Client) -> Api<ConfigMap> {
        Api::namespaced(client, &self.namespace)
    }

    /// `n` ConfigMap APIs on `n` clients, each having made one request (so connected).
    async fn connected(&self, n: usize) -> anyhow::Result<Vec<Api<ConfigMap>>> {
        let mut apis = Vec::with_capacity(n);
        for _ in 0..n {
            apis.push(self.configmaps(self.client()?));
        }
        let warm =
            futures::future::join_all(apis.iter().map(|api| async move {
                api.list(&ListParams::default().limit(1)).await.map(|_| ())
            }))
            .await;
        for r in warm {
            r.context("warm-up request failed")?;
        }
        Ok(apis)
    }
}

const BENCH_LABEL: &str = "localkube-bench";

/// A small ConfigMap: two data keys, about 100 bytes of data, one label. The data is random
/// letters and digits, so that a server that compresses what it stores gains only on the
/// object's structure, as it would with real data.
fn small_configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "app".to_string(),
                BENCH_LABEL.to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("alpha".to_string(), random_text(45)),
            ("beta".to_string(), random_text(45)),
        ])),
        ..Default::default()
    }
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The HTTP version the server answers a kube-rs client with (kube-rs decides it: its rustls
/// connector offers no ALPN, so HTTP/1.1 unless that changes).
async fn protocol(client: &kube::Client) -> String {
    let req = match http::Request::get("/version").body(kube::client::Body::empty()) {
        Ok(r) => r,
        Err(e) => return format!("unknown ({e})"),
    };
    match client.send(req).await {
        Ok(resp) => format!("{:?}", resp.version()),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Creates the namespace if it is missing; true if this run created it.
async fn ensure_namespace(target: &Target) -> anyhow::Result<bool> {
    let api: Api<Namespace> = Api::all(target.client()?);
    if api.get_opt(&target.namespace).await?.is_some() {
        return Ok(false);
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(target.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e).context("cannot create the benchmark namespace"),
    }
}

struct Fill {
    created: usize,
    existed: usize,
    errors: Errors,
    elapsed: Duration,
}

/// Creates `{prefix}{i}` for i in from..to with `clients` concurrent clients. Existing objects
/// count as present.
async fn fill(
    target: &Target,
    prefix: &str,
    from: usize,
    to: usize,
    clients: usize,
) -> anyhow::Result<Fill> {
    let apis = target.connected(clients.max(1)).await?;
    let next = Arc::new(AtomicUsize::new(from));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for api in apis {
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut created, mut existed, mut errors) = (0, 0, Errors::default());
            let pp = PostParams::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    break;
                }
                match api
                    .create(&pp, &small_configmap(&format!("{prefix}{i}")))
                    .await
                {
                    Ok(_) => created += 1,
                    Err(e) if is_conflict(&e) => existed += 1,
                    Err(e) => errors.record(&e),
                }
            }
            (created, existed, errors)
        }));
    }
    let mut out = Fill {
        created: 0,
        existed: 0,
        errors: Errors::default(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (c, x, e) = t.await?;
        out.created += c;
        out.existed += x;
        out.errors.merge(e);
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// Deletes every benchmark ConfigMap in the namespace; returns how long it took.
async fn delete_all(target: &Target) -> anyhow::Result<Duration> {
    let api = target.configmaps(target.client()?);
    let start = Instant::now();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&format!("app={BENCH_LABEL}")),
    )
    .await
    .context("deletecollection failed")?;
    Ok(start.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Throughput phases.

/// What one (operation, concurrency) phase measured.
struct PhaseOut {
    op: Op,
    clients: usize,
    elapsed: Duration,
    /// Successful requests (for watch: events delivered, summed over watchers).
    ok: u64,
    errors: Errors,
    /// Request latency (for watch: create response to event receipt).
    latency: Latencies,
    server_cpu_ms: Option<f64>,
    client_cpu_ms: Option<f64>,
    other_cpu_ms: Option<f64>,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
    watch: Option<WatchExtra>,
}

struct WatchExtra {
    writes: u64,
    write_latency: Latencies,
    /// Events expected (writes x watchers) but not received before the drain timeout.
    missing: u64,
    /// Events that arrived before their create request returned.
    before_response: u64,
}

impl PhaseOut {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn per_request_us(&self, ms: Option<f64>) -> Option<f64> {
        ms.filter(|_| self.ok > 0)
            .map(|m| m * 1000.0 / self.ok as f64)
    }

    /// CPU used by other processes during the phase, in cores.
    fn other_cores(&self) -> Option<f64> {
        self.other_cpu_ms
            .map(|m| m / (self.elapsed.as_secs_f64() * 1000.0).max(1e-9))
    }

    fn set_cpu(&mut self, c: CpuUse) {
        self.server_cpu_ms = c.server;
        self.client_cpu_ms = c.client;
        self.other_cpu_ms = c.other;
    }
}

/// Index into the get/patch pool for request `i` of client `k` of `clients`. Each client
/// patches its own objects, so concurrent patches do not touch the same object.
fn pool_index(op: Op, k: usize, i: usize, clients: usize, pool: usize) -> usize {
    let per = (pool / clients).max(1);
    match op {
        Op::Patch => (k + clients * (i % per)) % pool,
        _ => (k * per + i * 7) % pool,
    }
}

async fn request_worker(
    op: Op,
    api: Api<ConfigMap>,
    k: usize,
    clients: usize,
    pool: usize,
    prefix: String,
    deadline: Instant,
) -> (u64, Latencies, Errors, Instant) {
    let (mut ok, mut lat, mut errors) = (0u64, Latencies::default(), Errors::default());
    let pp = PostParams::default();
    let patch_params = PatchParams::default();
    let mut i = 0usize;
    loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        let r = match op {
            Op::Create => api
                .create(&pp, &small_configmap(&format!("{prefix}{k}-{i}")))
                .await
                .map(drop),
            Op::Get => {
                let name = format!("pool-{}", pool_index(op, k, i, clients, pool));
                api.get(&name).await.map(drop)
            }
            Op::List => {
                let page = ListParams::default().limit(u32::try_from(pool).unwrap_or(u32::MAX));
                api.list(&page).await.map(drop)
            }
            Op::Patch => {
                let name = format!("pool-{}", pool_index(op, k, i, clients, pool));
                let patch = json!({"data": {"counter": format!("{k}-{i}")}});
                api.patch(&name, &patch_params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            Op::Delete => {
                let name = format!("{prefix}{k}-{i}");
                match api.delete(&name, &Default::default()).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => break,
                    r => r.map(drop),
                }
            }
            Op::Watch => unreachable!("watch has its own phase"),
        };
        match r {
            Ok(()) => {
                lat.push(t0.elapsed());
                ok += 1;
            }
            Err(e) => errors.record(&e),
        }
        i += 1;
    }
    (ok, lat, errors, Instant::now())
}

async fn request_phase(
    target: &Target,
    probe: &Probe,
    op: Op,
    clients: usize,
    duration: Duration,
    pool: usize,
    run: &str,
) -> anyhow::Result<PhaseOut> {
    let apis = target.connected(clients).await?;
    // Deletes remove what the create phase made.
    let named = if op == Op::Delete { Op::Create } else { op };
    let prefix = format!("{}-{run}-c{clients}-", named.name());
    let before = probe.sample();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = apis
        .into_iter()
        .enumerate()
        .map(|(k, api)| {
            tokio::spawn(request_worker(
                op,
                api,
                k,
                clients,
                pool,
                prefix.clone(),
                deadline,
            ))
        })
        .collect();
    let mut out = PhaseOut {
        op,
        clients,
        elapsed: Duration::ZERO,
        ok: 0,
        errors: Errors::default(),
        latency: Latencies::default(),
        server_cpu_ms: None,
        client_cpu_ms: None,
        other_cpu_ms: None,
        rss_kib: None,
        hwm_kib: None,
        watch: None,
    };
    let mut end = start;
    for t in tasks {
        let (ok, lat, errors, finished) = t.await?;
        out.ok += ok;
        out.latency.extend(lat);
        out.errors.merge(errors);
        end = end.max(finished);
    }
    let after = probe.sample();
    out.elapsed = end - start;
    out.set_cpu(probe.cpu_ms(before, after));
    (out.rss_kib, out.hwm_kib) = probe.memory_kib();
    Ok(out)
}

/// One watcher's receipts: (writer, index, when) of each ADDED event of this phase.
type Receipts = Vec<(usize, usize, Instant)>;

/// Watch delivery: `watchers` watches on the namespace while `writers` clients create
/// ConfigMaps for `duration`; then waits (up to 10 s) for every watcher to see every object.
async fn watch_phase(
    target: &Target,
    probe: &Probe,
    watchers: usize,
    writers: usize,
    duration: Duration,
    run: &str,
) -> anyhow::Result<PhaseOut> {
    let prefix = format!("watch-{run}-c{watchers}-");
    let watch_apis = target.connected(watchers).await?;
    let writer_apis = target.connected(writers.max(1)).await?;
    let rv = writer_apis[0]
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();

    let (expect_tx, expect_rx) = tokio::sync::watch::channel(usize::MAX);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let done = Arc::new(AtomicUsize::new(0));
    let wp = WatchParams::default().timeout(290);
    let streams = futures::future::join_all(watch_apis.iter().map(|api| api.watch(&wp, &rv))).await;
    let mut watch_tasks = Vec::new();
    for stream in streams {
        let stream = stream.context("cannot start a watch")?;
        let (mut expect_rx, mut stop_rx) = (expect_rx.clone(), stop_rx.clone());
        let (prefix, done) = (prefix.clone(), done.clone());
        watch_tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut got: Receipts = Vec::new();
            let mut errors = Errors::default();
            loop {
                if got.len() >= *expect_rx.borrow() {
                    break;
                }
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(WatchEvent::Added(cm))) => {
                            let now = Instant::now();
                            let parsed = cm.metadata.name.as_deref()
                                .and_then(|n| n.strip_prefix(prefix.as_str()))
                                .and_then(|rest| rest.split_once('-'))
                                .and_then(|(w, i)| Some((w.parse().ok()?, i.parse().ok()?)));
                            if let Some((w, i)) = parsed {
                                got.push((w, i, now));
                            }
                        }
                        Some(Ok(WatchEvent::Error(e))) => {
                            errors.record_msg(format!("watch ERROR event: {} {}", e.code, e.message));
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            errors.record(&e);
                            break;
                        }
                        None => {
                            errors.record_msg("the watch ended early".into());
                            break;
                        }
                    },
                    _ = expect_rx.changed() => {}
                    _ = stop_rx.changed() => break,
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            (got, errors)
        }));
    }

    let before = probe.sample();
    let start = Instant::now();
    let deadline = start + duration;
    let pp = PostParams::default();
    let writer_tasks: Vec<_> = writer_apis
        .into_iter()
        .enumerate()
        .map(|(w, api)| {
            let (prefix, pp) = (prefix.clone(), pp.clone());
            tokio::spawn(async move {
                let mut times: Vec<Option<Instant>> = Vec::new();
                let (mut lat, mut errors) = (Latencies::default(), Errors::default());
                while Instant::now() < deadline {
                    let i = times.len();
                    let t0 = Instant::now();
                    match api
                        .create(&pp, &small_configmap(&format!("{prefix}{w}-{i}")))
                        .await
                    {
                        Ok(_) => {
                            let t1 = Instant::now();
                            lat.push(t1 - t0);
                            times.push(Some(t1));
                        }
                        Err(e) => {
                            errors.record(&e);
                            times.push(None);
                        }
                    }
                }
                (times, lat, errors)
            })
        })
        .collect();
    let mut created: Vec<Vec<Option<Instant>>> = Vec::new();
    let mut write_latency = Latencies::default();
    let mut errors = Errors::default();
    for t in writer_tasks {
        let (times, lat, e) = t.await?;
        created.push(times);
        write_latency.extend(lat);
        errors.merge(e);
    }
    let writes: usize = created.iter().flatten().filter(|t| t.is_some()).count();
    let _ = expect_tx.send(writes);
    let drain_until = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < watchers && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);

    let mut latency = Latencies::default();
    let (mut delivered, mut before_response) = (0u64, 0u64);
    let mut last = start;
    for t in watch_tasks {
        let (got, e) = t.await?;
        errors.merge(e);
        for (w, i, when) in got {
            delivered += 1;
            last = last.max(when);
            if let Some(Some(sent)) = created.get(w).and_then(|c| c.get(i)) {
                if when < *sent {
                    before_response += 1;
                }
                latency.push(when.saturating_duration_since(*sent));
            }
        }
    }
    let after = probe.sample();
    let cpu = probe.cpu_ms(before, after);
    let (rss_kib, hwm_kib) = probe.memory_kib();
    let expected = (writes * watchers) as u64;
    let mut out = PhaseOut {
        op: Op::Watch,
        clients: watchers,
        elapsed: (last - start).max(duration),
        ok: delivered,
        errors,
        latency,
        server_cpu_ms: None,
        client_cpu_ms: None,
        other_cpu_ms: None,
        rss_kib,
        hwm_kib,
        watch: Some(WatchExtra {
            writes: writes as u64,
            write_latency,
            missing: expected.saturating_sub(delivered),
            before_response,
        }),
    };
    out.set_cpu(cpu);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Memory with many stored objects.

struct MemPoint {
    objects: usize,
    fill: Fill,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

struct MemoryOut {
    baseline_rss_kib: Option<u64>,
    object_json_bytes: usize,
    points: Vec<MemPoint>,
    delete: Option<(Duration, Option<u64>)>,
}

impl MemoryOut {
    fn bytes_per_object(&self, p: &MemPoint) -> Option<f64> {
        let (rss, base) = (p.rss_kib?, self.baseline_rss_kib?);
        Some((rss as f64 - base as f64) * 1024.0 / p.objects.max(1) as f64)
    }
}

async fn memory_phase(
    target: &Target,
    probe: &Probe,
    targets: &[usize],
    fill_clients: usize,
    delete_after: bool,
    log: &dyn Fn(String),
) -> anyhow::Result<MemoryOut> {
    let mut targets = targets.to_vec();
    targets.sort_unstable();
    let baseline_rss_kib = probe.memory_kib().0;
    let mut out = MemoryOut {
        baseline_rss_kib,
        object_json_bytes: 0,
        points: Vec::new(),
        delete: None,
    };
    let mut have = 0;
    for n in targets {
        let fill = fill(target, "mem-", have, n, fill_clients).await?;
        have = n;
        // Let the server finish what the last responses started (watch fan-out, freeing buffers).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss_kib, hwm_kib) = probe.memory_kib();
        let point = MemPoint {
            objects: n,
            fill,
            rss_kib,
            hwm_kib,
        };
        log(format!(
            "memory: {n} objects stored ({} created at {:.0}/s, {} errors); server RSS {}",
            point.fill.created,
            point.fill.created as f64 / point.fill.elapsed.as_secs_f64().max(1e-9),
            point.fill.errors.count,
            fmt_kib(rss_kib)
        ));
        out.points.push(point);
    }
    if have > 0 {
        let api = target.configmaps(target.client()?);
        if let Ok(cm) = api.get("mem-0").await {
            out.object_json_bytes = serde_json::to_vec(&cm).map_or(0, |v| v.len());
        }
    }
    if delete_after {
        // A server that cannot delete 100,000 objects in one request (kube-apiserver answers
        // 504 after a minute) still measured its memory: say so and go on.
        match delete_all(target).await {
            Ok(took) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                out.delete = Some((took, probe.memory_kib().0));
                log(format!(
                    "memory: deletecollection took {:.2}s; server RSS after it {}",
                    took.as_secs_f64(),
                    fmt_kib(probe.memory_kib().0)
                ));
            }
            Err(e) => log(format!("memory: {e:#}; the figures above stand")),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn fmt_kib(k: Option<u64>) -> String {
    k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn phase_json(p: &mut PhaseOut) -> Value {
    let mut v = json!({
        "op": p.op.name(),
        "clients": p.clients,
        "seconds": round(p.elapsed.as_secs_f64(), 3),
        "ok": p.ok,
        "per_second": round(p.rate(), 1),
        "p50_ms": opt_round(p.latency.quantile_ms(0.50), 3),
        "p99_ms": opt_round(p.latency.quantile_ms(0.99), 3),
        "max_ms": opt_round(p.latency.quantile_ms(1.0), 3),
        "errors": p.errors.to_json(),
        "server_cpu_ms": opt_round(p.server_cpu_ms, 0),
        "server_cpu_us_per_op": opt_round(p.per_request_us(p.server_cpu_ms), 1),
        "client_cpu_ms": opt_round(p.client_cpu_ms, 0),
                "client_cpu_us_per_op": opt_round(p.per_request_us(p.client_cpu_ms), 1),
        "other_cpu_cores": opt_round(p.other_cores(), 2),
        "server_rss_kib": p.rss_kib,
        "server_hwm_kib": p.hwm_kib,
    });
    if let Some(w) = &mut p.watch {
        v["watch"] = json!({
            "writes": w.writes,
            "writes_per_second": round(w.writes as f64 / p.elapsed.as_secs_f64().max(1e-9), 1),
            "write_p50_ms": opt_round(w.write_latency.quantile_ms(0.50), 3),
            "write_p99_ms": opt_round(w.write_latency.quantile_ms(0.99), 3),
            "missing_events": w.missing,
            "events_before_create_response": w.before_response,
        });
    }
    v
}

fn phase_table(phases: &mut [PhaseOut]) -> String {
    let mut s = String::new();
    s.push_str("| op | clients | ops/s | p50 ms | p99 ms | errors | server CPU µs/op | bench CPU µs/op | other load (cores) | server RSS | notes |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for p in phases.iter_mut() {
        let notes = match &mut p.watch {
            Some(w) => format!(
                "{} writes ({:.0}/s, p50 {} ms, p99 {} ms); {} events missing, {} before their create response",
                w.writes,
                w.writes as f64 / p.elapsed.as_secs_f64().max(1e-9),
                fmt_opt(w.write_latency.quantile_ms(0.5), 2),
                fmt_opt(w.write_latency.quantile_ms(0.99), 2),
                w.missing,
                w.before_response
            ),
            None => String::new(),
        };
        let op = if p.op == Op::Watch {
            "watch (events)"
        } else {
            p.op.name()
        };
        s.push_str(&format!(
            "| {op} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {notes} |\n",
            p.clients,
            p.rate(),
            fmt_opt(p.latency.quantile_ms(0.5), 2),
            fmt_opt(p.latency.quantile_ms(0.99), 2),
            p.errors.count,
            fmt_opt(p.per_request_us(p.server_cpu_ms), 0),
            fmt_opt(p.per_request_us(p.client_cpu_ms), 0),
            fmt_opt(p.other_cores(), 2),
            fmt_kib(p.rss_kib),
        ));
    }
    for p in phases.iter() {
        for (msg, n) in &p.errors.kinds {
            s.push_str(&format!("\n{} c={}: {n} × {msg}", p.op.name(), p.clients));
        }
    }
    s
}

fn memory_json(m: &MemoryOut) -> Value {
    json!({
        "baseline_rss_kib": m.baseline_rss_kib,
        "object_json_bytes": m.object_json_bytes,
        "points": m.points.iter().map(|p| json!({
            "objects": p.objects,
            "created": p.fill.created,
            "existed": p.fill.existed,
            "fill_seconds": round(p.fill.elapsed.as_secs_f64(), 3),
            "fill_per_second": round(p.fill.created as f64 / p.fill.elapsed.as_secs_f64().max(1e-9), 1),
            "errors": p.fill.errors.to_json(),
            "rss_kib": p.rss_kib,
            "hwm_kib": p.hwm_kib,
            "rss_bytes_per_object": opt_round(m.bytes_per_object(p), 0),
        })).collect::<Vec<_>>(),
        "deletecollection_seconds": m.delete.map(|(d, _)| round(d.as_secs_f64(), 3)),
        "rss_after_delete_kib": m.delete.and_then(|(_, r)| r),
    })
}

fn memory_table(m: &MemoryOut) -> String {
    let mut s = format!(
        "Server RSS before filling: {}; one object as JSON: {} bytes\n\n",
        fmt_kib(m.baseline_rss_kib),
        m.object_json_bytes
    );
    s.push_str("| objects stored | fill rate (creates/s) | fill errors | server RSS | server HWM | RSS growth per object |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for p in &m.points {
        s.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} |\n",
            p.objects,
            p.fill.created as f64 / p.fill.elapsed.as_secs_f64().max(1e-9),
            p.fill.errors.count,
            fmt_kib(p.rss_kib),
            fmt_kib(p.hwm_kib),
            m.bytes_per_object(p)
                .map_or("-".into(), |b| format!("{:.0} B", b)),
        ));
    }
    if let Some((took, rss)) = m.delete {
        s.push_str(&format!(
            "\ndeletecollection of all of them: {:.2}s; server RSS afterwards: {}\n",
            took.as_secs_f64(),
            fmt_kib(rss)
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Main.

fn log(msg: String) {
    eprintln!("[localkube-bench] {msg}");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ops = parse_ops(&cli.ops)?;
    if cli.clients.is_empty() || cli.clients.contains(&0) {
        bail!("--clients needs positive numbers, e.g. 1,8,64");
    }
    if ops.is_empty() && cli.objects.is_empty() {
        bail!("nothing to do: give --ops and/or --objects");
    }
    let probe = Probe::new(&cli.server_pid)?;
    let target = Target::load(&cli.kubeconfig, cli.context.clone(), cli.namespace.clone()).await?;
    let first = target.client()?;
    let version = first
        .apiserver_version()
        .await
        .context("cannot reach the server (GET /version)")?;
    let proto = protocol(&first).await;
    log(format!(
        "server {} ({}), protocol {proto}, namespace {}",
        target.config.cluster_url, version.git_version, target.namespace
    ));
    let created_ns = ensure_namespace(&target).await?;
    let run = format!(
        "r{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 100_000)
    );

    let memory = if cli.objects.is_empty() {
        None
    } else {
        if cli.server_pid.is_empty() {
            log("memory: no --server-pid, so only filling the store".into());
        }
        Some(
            memory_phase(
                &target,
                &probe,
                &cli.objects,
                cli.fill_clients,
                !cli.keep,
                &log,
            )
            .await?,
        )
    };

    if ops
        .iter()
        .any(|o| matches!(o, Op::Get | Op::List | Op::Patch))
    {
        let f = fill(&target, "pool-", 0, cli.pool, cli.fill_clients).await?;
        if f.errors.count > 0 {
            bail!("cannot create the get/patch pool: {:?}", f.errors.kinds);
        }
        log(format!("pool: {} ConfigMaps ready", cli.pool));
    }

    let mut phases = Vec::new();
    for &op in &ops {
        for &c in &cli.clients {
            let mut p = match op {
                Op::Watch => {
                    watch_phase(&target, &probe, c, cli.watch_writers, cli.duration, &run).await?
                }
                _ => request_phase(&target, &probe, op, c, cli.duration, cli.pool, &run).await?,
            };
            log(format!(
                "{} c={c}: {:.0}/s, p50 {} ms, p99 {} ms, {} errors, server CPU {} µs/op, other load {} cores",
                op.name(),
                p.rate(),
                fmt_opt(p.latency.quantile_ms(0.5), 2),
                fmt_opt(p.latency.quantile_ms(0.99), 2),
                p.errors.count,
                fmt_opt(p.per_request_us(p.server_cpu_ms), 0),
                fmt_opt(p.other_cores(), 2),
            ));
            phases.push(p);
        }
    }

    let (rss_end, hwm_end) = probe.memory_kib();
    let cleanup = if cli.keep || ops.is_empty() {
        None
    } else {
        let took = delete_all(&target).await?;
        Some(took)
    };
    if created_ns && !cli.keep {
        let api: Api<Namespace> = Api::all(target.client()?);
        if let Err(e) = api
            .delete(&target.namespace, &DeleteParams::default())
            .await
        {
            log(format!(
                "could not delete the namespace {}: {e}",
                target.namespace
            ));
        }
    }

    let mut report = format!(
        "localkube-bench against {} ({}), {} over {proto}, {} per phase\n\n",
        target.config.cluster_url,
        version.git_version,
        if target.config.auth_info.token.is_some() {
            "bearer token"
        } else {
            "kubeconfig credentials"
        },
        humantime::format_duration(cli.duration),
    );
    if !phases.is_empty() {
        report.push_str(&phase_table(&mut phases));
        report.push_str(&format!(
            "\nserver RSS after the phases {}, peak (VmHWM) {}\n",
            fmt_kib(rss_end),
            fmt_kib(hwm_end)
        ));
        if let Some(took) = cleanup {
            report.push_str(&format!(
                "cleanup deletecollection: {:.2}s\n",
                took.as_secs_f64()
            ));
        }
    }
    if let Some(m) = &memory {
        report.push('\n');
        report.push_str(&memory_table(m));
    }
    if cli.json {
        eprintln!("{report}");
        let doc = json!({
            "server": target.config.cluster_url.to_string(),
            "server_version": version.git_version,
            "protocol": proto,
            "duration_seconds": cli.duration.as_secs_f64(),
            "phases": phases.iter_mut().map(phase_json).collect::<Vec<_>>(),
            "server_rss_kib_end": rss_end,
            "server_hwm_kib_end": hwm_end,
            "cleanup_seconds": cleanup.map(|d| round(d.as_secs_f64(), 3)),
            "memory": memory.as_ref().map(memory_json),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("localkube-bench: {e:#}");
        std::process::exit(1);
    }
}
