//! The contention test's oracle (pure): from every version of the VM and its VMIs that a watch
//! saw, in resourceVersion order (localkube's versions are one global counter), and the number
//! of requests virtctl saw accepted, it tells whether each accepted request was carried out
//! once and none was lost.
//!
//! The writes an accepted request makes are recognised in the VM's history. On a VM that runs
//! by its spec (runStrategy Always, which a stop turns Halted and a start back):
//! - restart: the queue goes from empty to `[Stop{U}, Start]` (U: the VMI it saw);
//! - stop: the run strategy goes Always → Halted (after, maybe, dropping queued Starts);
//! - start: the run strategy goes Halted → Always.
//!
//! On a Manual VM the run strategy never changes; every request is a write of the queue:
//! - start: empty → `[Start]`, or empty → `[Stop{U}, Start]` when U is final;
//! - restart: empty → `[Stop{U}, Start]`;
//! - stop: anything → `[Stop{U}]` (it replaces what is pending). A stop that finds that very
//!   queue changes nothing, and no version shows it: it is *absorbed* by the Stop already there.
//!
//! The controller's own writes only pop the queue's head. The properties:
//! 1. **Accounting**: as many writes of each kind as accepted answers of it: no accepted
//!    request without its write, none written twice. (Manual: a `[Stop{U}, Start]` may be a
//!    start's or a restart's, so starts and restarts are counted together, and stops that
//!    were absorbed are only possible where a lone Stop was queued.)
//! 2. **Valid where it lands**: each write is one the rules allow on the state it lands on
//!    (its linearisation point): a restart on an Always VM that has a VMI, a start while no
//!    VMI is active; on Manual, a restart of the VMI that is there, a stop of the VMI that is
//!    there and not final. Otherwise the request should have come back as KubeVirt's conflict.
//!    A Manual request's write tests the VM's version it read, but a patch of the VM cannot
//!    test the VMI: the VMI may go on between the read and the write (unset to Pending,
//!    Running to Succeeded), so there the rules must have allowed it on the VMI at some moment
//!    since the VM last changed.
//! 3. **Acted on** (none lost): after a start, a VMI runs (one created for it, or one a
//!    controller with an older view had created just before), unless a stop lands first (the
//!    last accepted request wins). A restart's Stop{U} leaves the queue only once U is gone, and
//!    its Start only when a VMI newer than U exists (U replaced), or when a stop drops it, after
//!    which the VM must stop. On Always, a restart whose U was already replaced when it landed
//!    (another restart replaced it, or it was a final VMI on its way out) is coalesced, as
//!    KubeVirt's Stop{uid} intends: it names the instance to replace, and that one is gone. The
//!    VMI state cannot be tested in a patch of the VM, so this is the guarantee, not that it
//!    lands while U exists. (On Manual the restart's write tests the VM's version, and U is
//!    replaced only through writes to the VM.) A start's lone Start leaves only once a VMI
//!    exists that is neither final nor being deleted.
//! 4. **Exactly once**: every VMI created during the run has a request of its own since the
//!    previous creation (a start, or a restart of the VMI that was current when it landed; on
//!    Manual, not before a stop that landed after it): no request starts two VMIs, and nothing
//!    starts one unasked.
//! 5. **Stops act**: the VMI there when a stop lands is deleted afterwards (or already was).
//! 6. **Consistent at the end**: nothing queued; Always with a Running VMI, or Halted with none;
//!    Manual either, as the last request written says: Running after a start or restart,
//!    no VMI after a stop.

use std::collections::BTreeMap;

/// A queue entry: `Start`, or `Stop` of a VMI uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    Start,
    Stop(String),
}

/// One version of the VM or of its VMI, as the watches saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Vm {
        rv: u64,
        strategy: String,
        queue: Vec<Req>,
    },
    /// A VMI version; `deleting` when it has a deletionTimestamp.
    Vmi {
        rv: u64,
        uid: String,
        phase: String,
        deleting: bool,
    },
    VmiGone {
        rv: u64,
        uid: String,
    },
}

impl Seen {
    pub fn rv(&self) -> u64 {
        match self {
            Seen::Vm { rv, .. } | Seen::Vmi { rv, .. } | Seen::VmiGone { rv, .. } => *rv,
        }
    }
}

/// How many requests of each verb virtctl saw accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    pub start: usize,
    pub stop: usize,
    pub restart: usize,
}

/// What the history shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<String>,
    /// Writes found, per verb (Manual: `restart` counts every `[Stop{U}, Start]`, `start` the
    /// lone Starts).
    pub written: Accepted,
    pub vmis_created: usize,
    /// Restarts whose VMI was replaced already when they landed.
    pub coalesced_restarts: usize,
    /// Starts and restarts that a later stop overrode before a VMI came of them.
    pub overridden: usize,
    /// Manual: accepted stops that found the same lone Stop queued, and so wrote nothing new.
    pub absorbed_stops: usize,
}

#[derive(Debug, Clone)]
struct Vmi {
    uid: String,
    phase: String,
    deleting: bool,
    /// When it was created (0: before the history).
    created: u64,
}

impl Vmi {
    /// Exists, is not final, and its phase is neither Unknown nor unset (Part B §2.6).
    fn active(&self) -> bool {
        !matches!(self.phase.as_str(), "" | "Unknown" | "Succeeded" | "Failed")
    }

    fn is_final(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }

    /// Neither active nor final: phase unset or Unknown, where a start may queue a lone Start.
    fn startable(&self) -> bool {
        !self.active() && !self.is_final()
    }

    fn running(&self) -> bool {
        self.phase == "Running" && !self.deleting
    }
}

