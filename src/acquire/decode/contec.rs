//! Contec CMS50D+/CMS50E/CMS50F USB-serial oximeters: the legacy one-way 5-byte stream and the
//! "V7.0" 9-byte request/response protocol. See protocols.md §6.
//!
//! For decoding the live stream, and for the command bytes a driver must send in V7 (start the
//! live stream, keep it alive); not for recorded-data download, for port settings (legacy
//! 19200 8O1, V7 115200 8N1) or for the pleth waveform, which is dropped. The two protocols
//! cannot be mixed: fed to the other's decoder, a stream yields errors and no samples.
//!
//! - Legacy: bit 7 is set on the first byte of each 5-byte frame only, so a lost byte shows up
//!   as a frame cut short by the next first byte. Finger out (byte 1 bit 4) and probe error
//!   (byte 3 bit 4) → [`Quality::SENSOR_OFF`] with no values; searching (byte 3 bit 5) →
//!   [`Quality::SEARCHING`]; "SpO2 dropping" (byte 1 bit 5) and the beep are informational.
//!   PR takes its bit 7 from byte 3 bit 6. SpO2 0x7F means invalid.
//! - V7: the type byte is the only byte with bit 7 clear; byte 1 (the "high byte") carries bit 7
//!   of each later byte. Packets of other types than live (0x01) are skipped whole, by their
//!   lengths from OSCAR; unknown types are garbage. The live packet's fields come only from
//!   reverse-engineering (MML, HRT, celiponcio): high byte bit 0 finger out, bit 1 searching /
//!   no valid data (both → no values), byte 5 PR, byte 6 SpO2.

use std::time::Duration;

use serde::Deserialize;

use super::framing::{Discards, FrameFormat, FrameSink, Framed, Reject, emit};
use super::{DecodeErrorKind, Decoded, Decoder, Sample};
use crate::vitals::{Quality, Vital};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// CMS50D+ firmware ≤ 4.5 and older CMS50E: 5-byte frames, 60 a second, unasked.
    Legacy,
    /// CMS50D+ firmware 4.6 and newer CMS50E/F: start with [`START_LIVE`], keep alive with
    /// [`KEEP_ALIVE`] every [`KEEP_ALIVE_EVERY`].
    V7,
}

pub fn decoder(format: Format) -> Box<dyn Decoder> {
    match format {
        Format::Legacy => Box::new(Framed::<Legacy, LegacySink, 5>::new(LegacySink)),
        Format::V7 => Box::new(Framed::<V7, V7Sink, 9>::new(V7Sink)),
    }
}

/// V7 command: start the live real-time stream [MML, HRT].
pub const START_LIVE: u8 = 0xA1;
/// V7 command: stop the live stream [OSCAR].
pub const STOP_LIVE: u8 = 0xA2;
/// V7 command: "still connected", sent while streaming [AndreasZachariae, HRT].
pub const KEEP_ALIVE: u8 = 0xAF;
/// How often the keep-alive is sent (about every 5 s in the sources).
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(5);

/// The 9 bytes that send V7 command `code` (such as [`START_LIVE`]): `7D 81 CC 80 80 80 80 80
/// 80` [OSCAR `sendCommand`].
pub const fn v7_command(code: u8) -> [u8; 9] {
    [0x7D, 0x81, 0x80 | code, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
}

/// Whether a byte is unavailable: SpO2 0x7F.
const SPO2_INVALID: u8 = 0x7F;

/// Bit 7 set on the first of five bytes only. BerryMed's BCI protocol frames the same way.
pub(super) struct Legacy;

impl FrameFormat for Legacy {
    /// No checksum; 60 (Contec) or 100 (BerryMed) frames a second: under half a second flagged.
    const CONFIRM_AFTER_SKIP: usize = 30;
    fn starts(first: u8) -> bool {
        first & 0x80 != 0
    }
    fn frame_len(_: u8) -> usize {
        5
    }
    fn fits(_: &[u8], byte: u8) -> Result<(), Reject> {
        if byte & 0x80 != 0 {
            return Err(Reject::new(
                DecodeErrorKind::Framing,
                "frame cut short by the next frame's sync byte (a byte was lost)",
            ));
        }
        Ok(())
    }
    fn check(_: &[u8]) -> Result<(), Reject> {
        Ok(())
    }
}

struct LegacySink;

impl FrameSink for LegacySink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        emit(legacy_sample(frame), frame.len(), discards, out);
    }
}

