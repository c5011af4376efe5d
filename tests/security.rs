//! Security properties of the real daemon: it refuses to listen beyond loopback without nurse
//! tokens, and no patient identifier (the session id, a note's text) reaches its log, its
//! metrics or the alerts it forwards.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use common::{Daemon, simulated_config};
use serde_json::json;

const TOKEN: &str = "security-test-station-token";

fn with_token(config: &str) -> String {
    format!("[[api.token]]\nname = \"station\"\ntoken = \"{TOKEN}\"\n\n{config}")
}

/// Runs `vitalwatch run` expecting it to refuse to start: its exit code and stderr.
fn refused(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(["run", "--config"])
        .arg(&path)
        .args(args)
        .output()
        .expect("run vitalwatch");
    assert!(started.elapsed() < Duration::from_secs(10), "it ran");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn listening_beyond_loopback_without_tokens_is_refused_before_binding() {
    let config = simulated_config("typical-infusion", "");
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, stderr) = refused(&config, &["--listen", listen]);
        assert!(code.is_some_and(|c| c != 0), "{listen}: exit {code:?}");
        assert!(
            stderr.contains(&format!(
                "refusing to listen on {listen} without nurse tokens"
            )),
            "{listen}: {stderr}"
        );
        assert!(stderr.contains("[[api.token]]"), "says how: {stderr}");
        assert!(!stderr.contains("listening on"), "{listen}: {stderr}");
    }
    // The config's own [server] listen is held to the same rule.
    let (code, stderr) = refused(
        &format!("[server]\nlisten = \"0.0.0.0:0\"\n\n{config}"),
        &[],
    );
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without nurse tokens"),
        "{stderr}"
    );
}

#[tokio::test]
async fn listening_beyond_loopback_with_tokens_starts_and_still_needs_a_token_to_act() {
    let daemon = Daemon::start_listening(
        &with_token(&simulated_config("typical-infusion", "")),
        "0.0.0.0:0",
        &[],
    );
    let port = daemon.addr().rsplit(':').next().unwrap().to_string();
    assert!(daemon.addr().starts_with("0.0.0.0:"), "{}", daemon.addr());
    let status: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["tokens_required"], true, "{status}");
    let (code, _) = daemon
        .post_as(None, "/api/v1/session", json!({"id": "KAP-OPEN-1"}))
        .await;
    assert_eq!(code, 401);
}

async fn act(daemon: &Daemon, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    daemon.post_as(Some(TOKEN), path, body).await
}

/// A stand-in for Alertmanager: keeps the body of every `POST /api/v2/alerts`.
async fn alertmanager_stand_in() -> (String, Arc<Mutex<Vec<String>>>) {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let kept = posted.clone();
    let app = Router::new().route(
        "/api/v2/alerts",
        post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, posted)
}

/// What must never leave the clinical record: the session id and a note's text, whole or
/// in part.
const SESSION_ID: &str = "KAP-SECRET-4711";
const NOTE: &str = "Patient Jane Placeholder reports feeling anxious";
const FRAGMENTS: &[&str] = &[
    "KAP-SECRET-4711",
    "SECRET-4711",
    "Jane Placeholder",
    "Placeholder",
];

fn leaks<'a>(what: &str, texts: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    texts
        .into_iter()
        .filter(|text| {
            let lower = text.to_lowercase();
            FRAGMENTS.iter().any(|f| lower.contains(&f.to_lowercase()))
        })
        .map(|text| format!("{what}: {text}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_id_or_note_text_reaches_the_log_the_metrics_or_the_forwarded_alerts() {
    let (alertmanager, posted) = alertmanager_stand_in().await;
    let database = tempfile::tempdir().unwrap();
    let config = with_token(&format!(
        "[alertmanager]\nurls = [\"{alertmanager}\"]\nrepeat_s = 1\n\n\
         [recording]\ndatabase = \"{}\"\n\n{}",
        database.path().join("sessions.sqlite").display(),
        simulated_config("critical-desaturation", "")
    ));
    // critical-desaturation: SpO2 82 % at 20 min, 20 s into the run at 60x.
    let mut daemon = Daemon::start(&config, &["--speed", "60"]);
    let mut events = daemon.events().await;

    let (code, body) = act(&daemon, "/api/v1/session", json!({ "id": SESSION_ID })).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = act(&daemon, "/api/v1/session/note", json!({ "text": NOTE })).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = act(
        &daemon,
        "/api/v1/session/phase",
        json!({ "phase": "infusion" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // A refused second start names the active session in its answer (the API is the record's
    // view), but must not log it.
    let (code, _) = act(&daemon, "/api/v1/session", json!({ "id": "KAP-OTHER-1" })).await;
    assert_eq!(code, 409);

    // The high SpO2 alarm: raised, forwarded (and re-posted), acknowledged.
    let raised = events
        .until(
            Instant::now() + Duration::from_secs(60),
            |_| {},
            |e| {
                e.name == "alarm"
                    && e.data["alarm"]["rule"] == "spo2_critical"
                    && e.data["change"] == "raised"
            },
        )
        .await
        .expect("the spo2_critical alarm");
    let deadline = Instant::now() + Duration::from_secs(20);
    while posted
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.contains("spo2_critical"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the alarm was not forwarded twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = daemon.get_text("/metrics").await;
    assert!(
        metrics.contains("rule=\"spo2_critical\""),
        "the alarm is in the metrics"
    );
    let id = raised.data["alarm"]["id"].as_u64().unwrap();
    let (code, body) = act(
        &daemon,
        &format!("/api/v1/alarms/{id}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // An export, which the log records (with who asked).
    let export = reqwest::Client::new()
        .get(daemon.url(&format!(
            "/api/v1/sessions/{SESSION_ID}/export?format=csv-events"
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let (code, body) = act(
        &daemon,
        "/api/v1/session/phase",
        json!({ "phase": "recovery" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    // The session id is in the API's view of the session: the clinical record.
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["id"], SESSION_ID);

    // A restart resumes the session (and logs that it did).
    let mut log = daemon.log_lines();
    daemon.kill_now();
    let restarted = Daemon::start(&config, &["--speed", "60"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !restarted
        .log_lines()
        .iter()
        .any(|l| l.contains("resuming the session"))
    {
        assert!(Instant::now() < deadline, "the session was not resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = act(
        &restarted,
        "/api/v1/session/phase",
        json!({ "phase": "ended" }),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let metrics_after = restarted.get_text("/metrics").await;
    log.extend(restarted.log_lines());
    drop(restarted);

    // The log did record what happened, so a leak would have had its chance.
    for event in [
        "session started",
        "note",
        "phase",
        "acknowledge",
        "session export requested",
        "resuming the session",
    ] {
        assert!(
            log.iter().any(|l| l.contains(event)),
            "no `{event}` in the log"
        );
    }
    let alerts = posted.lock().unwrap().clone();
    let mut found = leaks("log", &log);
    found.extend(leaks("metrics", &vec![metrics, metrics_after]));
    found.extend(leaks("alert", &alerts));
    assert!(
        found.is_empty(),
        "patient identifiers leaked:\n{}",
        found.join("\n")
    );
}
