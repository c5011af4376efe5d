//! Recorded sessions for the export tests and benchmark, written with the recorder's store
//! directly (as the daemon's sink would), so the exports are tested on a real database.
//!
//! - [`short_session`]: 12 minutes with every kind of record, whose values the tests know
//!   exactly (they check the exports against this description, not against the exporter).
//! - [`simulated_session`]: a built-in scenario played for its whole length: the simulated
//!   oximeter every second and cuff every 5 minutes (their real sample code), the scenario's
//!   phases, and the alarm timeline the engine gives it (`vitalwatch replay`), plus a nurse's
//!   acknowledgement and notes.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use vitalwatch::acquire::scenario::Role;
use vitalwatch::acquire::sim::SimulatedDevice;
use vitalwatch::config::{DEFAULT_RULES, Source, load_scenario, parse_rule_set};
use vitalwatch::engine::{AlarmKind, AlarmSource, Priority};
use vitalwatch::recorder::{AlarmRecord, ReadingRecord, Record, Store};
use vitalwatch::vitals::{
    DeviceId, DeviceMessage, LinkState, Mono, Phase, Quality, SessionId, Vital,
};

/// 2026-11-25 09:00:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
}

/// `t0` plus `seconds` (to the microsecond).
pub fn at(seconds: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::microseconds((seconds * 1e6).round() as i64)
}

pub const SHORT_ID: &str = "KAP-0042";
/// The short session: 12 minutes.
pub const SHORT_END_S: f64 = 720.0;
pub const INFUSION_S: f64 = 120.0;
pub const RECOVERY_S: f64 = 600.0;
/// SpO2 dips to 86 % from 300 s to 339 s.
pub const DIP: (u32, u32) = (300, 340);
/// ox1 readings flagged as artefact (with values) from 400 to 409 s, sensor off (no value)
/// from 410 to 414 s.
pub const ARTEFACT: (u32, u32) = (400, 410);
pub const SENSOR_OFF: (u32, u32) = (410, 415);
/// ox1 sends nothing from 500 to 504 s (its link lost at 500, back at 505).
pub const SILENT: (u32, u32) = (500, 505);
/// Cuff measurements: time, systolic, diastolic, mean, pulse.
pub const CUFF: [(f64, f64, f64, f64, f64); 3] = [
    (10.0, 128.0, 82.0, 97.0, 74.0),
    (310.0, 184.0, 108.0, 133.0, 80.0),
    (610.0, 150.0, 95.0, 113.0, 77.0),
];
/// The notes: time, who, text.
pub const NOTES: [(f64, &str, &str); 2] = [
    (
        200.123456,
        "nurse-b",
        "=HYPERLINK(\"http://x\") patient asked, \"warm\"; comfortable",
    ),
    (
        650.0,
        "nurse-b",
        "Recovery: talking, oriented — vitals near baseline\nsecond line",
    ),
];

/// One oximeter sample: SpO2, pulse, perfusion index, quality.
pub type OximeterSample = (Option<f64>, Option<f64>, Option<f64>, Quality);

/// The short session's oximeter sample at second `s` (0..720), `None` while it is silent.
pub fn oximeter_at(s: u32) -> Option<OximeterSample> {
    if (SILENT.0..SILENT.1).contains(&s) {
        return None;
    }
    if (ARTEFACT.0..ARTEFACT.1).contains(&s) {
        return Some((Some(71.0), Some(131.0), Some(0.4), Quality::ARTEFACT));
    }
    if (SENSOR_OFF.0..SENSOR_OFF.1).contains(&s) {
        return Some((None, None, None, Quality::SENSOR_OFF));
    }
    let spo2 = if (DIP.0..DIP.1).contains(&s) {
        86.0
    } else {
        97.0 - f64::from(s % 3)
    };
    let pulse = 72.0 + f64::from(s % 5);
    Some((Some(spo2), Some(pulse), Some(3.5), Quality::GOOD))
}

