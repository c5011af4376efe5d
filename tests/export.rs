//! The exports checked by independent readers: a session recorded with the store
//! (`tests/support/recorded.rs`), exported in each format, then read back by Python's `csv`
//! module, the FHIR R4 models of `fhir.resources` 6.4.0, pyedflib (strict) and MNE
//! (`tests/validators/`), and the report rendered by headless Chromium.
//!
//! The expectations are computed here from the session's own description (the constants of
//! `recorded.rs`), never from the exporter. The readers live in the venv `scripts/test` makes
//! (`.venv-validators`, from `tests/validators/requirements.txt`); without it, or without
//! Chromium, these tests fail with a message saying so: they never skip.

mod common;
#[path = "support/recorded.rs"]
mod recorded;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tempfile::TempDir;

use common::repo_root;
use recorded::*;
use vitalwatch::export::{self, Format, Options, Session};
use vitalwatch::recorder::Store;
use vitalwatch::vitals::Quality;

/// The validators' Python: `$VITALWATCH_VALIDATOR_PYTHON`, else `.venv-validators`.
fn python() -> PathBuf {
    let path = std::env::var_os("VITALWATCH_VALIDATOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv-validators/bin/python"));
    assert!(
        path.is_file(),
        "the export validators' Python is missing at {}: run scripts/test, which creates \
         .venv-validators and installs tests/validators/requirements.txt (fhir.resources, \
         pyedflib, mne)",
        path.display()
    );
    path
}

/// Runs `tests/validators/<script>` with `args`; fails the test with its output unless it
/// succeeds.
fn validate(script: &str, args: &[&Path]) -> String {
    let output = Command::new(python())
        .arg(repo_root().join("tests/validators").join(script))
        .args(args)
        .output()
        .expect("run the validator");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} rejected the export:\n{stdout}\n{stderr}"
    );
    eprintln!("{}", stdout.trim());
    stdout
}

fn time(t: f64) -> String {
    at(t).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The short session recorded in a temporary database.
struct Fixture {
    dir: TempDir,
    database: PathBuf,
}

impl Fixture {
    fn short() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("sessions.sqlite");
        short_session(&database);
        Fixture { dir, database }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Exports session `id` in `format` to a file named `name`.
    fn export(&self, id: &str, format: Format, interval_s: Option<u32>, name: &str) -> PathBuf {
        let store = Store::open_read_only(&self.database).unwrap();
        let summary = export::find_session(&store, id, None).unwrap();
        let session = Session::load(&store, summary).unwrap();
        let path = self.path(name);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut fractions = Vec::new();
        let options = Options {
            interval_s,
            generated: at(SHORT_END_S + 60.0),
        };
        export::export(&store, &session, format, &options, &mut out, &mut |f| {
            fractions.push(f)
        })
        .unwrap();
        drop(out);
        assert_eq!(fractions.last(), Some(&1.0), "progress ends at 100 %");
        assert!(
            fractions.windows(2).all(|w| w[0] <= w[1]),
            "progress only grows: {fractions:?}"
        );
        path
    }

    fn write_json(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }
}

fn phase_at(t: f64) -> &'static str {
    if t < INFUSION_S {
        "baseline"
    } else if t < RECOVERY_S {
        "infusion"
    } else {
        "recovery"
    }
}

fn quality_text(quality: Quality) -> String {
    quality.names().collect::<Vec<_>>().join(";")
}

/// A reading: `(t, device, vital, value, unit, quality)`.
type ExpectedReading = (
    f64,
    &'static str,
    &'static str,
    Option<f64>,
    &'static str,
    Quality,
);

/// Every reading of the short session, in the order it was written.
fn expected_readings() -> Vec<ExpectedReading> {
    let mut rows = Vec::new();
    for s in 0..SHORT_END_S as u32 {
        let t = f64::from(s);
        if let Some((spo2, pulse, pi, quality)) = oximeter_at(s) {
            rows.push((t, "ox1", "spo2", spo2, "%", quality));
            rows.push((t, "ox1", "pulse_rate", pulse, "/min", quality));
            rows.push((t, "ox1", "perfusion_index", pi, "%", quality));
        }
        for (ct, sys, dia, mean, pulse) in CUFF {
            if ct == t {
                rows.push((t, "cuff1", "systolic", Some(sys), "mmHg", Quality::GOOD));
                rows.push((t, "cuff1", "diastolic", Some(dia), "mmHg", Quality::GOOD));
                rows.push((
                    t,
                    "cuff1",
                    "mean_arterial",
                    Some(mean),
                    "mmHg",
                    Quality::GOOD,
                ));
                rows.push((t, "cuff1", "pulse_rate", Some(pulse), "/min", Quality::GOOD));
            }
        }
    }
    rows
}

