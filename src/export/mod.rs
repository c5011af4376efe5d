//! Post-session exports: one recorded session, read from the recorder's store, written for the
//! clinical record in one of five forms.
//!
//! | format | module | what it is for |
//! |---|---|---|
//! | `csv` | [`csv`] | the readings, one row per reading, for a spreadsheet |
//! | `csv-events` | [`csv`] | the session's timeline (phases, alarm transitions, notes, link changes, gaps), one row per event |
//! | `fhir` | [`fhir`] | a FHIR R4 `Bundle` (`collection`) for an electronic record: vital-signs `Observation`s, `Device`s, alarms as `DetectedIssue`s, session events as `Observation`s |
//! | `edf` | [`edf`] | an EDF+ (`EDF+C`) file for signal viewers: numerics as signals, events and alarms as annotations |
//! | `html` | [`html`] | a self-contained report (summary, alarm table, notes, SVG charts), printable to PDF from a browser |
//!
//! Every exporter reads the session through [`Store::readings`], one reading at a time, and
//! writes as it goes: a 4-hour session is never held in memory (the events, a few hundred at
//! most, are). The EDF+ writer and the FHIR writer first make one quick pass over the readings
//! ([`scan`]) to learn the session's signals and their rates, because an EDF+ header and a
//! FHIR bundle's `Device`s come before the data.
//!
//! Times are the daemon's receive times (`received`), UTC; a reading's device timestamp, when
//! its protocol has one, is kept in the CSV. Nothing here writes to the store: marking a
//! session exported ([`Store::mark_exported`]) needs the store open for writing, which is the
//! CLI's business (`vitalwatch export --mark-exported`).

pub mod cli;
pub mod csv;
pub mod edf;
pub mod fhir;
pub mod html;

mod codes;
mod scan;
mod timeline;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::recorder::{EventDetail, SessionKey, SessionSummary, Store, StoreError, StoredEvent};
use crate::vitals::Phase;

pub use scan::{Scan, SignalScan, scan};
pub use timeline::{AlarmSummary, alarm_summaries};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The readings, one row per reading (RFC 4180 CSV).
    Csv,
    /// The events and alarm transitions, one row per event (RFC 4180 CSV).
    CsvEvents,
    /// A FHIR R4 JSON `Bundle`.
    Fhir,
    /// An EDF+ file.
    Edf,
    /// A self-contained HTML report.
    Html,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Csv,
        Format::CsvEvents,
        Format::Fhir,
        Format::Edf,
        Format::Html,
    ];

    /// The name on the command line and in `?format=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::CsvEvents => "csv-events",
            Format::Fhir => "fhir",
            Format::Edf => "edf",
            Format::Html => "html",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv | Format::CsvEvents => "text/csv; charset=utf-8; header=present",
            Format::Fhir => "application/fhir+json; fhirVersion=4.0",
            // EDF has no registered media type.
            Format::Edf => "application/octet-stream",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    /// The file name's ending, after the session's name.
    pub fn file_suffix(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::CsvEvents => ".events.csv",
            Format::Fhir => ".fhir.json",
            Format::Edf => ".edf",
            Format::Html => ".html",
        }
    }

    /// Whether the output is binary (never written to a terminal).
    pub fn is_binary(self) -> bool {
        self == Format::Edf
    }

    /// The names of all formats, for error messages.
    pub fn names() -> String {
        Format::ALL.map(Format::as_str).join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown export format `{s}`; formats: {}", Format::names()))
    }
}

/// How to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// FHIR only: one Observation per vital per `interval_s` seconds (the median of the
    /// interval's unflagged readings) instead of one per reading. `None` or 0: per reading.
    pub interval_s: Option<u32>,
    /// When the export is made (the FHIR bundle's `timestamp`, the report's footer).
    pub generated: DateTime<Utc>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval_s: None,
            generated: Utc::now(),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
    /// No recorded session has the id asked for.
    #[error("{}", unknown_session_message(.id, .recorded))]
    UnknownSession {
        id: String,
        /// The recorded sessions, oldest first: `(id, key, start)`.
        recorded: Vec<(String, i64, DateTime<Utc>)>,
    },
    /// Several recorded sessions have the id asked for (a patient's second session): the key
    /// chooses one.
    #[error("{}", ambiguous_session_message(.id, .candidates))]
    AmbiguousSession {
        id: String,
        candidates: Vec<(i64, DateTime<Utc>)>,
    },
    /// A bad option (for example a zero interval).
    #[error("{0}")]
    Invalid(String),
}

