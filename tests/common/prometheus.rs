//! A real Prometheus (the Debian package's `prometheus`) for tests: started on a free loopback
//! port with a config the test writes, killed when dropped, and queried over its HTTP API.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::require_tool;

/// A free TCP port on 127.0.0.1: bound, then released for the process that will listen on it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    pub base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with `config_yaml` as its config file (in a temp dir, with its TSDB
    /// beside it) and waits until it is ready (`/-/ready`). Fails if `prometheus` is missing.
    pub async fn start(config_yaml: &str) -> Prometheus {
        let binary = require_tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml).expect("write prometheus.yml");
        let client = reqwest::Client::new();
        // The port was free a moment ago; another process may take it before Prometheus
        // binds it: then Prometheus exits, and we try another.
        for _attempt in 0..3 {
            let port = free_port();
            let mut child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn prometheus");
            let stderr = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[prometheus] {line}");
                }
            });
            let base = format!("http://127.0.0.1:{port}");
            if wait_ready(&client, &base, &mut child, Duration::from_secs(30)).await {
                return Prometheus {
                    child,
                    base,
                    client,
                    _dir: dir,
                };
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            let _ = child.kill();
            let _ = child.wait();
            assert!(exited, "prometheus did not become ready within 30 s");
        }
        panic!("prometheus exited before it was ready three times: see its log above")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GETs `path` with `params`, whatever the HTTP status (the API's errors are JSON too).
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&self.url(path), params).expect("a URL");
        let response = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("body");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: HTTP {status}, not JSON ({e}): {text}"))
    }

    /// The answer of `/api/v1/query` for `expr` at the current time (status "success" or
    /// "error"; `data.result` on success).
    pub async fn query_raw(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)]).await
    }

    /// The result vector of an instant query; panics with Prometheus's error if it fails.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer = self.query_raw(expr).await;
        assert_eq!(
            answer["status"], "success",
            "query failed: {expr}\n{answer}"
        );
        match &answer["data"]["result"] {
            Value::Array(result) => result.clone(),
            // A scalar or string result: one value.
            other => vec![serde_json::json!({ "metric": {}, "value": other })],
        }
    }

    /// Polls an instant query until its result is not empty; panics after `timeout`.
    pub async fn query_until_nonempty(&self, expr: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr).await;
            if !result.is_empty() {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "no data within {timeout:?} for: {expr}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The result matrix of a range query from `start` to `end` (Unix seconds) every `step`
    /// seconds; panics with Prometheus's error if it fails.
    pub async fn query_range(&self, expr: &str, start: f64, end: f64, step: f64) -> Vec<Value> {
        let (start, end, step) = (start.to_string(), end.to_string(), step.to_string());
        let answer = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", &step),
                ],
            )
            .await;
        assert_eq!(
            answer["status"], "success",
            "range query failed: {expr}\n{answer}"
        );
        answer["data"]["result"]
            .as_array()
            .expect("a matrix")
            .clone()
    }

    /// Polls `/api/v1/targets` until every active target of `job` is up with no error, and
    /// returns them; panics after `timeout` with the last answer.
    pub async fn wait_targets_up(&self, job: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.get("/api/v1/targets", &[("state", "active")]).await;
            let targets: Vec<Value> = answer["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["labels"]["job"] == job)
                .cloned()
                .collect();
            if !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| t["health"] == "up" && t["lastError"] == "")
            {
                return targets;
            }
            assert!(
                Instant::now() < deadline,
                "the `{job}` targets were not up within {timeout:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every rule Prometheus loaded, from `/api/v1/rules` (each with `name`, `query`,
    /// `health`, `lastError`, `state` for alerts...).
    pub async fn rules(&self) -> Vec<Value> {
        let answer = self.get("/api/v1/rules", &[]).await;
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The alerts now pending or firing, from `/api/v1/alerts`.
    pub async fn alerts(&self) -> Vec<Value> {
        let answer = self.get("/api/v1/alerts", &[]).await;
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["alerts"].as_array().expect("alerts").clone()
    }
}

/// Polls `/-/ready` until it answers 200 (true), the process exits or `timeout` passes.
async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    child: &mut Child,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(response) = client.get(format!("{base}/-/ready")).send().await
            && response.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
