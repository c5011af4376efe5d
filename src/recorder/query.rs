//! Reading the record back: sessions, the open session, a session's readings (streamed) and
//! its events, for the export and the CLI. Times come back as `DateTime<Utc>` (RFC 3339 when
//! serialised), to the microsecond.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};
use crate::engine::{AlarmKind, Priority};
use crate::vitals::{DeviceId, LinkState, Phase, Quality, SessionId, Vital};

/// The store's key for one stored session (session ids may repeat; keys do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionKey(pub i64);

/// One session, for a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub key: SessionKey,
    pub id: SessionId,
    pub started: DateTime<Utc>,
    /// `None` while the session is open.
    pub ended: Option<DateTime<Utc>>,
    pub exported: Option<DateTime<Utc>>,
    /// Its phases in order, from `baseline` at its start to `ended` at its end.
    pub phases: Vec<PhaseEntry>,
    pub alarms: AlarmCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseEntry {
    pub phase: Phase,
    pub at: DateTime<Utc>,
    pub by: String,
}

/// A session's alarms, each counted once, by the highest priority it reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlarmCounts {
    pub low: u32,
    pub medium: u32,
    pub high: u32,
}

/// The session without an end: what a restarted daemon needs to resume it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenSession {
    pub key: SessionKey,
    pub id: SessionId,
    pub started: DateTime<Utc>,
    pub phase: Phase,
    pub phase_since: DateTime<Utc>,
    /// The time of its latest record (reading, event, or a gap's end): where a gap for the
    /// downtime starts.
    pub last_record: DateTime<Utc>,
    /// Its phases so far, in order.
    pub phases: Vec<PhaseEntry>,
    /// The clinical values (present, unflagged) recorded during its baseline phase, in the
    /// order received: what the engine's baseline is the median of.
    pub baseline: Vec<(Vital, f64)>,
}

impl OpenSession {
    /// When its infusion began and ended, as far as it has.
    pub fn infusion(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let infusion = self.phases.iter().position(|p| p.phase == Phase::Infusion);
        (
            infusion.map(|i| self.phases[i].at),
            infusion.and_then(|i| self.phases.get(i + 1)).map(|p| p.at),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredReading {
    pub device: DeviceId,
    pub vital: Vital,
    pub value: Option<f64>,
    pub unit: String,
    pub quality: Quality,
    pub device_time: Option<DateTime<Utc>>,
    pub received: DateTime<Utc>,
}

/// One entry of a session's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Write order across the whole store: breaks ties between events at the same time.
    pub seq: i64,
    /// When it happened (a gap: when it began).
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub what: EventDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventDetail {
    /// The session entered `phase` (`baseline` at its start, `ended` at its end).
    Phase {
        phase: Phase,
        by: String,
    },
    Alarm(Box<StoredAlarm>),
    Note {
        text: String,
        by: String,
    },
    Link {
        device: DeviceId,
        state: LinkState,
        detail: Option<String>,
    },
    /// Nothing was recorded from the event's time to `to`, for the reason `why`.
    Gap {
        to: DateTime<Utc>,
        why: String,
    },
}

/// An alarm transition as recorded (see [`super::AlarmRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAlarm {
    /// The daemon run it happened in: `(run, alarm)` identifies one alarm.
    pub run: i64,
    pub alarm: u64,
    pub change: String,
    pub by: Option<String>,
    pub kind: AlarmKind,
    pub priority: Priority,
    pub source: String,
    pub device: DeviceId,
    pub vital: Option<Vital>,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
    pub advice: Option<String>,
    pub json: String,
}

/// A session's readings in order. The index `reading_session_time` gives them in that order,
/// so SQLite streams them and never sorts a session in memory (a test checks the plan).
pub(super) const READINGS_SQL: &str = "SELECT device, vital, value, unit, quality, device_us, \
    received_us FROM reading WHERE session_key = ?1 ORDER BY received_us, rowid";

impl Store {
    /// Every stored session, oldest first.
    pub fn sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "listing sessions", e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT session_key, id, started_us, ended_us, exported_us FROM session \
                 ORDER BY started_us, session_key",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter()
            .map(|(key, id, started, ended, exported)| {
                Ok(SessionSummary {
                    key: SessionKey(key),
                    id: self.session_id(&id)?,
                    started: self.time(started)?,
                    ended: ended.map(|t| self.time(t)).transpose()?,
                    exported: exported.map(|t| self.time(t)).transpose()?,
                    phases: self.phases(key)?,
                    alarms: self.alarm_counts(key)?,
                })
            })
            .collect()
    }

    /// The highest alarm id any run has recorded (0 for none): a new run numbers its alarms
    /// after it, so that an id names one alarm in this database, never two.
    pub fn highest_alarm_id(&self) -> Result<u64, StoreError> {
        let highest: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(alarm_id), 0) FROM event WHERE kind = 'alarm'")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map_err(|e| StoreError::from_sql(&self.path, "reading the highest alarm id", e))?;
        Ok(u64::try_from(highest).unwrap_or(0))
    }

