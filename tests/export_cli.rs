//! `vitalwatch sessions` and `vitalwatch export` on the command line, and the same over HTTP
//! from the real daemon (`GET /api/v1/sessions`, `GET /api/v1/sessions/{id}/export`): the
//! listing, an export written whole, content types and file names, and the errors a clinic
//! would meet (an unknown session, an unknown format, several sessions with one id, no
//! database).

mod common;
#[path = "support/recorded.rs"]
mod recorded;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, simulated_config};
use recorded::*;
use serde_json::Value;
use vitalwatch::recorder::{ReadingRecord, Record, Store};
use vitalwatch::vitals::{DeviceId, Quality, SessionId, Vital};

/// Runs `vitalwatch args`: (exit code, stdout bytes, stderr).
fn vitalwatch(args: &[&str]) -> (i32, Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(args)
        .output()
        .expect("run vitalwatch");
    (
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A database with the short session `KAP-0042` (ended) and `KAP-0043`, still open.
fn database(dir: &Path) -> PathBuf {
    let path = dir.join("sessions.sqlite");
    short_session(&path);
    let id = SessionId::parse("KAP-0043").unwrap();
    let mut store = Store::open(&path).unwrap();
    let mut batch = vec![Record::SessionStarted {
        session: id.clone(),
        at: at(3600.0),
        by: "nurse-a".into(),
    }];
    for s in 0..30 {
        batch.push(Record::Reading(ReadingRecord {
            session: id.clone(),
            device: DeviceId::new("ox1"),
            vital: Vital::Spo2,
            value: Some(98.0),
            quality: Quality::GOOD,
            device_time: None,
            received: at(3600.0 + f64::from(s)),
        }));
    }
    store.write(&batch).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn sessions_lists_every_session_from_the_database_or_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let (code, out, err) = vitalwatch(&["sessions", "--database", db.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = text(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("KEY"), "{out}");
    for needle in [
        "KAP-0042",
        "2026-11-25 09:00:00",
        "2026-11-25 09:12:00",
        "0:12:00",
        // bp_high reached high, spo2_low medium.
        "1/1/0",
        "baseline 09:00, infusion 09:02, recovery 09:10, ended 09:12",
    ] {
        assert!(
            lines[1].contains(needle),
            "{needle:?} missing from {}",
            lines[1]
        );
    }
    assert!(
        lines[2].contains("KAP-0043") && lines[2].contains("open"),
        "{}",
        lines[2]
    );

    // JSON, and the database named by a config's [recording] section.
    let config = dir.path().join("vitalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[recording]\ndatabase = \"sessions.sqlite\"\n\n{}",
            simulated_config("typical-infusion", "")
        ),
    )
    .unwrap();
    let (code, out, err) =
        vitalwatch(&["sessions", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let sessions: Value = serde_json::from_slice(&out).unwrap();
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["KAP-0042", "KAP-0043"]);
    assert_eq!(sessions[0]["alarms"]["high"], 1);
    assert_eq!(sessions[1]["ended"], Value::Null);

    // --config and --database together make no sense.
    let (code, _, err) = vitalwatch(&[
        "sessions",
        "--config",
        config.to_str().unwrap(),
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_missing_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.sqlite");
    for args in [
        vec!["sessions", "--database", missing.to_str().unwrap()],
        vec![
            "export",
            "--session",
            "KAP-0042",
            "--format",
            "csv",
            "--database",
            missing.to_str().unwrap(),
        ],
    ] {
        let (code, _, err) = vitalwatch(&args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("no session database at"), "{err}");
        assert!(!missing.exists(), "a reader never creates the database");
    }
}

#[test]
fn export_of_an_unknown_session_lists_the_recorded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let (code, out, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-9999",
        "--format",
        "csv",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("no session `KAP-9999` is recorded"), "{err}");
    assert!(
        err.contains("KAP-0043 (key 2, started 2026-11-25T10:00:00Z), KAP-0042 (key 1"),
        "{err}"
    );
}

#[test]
fn export_of_an_unknown_format_names_the_formats() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let (code, _, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0042",
        "--format",
        "pdf",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown export format `pdf`; formats: csv, csv-events, fhir, edf, html"),
        "{err}"
    );
    // A summary interval is FHIR's only.
    let (code, _, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0042",
        "--format",
        "csv",
        "--interval",
        "60",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--interval applies to the fhir format only"),
        "{err}"
    );
}

#[test]
fn export_writes_the_file_whole_or_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let out = dir.path().join("KAP-0042.edf");
    let (code, stdout, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0042",
        "--format",
        "edf",
        "--out",
        out.to_str().unwrap(),
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty());
    assert!(
        err.contains("exported session KAP-0042 (key 1) as edf: 2157 readings"),
        "{err}"
    );
    // Not a terminal: no progress bar drawn.
    assert!(!err.contains("exporting ["), "{err}");
    let edf = std::fs::read(&out).unwrap();
    assert!(edf.starts_with(b"0       KAP-0042 X X X"), "an EDF header");
    assert!(!dir.path().join("KAP-0042.edf.partial").exists());

    let (code, stdout, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0042",
        "--format",
        "csv",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text(&stdout).starts_with("\u{feff}time_utc,seconds_since_infusion_start,phase,"),
        "{}",
        text(&stdout[..80.min(stdout.len())])
    );

    // The export is marked in the database when asked (the daemon is not running here).
    let (code, _, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0042",
        "--format",
        "fhir",
        "--out",
        dir.path().join("bundle.json").to_str().unwrap(),
        "--mark-exported",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::open_read_only(&db).unwrap();
    let sessions = store.sessions().unwrap();
    assert!(sessions[0].exported.is_some());
    assert!(sessions[1].exported.is_none());
}

#[test]
fn an_open_session_exports_what_is_recorded_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let (code, out, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0043",
        "--format",
        "html",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let html = text(&out);
    assert!(
        html.contains("still open when the report was made"),
        "{html}"
    );
    let (code, out, err) = vitalwatch(&[
        "export",
        "--session",
        "KAP-0043",
        "--format",
        "fhir",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let bundle: Value = serde_json::from_slice(&out).unwrap();
    let encounter = &bundle["entry"][0]["resource"];
    assert_eq!(encounter["resourceType"], "Encounter");
    assert_eq!(encounter["status"], "in-progress");
}

#[test]
fn sessions_sharing_an_id_are_told_apart_by_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.sqlite");
    short_session(&db);
    // The same patient's second session, an hour later.
    let id = SessionId::parse(SHORT_ID).unwrap();
    let mut store = Store::open(&db).unwrap();
    store
        .write(&[
            Record::SessionStarted {
                session: id.clone(),
                at: at(3600.0),
                by: "nurse-a".into(),
            },
            Record::SessionEnded {
                session: id,
                at: at(3660.0),
                by: "nurse-a".into(),
            },
        ])
        .unwrap();
    drop(store);
    let export = |key: Option<&str>| {
        let mut args = vec![
            "export",
            "--session",
            SHORT_ID,
            "--format",
            "csv-events",
            "--database",
            db.to_str().unwrap(),
        ];
        if let Some(key) = key {
            args.extend(["--key", key]);
        }
        vitalwatch(&args)
    };
    let (code, _, err) = export(None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("2 recorded sessions have the id `KAP-0042` (key 1 started 2026-11-25T09:00:00Z; key 2 started 2026-11-25T10:00:00Z)"),
        "{err}"
    );
    let (code, out, err) = export(Some("2"));
    assert_eq!(code, 0, "{err}");
    // The second session: its start and its end.
    assert_eq!(text(&out).lines().count(), 3, "{}", text(&out));
    let (code, _, err) = export(Some("7"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has no recording with key 7; its keys: 1, 2"),
        "{err}"
    );
}

/// A daemon whose config names `database`, with a nurse token when `token` is given.
fn daemon(database: &Path, token: Option<&str>) -> Daemon {
    let mut config = format!("[recording]\ndatabase = \"{}\"\n\n", database.display());
    if let Some(token) = token {
        config.push_str(&format!(
            "[[api.token]]\nname = \"records-desk\"\ntoken = \"{token}\"\n\n"
        ));
    }
    config.push_str(&simulated_config("typical-infusion", ""));
    Daemon::start(&config, &[])
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn get(daemon: &Daemon, path: &str, token: Option<&str>) -> Got {
    let mut request = reqwest::Client::new().get(daemon.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    Got {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test]
async fn http_lists_sessions_and_exports_each_format_with_its_type_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let daemon = daemon(&db, None);

    let got = get(&daemon, "/api/v1/sessions", None).await;
    assert_eq!(got.status, 200);
    let ids: Vec<String> = got.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["KAP-0042", "KAP-0043"]);

    for (format, content_type, disposition) in [
        (
            "csv",
            "text/csv; charset=utf-8; header=present",
            "attachment; filename=\"KAP-0042_2026-11-25T0900Z.csv\"",
        ),
        (
            "csv-events",
            "text/csv; charset=utf-8; header=present",
            "attachment; filename=\"KAP-0042_2026-11-25T0900Z.events.csv\"",
        ),
        (
            "fhir",
            "application/fhir+json; fhirVersion=4.0",
            "attachment; filename=\"KAP-0042_2026-11-25T0900Z.fhir.json\"",
        ),
        (
            "edf",
            "application/octet-stream",
            "attachment; filename=\"KAP-0042_2026-11-25T0900Z.edf\"",
        ),
        (
            "html",
            "text/html; charset=utf-8",
            "inline; filename=\"KAP-0042_2026-11-25T0900Z.html\"",
        ),
    ] {
        let got = get(
            &daemon,
            &format!("/api/v1/sessions/KAP-0042/export?format={format}"),
            None,
        )
        .await;
        assert_eq!(got.status, 200, "{format}: {}", text(&got.body));
        assert_eq!(got.header("content-type"), content_type, "{format}");
        assert_eq!(got.header("content-disposition"), disposition, "{format}");
        assert_eq!(got.header("x-content-type-options"), "nosniff");
        match format {
            "csv" => assert_eq!(text(&got.body).lines().count(), 2158),
            "fhir" => assert_eq!(got.json()["resourceType"], "Bundle"),
            "edf" => assert!(got.body.starts_with(b"0       KAP-0042")),
            "html" => {
                assert!(text(&got.body).contains("Session KAP-0042"));
                assert!(
                    got.header("content-security-policy")
                        .starts_with("default-src 'none'")
                );
            }
            _ => {}
        }
    }
    // FHIR summarised per minute.
    let got = get(
        &daemon,
        "/api/v1/sessions/KAP-0042/export?format=fhir&interval=60",
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["entry"].as_array().unwrap().len(), 43);
}

#[tokio::test]
async fn http_export_errors_say_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let daemon = daemon(&db, None);
    for (path, status, message) in [
        (
            "/api/v1/sessions/KAP-9999/export?format=csv",
            404,
            "no session `KAP-9999` is recorded; recorded sessions, latest first: KAP-0043",
        ),
        (
            "/api/v1/sessions/KAP-0042/export?format=pdf",
            400,
            "unknown export format `pdf`; formats: csv, csv-events, fhir, edf, html",
        ),
        (
            "/api/v1/sessions/KAP-0042/export",
            400,
            "say which format with ?format=",
        ),
        (
            "/api/v1/sessions/KAP-0042/export?format=edf&interval=60",
            400,
            "interval applies to the fhir format only",
        ),
        (
            "/api/v1/sessions/KAP-0042/export?format=fhir&interval=0",
            400,
            "interval must be at least 1 second",
        ),
        (
            "/api/v1/sessions/KAP-0042/export?format=csv&key=9",
            400,
            "has no recording with key 9",
        ),
        (
            "/api/v1/sessions/KAP-0042/export?format=csv&colour=red",
            400,
            "unknown field `colour`",
        ),
    ] {
        let got = get(&daemon, path, None).await;
        assert_eq!(got.status, status, "{path}: {}", text(&got.body));
        let error = got.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(message), "{path}: {error}");
    }
}

#[tokio::test]
async fn http_sessions_need_a_nurse_token_when_tokens_are_configured() {
    const TOKEN: &str = "records-desk-token-0003";
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let daemon = daemon(&db, Some(TOKEN));
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/KAP-0042/export?format=csv",
    ] {
        assert_eq!(get(&daemon, path, None).await.status, 401, "{path}");
        assert_eq!(
            get(&daemon, path, Some("wrong-token-0000000")).await.status,
            403
        );
        assert_eq!(get(&daemon, path, Some(TOKEN)).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn http_without_a_database_lists_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(&dir.path().join("none-yet.sqlite"), None);
    let got = get(&daemon, "/api/v1/sessions", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["sessions"], serde_json::json!([]));
    let got = get(&daemon, "/api/v1/sessions/KAP-0042/export?format=csv", None).await;
    assert_eq!(got.status, 404);
    assert!(
        got.json()["error"]
            .as_str()
            .unwrap()
            .contains("the database holds no session yet")
    );
}
