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

/// One comparison of one vital with a limit, for example `SpO2 < 90`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub vital: Vital,
    pub comparison: Comparison,
    pub limit: f64,
}

impl Clause {
    /// The alarm condition holds for `value`.
    pub fn is_met(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Below => value < self.limit,
            Comparison::AtOrBelow => value <= self.limit,
            Comparison::Above => value > self.limit,
            Comparison::AtOrAbove => value >= self.limit,
        }
    }

    /// The value is back on the safe side of the limit by at least `hysteresis`, so an active
    /// alarm may end. With zero hysteresis this is just "not met".
    pub fn is_cleared(&self, value: f64, hysteresis: f64) -> bool {
        if hysteresis <= 0.0 {
            return !self.is_met(value);
        }
        if self.comparison.is_low_limit() {
            value >= self.limit + hysteresis
        } else {
            value <= self.limit - hysteresis
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.vital,
            self.comparison.symbol(),
            self.limit,
            self.vital.unit()
        )
    }
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
    /// Advice that comes with the alarm while the infusion runs.
    pub advice: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_widens_only_the_way_out() {
        let low = Clause {
            vital: Vital::Spo2,
            comparison: Comparison::Below,
            limit: 90.0,
        };
        assert!(low.is_met(89.9));
        assert!(!low.is_met(90.0));
        assert!(!low.is_cleared(90.5, 1.0));
        assert!(low.is_cleared(91.0, 1.0));
        assert!(low.is_cleared(90.0, 0.0));

        let high = Clause {
            vital: Vital::Systolic,
            comparison: Comparison::AtOrAbove,
            limit: 180.0,
        };
        assert!(high.is_met(180.0));
        assert!(!high.is_cleared(176.0, 5.0));
        assert!(high.is_cleared(175.0, 5.0));
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
