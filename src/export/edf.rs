//! EDF+ export (`EDF+C`, continuous), written here rather than with a crate: the existing
//! crates write headers that strict readers (EDFlib, pyedflib) reject. Checked in the tests by
//! pyedflib (strict) and MNE.
//!
//! **Layout.** Data records of [`RECORD_S`] seconds. One signal per device and vital (labels
//! such as `SpO2 ox1`, `NIBP sys cuff1`), in device then vital order, then the `EDF Annotations`
//! signal. The header is space-padded printable ASCII; the patient field is
//! `<session id> X X X` (the pseudonymous id, nothing else); the recording field is
//! `Startdate dd-MMM-yyyy X X vitalwatch`; start date and time (`dd.mm.yy`, `hh.mm.ss`) are the
//! session's start, **in UTC**, to the second (the first record starts at the session's
//! start, truncated to the second).
//!
//! **Values.** Each signal stores digital values at a fixed resolution (0.01 % for SpO2 and the
//! perfusion index, 0.1 for pulse, pressures and respiratory rate), so a value reads back
//! exactly: physical minimum and maximum are `-32768 × resolution` and `32767 × resolution`.
//! The digital minimum, -32768, means **no value** (it reads back as the physical minimum,
//! for example -327.68 % for SpO2, far outside any real value): before a device's first
//! reading, when it reported none, when a reading was flagged (artefact, sensor off...), and
//! when a value is too old to hold.
//!
//! **Rates.** A continuous signal (an oximeter's vitals, sampled every few seconds at most) is
//! written at its native rate, learnt from its readings (1 Hz for the usual oximeter): each
//! sample is the reading received in its slot; a slot a reading missed by jitter holds the
//! previous value for up to 2.5 intervals, then has no value.
//!
//! **Cuff values** (intermittent signals: one measurement every few minutes) are signals at
//! 1 Hz whose samples **hold** the latest measurement until the next one, as a monitor's NIBP
//! display does, for up to [`HOLD_INTERMITTENT_S`] seconds (after which the signal has no value
//! rather than show a stale pressure), and each measurement is also an annotation at its exact
//! time (`NIBP cuff1 182/110 (134) mmHg, pulse 80 /min`), so a viewer shows both the trend and
//! when each measurement was taken.
//!
//! **Annotations** (`EDF Annotations`, TALs `+onset[\x15duration]\x14text\x14\x00` after each
//! record's time-keeping TAL `+start\x14\x14\x00`): phase changes, every alarm transition
//! (change, priority, rule or condition, device, message, advice, who), notes, link changes,
//! gaps (with their duration), the cuff measurements, and stretches in which an oximeter's
//! readings were flagged or empty (with their duration and flags). Onsets are seconds from the
//! file's start, to the microsecond. An annotation goes in the record holding its onset, or
//! when that record is full in the next one with room (EDF+ allows any record); the annotation
//! signal is sized so that the longest annotation fits a record. Text is UTF-8 (as EDF+ allows),
//! with control characters replaced by spaces.
//!
//! The readings are streamed twice: a first pass learns the signals, their rates and the
//! annotations from the readings; the second writes the records one at a time.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Datelike, DurationRound, TimeDelta, Timelike, Utc};

use super::codes::{edf_signal, is_bp};
use super::scan::{Scan, scan_with};
use super::{ExportError, Progress, Session, Ticker, number, seconds_between, seconds_text};
use crate::recorder::{EventDetail, Store, StoredReading};
use crate::vitals::{DeviceId, Quality, Vital};

/// Seconds per data record.
pub const RECORD_S: u32 = 10;
/// How long a cuff measurement is held in its signal, at most.
pub const HOLD_INTERMITTENT_S: f64 = 1200.0;
/// The digital value that means "no value".
pub const NO_VALUE: i16 = i16::MIN;
/// A stretch of unusable oximeter readings ends after this long without one.
const UNUSABLE_GAP_S: f64 = 30.0;
/// The annotation signal's bytes per record, at least.
const MIN_ANNOTATION_BYTES: usize = 120;
/// A session longer than this (a week) is refused rather than written as millions of records:
/// a recording that long is a damaged clock, not a dosing session.
const MAX_SPAN_S: f64 = 7.0 * 24.0 * 3600.0;

