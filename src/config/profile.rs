//! Device profiles: one data file per device model in `device-profiles/`, built into the binary.
//!
//! A profile says which vitals a device reports, how often, when its silence becomes a
//! technical alarm, and how to reach it: a `[simulator]` or `[serial]` table (line settings,
//! protocol, commands, USB ids). Each file opens with a comment block: what device, how to put
//! it in the right output mode, where its format is documented.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::source::{ConfigErrors, Source};
use crate::acquire::ble::protocol::BleProtocol;
use crate::acquire::decode::{Protocol, decoder};
use crate::acquire::scenario::Role;
use crate::vitals::Vital;

/// The profiles shipped in `device-profiles/`.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "nonin-df8",
        include_str!("../../device-profiles/nonin-df8.toml"),
    ),
    (
        "nonin-df2",
        include_str!("../../device-profiles/nonin-df2.toml"),
    ),
    (
        "nonin-df7",
        include_str!("../../device-profiles/nonin-df7.toml"),
    ),
    (
        "nonin-7500fo-ascii",
        include_str!("../../device-profiles/nonin-7500fo-ascii.toml"),
    ),
    (
        "contec-cms50d-legacy",
        include_str!("../../device-profiles/contec-cms50d-legacy.toml"),
    ),
    (
        "contec-cms50d-v7",
        include_str!("../../device-profiles/contec-cms50d-v7.toml"),
    ),
    (
        "masimo-rad8-ascii1",
        include_str!("../../device-profiles/masimo-rad8-ascii1.toml"),
    ),
    (
        "generic-line-bp",
        include_str!("../../device-profiles/generic-line-bp.toml"),
    ),
    (
        "ble-pulse-oximeter",
        include_str!("../../device-profiles/ble-pulse-oximeter.toml"),
    ),
    (
        "ble-blood-pressure",
        include_str!("../../device-profiles/ble-blood-pressure.toml"),
    ),
    (
        "ble-heart-rate",
        include_str!("../../device-profiles/ble-heart-rate.toml"),
    ),
    (
        "berrymed-bm1000",
        include_str!("../../device-profiles/berrymed-bm1000.toml"),
    ),
    (
        "jumper-jpd500f",
        include_str!("../../device-profiles/jumper-jpd500f.toml"),
    ),
    (
        "wellue-o2ring",
        include_str!("../../device-profiles/wellue-o2ring.toml"),
    ),
    (
        "simulated-oximeter",
        include_str!("../../device-profiles/simulated-oximeter.toml"),
    ),
    (
        "simulated-bp-cuff",
        include_str!("../../device-profiles/simulated-bp-cuff.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorProfile {
    pub role: Role,
}

/// Parity, as written in profiles and configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

/// Flow control, as written in profiles and configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// Serial line settings; every field may be overridden per device in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineOverride {
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<Parity>,
    pub stop_bits: Option<u8>,
    pub flow_control: Option<FlowControl>,
}

/// The line settings a port is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
}

impl LineSettings {
    /// These settings with `changes` applied, or what is wrong with the result.
    pub fn with(self, changes: &LineOverride) -> Result<Self, String> {
        let settings = LineSettings {
            baud: changes.baud.unwrap_or(self.baud),
            data_bits: changes.data_bits.unwrap_or(self.data_bits),
            parity: changes.parity.unwrap_or(self.parity),
            stop_bits: changes.stop_bits.unwrap_or(self.stop_bits),
            flow_control: changes.flow_control.unwrap_or(self.flow_control),
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if !(50..=4_000_000).contains(&self.baud) {
            return Err(format!("baud {} is not a serial speed", self.baud));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(format!("data_bits must be 5 to 8, got {}", self.data_bits));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(format!("stop_bits must be 1 or 2, got {}", self.stop_bits));
        }
        Ok(())
    }
}

/// Bytes written as hex in a profile, for example `"02 70 02 02 08 03"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl HexBytes {
    /// Bytes written as hex pairs, with or without spaces: `"02 70 03"`, `"027003"`.
    pub fn parse(text: &str) -> Result<Vec<u8>, String> {
        let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(format!(
                "`{text}` has an odd number of hex digits (write bytes as hex pairs, like \"02 70 03\")"
            ));
        }
        digits
            .chunks(2)
            .map(|pair| {
                let pair: String = pair.iter().collect();
                u8::from_str_radix(&pair, 16).map_err(|_| {
                    format!(
                        "`{pair}` is not a hex byte (write bytes as hex pairs, like \"02 70 03\")"
                    )
                })
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HexBytes::parse(&text)
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepAlive {
    pub every_s: f64,
    pub bytes: HexBytes,
}

/// A USB adapter's vendor and product id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialFile {
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_bits: u8,
    flow_control: FlowControl,
    protocol: Protocol,
    #[serde(default)]
    on_connect: Vec<HexBytes>,
    keep_alive: Option<KeepAlive>,
    #[serde(default)]
    usb: Vec<UsbId>,
}

/// How a serial device is reached and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialProfile {
    pub line: LineSettings,
    pub protocol: Protocol,
    /// Sent once on every connection.
    pub on_connect: Vec<Vec<u8>>,
    /// Sent periodically while connected.
    pub keep_alive: Option<(Duration, Vec<u8>)>,
    /// USB adapters known to carry this device (for `vitalwatch devices`).
    pub usb: Vec<UsbId>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    description: String,
    vitals: Vec<Vital>,
    interval_s: f64,
    silent_after_s: Option<f64>,
    simulator: Option<toml::Spanned<SimulatorProfile>>,
    serial: Option<toml::Spanned<SerialFile>>,
    ble: Option<toml::Spanned<BleProfile>>,
}

/// How a Bluetooth LE device is reached and decoded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleProfile {
    pub protocol: BleProtocol,
    /// Names the model advertises (for `vitalwatch devices --ble`); a device is still
    /// configured by its address, so a neighbouring chair's device is never taken.
    #[serde(default)]
    pub names: Vec<String>,
    /// The device connects only to send a measurement (most BLE cuffs): between connections
    /// it is idle, and its silence is judged by the BP schedule.
    #[serde(default)]
    pub connects_per_measurement: bool,
}

