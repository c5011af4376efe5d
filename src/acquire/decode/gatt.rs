//! Bluetooth SIG GATT characteristics: Blood Pressure (service 0x1810), Pulse Oximeter
//! (0x1822), Heart Rate (0x180D) and Battery Level. See protocols.md §1–4 and §9.
//!
//! For turning one characteristic value (a notification, an indication or a read) into a typed
//! struct ([`blood_pressure`], [`plx_continuous`], [`plx_spot_check`], [`plx_features`],
//! [`blood_pressure_feature`], [`heart_rate`], [`battery_level`]) and into what the daemon uses
//! ([`decode`]). Not for I/O or for the order of reads and subscriptions: the BLE driver reads
//! PLX Features once per connection and passes them to every [`decode`] of that device. A GATT
//! value is one whole message, not a byte stream, so these are functions of one payload, not
//! [`Decoder`](super::Decoder)s.
//!
//! Every length is checked before a field is read: a payload shorter than its flags promise is
//! an error that says so, never a panic. Bytes after the last field the flags promise, and flag
//! bits reserved for future use, are ignored (later versions of the specifications append
//! fields). SFLOAT's five special values are never numbers: in a vital's field they make that
//! vital `None` (unavailable), and the vital is still listed. Date Time fields are read as UTC
//! (they carry no zone); a year, month or day of 0 (unknown) or a date that does not exist
//! leaves the time empty. Pressures sent in kPa are converted to mmHg.
//!
//! Status bits → [`Quality`]:
//! - Blood pressure measurement status: body movement, cuff too loose and improper measurement
//!   position → ARTEFACT (the pressures themselves are suspect). Irregular pulse and pulse rate
//!   out of range set nothing: they are findings about the patient, not faults of the
//!   measurement ([`BpmStatus`] keeps them).
//! - PLX measurement status: invalid measurement → ARTEFACT, values withheld; questionable →
//!   ARTEFACT; measurement unavailable → SEARCHING, values withheld; calibration ongoing →
//!   SEARCHING; demonstration or testing data → ARTEFACT (never to count as the patient's).
//!   From storage, ongoing, early estimate, validated and fully qualified set nothing (the
//!   spot-check timestamp says when a stored reading was taken).
//! - PLX device and sensor status: sensor disconnected, unconnected to user or displaced →
//!   SENSOR_OFF, values withheld (whatever numbers came are not the patient's); low perfusion →
//!   LOW_PERFUSION; equipment malfunction, signal processing irregularity, inadequate, poor,
//!   erratic or non-pulsatile signal, questionable pulse, interference, unknown sensor and
//!   sensor malfunctioning → ARTEFACT. Extended display update and signal analysis ongoing set
//!   nothing.
//! - A PLX status bit counts only when the flags say its field is present and, when PLX Features
//!   are given, the features say the device supports that bit (pitfall 3: an unsupported bit
//!   means nothing). Without features, the bits are trusted.
//! - Heart rate: sensor contact supported but not detected → SENSOR_OFF, no value (a strap off
//!   the skin counts noise).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use super::framing::implausible;
use super::{DecodeError, DecodeErrorKind, Sample};
use crate::acquire::ble::{Uuid, sig_uuid};
use crate::vitals::{Quality, Vital};

/// An IEEE-11073-20601 16-bit SFLOAT: a number, or one of the five special values, which are
/// never numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SFloat {
    Number(f64),
    NaN,
    /// "Not at this resolution".
    NRes,
    PositiveInfinity,
    NegativeInfinity,
    /// Reserved for future use.
    Reserved,
}

impl SFloat {
    /// The value, or `None` for every special value.
    pub fn number(self) -> Option<f64> {
        match self {
            SFloat::Number(value) => Some(value),
            _ => None,
        }
    }
}

/// 10⁰ to 10⁸, each exact in an `f64`, so that scaling by one rounds only once: `65 F0` is
/// exactly the `f64` nearest 10.1, as the literal `10.1` is.
const POWERS_OF_TEN: [f64; 9] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// Decodes an SFLOAT sent little-endian: a 12-bit two's-complement mantissa and a 4-bit
/// two's-complement base-10 exponent (the high nibble), value = mantissa × 10^exponent.
pub fn sfloat(bytes: [u8; 2]) -> SFloat {
    let raw = u16::from_le_bytes(bytes);
    match raw {
        0x07FF => SFloat::NaN,
        0x0800 => SFloat::NRes,
        0x07FE => SFloat::PositiveInfinity,
        0x0802 => SFloat::NegativeInfinity,
        0x0801 => SFloat::Reserved,
        _ => {
            // Arithmetic shifts extend the signs: the mantissa moved to the top of an i16 and
            // back, the exponent taken from the top. The exponent is thus within −8..=7.
            let mantissa = f64::from(((raw << 4) as i16) >> 4);
            let exponent = (raw as i16) >> 12;
            let power = POWERS_OF_TEN[usize::from(exponent.unsigned_abs())];
            // Dividing by 10^k (not multiplying by 10^-k, which is inexact) makes 189e-1 the
            // same f64 as 18.9.
            SFloat::Number(if exponent < 0 {
                mantissa / power
            } else {
                mantissa * power
            })
        }
    }
}

/// The characteristics decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GattCharacteristic {
    /// 0x2A35, indicated.
    BloodPressureMeasurement,
    /// 0x2A36, notified while the cuff inflates: the cuff pressure, not a reading.
    IntermediateCuffPressure,
    /// 0x2A49, read.
    BloodPressureFeature,
    /// 0x2A5E, indicated.
    PlxSpotCheck,
    /// 0x2A5F, notified.
    PlxContinuous,
    /// 0x2A60, read.
    PlxFeatures,
    /// 0x2A37, notified.
    HeartRateMeasurement,
    /// 0x2A19, read or notified.
    BatteryLevel,
}

impl GattCharacteristic {
    pub const ALL: [GattCharacteristic; 8] = [
        GattCharacteristic::BloodPressureMeasurement,
        GattCharacteristic::IntermediateCuffPressure,
        GattCharacteristic::BloodPressureFeature,
        GattCharacteristic::PlxSpotCheck,
        GattCharacteristic::PlxContinuous,
        GattCharacteristic::PlxFeatures,
        GattCharacteristic::HeartRateMeasurement,
        GattCharacteristic::BatteryLevel,
    ];

    /// The 16-bit number the Bluetooth SIG assigned.
    pub const fn assigned_number(self) -> u16 {
        match self {
            GattCharacteristic::BloodPressureMeasurement => 0x2A35,
            GattCharacteristic::IntermediateCuffPressure => 0x2A36,
            GattCharacteristic::BloodPressureFeature => 0x2A49,
            GattCharacteristic::PlxSpotCheck => 0x2A5E,
            GattCharacteristic::PlxContinuous => 0x2A5F,
            GattCharacteristic::PlxFeatures => 0x2A60,
            GattCharacteristic::HeartRateMeasurement => 0x2A37,
            GattCharacteristic::BatteryLevel => 0x2A19,
        }
    }

    pub const fn uuid(self) -> Uuid {
        sig_uuid(self.assigned_number())
    }

    pub fn from_uuid(uuid: Uuid) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.uuid() == uuid)
    }

    /// The name used in logs and error messages (the GATT specification's, in snake case).
    pub fn name(self) -> &'static str {
        match self {
            GattCharacteristic::BloodPressureMeasurement => "blood_pressure_measurement",
            GattCharacteristic::IntermediateCuffPressure => "intermediate_cuff_pressure",
            GattCharacteristic::BloodPressureFeature => "blood_pressure_feature",
            GattCharacteristic::PlxSpotCheck => "plx_spot_check_measurement",
            GattCharacteristic::PlxContinuous => "plx_continuous_measurement",
            GattCharacteristic::PlxFeatures => "plx_features",
            GattCharacteristic::HeartRateMeasurement => "heart_rate_measurement",
            GattCharacteristic::BatteryLevel => "battery_level",
        }
    }
}

impl fmt::Display for GattCharacteristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A payload that does not have its characteristic's format (too short for what its flags
/// promise, or a field outside its defined range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{characteristic}: {detail}")]
pub struct GattError {
    pub characteristic: GattCharacteristic,
    /// For a technician's log, such as "flags 0x1c need 12 bytes, got 11".
    pub detail: String,
}

impl GattError {
    fn new(characteristic: GattCharacteristic, detail: String) -> Self {
        GattError {
            characteristic,
            detail,
        }
    }

    /// `what` (the flags, say) promise `need` bytes; the payload has `got`.
    fn short(
        characteristic: GattCharacteristic,
        what: fmt::Arguments<'_>,
        need: usize,
        got: usize,
    ) -> Self {
        Self::new(
            characteristic,
            format!("{what} need {need} bytes, got {got}"),
        )
    }

    fn empty(characteristic: GattCharacteristic) -> Self {
        Self::new(characteristic, "empty payload, no flags byte".into())
    }
}

/// A payload's fields, read front to back. The parsers check the whole length their flags
/// promise before reading; a read past the end still returns `None`, never panics.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes }
    }
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u24(&mut self) -> Option<u32> {
        self.take::<3>()
            .map(|[a, b, c]| u32::from_le_bytes([a, b, c, 0]))
    }
    fn sfloat(&mut self) -> Option<SFloat> {
        self.take().map(sfloat)
    }
    fn date_time(&mut self) -> Option<Option<DateTime<Utc>>> {
        self.take().map(date_time)
    }
}

/// The flags byte and the fields after it.
fn flags_and_fields(
    characteristic: GattCharacteristic,
    bytes: &[u8],
) -> Result<(u8, Fields<'_>), GattError> {
    match bytes.split_first() {
        Some((&flags, rest)) => Ok((flags, Fields::new(rest))),
        None => Err(GattError::empty(characteristic)),
    }
}

/// The payload length `flags` promise: `base` plus the size of each field whose flag is set.
fn promised_len(flags: u8, base: usize, optional: &[(u8, usize)]) -> usize {
    base + optional
        .iter()
        .filter(|(flag, _)| flags & flag != 0)
        .map(|(_, size)| size)
        .sum::<usize>()
}

/// A GATT Date Time (year u16, month, day, hours, minutes, seconds), read as UTC. Year, month
/// or day 0 means unknown [GATT-XML date_time]; years outside 1582–9999 and dates or times that
/// do not exist are treated the same way.
fn date_time(bytes: [u8; 7]) -> Option<DateTime<Utc>> {
    let [year_lo, year_hi, month, day, hours, minutes, seconds] = bytes;
    let year = u16::from_le_bytes([year_lo, year_hi]);
    if !(1582..=9999).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))?
        .and_hms_opt(u32::from(hours), u32::from(minutes), u32::from(seconds))
        .map(|time| time.and_utc())
}

