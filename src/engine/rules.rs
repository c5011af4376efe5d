//! Alarm rules as the engine evaluates them (already validated; see `config::rules` for the file
//! format and its checks).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vitals::{Phase, Vital};

/// IEC 60601-1-8 alarm priority. Ordered: `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Low, Priority::Medium, Priority::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a value is compared with a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Below,
    AtOrBelow,
    Above,
    AtOrAbove,
}

impl Comparison {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::AtOrBelow => "≤",
            Comparison::Above => ">",
            Comparison::AtOrAbove => "≥",
        }
    }

    fn is_low_limit(self) -> bool {
        matches!(self, Comparison::Below | Comparison::AtOrBelow)
    }
}

/// What of a vital a clause looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// The reading's value.
    Value,
    /// How far the value fell within the window: the highest value in it minus this one.
    FallWithin(Duration),
    /// How far the value rose within the window: this one minus the lowest value in it.
    RiseWithin(Duration),
}

/// What a clause compares with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Absolute(f64),
    /// Relative to the session's baseline (the median of the baseline phase's readings):
    /// `baseline × (1 + percent / 100)`. Unknown until the session has a baseline.
    BaselinePercent(f64),
}

/// One comparison on one vital, for example `SpO2 < 90`, `SBP > baseline + 30 %` or
/// `SpO2 fell ≥ 4 within 60 s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub vital: Vital,
    pub measure: Measure,
    pub comparison: Comparison,
    pub limit: Limit,
}

impl Clause {
    /// A plain threshold on the value.
    pub fn threshold(vital: Vital, comparison: Comparison, limit: f64) -> Self {
        Clause {
            vital,
            measure: Measure::Value,
            comparison,
            limit: Limit::Absolute(limit),
        }
    }

    /// The limit in the vital's unit, given the session's baseline of the vital.
    pub fn resolve_limit(&self, baseline: Option<f64>) -> Option<f64> {
        match self.limit {
            Limit::Absolute(limit) => Some(limit),
            Limit::BaselinePercent(percent) => baseline.map(|b| b * (1.0 + percent / 100.0)),
        }
    }

    /// The window a rate clause needs to remember, if it is one.
    pub fn window(&self) -> Option<Duration> {
        match self.measure {
            Measure::Value => None,
            Measure::FallWithin(window) | Measure::RiseWithin(window) => Some(window),
        }
    }

    /// The alarm condition holds for `value` (already measured) against `limit`.
    pub fn is_met(&self, value: f64, limit: f64) -> bool {
        match self.comparison {
            Comparison::Below => value < limit,
            Comparison::AtOrBelow => value <= limit,
            Comparison::Above => value > limit,
            Comparison::AtOrAbove => value >= limit,
        }
    }

    /// The value is back on the safe side of the limit by at least `hysteresis`, so an active
    /// alarm may end. With zero hysteresis this is just "not met".
    pub fn is_cleared(&self, value: f64, limit: f64, hysteresis: f64) -> bool {
        if hysteresis <= 0.0 {
            return !self.is_met(value, limit);
        }
        if self.comparison.is_low_limit() {
            value >= limit + hysteresis
        } else {
            value <= limit - hysteresis
        }
    }

    /// Whether this clause is a plain low (or high) limit on the value, for consistency checks.
    pub fn absolute_value_limit(&self) -> Option<(bool, f64)> {
        match (self.measure, self.limit) {
            (Measure::Value, Limit::Absolute(limit)) => {
                Some((self.comparison.is_low_limit(), limit))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.vital.unit();
        match self.measure {
            Measure::Value => write!(f, "{}", self.vital)?,
            Measure::FallWithin(w) => {
                write!(f, "{} fall within {} s", self.vital, w.as_secs_f64())?
            }
            Measure::RiseWithin(w) => {
                write!(f, "{} rise within {} s", self.vital, w.as_secs_f64())?
            }
        }
        write!(f, " {} ", self.comparison.symbol())?;
        match self.limit {
            Limit::Absolute(limit) => write!(f, "{limit} {unit}"),
            Limit::BaselinePercent(percent) => write!(f, "baseline {percent:+} %"),
        }
    }
}

/// An alarm that persists unacknowledged rises to `priority` after `after`, while the session
/// is in one of `phases`.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub after: Duration,
    pub priority: Priority,
    pub phases: PhaseSet,
}

/// The set of session phases in which a rule is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhaseSet(u8);

impl PhaseSet {
    /// Baseline, infusion and recovery: the whole of an active session.
    pub const WHOLE_SESSION: PhaseSet = PhaseSet(0b0111);