/// The request a queued `Start` belongs to, until it leaves the queue.
#[derive(Debug)]
enum QueuedStart {
    /// A restart of VMI `uid` (created at `uid_created`, to tell a newer VMI), written at `rv`.
    Restart {
        rv: u64,
        uid: String,
        uid_created: Option<u64>,
    },
    /// A start's lone Start (Manual), written at `rv`.
    Start { rv: u64 },
}

/// A restart's Start that a stop's first step dropped at `rv`: the VM must turn Halted next.
struct Dropped {
    rv: u64,
    restart_rv: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Restart,
}

/// The state the history has reached, and what is still owed.
#[derive(Default)]
struct Oracle {
    report: Report,
    strategy: String,
    queue: Vec<Req>,
    current: Option<Vmi>,
    created_at: BTreeMap<String, u64>,
    queued_starts: Vec<QueuedStart>,
    dropped: Vec<Dropped>,
    /// Requests that may start a VMI, since the last creation: (rv, what).
    tokens: Vec<(u64, String)>,
    /// Starts waiting for their VMI (or a stop), and stops waiting for their VMI to go.
    starts_waiting: Vec<u64>,
    stops_waiting: Vec<(u64, String)>,
    strategy_changes: Vec<(u64, String)>,
    /// The last request written, and where.
    last_write: Option<(u64, Verb)>,
    /// Manual: a lone Stop of a VMI that was not final was queued at some point (where an
    /// accepted stop may write nothing new).
    lone_stop_queued: bool,
    /// Manual: what the VMI was since the VM last changed.
    since: VmiSince,
}

/// What the VMI was at some moment since the VM last changed (Manual). A request's plan
/// rests on the VM as read, whose version its write tests, and on the VMI read just after,
/// whose state a patch of the VM cannot test: the plan may land after that VMI went on (from
/// unset to Pending, from Running to Succeeded), and is valid if the rules allowed it on the
/// VMI at some moment since the VM's version it read.
#[derive(Debug, Default)]
struct VmiSince {
    /// No VMI, or one neither active nor final: a start may queue a lone Start.
    startable: bool,
    /// VMIs that were not final: a stop may name them.
    live: Vec<String>,
    /// VMIs that existed: a restart may name them.
    existed: Vec<String>,
}

impl VmiSince {
    /// From the VMI there now.
    fn of(vmi: Option<&Vmi>) -> Self {
        let mut since = VmiSince {
            startable: vmi.is_none(),
            ..Default::default()
        };
        if let Some(v) = vmi {
            since.saw(v);
        }
        since
    }

    fn saw(&mut self, v: &Vmi) {
        self.startable |= v.startable();
        if !v.is_final() && !self.live.contains(&v.uid) {
            self.live.push(v.uid.clone());
        }
        if !self.existed.contains(&v.uid) {
            self.existed.push(v.uid.clone());
        }
    }
}

/// Checks `history` (any order; sorted here) that starts from `vm` = (strategy, queue) and
/// `vmi` = its VMI (uid, phase, deleting) as they were, against the `accepted` answers.
pub fn check(
    vm: (&str, Vec<Req>),
    vmi: Option<(&str, &str, bool)>,
    history: &[Seen],
    accepted: Accepted,
) -> Report {
    let mut history = history.to_vec();
    history.sort_by_key(Seen::rv);
    let mut o = Oracle {
        strategy: vm.0.to_string(),
        queue: vm.1,
        current: vmi.map(|(uid, phase, deleting)| Vmi {
            uid: uid.into(),
            phase: phase.into(),
            deleting,
            created: 0,
        }),
        ..Default::default()
    };
    if let Some(v) = &o.current {
        o.created_at.insert(v.uid.clone(), 0);
    }
    o.since = VmiSince::of(o.current.as_ref());
    for seen in &history {
        match seen {
            Seen::Vmi {
                rv,
                uid,
                phase,
                deleting,
            } => o.vmi(*rv, uid, phase, *deleting),
            Seen::VmiGone { uid, .. } => {
                o.stops_waiting.retain(|(_, u)| u != uid);
                if o.current.as_ref().is_some_and(|c| c.uid == *uid) {
                    o.current = None;
                    o.since.startable = true;
                }
            }
            Seen::Vm {
                rv,
                strategy,
                queue,
            } if o.strategy == "Manual" => o.manual_vm(*rv, strategy, queue),
            Seen::Vm {
                rv,
                strategy,
                queue,
            } => o.spec_vm(*rv, strategy, queue),
        }
    }
    o.finish(accepted)
}

impl Oracle {
    fn violation(&mut self, rv: u64, what: String) {
        self.report.violations.push(format!("at rv {rv}: {what}"));
    }

    fn vmi(&mut self, rv: u64, uid: &str, phase: &str, deleting: bool) {
        let new = self.current.as_ref().is_none_or(|c| c.uid != uid);
        if new {
            if let Some(old) = &self.current {
                let what = format!("VMI {uid} exists while VMI {} does", old.uid);
                self.violation(rv, what);
            }
            self.report.vmis_created += 1;
            self.created_at.insert(uid.to_string(), rv);
            if self.tokens.is_empty() {
                let what = format!("VMI {uid} was created with no request since the last one");
                self.violation(rv, what);
            }
            self.tokens.clear();
        }
        if phase == "Running" && !deleting {
            self.starts_waiting.clear();
        }
        let vmi = Vmi {
            uid: uid.to_string(),
            phase: phase.to_string(),
            deleting,
            created: self.created_at[uid],
        };
        self.since.saw(&vmi);
        self.current = Some(vmi);
        if deleting {
            self.stops_waiting.retain(|(_, u)| u != uid);
        }
    }