// ---------------------------------------------------------------------------------------------
// Blood pressure: 0x2A35, 0x2A36, 0x2A49

/// kPa per mmHg: kPa = mmHg × this [NRF-COMMON `BloodPressureTypes`].
pub const KPA_PER_MMHG: f64 = 0.133322387415;

/// The unit a blood pressure device sent (flags bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureUnit {
    Mmhg,
    Kpa,
}

/// A Blood Pressure Measurement, or an Intermediate Cuff Pressure (same layout; its systolic
/// field is the cuff pressure and its diastolic and MAP fields mean nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct BloodPressure {
    /// The unit the device sent. The pressures below are in mmHg whatever it was.
    pub unit: PressureUnit,
    /// mmHg.
    pub systolic: SFloat,
    /// mmHg.
    pub diastolic: SFloat,
    /// Mean arterial pressure, mmHg.
    pub mean_arterial: SFloat,
    /// When the measurement was taken; `None` if not sent, unknown or not a real date.
    pub timestamp: Option<DateTime<Utc>>,
    /// Beats per minute, if the field is present.
    pub pulse_rate: Option<SFloat>,
    /// If the field is present; 255 means "unknown user".
    pub user_id: Option<u8>,
    pub status: Option<BpmStatus>,
}

/// Blood pressure Measurement Status (u16) [GATT-XML; NRF-COMMON `BPMStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpmStatus {
    pub body_movement: bool,
    pub cuff_too_loose: bool,
    pub irregular_pulse: bool,
    pub pulse_rate_range: PulseRateRange,
    pub improper_position: bool,
}

/// Measurement Status bits 3–4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulseRateRange {
    WithinRange,
    AboveUpperLimit,
    BelowLowerLimit,
    /// The value 3, which the specification leaves undefined.
    Undefined,
}

impl BpmStatus {
    pub fn from_bits(bits: u16) -> Self {
        BpmStatus {
            body_movement: bits & 0x0001 != 0,
            cuff_too_loose: bits & 0x0002 != 0,
            irregular_pulse: bits & 0x0004 != 0,
            pulse_rate_range: match (bits >> 3) & 0b11 {
                0 => PulseRateRange::WithinRange,
                1 => PulseRateRange::AboveUpperLimit,
                2 => PulseRateRange::BelowLowerLimit,
                _ => PulseRateRange::Undefined,
            },
            improper_position: bits & 0x0020 != 0,
        }
    }

    /// ARTEFACT when the cuff reading itself is suspect (movement, a loose cuff, a wrong
    /// position); irregular pulse and the pulse-rate range are findings and set nothing.
    pub fn quality(self) -> Quality {
        if self.body_movement || self.cuff_too_loose || self.improper_position {
            Quality::ARTEFACT
        } else {
            Quality::GOOD
        }
    }
}

// Blood pressure flags [GATT-XML].
const BP_KPA: u8 = 0x01;
const BP_TIMESTAMP: u8 = 0x02;
const BP_PULSE_RATE: u8 = 0x04;
const BP_USER_ID: u8 = 0x08;
const BP_STATUS: u8 = 0x10;

/// Parses a Blood Pressure Measurement (0x2A35); Intermediate Cuff Pressure (0x2A36) has the
/// same layout. Errors name 0x2A35 ([`decode`] names the characteristic it was given).
pub fn blood_pressure(bytes: &[u8]) -> Result<BloodPressure, GattError> {
    let c = GattCharacteristic::BloodPressureMeasurement;
    let (flags, mut fields) = flags_and_fields(c, bytes)?;
    let need = promised_len(
        flags,
        7,
        &[
            (BP_TIMESTAMP, 7),
            (BP_PULSE_RATE, 2),
            (BP_USER_ID, 1),
            (BP_STATUS, 2),
        ],
    );
    let short = || GattError::short(c, format_args!("flags 0x{flags:02x}"), need, bytes.len());
    if bytes.len() < need {
        return Err(short());
    }
    let unit = if flags & BP_KPA != 0 {
        PressureUnit::Kpa
    } else {
        PressureUnit::Mmhg
    };
    let mmhg = |value: SFloat| match (value, unit) {
        (SFloat::Number(kpa), PressureUnit::Kpa) => SFloat::Number(kpa / KPA_PER_MMHG),
        _ => value,
    };
    let systolic = mmhg(fields.sfloat().ok_or_else(short)?);
    let diastolic = mmhg(fields.sfloat().ok_or_else(short)?);
    let mean_arterial = mmhg(fields.sfloat().ok_or_else(short)?);
    let timestamp = match flags & BP_TIMESTAMP {
        0 => None,
        _ => fields.date_time().ok_or_else(short)?,
    };
    let pulse_rate = match flags & BP_PULSE_RATE {
        0 => None,
        _ => Some(fields.sfloat().ok_or_else(short)?),
    };
    let user_id = match flags & BP_USER_ID {
        0 => None,
        _ => Some(fields.u8().ok_or_else(short)?),
    };
    let status = match flags & BP_STATUS {
        0 => None,
        _ => Some(BpmStatus::from_bits(fields.u16().ok_or_else(short)?)),
    };
    Ok(BloodPressure {
        unit,
        systolic,
        diastolic,
        mean_arterial,
        timestamp,
        pulse_rate,
        user_id,
        status,
    })
}

/// Parses a Blood Pressure Feature (0x2A49): bit 0 body movement detection, 1 cuff fit, 2
/// irregular pulse, 3 pulse-rate range, 4 measurement position, 5 multiple bonds.
pub fn blood_pressure_feature(bytes: &[u8]) -> Result<u16, GattError> {
    let c = GattCharacteristic::BloodPressureFeature;
    Fields::new(bytes)
        .u16()
        .ok_or_else(|| GattError::new(c, format!("need 2 bytes, got {}", bytes.len())))
}

fn bpm_sample(bp: &BloodPressure) -> Sample {
    let mut values = vec![
        (Vital::Systolic, bp.systolic.number()),
        (Vital::Diastolic, bp.diastolic.number()),
        (Vital::MeanArterial, bp.mean_arterial.number()),
    ];
    if let Some(pulse_rate) = bp.pulse_rate {
        values.push((Vital::PulseRate, pulse_rate.number()));
    }
    Sample {
        values,
        quality: bp.status.map_or(Quality::GOOD, BpmStatus::quality),
        device_time: bp.timestamp,
    }
}

// ---------------------------------------------------------------------------------------------
// Pulse oximeter: 0x2A5E, 0x2A5F, 0x2A60

/// PLX Measurement Status (u16) [GATT-XML]; also the layout of the Measurement Status Support
/// field of PLX Features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MeasurementStatus(pub u16);

impl MeasurementStatus {
    pub const MEASUREMENT_ONGOING: Self = Self(1 << 5);
    pub const EARLY_ESTIMATED_DATA: Self = Self(1 << 6);
    pub const VALIDATED_DATA: Self = Self(1 << 7);
    pub const FULLY_QUALIFIED_DATA: Self = Self(1 << 8);
    pub const FROM_MEASUREMENT_STORAGE: Self = Self(1 << 9);
    pub const DEMONSTRATION_DATA: Self = Self(1 << 10);
    pub const TESTING_DATA: Self = Self(1 << 11);
    pub const CALIBRATION_ONGOING: Self = Self(1 << 12);
    pub const MEASUREMENT_UNAVAILABLE: Self = Self(1 << 13);
    pub const QUESTIONABLE_MEASUREMENT: Self = Self(1 << 14);
    pub const INVALID_MEASUREMENT: Self = Self(1 << 15);

    pub fn contains(self, bit: Self) -> bool {
        self.0 & bit.0 != 0
    }
}

/// PLX Device and Sensor Status (u24) [GATT-XML]; also the layout of the Device and Sensor
/// Status Support field of PLX Features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DeviceSensorStatus(pub u32);

impl DeviceSensorStatus {
    pub const EXTENDED_DISPLAY_UPDATE: Self = Self(1 << 0);
    pub const EQUIPMENT_MALFUNCTION: Self = Self(1 << 1);
    pub const SIGNAL_PROCESSING_IRREGULARITY: Self = Self(1 << 2);
    pub const INADEQUATE_SIGNAL: Self = Self(1 << 3);
    pub const POOR_SIGNAL: Self = Self(1 << 4);
    pub const LOW_PERFUSION: Self = Self(1 << 5);
    pub const ERRATIC_SIGNAL: Self = Self(1 << 6);
    pub const NON_PULSATILE_SIGNAL: Self = Self(1 << 7);
    pub const QUESTIONABLE_PULSE: Self = Self(1 << 8);
    pub const SIGNAL_ANALYSIS_ONGOING: Self = Self(1 << 9);
    pub const SENSOR_INTERFERENCE: Self = Self(1 << 10);
    pub const SENSOR_UNCONNECTED_TO_USER: Self = Self(1 << 11);
    pub const UNKNOWN_SENSOR: Self = Self(1 << 12);
    pub const SENSOR_DISPLACED: Self = Self(1 << 13);
    pub const SENSOR_MALFUNCTIONING: Self = Self(1 << 14);
    pub const SENSOR_DISCONNECTED: Self = Self(1 << 15);

    pub fn contains(self, bit: Self) -> bool {
        self.0 & bit.0 != 0
    }
}

/// An SpO2 (%) and pulse rate (bpm) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spo2Pr {
    pub spo2: SFloat,
    pub pulse_rate: SFloat,
}

/// A PLX Continuous Measurement (0x2A5F).
#[derive(Debug, Clone, PartialEq)]
pub struct PlxContinuous {
    /// SpO2PR-Normal, the reading the daemon uses.
    pub normal: Spo2Pr,
    pub fast: Option<Spo2Pr>,
    pub slow: Option<Spo2Pr>,
    pub measurement_status: Option<MeasurementStatus>,
    pub device_sensor_status: Option<DeviceSensorStatus>,
    /// Pulse Amplitude Index, %.
    pub pulse_amplitude_index: Option<SFloat>,
}

/// A PLX Spot-Check Measurement (0x2A5E).
#[derive(Debug, Clone, PartialEq)]
pub struct PlxSpotCheck {
    pub reading: Spo2Pr,
    /// When the reading was taken; `None` if not sent, unknown, not a real date, or the device
    /// says its clock is not set.
    pub timestamp: Option<DateTime<Utc>>,
    /// Flags bit 4: any timestamp sent is meaningless.
    pub device_clock_not_set: bool,
    pub measurement_status: Option<MeasurementStatus>,
    pub device_sensor_status: Option<DeviceSensorStatus>,
    /// Pulse Amplitude Index, %.
    pub pulse_amplitude_index: Option<SFloat>,
}

