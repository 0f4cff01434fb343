//! Fifty callers fight over one VM (issue 14): for 30 s (on, up to 40 s, while some verb has
//! not been accepted yet), 50 concurrent `virtctl` processes run start, stop or restart (drawn
//! from a seed, printed first; `CONTENTION_SEED` replays it) on one VM of the playground
//! (subresource API, controllers, simulated node), each starting its next call as soon as its
//! last one ends, so that about 50 are in flight. Twice, one run after the other: on a VM of
//! runStrategy Always (a stop turns it Halted, a start back to Always), and on one of
//! runStrategy Manual (the strategy stays; virt-api queues Start and Stop{uid} in
//! `status.stateChangeRequests`, and the controller acts on them).
//!
//! Every call must end in one of two ways: accepted (exit 0, `VM x was scheduled to <verb>`:
//! virt-api answered 202), or refused with the answer KubeVirt's rules give for the state it
//! met: on Always and Halted the 409s `VM is already running`, `Always does not support manual
//! start requests`, `VM is not running`, `Halted only supports manual stop requests with a
//! shorter graceperiod`, `RunStategy Halted does not support manual restart requests`, `VM is
//! not running: Halted`; on Manual `VM is already running`, `VM is not running`, `VM is not
//! running: Halted`; and KubeVirt's 500 for a restart (on Manual, a start too) while another
//! request is queued (`stop/start already underway`). A write whose JSON-patch `test` failed
//! more times than virt-api makes its plan anew gets KubeVirt's 409 around the API server's
//! message (KubeVirt answers so at the first failure); on a busy machine a few do, so up to 1%
//! of the calls may (more fails the test). Anything else (a transport error, a panic) fails
//! the test.
//!
//! Watches record every version of the VM and of its VMIs from before the first call; the
//! oracle in `contention/history.rs` then checks that every accepted request was written once,
//! landed where the rules allow it, and was acted on exactly once, none lost (see there for the
//! exact properties). Finally the VM settles: nothing queued, and Running with a Running VMI
//! under Always, or Stopped with no VMI under Halted; under Manual either, as the last request
//! written asks.

mod common;
#[path = "contention/history.rs"]
mod history;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use virt_reconciler::{VirtualMachine, VirtualMachineInstance};

use common::{Cluster, Out};
use history::{Accepted, Req, Seen};

const NS: &str = "default";
const VM: &str = "vm-contended";
const CALLERS: usize = 50;
/// How long the callers run: this long, and on while some verb has not been accepted yet (a
/// busy machine goes through few starts and stops), up to [`RUN_AT_MOST`].
const RUN_FOR: Duration = Duration::from_secs(30);
const RUN_AT_MOST: Duration = Duration::from_secs(40);
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
const VERBS: [&str; 3] = ["start", "stop", "restart"];

/// The run strategy a run's VM is created with; it decides KubeVirt's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Always, turned Halted by a stop and back by a start.
    Always,
    /// Manual: start, stop and restart queue requests; the strategy stays.
    Manual,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Always => "Always",
            Strategy::Manual => "Manual",
        }
    }

    /// How often each verb of [`VERBS`] is drawn. On Manual a stop lands whenever a VMI is
    /// there, even one just created, and one that read a queued Start is decided again until it
    /// lands, while a restart needs an empty queue and a VMI and refuses at once otherwise:
    /// drawn as often as the others, 0–2 restarts of about 1,000 calls were accepted. Drawn 16
    /// times as often, a run writes 5–8 restarts, 6–11 starts and 7–11 stops (and about as many
    /// stops again find their own Stop queued).
    fn verb_weights(self) -> [usize; 3] {
        match self {
            Strategy::Always => [1, 1, 1],
            Strategy::Manual => [1, 1, 16],
        }
    }

    /// KubeVirt's 409 reasons for `verb` in the states the VM goes through.
    fn conflicts(self, verb: &str) -> &'static [&'static str] {
        match (self, verb) {
            (Strategy::Always, "start") => &[
                "VM is already running",
                "Always does not support manual start requests",
            ],
            (Strategy::Always, "stop") => &[
                "VM is not running",
                "Halted only supports manual stop requests with a shorter graceperiod",
            ],
            (Strategy::Always, _) => &[
                "RunStategy Halted does not support manual restart requests",
                "VM is not running: Halted",
            ],
            (Strategy::Manual, "start") => &["VM is already running"],
            (Strategy::Manual, "stop") => &["VM is not running"],
            (Strategy::Manual, _) => &["VM is not running: Halted"],
        }
    }

    /// Whether `verb` queues a request that a pending one refuses with KubeVirt's 500 (a stop
    /// replaces what is pending).
    fn queues_behind(self, verb: &str) -> bool {
        match self {
            Strategy::Always => verb == "restart",
            Strategy::Manual => verb != "stop",
        }
    }
}