fn unknown_session_message(id: &str, recorded: &[(String, i64, DateTime<Utc>)]) -> String {
    if recorded.is_empty() {
        return format!("no session `{id}` is recorded: the database holds no session yet");
    }
    // The most recent first: those are the ones a clinician is looking for.
    const SHOWN: usize = 20;
    let list: Vec<String> = recorded
        .iter()
        .rev()
        .take(SHOWN)
        .map(|(id, key, started)| format!("{id} (key {key}, started {})", rfc3339(*started)))
        .collect();
    let more = recorded.len().saturating_sub(SHOWN);
    format!(
        "no session `{id}` is recorded; recorded sessions, latest first: {}{}",
        list.join(", "),
        if more > 0 {
            format!(" and {more} older (see `vitalwatch sessions`)")
        } else {
            String::new()
        }
    )
}

fn ambiguous_session_message(id: &str, candidates: &[(i64, DateTime<Utc>)]) -> String {
    let list: Vec<String> = candidates
        .iter()
        .map(|(key, started)| format!("key {key} started {}", rfc3339(*started)))
        .collect();
    format!(
        "{} recorded sessions have the id `{id}` ({}): choose one with its key (--key N, or ?key=N)",
        candidates.len(),
        list.join("; ")
    )
}

/// The recorded session with id `id` (and key `key`, when given): the only one with that id,
/// or the one with that key. A clear error lists the recorded sessions otherwise.
pub fn find_session(
    store: &Store,
    id: &str,
    key: Option<i64>,
) -> Result<SessionSummary, ExportError> {
    let sessions = store.sessions()?;
    let mut matching: Vec<SessionSummary> = sessions
        .iter()
        .filter(|s| s.id.as_str() == id)
        .cloned()
        .collect();
    if matching.is_empty() {
        return Err(ExportError::UnknownSession {
            id: id.to_string(),
            recorded: sessions
                .iter()
                .map(|s| (s.id.to_string(), s.key.0, s.started))
                .collect(),
        });
    }
    if let Some(key) = key {
        return matching
            .into_iter()
            .find(|s| s.key.0 == key)
            .ok_or_else(|| {
                ExportError::Invalid(format!(
                    "session `{id}` has no recording with key {key}; its keys: {}",
                    sessions
                        .iter()
                        .filter(|s| s.id.as_str() == id)
                        .map(|s| s.key.0.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            });
    }
    if matching.len() > 1 {
        return Err(ExportError::AmbiguousSession {
            id: id.to_string(),
            candidates: matching.iter().map(|s| (s.key.0, s.started)).collect(),
        });
    }
    Ok(matching.remove(0))
}

/// A session as every exporter needs it: its summary, its timeline and its time span.
#[derive(Debug, Clone)]
pub struct Session {
    pub summary: SessionSummary,
    pub events: Vec<StoredEvent>,
    /// Its end, or for a session still open, its latest record so far.
    pub end: DateTime<Utc>,
    /// When the infusion phase began and ended (recovery, or the session's end), if it began.
    /// `end` is `None` while it runs.
    pub infusion: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Session {
    /// Reads `summary`'s timeline and span from `store`.
    pub fn load(store: &Store, summary: SessionSummary) -> Result<Session, ExportError> {
        let events = store.events(summary.key)?;
        let end = match summary.ended {
            Some(ended) => ended,
            None => store
                .open_session()?
                .filter(|open| open.key == summary.key)
                .map(|open| open.last_record)
                .unwrap_or(summary.started),
        };
        let end = end.max(summary.started);
        let infusion = infusion_window(&summary);
        Ok(Session {
            summary,
            events,
            end,
            infusion,
        })
    }

    pub fn key(&self) -> SessionKey {
        self.summary.key
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.summary.started
    }

    /// Whether the session was still open when exported.
    pub fn is_open(&self) -> bool {
        self.summary.ended.is_none()
    }

    /// Seconds from the session's start to `t`.
    pub fn offset_s(&self, t: DateTime<Utc>) -> f64 {
        seconds_between(self.start(), t)
    }

    /// Seconds since the infusion started, when `t` is at or after its start.
    pub fn since_infusion_s(&self, t: DateTime<Utc>) -> Option<f64> {
        let (start, _) = self.infusion?;
        (t >= start).then(|| seconds_between(start, t))
    }

    /// The session's length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.offset_s(self.end)
    }

    /// The phase the session was in at `t`.
    pub fn phase_at(&self, t: DateTime<Utc>) -> Phase {
        self.summary
            .phases
            .iter()
            .take_while(|p| p.at <= t)
            .last()
            .map_or(Phase::Baseline, |p| p.phase)
    }

    /// The notes, in time order: `(at, by, text)`.
    pub fn notes(&self) -> impl Iterator<Item = (DateTime<Utc>, &str, &str)> {
        self.events.iter().filter_map(|e| match &e.what {
            EventDetail::Note { text, by } => Some((e.at, by.as_str(), text.as_str())),
            _ => None,
        })
    }

    /// A file name for the export: the session id, its start date, and the format's suffix.
    pub fn file_name(&self, format: Format) -> String {
        format!(
            "{}_{}{}",
            self.summary.id,
            self.start().format("%Y-%m-%dT%H%MZ"),
            format.file_suffix()
        )
    }
}

/// When the infusion phase began, and when the phase after it began.
fn infusion_window(summary: &SessionSummary) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let index = summary
        .phases
        .iter()
        .position(|p| p.phase == Phase::Infusion)?;
    let start = summary.phases[index].at;
    let stop = summary.phases.get(index + 1).map(|p| p.at);
    Some((start, stop))
}

/// Reports how far an export has got, as a fraction of the session's span, every few thousand
/// readings (the CLI draws its progress bar from it).
pub type Progress<'a> = &'a mut dyn FnMut(f64);

/// How many readings between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// Calls the progress hook every [`PROGRESS_EVERY`] readings.
struct Ticker<'a> {
    progress: Progress<'a>,
    start: DateTime<Utc>,
    span_s: f64,
    count: u64,
}

impl<'a> Ticker<'a> {
    fn new(session: &Session, progress: Progress<'a>) -> Self {
        Ticker {
            progress,
            start: session.start(),
            span_s: session.duration_s(),
            count: 0,
        }
    }

    fn tick(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        if self.count.is_multiple_of(PROGRESS_EVERY) && self.span_s > 0.0 {
            let fraction = seconds_between(self.start, at) / self.span_s;
            (self.progress)(fraction.clamp(0.0, 1.0));
        }
    }

    fn done(&mut self) {
        (self.progress)(1.0);
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Readings read from the store.
    pub readings: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `session` in `format` to `out`. `out` should be buffered: exporters write in small
/// pieces.
pub fn export(
    store: &Store,
    session: &Session,
    format: Format,
    options: &Options,
    out: &mut dyn Write,
    progress: Progress<'_>,
) -> Result<Stats, ExportError> {
    if options.interval_s == Some(0) {
        return Err(ExportError::Invalid(
            "the summary interval must be at least 1 second".into(),
        ));
    }
    let mut counting = CountingWriter {
        inner: out,
        bytes: 0,
    };
    let readings = match format {
        Format::Csv => csv::write_readings(store, session, &mut counting, progress)?,
        Format::CsvEvents => {
            csv::write_events(session, &mut counting)?;
            progress(1.0);
            0
        }
        Format::Fhir => fhir::write(store, session, options, &mut counting, progress)?,
        Format::Edf => edf::write(store, session, &mut counting, progress)?,
        Format::Html => html::write(store, session, options, &mut counting, progress)?,
    };
    counting.flush()?;
    Ok(Stats {
        readings,
        bytes: counting.bytes,
    })
}

/// Counts what passes through.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// RFC 3339 in UTC with `Z`, to the microsecond when there is a fraction.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Seconds from `from` to `to` (negative when `to` is earlier), to the microsecond.
pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().map_or_else(
        || (to - from).num_milliseconds() as f64 / 1e3,
        |us| us as f64 / 1e6,
    )
}

/// A number as short as it can be written and read back exactly (`97`, `3.5`).
pub fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        String::new()
    }
}

/// Seconds with at most six decimals, trailing zeros dropped (`12`, `12.5`, `0.000001`).
pub fn seconds_text(seconds: f64) -> String {
    let mut text = format!("{seconds:.6}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    if text == "-0" { "0".to_string() } else { text }
}

/// Median of `values` (sorted in place); `None` when empty.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_their_names() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
        }
        let error = "pdf".parse::<Format>().unwrap_err();
        assert!(
            error.contains("csv, csv-events, fhir, edf, html"),
            "{error}"
        );
    }

    #[test]
    fn seconds_are_short_and_exact() {
        assert_eq!(seconds_text(12.0), "12");
        assert_eq!(seconds_text(12.5), "12.5");
        assert_eq!(seconds_text(0.000_001), "0.000001");
        assert_eq!(seconds_text(-0.0), "0");
        assert_eq!(number(97.0), "97");
        assert_eq!(number(3.5), "3.5");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
