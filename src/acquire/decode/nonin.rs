//! Nonin oximeter serial formats: Data Formats #2, #7 and #8 (9560 Onyx II, OEM III and kin)
//! and the ASCII `SPO2=XXX HR=YYY` line of the 7500FO, 8500 and 2500.
//!
//! For decoding what the device already streams; not for selecting the data format (the
//! `02 70 02 02 ZZ 03` command is the driver's business) or for the pleth waveform, which is
//! dropped. See protocols.md §5.
//!
//! - DF2 (`01 STATUS PLETH FLOAT CHK`) and DF7 (`STATUS PLETH-MSB PLETH-LSB FLOAT CHK`): frames
//!   are checked by their checksum and gathered into 25-frame packets starting at the frame
//!   with the SYNC bit; one [`Sample`] per whole packet, with the display-formatted "-D"
//!   values (SpO2-D, frame 9; HR-D, frames 20–21). A packet broken by a skipped byte, or frames
//!   before the first packet start, are reported as [`DecodeErrorKind::IncompletePacket`]. The
//!   status bits of all 25 frames decide the packet's quality (see [`status_quality`]).
//! - DF8 (4 bytes once a second, no checksum): synchronised on the one byte with bit 7 set.
//! - ASCII: one line per second; `---` is no value; a trailing `*` (event mark) is ignored.
//!
//! HR 511 and SpO2 127 are "missing data" in every binary format: they decode to `None`.
//! "-D" values keep the last reading for 10 s after the finger is removed; SNSA or SNSD then
//! flags the sample [`Quality::SENSOR_OFF`], so those held numbers never count clinically.

use serde::Deserialize;

use super::framing::{
    Detail, Discards, FrameFormat, FrameSink, Framed, LineFormat, Lined, Reject, emit, is_dashes,
    tagged_fields,
};
use super::{DecodeError, DecodeErrorKind, Decoded, Decoder, Sample};
use crate::vitals::{Quality, Vital};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Df2,
    Df7,
    Df8,
    Ascii,
}

pub fn decoder(format: Format) -> Box<dyn Decoder> {
    match format {
        Format::Df2 => Box::new(Framed::<Df2, Packet, 5>::new(Packet::default())),
        Format::Df7 => Box::new(Framed::<Df7, Packet, 5>::new(Packet::default())),
        Format::Df8 => Box::new(Framed::<Df8, Df8Sink, 4>::new(Df8Sink)),
        Format::Ascii => Box::new(Lined::new(Ascii, ASCII_MAX_LINE)),
    }
}

/// Missing-data values for all formats [N9560].
pub const HR_MISSING: u16 = 511;
pub const SPO2_MISSING: u8 = 127;

// DF2/DF7 status byte [N9560 p.8; PUFF for SNSD].
const STATUS_BIT7: u8 = 0x80;
const SNSD: u8 = 0x40;
const ARTF: u8 = 0x20;
const OOT: u8 = 0x10;
const SNSA: u8 = 0x08;
const RPRF: u8 = 0x04;
const SYNC: u8 = 0x01;

