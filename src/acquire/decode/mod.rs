//! Device-protocol decoders: bytes from a device in, samples and decode errors out.
//!
//! For turning what a monitor writes on its serial line (Nonin, Contec, Masimo, or any
//! text-printing device described by a regular expression) or notifies over Bluetooth LE
//! (BerryMed, Jumper and O2Ring oximeters) into [`Sample`]s; and, in [`gatt`], the standard
//! Bluetooth GATT characteristics (blood pressure, pulse oximetry, heart rate), which come one
//! whole value at a time and so are decoded per value, not as a stream. Not for I/O, clocks,
//! port settings or retries: a decoder is a pure state machine, fed whatever byte slices the
//! transport happened to read, and it decodes the same however the stream is split.
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

pub mod berrymed;
pub mod contec;
mod framing;
pub mod gatt;
pub mod jumper;
pub mod line;
pub mod masimo;
pub mod nonin;
pub mod o2ring;

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
    pub const ALL: [DecodeErrorKind; 7] = [
        DecodeErrorKind::Garbage,
        DecodeErrorKind::Framing,
        DecodeErrorKind::Checksum,
        DecodeErrorKind::IncompletePacket,
        DecodeErrorKind::Malformed,
        DecodeErrorKind::Implausible,
        DecodeErrorKind::TooLong,
    ];

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

    /// `samples` as a checksum-less decoder gives them within its confirmation after garbage:
    /// flagged artefact (see `FrameFormat::CONFIRM_AFTER_SKIP`).
    pub fn after_garbage(samples: Vec<Sample>) -> Vec<Sample> {
        samples
            .into_iter()
            .map(|mut s| {
                s.quality |= Quality::ARTEFACT;
                s
            })
            .collect()
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

/// The properties every decoder must keep, whatever bytes arrive: no panic, buffering within
/// its cap, skipped bytes never more than were fed, and a valid frame after arbitrary garbage
/// still decodes.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::framing::FrameFormat;
    use super::testing::sample;
    use super::*;

    /// An absolute ceiling on any decoder's buffer, whatever it says its cap is.
    const HARD_CAP: usize = line::MAX_LINE_LIMIT;

    /// Where a case's decoder comes from: a serial protocol as a device profile names it, or
    /// a BLE vendor decoder (those are chosen by the BLE driver, not by a `Protocol`).
    enum Source {
        Serial(Protocol),
        Ble(&'static str, fn() -> Box<dyn Decoder>),
    }

    impl std::fmt::Debug for Source {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Source::Serial(protocol) => write!(f, "{protocol:?}"),
                Source::Ble(name, _) => f.write_str(name),
            }
        }
    }

    impl Source {
        fn decoder(&self) -> Result<Box<dyn Decoder>, line::LineSpecError> {
            match self {
                Source::Serial(protocol) => decoder(protocol),
                Source::Ble(_, make) => Ok(make()),
            }
        }
    }

    struct Case {
        source: Source,
        /// A valid frame, packet or line.
        frame: Vec<u8>,
        expected: Sample,
        /// How many times the frame is fed after the garbage; the last must decode. 1 for
        /// formats with a byte only a frame start can hold. Checksum-framed formats (Nonin DF2,
        /// DF7) have none, so garbage ending in a frame's first bytes can, once in a few
        /// hundred, pass the checksum together with the start of the next real frame and
        /// swallow that packet: for them the property is that the packet sent twice decodes at
        /// least once. (Jumper and O2Ring say why they need their numbers.)
        copies: usize,
    }

    fn spo2_hr(spo2: f64, hr: f64, quality: Quality) -> Sample {
        sample(
            &[(Vital::Spo2, Some(spo2)), (Vital::PulseRate, Some(hr))],
            quality,
        )
    }

    fn nonin(format: nonin::Format) -> Case {
        use nonin::tests::{df2_packet, df7_packet, floats};
        let frame = match format {
            nonin::Format::Df2 => df2_packet(&[0x80; 25], &floats(97, 72)),
            nonin::Format::Df7 => df7_packet(&[0x80; 25], &floats(97, 72)),
            nonin::Format::Df8 => vec![0x94, 0x48, 0x5A, 0x21],
            nonin::Format::Ascii => b"\r\nSPO2=097 HR=072\r\n".to_vec(),
        };
        let expected = match format {
            nonin::Format::Df8 => spo2_hr(90.0, 72.0, Quality::LOW_PERFUSION | Quality::ARTEFACT),
            _ => spo2_hr(97.0, 72.0, Quality::GOOD),
        };
        let copies = match format {
            nonin::Format::Df2 | nonin::Format::Df7 => 2,
            nonin::Format::Df8 | nonin::Format::Ascii => 1,
        };
        Case {
            source: Source::Serial(Protocol::Nonin { format }),
            frame,
            expected,
            copies,
        }
    }

    /// Frames after garbage are flagged until the stream has proved itself
    /// (`FrameFormat::CONFIRM_AFTER_SKIP`): the copy after those decodes clean.
    fn contec(format: contec::Format) -> Case {
        let (frame, copies) = match format {
            contec::Format::Legacy => (
                contec::tests::legacy_frame(0, 0, 140, 97).to_vec(),
                <contec::Legacy as FrameFormat>::CONFIRM_AFTER_SKIP + 1,
            ),
            contec::Format::V7 => (
                contec::tests::live_packet(0, 140, 97).to_vec(),
                <contec::V7 as FrameFormat>::CONFIRM_AFTER_SKIP + 1,
            ),
        };
        Case {
            source: Source::Serial(Protocol::Contec { format }),
            frame,
            expected: spo2_hr(97.0, 140.0, Quality::GOOD),
            copies,
        }
    }

    fn masimo() -> Case {
        let mut expected = sample(
            &[
                (Vital::Spo2, Some(97.0)),
                (Vital::PulseRate, Some(64.0)),
                (Vital::PerfusionIndex, Some(11.82)),
            ],
            Quality::GOOD,
        );
        expected.device_time = chrono::DateTime::parse_from_rfc3339("2010-09-15T15:10:29Z")
            .ok()
            .map(|t| t.to_utc());
        Case {
            source: Source::Serial(Protocol::Masimo),
            frame: b"\r\n09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n"
                .to_vec(),
            expected,
            copies: 1,
        }
    }

    fn generic_line() -> Case {
        Case {
            source: Source::Serial(Protocol::Line(line::LineSpec {
                pattern: line::tests::BP.into(),
                ..line::LineSpec::default()
            })),
            frame: b"\r\nSYS=120 DIA=80\r\n".to_vec(),
            expected: sample(
                &[
                    (Vital::Systolic, Some(120.0)),
                    (Vital::Diastolic, Some(80.0)),
                ],
                Quality::GOOD,
            ),
            copies: 1,
        }
    }

    fn berrymed() -> Case {
        Case {
            source: Source::Ble("berrymed", berrymed::decoder),
            frame: berrymed::tests::VECTOR_1.to_vec(),
            expected: spo2_hr(98.0, 143.0, Quality::GOOD),
            // BerryMed frames like Contec legacy, with its confirmation after garbage.
            copies: <contec::Legacy as FrameFormat>::CONFIRM_AFTER_SKIP + 1,
        }
    }

    /// No checksum and no sync bit: garbage ending in 0x81 and a byte or two takes the real
    /// frame's first bytes for its own, so only the second copy is sure to decode, and it is
    /// flagged until the confirmation after garbage has passed.
    fn jumper() -> Case {
        Case {
            source: Source::Ble("jumper", jumper::decoder),
            frame: jumper::tests::VECTOR.to_vec(),
            expected: sample(
                &[
                    (Vital::Spo2, Some(99.0)),
                    (Vital::PulseRate, Some(56.0)),
                    (Vital::PerfusionIndex, Some(6.8)),
                ],
                Quality::GOOD,
            ),
            copies: 2 + <jumper::Jpd as FrameFormat>::CONFIRM_AFTER_SKIP,
        }
    }

    /// A header begun in the garbage takes its length from whatever follows, so it can hold
    /// the real replies until up to [`o2ring::MAX_REPLY`] bytes have come, fail its CRC, and
    /// only then let them be found; and like Nonin DF2 it can, once in 256, pass the CRC with
    /// a real reply's first bytes in it. So the reply is sent until more than that has come.
    fn o2ring() -> Case {
        let frame = o2ring::tests::reply(0, &o2ring::tests::comment_payload());
        Case {
            source: Source::Ble("o2ring", o2ring::decoder),
            copies: o2ring::MAX_REPLY / frame.len() + 2,
            frame,
            expected: spo2_hr(98.0, 66.0, Quality::GOOD),
        }
    }

    /// Garbage made of random bytes and of pieces of valid frames, some with a bit flipped:
    /// the pieces reach the decoders' deeper states far more often than random bytes do.
    fn garbage(material: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            (any::<usize>(), 0usize..48, any::<Option<(usize, u8)>>()).prop_map(
                move |(start, len, flip)| {
                    let start = start % material.len();
                    let end = (start + len).min(material.len());
                    let mut piece = material[start..end].to_vec();
                    if let (Some((at, bit)), false) = (flip, piece.is_empty()) {
                        let at = at % piece.len();
                        piece[at] ^= 1 << (bit % 8);
                    }
                    piece
                }
            ),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    fn check(case: &Case, garbage: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
        let Ok(mut decoder) = case.source.decoder() else {
            return Err(TestCaseError::fail("decoder construction failed"));
        };
        prop_assert!(decoder.buffer_cap() <= HARD_CAP);
        let mut out = Vec::new();
        let mut fed = 0;
        let mut rest = garbage;
        for &size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            decoder.feed(chunk, &mut out);
            fed += chunk.len();
            rest = tail;
            prop_assert!(decoder.buffered() <= decoder.buffer_cap());
        }
        for _ in 0..case.copies {
            decoder.feed(&case.frame, &mut out);
            fed += case.frame.len();
            prop_assert!(decoder.buffered() <= decoder.buffer_cap());
        }
        let mut skipped = 0;
        for item in &out {
            if let Decoded::Error(e) = item {
                prop_assert!(e.skipped > 0, "{e:?}");
                skipped += e.skipped;
            }
        }
        prop_assert!(skipped <= fed, "skipped {skipped} of {fed} bytes");
        prop_assert_eq!(out.last(), Some(&Decoded::Sample(case.expected.clone())));
        Ok(())
    }

    fn chunks() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..97, 1..8)
    }

    macro_rules! property {
        ($name:ident, $case:expr) => {
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]
                #[test]
                fn $name(
                    (garbage, chunks) in {
                        let case: Case = $case;
                        let mut material = case.frame.clone();
                        material.extend(&case.frame);
                        (garbage(material), chunks())
                    }
                ) {
                    check(&$case, &garbage, &chunks)?;
                }
            }
        };
    }

    property!(nonin_df2_survives_garbage, nonin(nonin::Format::Df2));
    property!(nonin_df7_survives_garbage, nonin(nonin::Format::Df7));
    property!(nonin_df8_survives_garbage, nonin(nonin::Format::Df8));
    property!(nonin_ascii_survives_garbage, nonin(nonin::Format::Ascii));
    property!(
        contec_legacy_survives_garbage,
        contec(contec::Format::Legacy)
    );
    property!(contec_v7_survives_garbage, contec(contec::Format::V7));
    property!(masimo_survives_garbage, masimo());
    property!(line_survives_garbage, generic_line());
    property!(berrymed_survives_garbage, berrymed());
    property!(jumper_survives_garbage, jumper());
    property!(o2ring_survives_garbage, o2ring());

    #[test]
    fn floods_of_garbage_stay_bounded() {
        // Half a megabyte of each decoder's worst case: bytes that start frames but never end
        // them, and a line that never ends. (A flood of Jumper's 0x81 is a stream of valid
        // frames, so its worst garbage is any other byte.)
        let floods: [(Case, u8); 11] = [
            (nonin(nonin::Format::Df2), 0x01),
            (nonin(nonin::Format::Df7), 0x81),
            (nonin(nonin::Format::Df8), 0x80),
            (nonin(nonin::Format::Ascii), b'x'),
            (contec(contec::Format::Legacy), 0x80),
            (contec(contec::Format::V7), 0x01),
            (masimo(), b'x'),
            (generic_line(), b'x'),
            (berrymed(), 0x80),
            (jumper(), 0x80),
            (o2ring(), 0x55),
        ];
        for (case, byte) in floods {
            let mut decoder = case.source.decoder().ok().unwrap();
            let flood = vec![byte; 4096];
            let mut out = Vec::new();
            for _ in 0..128 {
                out.clear();
                decoder.feed(&flood, &mut out);
                assert!(decoder.buffered() <= decoder.buffer_cap());
                // Reported in full runs, never one error per byte.
                assert!(
                    out.len() <= flood.len() / 64,
                    "{:?}: {}",
                    case.source,
                    out.len()
                );
            }
            out.clear();
            for _ in 0..case.copies {
                decoder.feed(&case.frame, &mut out);
            }
            assert_eq!(out.last(), Some(&Decoded::Sample(case.expected.clone())));
        }
    }

    /// Seeded noise (xorshift), the same on every run.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn noise_on_a_port_without_checksums_never_becomes_a_trusted_reading() {
        // Found by the fault tests: 16 MB of random bytes on a DF8 port decoded into tens of
        // thousands of plausible readings, and false SpO2 alarms. Each format without a
        // checksum now flags the frames after skipped bytes until enough clean ones in a row
        // have come; flagged readings never raise or clear an alarm.
        let flood = noise(4 << 20);
        let checksumless: [(&str, Box<dyn Decoder>); 5] = [
            ("nonin df8", nonin::decoder(nonin::Format::Df8)),
            ("contec legacy", contec::decoder(contec::Format::Legacy)),
            ("contec v7", contec::decoder(contec::Format::V7)),
            ("berrymed", berrymed::decoder()),
            ("jumper", jumper::decoder()),
        ];
        for (name, mut decoder) in checksumless {
            let mut out = Vec::new();
            let mut trusted = 0;
            let mut decoded = 0;
            for chunk in flood.chunks(4096) {
                decoder.feed(chunk, &mut out);
                for item in out.drain(..) {
                    if let Decoded::Sample(sample) = item {
                        decoded += 1;
                        if !sample.quality.contains(Quality::ARTEFACT) {
                            trusted += 1;
                        }
                    }
                }
            }
            assert_eq!(
                trusted, 0,
                "{name}: {trusted} of {decoded} readings from noise trusted"
            );
        }
    }

    #[test]
    fn after_garbage_a_checksumless_stream_is_trusted_again_once_it_proved_itself() {
        let frame = [0x80, 0x48, 0x61, 0x00]; // DF8: SpO2 97, pulse 72, status clean
        let confirm = <nonin::Df8 as FrameFormat>::CONFIRM_AFTER_SKIP;
        let mut decoder = nonin::decoder(nonin::Format::Df8);
        let mut out = Vec::new();
        decoder.feed(&[0x12, 0x7F], &mut out);
        for _ in 0..=confirm {
            decoder.feed(&frame, &mut out);
        }
        let flags: Vec<bool> = out
            .iter()
            .filter_map(|item| match item {
                Decoded::Sample(s) => Some(s.quality.contains(Quality::ARTEFACT)),
                Decoded::Error(_) => None,
            })
            .collect();
        let mut expected = vec![true; confirm];
        expected.push(false);
        assert_eq!(flags, expected);
    }
}