/// Writes `session` as EDF+. Returns how many readings were read (on the writing pass).
pub fn write(
    store: &Store,
    session: &Session,
    out: &mut dyn Write,
    progress: Progress<'_>,
) -> Result<u64, ExportError> {
    let t0 = session
        .start()
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or(session.start());

    // First pass: the signals and the annotations the readings make.
    let mut gathering = ReadingAnnotations::default();
    let found = scan_with(store, session, |r| gathering.add(t0, r))?;
    let mut annotations = gathering.finish(t0, &found);
    annotations.extend(event_annotations(session, t0));
    annotations.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));

    let signals: Vec<SignalPlan> = found
        .signals
        .values()
        .map(|signal| {
            let (name, dimension, resolution) = edf_signal(signal.vital);
            let continuous = signal.is_continuous();
            let per_second = if continuous {
                signal.samples_per_second()
            } else {
                1
            };
            SignalPlan {
                device: signal.device.clone(),
                vital: signal.vital,
                name,
                dimension,
                resolution,
                samples: (per_second * RECORD_S) as usize,
                hold_s: if continuous {
                    (2.5 * signal.interval_s.unwrap_or(1.0)).max(2.0)
                } else {
                    HOLD_INTERMITTENT_S
                },
                continuous,
            }
        })
        .collect();

    // How long the file runs: to the session's end, its last reading or its last annotation.
    let mut last_s = seconds_between(t0, session.end).max(0.0);
    if let Some(last) = found.last {
        last_s = last_s.max(seconds_between(t0, last));
    }
    if let Some(a) = annotations.last() {
        last_s = last_s.max(a.onset_s + a.duration_s.unwrap_or(0.0));
    }
    if last_s.is_nan() || last_s > MAX_SPAN_S {
        return Err(ExportError::Invalid(format!(
            "session {} spans {:.0} hours from its start to its last record: too long for an \
             EDF+ export (is a clock wrong?)",
            session.summary.id,
            last_s / 3600.0
        )));
    }
    let records = (last_s / f64::from(RECORD_S)).floor() as u64 + 1;
    let plan = AnnotationPlan::new(&annotations, records);

    let labels = labels(&signals);
    write_header(out, session, t0, &signals, &labels, &plan)?;

    // Second pass: the records.
    let mut writer = RecordWriter::new(&signals, &plan, t0, out);
    let mut ticker = Ticker::new(session, progress);
    let count = store.readings(session.key(), |r: StoredReading| {
        ticker.tick(r.received);
        writer.add(&r)
    })?;
    writer.finish()?;
    ticker.done();
    Ok(count)
}

/// One signal of the file.
struct SignalPlan {
    device: DeviceId,
    vital: Vital,
    name: &'static str,
    dimension: &'static str,
    /// The physical value of one digital step.
    resolution: f64,
    /// Samples per data record.
    samples: usize,
    /// How long a value is held in the slots after it, seconds.
    hold_s: f64,
    continuous: bool,
}

impl SignalPlan {
    fn physical_min(&self) -> f64 {
        f64::from(i16::MIN) * self.resolution
    }
    fn physical_max(&self) -> f64 {
        f64::from(i16::MAX) * self.resolution
    }
    fn digital(&self, value: f64) -> i16 {
        let steps = (value / self.resolution).round();
        // NO_VALUE (-32768) is reserved.
        steps.clamp(f64::from(i16::MIN + 1), f64::from(i16::MAX)) as i16
    }
}

/// One annotation: onset in seconds from the file's start, optional duration, text.
#[derive(Debug, Clone, PartialEq)]
struct Annotation {
    onset_s: f64,
    duration_s: Option<f64>,
    text: String,
}