/// The quality a DF2/DF7 status byte (or several OR-ed together) says. SNSD (sensor
/// disconnect; reserved on the 9560) and SNSA (sensor alarm) → sensor off; ARTF → artefact; OOT
/// (out of track) → searching; RPRF set, that is a red (`10`) or yellow (`11`) RPRF:GPRF
/// perfusion indication → low perfusion. Green (`01`) and no indication (`00`) are good.
pub fn status_quality(status: u8) -> Quality {
    let mut quality = Quality::GOOD;
    if status & (SNSD | SNSA) != 0 {
        quality |= Quality::SENSOR_OFF;
    }
    if status & ARTF != 0 {
        quality |= Quality::ARTEFACT;
    }
    if status & OOT != 0 {
        quality |= Quality::SEARCHING;
    }
    if status & RPRF != 0 {
        quality |= Quality::LOW_PERFUSION;
    }
    quality
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

fn check_sum(frame: &[u8]) -> Result<(), Reject> {
    let want = checksum(&frame[..4]);
    if frame[4] == want {
        Ok(())
    } else {
        Err(Reject {
            kind: DecodeErrorKind::Checksum,
            detail: Detail::Checksum {
                got: frame[4],
                want,
            },
        })
    }
}

const NO_STATUS_BIT7: Reject = Reject::new(
    DecodeErrorKind::Framing,
    "status byte without bit 7 (header error)",
);

const FLOAT_BIT7: Reject = Reject::new(
    DecodeErrorKind::Framing,
    "FLOAT byte with bit 7 set (not a frame)",
);

/// Position of the FLOAT byte in DF2 and DF7 frames; it always has bit 7 clear [N9560 p.9].
const FLOAT_AT: usize = 3;

/// DF2: `01 STATUS PLETH FLOAT CHK`, CHK = sum of the first four bytes; STATUS has bit 7 set
/// and FLOAT bit 7 clear.
struct Df2;

impl FrameFormat for Df2 {
    fn starts(first: u8) -> bool {
        first == 0x01
    }
    fn frame_len(_: u8) -> usize {
        5
    }
    fn fits(head: &[u8], byte: u8) -> Result<(), Reject> {
        if head.len() == 1 && byte & STATUS_BIT7 == 0 {
            return Err(NO_STATUS_BIT7);
        }
        if head.len() == FLOAT_AT && byte & 0x80 != 0 {
            return Err(FLOAT_BIT7);
        }
        Ok(())
    }
    fn check(frame: &[u8]) -> Result<(), Reject> {
        check_sum(frame)
    }
}

/// DF7: `STATUS PLETH-MSB PLETH-LSB FLOAT CHK`. The status byte (bit 7 set) is the only
/// marker; pleth bytes may have bit 7 set too, so the FLOAT byte's clear bit 7 and the
/// checksum do the real work.
struct Df7;

impl FrameFormat for Df7 {
    fn starts(first: u8) -> bool {
        first & STATUS_BIT7 != 0
    }
    fn frame_len(_: u8) -> usize {
        5
    }
    fn fits(head: &[u8], byte: u8) -> Result<(), Reject> {
        if head.len() == FLOAT_AT && byte & 0x80 != 0 {
            return Err(FLOAT_BIT7);
        }
        Ok(())
    }
    fn check(frame: &[u8]) -> Result<(), Reject> {
        check_sum(frame)
    }
}

/// A frame's status and FLOAT bytes. A DF2 frame begins with 0x01, a DF7 frame with its
/// status byte (bit 7 set), so the first byte tells them apart.
fn status_and_float(frame: &[u8]) -> (u8, u8) {
    if frame[0] & STATUS_BIT7 == 0 {
        (frame[1], frame[3])
    } else {
        (frame[0], frame[3])
    }
}

const FRAMES: usize = 25;
const FRAME_LEN: usize = 5;
// FLOAT positions (0-based frame index) of the display-formatted values [N9560 p.9].
const SPO2_D: usize = 8;
const HR_D_MSB: usize = 19;
const HR_D_LSB: usize = 20;

/// A DF2/DF7 packet being assembled. `frames == 0` means waiting for a SYNC frame.
#[derive(Debug, Default)]
struct Packet {
    frames: usize,
    floats: [u8; FRAMES],
    status: u8,
}

impl Packet {
    fn abort(&mut self, discards: &mut Discards, out: &mut Vec<Decoded>) {
        if self.frames > 0 {
            discards.flush(out);
            out.push(Decoded::Error(DecodeError {
                kind: DecodeErrorKind::IncompletePacket,
                skipped: self.frames * FRAME_LEN,
                detail: Detail::Frames {
                    got: self.frames,
                    of: FRAMES,
                }
                .to_string(),
            }));
            self.frames = 0;
        }
    }

    fn sample(&self) -> Sample {
        let hr = (u16::from(self.floats[HR_D_MSB] & 0x03) << 7)
            | u16::from(self.floats[HR_D_LSB] & 0x7F);
        let spo2 = self.floats[SPO2_D] & 0x7F;
        Sample {
            values: vec![
                (Vital::Spo2, spo2_value(spo2)),
                (Vital::PulseRate, hr_value(hr)),
            ],
            quality: status_quality(self.status),
            device_time: None,
        }
    }
}

fn spo2_value(spo2: u8) -> Option<f64> {
    (spo2 != SPO2_MISSING).then_some(f64::from(spo2))
}

fn hr_value(hr: u16) -> Option<f64> {
    (hr != HR_MISSING).then_some(f64::from(hr))
}

const BEFORE_SYNC: Reject = Reject::new(
    DecodeErrorKind::IncompletePacket,
    "frames before the first packet start (SYNC)",
);

impl FrameSink for Packet {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        let (status, float) = status_and_float(frame);
        if status & SYNC != 0 {
            self.abort(discards, out);
            self.status = 0;
        } else if self.frames == 0 {
            discards.add(BEFORE_SYNC, frame.len(), out);
            return;
        }
        discards.flush(out);
        self.floats[self.frames] = float;
        self.status |= status & !SYNC;
        self.frames += 1;
        if self.frames == FRAMES {
            self.frames = 0;
            emit(self.sample(), FRAMES * FRAME_LEN, discards, out);
        }
    }

    fn skipped(&mut self, discards: &mut Discards, out: &mut Vec<Decoded>) {
        // A skipped byte may have been a lost frame: the packet's frame count is no longer
        // trustworthy.
        self.abort(discards, out);
    }

    fn held(&self) -> usize {
        self.frames * FRAME_LEN
    }

    const MAX_HELD: usize = (FRAMES - 1) * FRAME_LEN;
}