    /// A version of a VM that runs by its spec (Always, Halted).
    fn spec_vm(&mut self, rv: u64, next_strategy: &str, next_queue: &[Req]) {
        if next_strategy != self.strategy {
            self.strategy_changes.push((rv, next_strategy.to_string()));
            match (self.strategy.as_str(), next_strategy) {
                ("Always", "Halted") => {
                    if self.queue.contains(&Req::Start) {
                        let what = "a stop landed with a restart's Start still queued, which \
                                    turns the VM on again";
                        self.violation(rv, what.into());
                    }
                    self.stop_written(rv);
                }
                ("Halted", "Always") if self.queue.contains(&Req::Start) => self.violation(
                    rv,
                    "the VM turned Always with a Start queued: the controller undid a stop".into(),
                ),
                ("Halted", "Always") => {
                    if let Some(v) = self.current.clone().filter(Vmi::active) {
                        self.start_on_active(rv, &v);
                    }
                    self.start_written(rv);
                }
                (from, to) => {
                    let what = format!("the run strategy went {from} → {to}");
                    self.violation(rv, what);
                }
            }
            self.strategy = next_strategy.to_string();
        }
        if next_queue == self.queue {
            return;
        }
        let old = std::mem::replace(&mut self.queue, next_queue.to_vec());
        if let ([], [Req::Stop(uid), Req::Start]) = (old.as_slice(), next_queue) {
            if self.strategy != "Always" {
                let what = format!("a restart landed on a {} VM", self.strategy);
                self.violation(rv, what);
            }
            match self.current.clone() {
                Some(v) if v.uid == *uid => self.restart_acts(rv, uid),
                _ if self.created_at.contains_key(uid) => self.report.coalesced_restarts += 1,
                _ => {
                    let what = format!("a restart named VMI {uid}, which the VM never had");
                    self.violation(rv, what);
                }
            }
            self.restart_written(rv, uid);
            return;
        }
        let popped = !old.is_empty() && next_queue == &old[1..];
        let without_starts: Vec<Req> = old.iter().filter(|r| **r != Req::Start).cloned().collect();
        if !popped && next_queue != without_starts.as_slice() {
            let what = format!("the queue went {old:?} → {next_queue:?}");
            self.violation(rv, what);
            return;
        }
        self.stops_left(rv, &old, next_queue);
        // A Start that left with no new VMI must have been dropped by a stop, which turns
        // the VM Halted next: [Start] → [] is the controller's pop or a stop's drop.
        let dropped = !popped || next_queue.is_empty();
        self.start_left(rv, &old, next_queue, dropped);
    }

    /// A version of a Manual VM: its run strategy stays, every request writes the queue.
    fn manual_vm(&mut self, rv: u64, next_strategy: &str, next_queue: &[Req]) {
        if next_strategy != self.strategy {
            let what = format!("the run strategy went {} → {next_strategy}", self.strategy);
            self.violation(rv, what);
            self.strategy = next_strategy.to_string();
        }
        if next_queue != self.queue {
            let old = std::mem::replace(&mut self.queue, next_queue.to_vec());
            let popped = !old.is_empty() && next_queue == &old[1..];
            self.manual_queue_change(rv, &old, next_queue, popped);
        }
        self.since = VmiSince::of(self.current.as_ref());
    }

    /// A change of a Manual VM's queue: a request's write, or the controller's pop.
    fn manual_queue_change(&mut self, rv: u64, old: &[Req], next_queue: &[Req], popped: bool) {
        match (old, next_queue) {
            ([], [Req::Start]) => {
                match self.current.clone() {
                    Some(v) if v.active() && !self.since.startable => {
                        self.start_on_active(rv, &v);
                    }
                    Some(v) if v.is_final() => {
                        let what = format!(
                            "a start queued a lone Start while VMI {} was {}: the controller \
                             keeps a final VMI, so nothing would start",
                            v.uid, v.phase
                        );
                        self.violation(rv, what);
                    }
                    _ => {}
                }
                self.start_written(rv);
                self.queued_starts.push(QueuedStart::Start { rv });
            }
            ([], [Req::Stop(uid), Req::Start]) => {
                let read = self.since.existed.contains(uid);
                match self.current.clone() {
                    Some(v) if v.uid == *uid => self.restart_acts(rv, uid),
                    Some(v) if self.created_at.contains_key(uid) => {
                        if !read {
                            let what = format!(
                                "a restart of VMI {uid} landed on VMI {}, which replaced it \
                                 before the VM's version the restart read",
                                v.uid
                            );
                            self.violation(rv, what);
                        }
                        self.report.coalesced_restarts += 1;
                    }
                    Some(_) => {
                        let what = format!("a restart named VMI {uid}, which the VM never had");
                        self.violation(rv, what);
                    }
                    None => {
                        if !read {
                            let what = format!(
                                "a restart of VMI {uid} landed with no VMI (VM is not running: \
                                 Halted): it starts a stopped VM"
                            );
                            self.violation(rv, what);
                        }
                        // Its Stop is popped at once and its Start starts a VMI.
                        self.tokens.push((rv, format!("restart of {uid}")));
                    }
                }
                self.restart_written(rv, uid);
            }
            (_, [Req::Stop(uid)]) if !popped => {
                self.stops_left(rv, old, next_queue);
                self.start_left(rv, old, next_queue, true);
                match self.current.clone() {
                    _ if self.since.live.contains(uid) => {}
                    Some(v) if v.uid == *uid => {
                        let what = format!(
                            "a stop landed on VMI {uid}, which was {} (VM is not running)",
                            v.phase
                        );
                        self.violation(rv, what);
                    }
                    Some(v) => {
                        let what = format!(
                            "a stop of VMI {uid} landed while VMI {} existed: the controller pops \
                             it and {} runs on, the stop is lost",
                            v.uid, v.uid
                        );
                        self.violation(rv, what);
                    }
                    None => {
                        let what =
                            format!("a stop of VMI {uid} landed with no VMI (VM is not running)");
                        self.violation(rv, what);
                    }
                }
                self.lone_stop_queued |= self.current.as_ref().is_some_and(|v| !v.is_final());
                // What starts after this must be asked for after it.
                self.tokens.clear();
                self.stop_written(rv);
            }
            _ if popped => {
                self.stops_left(rv, old, next_queue);
                self.start_left(rv, old, next_queue, false);
            }
            _ => {
                let what = format!("the queue went {old:?} → {next_queue:?}");
                self.violation(rv, what);
            }
        }
    }

