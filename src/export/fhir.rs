//! FHIR R4 (4.0.1) export: one JSON `Bundle` of type `collection` holding the session for an
//! electronic health record.
//!
//! What goes in, in this order:
//!
//! - an `Encounter`: the dosing session (its period, `finished` or `in-progress`, class `AMB`);
//! - a `Device` per device that reported (identifier and user-friendly name: its id in the
//!   config; its type as text, from the vitals it reported);
//! - the session's events as `Observation`s coded in vitalwatch's own code system
//!   `urn:vitalwatch:session-event` (`phase`, `note`, `link`, `gap`), with the phase, the note's
//!   text, the link state or the gap's reason as `valueString`, who as `performer.display`, and a
//!   gap's span as `effectivePeriod`. R4 has no resource for a session's phases or a monitor's
//!   event log; an Observation keeps the time, who and what, and every reader can show it;
//! - the **alarms** as `DetectedIssue`s, one per alarm (not per transition): `severity` is the
//!   highest priority it reached (high → `high`, medium → `moderate`, low → `low`),
//!   `identifiedPeriod` runs from raised to ended (no end while still active), `code` is the
//!   rule or technical condition (code system `urn:vitalwatch:alarm-source`), `author` the
//!   device, `detail` the message, advice, value, limit and every transition with its time,
//!   and each acknowledgement and audio pause is a `mitigation` with its time and who
//!   (`author.display`). `status` is `final` once the alarm ended, `preliminary` while it was
//!   still active. Chosen over `Flag` (a standing warning about a patient, with no severity or
//!   acknowledgement) and over an Observation with components (no severity, and no place for who
//!   acknowledged when): DetectedIssue carries both;
//! - the vital signs as `Observation`s with category `vital-signs`, coded with LOINC and IEEE
//!   11073 MDC and valued in UCUM units (see `codes.rs`): SpO2 with both LOINC codes 2708-6 and
//!   59408-5; blood pressure as the 85354-9 panel with the systolic (8480-6), diastolic (8462-4)
//!   and mean (8478-0) components of one cuff measurement; pulse 8867-4; respiratory rate
//!   9279-1. The perfusion index has no code in the table and is left out (it is in the CSV and
//!   EDF+ exports). By default one Observation per reading (per cuff measurement for the
//!   panel); a reading without a value has a `dataAbsentReason`, and a flagged one a `note`
//!   naming its flags. With a summary interval (`--interval 60`), one Observation per vital per
//!   interval, aligned to the session's start: the median of its unflagged readings over
//!   `effectivePeriod`, with a note giving how many readings it summarises.
//!
//! No names anywhere: every `subject` (and the DetectedIssues' `patient`) is a logical reference
//! by identifier to the pseudonymous session id (system `urn:vitalwatch:session-id`). Resources
//! have `urn:uuid:` full URLs derived from the session and the resource (the same export gives
//! the same URLs), and refer to each other by them.
//!
//! The Observations are streamed: written as the readings are read, a line per entry.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::codes::{self, BP_PANEL, LOINC, MDC, UCUM, VitalCodes};
use super::scan::{Scan, scan};
use super::timeline::{AlarmSummary, alarm_summaries};
use super::{ExportError, Options, Progress, Session, Ticker, median, rfc3339};
use crate::engine::Priority;
use crate::recorder::{EventDetail, Store, StoredReading};
use crate::vitals::{DeviceId, Quality, Vital};

