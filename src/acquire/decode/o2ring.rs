//! Viatom / Wellue O2Ring (and the Checkme O2 family) over BLE. See protocols.md §8.3.
//!
//! For the requests a driver writes to [`WRITE`] ([`request`]; poll [`READ_SENSORS`] every
//! [`POLL_EVERY`]) and for decoding the replies notified on [`NOTIFY`]; not for the file
//! commands (recorded nights) or the JSON config. Notifications carry at most 20 bytes, so a
//! reply arrives split, and this is a byte-stream [`Decoder`].
//!
//! A reply is `55 status status^FF block:u16le len:u16le payload crc8`, CRC-8 (polynomial 0x07,
//! initial value 0) over every byte before it [O2R `o2pkt.py`]. Framing checks the status
//! complement and refuses a length over [`MAX_PAYLOAD`] (it could only be garbage, and it bounds
//! the buffer); a bad CRC is a [`DecodeErrorKind::Checksum`] error; either way the decoder drops
//! the first byte and looks for a reply in the rest. A reply with status ≠ 0 (the command
//! failed) is a [`DecodeErrorKind::Malformed`] error. Replies carry no command byte, so a
//! read-sensors reply is known by its 21-byte payload; replies of other lengths (ping, info)
//! are skipped without error.
//!
//! Resynchronising costs more here than with a sync bit: a header begun in garbage takes its
//! length from the bytes after it, so real replies behind it are held back until up to
//! [`MAX_REPLY`] bytes have come (some 18 read-sensors replies, over half a minute at one poll
//! every 2 s) and its CRC fails; then they are all found, late. BLE's link-layer CRC keeps the
//! bytes themselves intact, so such garbage comes only from a reply cut off (a link lost
//! mid-reply): the driver should start a new decoder for each connection.
//!
//! Read-sensors payload bytes [O2R `o2state.py`]: 0 SpO2 %, 1 pulse rate (0xFF = no value in
//! either), 7 battery (not a vital, ignored), 11 worn flag: 0 → [`Quality::SENSOR_OFF`] with no
//! values. SpO2 and pulse rate both 0 → [`Quality::SEARCHING`] with no values (ECO calls it
//! "calibrating").

use std::time::Duration;

use super::framing::{Detail, Discards, FrameFormat, FrameSink, Framed, Reject, emit};
use super::{DecodeError, DecodeErrorKind, Decoded, Decoder, Sample};
use crate::acquire::ble::Uuid;
use crate::vitals::{Quality, Vital};

pub const SERVICE: Uuid = Uuid::from_u128(0x14839ac4_7d7e_415c_9a42_167340cf2339);
/// Requests go here.
pub const WRITE: Uuid = Uuid::from_u128(0x8b00ace7_eb0b_49b0_bbe9_9aee0a26e1a3);
/// Replies come here.
pub const NOTIFY: Uuid = Uuid::from_u128(0x0734594a_a8e7_4b1a_a6b1_cd5243059a57);

/// Command: device information (JSON reply).
pub const INFO: u8 = 0x14;
/// Command: ping (empty reply).
pub const PING: u8 = 0x15;
/// Command: read the live sensor values (21-byte reply).
pub const READ_SENSORS: u8 = 0x17;
/// How often clients poll [`READ_SENSORS`] [O2R `o2state.py`].
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// The longest reply payload accepted. A read-sensors reply has 21 bytes; file blocks are the
/// longest replies the sources show.
pub const MAX_PAYLOAD: usize = 512;

const REQUEST_START: u8 = 0xAA;
const REPLY_START: u8 = 0x55;
/// Start, status, its complement, block (2), length (2).
const HEADER: usize = 7;
/// The longest reply (header, [`MAX_PAYLOAD`], CRC), and so the decoder's buffer.
pub const MAX_REPLY: usize = HEADER + MAX_PAYLOAD + 1;
const SENSORS_LEN: usize = 21;
const NO_VALUE: u8 = 0xFF;

/// CRC-8, polynomial 0x07, initial value 0, no reflection, no final XOR.
pub fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |crc, &byte| {
        (0..8).fold(crc ^ byte, |crc, _| {
            if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            }
        })
    })
}

/// The bytes that send `cmd`: `AA cmd cmd^FF block:u16le len:u16le payload crc8`. A payload
/// longer than a u16 length can say is cut to 65535 bytes (requests carry a few bytes at most).
pub fn request(cmd: u8, block: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let payload = &payload[..usize::from(len)];
    let mut frame = Vec::with_capacity(HEADER + payload.len() + 1);
    frame.extend([REQUEST_START, cmd, cmd ^ 0xFF]);
    frame.extend(block.to_le_bytes());
    frame.extend(len.to_le_bytes());
    frame.extend(payload);
    frame.push(crc8(&frame));
    frame
}