/// DF8: four bytes once a second, the first with bit 7 set, the others with bit 7 clear.
pub(super) struct Df8;

impl FrameFormat for Df8 {
    /// No checksum, and random bytes pass DF8's bit-7 framing and plausibility about once in
    /// seven frame slots: 6 clean frames in a row (6 s) before the stream is trusted again.
    const CONFIRM_AFTER_SKIP: usize = 6;
    fn starts(first: u8) -> bool {
        first & 0x80 != 0
    }
    fn frame_len(_: u8) -> usize {
        4
    }
    fn fits(_: &[u8], byte: u8) -> Result<(), Reject> {
        if byte & 0x80 != 0 {
            return Err(Reject::new(
                DecodeErrorKind::Framing,
                "frame cut short by the next frame's first byte (a byte was lost)",
            ));
        }
        Ok(())
    }
    fn check(_: &[u8]) -> Result<(), Reject> {
        Ok(())
    }
}

struct Df8Sink;

impl FrameSink for Df8Sink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        emit(df8_sample(frame), frame.len(), discards, out);
    }
}

/// One DF8 frame. Byte 1: bit 6 (reserved on the 9560; "sensor disconnected" on other
/// models) → sensor off, OOT → searching, LPRF (low) or MPRF (marginal, the yellow of DF2)
/// perfusion → low perfusion, ARTF → artefact, bits 1–0 HR bits 8–7. Byte 4: SNSA → sensor
/// off; SPA and LOW BAT are informational.
fn df8_sample(frame: &[u8]) -> Sample {
    let (b1, b2, b3, b4) = (frame[0], frame[1], frame[2], frame[3]);
    let mut quality = Quality::GOOD;
    if b1 & 0x40 != 0 || b4 & 0x08 != 0 {
        quality |= Quality::SENSOR_OFF;
    }
    if b1 & 0x20 != 0 {
        quality |= Quality::SEARCHING;
    }
    if b1 & 0x18 != 0 {
        quality |= Quality::LOW_PERFUSION;
    }
    if b1 & 0x04 != 0 {
        quality |= Quality::ARTEFACT;
    }
    let hr = (u16::from(b1 & 0x03) << 7) | u16::from(b2 & 0x7F);
    Sample {
        values: vec![
            (Vital::Spo2, spo2_value(b3 & 0x7F)),
            (Vital::PulseRate, hr_value(hr)),
        ],
        quality,
        device_time: None,
    }
}

/// Longest ASCII line accepted; the real one is about 16 bytes.
const ASCII_MAX_LINE: usize = 64;

/// `SPO2=XXX HR=YYY`, perhaps with a trailing `*` event mark; `---` is no value.
struct Ascii;

