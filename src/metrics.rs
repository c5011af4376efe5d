//! Prometheus metrics for the clinic's dashboards, in the text exposition format.
//!
//! Names carry the `vitalwatch_` prefix and their unit; vitals keep their clinical units
//! (percent, per minute, mmHg) because those are what a clinician reads on a dashboard.
//! Labels name devices, rules and priorities, never a patient or a session id; every series
//! carries the `chair` label from the config (the location: a clinic's Prometheus scrapes one
//! daemon per chair).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::acquire::decode::DecodeErrorKind;
use crate::engine::{Alarm, AlarmKind, AlarmTransition, Priority};
use crate::recorder::sink::Progress;
use crate::vitals::{DeviceId, LinkState, Mono, Phase, Reading, Vital};

/// Buckets of the alarm-signal latency histogram, in seconds: the daemon's own path from a
/// reading's arrival to its alarm event, normally well under a millisecond.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

const LINK_STATES: [LinkState; 4] = [
    LinkState::Connecting,
    LinkState::Connected,
    LinkState::Lost,
    LinkState::Idle,
];

/// The gauge name of each vital's latest value.
pub fn vital_metric_name(vital: Vital) -> &'static str {
    match vital {
        Vital::Spo2 => "vitalwatch_spo2_percent",
        Vital::PulseRate => "vitalwatch_pulse_rate_per_minute",
        Vital::PerfusionIndex => "vitalwatch_perfusion_index_percent",
        Vital::Systolic => "vitalwatch_blood_pressure_systolic_mmhg",
        Vital::Diastolic => "vitalwatch_blood_pressure_diastolic_mmhg",
        Vital::MeanArterial => "vitalwatch_blood_pressure_mean_mmhg",
        Vital::RespiratoryRate => "vitalwatch_respiratory_rate_per_minute",
    }
}

pub struct Metrics {
    registry: Registry,
    vitals: Vec<(Vital, GaugeVec)>,
    reading_time: GaugeVec,
    readings: IntCounterVec,
    ring_dropped: IntCounterVec,
    ring_fill: GaugeVec,
    decode_errors: IntCounterVec,
    device_connected: IntGaugeVec,
    alarms_active: IntGaugeVec,
    session_active: IntGauge,
    session_phase: IntGaugeVec,
    session_elapsed: Gauge,
    reading_age: GaugeVec,
    stale_after: GaugeVec,
    link_state: IntGaugeVec,
    reconnects: IntCounterVec,
    alarms_by_rule: IntGaugeVec,
    /// The label sets of `alarms_by_rule` now exported, so ended ones are removed.
    alarm_label_sets: HashSet<[String; 5]>,
    alarm_transitions: IntCounterVec,
    alarm_latency: Histogram,
    /// The recorder's progress, once it runs (read at each scrape by [`RecorderProgress`]).
    recorder_progress: Arc<OnceLock<Arc<Progress>>>,
    recording_failing: IntGauge,
    /// Label lookups cost a hash and a lock: keep the per-reading handles and the time of
    /// each device's latest reading of each vital (for its age).
    cache: HashMap<(DeviceId, Vital), ReadingSeries>,
    links: HashMap<DeviceId, LinkState>,
}

struct ReadingSeries {
    value: Gauge,
    time: Gauge,
    age: Gauge,
    received: Mono,
}

/// The recorder's lag and backlog, read from its progress when scraped rather than at the
/// engine's tick (up to a second old): a scrape says what the disk owes at that moment, which
/// is how far back a crash then could lose records.
struct RecorderProgress {
    progress: Arc<OnceLock<Arc<Progress>>>,
    lag: Gauge,
    pending: IntGauge,
}

