//! The contention test's oracle (pure): from every version of the VM and its VMIs that a watch
//! saw, in resourceVersion order (localkube's versions are one global counter), and the number
//! of requests virtctl saw accepted, it tells whether each accepted request was carried out
//! once and none was lost.
//!
//! The writes an accepted request makes are recognised in the VM's history:
//! - restart: the queue goes from empty to `[Stop{U}, Start]` (U: the VMI it saw);
//! - stop: the run strategy goes Always → Halted (after, maybe, dropping queued Starts);
//! - start: the run strategy goes Halted → Always.
//!
//! The controller's own writes only pop the queue's head. The properties:
//! 1. **Accounting**: as many writes of each kind as accepted answers of it: no accepted
//!    request without its write, none written twice.
//! 2. **Valid where it lands**: each write is one the rules allow on the state it lands on
//!    (its linearisation point): a restart on an Always VM that has a VMI, a start while no
//!    VMI is active. Otherwise the request should have come back as KubeVirt's conflict.
//! 3. **Acted on** (none lost): after a start, a VMI runs (one created for it, or one a
//!    controller with an older view had created just before), unless a stop lands first (the
//!    last accepted request wins). A restart's Stop{U} leaves the queue only once U is gone, and
//!    its Start only when a VMI newer than U exists (U replaced), or when a stop drops it, after
//!    which the VM must turn Halted. A restart whose U was already gone when it landed (another
//!    restart replaced it, or it was a final VMI on its way out) is coalesced, as KubeVirt's
//!    Stop{uid} intends: it names the instance to replace, and that one is gone. The VMI state
//!    cannot be tested in a patch of the VM, so this is the guarantee, not that it lands while
//!    U exists.
//! 4. **Exactly once**: every VMI created during the run has a request of its own since the
//!    previous creation (a start, or a restart of the VMI that was current when it landed):
//!    no request starts two VMIs, and nothing starts one unasked.
//! 5. **Stops act**: the VMI there when a stop lands is deleted afterwards (or already was).
//! 6. **Consistent at the end**: nothing queued; Always with a Running VMI, or Halted with none.

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
    /// Writes found, per verb.
    pub written: Accepted,
    pub vmis_created: usize,
    /// Restarts whose VMI was gone already when they landed.
    pub coalesced_restarts: usize,
    /// Starts and restarts that a later stop overrode before a VMI came of them.
    pub overridden: usize,
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
}

/// A restart in the queue, until its Start leaves it.
#[derive(Debug)]
struct QueuedRestart {
    rv: u64,
    /// The VMI it restarts.
    uid: String,
    /// When U was created, to tell a newer VMI.
    uid_created: Option<u64>,
}

/// A Start that a stop dropped at `rv`: the VM must turn Halted next.
struct Dropped {
    rv: u64,
    restart_rv: u64,
}

