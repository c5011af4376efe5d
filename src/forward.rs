//! Alarm forwarding to the clinic's Alertmanager (API v2): the distributed alarm path to a
//! central station (IEC 60601-1-8 clause 6.11), through an existing engine rather than a
//! server of ours.
//!
//! Every active alarm is an alert labelled with its rule, priority, kind, chair, device and
//! whether a nurse acknowledged it (so a clinic routes high-priority unacknowledged alarms to
//! a pager). Active alerts are re-posted every `repeat` with an `endsAt` three repeats ahead,
//! so a daemon that dies lets its alerts resolve on their own (and the clinic's Prometheus
//! rule for a chair down takes over). An alarm that ends is posted resolved. A change of
//! labels (acknowledged, escalated, new advice) resolves the old label set and fires the new.
//!
//! When posting fails the forwarder keeps everything owed (resolutions included), retries
//! with backoff (1 s doubling to 15 s), and tells the engine, which raises the
//! `forwarding_failure` technical alarm on the panel after the rule's delay. The bedside alarm
//! never depends on this path.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::acquire::report::Backoff;
use crate::engine::{AlarmId, Change};
use crate::events::{AlarmEvent, AlarmView, Event, Published};

/// Where and how alarms are forwarded (`[alertmanager]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardConfig {
    /// Alertmanager base URLs (`http://host:9093`); every one is posted to (an HA pair).
    pub urls: Vec<String>,
    /// How often active alerts are posted again.
    pub repeat: Duration,
    /// The bedside panel's address, as the alerts' link back.
    pub panel_url: Option<String>,
}

/// The minimum re-post interval: Alertmanager is not a stream.
pub const MIN_REPEAT: Duration = Duration::from_secs(1);
/// Changes arriving together are posted together.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Resolved alerts kept while Alertmanager is unreachable; older ones are dropped (their
/// `endsAt` resolves them anyway).
const MAX_OWED: usize = 1_000;
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// Where alerts go: Alertmanager over HTTP, or a fake in tests.
pub trait AlertSink: Send + Sync + 'static {
    fn post(&self, alerts: &[PostableAlert]) -> impl Future<Output = Result<(), String>> + Send;
}

/// The forwarder's state, apart from I/O and clocks (so it is tested in virtual time).
#[derive(Debug)]
pub struct Forwarder {
    config: ForwardConfig,
    chair: String,
    /// The alert of each active alarm, as last built.
    active: BTreeMap<AlarmId, PostableAlert>,
    /// Resolutions not yet delivered.
    owed: Vec<PostableAlert>,
}

impl Forwarder {
    pub fn new(config: ForwardConfig, chair: String) -> Self {
        Forwarder {
            config,
            chair,
            active: BTreeMap::new(),
            owed: Vec::new(),
        }
    }