fn legacy_sample(f: &[u8]) -> Sample {
    let finger_out = f[0] & 0x10 != 0;
    let probe_error = f[2] & 0x10 != 0;
    let searching = f[2] & 0x20 != 0;
    let mut quality = Quality::GOOD;
    if finger_out || probe_error {
        quality |= Quality::SENSOR_OFF;
    }
    if searching {
        quality |= Quality::SEARCHING;
    }
    let pr = (u16::from(f[2] & 0x40) << 1) | u16::from(f[3] & 0x7F);
    let spo2 = f[4] & 0x7F;
    let (spo2, pr) = if finger_out || probe_error {
        (None, None)
    } else {
        (
            (spo2 != SPO2_INVALID).then_some(f64::from(spo2)),
            Some(f64::from(pr)),
        )
    };
    Sample {
        values: vec![(Vital::Spo2, spo2), (Vital::PulseRate, pr)],
        quality,
        device_time: None,
    }
}

const LIVE: u8 = 0x01;

/// A V7 packet's length by its type byte [OSCAR `processBytes`; live 0x01 from MML, HRT].
fn v7_len(kind: u8) -> Option<usize> {
    Some(match kind {
        0x01..=0x05 | 0x11 | 0x13 | 0x14 => 9,
        0x07 | 0x08 | 0x0F | 0x12 => 8,
        0x09 => 6,
        0x06 | 0x0A | 0x0B => 4,
        0x0E | 0x10 => 3,
        0x0C => 2,
        _ => return None,
    })
}

/// A V7 packet with the high-byte rule applied: byte `i ≥ 2` gets bit 7 from bit `i − 2` of
/// byte 1. Bytes 0 and 1 are returned as they are.
pub fn v7_unpack(packet: &[u8]) -> [u8; 9] {
    let mut v = [0u8; 9];
    for (i, (slot, &b)) in v.iter_mut().zip(packet).enumerate() {
        *slot = if i < 2 {
            b
        } else {
            (b & 0x7F) | (((packet[1] >> (i - 2)) & 1) << 7)
        };
    }
    v
}

pub(super) struct V7;

impl FrameFormat for V7 {
    /// No checksum, only the high-byte rule: flagged for a few packets after garbage.
    const CONFIRM_AFTER_SKIP: usize = 10;
    fn starts(first: u8) -> bool {
        first & 0x80 == 0 && v7_len(first).is_some()
    }
    fn frame_len(first: u8) -> usize {
        v7_len(first).unwrap_or(1)
    }
    fn fits(_: &[u8], byte: u8) -> Result<(), Reject> {
        if byte & 0x80 == 0 {
            return Err(Reject::new(
                DecodeErrorKind::Framing,
                "packet cut short by a byte with bit 7 clear (a byte was lost)",
            ));
        }
        Ok(())
    }
    fn check(_: &[u8]) -> Result<(), Reject> {
        Ok(())
    }
}

struct V7Sink;

impl FrameSink for V7Sink {
    fn frame(&mut self, packet: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        if packet[0] == LIVE {
            emit(live_sample(packet), packet.len(), discards, out);
        } else {
            // A reply to some command, or stored data: well-formed, not ours to decode.
            discards.flush(out);
        }
    }
}