/// Checks `history` (any order; sorted here) that starts from `vm` = (strategy, queue) and
/// `vmi` = its VMI (uid, phase, deleting) as they were, against the `accepted` answers.
pub fn check(
    vm: (&str, Vec<Req>),
    vmi: Option<(&str, &str, bool)>,
    history: &[Seen],
    accepted: Accepted,
) -> Report {
    let mut report = Report::default();
    let mut history = history.to_vec();
    history.sort_by_key(Seen::rv);
    let (mut strategy, mut queue) = (vm.0.to_string(), vm.1);
    let mut current: Option<Vmi> = vmi.map(|(uid, phase, deleting)| Vmi {
        uid: uid.into(),
        phase: phase.into(),
        deleting,
        created: 0,
    });
    let mut created_at: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(v) = &current {
        created_at.insert(v.uid.clone(), 0);
    }
    let mut restarts: Vec<QueuedRestart> = Vec::new();
    let mut dropped: Vec<Dropped> = Vec::new();
    // Requests that may start a VMI, since the last creation: (rv, what).
    let mut tokens: Vec<(u64, String)> = Vec::new();
    // Starts waiting for their VMI (or a stop), and stops waiting for their VMI to go.
    let mut starts_waiting: Vec<u64> = Vec::new();
    let mut stops_waiting: Vec<(u64, String)> = Vec::new();
    let mut strategy_changes: Vec<(u64, String)> = Vec::new();
    let violation = |report: &mut Report, rv: u64, what: String| {
        report.violations.push(format!("at rv {rv}: {what}"));
    };

    for seen in &history {
        match seen {
            Seen::Vmi {
                rv,
                uid,
                phase,
                deleting,
            } => {
                let new = current.as_ref().is_none_or(|c| c.uid != *uid);
                if new {
                    if let Some(old) = &current {
                        violation(
                            &mut report,
                            *rv,
                            format!("VMI {uid} exists while VMI {} does", old.uid),
                        );
                    }
                    report.vmis_created += 1;
                    created_at.insert(uid.clone(), *rv);
                    if tokens.is_empty() {
                        violation(
                            &mut report,
                            *rv,
                            format!("VMI {uid} was created with no request since the last one"),
                        );
                    }
                    tokens.clear();
                }
                if phase == "Running" && !*deleting {
                    starts_waiting.clear();
                }
                current = Some(Vmi {
                    uid: uid.clone(),
                    phase: phase.clone(),
                    deleting: *deleting,
                    created: created_at[uid],
                });
                if *deleting {
                    stops_waiting.retain(|(_, u)| u != uid);
                }
            }
            Seen::VmiGone { uid, .. } => {
                stops_waiting.retain(|(_, u)| u != uid);
                if current.as_ref().is_some_and(|c| c.uid == *uid) {
                    current = None;
                }
            }
            Seen::Vm {
                rv,
                strategy: next_strategy,
                queue: next_queue,
            } => {
                if *next_strategy != strategy {
                    strategy_changes.push((*rv, next_strategy.clone()));
                    match (strategy.as_str(), next_strategy.as_str()) {
                        ("Always", "Halted") => {
                            report.written.stop += 1;
                            if queue.contains(&Req::Start) {
                                violation(
                                    &mut report,
                                    *rv,
                                    "a stop landed with a restart's Start still queued, which \
                                     turns the VM on again"
                                        .into(),
                                );
                            }
                            report.overridden += starts_waiting.len();
                            starts_waiting.clear();
                            if let Some(v) = current.as_ref().filter(|v| !v.deleting) {
                                stops_waiting.push((*rv, v.uid.clone()));
                            }
                        }
                        ("Halted", "Always") if queue.contains(&Req::Start) => violation(
                            &mut report,
                            *rv,
                            "the VM turned Always with a Start queued: the controller undid a stop"
                                .into(),
                        ),
                        ("Halted", "Always") => {
                            report.written.start += 1;
                            if let Some(v) = current.as_ref().filter(|v| v.active()) {
                                violation(
                                    &mut report,
                                    *rv,
                                    format!(
                                        "a start landed while VMI {} was {} (VM is already running)",
                                        v.uid, v.phase
                                    ),
                                );
                            }
                            tokens.push((*rv, "start".into()));
                            starts_waiting.push(*rv);
                        }
                        (from, to) => violation(
                            &mut report,
                            *rv,
                            format!("the run strategy went {from} → {to}"),
                        ),
                    }
                    strategy = next_strategy.clone();
                }
                if *next_queue != queue {
                    queue_change(
                        &mut report,
                        *rv,
                        (&strategy, &queue, next_queue),
                        current.as_ref(),
                        &created_at,
                        &mut restarts,
                        &mut dropped,
                        &mut tokens,
                    );
                    queue = next_queue.clone();
                }
            }
        }
    }

    for d in &dropped {
        let next = strategy_changes.iter().find(|(rv, _)| *rv > d.rv);
        if next.is_none_or(|(_, to)| to != "Halted") {
            violation(
                &mut report,
                d.rv,
                format!(
                    "the Start of the restart at rv {} left the queue with no new VMI and no stop after it",
                    d.restart_rv
                ),
            );
        }
    }
    for rv in starts_waiting {
        violation(
            &mut report,
            rv,
            "the start was accepted and no VMI ran after it".into(),
        );
    }
    for (rv, uid) in stops_waiting {
        violation(
            &mut report,
            rv,
            format!("the stop was accepted and VMI {uid} was never deleted"),
        );
    }
    for (verb, written, answered) in [
        ("start", report.written.start, accepted.start),
        ("stop", report.written.stop, accepted.stop),
        ("restart", report.written.restart, accepted.restart),
    ] {
        if written != answered {
            report.violations.push(format!(
                "{answered} {verb}s were accepted and {written} were written"
            ));
        }
    }
    if !queue.is_empty() {
        report
            .violations
            .push(format!("at the end the queue still holds {queue:?}"));
    }
    match (strategy.as_str(), &current) {
        ("Always", Some(v)) if v.phase == "Running" && !v.deleting => {}
        ("Halted", None) => {}
        (s, v) => report.violations.push(format!(
            "at the end the VM is {s} with VMI {:?}",
            v.as_ref().map(|v| (&v.uid, &v.phase, v.deleting))
        )),
    }
    report
}

