//! Serial-protocol decoders: bytes from a device in, samples and decode errors out.
//!
//! For turning what a monitor writes on its serial line (Nonin, Contec, Masimo, or any
//! text-printing device described by a regular expression) into [`Sample`]s. Not for I/O,
//! clocks, port settings or retries: a decoder is a pure state machine, fed whatever byte
//! slices the transport happened to read, and it decodes the same however the stream is split.
//!
//! Every decoder
//! - holds at most [`Decoder::buffer_cap`] bytes (a fixed cap: a flood of garbage never grows
//!   its memory), and allocates only per sample or per error reported, never per byte;
//! - resynchronises after garbage or a lost byte: it drops the first byte of a candidate frame
//!   that fails and scans the rest again, so a frame that began inside the refused bytes still
//!   decodes;
//! - reports skipped bytes as [`Decoded::Error`]s, in runs of at most 128 bytes, each run when
//!   the next frame or line decodes or when it is full (so a lone bad frame is reported with
//!   the next good one);
//! - reports a device's "unavailable" (Nonin 127/511, Masimo `---`, Contec 0x7F or finger out)
//!   as `None`, never as a number, and a value outside [`Vital::plausible_range`] as an
//!   [`DecodeErrorKind::Implausible`] error for the whole frame or line, never as a reading.

pub mod contec;
mod framing;
pub mod line;
pub mod masimo;
pub mod nonin;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::vitals::{Quality, Vital};

/// Values a device reported together in one frame, packet or line (one sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Each vital the frame carries; `None` when the device says the value is unavailable.
    pub values: Vec<(Vital, Option<f64>)>,
    pub quality: Quality,
    /// The device's own clock, when the protocol carries one.
    pub device_time: Option<DateTime<Utc>>,
}

impl Sample {
    /// The value reported for `vital`: `None` if the sample does not carry it, `Some(None)` if
    /// the device says it is unavailable.
    pub fn value(&self, vital: Vital) -> Option<Option<f64>> {
        self.values
            .iter()
            .find(|(v, _)| *v == vital)
            .map(|(_, x)| *x)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Sample(Sample),
    Error(DecodeError),
}

/// Bytes a decoder could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// How many bytes of the stream were discarded.
    pub skipped: usize,
    /// For a technician's log: what was wrong with the first of them.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// Bytes that begin no frame (noise, a wrong baud rate, the tail of a frame cut off when
    /// the port opened).
    Garbage,
    /// A frame whose sync or header bits are wrong, or cut short by the start of the next
    /// frame (a lost byte).
    Framing,
    /// A complete frame whose checksum does not match.
    Checksum,
    /// Valid frames that do not make a whole packet (a Nonin packet broken off, or frames
    /// before the first packet start).
    IncompletePacket,
    /// A line that does not have the protocol's shape, or a field that is not a number.
    Malformed,
    /// A frame or line with a value outside its vital's plausible range.
    Implausible,
    /// A line longer than the protocol's limit.
    TooLong,
}

impl DecodeErrorKind {
    /// The name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::Garbage => "garbage",
            DecodeErrorKind::Framing => "framing",
            DecodeErrorKind::Checksum => "checksum",
            DecodeErrorKind::IncompletePacket => "incomplete_packet",
            DecodeErrorKind::Malformed => "malformed",
            DecodeErrorKind::Implausible => "implausible",
            DecodeErrorKind::TooLong => "too_long",
        }
    }
}

/// A device protocol's decoder: a pure state machine, without clock or I/O.
pub trait Decoder: Send {
    /// Takes the next bytes of the stream (any amount, split anywhere) and appends what they
    /// complete to `out`, in stream order.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>);
    /// Bytes held back for a frame, packet or line not yet complete.
    fn buffered(&self) -> usize;
    /// The most [`Decoder::buffered`] can ever be.
    fn buffer_cap(&self) -> usize;
}

/// The protocol a device speaks, as written in a device profile, for example
/// `protocol = { family = "nonin", format = "df2" }` or
/// `protocol = { family = "line", pattern = 'SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+)' }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Protocol {
    Nonin {
        format: nonin::Format,
    },
    Contec {
        format: contec::Format,
    },
    /// Masimo ASCII 1 lines (Rad-8, Radical-7, Rad-87 and the Rad-8 trend download).
    Masimo,
    /// Any text-printing device, described by a regular expression.
    Line(line::LineSpec),
}

