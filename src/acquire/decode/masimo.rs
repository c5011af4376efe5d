//! Masimo Rad-8, Radical-7, Rad-87 and Radical-5 serial output in ASCII 1 mode, and the Rad-8
//! trend-download lines, which share its shape. See protocols.md §7.
//!
//! For the one-line-a-second numerics; not for ASCII 2 (the Rad-8's default, which must be
//! switched to ASCII 1 in its setup menu) or for port settings (9600 8N1).
//!
//! A line is `MM/dd/yy HH:mm:ss` followed by `TAG=value` fields. Field sets differ by model and
//! firmware, so fields are found by tag, in any order and case: `SPO2` (`SpO2` in trends),
//! `BPM` (`PR` in trends) and `PI` give the vitals (a trailing `%` is dropped); `EXC` gives the
//! quality; every other field (SN, SPCO, SPMET, DESAT, PIDELTA, PVI, ALARM, …) is ignored. A
//! value made of `-` characters is unavailable. The date and time become `device_time`, read as
//! UTC (the device's clock has no zone; `yy` is 20yy); a date that is not a calendar date (a
//! clock never set) leaves `device_time` empty but keeps the readings.
//!
//! ALARM (the device's own limit alarms, silence, low battery) does not make a reading
//! untrustworthy, so it sets no quality flag. EXC exception bits, hex (trend lines append
//! `:Name,Name`), map to quality as [`exception_quality`] says. In trend lines the device
//! writes `000` rather than dashes when it has no reading; so a zero reported together with
//! sensor off, no sensor or pulse search is unavailable, not a zero.

use chrono::{DateTime, NaiveDate, Utc};

use super::framing::{LineFormat, Lined, is_dashes, tagged_fields};
use super::{DecodeErrorKind, Decoder, Sample};
use crate::vitals::{Quality, Vital};

pub fn decoder() -> Box<dyn Decoder> {
    Box::new(Lined::new(Ascii1, MAX_LINE))
}

/// Longest line accepted. A Radical-7 line with every field is about 150 bytes.
pub const MAX_LINE: usize = 256;

/// EXC bits → quality flag [RAD8 manual p.4-24 for bits 0–11; MDPNP for the rest].
const EXCEPTIONS: &[(u32, Quality)] = &[
    (0x000001, Quality::SENSOR_OFF),    // no sensor
    (0x000002, Quality::SENSOR_OFF),    // defective sensor
    (0x000004, Quality::LOW_PERFUSION), // low perfusion
    (0x000008, Quality::SEARCHING),     // pulse search
    (0x000010, Quality::ARTEFACT),      // interference
    (0x000020, Quality::SENSOR_OFF),    // sensor off
    (0x000040, Quality::ARTEFACT),      // ambient light
    (0x000080, Quality::SENSOR_OFF),    // unrecognized sensor
    (0x000100, Quality::SENSOR_OFF),    // incompatible sensor (reserved on the Rad-8)
    // 0x000200 reserved
    (0x000400, Quality::ARTEFACT), // low signal IQ
    // 0x000800 Masimo SET mode on: informational, not a fault
    (0x001000, Quality::SENSOR_OFF), // no cable
    (0x002000, Quality::SENSOR_OFF), // cable life expired
    (0x004000, Quality::SENSOR_OFF), // incompatible cable
    (0x008000, Quality::SENSOR_OFF), // unrecognized cable
    (0x010000, Quality::SENSOR_OFF), // defective cable
    (0x020000, Quality::SEARCHING),  // sensor calibrating
    (0x040000, Quality::SENSOR_OFF), // sensor life expired
    (0x080000, Quality::SENSOR_OFF), // emitter temperature out of range
    (0x100000, Quality::SENSOR_OFF), // sensor current limit
                                     // 0x200000, 0x400000: SpCO / SpMet low confidence, vitals we do not read
];

