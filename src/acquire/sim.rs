//! The simulated patient's devices: a driver that plays a scenario into a device's ring.
//!
//! It behaves like a real driver from the engine's side: link state messages when it
//! "connects" and "disconnects", flagged readings when the sensor is off or moving, nothing at
//! all while it is silent, and every reading stamped with the daemon clock's receive time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ring::RingProducer;
use super::scenario::{DeviceCondition, Role, Scenario, stream_of};
use crate::clock::Clock;
use crate::vitals::{DeviceId, DeviceMessage, LinkState, Mono, Quality, Reading, Vital};

/// Motion artefact makes an oximeter read falsely low; these offsets make the simulated
/// artefact look like a desaturation, which the quality flag must keep from alarming.
const ARTEFACT_SPO2_OFFSET: f64 = -14.0;
const ARTEFACT_PULSE_OFFSET: f64 = 35.0;

pub struct SimulatedDevice {
    pub id: DeviceId,
    pub role: Role,
    pub scenario: Arc<Scenario>,
    /// Time between samples (oximeter) or measurements (cuff).
    pub interval: Duration,
}

impl SimulatedDevice {
    /// The messages the device sends at sample `index` (scenario time `index × interval`),
    /// given whether its link was up before, stamped `received` (monotonic) and `at_utc`.
    /// Pure, so tests and replay can use it directly.
    pub fn messages_at(
        &self,
        index: u64,
        link_up: bool,
        received: Mono,
        at_utc: DateTime<Utc>,
    ) -> Vec<DeviceMessage> {
        let t = self.interval.as_secs_f64() * index as f64;
        let condition = self.scenario.condition(self.role, t);
        let link = |state, detail: &str| DeviceMessage::Link {
            device: self.id.clone(),
            state,
            detail: Some(detail.to_string()),
            at: received,
            at_utc,
        };
        let mut out = Vec::new();
        if condition == Some(DeviceCondition::Disconnected) {
            if link_up {
                out.push(link(LinkState::Lost, "simulated disconnection"));
            }
            return out;
        }
        if !link_up {
            out.push(link(LinkState::Connected, "simulated device"));
        }
        if condition == Some(DeviceCondition::Silent) {
            // Connected, but its measurements fail: nothing to send.
            return out;
        }
        let stream = stream_of(self.id.as_str());
        let mut readings = Vec::with_capacity(self.role.vitals().len());
        for &vital in self.role.vitals() {
            let scripted = self.scenario.sample(vital, t, stream, index);
            let value = match (vital, scripted) {
                (_, Some(value)) => Some(value),
                // A cuff computes the mean pressure from its own systolic and diastolic.
                (Vital::MeanArterial, None) => mean_arterial(&self.scenario, t, stream, index),
                (_, None) => continue,
            };
            let (value, quality) = match condition {
                Some(DeviceCondition::SensorOff) => (None, Quality::SENSOR_OFF),
                Some(DeviceCondition::Artefact) => {
                    (value.map(|v| artefact(vital, v)), Quality::ARTEFACT)
                }
                _ => (value, Quality::GOOD),
            };
            readings.push(Reading {
                device: self.id.clone(),
                vital,
                value,
                quality,
                device_time: None,
                received,
                received_utc: at_utc,
            });
        }
        if !readings.is_empty() {
            out.push(DeviceMessage::Readings(readings));
        }
        out
    }

    /// Plays the scenario into `ring` for ever, on `clock`.
    pub async fn run(self, mut ring: RingProducer, clock: Clock) {
        let mut link_up = false;
        for index in 0u64.. {
            let due = Mono::ZERO + self.interval.mul_f64(index as f64);
            clock.sleep_until(due).await;
            let received = clock.now();
            let at_utc = clock.utc_at(received);
            for message in self.messages_at(index, link_up, received, at_utc) {
                if let DeviceMessage::Link { state, .. } = &message {
                    link_up = *state == LinkState::Connected;
                }
                if !ring.push(message) {
                    tracing::debug!(device = %self.id, "ring full, reading dropped");
                }
            }
        }
    }
}

fn mean_arterial(scenario: &Scenario, t: f64, stream: u64, index: u64) -> Option<f64> {
    let systolic = scenario.sample(Vital::Systolic, t, stream, index)?;
    let diastolic = scenario.sample(Vital::Diastolic, t, stream, index)?;
    Some((diastolic + (systolic - diastolic) / 3.0).round())
}