impl LineFormat for Ascii {
    fn parse(&self, line: &[u8]) -> Result<Sample, (DecodeErrorKind, String)> {
        let malformed = |why: String| (DecodeErrorKind::Malformed, why);
        let text =
            std::str::from_utf8(line).map_err(|_| malformed("line is not text".to_string()))?;
        let text = text.trim_end().trim_end_matches('*');
        let (mut spo2, mut hr) = (None, None);
        for field in tagged_fields(text) {
            let (tag, value) =
                field.map_err(|f| malformed(format!("field `{f}` is not TAG=value")))?;
            let slot = match tag {
                "SPO2" => &mut spo2,
                "HR" => &mut hr,
                _ => continue,
            };
            let parsed = if is_dashes(value) {
                None
            } else {
                Some(
                    value
                        .parse::<u16>()
                        .map(f64::from)
                        .map_err(|_| malformed(format!("{tag} value `{value}` is not a number")))?,
                )
            };
            if slot.replace(parsed).is_some() {
                return Err(malformed(format!("{tag} appears twice")));
            }
        }
        match (spo2, hr) {
            (Some(spo2), Some(hr)) => Ok(Sample {
                values: vec![(Vital::Spo2, spo2), (Vital::PulseRate, hr)],
                quality: Quality::GOOD,
                device_time: None,
            }),
            _ => Err(malformed(format!("line `{text}` lacks SPO2= or HR="))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acquire::decode::testing::*;

    /// A DF2 frame with its checksum.
    pub fn df2_frame(status: u8, pleth: u8, float: u8) -> [u8; 5] {
        let mut f = [0x01, status, pleth, float, 0];
        f[4] = checksum(&f[..4]);
        f
    }

    /// A DF7 frame with its checksum.
    pub fn df7_frame(status: u8, pleth: u16, float: u8) -> [u8; 5] {
        let [msb, lsb] = pleth.to_be_bytes();
        let mut f = [status, msb, lsb, float, 0];
        f[4] = checksum(&f[..4]);
        f
    }

    /// The 25 FLOAT bytes of a packet reporting `spo2` (SpO2-D) and `hr` (HR-D), with the
    /// non-D values deliberately different so a decoder reading the wrong frames fails.
    /// Positions are written out from protocols.md §5.2 (frame n is index n − 1), not taken
    /// from the decoder's constants, so a wrong constant fails.
    pub fn floats(spo2: u8, hr: u16) -> [u8; FRAMES] {
        let mut f = [0u8; FRAMES];
        f[0] = 0; // frame 1, HR MSB (non-D): 0
        f[1] = 0x11; // frame 2, HR LSB (non-D): 17
        f[2] = 0x22; // frame 3, SpO2 (non-D): 34
        f[3] = 0x30; // frame 4, SREV
        f[8] = spo2; // frame 9, SpO2-D
        f[9] = 0x21; // frame 10, SpO2 Fast: 33
        f[10] = 0x23; // frame 11, SpO2 B-B: 35
        f[13] = 0x01; // frame 14, E-HR MSB
        f[14] = 0x01; // frame 15, E-HR LSB: 129
        f[15] = 0x24; // frame 16, E-SpO2: 36
        f[16] = 0x25; // frame 17, E-SpO2-D: 37
        f[19] = ((hr >> 7) & 0x03) as u8; // frame 20, HR-D MSB
        f[20] = (hr & 0x7F) as u8; // frame 21, HR-D LSB
        f[21] = 0x02; // frame 22, E-HR-D MSB
        f[22] = 0x02; // frame 23, E-HR-D LSB: 258
        f
    }

    /// A whole DF2 packet: `status[i]` for frame i (SYNC is added to frame 0).
    pub fn df2_packet(statuses: &[u8; FRAMES], floats: &[u8; FRAMES]) -> Vec<u8> {
        (0..FRAMES)
            .flat_map(|i| {
                let sync = if i == 0 { SYNC } else { 0 };
                df2_frame(statuses[i] | sync, i as u8, floats[i])
            })
            .collect()
    }

    pub fn df7_packet(statuses: &[u8; FRAMES], floats: &[u8; FRAMES]) -> Vec<u8> {
        (0..FRAMES)
            .flat_map(|i| {
                let sync = if i == 0 { SYNC } else { 0 };
                df7_frame(statuses[i] | sync, 0x1200 + i as u16 * 0x37, floats[i])
            })
            .collect()
    }

    const GOOD: [u8; FRAMES] = [0x80; FRAMES];

    fn df2() -> Box<dyn Decoder> {
        decoder(Format::Df2)
    }
    fn df7() -> Box<dyn Decoder> {
        decoder(Format::Df7)
    }
    fn df8() -> Box<dyn Decoder> {
        decoder(Format::Df8)
    }
    fn ascii() -> Box<dyn Decoder> {
        decoder(Format::Ascii)
    }

    fn spo2_hr(spo2: Option<f64>, hr: Option<f64>, quality: Quality) -> Sample {
        sample(&[(Vital::Spo2, spo2), (Vital::PulseRate, hr)], quality)
    }

    // §5.6 vector 1 [T]: the SYNC frame of a packet.
    #[test]
    fn df2_vector_1_sync_frame_starts_a_packet() {
        assert_eq!(df2_frame(0x81, 0x01, 0x00), [0x01, 0x81, 0x01, 0x00, 0x83]);
        let mut d = df2();
        // Alone it is held (frame 1 of 25), not an error.
        assert!(feed_all(&mut *d, &[0x01, 0x81, 0x01, 0x00, 0x83]).is_empty());
        assert_eq!(d.buffered(), 5);
        // The other 24 frames complete the packet.
        let packet = df2_packet(&GOOD, &floats(97, 72));
        assert_eq!(&packet[..5], &[0x01, 0x81, 0x00, 0x00, 0x82]);
        let rest = only_sample(&mut *d, &packet[5..]);
        assert_eq!(rest, spo2_hr(Some(97.0), Some(72.0), Quality::GOOD));
    }

    // §5.6 vector 3 [T]: the status byte's flags.
    #[test]
    fn df2_vector_3_status_bits() {
        assert_eq!(status_quality(0x81), Quality::GOOD);
        assert_eq!(status_quality(0x82), Quality::GOOD); // green
        assert_eq!(status_quality(0x84), Quality::LOW_PERFUSION); // red
        assert_eq!(status_quality(0x86), Quality::LOW_PERFUSION); // yellow
        assert_eq!(status_quality(0x88), Quality::SENSOR_OFF); // SNSA
        assert_eq!(status_quality(0x90), Quality::SEARCHING); // OOT
        assert_eq!(status_quality(0xA0), Quality::ARTEFACT); // ARTF
        assert_eq!(status_quality(0xC0), Quality::SENSOR_OFF); // SNSD
    }

    // §5.6 vector 3 [T]: the PUFF packet scenario's frames [0]–[7], verbatim, as the start
    // of a packet; [8] (status 0x00) is a header error.
    #[test]
    fn df2_vector_3_packet_with_status_errors() {
        let puff: [[u8; 5]; 8] = [
            [0x01, 0x81, 0x01, 0x00, 0x83],
            [0x01, 0x82, 0x01, 0x48, 0xCC],
            [0x01, 0x86, 0x01, 0x61, 0xE9],
            [0x01, 0x84, 0x01, 0x30, 0xB6],
            [0x01, 0x88, 0x01, 0x00, 0x8A],
            [0x01, 0x90, 0x01, 0x00, 0x92],
            [0x01, 0xA0, 0x01, 0x00, 0xA2],
            [0x01, 0xC0, 0x01, 0x00, 0xC2],
        ];
        let expected = [
            Quality::GOOD,
            Quality::GOOD,
            Quality::LOW_PERFUSION,
            Quality::LOW_PERFUSION,
            Quality::SENSOR_OFF,
            Quality::SEARCHING,
            Quality::ARTEFACT,
            Quality::SENSOR_OFF,
        ];
        let fl = floats(95, 80);
        for (k, frame) in puff.iter().enumerate() {
            // Frame k of the vector, in a packet otherwise good.
            let mut d = df2();
            let mut stream: Vec<u8> = puff[0].to_vec();
            for (i, &float) in fl.iter().enumerate().skip(1) {
                if i == k {
                    stream.extend(frame);
                } else {
                    stream.extend(df2_frame(0x80, 0, float));
                }
            }
            let s = only_sample(&mut *d, &stream);
            assert_eq!(s.quality, expected[k], "frame [{k}]");
        }
        // All eight together: every flag of the packet is raised.
        let mut stream: Vec<u8> = puff.concat();
        for &float in &fl[puff.len()..] {
            stream.extend(df2_frame(0x80, 0, float));
        }
        let s = only_sample(&mut *df2(), &stream);
        assert_eq!(
            s.quality,
            Quality::LOW_PERFUSION | Quality::SENSOR_OFF | Quality::SEARCHING | Quality::ARTEFACT
        );
        // [8]: status 0x00, "bit7 missing", refused even with a correct checksum.
        let mut d = df2();
        let out = feed_all(&mut *d, &[0x01, 0x00, 0x01, 0x00, 0x02]);
        assert!(samples(&out).is_empty());
        let out = feed_all(&mut *d, &df2_packet(&GOOD, &fl));
        let errors = errors(&out);
        assert_eq!(errors[0].kind, DecodeErrorKind::Framing);
        assert_eq!(errors[0].skipped, 5);
        assert_eq!(samples(&out).len(), 1);
    }

    // §5.6 vector 4 [T]: checksum error, header error, and a valid frame that is not frame 1.
    #[test]
    fn df2_vector_4_invalid_frames() {
        let packet = df2_packet(&GOOD, &floats(97, 72));
        let cases: [(&[u8], DecodeErrorKind); 3] = [
            (&[0x01, 0x81, 0x02, 0x00, 0x00], DecodeErrorKind::Checksum),
            (&[0x01, 0x7F, 0x02, 0x00, 0x82], DecodeErrorKind::Framing),
            (
                &[0x01, 0x80, 0x02, 0x00, 0x83],
                DecodeErrorKind::IncompletePacket,
            ),
        ];
        for (bytes, kind) in cases {
            let mut d = df2();
            let mut stream = bytes.to_vec();
            stream.extend(&packet);
            let out = feed_all(&mut *d, &stream);
            assert_eq!(
                errors(&out),
                vec![DecodeError {
                    kind,
                    skipped: 5,
                    detail: errors(&out)[0].detail.clone()
                }],
                "{bytes:02X?}"
            );
            assert!(
                matches!(out.last(), Some(Decoded::Sample(_))),
                "{bytes:02X?}"
            );
        }
        let out = feed_all(
            &mut *df2(),
            &[[0x01, 0x81, 0x02, 0x00, 0x00].as_slice(), &packet].concat(),
        );
        assert_eq!(errors(&out)[0].detail, "checksum 0x00, expected 0x84");
    }

    // §5.6 vector 5 [D]: HR 172 and the missing-HR sentinel 511, in the HR-D frames.
    #[test]
    fn df2_vector_5_heart_rate_and_sentinel() {
        assert_eq!(df2_frame(0x80, 0x40, 0x01), [0x01, 0x80, 0x40, 0x01, 0xC2]);
        assert_eq!(df2_frame(0x80, 0x40, 0x2C), [0x01, 0x80, 0x40, 0x2C, 0xED]);
        assert_eq!(df2_frame(0x80, 0x40, 0x03), [0x01, 0x80, 0x40, 0x03, 0xC4]);
        assert_eq!(df2_frame(0x80, 0x40, 0x7F), [0x01, 0x80, 0x40, 0x7F, 0x40]);
        let packet_with = |msb: [u8; 5], lsb: [u8; 5], spo2: u8| {
            let mut p = df2_packet(&GOOD, &floats(spo2, 0));
            // Frames 20 and 21 (HR-D MSB, LSB).
            p[19 * 5..20 * 5].copy_from_slice(&msb);
            p[20 * 5..21 * 5].copy_from_slice(&lsb);
            p
        };
        let p = packet_with(
            [0x01, 0x80, 0x40, 0x01, 0xC2],
            [0x01, 0x80, 0x40, 0x2C, 0xED],
            98,
        );
        assert_eq!(
            only_sample(&mut *df2(), &p),
            spo2_hr(Some(98.0), Some(172.0), Quality::GOOD)
        );
        let p = packet_with(
            [0x01, 0x80, 0x40, 0x03, 0xC4],
            [0x01, 0x80, 0x40, 0x7F, 0x40],
            127,
        );
        assert_eq!(
            only_sample(&mut *df2(), &p),
            spo2_hr(None, None, Quality::GOOD)
        );
    }

    #[test]
    fn df2_sentinels_held_values_and_sensor_off() {
        // SNSA on every frame, values still held: the numbers stay, flagged sensor off.
        let p = df2_packet(&[0x88; FRAMES], &floats(96, 70));
        assert_eq!(
            only_sample(&mut *df2(), &p),
            spo2_hr(Some(96.0), Some(70.0), Quality::SENSOR_OFF)
        );
    }

    #[test]
    fn df2_implausible_values_are_errors() {
        for (spo2, hr, what) in [(101, 72, "spo2 101"), (97, 351, "pulse_rate 351")] {
            let out = feed_all(&mut *df2(), &df2_packet(&GOOD, &floats(spo2, hr)));
            let [Decoded::Error(e)] = out.as_slice() else {
                panic!("{out:?}")
            };
            assert_eq!(e.kind, DecodeErrorKind::Implausible);
            assert_eq!(e.skipped, 125);
            assert!(e.detail.starts_with(what), "{}", e.detail);
        }
        // The edges of the range are readings.
        let s = only_sample(&mut *df2(), &df2_packet(&GOOD, &floats(100, 350)));
        assert_eq!(s, spo2_hr(Some(100.0), Some(350.0), Quality::GOOD));
    }

    #[test]
    fn df2_garbage_between_packets_is_reported_and_every_packet_decodes() {
        let a = df2_packet(&GOOD, &floats(97, 72));
        let b = df2_packet(&[0xA0; FRAMES], &floats(91, 110));
        let garbage = [0xFF, 0x00, 0x01, 0x01, 0x55];
        let stream = [a.as_slice(), &garbage, &b, &garbage[..2], &a].concat();
        let out = assert_split_invariant(&df2, &stream);
        assert_eq!(
            samples(&out),
            vec![
                spo2_hr(Some(97.0), Some(72.0), Quality::GOOD),
                spo2_hr(Some(91.0), Some(110.0), Quality::ARTEFACT),
                spo2_hr(Some(97.0), Some(72.0), Quality::GOOD),
            ]
        );
        let skipped: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            skipped,
            vec![(DecodeErrorKind::Garbage, 5), (DecodeErrorKind::Garbage, 2)]
        );
    }

    #[test]
    fn df2_lost_byte_breaks_one_packet_and_the_next_decodes() {
        let a = df2_packet(&GOOD, &floats(97, 72));
        let mut broken = a.clone();
        broken.remove(5 * 10 + 2); // a pleth byte of frame 11
        let stream = [broken.as_slice(), &a].concat();
        let out = assert_split_invariant(&df2, &stream);
        assert_eq!(
            samples(&out),
            vec![spo2_hr(Some(97.0), Some(72.0), Quality::GOOD)]
        );
        let errors = errors(&out);
        // The ten frames before the loss are reported as a broken packet, then the skipped
        // bytes of frame 11 and the frames after it, up to the next packet start.
        assert_eq!(errors[0].kind, DecodeErrorKind::IncompletePacket);
        assert_eq!(errors[0].skipped, 50);
        assert_eq!(
            errors.iter().map(|e| e.skipped).sum::<usize>(),
            broken.len(),
            "{errors:?}"
        );
    }

    #[test]
    fn df2_frames_before_the_first_sync_are_reported() {
        let a = df2_packet(&GOOD, &floats(97, 72));
        // Join mid-packet: the last 3 frames of one packet, then a whole one.
        let stream = [&a[110..], a.as_slice()].concat();
        let out = feed_all(&mut *df2(), &stream);
        assert_eq!(
            errors(&out),
            vec![DecodeError {
                kind: DecodeErrorKind::IncompletePacket,
                skipped: 15,
                detail: "frames before the first packet start (SYNC)".into()
            }]
        );
        assert_eq!(samples(&out).len(), 1);
        // A packet start arriving early breaks the packet off.
        let stream = [&a[..40], a.as_slice()].concat();
        let out = feed_all(&mut *df2(), &stream);
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::IncompletePacket);
        assert_eq!(errors(&out)[0].skipped, 40);
        assert_eq!(
            errors(&out)[0].detail,
            "packet broken off after 8 of 25 frames"
        );
        assert_eq!(samples(&out).len(), 1);
    }

    // §5.6 vector 6 [D]: a DF7 SYNC frame with a 16-bit pleth.
    #[test]
    fn df7_vector_6() {
        assert_eq!(
            df7_frame(0x81, 0x1234, 0x00),
            [0x81, 0x12, 0x34, 0x00, 0xC7]
        );
        let mut d = df7();
        assert!(feed_all(&mut *d, &[0x81, 0x12, 0x34, 0x00, 0xC7]).is_empty());
        assert_eq!(d.buffered(), 5);
        let p = df7_packet(&GOOD, &floats(99, 64));
        let s = only_sample(&mut *d, &p[5..]);
        assert_eq!(s, spo2_hr(Some(99.0), Some(64.0), Quality::GOOD));
        // The same frame with its checksum off by one is refused.
        let out = feed_all(
            &mut *df7(),
            &[[0x81, 0x12, 0x34, 0x00, 0xC8].as_slice(), &p].concat(),
        );
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Checksum);
        assert_eq!(samples(&out).len(), 1);
    }