impl Annotation {
    /// Its TAL: `+onset[\x15duration]\x14text\x14\x00`.
    fn tal(&self) -> Vec<u8> {
        let mut tal = format!("{:+}", Signed(self.onset_s)).into_bytes();
        if let Some(duration) = self.duration_s {
            tal.push(0x15);
            tal.extend_from_slice(seconds_text(duration.max(0.0)).as_bytes());
        }
        tal.push(0x14);
        tal.extend_from_slice(clean_text(&self.text).as_bytes());
        tal.push(0x14);
        tal.push(0);
        tal
    }
}

/// An onset with its sign, as a TAL wants it (`+12.5`, `-0.25`).
struct Signed(f64);

impl std::fmt::Display for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = seconds_text(self.0.abs());
        if self.0 < 0.0 && text != "0" {
            write!(f, "-{text}")
        } else {
            write!(f, "+{text}")
        }
    }
}

/// Annotation text: UTF-8 with every control character (the TAL separators among them)
/// replaced by a space.
fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The time-keeping TAL of record `index`.
fn time_keeping(index: u64) -> Vec<u8> {
    format!("+{}\x14\x14\x00", index * u64::from(RECORD_S)).into_bytes()
}

/// Which annotations go in which record, and how many bytes the annotation signal needs.
struct AnnotationPlan {
    /// Bytes of the annotation signal per record (even).
    bytes: usize,
    records: u64,
    /// Per record (that has any): the TALs it carries after its time-keeping TAL.
    placed: BTreeMap<u64, Vec<u8>>,
}

impl AnnotationPlan {
    fn new(annotations: &[Annotation], records: u64) -> Self {
        let tals: Vec<(u64, Vec<u8>)> = annotations
            .iter()
            .map(|a| {
                let record = (a.onset_s.max(0.0) / f64::from(RECORD_S)).floor() as u64;
                (record, a.tal())
            })
            .collect();
        let longest = tals.iter().map(|(_, tal)| tal.len()).max().unwrap_or(0);
        let mut records = records.max(1);
        let keeping = time_keeping(records + tals.len() as u64).len();
        let bytes = (keeping + longest)
            .max(MIN_ANNOTATION_BYTES)
            .next_multiple_of(2);
        let mut placed: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = 0u64;
        for (record, tal) in tals {
            let mut at = record.max(next);
            loop {
                let used = time_keeping(at).len() + placed.get(&at).map_or(0, Vec::len);
                if used + tal.len() <= bytes {
                    placed.entry(at).or_default().extend_from_slice(&tal);
                    break;
                }
                at += 1;
            }
            next = at;
            records = records.max(at + 1);
        }
        AnnotationPlan {
            bytes,
            records,
            placed,
        }
    }

    /// The annotation signal's bytes for record `index`.
    fn record(&self, index: u64) -> Vec<u8> {
        let mut bytes = time_keeping(index);
        if let Some(tals) = self.placed.get(&index) {
            bytes.extend_from_slice(tals);
        }
        bytes.resize(self.bytes, 0);
        bytes
    }
}

/// The readings of one device at one instant: vital, value, quality.
type InstantReadings = Vec<(Vital, Option<f64>, Quality)>;

/// The annotations the readings make: cuff measurements, and stretches of unusable oximeter
/// readings.
#[derive(Default)]
struct ReadingAnnotations {
    /// Per device: the instant being gathered and its readings.
    instants: BTreeMap<DeviceId, (DateTime<Utc>, InstantReadings)>,
    measurements: Vec<Annotation>,
    /// Per device: the open stretch of unusable readings (first, last, flags).
    unusable: BTreeMap<DeviceId, (DateTime<Utc>, DateTime<Utc>, Quality)>,
    stretches: Vec<(DeviceId, Annotation)>,
}

