//! Durable recording with the real daemon: a SIGKILL during the infusion loses nothing older
//! than a second and the session goes on with a gap; a full disk stops recording (a technical
//! alarm) but never monitoring, and recording resumes when space returns.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::record::{LossWindow, ReadingKey, reading_key, recorded_keys, the_session};
use common::{Daemon, deadline, simulated_config};
use vitalwatch::recorder::{EventDetail, Store};

fn config(database: &Path, scenario: &str) -> String {
    format!(
        "[recording]\ndatabase = \"{}\"\n\n{}",
        database.display(),
        simulated_config(scenario, "")
    )
}

#[tokio::test]
async fn a_sigkill_during_the_infusion_loses_nothing_older_than_a_second_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("sessions.sqlite");
    let daemon = Daemon::start(&config(&database, "typical-infusion"), &["--speed", "20"]);
    let mut events = daemon.events().await;
    daemon.start_session("KAP-CRASH-1").await;
    // A baseline phase with oximeter readings (20 a second at this speed).
    events
        .until(
            deadline(10),
            |_| {},
            |e| e.name == "reading" && e.data["vital"] == "spo2",
        )
        .await
        .expect("baseline readings");
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.set_phase("infusion").await;
    let before = daemon.get_json("/api/v1/status").await["session"].clone();
    assert!(
        before["baseline"]["spo2"].is_number(),
        "a baseline to keep: {before:#}"
    );

    // Watch readings for a random 2 to 5 s of the infusion, remembering when each was seen.
    let run_for = Duration::from_millis(2000 + (std::process::id() as u64 * 7919) % 3000);
    let started = Instant::now();
    let mut seen: Vec<(Instant, ReadingKey)> = Vec::new();
    while started.elapsed() < run_for {
        let Some(event) = events.next(started + run_for).await else {
            break;
        };
        if let Some(key) = reading_key(&event) {
            seen.push((Instant::now(), key));
        }
    }
    let window = LossWindow::ask(&daemon).await;
    drop(daemon); // SIGKILL
    let must_have = window.must_have(&seen, Instant::now());
    assert!(
        must_have.len() > 50,
        "too few readings to judge: {}",
        must_have.len()
    );

    let store = Store::open_read_only(&database).expect("open the store after the kill");
    store
        .integrity_check()
        .expect("PRAGMA integrity_check passes");
    let session = the_session(&store, "KAP-CRASH-1");
    assert_eq!(session.ended, None, "killed, not ended");
    let recorded = recorded_keys(&store, session.key);
    let missing: Vec<_> = must_have
        .iter()
        .filter(|key| !recorded.contains(**key))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} readings older than the loss window lost, e.g. {:?}",
        missing.len(),
        must_have.len(),
        missing.first()
    );
    drop(store);

    // Restart: the session goes on, with a gap for the time the daemon was down.
    let daemon = Daemon::start(&config(&database, "typical-infusion"), &["--speed", "20"]);
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["id"], "KAP-CRASH-1", "{status:#}");
    assert_eq!(status["session"]["phase"], "infusion");
    // What the rules judge against, and the infusion's start, as before the crash.
    assert_eq!(status["session"]["baseline"], before["baseline"]);
    let micros = |session: &serde_json::Value| {
        session["infusion_started"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map(|t| t.timestamp_micros()) // the store keeps microseconds
    };
    assert!(micros(&before).is_some(), "{before:#}");
    assert_eq!(micros(&status["session"]), micros(&before));
    let mut events = daemon.events().await;
    events
        .until(deadline(20), |_| {}, |e| e.name == "reading")
        .await
        .expect("monitoring goes on after the restart");
    daemon.set_phase("recovery").await;
    tokio::time::sleep(Duration::from_millis(600)).await; // past a batch window
    let store = Store::open_read_only(&database).expect("open the store");
    let session = the_session(&store, "KAP-CRASH-1");
    let events = store.events(session.key).expect("events");
    let gap = events
        .iter()
        .find_map(|e| match &e.what {
            EventDetail::Gap { why, to } => Some((e.at, *to, why.clone())),
            _ => None,
        })
        .expect("a gap event for the restart");
    assert!(gap.2.contains("restarted"), "{gap:?}");
    assert!(gap.0 <= gap.1);
    let phases: Vec<String> = session.phases.iter().map(|p| p.phase.to_string()).collect();
    assert_eq!(
        phases,
        ["baseline", "infusion", "recovery"],
        "the session continues"
    );
}

/// The id of the alarm an event raised, if it raised one.
fn raised_id(event: &common::SseEvent) -> Option<u64> {
    (event.name == "alarm" && event.data["change"] == "raised")
        .then(|| event.data["alarm"]["id"].as_u64())
        .flatten()
}