/// How a profile's devices are reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Simulator(SimulatorProfile),
    Serial(SerialProfile),
    Ble(BleProfile),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub vitals: Vec<Vital>,
    /// How often the device reports.
    pub interval: Duration,
    /// Silence longer than this raises the device-silent technical alarm; `None` for
    /// intermittent devices (a cuff), whose silence is BP overdue instead.
    pub silent_after: Option<Duration>,
    pub transport: Transport,
}

impl Profile {
    pub fn parse(source: &Source) -> Result<Self, ConfigErrors> {
        let file: ProfileFile = source.parse()?;
        let whole = 0..source.text.len();
        let mut errors = Vec::new();
        for (key, value) in [
            ("interval_s", Some(file.interval_s)),
            ("silent_after_s", file.silent_after_s),
        ] {
            let Some(value) = value else { continue };
            if !(value.is_finite() && value > 0.0) {
                errors.push(source.error_at_key(
                    whole.clone(),
                    key,
                    format!("{key} must be > 0 seconds"),
                ));
            }
        }
        let tables: Vec<Range<usize>> = [
            file.simulator.as_ref().map(toml::Spanned::span),
            file.serial.as_ref().map(toml::Spanned::span),
            file.ble.as_ref().map(toml::Spanned::span),
        ]
        .into_iter()
        .flatten()
        .collect();
        let transport = match (file.simulator, file.serial, file.ble) {
            (Some(simulator), None, None) => Some(Transport::Simulator(simulator.into_inner())),
            (None, None, Some(ble)) => Some(Transport::Ble(ble.into_inner())),
            (None, Some(serial), None) => match serial_profile(serial.into_inner()) {
                Ok(serial) => Some(Transport::Serial(serial)),
                Err((key, message)) => {
                    errors.push(source.error_at_key(whole.clone(), key, message));
                    None
                }
            },
            _ => {
                const EXACTLY_ONE: &str =
                    "a profile needs exactly one transport table: [simulator], [serial] or [ble]";
                // At the second table when there are several; at the file's start when none
                // (no key: the line there is about something else).
                let mut error = match tables.get(1) {
                    Some(second) => {
                        source.error_at(second.clone(), format!("{EXACTLY_ONE}; this is another"))
                    }
                    None => source.error_at(whole.clone(), format!("{EXACTLY_ONE}; it has none")),
                };
                error.key = None;
                errors.push(error);
                None
            }
        };
        match transport {
            Some(transport) if errors.is_empty() => Ok(Profile {
                name: file.name,
                description: file.description,
                vitals: file.vitals,
                interval: Duration::from_secs_f64(file.interval_s),
                silent_after: file.silent_after_s.map(Duration::from_secs_f64),
                transport,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The serial settings, for a serial device.
    pub fn serial(&self) -> Option<&SerialProfile> {
        match &self.transport {
            Transport::Serial(serial) => Some(serial),
            Transport::Simulator(_) | Transport::Ble(_) => None,
        }
    }

    /// The Bluetooth LE settings, for a BLE device.
    pub fn ble(&self) -> Option<&BleProfile> {
        match &self.transport {
            Transport::Ble(ble) => Some(ble),
            Transport::Simulator(_) | Transport::Serial(_) => None,
        }
    }

    /// Every built-in profile, for listing and matching.
    pub fn all_built_in() -> impl Iterator<Item = Result<Self, ConfigErrors>> {
        Profile::built_in_names().filter_map(Profile::built_in)
    }

    /// The built-in profile called `name`.
    pub fn built_in(name: &str) -> Option<Result<Self, ConfigErrors>> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            Profile::parse(&Source::built_in(
                &format!("device-profiles/{n}.toml"),
                text,
            ))
        })
    }

    /// The profile called `name`: the clinic's own file `dir/NAME.toml` if there is one, else
    /// the built-in profile of that name.
    pub fn find(name: &str, dir: Option<&Path>) -> Option<Result<Self, ConfigErrors>> {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if let Some(dir) = dir.filter(|_| valid_name) {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                return Some(
                    Source::read(&path)
                        .map_err(ConfigErrors::from)
                        .and_then(|source| {
                            let profile = Profile::parse(&source)?;
                            if profile.name != name {
                                let message = format!(
                                    "the profile in {name}.toml must be named `{name}`, not `{}`",
                                    profile.name
                                );
                                return Err(source
                                    .error_at_key(0..source.text.len(), "name", message)
                                    .into());
                            }
                            Ok(profile)
                        }),
                );
            }
        }
        Profile::built_in(name)
    }