fn sid(id: &str) -> SessionId {
    SessionId::parse(id).unwrap()
}

fn reading(
    id: &SessionId,
    device: &str,
    vital: Vital,
    value: Option<f64>,
    quality: Quality,
    received: DateTime<Utc>,
) -> Record {
    Record::Reading(ReadingRecord {
        session: id.clone(),
        device: DeviceId::new(device),
        vital,
        value,
        quality,
        device_time: None,
        received,
    })
}

#[allow(clippy::too_many_arguments)]
fn alarm(
    id: &SessionId,
    t: f64,
    alarm: u64,
    change: &str,
    by: Option<&str>,
    priority: Priority,
    source: &str,
    device: &str,
    vital: Option<Vital>,
    value: Option<f64>,
    limit: Option<f64>,
    message: &str,
    advice: Option<&str>,
) -> Record {
    Record::Alarm(Box::new(AlarmRecord {
        session: id.clone(),
        at: at(t),
        alarm,
        change: change.into(),
        by: by.map(Into::into),
        kind: if vital.is_some() {
            AlarmKind::Physiological
        } else {
            AlarmKind::Technical
        },
        priority,
        source: source.into(),
        device: DeviceId::new(device),
        vital,
        value,
        limit,
        message: message.into(),
        advice: advice.map(Into::into),
        json: format!(r#"{{"type":"alarm","change":"{change}","id":{alarm}}}"#),
    }))
}

/// Writes the short session into a new database at `path`.
pub fn short_session(path: &Path) {
    let id = sid(SHORT_ID);
    let mut store = Store::open(path).unwrap();
    let mut records: Vec<(f64, Record)> = Vec::new();
    let phase = |t: f64, phase: Phase| Record::PhaseChanged {
        session: id.clone(),
        phase,
        at: at(t),
        by: "nurse-a".into(),
    };
    records.push((INFUSION_S, phase(INFUSION_S, Phase::Infusion)));
    records.push((RECOVERY_S, phase(RECOVERY_S, Phase::Recovery)));
    for s in 0..SHORT_END_S as u32 {
        let Some((spo2, pulse, pi, quality)) = oximeter_at(s) else {
            continue;
        };
        let t = f64::from(s);
        for (vital, value) in [
            (Vital::Spo2, spo2),
            (Vital::PulseRate, pulse),
            (Vital::PerfusionIndex, pi),
        ] {
            records.push((t, reading(&id, "ox1", vital, value, quality, at(t))));
        }
    }
    for (t, sys, dia, mean, pulse) in CUFF {
        for (vital, value) in [
            (Vital::Systolic, sys),
            (Vital::Diastolic, dia),
            (Vital::MeanArterial, mean),
            (Vital::PulseRate, pulse),
        ] {
            records.push((
                t,
                reading(&id, "cuff1", vital, Some(value), Quality::GOOD, at(t)),
            ));
        }
    }
    let link = |t: f64, state: LinkState, detail: &str| Record::Link {
        session: id.clone(),
        device: DeviceId::new("ox1"),
        state,
        detail: Some(detail.into()),
        at: at(t),
    };
    records.push((
        f64::from(SILENT.0),
        link(f64::from(SILENT.0), LinkState::Lost, "port gone"),
    ));
    records.push((
        f64::from(SILENT.1),
        link(f64::from(SILENT.1), LinkState::Connected, "port back"),
    ));
    // SpO2 low: raised after the 15 s delay, acknowledged, ended when SpO2 recovers.
    let spo2 = |t, change, by, message: &str| {
        alarm(
            &id,
            t,
            1,
            change,
            by,
            Priority::Medium,
            "spo2_low",
            "ox1",
            Some(Vital::Spo2),
            Some(86.0),
            Some(90.0),
            message,
            None,
        )
    };
    records.push((
        315.0,
        spo2(
            315.0,
            "raised",
            None,
            "SpO2 low: spo2 86 % (limit spo2 < 90 %)",
        ),
    ));
    records.push((
        322.5,
        spo2(
            322.5,
            "acknowledged",
            Some("nurse-b"),
            "SpO2 low: spo2 86 % (limit spo2 < 90 %)",
        ),
    ));
    records.push((
        340.0,
        spo2(
            340.0,
            "ended",
            None,
            "SpO2 low: spo2 86 % (limit spo2 < 90 %)",
        ),
    ));
    // BP high on the second cuff reading: medium, then high (escalated), ended on the third.
    let bp = |t, change, priority, message: &str| {
        alarm(
            &id,
            t,
            2,
            change,
            None,
            priority,
            "bp_high",
            "cuff1",
            Some(Vital::Systolic),
            Some(184.0),
            Some(180.0),
            message,
            Some("consider pausing the infusion"),
        )
    };
    records.push((
        310.0,
        bp(
            310.0,
            "raised",
            Priority::Medium,
            "BP high: systolic 184 mmHg (limit systolic ≥ 180 mmHg)",
        ),
    ));
    records.push((
        390.0,
        bp(
            390.0,
            "escalated",
            Priority::High,
            "BP high: systolic 184 mmHg (limit systolic ≥ 180 mmHg)",
        ),
    ));
    records.push((
        610.0,
        bp(
            610.0,
            "ended",
            Priority::High,
            "BP high: systolic 184 mmHg (limit systolic ≥ 180 mmHg)",
        ),
    ));
    for (t, by, text) in NOTES {
        records.push((
            t,
            Record::Note {
                session: id.clone(),
                text: text.into(),
                by: by.into(),
                at: at(t),
            },
        ));
    }
    records.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut batch = vec![Record::SessionStarted {
        session: id.clone(),
        at: t0(),
        by: "nurse-a".into(),
    }];
    batch.extend(records.into_iter().map(|(_, r)| r));
    batch.push(Record::SessionEnded {
        session: id.clone(),
        at: at(SHORT_END_S),
        by: "nurse-a".into(),
    });
    store.write(&batch).unwrap();
}

/// The vital a rule is about, for the fixture's alarm records.
fn vital_of(source: &AlarmSource) -> Option<Vital> {
    match source {
        AlarmSource::Rule { rule } if rule.starts_with("spo2") => Some(Vital::Spo2),
        AlarmSource::Rule { rule } if rule.starts_with("pulse") => Some(Vital::PulseRate),
        AlarmSource::Rule { .. } => Some(Vital::Systolic),
        AlarmSource::Technical { .. } => None,
    }
}

/// Writes the built-in `scenario` (which must have a `duration_s` and a `[session]` table),
/// played for its whole length, as session `id` starting at [`t0`], into the store at `path`.
pub fn simulated_session(path: &Path, id: &str, scenario: &str) {
    let command_line = Source {
        name: "test".into(),
        dir: None,
        text: String::new(),
    };
    let scenario = Arc::new(load_scenario(&command_line, scenario).unwrap());
    let duration_s = scenario.duration_s.unwrap();
    let rules = parse_rule_set(&Source::built_in(
        "config/rules/default.toml",
        DEFAULT_RULES,
    ))
    .unwrap();
    let timeline = vitalwatch::replay::replay(scenario.clone(), rules).unwrap();
    let session = sid(id);
    let mut records: Vec<(f64, u8, Record)> = Vec::new();

    for (device, role, interval) in [
        ("ox1", Role::Oximeter, 1u64),
        ("cuff1", Role::BpCuff, 300u64),
    ] {
        let sim = SimulatedDevice {
            id: DeviceId::new(device),
            role,
            scenario: scenario.clone(),
            interval: Duration::from_secs(interval),
        };
        let mut link_up = false;
        let mut index = 0u64;
        while (index * interval) as f64 <= duration_s {
            let t = (index * interval) as f64;
            for message in sim.messages_at(index, link_up, Mono::from_secs_f64(t), at(t)) {
                match message {
                    DeviceMessage::Readings(readings) => {
                        for r in readings {
                            records.push((t, 1, Record::Reading(ReadingRecord::of(&session, &r))));
                        }
                    }
                    DeviceMessage::Link {
                        device,
                        state,
                        detail,
                        at_utc,
                        ..
                    } => {
                        link_up = state == LinkState::Connected;
                        records.push((
                            t,
                            1,
                            Record::Link {
                                session: session.clone(),
                                device,
                                state,
                                detail,
                                at: at_utc,
                            },
                        ));
                    }
                    DeviceMessage::DecodeError { .. } => {}
                }
            }
            index += 1;
        }
    }

    // Phases (the end is the session's end, written last).
    for (t, phase) in scenario.session.phase_changes().into_iter().skip(1) {
        if phase != Phase::Ended {
            records.push((
                t,
                0,
                Record::PhaseChanged {
                    session: session.clone(),
                    phase,
                    at: at(t),
                    by: "nurse-a".into(),
                },
            ));
        }
    }

    // The alarm timeline; the first alarm that reaches high priority is acknowledged 40 s
    // later by a nurse (so it ends with its condition instead of latching).
    let acknowledged = timeline
        .entries
        .iter()
        .find(|e| e.priority == Priority::High)
        .map(|e| (e.alarm, e.at.as_secs_f64() + 40.0));
    let mut finished = false;
    for entry in &timeline.entries {
        let t = entry.at.as_secs_f64();
        let mut change = entry.change.as_str();
        if let Some((alarm, ack_t)) = acknowledged
            && alarm == entry.alarm
        {
            if finished {
                continue;
            }
            // Acknowledged, it ends with its condition instead of latching.
            if change == "condition_ended" && t > ack_t {
                change = "ended";
                finished = true;
            }
        }
        let mut record = AlarmRecord {
            session: session.clone(),
            at: at(t),
            alarm: entry.alarm.0,
            change: change.into(),
            by: None,
            kind: entry.kind,
            priority: entry.priority,
            source: entry.source_name().into(),
            device: entry.device.clone(),
            vital: vital_of(&entry.source),
            value: entry.value,
            limit: entry.limit,
            message: entry.message.clone(),
            advice: entry.advice.clone(),
            json: format!(
                r#"{{"type":"alarm","change":"{change}","id":{}}}"#,
                entry.alarm.0
            ),
        };
        records.push((t, 2, Record::Alarm(Box::new(record.clone()))));
        if let Some((alarm, ack_t)) = acknowledged
            && alarm == entry.alarm
            && change == "raised"
        {
            record.at = at(ack_t);
            record.change = "acknowledged".into();
            record.by = Some("nurse-b".into());
            record.priority = Priority::High;
            record.json = format!(
                r#"{{"type":"alarm","change":"acknowledged","id":{}}}"#,
                entry.alarm.0
            );
            records.push((ack_t, 2, Record::Alarm(Box::new(record))));
        }
    }
    // Two notes.
    for (t, text) in [
        (
            240.0,
            "Infusion running; patient calm, eyes closed, music on.",
        ),
        (
            duration_s * 0.75,
            "Talking and oriented. Ready for discharge review once BP is back near baseline.",
        ),
    ] {
        records.push((
            t,
            3,
            Record::Note {
                session: session.clone(),
                text: text.into(),
                by: "nurse-b".into(),
                at: at(t),
            },
        ));
    }
    records.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    let mut store = Store::open(path).unwrap();
    store
        .write(&[Record::SessionStarted {
            session: session.clone(),
            at: t0(),
            by: "nurse-a".into(),
        }])
        .unwrap();
    let records: Vec<Record> = records.into_iter().map(|(_, _, r)| r).collect();
    for batch in records.chunks(5000) {
        store.write(batch).unwrap();
    }
    store
        .write(&[Record::SessionEnded {
            session,
            at: at(duration_s),
            by: "nurse-a".into(),
        }])
        .unwrap();
}
