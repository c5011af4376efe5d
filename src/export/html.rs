//! The session report: one self-contained HTML file for the clinical record (no script, no
//! external resource: styles inline, charts as inline SVG), printable to PDF from a browser
//! (a print stylesheet: A4, charts kept whole, colours kept).
//!
//! What it shows: the session's id, start, end and duration, its phases and the infusion
//! window; the baseline (median of the baseline phase's unflagged readings per vital); the
//! minimum SpO2 and when, and the time SpO2 was below 90 %; the pulse range; the peak systolic
//! pressure (with its diastolic) and when; the alarms by priority, each with when it was raised,
//! acknowledged (by whom, how long after) and ended; the notes; the link changes and gaps; and
//! charts of SpO2, pulse and blood pressure over the session with the infusion window shaded,
//! the phases marked and each alarm drawn over the chart of its vital (a band from raised to
//! ended in its priority's colour). Continuous signals are drawn as the mean of each of
//! [`BUCKETS`] slices of the session with a light band from its minimum to its maximum, so a
//! 4-hour session draws as fast as a short one; cuff measurements are drawn one by one, in the
//! anaesthesia-record style (▼ systolic, ▲ diastolic, a dot for the mean). Flagged readings
//! (artefact, sensor off...) are left out of the statistics and the lines.
//!
//! Times are UTC (said on the page), with the time since the session's start on the charts.
//! Every text from the record (ids, notes, messages, who) is HTML-escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Duration, Utc};

use super::codes::is_bp;
use super::scan::{Scan, scan};
use super::timeline::{AlarmSummary, alarm_summaries};
use super::{
    ExportError, Options, Progress, Session, Ticker, median, number, rfc3339, seconds_between,
};
use crate::engine::{AlarmKind, Priority};
use crate::recorder::{EventDetail, Store, StoredReading};
use crate::vitals::{DeviceId, Phase, Vital};

/// Slices of the session a continuous signal is drawn in.
pub const BUCKETS: usize = 720;
/// At most this many cuff measurements are kept for the chart (one every minute for 4 hours
/// is 240).
const MAX_POINTS: usize = 20_000;
/// Cuff measurements further apart than this are not joined by the chart's line.
const BP_LINE_GAP_S: f64 = 1200.0;
/// The SpO2 level the report times the patient below.
const SPO2_LOW: f64 = 90.0;

/// Writes the report of `session`. Returns how many readings were read.
pub fn write(
    store: &Store,
    session: &Session,
    options: &Options,
    out: &mut dyn Write,
    progress: Progress<'_>,
) -> Result<u64, ExportError> {
    let found = scan(store, session)?;
    let mut collector = Collector::new(session, &found);
    let mut ticker = Ticker::new(session, progress);
    let count = store.readings(session.key(), |r: StoredReading| {
        ticker.tick(r.received);
        collector.add(&r);
        Ok::<_, ExportError>(())
    })?;
    let facts = collector.finish();
    let page = render(session, &found, &facts, options);
    out.write_all(page.as_bytes())?;
    ticker.done();
    Ok(count)
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    min: f64,
    max: f64,
    sum: f64,
    count: u32,
}

impl Bucket {
    fn add(&mut self, value: f64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += value;
        self.count += 1;
    }
    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// One cuff measurement.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    at: DateTime<Utc>,
    device: DeviceId,
    systolic: Option<f64>,
    diastolic: Option<f64>,
    mean: Option<f64>,
}

/// Values with their times.
type Points = Vec<(DateTime<Utc>, f64)>;

/// SpO2 below the low level, per oximeter.
#[derive(Debug, Clone, Default)]
struct Spo2Stats {
    min: Option<(f64, DateTime<Utc>)>,
    below_s: f64,
    /// The previous reading: its time, and its value if it was good.
    previous: Option<(DateTime<Utc>, Option<f64>)>,
    hold_s: f64,
}

/// Everything the report needs from the readings, gathered in one pass in bounded memory.
struct Collector<'a> {
    session: &'a Session,
    found: &'a Scan,
    span_s: f64,
    /// Continuous signals (not from a cuff).
    lines: BTreeMap<(DeviceId, Vital), Vec<Bucket>>,
    /// Intermittent non-pressure values (a cuff's pulse): `(time, value)`.
    points: BTreeMap<(DeviceId, Vital), Points>,
    measurements: Vec<Measurement>,
    baseline: BTreeMap<Vital, Vec<f64>>,
    ranges: BTreeMap<Vital, (f64, f64)>,
    spo2: BTreeMap<DeviceId, Spo2Stats>,
    flagged: BTreeMap<(DeviceId, Vital), u64>,
}

/// What the pass found.
struct Facts {
    span_s: f64,
    lines: BTreeMap<(DeviceId, Vital), Vec<Bucket>>,
    points: BTreeMap<(DeviceId, Vital), Points>,
    measurements: Vec<Measurement>,
    baseline: BTreeMap<Vital, (f64, usize)>,
    ranges: BTreeMap<Vital, (f64, f64)>,
    spo2: BTreeMap<DeviceId, Spo2Stats>,
    flagged: BTreeMap<(DeviceId, Vital), u64>,
}

