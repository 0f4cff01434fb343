//! Run strategies, and the small facts about VMs and VMIs that every rule needs.

use std::fmt;

use crate::types::{Condition, VirtualMachine, VirtualMachineInstance};

/// What a VM does about its VMI (Part B §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStrategy {
    Always,
    Halted,
    Manual,
    RerunOnFailure,
    Once,
    WaitAsReceiver,
}

impl RunStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStrategy::Always => "Always",
            RunStrategy::Halted => "Halted",
            RunStrategy::Manual => "Manual",
            RunStrategy::RerunOnFailure => "RerunOnFailure",
            RunStrategy::Once => "Once",
            RunStrategy::WaitAsReceiver => "WaitAsReceiver",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Always" => RunStrategy::Always,
            "Halted" => RunStrategy::Halted,
            "Manual" => RunStrategy::Manual,
            "RerunOnFailure" => RunStrategy::RerunOnFailure,
            "Once" => RunStrategy::Once,
            "WaitAsReceiver" => RunStrategy::WaitAsReceiver,
            _ => return None,
        })
    }
}

impl fmt::Display for RunStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a VM has no effective run strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunStrategyError {
    #[error("running and runstrategy are mutually exclusive")]
    MutuallyExclusive,
    #[error("unknown runstrategy: {0}")]
    Unknown(String),
}

/// The effective run strategy: `running` maps to Always/Halted, `runStrategy` is taken as is,
/// neither means Halted, both is an error (Part B §1.2).
pub fn effective(vm: &VirtualMachine) -> Result<RunStrategy, RunStrategyError> {
    match (vm.spec.running, vm.spec.run_strategy.as_deref()) {
        (Some(_), Some(_)) => Err(RunStrategyError::MutuallyExclusive),
        (Some(true), None) => Ok(RunStrategy::Always),
        (Some(false), None) | (None, None) => Ok(RunStrategy::Halted),
        (None, Some(s)) => RunStrategy::parse(s).ok_or_else(|| RunStrategyError::Unknown(s.into())),
    }
}

/// `Succeeded` or `Failed`.
pub fn is_final(vmi: &VirtualMachineInstance) -> bool {
    matches!(vmi.phase(), "Succeeded" | "Failed")
}

pub fn is_deleting(vmi: &VirtualMachineInstance) -> bool {
    vmi.metadata.deletion_timestamp.is_some()
}

/// Exists, is not final, and its phase is neither `Unknown` nor unset (Part B §2.6).
pub fn is_active(vmi: Option<&VirtualMachineInstance>) -> bool {
    vmi.is_some_and(|v| !is_final(v) && !matches!(v.phase(), "" | "Unknown"))
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn has_true_condition(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "True")
}

pub fn vm_conditions(vm: &VirtualMachine) -> &[Condition] {
    vm.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[])
}

pub fn vmi_conditions(vmi: &VirtualMachineInstance) -> &[Condition] {
    vmi.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::VirtualMachineSpec;

    fn vm(running: Option<bool>, strategy: Option<&str>) -> VirtualMachine {
        VirtualMachine::new(
            "vm1",
            VirtualMachineSpec {
                running,
                run_strategy: strategy.map(str::to_string),
                ..Default::default()
            },
        )
    }

    #[test]
    fn effective_strategy_follows_running_and_run_strategy() {
        assert_eq!(effective(&vm(Some(true), None)), Ok(RunStrategy::Always));
        assert_eq!(effective(&vm(Some(false), None)), Ok(RunStrategy::Halted));
        assert_eq!(effective(&vm(None, None)), Ok(RunStrategy::Halted));
        assert_eq!(
            effective(&vm(None, Some("Manual"))),
            Ok(RunStrategy::Manual)
        );
        assert_eq!(
            effective(&vm(Some(true), Some("Always"))),
            Err(RunStrategyError::MutuallyExclusive)
        );
        assert_eq!(
            effective(&vm(None, Some("Sometimes")))
                .unwrap_err()
                .to_string(),
            "unknown runstrategy: Sometimes"
        );
    }
}
