//! The recorder's tests: round trip, atomic batches, resuming, crash, disk full, locking,
//! pruning, and the errors a clinic would meet.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tempfile::TempDir;

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::*;
use crate::engine::{AlarmKind, Priority};
use crate::vitals::{DeviceId, LinkState, Phase, Quality, SessionId, Vital};

fn temp() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recording.sqlite3");
    (dir, path)
}

/// 2026-11-25 09:00:00 UTC plus `micros`.
fn at_us(micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap() + chrono::Duration::microseconds(micros)
}

fn at(seconds: i64) -> DateTime<Utc> {
    at_us(seconds * 1_000_000)
}

fn sid(id: &str) -> SessionId {
    SessionId::parse(id).unwrap()
}

fn started(id: &str, t: DateTime<Utc>, by: &str) -> Record {
    Record::SessionStarted {
        session: sid(id),
        at: t,
        by: by.into(),
    }
}

fn phase(id: &str, phase: Phase, t: DateTime<Utc>, by: &str) -> Record {
    Record::PhaseChanged {
        session: sid(id),
        phase,
        at: t,
        by: by.into(),
    }
}

fn ended(id: &str, t: DateTime<Utc>, by: &str) -> Record {
    Record::SessionEnded {
        session: sid(id),
        at: t,
        by: by.into(),
    }
}

fn note(id: &str, text: &str, t: DateTime<Utc>) -> Record {
    Record::Note {
        session: sid(id),
        text: text.into(),
        by: "nurse-b".into(),
        at: t,
    }
}

fn reading(
    id: &str,
    device: &str,
    vital: Vital,
    value: Option<f64>,
    quality: Quality,
    device_time: Option<DateTime<Utc>>,
    received: DateTime<Utc>,
) -> ReadingRecord {
    ReadingRecord {
        session: sid(id),
        device: DeviceId::new(device),
        vital,
        value,
        quality,
        device_time,
        received,
    }
}

fn spo2(id: &str, value: f64, received: DateTime<Utc>) -> Record {
    Record::Reading(reading(
        id,
        "ox1",
        Vital::Spo2,
        Some(value),
        Quality::GOOD,
        None,
        received,
    ))
}

