//! Jumper JPD-500F BLE oximeter. See protocols.md §8.2.
//!
//! For the bytes the oximeter notifies on [`NOTIFY`]; not for scanning (it advertises
//! [`SERVICE`]). Notifications may split or join frames, so this is a byte-stream [`Decoder`].
//!
//! Frames are `81 PR SpO2 PI`, with no checksum and no sync bit: a frame starts at any 0x81, and
//! everything else before one is garbage. PR 255 or more and SpO2 127 or more mean no value
//! [JMP; the Arduino reader in protocols.md §8.2]; a SpO2 of 101–126 is implausible. The device
//! is reported to send other packets (starting 0x80, layout unknown) on the same
//! characteristic; a 0x81 inside one would start a false frame, so a false reading is possible
//! until the stream resynchronises, and nothing here can rule that out.

use super::framing::{Discards, FrameFormat, FrameSink, Framed, Reject, emit};
use super::{Decoded, Decoder, Sample};
use crate::acquire::ble::Uuid;
use crate::vitals::{Quality, Vital};

/// Advertised by the device.
pub const SERVICE: Uuid = Uuid::from_u128(0xcdeacb80_5235_4c07_8846_93a37ee6b86d);
/// The device sends its frames here.
pub const NOTIFY: Uuid = Uuid::from_u128(0xcdeacb81_5235_4c07_8846_93a37ee6b86d);

pub fn decoder() -> Box<dyn Decoder> {
    Box::new(Framed::<Jpd, JpdSink, 4>::new(JpdSink))
}

const FRAME_START: u8 = 0x81;
/// PR at or above this, and SpO2 at or above [`SPO2_NO_VALUE`], mean no value.
const PR_NO_VALUE: u8 = 255;
const SPO2_NO_VALUE: u8 = 127;

pub(super) struct Jpd;

impl FrameFormat for Jpd {
    /// No checksum and no sync bit beyond the 0x81 lead.
    const CONFIRM_AFTER_SKIP: usize = 3;
    fn starts(first: u8) -> bool {
        first == FRAME_START
    }
    fn frame_len(_: u8) -> usize {
        4
    }
    fn fits(_: &[u8], _: u8) -> Result<(), Reject> {
        Ok(())
    }
    fn check(_: &[u8]) -> Result<(), Reject> {
        Ok(())
    }
}

struct JpdSink;

impl FrameSink for JpdSink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        if let &[_, pr, spo2, pi] = frame {
            emit(jpd_sample(pr, spo2, pi), frame.len(), discards, out);
        }
    }
}

fn jpd_sample(pr: u8, spo2: u8, pi: u8) -> Sample {
    Sample {
        values: vec![
            (
                Vital::Spo2,
                (spo2 < SPO2_NO_VALUE).then_some(f64::from(spo2)),
            ),
            (
                Vital::PulseRate,
                (pr < PR_NO_VALUE).then_some(f64::from(pr)),
            ),
            // Tenths of a percent: an unconfirmed reading of the Arduino reader's comment
            // ("PI ×10"); 0x44 → 6.8 % is at least a typical perfusion index. 0 is no value.
            (
                Vital::PerfusionIndex,
                (pi != 0).then_some(f64::from(pi) / 10.0),
            ),
        ],
        quality: Quality::GOOD,
        device_time: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acquire::decode::testing::*;
    use crate::acquire::decode::{DecodeError, DecodeErrorKind};

    /// §8.2 vector [C]: PR 56, SpO2 99, PI 6.8 (if PI is in tenths).
    pub const VECTOR: [u8; 4] = [0x81, 0x38, 0x63, 0x44];

    fn reading(spo2: Option<f64>, pr: Option<f64>, pi: Option<f64>) -> Sample {
        sample(
            &[
                (Vital::Spo2, spo2),
                (Vital::PulseRate, pr),
                (Vital::PerfusionIndex, pi),
            ],
            Quality::GOOD,
        )
    }

    #[test]
    fn vector() {
        assert_eq!(
            only_sample(&mut *decoder(), &VECTOR),
            reading(Some(99.0), Some(56.0), Some(6.8))
        );
    }

    #[test]
    fn no_value_marks() {
        for (frame, expected) in [
            ([0x81, 255, 99, 68], reading(Some(99.0), None, Some(6.8))),
            ([0x81, 56, 127, 68], reading(None, Some(56.0), Some(6.8))),
            ([0x81, 56, 255, 68], reading(None, Some(56.0), Some(6.8))),
            ([0x81, 56, 99, 0], reading(Some(99.0), Some(56.0), None)),
            (
                [0x81, 254, 100, 1],
                reading(Some(100.0), Some(254.0), Some(0.1)),
            ),
        ] {
            assert_eq!(
                only_sample(&mut *decoder(), &frame),
                expected,
                "{frame:02x?}"
            );
        }
        let out = feed_all(&mut *decoder(), &[0x81, 56, 101, 68]);
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Implausible);
        assert_eq!(errors(&out)[0].skipped, 4);
    }

    #[test]
    fn garbage_and_other_packets_are_skipped() {
        // A 0x80 packet (layout unknown) without a 0x81 in it, then frames split and joined.
        let stream = [
            &[0x80, 0x10, 0x20, 0x30, 0x40, 0x50][..],
            &VECTOR,
            &[0x00],
            &VECTOR,
            &[0x81, 60, 97, 20],
        ]
        .concat();
        let out = assert_split_invariant(&decoder, &stream);
        let vector = reading(Some(99.0), Some(56.0), Some(6.8));
        assert_eq!(
            samples(&out),
            after_garbage(vec![
                vector.clone(),
                vector,
                reading(Some(97.0), Some(60.0), Some(2.0))
            ])
        );
        assert_eq!(
            errors(&out),
            vec![
                DecodeError {
                    kind: DecodeErrorKind::Garbage,
                    skipped: 6,
                    detail: "bytes that begin no frame".into()
                },
                DecodeError {
                    kind: DecodeErrorKind::Garbage,
                    skipped: 1,
                    detail: "bytes that begin no frame".into()
                },
            ]
        );
    }

    #[test]
    fn uuids() {
        assert_eq!(SERVICE.to_string(), "cdeacb80-5235-4c07-8846-93a37ee6b86d");
        assert_eq!(NOTIFY.to_string(), "cdeacb81-5235-4c07-8846-93a37ee6b86d");
    }
}
