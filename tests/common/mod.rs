//! Harness for tests that run the real `vitalwatch` binary: start it on an ephemeral port,
//! talk HTTP to it, read its event stream, stop it.

#![allow(dead_code)]

pub mod bluez;
pub mod chromium;
pub mod custom_harness;
pub mod dashboard;
pub mod frames;
pub mod prometheus;
pub mod pty;
pub mod record;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

/// A running daemon, killed when dropped.
pub struct Daemon {
    child: Child,
    pub base: String,
    /// Every line the daemon has logged so far (stderr).
    log: Arc<Mutex<Vec<String>>>,
    /// When the process was spawned, and when its "listening on" log line was read: the
    /// start-up time the load tests report.
    pub spawned: Instant,
    pub listening: Instant,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `vitalwatch run` with `config_text` as its config file and `extra` arguments,
    /// listening on an ephemeral loopback port.
    pub fn start(config_text: &str, extra: &[&str]) -> Daemon {
        Daemon::start_listening(config_text, "127.0.0.1:0", extra)
    }

    /// Like `start`, listening on `listen` (for example the port of a daemon that was
    /// killed, to restart it where its clients reconnect).
    pub fn start_listening(config_text: &str, listen: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(config_text, listen, extra, &[])
    }

    /// Like `start_listening`, with extra environment variables (a private D-Bus bus).
    pub fn start_with_env(
        config_text: &str,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("vitalwatch.toml");
        std::fs::write(&config, config_text).expect("write config");
        let mut args = vec![
            "run".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            listen.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
            .args(&args)
            .env("VITALWATCH_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vitalwatch");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        // Keep draining the log so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[daemon] {line}");
                kept.lock().expect("log lock").push(line.clone());
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send((addr.trim().to_string(), Instant::now()));
                }
            }
        });
        let (addr, listening) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the daemon did not report its listening address");
        Daemon {
            child,
            base: format!("http://{addr}"),
            log,
            spawned,
            listening,
            _dir: dir,
        }
    }

    /// The lines the daemon has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (for example `STOP`, `CONT`, `KILL`) to the daemon.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the daemon to exit (after a SIGTERM, say): its exit status,
    /// or `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the daemon at once (SIGKILL: no graceful shutdown) and reaps it.
    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(None, path, body).await
    }

    /// POSTs `body` carrying `token` as the nurse's bearer token (none: no header).
    pub async fn post_as(&self, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Device `id`'s entry in `/api/v1/status` now (`Null` when it has none).
    pub async fn device_status(&self, id: &str) -> Value {
        device_in(&self.get_json("/api/v1/status").await, id).clone()
    }

    /// Waits until the status API shows `device`'s link in `state`; fails after `within`.
    pub async fn wait_link(&self, device: &str, state: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let status = self.get_json("/api/v1/status").await;
            if device_in(&status, device)["link"] == state {
                return;
            }
            assert!(
                Instant::now() < end,
                "{device} never became {state}: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get_json(&self, path: &str) -> Value {
        reqwest::get(self.url(path))
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    pub async fn get_text(&self, path: &str) -> String {
        reqwest::get(self.url(path))
            .await
            .expect("GET")
            .text()
            .await
            .expect("text body")
    }

    pub async fn start_session(&self, id: &str) {
        let (status, body) = self
            .post("/api/v1/session", serde_json::json!({ "id": id }))
            .await;
        assert_eq!(status, 201, "start session: {body}");
    }

    pub async fn set_phase(&self, phase: &str) {
        let (status, body) = self
            .post(
                "/api/v1/session/phase",
                serde_json::json!({ "phase": phase }),
            )
            .await;
        assert_eq!(status, 200, "set phase {phase}: {body}");
    }

    pub async fn events(&self) -> EventStream {
        EventStream::open(&self.url("/api/v1/events")).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

/// A client of `/api/v1/events`.
pub struct EventStream {
    bytes: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventStream {
    pub async fn open(url: &str) -> EventStream {
        let response = reqwest::get(url).await.expect("GET events");
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            bytes: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when `deadline` passes or the stream ends.
    pub async fn next(&mut self, deadline: Instant) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(SseEvent { name, data });
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.bytes.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Reads events until `predicate` accepts one (returned) or `deadline` passes (`None`).
    /// Every event read is also given to `seen`.
    pub async fn until(
        &mut self,
        deadline: Instant,
        mut seen: impl FnMut(&SseEvent),
        mut predicate: impl FnMut(&SseEvent) -> bool,
    ) -> Option<SseEvent> {
        while let Some(event) = self.next(deadline).await {
            seen(&event);
            if predicate(&event) {
                return Some(event);
            }
        }
        None
    }
}

/// `seconds` from now.
pub fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// A config with one simulated oximeter and cuff playing `scenario`.
pub fn simulated_config(scenario: &str, extra_device_lines: &str) -> String {
    format!(
        "[[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"{scenario}\"\n{extra_device_lines}\n\
         [[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\nscenario = \"{scenario}\"\ninterval_s = 300\n"
    )
}

/// Device `id`'s entry in a `/api/v1/status` answer (`Null` when it has none).
pub fn device_in<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["devices"]
        .as_array()
        .and_then(|devices| devices.iter().find(|d| d["id"] == id))
        .unwrap_or(&Value::Null)
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The path of a real tool a test needs. Missing, the test fails (never skips): `scripts/test`
/// installs every such tool.
pub fn require_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run scripts/test, which installs it"))
}
