//! The domain's state from what QMP and the QEMU process tell, and how the launcher ends: pure.

use virt_reconciler::launcher_api::DomainState;

pub const PAUSED_BY_USER: &str = "Paused by user";

/// The state for a QMP `query-status` answer (`running`, `paused`, ...).
pub fn state_of_run_status(status: &str, paused_by_user: bool) -> (DomainState, Option<String>) {
    match status {
        "running" => (DomainState::Running, None),
        // prelaunch: started stopped (`-S`, startStrategy Paused), which counts as the user's.
        "paused" | "prelaunch" if paused_by_user => {
            (DomainState::Paused, Some(PAUSED_BY_USER.into()))
        }
        "guest-panicked" | "internal-error" => (DomainState::Crashed, Some(status.into())),
        "shutdown" => (DomainState::Shutdown, Some(status.into())),
        // prelaunch, inmigrate, io-error, watchdog, debug, ...: not running, for a reason.
        other => (DomainState::Paused, Some(other.into())),
    }
}

/// Why the launcher killed QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillCause {
    /// The `kill` request.
    Requested,
    /// The guest did not power off within the shutdown's grace period.
    GraceExpired,
}

/// What was seen before QEMU exited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// A QMP SHUTDOWN event with `guest: true`: the guest powered itself off.
    pub guest_powered_off: bool,
    /// A QMP GUEST_PANICKED event.
    pub guest_panicked: bool,
    pub killed: Option<KillCause>,
}

/// How QEMU's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    Code(i32),
    Signal(i32),
}

/// The final state, its reason and the launcher's exit code.
pub fn ending(observed: Observed, end: ProcessEnd) -> (DomainState, String, i32) {
    if observed.guest_panicked {
        return (DomainState::Crashed, "guest panicked".into(), 1);
    }
    match observed.killed {
        Some(KillCause::Requested) => return (DomainState::Shutoff, "killed".into(), 1),
        Some(KillCause::GraceExpired) => {
            return (
                DomainState::Shutoff,
                "killed after the shutdown grace period".into(),
                1,
            );
        }
        None => {}
    }
    match end {
        ProcessEnd::Code(0) if observed.guest_powered_off => {
            (DomainState::Shutoff, "guest powered off".into(), 0)
        }
        ProcessEnd::Code(code) => (
            DomainState::Crashed,
            format!("QEMU exited with status {code}"),
            1,
        ),
        ProcessEnd::Signal(signal) => (
            DomainState::Crashed,
            format!("QEMU was killed by signal {signal}"),
            1,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_statuses_map_to_states() {
        let cases = [
            ("running", false, DomainState::Running, None),
            ("paused", true, DomainState::Paused, Some(PAUSED_BY_USER)),
            ("paused", false, DomainState::Paused, Some("paused")),
            ("prelaunch", true, DomainState::Paused, Some(PAUSED_BY_USER)),
            ("io-error", false, DomainState::Paused, Some("io-error")),
            (
                "guest-panicked",
                false,
                DomainState::Crashed,
                Some("guest-panicked"),
            ),
            ("shutdown", false, DomainState::Shutdown, Some("shutdown")),
        ];
        for (status, by_user, state, reason) in cases {
            assert_eq!(
                state_of_run_status(status, by_user),
                (state, reason.map(String::from)),
                "{status}"
            );
        }
    }

    #[test]
    fn endings_decide_state_and_exit_code() {
        let powered_off = Observed {
            guest_powered_off: true,
            ..Default::default()
        };
        let panicked = Observed {
            guest_panicked: true,
            ..Default::default()
        };
        let killed = |cause| Observed {
            killed: Some(cause),
            ..Default::default()
        };
        let cases = [
            (
                powered_off,
                ProcessEnd::Code(0),
                DomainState::Shutoff,
                "guest powered off",
                0,
            ),
            (
                panicked,
                ProcessEnd::Code(1),
                DomainState::Crashed,
                "guest panicked",
                1,
            ),
            (
                killed(KillCause::Requested),
                ProcessEnd::Signal(9),
                DomainState::Shutoff,
                "killed",
                1,
            ),
            (
                killed(KillCause::GraceExpired),
                ProcessEnd::Signal(9),
                DomainState::Shutoff,
                "killed after the shutdown grace period",
                1,
            ),
            (
                Observed::default(),
                ProcessEnd::Code(0),
                DomainState::Crashed,
                "QEMU exited with status 0",
                1,
            ),
            (
                Observed::default(),
                ProcessEnd::Code(1),
                DomainState::Crashed,
                "QEMU exited with status 1",
                1,
            ),
            (
                powered_off,
                ProcessEnd::Code(1),
                DomainState::Crashed,
                "QEMU exited with status 1",
                1,
            ),
            (
                Observed::default(),
                ProcessEnd::Signal(11),
                DomainState::Crashed,
                "QEMU was killed by signal 11",
                1,
            ),
        ];
        for (observed, end, state, reason, code) in cases {
            assert_eq!(
                ending(observed, end),
                (state, reason.to_string(), code),
                "{observed:?} {end:?}"
            );
        }
    }
}