#[tokio::test]
async fn after_a_restart_alarms_are_numbered_after_the_last_runs_so_an_id_names_one_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("sessions.sqlite");
    let start = || {
        Daemon::start(
            &config(&database, "hypertensive-response"),
            &["--speed", "300"],
        )
    };
    let daemon = start();
    let mut events = daemon.events().await;
    daemon.start_session("KAP-IDS-1").await;
    daemon.set_phase("infusion").await;
    let first = events
        .until(deadline(60), |_| {}, |e| raised_id(e).is_some())
        .await
        .expect("an alarm in the first run");
    let mut first_run: Vec<u64> = raised_id(&first).into_iter().collect();
    // Some more of the run, then past the crash-loss window, so that what was seen is recorded.
    let until = Instant::now() + Duration::from_millis(500);
    while let Some(event) = events.next(until).await {
        first_run.extend(raised_id(&event));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let highest = daemon.get_json("/api/v1/status").await["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_u64())
        .chain(first_run)
        .max()
        .expect("alarm ids of the first run");
    drop(daemon); // SIGKILL

    let daemon = start();
    let mut events = daemon.events().await;
    let again = events
        .until(deadline(60), |_| {}, |e| raised_id(e).is_some())
        .await
        .expect("an alarm in the resumed session");
    assert!(
        raised_id(&again) > Some(highest),
        "the second run raised alarm {:?}, the first had gone up to {highest}",
        raised_id(&again)
    );
}

/// A small tmpfs of its own: a real disk that fills, and that `remount` makes bigger.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "the disk-full test mounts a small tmpfs and needs root (scripts/test and CI run as root): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk { path, _dir: dir }
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("remount");
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_recording_not_monitoring_and_recording_resumes_when_space_returns() {
    let disk = SmallDisk::mount("160k");
    let database = disk.path.join("sessions.sqlite");
    let daemon = Daemon::start(
        &config(&database, "hypertensive-response"),
        &["--speed", "300"],
    );
    let mut events = daemon.events().await;
    daemon.start_session("KAP-FULL-1").await;
    daemon.set_phase("infusion").await;

    let is_recording_alarm = |e: &common::SseEvent, change: &str| {
        e.name == "alarm"
            && e.data["change"] == change
            && e.data["alarm"]["condition"] == "recording_failure"
    };
    let failure = events
        .until(deadline(60), |_| {}, |e| is_recording_alarm(e, "raised"))
        .await
        .expect("the recording-failure technical alarm once the disk is full");
    assert_eq!(failure.data["alarm"]["kind"], "technical");
    assert!(
        failure.data["alarm"]["message"]
            .as_str()
            .unwrap()
            .contains("full"),
        "{}",
        failure.data
    );

    // Monitoring goes on: readings keep coming and the BP alarm of the scenario is raised.
    let bp = events
        .until(
            deadline(60),
            |_| {},
            |e| e.name == "alarm" && e.data["alarm"]["rule"] == "bp_high",
        )
        .await
        .expect("physiological alarms go on while recording fails");
    assert_eq!(bp.data["alarm"]["kind"], "physiological");

    // Space returns: recording resumes by itself, the alarm ends.
    disk.grow("64m");
    events
        .until(deadline(30), |_| {}, |e| is_recording_alarm(e, "ended"))
        .await
        .expect("the alarm ends when recording works again");
    daemon.set_phase("recovery").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let store = Store::open_read_only(&database).expect("open the store");
    let session = the_session(&store, "KAP-FULL-1");
    let phases: Vec<String> = session.phases.iter().map(|p| p.phase.to_string()).collect();
    assert_eq!(
        phases,
        ["baseline", "infusion", "recovery"],
        "recorded after the disk had room again"
    );
    assert!(
        session.alarms.medium + session.alarms.high >= 1,
        "{session:?}"
    );
}

#[tokio::test]
async fn a_recorded_session_replays_to_the_alarms_it_had_and_to_others_under_other_rules() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("sessions.sqlite");
    let daemon = Daemon::start(
        &config(&database, "hypertensive-response"),
        &["--speed", "300"],
    );
    let mut events = daemon.events().await;
    daemon.start_session("KAP-REPLAY-1").await;
    daemon.set_phase("infusion").await;
    let mut live = Vec::new();
    events
        .until(
            deadline(60),
            |e| {
                if e.name == "alarm" && e.data["alarm"]["kind"] == "physiological" {
                    live.push(format!(
                        "{} {} {}",
                        e.data["change"].as_str().unwrap(),
                        e.data["alarm"]["priority"].as_str().unwrap(),
                        e.data["alarm"]["rule"].as_str().unwrap()
                    ));
                }
            },
            |e| e.name == "alarm" && e.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("the confirmed BP alarm");
    daemon.set_phase("ended").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(daemon);

    let replay = |rules: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vitalwatch"));
        command
            .args(["replay", "--session", "KAP-REPLAY-1", "--database"])
            .arg(&database);
        if let Some(rules) = rules {
            command.arg("--rules").arg(rules);
        }
        let output = command.output().expect("run replay");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let timeline = replay(None);
    // The physiological alarms the live session had, in the same order.
    let replayed: Vec<String> = timeline
        .lines()
        .filter(|l| l.contains("bp_high") || l.contains("bp_rise") || l.contains("hypotension"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", words[1], words[2], words[3])
        })
        .filter(|l| !l.starts_with("ended"))
        .collect();
    assert_eq!(
        replayed[..live.len()],
        live[..],
        "live {live:?}\nreplay:\n{timeline}"
    );

    // Under a stricter BP limit the same record alarms earlier.
    let strict = dir.path().join("strict.toml");
    let shipped =
        std::fs::read_to_string(common::repo_root().join("config/rules/default.toml")).unwrap();
    std::fs::write(
        &strict,
        shipped.replacen("at_or_above = 180", "at_or_above = 160", 1),
    )
    .unwrap();
    let strict_timeline = replay(Some(&strict));
    let first_bp = |timeline: &str| {
        timeline
            .lines()
            .find(|l| l.contains("raised") && l.contains("bp_high"))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
    };
    let (default_at, strict_at) = (first_bp(&timeline), first_bp(&strict_timeline));
    assert!(
        strict_at.is_some() && strict_at < default_at,
        "default {default_at:?}, strict {strict_at:?}"
    );
}
