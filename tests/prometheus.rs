//! The clinic's Prometheus files (`config/prometheus/`): checked and unit-tested by the real
//! `promtool`, then loaded by a real `prometheus` scraping the real daemon, which evaluates
//! every alert rule's expression against the daemon's series. Without `prometheus` or
//! `promtool` these tests fail (they never skip): `scripts/test` installs them.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{Daemon, repo_root, require_tool};
use serde_json::Value;

/// The chair of the test's daemon: not the default, so the label is seen to come from the
/// daemon's config.
const CHAIR: &str = "chair-7";

fn prometheus_dir() -> PathBuf {
    repo_root().join("config/prometheus")
}

/// Runs `promtool ARGS` in `config/prometheus/` and fails with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let output = Command::new(require_tool("promtool"))
        .args(args)
        .current_dir(prometheus_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The example scrape config is valid, and the rule file it names (relative to itself) is
/// found and valid.
#[test]
fn promtool_checks_the_example_prometheus_config() {
    let text = promtool(&["check", "config", "prometheus.yml"]);
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    // The daemon exports `chair` itself: the example must not set it as a target label.
    let config = std::fs::read_to_string(prometheus_dir().join("prometheus.yml")).unwrap();
    let settings: Vec<&str> = config
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .filter(|l| l.contains("chair:") || l.contains("target_label"))
        .collect();
    assert!(settings.is_empty(), "a chair target label: {settings:?}");
}

#[test]
fn promtool_checks_the_alert_rules() {
    let text = promtool(&["check", "rules", "vitalwatch-alerts.yml"]);
    assert!(text.contains("SUCCESS: 5 rules found"), "{text}");
}

#[test]
fn promtool_unit_tests_of_the_alert_rules_pass() {
    let text = promtool(&["test", "rules", "vitalwatch-alerts.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The alert rules' names, as in `vitalwatch-alerts.yml`.
const ALERTS: &[&str] = &[
    "VitalwatchDown",
    "VitalwatchVitalStale",
    "VitalwatchHighPriorityAlarmUnacknowledged",
    "VitalwatchRecordingFailing",
    "VitalwatchDeviceLinkLost",
];

/// The config of the test's daemon: the hypertensive response (a high-priority BP alarm once
/// the infusion runs), with an oximeter whose profile also declares a respiratory rate that
/// the simulator never sends: its age stays +Inf (exported as `inf`).
fn daemon_config(profiles: &std::path::Path) -> String {
    let oximeter =
        std::fs::read_to_string(repo_root().join("device-profiles/simulated-oximeter.toml"))
            .unwrap();
    let declared = "vitals = [\"spo2\", \"pulse_rate\", \"perfusion_index\"]";
    assert!(oximeter.contains(declared), "{oximeter}");
    let profile = oximeter
        .replace(
            "name = \"simulated-oximeter\"",
            "name = \"simulated-oximeter-rr\"",
        )
        .replace(
            declared,
            "vitals = [\"spo2\", \"pulse_rate\", \"perfusion_index\", \"respiratory_rate\"]",
        );
    std::fs::write(profiles.join("simulated-oximeter-rr.toml"), profile).unwrap();
    format!(
        "[site]\nchair = \"{CHAIR}\"\n\n[profiles]\ndir = \"{}\"\n\n\
         [[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter-rr\"\nscenario = \"hypertensive-response\"\n\n\
         [[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\nscenario = \"hypertensive-response\"\ninterval_s = 300\n",
        profiles.display()
    )
}

/// A Prometheus scraping `daemon` every second as job `vitalwatch`, with the repository's
/// alert rules evaluated every second.
fn prometheus_config(daemon: &Daemon) -> String {
    let rules = prometheus_dir().join("vitalwatch-alerts.yml");
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: vitalwatch\n    static_configs:\n      - targets: ['{}']\n",
        rules.display(),
        daemon.addr()
    )
}

fn label<'a>(series: &'a Value, name: &str) -> &'a str {
    series["metric"][name].as_str().unwrap_or("")
}

/// The value of an instant-vector sample as Prometheus writes it (`"1"`, `"+Inf"`, `"NaN"`).
fn value(series: &Value) -> &str {
    series["value"][1].as_str().unwrap_or("")
}

/// A real Prometheus scrapes the real daemon (the target is up, the exposition parses,
/// `inf` included), loads the repository's alert rules and evaluates each without error;
/// the rules that should match this daemon's state do: a vital never read during a session,
/// an unacknowledged high-priority alarm.
#[tokio::test]
async fn a_real_prometheus_scrapes_the_daemon_and_evaluates_every_alert_rule() {
    require_tool("promtool");
    require_tool("prometheus");
    let profiles = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&daemon_config(profiles.path()), &["--speed", "60"]);
    let prometheus = Prometheus::start(&prometheus_config(&daemon)).await;
    let started = Instant::now();

    // Up, with no error: the exposition parsed, `inf` ages included. Its target labels are
    // the job and instance only; `chair` comes with the series.
    let targets = prometheus
        .wait_targets_up("vitalwatch", Duration::from_secs(30))
        .await;
    assert_eq!(targets.len(), 1);
    assert!(
        targets[0]["labels"].get("chair").is_none(),
        "{}",
        targets[0]
    );
    eprintln!("target up after {:?}", started.elapsed());

    let mut events = daemon.events().await;
    daemon.start_session("KAP-PROM").await;
    daemon.set_phase("infusion").await;

    // The never-read vital arrives as +Inf.
    let never_read = prometheus
        .query_until_nonempty(
            &format!(
                "vitalwatch_reading_age_seconds{{chair=\"{CHAIR}\", device=\"ox1\", vital=\"respiratory_rate\"}}"
            ),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(value(&never_read[0]), "+Inf", "{never_read:?}");
    let spo2_age = prometheus
        .query_until_nonempty(
            &format!("vitalwatch_reading_age_seconds{{chair=\"{CHAIR}\", vital=\"spo2\"}}"),
            Duration::from_secs(20),
        )
        .await;
    assert!(
        value(&spo2_age[0]).parse::<f64>().unwrap().is_finite(),
        "{spo2_age:?}"
    );

    // The hypertensive response: a high-priority alarm once the infusion runs.
    events
        .until(
            Instant::now() + Duration::from_secs(90),
            |_| {},
            |e| e.name == "alarm" && e.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("no high-priority alarm");
    eprintln!("high alarm after {:?}", started.elapsed());
    prometheus
        .query_until_nonempty(
            &format!(
                "vitalwatch_alarm_active{{chair=\"{CHAIR}\", priority=\"high\", acknowledged=\"false\"}}"
            ),
            Duration::from_secs(20),
        )
        .await;

    // Prometheus loaded exactly the repository's rules, and evaluates each without error
    // (a vector-matching mistake shows here as the rule's lastError).
    let deadline = Instant::now() + Duration::from_secs(20);
    let rules = loop {
        let rules = prometheus.rules().await;
        if rules
            .iter()
            .all(|r| r["health"] == "ok" && r["lastError"].as_str().unwrap_or("").is_empty())
        {
            break rules;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated cleanly: {rules:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: BTreeSet<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALERTS.iter().copied().collect(), "{rules:#?}");

    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        let expr = rule["query"].as_str().unwrap();
        let result = prometheus.query(expr).await;
        eprintln!("{name}: {} series", result.len());
        match name {
            // The daemon is up: nothing. The same expression with `== 1` finds it, with the
            // chair joined from its build_info.
            "VitalwatchDown" => {
                assert!(result.is_empty(), "{name}: {result:?}");
                assert_eq!(expr.matches("== 0").count(), 2, "{expr}");
                let up = prometheus.query(&expr.replace("== 0", "== 1")).await;
                assert_eq!(up.len(), 1, "{up:?}");
                assert_eq!(label(&up[0], "chair"), CHAIR, "{up:?}");
                assert_eq!(label(&up[0], "instance"), daemon.addr(), "{up:?}");
            }
            // The oximeter's respiratory rate, never read, during the session.
            "VitalwatchVitalStale" => {
                let rr: Vec<&Value> = result
                    .iter()
                    .filter(|s| label(s, "vital") == "respiratory_rate")
                    .collect();
                assert_eq!(rr.len(), 1, "{name}: {result:?}");
                assert_eq!(label(rr[0], "chair"), CHAIR);
                assert_eq!(label(rr[0], "device"), "ox1");
                assert_eq!(value(rr[0]), "+Inf");
            }
            "VitalwatchHighPriorityAlarmUnacknowledged" => {
                assert!(!result.is_empty(), "{name}: no series");
                for series in &result {
                    assert_eq!(label(series, "chair"), CHAIR);
                    assert_eq!(label(series, "priority"), "high");
                    assert_eq!(label(series, "acknowledged"), "false");
                    assert!(!label(series, "rule").is_empty(), "{series}");
                    assert!(!label(series, "device").is_empty(), "{series}");
                }
            }
            // Recording works and the links are up: nothing, though the series exist.
            "VitalwatchRecordingFailing" => {
                assert!(result.is_empty(), "{name}: {result:?}");
                let failing = prometheus
                    .query(&format!(
                        "vitalwatch_recording_failing{{chair=\"{CHAIR}\"}}"
                    ))
                    .await;
                assert_eq!(failing.len(), 1, "{failing:?}");
                assert_eq!(value(&failing[0]), "0");
            }
            "VitalwatchDeviceLinkLost" => {
                assert!(result.is_empty(), "{name}: {result:?}");
                let lost = prometheus
                    .query(&format!(
                        "vitalwatch_device_link_state{{chair=\"{CHAIR}\", state=\"lost\"}}"
                    ))
                    .await;
                assert_eq!(lost.len(), 2, "one per device: {lost:?}");
            }
            other => panic!("a new alert rule {other}: say here what it gives in this test"),
        }
    }

    // The alerts as Prometheus runs them: the never-read vital fires after its 30 s (the
    // session started about that long ago), the high alarm is pending (2 min).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let alerts = prometheus.alerts().await;
        let find = |name: &str, vital: Option<&str>| {
            alerts
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == name
                        && vital.is_none_or(|v| a["labels"]["vital"] == v)
                })
                .cloned()
        };
        let stale = find("VitalwatchVitalStale", Some("respiratory_rate"));
        let high = find("VitalwatchHighPriorityAlarmUnacknowledged", None);
        if let (Some(stale), Some(high)) = (stale, high)
            && stale["state"] == "firing"
        {
            assert_eq!(stale["labels"]["chair"], CHAIR);
            assert_eq!(
                stale["annotations"]["summary"],
                format!("respiratory_rate from ox1 is stale at {CHAIR}")
            );
            assert_eq!(high["labels"]["chair"], CHAIR);
            assert_eq!(high["labels"]["severity"], "critical");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the never-read vital's alert did not fire, or the high alarm's is not pending: {alerts:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("done after {:?}", started.elapsed());
}