/// A BP-high alarm transition.
fn alarm(
    id: &str,
    t: DateTime<Utc>,
    alarm: u64,
    change: &str,
    by: Option<&str>,
    priority: Priority,
) -> AlarmRecord {
    AlarmRecord {
        session: sid(id),
        at: t,
        alarm,
        change: change.into(),
        by: by.map(Into::into),
        kind: AlarmKind::Physiological,
        priority,
        source: "bp_high".into(),
        device: DeviceId::new("cuff1"),
        vital: Some(Vital::Systolic),
        value: Some(182.0),
        limit: Some(180.0),
        message: "BP high: systolic 182 mmHg (limit systolic ≥ 180 mmHg)".into(),
        advice: Some("consider pausing the infusion".into()),
        json: format!(r#"{{"type":"alarm","change":"{change}","id":{alarm}}}"#),
    }
}

fn stored_alarm(record: &AlarmRecord, run: i64) -> StoredAlarm {
    StoredAlarm {
        run,
        alarm: record.alarm,
        change: record.change.clone(),
        by: record.by.clone(),
        kind: record.kind,
        priority: record.priority,
        source: record.source.clone(),
        device: record.device.clone(),
        vital: record.vital,
        value: record.value,
        limit: record.limit,
        message: record.message.clone(),
        advice: record.advice.clone(),
        json: record.json.clone(),
    }
}

fn all_readings(store: &Store, key: SessionKey) -> Vec<StoredReading> {
    let mut out = Vec::new();
    store
        .readings(key, |r| {
            out.push(r);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    out
}

fn reading_count(store: &Store, key: SessionKey) -> u64 {
    store.readings(key, |_| Ok::<_, StoreError>(())).unwrap()
}

/// The events without their sequence numbers.
fn timeline(store: &Store, key: SessionKey) -> Vec<(DateTime<Utc>, EventDetail)> {
    store
        .events(key)
        .unwrap()
        .into_iter()
        .map(|e| (e.at, e.what))
        .collect()
}

fn key_of(store: &Store, id: &str) -> SessionKey {
    let keys: Vec<_> = store
        .sessions()
        .unwrap()
        .into_iter()
        .filter(|s| s.id.as_str() == id)
        .map(|s| s.key)
        .collect();
    assert_eq!(keys.len(), 1, "sessions with id {id}: {keys:?}");
    keys[0]
}

fn phase_event(phase: Phase, by: &str) -> EventDetail {
    EventDetail::Phase {
        phase,
        by: by.into(),
    }
}

#[test]
fn a_session_reads_back_exactly_as_written() {
    let (_dir, path) = temp();
    let id = "KAP-0042";
    let readings = [
        // A good SpO2 with a device time, to the microsecond.
        reading(
            id,
            "ox1",
            Vital::Spo2,
            Some(97.0),
            Quality::GOOD,
            Some(at_us(999_877)),
            at_us(1_000_001),
        ),
        reading(
            id,
            "ox1",
            Vital::PulseRate,
            Some(72.25),
            Quality::GOOD,
            None,
            at_us(1_000_001),
        ),
        // Finger out: no value, two flags.
        reading(
            id,
            "ox1",
            Vital::Spo2,
            None,
            Quality::SENSOR_OFF | Quality::SEARCHING,
            None,
            at_us(2_000_000),
        ),
        // A flagged value.
        reading(
            id,
            "ox1",
            Vital::Spo2,
            Some(88.5),
            Quality::ARTEFACT | Quality::LOW_PERFUSION,
            None,
            at_us(2_500_000),
        ),
        // One cuff measurement: three readings received together keep their written order.
        reading(
            id,
            "cuff1",
            Vital::Systolic,
            Some(182.0),
            Quality::GOOD,
            Some(at(2)),
            at(3),
        ),
        reading(
            id,
            "cuff1",
            Vital::Diastolic,
            Some(101.0),
            Quality::GOOD,
            Some(at(2)),
            at(3),
        ),
        reading(
            id,
            "cuff1",
            Vital::MeanArterial,
            Some(128.0),
            Quality::GOOD,
            Some(at(2)),
            at(3),
        ),
    ];
    let raised = alarm(id, at(61), 7, "raised", None, Priority::Medium);
    let acknowledged = alarm(
        id,
        at_us(62_000_007),
        7,
        "acknowledged",
        Some("nurse-b"),
        Priority::Medium,
    );
    let escalated = alarm(id, at(63), 7, "escalated", None, Priority::High);
    let alarm_ended = alarm(id, at(90), 7, "ended", None, Priority::High);
    let mut technical = alarm(id, at(64), 8, "raised", None, Priority::Low);
    technical.kind = AlarmKind::Technical;
    technical.source = "poor_signal".into();
    technical.device = DeviceId::new("ox1");
    technical.vital = None;
    technical.value = None;
    technical.limit = None;
    technical.advice = None;

    let batches = vec![
        vec![
            started(id, at(0), "nurse-a"),
            Record::Link {
                session: sid(id),
                device: DeviceId::new("ox1"),
                state: LinkState::Connected,
                detail: None,
                at: at_us(500_000),
            },
        ],
        readings.iter().cloned().map(Record::Reading).collect(),
        vec![
            phase(id, Phase::Infusion, at(60), "nurse-b"),
            Record::Alarm(Box::new(raised.clone())),
            Record::Alarm(Box::new(acknowledged.clone())),
            Record::Alarm(Box::new(escalated.clone())),
            Record::Alarm(Box::new(technical.clone())),
            // Written before the gap, but later in time: the timeline is in time order.
            note(id, "patient calm again", at(80)),
            Record::Gap {
                session: sid(id),
                from: at(65),
                to: at(70),
                why: "recording failed: disk full".into(),
            },
            Record::Link {
                session: sid(id),
                device: DeviceId::new("cuff1"),
                state: LinkState::Lost,
                detail: Some("/dev/ttyUSB1: no such device".into()),
                at: at(66),
            },
        ],
        vec![
            Record::Alarm(Box::new(alarm_ended.clone())),
            phase(id, Phase::Recovery, at(120), "nurse-b"),
            ended(id, at(200), "nurse-a"),
        ],
    ];
    {
        let mut store = Store::open(&path).unwrap();
        for batch in &batches {
            store.write(batch).unwrap();
        }
    }

    let store = Store::open(&path).unwrap();
    let key = key_of(&store, id);
    let expected: Vec<StoredReading> = readings
        .iter()
        .map(|r| StoredReading {
            device: r.device.clone(),
            vital: r.vital,
            value: r.value,
            unit: r.vital.unit().into(),
            quality: r.quality,
            device_time: r.device_time,
            received: r.received,
        })
        .collect();
    assert_eq!(all_readings(&store, key), expected);

    let expected_events = vec![
        (at(0), phase_event(Phase::Baseline, "nurse-a")),
        (
            at_us(500_000),
            EventDetail::Link {
                device: DeviceId::new("ox1"),
                state: LinkState::Connected,
                detail: None,
            },
        ),
        (at(60), phase_event(Phase::Infusion, "nurse-b")),
        (
            at(61),
            EventDetail::Alarm(Box::new(stored_alarm(&raised, 1))),
        ),
        (
            at_us(62_000_007),
            EventDetail::Alarm(Box::new(stored_alarm(&acknowledged, 1))),
        ),
        (
            at(63),
            EventDetail::Alarm(Box::new(stored_alarm(&escalated, 1))),
        ),
        (
            at(64),
            EventDetail::Alarm(Box::new(stored_alarm(&technical, 1))),
        ),
        (
            at(65),
            EventDetail::Gap {
                to: at(70),
                why: "recording failed: disk full".into(),
            },
        ),
        (
            at(66),
            EventDetail::Link {
                device: DeviceId::new("cuff1"),
                state: LinkState::Lost,
                detail: Some("/dev/ttyUSB1: no such device".into()),
            },
        ),
        (
            at(80),
            EventDetail::Note {
                text: "patient calm again".into(),
                by: "nurse-b".into(),
            },
        ),
        (
            at(90),
            EventDetail::Alarm(Box::new(stored_alarm(&alarm_ended, 1))),
        ),
        (at(120), phase_event(Phase::Recovery, "nurse-b")),
        (at(200), phase_event(Phase::Ended, "nurse-a")),
    ];
    assert_eq!(timeline(&store, key), expected_events);

    // Export times are RFC 3339, to the microsecond.
    let json = serde_json::to_value(&all_readings(&store, key)[0]).unwrap();
    assert_eq!(json["received"], "2026-11-25T09:00:01.000001Z");
    assert_eq!(json["device_time"], "2026-11-25T09:00:00.999877Z");
    store.integrity_check().unwrap();
}

#[derive(Debug)]
enum Stop {
    Store(StoreError),
    Enough,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

#[test]
fn readings_stream_one_at_a_time_and_stop_at_the_callers_error() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let mut batch = vec![started("S1", at(0), "local")];
    batch.extend((0..10).map(|i| spo2("S1", 90.0 + i as f64, at(i + 1))));
    store.write(&batch).unwrap();
    let key = key_of(&store, "S1");

    let mut seen = Vec::new();
    let result = store.readings(key, |r| {
        seen.push(r.value);
        if seen.len() == 3 {
            Err(Stop::Enough)
        } else {
            Ok(())
        }
    });
    assert!(matches!(result, Err(Stop::Enough)), "{result:?}");
    assert_eq!(seen, [Some(90.0), Some(91.0), Some(92.0)]);

    let missing = store.readings(SessionKey(key.0 + 100), |_| Ok::<_, Stop>(()));
    assert!(
        matches!(missing, Err(Stop::Store(StoreError::NoSuchSession { .. }))),
        "{missing:?}"
    );
}

#[test]
fn a_batch_with_a_refused_record_leaves_nothing_of_itself() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    store.write(&[started("S1", at(0), "local")]).unwrap();
    let key = key_of(&store, "S1");

    // The third record names a session that is not open.
    let err = store
        .write(&[
            spo2("S1", 97.0, at(1)),
            spo2("S1", 96.0, at(2)),
            note("OTHER", "misfiled", at(3)),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidRecord { index: 2, .. }),
        "{err}"
    );
    // It says why, naming the open session by its key: the reason is logged, and the log
    // carries no session id.
    assert!(
        err.to_string()
            .contains("belongs to another session than the open one (key 1)"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("OTHER") && !err.to_string().contains("S1"),
        "{err}"
    );
    assert_eq!(reading_count(&store, key), 0);
    assert_eq!(timeline(&store, key).len(), 1, "only the start");

    // A failure inside SQLite in the middle of a batch (here a constraint raised by a trigger
    // the test adds to this connection) undoes the session end and start before it.
    store
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.event \
             WHEN NEW.detail = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned record'); END;",
        )
        .unwrap();
    let err = store
        .write(&[
            spo2("S1", 95.0, at(4)),
            ended("S1", at(5), "local"),
            started("S2", at(6), "local"),
            spo2("S2", 94.0, at(7)),
            note("S2", "poison", at(8)),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidRecord { index: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("poisoned record"), "{err}");
    let sessions = store.sessions().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].ended, None);
    assert_eq!(reading_count(&store, key), 0);
    assert_eq!(store.open_session().unwrap().map(|s| s.id), Some(sid("S1")));

    // The store's idea of the open session was not changed by the failed batch either.
    store
        .write(&[spo2("S1", 93.0, at(9)), ended("S1", at(10), "local")])
        .unwrap();
    assert_eq!(reading_count(&store, key), 1);
    assert_eq!(store.open_session().unwrap(), None);
    store.integrity_check().unwrap();
}

#[test]
fn records_that_do_not_fit_the_session_are_refused() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    store.write(&[started("S1", at(0), "local")]).unwrap();

    let refused = |store: &mut Store, record: Record, says: &str| {
        let err = store.write(&[record]).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidRecord { index: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
    };
    refused(&mut store, started("S2", at(1), "local"), "still open");
    // A reading of another session while S1 is open never lands in S1's record.
    refused(&mut store, spo2("S2", 88.0, at(1)), "another session");
    refused(
        &mut store,
        phase("S1", Phase::Ended, at(1), "local"),
        "SessionEnded",
    );
    refused(
        &mut store,
        Record::Gap {
            session: sid("S1"),
            from: at(5),
            to: at(4),
            why: "daemon restarted".into(),
        },
        "before it starts",
    );
    store.write(&[ended("S1", at(2), "local")]).unwrap();
    refused(&mut store, spo2("S1", 97.0, at(3)), "not open");

    // A pseudonymous id may come back for a later session: it is a new session.
    store
        .write(&[started("S1", at(10), "local"), spo2("S1", 97.0, at(11))])
        .unwrap();
    let sessions = store.sessions().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_ne!(sessions[0].key, sessions[1].key);
    assert_eq!(reading_count(&store, sessions[0].key), 0);
    assert_eq!(reading_count(&store, sessions[1].key), 1);
}

#[test]
fn an_unended_session_is_found_after_reopening_and_sessions_are_summarised() {
    let (_dir, path) = temp();
    let a = |t, id, change, priority| {
        Record::Alarm(Box::new(alarm("S2", t, id, change, None, priority)))
    };
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.open_session().unwrap(), None);
        assert_eq!(store.highest_alarm_id().unwrap(), 0);
        store
            .write(&[
                started("S1", at(0), "nurse-a"),
                phase("S1", Phase::Infusion, at(600), "nurse-b"),
                Record::Alarm(Box::new(alarm(
                    "S1",
                    at(700),
                    1,
                    "raised",
                    None,
                    Priority::Medium,
                ))),
                Record::Alarm(Box::new(alarm(
                    "S1",
                    at(900),
                    1,
                    "escalated",
                    None,
                    Priority::High,
                ))),
                Record::Alarm(Box::new(alarm(
                    "S1",
                    at(950),
                    2,
                    "raised",
                    None,
                    Priority::Low,
                ))),
                Record::Alarm(Box::new(alarm(
                    "S1",
                    at(960),
                    2,
                    "ended",
                    None,
                    Priority::Low,
                ))),
                Record::Alarm(Box::new(alarm(
                    "S1",
                    at(1000),
                    1,
                    "acknowledged",
                    Some("nurse-b"),
                    Priority::High,
                ))),
                phase("S1", Phase::Recovery, at(3000), "nurse-b"),
                ended("S1", at(9000), "nurse-a"),
            ])
            .unwrap();
        store
            .write(&[
                started("S2", at(10_000), "nurse-c"),
                // The baseline phase's clinical values: these two, not the flagged one, the
                // one without a value, nor any of the infusion.
                spo2("S2", 98.0, at(10_100)),
                Record::Reading(reading(
                    "S2",
                    "ox1",
                    Vital::Spo2,
                    Some(70.0),
                    Quality::ARTEFACT,
                    None,
                    at(10_200),
                )),
                Record::Reading(reading(
                    "S2",
                    "cuff1",
                    Vital::Systolic,
                    None,
                    Quality::GOOD,
                    None,
                    at(10_300),
                )),
                Record::Reading(reading(
                    "S2",
                    "cuff1",
                    Vital::Systolic,
                    Some(124.0),
                    Quality::GOOD,
                    None,
                    at(10_400),
                )),
                phase("S2", Phase::Infusion, at(10_600), "nurse-c"),
                a(at(10_650), 3, "raised", Priority::Medium),
                spo2("S2", 97.0, at_us(10_700_000_123)),
            ])
            .unwrap();
    }

    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        store.highest_alarm_id().unwrap(),
        3,
        "alarms 1 and 2 of S1, 3 of S2"
    );
    let open = store.open_session().unwrap().expect("S2 is still open");
    let s2 = key_of(&store, "S2");
    assert_eq!(
        open,
        OpenSession {
            key: s2,
            id: sid("S2"),
            started: at(10_000),
            phase: Phase::Infusion,
            phase_since: at(10_600),
            last_record: at_us(10_700_000_123),
            phases: vec![
                PhaseEntry {
                    phase: Phase::Baseline,
                    at: at(10_000),
                    by: "nurse-c".into(),
                },
                PhaseEntry {
                    phase: Phase::Infusion,
                    at: at(10_600),
                    by: "nurse-c".into(),
                },
            ],
            baseline: vec![(Vital::Spo2, 98.0), (Vital::Systolic, 124.0)],
        }
    );
    assert_eq!(open.infusion(), (Some(at(10_600)), None));
    let mut in_recovery = open.clone();
    in_recovery.phases.push(PhaseEntry {
        phase: Phase::Recovery,
        at: at(13_000),
        by: "nurse-c".into(),
    });
    assert_eq!(in_recovery.infusion(), (Some(at(10_600)), Some(at(13_000))));

    // The restarted daemon resumes it. (A daemon numbers its alarms after the highest
    // recorded, but the store keeps runs apart whatever the ids, as databases written before
    // that did: alarm 3 of this run is another alarm than alarm 3 of the last one.)
    store
        .write(&[
            Record::Gap {
                session: sid("S2"),
                from: open.last_record,
                to: at(10_800),
                why: "daemon restarted".into(),
            },
            a(at(10_900), 3, "raised", Priority::Low),
            a(at(10_950), 3, "ended", Priority::Low),
        ])
        .unwrap();
    assert_eq!(
        store.open_session().unwrap().map(|s| s.last_record),
        Some(at(10_950))
    );

    let sessions = store.sessions().unwrap();
    let entry = |phase, t, by: &str| PhaseEntry {
        phase,
        at: at(t),
        by: by.into(),
    };
    assert_eq!(
        sessions,
        vec![
            SessionSummary {
                key: key_of(&store, "S1"),
                id: sid("S1"),
                started: at(0),
                ended: Some(at(9000)),
                exported: None,
                phases: vec![
                    entry(Phase::Baseline, 0, "nurse-a"),
                    entry(Phase::Infusion, 600, "nurse-b"),
                    entry(Phase::Recovery, 3000, "nurse-b"),
                    entry(Phase::Ended, 9000, "nurse-a"),
                ],
                // Alarm 1 escalated: counted once, as high.
                alarms: AlarmCounts {
                    low: 1,
                    medium: 0,
                    high: 1
                },
            },
            SessionSummary {
                key: s2,
                id: sid("S2"),
                started: at(10_000),
                ended: None,
                exported: None,
                phases: vec![
                    entry(Phase::Baseline, 10_000, "nurse-c"),
                    entry(Phase::Infusion, 10_600, "nurse-c"),
                ],
                alarms: AlarmCounts {
                    low: 1,
                    medium: 1,
                    high: 0
                },
            },
        ]
    );

    store.write(&[ended("S2", at(11_000), "nurse-c")]).unwrap();
    assert_eq!(store.open_session().unwrap(), None);
    store.mark_exported(s2, at(11_100)).unwrap();
    assert_eq!(store.sessions().unwrap()[1].exported, Some(at(11_100)));
    assert!(matches!(
        store.mark_exported(SessionKey(s2.0 + 100), at(11_100)),
        Err(StoreError::NoSuchSession { .. })
    ));
}