impl<'a> Collector<'a> {
    fn new(session: &'a Session, found: &'a Scan) -> Self {
        let end = found.last.map_or(session.end, |last| last.max(session.end));
        let span_s = seconds_between(session.start(), end).max(1.0);
        Collector {
            session,
            found,
            span_s,
            lines: BTreeMap::new(),
            points: BTreeMap::new(),
            measurements: Vec::new(),
            baseline: BTreeMap::new(),
            ranges: BTreeMap::new(),
            spo2: BTreeMap::new(),
            flagged: BTreeMap::new(),
        }
    }

    fn bucket_of(&self, at: DateTime<Utc>) -> usize {
        let fraction = self.session.offset_s(at) / self.span_s;
        ((fraction * BUCKETS as f64).floor().max(0.0) as usize).min(BUCKETS - 1)
    }

    fn add(&mut self, r: &StoredReading) {
        let good = r.value.filter(|_| r.quality.is_good());
        if good.is_none() {
            *self.flagged.entry((r.device.clone(), r.vital)).or_default() += 1;
        }
        if r.vital == Vital::Spo2 {
            self.spo2_reading(r, good);
        }
        let from_cuff = self.found.measures_bp(&r.device);
        if from_cuff && is_bp(r.vital) {
            self.pressure(r, good);
        }
        let Some(value) = good else { return };
        // Baseline pressures from the cuff, SpO2 and pulse from the oximeter.
        if self.session.phase_at(r.received) == Phase::Baseline && from_cuff == is_bp(r.vital) {
            self.baseline.entry(r.vital).or_default().push(value);
        }
        let range = self.ranges.entry(r.vital).or_insert((value, value));
        range.0 = range.0.min(value);
        range.1 = range.1.max(value);
        if from_cuff {
            if !is_bp(r.vital) {
                let points = self.points.entry((r.device.clone(), r.vital)).or_default();
                if points.len() < MAX_POINTS {
                    points.push((r.received, value));
                }
            }
        } else {
            let bucket = self.bucket_of(r.received);
            self.lines
                .entry((r.device.clone(), r.vital))
                .or_insert_with(|| vec![Bucket::default(); BUCKETS])[bucket]
                .add(value);
        }
    }

    fn spo2_reading(&mut self, r: &StoredReading, good: Option<f64>) {
        let hold_s = self
            .found
            .signals
            .get(&(r.device.clone(), Vital::Spo2))
            .and_then(|s| s.interval_s)
            .map_or(2.5, |interval| (interval * 2.5).max(2.0));
        let stats = self
            .spo2
            .entry(r.device.clone())
            .or_insert_with(|| Spo2Stats {
                hold_s,
                ..Spo2Stats::default()
            });
        if let Some((at, Some(value))) = stats.previous
            && value < SPO2_LOW
        {
            stats.below_s += seconds_between(at, r.received).clamp(0.0, stats.hold_s);
        }
        stats.previous = Some((r.received, good));
        if let Some(value) = good
            && stats.min.is_none_or(|(min, _)| value < min)
        {
            stats.min = Some((value, r.received));
        }
    }

    fn pressure(&mut self, r: &StoredReading, good: Option<f64>) {
        let same = self
            .measurements
            .last()
            .is_some_and(|m| m.at == r.received && m.device == r.device);
        if !same {
            if self.measurements.len() >= MAX_POINTS {
                return;
            }
            self.measurements.push(Measurement {
                at: r.received,
                device: r.device.clone(),
                systolic: None,
                diastolic: None,
                mean: None,
            });
        }
        if let Some(m) = self.measurements.last_mut() {
            match r.vital {
                Vital::Systolic => m.systolic = good,
                Vital::Diastolic => m.diastolic = good,
                Vital::MeanArterial => m.mean = good,
                _ => {}
            }
        }
    }

    fn finish(mut self) -> Facts {
        let end = self.session.start() + Duration::milliseconds((self.span_s * 1e3) as i64);
        for stats in self.spo2.values_mut() {
            if let Some((at, Some(value))) = stats.previous
                && value < SPO2_LOW
            {
                stats.below_s += seconds_between(at, end).clamp(0.0, stats.hold_s);
            }
        }
        Facts {
            span_s: self.span_s,
            lines: self.lines,
            points: self.points,
            measurements: self.measurements,
            baseline: self
                .baseline
                .into_iter()
                .filter_map(|(vital, mut values)| {
                    let count = values.len();
                    median(&mut values).map(|m| (vital, (m, count)))
                })
                .collect(),
            ranges: self.ranges,
            spo2: self.spo2,
            flagged: self.flagged,
        }
    }
}

/// HTML-escapes `text`.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `hh:mm:ss` UTC.
fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S").to_string()
}

/// `hh:mm` UTC.
fn short_clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M").to_string()
}