/// One change of the queue: a restart's write, the controller popping its head, or a stop
/// dropping the Starts.
#[allow(clippy::too_many_arguments)]
fn queue_change(
    report: &mut Report,
    rv: u64,
    (strategy, old, new): (&str, &[Req], &[Req]),
    current: Option<&Vmi>,
    created_at: &BTreeMap<String, u64>,
    restarts: &mut Vec<QueuedRestart>,
    dropped: &mut Vec<Dropped>,
    tokens: &mut Vec<(u64, String)>,
) {
    let mut violation = |what: String| report.violations.push(format!("at rv {rv}: {what}"));
    if let ([], [Req::Stop(uid), Req::Start]) = (old, new) {
        report.written.restart += 1;
        if strategy != "Always" {
            violation(format!("a restart landed on a {strategy} VM"));
        }
        match current {
            Some(v) if v.uid == *uid => tokens.push((rv, format!("restart of {uid}"))),
            _ if created_at.contains_key(uid) => report.coalesced_restarts += 1,
            _ => violation(format!("a restart named VMI {uid}, which the VM never had")),
        }
        restarts.push(QueuedRestart {
            rv,
            uid: uid.clone(),
            uid_created: created_at.get(uid).copied(),
        });
        return;
    }
    let popped = !old.is_empty() && new == &old[1..];
    let without_starts: Vec<Req> = old.iter().filter(|r| **r != Req::Start).cloned().collect();
    if !popped && new != without_starts.as_slice() {
        violation(format!("the queue went {old:?} → {new:?}"));
        return;
    }
    // A Stop left: its VMI must be gone.
    for gone in old.iter().filter(|r| matches!(r, Req::Stop(_))) {
        let Req::Stop(uid) = gone else { continue };
        let still_queued = new.iter().any(|r| r == gone);
        if !still_queued && current.is_some_and(|v| v.uid == *uid) {
            violation(format!(
                "Stop{{{uid}}} left the queue while that VMI still existed"
            ));
        }
    }
    // A Start left: a VMI newer than the restart's must exist, or a stop dropped it.
    if old.contains(&Req::Start) && !new.contains(&Req::Start) {
        let Some(restart) = (!restarts.is_empty()).then(|| restarts.remove(0)) else {
            violation("a Start that no restart queued left the queue".into());
            return;
        };
        let replaced = current.is_some_and(|v| {
            v.uid != restart.uid && restart.uid_created.is_none_or(|c| v.created > c)
        });
        if !replaced {
            if !popped || new.is_empty() {
                dropped.push(Dropped {
                    rv,
                    restart_rv: restart.rv,
                });
                report.overridden += 1;
            } else {
                violation(format!(
                    "the Start of the restart at rv {} was popped while VMI {} was not replaced",
                    restart.rv, restart.uid
                ));
            }
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

    fn check_from_running(history: &[Seen], accepted: Accepted) -> Report {
        check(
            ("Always", vec![]),
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
        let report = check_from_running(&history, accepted(1, 1, 2));
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
        let report = check_from_running(&history, accepted(0, 1, 1));
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
        let report = check_from_running(&history, accepted(0, 0, 2));
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
        let report = check_from_running(&history, accepted(1, 1, 1));
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
        let report = check_from_running(&history, accepted(1, 1, 1));
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
            let report = check_from_running(&history, accepted);
            assert!(
                report.violations.iter().any(|v| v == want),
                "{what}: {:#?}",
                report.violations
            );
        }
    }
}
