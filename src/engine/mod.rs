//! The alarm engine: rules and alarm state machines (`core`, pure) and the task that feeds it.

pub mod core;
pub mod rules;
#[cfg(test)]
mod tests;

pub use self::core::{
    Alarm, AlarmId, AlarmKind, AlarmSource, AlarmTransition, Change, DeviceSpec, DeviceState,
    Engine, TechnicalCondition,
};
pub use rules::{Clause, Comparison, Confirmation, PhaseSet, Priority, Rule};
pub mod task;

pub use task::{CommandError, DeviceInfo, EngineHandle, EngineTask};