/// PLX Features (0x2A60): what the device supports. Pass it to [`decode`] so that status bits
/// the device does not support are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlxFeatures {
    /// Supported Features bits (see the constants).
    pub supported: u16,
    /// Which Measurement Status bits the device supports; present if supported bit 0 is set.
    pub measurement_status_support: Option<MeasurementStatus>,
    /// Which Device and Sensor Status bits the device supports; present if bit 1 is set.
    pub device_sensor_status_support: Option<DeviceSensorStatus>,
}

impl PlxFeatures {
    pub const MEASUREMENT_STATUS_SUPPORT: u16 = 1 << 0;
    pub const DEVICE_SENSOR_STATUS_SUPPORT: u16 = 1 << 1;
    pub const SPOT_CHECK_STORAGE: u16 = 1 << 2;
    pub const SPOT_CHECK_TIMESTAMP: u16 = 1 << 3;
    pub const SPO2PR_FAST: u16 = 1 << 4;
    pub const SPO2PR_SLOW: u16 = 1 << 5;
    pub const PULSE_AMPLITUDE_INDEX: u16 = 1 << 6;
    pub const MULTIPLE_BONDS: u16 = 1 << 7;
}

// PLX Continuous flags [GATT-XML].
const CONT_FAST: u8 = 0x01;
const CONT_SLOW: u8 = 0x02;
const CONT_MEASUREMENT_STATUS: u8 = 0x04;
const CONT_DEVICE_SENSOR_STATUS: u8 = 0x08;
const CONT_PAI: u8 = 0x10;

// PLX Spot-Check flags [GATT-XML].
const SPOT_TIMESTAMP: u8 = 0x01;
const SPOT_MEASUREMENT_STATUS: u8 = 0x02;
const SPOT_DEVICE_SENSOR_STATUS: u8 = 0x04;
const SPOT_PAI: u8 = 0x08;
const SPOT_CLOCK_NOT_SET: u8 = 0x10;

fn spo2_pr(fields: &mut Fields<'_>) -> Option<Spo2Pr> {
    Some(Spo2Pr {
        spo2: fields.sfloat()?,
        pulse_rate: fields.sfloat()?,
    })
}

/// Parses a PLX Continuous Measurement (0x2A5F).
pub fn plx_continuous(bytes: &[u8]) -> Result<PlxContinuous, GattError> {
    let c = GattCharacteristic::PlxContinuous;
    let (flags, mut fields) = flags_and_fields(c, bytes)?;
    let need = promised_len(
        flags,
        5,
        &[
            (CONT_FAST, 4),
            (CONT_SLOW, 4),
            (CONT_MEASUREMENT_STATUS, 2),
            (CONT_DEVICE_SENSOR_STATUS, 3),
            (CONT_PAI, 2),
        ],
    );
    let short = || GattError::short(c, format_args!("flags 0x{flags:02x}"), need, bytes.len());
    if bytes.len() < need {
        return Err(short());
    }
    let normal = spo2_pr(&mut fields).ok_or_else(short)?;
    let fast = match flags & CONT_FAST {
        0 => None,
        _ => Some(spo2_pr(&mut fields).ok_or_else(short)?),
    };
    let slow = match flags & CONT_SLOW {
        0 => None,
        _ => Some(spo2_pr(&mut fields).ok_or_else(short)?),
    };
    let measurement_status = match flags & CONT_MEASUREMENT_STATUS {
        0 => None,
        _ => Some(MeasurementStatus(fields.u16().ok_or_else(short)?)),
    };
    let device_sensor_status = match flags & CONT_DEVICE_SENSOR_STATUS {
        0 => None,
        _ => Some(DeviceSensorStatus(fields.u24().ok_or_else(short)?)),
    };
    let pulse_amplitude_index = match flags & CONT_PAI {
        0 => None,
        _ => Some(fields.sfloat().ok_or_else(short)?),
    };
    Ok(PlxContinuous {
        normal,
        fast,
        slow,
        measurement_status,
        device_sensor_status,
        pulse_amplitude_index,
    })
}

/// Parses a PLX Spot-Check Measurement (0x2A5E).
pub fn plx_spot_check(bytes: &[u8]) -> Result<PlxSpotCheck, GattError> {
    let c = GattCharacteristic::PlxSpotCheck;
    let (flags, mut fields) = flags_and_fields(c, bytes)?;
    let need = promised_len(
        flags,
        5,
        &[
            (SPOT_TIMESTAMP, 7),
            (SPOT_MEASUREMENT_STATUS, 2),
            (SPOT_DEVICE_SENSOR_STATUS, 3),
            (SPOT_PAI, 2),
        ],
    );
    let short = || GattError::short(c, format_args!("flags 0x{flags:02x}"), need, bytes.len());
    if bytes.len() < need {
        return Err(short());
    }
    let reading = spo2_pr(&mut fields).ok_or_else(short)?;
    let device_clock_not_set = flags & SPOT_CLOCK_NOT_SET != 0;
    let timestamp = match flags & SPOT_TIMESTAMP {
        0 => None,
        _ => fields.date_time().ok_or_else(short)?,
    }
    .filter(|_| !device_clock_not_set);
    let measurement_status = match flags & SPOT_MEASUREMENT_STATUS {
        0 => None,
        _ => Some(MeasurementStatus(fields.u16().ok_or_else(short)?)),
    };
    let device_sensor_status = match flags & SPOT_DEVICE_SENSOR_STATUS {
        0 => None,
        _ => Some(DeviceSensorStatus(fields.u24().ok_or_else(short)?)),
    };
    let pulse_amplitude_index = match flags & SPOT_PAI {
        0 => None,
        _ => Some(fields.sfloat().ok_or_else(short)?),
    };
    Ok(PlxSpotCheck {
        reading,
        timestamp,
        device_clock_not_set,
        measurement_status,
        device_sensor_status,
        pulse_amplitude_index,
    })
}

/// Parses PLX Features (0x2A60): Supported Features u16, then Measurement Status Support u16
/// if bit 0, then Device and Sensor Status Support u24 if bit 1.
pub fn plx_features(bytes: &[u8]) -> Result<PlxFeatures, GattError> {
    let c = GattCharacteristic::PlxFeatures;
    let mut fields = Fields::new(bytes);
    let supported = fields.u16().ok_or_else(|| {
        GattError::new(
            c,
            format!("need 2 bytes of supported features, got {}", bytes.len()),
        )
    })?;
    let has = |bit: u16| supported & bit != 0;
    let need = 2
        + 2 * usize::from(has(PlxFeatures::MEASUREMENT_STATUS_SUPPORT))
        + 3 * usize::from(has(PlxFeatures::DEVICE_SENSOR_STATUS_SUPPORT));
    let short = || {
        GattError::short(
            c,
            format_args!("supported features 0x{supported:04x}"),
            need,
            bytes.len(),
        )
    };
    if bytes.len() < need {
        return Err(short());
    }
    let measurement_status_support = match has(PlxFeatures::MEASUREMENT_STATUS_SUPPORT) {
        false => None,
        true => Some(MeasurementStatus(fields.u16().ok_or_else(short)?)),
    };
    let device_sensor_status_support = match has(PlxFeatures::DEVICE_SENSOR_STATUS_SUPPORT) {
        false => None,
        true => Some(DeviceSensorStatus(fields.u24().ok_or_else(short)?)),
    };
    Ok(PlxFeatures {
        supported,
        measurement_status_support,
        device_sensor_status_support,
    })
}

/// What a PLX status bit does to a sample: the flag it sets, and whether the sample's values
/// are withheld (reported as unavailable) because they cannot be the patient's.
struct StatusEffect<S> {
    bit: S,
    quality: Quality,
    withholds_values: bool,
}

const fn flags<S>(bit: S, quality: Quality) -> StatusEffect<S> {
    StatusEffect {
        bit,
        quality,
        withholds_values: false,
    }
}

const fn withholds<S>(bit: S, quality: Quality) -> StatusEffect<S> {
    StatusEffect {
        bit,
        quality,
        withholds_values: true,
    }
}

const MEASUREMENT_STATUS_EFFECTS: [StatusEffect<MeasurementStatus>; 6] = {
    use MeasurementStatus as M;
    [
        withholds(M::INVALID_MEASUREMENT, Quality::ARTEFACT),
        flags(M::QUESTIONABLE_MEASUREMENT, Quality::ARTEFACT),
        withholds(M::MEASUREMENT_UNAVAILABLE, Quality::SEARCHING),
        flags(M::CALIBRATION_ONGOING, Quality::SEARCHING),
        flags(M::DEMONSTRATION_DATA, Quality::ARTEFACT),
        flags(M::TESTING_DATA, Quality::ARTEFACT),
    ]
};

const DEVICE_SENSOR_STATUS_EFFECTS: [StatusEffect<DeviceSensorStatus>; 14] = {
    use DeviceSensorStatus as D;
    [
        withholds(D::SENSOR_DISCONNECTED, Quality::SENSOR_OFF),
        withholds(D::SENSOR_UNCONNECTED_TO_USER, Quality::SENSOR_OFF),
        withholds(D::SENSOR_DISPLACED, Quality::SENSOR_OFF),
        flags(D::LOW_PERFUSION, Quality::LOW_PERFUSION),
        flags(D::EQUIPMENT_MALFUNCTION, Quality::ARTEFACT),
        flags(D::SIGNAL_PROCESSING_IRREGULARITY, Quality::ARTEFACT),
        flags(D::INADEQUATE_SIGNAL, Quality::ARTEFACT),
        flags(D::POOR_SIGNAL, Quality::ARTEFACT),
        flags(D::ERRATIC_SIGNAL, Quality::ARTEFACT),
        flags(D::NON_PULSATILE_SIGNAL, Quality::ARTEFACT),
        flags(D::QUESTIONABLE_PULSE, Quality::ARTEFACT),
        flags(D::SENSOR_INTERFERENCE, Quality::ARTEFACT),
        flags(D::UNKNOWN_SENSOR, Quality::ARTEFACT),
        flags(D::SENSOR_MALFUNCTIONING, Quality::ARTEFACT),
    ]
};

