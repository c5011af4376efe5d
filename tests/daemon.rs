//! The real daemon end to end: simulated patient → rings → engine → HTTP API and event stream.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, simulated_config};
use serde_json::{Value, json};

/// Fast enough that a 5-minute cuff cycle takes half a second of real time.
const SPEED: &str = "600";

fn is_physiological_alarm(event: &common::SseEvent) -> bool {
    event.name == "alarm" && event.data["alarm"]["kind"] == "physiological"
}

#[tokio::test]
async fn a_hypertensive_response_during_infusion_raises_a_high_priority_bp_alarm() {
    let daemon = Daemon::start(
        &simulated_config("hypertensive-response", ""),
        &["--speed", SPEED],
    );
    let mut events = daemon.events().await;
    daemon.start_session("KAP-TEST-1").await;
    daemon.set_phase("infusion").await;

    let mut bp_alarms = Vec::new();
    let high = events
        .until(
            Instant::now() + Duration::from_secs(60),
            |event| {
                if event.name == "alarm" && event.data["alarm"]["rule"] == "bp_high" {
                    bp_alarms.push(event.data.clone());
                }
            },
            |event| event.name == "alarm" && event.data["alarm"]["priority"] == "high",
        )
        .await
        .expect("no high-priority alarm within 60 s");

    assert_eq!(high.data["alarm"]["rule"], "bp_high", "{}", high.data);
    assert_eq!(high.data["alarm"]["kind"], "physiological");
    assert_eq!(high.data["alarm"]["device"], "cuff1");
    // The first crossing raised it at medium; the confirming reading escalated it.
    assert_eq!(bp_alarms.len(), 2, "{bp_alarms:#?}");
    assert_eq!(bp_alarms[0]["change"], "raised");
    assert_eq!(bp_alarms[0]["alarm"]["priority"], "medium");
    assert_eq!(high.data["change"], "escalated");
    assert_eq!(high.data["from"], "medium");
    assert!(high.data["alarm"]["value"].as_f64().unwrap() >= 180.0);
    let advice = high.data["alarm"]["advice"].as_str().unwrap_or_default();
    assert!(advice.contains("pausing the infusion"), "{}", high.data);

    // The status API agrees.
    let status = daemon.get_json("/api/v1/status").await;
    let alarms = status["alarms"].as_array().unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a["rule"] == "bp_high" && a["priority"] == "high"),
        "{status:#}"
    );
}

#[tokio::test]
async fn without_a_session_the_same_scenario_raises_no_physiological_alarm() {
    let daemon = Daemon::start(
        &simulated_config("hypertensive-response", ""),
        &["--speed", SPEED],
    );
    let mut events = daemon.events().await;

    // Wait for two consecutive cuff readings at or above 180 mmHg: the input that alarms
    // during a session.
    let mut crossings = 0;
    let mut physiological = Vec::new();
    let second = events
        .until(
            Instant::now() + Duration::from_secs(60),
            |event| {
                if is_physiological_alarm(event) {
                    physiological.push(event.data.clone());
                }
            },
            |event| {
                if event.name == "reading" && event.data["vital"] == "systolic" {
                    if event.data["value"].as_f64().unwrap_or(0.0) >= 180.0 {
                        crossings += 1;
                    } else {
                        crossings = 0;
                    }
                }
                crossings >= 2
            },
        )
        .await;
    assert!(
        second.is_some(),
        "the scenario never reached 180 mmHg twice"
    );
    assert!(physiological.is_empty(), "{physiological:#?}");
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"], Value::Null);
    assert_eq!(status["alarms"], json!([]), "{status:#}");
}