pub fn decoder() -> Box<dyn Decoder> {
    Box::new(Framed::<Reply, ReplySink, MAX_REPLY>::new(ReplySink))
}

struct Reply;

impl FrameFormat for Reply {
    fn starts(first: u8) -> bool {
        first == REPLY_START
    }
    /// The shortest reply: a header and a CRC, no payload.
    fn frame_len(_: u8) -> usize {
        HEADER + 1
    }
    fn frame_len_after(head: &[u8]) -> usize {
        match head {
            [_, _, _, _, _, lo, hi, ..] => HEADER + usize::from(u16::from_le_bytes([*lo, *hi])) + 1,
            _ => HEADER + 1,
        }
    }
    fn fits(head: &[u8], byte: u8) -> Result<(), Reject> {
        match head {
            [_, status] if byte != status ^ 0xFF => Err(Reject::new(
                DecodeErrorKind::Framing,
                "reply status not followed by its complement",
            )),
            [_, _, _, _, _, lo] if usize::from(u16::from_le_bytes([*lo, byte])) > MAX_PAYLOAD => {
                Err(Reject::new(
                    DecodeErrorKind::Framing,
                    "reply length over 512 bytes",
                ))
            }
            _ => Ok(()),
        }
    }
    fn check(frame: &[u8]) -> Result<(), Reject> {
        let Some((&got, body)) = frame.split_last() else {
            return Ok(());
        };
        let want = crc8(body);
        if got == want {
            Ok(())
        } else {
            Err(Reject {
                kind: DecodeErrorKind::Checksum,
                detail: Detail::Checksum { got, want },
            })
        }
    }
}

struct ReplySink;

impl FrameSink for ReplySink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>) {
        let status = frame.get(1).copied().unwrap_or_default();
        let payload = frame.get(HEADER..frame.len() - 1).unwrap_or_default();
        if status != 0 {
            discards.flush(out);
            out.push(Decoded::Error(DecodeError {
                kind: DecodeErrorKind::Malformed,
                skipped: frame.len(),
                detail: format!("reply status 0x{status:02X}: the command failed"),
            }));
        } else if let Ok(sensors) = <&[u8; SENSORS_LEN]>::try_from(payload) {
            emit(sensors_sample(sensors), frame.len(), discards, out);
        } else {
            // A reply to another command: well-formed, not ours to decode.
            discards.flush(out);
        }
    }
}