#[test]
fn the_store_is_durable_by_its_settings() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let pragma = |name: &str| -> String {
        store
            .conn
            .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "wal");
    assert_eq!(pragma("synchronous"), "2", "FULL");
    assert_eq!(pragma("foreign_keys"), "1");
    assert_eq!(pragma("user_version"), SCHEMA_VERSION.to_string());
    assert_eq!(pragma("application_id"), APPLICATION_ID.to_string());
}

#[test]
fn a_second_writer_is_refused_while_the_first_has_the_store() {
    let (_dir, path) = temp();
    let first = Store::open(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("another"), "{message}");
    // Readers take no lock.
    Store::open_read_only(&path).unwrap();
    drop(first);
    Store::open(&path).unwrap();
}

#[test]
fn a_reader_sees_committed_batches_while_the_daemon_writes() {
    let (_dir, path) = temp();
    let mut writer = Store::open(&path).unwrap();
    writer
        .write(&[started("S1", at(0), "local"), spo2("S1", 97.0, at(1))])
        .unwrap();
    let mut reader = Store::open_read_only(&path).unwrap();
    let key = key_of(&reader, "S1");
    assert_eq!(reading_count(&reader, key), 1);
    writer.write(&[spo2("S1", 96.0, at(2))]).unwrap();
    assert_eq!(reading_count(&reader, key), 2);

    let err = reader.write(&[spo2("S1", 95.0, at(3))]).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    let err = reader.prune(0, at(10), PruneScope::Ended).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert_eq!(reading_count(&writer, key), 2);
}