/// `YYYY-MM-DD hh:mm:ss` UTC.
fn date_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A span as `1 h 02 min`, `12 min 05 s` or `40 s`.
fn span(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as i64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 && s == 0 {
        format!("{m} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// Time since the session's start as `h:mm`.
fn elapsed(seconds: f64) -> String {
    let minutes = (seconds.max(0.0) / 60.0).round() as i64;
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

fn priority_class(priority: Priority) -> &'static str {
    priority.as_str()
}

const STYLE: &str = r#"
:root { --ink:#1d2430; --muted:#5b6472; --line:#d5dae1; --infusion:#efe6fa; --high:#c62828;
  --medium:#e08600; --low:#0f8fa6; --spo2:#1565c0; --pulse:#2e7d32; --sys:#b71c1c; --dia:#37474f; }
* { box-sizing: border-box; }
body { font: 14px/1.45 "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
  margin: 0; background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 40px; }
header { display: flex; justify-content: space-between; align-items: flex-end;
  border-bottom: 3px solid var(--ink); padding-bottom: 10px; margin-bottom: 16px; }
h1 { font-size: 24px; margin: 0; letter-spacing: .01em; }
h1 small { font-weight: 400; color: var(--muted); font-size: 15px; }
h2 { font-size: 16px; margin: 22px 0 8px; text-transform: uppercase; letter-spacing: .06em;
  color: var(--muted); border-bottom: 1px solid var(--line); padding-bottom: 3px; }
.meta { text-align: right; color: var(--muted); font-size: 12px; }
.banner { background: #fff4e0; border: 1px solid var(--medium); padding: 8px 12px; margin: 8px 0; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .label { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.card .value { font-size: 21px; font-weight: 600; }
.card .value small { font-size: 13px; font-weight: 400; color: var(--muted); }
.card .sub { font-size: 12px; color: var(--muted); }
.card.alert { border-color: var(--high); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pill { display: inline-block; padding: 0 8px; border-radius: 9px; color: #fff; font-size: 12px; font-weight: 600; }
.pill.high { background: var(--high); } .pill.medium { background: var(--medium); }
.pill.low { background: var(--low); }
.counts { display: flex; gap: 14px; margin: 4px 0 8px; }
.muted { color: var(--muted); }
figure { margin: 8px 0 4px; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-weight: 600; font-size: 13px; margin-bottom: 2px; }
figcaption span { font-weight: 400; color: var(--muted); margin-left: 8px; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px "Segoe UI", "Helvetica Neue", Arial, sans-serif; fill: var(--muted); }
svg .axis { stroke: var(--line); stroke-width: 1; }
svg .grid { stroke: #eef0f3; stroke-width: 1; }
.legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); margin: 2px 0 0 56px; flex-wrap: wrap; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: -1px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
footer { margin-top: 24px; font-size: 11px; color: var(--muted); border-top: 1px solid var(--line); padding-top: 6px; }
@page { size: A4; margin: 12mm; }
@media print {
  main { max-width: none; padding: 0; }
  body { font-size: 10.5pt; }
  .cards { grid-template-columns: repeat(4, 1fr); }
  h2 { break-after: avoid; page-break-after: avoid; }
  tr { break-inside: avoid; page-break-inside: avoid; }
}
"#;

fn render(session: &Session, found: &Scan, facts: &Facts, options: &Options) -> String {
    let alarms = alarm_summaries(&session.events);
    let summary = &session.summary;
    let mut page = String::with_capacity(64 * 1024);
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Session {id} — vital signs report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>",
        id = esc(summary.id.as_str())
    );
    let _ = writeln!(
        page,
        "<header><div><h1>Session {id} <small>vital signs during the dosing session</small></h1></div>\
         <div class=\"meta\">{date}<br>all times UTC</div></header>",
        id = esc(summary.id.as_str()),
        date = session.start().format("%A %-d %B %Y"),
    );
    if session.is_open() {
        let _ = writeln!(
            page,
            "<p class=\"banner\">This session was still open when the report was made: it covers \
             the record up to {}.</p>",
            date_time(session.end)
        );
    }

    summary_cards(&mut page, session, found, facts);
    page.push_str("<h2>Trends</h2>\n");
    page.push_str(&charts(session, facts, &alarms));
    alarm_table(&mut page, session, &alarms);
    notes_phases_and_recording(&mut page, session, found, facts);
    let _ = writeln!(
        page,
        "<footer>Session {id} (record key {key}), {start} – {end} UTC. Report made {made} UTC by \
         vitalwatch {version} from the session recording. vitalwatch is not a certified medical \
         device; the clinic's own monitor remains the primary record of alarms.</footer>\n\
         </main>\n</body>\n</html>",
        id = esc(summary.id.as_str()),
        key = summary.key.0,
        start = date_time(session.start()),
        end = date_time(session.end),
        made = rfc3339(options.generated),
        version = env!("CARGO_PKG_VERSION"),
    );
    page
}

/// The summary: session, infusion, baseline, alarm counts, SpO2, blood pressure and pulse.
fn summary_cards(page: &mut String, session: &Session, found: &Scan, facts: &Facts) {
    let summary = &session.summary;
    page.push_str("<h2>Summary</h2>\n<div class=\"cards\">\n");
    card(
        page,
        "Session",
        &format!(
            "{}<small> – {}</small>",
            short_clock(session.start()),
            short_clock(session.end)
        ),
        &format!(
            "{}, {} – {}",
            span(session.duration_s()),
            clock(session.start()),
            clock(session.end)
        ),
        false,
    );
    match session.infusion {
        Some((start, stop)) => {
            let stop_time = stop.unwrap_or(session.end);
            card(
                page,
                "Infusion",
                &format!(
                    "{}<small> – {}</small>",
                    short_clock(start),
                    stop.map_or("running".to_string(), short_clock)
                ),
                &format!(
                    "{}, {} – {}",
                    span(seconds_between(start, stop_time)),
                    clock(start),
                    if stop.is_some() {
                        clock(stop_time)
                    } else {
                        "still running".to_string()
                    }
                ),
                false,
            );
        }
        None => card(page, "Infusion", "–", "no infusion phase recorded", false),
    }
    let baseline = |vital: Vital| facts.baseline.get(&vital).map(|(m, _)| *m);
    let baseline_bp = match (baseline(Vital::Systolic), baseline(Vital::Diastolic)) {
        (Some(s), Some(d)) => format!("{}/{}", rounded(s), rounded(d)),
        _ => "–".to_string(),
    };
    card(
        page,
        "Baseline",
        &format!("{}<small> mmHg</small>", baseline_bp),
        &format!(
            "SpO2 {} % · pulse {} /min (median of the baseline phase)",
            baseline(Vital::Spo2).map_or("–".into(), rounded),
            baseline(Vital::PulseRate).map_or("–".into(), rounded)
        ),
        false,
    );
    let (high, medium, low) = (
        summary.alarms.high,
        summary.alarms.medium,
        summary.alarms.low,
    );
    card(
        page,
        "Alarms",
        &format!("{}<small> in all</small>", high + medium + low),
        &format!("{high} high · {medium} medium · {low} low"),
        high > 0,
    );

    // SpO2 and BP facts.
    let main_spo2 = facts
        .spo2
        .iter()
        .filter(|(_, s)| s.min.is_some())
        .max_by_key(|(device, _)| {
            found
                .signals
                .get(&((*device).clone(), Vital::Spo2))
                .map_or(0, |s| s.count)
        });
    match main_spo2 {
        Some((_, stats)) => {
            let (min, at) = stats.min.unwrap_or((f64::NAN, session.start()));
            card(
                page,
                "Minimum SpO2",
                &format!("{}<small> %</small>", rounded(min)),
                &format!(
                    "at {} ({} after the start, {})",
                    clock(at),
                    elapsed(session.offset_s(at)),
                    session.phase_at(at)
                ),
                min < SPO2_LOW,
            );
            card(
                page,
                "SpO2 below 90 %",
                &span(stats.below_s),
                "in all, unflagged readings",
                stats.below_s > 0.0,
            );
        }
        None => {
            card(page, "Minimum SpO2", "–", "no SpO2 recorded", false);
            card(page, "SpO2 below 90 %", "–", "no SpO2 recorded", false);
        }
    }
    let peak = facts
        .measurements
        .iter()
        .filter(|m| m.systolic.is_some())
        .max_by(|a, b| {
            a.systolic
                .unwrap_or(0.0)
                .total_cmp(&b.systolic.unwrap_or(0.0))
                .then(b.at.cmp(&a.at))
        });
    match peak {
        Some(m) => card(
            page,
            "Peak blood pressure",
            &format!(
                "{}/{}<small> mmHg</small>",
                m.systolic.map_or("–".into(), rounded),
                m.diastolic.map_or("–".into(), rounded)
            ),
            &format!(
                "at {}{} ({})",
                clock(m.at),
                session
                    .since_infusion_s(m.at)
                    .map(|s| format!(", {} into the infusion", span(s)))
                    .unwrap_or_default(),
                session.phase_at(m.at)
            ),
            m.systolic.is_some_and(|s| s >= 180.0),
        ),
        None => card(page, "Peak blood pressure", "–", "no cuff reading", false),
    }
    let pulse = facts.ranges.get(&Vital::PulseRate);
    card(
        page,
        "Pulse",
        &pulse.map_or("–".into(), |(lo, hi)| {
            format!("{}–{}<small> /min</small>", rounded(*lo), rounded(*hi))
        }),
        "lowest – highest, unflagged",
        false,
    );
    page.push_str("</div>\n");
}

/// The alarms, highest priority first, with when each was raised, acknowledged and ended.
fn alarm_table(page: &mut String, session: &Session, alarms: &[AlarmSummary]) {
    let counts = &session.summary.alarms;
    let (high, medium, low) = (counts.high, counts.medium, counts.low);
    let _ = writeln!(page, "<h2>Alarms</h2>");
    if alarms.is_empty() {
        page.push_str("<p class=\"muted\">No alarm during the session.</p>\n");
    } else {
        let _ = writeln!(
            page,
            "<div class=\"counts\"><span><span class=\"pill high\">high</span> {high}</span>\
             <span><span class=\"pill medium\">medium</span> {medium}</span>\
             <span><span class=\"pill low\">low</span> {low}</span></div>"
        );
        page.push_str(
            "<table><thead><tr><th>raised</th><th>priority</th><th>alarm</th><th>device</th>\
             <th>acknowledged</th><th>ended</th><th>message</th></tr></thead><tbody>\n",
        );
        let mut sorted: Vec<&AlarmSummary> = alarms.iter().collect();
        sorted.sort_by(|a, b| b.highest.cmp(&a.highest).then(a.raised.cmp(&b.raised)));
        for alarm in sorted {
            let acknowledged = match &alarm.acknowledged {
                Some((at, by)) => format!(
                    "{} by {} <span class=\"muted\">(+{})</span>",
                    clock(*at),
                    esc(by),
                    span(seconds_between(alarm.raised, *at))
                ),
                None => "<span class=\"muted\">–</span>".to_string(),
            };
            let ended = match alarm.ended {
                Some(at) => format!(
                    "{} <span class=\"muted\">({})</span>",
                    clock(at),
                    span(seconds_between(alarm.raised, at))
                ),
                None => "<span class=\"muted\">still active</span>".to_string(),
            };
            let escalated = if alarm.highest != alarm.first_priority {
                format!(
                    "<br><span class=\"muted\">{} → {} at {}</span>",
                    alarm.first_priority,
                    alarm.highest,
                    clock(alarm.highest_at)
                )
            } else {
                String::new()
            };
            let advice = alarm
                .advice
                .as_deref()
                .map(|a| format!("<br><span class=\"muted\">advice: {}</span>", esc(a)))
                .unwrap_or_default();
            let kind = if alarm.kind == AlarmKind::Technical {
                " <span class=\"muted\">(technical)</span>"
            } else {
                ""
            };
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td><span class=\"pill {p}\">{p}</span>{escalated}</td>\
                 <td>{}{kind}</td><td>{}</td><td>{acknowledged}</td><td>{ended}</td><td>{}{advice}</td></tr>",
                clock(alarm.raised),
                esc(&alarm.source),
                esc(alarm.device.as_str()),
                esc(&alarm.message),
                p = priority_class(alarm.highest),
            );
        }
        page.push_str("</tbody></table>\n");
    }
}

/// The notes and phases side by side, then what was recorded and the link changes and gaps.
fn notes_phases_and_recording(page: &mut String, session: &Session, found: &Scan, facts: &Facts) {
    let summary = &session.summary;
    page.push_str("<div class=\"two\"><section>\n<h2>Notes</h2>\n");
    let notes: Vec<_> = session.notes().collect();
    if notes.is_empty() {
        page.push_str("<p class=\"muted\">No note.</p>\n");
    } else {
        page.push_str("<table><tbody>\n");
        for (at, by, text) in notes {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}<br><span class=\"muted\">{}</span></td></tr>",
                clock(at),
                esc(text).replace('\n', "<br>"),
                esc(by)
            );
        }
        page.push_str("</tbody></table>\n");
    }
    page.push_str("</section><section>\n<h2>Phases</h2>\n<table><tbody>\n");
    for (index, phase) in summary.phases.iter().enumerate() {
        let until = summary
            .phases
            .get(index + 1)
            .map(|next| span(seconds_between(phase.at, next.at)))
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{until}</td><td class=\"muted\">{}</td></tr>",
            clock(phase.at),
            phase.phase,
            esc(&phase.by)
        );
    }
    page.push_str("</tbody></table>\n</section></div>\n");

    let technical: Vec<String> = session
        .events
        .iter()
        .filter_map(|e| match &e.what {
            EventDetail::Link {
                device,
                state,
                detail,
            } => Some(format!(
                "<tr><td>{}</td><td>{} {} <span class=\"muted\">{}</span></td></tr>",
                clock(e.at),
                esc(device.as_str()),
                state.as_str(),
                esc(detail.as_deref().unwrap_or(""))
            )),
            EventDetail::Gap { to, why } => Some(format!(
                "<tr><td>{}</td><td><b>nothing recorded for {}</b> <span class=\"muted\">{}</span></td></tr>",
                clock(e.at),
                span(seconds_between(e.at, *to)),
                esc(why)
            )),
            _ => None,
        })
        .collect();
    page.push_str(
        "<h2>Recording</h2>\n<div class=\"two\"><section><table><thead><tr><th>device</th><th>vital</th>\
         <th class=\"num\">readings</th><th class=\"num\">no clinical value</th><th>every</th></tr></thead><tbody>\n",
    );
    for signal in found.signals.values() {
        let flagged = facts
            .flagged
            .get(&(signal.device.clone(), signal.vital))
            .copied()
            .unwrap_or(0);
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(signal.device.as_str()),
            signal.vital,
            signal.count,
            flagged,
            signal.interval_s.map_or("–".into(), span)
        );
    }
    page.push_str("</tbody></table></section><section><table><thead><tr><th>time</th><th>link changes and gaps</th></tr></thead><tbody>\n");
    if technical.is_empty() {
        page.push_str("<tr><td colspan=\"2\" class=\"muted\">none</td></tr>\n");
    }
    for row in technical {
        page.push_str(&row);
        page.push('\n');
    }
    page.push_str("</tbody></table></section></div>\n");
}

fn card(page: &mut String, label: &str, value: &str, sub: &str, alert: bool) {
    let _ = writeln!(
        page,
        "<div class=\"card{}\"><div class=\"label\">{}</div><div class=\"value\">{value}</div>\
         <div class=\"sub\">{}</div></div>",
        if alert { " alert" } else { "" },
        esc(label),
        sub
    );
}

/// A value rounded for display (`97`, `3.5`).
fn rounded(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    number((value * 10.0).round() / 10.0)
}

/// Chart geometry, in SVG user units.
const WIDTH: f64 = 1000.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 14.0;
/// Room above the plot for the alarm bars and the unit.
const TOP: f64 = 34.0;
/// Room inside the plot on either side, so markers at the very start or end are whole.
const PAD: f64 = 8.0;
/// Rows of alarm bars above a plot.
const ALARM_LANES: usize = 3;

fn priority_colour(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "#c62828",
        Priority::Medium => "#e08600",
        Priority::Low => "#0f8fa6",
    }
}

