//! The VM density benchmark: N VMs set to `Always` at once against localkube with a node that
//! starts pods at once. The VMs are created `Halted` first and left to settle (finalizer,
//! firmware UUID, `Stopped` status); then all are switched to `Always`. It reports the time
//! until every VMI runs (with p50/p95 per VM from its switch), the API writes the controller
//! sent per VM start (and per VM creation, apart), and the controller's peak RSS.
//!
//! `cargo build --release -p localkube -p virt-controller && target/release/vm-density --vms 1000`

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

/// Creates N VMs at once and measures how the controller brings them up.
#[derive(Parser, Debug)]
#[command(name = "vm-density")]
struct Args {
    /// How many VMs.
    #[arg(long, default_value_t = 1000)]
    vms: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// The localkube binary (default: next to this one).
    #[arg(long)]
    localkube: Option<PathBuf>,
    /// The virt-controller binary (default: next to this one).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// The controller's client-side rate limit (`virt-controller run --qps`; 0: none).
    #[arg(long, default_value_t = 200.0)]
    qps: f64,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = cli_duration::parse_duration)]
    timeout: Duration,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.with_file_name(name))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

fn metric(text: &str, name: &str) -> f64 {
    writes_by_label(text, name).values().sum()
}

/// The samples of `name`, by their label set (`""` when unlabelled).
fn writes_by_label(text: &str, name: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
            (metric == name).then_some(())?;
            Some((
                labels.trim_end_matches('}').to_string(),
                value.parse().ok()?,
            ))
        })
        .collect()
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn vm(name: &str) -> VirtualMachine {
    serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {"bench": "density"}},
        "spec": {"runStrategy": "Halted", "template": {
            "metadata": {"labels": {"kubevirt.io/vm": name}},
            "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64M"}}},
                     "terminationGracePeriodSeconds": 0}}},
    }))
    .expect("a valid VM")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let localkube = args
        .localkube
        .clone()
        .map_or_else(|| sibling("localkube"), Ok)?;
    let controller = args
        .controller
        .clone()
        .map_or_else(|| sibling("virt-controller"), Ok)?;

    let mut server = Command::new(&localkube)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--node-start-delay",
            "0",
            "--node-shutdown-time",
            "0",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", localkube.display()))?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line)?;
    if !line.contains("ready at") {
        bail!("localkube did not start: {line}");
    }
    let _server = Proc(server);
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for (_, crd) in virt_reconciler::crds::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let port = free_port()?;
    let ctl = Command::new(&controller)
        .args([
            "run",
            "--leader-elect",
            "false",
            "--qps",
            &args.qps.to_string(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", controller.display()))?;
    let ctl_pid = ctl.id();
    let _ctl = Proc(ctl);
    for _ in 0..100 {
        if http_get(port, "/readyz")
            .await
            .is_ok_and(|r| r.contains(" 200 "))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Watch VMIs and note when each first runs.
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = running.clone();
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), "default");
    let watch = tokio::spawn(async move {
        let mut s = watcher(vmis, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(vmi)) = s.try_next().await {
            if vmi.phase() == "Running" {
                let name = vmi.metadata.name.clone().unwrap_or_default();
                seen.lock().entry(name).or_insert_with(Instant::now);
            }
        }
    });

    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = (0..args.vms).map(|i| format!("vm-{i:05}")).collect();
    let create_start = Instant::now();
    futures::stream::iter(names.clone())
        .for_each_concurrent(args.parallel, |name| {
            let vms = vms.clone();
            async move {
                let _ = vms.create(&PostParams::default(), &vm(&name)).await;
            }
        })
        .await;
    let all_created = create_start.elapsed();
    // Let the controller settle every new VM (finalizer, UUID, Stopped) before the switch.
    loop {
        let list = vms.list(&Default::default()).await?;
        let settled = list
            .items
            .iter()
            .filter(|v| {
                v.status
                    .as_ref()
                    .and_then(|s| s.printable_status.as_deref())
                    == Some("Stopped")
                    && virt_reconciler::firmware::template_uuid(v).is_some()
            })
            .count();
        if settled >= args.vms {
            break;
        }
        if create_start.elapsed() > args.timeout {
            bail!("only {settled} of {} VMs settled as Stopped", args.vms);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = http_get(port, "/metrics").await.unwrap_or_default();
    let creation_writes = metric(&before, "virt_controller_api_writes_total");

    let switched: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    futures::stream::iter(names.clone())
        .for_each_concurrent(args.parallel, |name| {
            let vms = vms.clone();
            let switched = switched.clone();
            async move {
                let t = Instant::now();
                let patch = kube::api::Patch::Merge(json!({"spec": {"runStrategy": "Always"}}));
                if vms.patch(&name, &Default::default(), &patch).await.is_ok() {
                    switched.lock().insert(name, t);
                }
            }
        })
        .await;
    let all_switched = start.elapsed();
    loop {
        if running.lock().len() >= args.vms {
            break;
        }
        if start.elapsed() > args.timeout {
            bail!(
                "only {} of {} VMIs ran within {:?}",
                running.lock().len(),
                args.vms,
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = start.elapsed();
    // Let trailing status writes land before reading the counters.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.abort();
    let metrics = http_get(port, "/metrics").await.unwrap_or_default();
    let start_writes = metric(&metrics, "virt_controller_api_writes_total") - creation_writes;
    let before = writes_by_label(&before, "virt_controller_api_writes_total");
    let breakdown: Vec<String> = writes_by_label(&metrics, "virt_controller_api_writes_total")
        .into_iter()
        .map(|(labels, n)| {
            (
                labels.clone(),
                n - before.get(&labels).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, n)| *n > 0.0)
        .map(|(labels, n)| format!("{labels}: {:.2}", n / args.vms as f64))
        .collect();
    let mut per_vm: Vec<Duration> = {
        let c = switched.lock();
        let r = running.lock();
        names
            .iter()
            .filter_map(|n| Some(r.get(n)?.saturating_duration_since(*c.get(n)?)))
            .collect()
    };
    per_vm.sort();
    let rss = peak_rss_mib(ctl_pid).map_or("n/a".to_string(), |m| format!("{m:.1} MiB"));
    println!(
        "| VMs | all created | all switched | all Running | per VM p50 | per VM p95 | writes per VM start | writes per VM creation | controller peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.2} s | {:.2} s | {:.2} s | {} ms | {} ms | {:.2} | {:.2} | {} |",
        args.vms,
        all_created.as_secs_f64(),
        all_switched.as_secs_f64(),
        total.as_secs_f64(),
        percentile(&per_vm, 0.5).as_millis(),
        percentile(&per_vm, 0.95).as_millis(),
        start_writes / args.vms as f64,
        creation_writes / args.vms as f64,
        rss
    );
    println!("writes per VM start, by kind: {}", breakdown.join(", "));
    Ok(())
}
