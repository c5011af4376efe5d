//! What the recorder stores: one [`Record`] per thing that happened, with plain fields, so that
//! the sink that feeds the store converts engine events into them in one place.

use chrono::{DateTime, Utc};

use crate::engine::{AlarmKind, Priority};
use crate::vitals::{DeviceId, LinkState, Phase, Quality, Reading, SessionId, Vital};

/// One thing to record. Every record names its session: the store files it under the open
/// session with that id and refuses it (and its whole batch) when that session is not open.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A session began, in the baseline phase (recorded as its first phase).
    SessionStarted {
        session: SessionId,
        at: DateTime<Utc>,
        /// Who started it (the nurse token's name, or `local`).
        by: String,
    },
    /// The session moved to `phase` (baseline, infusion or recovery; its end is
    /// [`Record::SessionEnded`]).
    PhaseChanged {
        session: SessionId,
        phase: Phase,
        at: DateTime<Utc>,
        by: String,
    },
    Reading(ReadingRecord),
    /// An alarm transition (boxed: rare and large, where readings are frequent and small).
    Alarm(Box<AlarmRecord>),
    /// A clinician's note.
    Note {
        session: SessionId,
        text: String,
        by: String,
        at: DateTime<Utc>,
    },
    /// A device's link changed (connected, lost).
    Link {
        session: SessionId,
        device: DeviceId,
        state: LinkState,
        detail: Option<String>,
        at: DateTime<Utc>,
    },
    /// A stretch of the session with no record: the daemon was down, or recording failed.
    /// `why` says which, for the clinician reading the record ("daemon restarted",
    /// "recording failed: disk full").
    Gap {
        session: SessionId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        why: String,
    },
    /// The session ended (recorded as its `ended` phase).
    SessionEnded {
        session: SessionId,
        at: DateTime<Utc>,
        by: String,
    },
}

impl Record {
    /// When it happened (a gap: when it ended).
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Record::SessionStarted { at, .. }
            | Record::PhaseChanged { at, .. }
            | Record::Note { at, .. }
            | Record::Link { at, .. }
            | Record::SessionEnded { at, .. } => *at,
            Record::Gap { to, .. } => *to,
            Record::Reading(reading) => reading.received,
            Record::Alarm(alarm) => alarm.at,
        }
    }

    /// The session the record belongs to.
    pub fn session(&self) -> &SessionId {
        match self {
            Record::SessionStarted { session, .. }
            | Record::PhaseChanged { session, .. }
            | Record::Note { session, .. }
            | Record::Link { session, .. }
            | Record::Gap { session, .. }
            | Record::SessionEnded { session, .. } => session,
            Record::Reading(reading) => &reading.session,
            Record::Alarm(alarm) => &alarm.session,
        }
    }
}

/// One reading of one vital. Its unit is the vital's ([`Vital::unit`]), stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRecord {
    pub session: SessionId,
    pub device: DeviceId,
    pub vital: Vital,
    /// `None` when the device reported the vital as unavailable. A NaN is stored as NULL too
    /// (SQLite has no NaN), so it reads back as `None`.
    pub value: Option<f64>,
    pub quality: Quality,
    /// The device's own timestamp, when its protocol carries one.
    pub device_time: Option<DateTime<Utc>>,
    /// When the daemon received it.
    pub received: DateTime<Utc>,
}

impl ReadingRecord {
    /// The record of `reading`, taken during `session`.
    pub fn of(session: &SessionId, reading: &Reading) -> Self {
        ReadingRecord {
            session: session.clone(),
            device: reading.device.clone(),
            vital: reading.vital,
            value: reading.value,
            quality: reading.quality,
            device_time: reading.device_time,
            received: reading.received_utc,
        }
    }
}

/// One alarm transition, for the alarm log (IEC 60601-1-8 clause 6.12: every start, end,
/// escalation, acknowledgement, pause and reset, with its UTC time, kept across restarts).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecord {
    pub session: SessionId,
    pub at: DateTime<Utc>,
    /// The engine's alarm id. A run numbers its alarms after the highest recorded, but the
    /// store keeps the run with it anyway, so alarms of databases written before that (ids
    /// from 1 in every run) stay apart.
    pub alarm: u64,
    /// What happened, as on the event stream: `raised`, `escalated`, `condition_ended`,
    /// `condition_returned`, `acknowledged`, `audio_paused`, `audio_resumed`,
    /// `advice_changed`, `ended`. Free text on purpose: a change the engine learns later is
    /// still recorded.
    pub change: String,
    /// Who acknowledged or paused it (for those changes).
    pub by: Option<String>,
    pub kind: AlarmKind,
    /// The priority after the change.
    pub priority: Priority,
    /// The rule's name (physiological) or the technical condition (`device_silent`, ...).
    pub source: String,
    pub device: DeviceId,
    pub vital: Option<Vital>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
    pub advice: Option<String>,
    /// The whole event as published (JSON), kept verbatim for the record.
    pub json: String,
}