#[test]
fn opening_something_that_is_not_a_recording_says_so_and_names_the_file() {
    let (dir, path) = temp();
    let names_path = |err: &StoreError, path: &Path| {
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    };

    // A text file, left as it was.
    let text = "not a database\n".repeat(300);
    std::fs::write(&path, &text).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    names_path(&err, &path);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");

    // A directory that does not exist.
    let nowhere = dir
        .path()
        .join("no-such-directory")
        .join("recording.sqlite3");
    let err = Store::open(&nowhere).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    names_path(&err, &nowhere);
    let err = Store::open_read_only(&nowhere).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    names_path(&err, &nowhere);

    // Another application's database.
    let other = dir.path().join("other.sqlite3");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x);")
        .unwrap();
    let err = Store::open(&other).unwrap_err();
    assert!(matches!(err, StoreError::NotARecording { .. }), "{err}");
    names_path(&err, &other);

    // A recording from a later vitalwatch.
    let newer = dir.path().join("newer.sqlite3");
    drop(Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let err = Store::open(&newer).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaVersion { found: 99, .. }),
        "{err}"
    );
    names_path(&err, &newer);

    // An empty file (created by hand, say) becomes a recording.
    let empty = dir.path().join("empty.sqlite3");
    std::fs::write(&empty, "").unwrap();
    let mut store = Store::open(&empty).unwrap();
    store.write(&[started("S1", at(0), "local")]).unwrap();
}