const BP_MESSAGE: &str = "BP high: systolic 184 mmHg (limit systolic ≥ 180 mmHg)";
const SPO2_MESSAGE: &str = "SpO2 low: spo2 86 % (limit spo2 < 90 %)";

#[test]
fn csv_round_trips_through_pythons_csv_module() {
    let fixture = Fixture::short();
    let readings = fixture.export(SHORT_ID, Format::Csv, None, "readings.csv");
    let events = fixture.export(SHORT_ID, Format::CsvEvents, None, "events.csv");

    let reading_rows: Vec<Value> = expected_readings()
        .into_iter()
        .map(|(t, device, vital, value, unit, quality)| {
            json!([
                time(t),
                (t >= INFUSION_S).then_some(t - INFUSION_S),
                phase_at(t),
                device,
                vital,
                value,
                unit,
                quality_text(quality)
            ])
        })
        .collect();
    let phase = |t: f64, phase: &str| json!([time(t), "phase", phase, "", "", "", "nurse-a", ""]);
    let alarm = |t: f64, change: &str, priority: &str, source: &str, device: &str, who: &str| {
        let message = if source == "bp_high" {
            BP_MESSAGE
        } else {
            SPO2_MESSAGE
        };
        json!([
            time(t),
            "alarm",
            change,
            priority,
            source,
            device,
            who,
            message
        ])
    };
    let note =
        |(t, by, text): (f64, &str, &str)| json!([time(t), "note", "", "", "", "", by, text]);
    let event_rows = vec![
        phase(0.0, "baseline"),
        phase(INFUSION_S, "infusion"),
        note(NOTES[0]),
        alarm(310.0, "raised", "medium", "bp_high", "cuff1", ""),
        alarm(315.0, "raised", "medium", "spo2_low", "ox1", ""),
        alarm(
            322.5,
            "acknowledged",
            "medium",
            "spo2_low",
            "ox1",
            "nurse-b",
        ),
        alarm(340.0, "ended", "medium", "spo2_low", "ox1", ""),
        alarm(390.0, "escalated", "high", "bp_high", "cuff1", ""),
        json!([time(500.0), "link", "lost", "", "", "ox1", "", "port gone"]),
        json!([
            time(505.0),
            "link",
            "connected",
            "",
            "",
            "ox1",
            "",
            "port back"
        ]),
        phase(RECOVERY_S, "recovery"),
        alarm(610.0, "ended", "high", "bp_high", "cuff1", ""),
        note(NOTES[1]),
        phase(SHORT_END_S, "ended"),
    ];
    let expected = fixture.write_json(
        "csv-expected.json",
        &json!({"readings": reading_rows, "events": event_rows}),
    );
    validate("check_csv.py", &[&readings, &events, &expected]);

    // The formula guard, as a spreadsheet sees the raw cell.
    let raw = std::fs::read_to_string(&events).unwrap();
    assert!(
        raw.contains("\"'=HYPERLINK(\"\"http://x\"\") patient asked"),
        "{raw}"
    );
}

/// The FHIR expectations for the short session, per reading or per `interval` seconds.
fn fhir_expected(interval: Option<u32>) -> Value {
    let readings = expected_readings();
    let (spo2, bp, counts) = match interval {
        None => {
            let spo2: Vec<Value> = readings
                .iter()
                .filter(|r| r.2 == "spo2")
                .map(|r| json!([time(r.0), r.3]))
                .collect();
            let pulses = readings.iter().filter(|r| r.2 == "pulse_rate").count();
            let bp: Vec<Value> = CUFF
                .iter()
                .map(|(t, s, d, m, _)| json!([time(*t), s, d, m]))
                .collect();
            let counts = json!({"2708-6": spo2.len(), "8867-4": pulses, "85354-9": bp.len()});
            (spo2, bp, counts)
        }
        Some(interval) => {
            let interval = f64::from(interval);
            let windows = (SHORT_END_S / interval).ceil() as usize;
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                let n = v.len();
                if n % 2 == 1 {
                    v[n / 2]
                } else {
                    (v[n / 2 - 1] + v[n / 2]) / 2.0
                }
            };
            let mut spo2 = Vec::new();
            let mut ox_pulse = 0;
            for w in 0..windows {
                let from = w as f64 * interval;
                let values: Vec<f64> = readings
                    .iter()
                    .filter(|r| r.2 == "spo2" && r.0 >= from && r.0 < from + interval)
                    .filter(|r| r.5.is_good())
                    .filter_map(|r| r.3)
                    .collect();
                if !values.is_empty() {
                    spo2.push(json!([time(from), median(values)]));
                    ox_pulse += 1;
                }
            }
            let bp: Vec<Value> = CUFF
                .iter()
                .map(|(t, s, d, m, _)| json!([time((t / interval).floor() * interval), s, d, m]))
                .collect();
            let counts =
                json!({"2708-6": spo2.len(), "8867-4": ox_pulse + CUFF.len(), "85354-9": bp.len()});
            (spo2, bp, counts)
        }
    };
    json!({
        "session_id": SHORT_ID,
        "devices": ["cuff1", "ox1"],
        "counts": counts,
        "spo2": spo2,
        "bp": bp,
        "alarms": [
            {"code": "bp_high", "severity": "high", "start": time(310.0), "end": time(610.0)},
            {"code": "spo2_low", "severity": "moderate", "start": time(315.0), "end": time(340.0),
             "acknowledged_by": "nurse-b", "acknowledged_at": time(322.5)},
        ],
        "events": {"phase": 4, "note": 2, "link": 2, "gap": 0},
        "interval": interval,
    })
}