struct Chart<'a> {
    session: &'a Session,
    span_s: f64,
    height: f64,
    bottom: f64,
    low: f64,
    high: f64,
    svg: String,
}

impl<'a> Chart<'a> {
    fn new(session: &'a Session, span_s: f64, height: f64, low: f64, high: f64) -> Self {
        Chart {
            session,
            span_s,
            height,
            bottom: 26.0,
            low,
            high: if high > low { high } else { low + 1.0 },
            svg: String::new(),
        }
    }

    fn x(&self, offset_s: f64) -> f64 {
        LEFT + PAD + (offset_s / self.span_s).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT - 2.0 * PAD)
    }

    fn x_at(&self, at: DateTime<Utc>) -> f64 {
        self.x(self.session.offset_s(at))
    }

    fn y(&self, value: f64) -> f64 {
        let plot = self.height - TOP - self.bottom;
        let fraction = ((value - self.low) / (self.high - self.low)).clamp(0.0, 1.0);
        TOP + plot * (1.0 - fraction)
    }

    fn plot_bottom(&self) -> f64 {
        self.height - self.bottom
    }

    /// The frame: infusion shading, phase lines, horizontal grid with labels, time axis.
    fn frame(&mut self, ticks: &[f64], unit: &str) {
        let (top, bottom) = (TOP, self.plot_bottom());
        if let Some((start, stop)) = self.session.infusion {
            let x0 = self.x_at(start);
            let x1 = self.x_at(stop.unwrap_or(self.session.end));
            let _ = write!(
                self.svg,
                "<rect x=\"{x0:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#efe6fa\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#7b5ea7\">infusion</text>",
                (x1 - x0).max(1.0),
                bottom - top,
                x0 + 4.0,
                top + 11.0,
            );
        }
        for tick in ticks {
            let y = self.y(*tick);
            let _ = write!(
                self.svg,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(*tick)
            );
        }
        let _ = write!(
            self.svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{unit}</text>",
            LEFT - 6.0,
            TOP - 12.0
        );
        // Phase changes after the start.
        for phase in self.session.summary.phases.iter().skip(1) {
            let x = self.x_at(phase.at);
            let _ = write!(
                self.svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{bottom:.1}\" stroke=\"#9e9e9e\" stroke-dasharray=\"2 3\"/>"
            );
        }
        // Time axis: elapsed and clock time.
        let step = tick_step(self.span_s);
        let mut t = 0.0;
        while t <= self.span_s + 0.5 {
            let x = self.x(t);
            let at = self.session.start() + Duration::seconds(t as i64);
            // The last label would overflow the chart if centred on its tick.
            let (label_x, anchor) = if x > WIDTH - 40.0 {
                (WIDTH, "end")
            } else {
                (x, "middle")
            };
            let _ = write!(
                self.svg,
                "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{label_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{} <tspan style=\"fill:#9aa1ab\">{}</tspan></text>",
                bottom + 4.0,
                bottom + 16.0,
                elapsed(t),
                at.format("%H:%M")
            );
            t += step;
        }
        let _ = write!(
            self.svg,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{bottom:.1}\" y2=\"{bottom:.1}\"/>",
            WIDTH - RIGHT
        );
    }

    /// The alarms whose vital is drawn here (or whose device's is): each a bar in its
    /// priority's colour above the plot, from raised to ended (in one of [`ALARM_LANES`] lanes,
    /// so overlapping alarms stay apart), and a line down the plot where it was raised.
    fn alarms(&mut self, alarms: &[&AlarmSummary]) {
        let bottom = self.plot_bottom();
        let mut lanes_end = [f64::NEG_INFINITY; ALARM_LANES];
        for alarm in alarms {
            let x0 = self.x_at(alarm.raised);
            let x1 = self
                .x_at(alarm.ended.unwrap_or(self.session.end))
                .max(x0 + 3.0);
            let lane = lanes_end
                .iter()
                .position(|end| *end < x0)
                .unwrap_or(ALARM_LANES - 1);
            // The bar's label follows it, or comes before it when there is no room after.
            let label_width = 6.0 * alarm.source.chars().count() as f64;
            let (label_x, anchor) = if x1 + 4.0 + label_width <= WIDTH {
                lanes_end[lane] = x1 + 8.0 + label_width;
                (x1 + 4.0, "start")
            } else {
                lanes_end[lane] = x1 + 4.0;
                (x0 - 4.0, "end")
            };
            let y = 2.0 + lane as f64 * 9.0;
            let colour = priority_colour(alarm.highest);
            let _ = write!(
                self.svg,
                "<g><title>{} alarm {}, {} – {}</title>\
                 <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"5\" rx=\"1.5\" fill=\"{colour}\"/>\
                 <text x=\"{label_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" style=\"font-size:9.5px;fill:{colour}\">{}</text>\
                 <line x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{y:.1}\" y2=\"{bottom:.1}\" stroke=\"{colour}\" stroke-width=\"1.2\" stroke-opacity=\"0.7\"/></g>",
                alarm.highest,
                esc(&alarm.source),
                clock(alarm.raised),
                alarm.ended.map_or("still active".to_string(), clock),
                x1 - x0,
                y + 6.0,
                esc(&alarm.source),
            );
        }
    }

    /// A continuous line: the buckets' means, with a band from their minimum to maximum.
    fn line(&mut self, buckets: &[Bucket], colour: &str) {
        let width = (WIDTH - LEFT - RIGHT - 2.0 * PAD) / BUCKETS as f64;
        let mut runs: Vec<Vec<(f64, &Bucket)>> = Vec::new();
        let mut current: Vec<(f64, &Bucket)> = Vec::new();
        for (index, bucket) in buckets.iter().enumerate() {
            if bucket.count == 0 {
                if !current.is_empty() {
                    runs.push(std::mem::take(&mut current));
                }
                continue;
            }
            current.push((LEFT + PAD + (index as f64 + 0.5) * width, bucket));
        }
        if !current.is_empty() {
            runs.push(current);
        }
        for run in runs {
            let mut band = String::new();
            for (x, b) in &run {
                let _ = write!(band, "{x:.1},{:.1} ", self.y(b.max));
            }
            for (x, b) in run.iter().rev() {
                let _ = write!(band, "{x:.1},{:.1} ", self.y(b.min));
            }
            let mut line = String::new();
            for (x, b) in &run {
                let _ = write!(line, "{x:.1},{:.1} ", self.y(b.mean().unwrap_or(self.low)));
            }
            let _ = write!(
                self.svg,
                "<polygon points=\"{}\" fill=\"{colour}\" fill-opacity=\"0.12\" stroke=\"none\"/>\
                 <polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" stroke-linejoin=\"round\"/>",
                band.trim_end(),
                line.trim_end()
            );
        }
    }

    fn reference(&mut self, value: f64, label: &str, colour: &str) {
        let y = self.y(value);
        let _ = write!(
            self.svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" style=\"fill:{colour}\">{label}</text>",
            WIDTH - RIGHT,
            WIDTH - RIGHT - 2.0,
            y - 3.0
        );
    }

    fn finish(self, label: &str) -> String {
        format!(
            "<svg viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">{}</svg>",
            self.height,
            esc(label),
            self.svg
        )
    }
}

