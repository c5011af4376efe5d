//! The BLE protocols a device profile can name, and what the driver does with each: the
//! service it advertises, the characteristics to subscribe to with their decoders, the
//! features to read, and the poll request where the device needs one.

use serde::Deserialize;

use super::driver::{Channel, PayloadDecoder, Plan, Poll};
use super::{Uuid, sig_uuid};
use crate::acquire::decode::gatt::{self, GattCharacteristic, GattValue, PlxFeatures};
use crate::acquire::decode::{Decoded, Decoder, berrymed, jumper, o2ring};

/// A BLE device's protocol, as written in a profile's `[ble]` table, for example
/// `protocol = { family = "pulse_oximeter" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum BleProtocol {
    /// Bluetooth SIG Pulse Oximeter Service 0x1822: PLX continuous (0x2A5F) and spot-check
    /// (0x2A5E) measurements, PLX features (0x2A60).
    PulseOximeter,
    /// Bluetooth SIG Blood Pressure Service 0x1810: measurement (0x2A35, indicated),
    /// intermediate cuff pressure (0x2A36), feature (0x2A49).
    BloodPressure,
    /// Bluetooth SIG Heart Rate Service 0x180D: measurement (0x2A37).
    HeartRate,
    /// BerryMed BM1000 series: the BCI protocol over a "transparent UART" service.
    Berrymed,
    /// Jumper JPD-500F: `81 PR SpO2 PI` frames.
    Jumper,
    /// Viatom / Wellue O2Ring and the Checkme O2 family: polled every 2 s.
    O2ring,
}

impl BleProtocol {
    pub const ALL: [BleProtocol; 6] = [
        BleProtocol::PulseOximeter,
        BleProtocol::BloodPressure,
        BleProtocol::HeartRate,
        BleProtocol::Berrymed,
        BleProtocol::Jumper,
        BleProtocol::O2ring,
    ];

    /// The primary service the device advertises or offers.
    pub fn service(self) -> Uuid {
        match self {
            BleProtocol::PulseOximeter => sig_uuid(0x1822),
            BleProtocol::BloodPressure => sig_uuid(0x1810),
            BleProtocol::HeartRate => sig_uuid(0x180D),
            BleProtocol::Berrymed => berrymed::SERVICE,
            BleProtocol::Jumper => jumper::SERVICE,
            BleProtocol::O2ring => o2ring::SERVICE,
        }
    }
}

impl BleProtocol {
    /// What the driver subscribes to, reads and polls, with fresh decoders.
    pub fn plan(self) -> Plan {
        use GattCharacteristic as G;
        match self {
            BleProtocol::PulseOximeter => Plan {
                // A PLX device offers continuous, spot-check or both.
                channels: vec![
                    gatt_channel(G::PlxContinuous, false),
                    gatt_channel(G::PlxSpotCheck, false),
                ],
                features: Some(G::PlxFeatures.uuid()),
                poll: None,
            },
            BleProtocol::BloodPressure => Plan {
                channels: vec![
                    gatt_channel(G::BloodPressureMeasurement, true),
                    // Cuff pressure while inflating: no vital, but it shows the link is alive.
                    gatt_channel(G::IntermediateCuffPressure, false),
                ],
                features: None,
                poll: None,
            },
            BleProtocol::HeartRate => Plan {
                channels: vec![gatt_channel(G::HeartRateMeasurement, true)],
                features: None,
                poll: None,
            },
            BleProtocol::Berrymed => stream_plan(berrymed::NOTIFY, berrymed::decoder(), None),
            BleProtocol::Jumper => stream_plan(jumper::NOTIFY, jumper::decoder(), None),
            BleProtocol::O2ring => stream_plan(
                o2ring::NOTIFY,
                o2ring::decoder(),
                Some(Poll {
                    characteristic: o2ring::WRITE,
                    bytes: o2ring::request(o2ring::READ_SENSORS, 0, &[]),
                    every: o2ring::POLL_EVERY,
                }),
            ),
        }
    }
}

fn gatt_channel(characteristic: GattCharacteristic, required: bool) -> Channel {
    Channel {
        characteristic: characteristic.uuid(),
        required,
        decoder: Box::new(GattChannel {
            characteristic,
            features: None,
        }),
    }
}

fn stream_plan(characteristic: Uuid, decoder: Box<dyn Decoder>, poll: Option<Poll>) -> Plan {
    Plan {
        channels: vec![Channel {
            characteristic,
            required: true,
            decoder: Box::new(StreamChannel(decoder)),
        }],
        features: None,
        poll,
    }
}

/// A SIG characteristic: each notification is one whole message.
pub struct GattChannel {
    characteristic: GattCharacteristic,
    /// PLX: the status bits the device supports, once read.
    features: Option<PlxFeatures>,
}

impl GattChannel {
    pub fn new(characteristic: GattCharacteristic) -> Self {
        GattChannel {
            characteristic,
            features: None,
        }
    }
}

impl PayloadDecoder for GattChannel {
    fn payload(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        match gatt::decode(self.characteristic, bytes, self.features.as_ref()) {
            Ok(GattValue::Sample(sample)) => out.push(Decoded::Sample(sample)),
            // Cuff pressure, features, battery: no vital to report.
            Ok(_) => {}
            Err(error) => out.push(Decoded::Error(error)),
        }
    }

    fn features(&mut self, bytes: &[u8]) {
        if let Ok(GattValue::PlxFeatures(features)) =
            gatt::decode(GattCharacteristic::PlxFeatures, bytes, None)
        {
            self.features = Some(features);
        }
    }
}

/// A vendor "serial over BLE" characteristic: notifications are pieces of a byte stream.
pub struct StreamChannel(pub Box<dyn Decoder>);

impl PayloadDecoder for StreamChannel {
    fn payload(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        self.0.feed(bytes, out);
    }
}
