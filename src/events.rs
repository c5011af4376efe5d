//! What the engine publishes to its sinks (event stream, and later recorder and forwarder),
//! and the views of session and status that the API returns. All times here are UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::{Alarm, AlarmTransition};
use crate::vitals::{DeviceId, LinkState, Quality, Reading, Session, Vital};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Reading(ReadingView),
    Alarm(AlarmEvent),
    Session(SessionView),
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

#[derive(Debug, Clone, Serialize)]
pub struct AlarmEvent {
    #[serde(flatten)]
    pub transition: AlarmTransition,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub id: String,
    pub phase: crate::vitals::Phase,
    pub started: DateTime<Utc>,
    pub phase_since: DateTime<Utc>,
    pub seconds_in_phase: f64,
    pub infusion_started: Option<DateTime<Utc>>,
}

impl SessionView {
    pub fn of(session: &Session, seconds_in_phase: f64) -> Self {
        SessionView {
            id: session.id.to_string(),
            phase: session.phase,
            started: session.started_utc,
            phase_since: session.phase_since_utc,
            seconds_in_phase,
            infusion_started: session.infusion_started_utc,
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
    pub alarms: Vec<Alarm>,
}