/// The time axis's step: a tick every 10, 15, 30 or 60 minutes.
fn tick_step(span_s: f64) -> f64 {
    let minutes = if span_s <= 1800.0 {
        5.0
    } else if span_s <= 3600.0 {
        10.0
    } else if span_s <= 3.0 * 3600.0 {
        15.0
    } else if span_s <= 6.0 * 3600.0 {
        30.0
    } else {
        60.0
    };
    minutes * 60.0
}

/// Round ticks from `low` to `high`, every `step`.
fn ticks(low: f64, high: f64, step: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut t = (low / step).ceil() * step;
    while t <= high + 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// The alarms to draw over a chart of `vitals`: those of these vitals, and technical alarms of
/// the devices that measure them.
fn alarms_for<'a>(
    alarms: &'a [AlarmSummary],
    vitals: &[Vital],
    devices: &[DeviceId],
) -> Vec<&'a AlarmSummary> {
    alarms
        .iter()
        .filter(|a| match a.vital {
            Some(vital) => vitals.contains(&vital),
            None => devices.contains(&a.device),
        })
        .collect()
}

fn charts(session: &Session, facts: &Facts, alarms: &[AlarmSummary]) -> String {
    let mut html = String::new();
    let span_s = facts.span_s;

    // SpO2.
    let spo2_lines: Vec<(&DeviceId, &Vec<Bucket>)> = facts
        .lines
        .iter()
        .filter(|((_, v), _)| *v == Vital::Spo2)
        .map(|((d, _), b)| (d, b))
        .collect();
    let spo2_min = facts.ranges.get(&Vital::Spo2).map_or(90.0, |r| r.0);
    let low = ((spo2_min.min(88.0) - 2.0) / 5.0).floor() * 5.0;
    let mut chart = Chart::new(session, span_s, 190.0, low.max(0.0), 100.0);
    chart.frame(&ticks(low, 100.0, 5.0), "%");
    let devices: Vec<DeviceId> = spo2_lines.iter().map(|(d, _)| (*d).clone()).collect();
    chart.alarms(&alarms_for(alarms, &[Vital::Spo2], &devices));
    chart.reference(SPO2_LOW, "90 %", "#c62828");
    for (_, buckets) in &spo2_lines {
        chart.line(buckets, "#1565c0");
    }
    let min_text = facts
        .spo2
        .values()
        .filter_map(|s| s.min)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(min, at)| format!("lowest {} % at {}", rounded(min), clock(at)))
        .unwrap_or_default();
    let _ = writeln!(
        html,
        "<figure><figcaption>SpO2 <span>{min_text}</span></figcaption>{}</figure>",
        chart.finish("SpO2 over the session")
    );

    // Pulse.
    let pulse_lines: Vec<(&DeviceId, &Vec<Bucket>)> = facts
        .lines
        .iter()
        .filter(|((_, v), _)| *v == Vital::PulseRate)
        .map(|((d, _), b)| (d, b))
        .collect();
    let (pulse_lo, pulse_hi) = facts
        .ranges
        .get(&Vital::PulseRate)
        .copied()
        .unwrap_or((50.0, 100.0));
    let low = ((pulse_lo.min(60.0) - 5.0) / 20.0).floor() * 20.0;
    let high = ((pulse_hi.max(100.0) + 5.0) / 20.0).ceil() * 20.0;
    let mut chart = Chart::new(session, span_s, 170.0, low.max(0.0), high);
    chart.frame(&ticks(low, high, 20.0), "/min");
    // A cuff's technical alarms go on the blood-pressure chart, not here.
    let devices: Vec<DeviceId> = pulse_lines.iter().map(|(d, _)| (*d).clone()).collect();
    chart.alarms(&alarms_for(alarms, &[Vital::PulseRate], &devices));
    for (_, buckets) in &pulse_lines {
        chart.line(buckets, "#2e7d32");
    }
    for ((_, vital), points) in &facts.points {
        if *vital != Vital::PulseRate {
            continue;
        }
        for (at, value) in points {
            let _ = write!(
                chart.svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#fff\" stroke=\"#2e7d32\" stroke-width=\"1.5\"/>",
                chart.x_at(*at),
                chart.y(*value)
            );
        }
    }
    let _ = writeln!(
        html,
        "<figure><figcaption>Pulse <span>line: oximeter; circles: cuff</span></figcaption>{}</figure>",
        chart.finish("Pulse rate over the session")
    );

    // Blood pressure.
    let (bp_lo, bp_hi) = (
        facts.ranges.get(&Vital::Diastolic).map_or(60.0, |r| r.0),
        facts.ranges.get(&Vital::Systolic).map_or(160.0, |r| r.1),
    );
    let low = ((bp_lo.min(60.0) - 5.0) / 20.0).floor() * 20.0;
    let high = ((bp_hi.max(160.0) + 10.0) / 20.0).ceil() * 20.0;
    let mut chart = Chart::new(session, span_s, 230.0, low.max(0.0), high);
    chart.frame(&ticks(low, high, 20.0), "mmHg");
    let devices: Vec<DeviceId> = facts
        .measurements
        .iter()
        .map(|m| m.device.clone())
        .collect();
    chart.alarms(&alarms_for(
        alarms,
        &[Vital::Systolic, Vital::Diastolic, Vital::MeanArterial],
        &devices,
    ));
    if let Some((systolic, _)) = facts.baseline.get(&Vital::Systolic) {
        chart.reference(
            *systolic,
            &format!("baseline systolic {}", rounded(*systolic)),
            "#9e9e9e",
        );
    }
    // A faint line joins a cuff's systolic values, broken where it measured nothing for
    // longer than BP_LINE_GAP_S.
    let mut systolic_paths: Vec<String> = Vec::new();
    let mut previous: Option<(&DeviceId, DateTime<Utc>)> = None;
    for m in &facts.measurements {
        let x = chart.x_at(m.at);
        if let (Some(s), Some(d)) = (m.systolic, m.diastolic) {
            let _ = write!(
                chart.svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#90a4ae\" stroke-width=\"1.5\"/>",
                chart.y(s),
                chart.y(d)
            );
        }
        if let Some(s) = m.systolic {
            let y = chart.y(s);
            let joined = previous.is_some_and(|(device, at)| {
                *device == m.device && seconds_between(at, m.at) <= BP_LINE_GAP_S
            });
            match systolic_paths.last_mut() {
                Some(path) if joined => {
                    let _ = write!(path, " {x:.1},{y:.1}");
                }
                _ => systolic_paths.push(format!("{x:.1},{y:.1}")),
            }
            previous = Some((&m.device, m.at));
            let _ = write!(
                chart.svg,
                "<path d=\"M{:.1},{:.1} h10 l-5,8 z\" fill=\"#b71c1c\"><title>{} systolic {}</title></path>",
                x - 5.0,
                y - 8.0,
                clock(m.at),
                rounded(s)
            );
        }
        if let Some(d) = m.diastolic {
            let y = chart.y(d);
            let _ = write!(
                chart.svg,
                "<path d=\"M{:.1},{:.1} h10 l-5,-8 z\" fill=\"#37474f\"><title>{} diastolic {}</title></path>",
                x - 5.0,
                y + 8.0,
                clock(m.at),
                rounded(d)
            );
        }
        if let Some(mean) = m.mean {
            let _ = write!(
                chart.svg,
                "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"#6d4c41\"/>",
                chart.y(mean)
            );
        }
    }
    for path in systolic_paths {
        let _ = write!(
            chart.svg,
            "<polyline points=\"{path}\" fill=\"none\" stroke=\"#b71c1c\" stroke-opacity=\"0.35\" stroke-width=\"1\"/>"
        );
    }
    let peak = facts
        .ranges
        .get(&Vital::Systolic)
        .map(|r| format!("highest systolic {} mmHg", rounded(r.1)))
        .unwrap_or_default();
    let _ = writeln!(
        html,
        "<figure><figcaption>Blood pressure <span>{peak}</span></figcaption>{}</figure>",
        chart.finish("Blood pressure over the session")
    );
    html.push_str(
        "<div class=\"legend\"><span><i style=\"background:#efe6fa\"></i>infusion</span>\
         <span><i style=\"background:#1565c0\"></i>SpO2: mean and range of each slice</span>\
         <span><i style=\"background:#2e7d32\"></i>pulse</span>\
         <span style=\"color:#b71c1c\">▼ systolic</span><span style=\"color:#37474f\">▲ diastolic</span>\
         <span style=\"color:#6d4c41\">● mean</span>\
         <span>alarms: <i style=\"background:#c62828;height:5px\"></i>high \
         <i style=\"background:#e08600;height:5px\"></i>medium <i style=\"background:#0f8fa6;height:5px\"></i>low</span>\
         <span>┆ phase change</span></div>\n",
    );
    html
}
