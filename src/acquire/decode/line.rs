//! A generic decoder for text-printing monitors, its fields described by data: a regular
//! expression whose named groups are vitals, for example
//! `pattern = 'SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+)'`.
//!
//! For letting a clinic add a BP monitor or oximeter that prints lines, without writing Rust.
//! Not for devices whose quality or sensor state matters: a generic line carries no quality
//! flags, so its samples are always [`Quality::GOOD`]; use a dedicated family module for those.
//!
//! - Group names must be vital names (`spo2`, `pulse_rate`, `systolic`, …); an unknown name or
//!   a pattern that does not compile is refused when the decoder is built, with a message
//!   naming the group or quoting the regex error.
//! - A group may have a `scale` (for a device that prints PI × 10, say `0.1`).
//! - A group that did not take part in the match, or whose text is empty, made of `-`
//!   characters, or listed in `unavailable`, is unavailable (`None`).
//! - A line that does not match, or a group whose text is not a number, is a
//!   [`DecodeErrorKind::Malformed`] error; lines end at CR or LF and may be at most `max_line`
//!   bytes (longer ones are dropped up to their end).
//!
//! The pattern is searched for anywhere in the line; anchor it with `^…$` to match whole
//! lines. Matching is linear in the line's length (the `regex` crate has no backtracking).

use std::collections::BTreeMap;

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::framing::{LineFormat, Lined, is_dashes};
use super::{DecodeErrorKind, Decoded, Decoder, Sample};
use crate::vitals::{Quality, Vital};

/// A line format as written in a device profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    /// A regular expression (Rust `regex` syntax) with one named group per vital.
    pub pattern: String,
    /// A factor per group, applied to the number the device printed.
    #[serde(default)]
    pub scale: BTreeMap<String, f64>,
    /// Texts that mean "no value" in any group, besides empty and dashes (for example "0").
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// The longest line accepted, in bytes (1 to [`MAX_LINE_LIMIT`]).
    #[serde(default = "default_max_line")]
    pub max_line: usize,
}

impl Default for LineSpec {
    fn default() -> Self {
        LineSpec {
            pattern: String::new(),
            scale: BTreeMap::new(),
            unavailable: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

pub const DEFAULT_MAX_LINE: usize = 256;
pub const MAX_LINE_LIMIT: usize = 4096;
/// Compiled patterns larger than this are refused (the `regex` crate's own limit is 10 MiB).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineSpecError {
    #[error("line pattern does not compile: {0}")]
    Pattern(String),
    #[error("line pattern group `{group}` is not a vital: {reason}")]
    UnknownGroup { group: String, reason: String },
    #[error(
        "line pattern names no vital: add a named group such as (?P<spo2>\\d+) or (?P<systolic>\\d+)"
    )]
    NoVitals,
    #[error("scale for `{0}`: the pattern has no group of that name")]
    ScaleWithoutGroup(String),
    #[error("scale for `{group}` must be a finite number other than 0, got {scale}")]
    BadScale { group: String, scale: f64 },
    #[error("max_line must be 1 to {MAX_LINE_LIMIT} bytes, got {0}")]
    MaxLine(usize),
}

/// One named group: its index in the pattern, its vital and its scale.
#[derive(Debug, Clone)]
struct Field {
    group: usize,
    vital: Vital,
    scale: f64,
}

#[derive(Debug, Clone)]
struct Compiled {
    regex: Regex,
    fields: Vec<Field>,
    unavailable: Vec<String>,
}

/// The generic line decoder.
pub struct LineDecoder(Lined<Compiled>);

impl LineDecoder {
    pub fn new(spec: &LineSpec) -> Result<Self, LineSpecError> {
        if !(1..=MAX_LINE_LIMIT).contains(&spec.max_line) {
            return Err(LineSpecError::MaxLine(spec.max_line));
        }
        let regex = RegexBuilder::new(&spec.pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| LineSpecError::Pattern(e.to_string()))?;
        let mut fields = Vec::new();
        for (group, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            let vital = name
                .parse::<Vital>()
                .map_err(|reason| LineSpecError::UnknownGroup {
                    group: name.to_string(),
                    reason,
                })?;
            let scale = spec.scale.get(name).copied().unwrap_or(1.0);
            if !scale.is_finite() || scale == 0.0 {
                return Err(LineSpecError::BadScale {
                    group: name.to_string(),
                    scale,
                });
            }
            fields.push(Field {
                group,
                vital,
                scale,
            });
        }
        if fields.is_empty() {
            return Err(LineSpecError::NoVitals);
        }
        if let Some(name) = spec
            .scale
            .keys()
            .find(|name| !regex.capture_names().any(|n| n == Some(name.as_str())))
        {
            return Err(LineSpecError::ScaleWithoutGroup(name.clone()));
        }
        let compiled = Compiled {
            regex,
            fields,
            unavailable: spec.unavailable.clone(),
        };
        Ok(LineDecoder(Lined::new(compiled, spec.max_line)))
    }
}

impl Decoder for LineDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        self.0.feed(bytes, out);
    }
    fn buffered(&self) -> usize {
        self.0.buffered()
    }
    fn buffer_cap(&self) -> usize {
        self.0.buffer_cap()
    }
}

