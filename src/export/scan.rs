//! One quick pass over a session's readings before an export writes anything: which devices
//! reported which vitals, how many readings, and how often (the native rate), in memory
//! bounded by the number of signals, not the session's length.
//!
//! The store keeps no device descriptions, so a signal's rate is learnt from its readings: the
//! median of the intervals between its first [`INTERVALS_KEPT`] readings. A signal whose median
//! interval is at most [`CONTINUOUS_MAX_INTERVAL_S`] is *continuous* (an oximeter's SpO2 at
//! 1 Hz); a longer one is *intermittent* (a cuff measuring every 5 minutes).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{ExportError, Session, median, seconds_between};
use crate::recorder::{Store, StoredReading};
use crate::vitals::{DeviceId, Vital};

/// How many intervals per signal the median rate is taken from.
pub const INTERVALS_KEPT: usize = 512;
/// A signal sampled at least this often (median interval, seconds) is continuous.
pub const CONTINUOUS_MAX_INTERVAL_S: f64 = 5.0;

/// One device's vital over the session.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalScan {
    pub device: DeviceId,
    pub vital: Vital,
    /// Readings, flagged or not, with a value or not.
    pub count: u64,
    /// Readings with a value and no quality flag.
    pub good: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The median interval between readings, seconds; `None` with a single reading.
    pub interval_s: Option<f64>,
    intervals: Vec<f64>,
}

impl SignalScan {
    /// Whether the signal is sampled continuously (see the module comment).
    pub fn is_continuous(&self) -> bool {
        self.interval_s
            .is_some_and(|interval| interval <= CONTINUOUS_MAX_INTERVAL_S)
    }

    /// Samples per second for a continuous signal, at least 1: the rounded native rate.
    pub fn samples_per_second(&self) -> u32 {
        match self.interval_s {
            Some(interval) if interval > 0.0 && interval < 1.0 => {
                ((1.0 / interval).round() as u32).clamp(1, 100)
            }
            _ => 1,
        }
    }
}

/// What a pass over the readings found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Every signal, by device then vital.
    pub signals: BTreeMap<(DeviceId, Vital), SignalScan>,
    pub readings: u64,
    /// The latest reading's time.
    pub last: Option<DateTime<Utc>>,
}

impl Scan {
    /// The vitals `device` reported.
    pub fn vitals_of<'a>(&'a self, device: &'a DeviceId) -> impl Iterator<Item = Vital> + 'a {
        self.signals
            .keys()
            .filter(move |(d, _)| d == device)
            .map(|(_, v)| *v)
    }

    /// The devices, in order.
    pub fn devices(&self) -> Vec<DeviceId> {
        let mut devices: Vec<DeviceId> = self.signals.keys().map(|(d, _)| d.clone()).collect();
        devices.dedup();
        devices
    }

    /// Whether `device` measures blood pressure (a cuff).
    pub fn measures_bp(&self, device: &DeviceId) -> bool {
        self.vitals_of(device)
            .any(|v| matches!(v, Vital::Systolic | Vital::Diastolic | Vital::MeanArterial))
    }

    /// Whether `device` measures SpO2 (an oximeter).
    pub fn measures_spo2(&self, device: &DeviceId) -> bool {
        self.vitals_of(device).any(|v| v == Vital::Spo2)
    }
}

/// Scans `session`'s readings, calling `each` with every reading on the way (an exporter's
/// own pre-pass rides along).
pub fn scan_with(
    store: &Store,
    session: &Session,
    mut each: impl FnMut(&StoredReading),
) -> Result<Scan, ExportError> {
    let mut found = Scan::default();
    store.readings(session.key(), |reading: StoredReading| {
        each(&reading);
        found.readings += 1;
        found.last = Some(reading.received);
        let good = reading.value.is_some() && reading.quality.is_good();
        let key = (reading.device.clone(), reading.vital);
        match found.signals.get_mut(&key) {
            Some(signal) => {
                signal.count += 1;
                signal.good += u64::from(good);
                if signal.intervals.len() < INTERVALS_KEPT {
                    signal
                        .intervals
                        .push(seconds_between(signal.last, reading.received));
                }
                signal.last = reading.received;
            }
            None => {
                found.signals.insert(
                    key,
                    SignalScan {
                        device: reading.device,
                        vital: reading.vital,
                        count: 1,
                        good: u64::from(good),
                        first: reading.received,
                        last: reading.received,
                        interval_s: None,
                        intervals: Vec::new(),
                    },
                );
            }
        }
        Ok::<_, ExportError>(())
    })?;
    for signal in found.signals.values_mut() {
        signal.interval_s = median(&mut signal.intervals);
        signal.intervals = Vec::new();
    }
    Ok(found)
}

/// Scans `session`'s readings.
pub fn scan(store: &Store, session: &Session) -> Result<Scan, ExportError> {
    scan_with(store, session, |_| {})
}