/// One virtctl run.
#[derive(Debug)]
struct Call {
    verb: &'static str,
    out: Out,
}

/// What virtctl prints before the server's message when `verb` is refused.
fn refusal_prefix(verb: &str) -> &'static str {
    match verb {
        "start" => "Error starting VirtualMachine ",
        "stop" => "error stopping VirtualMachine ",
        _ => "error restarting VirtualMachine: ",
    }
}

/// KubeVirt's 409 around `reason`.
fn conflict(reason: &str) -> String {
    format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{VM}\": {reason}")
}

/// The outcome of a write whose JSON-patch `test` kept failing because other callers changed
/// the VM first, more times than virt-api makes its plan anew: KubeVirt's 409 with the API
/// server's message inside (KubeVirt answers so at the first failed test).
const LOST_RACE: &str = "lost the race more often than virt-api retries";

/// Lost races may be this share of the calls at most (per mille): virt-api's retries must
/// carry almost every request through.
const LOST_RACES_PER_MILLE: usize = 10;

/// The API server's answer to a JSON patch whose `test` failed, inside KubeVirt's 409:
/// localkube's 422 names the operation; kube-apiserver's says only this.
fn lost_race(verb: &str, line: &str) -> bool {
    let localkube = "the JSON patch test operation failed: ";
    let kube_apiserver = "the server rejected our request due to an error in our request";
    line.strip_prefix(refusal_prefix(verb))
        .and_then(|rest| rest.strip_prefix(&conflict("")))
        .is_some_and(|rest| rest.starts_with(localkube) || rest == kube_apiserver)
}

/// KubeVirt's refusals for `verb` on a VM of `strategy`: (reason, the line virtctl prints).
fn refusals(strategy: Strategy, verb: &str) -> Vec<(&'static str, String)> {
    let prefix = refusal_prefix(verb);
    let mut all: Vec<_> = strategy
        .conflicts(verb)
        .iter()
        .map(|r| (*r, format!("{prefix}{}", conflict(r))))
        .collect();
    if strategy.queues_behind(verb) {
        let underway = "unable to complete request: stop/start already underway";
        all.push((
            underway,
            format!("{prefix}Internal error occurred: {underway}"),
        ));
    }
    all
}

/// How a call ended: `accepted`, the refusal's reason, or `None` when it is none of them.
fn outcome(strategy: Strategy, call: &Call) -> Option<String> {
    let Call { verb, out } = call;
    if out.code == 0
        && out.stdout == format!("VM {VM} was scheduled to {verb}\n")
        && out.stderr.is_empty()
    {
        return Some("accepted".into());
    }
    let line = out.stderr.strip_suffix('\n')?;
    if out.code != 1 || !out.stdout.is_empty() {
        return None;
    }
    if lost_race(verb, line) {
        return Some(LOST_RACE.into());
    }
    refusals(strategy, verb)
        .into_iter()
        .find(|(_, printed)| printed == line)
        .map(|(reason, _)| reason.to_string())
}