    /// The session without an end, if there is one (there is at most one).
    pub fn open_session(&self) -> Result<Option<OpenSession>, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "finding the open session", e);
        let Some((key, id, started)) = self
            .conn
            .prepare_cached(
                "SELECT session_key, id, started_us FROM session WHERE ended_us IS NULL",
            )
            .map_err(err)?
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(err)?
            .next()
            .transpose()
            .map_err(err)?
        else {
            return Ok(None);
        };
        let phases = self.phases(key)?;
        let phase = phases
            .last()
            .cloned()
            .ok_or_else(|| self.corrupt(format!("open session {id} has no phase")))?;
        let baseline = match phases.first() {
            Some(first) if first.phase == Phase::Baseline => {
                self.clinical_values(key, first.at, phases.get(1).map(|p| p.at))?
            }
            _ => Vec::new(),
        };
        let last_reading: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(received_us) FROM reading WHERE session_key = ?1")
            .map_err(err)?
            .query_row([key], |row| row.get(0))
            .map_err(err)?;
        let last_event: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT max(max(at_us, coalesce(gap_to_us, at_us))) FROM event \
                 WHERE session_key = ?1",
            )
            .map_err(err)?
            .query_row([key], |row| row.get(0))
            .map_err(err)?;
        let last = [Some(started), last_reading, last_event]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(started);
        Ok(Some(OpenSession {
            key: SessionKey(key),
            id: self.session_id(&id)?,
            started: self.time(started)?,
            phase: phase.phase,
            phase_since: phase.at,
            last_record: self.time(last)?,
            phases,
            baseline,
        }))
    }

    /// The clinical values (present, unflagged) of session `key` received from `from` until
    /// `to` (open-ended without), in the order received.
    fn clinical_values(
        &self,
        key: i64,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<(Vital, f64)>, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "reading a session's baseline", e);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT vital, value FROM reading WHERE session_key = ?1 AND received_us >= ?2 \
                 AND received_us < ?3 AND quality = '' AND value IS NOT NULL \
                 ORDER BY received_us, rowid",
            )
            .map_err(err)?
            .query_map(
                params![
                    key,
                    from.timestamp_micros(),
                    to.map_or(i64::MAX, |t| t.timestamp_micros())
                ],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, f64>(1)?)),
            )
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter()
            .map(|(vital, value)| Ok((self.parse("vital", &vital, |s| s.parse().ok())?, value)))
            .collect()
    }

    /// Calls `each` with every reading of `session`, in the order received (readings received
    /// at the same time in the order written), one at a time: a long session is never held in
    /// memory. Stops at the first error `each` returns, and returns it; otherwise returns how
    /// many readings there were.
    pub fn readings<E>(
        &self,
        session: SessionKey,
        mut each: impl FnMut(StoredReading) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        self.require_session(session)?;
        let err = |e| StoreError::from_sql(&self.path, "reading a session's readings", e);
        let mut stmt = self.conn.prepare_cached(READINGS_SQL).map_err(err)?;
        let mut rows = stmt.query([session.0]).map_err(err)?;
        let mut count = 0;
        // Readings of one device share its id, so one allocation serves a run of them.
        let mut device = DeviceId::new("");
        while let Some(row) = rows.next().map_err(err)? {
            let device_name = row
                .get_ref(0)
                .map_err(err)?
                .as_str()
                .map_err(|e| self.corrupt(format!("a reading's device is not text: {e}")))?;
            if device.as_str() != device_name {
                device = DeviceId::new(device_name);
            }
            let vital: String = row.get(1).map_err(err)?;
            let quality: String = row.get(4).map_err(err)?;
            let device_time: Option<i64> = row.get(5).map_err(err)?;
            let reading = StoredReading {
                device: device.clone(),
                vital: self.parse("vital", &vital, |s| s.parse().ok())?,
                value: row.get(2).map_err(err)?,
                unit: row.get(3).map_err(err)?,
                quality: self.parse("quality", &quality, parse_quality)?,
                device_time: device_time.map(|t| self.time(t)).transpose()?,
                received: self.time(row.get(6).map_err(err)?)?,
            };
            each(reading)?;
            count += 1;
        }
        Ok(count)
    }

    /// The timeline of `session`: phases, alarm transitions, notes, link changes and gaps, in
    /// time order (events at the same time in the order written).
    pub fn events(&self, session: SessionKey) -> Result<Vec<StoredEvent>, StoreError> {
        self.require_session(session)?;
        let err = |e| StoreError::from_sql(&self.path, "reading a session's events", e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, at_us, kind, who, phase, detail, device, link_state, gap_to_us, \
                 run, alarm_id, change, alarm_kind, priority, source, vital, value, \
                 limit_value, advice, json \
                 FROM event WHERE session_key = ?1 ORDER BY at_us, seq",
            )
            .map_err(err)?;
        let mut rows = stmt.query([session.0]).map_err(err)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let kind: String = row.get(2).map_err(err)?;
            let who: Option<String> = row.get(3).map_err(err)?;
            let detail: Option<String> = row.get(5).map_err(err)?;
            let device: Option<String> = row.get(6).map_err(err)?;
            let missing = |column: &str| self.corrupt(format!("a {kind} event has no {column}"));
            let what = match kind.as_str() {
                "phase" => {
                    let phase: String = row.get(4).map_err(err)?;
                    EventDetail::Phase {
                        phase: self.parse("phase", &phase, parse_phase)?,
                        by: who.ok_or_else(|| missing("who"))?,
                    }
                }
                "note" => EventDetail::Note {
                    text: detail.ok_or_else(|| missing("text"))?,
                    by: who.ok_or_else(|| missing("who"))?,
                },
                "link" => {
                    let state: String = row.get(7).map_err(err)?;
                    EventDetail::Link {
                        device: DeviceId::new(&device.ok_or_else(|| missing("device"))?),
                        state: self.parse("link state", &state, parse_link_state)?,
                        detail,
                    }
                }
                "gap" => EventDetail::Gap {
                    to: self.time(row.get(8).map_err(err)?)?,
                    why: detail.ok_or_else(|| missing("reason"))?,
                },
                "alarm" => {
                    let alarm: i64 = row.get(10).map_err(err)?;
                    let alarm_kind: String = row.get(12).map_err(err)?;
                    let priority: String = row.get(13).map_err(err)?;
                    let vital: Option<String> = row.get(15).map_err(err)?;
                    EventDetail::Alarm(Box::new(StoredAlarm {
                        run: row.get(9).map_err(err)?,
                        alarm: u64::try_from(alarm)
                            .map_err(|_| self.corrupt(format!("alarm id {alarm}")))?,
                        change: row.get(11).map_err(err)?,
                        by: who,
                        kind: self.parse("alarm kind", &alarm_kind, parse_alarm_kind)?,
                        priority: self.parse("priority", &priority, parse_priority)?,
                        source: row.get(14).map_err(err)?,
                        device: DeviceId::new(&device.ok_or_else(|| missing("device"))?),
                        vital: vital
                            .map(|v| self.parse("vital", &v, |s| s.parse().ok()))
                            .transpose()?,
                        value: row.get(16).map_err(err)?,
                        limit: row.get(17).map_err(err)?,
                        message: detail.ok_or_else(|| missing("message"))?,
                        advice: row.get(18).map_err(err)?,
                        json: row.get(19).map_err(err)?,
                    }))
                }
                other => return Err(self.corrupt(format!("unknown event kind `{other}`"))),
            };
            events.push(StoredEvent {
                seq: row.get(0).map_err(err)?,
                at: self.time(row.get(1).map_err(err)?)?,
                what,
            });
        }
        Ok(events)
    }

    /// The open session's id and key, as the writer caches it.
    pub(super) fn open_session_key(&self) -> Result<Option<(SessionId, i64)>, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "finding the open session", e);
        let found = self
            .conn
            .prepare_cached("SELECT session_key, id FROM session WHERE ended_us IS NULL")
            .map_err(err)?
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(err)?
            .next()
            .transpose()
            .map_err(err)?;
        found
            .map(|(key, id)| Ok((self.session_id(&id)?, key)))
            .transpose()
    }

    fn phases(&self, key: i64) -> Result<Vec<PhaseEntry>, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "reading a session's phases", e);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT phase, at_us, who FROM event WHERE session_key = ?1 AND kind = 'phase' \
                 ORDER BY at_us, seq",
            )
            .map_err(err)?
            .query_map([key], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rows.into_iter()
            .map(|(phase, at, by)| {
                Ok(PhaseEntry {
                    phase: self.parse("phase", &phase, parse_phase)?,
                    at: self.time(at)?,
                    by,
                })
            })
            .collect()
    }

    fn alarm_counts(&self, key: i64) -> Result<AlarmCounts, StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "counting a session's alarms", e);
        let mut counts = AlarmCounts::default();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT top, count(*) FROM ( \
                     SELECT max(CASE priority WHEN 'low' THEN 1 WHEN 'medium' THEN 2 \
                                WHEN 'high' THEN 3 END) AS top \
                     FROM event WHERE session_key = ?1 AND kind = 'alarm' \
                     GROUP BY run, alarm_id) \
                 GROUP BY top",
            )
            .map_err(err)?;
        let mut rows = stmt.query(params![key]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let top: Option<i64> = row.get(0).map_err(err)?;
            let count: u32 = row.get(1).map_err(err)?;
            match top {
                Some(1) => counts.low = count,
                Some(2) => counts.medium = count,
                Some(3) => counts.high = count,
                _ => return Err(self.corrupt("an alarm with no known priority".into())),
            }
        }
        Ok(counts)
    }

    fn require_session(&self, session: SessionKey) -> Result<(), StoreError> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM session WHERE session_key = ?1")
            .and_then(|mut stmt| stmt.exists([session.0]))
            .map_err(|e| StoreError::from_sql(&self.path, "finding a session", e))?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::NoSuchSession {
                path: self.path.clone(),
                key: session.0,
            })
        }
    }

    fn time(&self, micros: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| self.corrupt(format!("time {micros} µs is out of range")))
    }

    fn session_id(&self, id: &str) -> Result<SessionId, StoreError> {
        SessionId::parse(id).map_err(|e| self.corrupt(format!("session id {id:?}: {e}")))
    }

    fn parse<T>(
        &self,
        what: &str,
        text: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        parse(text).ok_or_else(|| self.corrupt(format!("unknown {what} `{text}`")))
    }

    fn corrupt(&self, detail: String) -> StoreError {
        corrupt(&self.path, detail)
    }
}

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

fn parse_quality(text: &str) -> Option<Quality> {
    use serde::Deserialize;
    use serde::de::value::{Error, SeqDeserializer};
    if text.is_empty() {
        return Some(Quality::GOOD);
    }
    Quality::deserialize(SeqDeserializer::<_, Error>::new(text.split(','))).ok()
}

fn parse_phase(text: &str) -> Option<Phase> {
    Phase::ALL.into_iter().find(|p| p.as_str() == text)
}

fn parse_link_state(text: &str) -> Option<LinkState> {
    [LinkState::Connecting, LinkState::Connected, LinkState::Lost]
        .into_iter()
        .find(|s| s.as_str() == text)
}

fn parse_priority(text: &str) -> Option<Priority> {
    Priority::ALL.into_iter().find(|p| p.as_str() == text)
}

fn parse_alarm_kind(text: &str) -> Option<AlarmKind> {
    [AlarmKind::Physiological, AlarmKind::Technical]
        .into_iter()
        .find(|k| k.as_str() == text)
}
