//! Alarm forwarding against a real Alertmanager (Debian's prometheus-alertmanager): a
//! high-priority alarm of a simulated session appears as an alert with its labels, follows the
//! nurse's acknowledgement, is resolved when the alarm ends, and forwarding survives
//! Alertmanager being stopped (the forwarding-failure technical alarm meanwhile) and started
//! again. Also: the shipped routing example passes `amtool`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, repo_root, require_tool, simulated_config};
use serde_json::{Value, json};

const EXAMPLE: &str = "config/alertmanager/alertmanager.yml";

/// A running Alertmanager, killed when dropped.
struct Alertmanager {
    child: Child,
    base: String,
}

impl Alertmanager {
    /// Starts Alertmanager on `port` with `dir` for its config and storage.
    fn start(dir: &Path, port: u16) -> Alertmanager {
        let binary = require_tool("prometheus-alertmanager");
        let config = dir.join("alertmanager.yml");
        // Nowhere to deliver: the test reads the alerts back from the API.
        std::fs::write(
            &config,
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .expect("write alertmanager.yml");
        let storage = dir.join("data");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single instance: no cluster gossip port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/-/ready", self.base))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "alertmanager never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The active (firing, unresolved) alerts Alertmanager holds.
    async fn alerts(&self) -> Vec<Value> {
        let response = reqwest::get(format!("{}/api/v2/alerts", self.base))
            .await
            .expect("GET /api/v2/alerts");
        response.json::<Vec<Value>>().await.expect("alerts JSON")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` every 200 ms for up to `within`; its first `Some`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn label<'a>(alert: &'a Value, key: &str) -> Option<&'a str> {
    alert["labels"][key].as_str()
}

/// The high-priority alert of `rule` (it may have been posted at a lower priority first).
fn find<'a>(alerts: &'a [Value], rule: &str, acknowledged: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| {
        label(a, "rule") == Some(rule)
            && label(a, "priority") == Some("high")
            && label(a, "acknowledged") == Some(acknowledged)
    })
}

fn technical_alarm<'a>(status: &'a Value, condition: &str) -> Option<&'a Value> {
    status["alarms"]
        .as_array()?
        .iter()
        .find(|a| a["condition"] == condition)
}

#[tokio::test]
async fn a_high_priority_alarm_reaches_alertmanager_follows_the_nurse_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let alertmanager = Alertmanager::start(dir.path(), port);
    alertmanager.wait_ready().await;

    let config = format!(
        "[site]\nchair = \"chair-7\"\n\n[alertmanager]\nurls = [\"http://127.0.0.1:{port}\"]\nrepeat_s = 1\npanel_url = \"http://chair-7.clinic.lan:8080/\"\n\n{}",
        simulated_config("hypertensive-response", "")
    );
    let daemon = Daemon::start(&config, &["--speed", "60"]);
    let mut events = daemon.events().await;
    daemon.start_session("KAP-AM-1").await;
    daemon.set_phase("infusion").await;
    let high = events
        .until(
            Instant::now() + Duration::from_secs(60),
            |_| {},
            |e| e.name == "alarm" && e.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("a high-priority alarm");
    let alarm = &high.data["alarm"];
    let rule = alarm["rule"].as_str().expect("a rule alarm").to_string();
    let id = alarm["id"].as_u64().unwrap();

    // The alert, with the labels a clinic routes on.
    let alert = until(
        "the alert in Alertmanager",
        Duration::from_secs(15),
        || async { find(&alertmanager.alerts().await, &rule, "false").cloned() },
    )
    .await;
    assert_eq!(label(&alert, "chair"), Some("chair-7"));
    assert_eq!(label(&alert, "source"), Some("vitalwatch"));
    assert_eq!(label(&alert, "alertname"), Some(rule.as_str()));
    assert_eq!(label(&alert, "kind"), Some("physiological"));
    assert_eq!(label(&alert, "advice"), alarm["advice"].as_str());
    assert!(
        label(&alert, "advice").is_some(),
        "a high BP alarm carries advice: {alert}"
    );
    assert_eq!(alert["generatorURL"], "http://chair-7.clinic.lan:8080/");
    assert!(
        !alert.to_string().contains("KAP-AM-1"),
        "no session id in alerts: {alert}"
    );

    // Alertmanager stops: forwarding fails, the panel shows it, the alarm stays active.
    alertmanager.stop();
    until(
        "the forwarding-failure alarm",
        Duration::from_secs(20),
        || async {
            let status = daemon.get_json("/api/v1/status").await;
            technical_alarm(&status, "forwarding_failure").map(|a| a["device"].clone())
        },
    )
    .await;
    // Alertmanager comes back (empty: it kept nothing): the daemon posts the alarm again and
    // the technical alarm ends.
    let alertmanager = Alertmanager::start(dir.path(), port);
    alertmanager.wait_ready().await;
    until(
        "the alert posted again",
        Duration::from_secs(30),
        || async { find(&alertmanager.alerts().await, &rule, "false").cloned() },
    )
    .await;
    until(
        "the forwarding-failure alarm ended",
        Duration::from_secs(10),
        || async {
            let status = daemon.get_json("/api/v1/status").await;
            technical_alarm(&status, "forwarding_failure")
                .is_none()
                .then_some(())
        },
    )
    .await;

    // The nurse acknowledges: the acknowledged alert replaces the unacknowledged one (a pager
    // route on acknowledged="false" stops).
    let (code, answer) = daemon
        .post(&format!("/api/v1/alarms/{id}/acknowledge"), json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");
    until(
        "the acknowledged alert",
        Duration::from_secs(15),
        || async {
            let alerts = alertmanager.alerts().await;
            (find(&alerts, &rule, "true").is_some() && find(&alerts, &rule, "false").is_none())
                .then_some(())
        },
    )
    .await;

    // The session ends, every alarm with it: the alerts are resolved.
    daemon.set_phase("ended").await;
    until("the alerts resolved", Duration::from_secs(15), || async {
        let alerts = alertmanager.alerts().await;
        alerts
            .iter()
            .all(|a| label(a, "chair") != Some("chair-7"))
            .then_some(())
    })
    .await;
}

#[test]
fn the_routing_example_passes_amtool_and_pages_only_unacknowledged_high_alarms() {
    let amtool = require_tool("amtool");
    let example: PathBuf = repo_root().join(EXAMPLE);
    let check = Command::new(&amtool)
        .arg("check-config")
        .arg(&example)
        .output()
        .expect("run amtool");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let route = |labels: &[&str]| {
        let output = Command::new(&amtool)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", example.display()))
            .args(labels)
            .output()
            .expect("run amtool");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let vitalwatch = ["source=vitalwatch", "chair=chair-1", "kind=physiological"];
    let with =
        |extra: &[&'static str]| -> Vec<&str> { vitalwatch.iter().chain(extra).copied().collect() };
    assert_eq!(
        route(&with(&["priority=high", "acknowledged=false"])),
        "pager,nurse-station"
    );
    assert_eq!(
        route(&with(&["priority=high", "acknowledged=true"])),
        "nurse-station"
    );
    assert_eq!(
        route(&with(&["priority=medium", "acknowledged=false"])),
        "nurse-station"
    );
}