/// Every version of the VM and of its VMIs from `rv` on, until the task is aborted. A gap
/// (the server no longer has a version) is recorded as a failure.
fn watch<K>(
    api: Api<K>,
    rv: String,
    to_seen: fn(&WatchEvent<K>) -> Option<Seen>,
    seen: Arc<Mutex<Vec<Seen>>>,
    gaps: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    tokio::spawn(async move {
        let mut rv = rv;
        let params = WatchParams::default()
            .fields(&format!("metadata.name={VM}"))
            .timeout(290);
        loop {
            let mut events = match api.watch(&params, &rv).await {
                Ok(events) => events.boxed(),
                Err(e) => {
                    gaps.lock().unwrap().push(format!("watch from {rv}: {e}"));
                    return;
                }
            };
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Error(e)) => {
                        gaps.lock()
                            .unwrap()
                            .push(format!("watch from {rv}: {}", e.message));
                        return;
                    }
                    Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                    Ok(event) => {
                        if let Some(s) = to_seen(&event) {
                            rv = s.rv().to_string();
                            seen.lock().unwrap().push(s);
                        }
                    }
                    Err(e) => {
                        eprintln!("watch from {rv} ended: {e}; watching again");
                        break;
                    }
                }
            }
        }
    })
}

fn rv_of<K: Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("localkube's resourceVersions are numbers")
}

fn vm_seen(vm: &VirtualMachine) -> Seen {
    Seen::Vm {
        rv: rv_of(vm),
        strategy: vm.spec.run_strategy.clone().unwrap_or_default(),
        queue: queue_of(vm),
    }
}

fn queue_of(vm: &VirtualMachine) -> Vec<Req> {
    let requests = vm.status.as_ref().map(|s| s.state_change_requests.clone());
    requests
        .unwrap_or_default()
        .into_iter()
        .map(|r| match r.uid {
            Some(uid) if r.action == "Stop" => Req::Stop(uid),
            _ if r.action == "Start" => Req::Start,
            _ => Req::Stop(format!("{r:?}")),
        })
        .collect()
}

fn vm_event(event: &WatchEvent<VirtualMachine>) -> Option<Seen> {
    match event {
        WatchEvent::Added(vm) | WatchEvent::Modified(vm) => Some(vm_seen(vm)),
        _ => None,
    }
}

fn vmi_event(event: &WatchEvent<VirtualMachineInstance>) -> Option<Seen> {
    match event {
        WatchEvent::Added(v) | WatchEvent::Modified(v) => Some(Seen::Vmi {
            rv: rv_of(v),
            uid: v.uid().unwrap_or_default(),
            phase: v.phase().to_string(),
            deleting: v.metadata.deletion_timestamp.is_some(),
        }),
        WatchEvent::Deleted(v) => Some(Seen::VmiGone {
            rv: rv_of(v),
            uid: v.uid().unwrap_or_default(),
        }),
        _ => None,
    }
}

/// When the callers stop: after [`RUN_FOR`] once every verb was accepted, else after
/// [`RUN_AT_MOST`].
struct Until {
    soft: Instant,
    hard: Instant,
    /// One bit per verb of [`VERBS`] that was accepted.
    accepted: AtomicU8,
}

impl Until {
    fn from(started: Instant) -> Self {
        Until {
            soft: started + RUN_FOR,
            hard: started + RUN_AT_MOST,
            accepted: AtomicU8::new(0),
        }
    }

    fn over(&self) -> bool {
        let now = Instant::now();
        let all = self.accepted.load(Ordering::Relaxed) == (1 << VERBS.len()) - 1;
        now >= self.hard || (now >= self.soft && all)
    }
}

/// One caller: random verbs, drawn with `weights` (per verb of [`VERBS`]), one after the
/// other, until `until` is over.
async fn caller(
    c: Arc<Cluster>,
    seed: u64,
    weights: [usize; 3],
    until: Arc<Until>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !until.over() {
        let mut draw = rng.random_range(0..weights.iter().sum::<usize>());
        let i = weights
            .iter()
            .position(|w| match draw.checked_sub(*w) {
                Some(rest) => {
                    draw = rest;
                    false
                }
                None => true,
            })
            .expect("the draw is below the sum");
        let verb = VERBS[i];
        let out = c.virtctl(&[verb, VM]).await;
        if out.code == 0 {
            until.accepted.fetch_or(1 << i, Ordering::Relaxed);
        }
        calls.lock().unwrap().push(Call { verb, out });
    }
}