    fn start_on_active(&mut self, rv: u64, v: &Vmi) {
        let what = format!(
            "a start landed while VMI {} was {} (VM is already running)",
            v.uid, v.phase
        );
        self.violation(rv, what);
    }

    fn start_written(&mut self, rv: u64) {
        self.report.written.start += 1;
        self.tokens.push((rv, "start".into()));
        self.starts_waiting.push(rv);
        self.last_write = Some((rv, Verb::Start));
    }

    /// A restart of the current VMI `uid`: it may start the next one.
    fn restart_acts(&mut self, rv: u64, uid: &str) {
        self.tokens.push((rv, format!("restart of {uid}")));
    }

    fn restart_written(&mut self, rv: u64, uid: &str) {
        self.report.written.restart += 1;
        self.queued_starts.push(QueuedStart::Restart {
            rv,
            uid: uid.to_string(),
            uid_created: self.created_at.get(uid).copied(),
        });
        self.last_write = Some((rv, Verb::Restart));
    }

    fn stop_written(&mut self, rv: u64) {
        self.report.written.stop += 1;
        self.report.overridden += self.starts_waiting.len();
        self.starts_waiting.clear();
        if let Some(v) = self.current.as_ref().filter(|v| !v.deleting) {
            self.stops_waiting.push((rv, v.uid.clone()));
        }
        self.last_write = Some((rv, Verb::Stop));
    }

    /// A Stop that left the queue: its VMI must be gone.
    fn stops_left(&mut self, rv: u64, old: &[Req], new: &[Req]) {
        for gone in old {
            let Req::Stop(uid) = gone else { continue };
            let still_queued = new.contains(gone);
            if !still_queued && self.current.as_ref().is_some_and(|v| v.uid == *uid) {
                let what = format!("Stop{{{uid}}} left the queue while that VMI still existed");
                self.violation(rv, what);
            }
        }
    }

    /// A Start that left the queue (`dropped`: not by the controller's pop, or maybe not):
    /// a restart's, once a VMI newer than the one it restarts exists, or dropped by a stop; a
    /// start's (Manual), once a VMI exists that is neither final nor being deleted, or
    /// dropped by a stop.
    fn start_left(&mut self, rv: u64, old: &[Req], new: &[Req], dropped: bool) {
        if !old.contains(&Req::Start) || new.contains(&Req::Start) {
            return;
        }
        if self.queued_starts.is_empty() {
            self.violation(rv, "a Start that no request queued left the queue".into());
            return;
        }
        let manual = self.strategy == "Manual";
        match self.queued_starts.remove(0) {
            QueuedStart::Restart {
                rv: restart_rv,
                uid,
                uid_created,
            } => {
                let replaced = self
                    .current
                    .as_ref()
                    .is_some_and(|v| v.uid != uid && uid_created.is_none_or(|c| v.created > c));
                if replaced {
                } else if dropped {
                    // On Manual the stop that dropped it is this very write.
                    if !manual {
                        self.dropped.push(Dropped { rv, restart_rv });
                    }
                    self.report.overridden += 1;
                } else {
                    let what = format!(
                        "the Start of the restart at rv {restart_rv} was popped while VMI {uid} \
                         was not replaced"
                    );
                    self.violation(rv, what);
                }
            }
            // Dropped by a stop, which counts it as overridden when it waits still.
            QueuedStart::Start { .. } if dropped => {}
            QueuedStart::Start { rv: start_rv } => {
                let there = self
                    .current
                    .as_ref()
                    .is_some_and(|v| !v.deleting && !v.is_final());
                if !there {
                    let what = format!(
                        "the Start of the start at rv {start_rv} was popped with no VMI that \
                         runs or is starting"
                    );
                    self.violation(rv, what);
                }
            }
        }
    }

    fn finish(mut self, accepted: Accepted) -> Report {
        for d in std::mem::take(&mut self.dropped) {
            let next = self.strategy_changes.iter().find(|(rv, _)| *rv > d.rv);
            if next.is_none_or(|(_, to)| to != "Halted") {
                let what = format!(
                    "the Start of the restart at rv {} left the queue with no new VMI and no stop \
                     after it",
                    d.restart_rv
                );
                self.violation(d.rv, what);
            }
        }
        for rv in std::mem::take(&mut self.starts_waiting) {
            self.violation(rv, "the start was accepted and no VMI ran after it".into());
        }
        for (rv, uid) in std::mem::take(&mut self.stops_waiting) {
            let what = format!("the stop was accepted and VMI {uid} was never deleted");
            self.violation(rv, what);
        }
        if self.strategy == "Manual" {
            self.manual_accounting(accepted);
        } else {
            self.accounting(accepted);
        }
        let report = &mut self.report;
        if !self.queue.is_empty() {
            let what = format!("at the end the queue still holds {:?}", self.queue);
            report.violations.push(what);
        }
        let running = self.current.as_ref().is_some_and(Vmi::running);
        let consistent = match self.strategy.as_str() {
            "Always" => running,
            "Halted" => self.current.is_none(),
            "Manual" => match self.last_write {
                Some((_, Verb::Stop)) => self.current.is_none(),
                Some(_) => running,
                None => running || self.current.is_none(),
            },
            _ => false,
        };
        if !consistent {
            let last = match self.last_write {
                Some((rv, verb)) => format!(", the last request written a {verb:?} at rv {rv}"),
                None => String::new(),
            };
            report.violations.push(format!(
                "at the end the VM is {} with VMI {:?}{last}",
                self.strategy,
                self.current
                    .as_ref()
                    .map(|v| (&v.uid, &v.phase, v.deleting))
            ));
        }
        self.report
    }

