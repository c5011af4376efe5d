//! Command-line tools that work without the daemon: decode a raw capture or BLE payloads with
//! the daemon's decoders, list the serial ports or BLE devices and the profiles that match them.
//!
//! They use the daemon's own decoders and profiles, so what `decode` prints is what the daemon
//! would have read from the device.

use std::io::{self, Read, Write};

use serde::Serialize;

use crate::acquire::ble::driver::PayloadDecoder;
use crate::acquire::ble::{Advertisement, Uuid, sig_uuid};
use crate::acquire::decode::gatt::{self, GattCharacteristic, GattValue};
use crate::acquire::decode::{Decoded, Protocol, decoder};
use crate::acquire::serial::{PortInfo, PortListError, available_ports};
use crate::config::Profile;
use crate::vitals::{Quality, Vital};

/// One JSON line of `vitalwatch decode` per reading.
#[derive(Serialize)]
struct DecodedReading {
    device_time: Option<chrono::DateTime<chrono::Utc>>,
    vital: Vital,
    value: Option<f64>,
    unit: &'static str,
    quality: Quality,
}

/// The closing line of `vitalwatch decode`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DecodeSummary {
    pub bytes: u64,
    /// Frames, packets or lines that decoded into a sample.
    pub frames: u64,
    pub readings: u64,
    pub decode_errors: u64,
    pub skipped_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeToolError {
    #[error("cannot read the capture: {0}")]
    Read(io::Error),
    #[error("cannot write: {0}")]
    Write(io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// Prints what a decoder makes of its input: one JSON line per reading on `output`, one
/// human line per decode error on `errors`, and counts them.
struct DecodePrinter<W, E> {
    output: W,
    errors: E,
    summary: DecodeSummary,
}

impl<W: Write, E: Write> DecodePrinter<W, E> {
    fn new(output: W, errors: E) -> Self {
        DecodePrinter {
            output,
            errors,
            summary: DecodeSummary::default(),
        }
    }

    fn print(&mut self, item: Decoded) -> Result<(), DecodeToolError> {
        match item {
            Decoded::Sample(sample) => {
                self.summary.frames += 1;
                for (vital, value) in &sample.values {
                    self.summary.readings += 1;
                    let line = DecodedReading {
                        device_time: sample.device_time,
                        vital: *vital,
                        value: *value,
                        unit: vital.unit(),
                        quality: sample.quality,
                    };
                    write_json_line(&mut self.output, &line)?;
                }
            }
            Decoded::Error(error) => {
                self.summary.decode_errors += 1;
                self.summary.skipped_bytes += error.skipped as u64;
                writeln!(
                    self.errors,
                    "decode error ({}), {} byte(s) skipped: {}",
                    error.kind.as_str(),
                    error.skipped,
                    error.detail
                )
                .map_err(DecodeToolError::Write)?;
            }
        }
        Ok(())
    }

    /// The closing summary line.
    fn finish(mut self) -> Result<DecodeSummary, DecodeToolError> {
        write_json_line(
            &mut self.output,
            &serde_json::json!({ "summary": self.summary }),
        )?;
        Ok(self.summary)
    }
}

/// Decodes everything `input` holds: one JSON line per reading on `output`, one human line per
/// decode error on `errors`, then the summary as a JSON line on `output`.
pub fn decode_capture(
    protocol: &Protocol,
    mut input: impl Read,
    output: impl Write,
    errors: impl Write,
) -> Result<DecodeSummary, DecodeToolError> {
    let mut decoder = decoder(protocol).map_err(|e| DecodeToolError::Protocol(e.to_string()))?;
    let mut printer = DecodePrinter::new(output, errors);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut decoded = Vec::new();
    loop {
        let count = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeToolError::Read(e)),
        };
        printer.summary.bytes += count as u64;
        decoder.feed(&buffer[..count], &mut decoded);
        for item in decoded.drain(..) {
            printer.print(item)?;
        }
    }
    printer.finish()
}

/// Which BLE decoder `vitalwatch decode` uses for GATT payloads.
pub enum PayloadSource<'a> {
    /// A Bluetooth SIG characteristic, decoded by the daemon's GATT decoder.
    Characteristic(GattCharacteristic),
    /// The channel of a BLE profile (vendor protocols, or a GATT profile's characteristic).
    Channel(&'a mut dyn PayloadDecoder),
}

