//! CSV exports for a spreadsheet: the readings (`csv`, one row per reading) and the session's
//! timeline (`csv-events`, one row per phase change, alarm transition, note, link change or
//! gap). Two files, because the two tables have different columns: each opens as one clean
//! table with its header row.
//!
//! RFC 4180: comma-separated, CRLF line ends, a field quoted (`"`, inner quotes doubled) when it
//! holds a comma, a quote or a line break. UTF-8 with a byte-order mark, so that spreadsheet
//! programs read non-ASCII text (an alarm message's `≥`, a note) as UTF-8.
//!
//! **Formula injection**: a text cell (device, note, message, who...) that starts with `=`,
//! `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`, as OWASP and the
//! spreadsheet vendors advise, so a spreadsheet shows it as text instead of evaluating it. Numbers
//! and times are written by this module and never start with those characters (no negative
//! number is written: the seconds since the infusion's start are left empty before it).
//!
//! Readings columns: `time_utc` (RFC 3339, when the daemon received it),
//! `seconds_since_infusion_start` (empty before the infusion or without one), `phase`, `device`,
//! `vital`, `value` (empty when the device reported none), `unit`, `quality` (the quality
//! flags, `;`-separated, empty for a good reading), `device_time_utc` (the device's own
//! timestamp, when its protocol has one).
//!
//! Events columns: `time_utc`, `seconds_since_infusion_start`, `kind` (`phase`, `alarm`,
//! `note`, `link`, `gap`), `change` (the phase entered; the alarm transition; the link state),
//! `priority`, `rule_or_condition`, `alarm_kind`, `alarm_id` (`run-id`: one alarm's
//! transitions share it), `device`, `vital`, `value`, `limit`, `who`, `text` (the alarm's
//! message, the note, the link's or gap's detail), `advice`, `until_utc` (a gap's end).

use std::io::Write;

use super::{ExportError, Progress, Session, Ticker, number, rfc3339, seconds_text};
use crate::recorder::{EventDetail, Store, StoredReading};

const BOM: &str = "\u{feff}";

const READING_COLUMNS: [&str; 9] = [
    "time_utc",
    "seconds_since_infusion_start",
    "phase",
    "device",
    "vital",
    "value",
    "unit",
    "quality",
    "device_time_utc",
];

const EVENT_COLUMNS: [&str; 16] = [
    "time_utc",
    "seconds_since_infusion_start",
    "kind",
    "change",
    "priority",
    "rule_or_condition",
    "alarm_kind",
    "alarm_id",
    "device",
    "vital",
    "value",
    "limit",
    "who",
    "text",
    "advice",
    "until_utc",
];

/// A cell: text from outside (escaped against formula injection) or a value this module wrote.
enum Cell<'a> {
    Text(&'a str),
    Own(String),
}

