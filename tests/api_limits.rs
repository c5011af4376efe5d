//! Malformed, oversized and hostile requests against the real daemon: each gets a 4xx (never a
//! 5xx) saying what was wrong, and the daemon keeps watching and answering. Tokens are checked
//! without telling which names exist; many idle connections and event streams leave the status
//! API answering with bounded memory; slow-loris and idle connections are closed; the daemon
//! stops promptly with event streams open.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Daemon, simulated_config};
use serde_json::Value;

/// From `src/server/`: the limits these tests run into.
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_EVENT_STREAMS: usize = 100;
const MAX_CONNECTIONS: usize = 512;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

const TOKEN_A: &str = "station-a-secret-token-0001";
const TOKEN_B: &str = "nurse-b-secret-token-00002";

fn daemon() -> Daemon {
    Daemon::start(&simulated_config("typical-infusion", ""), &["--speed", "1"])
}

fn daemon_with_tokens() -> Daemon {
    Daemon::start(
        &format!(
            "[[api.token]]\nname = \"station-a\"\ntoken = \"{TOKEN_A}\"\n\n\
             [[api.token]]\nname = \"nurse-b\"\ntoken = \"{TOKEN_B}\"\n\n{}",
            simulated_config("typical-infusion", "")
        ),
        &["--speed", "1"],
    )
}

