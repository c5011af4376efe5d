//! A session's alarms, each put together from its recorded transitions (raised, escalated,
//! acknowledged, ended...), for the exports that show one entry per alarm (the FHIR
//! `DetectedIssue`s, the report's alarm table).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::engine::{AlarmKind, Priority};
use crate::recorder::{EventDetail, StoredEvent};
use crate::vitals::{DeviceId, Vital};

/// One alarm, from its first transition to its last.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSummary {
    /// The daemon run and the engine's id: together they name one alarm.
    pub run: i64,
    pub alarm: u64,
    pub kind: AlarmKind,
    /// The rule (physiological) or the technical condition.
    pub source: String,
    pub device: DeviceId,
    pub vital: Option<Vital>,
    /// Its first transition (normally `raised`).
    pub raised: DateTime<Utc>,
    /// Its priority when raised.
    pub first_priority: Priority,
    /// The highest priority it reached, and when it first did.
    pub highest: Priority,
    pub highest_at: DateTime<Utc>,
    /// The first acknowledgement: when, and by whom.
    pub acknowledged: Option<(DateTime<Utc>, String)>,
    /// Audio pauses: when, and by whom.
    pub audio_paused: Vec<(DateTime<Utc>, String)>,
    /// When its condition ended while it stayed latched.
    pub condition_ended: Option<DateTime<Utc>>,
    /// When it ended; `None` if it was still active at the end of the record.
    pub ended: Option<DateTime<Utc>>,
    /// Value and limit as raised.
    pub value: Option<f64>,
    pub limit: Option<f64>,
    /// The message as raised, and the latest advice it carried.
    pub message: String,
    pub advice: Option<String>,
    /// Every transition: time, change, priority after it, who.
    pub transitions: Vec<(DateTime<Utc>, String, Priority, Option<String>)>,
}

/// The alarms among `events`, in the order they were raised.
pub fn alarm_summaries(events: &[StoredEvent]) -> Vec<AlarmSummary> {
    let mut alarms: BTreeMap<(i64, u64), AlarmSummary> = BTreeMap::new();
    for event in events {
        let EventDetail::Alarm(a) = &event.what else {
            continue;
        };
        let at = event.at;
        let entry = alarms
            .entry((a.run, a.alarm))
            .or_insert_with(|| AlarmSummary {
                run: a.run,
                alarm: a.alarm,
                kind: a.kind,
                source: a.source.clone(),
                device: a.device.clone(),
                vital: a.vital,
                raised: at,
                first_priority: a.priority,
                highest: a.priority,
                highest_at: at,
                acknowledged: None,
                audio_paused: Vec::new(),
                condition_ended: None,
                ended: None,
                value: a.value,
                limit: a.limit,
                message: a.message.clone(),
                advice: None,
                transitions: Vec::new(),
            });
        if a.priority > entry.highest {
            entry.highest = a.priority;
            entry.highest_at = at;
        }
        let by = a.by.clone();
        match a.change.as_str() {
            "acknowledged" if entry.acknowledged.is_none() => {
                entry.acknowledged = Some((at, by.clone().unwrap_or_default()));
            }
            "audio_paused" => entry
                .audio_paused
                .push((at, by.clone().unwrap_or_default())),
            "condition_ended" => entry.condition_ended = Some(at),
            "condition_returned" => entry.condition_ended = None,
            "ended" => entry.ended = Some(at),
            _ => {}
        }
        if a.advice.is_some() {
            entry.advice = a.advice.clone();
        }
        entry
            .transitions
            .push((at, a.change.clone(), a.priority, by));
    }
    let mut list: Vec<AlarmSummary> = alarms.into_values().collect();
    list.sort_by(|a, b| a.raised.cmp(&b.raised).then(a.run.cmp(&b.run)));
    list
}