/// Writes one CSV row.
fn row(out: &mut dyn Write, cells: &[Cell<'_>]) -> std::io::Result<()> {
    let mut line = String::with_capacity(128);
    for (index, cell) in cells.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        match cell {
            Cell::Text(text) => push_field(&mut line, text, true),
            Cell::Own(text) => push_field(&mut line, text, false),
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

/// Appends `text` as one field: prefixed with `'` when it could start a formula (text from
/// outside only), quoted when it must be.
fn push_field(line: &mut String, text: &str, guard: bool) {
    let formula = guard && text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = text.contains([',', '"', '\r', '\n']);
    if quote {
        line.push('"');
    }
    if formula {
        line.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    if quote {
        line.push('"');
    }
}

fn header(out: &mut dyn Write, columns: &[&str]) -> std::io::Result<()> {
    out.write_all(BOM.as_bytes())?;
    let cells: Vec<Cell<'_>> = columns.iter().map(|c| Cell::Own(c.to_string())).collect();
    row(out, &cells)
}

fn optional(value: Option<f64>) -> Cell<'static> {
    Cell::Own(value.map(number).unwrap_or_default())
}

/// Writes the readings of `session`, one row per reading, streaming them from `store`.
/// Returns how many there were.
pub fn write_readings(
    store: &Store,
    session: &Session,
    out: &mut dyn Write,
    progress: Progress<'_>,
) -> Result<u64, ExportError> {
    header(out, &READING_COLUMNS)?;
    let mut ticker = Ticker::new(session, progress);
    let mut quality = String::new();
    let count = store.readings(session.key(), |r: StoredReading| {
        quality.clear();
        for (index, name) in r.quality.names().enumerate() {
            if index > 0 {
                quality.push(';');
            }
            quality.push_str(name);
        }
        row(
            out,
            &[
                Cell::Own(rfc3339(r.received)),
                Cell::Own(
                    session
                        .since_infusion_s(r.received)
                        .map(seconds_text)
                        .unwrap_or_default(),
                ),
                Cell::Own(session.phase_at(r.received).as_str().to_string()),
                Cell::Text(r.device.as_str()),
                Cell::Own(r.vital.as_str().to_string()),
                optional(r.value),
                Cell::Text(&r.unit),
                Cell::Own(quality.clone()),
                Cell::Own(r.device_time.map(rfc3339).unwrap_or_default()),
            ],
        )?;
        ticker.tick(r.received);
        Ok::<_, ExportError>(())
    })?;
    ticker.done();
    Ok(count)
}

/// Writes the timeline of `session`, one row per event, in time order.
pub fn write_events(session: &Session, out: &mut dyn Write) -> Result<(), ExportError> {
    header(out, &EVENT_COLUMNS)?;
    for event in &session.events {
        let time = Cell::Own(rfc3339(event.at));
        let since = Cell::Own(
            session
                .since_infusion_s(event.at)
                .map(seconds_text)
                .unwrap_or_default(),
        );
        let empty = || Cell::Own(String::new());
        let cells = match &event.what {
            EventDetail::Phase { phase, by } => vec![
                time,
                since,
                Cell::Own("phase".into()),
                Cell::Own(phase.as_str().into()),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                Cell::Text(by),
                empty(),
                empty(),
                empty(),
            ],
            EventDetail::Alarm(a) => vec![
                time,
                since,
                Cell::Own("alarm".into()),
                Cell::Text(&a.change),
                Cell::Own(a.priority.as_str().into()),
                Cell::Text(&a.source),
                Cell::Own(a.kind.as_str().into()),
                Cell::Own(format!("{}-{}", a.run, a.alarm)),
                Cell::Text(a.device.as_str()),
                Cell::Own(a.vital.map(|v| v.as_str().to_string()).unwrap_or_default()),
                optional(a.value),
                optional(a.limit),
                Cell::Text(a.by.as_deref().unwrap_or("")),
                Cell::Text(&a.message),
                Cell::Text(a.advice.as_deref().unwrap_or("")),
                empty(),
            ],
            EventDetail::Note { text, by } => vec![
                time,
                since,
                Cell::Own("note".into()),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                Cell::Text(by),
                Cell::Text(text),
                empty(),
                empty(),
            ],
            EventDetail::Link {
                device,
                state,
                detail,
            } => vec![
                time,
                since,
                Cell::Own("link".into()),
                Cell::Own(state.as_str().into()),
                empty(),
                empty(),
                empty(),
                empty(),
                Cell::Text(device.as_str()),
                empty(),
                empty(),
                empty(),
                empty(),
                Cell::Text(detail.as_deref().unwrap_or("")),
                empty(),
                empty(),
            ],
            EventDetail::Gap { to, why } => vec![
                time,
                since,
                Cell::Own("gap".into()),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                empty(),
                Cell::Text(why),
                empty(),
                Cell::Own(rfc3339(*to)),
            ],
        };
        debug_assert_eq!(cells.len(), EVENT_COLUMNS.len());
        row(out, &cells)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str, guard: bool) -> String {
        let mut line = String::new();
        push_field(&mut line, text, guard);
        line
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_asks() {
        assert_eq!(field("plain", true), "plain");
        assert_eq!(field("a,b", true), "\"a,b\"");
        assert_eq!(field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\r\nlines", true), "\"two\r\nlines\"");
    }

    #[test]
    fn text_that_could_be_a_formula_is_kept_as_text() {
        assert_eq!(field("=1+1", true), "'=1+1");
        assert_eq!(field("+33 6", true), "'+33 6");
        assert_eq!(field("-2", true), "'-2");
        assert_eq!(field("@SUM(A1)", true), "'@SUM(A1)");
        assert_eq!(field("\tx", true), "'\tx");
        assert_eq!(field("=A1,B1", true), "\"'=A1,B1\"");
        // Numbers written by the exporter itself are left alone.
        assert_eq!(field("-2", false), "-2");
    }
}