    /// Every write of each verb, as many as were accepted.
    fn accounting(&mut self, accepted: Accepted) {
        let written = self.report.written;
        for (verb, written, answered) in [
            ("start", written.start, accepted.start),
            ("stop", written.stop, accepted.stop),
            ("restart", written.restart, accepted.restart),
        ] {
            if written != answered {
                self.report.violations.push(format!(
                    "{answered} {verb}s were accepted and {written} were written"
                ));
            }
        }
    }

    /// Manual: a `[Stop{U}, Start]` is a restart's or a start's (of a final VMI), so starts
    /// and restarts are counted together; a stop may find its own `[Stop{U}]` queued already,
    /// and then no version shows it.
    fn manual_accounting(&mut self, accepted: Accepted) {
        let written = self.report.written;
        let asked = accepted.start + accepted.restart;
        if written.start > accepted.start || written.start + written.restart != asked {
            self.report.violations.push(format!(
                "{} starts and {} restarts were accepted, and {} lone Starts and {} \
                 [Stop, Start] pairs were written",
                accepted.start, accepted.restart, written.start, written.restart
            ));
        }
        if written.stop > accepted.stop {
            self.report.violations.push(format!(
                "{} stops were accepted and {} were written",
                accepted.stop, written.stop
            ));
        }
        self.report.absorbed_stops = accepted.stop.saturating_sub(written.stop);
        if self.report.absorbed_stops > 0 && !self.lone_stop_queued {
            self.report.violations.push(format!(
                "{} stops were accepted and {} were written, and no lone Stop was ever queued \
                 that the others could have found",
                accepted.stop, written.stop
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(rv: u64, strategy: &str, queue: Vec<Req>) -> Seen {
        Seen::Vm {
            rv,
            strategy: strategy.into(),
            queue,
        }
    }

    fn manual(rv: u64, queue: Vec<Req>) -> Seen {
        vm(rv, "Manual", queue)
    }

    fn vmi(rv: u64, uid: &str, phase: &str, deleting: bool) -> Seen {
        Seen::Vmi {
            rv,
            uid: uid.into(),
            phase: phase.into(),
            deleting,
        }
    }

    fn gone(rv: u64, uid: &str) -> Seen {
        Seen::VmiGone {
            rv,
            uid: uid.into(),
        }
    }

    fn stop(uid: &str) -> Req {
        Req::Stop(uid.into())
    }

    fn accepted(start: usize, stop: usize, restart: usize) -> Accepted {
        Accepted {
            start,
            stop,
            restart,
        }
    }

    /// A restart of `a` carried out: queued, `a` deleted and gone, Stop popped, `b` created
    /// and Running, Start popped; from rv `at`.
    fn restart(at: u64, a: &str, b: &str) -> Vec<Seen> {
        vec![
            vm(at, "Always", vec![stop(a), Req::Start]),
            vmi(at + 1, a, "Running", true),
            vmi(at + 2, a, "Succeeded", true),
            gone(at + 3, a),
            vmi(at + 4, b, "", false),
            vm(at + 5, "Always", vec![Req::Start]),
            vmi(at + 6, b, "Running", false),
            vm(at + 7, "Always", vec![]),
        ]
    }

    /// Checks `history` from a VM of `strategy` with nothing queued and VMI `a` Running.
    fn check_from_running(strategy: &str, history: &[Seen], accepted: Accepted) -> Report {
        check(
            (strategy, vec![]),
            Some(("a", "Running", false)),
            history,
            accepted,
        )
    }

    #[test]
    fn restarts_stops_and_starts_carried_out_pass() {
        let mut history = restart(10, "a", "b");
        history.extend(restart(20, "b", "c"));
        history.extend([
            vm(30, "Halted", vec![]),
            vmi(31, "c", "Running", true),
            vmi(32, "c", "Succeeded", true),
            vm(33, "Always", vec![]),
            gone(34, "c"),
            vmi(35, "d", "Running", false),
        ]);
        let report = check_from_running("Always", &history, accepted(1, 1, 2));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.written, accepted(1, 1, 2));
        assert_eq!(report.vmis_created, 3);
    }

    #[test]
    fn a_stop_after_a_restart_drops_its_start_and_the_vm_ends_halted() {
        let history = [
            vm(10, "Always", vec![stop("a"), Req::Start]),
            vm(11, "Always", vec![stop("a")]),
            vm(12, "Halted", vec![stop("a")]),
            vmi(13, "a", "Running", true),
            gone(14, "a"),
            vm(15, "Halted", vec![]),
        ];
        let report = check_from_running("Always", &history, accepted(0, 1, 1));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.overridden, 1);
    }

    #[test]
    fn a_second_restart_of_a_replaced_vmi_is_coalesced() {
        let mut history = restart(10, "a", "b");
        history.extend([
            vm(20, "Always", vec![stop("a"), Req::Start]),
            vm(21, "Always", vec![Req::Start]),
            vm(22, "Always", vec![]),
        ]);
        let report = check_from_running("Always", &history, accepted(0, 0, 2));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.coalesced_restarts, 1);
    }

    #[test]
    fn a_restart_landing_after_its_vmi_went_is_coalesced() {
        // Stopped and started again; a restart that read the old VMI on its way out lands
        // after it is gone, and the VMI the start brings serves both.
        let history = [
            vm(10, "Halted", vec![]),
            vmi(11, "a", "Running", true),
            vmi(12, "a", "Succeeded", true),
            vm(13, "Always", vec![]),
            gone(14, "a"),
            vm(15, "Always", vec![stop("a"), Req::Start]),
            vm(16, "Always", vec![Req::Start]),
            vmi(17, "b", "", false),
            vm(18, "Always", vec![]),
            vmi(19, "b", "Running", false),
        ];
        let report = check_from_running("Always", &history, accepted(1, 1, 1));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.coalesced_restarts, 1);
    }

