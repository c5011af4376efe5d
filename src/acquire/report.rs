//! What every hardware driver (serial, BLE) reports into its device's ring: decoded samples as
//! readings, decode errors, and link changes, stamped with the daemon's clock on arrival.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::decode::{Decoded, Sample};
use super::ring::RingProducer;
use crate::clock::Clock;
use crate::vitals::{DeviceId, DeviceMessage, LinkState, Mono, Reading};

/// A driver's end of its device's ring.
pub struct Reporter {
    pub id: DeviceId,
    ring: RingProducer,
    clock: Clock,
}

impl Reporter {
    pub fn new(id: DeviceId, ring: RingProducer, clock: Clock) -> Self {
        Reporter { id, ring, clock }
    }

    /// A decoded sample (one message, so the engine sees one measurement) or a decode error.
    pub fn decoded(&mut self, item: Decoded) {
        let received = self.clock.now();
        let message = match item {
            Decoded::Sample(sample) => DeviceMessage::Readings(readings_of(
                &self.id,
                sample,
                received,
                self.clock.utc_at(received),
            )),
            Decoded::Error(error) => DeviceMessage::DecodeError {
                device: self.id.clone(),
                kind: error.kind.as_str(),
                skipped: error.skipped,
                detail: error.detail,
                at: received,
            },
        };
        if !self.ring.push(message) {
            tracing::debug!(device = %self.id, "ring full, message dropped");
        }
    }

    pub fn link(&mut self, state: LinkState, detail: String) {
        let at = self.clock.now();
        self.ring.push(DeviceMessage::Link {
            device: self.id.clone(),
            state,
            detail: Some(detail),
            at,
            at_utc: self.clock.utc_at(at),
        });
    }
}

/// A decoded sample as the readings of one measurement.
pub fn readings_of(
    device: &DeviceId,
    sample: Sample,
    received: Mono,
    received_utc: DateTime<Utc>,
) -> Vec<Reading> {
    sample
        .values
        .into_iter()
        .map(|(vital, value)| Reading {
            device: device.clone(),
            vital,
            value,
            quality: sample.quality,
            device_time: sample.device_time,
            received,
            received_utc,
        })
        .collect()
}

/// How long a connected device may stay quiet before the driver drops the link and connects
/// again (a device that went quiet may have reset): twice the silence that raises the technical
/// alarm for a continuous device, three intervals for an intermittent one (a cuff), and never
/// under 5 s.
pub fn reconnect_after_silence(silent_after: Option<Duration>, interval: Duration) -> Duration {
    silent_after
        .map(|silent| silent * 2)
        .unwrap_or(interval * 3)
        .max(Duration::from_secs(5))
}

/// Reconnection backoff: doubles from `first` to `max`, back to `first` after a connection
/// that lasted [`Backoff::GOOD_CONNECTION`].
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A connection that lasted this long was good: the next failure starts afresh.
    pub const GOOD_CONNECTION: Duration = Duration::from_secs(10);

    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next attempt; each call doubles the following one.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// A connection ended after lasting `lasted`.
    pub fn connection_ended(&mut self, lasted: Duration) {
        if lasted >= Self::GOOD_CONNECTION {
            self.next = self.first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_restarts_after_a_good_connection() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let waits: Vec<_> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 4000]);
        backoff.connection_ended(Duration::from_secs(3));
        assert_eq!(backoff.next_wait().as_millis(), 4000);
        backoff.connection_ended(Backoff::GOOD_CONNECTION);
        assert_eq!(backoff.next_wait().as_millis(), 500);
    }

    #[test]
    fn a_quiet_link_is_dropped_after_twice_its_silence_alarm_and_never_under_5_s() {
        let s = Duration::from_secs;
        assert_eq!(reconnect_after_silence(Some(s(10)), s(1)), s(20));
        assert_eq!(reconnect_after_silence(None, s(300)), s(900));
        assert_eq!(reconnect_after_silence(Some(s(1)), s(1)), s(5));
    }
}