impl ReadingAnnotations {
    fn add(&mut self, t0: DateTime<Utc>, r: &StoredReading) {
        // A cuff's measurement: the readings of one device at one instant.
        let same = self
            .instants
            .get(&r.device)
            .is_some_and(|(at, _)| *at == r.received);
        if !same && let Some((at, readings)) = self.instants.remove(&r.device) {
            self.measurement(t0, &r.device, at, &readings);
        }
        self.instants
            .entry(r.device.clone())
            .or_insert_with(|| (r.received, Vec::new()))
            .1
            .push((r.vital, r.value, r.quality));

        // Unusable stretches.
        let usable = r.value.is_some() && r.quality.is_good();
        let open = self.unusable.get(&r.device).copied();
        match (usable, open) {
            (true, Some(_)) => self.close(t0, &r.device),
            (false, Some((_, last, _))) if seconds_between(last, r.received) > UNUSABLE_GAP_S => {
                self.close(t0, &r.device);
                self.unusable
                    .insert(r.device.clone(), (r.received, r.received, r.quality));
            }
            (false, Some((first, _, flags))) => {
                self.unusable
                    .insert(r.device.clone(), (first, r.received, flags | r.quality));
            }
            (false, None) => {
                self.unusable
                    .insert(r.device.clone(), (r.received, r.received, r.quality));
            }
            (true, None) => {}
        }
    }

    fn measurement(
        &mut self,
        t0: DateTime<Utc>,
        device: &DeviceId,
        at: DateTime<Utc>,
        readings: &[(Vital, Option<f64>, Quality)],
    ) {
        if !readings.iter().any(|(vital, _, _)| is_bp(*vital)) {
            return;
        }
        let value = |wanted: Vital| {
            readings
                .iter()
                .find(|(vital, _, _)| *vital == wanted)
                .and_then(|(_, value, quality)| value.filter(|_| quality.is_good()))
                .map_or_else(|| "---".to_string(), number)
        };
        let mut flags = Quality::GOOD;
        for (_, _, quality) in readings {
            flags |= *quality;
        }
        let mut text = format!(
            "NIBP {device} {}/{} ({}) mmHg",
            value(Vital::Systolic),
            value(Vital::Diastolic),
            value(Vital::MeanArterial)
        );
        if readings.iter().any(|(v, _, _)| *v == Vital::PulseRate) {
            text.push_str(&format!(", pulse {} /min", value(Vital::PulseRate)));
        }
        if !flags.is_good() {
            text.push_str(&format!(
                " [flagged: {}]",
                flags.names().collect::<Vec<_>>().join(", ")
            ));
        }
        self.measurements.push(Annotation {
            onset_s: seconds_between(t0, at),
            duration_s: None,
            text,
        });
    }

    fn close(&mut self, t0: DateTime<Utc>, device: &DeviceId) {
        if let Some((first, last, flags)) = self.unusable.remove(device) {
            let why = if flags.is_good() {
                "no value".to_string()
            } else {
                flags.names().collect::<Vec<_>>().join(", ")
            };
            self.stretches.push((
                device.clone(),
                Annotation {
                    onset_s: seconds_between(t0, first),
                    duration_s: Some(seconds_between(first, last) + 1.0),
                    text: format!("{device}: no clinical value ({why})"),
                },
            ));
        }
    }

    /// The annotations, once every reading was seen: unusable stretches only for devices
    /// that are not cuffs (a cuff's failed measurement is in its measurement annotation).
    fn finish(mut self, t0: DateTime<Utc>, found: &Scan) -> Vec<Annotation> {
        let pending: Vec<(DeviceId, DateTime<Utc>, InstantReadings)> =
            std::mem::take(&mut self.instants)
                .into_iter()
                .map(|(device, (at, readings))| (device, at, readings))
                .collect();
        for (device, at, readings) in pending {
            self.measurement(t0, &device, at, &readings);
        }
        let open: Vec<DeviceId> = self.unusable.keys().cloned().collect();
        for device in open {
            self.close(t0, &device);
        }
        let mut all = self.measurements;
        all.extend(
            self.stretches
                .into_iter()
                .filter(|(device, _)| !found.measures_bp(device))
                .map(|(_, annotation)| annotation),
        );
        all
    }
}