/// The identifier system of session ids: the only reference to the patient.
pub const SESSION_ID_SYSTEM: &str = "urn:vitalwatch:session-id";
const DEVICE_ID_SYSTEM: &str = "urn:vitalwatch:device";
const ALARM_ID_SYSTEM: &str = "urn:vitalwatch:alarm";
const ALARM_SOURCE_SYSTEM: &str = "urn:vitalwatch:alarm-source";
const ALARM_CHANGE_SYSTEM: &str = "urn:vitalwatch:alarm-change";
const SESSION_EVENT_SYSTEM: &str = "urn:vitalwatch:session-event";
const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const DATA_ABSENT_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// Writes `session` as a FHIR R4 Bundle. Returns how many readings were read.
pub fn write(
    store: &Store,
    session: &Session,
    options: &Options,
    out: &mut dyn Write,
    progress: Progress<'_>,
) -> Result<u64, ExportError> {
    let found = scan(store, session)?;
    let mut bundle = BundleWriter::new(session, out);
    bundle.begin(options.generated)?;

    let encounter = bundle.encounter_url.clone();
    bundle.entry(&encounter, &encounter_resource(session, &bundle.subject))?;
    for device in found.devices() {
        let url = bundle.device_url(&device);
        bundle.entry(&url, &device_resource(&device, &found))?;
    }
    for (index, event) in session.events.iter().enumerate() {
        if let Some(resource) = event_observation(&bundle, &event.at, &event.what) {
            let url = bundle.url("event", index as u64);
            bundle.entry(&url, &resource)?;
        }
    }
    for alarm in alarm_summaries(&session.events) {
        let url = bundle.url("alarm", (alarm.run as u64) << 32 | alarm.alarm);
        let resource = detected_issue(&bundle, &alarm);
        bundle.entry(&url, &resource)?;
    }

    let mut ticker = Ticker::new(session, progress);
    let count = match options.interval_s {
        Some(interval) if interval > 0 => {
            let mut summary = Summariser::new(session, interval);
            let count = store.readings(session.key(), |r: StoredReading| {
                ticker.tick(r.received);
                summary.add(&mut bundle, &found, r)
            })?;
            summary.finish(&mut bundle, &found)?;
            count
        }
        _ => {
            let mut panels = PanelGrouper::default();
            let count = store.readings(session.key(), |r: StoredReading| {
                ticker.tick(r.received);
                panels.add(&mut bundle, &found, r)
            })?;
            panels.flush_before(&mut bundle, None)?;
            count
        }
    };
    bundle.end()?;
    ticker.done();
    Ok(count)
}

/// Writes the bundle's entries one at a time and names its resources.
struct BundleWriter<'a> {
    out: &'a mut dyn Write,
    /// The session's own part of every resource's UUID.
    seed: u64,
    entries: u64,
    subject: Value,
    encounter_url: String,
    sequence: u64,
}

impl<'a> BundleWriter<'a> {
    fn new(session: &'a Session, out: &'a mut dyn Write) -> Self {
        let seed = fnv1a(
            0xcbf2_9ce4_8422_2325,
            format!(
                "{}|{}|{}",
                session.summary.id,
                session.summary.key.0,
                session.start().timestamp_micros()
            )
            .as_bytes(),
        );
        let mut writer = BundleWriter {
            out,
            seed,
            entries: 0,
            subject: json!({
                "identifier": {"system": SESSION_ID_SYSTEM, "value": session.summary.id.as_str()}
            }),
            encounter_url: String::new(),
            sequence: 0,
        };
        writer.encounter_url = writer.url("encounter", 0);
        writer
    }

    /// A `urn:uuid:` URL for resource `index` of `kind`: a version-8 UUID (RFC 9562, custom)
    /// made from the session and the resource, so a second export gives the same URLs.
    fn url(&self, kind: &str, index: u64) -> String {
        let high = fnv1a(self.seed, kind.as_bytes());
        let low = fnv1a(high ^ 0x9e37_79b9_7f4a_7c15, &index.to_le_bytes());
        let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_8000;
        let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "urn:uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        )
    }

    fn device_url(&self, device: &DeviceId) -> String {
        self.url("device", fnv1a(0, device.as_str().as_bytes()))
    }

    /// The next Observation's URL.
    fn next_observation_url(&mut self) -> String {
        self.sequence += 1;
        self.url("observation", self.sequence)
    }

    fn begin(&mut self, generated: DateTime<Utc>) -> Result<(), ExportError> {
        let identifier = self.url("bundle", 0);
        write!(
            self.out,
            "{{\"resourceType\":\"Bundle\",\"identifier\":{},\"type\":\"collection\",\"timestamp\":{},\"entry\":[",
            json!({"system": "urn:ietf:rfc:3986", "value": identifier}),
            json!(rfc3339(generated)),
        )?;
        Ok(())
    }

    fn entry(&mut self, url: &str, resource: &Value) -> Result<(), ExportError> {
        if self.entries > 0 {
            self.out.write_all(b",")?;
        }
        self.out.write_all(b"\n")?;
        serde_json::to_writer(
            &mut *self.out,
            &json!({"fullUrl": url, "resource": resource}),
        )
        .map_err(std::io::Error::from)?;
        self.entries += 1;
        Ok(())
    }

    fn end(&mut self) -> Result<(), ExportError> {
        self.out.write_all(b"\n]}\n")?;
        Ok(())
    }

    fn reference(url: &str) -> Value {
        json!({ "reference": url })
    }
}

