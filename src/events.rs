//! What the engine publishes to its sinks (event stream, and later recorder and forwarder),
//! and the views of session and status that the API returns. All times here are UTC.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::engine::{
    Alarm, Change, Clause, Comparison, Escalation, Limit, Measure, Priority, RuleSet,
    TechnicalCondition,
};
use crate::vitals::{DeviceId, LinkState, Mono, Phase, Quality, Reading, Session, Vital};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Reading(ReadingView),
    // Boxed: alarm events are rare and large; readings are frequent and small.
    Alarm(Box<AlarmEvent>),
    Session(SessionEvent),
    Link(LinkEvent),
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Reading(_) => "reading",
            Event::Alarm(_) => "alarm",
            Event::Session(_) => "session",
            Event::Link(_) => "link",
        }
    }
}

/// An event as the engine publishes it to every subscriber, with its JSON made once for all of
/// them: fifty event-stream clients need not serialise the same event fifty times.
#[derive(Debug)]
pub struct Published {
    event: Event,
    /// Boxed: exactly its length, no spare capacity, as it is kept in the broadcast's backlog
    /// as long as the event.
    json: OnceLock<Result<Box<str>, String>>,
}

impl Published {
    pub fn new(event: Event) -> Self {
        Published {
            event,
            json: OnceLock::new(),
        }
    }

    /// The event as JSON (made at the first call), or why it cannot be.
    pub fn json(&self) -> Result<&str, &str> {
        self.json
            .get_or_init(|| {
                serde_json::to_string(&self.event)
                    .map(String::into_boxed_str)
                    .map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(String::as_str)
    }
}

impl Deref for Published {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// A reading as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadingView {
    pub device: DeviceId,
    pub vital: Vital,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub quality: Quality,
    pub device_time: Option<DateTime<Utc>>,
    pub time: DateTime<Utc>,
    /// Seconds since it was received (in status views only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
}

impl ReadingView {
    pub fn of(reading: &Reading, age_s: Option<f64>) -> Self {
        ReadingView {
            device: reading.device.clone(),
            vital: reading.vital,
            value: reading.value,
            unit: reading.vital.unit(),
            quality: reading.quality,
            device_time: reading.device_time,
            time: reading.received_utc,
            age_s,
        }
    }
}

/// An alarm as the API shows it: the engine's alarm with its times in UTC and whether it
/// sounds now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmView {
    #[serde(flatten)]
    pub alarm: Alarm,
    pub raised: DateTime<Utc>,
    /// Whether it should sound now (not acknowledged, no audio pause running).
    pub audible: bool,
    pub audio_paused_until: Option<DateTime<Utc>>,
    pub audio_pause_remaining_s: Option<f64>,
}

impl AlarmView {
    pub fn of(alarm: &Alarm, clock: &Clock, now: Mono) -> Self {
        AlarmView {
            alarm: alarm.clone(),
            raised: clock.utc_at(alarm.raised_at),
            audible: alarm.is_audible(now),
            audio_paused_until: alarm.audio_paused_until.map(|until| clock.utc_at(until)),
            audio_pause_remaining_s: alarm
                .audio_paused_until
                .map(|until| until.saturating_since(now).as_secs_f64()),
        }
    }
}

/// One alarm transition: what changed, the alarm after the change, and when.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmEvent {
    #[serde(flatten)]
    pub change: Change,
    pub alarm: AlarmView,
    pub time: DateTime<Utc>,
}

/// A session started, changed phase or got a note, and who did it (the nurse token's name).
#[derive(Debug, Clone, Serialize)]
pub struct SessionEvent {
    #[serde(flatten)]
    pub session: SessionView,
    pub change: SessionChange,
    /// The note's text (`change: note` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub by: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionChange {
    Started,
    Phase,
    Note,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub id: String,
    pub phase: Phase,
    pub started: DateTime<Utc>,
    pub phase_since: DateTime<Utc>,
    pub seconds_in_phase: f64,
    pub infusion_started: Option<DateTime<Utc>>,
    /// When the infusion stopped (recovery began, or the session ended during it).
    pub infusion_stopped: Option<DateTime<Utc>>,
    /// Per vital, the median of the baseline phase's readings (known once that phase ends):
    /// what baseline-relative rules compare with.
    pub baseline: BTreeMap<Vital, f64>,
}