fn live_sample(packet: &[u8]) -> Sample {
    let v = v7_unpack(packet);
    let finger_out = packet[1] & 0x01 != 0;
    let searching = packet[1] & 0x02 != 0;
    let mut quality = Quality::GOOD;
    if finger_out {
        quality |= Quality::SENSOR_OFF;
    }
    if searching {
        quality |= Quality::SEARCHING;
    }
    let (pr, spo2) = (v[5], v[6]);
    let (spo2, pr) = if finger_out || searching {
        (None, None)
    } else {
        (
            (spo2 != SPO2_INVALID).then_some(f64::from(spo2)),
            Some(f64::from(pr)),
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
    use crate::acquire::decode::DecodeError;
    use crate::acquire::decode::testing::*;

    fn legacy() -> Box<dyn Decoder> {
        decoder(Format::Legacy)
    }
    fn v7() -> Box<dyn Decoder> {
        decoder(Format::V7)
    }

    fn spo2_pr(spo2: Option<f64>, pr: Option<f64>, quality: Quality) -> Sample {
        sample(&[(Vital::Spo2, spo2), (Vital::PulseRate, pr)], quality)
    }

    /// A legacy frame as ATB's tests build it.
    pub fn legacy_frame(flags1: u8, flags3: u8, pr: u16, spo2: u8) -> [u8; 5] {
        [
            0x80 | flags1,
            0x20,
            flags3 | (((pr & 0x80) >> 1) as u8),
            (pr & 0x7F) as u8,
            spo2,
        ]
    }

    /// A V7 live packet with the high-byte rule applied to PR and SpO2.
    pub fn live_packet(flags: u8, pr: u8, spo2: u8) -> [u8; 9] {
        let high = 0xE0 | flags | ((pr >> 7) << 3) | ((spo2 >> 7) << 4);
        [
            0x01,
            high,
            0x85,
            0xD5,
            0x9A,
            0x80 | pr,
            0x80 | spo2,
            0xFF,
            0xFF,
        ]
    }

    // §6.3 vector 1 [T] (ATB unittests.py), through the stream decoder.
    #[test]
    fn legacy_vector_1_fields() {
        // Signal strength, pleth and bargraph are not vitals: each frame still decodes, good.
        for x in 0..16 {
            let s = only_sample(&mut *legacy(), &[0x80 | x, 0, 0, 0, 0]);
            assert_eq!(
                s,
                spo2_pr(Some(0.0), Some(0.0), Quality::GOOD),
                "signal {x}"
            );
            let s = only_sample(&mut *legacy(), &[0x80, 0, x, 0, 0]);
            assert_eq!(
                s,
                spo2_pr(Some(0.0), Some(0.0), Quality::GOOD),
                "bargraph {x}"
            );
        }
        for x in 0..128 {
            let s = only_sample(&mut *legacy(), &[0x80, x, 0, 0, 0]);
            assert_eq!(s.quality, Quality::GOOD, "pleth {x}");
        }
        assert_eq!(
            only_sample(&mut *legacy(), &[0x90, 0, 0, 0, 0]),
            spo2_pr(None, None, Quality::SENSOR_OFF),
            "finger out"
        );
        assert_eq!(
            only_sample(&mut *legacy(), &[0xA0, 0, 0, 0, 0]),
            spo2_pr(Some(0.0), Some(0.0), Quality::GOOD),
            "dropping SpO2 is informational"
        );
        assert_eq!(
            only_sample(&mut *legacy(), &[0xC0, 0, 0, 0, 0]),
            spo2_pr(Some(0.0), Some(0.0), Quality::GOOD),
            "beep"
        );
        assert_eq!(
            only_sample(&mut *legacy(), &[0x80, 0, 0x10, 0, 0]),
            spo2_pr(None, None, Quality::SENSOR_OFF),
            "probe error"
        );
        assert_eq!(
            only_sample(&mut *legacy(), &[0x80, 0, 0x20, 0, 0]),
            spo2_pr(Some(0.0), Some(0.0), Quality::SEARCHING),
            "searching"
        );
        for x in 0u16..=255 {
            let frame = [0x80, 0, ((x & 0x80) >> 1) as u8, (x & 0x7F) as u8, 0];
            let s = only_sample(&mut *legacy(), &frame);
            assert_eq!(
                s.value(Vital::PulseRate),
                Some(Some(f64::from(x))),
                "PR {x}"
            );
        }
        assert_eq!(
            only_sample(&mut *legacy(), &[0x80, 0x00, 0x40, 0x00, 0x00]).value(Vital::PulseRate),
            Some(Some(128.0))
        );
        for x in 0u8..128 {
            let out = feed_all(&mut *legacy(), &[0x80, 0, 0, 0, x]);
            match x {
                0..=100 => assert_eq!(
                    samples(&out)[0].value(Vital::Spo2),
                    Some(Some(f64::from(x)))
                ),
                127 => assert_eq!(samples(&out)[0].value(Vital::Spo2), Some(None)),
                _ => assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Implausible, "{x}"),
            }
        }
    }

    // §6.3 vector 1 [T]: the rejected packets. Length 4 is a frame cut short; any bit-7
    // pattern other than [1,0,0,0,0] yields no sample, and the frame after it decodes.
    #[test]
    fn legacy_vector_1_rejected_packets() {
        let good = legacy_frame(0, 0, 72, 97);
        let expected = spo2_pr(Some(97.0), Some(72.0), Quality::GOOD);
        let out = feed_all(&mut *legacy(), &[&[0x80, 0, 0, 0][..], &good].concat());
        assert_eq!(samples(&out), after_garbage(vec![expected.clone()]));
        assert_eq!(
            errors(&out),
            vec![DecodeError {
                kind: DecodeErrorKind::Framing,
                skipped: 4,
                detail: "frame cut short by the next frame's sync byte (a byte was lost)".into()
            }]
        );
        for pattern in 0u8..32 {
            if pattern == 0b10000 {
                continue;
            }
            let bad: Vec<u8> = (0..5)
                .map(|i| 0x05 | if pattern & (0x10 >> i) != 0 { 0x80 } else { 0 })
                .collect();
            let out = feed_all(&mut *legacy(), &[bad.as_slice(), &good].concat());
            assert_eq!(
                samples(&out),
                after_garbage(vec![expected.clone()]),
                "pattern {pattern:05b}"
            );
            assert_eq!(
                errors(&out).iter().map(|e| e.skipped).sum::<usize>(),
                5,
                "pattern {pattern:05b}"
            );
        }
    }

    // §6.3 vector 2 [T]: recorded-data records (`F0|hb, 80|lo, s`) and the download preamble
    // are not live frames: in the live decoder they give errors, never samples.
    #[test]
    fn legacy_vector_2_recorded_records_are_not_samples() {
        // ATB's rejected records, then the preamble and records as the device sends them.
        let mut stream = vec![0x00, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x00, 0x80, 0x00];
        stream.extend([0xF2, 0x80, 0x00].repeat(3));
        for (pr, spo2) in [(72u16, 97u8), (200, 88), (61, 99)] {
            stream.extend([0xF0 | (pr >> 7) as u8, 0x80 | (pr & 0x7F) as u8, spo2]);
        }
        let mut d = legacy();
        let out = feed_all(&mut *d, &stream);
        assert!(samples(&out).is_empty(), "{out:?}");
        let good = legacy_frame(0, 0, 72, 97);
        let out = [out, feed_all(&mut *d, &good)].concat();
        assert_eq!(samples(&out).len(), 1);
        assert_eq!(
            errors(&out).iter().map(|e| e.skipped).sum::<usize>(),
            stream.len()
        );
    }

    #[test]
    fn legacy_garbage_lost_bytes_and_splits() {
        let a = legacy_frame(0, 0, 72, 97);
        let b = legacy_frame(0, 0x20, 140, 93); // searching, PR with its bit 7
        let c = legacy_frame(0x10, 0, 0, 0x7F); // finger out
        // `b[..3]`: the frame's last two bytes are lost, so the next sync byte arrives early.
        let stream = [
            &[0x00, 0x7F, 0x33][..],
            &a,
            &b[..3],
            &a,
            &b,
            &[0x01, 0x02],
            &c,
            &a,
        ]
        .concat();
        let out = assert_split_invariant(&legacy, &stream);
        let good = spo2_pr(Some(97.0), Some(72.0), Quality::GOOD);
        assert_eq!(
            samples(&out),
            after_garbage(vec![
                good.clone(),
                good.clone(),
                spo2_pr(Some(93.0), Some(140.0), Quality::SEARCHING),
                spo2_pr(None, None, Quality::SENSOR_OFF),
                good,
            ])
        );
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Garbage, 3),
                (DecodeErrorKind::Framing, 3),
                (DecodeErrorKind::Garbage, 2),
            ]
        );
    }

    // §6.3 vector 4 [C]: MML's live packet: SpO2 99, PR 61 (not the comment's 53).
    #[test]
    fn v7_vector_4_live_packet() {
        let packet = [0x01, 0xE0, 0x85, 0xD5, 0x9A, 0xBD, 0xE3, 0xFF, 0xFF];
        assert_eq!(
            only_sample(&mut *v7(), &packet),
            spo2_pr(Some(99.0), Some(61.0), Quality::GOOD)
        );
        // Signal strength 5 (not a vital), and bytes 7–8 unpack to FF (high-byte bits 5, 6).
        let v = v7_unpack(&packet);
        assert_eq!(v[2] & 0x0F, 5);
        assert_eq!((v[7], v[8]), (0xFF, 0xFF));
        assert_eq!(live_packet(0, 61, 99), packet);
    }

    #[test]
    fn v7_flags_sentinel_and_high_bits() {
        assert_eq!(
            only_sample(&mut *v7(), &live_packet(0x01, 0, 0)),
            spo2_pr(None, None, Quality::SENSOR_OFF),
            "E1: finger out"
        );
        assert_eq!(
            only_sample(&mut *v7(), &live_packet(0x02, 70, 97)),
            spo2_pr(None, None, Quality::SEARCHING),
            "E2: no valid data"
        );
        assert_eq!(
            only_sample(&mut *v7(), &live_packet(0, 70, 0x7F)),
            spo2_pr(None, Some(70.0), Quality::GOOD),
            "SpO2 0x7F"
        );
        // PR above 127 takes its bit 7 from high-byte bit 3 (the framing rule; no source shows
        // one).
        let p = live_packet(0, 150, 95);
        assert_eq!(p[1], 0xE8);
        assert_eq!(
            only_sample(&mut *v7(), &p),
            spo2_pr(Some(95.0), Some(150.0), Quality::GOOD)
        );
        // SpO2 with bit 7 (high-byte bit 4) is past 100: an error.
        let out = feed_all(&mut *v7(), &live_packet(0, 70, 0xE3));
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Implausible);
        assert_eq!(errors(&out)[0].skipped, 9);
    }

    // §6.3 vector 5 [C]: a stored-data packet, three times SpO2 98 / PR 63 under the
    // high-byte rule; the live decoder skips it (it is not live data) and carries on.
    #[test]
    fn v7_vector_5_stored_packet_is_skipped() {
        let stored = [0x0F, 0x80, 0xE2, 0xBF, 0xE2, 0xBF, 0xE2, 0xBF, 0x00];
        let v = v7_unpack(&stored[..8]);
        assert_eq!(&v[2..8], &[98, 63, 98, 63, 98, 63]);
        let live = live_packet(0, 61, 99);
        let stream = [&live[..], &stored, &live].concat();
        let out = feed_all(&mut *v7(), &stream);
        assert_eq!(samples(&out).len(), 2);
        // OSCAR's length for 0x0F is 8; MML's trailing 00 is one byte of garbage.
        assert_eq!(
            errors(&out)
                .iter()
                .map(|e| (e.kind, e.skipped))
                .collect::<Vec<_>>(),
            vec![(DecodeErrorKind::Garbage, 1)]
        );
    }

    #[test]
    fn v7_other_packet_types_are_skipped_by_length() {
        let live = live_packet(0, 61, 99);
        // Replies of each known length, the bytes after the type with bit 7 set.
        let mut stream = live.to_vec();
        // OSCAR's lengths, as protocols.md §6.2 lists them.
        let lengths = [
            (0x02u8, 9),
            (0x03, 9),
            (0x04, 9),
            (0x05, 9),
            (0x06, 4),
            (0x07, 8),
            (0x08, 8),
            (0x09, 6),
            (0x0A, 4),
            (0x0B, 4),
            (0x0C, 2),
            (0x0E, 3),
            (0x0F, 8),
            (0x10, 3),
            (0x11, 9),
            (0x12, 8),
            (0x13, 9),
            (0x14, 9),
        ];
        for (kind, len) in lengths {
            stream.push(kind);
            stream.extend(std::iter::repeat_n(0x80, len - 1));
            stream.extend(live);
        }
        let out = assert_split_invariant(&v7, &stream);
        assert_eq!(samples(&out).len(), 19);
        assert!(errors(&out).is_empty(), "{out:?}");
        // 0x0D, 0x15 and 0x7F are no known type: garbage.
        let out = feed_all(&mut *v7(), &[&[0x0D, 0x15, 0x7F][..], &live].concat());
        assert_eq!(
            errors(&out),
            vec![DecodeError {
                kind: DecodeErrorKind::Garbage,
                skipped: 3,
                detail: "bytes that begin no frame".into()
            }]
        );
    }

    #[test]
    fn v7_garbage_lost_bytes_and_splits() {
        let a = live_packet(0, 61, 99);
        let b = live_packet(0, 150, 90);
        let mut lost = b.to_vec();
        lost.remove(4);
        let stream = [&[0xFF, 0x80, 0x55][..], &a, &lost, &a, &[0x01, 0x99], &b].concat();
        let out = assert_split_invariant(&v7, &stream);
        assert_eq!(
            samples(&out),
            after_garbage(vec![
                spo2_pr(Some(99.0), Some(61.0), Quality::GOOD),
                spo2_pr(Some(99.0), Some(61.0), Quality::GOOD),
                spo2_pr(Some(90.0), Some(150.0), Quality::GOOD),
            ])
        );
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Garbage, 3),
                (DecodeErrorKind::Framing, 8),
                (DecodeErrorKind::Framing, 2),
            ]
        );
    }

    // Pitfall 5: the two protocols cannot be mixed.
    #[test]
    fn legacy_and_v7_streams_do_not_decode_as_each_other() {
        let legacy_stream: Vec<u8> = (0..40u16)
            .flat_map(|i| legacy_frame((i % 16) as u8, (i % 16) as u8, 60 + i, 90 + (i % 10) as u8))
            .collect();
        let v7_stream: Vec<u8> = (0..40u8).flat_map(|i| live_packet(0, 60 + i, 95)).collect();
        assert_eq!(samples(&feed_all(&mut *legacy(), &legacy_stream)).len(), 40);
        assert_eq!(samples(&feed_all(&mut *v7(), &v7_stream)).len(), 40);
        assert!(samples(&feed_all(&mut *v7(), &legacy_stream)).is_empty());
        assert!(samples(&feed_all(&mut *legacy(), &v7_stream)).is_empty());
    }

    #[test]
    fn v7_commands() {
        assert_eq!(
            v7_command(START_LIVE),
            [0x7D, 0x81, 0xA1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        assert_eq!(
            v7_command(KEEP_ALIVE),
            [0x7D, 0x81, 0xAF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        assert_eq!(v7_command(STOP_LIVE)[2], 0xA2);
        // Under the high-byte rule the command byte unpacks to itself.
        assert_eq!(v7_unpack(&v7_command(START_LIVE))[2], 0xA1);
    }
}
