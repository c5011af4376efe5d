//! The forwarder in virtual time against a fake Alertmanager, with alarms from the real engine.

use std::sync::{Mutex, OnceLock};

use super::*;
use crate::clock::Clock;
use crate::config::{DEFAULT_RULES, Source, parse_rule_set};
use crate::engine::{DeviceSpec, Engine};
use crate::vitals::{DeviceId, Mono, Phase, Quality, Reading, Vital};

/// What the fake Alertmanager received, and whether it is up.
#[derive(Clone, Default)]
struct FakeSink(Arc<Mutex<FakeState>>);

#[derive(Default)]
struct FakeState {
    down: bool,
    posts: Vec<(Instant, Vec<PostableAlert>)>,
    attempts: usize,
}

impl FakeSink {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn posts(&self) -> Vec<(Instant, Vec<PostableAlert>)> {
        self.state().posts.clone()
    }
}

impl AlertSink for FakeSink {
    async fn post(&self, alerts: &[PostableAlert]) -> Result<(), String> {
        let mut state = self.state();
        state.attempts += 1;
        if state.down {
            return Err("connection refused".into());
        }
        state.posts.push((Instant::now(), alerts.to_vec()));
        Ok(())
    }
}

/// UTC in virtual time: a fixed origin plus the paused clock's progress.
fn virtual_utc() -> DateTime<Utc> {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let base = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    base + chrono::Duration::from_std(Instant::now().saturating_duration_since(origin))
        .unwrap_or_default()
}

/// An SpO2-critical alarm's life from the real engine: raised, acknowledged, ended.
fn alarm_life() -> Vec<AlarmEvent> {
    let rules = parse_rule_set(&Source::built_in("default", DEFAULT_RULES)).unwrap();
    let mut engine = Engine::new(
        rules,
        &[DeviceSpec {
            id: DeviceId::new("ox1"),
            silent_after: None,
            measures_bp: false,
        }],
        Mono::ZERO,
    );
    let clock = Clock::start(1.0);
    let at = |s: f64| Mono::from_secs_f64(s);
    let mut transitions = engine.set_phase(Some(Phase::Infusion), at(0.0));
    let reading = Reading {
        device: DeviceId::new("ox1"),
        vital: Vital::Spo2,
        value: Some(80.0),
        quality: Quality::GOOD,
        device_time: None,
        received: at(1.0),
        received_utc: clock.utc_at(at(1.0)),
    };
    transitions.extend(engine.observe(&reading, at(1.0)));
    transitions.extend(engine.tick(at(1.5)));
    let raised = transitions
        .iter()
        .find(|t| t.change == Change::Raised && t.alarm.source.name() == "spo2_critical")
        .expect("spo2_critical raised")
        .clone();
    let mut life = vec![raised.clone()];
    life.extend(
        engine
            .acknowledge(raised.alarm.id, "nurse-station-2", at(2.0))
            .unwrap_or_default(),
    );
    life.extend(
        engine
            .set_phase(None, at(3.0))
            .into_iter()
            .filter(|t| t.alarm.id == raised.alarm.id),
    );
    life.into_iter()
        .map(|t| AlarmEvent {
            alarm: AlarmView::of(&t.alarm, &clock, t.at),
            time: clock.utc_at(t.at),
            change: t.change,
        })
        .collect()
}

struct Harness {
    sink: FakeSink,
    events: broadcast::Sender<Arc<Published>>,
    reports: Arc<Mutex<Vec<Option<String>>>>,
    life: Vec<AlarmEvent>,
}

const REPEAT: Duration = Duration::from_secs(10);

fn start(active_at_start: Vec<AlarmView>) -> Harness {
    let sink = FakeSink::default();
    let (events, receiver) = broadcast::channel(16);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let reported = reports.clone();
    let forwarder = Forwarder::new(
        ForwardConfig {
            urls: vec!["http://am".into()],
            repeat: REPEAT,
            panel_url: Some("http://chair-3:8080/".into()),
        },
        "chair-3".into(),
    );
    tokio::spawn(run(
        forwarder,
        Links {
            sink: sink.clone(),
            events: receiver,
            active_alarms: move || {
                let alarms = active_at_start.clone();
                async move { Some(alarms) }
            },
            report: move |failure| {
                reported
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(failure);
                async {}
            },
            utc_now: virtual_utc,
        },
    ));
    Harness {
        sink,
        events,
        reports,
        life: alarm_life(),
    }
}

impl Harness {
    fn send(&self, index: usize) {
        let event = Event::Alarm(Box::new(self.life[index].clone()));
        self.events.send(Arc::new(Published::new(event))).ok();
    }