/// FNV-1a, 64 bits, from `seed`.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut hash = seed ^ 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn encounter_resource(session: &Session, subject: &Value) -> Value {
    let mut period = json!({ "start": rfc3339(session.start()) });
    if let Some(ended) = session.summary.ended {
        period["end"] = json!(rfc3339(ended));
    }
    json!({
        "resourceType": "Encounter",
        "identifier": [{"system": SESSION_ID_SYSTEM, "value": session.summary.id.as_str()}],
        "status": if session.is_open() { "in-progress" } else { "finished" },
        "class": {"system": ACT_CODE_SYSTEM, "code": "AMB", "display": "ambulatory"},
        "type": [{"text": "Monitored dosing session (vital signs recorded by vitalwatch)"}],
        "subject": subject,
        "period": period,
    })
}

fn device_resource(device: &DeviceId, found: &Scan) -> Value {
    let kind = match (found.measures_spo2(device), found.measures_bp(device)) {
        (true, false) => "Pulse oximeter",
        (false, true) => "Non-invasive blood pressure monitor",
        _ => "Vital signs monitor",
    };
    let vitals: Vec<&str> = found.vitals_of(device).map(Vital::as_str).collect();
    json!({
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": device.as_str()}],
        "status": "active",
        "deviceName": [{"name": device.as_str(), "type": "user-friendly-name"}],
        "type": {"text": kind},
        "note": [{"text": format!("Reported during the session: {}", vitals.join(", "))}],
    })
}

/// What a session event's Observation says.
struct EventParts<'e> {
    code: &'static str,
    display: &'static str,
    value: &'e str,
    who: Option<&'e str>,
    note: Option<&'e str>,
    device: Option<&'e DeviceId>,
    end: Option<DateTime<Utc>>,
}

fn event_observation(
    bundle: &BundleWriter<'_>,
    at: &DateTime<Utc>,
    what: &EventDetail,
) -> Option<Value> {
    let parts = match what {
        EventDetail::Phase { phase, by } => EventParts {
            code: "phase",
            display: "Session phase entered",
            value: phase.as_str(),
            who: Some(by),
            note: None,
            device: None,
            end: None,
        },
        EventDetail::Note { text, by } => EventParts {
            code: "note",
            display: "Clinician's note",
            value: text,
            who: Some(by),
            note: None,
            device: None,
            end: None,
        },
        EventDetail::Link {
            device,
            state,
            detail,
        } => EventParts {
            code: "link",
            display: "Device link change",
            value: state.as_str(),
            who: None,
            note: detail.as_deref(),
            device: Some(device),
            end: None,
        },
        EventDetail::Gap { to, why } => EventParts {
            code: "gap",
            display: "Gap in the recording",
            value: why,
            who: None,
            note: None,
            device: None,
            end: Some(*to),
        },
        // Alarms are DetectedIssues.
        EventDetail::Alarm(_) => return None,
    };
    let EventParts {
        code,
        display,
        value,
        who,
        note,
        device,
        end,
    } = parts;
    // FHIR strings may not be blank.
    let value = if value.trim().is_empty() {
        "(none recorded)"
    } else {
        value
    };
    let mut resource = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": SESSION_EVENT_SYSTEM, "code": code, "display": display}],
            "text": display,
        },
        "subject": bundle.subject,
        "encounter": BundleWriter::reference(&bundle.encounter_url),
        "valueString": value,
    });
    match end {
        Some(end) => {
            resource["effectivePeriod"] = json!({"start": rfc3339(*at), "end": rfc3339(end)})
        }
        None => resource["effectiveDateTime"] = json!(rfc3339(*at)),
    }
    if let Some(who) = who.filter(|w| !w.trim().is_empty()) {
        resource["performer"] = json!([{ "display": who }]);
    }
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        resource["note"] = json!([{ "text": note }]);
    }
    if let Some(device) = device {
        resource["device"] = BundleWriter::reference(&bundle.device_url(device));
    }
    Some(resource)
}

fn severity(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Medium => "moderate",
        Priority::Low => "low",
    }
}