/// The quality an EXC exception word says. No sensor, sensor off, and every sensor or cable
/// fault → sensor off; pulse search and sensor calibrating → searching; low perfusion → low
/// perfusion; interference, ambient light and low signal IQ → artefact. SET mode (0x800),
/// the reserved bit and SpCO/SpMet confidence set nothing.
pub fn exception_quality(exc: u32) -> Quality {
    EXCEPTIONS
        .iter()
        .filter(|(bit, _)| exc & bit != 0)
        .fold(Quality::GOOD, |q, (_, flag)| q | *flag)
}

struct Ascii1;

type Failure = (DecodeErrorKind, String);

fn malformed(why: String) -> Failure {
    (DecodeErrorKind::Malformed, why)
}

/// `MM/dd/yy HH:mm:ss`. `Err` if the text has not that shape; `Ok(None)` if it has the shape
/// but is no real date and time.
fn device_time(text: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let b = text.as_bytes();
    let shape = b.len() == 17
        && b.iter().enumerate().all(|(i, &c)| match i {
            2 | 5 => c == b'/',
            8 => c == b' ',
            11 | 14 => c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return Err(());
    }
    let n = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let year = 2000 + n(6) as i32;
    Ok(NaiveDate::from_ymd_opt(year, n(0), n(3))
        .and_then(|d| d.and_hms_opt(n(9), n(12), n(15)))
        .map(|t| t.and_utc()))
}

fn number(tag: &str, value: &str) -> Result<Option<f64>, Failure> {
    let value = value.strip_suffix('%').unwrap_or(value);
    if is_dashes(value) {
        return Ok(None);
    }
    let ok = !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    match value.parse::<f64>() {
        Ok(x) if ok => Ok(Some(x)),
        _ => Err(malformed(format!("{tag} value `{value}` is not a number"))),
    }
}

impl LineFormat for Ascii1 {
    fn parse(&self, line: &[u8]) -> Result<Sample, Failure> {
        let text = std::str::from_utf8(line).map_err(|_| malformed("line is not text".into()))?;
        let (stamp, fields) = match (text.get(..17), text.get(17..)) {
            (Some(stamp), Some(fields)) => (stamp, fields),
            _ => return Err(malformed(format!("line `{text}` has no date and time"))),
        };
        let device_time = device_time(stamp).map_err(|_| {
            malformed(format!(
                "`{stamp}` is not a date and time MM/dd/yy HH:mm:ss"
            ))
        })?;
        let mut values: Vec<(Vital, Option<f64>)> = Vec::with_capacity(3);
        let mut exc = None;
        for field in tagged_fields(fields) {
            let (tag, value) =
                field.map_err(|f| malformed(format!("field `{f}` is not TAG=value")))?;
            let vital = match tag.to_ascii_uppercase().as_str() {
                "SPO2" => Vital::Spo2,
                "BPM" | "PR" => Vital::PulseRate,
                "PI" => Vital::PerfusionIndex,
                "EXC" => {
                    let hex = value.split_once(':').map_or(value, |(hex, _)| hex);
                    let bits = u32::from_str_radix(hex, 16)
                        .map_err(|_| malformed(format!("EXC value `{value}` is not hex")))?;
                    if exc.replace(bits).is_some() {
                        return Err(malformed("EXC appears twice".into()));
                    }
                    continue;
                }
                _ => continue,
            };
            if values.iter().any(|(v, _)| *v == vital) {
                return Err(malformed(format!("{tag}: {vital} appears twice")));
            }
            values.push((vital, number(tag, value)?));
        }
        if values.is_empty() {
            return Err(malformed(format!(
                "line `{text}` has no SPO2, BPM or PI field"
            )));
        }
        let quality = exc.map_or(Quality::GOOD, exception_quality);
        if quality.intersects(Quality::SENSOR_OFF | Quality::SEARCHING) {
            for (_, value) in &mut values {
                if *value == Some(0.0) {
                    *value = None;
                }
            }
        }
        Ok(Sample {
            values,
            quality,
            device_time,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acquire::decode::testing::*;
    use crate::acquire::decode::{DecodeError, Decoded};
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    fn line(text: &str) -> Sample {
        only_sample(&mut *decoder(), format!("{text}\r\n").as_bytes())
    }

    fn error(text: &str) -> DecodeError {
        let out = feed_all(&mut *decoder(), format!("{text}\r\n").as_bytes());
        match out.as_slice() {
            [Decoded::Error(e)] => e.clone(),
            other => panic!("expected one error, got {other:?}"),
        }
    }

    // §7.1 vector 2 [C]: MDPNP's Radical-5 line.
    #[test]
    fn vector_2_radical_5() {
        let s = line("09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800");
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, Some(97.0)),
                (Vital::PulseRate, Some(64.0)),
                (Vital::PerfusionIndex, Some(11.82)),
            ]
        );
        // ALARM 0x20 (silenced) and EXC 0x800 (SET only): nothing wrong with the reading.
        assert_eq!(s.quality, Quality::GOOD);
        assert_eq!(s.device_time, at(2010, 9, 15, 15, 10, 29));
    }

    // §7.1 vector 4 [C]: the RAD8 README's Rad-8 line, no sensor.
    #[test]
    fn vector_4_rad8_no_sensor() {
        let s = line(
            "03/19/16 13:37:12 SN=0000093112 SPO2=---% BPM=--- DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000001",
        );
        assert_eq!(
            s.values,
            vec![(Vital::Spo2, None), (Vital::PulseRate, None)]
        );
        assert_eq!(s.quality, Quality::SENSOR_OFF);
        assert_eq!(s.device_time, at(2016, 3, 19, 13, 37, 12));
    }

    // §7.1 vector 5 [C]: RAD8's comment "SPO2 097, BPM 064, PI 00.80, ALARM 000018", written as
    // the ASCII 1 line it summarises. ALARM 0x18 (alarm active, PR below its low limit) is
    // the device's own alarm about a real value: it must not flag the reading.
    #[test]
    fn vector_5_device_alarm_is_not_a_quality_flag() {
        let s = line(
            "03/19/16 13:40:00 SN=0000093112 SPO2=097% BPM=064 PI=00.80% ALARM=000018 EXC=000000",
        );
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, Some(97.0)),
                (Vital::PulseRate, Some(64.0)),
                (Vital::PerfusionIndex, Some(0.8)),
            ]
        );
        assert_eq!(s.quality, Quality::GOOD);
    }

    // §7.1 vector 6 [C]: Rad-8 trend-download lines.
    #[test]
    fn vector_6_trend_lines() {
        let s = line("09/21/08 09:56:12 SpO2=097 PR=069 PI=04.69 EXC=800:SET");
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, Some(97.0)),
                (Vital::PulseRate, Some(69.0)),
                (Vital::PerfusionIndex, Some(4.69)),
            ]
        );
        assert_eq!(s.quality, Quality::GOOD);
        assert_eq!(s.device_time, at(2008, 9, 21, 9, 56, 12));
        let s = line("09/21/08 09:56:10 SpO2=000 PR=000 PI=00.00 EXC=828:Search,OffPat,SET");
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, None),
                (Vital::PulseRate, None),
                (Vital::PerfusionIndex, None),
            ]
        );
        assert_eq!(s.quality, Quality::SEARCHING | Quality::SENSOR_OFF);
        // The vector gives only "…EXC=C00:LowSigIQ,SET"; the values here are made up.
        let s = line("09/21/08 09:56:14 SpO2=093 PR=071 PI=01.10 EXC=C00:LowSigIQ,SET");
        assert_eq!(s.quality, Quality::ARTEFACT);
        assert_eq!(s.value(Vital::Spo2), Some(Some(93.0)));
    }

    #[test]
    fn exception_bits() {
        assert_eq!(exception_quality(0x001), Quality::SENSOR_OFF);
        assert_eq!(exception_quality(0x020), Quality::SENSOR_OFF);
        assert_eq!(exception_quality(0x008), Quality::SEARCHING);
        assert_eq!(exception_quality(0x004), Quality::LOW_PERFUSION);
        assert_eq!(exception_quality(0x010), Quality::ARTEFACT);
        assert_eq!(exception_quality(0x400), Quality::ARTEFACT);
        assert_eq!(exception_quality(0x800), Quality::GOOD);
        assert_eq!(exception_quality(0x200), Quality::GOOD);
        assert_eq!(exception_quality(0x600000), Quality::GOOD);
        assert_eq!(exception_quality(0x001000), Quality::SENSOR_OFF);
        assert_eq!(
            exception_quality(0x83C),
            Quality::LOW_PERFUSION | Quality::SEARCHING | Quality::ARTEFACT | Quality::SENSOR_OFF
        );
    }

    #[test]
    fn zero_is_a_value_when_the_sensor_is_fine() {
        // A zero without sensor-off or search is what the device said (PI 0.00 is possible).
        let s = line("09/21/08 09:56:12 SpO2=097 PR=069 PI=00.00 EXC=000");
        assert_eq!(s.value(Vital::PerfusionIndex), Some(Some(0.0)));
        // With low perfusion alone, too.
        let s = line("09/21/08 09:56:12 SpO2=097 PR=069 PI=00.00 EXC=004");
        assert_eq!(s.value(Vital::PerfusionIndex), Some(Some(0.0)));
    }

    #[test]
    fn fields_are_found_by_tag_in_any_order() {
        let s =
            line("01/02/24 03:04:05 EXC=000000 PVI=12 PI=2.5% SN=1 BPM=110 SPCO=--.-% SPO2=091%");
        assert_eq!(
            s.values,
            vec![
                (Vital::PerfusionIndex, Some(2.5)),
                (Vital::PulseRate, Some(110.0)),
                (Vital::Spo2, Some(91.0)),
            ]
        );
        // No EXC field (some models): the quality is only what the values say.
        let s = line("01/02/24 03:04:05 SPO2=091% BPM=110");
        assert_eq!(s.quality, Quality::GOOD);
        // A clock never set: the readings stay, without a device time.
        let s = line("00/00/00 00:00:00 SPO2=091% BPM=110");
        assert_eq!(s.device_time, None);
        assert_eq!(s.value(Vital::Spo2), Some(Some(91.0)));
    }

    #[test]
    fn bad_lines_are_errors() {
        let cases = [
            ("SPO2=097% BPM=064", DecodeErrorKind::Malformed),
            (
                "09/15/10 15:10 SPO2=097% BPM=064 EXC=0",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=0x7% BPM=064",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=-5% BPM=064",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=097% BPM=064 EXC=zz",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=097% SPO2=096%",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=097% BPM 064",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SN=1 ALARM=0 EXC=0",
                DecodeErrorKind::Malformed,
            ),
            (
                "09/15/10 15:10:29 SPO2=101% BPM=064",
                DecodeErrorKind::Implausible,
            ),
            (
                "09/15/10 15:10:29 SPO2=097% BPM=064 PI=31.00%",
                DecodeErrorKind::Implausible,
            ),
            (
                "09/15/10 15:10:29 SPO2=097% BPM=400",
                DecodeErrorKind::Implausible,
            ),
        ];
        for (text, kind) in cases {
            let e = error(text);
            assert_eq!(
                (e.kind, e.skipped),
                (kind, text.len()),
                "{text}: {}",
                e.detail
            );
        }
        assert_eq!(
            error("09/15/10 15:10:29 SPO2=101% BPM=064").detail,
            "spo2 101 is outside its plausible range 0–100 %"
        );
    }

    #[test]
    fn garbage_long_lines_and_splits() {
        let good = "09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n";
        let off = "09/15/10 15:10:30 SPO2=---% BPM=--- PI=--.--% ALARM=20 EXC=820\r\n";
        let stream = [
            "\x00\x7F}{noise".as_bytes(),
            b"\r\n",
            good.as_bytes(),
            &[b'#'; 300],
            b"\n",
            off.as_bytes(),
            &good.as_bytes()[..20],
            b"\r\n",
            good.as_bytes(),
        ]
        .concat();
        let out = assert_split_invariant(&decoder, &stream);
        let s = samples(&out);
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].values.iter().filter(|(_, v)| v.is_none()).count(), 3);
        assert_eq!(s[1].quality, Quality::SENSOR_OFF);
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Malformed, 9),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 44),
                (DecodeErrorKind::Malformed, 20),
            ]
        );
    }
}