/// Whether the VM has settled: nothing queued, and Running with its VMI Running (Always) or
/// Stopped with none (Halted); either on Manual. `Err` says what it is instead.
async fn settled(c: &Cluster) -> Result<String, String> {
    let vm = c.vms(NS).get(VM).await.map_err(|e| e.to_string())?;
    let vmi = c.vmis(NS).get_opt(VM).await.map_err(|e| e.to_string())?;
    let strategy = vm.spec.run_strategy.clone().unwrap_or_default();
    let status = vm.status.clone().unwrap_or_default();
    let printable = status.printable_status.clone().unwrap_or_default();
    let vmi_state = vmi.as_ref().map(|v| {
        (
            v.phase().to_string(),
            v.metadata.deletion_timestamp.is_some(),
        )
    });
    let running = printable == "Running" && vmi_state == Some(("Running".into(), false));
    let stopped = printable == "Stopped" && vmi.is_none();
    let consistent = status.state_change_requests.is_empty()
        && match strategy.as_str() {
            "Always" => running,
            "Halted" => stopped,
            "Manual" => running || stopped,
            _ => false,
        };
    let state = format!(
        "{strategy} {printable:?}, VMI {vmi_state:?}, queue {:?}",
        status.state_change_requests
    );
    if consistent { Ok(state) } else { Err(state) }
}

/// One run at a time: two at once would halve what each gets of the machine.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A VM of `strategy`, running, with nothing queued: what the callers start from.
async fn running_vm(c: &Cluster, strategy: Strategy) {
    c.create_vm(NS, VM, strategy.name(), serde_json::json!({}))
        .await;
    if strategy == Strategy::Manual {
        c.virtctl(&["start", VM])
            .await
            .ok(&format!("VM {VM} was scheduled to start\n"));
    }
    c.wait_printable(NS, VM, "Running").await;
    c.eventually("the VM's queue to be empty", async || {
        (c.requests(NS, VM).await.is_null()).then_some(())
    })
    .await;
}