fn detected_issue(bundle: &BundleWriter<'_>, alarm: &AlarmSummary) -> Value {
    let mut detail = alarm.message.clone();
    if let Some(advice) = &alarm.advice {
        detail.push_str(&format!(". Advice: {advice}"));
    }
    if let Some(value) = alarm.value {
        detail.push_str(&format!(". Value {}", super::number(value)));
    }
    if let Some(limit) = alarm.limit {
        detail.push_str(&format!(", limit {}", super::number(limit)));
    }
    detail.push_str(&format!(
        ". {} alarm on {}, raised {} priority, highest {}. Transitions: ",
        alarm.kind.as_str(),
        alarm.device,
        alarm.first_priority,
        alarm.highest
    ));
    let transitions: Vec<String> = alarm
        .transitions
        .iter()
        .map(|(at, change, priority, by)| match by {
            Some(by) => format!("{} {change} ({priority}) by {by}", rfc3339(*at)),
            None => format!("{} {change} ({priority})", rfc3339(*at)),
        })
        .collect();
    detail.push_str(&transitions.join("; "));

    let mut period = json!({ "start": rfc3339(alarm.raised) });
    if let Some(ended) = alarm.ended {
        period["end"] = json!(rfc3339(ended));
    }
    let mut mitigation: Vec<Value> = Vec::new();
    let mut actions: Vec<(DateTime<Utc>, &str, &str, &str)> = Vec::new();
    if let Some((at, by)) = &alarm.acknowledged {
        actions.push((*at, "acknowledged", "Alarm acknowledged", by));
    }
    for (at, by) in &alarm.audio_paused {
        actions.push((*at, "audio_paused", "Alarm audio paused", by));
    }
    actions.sort_by_key(|a| a.0);
    for (at, code, display, by) in actions {
        let mut entry = json!({
            "action": {
                "coding": [{"system": ALARM_CHANGE_SYSTEM, "code": code, "display": display}],
                "text": display,
            },
            "date": rfc3339(at),
        });
        if !by.is_empty() {
            entry["author"] = json!({ "display": by });
        }
        mitigation.push(entry);
    }
    let mut resource = json!({
        "resourceType": "DetectedIssue",
        "identifier": [{"system": ALARM_ID_SYSTEM, "value": format!("{}-{}", alarm.run, alarm.alarm)}],
        "status": if alarm.ended.is_some() { "final" } else { "preliminary" },
        "code": {
            "coding": [{"system": ALARM_SOURCE_SYSTEM, "code": alarm.source}],
            "text": format!("{} ({} alarm)", alarm.source, alarm.kind.as_str()),
        },
        "severity": severity(alarm.highest),
        "patient": bundle.subject,
        "identifiedPeriod": period,
        "author": BundleWriter::reference(&bundle.device_url(&alarm.device)),
        "detail": detail,
    });
    if !mitigation.is_empty() {
        resource["mitigation"] = Value::Array(mitigation);
    }
    resource
}

fn vital_signs_category() -> Value {
    json!([{
        "coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}],
        "text": "Vital Signs",
    }])
}

fn code(codes: &VitalCodes) -> Value {
    let mut coding: Vec<Value> = codes
        .loinc
        .iter()
        .map(|(code, display)| json!({"system": LOINC, "code": code, "display": display}))
        .collect();
    coding.push(json!({"system": MDC, "code": codes.mdc.0, "display": codes.mdc.1}));
    json!({ "coding": coding, "text": codes.text })
}

fn quantity(codes: &VitalCodes, value: f64) -> Value {
    json!({"value": value, "unit": codes.unit, "system": UCUM, "code": codes.ucum})
}

/// Why a reading has no value, as FHIR's data-absent-reason says it.
fn data_absent(quality: Quality) -> Value {
    let text = if quality.is_good() {
        "the device reported no value".to_string()
    } else {
        format!(
            "the device reported no value ({})",
            quality.names().collect::<Vec<_>>().join(", ")
        )
    };
    let (code, display) = if quality.is_good() {
        ("unknown", "Unknown")
    } else {
        ("error", "Error")
    };
    json!({
        "coding": [{"system": DATA_ABSENT_SYSTEM, "code": code, "display": display}],
        "text": text,
    })
}

fn flag_note(quality: Quality) -> Option<Value> {
    (!quality.is_good()).then(|| {
        json!([{ "text": format!(
            "Flagged by the device ({}): not a clinical value",
            quality.names().collect::<Vec<_>>().join(", ")
        )}])
    })
}

/// When an Observation applies: one instant, or an interval.
#[derive(Clone, Copy)]
enum Effective {
    At(DateTime<Utc>),
    Period(DateTime<Utc>, DateTime<Utc>),
}

impl Effective {
    fn set(self, resource: &mut Value) {
        match self {
            Effective::At(at) => resource["effectiveDateTime"] = json!(rfc3339(at)),
            Effective::Period(start, end) => {
                resource["effectivePeriod"] = json!({"start": rfc3339(start), "end": rfc3339(end)})
            }
        }
    }
}