/// Writes batches of readings of session S until the size limit is hit; returns how many went
/// in, and the error.
fn fill(store: &mut Store, session: &str, first: i64) -> (i64, StoreError) {
    for n in first..first + 10_000 {
        if let Err(e) = store.write(&big_batch(session, n)) {
            return (n - first, e);
        }
    }
    panic!("the size limit was never reached");
}

const BIG_BATCH: i64 = 200;

fn big_batch(session: &str, n: i64) -> Vec<Record> {
    (0..BIG_BATCH)
        .map(|i| spo2(session, 90.0, at_us(n * 1_000_000 + i)))
        .collect()
}

fn limit_pages(store: &Store, extra: i64) {
    let pages: i64 = store
        .conn
        .pragma_query_value(None, "page_count", |row| row.get(0))
        .unwrap();
    store
        .conn
        .execute_batch(&format!("PRAGMA max_page_count = {};", pages + extra))
        .unwrap();
}

#[test]
fn a_full_disk_is_reported_and_writing_resumes_once_there_is_room() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    store.write(&[started("S1", at(0), "local")]).unwrap();
    let key = key_of(&store, "S1");
    limit_pages(&store, 10);

    let (written, err) = fill(&mut store, "S1", 0);
    assert!(err.is_disk_full(), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(written > 0, "some batches fit before the limit");
    // The failed batch left nothing; the store still answers.
    assert_eq!(reading_count(&store, key) as i64, written * BIG_BATCH);
    assert_eq!(store.open_session().unwrap().map(|s| s.key), Some(key));
    store.integrity_check().unwrap();

    // Room is made: the same batch goes in.
    store
        .conn
        .execute_batch("PRAGMA max_page_count = 1000000;")
        .unwrap();
    store.write(&big_batch("S1", written)).unwrap();
    assert_eq!(reading_count(&store, key) as i64, (written + 1) * BIG_BATCH);
}