#[tokio::test]
async fn the_status_api_shows_session_devices_readings_and_alarms() {
    let daemon = Daemon::start(
        &simulated_config("typical-infusion", ""),
        &["--speed", "60"],
    );
    let mut events = daemon.events().await;
    daemon.start_session("KAP-TEST-2").await;
    // A cuff reading arrives at once (its first measurement is at t = 0 of the scenario).
    // Wait for an SpO2 reading the engine took after the session started (events come in
    // the engine's order), so that the baseline phase has one: the daemon has only just
    // started, and its first readings may come before the session.
    let mut session_started = false;
    events
        .until(
            Instant::now() + Duration::from_secs(30),
            |_| {},
            |e| {
                session_started |= e.name == "session";
                session_started
                    && e.name == "reading"
                    && e.data["device"] == "ox1"
                    && e.data["vital"] == "spo2"
            },
        )
        .await
        .expect("no SpO2 reading");
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["id"], "KAP-TEST-2");
    assert_eq!(status["session"]["phase"], "baseline");
    assert!(status["session"]["seconds_in_phase"].as_f64().unwrap() >= 0.0);
    assert_eq!(status["clock_speed"], 60.0);
    let devices = status["devices"].as_array().unwrap();
    let ox = devices.iter().find(|d| d["id"] == "ox1").unwrap();
    assert_eq!(ox["profile"], "simulated-oximeter");
    assert_eq!(ox["link"], "connected");
    let spo2 = &ox["readings"]["spo2"];
    assert_eq!(spo2["unit"], "%");
    assert!(
        (90.0..=100.0).contains(&spo2["value"].as_f64().unwrap()),
        "{spo2}"
    );
    assert!(spo2["age_s"].as_f64().unwrap() < 5.0, "{spo2}");
    let cuff = devices.iter().find(|d| d["id"] == "cuff1").unwrap();
    for vital in ["systolic", "diastolic", "mean_arterial", "pulse_rate"] {
        assert!(
            cuff["readings"][vital]["value"].is_number(),
            "cuff lacks {vital}: {cuff}"
        );
    }
    assert_eq!(status["alarms"], json!([]));
    assert_eq!(
        status["session"]["baseline"],
        json!({}),
        "no baseline before the baseline phase ends"
    );

    daemon.set_phase("infusion").await;
    let status = daemon.get_json("/api/v1/status").await;
    let baseline = &status["session"]["baseline"];
    let spo2 = baseline["spo2"]
        .as_f64()
        .expect("an SpO2 baseline from the baseline phase");
    assert!((94.0..=100.0).contains(&spo2), "{baseline}");
}

#[tokio::test]
async fn bad_requests_get_a_4xx_with_a_message_and_the_daemon_keeps_running() {
    let mut daemon = Daemon::start(&simulated_config("typical-infusion", ""), &["--speed", "1"]);
    let client = reqwest::Client::new();
    let send = |path: &str, body: &'static str, content_type: &'static str| {
        client
            .post(daemon.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let expect = |response: reqwest::Response, status: u16| async move {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.expect("errors are JSON");
        let message = body["error"]
            .as_str()
            .expect("an error message")
            .to_string();
        assert!(!message.is_empty());
        message
    };

    let message = expect(
        send("/api/v1/session", "{\"id\": ", "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("JSON"), "{message}");
    expect(
        send("/api/v1/session", "{\"id\": \"a\"}", "text/plain")
            .await
            .unwrap(),
        415,
    )
    .await;
    let message = expect(
        send(
            "/api/v1/session",
            "{\"id\": \"Jane Doe\"}",
            "application/json",
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("pseudonymous"), "{message}");
    expect(
        send("/api/v1/session", "{\"name\": \"x\"}", "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    let message = expect(
        send(
            "/api/v1/session/phase",
            "{\"phase\": \"infusion\"}",
            "application/json",
        )
        .await
        .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("no session"), "{message}");

    daemon.start_session("KAP-TEST-3").await;
    let message = expect(
        send(
            "/api/v1/session",
            "{\"id\": \"KAP-TEST-4\"}",
            "application/json",
        )
        .await
        .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("KAP-TEST-3"), "{message}");
    let message = expect(
        send(
            "/api/v1/session/phase",
            "{\"phase\": \"dosing\"}",
            "application/json",
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("dosing"), "{message}");
    let message = expect(
        send(
            "/api/v1/session/phase",
            "{\"phase\": \"recovery\"}",
            "application/json",
        )
        .await
        .unwrap(),
        409,
    )
    .await;
    assert!(message.contains("baseline to recovery"), "{message}");
    let huge = Box::leak(format!("{{\"id\": \"{}\"}}", "x".repeat(100_000)).into_boxed_str());
    expect(
        send("/api/v1/session", huge, "application/json")
            .await
            .unwrap(),
        413,
    )
    .await;

    // After all that the session is intact and the daemon still answers.
    daemon.set_phase("infusion").await;
    daemon.set_phase("recovery").await;
    daemon.set_phase("ended").await;
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["phase"], "ended");
    daemon.start_session("KAP-TEST-5").await;
    assert!(daemon.is_running());
}