    fn reports(&self) -> Vec<Option<String>> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn settle(span: Duration) {
    tokio::time::sleep(span).await;
}

#[tokio::test(start_paused = true)]
async fn an_alarm_is_posted_at_once_with_its_labels_and_again_every_repeat() {
    let h = start(Vec::new());
    settle(Duration::from_millis(10)).await;
    // The first post says the chair is there, with nothing active.
    assert_eq!(h.sink.posts().len(), 1);
    assert!(h.sink.posts()[0].1.is_empty());

    let sent = Instant::now();
    h.send(0);
    settle(Duration::from_millis(100)).await;
    let posts = h.sink.posts();
    assert_eq!(posts.len(), 2);
    assert!(posts[1].0 - sent <= DEBOUNCE);
    let alert = &posts[1].1[0];
    let label = |k: &str| alert.labels.get(k).map(String::as_str);
    assert_eq!(label("alertname"), Some("spo2_critical"));
    assert_eq!(label("rule"), Some("spo2_critical"));
    assert_eq!(label("priority"), Some("high"));
    assert_eq!(label("kind"), Some("physiological"));
    assert_eq!(label("chair"), Some("chair-3"));
    assert_eq!(label("device"), Some("ox1"));
    assert_eq!(label("vital"), Some("spo2"));
    assert_eq!(label("acknowledged"), Some("false"));
    assert_eq!(label("source"), Some("vitalwatch"));
    assert_eq!(label("advice"), h.life[0].alarm.alarm.advice.as_deref());
    assert_eq!(alert.annotations["value"], "80");
    assert_eq!(alert.generator_url.as_deref(), Some("http://chair-3:8080/"));
    // Firing: it ends three repeats ahead unless posted again.
    let ahead = alert.ends_at - virtual_utc();
    assert!(ahead > chrono::Duration::seconds(29) && ahead <= chrono::Duration::seconds(30));

    settle(REPEAT).await;
    let posts = h.sink.posts();
    assert_eq!(posts.len(), 3, "re-posted after one repeat");
    assert_eq!(posts[2].1[0].labels, alert.labels);
    assert_eq!(posts[2].1[0].starts_at, alert.starts_at);
    assert!(posts[2].1[0].ends_at > alert.ends_at);
}

#[tokio::test(start_paused = true)]
async fn an_acknowledgement_resolves_the_old_labels_and_an_end_resolves_the_alert() {
    let h = start(Vec::new());
    h.send(0);
    settle(Duration::from_millis(100)).await;
    h.send(1); // acknowledged
    settle(Duration::from_millis(100)).await;
    let posts = h.sink.posts();
    let last = &posts.last().unwrap().1;
    assert_eq!(last.len(), 2, "{last:?}");
    let (resolved, firing): (Vec<_>, Vec<_>) =
        last.iter().partition(|a| a.ends_at <= virtual_utc());
    assert_eq!(resolved[0].labels["acknowledged"], "false");
    assert_eq!(firing[0].labels["acknowledged"], "true");
    assert_eq!(firing[0].annotations["acknowledged_by"], "nurse-station-2");

    h.send(2); // ended
    settle(Duration::from_millis(100)).await;
    let last = h.sink.posts().last().unwrap().1.clone();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].labels["acknowledged"], "true");
    assert!(last[0].ends_at <= virtual_utc());
    // Resolutions are sent once; afterwards there is nothing to post.
    settle(REPEAT).await;
    assert!(h.sink.posts().last().unwrap().1.is_empty());
}

#[tokio::test(start_paused = true)]
async fn while_alertmanager_is_down_it_retries_with_backoff_keeps_what_is_owed_and_says_so() {
    let h = start(Vec::new());
    settle(Duration::from_millis(10)).await;
    h.sink.state().down = true;
    h.send(0);
    settle(Duration::from_millis(100)).await;
    assert_eq!(h.reports(), [Some("connection refused".to_string())]);
    let attempts = h.sink.state().attempts;
    h.send(2); // the alarm ends while Alertmanager is down
    // Backoff: 1, 2, 4, 8 s: four more attempts in 15 s, not one per event.
    settle(Duration::from_secs(15)).await;
    assert_eq!(h.sink.state().attempts - attempts, 4);
    assert_eq!(h.reports().len(), 1, "reported once");

    h.sink.state().down = false;
    settle(Duration::from_secs(16)).await;
    assert_eq!(h.reports(), [Some("connection refused".to_string()), None]);
    // The resolution owed was delivered.
    let delivered: Vec<_> = h.sink.posts().into_iter().flat_map(|(_, a)| a).collect();
    assert!(
        delivered
            .iter()
            .any(|a| a.labels["rule"] == "spo2_critical" && a.ends_at <= virtual_utc())
    );
}

#[tokio::test(start_paused = true)]
async fn alarms_active_when_forwarding_starts_are_posted_and_stale_ones_resolved_on_a_reseed() {
    let life = alarm_life();
    let h = start(vec![life[0].alarm.clone()]);
    settle(Duration::from_millis(10)).await;
    let first = &h.sink.posts()[0].1;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].labels["rule"], "spo2_critical");
    // A stream that lagged: the forwarder re-reads the active alarms (the same one here).
    for _ in 0..40 {
        h.events
            .send(Arc::new(Published::new(Event::Alarm(Box::new(
                h.life[1].clone(),
            )))))
            .ok();
    }
    settle(Duration::from_millis(200)).await;
    // The acknowledgements that followed the reseed were taken: the alert now firing is the
    // acknowledged one, the unacknowledged label set resolved.
    let last = h.sink.posts().last().unwrap().1.clone();
    let firing: Vec<_> = last.iter().filter(|a| a.ends_at > virtual_utc()).collect();
    assert_eq!(firing.len(), 1, "{last:?}");
    assert_eq!(firing[0].labels["acknowledged"], "true");
}