    #[test]
    fn df7_status_sentinels_garbage_and_splits() {
        let mut statuses = GOOD;
        statuses[4] = 0x86; // yellow
        statuses[5] = 0x90; // OOT
        let a = df7_packet(&statuses, &floats(127, 511));
        let b = df7_packet(&GOOD, &floats(88, 130));
        let stream = [a.as_slice(), &[0x80, 0xFE, 0x12], &b].concat();
        let out = assert_split_invariant(&df7, &stream);
        assert_eq!(
            samples(&out),
            vec![
                spo2_hr(None, None, Quality::LOW_PERFUSION | Quality::SEARCHING),
                spo2_hr(Some(88.0), Some(130.0), Quality::GOOD),
            ]
        );
        assert_eq!(errors(&out).iter().map(|e| e.skipped).sum::<usize>(), 3);
        // A lost byte in the middle of a frame.
        let mut broken = b.clone();
        broken.remove(63);
        let out = assert_split_invariant(&df7, &[broken.as_slice(), &b].concat());
        assert_eq!(
            samples(&out),
            vec![spo2_hr(Some(88.0), Some(130.0), Quality::GOOD)]
        );
    }

    #[test]
    fn df7_garbage_that_completes_a_frame_costs_one_packet() {
        // Garbage `80 ED` plus the SYNC frame's first three bytes `81 12 00` is a frame with a
        // valid checksum (0x80+0xED+0x81+0x12 = 0x200) and a FLOAT byte with bit 7 clear. No
        // framing can tell it from a real one: that packet is lost, reported, and the next
        // one decodes. (The FLOAT bit-7 rule does catch `80 FF 12`, whose checksum also fits.)
        let b = df7_packet(&GOOD, &floats(88, 130));
        assert_eq!(&b[..3], &[0x81, 0x12, 0x00]);
        let out = feed_all(&mut *df7(), &[&[0x80, 0xED][..], &b, &b].concat());
        assert_eq!(
            samples(&out),
            vec![spo2_hr(Some(88.0), Some(130.0), Quality::GOOD)]
        );
        assert_eq!(
            errors(&out).iter().map(|e| e.skipped).sum::<usize>(),
            2 + 125
        );
        let out = feed_all(&mut *df7(), &[&[0x80, 0xFF, 0x12][..], &b].concat());
        assert_eq!(samples(&out).len(), 1);
    }