/// A decoder for `protocol`. Only the generic line decoder can fail (its pattern may not
/// compile or may name something that is not a vital).
pub fn decoder(protocol: &Protocol) -> Result<Box<dyn Decoder>, line::LineSpecError> {
    Ok(match protocol {
        Protocol::Nonin { format } => nonin::decoder(*format),
        Protocol::Contec { format } => contec::decoder(*format),
        Protocol::Masimo => masimo::decoder(),
        Protocol::Line(spec) => Box::new(line::LineDecoder::new(spec)?),
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the family modules' tests.

    use super::*;

    pub fn feed_all(decoder: &mut dyn Decoder, bytes: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        decoder.feed(bytes, &mut out);
        assert!(decoder.buffered() <= decoder.buffer_cap());
        out
    }

    pub fn samples(out: &[Decoded]) -> Vec<Sample> {
        out.iter()
            .filter_map(|d| match d {
                Decoded::Sample(s) => Some(s.clone()),
                Decoded::Error(_) => None,
            })
            .collect()
    }

    pub fn errors(out: &[Decoded]) -> Vec<DecodeError> {
        out.iter()
            .filter_map(|d| match d {
                Decoded::Error(e) => Some(e.clone()),
                Decoded::Sample(_) => None,
            })
            .collect()
    }

    /// The one sample `bytes` decode to, with no errors.
    pub fn only_sample(decoder: &mut dyn Decoder, bytes: &[u8]) -> Sample {
        let out = feed_all(decoder, bytes);
        match out.as_slice() {
            [Decoded::Sample(s)] => s.clone(),
            other => panic!("expected one sample, got {other:?}"),
        }
    }

    pub fn sample(values: &[(Vital, Option<f64>)], quality: Quality) -> Sample {
        Sample {
            values: values.to_vec(),
            quality,
            device_time: None,
        }
    }

    /// Feeds `stream` whole, then split in two at every byte boundary, then one byte at a
    /// time: the outputs must all be equal (errors included). Returns the output.
    pub fn assert_split_invariant(
        make: &dyn Fn() -> Box<dyn Decoder>,
        stream: &[u8],
    ) -> Vec<Decoded> {
        let whole = feed_all(&mut *make(), stream);
        for cut in 0..=stream.len() {
            let mut decoder = make();
            let mut out = feed_all(&mut *decoder, &stream[..cut]);
            out.extend(feed_all(&mut *decoder, &stream[cut..]));
            assert_eq!(out, whole, "split at byte {cut}");
        }
        let mut decoder = make();
        let mut out = Vec::new();
        for &b in stream {
            out.extend(feed_all(&mut *decoder, &[b]));
        }
        assert_eq!(out, whole, "byte by byte");
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_deserialise_from_profile_toml() {
        #[derive(Deserialize)]
        struct Profile {
            protocol: Protocol,
        }
        let parse = |text: &str| toml::from_str::<Profile>(text).map(|p| p.protocol);
        assert_eq!(
            parse(r#"protocol = { family = "nonin", format = "df2" }"#).unwrap(),
            Protocol::Nonin {
                format: nonin::Format::Df2
            }
        );
        assert_eq!(
            parse(r#"protocol = { family = "contec", format = "v7" }"#).unwrap(),
            Protocol::Contec {
                format: contec::Format::V7
            }
        );
        assert_eq!(
            parse(r#"protocol = { family = "masimo" }"#).unwrap(),
            Protocol::Masimo
        );
        let line = parse(
            r#"protocol = { family = "line", pattern = 'SYS=(?P<systolic>\d+)', scale = { systolic = 1.0 } }"#,
        )
        .unwrap();
        assert!(matches!(&line, Protocol::Line(spec) if spec.pattern == r"SYS=(?P<systolic>\d+)"));
        assert!(decoder(&line).is_ok());
        assert!(parse(r#"protocol = { family = "nonin", format = "df9" }"#).is_err());
        assert!(parse(r#"protocol = { family = "philips" }"#).is_err());
        assert!(parse(r#"protocol = { family = "line", pattern = 'x', colour = 1 }"#).is_err());
    }

    #[test]
    fn a_bad_line_pattern_fails_at_construction() {
        let protocol = Protocol::Line(line::LineSpec {
            pattern: "SYS=(?P<sistolic>\\d+)".into(),
            ..line::LineSpec::default()
        });
        let error = decoder(&protocol).err().expect("unknown group is refused");
        assert!(error.to_string().contains("sistolic"), "{error}");
    }
}