    pub fn of(phases: &[Phase]) -> Self {
        PhaseSet(phases.iter().fold(0, |bits, p| bits | Self::bit(*p)))
    }
    fn bit(phase: Phase) -> u8 {
        1 << phase as u8
    }
    pub fn contains(self, phase: Phase) -> bool {
        self.0 & Self::bit(phase) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Phase> {
        Phase::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

/// For intermittent vitals (a cuff every few minutes): a crossing confirmed by the next
/// measurement within `within` rises to `priority`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    pub within: Duration,
    pub priority: Priority,
    /// Advice that comes with the confirmed alarm while the infusion runs.
    pub advice: Option<String>,
}

/// A physiological alarm rule: any of its clauses held for `delay` raises an alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Arc<str>,
    pub name: String,
    pub priority: Priority,
    /// The condition holds when any clause is met (for example SBP ≥ 180 or DBP ≥ 110).
    pub clauses: Vec<Clause>,
    /// How long the condition must hold before the alarm is raised.
    pub delay: Duration,
    /// How far back past the limit a value must go before an active alarm ends.
    pub hysteresis: f64,
    pub armed: PhaseSet,
    pub confirmation: Option<Confirmation>,
    pub escalation: Option<Escalation>,
    /// Advice that comes with the alarm while the infusion runs.
    pub advice: Option<String>,
}

/// The technical conditions the engine watches for each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnicalCondition {
    /// A continuous device (an oximeter) sent nothing for its silence limit.
    DeviceSilent,
    /// The transport lost the port or link.
    DeviceDisconnected,
    /// Readings flagged sensor off or searching.
    SensorOff,
    /// Readings flagged artefact or low perfusion.
    PoorSignal,
    /// No cuff measurement within the phase's interval (plus the rule's delay).
    BpOverdue,
    /// The device's ring buffer was full and readings were dropped.
    RingOverflow,
    /// The device's bytes failed to decode more often than the rule's threshold.
    DecodeErrors,
    /// The session recorder cannot write (disk full, database locked or corrupt). The
    /// daemon's own condition, not a device's.
    RecordingFailure,
    /// Alarms cannot be forwarded to the clinic's Alertmanager (it is down or unreachable):
    /// the central station does not see this chair's alarms. The daemon's own condition.
    ForwardingFailure,
}

impl TechnicalCondition {
    pub const ALL: [TechnicalCondition; 9] = [
        TechnicalCondition::DeviceSilent,
        TechnicalCondition::DeviceDisconnected,
        TechnicalCondition::SensorOff,
        TechnicalCondition::PoorSignal,
        TechnicalCondition::BpOverdue,
        TechnicalCondition::RingOverflow,
        TechnicalCondition::DecodeErrors,
        TechnicalCondition::RecordingFailure,
        TechnicalCondition::ForwardingFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TechnicalCondition::DeviceSilent => "device_silent",
            TechnicalCondition::DeviceDisconnected => "device_disconnected",
            TechnicalCondition::SensorOff => "sensor_off",
            TechnicalCondition::PoorSignal => "poor_signal",
            TechnicalCondition::BpOverdue => "bp_overdue",
            TechnicalCondition::RingOverflow => "ring_overflow",
            TechnicalCondition::DecodeErrors => "decode_errors",
            TechnicalCondition::RecordingFailure => "recording_failure",
            TechnicalCondition::ForwardingFailure => "forwarding_failure",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// What a nurse reads.
    pub fn message(self) -> &'static str {
        match self {
            TechnicalCondition::DeviceSilent => "no data from the device",
            TechnicalCondition::DeviceDisconnected => "device disconnected",
            TechnicalCondition::SensorOff => "sensor off or searching",
            TechnicalCondition::PoorSignal => "poor signal: artefact or low perfusion",
            TechnicalCondition::BpOverdue => "blood pressure overdue: no cuff reading in time",
            TechnicalCondition::RingOverflow => "readings dropped: ring buffer full",
            TechnicalCondition::DecodeErrors => "garbled data: decode errors above the limit",
            TechnicalCondition::RecordingFailure => "recording stopped: vitals are not being saved",
            TechnicalCondition::ForwardingFailure => {
                "alarms not reaching the central station (Alertmanager)"
            }
        }
    }
}

/// How a technical condition alarms.
#[derive(Debug, Clone, PartialEq)]
pub struct TechnicalRule {
    pub priority: Priority,
    /// How long the condition lasts before the alarm (for BP overdue: the grace after the
    /// phase's cuff interval).
    pub delay: Duration,
    pub escalation: Option<Escalation>,
    /// For conditions counted as a rate (decode errors): how many within how long.
    pub threshold: Option<RateThreshold>,
}

/// `count` events within `within` make a rate condition hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateThreshold {
    pub count: u32,
    pub within: Duration,
}

