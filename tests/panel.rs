//! The bedside panel in a real browser: headless Debian chromium driven by playwright-core
//! (`tests/panel/panel.test.mjs`), against the real daemon on an ephemeral port playing a
//! simulated scenario at high speed.
//!
//! Each test starts the daemon, runs the Node script on one case, and fails with the script's
//! output if the script fails. The script asks for what only this side can do (stop, resume,
//! kill or restart the daemon) with `@@control {...}` lines on its stdout and reads the answer
//! on its stdin. Chromium, Node and `tests/panel/node_modules` are required: without them the
//! tests fail (never skip); `scripts/test` installs them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::chromium::{chromium, screenshots_dir};
use common::{Daemon, repo_root, require_tool, simulated_config};
use serde_json::{Value, json};

/// One case at a time: the machine's two cores are shared between chromium and the daemon
/// under test, and a daemon's scenario clock runs from its start, so each test takes this
/// before it starts its daemon.
static ONE_CASE: Mutex<()> = Mutex::new(());

fn one_case() -> MutexGuard<'static, ()> {
    ONE_CASE.lock().unwrap_or_else(|e| e.into_inner())
}

/// No case may run longer than this, whatever happens in the browser.
const CASE_TIMEOUT: Duration = Duration::from_secs(180);

const TOKEN: &str = "chair-3-station-token-0001";

fn panel_dir() -> PathBuf {
    let dir = repo_root().join("tests/panel");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "{}/node_modules is missing playwright-core: run scripts/test (or `npm ci --prefix tests/panel`)",
        dir.display()
    );
    dir
}

/// Runs `panel.test.mjs <case>` against `daemon`; `control` answers the script's requests.
fn run_case(
    case: &str,
    daemon: &mut Daemon,
    env: &[(&str, String)],
    mut control: impl FnMut(&Value, &mut Daemon) -> Value,
) {
    let node = require_tool("node");
    let chromium = chromium();
    let dir = panel_dir();
    let mut child = Command::new(node)
        .arg("panel.test.mjs")
        .arg(case)
        .current_dir(&dir)
        .env("VITALWATCH_URL", &daemon.base)
        .env("VITALWATCH_CHROMIUM", &chromium)
        .env("VITALWATCH_SCREENSHOTS", screenshots_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let mut stdin = child.stdin.take().expect("stdin");
    let (lines, received) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    let out_lines = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_lines.send(line);
        }
    });
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(format!("[stderr] {line}"));
        }
    });

    let deadline = Instant::now() + CASE_TIMEOUT;
    let mut output = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                eprintln!("[panel {case}] {line}");
                if let Some(request) = line.strip_prefix("@@control ") {
                    let request: Value = serde_json::from_str(request).expect("control JSON");
                    let answer = control(&request, daemon);
                    writeln!(stdin, "{answer}").expect("answer the script");
                    stdin.flush().expect("flush");
                }
                output.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(_)) = child.try_wait() {
                    // Drain what is left, then stop.
                    while let Ok(line) = received.recv_timeout(Duration::from_millis(300)) {
                        eprintln!("[panel {case}] {line}");
                        output.push(line);
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "panel case `{case}` ran past {CASE_TIMEOUT:?}; its output:\n{}",
                        output.join("\n")
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().expect("wait for node");
    assert!(
        status.success(),
        "panel case `{case}` failed ({status}); its output:\n{}",
        output.join("\n")
    );
    assert!(
        output.iter().any(|l| l == &format!("PASS {case}")),
        "panel case `{case}` exited without saying PASS; its output:\n{}",
        output.join("\n")
    );
}

/// Answers the only request that needs no daemon control: none.
fn no_control(request: &Value, _: &mut Daemon) -> Value {
    panic!("unexpected control request {request}")
}

fn write_scenario(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).expect("write scenario");
    path.display().to_string()
}