/// The session's events as annotations.
fn event_annotations(session: &Session, t0: DateTime<Utc>) -> Vec<Annotation> {
    session
        .events
        .iter()
        .map(|event| {
            let onset_s = seconds_between(t0, event.at);
            let (text, duration_s) = match &event.what {
                EventDetail::Phase { phase, by } => (format!("Phase {phase} (by {by})"), None),
                EventDetail::Alarm(a) => {
                    let mut text = format!(
                        "Alarm {} {} {} {}: {}",
                        a.change, a.priority, a.source, a.device, a.message
                    );
                    if let Some(advice) = &a.advice {
                        text.push_str(&format!(" - advice: {advice}"));
                    }
                    if let Some(by) = &a.by {
                        text.push_str(&format!(" (by {by})"));
                    }
                    (text, None)
                }
                EventDetail::Note { text, by } => (format!("Note by {by}: {text}"), None),
                EventDetail::Link {
                    device,
                    state,
                    detail,
                } => (
                    match detail {
                        Some(detail) => format!("Link {device} {}: {detail}", state.as_str()),
                        None => format!("Link {device} {}", state.as_str()),
                    },
                    None,
                ),
                EventDetail::Gap { to, why } => (
                    format!("Gap in the recording: {why}"),
                    Some(seconds_between(event.at, *to)),
                ),
            };
            Annotation {
                onset_s,
                duration_s,
                text,
            }
        })
        .collect()
}

/// The signals' labels: `<signal> <device>`, printable ASCII, at most 16 characters, unique.
fn labels(signals: &[SignalPlan]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::with_capacity(signals.len());
    for (index, signal) in signals.iter().enumerate() {
        let mut label = ascii(&format!("{} {}", signal.name, signal.device), 16);
        if label == "EDF Annotations" || labels.contains(&label) {
            let suffix = format!("~{index}");
            label = ascii(&label, 16 - suffix.len()) + &suffix;
        }
        labels.push(label);
    }
    labels
}

/// `text` in printable ASCII (anything else as `_`), at most `max` characters.
fn ascii(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Appends `text` left-aligned in a field of `width`, space-padded; longer text is cut.
fn field(header: &mut Vec<u8>, text: &str, width: usize) {
    let text = ascii(text, width);
    header.extend_from_slice(text.as_bytes());
    header.extend(std::iter::repeat_n(b' ', width - text.len()));
}

/// A number for an 8-character header field (`-327.68`, `3276.7`, `10`).
fn header_number(value: f64) -> String {
    let mut text = number(value);
    if text.len() > 8 {
        text = format!("{value:.2}");
        text.truncate(8);
    }
    text
}

fn write_header(
    out: &mut dyn Write,
    session: &Session,
    t0: DateTime<Utc>,
    signals: &[SignalPlan],
    labels: &[String],
    plan: &AnnotationPlan,
) -> Result<(), ExportError> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let count = signals.len() + 1;
    let mut header = Vec::with_capacity(256 * (count + 1));
    field(&mut header, "0", 8);
    // Patient: code sex birthdate name; the pseudonymous session id only.
    field(&mut header, &format!("{} X X X", session.summary.id), 80);
    let month = MONTHS[t0.month0() as usize % 12];
    field(
        &mut header,
        &format!(
            "Startdate {:02}-{month}-{:04} X X vitalwatch",
            t0.day(),
            t0.year()
        ),
        80,
    );
    field(
        &mut header,
        &format!(
            "{:02}.{:02}.{:02}",
            t0.day(),
            t0.month(),
            t0.year().rem_euclid(100)
        ),
        8,
    );
    field(
        &mut header,
        &format!("{:02}.{:02}.{:02}", t0.hour(), t0.minute(), t0.second()),
        8,
    );
    field(&mut header, &(256 * (count + 1)).to_string(), 8);
    field(&mut header, "EDF+C", 44);
    field(&mut header, &plan.records.to_string(), 8);
    field(&mut header, &RECORD_S.to_string(), 8);
    field(&mut header, &count.to_string(), 4);

    let annotation_samples = plan.bytes / 2;
    let each = |header: &mut Vec<u8>,
                width: usize,
                f: &dyn Fn(&SignalPlan, &str) -> String,
                annotations: &str| {
        for (signal, label) in signals.iter().zip(labels) {
            field(header, &f(signal, label), width);
        }
        field(header, annotations, width);
    };
    each(
        &mut header,
        16,
        &|_, label| label.to_string(),
        "EDF Annotations",
    );
    each(
        &mut header,
        80,
        &|s, _| {
            let kind = match (s.continuous, is_bp(s.vital)) {
                (_, true) => "NIBP cuff, held between measurements",
                (true, false) => "pulse oximeter",
                (false, false) => "intermittent, held between measurements",
            };
            format!("{kind}; device {}", s.device)
        },
        "",
    );
    each(&mut header, 8, &|s, _| s.dimension.to_string(), "");
    each(
        &mut header,
        8,
        &|s, _| header_number(s.physical_min()),
        "-1",
    );
    each(&mut header, 8, &|s, _| header_number(s.physical_max()), "1");
    each(&mut header, 8, &|_, _| i16::MIN.to_string(), "-32768");
    each(&mut header, 8, &|_, _| i16::MAX.to_string(), "32767");
    each(&mut header, 80, &|_, _| String::new(), "");
    each(
        &mut header,
        8,
        &|s, _| s.samples.to_string(),
        &annotation_samples.to_string(),
    );
    each(&mut header, 32, &|_, _| String::new(), "");
    debug_assert_eq!(header.len(), 256 * (count + 1));
    out.write_all(&header)?;
    Ok(())
}

