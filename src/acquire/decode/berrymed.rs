//! BerryMed BM1000-series BLE oximeters ("BCI protocol"). See protocols.md §8.1.
//!
//! For the bytes the oximeter notifies on [`NOTIFY`]; not for scanning (the device advertises
//! the name "BerryMed", not its service), or for the pleth, signal strength and bargraph, which
//! are dropped. Notifications may split or join frames, so this is a byte-stream [`Decoder`].
//!
//! Five-byte frames at 100 Hz, framed like the Contec legacy stream (bit 7 set on the first byte
//! only; the same framer). One sample per frame, as Contec legacy gives one per frame at 60 Hz:
//! thinning is the daemon's business, not the decoder's. Byte 1 bit 4 (no signal), byte 1 bit 5
//! (probe unplugged) and byte 3 bit 4 (no finger) → [`Quality::SENSOR_OFF`] with no values;
//! byte 3 bit 5 (pulse search) → [`Quality::SEARCHING`]. PR takes its bit 7 from byte 3 bit 6;
//! PR 0xFF and SpO2 0x7F mean no value [BCI v1.2].

use super::contec::Legacy;
use super::framing::{Discards, FrameSink, Framed, emit};
use super::{Decoded, Decoder, Sample};
use crate::acquire::ble::Uuid;
use crate::vitals::{Quality, Vital};

/// The Microchip "transparent UART" service [ADA `adafruit_ble_transparent_uart.py`].
pub const SERVICE: Uuid = Uuid::from_u128(0x49535343_FE7D_4AE5_8FA9_9FAFD205E455);
/// The device sends its frames here.
pub const NOTIFY: Uuid = Uuid::from_u128(0x49535343_1E4D_4BD9_BA61_23C647249616);
/// The device receives here (no command is needed for the live stream).
pub const WRITE: Uuid = Uuid::from_u128(0x49535343_8841_43F4_A8D4_ECBE34729BB3);

pub fn decoder() -> Box<dyn Decoder> {
    Box::new(Framed::<Legacy, BciSink, 5>::new(BciSink))
}

/// No-value marks [BCI v1.2].
const PR_INVALID: u16 = 0xFF;
const SPO2_INVALID: u8 = 0x7F;

// Status bits [BCI v1.2].
const B1_NO_SIGNAL: u8 = 0x10;
const B1_PROBE_UNPLUGGED: u8 = 0x20;
const B3_NO_FINGER: u8 = 0x10;
const B3_PULSE_SEARCH: u8 = 0x20;
const B3_PR_BIT7: u8 = 0x40;

struct BciSink;

impl FrameSink for BciSink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        if let &[b1, _pleth, b3, b4, b5] = frame {
            emit(bci_sample(b1, b3, b4, b5), frame.len(), discards, out);
        }
    }
}