    /// The names of the profiles in `dir` (its `*.toml` files), sorted.
    pub fn names_in(dir: Option<&Path>) -> Vec<String> {
        let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                (path.extension()? == "toml")
                    .then(|| path.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        names.sort();
        names
    }

    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }
}

/// Checks a `[serial]` table; an error names its key.
fn serial_profile(file: SerialFile) -> Result<SerialProfile, (&'static str, String)> {
    let line = LineSettings {
        baud: file.baud,
        data_bits: file.data_bits,
        parity: file.parity,
        stop_bits: file.stop_bits,
        flow_control: file.flow_control,
    };
    line.check().map_err(|message| ("baud", message))?;
    // A pattern that does not compile is this profile's error, found now, not at connection.
    decoder(&file.protocol).map_err(|e| ("protocol", e.to_string()))?;
    let keep_alive = match file.keep_alive {
        None => None,
        Some(keep_alive) if keep_alive.every_s.is_finite() && keep_alive.every_s > 0.0 => Some((
            Duration::from_secs_f64(keep_alive.every_s),
            keep_alive.bytes.0,
        )),
        Some(_) => {
            return Err((
                "keep_alive",
                "keep_alive.every_s must be > 0 seconds".into(),
            ));
        }
    };
    Ok(SerialProfile {
        line,
        protocol: file.protocol,
        on_connect: file.on_connect.into_iter().map(|bytes| bytes.0).collect(),
        keep_alive,
        usb: file.usb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_loads_under_its_own_name() {
        for name in Profile::built_in_names() {
            let profile = Profile::built_in(name).unwrap().unwrap();
            assert_eq!(profile.name, name);
            assert!(!profile.vitals.is_empty());
        }
    }

    #[test]
    fn a_profile_without_transport_is_refused() {
        let errors = Profile::parse(&Source::built_in(
            "p",
            "name = \"x\"\ndescription = \"x\"\nvitals = [\"spo2\"]\ninterval_s = 1\nsilent_after_s = 0\n",
        ))
        .unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert_eq!(errors.0[0].line, Some(5));
        // The file's start, without the key written there (`name` is not at fault).
        assert_eq!(
            (errors.0[1].line, errors.0[1].key.as_deref()),
            (Some(1), None)
        );
        assert!(errors.0[1].message.contains("it has none"), "{errors}");
    }

    #[test]
    fn a_profile_with_two_transports_is_refused_at_the_second() {
        let errors = Profile::parse(&Source::built_in(
            "p",
            "name = \"x\"\ndescription = \"x\"\nvitals = [\"spo2\"]\ninterval_s = 1\n\n[simulator]\nrole = \"oximeter\"\n\n[ble]\nprotocol = { family = \"pulse_oximeter\" }\n",
        ))
        .unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(
            (errors.0[0].line, errors.0[0].key.as_deref()),
            (Some(9), None),
            "{errors}"
        );
        assert!(
            errors.0[0].message.contains("exactly one transport table"),
            "{errors}"
        );
    }
}