/// Decodes BLE payloads (each one notification, in order) the way the daemon does: readings as
/// JSON lines like [`decode_capture`]; a SIG characteristic that carries no vital (features,
/// battery, cuff pressure while inflating) as one JSON line of its value.
pub fn decode_payloads(
    source: PayloadSource<'_>,
    payloads: &[Vec<u8>],
    output: impl Write,
    errors: impl Write,
) -> Result<DecodeSummary, DecodeToolError> {
    let mut printer = DecodePrinter::new(output, errors);
    let mut decoded = Vec::new();
    match source {
        PayloadSource::Characteristic(characteristic) => {
            for payload in payloads {
                printer.summary.bytes += payload.len() as u64;
                let value = match gatt::decode(characteristic, payload, None) {
                    Ok(GattValue::Sample(sample)) => {
                        printer.print(Decoded::Sample(sample))?;
                        continue;
                    }
                    Err(error) => {
                        printer.print(Decoded::Error(error))?;
                        continue;
                    }
                    Ok(GattValue::CuffPressure { mmhg }) => {
                        serde_json::json!({ "cuff_pressure_mmhg": mmhg })
                    }
                    Ok(GattValue::Battery(percent)) => {
                        serde_json::json!({ "battery_percent": percent })
                    }
                    Ok(GattValue::BloodPressureFeature(bits)) => {
                        serde_json::json!({ "blood_pressure_feature": format!("{bits:#06x}") })
                    }
                    Ok(GattValue::PlxFeatures(features)) => {
                        serde_json::json!({ "plx_features": format!("{features:?}") })
                    }
                };
                printer.summary.frames += 1;
                write_json_line(&mut printer.output, &value)?;
            }
        }
        PayloadSource::Channel(decoder) => {
            for payload in payloads {
                printer.summary.bytes += payload.len() as u64;
                decoder.payload(payload, &mut decoded);
                for item in decoded.drain(..) {
                    printer.print(item)?;
                }
            }
        }
    }
    printer.finish()
}

/// A characteristic written as a full UUID, or as its 16-bit SIG number (`2a5f`, `0x2A5F`).
pub fn parse_characteristic(text: &str) -> Result<Uuid, String> {
    let short = text
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X");
    if short.len() == 4
        && let Ok(number) = u16::from_str_radix(short, 16)
    {
        return Ok(sig_uuid(number));
    }
    Uuid::parse_str(text.trim())
        .map_err(|_| format!("`{text}` is not a characteristic (write `2a5f` or a full UUID)"))
}

/// A device seen in a BLE scan, with the profiles it may be.
pub struct BleMatch {
    pub advertisement: Advertisement,
    pub profiles: Vec<String>,
}

/// The devices `advertisements` describe, each with the BLE profiles whose service it
/// advertises or whose advertised name it starts with, nearest (strongest signal) first.
pub fn match_advertisements(
    advertisements: Vec<Advertisement>,
    profiles: &[Profile],
) -> Vec<BleMatch> {
    let mut matches: Vec<BleMatch> = advertisements
        .into_iter()
        .map(|advertisement| {
            let profiles = profiles
                .iter()
                .filter(|profile| {
                    profile.ble().is_some_and(|ble| {
                        advertisement.services.contains(&ble.protocol.service())
                            || advertisement.name.as_deref().is_some_and(|name| {
                                ble.names
                                    .iter()
                                    .any(|prefix| name.starts_with(prefix.as_str()))
                            })
                    })
                })
                .map(|profile| profile.name.clone())
                .collect();
            BleMatch {
                advertisement,
                profiles,
            }
        })
        .collect();
    matches.sort_by_key(|m| std::cmp::Reverse(m.advertisement.rssi.unwrap_or(i16::MIN)));
    matches
}

fn write_json_line(output: &mut impl Write, value: &impl Serialize) -> Result<(), DecodeToolError> {
    let line =
        serde_json::to_string(value).map_err(|e| DecodeToolError::Write(io::Error::other(e)))?;
    writeln!(output, "{line}").map_err(DecodeToolError::Write)
}

/// A serial port and the profiles whose USB ids match it.
pub struct PortMatch {
    pub port: PortInfo,
    pub profiles: Vec<String>,
}

/// The serial ports, each with the profiles (from `profiles`) that name its USB id.
pub fn match_ports(profiles: &[Profile]) -> Result<Vec<PortMatch>, PortListError> {
    Ok(available_ports()?
        .into_iter()
        .map(|port| {
            let profiles = profiles
                .iter()
                .filter(|profile| {
                    let usb = profile
                        .serial()
                        .map(|s| s.usb.as_slice())
                        .unwrap_or_default();
                    port.usb.is_some_and(|(vid, pid)| {
                        usb.iter().any(|id| id.vid == vid && id.pid == pid)
                    })
                })
                .map(|profile| profile.name.clone())
                .collect();
            PortMatch { port, profiles }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquire::decode::nonin;

    #[test]
    fn a_capture_decodes_to_json_lines_and_a_summary() {
        // Two DF8 frames (HR 72 SpO2 97; missing values with the sensor alarm) with garbage.
        let capture = [0x80, 0x48, 0x61, 0x00, 0x7F, 0x7F, 0x83, 0x7F, 0x7F, 0x08];
        let protocol = Protocol::Nonin {
            format: nonin::Format::Df8,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = decode_capture(&protocol, &capture[..], &mut out, &mut err).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(summary.frames, 2);
        assert_eq!(summary.readings, 4);
        assert_eq!(
            summary.decode_errors,
            1,
            "{}",
            String::from_utf8_lossy(&err)
        );
        assert_eq!(summary.skipped_bytes, 2);
        assert_eq!(lines.len(), 5);
        let spo2 = lines.iter().find(|l| l["vital"] == "spo2").unwrap();
        assert_eq!(
            (spo2["value"].as_f64(), spo2["unit"].as_str()),
            (Some(97.0), Some("%"))
        );
        assert_eq!(lines[4]["summary"]["readings"], 4);
        assert!(
            lines
                .iter()
                .any(|l| l["vital"] == "spo2" && l["value"].is_null())
        );
    }
}
