//! Command-line tools that work without the daemon: decode a raw capture with a device
//! profile's decoder, list the serial ports and the profiles that match them.
//!
//! They use the daemon's own decoders and profiles, so what `decode` prints is what the daemon
//! would have read from the device.

use std::io::{self, Read, Write};

use serde::Serialize;

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

/// Decodes everything `input` holds: one JSON line per reading on `output`, one human line per
/// decode error on `errors`, then the summary as a JSON line on `output`.
pub fn decode_capture(
    protocol: &Protocol,
    mut input: impl Read,
    mut output: impl Write,
    mut errors: impl Write,
) -> Result<DecodeSummary, DecodeToolError> {
    let mut decoder = decoder(protocol).map_err(|e| DecodeToolError::Protocol(e.to_string()))?;
    let mut summary = DecodeSummary::default();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut decoded = Vec::new();
    loop {
        let count = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeToolError::Read(e)),
        };
        summary.bytes += count as u64;
        decoder.feed(&buffer[..count], &mut decoded);
        for item in decoded.drain(..) {
            match item {
                Decoded::Sample(sample) => {
                    summary.frames += 1;
                    for (vital, value) in &sample.values {
                        summary.readings += 1;
                        let line = DecodedReading {
                            device_time: sample.device_time,
                            vital: *vital,
                            value: *value,
                            unit: vital.unit(),
                            quality: sample.quality,
                        };
                        write_json_line(&mut output, &line)?;
                    }
                }
                Decoded::Error(error) => {
                    summary.decode_errors += 1;
                    summary.skipped_bytes += error.skipped as u64;
                    writeln!(
                        errors,
                        "decode error ({}), {} byte(s) skipped: {}",
                        error.kind.as_str(),
                        error.skipped,
                        error.detail
                    )
                    .map_err(DecodeToolError::Write)?;
                }
            }
        }
    }
    write_json_line(&mut output, &serde_json::json!({ "summary": summary }))?;
    Ok(summary)
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
