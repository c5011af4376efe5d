//! What the bedside panel reads from the real daemon: the heartbeat on the event stream, the
//! devices' expected intervals, the rules' limits, the trends, `whoami`, notes, and the page
//! and its assets (built in, nothing from elsewhere).

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, simulated_config};
use serde_json::{Value, json};

const TOKEN: &str = "ward-b-station-token-0002";

fn with_token(config: &str) -> String {
    format!("[[api.token]]\nname = \"nurse-station-b\"\ntoken = \"{TOKEN}\"\n\n{config}")
}

async fn get(daemon: &Daemon, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(daemon.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_event_stream_sends_a_heartbeat_every_second_with_the_daemon_time() {
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "10"],
    );
    let mut events = daemon.events().await;
    let start = Instant::now();
    let mut beats = Vec::new();
    let first = events
        .next(Instant::now() + Duration::from_secs(5))
        .await
        .expect("first event");
    assert_eq!(first.name, "status");
    assert_eq!(first.data["tokens_required"], false);
    while let Some(event) = events.next(start + Duration::from_millis(3600)).await {
        if event.name == "heartbeat" {
            beats.push((start.elapsed(), event.data));
        }
    }
    // One at once, then one a second: 4 in 3.6 s.
    assert_eq!(beats.len(), 4, "{beats:?}");
    assert!(beats[0].0 < Duration::from_millis(500), "{beats:?}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = beats
        .iter()
        .map(|(_, b)| b["time"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in times.windows(2) {
        // A second of real time is 10 s of daemon time at --speed 10.
        let step = (pair[1] - pair[0]).num_milliseconds();
        assert!((9_000..=11_000).contains(&step), "{step} ms between beats");
    }
    assert!(beats.iter().all(|(_, b)| b["clock_speed"] == 10.0));
}

#[tokio::test]
async fn status_gives_each_device_its_expected_interval_and_says_whether_tokens_are_required() {
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "10"],
    );
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["tokens_required"], false, "{status:#}");
    let device = |id: &str| {
        status["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {status:#}"))
            .clone()
    };
    let ox = device("ox1");
    assert_eq!(
        ox["vitals"],
        json!(["spo2", "pulse_rate", "perfusion_index"])
    );
    assert_eq!(
        (
            &ox["interval_s"],
            &ox["silent_after_s"],
            &ox["stale_after_s"]
        ),
        (&json!(1.0), &json!(10.0), &json!(3.0))
    );
    let cuff = device("cuff1");
    assert_eq!(
        cuff["vitals"],
        json!(["systolic", "diastolic", "mean_arterial", "pulse_rate"])
    );
    assert_eq!(
        (
            &cuff["interval_s"],
            &cuff["silent_after_s"],
            &cuff["stale_after_s"]
        ),
        (&json!(300.0), &Value::Null, &json!(330.0))
    );

    let guarded = Daemon::start(
        &with_token(&simulated_config("typical-infusion", "")),
        &["--speed", "10"],
    );
    assert_eq!(
        guarded.get_json("/api/v1/status").await["tokens_required"],
        true
    );
}

#[tokio::test]
async fn rules_give_the_limits_per_vital_the_cuff_schedule_and_the_audio_pause() {
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "10"],
    );
    let rules = daemon.get_json("/api/v1/rules").await;
    assert_eq!(rules["audio_pause_s"], 120.0);
    assert_eq!(
        rules["bp_schedule"],
        json!({"baseline_s": 600.0, "infusion_s": 600.0, "recovery_s": 900.0})
    );
    let rule = |id: &str| {
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id}"))
            .clone()
    };
    let critical = rule("spo2_critical");
    assert_eq!(critical["priority"], "high");
    assert_eq!(
        critical["when"],
        json!([{"vital": "spo2", "measure": "value", "comparison": "below", "limit": 85.0, "unit": "%"}])
    );
    assert_eq!(
        critical["armed"],
        json!(["baseline", "infusion", "recovery"])
    );
    let high = rule("bp_high");
    assert_eq!(high["when"][1]["vital"], "diastolic");
    assert_eq!(high["when"][1]["comparison"], "at_or_above");
    assert_eq!(high["when"][1]["limit"], 110.0);
    assert_eq!(high["confirm"]["priority"], "high");
    assert_eq!(high["confirm"]["within_s"], 360.0);
    let rise = rule("bp_rise");
    assert_eq!(rise["when"][0]["baseline_percent"], 30.0);
    assert_eq!(rise["when"][0].get("limit"), None);
    let technical: Vec<&str> = rules["technical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["condition"].as_str().unwrap())
        .collect();
    assert_eq!(
        technical,
        [
            "device_silent",
            "device_disconnected",
            "sensor_off",
            "poor_signal",
            "bp_overdue",
            "ring_overflow",
            "decode_errors",
            "recording_failure",
            "forwarding_failure"
        ]
    );
    assert_eq!(rules["technical"][4]["delay_s"], 120.0);
}

