//! `/metrics` is valid Prometheus text exposition (checked by the real `promtool`) and holds the
//! values the status API shows.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, require_tool, simulated_config};
use serde_json::Value;

/// The documented gauge of each vital's latest value.
const VITAL_METRICS: &[(&str, &str)] = &[
    ("spo2", "vitalwatch_spo2_percent"),
    ("pulse_rate", "vitalwatch_pulse_rate_per_minute"),
    ("perfusion_index", "vitalwatch_perfusion_index_percent"),
    ("systolic", "vitalwatch_blood_pressure_systolic_mmhg"),
    ("diastolic", "vitalwatch_blood_pressure_diastolic_mmhg"),
    ("mean_arterial", "vitalwatch_blood_pressure_mean_mmhg"),
    ("respiratory_rate", "vitalwatch_respiratory_rate_per_minute"),
];

/// Samples keyed by metric name and sorted `k=v` label pairs.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn parse_exposition(text: &str) -> Samples {
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = match value {
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let mut labels: Vec<(String, String)> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("k=v");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
        };
        samples.insert((name, labels), value);
    }
    samples
}

/// Every series carries the config's chair: this test's config keeps the default.
const CHAIR: (&str, &str) = ("chair", "chair-1");

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .chain([&CHAIR])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

fn readings_of(status: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for device in status["devices"].as_array().unwrap() {
        for (vital, reading) in device["readings"].as_object().unwrap() {
            out.push((
                device["id"].as_str().unwrap().to_string(),
                vital.clone(),
                reading["time"].clone(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn metrics_are_valid_exposition_and_match_the_status_api() {
    let promtool = require_tool("promtool");
    // A slow oximeter, so a status/metrics/status triple sees one set of values.
    let config = simulated_config("hypertensive-response", "interval_s = 3000");
    let daemon = Daemon::start(&config, &["--speed", "600"]);
    let mut events = daemon.events().await;
    daemon.start_session("KAP-METRICS").await;
    daemon.set_phase("infusion").await;
    events
        .until(
            Instant::now() + Duration::from_secs(60),
            |_| {},
            |e| e.name == "alarm" && e.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("no high-priority alarm to count");

    let mut compared = false;
    for _ in 0..50 {
        let before = daemon.get_json("/api/v1/status").await;
        let text = daemon.get_text("/metrics").await;
        let after = daemon.get_json("/api/v1/status").await;
        if readings_of(&before) != readings_of(&after) || before["alarms"] != after["alarms"] {
            continue; // a reading or alarm changed in between: try again
        }

        let mut check = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let result = check.wait_with_output().unwrap();
        assert!(
            result.status.success() && result.stdout.is_empty() && result.stderr.is_empty(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );

        let samples = parse_exposition(&text);
        let status = before;
        for device in status["devices"].as_array().unwrap() {
            let id = device["id"].as_str().unwrap();
            for (vital, reading) in device["readings"].as_object().unwrap() {
                let name = VITAL_METRICS.iter().find(|(v, _)| v == vital).unwrap().1;
                let value = sample(&samples, name, &[("device", id)]);
                match reading["value"].as_f64() {
                    Some(shown) if reading["quality"].as_array().unwrap().is_empty() => {
                        assert_eq!(value, shown, "{name}{{device={id}}}")
                    }
                    _ => assert!(value.is_nan(), "{name}{{device={id}}} should be NaN"),
                }
                let time: chrono::DateTime<chrono::Utc> =
                    reading["time"].as_str().unwrap().parse().unwrap();
                let stamp = sample(
                    &samples,
                    "vitalwatch_reading_timestamp_seconds",
                    &[("device", id), ("vital", vital)],
                );
                assert!(
                    (stamp - time.timestamp_micros() as f64 / 1e6).abs() < 1e-3,
                    "{id} {vital}"
                );
            }
            for (vital, reading) in device["readings"].as_object().unwrap() {
                // Ages are set at each engine tick: behind by up to a tick and the time
                // between the two requests (20 ms of real time is 12 s of this daemon's).
                let slack = 1.5 + status["clock_speed"].as_f64().unwrap() * 0.02;
                let age = sample(
                    &samples,
                    "vitalwatch_reading_age_seconds",
                    &[("device", id), ("vital", vital)],
                );
                let shown = reading["age_s"].as_f64().unwrap();
                assert!(
                    (age - shown).abs() <= slack,
                    "{id} {vital}: {age} vs {shown}"
                );
            }
            assert_eq!(
                sample(
                    &samples,
                    "vitalwatch_device_stale_after_seconds",
                    &[("device", id)]
                ),
                device["stale_after_s"].as_f64().unwrap()
            );
            let connected = sample(&samples, "vitalwatch_device_connected", &[("device", id)]);
            assert_eq!(connected == 1.0, device["link"] == "connected", "{id}");
            for state in ["connecting", "connected", "lost", "idle"] {
                let one_hot = sample(
                    &samples,
                    "vitalwatch_device_link_state",
                    &[("device", id), ("state", state)],
                );
                assert_eq!(one_hot == 1.0, device["link"] == state, "{id} {state}");
            }
            assert_eq!(
                sample(
                    &samples,
                    "vitalwatch_device_reconnects_total",
                    &[("device", id)]
                ),
                0.0
            );
            let dropped = sample(&samples, "vitalwatch_ring_dropped_total", &[("device", id)]);
            assert_eq!(dropped, device["ring_dropped"].as_f64().unwrap());
            assert!(sample(&samples, "vitalwatch_readings_total", &[("device", id)]) >= 1.0);
        }
        for priority in ["low", "medium", "high"] {
            for kind in ["physiological", "technical"] {
                let shown = status["alarms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["priority"] == priority && a["kind"] == kind)
                    .count() as f64;
                let active = sample(
                    &samples,
                    "vitalwatch_alarms_active",
                    &[("priority", priority), ("kind", kind)],
                );
                assert_eq!(active, shown, "alarms {priority} {kind}");
            }
        }
        assert!(
            sample(
                &samples,
                "vitalwatch_alarms_active",
                &[("priority", "high"), ("kind", "physiological")]
            ) >= 1.0
        );
        // Each active alarm under its rule, device and acknowledgement.
        let alarms = status["alarms"].as_array().unwrap();
        let by_rule: Vec<_> = samples
            .iter()
            .filter(|((name, _), _)| name == "vitalwatch_alarm_active")
            .collect();
        assert_eq!(
            by_rule.iter().map(|(_, v)| **v).sum::<f64>(),
            alarms.len() as f64,
            "{by_rule:?}"
        );
        for alarm in alarms {
            let rule = alarm["rule"]
                .as_str()
                .or(alarm["condition"].as_str())
                .unwrap();
            let labels = [
                ("priority", alarm["priority"].as_str().unwrap()),
                ("kind", alarm["kind"].as_str().unwrap()),
                ("rule", rule),
                ("device", alarm["device"].as_str().unwrap()),
                ("acknowledged", "false"),
            ];
            assert!(sample(&samples, "vitalwatch_alarm_active", &labels) >= 1.0);
            // Raised once, at whatever priority it had then (it may have escalated since).
            let raised: f64 = samples
                .iter()
                .filter(|((name, labels), _)| {
                    name == "vitalwatch_alarm_transitions_total"
                        && labels.contains(&("change".into(), "raised".into()))
                        && labels.contains(&("rule".into(), rule.into()))
                })
                .map(|(_, v)| *v)
                .sum();
            assert!(raised >= 1.0, "{alarm}");
        }
        // The high alarm was signalled: its latency was measured.
        assert!(
            sample(
                &samples,
                "vitalwatch_alarm_signal_latency_seconds_count",
                &[]
            ) >= 1.0
        );
        assert_eq!(sample(&samples, "vitalwatch_recording_failing", &[]), 0.0);
        assert!(sample(&samples, "vitalwatch_recorder_lag_seconds", &[]) < 5.0);
        assert_eq!(sample(&samples, "vitalwatch_session_active", &[]), 1.0);
        assert_eq!(
            sample(
                &samples,
                "vitalwatch_session_phase",
                &[("phase", "infusion")]
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                "vitalwatch_session_phase",
                &[("phase", "baseline")]
            ),
            0.0
        );
        assert_eq!(
            sample(
                &samples,
                "vitalwatch_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
        // No patient or session identifier anywhere in the exposition.
        assert!(!text.contains("KAP-METRICS"));
        compared = true;
        break;
    }
    assert!(
        compared,
        "status never held still long enough to compare with /metrics"
    );
}