#[test]
fn pruning_makes_room_on_a_full_disk() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    // An old session with many readings, ended long ago.
    let mut old = vec![started("OLD", at(0), "local")];
    for n in 0..10 {
        old.extend(big_batch("OLD", n));
    }
    old.push(ended("OLD", at(100), "local"));
    store.write(&old).unwrap();
    store
        .write(&[started("NEW", at(200_000), "local")])
        .unwrap();
    let new = key_of(&store, "NEW");
    limit_pages(&store, 2);

    let (written, err) = fill(&mut store, "NEW", 200_000);
    assert!(err.is_disk_full(), "{err}");
    let deleted = store
        .prune(
            1,
            at(200_000) + chrono::Duration::days(2),
            PruneScope::Ended,
        )
        .unwrap();
    assert_eq!(deleted, 1);
    store.write(&big_batch("NEW", 200_000 + written)).unwrap();
    assert_eq!(reading_count(&store, new) as i64, (written + 1) * BIG_BATCH);
    store.integrity_check().unwrap();
}

#[test]
fn prune_deletes_only_sessions_that_ended_before_the_cutoff() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let day = 86_400;
    let session = |id: &str, start: i64, end: Option<i64>| {
        let mut records = vec![
            started(id, at(start), "local"),
            spo2(id, 97.0, at(start + 1)),
            note(id, "fine", at(start + 2)),
        ];
        records.extend(end.map(|end| ended(id, at(end), "local")));
        records
    };
    store.write(&session("EXPORTED", 0, Some(3600))).unwrap();
    store.write(&session("OLD", day, Some(day + 3600))).unwrap();
    store
        .write(&session("RECENT", 40 * day, Some(40 * day + 3600)))
        .unwrap();
    store.write(&session("OPEN", 41 * day, None)).unwrap();
    store
        .mark_exported(key_of(&store, "EXPORTED"), at(2 * day))
        .unwrap();
    let ids = |store: &Store| -> Vec<String> {
        store
            .sessions()
            .unwrap()
            .into_iter()
            .map(|s| s.id.to_string())
            .collect()
    };
    let now = at(42 * day);

    // Keep 30 days, exported only: EXPORTED goes, OLD (not exported) stays.
    assert_eq!(store.prune(30, now, PruneScope::Exported).unwrap(), 1);
    assert_eq!(ids(&store), ["OLD", "RECENT", "OPEN"]);
    // Keep 30 days: OLD goes, RECENT (ended 2 days ago) stays.
    assert_eq!(store.prune(30, now, PruneScope::Ended).unwrap(), 1);
    assert_eq!(ids(&store), ["RECENT", "OPEN"]);
    // Keep nothing: the open session still stays.
    assert_eq!(store.prune(0, now, PruneScope::Ended).unwrap(), 1);
    assert_eq!(ids(&store), ["OPEN"]);

    // The deleted sessions' readings and events went with them.
    let rows = |table: &str| -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows("reading"), 1);
    assert_eq!(rows("event"), 2, "OPEN's start and note");
    store.integrity_check().unwrap();
}