/// An answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The `error` of a JSON error body; panics (with the request) if it is not one.
    fn error(&self, what: &str) -> String {
        let json: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| {
            panic!("{what}: {} body is not JSON: {:?}", self.status, self.body)
        });
        json["error"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| panic!("{what}: no error message in {}", self.body))
            .to_string()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the daemon answers");
    Answer {
        status: response.status().as_u16(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// Writes `request` on a fresh connection and reads what comes back until the daemon closes
/// it (or `wait` passes): the status of the answer, if there was one.
fn raw(addr: &str, request: &[u8], wait: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    // The daemon may close before reading it all: what it answered is what matters.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `request` on a fresh connection from another thread while reading the answer here,
/// as a client that reads while it writes does: the daemon answers a body over the limit as
/// soon as it sees it and closes, before the rest is sent. The answer's status and body.
fn raw_while_writing(addr: &str, request: Vec<u8>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    // Closing our end ends the writer if the daemon did not.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    writing.join().unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// The daemon still runs and its status API answers.
async fn still_watching(daemon: &mut Daemon) {
    assert!(daemon.is_running(), "the daemon died");
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(
        status["devices"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn malformed_wrong_typed_incomplete_or_unknown_json_gets_a_json_400_and_the_daemon_stays_up()
{
    let mut daemon = daemon();
    let client = reqwest::Client::new();
    let nested = format!("{}{}", "[".repeat(8_000), "]".repeat(8_000));
    let long_note = format!("{{\"text\": \"{}\"}}", "a".repeat(10_000));
    let cases: Vec<(&str, String, &str)> = vec![
        ("/api/v1/session", "{\"id\": ".into(), "EOF"),
        ("/api/v1/session", "not json".into(), "expected"),
        ("/api/v1/session", "".into(), "EOF"),
        ("/api/v1/session", "null".into(), "invalid type"),
        ("/api/v1/session", "{\"id\": 42}".into(), "invalid type"),
        ("/api/v1/session", "{\"id\": null}".into(), "invalid type"),
        ("/api/v1/session", "{}".into(), "missing field `id`"),
        (
            "/api/v1/session",
            "{\"id\": \"KAP-1\", \"name\": \"Jane\"}".into(),
            "unknown field `name`",
        ),
        (
            "/api/v1/session",
            "{\"id\": \"KAP-1\", \"id\": \"KAP-2\"}".into(),
            "duplicate field",
        ),
        ("/api/v1/session", "{\"id\": \"\"}".into(), "id"),
        (
            "/api/v1/session",
            "{\"id\": \"KAP 1\"}".into(),
            "pseudonymous",
        ),
        (
            "/api/v1/session",
            "{\"id\": \"KAP-\\u0000\"}".into(),
            "pseudonymous",
        ),
        (
            "/api/v1/session",
            format!("{{\"id\": \"{}\"}}", "K".repeat(65)),
            "1 to 64 characters",
        ),
        // 8000 levels deep: refused (at its first level: nothing here takes a list), not a
        // stack overflow.
        ("/api/v1/session", nested, "invalid type"),
        ("/api/v1/session/phase", "{\"phase\": 1}".into(), "phase"),
        (
            "/api/v1/session/phase",
            "{\"phase\": \"INFUSION\"}".into(),
            "unknown variant",
        ),
        (
            "/api/v1/session/phase",
            "{\"phase\": \"dosing\"}".into(),
            "unknown variant",
        ),
        (
            "/api/v1/session/note",
            "{\"text\": \"\"}".into(),
            "1 to 500",
        ),
        (
            "/api/v1/session/note",
            "{\"text\": \"   \"}".into(),
            "1 to 500",
        ),
        (
            "/api/v1/session/note",
            "{\"text\": \"bell \\u0007\"}".into(),
            "control",
        ),
        ("/api/v1/session/note", long_note, "1 to 500"),
        (
            "/api/v1/session/note",
            "{\"note\": \"x\"}".into(),
            "unknown field",
        ),
    ];
    for (path, body, part) in &cases {
        let what = format!("POST {path} {}", &body[..body.len().min(60)]);
        let answer = send(
            client
                .post(daemon.url(path))
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        let message = answer.error(&what);
        assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
    }

    // Bytes that are not UTF-8, and bodies that are not declared JSON.
    let answer = send(
        client
            .post(daemon.url("/api/v1/session"))
            .header("content-type", "application/json")
            .body(vec![b'{', 0xff, 0xfe, b'}']),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    answer.error("invalid UTF-8");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = client
            .post(daemon.url("/api/v1/session"))
            .body("{\"id\": \"KAP-1\"}");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = send(request).await;
        assert_eq!(answer.status, 415, "{content_type:?}: {}", answer.body);
        answer.error("content type");
    }

    // None of it started a session.
    assert_eq!(
        daemon.get_json("/api/v1/status").await["session"],
        Value::Null
    );
    still_watching(&mut daemon).await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_with_a_json_error_however_it_is_sent() {
    let mut daemon = daemon();
    let addr = daemon.addr().to_string();
    let note = |text_len: usize| format!("{{\"text\": \"{}\"}}", "a".repeat(text_len));
    let with_length = |body: &str| {
        format!(
            "POST /api/v1/session/note HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let chunked = |body: &str| {
        let mut request = b"POST /api/v1/session/note HTTP/1.1\r\nhost: x\r\n\
            content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for chunk in body.as_bytes().chunks(4096) {
            request.extend(format!("{:x}\r\n", chunk.len()).bytes());
            request.extend(chunk);
            request.extend(b"\r\n");
        }
        request.extend(b"0\r\n\r\n");
        request
    };
    let cases = [
        ("one byte over", with_length(&note(MAX_BODY_BYTES - 11))),
        ("1 MiB", with_length(&note(1 << 20))),
        ("1 MiB chunked, no length given", chunked(&note(1 << 20))),
        // A declared length over the limit is refused before any of the body comes.
        (
            "a declared gigabyte",
            b"POST /api/v1/session/note HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1000000000\r\n\r\n{"
                .to_vec(),
        ),
    ];
    for (what, request) in cases {
        let (status, body) =
            raw_while_writing(&addr, request).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(status, 413, "{what}: {body}");
        let json: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body:?}"));
        assert!(
            json["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // Exactly at the limit the body is read (and refused for what it says, not its size).
    let at_limit = note(MAX_BODY_BYTES - 12);
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    let (status, body) = raw_while_writing(&addr, with_length(&at_limit)).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("1 to 500"), "{body}");
    still_watching(&mut daemon).await;
}

#[tokio::test]
async fn unknown_paths_methods_and_alarm_ids_get_a_json_4xx() {
    let mut daemon = daemon();
    let client = reqwest::Client::new();
    let long_id = "9".repeat(10_000);
    let cases = [
        (
            "GET",
            "/api/v1/nothing".to_string(),
            404,
            "no such endpoint",
        ),
        ("GET", "/api/v2/status".to_string(), 404, "no such endpoint"),
        ("DELETE", "/api/v1/status".to_string(), 405, "not allowed"),
        ("GET", "/api/v1/session".to_string(), 405, "not allowed"),
        (
            "POST",
            "/api/v1/alarms/abc/acknowledge".to_string(),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            "/api/v1/alarms/-1/acknowledge".to_string(),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            "/api/v1/alarms/1.5/audio-pause".to_string(),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            "/api/v1/alarms/99999999999999999999999/acknowledge".to_string(),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            "/api/v1/alarms/%00/acknowledge".to_string(),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            format!("/api/v1/alarms/{long_id}/acknowledge"),
            400,
            "not an alarm id",
        ),
        (
            "POST",
            "/api/v1/alarms/4242/acknowledge".to_string(),
            404,
            "4242",
        ),
        (
            "POST",
            "/api/v1/alarms/4242/audio-pause".to_string(),
            404,
            "4242",
        ),
        (
            "GET",
            "/api/v1/sessions/KAP-1/export?format=pdf".to_string(),
            400,
            "pdf",
        ),
        (
            "GET",
            "/api/v1/sessions/KAP-1/export?format=csv&key=first".to_string(),
            400,
            "key",
        ),
        (
            "GET",
            "/api/v1/sessions/KAP-1/export?format=fhir&interval=-1".to_string(),
            400,
            "interval",
        ),
        (
            "GET",
            "/api/v1/sessions/KAP-1/export?format=csv".to_string(),
            404,
            "KAP-1",
        ),
    ];
    for (method, path, status, part) in &cases {
        let what = format!("{method} {}", &path[..path.len().min(80)]);
        let answer = send(client.request(method.parse().unwrap(), daemon.url(path))).await;
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        let message = answer.error(&what);
        assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
        assert!(
            message.len() < 1_000,
            "{what}: an answer as long as the question"
        );
    }
    still_watching(&mut daemon).await;
}

#[tokio::test]
async fn very_long_urls_and_headers_are_refused_and_the_daemon_stays_up() {
    let mut daemon = daemon();
    let addr = daemon.addr().to_string();
    let wait = Duration::from_secs(5);
    let long_url = format!(
        "GET /api/v1/status?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let long_header = format!(
        "GET /api/v1/status HTTP/1.1\r\nhost: x\r\nx-junk: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let many_headers = format!(
        "GET /api/v1/status HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..1_000)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    for (what, request) in [
        ("a 64 KiB URL", long_url),
        ("a 64 KiB header", long_header),
        ("1000 headers", many_headers),
    ] {
        let status = raw(&addr, request.as_bytes(), wait);
        assert_eq!(status, Some(431), "{what}");
    }
    // Not HTTP at all, and HTTP with a broken request line: a 400 or a closed connection, and
    // never a 5xx.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET\r\n\r\n",
        b"GET /api/v1/status HTTP/9.9\r\n\r\n",
        b"\0\0\0\0\0\0\0\0\r\n\r\n",
    ] {
        let status = raw(&addr, junk, wait);
        assert!(
            matches!(status, None | Some(400..=499)),
            "{junk:?}: {status:?}"
        );
    }
    // A long URL under the limit is an ordinary request.
    let status = raw(
        &addr,
        format!(
            "GET /api/v1/status?{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            "a".repeat(8 * 1024)
        )
        .as_bytes(),
        wait,
    );
    assert_eq!(status, Some(200));
    still_watching(&mut daemon).await;
}

#[tokio::test]
async fn a_missing_or_malformed_token_is_401_and_a_wrong_one_403_without_telling_which_names_exist()
{
    let mut daemon = daemon_with_tokens();
    let client = reqwest::Client::new();
    let start = |authorization: Option<Vec<u8>>| {
        let mut request = client
            .post(daemon.url("/api/v1/session"))
            .header("content-type", "application/json")
            .body("{\"id\": \"KAP-TOKEN-1\"}");
        if let Some(value) = authorization {
            request = request.header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            );
        }
        send(request)
    };

    for (what, header) in [
        ("no header", None),
        ("basic", Some(b"Basic c3RhdGlvbi1hOnNlY3JldA==".to_vec())),
        ("no token", Some(b"Bearer".to_vec())),
        ("an empty token", Some(b"Bearer ".to_vec())),
        ("the token alone", Some(TOKEN_A.as_bytes().to_vec())),
        ("bytes that are not text", Some(b"Bearer \xff\xfe".to_vec())),
    ] {
        let answer = start(header).await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.body);
        assert!(answer.error(what).contains("needs a nurse token"), "{what}");
    }

    // Wrong tokens: a name, a prefix, the token and more, another's in upper case, junk. All
    // get the same answer, naming nobody.
    let mut answers = Vec::new();
    for (what, token) in [
        ("a token's name", "station-a".to_string()),
        ("another name", "nobody-at-all".to_string()),
        ("a prefix", TOKEN_A[..20].to_string()),
        ("the token and more", format!("{TOKEN_A}x")),
        ("upper case", TOKEN_B.to_uppercase()),
        ("8 KiB of junk", "j".repeat(8 * 1024)),
    ] {
        let answer = start(Some(format!("Bearer {token}").into_bytes())).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        for name in ["station-a", "nurse-b"] {
            assert!(!answer.body.contains(name), "{what}: {}", answer.body);
        }
        answers.push(answer.body);
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "the answers differ: {answers:?}");

    // Nothing started; the right token works and is recorded under its name.
    assert_eq!(
        daemon.get_json("/api/v1/status").await["session"],
        Value::Null
    );
    let answer = start(Some(format!("Bearer {TOKEN_B}").into_bytes())).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    still_watching(&mut daemon).await;
}

/// Opens `count` connections that send nothing.
fn idle_connections(addr: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_connections_and_event_streams_leave_the_status_api_answering_in_bounded_memory()
 {
    let mut daemon = daemon();
    let addr = daemon.addr().to_string();
    // Let the daemon settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(daemon.pid());

    // Event streams up to the limit, each read by a task of its own.
    let mut readers = Vec::new();
    for _ in 0..MAX_EVENT_STREAMS {
        let mut events = daemon.events().await;
        readers.push(tokio::spawn(async move {
            while events
                .next(Instant::now() + Duration::from_secs(600))
                .await
                .is_some()
            {}
        }));
    }
    let idle = idle_connections(&addr, 300);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked = Instant::now();
    still_watching(&mut daemon).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the status took {:?}",
        asked.elapsed()
    );
    let rss_after = rss_kib(daemon.pid());
    eprintln!(
        "RSS {rss_before} KiB before, {rss_after} KiB with {} event streams and {} idle connections",
        MAX_EVENT_STREAMS,
        idle.len()
    );
    assert!(
        rss_after < rss_before + 48 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );

    // One event stream more is refused, with a JSON error; the others stream on.
    let answer = send(reqwest::Client::new().get(daemon.url("/api/v1/events"))).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(
        answer
            .error("event stream")
            .contains("too many event streams"),
        "{}",
        answer.body
    );
    assert!(readers.iter().all(|r| !r.is_finished()));

    // Connections beyond the limit are answered 503 (JSON) and closed.
    let beyond: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                Some((stream, String::from_utf8_lossy(&answer).into_owned()))
            })
        })
        .collect();
    let beyond: Vec<(TcpStream, String)> = beyond
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    let refused: Vec<&String> = beyond
        .iter()
        .map(|(_, answer)| answer)
        .filter(|answer| answer.starts_with("HTTP/1.1 503 "))
        .collect();
    assert!(!refused.is_empty(), "no connection was refused");
    assert!(
        refused
            .iter()
            .all(|a| a.contains("{\"error\":\"too many connections")),
        "{:?}",
        refused[0]
    );
    // However many were tried, the daemon holds no more than its limit (and its own files).
    let descriptors = open_files(daemon.pid());
    eprintln!(
        "{} connections tried beyond the first {}: {} refused; the daemon holds {descriptors} files",
        beyond.len(),
        idle.len() + MAX_EVENT_STREAMS,
        refused.len()
    );
    assert!(
        descriptors <= MAX_CONNECTIONS + 32,
        "the daemon holds {descriptors} files"
    );
    assert!(rss_kib(daemon.pid()) < rss_before + 64 * 1024);

    // When they go, the daemon answers again.
    drop(beyond);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_watching(&mut daemon).await;
    for reader in readers {
        reader.abort();
    }
}

#[tokio::test]
async fn slow_loris_slow_bodies_and_idle_connections_are_cut_off_after_ten_seconds() {
    let mut daemon = daemon();
    let addr = daemon.addr().to_string();
    let opened = Instant::now();
    // One trickles a request head, a byte a second; one sends nothing at all.
    let loris = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            let head = b"GET /api/v1/status HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in head {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            opened.elapsed()
        })
    };
    let idle = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (
            opened.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    // One sends its head, then 10 of the 100 body bytes it promised.
    let slow_body = {
        let addr = daemon.addr().to_string();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream
                .write_all(
                    b"POST /api/v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                      content-length: 100\r\n\r\n{\"id\": \"KA",
                )
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            (
                opened.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        })
    };
    // Meanwhile the daemon answers everyone else.
    tokio::time::sleep(Duration::from_secs(3)).await;
    still_watching(&mut daemon).await;

    let (body_cut, answer) = slow_body.join().unwrap();
    assert!(
        body_cut >= BODY_READ_TIMEOUT - Duration::from_millis(500)
            && body_cut < BODY_READ_TIMEOUT + Duration::from_secs(3),
        "the slow body was cut after {body_cut:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(
        answer.contains("{\"error\":\"the request body did not arrive"),
        "{answer:?}"
    );

    let (idle_closed, answer) = idle.join().unwrap();
    assert!(
        idle_closed >= HEADER_READ_TIMEOUT - Duration::from_millis(500)
            && idle_closed < HEADER_READ_TIMEOUT + Duration::from_secs(3),
        "the idle connection closed after {idle_closed:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    // A write fails once the daemon has closed the connection (the first after the close may
    // still be buffered: allow two seconds for the reset to come back).
    let loris_cut = loris.join().unwrap();
    assert!(
        loris_cut < HEADER_READ_TIMEOUT + Duration::from_secs(4),
        "the slow request head was still read after {loris_cut:?}"
    );
    still_watching(&mut daemon).await;
}

#[tokio::test]
async fn the_daemon_stops_within_seconds_of_sigterm_with_event_streams_open() {
    let mut daemon = daemon();
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(daemon.events().await);
    }
    let signalled = Instant::now();
    daemon.signal("TERM");
    while daemon.is_running() {
        assert!(
            signalled.elapsed() < Duration::from_secs(8),
            "still running 8 s after SIGTERM with event streams open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("stopped {:?} after SIGTERM", signalled.elapsed());
    // The streams end rather than hang.
    let mut stream = streams.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while stream.next(deadline).await.is_some() {}
    assert!(Instant::now() < deadline, "the event stream did not end");
}