    // §5.6 vector 7 [D]: DF8 frames.
    #[test]
    fn df8_vector_7() {
        assert_eq!(
            only_sample(&mut *df8(), &[0x80, 0x48, 0x61, 0x00]),
            spo2_hr(Some(97.0), Some(72.0), Quality::GOOD)
        );
        assert_eq!(
            only_sample(&mut *df8(), &[0x82, 0x2C, 0x61, 0x00]),
            spo2_hr(Some(97.0), Some(300.0), Quality::GOOD)
        );
        assert_eq!(
            only_sample(&mut *df8(), &[0x83, 0x7F, 0x7F, 0x08]),
            spo2_hr(None, None, Quality::SENSOR_OFF)
        );
        assert_eq!(
            only_sample(&mut *df8(), &[0x94, 0x48, 0x5A, 0x21]),
            spo2_hr(
                Some(90.0),
                Some(72.0),
                Quality::LOW_PERFUSION | Quality::ARTEFACT
            )
        );
    }

    #[test]
    fn df8_flags_and_implausible_values() {
        let q = |b1, b4| df8_sample(&[b1, 0x48, 0x61, b4]).quality;
        assert_eq!(q(0x88, 0), Quality::LOW_PERFUSION); // MPRF (marginal)
        assert_eq!(q(0xA0, 0), Quality::SEARCHING); // OOT
        assert_eq!(q(0xC0, 0), Quality::SENSOR_OFF); // bit 6
        assert_eq!(q(0x80, 0x20), Quality::GOOD); // SPA
        assert_eq!(q(0x80, 0x01), Quality::GOOD); // LOW BAT
        // HR 400 and SpO2 120: errors, not readings.
        for frame in [[0x83, 0x10, 0x61, 0x00], [0x80, 0x48, 0x78, 0x00]] {
            let out = feed_all(&mut *df8(), &frame);
            let [Decoded::Error(e)] = out.as_slice() else {
                panic!("{out:?}")
            };
            assert_eq!((e.kind, e.skipped), (DecodeErrorKind::Implausible, 4));
        }
    }

