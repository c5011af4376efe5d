//! The clinic's Prometheus and Grafana files (`config/prometheus/`, `config/grafana/`): checked
//! and unit-tested by the real `promtool`, then loaded by a real `prometheus` scraping the real
//! daemon, which evaluates every alert rule's expression and every dashboard query against the
//! daemon's series; the dashboard is then drawn from its JSON with that data and photographed
//! by headless Chromium (`docs/screenshots/dashboard.png`). Without `prometheus`, `promtool`
//! or Chromium these tests fail (they never skip): `scripts/test` installs them.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::dashboard::{self, DATASOURCE_UID};
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
/// an unacknowledged high-priority alarm. Every query of the Grafana dashboard succeeds and
/// gives data (but where this daemon has none to give), and the dashboard is drawn with it.
#[tokio::test]
async fn a_real_prometheus_evaluates_every_alert_rule_and_dashboard_query_on_the_daemon() {
    require_tool("promtool");
    require_tool("prometheus");
    common::chromium::chromium(); // fails now, not after the run, when it is missing
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
    // The dashboard's picture starts at the first scrape.
    let scrapes_from = unix_now() - 1.0;

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
    eprintln!("alerts checked after {:?}", started.elapsed());

    dashboard_queries_give_data(&prometheus).await;
    eprintln!("dashboard queries checked after {:?}", started.elapsed());
    screenshot_dashboard(&prometheus, (scrapes_from, unix_now())).await;
    eprintln!("done after {:?}", started.elapsed());
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The dashboard's variables in this test: `$chair` the test's chair (Grafana passes a
/// multi-value variable as a regex, which one chair is), `$__rate_interval` at least four
/// scrape intervals, as Grafana computes it.
const VARS: &[(&str, &str)] = &[("chair", CHAIR), ("__rate_interval", "1m")];

/// Queries of the dashboard that may have no data here, by panel title and refId, and why.
const MAY_BE_EMPTY: &[(&str, &str, &str)] = &[(
    "Decode errors and dropped readings",
    "A",
    "simulated devices never fail to decode",
)];

/// The chair variable lists the test's chair, asked as Grafana asks (label values of
/// `vitalwatch_build_info`); every panel query succeeds, and gives a finite value within 20 s
/// unless listed in `MAY_BE_EMPTY`.
async fn dashboard_queries_give_data(prometheus: &Prometheus) {
    let dashboard = dashboard::load();
    let variable = &dashboard["templating"]["list"][0];
    assert_eq!(
        variable["query"]["query"],
        "label_values(vitalwatch_build_info, chair)"
    );
    let chairs = prometheus
        .get(
            "/api/v1/label/chair/values",
            &[("match[]", "vitalwatch_build_info")],
        )
        .await;
    assert_eq!(chairs["data"], serde_json::json!([CHAIR]), "{chairs}");

    let queries = dashboard::queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut empty_allowed = 0;
    for query in &queries {
        let title = query.panel["title"].as_str().unwrap();
        let expr = dashboard::substitute(query.expr, VARS);
        // Fails on a query Prometheus rejects.
        let result = prometheus.query(&expr).await;
        if MAY_BE_EMPTY
            .iter()
            .any(|(t, r, _)| *t == title && *r == query.ref_id)
        {
            empty_allowed += 1;
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut result = result;
        while !result
            .iter()
            .any(|s| value(s).parse::<f64>().is_ok_and(f64::is_finite))
        {
            assert!(
                Instant::now() < deadline,
                "no finite value within 20 s for {title} {}: {expr}\n{result:?}",
                query.ref_id
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            result = prometheus.query(&expr).await;
        }
        // Every series the overview table shows is the chair's, one row per chair.
        if query.panel["type"] == "table" {
            assert_eq!(result.len(), 1, "{title} {}: {result:?}", query.ref_id);
            assert_eq!(label(&result[0], "chair"), CHAIR, "{expr}");
        }
    }
    assert_eq!(
        empty_allowed,
        MAY_BE_EMPTY.len(),
        "a MAY_BE_EMPTY entry matches no query"
    );
}

/// The picture of the dashboard in the README, `docs/screenshots/dashboard.png`: drawn by this
/// test from the dashboard's JSON (its layout, titles, units, mappings, queries), with the
/// data of a real Prometheus scraping the real daemon, then photographed by headless Chromium.
/// It is not a Grafana screenshot (Grafana is not packaged in Debian): see
/// `tests/common/dashboard.rs` for what the drawing keeps of Grafana's.
async fn screenshot_dashboard(prometheus: &Prometheus, range: (f64, f64)) {
    let dashboard = dashboard::load();
    let note = "Drawn by tests/prometheus.rs from config/grafana/dashboards/vitalwatch-clinic.json, \
                with data from a real Prometheus scraping the real daemon (not by Grafana). \
                The simulated hypertensive response runs at 60x speed: a minute here is an hour \
                of the session.";
    let html = dashboard::render(
        &dashboard,
        prometheus,
        VARS,
        &[("chair", CHAIR)],
        range,
        note,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("dashboard.html");
    std::fs::write(&page, &html).unwrap();
    let height = dashboard::page_height(&dashboard);
    common::chromium::screenshot(
        &page,
        (dashboard::PAGE_WIDTH as u32, height),
        "dashboard.png",
    );
    // Kept for a look when run by hand.
    std::fs::copy(
        &page,
        std::env::temp_dir().join("vitalwatch-dashboard.html"),
    )
    .unwrap();
}

/// The provisioning files and the dashboard fit together: the data source's fixed uid is the
/// one every panel and query uses; panels have unique ids and fit the 24-column grid without
/// overlapping; each panel has queries; the chair variable and the repeated row are there.
#[test]
fn the_grafana_dashboard_is_well_formed() {
    let grafana = repo_root().join("config/grafana");
    let datasource =
        std::fs::read_to_string(grafana.join("provisioning/datasources/vitalwatch.yml")).unwrap();
    let setting = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap().trim().trim_start_matches("- "))
            .filter_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().to_string())
            .collect()
    };
    assert_eq!(setting(&datasource, "uid"), [DATASOURCE_UID]);
    assert_eq!(setting(&datasource, "type"), ["prometheus"]);
    let provider =
        std::fs::read_to_string(grafana.join("provisioning/dashboards/vitalwatch.yml")).unwrap();
    assert_eq!(setting(&provider, "type"), ["file"]);
    assert_eq!(setting(&provider, "path").len(), 1, "{provider}");

    let dashboard = dashboard::load();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert_eq!(variables.len(), 1);
    let chair = &variables[0];
    assert_eq!(chair["name"], "chair");
    assert_eq!(chair["multi"], true);
    assert_eq!(chair["includeAll"], true);
    assert_eq!(chair["datasource"]["uid"], DATASOURCE_UID);
    assert_eq!(
        chair["definition"],
        "label_values(vitalwatch_build_info, chair)"
    );

    let panels = dashboard::panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "{title}: id {id} used twice");
        let g = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{title} overlaps another panel at {cx},{cy}"
                );
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "{title}");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(
                refs.insert(target["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "{title}"
            );
            if !target["datasource"].is_null() {
                assert_eq!(target["datasource"]["uid"], DATASOURCE_UID, "{title}");
            }
            // Only the chair variable and Grafana's own interval.
            dashboard::substitute(target["expr"].as_str().unwrap(), VARS);
        }
    }
    // The overview first; then one drill-down row per chair.
    let rows: Vec<&&Value> = panels.iter().filter(|p| p["type"] == "row").collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["title"], "Clinic overview");
    assert_eq!(rows[1]["repeat"], "chair");
    let drill_down_y = rows[1]["gridPos"]["y"].as_u64().unwrap();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let exprs: Vec<&str> = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        if panel["gridPos"]["y"].as_u64().unwrap() > drill_down_y {
            // A drill-down panel shows its row's chair.
            for expr in exprs {
                assert!(
                    expr.contains("chair=~\"$chair\""),
                    "{}: {expr}",
                    panel["title"]
                );
            }
        }
    }
}