fn sensors_sample(payload: &[u8; SENSORS_LEN]) -> Sample {
    let (spo2, pr, worn) = (payload[0], payload[1], payload[11] != 0);
    let value = |byte: u8| (byte != NO_VALUE).then_some(f64::from(byte));
    let (quality, spo2, pr) = if !worn {
        (Quality::SENSOR_OFF, None, None)
    } else if spo2 == 0 && pr == 0 {
        (Quality::SEARCHING, None, None)
    } else {
        (Quality::GOOD, value(spo2), value(pr))
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

    /// O2R's comment payload, padded with zeros to 21 bytes: SpO2 98, HR 66, battery 97 %,
    /// worn.
    pub fn comment_payload() -> [u8; SENSORS_LEN] {
        let mut payload = [0u8; SENSORS_LEN];
        payload[..13].copy_from_slice(&[
            0x62, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x00, 0x92, 0x0a, 0x01, 0x00,
        ]);
        payload
    }

    /// A reply frame with a correct CRC.
    pub fn reply(status: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap();
        let mut frame = vec![REPLY_START, status, status ^ 0xFF, 0, 0];
        frame.extend(len.to_le_bytes());
        frame.extend(payload);
        frame.push(crc8(&frame));
        frame
    }

    fn spo2_pr(spo2: Option<f64>, pr: Option<f64>, quality: Quality) -> Sample {
        sample(&[(Vital::Spo2, spo2), (Vital::PulseRate, pr)], quality)
    }

    // §8.3 vectors: the request CRC 0x1B matches ECO's literal bytes; 8D and C6 were worked out.
    #[test]
    fn requests() {
        assert_eq!(
            request(READ_SENSORS, 0, &[]),
            [0xAA, 0x17, 0xE8, 0x00, 0x00, 0x00, 0x00, 0x1B]
        );
        assert_eq!(
            request(PING, 0, &[]),
            [0xAA, 0x15, 0xEA, 0x00, 0x00, 0x00, 0x00, 0x8D]
        );
        assert_eq!(
            request(INFO, 0, &[]),
            [0xAA, 0x14, 0xEB, 0x00, 0x00, 0x00, 0x00, 0xC6]
        );
        let with_payload = request(0x03, 0x0102, b"ab");
        assert_eq!(
            &with_payload[..9],
            &[0xAA, 0x03, 0xFC, 0x02, 0x01, 0x02, 0x00, b'a', b'b']
        );
        assert_eq!(with_payload[9], crc8(&with_payload[..9]));
    }

    #[test]
    fn crc8_check_value() {
        // The catalogued check value of CRC-8 (poly 0x07, init 0) over "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc8(&[]), 0);
    }

    // §8.3 [C] comment payload in a reply frame, whose CRC 0xFD was worked out separately.
    #[test]
    fn read_sensors_reply() {
        let frame = reply(0, &comment_payload());
        assert_eq!(frame.len(), 29);
        assert_eq!(&frame[..7], &[0x55, 0x00, 0xFF, 0x00, 0x00, 0x15, 0x00]);
        assert_eq!(frame[28], 0xFD);
        assert_eq!(
            only_sample(&mut *decoder(), &frame),
            spo2_pr(Some(98.0), Some(66.0), Quality::GOOD)
        );
    }

    #[test]
    fn no_reading_not_worn_and_searching() {
        let with = |spo2: u8, pr: u8, worn: u8| {
            let mut payload = comment_payload();
            payload[0] = spo2;
            payload[1] = pr;
            payload[11] = worn;
            only_sample(&mut *decoder(), &reply(0, &payload))
        };
        assert_eq!(with(0xFF, 0xFF, 1), spo2_pr(None, None, Quality::GOOD));
        assert_eq!(with(97, 0xFF, 1), spo2_pr(Some(97.0), None, Quality::GOOD));
        assert_eq!(with(98, 66, 0), spo2_pr(None, None, Quality::SENSOR_OFF));
        assert_eq!(with(0, 0, 1), spo2_pr(None, None, Quality::SEARCHING));
        let mut payload = comment_payload();
        payload[0] = 101;
        let out = feed_all(&mut *decoder(), &reply(0, &payload));
        assert_eq!(errors(&out)[0].kind, DecodeErrorKind::Implausible);
        assert_eq!(errors(&out)[0].skipped, 29);
    }

    #[test]
    fn failed_and_other_replies() {
        let sensors = reply(0, &comment_payload());
        let expected = spo2_pr(Some(98.0), Some(66.0), Quality::GOOD);
        // A ping reply and an info reply (other lengths) are skipped without error.
        let stream = [
            reply(0, &[]),
            sensors.clone(),
            reply(0, br#"{"Model":"1652"}"#),
            reply(1, &[]),
            sensors.clone(),
        ]
        .concat();
        let out = assert_split_invariant(&decoder, &stream);
        assert_eq!(samples(&out), vec![expected.clone(), expected]);
        assert_eq!(
            errors(&out),
            vec![DecodeError {
                kind: DecodeErrorKind::Malformed,
                skipped: 8,
                detail: "reply status 0x01: the command failed".into()
            }]
        );
    }

    #[test]
    fn bad_crc_long_length_and_garbage_resynchronise() {
        let sensors = reply(0, &comment_payload());
        let mut bad_crc = sensors.clone();
        bad_crc[28] ^= 0x01;
        // A header announcing 0x0201 = 513 bytes of payload.
        let too_long = [0x55, 0x00, 0xFF, 0x00, 0x00, 0x01, 0x02];
        let stream = [
            &[0x00, 0x55, 0x55][..],
            &sensors,
            &bad_crc,
            &sensors,
            &too_long,
            &sensors[..10],
            &sensors,
        ]
        .concat();
        let out = assert_split_invariant(&decoder, &stream);
        assert_eq!(samples(&out).len(), 3);
        // A run of skipped bytes takes the kind of its first byte: the 00, then two 55s each
        // refused by the byte after it; the bad reply whole (no 55 inside it); the over-long
        // header, then the cut-off reply (checksum fails once the next reply fills it up,
        // and the next reply is found inside it).
        let runs: Vec<_> = errors(&out).iter().map(|e| (e.kind, e.skipped)).collect();
        assert_eq!(
            runs,
            vec![
                (DecodeErrorKind::Garbage, 3),
                (DecodeErrorKind::Checksum, 29),
                (DecodeErrorKind::Framing, 7 + 10),
            ]
        );
        assert_eq!(errors(&out)[1].detail, "checksum 0xFC, expected 0xFD");
    }

    #[test]
    fn uuids() {
        assert_eq!(SERVICE.to_string(), "14839ac4-7d7e-415c-9a42-167340cf2339");
        assert_eq!(WRITE.to_string(), "8b00ace7-eb0b-49b0-bbe9-9aee0a26e1a3");
        assert_eq!(NOTIFY.to_string(), "0734594a-a8e7-4b1a-a6b1-cd5243059a57");
    }
}
