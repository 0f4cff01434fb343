//! bench-engines: measures embedded storage engines for localkube's durable store: group-commit
//! throughput and latency, full-table load after reopen, on-disk size and RSS. One measurement
//! per process run, so a load can be cold; run.sh drives the whole matrix.

mod engine;
mod workload;

use engine::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workload::{Op, Rng};

const USAGE: &str = "usage: bench-engines COMMAND --engine NAME --dir DIR [options]
commands:
  commit   timed group commits: --batch N --seconds S --max-commits M --prefill P --keys K
           --delete-percent D
  fill     write objects 0..--count in batches of --batch (default 1000), print time and size
  update   rewrite objects 0..--count once, in batches of --batch, print time and size
  load     reopen and read the whole table, print open/scan time and RSS
  crash    --commits N --batch B then abort() without closing (for recovery-time loads)
  size     print the allocated bytes under --dir (no --engine needed)
common: --value-len L (default 600)  --cache-mib C (default 4)  --seed S";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(err) = run(&args) {
        eprintln!("bench-engines: {err}");
        std::process::exit(2);
    }
}

/// Parsed `--name value` options.
struct Options {
    values: HashMap<String, String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut values = HashMap::new();
        let mut rest = args.iter();
        while let Some(name) = rest.next() {
            let Some(stripped) = name.strip_prefix("--") else {
                return Err(format!("unexpected argument {name:?}\n{USAGE}").into());
            };
            let value = rest
                .next()
                .ok_or_else(|| format!("--{stripped} needs a value"))?;
            values.insert(stripped.to_string(), value.clone());
        }
        Ok(Options { values })
    }

    fn text(&self, name: &str) -> Result<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name}: not a number: {text:?}").into()),
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    let options = Options::parse(rest)?;
    let dir = PathBuf::from(options.text("dir")?);
    if command == "size" {
        println!(
            "dir={} allocated_bytes={}",
            dir.display(),
            allocated_bytes(&dir)?
        );
        return Ok(());
    }
    let engine = options.text("engine")?.to_string();
    let cache_bytes = options.number("cache-mib", 4)? as usize * 1024 * 1024;
    let value_len = options.number("value-len", 600)? as usize;
    let mut rng = Rng::new(options.number("seed", 42)?);
    match command.as_str() {
        "commit" => {
            let batch = options.number("batch", 1)?.max(1) as usize;
            let seconds = options.number("seconds", 5)?;
            let max_commits = options.number("max-commits", u64::MAX)?;
            let prefill = options.number("prefill", 10_000)?;
            let keys = options.number("keys", prefill.max(1) * 2)?;
            let delete_percent = options.number("delete-percent", 0)?;
            let mut store = engine::open(&engine, &dir, cache_bytes)?;
            let mut rv = store.load_all()?.resource_version;
            if rv == 0 {
                rv = write_range(store.as_mut(), 0, prefill, 1000, rv, &mut rng, value_len)?;
            }
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut latencies_ms = Vec::new();
            let started = Instant::now();
            while (latencies_ms.len() as u64) < max_commits && Instant::now() < deadline {
                let ops =
                    workload::draw_batch(&mut rng, batch, keys, delete_percent, &mut rv, value_len);
                let commit_started = Instant::now();
                store.commit(&ops, rv)?;
                latencies_ms.push(commit_started.elapsed().as_secs_f64() * 1000.0);
            }
            let elapsed = started.elapsed().as_secs_f64();
            latencies_ms.sort_by(f64::total_cmp);
            let commits = latencies_ms.len();
            let ms = |p| workload::percentile(&latencies_ms, p).unwrap_or(0.0);
            println!(
                "engine={engine} batch={batch} delete_pct={delete_percent} commits={commits} \
                 secs={elapsed:.2} commits_per_s={:.0} writes_per_s={:.0} p50_ms={:.3} \
                 p99_ms={:.3} max_ms={:.3}",
                commits as f64 / elapsed,
                (commits * batch) as f64 / elapsed,
                ms(50.0),
                ms(99.0),
                ms(100.0),
            );
        }
        "fill" | "update" => {
            let count = options.number("count", 100_000)?;
            let batch = options.number("batch", 1000)?.max(1);
            let mut store = engine::open(&engine, &dir, cache_bytes)?;
            let rv = store.load_all()?.resource_version;
            let started = Instant::now();
            write_range(store.as_mut(), 0, count, batch, rv, &mut rng, value_len)?;
            let elapsed = started.elapsed().as_secs_f64();
            drop(store);
            println!(
                "engine={engine} {command} count={count} batch={batch} secs={elapsed:.2} \
                 writes_per_s={:.0} allocated_bytes={}",
                count as f64 / elapsed,
                allocated_bytes(&dir)?
            );
        }
        "load" => {
            let rss_before_kib = proc_status_kib("VmRSS")?;
            let started = Instant::now();
            let store = engine::open(&engine, &dir, cache_bytes)?;
            let open_ms = started.elapsed().as_secs_f64() * 1000.0;
            let rss_open_kib = proc_status_kib("VmRSS")?;
            let scan_started = Instant::now();
            let loaded = store.load_all()?;
            let scan_ms = scan_started.elapsed().as_secs_f64() * 1000.0;
            let payload: usize = loaded.objects.iter().map(|(k, v)| k.len() + v.len()).sum();
            println!(
                "engine={engine} load objects={} rv={} open_ms={open_ms:.1} scan_ms={scan_ms:.1} \
                 total_ms={:.1} payload_kib={} rss_before_kib={rss_before_kib} \
                 rss_open_kib={rss_open_kib} rss_loaded_kib={} hwm_kib={}",
                loaded.objects.len(),
                loaded.resource_version,
                open_ms + scan_ms,
                payload / 1024,
                proc_status_kib("VmRSS")?,
                proc_status_kib("VmHWM")?,
            );
        }
        "crash" => {
            let commits = options.number("commits", 100)?;
            let batch = options.number("batch", 8)? as usize;
            let keys = options.number("keys", 100_000)?;
            let mut store = engine::open(&engine, &dir, cache_bytes)?;
            let mut rv = store.load_all()?.resource_version;
            for _ in 0..commits {
                let ops = workload::draw_batch(&mut rng, batch, keys, 0, &mut rv, value_len);
                store.commit(&ops, rv)?;
            }
            println!("engine={engine} crash after commits={commits} rv={rv}: aborting");
            std::process::abort();
        }
        other => return Err(format!("unknown command {other:?}\n{USAGE}").into()),
    }
    Ok(())
}

/// Writes objects first..first+count in durable batches of `batch`; returns the last rv.
fn write_range(
    store: &mut dyn engine::Store,
    first: u64,
    count: u64,
    batch: u64,
    mut rv: u64,
    rng: &mut Rng,
    value_len: usize,
) -> Result<u64> {
    let mut index = first;
    while index < first + count {
        let end = (index + batch).min(first + count);
        let ops: Vec<Op> = (index..end)
            .map(|i| {
                rv += 1;
                Op::Put {
                    key: workload::object_key(i),
                    value: workload::object_json(i, rv, rng, value_len),
                }
            })
            .collect();
        store.commit(&ops, rv)?;
        index = end;
    }
    Ok(rv)
}

/// Bytes the files under `path` occupy on disk (st_blocks), recursively.
fn allocated_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(path)?;
    if !metadata.is_dir() {
        return Ok(metadata.blocks() * 512);
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += allocated_bytes(&entry?.path())?;
    }
    Ok(total)
}

/// A `Name:  123 kB` line of /proc/self/status, in KiB.
fn proc_status_kib(name: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {name} in /proc/self/status").into())
}