impl Collector for RecorderProgress {
    fn desc(&self) -> Vec<&Desc> {
        self.lag
            .desc()
            .into_iter()
            .chain(self.pending.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (lag, pending) = self
            .progress
            .get()
            .map_or((Duration::ZERO, 0), |progress| progress.lag());
        self.lag.set(lag.as_secs_f64());
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.lag
            .collect()
            .into_iter()
            .chain(self.pending.collect())
            .collect()
    }
}

impl Metrics {
    /// The metrics of the daemon at `chair` (a label on every series).
    pub fn new(chair: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            None,
            Some(HashMap::from([("chair".to_string(), chair.to_string())])),
        )?;
        let mut vitals = Vec::new();
        for vital in Vital::ALL {
            let gauge = GaugeVec::new(
                Opts::new(
                    vital_metric_name(vital),
                    format!(
                        "Latest {} reading in {} (NaN while unavailable or flagged)",
                        vital,
                        vital.unit()
                    ),
                ),
                &["device"],
            )?;
            registry.register(Box::new(gauge.clone()))?;
            vitals.push((vital, gauge));
        }
        let reading_time = GaugeVec::new(
            Opts::new(
                "vitalwatch_reading_timestamp_seconds",
                "UTC time of the latest reading per device and vital (age = time() - this)",
            ),
            &["device", "vital"],
        )?;
        let readings = IntCounterVec::new(
            Opts::new(
                "vitalwatch_readings_total",
                "Readings received from each device",
            ),
            &["device"],
        )?;
        let ring_dropped = IntCounterVec::new(
            Opts::new(
                "vitalwatch_ring_dropped_total",
                "Messages dropped because the device's ring buffer was full",
            ),
            &["device"],
        )?;
        let decode_errors = IntCounterVec::new(
            Opts::new(
                "vitalwatch_decode_errors_total",
                "Stretches of a device's bytes that failed to decode, by kind",
            ),
            &["device", "kind"],
        )?;
        let ring_fill = GaugeVec::new(
            Opts::new(
                "vitalwatch_ring_fill_ratio",
                "How full each device's ring buffer is, 0 to 1",
            ),
            &["device"],
        )?;
        let device_connected = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_device_connected",
                "1 while the device's link is up",
            ),
            &["device"],
        )?;
        let alarms_active = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_alarms_active",
                "Active alarms by priority and kind",
            ),
            &["priority", "kind"],
        )?;
        let session_active = IntGauge::new(
            "vitalwatch_session_active",
            "1 while a dosing session is active",
        )?;
        let session_elapsed = Gauge::new(
            "vitalwatch_session_elapsed_seconds",
            "How long the active session has run, by the daemon's clock as reading ages are (NaN without one)",
        )?;
        session_elapsed.set(f64::NAN);
        let session_phase = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_session_phase",
                "1 for the active session's phase",
            ),
            &["phase"],
        )?;
        let reading_age = GaugeVec::new(
            Opts::new(
                "vitalwatch_reading_age_seconds",
                "Seconds since the latest reading per device and vital (+Inf before the first)",
            ),
            &["device", "vital"],
        )?;
        let stale_after = GaugeVec::new(
            Opts::new(
                "vitalwatch_device_stale_after_seconds",
                "A reading older than this is stale (shown greyed on the panel, never as current)",
            ),
            &["device"],
        )?;
        let link_state = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_device_link_state",
                "1 for the device link's state: connecting, connected, lost or idle",
            ),
            &["device", "state"],
        )?;
        let reconnects = IntCounterVec::new(
            Opts::new(
                "vitalwatch_device_reconnects_total",
                "Times the device's link came back after being lost",
            ),
            &["device"],
        )?;
        let alarms_by_rule = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_alarm_active",
                "Active alarms by priority, kind, rule (or technical condition), device and whether acknowledged",
            ),
            &["priority", "kind", "rule", "device", "acknowledged"],
        )?;
        let alarm_transitions = IntCounterVec::new(
            Opts::new(
                "vitalwatch_alarm_transitions_total",
                "Alarm life-cycle changes: raised, escalated, acknowledged, ended...",
            ),
            &["change", "priority", "kind", "rule"],
        )?;
        let alarm_latency = Histogram::with_opts(
            HistogramOpts::new(
                "vitalwatch_alarm_signal_latency_seconds",
                "From a reading's arrival at the daemon to the alarm event it caused being published",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let recorder_lag = Gauge::new(
            "vitalwatch_recorder_lag_seconds",
            "Age of the oldest record the recorder has not committed yet (0 when caught up)",
        )?;
        let recorder_pending = IntGauge::new(
            "vitalwatch_recorder_pending_records",
            "Records the recorder holds that are not committed yet",
        )?;
        let recorder_progress = Arc::new(OnceLock::new());
        let recording_failing = IntGauge::new(
            "vitalwatch_recording_failing",
            "1 while session recording fails (the recording-failure technical alarm)",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("vitalwatch_build_info", "Always 1; labels name the build"),
            &["version"],
        )?;
        for collector in [
            Box::new(reading_time.clone()) as Box<dyn Collector>,
            Box::new(readings.clone()),
            Box::new(ring_dropped.clone()),
            Box::new(ring_fill.clone()),
            Box::new(decode_errors.clone()),
            Box::new(device_connected.clone()),
            Box::new(alarms_active.clone()),
            Box::new(session_active.clone()),
            Box::new(session_phase.clone()),
            Box::new(session_elapsed.clone()),
            Box::new(reading_age.clone()),
            Box::new(stale_after.clone()),
            Box::new(link_state.clone()),
            Box::new(reconnects.clone()),
            Box::new(alarms_by_rule.clone()),
            Box::new(alarm_transitions.clone()),
            Box::new(alarm_latency.clone()),
            Box::new(RecorderProgress {
                progress: recorder_progress.clone(),
                lag: recorder_lag,
                pending: recorder_pending,
            }),
            Box::new(recording_failing.clone()),
            Box::new(build_info.clone()),
        ] {
            registry.register(collector)?;
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for priority in Priority::ALL {
            for kind in ["physiological", "technical"] {
                alarms_active
                    .with_label_values(&[priority.as_str(), kind])
                    .set(0);
            }
        }
        for phase in [Phase::Baseline, Phase::Infusion, Phase::Recovery] {
            session_phase.with_label_values(&[phase.as_str()]).set(0);
        }
        Ok(Metrics {
            registry,
            vitals,
            reading_time,
            readings,
            ring_dropped,
            ring_fill,
            decode_errors,
            device_connected,
            alarms_active,
            session_active,
            session_phase,
            session_elapsed,
            reading_age,
            stale_after,
            link_state,
            reconnects,
            alarms_by_rule,
            alarm_label_sets: HashSet::new(),
            alarm_transitions,
            alarm_latency,
            recorder_progress,
            recording_failing,
            cache: HashMap::new(),
            links: HashMap::new(),
        })
    }

    /// Declares a device so its series exist before it sends anything: counters at zero, the
    /// age of each vital it reports at +Inf (never read), its link connecting.
    pub fn add_device(&self, device: &DeviceId, vitals: &[Vital], stale_after: Duration) {
        let label = [device.as_str()];
        self.readings.with_label_values(&label);
        self.ring_dropped.with_label_values(&label);
        self.reconnects.with_label_values(&label);
        // Every kind at zero, so that `increase()` counts a device's first decode error.
        for kind in DecodeErrorKind::ALL {
            self.decode_errors
                .with_label_values(&[device.as_str(), kind.as_str()]);
        }
        self.ring_fill.with_label_values(&label).set(0.0);
        self.device_connected.with_label_values(&label).set(0);
        self.stale_after
            .with_label_values(&label)
            .set(stale_after.as_secs_f64());
        for vital in vitals {
            self.reading_age
                .with_label_values(&[device.as_str(), vital.as_str()])
                .set(f64::INFINITY);
        }
        for state in LINK_STATES {
            self.link_state
                .with_label_values(&[device.as_str(), state.as_str()])
                .set(i64::from(state == LinkState::Connecting));
        }
    }

    pub fn observe_reading(&mut self, reading: &Reading) {
        let key = (reading.device.clone(), reading.vital);
        let series = match self.cache.get_mut(&key) {
            Some(series) => series,
            None => {
                let device = reading.device.as_str();
                let Some((_, family)) = self.vitals.iter().find(|(v, _)| *v == reading.vital)
                else {
                    return;
                };
                let labels = [device, reading.vital.as_str()];
                let series = ReadingSeries {
                    value: family.with_label_values(&[device]),
                    time: self.reading_time.with_label_values(&labels),
                    age: self.reading_age.with_label_values(&labels),
                    received: reading.received,
                };
                self.cache.entry(key).or_insert(series)
            }
        };
        series
            .value
            .set(reading.clinical_value().unwrap_or(f64::NAN));
        series
            .time
            .set(reading.received_utc.timestamp_micros() as f64 / 1e6);
        series.age.set(0.0);
        series.received = reading.received;
        self.readings
            .with_label_values(&[reading.device.as_str()])
            .inc();
    }

    /// Brings every reading's age up to `now` (the engine's tick), in daemon-clock seconds as
    /// the status API's ages are.
    pub fn set_reading_ages(&self, now: Mono) {
        for series in self.cache.values() {
            series
                .age
                .set(now.saturating_since(series.received).as_secs_f64());
        }
    }

    pub fn decode_error(&self, device: &DeviceId, kind: &str) {
        self.decode_errors
            .with_label_values(&[device.as_str(), kind])
            .inc();
    }

    pub fn set_link(&mut self, device: &DeviceId, state: LinkState) {
        self.device_connected
            .with_label_values(&[device.as_str()])
            .set(i64::from(state == LinkState::Connected));
        for each in LINK_STATES {
            self.link_state
                .with_label_values(&[device.as_str(), each.as_str()])
                .set(i64::from(each == state));
        }
        let before = self.links.insert(device.clone(), state);
        if state == LinkState::Connected && before == Some(LinkState::Lost) {
            self.reconnects.with_label_values(&[device.as_str()]).inc();
        }
    }

    /// Brings the drop counter up to the ring's running total.
    pub fn set_ring(&self, device: &DeviceId, dropped_total: u64, fill_ratio: f64) {
        let counter = self.ring_dropped.with_label_values(&[device.as_str()]);
        let seen = counter.get();
        if dropped_total > seen {
            counter.inc_by(dropped_total - seen);
        }
        self.ring_fill
            .with_label_values(&[device.as_str()])
            .set(fill_ratio);
    }

    pub fn set_alarms<'a>(&mut self, active: impl Iterator<Item = &'a Alarm>) {
        let mut counts = HashMap::new();
        let mut by_rule: HashMap<[String; 5], i64> = HashMap::new();
        for alarm in active {
            *counts.entry((alarm.priority, alarm.kind)).or_insert(0i64) += 1;
            let labels = [
                alarm.priority.as_str().to_string(),
                alarm.kind.as_str().to_string(),
                alarm.source.name().to_string(),
                alarm.device.as_str().to_string(),
                alarm.acknowledged_by.is_some().to_string(),
            ];
            *by_rule.entry(labels).or_insert(0) += 1;
        }
        // Alarms that ended leave no series behind (Prometheus marks them stale).
        for gone in self
            .alarm_label_sets
            .difference(&by_rule.keys().cloned().collect())
        {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.alarms_by_rule.remove_label_values(&labels);
        }
        for (labels, count) in &by_rule {
            let labels_str: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.alarms_by_rule
                .with_label_values(&labels_str)
                .set(*count);
        }
        self.alarm_label_sets = by_rule.into_keys().collect();
        for priority in Priority::ALL {
            for kind in [AlarmKind::Physiological, AlarmKind::Technical] {
                self.alarms_active
                    .with_label_values(&[priority.as_str(), kind.as_str()])
                    .set(counts.get(&(priority, kind)).copied().unwrap_or(0));
            }
        }
    }

    pub fn alarm_transition(&self, transition: &AlarmTransition) {
        let alarm = &transition.alarm;
        self.alarm_transitions
            .with_label_values(&[
                transition.change.as_str(),
                alarm.priority.as_str(),
                alarm.kind.as_str(),
                alarm.source.name(),
            ])
            .inc();
    }

    /// How long (real time) from a reading's arrival to the alarm event it caused.
    pub fn alarm_signal_latency(&self, latency: Duration) {
        self.alarm_latency.observe(latency.as_secs_f64());
    }

    /// Reports the recorder's lag and backlog from now on (read at each scrape).
    pub fn watch_recorder(&self, progress: Arc<Progress>) {
        // Set once: a daemon has one recorder for its life.
        let _ = self.recorder_progress.set(progress);
    }

    pub fn set_recording_failing(&self, failing: bool) {
        self.recording_failing.set(i64::from(failing));
    }

    /// How long the active session has run (`None` without one).
    pub fn set_session_elapsed(&self, elapsed: Option<Duration>) {
        self.session_elapsed
            .set(elapsed.map_or(f64::NAN, |e| e.as_secs_f64()));
    }

    pub fn set_phase(&self, phase: Option<Phase>) {
        let phase = phase.filter(|p| *p != Phase::Ended);
        self.session_active.set(i64::from(phase.is_some()));
        for each in [Phase::Baseline, Phase::Infusion, Phase::Recovery] {
            self.session_phase
                .with_label_values(&[each.as_str()])
                .set(i64::from(phase == Some(each)));
        }
    }

    /// The registry, for the `/metrics` endpoint (it shares the series with `self`).
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }
}