#[test]
fn vitals_appear_update_and_a_quiet_or_lost_device_greys_out() {
    let _one = one_case();
    // The oximeter sends for 100 s, is connected but silent for 100 s, sends again, then loses
    // its link at 250 s for 100 s. The cuff measures every 10 minutes.
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(
        &dir,
        r#"
description = "Panel test: readings, a silent oximeter, then a lost one"
seed = 5
[baseline]
spo2 = { value = 97, noise = 0.6 }
pulse_rate = { value = 74, noise = 2 }
perfusion_index = { value = 3.5, noise = 0.3 }
systolic = { value = 124, noise = 4 }
diastolic = { value = 78, noise = 3 }
[[step]]
at_s = 100
silent = { role = "oximeter", for_s = 100 }
[[step]]
at_s = 250
disconnect = { role = "oximeter", for_s = 100 }
"#,
    );
    let config = format!(
        "[[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"{scenario}\"\n\n\
         [[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\nscenario = \"{scenario}\"\ninterval_s = 600\n"
    );
    let mut daemon = Daemon::start(&config, &["--speed", "20"]);
    run_case("vitals", &mut daemon, &[], no_control);
}

#[test]
fn a_high_priority_alarm_flashes_red_at_2_hz_colours_its_tile_and_sounds_ten_pulses() {
    let _one = one_case();
    // The cuff every 4 minutes: its confirming reading comes well within bp_high's 5-minute
    // confirmation window (at exactly 5 minutes, the receive time's jitter decides).
    let config = "[[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"hypertensive-response\"\n\n\
                  [[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\nscenario = \"hypertensive-response\"\ninterval_s = 240\n";
    let mut daemon = Daemon::start(config, &["--speed", "60"]);
    run_case("alarm", &mut daemon, &[], no_control);
}

#[test]
fn acknowledge_audio_pause_and_session_actions_need_a_nurse_token() {
    let _one = one_case();
    // SpO2 82 % from t = 60 s for 50 minutes: a high alarm that stays.
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(
        &dir,
        r#"
description = "Panel test: a long critical desaturation"
seed = 7
[baseline]
spo2 = { value = 97, noise = 0.5 }
pulse_rate = { value = 76, noise = 2 }
perfusion_index = { value = 3.2, noise = 0.3 }
systolic = { value = 126, noise = 3 }
diastolic = { value = 80, noise = 2 }
[[step]]
at_s = 60
dip = { vital = "spo2", to = 82, for_s = 3000 }
"#,
    );
    let config = format!(
        "[[api.token]]\nname = \"nurse-station-a\"\ntoken = \"{TOKEN}\"\n\n\
         [[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"{scenario}\"\n\n\
         [[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\nscenario = \"{scenario}\"\ninterval_s = 300\n"
    );
    let mut daemon = Daemon::start(&config, &["--speed", "20"]);
    run_case(
        "actions",
        &mut daemon,
        &[("VITALWATCH_TOKEN", TOKEN.to_string())],
        no_control,
    );
}

#[test]
fn a_stopped_or_killed_daemon_turns_the_panel_into_monitor_offline_within_5_s() {
    let _one = one_case();
    let config = simulated_config("typical-infusion", "");
    let extra = ["--speed", "10"];
    let mut daemon = Daemon::start(&config, &extra);
    let addr = daemon.addr().to_string();
    run_case("offline", &mut daemon, &[], |request, daemon| {
        match request["action"].as_str() {
            // A hung daemon: the connection stays open, the heartbeats stop.
            Some("stop") => daemon.signal("STOP"),
            Some("resume") => daemon.signal("CONT"),
            Some("kill") => daemon.kill_now(),
            Some("restart") => {
                *daemon = Daemon::start_listening(&config, &addr, &extra);
                assert_eq!(daemon.addr(), addr, "restarted on another address");
            }
            other => panic!("unknown control action {other:?}"),
        }
        json!({ "done": request["action"] })
    })
}
