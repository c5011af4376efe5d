//! The alarm engine: rules and alarm state machines (`core`, pure) and the task that feeds it.

pub mod core;
pub mod rules;
pub mod task;
#[cfg(test)]
mod tests;
pub mod trends;

pub use self::core::{
    ActionError, Alarm, AlarmId, AlarmKind, AlarmSource, AlarmTransition, Change, DaemonCondition,
    DeviceSpec, DeviceState, Engine,
};
pub use rules::{
    BpSchedule, Clause, Comparison, Confirmation, Escalation, Limit, Measure, PhaseSet, Priority,
    RateThreshold, Rule, RuleSet, TechnicalCondition, TechnicalRule,
};
pub use task::{CommandError, DeviceInfo, EngineHandle, EngineTask, Watchdog};