/// The text exposition of `registry` and its content type.
pub fn exposition(registry: &Registry) -> Result<(String, String), prometheus::Error> {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::new();
    encoder.encode(&registry.gather(), &mut buffer)?;
    Ok((
        String::from_utf8_lossy(&buffer).into_owned(),
        encoder.format_type().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics) -> String {
        exposition(&metrics.registry()).unwrap().0
    }

    #[test]
    fn the_session_elapsed_is_nan_without_a_session() {
        let metrics = Metrics::new("chair-7").unwrap();
        assert!(metrics.session_elapsed.get().is_nan());
        metrics.set_session_elapsed(Some(Duration::from_millis(90_500)));
        assert_eq!(metrics.session_elapsed.get(), 90.5);
        metrics.set_session_elapsed(None);
        assert!(metrics.session_elapsed.get().is_nan());
    }

    #[test]
    fn every_series_is_labelled_with_the_chair() {
        let metrics = Metrics::new("chair-7").unwrap();
        metrics.add_device(
            &DeviceId::new("ox1"),
            &[Vital::Spo2],
            Duration::from_secs(3),
        );
        let text = text(&metrics);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("chair=\"chair-7\""), "{line}");
        }
        // A device not heard from yet: its vitals have no age (never read), it is connecting.
        let line = |name: &str, label: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains(label))
                .unwrap_or_else(|| panic!("no {name} {label} in {text}"))
                .to_string()
        };
        // Prometheus reads `inf` as +Inf.
        assert!(line("vitalwatch_reading_age_seconds{", "vital=\"spo2\"").ends_with(" inf"));
        assert!(line("vitalwatch_device_link_state{", "state=\"connecting\"").ends_with(" 1"));
        // Its counters exist at zero, so that the first increase shows.
        assert!(line("vitalwatch_decode_errors_total{", "kind=\"checksum\"").ends_with(" 0"));
        assert!(line("vitalwatch_ring_dropped_total{", "device=\"ox1\"").ends_with(" 0"));
    }

    #[test]
    fn a_reconnect_is_a_link_back_after_a_loss_not_the_first_connection() {
        let mut metrics = Metrics::new("c").unwrap();
        let ox = DeviceId::new("ox1");
        metrics.add_device(&ox, &[], Duration::from_secs(3));
        metrics.set_link(&ox, LinkState::Connected);
        assert_eq!(metrics.reconnects.with_label_values(&["ox1"]).get(), 0);
        metrics.set_link(&ox, LinkState::Lost);
        metrics.set_link(&ox, LinkState::Connected);
        metrics.set_link(&ox, LinkState::Connected);
        assert_eq!(metrics.reconnects.with_label_values(&["ox1"]).get(), 1);
        // A cuff idle between measurements is not a loss.
        metrics.set_link(&ox, LinkState::Idle);
        metrics.set_link(&ox, LinkState::Connected);
        assert_eq!(metrics.reconnects.with_label_values(&["ox1"]).get(), 1);
        assert_eq!(
            metrics
                .link_state
                .with_label_values(&["ox1", "connected"])
                .get(),
            1
        );
        assert_eq!(
            metrics.link_state.with_label_values(&["ox1", "idle"]).get(),
            0
        );
    }

    #[test]
    fn a_readings_age_grows_with_the_engine_clock_and_restarts_at_the_next_reading() {
        let mut metrics = Metrics::new("c").unwrap();
        let ox = DeviceId::new("ox1");
        let reading = |at: f64| Reading {
            device: ox.clone(),
            vital: Vital::Spo2,
            value: Some(97.0),
            quality: crate::vitals::Quality::GOOD,
            device_time: None,
            received: Mono::ZERO + Duration::from_secs_f64(at),
            received_utc: chrono::DateTime::UNIX_EPOCH,
        };
        metrics.observe_reading(&reading(10.0));
        metrics.set_reading_ages(Mono::ZERO + Duration::from_secs(14));
        let age = metrics.reading_age.with_label_values(&["ox1", "spo2"]);
        assert_eq!(age.get(), 4.0);
        metrics.observe_reading(&reading(15.0));
        assert_eq!(age.get(), 0.0);
    }
}