fn artefact(vital: Vital, value: f64) -> f64 {
    let (low, high) = vital.plausible_range();
    let offset = match vital {
        Vital::Spo2 => ARTEFACT_SPO2_OFFSET,
        Vital::PulseRate => ARTEFACT_PULSE_OFFSET,
        _ => 0.0,
    };
    (value + offset).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, load_scenario};

    fn device(scenario: &str, role: Role, interval_s: u64) -> SimulatedDevice {
        SimulatedDevice {
            id: DeviceId::new("dev"),
            role,
            scenario: Arc::new(load_scenario(&Source::built_in("t", ""), scenario).unwrap()),
            interval: Duration::from_secs(interval_s),
        }
    }

    fn utc() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }

    fn readings(messages: &[DeviceMessage]) -> Vec<&Reading> {
        messages
            .iter()
            .flat_map(|m| match m {
                DeviceMessage::Readings(r) => r.as_slice(),
                _ => &[],
            })
            .collect()
    }

    #[test]
    fn a_cuff_measurement_is_four_readings_with_one_receive_time() {
        let cuff = device("typical-infusion", Role::BpCuff, 300);
        let messages = cuff.messages_at(0, false, Mono::ZERO, utc());
        assert!(matches!(
            messages[0],
            DeviceMessage::Link {
                state: LinkState::Connected,
                ..
            }
        ));
        let readings = readings(&messages);
        let vitals: Vec<_> = readings.iter().map(|r| r.vital).collect();
        assert_eq!(
            vitals,
            [
                Vital::Systolic,
                Vital::Diastolic,
                Vital::MeanArterial,
                Vital::PulseRate
            ]
        );
        let [sys, dia, map, _] = [0, 1, 2, 3].map(|i| readings[i].value.unwrap());
        assert_eq!(map, (dia + (sys - dia) / 3.0).round());
        assert!(
            readings
                .iter()
                .all(|r| r.received == Mono::ZERO && r.quality.is_good())
        );
    }

    #[test]
    fn the_sensor_off_scenario_sends_flagged_readings_without_values() {
        let ox = device("sensor-off", Role::Oximeter, 1);
        let off = ox.messages_at(310, true, Mono::ZERO, utc());
        assert!(
            readings(&off)
                .iter()
                .all(|r| r.value.is_none() && r.quality == Quality::SENSOR_OFF)
        );
        let artefact = ox.messages_at(910, true, Mono::ZERO, utc());
        let spo2 = readings(&artefact)
            .into_iter()
            .find(|r| r.vital == Vital::Spo2)
            .unwrap();
        assert_eq!(spo2.quality, Quality::ARTEFACT);
        assert!(
            spo2.value.unwrap() < 85.0,
            "artefact must look like a desaturation"
        );
    }

    #[test]
    fn a_disconnection_sends_link_lost_once_then_nothing_then_reconnects() {
        let ox = device("device-lost", Role::Oximeter, 1);
        let lost = ox.messages_at(600, true, Mono::ZERO, utc());
        assert!(matches!(
            lost[..],
            [DeviceMessage::Link {
                state: LinkState::Lost,
                ..
            }]
        ));
        assert!(ox.messages_at(601, false, Mono::ZERO, utc()).is_empty());
        let back = ox.messages_at(720, false, Mono::ZERO, utc());
        assert!(matches!(
            back[0],
            DeviceMessage::Link {
                state: LinkState::Connected,
                ..
            }
        ));
        assert_eq!(readings(&back).len(), 3);
    }

    #[test]
    fn a_silent_cuff_stays_connected_and_sends_nothing() {
        // bp-overdue.toml: `silent = { role = "bp_cuff", for_s = 1200 }` at t = 1000, so the
        // measurements due at 1200, 1500, 1800 and 2100 s fail; the one at 2400 s is back.
        let cuff = device("bp-overdue", Role::BpCuff, 300);
        let oximeter = device("bp-overdue", Role::Oximeter, 1);
        assert_eq!(
            readings(&cuff.messages_at(3, true, Mono::ZERO, utc())).len(),
            4
        );
        for index in [4, 5, 6, 7] {
            assert_eq!(
                cuff.messages_at(index, true, Mono::ZERO, utc()),
                [],
                "measurement {index}"
            );
        }
        // Never a lost link: a cuff that was not yet connected connects, then sends nothing.
        let first = cuff.messages_at(4, false, Mono::ZERO, utc());
        assert!(matches!(
            first[..],
            [DeviceMessage::Link {
                state: LinkState::Connected,
                ..
            }]
        ));
        assert_eq!(
            readings(&cuff.messages_at(8, true, Mono::ZERO, utc())).len(),
            4
        );
        // The step addresses the cuff only.
        assert_eq!(
            readings(&oximeter.messages_at(1500, true, Mono::ZERO, utc())).len(),
            3
        );
    }

    #[test]
    fn the_desaturation_scenario_holds_86_for_40_seconds() {
        let ox = device("desaturation", Role::Oximeter, 1);
        let spo2_at = |i| {
            readings(&ox.messages_at(i, true, Mono::ZERO, utc()))
                .into_iter()
                .find(|r| r.vital == Vital::Spo2)
                .and_then(|r| r.value)
                .unwrap()
        };
        assert!((900..940).all(|i| spo2_at(i) == 86.0));
        assert!((300..305).all(|i| spo2_at(i) == 88.0));
        assert!(spo2_at(940) > 94.0 && spo2_at(305) > 94.0);
    }
}