/// The contention run on a VM of `strategy`; panics with every finding.
async fn contend(strategy: Strategy) {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let seed = test_support::seed_from_env("CONTENTION_SEED");
    eprintln!(
        "{}: seed {seed} (CONTENTION_SEED={seed} replays it)",
        strategy.name()
    );
    let c = Arc::new(Cluster::playground().await);
    running_vm(&c, strategy).await;

    // The state the history starts from, and watches from exactly there.
    let vms = c.vms(NS);
    let vmis = c.vmis(NS);
    let by_name = ListParams::default().fields(&format!("metadata.name={VM}"));
    let vm_list = vms.list(&by_name).await.unwrap();
    let vmi_list = vmis.list(&by_name).await.unwrap();
    let vm0 = vm_list.items[0].clone();
    let vmi0 = vmi_list.items.first().cloned().expect("the VM runs");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gaps = Arc::new(Mutex::new(Vec::new()));
    let watches = [
        watch(
            vms.clone(),
            vm_list.metadata.resource_version.unwrap(),
            vm_event,
            seen.clone(),
            gaps.clone(),
        ),
        watch(
            vmis.clone(),
            vmi_list.metadata.resource_version.unwrap(),
            vmi_event,
            seen.clone(),
            gaps.clone(),
        ),
    ];

    let started = Instant::now();
    let until = Arc::new(Until::from(started));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            tokio::spawn(caller(
                c.clone(),
                seed.wrapping_add(i as u64),
                strategy.verb_weights(),
                until.clone(),
                calls.clone(),
            ))
        })
        .collect();
    futures::stream::iter(callers)
        .then(|h| h)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let ran_for = started.elapsed();

    let settle_started = Instant::now();
    let last_state = loop {
        let state = settled(&c).await;
        if state.is_ok() || settle_started.elapsed() > SETTLE_WITHIN {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settle_took = settle_started.elapsed();
    // Let the watches catch up with the settled state, then stop them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for w in watches {
        w.abort();
    }

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    let mut answers: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut accepted = Accepted::default();
    for call in &calls {
        match outcome(strategy, call) {
            Some(kind) => {
                if kind == "accepted" {
                    match call.verb {
                        "start" => accepted.start += 1,
                        "stop" => accepted.stop += 1,
                        _ => accepted.restart += 1,
                    }
                }
                *answers.entry((call.verb, kind)).or_default() += 1;
            }
            None => unexpected.push(call),
        }
    }
    eprintln!(
        "{}: {} calls in {:.1} s ({:.0}/s), settled {:.1} s after the last; answers:",
        strategy.name(),
        calls.len(),
        ran_for.as_secs_f64(),
        calls.len() as f64 / ran_for.as_secs_f64(),
        settle_took.as_secs_f64()
    );
    for ((verb, kind), n) in &answers {
        eprintln!("  {verb:8} {n:5}  {kind}");
    }
    // Every finding at once, so that one run shows all that went wrong.
    let mut failures = Vec::new();
    if !unexpected.is_empty() {
        failures.push(format!(
            "{} answers are none of KubeVirt's:\n{unexpected:#?}",
            unexpected.len()
        ));
    }
    let lost: usize = answers
        .iter()
        .filter(|((_, kind), _)| kind == LOST_RACE)
        .map(|(_, n)| n)
        .sum();
    if lost * 1000 > calls.len() * LOST_RACES_PER_MILLE {
        failures.push(format!(
            "{lost} of {} calls lost their race more often than virt-api retries",
            calls.len()
        ));
    }
    let gaps = gaps.lock().unwrap().clone();
    if !gaps.is_empty() {
        failures.push(format!("the history has gaps: {gaps:?}"));
    }
    match &last_state {
        Ok(state) => eprintln!("settled: {state}"),
        Err(state) => failures.push(format!(
            "not settled {} s after the last call: {state}",
            SETTLE_WITHIN.as_secs()
        )),
    }
    let history = seen.lock().unwrap().clone();
    let Seen::Vm {
        strategy: strategy0,
        queue,
        ..
    } = vm_seen(&vm0)
    else {
        unreachable!()
    };
    let report = history::check(
        (&strategy0, queue),
        Some((&vmi0.uid().unwrap(), vmi0.phase(), false)),
        &history,
        accepted,
    );
    eprintln!(
        "history: {} versions; written {:?}; {} VMIs created; {} restarts coalesced, {} requests \
         overridden by a later stop, {} stops absorbed by the same Stop queued",
        history.len(),
        report.written,
        report.vmis_created,
        report.coalesced_restarts,
        report.overridden,
        report.absorbed_stops
    );
    if !report.violations.is_empty() {
        let mut sorted = history.clone();
        sorted.sort_by_key(Seen::rv);
        let lines: Vec<String> = sorted.iter().map(|s| format!("  {s:?}")).collect();
        failures.push(format!(
            "{} violations in the history:\n{}\nthe history, from VM {strategy0} with VMI {} {}:\n{}",
            report.violations.len(),
            report.violations.join("\n"),
            vmi0.uid().unwrap_or_default(),
            vmi0.phase(),
            lines.join("\n")
        ));
    }
    for verb in VERBS {
        if !answers.contains_key(&(verb, "accepted".to_string())) {
            failures.push(format!("no {verb} was accepted in {} calls", calls.len()));
        }
    }
    assert!(
        failures.is_empty(),
        "{}, seed {seed}:\n{}",
        strategy.name(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_on_an_always_vm_each_get_kubevirts_answer_and_every_202_is_carried_out() {
    contend(Strategy::Always).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_on_a_manual_vm_each_get_kubevirts_answer_and_every_202_is_carried_out() {
    contend(Strategy::Manual).await;
}

#[test]
fn each_refusal_is_kubevirts_word_for_word() {
    let call = |verb: &'static str, code: i32, stdout: &str, stderr: &str| Call {
        verb,
        out: Out {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        },
    };
    let conflict =
        format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{VM}\": ");
    let table = [
        (
            call("start", 0, "VM vm-contended was scheduled to start\n", ""),
            Some("accepted"),
        ),
        (
            call("stop", 0, "VM vm-contended was scheduled to start\n", ""),
            None,
        ),
        (
            call(
                "start",
                1,
                "",
                &format!("Error starting VirtualMachine {conflict}VM is already running\n"),
            ),
            Some("VM is already running"),
        ),
        (
            call(
                "stop",
                1,
                "",
                &format!("error stopping VirtualMachine {conflict}VM is not running\n"),
            ),
            Some("VM is not running"),
        ),
        (
            call(
                "restart",
                1,
                "",
                &format!("error restarting VirtualMachine: {conflict}VM is not running: Halted\n"),
            ),
            Some("VM is not running: Halted"),
        ),
        (
            call(
                "restart",
                1,
                "",
                "error restarting VirtualMachine: Internal error occurred: unable to complete request: stop/start already underway\n",
            ),
            Some("unable to complete request: stop/start already underway"),
        ),
        // A restart's refusal in a start's words is not one.
        (
            call(
                "start",
                1,
                "",
                &format!("error restarting VirtualMachine: {conflict}VM is not running: Halted\n"),
            ),
            None,
        ),
        (
            call(
                "stop",
                1,
                "",
                &format!(
                    "error stopping VirtualMachine {conflict}the JSON patch test operation failed\n"
                ),
            ),
            None,
        ),
        // A race lost more often than virt-api retries: KubeVirt's 409 with the server's word,
        // localkube's or kube-apiserver's.
        (
            call(
                "stop",
                1,
                "",
                &format!(
                    "error stopping VirtualMachine {conflict}the JSON patch test operation failed: operation '/0' failed at path '/metadata/generation': value did not match\n"
                ),
            ),
            Some(LOST_RACE),
        ),
        (
            call(
                "restart",
                1,
                "",
                &format!(
                    "error restarting VirtualMachine: {conflict}the server rejected our request due to an error in our request\n"
                ),
            ),
            Some(LOST_RACE),
        ),
        (call("restart", 101, "", "thread 'main' panicked\n"), None),
    ];
    for (c, want) in table {
        assert_eq!(outcome(Strategy::Always, &c).as_deref(), want, "{c:?}");
    }
    // Manual: a start is queued too, so it may find a request pending; stop never does.
    let underway =
        "Internal error occurred: unable to complete request: stop/start already underway";
    let manual = [
        (
            call(
                "start",
                1,
                "",
                &format!("Error starting VirtualMachine {underway}\n"),
            ),
            Some("unable to complete request: stop/start already underway"),
        ),
        (
            call(
                "start",
                1,
                "",
                &format!("Error starting VirtualMachine {conflict}VM is already running\n"),
            ),
            Some("VM is already running"),
        ),
        (
            call(
                "restart",
                1,
                "",
                &format!("error restarting VirtualMachine: {underway}\n"),
            ),
            Some("unable to complete request: stop/start already underway"),
        ),
        (
            call(
                "stop",
                1,
                "",
                &format!("error stopping VirtualMachine {conflict}VM is not running\n"),
            ),
            Some("VM is not running"),
        ),
        // What only a VM that runs by its spec answers.
        (
            call(
                "start",
                1,
                "",
                &format!(
                    "Error starting VirtualMachine {conflict}Always does not support manual start requests\n"
                ),
            ),
            None,
        ),
        (
            call(
                "stop",
                1,
                "",
                &format!(
                    "error stopping VirtualMachine {conflict}Halted only supports manual stop requests with a shorter graceperiod\n"
                ),
            ),
            None,
        ),
        (
            call(
                "restart",
                1,
                "",
                &format!(
                    "error restarting VirtualMachine: {conflict}RunStategy Halted does not support manual restart requests\n"
                ),
            ),
            None,
        ),
        (
            call(
                "stop",
                1,
                "",
                &format!("error stopping VirtualMachine {underway}\n"),
            ),
            None,
        ),
    ];
    for (c, want) in manual {
        assert_eq!(
            outcome(Strategy::Manual, &c).as_deref(),
            want,
            "Manual: {c:?}"
        );
    }
    // And a start on Always is refused before anything is queued.
    let queued = call(
        "start",
        1,
        "",
        &format!("Error starting VirtualMachine {underway}\n"),
    );
    assert_eq!(outcome(Strategy::Always, &queued), None);
}