    #[test]
    fn a_start_may_keep_a_vmi_created_just_before_it_landed() {
        // A restart, then a stop that drops its Start; a controller that had not seen the stop
        // yet still creates b for the restart, the start lands before b is deleted, and b runs.
        let history = [
            vm(10, "Always", vec![stop("a"), Req::Start]),
            vm(11, "Always", vec![stop("a")]),
            vm(12, "Halted", vec![stop("a")]),
            vmi(13, "a", "Running", true),
            gone(14, "a"),
            vm(15, "Halted", vec![]),
            vmi(16, "b", "", false),
            vm(17, "Always", vec![]),
            vmi(18, "b", "Running", false),
        ];
        let report = check_from_running("Always", &history, accepted(1, 1, 1));
        assert_eq!(report.violations, Vec::<String>::new());
    }

    #[test]
    fn what_breaks_the_rules_is_reported() {
        let cases: Vec<(&str, Vec<Seen>, Accepted, &str)> = vec![
            (
                "an accepted restart never written",
                restart(10, "a", "b"),
                accepted(0, 0, 2),
                "2 restarts were accepted and 1 were written",
            ),
            (
                "a restart on a Halted VM",
                vec![
                    vm(10, "Halted", vec![]),
                    vm(11, "Halted", vec![stop("a"), Req::Start]),
                ],
                accepted(0, 1, 1),
                "at rv 11: a restart landed on a Halted VM",
            ),
            (
                "a start while the VMI still runs",
                vec![
                    vm(10, "Halted", vec![]),
                    vmi(11, "a", "Running", true),
                    vm(12, "Always", vec![]),
                ],
                accepted(1, 1, 0),
                "at rv 12: a start landed while VMI a was Running (VM is already running)",
            ),
            (
                "a VMI nobody asked for",
                vec![
                    vmi(10, "a", "Succeeded", true),
                    gone(11, "a"),
                    vmi(12, "b", "Running", false),
                ],
                accepted(0, 0, 0),
                "at rv 12: VMI b was created with no request since the last one",
            ),
            (
                "a restart's Start popped with its VMI still there",
                vec![
                    vm(10, "Always", vec![stop("a"), Req::Start]),
                    vm(11, "Always", vec![Req::Start]),
                    vm(12, "Always", vec![]),
                ],
                accepted(0, 0, 1),
                "at rv 11: Stop{a} left the queue while that VMI still existed",
            ),
            (
                "a stop that never deleted the VMI",
                vec![vm(10, "Halted", vec![])],
                accepted(0, 1, 0),
                "at rv 10: the stop was accepted and VMI a was never deleted",
            ),
            (
                "a start with no VMI after it",
                vec![
                    vm(10, "Halted", vec![]),
                    vmi(11, "a", "Succeeded", true),
                    gone(12, "a"),
                    vm(13, "Always", vec![]),
                ],
                accepted(1, 1, 0),
                "at rv 13: the start was accepted and no VMI ran after it",
            ),
            (
                "a stop that leaves a restart's Start queued",
                vec![
                    vm(10, "Always", vec![stop("a"), Req::Start]),
                    vm(11, "Halted", vec![stop("a"), Req::Start]),
                    vmi(12, "a", "Running", true),
                    gone(13, "a"),
                    vm(14, "Halted", vec![Req::Start]),
                    vm(15, "Always", vec![Req::Start]),
                ],
                accepted(0, 1, 1),
                "at rv 11: a stop landed with a restart's Start still queued, which turns the VM on again",
            ),
            (
                "the controller turning a stopped VM on",
                vec![
                    vm(10, "Halted", vec![]),
                    vmi(11, "a", "Running", true),
                    gone(12, "a"),
                    vm(13, "Halted", vec![Req::Start]),
                    vm(14, "Always", vec![Req::Start]),
                ],
                accepted(0, 1, 0),
                "at rv 14: the VM turned Always with a Start queued: the controller undid a stop",
            ),
            (
                "a queue the rules never write",
                vec![vm(10, "Always", vec![Req::Start])],
                accepted(0, 0, 0),
                "at rv 10: the queue went [] → [Start]",
            ),
        ];
        for (what, history, accepted, want) in cases {
            let report = check_from_running("Always", &history, accepted);
            assert!(
                report.violations.iter().any(|v| v == want),
                "{what}: {:#?}",
                report.violations
            );
        }
    }

    // Manual: every request is a write of the queue.