/// The quality the PLX status fields say, and whether the values must be withheld. Each field
/// counts only if present and, when `features` are given, only in the bits they support.
fn plx_status_quality(
    measurement: Option<MeasurementStatus>,
    device_sensor: Option<DeviceSensorStatus>,
    features: Option<&PlxFeatures>,
) -> (Quality, bool) {
    let measurement = measurement.unwrap_or_default().0
        & features.map_or(u16::MAX, |f| {
            f.measurement_status_support.unwrap_or_default().0
        });
    let device_sensor = device_sensor.unwrap_or_default().0
        & features.map_or(u32::MAX, |f| {
            f.device_sensor_status_support.unwrap_or_default().0
        });
    let measurement_effects = MEASUREMENT_STATUS_EFFECTS
        .iter()
        .filter(|effect| measurement & effect.bit.0 != 0)
        .map(|effect| (effect.quality, effect.withholds_values));
    let device_sensor_effects = DEVICE_SENSOR_STATUS_EFFECTS
        .iter()
        .filter(|effect| device_sensor & effect.bit.0 != 0)
        .map(|effect| (effect.quality, effect.withholds_values));
    measurement_effects.chain(device_sensor_effects).fold(
        (Quality::GOOD, false),
        |(quality, withheld), (flag, withholds)| (quality | flag, withheld || withholds),
    )
}

/// One PLX reading as a sample: SpO2, pulse rate, and the perfusion index if the PAI field is
/// present.
fn plx_sample(
    reading: Spo2Pr,
    pulse_amplitude_index: Option<SFloat>,
    (quality, withhold): (Quality, bool),
    device_time: Option<DateTime<Utc>>,
) -> Sample {
    let value = |x: SFloat| if withhold { None } else { x.number() };
    let mut values = vec![
        (Vital::Spo2, value(reading.spo2)),
        (Vital::PulseRate, value(reading.pulse_rate)),
    ];
    if let Some(pai) = pulse_amplitude_index {
        values.push((Vital::PerfusionIndex, value(pai)));
    }
    Sample {
        values,
        quality,
        device_time,
    }
}

// ---------------------------------------------------------------------------------------------
// Heart rate 0x2A37, battery 0x2A19

/// Heart Rate Measurement flags bits 1–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorContact {
    NotSupported,
    /// Supported, and the sensor is not touching the skin.
    NotDetected,
    Detected,
}

/// A Heart Rate Measurement (0x2A37).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartRate {
    /// Beats per minute.
    pub bpm: u16,
    pub sensor_contact: SensorContact,
    /// Kilojoules since the last reset, if the field is present.
    pub energy_expended_kj: Option<u16>,
    /// RR intervals in units of 1/1024 s, oldest first.
    pub rr_intervals: Vec<u16>,
}

// Heart Rate Measurement flags [GATT-XML].
const HR_U16: u8 = 0x01;
const HR_ENERGY: u8 = 0x08;
const HR_RR: u8 = 0x10;

/// Parses a Heart Rate Measurement (0x2A37). The RR intervals take the rest of the payload;
/// when the flags promise them, at least one must be there (as NRF-COMMON requires) and the rest
/// must be whole 2-byte values.
pub fn heart_rate(bytes: &[u8]) -> Result<HeartRate, GattError> {
    let c = GattCharacteristic::HeartRateMeasurement;
    let (flags, mut fields) = flags_and_fields(c, bytes)?;
    let hr_len = if flags & HR_U16 != 0 { 2 } else { 1 };
    let need = promised_len(flags, 1 + hr_len, &[(HR_ENERGY, 2), (HR_RR, 2)]);
    let short = || GattError::short(c, format_args!("flags 0x{flags:02x}"), need, bytes.len());
    if bytes.len() < need {
        return Err(short());
    }
    let bpm = match flags & HR_U16 {
        0 => fields.u8().map(u16::from),
        _ => fields.u16(),
    }
    .ok_or_else(short)?;
    let sensor_contact = match (flags >> 1) & 0b11 {
        2 => SensorContact::NotDetected,
        3 => SensorContact::Detected,
        _ => SensorContact::NotSupported,
    };
    let energy_expended_kj = match flags & HR_ENERGY {
        0 => None,
        _ => Some(fields.u16().ok_or_else(short)?),
    };
    let rr_intervals = match flags & HR_RR {
        0 => Vec::new(),
        _ => {
            let (pairs, odd) = fields.rest.as_chunks::<2>();
            if !odd.is_empty() {
                return Err(GattError::new(
                    c,
                    format!(
                        "flags 0x{flags:02x}: RR intervals are 2 bytes each, {} bytes left",
                        fields.rest.len()
                    ),
                ));
            }
            pairs.iter().map(|&pair| u16::from_le_bytes(pair)).collect()
        }
    };
    Ok(HeartRate {
        bpm,
        sensor_contact,
        energy_expended_kj,
        rr_intervals,
    })
}

fn heart_rate_sample(hr: &HeartRate) -> Sample {
    let contact_lost = hr.sensor_contact == SensorContact::NotDetected;
    Sample {
        values: vec![(
            Vital::PulseRate,
            (!contact_lost).then_some(f64::from(hr.bpm)),
        )],
        quality: if contact_lost {
            Quality::SENSOR_OFF
        } else {
            Quality::GOOD
        },
        device_time: None,
    }
}

/// Parses a Battery Level (0x2A19): one byte, a percentage 0–100.
pub fn battery_level(bytes: &[u8]) -> Result<u8, GattError> {
    let c = GattCharacteristic::BatteryLevel;
    match Fields::new(bytes).u8() {
        None => Err(GattError::new(c, "need 1 byte, got 0".into())),
        Some(level @ 0..=100) => Ok(level),
        Some(level) => Err(GattError::new(c, format!("level {level} is over 100 %"))),
    }
}

// ---------------------------------------------------------------------------------------------
// To the daemon

/// What one characteristic value means to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum GattValue {
    /// A reading: blood pressure, PLX or heart rate.
    Sample(Sample),
    /// The pressure in the cuff while it inflates or deflates (0x2A36), mmHg; `None` if the
    /// device sent a special value. Progress, not a reading.
    CuffPressure {
        mmhg: Option<f64>,
    },
    PlxFeatures(PlxFeatures),
    /// Blood Pressure Feature bits (0x2A49).
    BloodPressureFeature(u16),
    /// Battery level, %.
    Battery(u8),
}

/// Decodes one value of `characteristic`. `features` are the device's PLX Features, if read:
/// PLX status bits they do not support are ignored. A payload that does not have the
/// characteristic's format is a [`DecodeErrorKind::Malformed`] error, a value outside its
/// plausible range an [`DecodeErrorKind::Implausible`] one; either way the whole payload counts
/// as skipped.
pub fn decode(
    characteristic: GattCharacteristic,
    payload: &[u8],
    features: Option<&PlxFeatures>,
) -> Result<GattValue, DecodeError> {
    use GattCharacteristic as C;
    let malformed = |error: GattError| DecodeError {
        kind: DecodeErrorKind::Malformed,
        skipped: payload.len(),
        detail: GattError {
            characteristic,
            ..error
        }
        .to_string(),
    };
    let value = match characteristic {
        C::BloodPressureMeasurement => {
            GattValue::Sample(bpm_sample(&blood_pressure(payload).map_err(malformed)?))
        }
        C::IntermediateCuffPressure => GattValue::CuffPressure {
            mmhg: blood_pressure(payload)
                .map_err(malformed)?
                .systolic
                .number(),
        },
        C::BloodPressureFeature => {
            GattValue::BloodPressureFeature(blood_pressure_feature(payload).map_err(malformed)?)
        }
        C::PlxContinuous => {
            let m = plx_continuous(payload).map_err(malformed)?;
            let status = plx_status_quality(m.measurement_status, m.device_sensor_status, features);
            GattValue::Sample(plx_sample(m.normal, m.pulse_amplitude_index, status, None))
        }
        C::PlxSpotCheck => {
            let m = plx_spot_check(payload).map_err(malformed)?;
            let status = plx_status_quality(m.measurement_status, m.device_sensor_status, features);
            GattValue::Sample(plx_sample(
                m.reading,
                m.pulse_amplitude_index,
                status,
                m.timestamp,
            ))
        }
        C::PlxFeatures => GattValue::PlxFeatures(plx_features(payload).map_err(malformed)?),
        C::HeartRateMeasurement => {
            GattValue::Sample(heart_rate_sample(&heart_rate(payload).map_err(malformed)?))
        }
        C::BatteryLevel => GattValue::Battery(battery_level(payload).map_err(malformed)?),
    };
    let why = match &value {
        GattValue::Sample(sample) => implausible(sample),
        GattValue::CuffPressure { mmhg: Some(mmhg) } => implausible_cuff_pressure(*mmhg),
        _ => None,
    };
    match why {
        Some(why) => Err(DecodeError {
            kind: DecodeErrorKind::Implausible,
            skipped: payload.len(),
            detail: format!("{characteristic}: {why}"),
        }),
        None => Ok(value),
    }
}