    /// Starts again from the engine's active alarms (at start, or after missing events).
    pub fn seed(&mut self, alarms: &[AlarmView], now: DateTime<Utc>) {
        let seen: Vec<AlarmId> = alarms.iter().map(|a| a.alarm.id).collect();
        let gone: Vec<AlarmId> = self
            .active
            .keys()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.resolve(id, now);
        }
        for alarm in alarms {
            self.update(alarm, alarm.raised.min(now), now);
        }
    }

    /// Takes one alarm transition.
    pub fn apply(&mut self, event: &AlarmEvent, now: DateTime<Utc>) {
        let id = event.alarm.alarm.id;
        if event.change == Change::Ended {
            self.resolve(id, now);
        } else {
            self.update(&event.alarm, event.time.min(now), now);
        }
    }

    fn update(&mut self, alarm: &AlarmView, changed: DateTime<Utc>, now: DateTime<Utc>) {
        let id = alarm.alarm.id;
        let labels = self.labels(alarm);
        let starts_at = match self.active.get(&id) {
            Some(old) if old.labels == labels => old.starts_at,
            Some(_) => {
                // New labels are a new alert for Alertmanager: resolve the old one.
                self.resolve(id, now);
                changed
            }
            None => alarm.raised.min(changed),
        };
        let alert = PostableAlert {
            labels,
            annotations: annotations(alarm),
            starts_at,
            ends_at: now,
            generator_url: self.config.panel_url.clone(),
        };
        self.active.insert(id, alert);
    }

    fn resolve(&mut self, id: AlarmId, now: DateTime<Utc>) {
        if let Some(mut alert) = self.active.remove(&id) {
            alert.ends_at = now.max(alert.starts_at);
            self.owed.push(alert);
            if self.owed.len() > MAX_OWED {
                self.owed.remove(0);
            }
        }
    }

    fn labels(&self, alarm: &AlarmView) -> BTreeMap<String, String> {
        let a = &alarm.alarm;
        let mut labels = BTreeMap::from([
            ("alertname".to_string(), a.source.name().to_string()),
            ("source".to_string(), "vitalwatch".to_string()),
            ("rule".to_string(), a.source.name().to_string()),
            ("priority".to_string(), a.priority.as_str().to_string()),
            ("kind".to_string(), a.kind.as_str().to_string()),
            ("chair".to_string(), self.chair.clone()),
            ("device".to_string(), a.device.to_string()),
            (
                "acknowledged".to_string(),
                a.acknowledged_by.is_some().to_string(),
            ),
        ]);
        if let Some(vital) = a.vital {
            labels.insert("vital".to_string(), vital.as_str().to_string());
        }
        if let Some(advice) = &a.advice {
            labels.insert("advice".to_string(), advice.clone());
        }
        labels
    }

    /// What to post now: every active alert, firing until three repeats ahead, and every
    /// resolution owed.
    pub fn batch(&self, now: DateTime<Utc>) -> Vec<PostableAlert> {
        let ends_at = now
            + chrono::Duration::from_std(self.config.repeat * 3)
                .unwrap_or_else(|_| chrono::Duration::minutes(5));
        self.owed
            .iter()
            .cloned()
            .chain(self.active.values().map(|alert| PostableAlert {
                ends_at,
                ..alert.clone()
            }))
            .collect()
    }

    /// The batch from `batch` was delivered: the resolutions are no longer owed.
    pub fn delivered(&mut self, count_owed: usize) {
        self.owed.drain(..count_owed.min(self.owed.len()));
    }

    pub fn owed(&self) -> usize {
        self.owed.len()
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// The bedside text of an alarm, for the central station.
fn annotations(alarm: &AlarmView) -> BTreeMap<String, String> {
    let a = &alarm.alarm;
    let mut annotations = BTreeMap::from([
        ("summary".to_string(), a.message.clone()),
        ("raised".to_string(), alarm.raised.to_rfc3339()),
    ]);
    if let Some(advice) = &a.advice {
        annotations.insert("advice".to_string(), advice.clone());
    }
    if let Some(value) = a.value {
        annotations.insert("value".to_string(), value.to_string());
    }
    if let Some(limit) = a.limit {
        annotations.insert("limit".to_string(), limit.to_string());
    }
    if let Some(by) = &a.acknowledged_by {
        annotations.insert("acknowledged_by".to_string(), by.clone());
    }
    annotations
}

/// The forwarder's connections to the rest of the daemon.
pub struct Links<S, A, R> {
    pub sink: S,
    pub events: broadcast::Receiver<Arc<Published>>,
    /// The engine's active alarms now.
    pub active_alarms: A,
    /// Tells the engine that forwarding fails (`Some(why)`) or works again (`None`).
    pub report: R,
    /// UTC now (Alertmanager judges `endsAt` by the wall clock, not the daemon's).
    pub utc_now: fn() -> DateTime<Utc>,
}

/// Forwards until the engine's event stream closes.
pub async fn run<S, A, AF, R, RF>(mut forwarder: Forwarder, mut links: Links<S, A, R>)
where
    S: AlertSink,
    A: FnMut() -> AF,
    AF: Future<Output = Option<Vec<AlarmView>>>,
    R: FnMut(Option<String>) -> RF,
    RF: Future<Output = ()>,
{
    let now = (links.utc_now)();
    if let Some(alarms) = (links.active_alarms)().await {
        forwarder.seed(&alarms, now);
    }
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
    let mut failing: Option<String> = None;
    // Post at once: the central station learns the chair is there.
    let mut next_post = Instant::now();
    loop {
        tokio::select! {
            event = links.events.recv() => match event {
                Ok(event) => {
                    if let Event::Alarm(alarm) = &**event {
                        forwarder.apply(alarm, (links.utc_now)());
                        // While failing, the backoff decides; otherwise post soon.
                        if failing.is_none() {
                            next_post = next_post.min(Instant::now() + DEBOUNCE);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "alarm forwarder fell behind the event stream; re-reading the active alarms");
                    if let Some(alarms) = (links.active_alarms)().await {
                        forwarder.seed(&alarms, (links.utc_now)());
                    }
                    next_post = next_post.min(Instant::now() + DEBOUNCE);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tokio::time::sleep_until(next_post) => {
                let batch = forwarder.batch((links.utc_now)());
                let owed = forwarder.owed();
                match links.sink.post(&batch).await {
                    Ok(()) => {
                        forwarder.delivered(owed);
                        backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
                        if failing.take().is_some() {
                            tracing::info!("alarm forwarding works again");
                            (links.report)(None).await;
                        }
                        next_post = Instant::now() + forwarder.config.repeat;
                    }
                    Err(why) => {
                        if failing.is_none() {
                            tracing::warn!("cannot forward alarms to Alertmanager: {why}");
                            (links.report)(Some(why.clone())).await;
                        }
                        failing = Some(why);
                        next_post = Instant::now() + backoff.next_wait();
                    }
                }
            }
        }
    }
}

/// Alertmanager's v2 API over HTTP.
pub struct HttpSink {
    client: reqwest::Client,
    urls: Vec<String>,
}

/// How long one post may take before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

impl HttpSink {
    pub fn new(urls: Vec<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        Ok(HttpSink { client, urls })
    }
}

impl AlertSink for HttpSink {
    /// Posts to every URL; succeeds when at least one Alertmanager took the alerts (the
    /// members of a cluster share them).
    async fn post(&self, alerts: &[PostableAlert]) -> Result<(), String> {
        let mut errors = Vec::new();
        for url in &self.urls {
            let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
            let result = self.client.post(&endpoint).json(alerts).send().await;
            match result {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    errors.push(format!(
                        "{endpoint}: HTTP {status}: {}",
                        body.chars().take(200).collect::<String>()
                    ));
                }
                Err(error) => errors.push(format!("{endpoint}: {error}")),
            }
        }
        if errors.len() < self.urls.len() {
            if !errors.is_empty() {
                tracing::warn!(
                    "some Alertmanagers refused the alerts: {}",
                    errors.join("; ")
                );
            }
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

#[cfg(test)]
mod tests;