/// What a slot of a record holds, from the readings received in it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    /// No reading: hold the previous value if it is recent enough.
    Empty,
    /// A value, received at this offset (seconds from the file's start).
    Value(f64, i16),
    /// A reading without a clinical value (none, or flagged).
    NoValue,
}

/// Per signal while writing: the current record's slots and the value held from before.
struct SignalState {
    slots: Vec<Slot>,
    held: Option<(f64, i16)>,
}

/// Writes the data records one at a time as the readings arrive.
struct RecordWriter<'a, 'o> {
    signals: &'a [SignalPlan],
    index: BTreeMap<(DeviceId, Vital), usize>,
    plan: &'a AnnotationPlan,
    t0: DateTime<Utc>,
    out: &'o mut dyn Write,
    states: Vec<SignalState>,
    /// The record being filled.
    record: u64,
    buffer: Vec<u8>,
}

impl<'a, 'o> RecordWriter<'a, 'o> {
    fn new(
        signals: &'a [SignalPlan],
        plan: &'a AnnotationPlan,
        t0: DateTime<Utc>,
        out: &'o mut dyn Write,
    ) -> Self {
        RecordWriter {
            index: signals
                .iter()
                .enumerate()
                .map(|(i, s)| ((s.device.clone(), s.vital), i))
                .collect(),
            states: signals
                .iter()
                .map(|s| SignalState {
                    slots: vec![Slot::Empty; s.samples],
                    held: None,
                })
                .collect(),
            signals,
            plan,
            t0,
            out,
            record: 0,
            buffer: Vec::new(),
        }
    }

    fn add(&mut self, r: &StoredReading) -> Result<(), ExportError> {
        let offset = seconds_between(self.t0, r.received).max(0.0);
        let record = (offset / f64::from(RECORD_S)).floor() as u64;
        while self.record < record && self.record < self.plan.records {
            self.emit()?;
        }
        if record >= self.plan.records {
            return Ok(());
        }
        let Some(&signal) = self.index.get(&(r.device.clone(), r.vital)) else {
            return Ok(());
        };
        let plan = &self.signals[signal];
        let within = offset - (record * u64::from(RECORD_S)) as f64;
        let slot = ((within / f64::from(RECORD_S) * plan.samples as f64).floor() as usize)
            .min(plan.samples - 1);
        self.states[signal].slots[slot] = match r.value {
            Some(value) if r.quality.is_good() => Slot::Value(offset, plan.digital(value)),
            _ => Slot::NoValue,
        };
        Ok(())
    }