#[tokio::test]
async fn trends_hold_the_last_half_hour_of_each_vital() {
    // 600 × real time: 40 minutes of daemon time in 4 s.
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "600"],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let trends = daemon.get_json("/api/v1/trends").await;
    assert_eq!(trends["window_s"], 1800.0);
    let now: chrono::DateTime<chrono::Utc> = trends["time"].as_str().unwrap().parse().unwrap();
    let series = |device: &str, vital: &str| {
        trends["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["device"] == device && s["vital"] == vital)
            .unwrap_or_else(|| panic!("no {device}/{vital}"))["points"]
            .as_array()
            .unwrap()
            .clone()
    };
    let spo2 = series("ox1", "spo2");
    // A 1 Hz oximeter over 30 minutes, less what the real-time jitter merged.
    assert!((1500..=1801).contains(&spo2.len()), "{} points", spo2.len());
    let times: Vec<i64> = spo2.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]));
    let oldest = now.timestamp_millis() - times[0];
    assert!(
        (1_700_000..=1_800_000).contains(&oldest),
        "oldest point {oldest} ms old"
    );
    assert!(
        spo2.iter()
            .all(|p| (85.0..=100.0).contains(&p[1].as_f64().unwrap()))
    );
    // The cuff every 5 minutes: 6 or 7 measurements in the window.
    let systolic = series("cuff1", "systolic");
    assert!((5..=7).contains(&systolic.len()), "{systolic:?}");
}

#[tokio::test]
async fn whoami_checks_a_token_and_notes_are_session_events_with_their_author() {
    let daemon = Daemon::start(
        &with_token(&simulated_config("typical-infusion", "")),
        &["--speed", "10"],
    );
    assert_eq!(get(&daemon, "/api/v1/whoami", None).await.0, 401);
    assert_eq!(
        get(&daemon, "/api/v1/whoami", Some("not-a-token-of-ours-00"))
            .await
            .0,
        403
    );
    let (status, body) = get(&daemon, "/api/v1/whoami", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"name": "nurse-station-b", "tokens_required": true})
    );

    let note = |text: &str| json!({ "text": text });
    let (status, body) = daemon
        .post_as(Some(TOKEN), "/api/v1/session/note", note("calm"))
        .await;
    assert_eq!(status, 409, "a note needs a session: {body}");
    let (status, _) = daemon
        .post_as(Some(TOKEN), "/api/v1/session", json!({"id": "KAP-NOTE-1"}))
        .await;
    assert_eq!(status, 201);
    let mut events = daemon.events().await;
    let (status, _) = daemon
        .post_as(None, "/api/v1/session/note", note("calm"))
        .await;
    assert_eq!(status, 401);
    for bad in [
        json!({"text": ""}),
        note(&"x".repeat(501)),
        json!({"text": "a", "extra": 1}),
    ] {
        let (status, body) = daemon
            .post_as(Some(TOKEN), "/api/v1/session/note", bad.clone())
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["error"].is_string());
    }
    let (status, body) = daemon
        .post_as(
            Some(TOKEN),
            "/api/v1/session/note",
            note("Eyes closed, calm"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let event = events
        .until(
            Instant::now() + Duration::from_secs(10),
            |_| {},
            |e| e.name == "session" && e.data["change"] == "note",
        )
        .await
        .expect("the note on the event stream");
    assert_eq!(event.data["note"], "Eyes closed, calm");
    assert_eq!(event.data["by"], "nurse-station-b");
    assert_eq!(event.data["id"], "KAP-NOTE-1");
    assert!(event.data["time"].is_string());

    // The infusion window: start and stop times on the session.
    for phase in ["infusion", "recovery"] {
        let (status, _) = daemon
            .post_as(
                Some(TOKEN),
                "/api/v1/session/phase",
                json!({ "phase": phase }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let session = &daemon.get_json("/api/v1/status").await["session"];
    let started: chrono::DateTime<chrono::Utc> = session["infusion_started"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stopped: chrono::DateTime<chrono::Utc> = session["infusion_stopped"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stopped >= started, "{session:#}");
    assert_eq!(session["phase_since"], session["infusion_stopped"]);
}

#[tokio::test]
async fn the_panel_and_its_assets_are_built_in_and_load_nothing_from_elsewhere() {
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "10"],
    );
    let client = reqwest::Client::new();
    let page = client.get(daemon.url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("page");
    assert!(html.contains("MONITOR OFFLINE") || html.contains("CONNECTING"));
    for (path, content_type) in [("/panel.js", "text/javascript"), ("/panel.css", "text/css")] {
        let response = client.get(daemon.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(header.starts_with(content_type), "{path}: {header}");
        let body = response.text().await.unwrap();
        for external in ["http://", "https://", "//fonts.", "cdn"] {
            assert!(!body.contains(external), "{path} refers to {external}");
        }
    }
    for external in ["http://", "https://"] {
        assert!(!html.contains(external), "the page refers to {external}");
    }
}