fn bci_sample(b1: u8, b3: u8, b4: u8, b5: u8) -> Sample {
    let sensor_off = b1 & (B1_NO_SIGNAL | B1_PROBE_UNPLUGGED) != 0 || b3 & B3_NO_FINGER != 0;
    let mut quality = Quality::GOOD;
    if sensor_off {
        quality |= Quality::SENSOR_OFF;
    }
    if b3 & B3_PULSE_SEARCH != 0 {
        quality |= Quality::SEARCHING;
    }
    let pr = (u16::from(b3 & B3_PR_BIT7) << 1) | u16::from(b4 & 0x7F);
    let spo2 = b5 & 0x7F;
    let (spo2, pr) = if sensor_off {
        (None, None)
    } else {
        (
            (spo2 != SPO2_INVALID).then_some(f64::from(spo2)),
            (pr != PR_INVALID).then_some(f64::from(pr)),
        )
    };
    Sample {
        values: vec![(Vital::Spo2, spo2), (Vital::PulseRate, pr)],
        quality,
        device_time: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acquire::decode::testing::*;
    use crate::acquire::decode::{DecodeError, DecodeErrorKind};

    fn spo2_pr(spo2: Option<f64>, pr: Option<f64>, quality: Quality) -> Sample {
        sample(&[(Vital::Spo2, spo2), (Vital::PulseRate, pr)], quality)
    }

    /// §8.1 vector 1: signal 5, beep, pleth 50, bargraph 6, PR 143, SpO2 98.
    pub const VECTOR_1: [u8; 5] = [0xC5, 0x32, 0x46, 0x0F, 0x62];

    /// A frame with the given status bits in bytes 1 and 3.
    fn frame(b1: u8, b3: u8, pr: u16, spo2: u8) -> [u8; 5] {
        [
            0x80 | b1,
            0x32,
            b3 | (((pr & 0x80) >> 1) as u8),
            (pr & 0x7F) as u8,
            spo2,
        ]
    }

    // §8.1 vectors [D].
    #[test]
    fn vectors() {
        assert_eq!(
            only_sample(&mut *decoder(), &VECTOR_1),
            spo2_pr(Some(98.0), Some(143.0), Quality::GOOD)
        );
        assert_eq!(
            only_sample(&mut *decoder(), &[0x80, 0x00, 0x40, 0x7F, 0x7F]),
            spo2_pr(None, None, Quality::GOOD),
            "PR 0xFF and SpO2 0x7F mean no value"
        );
        assert_eq!(frame(0x45, 0x06, 143, 98), VECTOR_1);
    }

    #[test]
    fn status_bits() {
        for (b1, b3, quality) in [
            (B1_NO_SIGNAL, 0, Quality::SENSOR_OFF),
            (B1_PROBE_UNPLUGGED, 0, Quality::SENSOR_OFF),
            (0, B3_NO_FINGER, Quality::SENSOR_OFF),
            (
                B1_NO_SIGNAL,
                B3_PULSE_SEARCH,
                Quality::SENSOR_OFF | Quality::SEARCHING,
            ),
        ] {
            assert_eq!(
                only_sample(&mut *decoder(), &frame(b1, b3, 72, 97)),
                spo2_pr(None, None, quality),
                "b1 {b1:02x} b3 {b3:02x}"
            );
        }
        assert_eq!(
            only_sample(&mut *decoder(), &frame(0, B3_PULSE_SEARCH, 72, 97)),
            spo2_pr(Some(97.0), Some(72.0), Quality::SEARCHING)
        );
        // Signal strength (b1 bits 0–3), beep (b1 bit 6) and bargraph (b3 bits 0–3) are not
        // status.
        assert_eq!(
            only_sample(&mut *decoder(), &frame(0x4F, 0x0F, 254, 100)),
            spo2_pr(Some(100.0), Some(254.0), Quality::GOOD)
        );
        // SpO2 over 100 that is not the no-value mark is an implausible frame.
        let out = feed_all(&mut *decoder(), &frame(0, 0, 72, 101));
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Implausible);
        assert_eq!(errors(&out)[0].skipped, 5);
    }

    #[test]
    fn notifications_split_and_join_frames() {
        let a = VECTOR_1;
        let b = frame(0, 0, 61, 95);
        let c = frame(0, B3_NO_FINGER, 0xFF, 0x7F);
        // Garbage, a frame that lost its last two bytes, and frames joined and split.
        let stream = [&[0x01, 0x7F][..], &a, &b[..3], &b, &c, &a].concat();
        let out = assert_split_invariant(&decoder, &stream);
        let good = spo2_pr(Some(98.0), Some(143.0), Quality::GOOD);
        assert_eq!(
            samples(&out),
            after_garbage(vec![
                good.clone(),
                spo2_pr(Some(95.0), Some(61.0), Quality::GOOD),
                spo2_pr(None, None, Quality::SENSOR_OFF),
                good,
            ])
        );
        assert_eq!(
            errors(&out),
            vec![
                DecodeError {
                    kind: DecodeErrorKind::Garbage,
                    skipped: 2,
                    detail: "bytes that begin no frame".into()
                },
                DecodeError {
                    kind: DecodeErrorKind::Framing,
                    skipped: 3,
                    detail: "frame cut short by the next frame's sync byte (a byte was lost)"
                        .into()
                },
            ]
        );
    }

    #[test]
    fn uuids() {
        assert_eq!(SERVICE.to_string(), "49535343-fe7d-4ae5-8fa9-9fafd205e455");
        assert_eq!(NOTIFY.to_string(), "49535343-1e4d-4bd9-ba61-23c647249616");
        assert_eq!(WRITE.to_string(), "49535343-8841-43f4-a8d4-ecbe34729bb3");
    }
}