#[test]
fn fhir_bundle_is_valid_r4_with_the_table_codes_per_reading() {
    let fixture = Fixture::short();
    let bundle = fixture.export(SHORT_ID, Format::Fhir, None, "bundle.json");
    let expected = fixture.write_json("fhir-expected.json", &fhir_expected(None));
    validate("check_fhir.py", &[&bundle, &expected]);

    // The same session exported twice gives the same resource URLs.
    let again = fixture.export(SHORT_ID, Format::Fhir, None, "bundle-again.json");
    assert_eq!(
        std::fs::read(&bundle).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn fhir_bundle_summarises_per_interval_with_medians() {
    let fixture = Fixture::short();
    let bundle = fixture.export(SHORT_ID, Format::Fhir, Some(60), "bundle-60.json");
    let expected = fixture.write_json("fhir-60-expected.json", &fhir_expected(Some(60)));
    validate("check_fhir.py", &[&bundle, &expected]);
}

#[test]
fn edf_opens_in_pyedflib_and_mne_with_signals_and_annotations() {
    let fixture = Fixture::short();
    let edf = fixture.export(SHORT_ID, Format::Edf, None, "session.edf");
    let spo2 = |t: u32| oximeter_at(t).and_then(|(s, _, _, q)| s.filter(|_| q.is_good()));
    let signal = |label: &str, dimension: &str, samples: Vec<(f64, Option<f64>)>| {
        json!({"label": label, "rate": 1, "dimension": dimension,
               "samples": samples.into_iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>()})
    };
    let expected = json!({
        "patient_code": SHORT_ID,
        "start": "2026-11-25T09:00:00",
        "duration_s": SHORT_END_S,
        "signals": [
            signal("Pulse cuff1", "/min", vec![(0.0, None), (10.0, Some(74.0)), (300.0, Some(74.0)), (310.0, Some(80.0))]),
            signal("NIBP sys cuff1", "mmHg", vec![
                (5.0, None), (10.0, Some(128.0)), (200.0, Some(128.0)), (309.0, Some(128.0)),
                (310.0, Some(184.0)), (609.0, Some(184.0)), (610.0, Some(150.0)), (719.0, Some(150.0)),
            ]),
            signal("NIBP dia cuff1", "mmHg", vec![(10.0, Some(82.0)), (310.0, Some(108.0)), (610.0, Some(95.0))]),
            signal("NIBP mean cuff1", "mmHg", vec![(10.0, Some(97.0)), (310.0, Some(133.0)), (610.0, Some(113.0))]),
            signal("SpO2 ox1", "%", vec![
                (0.0, spo2(0)), (1.0, spo2(1)), (100.0, spo2(100)), (320.0, Some(86.0)),
                (399.0, spo2(399)), (405.0, None), (412.0, None), (415.0, spo2(415)),
                // Silent from 500 s: the value of 499 s is held 2.5 s, then none.
                (500.0, spo2(499)), (501.0, spo2(499)), (502.0, None), (504.0, None), (505.0, spo2(505)),
                (719.0, spo2(719)),
            ]),
            signal("Pulse ox1", "/min", vec![(0.0, Some(72.0)), (3.0, Some(75.0)), (405.0, None), (416.0, Some(73.0))]),
            signal("PI ox1", "%", vec![(0.0, Some(3.5)), (405.0, None), (600.0, Some(3.5))]),
        ],
        // 14 events, 3 cuff measurements, 1 stretch of unusable oximeter readings.
        "annotation_count": 18,
        "annotations": [
            [0.0, null, "Phase baseline (by nurse-a)"],
            [INFUSION_S, null, "Phase infusion"],
            [200.123456, null, "Note by nurse-b: =HYPERLINK(\"http://x\") patient asked"],
            [10.0, null, "NIBP cuff1 128/82 (97) mmHg, pulse 74 /min"],
            [310.0, null, "NIBP cuff1 184/108 (133) mmHg, pulse 80 /min"],
            [310.0, null, "Alarm raised medium bp_high cuff1"],
            [315.0, null, "Alarm raised medium spo2_low ox1: SpO2 low"],
            [322.5, null, "Alarm acknowledged medium spo2_low ox1"],
            [322.5, null, "(by nurse-b)"],
            [340.0, null, "Alarm ended medium spo2_low"],
            [390.0, null, "Alarm escalated high bp_high cuff1"],
            [400.0, 15.0, "ox1: no clinical value (artefact, sensor_off)"],
            [500.0, null, "Link ox1 lost: port gone"],
            [650.0, null, "Note by nurse-b: Recovery: talking, oriented — vitals near baseline second line"],
            [SHORT_END_S, null, "Phase ended"],
        ],
    });
    let expected = fixture.write_json("edf-expected.json", &expected);
    validate("check_edf.py", &[&edf, &expected]);
}

#[test]
fn html_report_states_the_sessions_facts_and_loads_nothing() {
    let fixture = Fixture::short();
    let report = fixture.export(SHORT_ID, Format::Html, None, "report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    for needle in [
        "Session KAP-0042",
        // Baseline: median SpO2 96 and pulse 74 of the baseline phase, BP of its one reading.
        "128/82<small> mmHg</small>",
        "SpO2 96 % · pulse 74 /min",
        // Minimum SpO2 and how long below 90 % (40 one-second readings at 86 %).
        "86<small> %</small>",
        "at 09:05:00",
        "<div class=\"value\">40 s</div>",
        // Peak blood pressure and when.
        "184/108<small> mmHg</small>",
        "at 09:05:10, 3 min 10 s into the infusion",
        // The alarms with their acknowledgement, and escalation.
        "09:05:22 by nurse-b",
        "medium → high at 09:06:30",
        // Notes, escaped.
        "=HYPERLINK(&quot;http://x&quot;) patient asked, &quot;warm&quot;; comfortable",
        "oriented — vitals near baseline<br>second line",
        // The infusion window.
        "09:02<small> – 09:10</small>",
        "8 min, 09:02:00 – 09:10:00",
    ] {
        assert!(html.contains(needle), "the report lacks {needle:?}");
    }
}

/// Nothing in the page is fetched: no script, no stylesheet or image link, no URL but the SVG
/// namespace.
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "src=", "url(", "@import",
    ] {
        assert!(!lower.contains(forbidden), "the report has {forbidden}");
    }
    let urls: Vec<&str> = lower
        .match_indices("http")
        .map(|(i, _)| &lower[i..(i + 30).min(lower.len())])
        .filter(|u| !u.starts_with("http://www.w3.org/2000/svg") && !u.starts_with("http://x"))
        .collect();
    assert!(urls.is_empty(), "the report refers to {urls:?}");
}

/// The report of a 2-hour simulated session (the hypertensive response) rendered by headless
/// Chromium to `report.png` (in `docs/screenshots` with `VITALWATCH_UPDATE_SCREENSHOTS=1`).
#[test]
fn report_of_a_two_hour_session_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("sessions.sqlite");
    simulated_session(&database, "KAP-0107", "hypertensive-response");
    let store = Store::open_read_only(&database).unwrap();
    let summary = export::find_session(&store, "KAP-0107", None).unwrap();
    assert!(
        summary.ended.unwrap() - summary.started >= chrono::Duration::hours(2),
        "a 2-hour session"
    );
    let session = Session::load(&store, summary).unwrap();
    let report = dir.path().join("report.html");
    let mut out = std::fs::File::create(&report).unwrap();
    let generated: DateTime<Utc> = at(3.0 * 3600.0);
    export::export(
        &store,
        &session,
        Format::Html,
        &Options {
            interval_s: None,
            generated,
        },
        &mut out,
        &mut |_| {},
    )
    .unwrap();
    drop(out);
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("Session KAP-0107"));

    common::chromium::screenshot(&report, (1200, 1950), "report.png");
}
