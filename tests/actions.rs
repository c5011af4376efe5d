//! Nurse actions on the real daemon: acknowledge and audio pause, each needing a nurse token
//! when tokens are configured and recorded under the token's name.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, simulated_config};
use serde_json::{Value, json};

const TOKEN: &str = "ward-a-station-token-0001";

fn config_with_token(scenario: &str) -> String {
    format!(
        "[[api.token]]\nname = \"nurse-station-a\"\ntoken = \"{TOKEN}\"\n\n{}",
        simulated_config(scenario, "")
    )
}

fn alarm_with(status: &Value, id: u64) -> Option<&Value> {
    status["alarms"].as_array()?.iter().find(|a| a["id"] == id)
}

#[tokio::test]
async fn acknowledge_and_audio_pause_need_a_token_and_are_recorded_with_its_name() {
    let daemon = Daemon::start(
        &config_with_token("hypertensive-response"),
        &["--speed", "600"],
    );
    let mut events = daemon.events().await;
    let deadline = || Instant::now() + Duration::from_secs(60);

    // Without a token, or with a wrong one, nothing changes.
    let (status, body) = daemon
        .post_as(None, "/api/v1/session", json!({"id": "KAP-ACT-1"}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("nurse token"),
        "{body}"
    );
    let (status, _) = daemon
        .post_as(
            Some("not-the-right-token-xx"),
            "/api/v1/session",
            json!({"id": "KAP-ACT-1"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        daemon.get_json("/api/v1/status").await["session"],
        Value::Null
    );

    let (status, _) = daemon
        .post_as(Some(TOKEN), "/api/v1/session", json!({"id": "KAP-ACT-1"}))
        .await;
    assert_eq!(status, 201);
    let session_event = events
        .until(deadline(), |_| {}, |e| e.name == "session")
        .await
        .expect("session event");
    assert_eq!(session_event.data["by"], "nurse-station-a");
    let (status, _) = daemon
        .post_as(
            Some(TOKEN),
            "/api/v1/session/phase",
            json!({"phase": "infusion"}),
        )
        .await;
    assert_eq!(status, 200);

    let high = events
        .until(
            deadline(),
            |_| {},
            |e| e.name == "alarm" && e.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("a high-priority alarm");
    let id = high.data["alarm"]["id"].as_u64().unwrap();
    assert_eq!(high.data["alarm"]["audible"], true);
    let path = |action: &str| format!("/api/v1/alarms/{id}/{action}");

    // Audio pause: refused without a token; with it, silent for 120 s then audible again.
    let (status, _) = daemon.post_as(None, &path("audio-pause"), json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = daemon
        .post_as(Some(TOKEN), &path("audio-pause"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let paused = &body["alarms"][0];
    assert_eq!(paused["audible"], false);
    assert_eq!(paused["audio_paused_by"], "nurse-station-a");
    assert!(paused["audio_pause_remaining_s"].as_f64().unwrap() <= 120.0);
    let event = events
        .until(
            deadline(),
            |_| {},
            |e| e.name == "alarm" && e.data["change"] == "audio_paused",
        )
        .await
        .expect("audio_paused event");
    assert_eq!(
        (
            event.data["alarm"]["id"].as_u64(),
            event.data["by"].as_str()
        ),
        (Some(id), Some("nurse-station-a"))
    );
    let resumed = events
        .until(
            deadline(),
            |_| {},
            |e| e.name == "alarm" && e.data["change"] == "audio_resumed",
        )
        .await
        .expect("the pause runs out");
    assert_eq!(resumed.data["alarm"]["audible"], true);
    let paused_at: chrono::DateTime<chrono::Utc> =
        event.data["time"].as_str().unwrap().parse().unwrap();
    let resumed_at: chrono::DateTime<chrono::Utc> =
        resumed.data["time"].as_str().unwrap().parse().unwrap();
    let pause = (resumed_at - paused_at).num_milliseconds() as f64 / 1000.0;
    assert!(
        (120.0..125.0).contains(&pause),
        "audio pause lasted {pause} s of daemon time"
    );

    // Acknowledge: silent, but still shown while the blood pressure is still high.
    let (status, _) = daemon.post_as(None, &path("acknowledge"), json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = daemon
        .post_as(Some(TOKEN), &path("acknowledge"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let event = events
        .until(
            deadline(),
            |_| {},
            |e| e.name == "alarm" && e.data["change"] == "acknowledged",
        )
        .await
        .expect("acknowledged event");
    assert_eq!(event.data["by"], "nurse-station-a");
    let status = daemon.get_json("/api/v1/status").await;
    let alarm = alarm_with(&status, id)
        .expect("an acknowledged alarm whose condition is present stays shown");
    assert_eq!(alarm["acknowledged_by"], "nurse-station-a");
    assert_eq!(alarm["audible"], false);
    assert_eq!(alarm["condition_present"], true);

    // Unknown or malformed ids.
    let (status, body) = daemon
        .post_as(Some(TOKEN), "/api/v1/alarms/999999/acknowledge", json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = daemon
        .post_as(Some(TOKEN), "/api/v1/alarms/abc/audio-pause", json!({}))
        .await;
    assert_eq!(status, 400);

    // Pause all: every active alarm not acknowledged is paused (here: none left to pause).
    let (status, body) = daemon
        .post_as(Some(TOKEN), "/api/v1/alarms/audio-pause", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id)
    );
}

#[test]
fn listening_beyond_loopback_without_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("open.toml");
    std::fs::write(&config, simulated_config("typical-infusion", "")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .expect("run vitalwatch");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without nurse tokens"),
        "{stderr}"
    );
}