    /// A Manual restart of `a` carried out, from rv `at`: queued, `a` deleted and gone, Stop
    /// popped, `b` created, Start popped, `b` Running.
    fn manual_restart(at: u64, a: &str, b: &str) -> Vec<Seen> {
        vec![
            manual(at, vec![stop(a), Req::Start]),
            vmi(at + 1, a, "Running", true),
            vmi(at + 2, a, "Succeeded", true),
            gone(at + 3, a),
            manual(at + 4, vec![Req::Start]),
            vmi(at + 5, b, "", false),
            manual(at + 6, vec![]),
            vmi(at + 7, b, "Running", false),
        ]
    }

    /// A Manual stop of `a` carried out, from rv `at`.
    fn manual_stop(at: u64, a: &str) -> Vec<Seen> {
        vec![
            manual(at, vec![stop(a)]),
            vmi(at + 1, a, "Running", true),
            vmi(at + 2, a, "Succeeded", true),
            gone(at + 3, a),
            manual(at + 4, vec![]),
        ]
    }

    /// A Manual start carried out, from rv `at`, bringing `b`.
    fn manual_start(at: u64, b: &str) -> Vec<Seen> {
        vec![
            manual(at, vec![Req::Start]),
            vmi(at + 1, b, "", false),
            manual(at + 2, vec![]),
            vmi(at + 3, b, "Running", false),
        ]
    }