/// A vital-signs Observation's common part.
fn observation(
    bundle: &BundleWriter<'_>,
    device: &DeviceId,
    codes: &VitalCodes,
    when: Effective,
) -> Value {
    let mut resource = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": vital_signs_category(),
        "code": code(codes),
        "subject": bundle.subject,
        "encounter": BundleWriter::reference(&bundle.encounter_url),
        "device": BundleWriter::reference(&bundle.device_url(device)),
    });
    when.set(&mut resource);
    resource
}

/// One value of an Observation or a component: the value (or why there is none) and any
/// quality flags.
struct Measured {
    value: Option<f64>,
    quality: Quality,
}

fn set_value(target: &mut Value, codes: &VitalCodes, measured: &Measured) {
    match measured.value {
        Some(value) => target["valueQuantity"] = quantity(codes, value),
        None => target["dataAbsentReason"] = data_absent(measured.quality),
    }
}

/// Writes a single-vital Observation.
fn write_vital(
    bundle: &mut BundleWriter<'_>,
    found: &Scan,
    device: &DeviceId,
    vital: Vital,
    when: Effective,
    measured: &Measured,
    note: Option<String>,
) -> Result<(), ExportError> {
    let Some(codes) = codes::vital_codes(vital, found.measures_bp(device)) else {
        return Ok(());
    };
    let mut resource = observation(bundle, device, &codes, when);
    set_value(&mut resource, &codes, measured);
    if let Some(flags) = flag_note(measured.quality) {
        resource["note"] = flags;
    } else if let Some(note) = note {
        resource["note"] = json!([{ "text": note }]);
    }
    let url = bundle.next_observation_url();
    bundle.entry(&url, &resource)
}

/// Writes a blood-pressure panel: the pressures of one measurement (or interval) as
/// components.
fn write_panel(
    bundle: &mut BundleWriter<'_>,
    device: &DeviceId,
    when: Effective,
    pressures: &BTreeMap<Vital, Measured>,
    note: Option<String>,
) -> Result<(), ExportError> {
    let mut resource = observation(bundle, device, &BP_PANEL, when);
    let mut components = Vec::new();
    let mut flags = Quality::GOOD;
    for vital in [Vital::Systolic, Vital::Diastolic, Vital::MeanArterial] {
        let Some(codes) = codes::vital_codes(vital, true) else {
            continue;
        };
        let measured = match pressures.get(&vital) {
            Some(measured) => measured,
            // Systolic and diastolic are expected in every panel: say why one is missing.
            None if vital != Vital::MeanArterial => &Measured {
                value: None,
                quality: Quality::GOOD,
            },
            None => continue,
        };
        flags |= measured.quality;
        let mut component = json!({ "code": code(&codes) });
        set_value(&mut component, &codes, measured);
        components.push(component);
    }
    resource["component"] = Value::Array(components);
    if let Some(flag_note) = flag_note(flags) {
        resource["note"] = flag_note;
    } else if let Some(note) = note {
        resource["note"] = json!([{ "text": note }]);
    }
    let url = bundle.next_observation_url();
    bundle.entry(&url, &resource)
}

/// Per reading: writes each reading as it comes, except the pressures, which it holds until
/// their measurement is complete (the readings of one measurement share their time).
#[derive(Default)]
struct PanelGrouper {
    /// Per cuff: the time of the measurement being gathered and its pressures.
    pending: BTreeMap<DeviceId, (DateTime<Utc>, BTreeMap<Vital, Measured>)>,
}

impl PanelGrouper {
    fn add(
        &mut self,
        bundle: &mut BundleWriter<'_>,
        found: &Scan,
        r: StoredReading,
    ) -> Result<(), ExportError> {
        self.flush_before(bundle, Some(r.received))?;
        let measured = Measured {
            value: r.value,
            quality: r.quality,
        };
        if codes::is_bp(r.vital) {
            // A second value of the same pressure at the same instant starts a new
            // measurement: write the gathered one first.
            let repeated = self
                .pending
                .get(&r.device)
                .is_some_and(|(_, pressures)| pressures.contains_key(&r.vital));
            if repeated && let Some((at, pressures)) = self.pending.remove(&r.device) {
                write_panel(bundle, &r.device, Effective::At(at), &pressures, None)?;
            }
            self.pending
                .entry(r.device.clone())
                .or_insert_with(|| (r.received, BTreeMap::new()))
                .1
                .insert(r.vital, measured);
            return Ok(());
        }
        write_vital(
            bundle,
            found,
            &r.device,
            r.vital,
            Effective::At(r.received),
            &measured,
            None,
        )
    }