    /// Writes the current record and moves to the next.
    fn emit(&mut self) -> Result<(), ExportError> {
        self.buffer.clear();
        let start = (self.record * u64::from(RECORD_S)) as f64;
        for (plan, state) in self.signals.iter().zip(self.states.iter_mut()) {
            let step = f64::from(RECORD_S) / plan.samples as f64;
            for (index, slot) in state.slots.iter_mut().enumerate() {
                let digital = match *slot {
                    Slot::Value(at, digital) => {
                        state.held = Some((at, digital));
                        digital
                    }
                    Slot::NoValue => {
                        state.held = None;
                        NO_VALUE
                    }
                    Slot::Empty => {
                        let slot_start = start + index as f64 * step;
                        match state.held {
                            Some((at, digital)) if slot_start - at <= plan.hold_s => digital,
                            _ => NO_VALUE,
                        }
                    }
                };
                self.buffer.extend_from_slice(&digital.to_le_bytes());
                *slot = Slot::Empty;
            }
        }
        self.buffer
            .extend_from_slice(&self.plan.record(self.record));
        self.out.write_all(&self.buffer)?;
        self.record += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ExportError> {
        while self.record < self.plan.records {
            self.emit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tals_are_as_the_spec_writes_them() {
        let a = Annotation {
            onset_s: 903.5,
            duration_s: None,
            text: "Phase infusion\n(by nurse-a)".into(),
        };
        assert_eq!(a.tal(), b"+903.5\x14Phase infusion (by nurse-a)\x14\x00");
        let gap = Annotation {
            onset_s: 10.0,
            duration_s: Some(40.25),
            text: "Gap".into(),
        };
        assert_eq!(gap.tal(), b"+10\x1540.25\x14Gap\x14\x00");
        assert_eq!(time_keeping(3), b"+30\x14\x14\x00");
    }

    #[test]
    fn annotations_spill_into_the_next_record_with_room() {
        let long = "x".repeat(100);
        let annotations: Vec<Annotation> = (0..4)
            .map(|i| Annotation {
                onset_s: 1.0,
                duration_s: None,
                text: format!("{i}{long}"),
            })
            .collect();
        let plan = AnnotationPlan::new(&annotations, 2);
        // Each record holds one annotation of 100-odd bytes: four records are needed.
        assert_eq!(plan.records, 4);
        for record in 0..4 {
            let bytes = plan.record(record);
            assert_eq!(bytes.len(), plan.bytes);
            assert!(bytes.starts_with(&time_keeping(record)));
        }
    }

    #[test]
    fn labels_are_short_printable_and_unique() {
        let plan = |device: &str, vital| SignalPlan {
            device: DeviceId::new(device),
            vital,
            name: edf_signal(vital).0,
            dimension: "%",
            resolution: 0.01,
            samples: 10,
            hold_s: 2.5,
            continuous: true,
        };
        let signals = [
            plan("oximeter-by-the-chair", Vital::Spo2),
            plan("oximeter-by-the-chair-2", Vital::Spo2),
            plan("öx", Vital::PulseRate),
        ];
        assert_eq!(
            labels(&signals),
            ["SpO2 oximeter-by", "SpO2 oximeter-~1", "Pulse _x"]
        );
    }

    #[test]
    fn values_round_trip_at_their_resolution() {
        let plan = SignalPlan {
            device: DeviceId::new("ox1"),
            vital: Vital::Spo2,
            name: "SpO2",
            dimension: "%",
            resolution: 0.01,
            samples: 10,
            hold_s: 2.5,
            continuous: true,
        };
        assert_eq!(plan.digital(97.0), 9700);
        assert_eq!(plan.digital(1e9), i16::MAX);
        assert_eq!(plan.digital(-1e9), i16::MIN + 1);
        assert_eq!(header_number(plan.physical_min()), "-327.68");
        assert_eq!(header_number(plan.physical_max()), "327.67");
    }
}