/// The expected time between cuff measurements in each phase.
#[derive(Debug, Clone, PartialEq)]
pub struct BpSchedule {
    pub baseline: Duration,
    pub infusion: Duration,
    pub recovery: Duration,
}

impl BpSchedule {
    pub fn interval(&self, phase: Phase) -> Option<Duration> {
        match phase {
            Phase::Baseline => Some(self.baseline),
            Phase::Infusion => Some(self.infusion),
            Phase::Recovery => Some(self.recovery),
            Phase::Ended => None,
        }
    }
}

/// Everything the engine needs to know about alarms: the physiological rules, how each
/// technical condition alarms, how long an audio pause lasts, and the cuff schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Indexed by `TechnicalCondition::index`.
    pub technical: Vec<TechnicalRule>,
    pub audio_pause: Duration,
    pub bp_schedule: BpSchedule,
}

impl RuleSet {
    pub fn technical(&self, condition: TechnicalCondition) -> &TechnicalRule {
        &self.technical[condition.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_widens_only_the_way_out() {
        let low = Clause::threshold(Vital::Spo2, Comparison::Below, 90.0);
        assert!(low.is_met(89.9, 90.0));
        assert!(!low.is_met(90.0, 90.0));
        assert!(!low.is_cleared(90.5, 90.0, 1.0));
        assert!(low.is_cleared(91.0, 90.0, 1.0));
        assert!(low.is_cleared(90.0, 90.0, 0.0));

        let high = Clause::threshold(Vital::Systolic, Comparison::AtOrAbove, 180.0);
        assert!(high.is_met(180.0, 180.0));
        assert!(!high.is_cleared(176.0, 180.0, 5.0));
        assert!(high.is_cleared(175.0, 180.0, 5.0));
    }

    #[test]
    fn baseline_limits_resolve_only_with_a_baseline() {
        let rise = Clause {
            vital: Vital::Systolic,
            measure: Measure::Value,
            comparison: Comparison::Above,
            limit: Limit::BaselinePercent(30.0),
        };
        assert_eq!(rise.resolve_limit(None), None);
        assert_eq!(rise.resolve_limit(Some(120.0)), Some(156.0));
        assert_eq!(rise.to_string(), "systolic > baseline +30 %");
        assert_eq!(rise.absolute_value_limit(), None);
    }

    #[test]
    fn phase_sets() {
        let set = PhaseSet::of(&[Phase::Infusion, Phase::Recovery]);
        assert!(set.contains(Phase::Infusion));
        assert!(!set.contains(Phase::Baseline));
        assert!(!PhaseSet::WHOLE_SESSION.contains(Phase::Ended));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Phase::Infusion, Phase::Recovery]
        );
    }
}