impl LineFormat for Compiled {
    fn parse(&self, line: &[u8]) -> Result<Sample, (DecodeErrorKind, String)> {
        let malformed = |why: String| (DecodeErrorKind::Malformed, why);
        let captures = self.regex.captures(line).ok_or_else(|| {
            malformed(format!(
                "line `{}` does not match the pattern",
                String::from_utf8_lossy(line)
            ))
        })?;
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let text = captures
                .get(field.group)
                .map(|m| String::from_utf8_lossy(m.as_bytes()));
            let text = text.as_deref().map(str::trim).unwrap_or("");
            let value =
                if text.is_empty() || is_dashes(text) || self.unavailable.iter().any(|u| u == text)
                {
                    None
                } else {
                    let number = text.parse::<f64>().ok().filter(|x| x.is_finite());
                    let number = number.ok_or_else(|| {
                        malformed(format!("{} text `{text}` is not a number", field.vital))
                    })?;
                    Some(number * field.scale)
                };
            values.push((field.vital, value));
        }
        Ok(Sample {
            values,
            quality: Quality::GOOD,
            device_time: None,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acquire::decode::testing::*;

    fn spec(pattern: &str) -> LineSpec {
        LineSpec {
            pattern: pattern.into(),
            ..LineSpec::default()
        }
    }

    pub const BP: &str = r"SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+)";

    fn bp() -> Box<dyn Decoder> {
        Box::new(LineDecoder::new(&spec(BP)).unwrap())
    }

    #[test]
    fn bp_lines() {
        assert_eq!(
            only_sample(&mut *bp(), b"SYS=120 DIA=80\r\n"),
            sample(
                &[
                    (Vital::Systolic, Some(120.0)),
                    (Vital::Diastolic, Some(80.0))
                ],
                Quality::GOOD
            )
        );
        // Searched anywhere in the line unless anchored.
        assert_eq!(
            only_sample(&mut *bp(), b"#12 SYS=135 DIA=95 MAP=108\n").value(Vital::Systolic),
            Some(Some(135.0))
        );
    }

    #[test]
    fn scale_unavailable_and_optional_groups() {
        let mut spec =
            spec(r"^SPO2=(?P<spo2>\S+) PR=(?P<pulse_rate>\S+)(?: PI=(?P<perfusion_index>\S+))?$");
        spec.scale.insert("perfusion_index".into(), 0.1);
        spec.unavailable.push("999".into());
        let mut d = LineDecoder::new(&spec).unwrap();
        let s = only_sample(&mut d, b"SPO2=97 PR=999 PI=68\r\n");
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, Some(97.0)),
                (Vital::PulseRate, None),
                (Vital::PerfusionIndex, Some(6.800000000000001)),
            ]
        );
        let s = only_sample(&mut d, b"SPO2=--- PR=72\r\n");
        assert_eq!(
            s.values,
            vec![
                (Vital::Spo2, None),
                (Vital::PulseRate, Some(72.0)),
                (Vital::PerfusionIndex, None),
            ]
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        let mut spec = spec(r"^SPO2=(?P<spo2>\S+)$");
        spec.max_line = 16;
        let mut d = LineDecoder::new(&spec).unwrap();
        for (line, kind) in [
            (&b"HELLO"[..], DecodeErrorKind::Malformed),
            (b"SPO2=9x", DecodeErrorKind::Malformed),
            (b"SPO2=inf", DecodeErrorKind::Malformed),
            (b"SPO2=120", DecodeErrorKind::Implausible),
            (b"SPO2=-1", DecodeErrorKind::Implausible),
        ] {
            let out = feed_all(&mut d, &[line, b"\n"].concat());
            assert_eq!(
                errors(&out)
                    .iter()
                    .map(|e| (e.kind, e.skipped))
                    .collect::<Vec<_>>(),
                vec![(kind, line.len())],
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let out = feed_all(&mut d, b"SPO2=97 and a great deal more\nSPO2=98\n");
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::TooLong);
        assert_eq!(errors(&out)[0].skipped, 29);
        assert_eq!(samples(&out)[0].value(Vital::Spo2), Some(Some(98.0)));
        assert!(d.buffer_cap() == 16);
    }

    #[test]
    fn construction_errors_name_the_problem() {
        let err = |spec: &LineSpec| LineDecoder::new(spec).err().unwrap().to_string();
        let e = err(&spec(r"SYS=(?P<sistolic>\d+)"));
        assert!(e.contains("`sistolic`") && e.contains("systolic"), "{e}");
        let e = err(&spec(r"SYS=(?P<systolic>\d+"));
        assert!(e.starts_with("line pattern does not compile"), "{e}");
        assert!(e.contains("unclosed group"), "{e}");
        let e = err(&spec(r"SYS=(\d+)"));
        assert!(e.contains("names no vital"), "{e}");
        let mut s = spec(BP);
        s.scale.insert("mean_arterial".into(), 1.0);
        assert!(err(&s).contains("`mean_arterial`"));
        let mut s = spec(BP);
        s.scale.insert("systolic".into(), 0.0);
        assert!(err(&s).contains("`systolic`"));
        let mut s = spec(BP);
        s.max_line = 0;
        assert!(err(&s).contains("max_line"));
        s.max_line = MAX_LINE_LIMIT + 1;
        assert!(err(&s).contains("max_line"));
    }

    #[test]
    fn garbage_long_lines_and_splits() {
        let stream = [
            &b"\xFF\xFEgarbage\r"[..],
            b"SYS=120 DIA=80\r\n",
            &[0xAA; 400],
            b"\r\nSYS=118 DIA=79\n\n\rSYS=121 DIA=82\r\n",
        ]
        .concat();
        let out = assert_split_invariant(&bp, &stream);
        let values: Vec<_> = samples(&out)
            .iter()
            .map(|s| s.value(Vital::Systolic).flatten())
            .collect();
        assert_eq!(values, vec![Some(120.0), Some(118.0), Some(121.0)]);
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Malformed, 9),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 16),
            ]
        );
    }
}