/// A cuff pressure outside the range of the pressures it measures.
fn implausible_cuff_pressure(mmhg: f64) -> Option<String> {
    let (low, high) = Vital::Systolic.plausible_range();
    (!(mmhg.is_finite() && (low..=high).contains(&mmhg))).then(|| {
        format!("cuff pressure {mmhg} mmHg is outside its plausible range {low}–{high} mmHg")
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::acquire::decode::testing::sample;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single()
    }

    fn decode_sample(c: GattCharacteristic, payload: &[u8], f: Option<&PlxFeatures>) -> Sample {
        match decode(c, payload, f) {
            Ok(GattValue::Sample(sample)) => sample,
            other => panic!("{c} {payload:02x?}: expected a sample, got {other:?}"),
        }
    }

    fn decode_error(c: GattCharacteristic, payload: &[u8], f: Option<&PlxFeatures>) -> DecodeError {
        match decode(c, payload, f) {
            Err(error) => error,
            other => panic!("{c} {payload:02x?}: expected an error, got {other:?}"),
        }
    }

    fn malformed(payload_len: usize, detail: &str) -> DecodeError {
        DecodeError {
            kind: DecodeErrorKind::Malformed,
            skipped: payload_len,
            detail: detail.into(),
        }
    }

    /// `x` rounded to `places` decimals, for values converted from kPa.
    fn round(x: f64, places: i32) -> f64 {
        let scale = 10f64.powi(places);
        (x * scale).round() / scale
    }

    // ---- §1.3 SFLOAT

    #[test]
    fn sfloat_vectors_are_exact() {
        let number = |b0, b1| sfloat([b0, b1]);
        let vectors: [(u8, u8, f64); 14] = [
            (0x65, 0xF0, 10.1),
            (0xE8, 0xF3, 100.0),
            (0x84, 0xF3, 90.0),
            (0x8A, 0x00, 138.0),
            (0x58, 0x00, 88.0),
            (0x78, 0x00, 120.0),
            (0xBD, 0xF0, 18.9),
            (0x9F, 0xF0, 15.9),
            (0x6F, 0xF0, 11.1),
            (0xD7, 0xF0, 21.5),
            (0x57, 0xF0, 8.7),
            (0x7A, 0xE3, 8.9),
            (0x66, 0xE3, 8.7),
            (0xFF, 0x0F, -1.0),
        ];
        for (b0, b1, value) in vectors {
            assert_eq!(number(b0, b1), SFloat::Number(value), "{b0:02X} {b1:02X}");
        }
        // The extremes of mantissa and exponent.
        assert_eq!(number(0xFF, 0x77), SFloat::Number(2047e7));
        assert_eq!(number(0x00, 0x88), SFloat::Number(-2048e-8));
        assert_eq!(number(0xFD, 0x77), SFloat::Number(20_450_000_000.0));
        assert_eq!(number(0x00, 0x00), SFloat::Number(0.0));
        // §1.4: the non-conformant library's 98.0 and 1.0 are something else entirely.
        assert_eq!(number(0x62, 0x80), SFloat::Number(98e-8));
        assert_eq!(number(0x0A, 0x70), SFloat::Number(1e8));
        assert_eq!(number(0x0A, 0xF0), SFloat::Number(1.0));
    }

    #[test]
    fn sfloat_specials_are_never_numbers() {
        for (bytes, special) in [
            ([0xFF, 0x07], SFloat::NaN),
            ([0x00, 0x08], SFloat::NRes),
            ([0xFE, 0x07], SFloat::PositiveInfinity),
            ([0x02, 0x08], SFloat::NegativeInfinity),
            ([0x01, 0x08], SFloat::Reserved),
        ] {
            assert_eq!(sfloat(bytes), special);
            assert_eq!(special.number(), None);
        }
        // The same mantissas with a non-zero exponent are ordinary numbers.
        assert_eq!(sfloat([0xFF, 0x17]), SFloat::Number(20470.0));
        assert_eq!(sfloat([0x00, 0xF8]), SFloat::Number(-204.8));
        assert_eq!(SFloat::Number(4.5).number(), Some(4.5));
    }

    #[test]
    fn characteristics_by_uuid_and_name() {
        assert_eq!(
            GattCharacteristic::BloodPressureMeasurement
                .uuid()
                .to_string(),
            "00002a35-0000-1000-8000-00805f9b34fb"
        );
        for c in GattCharacteristic::ALL {
            assert_eq!(GattCharacteristic::from_uuid(c.uuid()), Some(c));
            assert_eq!(c.uuid(), sig_uuid(c.assigned_number()));
        }
        let mut names: Vec<_> = GattCharacteristic::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), GattCharacteristic::ALL.len());
        assert_eq!(GattCharacteristic::from_uuid(sig_uuid(0x2A38)), None);
        assert_eq!(
            GattCharacteristic::PlxContinuous.to_string(),
            "plx_continuous_measurement"
        );
    }

    // ---- §2 Blood pressure

    const BPM: GattCharacteristic = GattCharacteristic::BloodPressureMeasurement;
    const ICP: GattCharacteristic = GattCharacteristic::IntermediateCuffPressure;

    /// NRF-COMMON `_full` [T] (§2.4's vector 1, not spelled out there): the same bytes as §2.4
    /// vector 6 with 138 / 88 / 120 in the pressures.
    const BPM_FULL: [u8; 19] = [
        0x1E, 0x8A, 0x00, 0x58, 0x00, 0x78, 0x00, 0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B, 0x3C,
        0x00, 0x01, 0x27, 0x00,
    ];

    /// Status 0x27: body movement, cuff too loose, irregular pulse, in range, improper
    /// position.
    const STATUS_0X27: BpmStatus = BpmStatus {
        body_movement: true,
        cuff_too_loose: true,
        irregular_pulse: true,
        pulse_rate_range: PulseRateRange::WithinRange,
        improper_position: true,
    };

    /// Status 0x12: cuff too loose, pulse rate below the lower limit.
    const STATUS_0X12: BpmStatus = BpmStatus {
        body_movement: false,
        cuff_too_loose: true,
        irregular_pulse: false,
        pulse_rate_range: PulseRateRange::BelowLowerLimit,
        improper_position: false,
    };

    #[test]
    fn bpm_nrf_full() {
        let bp = blood_pressure(&BPM_FULL).unwrap();
        assert_eq!(
            bp,
            BloodPressure {
                unit: PressureUnit::Mmhg,
                systolic: SFloat::Number(138.0),
                diastolic: SFloat::Number(88.0),
                mean_arterial: SFloat::Number(120.0),
                // Year 0 (unknown), 17 April 20:41:59: no usable time.
                timestamp: None,
                pulse_rate: Some(SFloat::Number(60.0)),
                user_id: Some(1),
                status: Some(STATUS_0X27),
            }
        );
        assert_eq!(
            decode_sample(BPM, &BPM_FULL, None),
            sample(
                &[
                    (Vital::Systolic, Some(138.0)),
                    (Vital::Diastolic, Some(88.0)),
                    (Vital::MeanArterial, Some(120.0)),
                    (Vital::PulseRate, Some(60.0)),
                ],
                Quality::ARTEFACT,
            )
        );
    }

    /// NRF-COMMON `_some` [T] (§2.4's vector 2): kPa 18.9 / 11 / 15.9, pulse 60, status 0x12.
    #[test]
    fn bpm_nrf_some_in_kpa() {
        let payload = [
            0x15, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0, 0x3C, 0x00, 0x12, 0x00,
        ];
        let bp = blood_pressure(&payload).unwrap();
        assert_eq!(bp.unit, PressureUnit::Kpa);
        assert_eq!(bp.systolic, SFloat::Number(18.9 / KPA_PER_MMHG));
        assert_eq!(bp.diastolic, SFloat::Number(11.0 / KPA_PER_MMHG));
        assert_eq!(bp.mean_arterial, SFloat::Number(15.9 / KPA_PER_MMHG));
        assert_eq!(
            bp.pulse_rate,
            Some(SFloat::Number(60.0)),
            "pulse is not converted"
        );
        assert_eq!((bp.timestamp, bp.user_id), (None, None));
        assert_eq!(bp.status, Some(STATUS_0X12));
        let s = decode_sample(BPM, &payload, None);
        let rounded: Vec<_> = s
            .values
            .iter()
            .map(|&(v, x)| (v, x.map(|x| round(x, 2))))
            .collect();
        assert_eq!(
            rounded,
            vec![
                (Vital::Systolic, Some(141.76)),
                (Vital::Diastolic, Some(82.51)),
                (Vital::MeanArterial, Some(119.26)),
                (Vital::PulseRate, Some(60.0)),
            ]
        );
        assert_eq!(s.quality, Quality::ARTEFACT, "cuff too loose");
    }

    // §2.4 vector 3 [T].
    #[test]
    fn bpm_vector_3_minimal() {
        let payload = [0x00, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0];
        assert_eq!(
            blood_pressure(&payload).unwrap(),
            BloodPressure {
                unit: PressureUnit::Mmhg,
                systolic: SFloat::Number(18.9),
                diastolic: SFloat::Number(11.0),
                mean_arterial: SFloat::Number(15.9),
                timestamp: None,
                pulse_rate: None,
                user_id: None,
                status: None,
            }
        );
        assert_eq!(
            decode_sample(BPM, &payload, None),
            sample(
                &[
                    (Vital::Systolic, Some(18.9)),
                    (Vital::Diastolic, Some(11.0)),
                    (Vital::MeanArterial, Some(15.9)),
                ],
                Quality::GOOD,
            )
        );
    }

    // §2.4 vectors 4 and 5 [T], for both characteristics (8 says ICP asserts the same).
    #[test]
    fn bp_vectors_4_and_5_invalid() {
        let too_short = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let no_timestamp = [0x03, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
        assert_eq!(
            blood_pressure(&too_short),
            Err(GattError {
                characteristic: BPM,
                detail: "flags 0x01 need 7 bytes, got 6".into()
            })
        );
        assert_eq!(
            decode_error(BPM, &too_short, None),
            malformed(
                6,
                "blood_pressure_measurement: flags 0x01 need 7 bytes, got 6"
            )
        );
        assert_eq!(
            decode_error(BPM, &no_timestamp, None),
            malformed(
                7,
                "blood_pressure_measurement: flags 0x03 need 14 bytes, got 7"
            )
        );
        assert_eq!(
            decode_error(ICP, &too_short, None),
            malformed(
                6,
                "intermediate_cuff_pressure: flags 0x01 need 7 bytes, got 6"
            )
        );
        assert_eq!(
            decode_error(ICP, &no_timestamp, None),
            malformed(
                7,
                "intermediate_cuff_pressure: flags 0x03 need 14 bytes, got 7"
            )
        );
        assert_eq!(
            decode_error(BPM, &[], None),
            malformed(
                0,
                "blood_pressure_measurement: empty payload, no flags byte"
            )
        );
    }

    // §2.4 vectors 6–8 [T]: intermediate cuff pressure.
    #[test]
    fn icp_vectors_6_to_8() {
        let full = [
            0x1E, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B,
            0x3C, 0x00, 0x01, 0x27, 0x00,
        ];
        let bp = blood_pressure(&full).unwrap();
        assert_eq!(bp.systolic, SFloat::Number(4.0));
        assert_eq!(bp.pulse_rate, Some(SFloat::Number(60.0)));
        assert_eq!(bp.user_id, Some(1));
        assert_eq!(bp.status, Some(STATUS_0X27));
        assert_eq!(bp.timestamp, None, "year unknown");
        assert_eq!(
            decode(ICP, &full, None),
            Ok(GattValue::CuffPressure { mmhg: Some(4.0) })
        );

        let some = [
            0x15, 0x6F, 0xF0, 0x00, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x12, 0x00,
        ];
        let bp = blood_pressure(&some).unwrap();
        assert_eq!(bp.unit, PressureUnit::Kpa);
        assert_eq!(bp.systolic, SFloat::Number(11.1 / KPA_PER_MMHG));
        assert_eq!(bp.pulse_rate, Some(SFloat::Number(60.0)));
        assert_eq!(bp.status, Some(STATUS_0X12));
        let Ok(GattValue::CuffPressure { mmhg: Some(mmhg) }) = decode(ICP, &some, None) else {
            panic!("cuff pressure expected");
        };
        assert_eq!(round(mmhg, 2), 83.26);

        let minimal = [0x00, 0xD7, 0xF0, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            decode(ICP, &minimal, None),
            Ok(GattValue::CuffPressure { mmhg: Some(21.5) })
        );
        // Diastolic and MAP are ignored, NaN (SPEZI) as much as 0 (NRF-COMMON).
        let nan_filled = [0x00, 0xD7, 0xF0, 0xFF, 0x07, 0xFF, 0x07];
        assert_eq!(
            decode(ICP, &nan_filled, None),
            Ok(GattValue::CuffPressure { mmhg: Some(21.5) })
        );
        assert_eq!(
            decode(ICP, &[0x00, 0xFF, 0x07, 0xFF, 0x07, 0xFF, 0x07], None),
            Ok(GattValue::CuffPressure { mmhg: None })
        );
        let over = [0x00, 0x90, 0x01, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            decode_error(ICP, &over, None),
            DecodeError {
                kind: DecodeErrorKind::Implausible,
                skipped: 7,
                detail: "intermediate_cuff_pressure: cuff pressure 400 mmHg is outside its \
                         plausible range 0–350 mmHg"
                    .into()
            }
        );
    }

    // §2.4 vector 9 [D]: a pulse rate that could not be measured, and the packet cut short.
    #[test]
    fn bpm_vector_9() {
        let payload = [
            0x1C, 0x78, 0x00, 0x50, 0x00, 0x5A, 0x00, 0xFF, 0x07, 0x12, 0x00, 0x00,
        ];
        let bp = blood_pressure(&payload).unwrap();
        assert_eq!(bp.pulse_rate, Some(SFloat::NaN));
        assert_eq!(bp.user_id, Some(18));
        assert_eq!(bp.status, Some(BpmStatus::from_bits(0)));
        assert_eq!(
            decode_sample(BPM, &payload, None),
            sample(
                &[
                    (Vital::Systolic, Some(120.0)),
                    (Vital::Diastolic, Some(80.0)),
                    (Vital::MeanArterial, Some(90.0)),
                    (Vital::PulseRate, None),
                ],
                Quality::GOOD,
            )
        );
        assert_eq!(
            decode_error(BPM, &payload[..11], None),
            malformed(
                11,
                "blood_pressure_measurement: flags 0x1c need 12 bytes, got 11"
            )
        );
    }

    // [D] 16.0 / 10.7 / 12.5 kPa (mantissas 160, 107, 125, exponent −1), taken 5 March 2024
    // 14:30:00: 120.01 / 80.26 / 93.76 mmHg.
    #[test]
    fn bpm_kpa_with_timestamp_by_hand() {
        let payload = [
            0x03, 0xA0, 0xF0, 0x6B, 0xF0, 0x7D, 0xF0, 0xE8, 0x07, 0x03, 0x05, 0x0E, 0x1E, 0x00,
        ];
        let s = decode_sample(BPM, &payload, None);
        let rounded: Vec<_> = s
            .values
            .iter()
            .map(|&(v, x)| (v, x.map(|x| round(x, 2))))
            .collect();
        assert_eq!(
            rounded,
            vec![
                (Vital::Systolic, Some(120.01)),
                (Vital::Diastolic, Some(80.26)),
                (Vital::MeanArterial, Some(93.76)),
            ]
        );
        assert_eq!(s.value(Vital::Systolic), Some(Some(16.0 / KPA_PER_MMHG)));
        assert_eq!(s.device_time, utc(2024, 3, 5, 14, 30, 0));
        assert_eq!(s.quality, Quality::GOOD);
    }

    #[test]
    fn date_times_unknown_or_impossible_are_none() {
        let at = |year: u16, month, day, h, m, s| {
            let [lo, hi] = year.to_le_bytes();
            date_time([lo, hi, month, day, h, m, s])
        };
        assert_eq!(at(2024, 2, 29, 23, 59, 59), utc(2024, 2, 29, 23, 59, 59));
        assert_eq!(at(1582, 1, 1, 0, 0, 0), utc(1582, 1, 1, 0, 0, 0));
        for (year, month, day, h, m, s) in [
            (0, 4, 17, 20, 41, 59),    // year unknown
            (2024, 0, 17, 20, 41, 59), // month unknown
            (2024, 4, 0, 20, 41, 59),  // day unknown
            (2023, 2, 29, 0, 0, 0),    // not a leap year
            (2024, 13, 1, 0, 0, 0),
            (2024, 4, 31, 0, 0, 0),
            (2024, 4, 1, 24, 0, 0),
            (2024, 4, 1, 0, 60, 0),
            (2024, 4, 1, 0, 0, 60),
            (1581, 12, 31, 0, 0, 0),
            (10000, 1, 1, 0, 0, 0),
        ] {
            assert_eq!(
                at(year, month, day, h, m, s),
                None,
                "{year}-{month}-{day} {h}:{m}:{s}"
            );
        }
    }

    #[test]
    fn bpm_status_quality() {
        for (bits, quality) in [
            (0x0001, Quality::ARTEFACT), // body movement
            (0x0002, Quality::ARTEFACT), // cuff too loose
            (0x0004, Quality::GOOD),     // irregular pulse: a finding
            (0x0008, Quality::GOOD),     // pulse rate above the upper limit
            (0x0010, Quality::GOOD),     // below the lower limit
            (0x0020, Quality::ARTEFACT), // improper position
            (0xFFC0, Quality::GOOD),     // reserved
        ] {
            assert_eq!(BpmStatus::from_bits(bits).quality(), quality, "{bits:#06x}");
        }
        assert_eq!(
            BpmStatus::from_bits(0x0018).pulse_rate_range,
            PulseRateRange::Undefined
        );
        assert_eq!(
            BpmStatus::from_bits(0x0008).pulse_rate_range,
            PulseRateRange::AboveUpperLimit
        );
    }

    #[test]
    fn bp_feature() {
        assert_eq!(blood_pressure_feature(&[0x3F, 0x00]), Ok(0x003F));
        assert_eq!(
            decode(
                GattCharacteristic::BloodPressureFeature,
                &[0x21, 0x01],
                None
            ),
            Ok(GattValue::BloodPressureFeature(0x0121))
        );
        assert_eq!(
            decode_error(GattCharacteristic::BloodPressureFeature, &[0x3F], None),
            malformed(1, "blood_pressure_feature: need 2 bytes, got 1")
        );
    }

    // ---- §3 Pulse oximetry

    const CONT: GattCharacteristic = GattCharacteristic::PlxContinuous;
    const SPOT: GattCharacteristic = GattCharacteristic::PlxSpotCheck;

    fn plx(spo2: Option<f64>, pr: Option<f64>, pi: Option<Option<f64>>, q: Quality) -> Sample {
        let mut values = vec![(Vital::Spo2, spo2), (Vital::PulseRate, pr)];
        if let Some(pi) = pi {
            values.push((Vital::PerfusionIndex, pi));
        }
        sample(&values, q)
    }

    // §3.4 vectors 1 and 2 [T]: one value, two encodings.
    #[test]
    fn plx_vectors_1_and_2() {
        let v1 = [0x00, 0xE8, 0xF3, 0x84, 0xF3];
        let v2 = [0x00, 0x64, 0x00, 0x5A, 0x00];
        assert_eq!(
            plx_continuous(&v1).unwrap(),
            PlxContinuous {
                normal: Spo2Pr {
                    spo2: SFloat::Number(100.0),
                    pulse_rate: SFloat::Number(90.0)
                },
                fast: None,
                slow: None,
                measurement_status: None,
                device_sensor_status: None,
                pulse_amplitude_index: None,
            }
        );
        let expected = plx(Some(100.0), Some(90.0), None, Quality::GOOD);
        assert_eq!(decode_sample(CONT, &v1, None), expected);
        assert_eq!(decode_sample(CONT, &v2, None), expected);
    }

    // §3.4 vector 3 [T].
    #[test]
    fn plx_vector_3_status_and_pai() {
        let payload = [
            0x1C, 0x5F, 0x00, 0x5A, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x57, 0xF0,
        ];
        let m = plx_continuous(&payload).unwrap();
        assert_eq!(
            m.measurement_status,
            Some(MeasurementStatus::MEASUREMENT_ONGOING)
        );
        assert_eq!(m.device_sensor_status, Some(DeviceSensorStatus(0)));
        assert_eq!(m.pulse_amplitude_index, Some(SFloat::Number(8.7)));
        assert_eq!(
            decode_sample(CONT, &payload, None),
            plx(Some(95.0), Some(90.0), Some(Some(8.7)), Quality::GOOD)
        );
        // Cut before the PAI's last byte.
        assert_eq!(
            decode_error(CONT, &payload[..11], None),
            malformed(
                11,
                "plx_continuous_measurement: flags 0x1c need 12 bytes, got 11"
            )
        );
    }

    /// SPEZI `testFullMeasurementCoding` [T] (§3.4's vector 4, not spelled out there): every
    /// field.
    #[test]
    fn plx_spezi_full_continuous() {
        let payload = [
            31, 222, 243, 202, 243, 202, 243, 90, 245, 212, 243, 178, 242, 32, 1, 0, 0, 0, 122, 227,
        ];
        let pair = |spo2, pulse_rate| Spo2Pr {
            spo2: SFloat::Number(spo2),
            pulse_rate: SFloat::Number(pulse_rate),
        };
        assert_eq!(
            plx_continuous(&payload).unwrap(),
            PlxContinuous {
                normal: pair(99.0, 97.0),
                fast: Some(pair(97.0, 137.0)),
                slow: Some(pair(98.0, 69.0)),
                measurement_status: Some(MeasurementStatus(
                    MeasurementStatus::MEASUREMENT_ONGOING.0
                        | MeasurementStatus::FULLY_QUALIFIED_DATA.0
                )),
                device_sensor_status: Some(DeviceSensorStatus(0)),
                pulse_amplitude_index: Some(SFloat::Number(8.9)),
            }
        );
        assert_eq!(
            decode_sample(CONT, &payload, None),
            plx(Some(99.0), Some(97.0), Some(Some(8.9)), Quality::GOOD)
        );
    }

    /// SPEZI `testSpotCheckMeasurementCoding` [T] (§3.4's vector 5): a spot check with a
    /// timestamp, questionable measurement, equipment malfunction and low perfusion.
    #[test]
    fn plx_spezi_spot_check() {
        let payload = [
            15, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57, 32, 64, 34, 0, 0, 102, 227,
        ];
        let m = plx_spot_check(&payload).unwrap();
        assert_eq!(
            m,
            PlxSpotCheck {
                reading: Spo2Pr {
                    spo2: SFloat::Number(94.0),
                    pulse_rate: SFloat::Number(147.0)
                },
                timestamp: utc(2024, 11, 29, 23, 8, 57),
                device_clock_not_set: false,
                measurement_status: Some(MeasurementStatus(0x4020)),
                device_sensor_status: Some(DeviceSensorStatus(0x000022)),
                pulse_amplitude_index: Some(SFloat::Number(8.7)),
            }
        );
        let mut expected = plx(
            Some(94.0),
            Some(147.0),
            Some(Some(8.7)),
            Quality::ARTEFACT | Quality::LOW_PERFUSION,
        );
        expected.device_time = utc(2024, 11, 29, 23, 8, 57);
        assert_eq!(decode_sample(SPOT, &payload, None), expected);
    }

    // [D] Spot check, flags 0x03 (timestamp, measurement status): SpO2 96, PR 64, taken
    // 31 January 2025 08:15:30, status 0x0200 (from storage, kept as it is). With flags bit 4
    // (device clock not set) the same bytes have no time.
    #[test]
    fn plx_spot_check_timestamp_and_clock_not_set_by_hand() {
        let mut payload = [
            0x03, 0x60, 0x00, 0x40, 0x00, 0xE9, 0x07, 0x01, 0x1F, 0x08, 0x0F, 0x1E, 0x00, 0x02,
        ];
        let mut expected = plx(Some(96.0), Some(64.0), None, Quality::GOOD);
        expected.device_time = utc(2025, 1, 31, 8, 15, 30);
        assert_eq!(decode_sample(SPOT, &payload, None), expected);
        let m = plx_spot_check(&payload).unwrap();
        assert!(!m.device_clock_not_set);
        assert_eq!(
            m.measurement_status,
            Some(MeasurementStatus::FROM_MEASUREMENT_STORAGE)
        );

        payload[0] = 0x13;
        let m = plx_spot_check(&payload).unwrap();
        assert!(m.device_clock_not_set);
        assert_eq!(m.timestamp, None);
        expected.device_time = None;
        assert_eq!(decode_sample(SPOT, &payload, None), expected);

        assert_eq!(
            decode_error(SPOT, &payload[..12], None),
            malformed(
                12,
                "plx_spot_check_measurement: flags 0x13 need 14 bytes, got 12"
            )
        );
    }

    // §3.4 vector 6 [T].
    #[test]
    fn plx_vector_6_features() {
        let payload = [0xA3, 0x00, 0x40, 0x10, 0x80, 0x01, 0x00];
        let features = PlxFeatures {
            supported: 0x00A3,
            measurement_status_support: Some(MeasurementStatus(0x1040)),
            device_sensor_status_support: Some(DeviceSensorStatus(0x000180)),
        };
        assert_eq!(plx_features(&payload), Ok(features));
        assert_eq!(
            decode(GattCharacteristic::PlxFeatures, &payload, None),
            Ok(GattValue::PlxFeatures(features))
        );
        assert_eq!(
            decode_error(GattCharacteristic::PlxFeatures, &payload[..6], None),
            malformed(
                6,
                "plx_features: supported features 0x00a3 need 7 bytes, got 6"
            )
        );
        assert_eq!(
            decode_error(GattCharacteristic::PlxFeatures, &[0xA3], None),
            malformed(1, "plx_features: need 2 bytes of supported features, got 1")
        );
        // No support fields: just the two bytes.
        assert_eq!(
            plx_features(&[0x40, 0x00]),
            Ok(PlxFeatures {
                supported: PlxFeatures::PULSE_AMPLITUDE_INDEX,
                measurement_status_support: None,
                device_sensor_status_support: None,
            })
        );
    }

    // §3.4 vector 7 [D]: sensor disconnected, measurement unavailable.
    #[test]
    fn plx_vector_7_sensor_off() {
        let payload = [0x0C, 0xFF, 0x07, 0xFF, 0x07, 0x00, 0x20, 0x00, 0x80, 0x00];
        let m = plx_continuous(&payload).unwrap();
        assert_eq!(m.normal.spo2, SFloat::NaN);
        assert_eq!(
            m.measurement_status,
            Some(MeasurementStatus::MEASUREMENT_UNAVAILABLE)
        );
        assert_eq!(
            m.device_sensor_status,
            Some(DeviceSensorStatus::SENSOR_DISCONNECTED)
        );
        assert_eq!(
            decode_sample(CONT, &payload, None),
            plx(None, None, None, Quality::SEARCHING | Quality::SENSOR_OFF)
        );
        // Vector 6's device supports neither bit: both are meaningless to it.
        let v6 = plx_features(&[0xA3, 0x00, 0x40, 0x10, 0x80, 0x01, 0x00]).unwrap();
        assert_eq!(
            decode_sample(CONT, &payload, Some(&v6)),
            plx(None, None, None, Quality::GOOD)
        );
    }

    // [D] Flags 0x08 (device and sensor status): SpO2 97, PR 72, status 0x008000 (sensor
    // disconnected). Trusted without features; masked out by features that support only low
    // perfusion (`03 00 | 00 00 | 20 00 00`), or no device status at all (`00 00`).
    #[test]
    fn plx_sensor_disconnected_masked_by_features_by_hand() {
        let payload = [0x08, 0x61, 0x00, 0x48, 0x00, 0x00, 0x80, 0x00];
        assert_eq!(
            decode_sample(CONT, &payload, None),
            plx(None, None, None, Quality::SENSOR_OFF)
        );
        let low_perfusion_only = plx_features(&[0x03, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00]).unwrap();
        assert_eq!(
            low_perfusion_only.device_sensor_status_support,
            Some(DeviceSensorStatus::LOW_PERFUSION)
        );
        let none = plx_features(&[0x00, 0x00]).unwrap();
        for features in [&low_perfusion_only, &none] {
            assert_eq!(
                decode_sample(CONT, &payload, Some(features)),
                plx(Some(97.0), Some(72.0), None, Quality::GOOD),
                "{features:?}"
            );
        }
        // A supported bit still counts: low perfusion plus (unsupported) sensor disconnected.
        let both = [0x08, 0x61, 0x00, 0x48, 0x00, 0x20, 0x80, 0x00];
        assert_eq!(
            decode_sample(CONT, &both, Some(&low_perfusion_only)),
            plx(Some(97.0), Some(72.0), None, Quality::LOW_PERFUSION)
        );
    }

    /// Each status bit alone, in a continuous measurement of 97 / 72 with a PAI of 2.5.
    #[test]
    fn plx_status_bits_to_quality() {
        let measurement = |bits: u16| {
            let [lo, hi] = bits.to_le_bytes();
            decode_sample(
                CONT,
                &[0x14, 0x61, 0x00, 0x48, 0x00, lo, hi, 0x19, 0xF0],
                None,
            )
        };
        let kept = |q| plx(Some(97.0), Some(72.0), Some(Some(2.5)), q);
        let withheld = |q| plx(None, None, Some(None), q);
        for bit in 0..16 {
            let expected = match bit {
                15 => withheld(Quality::ARTEFACT),
                14 | 10 | 11 => kept(Quality::ARTEFACT),
                13 => withheld(Quality::SEARCHING),
                12 => kept(Quality::SEARCHING),
                _ => kept(Quality::GOOD),
            };
            assert_eq!(
                measurement(1 << bit),
                expected,
                "measurement status bit {bit}"
            );
        }
        let device = |bits: u32| {
            let [a, b, c, _] = bits.to_le_bytes();
            decode_sample(
                CONT,
                &[0x18, 0x61, 0x00, 0x48, 0x00, a, b, c, 0x19, 0xF0],
                None,
            )
        };
        for bit in 0..24 {
            let expected = match bit {
                11 | 13 | 15 => withheld(Quality::SENSOR_OFF),
                5 => kept(Quality::LOW_PERFUSION),
                1..=4 | 6..=8 | 10 | 12 | 14 => kept(Quality::ARTEFACT),
                _ => kept(Quality::GOOD),
            };
            assert_eq!(
                device(1 << bit),
                expected,
                "device and sensor status bit {bit}"
            );
        }
    }

    #[test]
    fn plx_invalid_payloads() {
        assert_eq!(
            decode_error(CONT, &[0x00, 0xE8, 0xF3, 0x84], None),
            malformed(
                4,
                "plx_continuous_measurement: flags 0x00 need 5 bytes, got 4"
            )
        );
        assert_eq!(
            decode_error(CONT, &[0x03, 0xE8, 0xF3, 0x84, 0xF3, 0, 0, 0, 0], None),
            malformed(
                9,
                "plx_continuous_measurement: flags 0x03 need 13 bytes, got 9"
            )
        );
        assert_eq!(
            decode_error(SPOT, &[0x01, 0xE8, 0xF3, 0x84, 0xF3], None),
            malformed(
                5,
                "plx_spot_check_measurement: flags 0x01 need 12 bytes, got 5"
            )
        );
        assert_eq!(
            decode_error(CONT, &[0x00, 0x65, 0x00, 0x48, 0x00], None),
            DecodeError {
                kind: DecodeErrorKind::Implausible,
                skipped: 5,
                detail: "plx_continuous_measurement: spo2 101 is outside its plausible range \
                         0–100 %"
                    .into()
            }
        );
    }

    // ---- §4 Heart rate, battery

    const HR: GattCharacteristic = GattCharacteristic::HeartRateMeasurement;

    fn pulse(value: Option<f64>, quality: Quality) -> Sample {
        sample(&[(Vital::PulseRate, value)], quality)
    }

    // §4 vectors 1, 2, 3 and 5 [T].
    #[test]
    fn hr_vectors() {
        assert_eq!(
            heart_rate(&[0x00, 0x55]),
            Ok(HeartRate {
                bpm: 85,
                sensor_contact: SensorContact::NotSupported,
                energy_expended_kj: None,
                rr_intervals: vec![],
            })
        );
        assert_eq!(
            decode_sample(HR, &[0x00, 0x55], None),
            pulse(Some(85.0), Quality::GOOD)
        );

        assert_eq!(
            heart_rate(&[0x04, 0xFF]).map(|hr| (hr.bpm, hr.sensor_contact)),
            Ok((255, SensorContact::NotDetected))
        );
        assert_eq!(
            decode_sample(HR, &[0x04, 0xFF], None),
            pulse(None, Quality::SENSOR_OFF)
        );

        let v3 = [0x1E, 0x55, 0x32, 0x00, 0x21, 0x00];
        assert_eq!(
            heart_rate(&v3),
            Ok(HeartRate {
                bpm: 85,
                sensor_contact: SensorContact::Detected,
                energy_expended_kj: Some(50),
                rr_intervals: vec![33],
            })
        );
        assert_eq!(
            decode_sample(HR, &v3, None),
            pulse(Some(85.0), Quality::GOOD)
        );

        assert_eq!(
            decode_error(HR, &[0x17, 0x01, 0x01], None),
            malformed(3, "heart_rate_measurement: flags 0x17 need 5 bytes, got 3")
        );
    }

    // [D] u16 heart rate: `01 2C 01` → 300 bpm; with RR intervals 1024 and 512 (1 s, ½ s).
    #[test]
    fn hr_u16_and_rr_by_hand() {
        assert_eq!(
            decode_sample(HR, &[0x01, 0x2C, 0x01], None),
            pulse(Some(300.0), Quality::GOOD)
        );
        assert_eq!(
            heart_rate(&[0x11, 0x2C, 0x01, 0x00, 0x04, 0x00, 0x02]),
            Ok(HeartRate {
                bpm: 300,
                sensor_contact: SensorContact::NotSupported,
                energy_expended_kj: None,
                rr_intervals: vec![1024, 512],
            })
        );
        // Contact bits 01 are "not supported" too.
        assert_eq!(
            heart_rate(&[0x02, 60]).map(|hr| hr.sensor_contact),
            Ok(SensorContact::NotSupported)
        );
        assert_eq!(
            decode_error(HR, &[0x10, 0x48, 0x00, 0x04, 0x00], None),
            malformed(
                5,
                "heart_rate_measurement: flags 0x10: RR intervals are 2 bytes each, 3 bytes left"
            )
        );
        assert_eq!(
            decode_error(HR, &[0x01, 0x90, 0x01], None),
            DecodeError {
                kind: DecodeErrorKind::Implausible,
                skipped: 3,
                detail: "heart_rate_measurement: pulse_rate 400 is outside its plausible range \
                         0–350 /min"
                    .into()
            }
        );
        assert_eq!(
            decode_error(HR, &[0x01, 0x2C], None),
            malformed(2, "heart_rate_measurement: flags 0x01 need 3 bytes, got 2")
        );
    }

    #[test]
    fn battery() {
        let c = GattCharacteristic::BatteryLevel;
        assert_eq!(decode(c, &[100], None), Ok(GattValue::Battery(100)));
        assert_eq!(decode(c, &[0], None), Ok(GattValue::Battery(0)));
        assert_eq!(
            decode_error(c, &[101], None),
            malformed(1, "battery_level: level 101 is over 100 %")
        );
        assert_eq!(
            decode_error(c, &[], None),
            malformed(0, "battery_level: need 1 byte, got 0")
        );
    }

    // ---- Properties

    fn any_features() -> impl Strategy<Value = PlxFeatures> {
        (any::<u16>(), any::<Option<u16>>(), any::<Option<u32>>()).prop_map(
            |(supported, measurement, device)| PlxFeatures {
                supported,
                measurement_status_support: measurement.map(MeasurementStatus),
                device_sensor_status_support: device.map(|d| DeviceSensorStatus(d & 0xFF_FFFF)),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever the payload: no panic; a sample's values are finite and plausible; an
        /// error skips the whole payload and names the characteristic.
        #[test]
        fn arbitrary_payloads_decode_or_fail_cleanly(
            payload in prop::collection::vec(any::<u8>(), 0..40),
            features in prop::option::of(any_features()),
        ) {
            for c in GattCharacteristic::ALL {
                match decode(c, &payload, features.as_ref()) {
                    Ok(GattValue::Sample(sample)) => {
                        for (vital, value) in sample.values {
                            let Some(value) = value else { continue };
                            let (low, high) = vital.plausible_range();
                            prop_assert!(value.is_finite() && (low..=high).contains(&value),
                                "{c}: {vital} {value}");
                        }
                    }
                    Ok(GattValue::CuffPressure { mmhg: Some(mmhg) }) => {
                        prop_assert!(mmhg.is_finite() && (0.0..=350.0).contains(&mmhg));
                    }
                    Ok(GattValue::Battery(level)) => prop_assert!(level <= 100),
                    Ok(_) => {}
                    Err(error) => {
                        prop_assert_eq!(error.skipped, payload.len());
                        prop_assert!(error.detail.starts_with(c.name()), "{}", error.detail);
                        prop_assert!(matches!(
                            error.kind,
                            DecodeErrorKind::Malformed | DecodeErrorKind::Implausible
                        ));
                    }
                }
            }
        }
    }

    /// An SFLOAT as mantissa and exponent.
    fn any_sfloat() -> impl Strategy<Value = (i16, i8)> {
        (-2048i16..=2047, -8i8..=7)
    }

    fn encode_sfloat((mantissa, exponent): (i16, i8)) -> [u8; 2] {
        let raw = ((exponent as u16 & 0x000F) << 12) | (mantissa as u16 & 0x0FFF);
        raw.to_le_bytes()
    }

    /// What an SFLOAT means, worked out apart from [`sfloat`]: the specials by their raw
    /// mantissas, a number by parsing its decimal text (which rounds once, as it must).
    fn meaning((mantissa, exponent): (i16, i8)) -> SFloat {
        match (mantissa, exponent) {
            (2047, 0) => SFloat::NaN,
            (-2048, 0) => SFloat::NRes,
            (2046, 0) => SFloat::PositiveInfinity,
            (-2046, 0) => SFloat::NegativeInfinity,
            (-2047, 0) => SFloat::Reserved,
            _ => SFloat::Number(format!("{mantissa}e{exponent}").parse().unwrap()),
        }
    }

    #[derive(Debug, Clone)]
    struct BpmFields {
        kpa: bool,
        pressures: [(i16, i8); 3],
        timestamp: Option<(u16, u8, u8, u8, u8, u8)>,
        pulse: Option<(i16, i8)>,
        user: Option<u8>,
        status: Option<u16>,
        /// Flag bits 5–7, reserved: must be ignored.
        reserved: u8,
        /// Bytes after the last field: must be ignored.
        trailing: Vec<u8>,
    }

    fn any_bpm() -> impl Strategy<Value = BpmFields> {
        (
            any::<bool>(),
            [any_sfloat(), any_sfloat(), any_sfloat()],
            prop::option::of((
                1582u16..=9999,
                1u8..=12,
                1u8..=28,
                0u8..24,
                0u8..60,
                0u8..60,
            )),
            prop::option::of(any_sfloat()),
            any::<Option<u8>>(),
            any::<Option<u16>>(),
            0u8..8,
            prop::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(
                |(kpa, pressures, timestamp, pulse, user, status, reserved, trailing)| BpmFields {
                    kpa,
                    pressures,
                    timestamp,
                    pulse,
                    user,
                    status,
                    reserved,
                    trailing,
                },
            )
    }

    /// The test-only encoder.
    fn encode_bpm(f: &BpmFields) -> Vec<u8> {
        let mut flags = f.reserved << 5;
        let mut out = vec![0];
        if f.kpa {
            flags |= BP_KPA;
        }
        for p in f.pressures {
            out.extend(encode_sfloat(p));
        }
        if let Some((year, month, day, h, m, s)) = f.timestamp {
            flags |= BP_TIMESTAMP;
            out.extend(year.to_le_bytes());
            out.extend([month, day, h, m, s]);
        }
        if let Some(pulse) = f.pulse {
            flags |= BP_PULSE_RATE;
            out.extend(encode_sfloat(pulse));
        }
        if let Some(user) = f.user {
            flags |= BP_USER_ID;
            out.push(user);
        }
        if let Some(status) = f.status {
            flags |= BP_STATUS;
            out.extend(status.to_le_bytes());
        }
        out[0] = flags;
        out.extend(&f.trailing);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any valid blood pressure measurement decodes to the fields it was encoded from.
        #[test]
        fn blood_pressure_round_trips(f in any_bpm()) {
            let payload = encode_bpm(&f);
            let bp = blood_pressure(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let pressure = |p| match meaning(p) {
                SFloat::Number(x) if f.kpa => SFloat::Number(x / KPA_PER_MMHG),
                other => other,
            };
            prop_assert_eq!(bp.unit, if f.kpa { PressureUnit::Kpa } else { PressureUnit::Mmhg });
            prop_assert_eq!(bp.systolic, pressure(f.pressures[0]));
            prop_assert_eq!(bp.diastolic, pressure(f.pressures[1]));
            prop_assert_eq!(bp.mean_arterial, pressure(f.pressures[2]));
            let time = f.timestamp.and_then(|(y, mo, d, h, mi, s)| {
                utc(i32::from(y), mo.into(), d.into(), h.into(), mi.into(), s.into())
            });
            prop_assert_eq!(bp.timestamp, time);
            prop_assert_eq!(bp.pulse_rate, f.pulse.map(meaning));
            prop_assert_eq!(bp.user_id, f.user);
            let status = bp.status.map(|s| {
                (s.body_movement, s.cuff_too_loose, s.irregular_pulse, s.improper_position)
            });
            let bits = f.status.map(|b| (b & 1 != 0, b & 2 != 0, b & 4 != 0, b & 0x20 != 0));
            prop_assert_eq!(status, bits);

            // Through `decode`: the same numbers as a sample, or implausible.
            let mut values = vec![
                (Vital::Systolic, pressure(f.pressures[0]).number()),
                (Vital::Diastolic, pressure(f.pressures[1]).number()),
                (Vital::MeanArterial, pressure(f.pressures[2]).number()),
            ];
            if let Some(p) = f.pulse {
                values.push((Vital::PulseRate, meaning(p).number()));
            }
            let plausible = values.iter().all(|&(vital, value)| {
                let (low, high) = vital.plausible_range();
                value.is_none_or(|x| (low..=high).contains(&x))
            });
            let artefact = f.status.is_some_and(|b| b & 0x23 != 0);
            match decode(BPM, &payload, None) {
                Ok(GattValue::Sample(s)) => {
                    prop_assert!(plausible);
                    prop_assert_eq!(s.values, values);
                    prop_assert_eq!(s.quality, if artefact { Quality::ARTEFACT } else { Quality::GOOD });
                    prop_assert_eq!(s.device_time, time);
                }
                Err(e) => {
                    prop_assert!(!plausible);
                    prop_assert_eq!(e.kind, DecodeErrorKind::Implausible);
                }
                Ok(other) => prop_assert!(false, "{other:?}"),
            }
            // Every cut short of the promised length is refused.
            let promised = payload.len() - f.trailing.len();
            for cut in 0..promised {
                prop_assert!(blood_pressure(&payload[..cut]).is_err(), "cut at {}", cut);
            }
        }
    }
}
