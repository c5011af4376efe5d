//! Prometheus metrics for the clinic's dashboards, in the text exposition format.
//!
//! Names carry the `vitalwatch_` prefix and their unit; vitals keep their clinical units
//! (percent, per minute, mmHg) because those are what a clinician reads on a dashboard.
//! Labels name devices and priorities, never a patient or a session id.

use std::collections::HashMap;

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::{Alarm, AlarmKind, Priority};
use crate::vitals::{DeviceId, LinkState, Phase, Reading, Vital};

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
    /// Label lookups cost a hash and a lock: keep the per-reading handles.
    cache: HashMap<(DeviceId, Vital), (Gauge, Gauge)>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
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
        let session_phase = IntGaugeVec::new(
            Opts::new(
                "vitalwatch_session_phase",
                "1 for the active session's phase",
            ),
            &["phase"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("vitalwatch_build_info", "Always 1; labels name the build"),
            &["version"],
        )?;
        for collector in [
            Box::new(reading_time.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(readings.clone()),
            Box::new(ring_dropped.clone()),
            Box::new(ring_fill.clone()),
            Box::new(decode_errors.clone()),
            Box::new(device_connected.clone()),
            Box::new(alarms_active.clone()),
            Box::new(session_active.clone()),
            Box::new(session_phase.clone()),
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
            cache: HashMap::new(),
        })
    }

    /// Declares a device so its series exist (at zero) before it sends anything.
    pub fn add_device(&self, device: &DeviceId) {
        let label = [device.as_str()];
        self.readings.with_label_values(&label);
        self.ring_dropped.with_label_values(&label);
        self.ring_fill.with_label_values(&label).set(0.0);
        self.device_connected.with_label_values(&label).set(0);
    }

    pub fn observe_reading(&mut self, reading: &Reading) {
        let key = (reading.device.clone(), reading.vital);
        let (value, time) = match self.cache.get(&key) {
            Some(handles) => handles,
            None => {
                let device = reading.device.as_str();
                let Some((_, family)) = self.vitals.iter().find(|(v, _)| *v == reading.vital)
                else {
                    return;
                };
                let handles = (
                    family.with_label_values(&[device]),
                    self.reading_time
                        .with_label_values(&[device, reading.vital.as_str()]),
                );
                self.cache.entry(key).or_insert(handles)
            }
        };
        value.set(reading.clinical_value().unwrap_or(f64::NAN));
        time.set(reading.received_utc.timestamp_micros() as f64 / 1e6);
        self.readings
            .with_label_values(&[reading.device.as_str()])
            .inc();
    }

    pub fn decode_error(&self, device: &DeviceId, kind: &str) {
        self.decode_errors
            .with_label_values(&[device.as_str(), kind])
            .inc();
    }

    pub fn set_link(&self, device: &DeviceId, state: LinkState) {
        self.device_connected
            .with_label_values(&[device.as_str()])
            .set(i64::from(state == LinkState::Connected));
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

    pub fn set_alarms<'a>(&self, active: impl Iterator<Item = &'a Alarm>) {
        let mut counts = HashMap::new();
        for alarm in active {
            *counts.entry((alarm.priority, alarm.kind)).or_insert(0i64) += 1;
        }
        for priority in Priority::ALL {
            for kind in [AlarmKind::Physiological, AlarmKind::Technical] {
                let label = match kind {
                    AlarmKind::Physiological => "physiological",
                    AlarmKind::Technical => "technical",
                };
                self.alarms_active
                    .with_label_values(&[priority.as_str(), label])
                    .set(counts.get(&(priority, kind)).copied().unwrap_or(0));
            }
        }
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