    /// Writes the measurements gathered before `now` (all of them with `None`).
    fn flush_before(
        &mut self,
        bundle: &mut BundleWriter<'_>,
        now: Option<DateTime<Utc>>,
    ) -> Result<(), ExportError> {
        let done: Vec<DeviceId> = self
            .pending
            .iter()
            .filter(|(_, (at, _))| now.is_none_or(|now| *at < now))
            .map(|(device, _)| device.clone())
            .collect();
        for device in done {
            if let Some((at, pressures)) = self.pending.remove(&device) {
                write_panel(bundle, &device, Effective::At(at), &pressures, None)?;
            }
        }
        Ok(())
    }
}

/// One device's interval being gathered.
struct Window {
    index: i64,
    values: BTreeMap<Vital, Vec<f64>>,
}

/// With a summary interval: gathers each device's unflagged values per interval and writes
/// their medians when the interval is over.
struct Summariser {
    start: DateTime<Utc>,
    interval_s: u32,
    /// Per device: the interval being gathered and its unflagged values per vital.
    open: BTreeMap<DeviceId, Window>,
}

impl Summariser {
    fn new(session: &Session, interval_s: u32) -> Self {
        Summariser {
            start: session.start(),
            interval_s,
            open: BTreeMap::new(),
        }
    }

    fn window_of(&self, at: DateTime<Utc>) -> i64 {
        let us = (at - self.start).num_microseconds().unwrap_or(i64::MAX);
        us.div_euclid(i64::from(self.interval_s) * 1_000_000)
    }

    fn add(
        &mut self,
        bundle: &mut BundleWriter<'_>,
        found: &Scan,
        r: StoredReading,
    ) -> Result<(), ExportError> {
        let window = self.window_of(r.received);
        let finished: Vec<DeviceId> = self
            .open
            .iter()
            .filter(|(_, open)| open.index < window)
            .map(|(device, _)| device.clone())
            .collect();
        for device in finished {
            self.flush(bundle, found, &device)?;
        }
        let open = self.open.entry(r.device.clone()).or_insert_with(|| Window {
            index: window,
            values: BTreeMap::new(),
        });
        // Flagged readings and readings without a value are left out of the median.
        if let Some(value) = r.value.filter(|_| r.quality.is_good()) {
            open.values.entry(r.vital).or_default().push(value);
        }
        Ok(())
    }

    fn flush(
        &mut self,
        bundle: &mut BundleWriter<'_>,
        found: &Scan,
        device: &DeviceId,
    ) -> Result<(), ExportError> {
        let Some(Window {
            index: window,
            mut values,
        }) = self.open.remove(device)
        else {
            return Ok(());
        };
        let step = i64::from(self.interval_s);
        let from = Duration::try_seconds(window.saturating_mul(step))
            .and_then(|offset| self.start.checked_add_signed(offset));
        let Some((from, to)) = from.and_then(|from| {
            from.checked_add_signed(Duration::seconds(step))
                .map(|to| (from, to))
        }) else {
            return Err(ExportError::Invalid(format!(
                "a reading's time is out of range for a {step}-second interval"
            )));
        };
        let when = Effective::Period(from, to);
        let summary_note = |count: usize| {
            format!(
                "Median of {count} unflagged reading{} in the {}-second interval",
                if count == 1 { "" } else { "s" },
                self.interval_s
            )
        };
        let mut pressures = BTreeMap::new();
        let mut counts = Vec::new();
        for (vital, list) in values.iter_mut() {
            let count = list.len();
            let Some(value) = median(list) else { continue };
            let measured = Measured {
                value: Some(value),
                quality: Quality::GOOD,
            };
            if codes::is_bp(*vital) {
                counts.push(count);
                pressures.insert(*vital, measured);
            } else {
                write_vital(
                    bundle,
                    found,
                    device,
                    *vital,
                    when,
                    &measured,
                    Some(summary_note(count)),
                )?;
            }
        }
        if !pressures.is_empty() {
            let count = counts.into_iter().max().unwrap_or(0);
            write_panel(bundle, device, when, &pressures, Some(summary_note(count)))?;
        }
        Ok(())
    }

    fn finish(&mut self, bundle: &mut BundleWriter<'_>, found: &Scan) -> Result<(), ExportError> {
        let devices: Vec<DeviceId> = self.open.keys().cloned().collect();
        for device in devices {
            self.flush(bundle, found, &device)?;
        }
        Ok(())
    }
}