    #[test]
    fn manual_restarts_stops_and_starts_carried_out_pass() {
        let mut history = manual_restart(10, "a", "b");
        history.extend(manual_stop(20, "b"));
        history.extend(manual_start(30, "c"));
        // A second stop while the first one's VMI is still going writes nothing new.
        history.extend(manual_stop(40, "c"));
        let report = check_from_running("Manual", &history, accepted(1, 3, 1));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.written, accepted(1, 2, 1));
        assert_eq!(report.absorbed_stops, 1);
        assert_eq!(report.vmis_created, 2);
    }

    #[test]
    fn a_manual_stop_drops_a_queued_start_and_the_vm_ends_stopped() {
        let history = [
            manual(10, vec![stop("a"), Req::Start]),
            manual(11, vec![stop("a")]),
            vmi(12, "a", "Running", true),
            gone(13, "a"),
            manual(14, vec![]),
        ];
        let report = check_from_running("Manual", &history, accepted(0, 1, 1));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.overridden, 1);
        // A start's Start, once its VMI is there and before the pop: the stop names it.
        let mut history = manual_stop(10, "a");
        history.extend([
            manual(20, vec![Req::Start]),
            vmi(21, "b", "", false),
            manual(22, vec![stop("b")]),
            vmi(23, "b", "", true),
            gone(24, "b"),
            manual(25, vec![]),
        ]);
        let report = check_from_running("Manual", &history, accepted(1, 2, 0));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.overridden, 1);
    }

    #[test]
    fn a_manual_start_of_a_final_vmi_is_a_pair_counted_with_the_restarts() {
        let history = [
            vmi(10, "a", "Succeeded", false),
            manual(11, vec![stop("a"), Req::Start]),
            vmi(12, "a", "Succeeded", true),
            gone(13, "a"),
            manual(14, vec![Req::Start]),
            vmi(15, "b", "Running", false),
            manual(16, vec![]),
        ];
        let report = check_from_running("Manual", &history, accepted(1, 0, 0));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.written, accepted(0, 0, 1));
    }

    #[test]
    fn a_manual_start_on_a_vmi_not_yet_running_is_carried_by_it() {
        let mut history = manual_stop(10, "a");
        history.extend([
            manual(20, vec![Req::Start]),
            vmi(21, "b", "", false),
            manual(22, vec![]),
            // A second start read the queue empty and b not yet processed: it lands on b.
            manual(23, vec![Req::Start]),
            manual(24, vec![]),
            vmi(25, "b", "Running", false),
        ]);
        let report = check_from_running("Manual", &history, accepted(2, 1, 0));
        assert_eq!(report.violations, Vec::<String>::new());
    }

    #[test]
    fn a_manual_start_may_land_after_the_vmi_it_read_went_on_to_pending() {
        // The start read the VM after the pop and b not yet processed; b turned Pending before
        // the start's write, which cannot test it. b answers both starts.
        let mut history = manual_stop(10, "a");
        history.extend([
            manual(20, vec![Req::Start]),
            vmi(21, "b", "", false),
            manual(22, vec![]),
            vmi(23, "b", "Pending", false),
            manual(24, vec![Req::Start]),
            manual(25, vec![]),
            vmi(26, "b", "Running", false),
        ]);
        let report = check_from_running("Manual", &history, accepted(2, 1, 0));
        assert_eq!(report.violations, Vec::<String>::new());
    }

    #[test]
    fn a_manual_stop_may_land_after_the_vmi_it_read_became_final() {
        // A restart is being carried out; the stop read a as Running (being deleted), and a
        // turned Succeeded before the stop replaced the queue, dropping the restart's Start.
        let history = [
            manual(10, vec![stop("a"), Req::Start]),
            vmi(11, "a", "Running", true),
            manual(12, vec![stop("a"), Req::Start]),
            vmi(13, "a", "Succeeded", true),
            manual(14, vec![stop("a")]),
            gone(15, "a"),
            manual(16, vec![]),
        ];
        let report = check_from_running("Manual", &history, accepted(0, 1, 1));
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.overridden, 1);
    }

    #[test]
    fn what_breaks_the_manual_rules_is_reported() {
        let cases: Vec<(&str, Vec<Seen>, Accepted, &str)> = vec![
            (
                "a stop decided on a VMI that a restart replaced before it landed",
                {
                    let mut h = manual_restart(10, "a", "b");
                    h.extend([manual(20, vec![stop("a")]), manual(21, vec![])]);
                    h
                },
                accepted(0, 1, 1),
                "at rv 20: a stop of VMI a landed while VMI b existed: the controller pops it \
                 and b runs on, the stop is lost",
            ),
            (
                "... and so the VM ends against the last request",
                {
                    let mut h = manual_restart(10, "a", "b");
                    h.extend([manual(20, vec![stop("a")]), manual(21, vec![])]);
                    h
                },
                accepted(0, 1, 1),
                "at the end the VM is Manual with VMI Some((\"b\", \"Running\", false)), the \
                 last request written a Stop at rv 20",
            ),
            (
                "a stop landing on a VMI final since before the VM last changed",
                vec![
                    manual(10, vec![stop("a"), Req::Start]),
                    vmi(11, "a", "Succeeded", true),
                    manual(12, vec![stop("a"), Req::Start]),
                    manual(13, vec![stop("a")]),
                    gone(14, "a"),
                    manual(15, vec![]),
                ],
                accepted(0, 1, 1),
                "at rv 13: a stop landed on VMI a, which was Succeeded (VM is not running)",
            ),
            (
                "a stop decided before a stop landed",
                {
                    let mut h = manual_stop(10, "a");
                    h.push(manual(20, vec![stop("a")]));
                    h.push(manual(21, vec![]));
                    h
                },
                accepted(0, 2, 0),
                "at rv 20: a stop of VMI a landed with no VMI (VM is not running)",
            ),
            (
                "a restart decided before a stop landed",
                {
                    let mut h = manual_stop(10, "a");
                    h.extend([
                        manual(20, vec![stop("a"), Req::Start]),
                        manual(21, vec![Req::Start]),
                        vmi(22, "b", "Running", false),
                        manual(23, vec![]),
                    ]);
                    h
                },
                accepted(0, 1, 1),
                "at rv 20: a restart of VMI a landed with no VMI (VM is not running: Halted): \
                 it starts a stopped VM",
            ),
            (
                "a restart decided on a VMI that another restart replaced before it landed",
                {
                    let mut h = manual_restart(10, "a", "b");
                    h.extend([
                        manual(20, vec![stop("a"), Req::Start]),
                        manual(21, vec![Req::Start]),
                        manual(22, vec![]),
                    ]);
                    h
                },
                accepted(0, 0, 2),
                "at rv 20: a restart of VMI a landed on VMI b, which replaced it before the \
                 VM's version the restart read",
            ),
            (
                "a start landing on a VMI that was active since the VM last changed",
                {
                    let mut h = manual_stop(10, "a");
                    h.extend([
                        manual(20, vec![Req::Start]),
                        vmi(21, "b", "", false),
                        vmi(22, "b", "Running", false),
                        manual(23, vec![]),
                        manual(30, vec![Req::Start]),
                        manual(31, vec![]),
                    ]);
                    h
                },
                accepted(2, 1, 0),
                "at rv 30: a start landed while VMI b was Running (VM is already running)",
            ),
            (
                "a start's Start popped with no VMI",
                {
                    let mut h = manual_stop(10, "a");
                    h.extend([manual(20, vec![Req::Start]), manual(21, vec![])]);
                    h
                },
                accepted(1, 1, 0),
                "at rv 21: the Start of the start at rv 20 was popped with no VMI that runs or \
                 is starting",
            ),
            (
                "an accepted stop written twice",
                {
                    let mut h = manual_stop(10, "a");
                    h.extend(manual_start(20, "b"));
                    h.extend(manual_stop(30, "b"));
                    h
                },
                accepted(1, 1, 0),
                "1 stops were accepted and 2 were written",
            ),
            (
                "an accepted stop that wrote nothing where nothing could absorb it",
                manual_restart(10, "a", "b"),
                accepted(0, 1, 1),
                "1 stops were accepted and 0 were written, and no lone Stop was ever queued \
                 that the others could have found",
            ),
            (
                "an accepted start never written",
                manual_restart(10, "a", "b"),
                accepted(1, 0, 1),
                "1 starts and 1 restarts were accepted, and 0 lone Starts and 1 [Stop, Start] \
                 pairs were written",
            ),
            (
                "a VMI started after a stop with no request after it",
                {
                    let mut h = manual_stop(10, "a");
                    h.extend(manual_start(20, "b"));
                    h.extend([
                        manual(30, vec![stop("b")]),
                        vmi(31, "b", "Running", true),
                        gone(32, "b"),
                        manual(33, vec![]),
                        vmi(34, "c", "Running", false),
                    ]);
                    h
                },
                accepted(1, 2, 0),
                "at rv 34: VMI c was created with no request since the last one",
            ),
            (
                "the run strategy changed",
                vec![vm(10, "Always", vec![])],
                accepted(0, 0, 0),
                "at rv 10: the run strategy went Manual → Always",
            ),
            (
                "a stop that never deleted the VMI",
                vec![manual(10, vec![stop("a")])],
                accepted(0, 1, 0),
                "at rv 10: the stop was accepted and VMI a was never deleted",
            ),
            (
                "a stop's Stop popped while its VMI runs",
                vec![manual(10, vec![stop("a")]), manual(11, vec![])],
                accepted(0, 1, 0),
                "at rv 11: Stop{a} left the queue while that VMI still existed",
            ),
            (
                "a request left queued",
                vec![manual(10, vec![stop("a")]), vmi(11, "a", "Running", true)],
                accepted(0, 1, 0),
                "at the end the queue still holds [Stop(\"a\")]",
            ),
        ];
        for (what, history, accepted, want) in cases {
            let report = check_from_running("Manual", &history, accepted);
            assert!(
                report.violations.iter().any(|v| v == want),
                "{what}: {:#?}",
                report.violations
            );
        }
    }
}