    #[test]
    fn df8_resynchronises_after_garbage_and_a_lost_byte() {
        let a = [0x80, 0x48, 0x61, 0x00];
        let b = [0x94, 0x48, 0x5A, 0x21];
        // Garbage, a frame missing its last byte, garbage with bit 7 clear, then frames.
        let stream = [&[0x12, 0x7F][..], &a, &b[..3], &b, &[0x05, 0x06], &a].concat();
        let out = assert_split_invariant(&df8, &stream);
        assert_eq!(
            samples(&out),
            after_garbage(vec![
                spo2_hr(Some(97.0), Some(72.0), Quality::GOOD),
                spo2_hr(
                    Some(90.0),
                    Some(72.0),
                    Quality::LOW_PERFUSION | Quality::ARTEFACT
                ),
                spo2_hr(Some(97.0), Some(72.0), Quality::GOOD),
            ])
        );
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Garbage, 2),
                (DecodeErrorKind::Framing, 3),
                (DecodeErrorKind::Garbage, 2),
            ]
        );
    }

    #[test]
    fn ascii_lines() {
        let mut d = ascii();
        assert_eq!(
            only_sample(&mut *d, b"SPO2=097 HR=072\r\n"),
            spo2_hr(Some(97.0), Some(72.0), Quality::GOOD)
        );
        assert_eq!(
            only_sample(&mut *d, b"SPO2=--- HR=---\r\n"),
            spo2_hr(None, None, Quality::GOOD)
        );
        assert_eq!(
            only_sample(&mut *d, b"SPO2=088 HR=131*\r\n"),
            spo2_hr(Some(88.0), Some(131.0), Quality::GOOD)
        );
        for (line, kind) in [
            (&b"SPO2=097\r\n"[..], DecodeErrorKind::Malformed),
            (b"SPO2=9x7 HR=072\r\n", DecodeErrorKind::Malformed),
            (b"SPO2=097 HR\r\n", DecodeErrorKind::Malformed),
            (b"SPO2=127 HR=072\r\n", DecodeErrorKind::Implausible),
            (b"SPO2=097 HR=511\r\n", DecodeErrorKind::Implausible),
        ] {
            let out = feed_all(&mut *d, line);
            let [Decoded::Error(e)] = out.as_slice() else {
                panic!("{out:?}")
            };
            assert_eq!(e.kind, kind, "{}", String::from_utf8_lossy(line));
            assert_eq!(e.skipped, line.len() - 2);
        }
    }

    #[test]
    fn ascii_garbage_long_lines_and_splits() {
        let stream = [
            &b"\xFF\x00garbage\r\n"[..],
            b"SPO2=097 HR=072\r\n",
            &[b'x'; 200],
            b"\r\nSPO2=096 HR=073\r\n",
        ]
        .concat();
        let out = assert_split_invariant(&ascii, &stream);
        assert_eq!(
            samples(&out),
            vec![
                spo2_hr(Some(97.0), Some(72.0), Quality::GOOD),
                spo2_hr(Some(96.0), Some(73.0), Quality::GOOD),
            ]
        );
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Malformed, 9),
                (DecodeErrorKind::TooLong, 128),
                (DecodeErrorKind::TooLong, 72),
            ]
        );
    }
}