// --- Crash: a writer killed with SIGKILL at a random moment loses no committed batch. ---

/// Set (to the database's path) in the child process of the crash test.
const CRASH_CHILD: &str = "VITALWATCH_RECORDER_CRASH_CHILD";
/// What the child prints after each committed batch, before its number. It is searched for
/// anywhere in a line: the test harness prints its `test ... ` line without an end.
const COMMITTED: &str = "crash child committed batch ";
/// Readings per batch in the crash test.
const CRASH_BATCH: usize = 40;

/// Not a test on its own: the body of the crash test's child process, which the test starts
/// by running this test binary again with `CRASH_CHILD` set. Without it, it returns at once.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD) else {
        return;
    };
    let mut store = Store::open(Path::new(&path)).unwrap();
    let id = sid("CRASH-1");
    let now = Utc::now();
    let mut next = match store.open_session().unwrap() {
        Some(open) => {
            let last = batches_in(&store, open.key)
                .1
                .into_iter()
                .max()
                .unwrap_or(0);
            store
                .write(&[Record::Gap {
                    session: id.clone(),
                    from: open.last_record,
                    to: now.max(open.last_record),
                    why: "daemon restarted".into(),
                }])
                .unwrap();
            last + 1
        }
        None => {
            store
                .write(&[Record::SessionStarted {
                    session: id.clone(),
                    at: now,
                    by: "local".into(),
                }])
                .unwrap();
            1
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stdout = std::io::stdout();
    while Instant::now() < deadline {
        let mut batch: Vec<Record> = (0..CRASH_BATCH)
            .map(|i| {
                Record::Reading(ReadingRecord {
                    session: id.clone(),
                    device: DeviceId::new("ox1"),
                    vital: Vital::Spo2,
                    value: Some(next as f64),
                    quality: Quality::GOOD,
                    device_time: None,
                    received: now + chrono::Duration::microseconds(next as i64 * 1000 + i as i64),
                })
            })
            .collect();
        batch.push(Record::Note {
            session: id.clone(),
            text: format!("batch {next}"),
            by: "local".into(),
            at: now,
        });
        store.write(&batch).unwrap();
        writeln!(stdout, "{COMMITTED}{next}").unwrap();
        stdout.flush().unwrap();
        next += 1;
    }
}

/// Per batch number, its readings in the store; and the batch numbers of the notes.
fn batches_in(store: &Store, key: SessionKey) -> (BTreeMap<u64, usize>, BTreeSet<u64>) {
    let mut readings = BTreeMap::new();
    store
        .readings(key, |r| {
            *readings.entry(r.value.unwrap_or(-1.0) as u64).or_insert(0) += 1;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let notes = store
        .events(key)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.what {
            EventDetail::Note { text, .. } => text.strip_prefix("batch ")?.parse().ok(),
            _ => None,
        })
        .collect();
    (readings, notes)
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_killed_mid_batch_loses_no_committed_batch() {
    let (_dir, path) = temp();
    let exe = std::env::current_exe().unwrap();
    let random = RandomState::new();
    let mut printed = BTreeSet::new();
    for round in 0..3u64 {
        let mut child = KillOnDrop(
            Command::new(&exe)
                .args([
                    "recorder::tests::crash_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_CHILD, &path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let mut committed = |line: &str| -> bool {
            match line.split_once(COMMITTED) {
                Some((_, n)) => {
                    printed.insert(n.parse::<u64>().unwrap());
                    true
                }
                None => false,
            }
        };
        // Kill it after a random number of batches, a random fraction of a batch later.
        let wait_for = 1 + random.hash_one((round, "batches")) % 30;
        let mut seen = 0;
        while seen < wait_for {
            let line = lines
                .next()
                .expect("the child stopped before it was killed")
                .unwrap();
            seen += u64::from(committed(&line));
        }
        // While the child writes, this process cannot open the store for writing.
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        std::thread::sleep(Duration::from_micros(
            random.hash_one((round, "delay")) % 3000,
        ));
        child.0.kill().unwrap();
        for line in lines {
            committed(&line.unwrap());
        }
        child.0.wait().unwrap();

        // Reopening finds every printed batch, whole, and nothing half-written.
        let store = Store::open(&path).unwrap();
        store.integrity_check().unwrap();
        let key = store.open_session().unwrap().expect("CRASH-1 is open").key;
        let (readings, notes) = batches_in(&store, key);
        for n in &printed {
            assert_eq!(readings.get(n), Some(&CRASH_BATCH), "batch {n}");
            assert!(notes.contains(n), "batch {n}'s note");
        }
        for (n, count) in &readings {
            assert_eq!(*count, CRASH_BATCH, "batch {n} is whole");
        }
        assert_eq!(
            readings.keys().copied().collect::<BTreeSet<_>>(),
            notes,
            "readings and notes come in the same batches"
        );
        let gaps = timeline(&store, key)
            .into_iter()
            .filter(|(_, e)| matches!(e, EventDetail::Gap { .. }))
            .count();
        assert_eq!(gaps as u64, round, "one gap per restart");
    }
    assert!(printed.len() >= 3, "{printed:?}");
}

#[test]
fn readings_stream_from_the_index_and_are_never_sorted_in_memory() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let plan: Vec<String> = store
        .conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::query::READINGS_SQL
        ))
        .unwrap()
        .query_map([1], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        plan,
        ["SEARCH reading USING INDEX reading_session_time (session_key=?)"]
    );
}

#[test]
fn a_store_can_move_to_the_sinks_thread() {
    fn send<T: Send>() {}
    send::<Store>();
}