impl SessionView {
    pub fn of(session: &Session, seconds_in_phase: f64, baseline: BTreeMap<Vital, f64>) -> Self {
        SessionView {
            id: session.id.to_string(),
            phase: session.phase,
            started: session.started_utc,
            phase_since: session.phase_since_utc,
            seconds_in_phase,
            infusion_started: session.infusion_started_utc,
            infusion_stopped: session.infusion_stopped_utc,
            baseline,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkEvent {
    pub device: DeviceId,
    pub state: LinkState,
    pub detail: Option<String>,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub id: DeviceId,
    pub profile: String,
    /// The vitals it reports.
    pub vitals: Vec<Vital>,
    /// How often it is expected to report (a cuff: its measurement interval).
    pub interval_s: f64,
    /// After this long without any message its silence is a technical alarm; `null` for an
    /// intermittent device (a cuff), whose silence is BP overdue instead.
    pub silent_after_s: Option<f64>,
    /// A reading older than this is stale: shown greyed with its age, never as current. The
    /// interval plus a grace of a tenth of it, at least 2 s.
    pub stale_after_s: f64,
    pub link: LinkState,
    pub link_detail: Option<String>,
    /// Seconds since anything was heard from it; `None` if never.
    pub last_heard_age_s: Option<f64>,
    pub ring_dropped: u64,
    /// Bytes from the device that failed to decode, counted per error, since start.
    pub decode_errors: u64,
    pub readings: BTreeMap<Vital, ReadingView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub time: DateTime<Utc>,
    /// The daemon clock's speed: 1 in production; more in demos and tests.
    pub clock_speed: f64,
    pub session: Option<SessionView>,
    pub devices: Vec<DeviceView>,
    /// Active alarms, highest priority first, then oldest first.
    pub alarms: Vec<AlarmView>,
}

/// The alarm configuration as the panel needs it: every rule's limits (to draw them on the
/// trends), the cuff schedule, how long an audio pause lasts. Fixed for the daemon's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesView {
    pub audio_pause_s: f64,
    /// Expected time between cuff measurements in each phase.
    pub bp_schedule: BpScheduleView,
    pub rules: Vec<RuleView>,
    pub technical: Vec<TechnicalRuleView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BpScheduleView {
    pub baseline_s: f64,
    pub infusion_s: f64,
    pub recovery_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub priority: Priority,
    /// Any of these holding for `delay_s` raises the alarm.
    pub when: Vec<ClauseView>,
    pub delay_s: f64,
    pub hysteresis: f64,
    pub armed: Vec<Phase>,
    pub confirm: Option<ConfirmView>,
    pub escalate: Option<EscalateView>,
    pub advice: Option<String>,
}

/// One condition: `vital` (its value, or how far it fell or rose `within_s`) compared with
/// `limit` (in the vital's unit) or with the session's baseline moved by `baseline_percent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClauseView {
    pub vital: Vital,
    /// `value`, `fall` or `rise`.
    pub measure: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_s: Option<f64>,
    /// `below`, `at_or_below`, `above` or `at_or_above`.
    pub comparison: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_percent: Option<f64>,
    pub unit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfirmView {
    pub within_s: f64,
    pub priority: Priority,
    pub advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalateView {
    pub after_s: f64,
    pub priority: Priority,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TechnicalRuleView {
    pub condition: TechnicalCondition,
    pub message: &'static str,
    pub priority: Priority,
    pub delay_s: f64,
    pub escalate: Option<EscalateView>,
}

impl EscalateView {
    fn of(escalation: &Escalation) -> Self {
        EscalateView {
            after_s: escalation.after.as_secs_f64(),
            priority: escalation.priority,
            phases: escalation.phases.iter().collect(),
        }
    }
}

impl ClauseView {
    fn of(clause: &Clause) -> Self {
        let (measure, within_s) = match clause.measure {
            Measure::Value => ("value", None),
            Measure::FallWithin(window) => ("fall", Some(window.as_secs_f64())),
            Measure::RiseWithin(window) => ("rise", Some(window.as_secs_f64())),
        };
        let (limit, baseline_percent) = match clause.limit {
            Limit::Absolute(limit) => (Some(limit), None),
            Limit::BaselinePercent(percent) => (None, Some(percent)),
        };
        ClauseView {
            vital: clause.vital,
            measure,
            within_s,
            comparison: match clause.comparison {
                Comparison::Below => "below",
                Comparison::AtOrBelow => "at_or_below",
                Comparison::Above => "above",
                Comparison::AtOrAbove => "at_or_above",
            },
            limit,
            baseline_percent,
            unit: clause.vital.unit(),
        }
    }
}

impl RulesView {
    pub fn of(rules: &RuleSet) -> Self {
        RulesView {
            audio_pause_s: rules.audio_pause.as_secs_f64(),
            bp_schedule: BpScheduleView {
                baseline_s: rules.bp_schedule.baseline.as_secs_f64(),
                infusion_s: rules.bp_schedule.infusion.as_secs_f64(),
                recovery_s: rules.bp_schedule.recovery.as_secs_f64(),
            },
            rules: rules
                .rules
                .iter()
                .map(|rule| RuleView {
                    id: rule.id.to_string(),
                    name: rule.name.clone(),
                    priority: rule.priority,
                    when: rule.clauses.iter().map(ClauseView::of).collect(),
                    delay_s: rule.delay.as_secs_f64(),
                    hysteresis: rule.hysteresis,
                    armed: rule.armed.iter().collect(),
                    confirm: rule.confirmation.as_ref().map(|c| ConfirmView {
                        within_s: c.within.as_secs_f64(),
                        priority: c.priority,
                        advice: c.advice.clone(),
                    }),
                    escalate: rule.escalation.as_ref().map(EscalateView::of),
                    advice: rule.advice.clone(),
                })
                .collect(),
            technical: TechnicalCondition::ALL
                .into_iter()
                .map(|condition| {
                    let rule = rules.technical(condition);
                    TechnicalRuleView {
                        condition,
                        message: condition.message(),
                        priority: rule.priority,
                        delay_s: rule.delay.as_secs_f64(),
                        escalate: rule.escalation.as_ref().map(EscalateView::of),
                    }
                })
                .collect(),
        }
    }
}

/// The last `window_s` of every vital of every device, for the panel's trend charts: at most
/// one point per second per series, `[unix time in ms, value]`, the value `null` where the
/// reading was flagged or had none (a gap in the line).
#[derive(Debug, Clone, Serialize)]
pub struct TrendsView {
    pub time: DateTime<Utc>,
    pub window_s: f64,
    pub series: Vec<TrendSeries>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrendSeries {
    pub device: DeviceId,
    pub vital: Vital,
    pub points: Vec<(i64, Option<f64>)>,
}

/// What the event stream's `heartbeat` says each second: the daemon is up and its engine is
/// running, and what its clock reads (the panel times readings' ages with it).
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeat {
    pub time: DateTime<Utc>,
    pub clock_speed: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_event_is_serialised_once_as_the_event_itself_would_be() {
        let event = Event::Link(LinkEvent {
            device: DeviceId::new("ox1"),
            state: LinkState::Lost,
            detail: Some("unplugged".into()),
            time: DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap(),
        });
        let published = Published::new(event.clone());
        let first = published.json().unwrap();
        assert_eq!(first, serde_json::to_string(&event).unwrap());
        assert!(
            std::ptr::eq(first, published.json().unwrap()),
            "made once, then shared"
        );
        assert_eq!(published.name(), "link");
    }
}
