//! What the engine publishes to its sinks (event stream, and later recorder and forwarder),
//! and the views of session and status that the API returns. All times here are UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::engine::{Alarm, Change};
use crate::vitals::{DeviceId, LinkState, Mono, Quality, Reading, Session, Vital};

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

/// A session started or changed phase, and who did it (the nurse token's name).
#[derive(Debug, Clone, Serialize)]
pub struct SessionEvent {
    #[serde(flatten)]
    pub session: SessionView,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub id: String,
    pub phase: crate::vitals::Phase,
    pub started: DateTime<Utc>,
    pub phase_since: DateTime<Utc>,
    pub seconds_in_phase: f64,
    pub infusion_started: Option<DateTime<Utc>>,
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
