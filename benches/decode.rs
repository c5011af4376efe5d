//! Decoder throughput: bytes per second through each protocol's decoder, on realistic streams
//! (a patient's values drifting, status flags now and then, the odd finger-out). Serial streams
//! are fed in 64-byte reads as a serial port delivers them; the BLE vendor streams (BerryMed,
//! Jumper, O2Ring) in 20-byte notifications (the payload of the default ATT MTU of 23); the
//! standard GATT characteristics are decoded one whole value at a time, as they arrive.
//!
//! `cargo bench --bench decode`; the figures go in BENCHMARKS.md. For scale: the fastest of
//! these serial devices writes 11.5 kB/s (115200 baud), most under 1 kB/s; the fastest BLE one
//! (BerryMed, 100 frames/s) 500 B/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vitalwatch::acquire::decode::gatt::{self, GattCharacteristic, GattValue};
use vitalwatch::acquire::decode::{
    Decoded, Decoder, Protocol, berrymed, contec, decoder, jumper, line, nonin, o2ring,
};

/// About this many bytes per stream.
const STREAM: usize = 256 * 1024;
/// A serial read's worth.
const READ: usize = 64;
/// A BLE notification's worth at the default ATT MTU (23 bytes, 3 of them the ATT header).
const NOTIFICATION: usize = 20;
/// GATT values per batch (each decoded on its own).
const GATT_VALUES: usize = 1024;

/// A value that drifts slowly around `base` (deterministic, no RNG).
fn drift(i: usize, base: u16, span: u16) -> u16 {
    let phase = (i % 600) as i64 - 300;
    (i64::from(base) + phase.abs() * i64::from(span) / 300 - i64::from(span) / 2) as u16
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Nonin DF2 or DF7 packets: 25 frames, SpO2-D in frame 9, HR-D in frames 20–21.
fn nonin_packets(df7: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + 125);
    let mut packet = 0;
    while out.len() < STREAM {
        let spo2 = drift(packet, 95, 6) as u8;
        let hr = drift(packet, 80, 40);
        for frame in 0..25 {
            let mut status = 0x80u8;
            if frame == 0 {
                status |= 0x01;
            }
            if frame < 12 {
                status |= 0x02; // green perfusion, held for 12 frames
            }
            if packet % 97 == 0 {
                status |= 0x20; // artefact now and then
            }
            let float = match frame {
                8 => spo2,
                19 => ((hr >> 7) & 3) as u8,
                20 => (hr & 0x7F) as u8,
                _ => 0,
            };
            let pleth = ((packet * 25 + frame) % 200) as u16 * 40;
            let mut f = if df7 {
                let [msb, lsb] = pleth.to_be_bytes();
                vec![status, msb, lsb, float, 0]
            } else {
                vec![0x01, status, (pleth >> 5) as u8, float, 0]
            };
            f[4] = sum(&f[..4]);
            out.extend(f);
        }
        packet += 1;
    }
    out
}

fn nonin_df8() -> Vec<u8> {
    (0..STREAM / 4)
        .flat_map(|i| {
            let hr = drift(i, 80, 40);
            let flags = if i % 50 == 0 { 0x04 } else { 0 };
            [
                0x80 | flags | ((hr >> 7) & 3) as u8,
                (hr & 0x7F) as u8,
                drift(i, 95, 6) as u8,
                0x20,
            ]
        })
        .collect()
}

fn text_stream(line: impl Fn(usize) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + 256);
    let mut i = 0;
    while out.len() < STREAM {
        out.extend(line(i).as_bytes());
        i += 1;
    }
    out
}

fn nonin_ascii() -> Vec<u8> {
    text_stream(|i| {
        if i % 120 == 119 {
            "SPO2=--- HR=---\r\n".to_string()
        } else {
            format!("SPO2={:03} HR={:03}\r\n", drift(i, 95, 6), drift(i, 80, 40))
        }
    })
}

fn contec_legacy() -> Vec<u8> {
    (0..STREAM / 5)
        .flat_map(|i| {
            let pr = drift(i / 60, 80, 40);
            let finger_out = if i % 3000 < 60 { 0x10 } else { 0 };
            [
                0x80 | finger_out | 0x05,
                (i % 100) as u8,
                0x08 | (((pr & 0x80) >> 1) as u8),
                (pr & 0x7F) as u8,
                drift(i / 60, 95, 6) as u8,
            ]
        })
        .collect()
}

fn contec_v7() -> Vec<u8> {
    (0..STREAM / 9)
        .flat_map(|i| {
            let pr = drift(i / 60, 80, 40) as u8;
            let spo2 = drift(i / 60, 95, 6) as u8;
            let finger_out = u8::from(i % 3000 < 60);
            [
                0x01,
                0xE0 | finger_out | ((pr >> 7) << 3),
                0x85,
                0x80 | (i % 100) as u8,
                0x9A,
                0x80 | pr,
                0x80 | spo2,
                0xFF,
                0xFF,
            ]
        })
        .collect()
}

fn masimo() -> Vec<u8> {
    text_stream(|i| {
        let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
        if i % 120 == 119 {
            format!(
                "03/19/16 {h:02}:{m:02}:{s:02} SN=0000093112 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000821\r\n"
            )
        } else {
            format!(
                "03/19/16 {h:02}:{m:02}:{s:02} SN=0000093112 SPO2={:03}% BPM={:03} PI={:02}.{:02}% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800\r\n",
                drift(i, 95, 6),
                drift(i, 80, 40),
                i % 10,
                i % 100
            )
        }
    })
}

const BP_PATTERN: &str = r"^SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+) MAP=(?P<mean_arterial>\d+) PR=(?P<pulse_rate>\d+|---)$";

fn bp_lines() -> Vec<u8> {
    text_stream(|i| {
        let sys = drift(i, 130, 40);
        let dia = drift(i, 80, 20);
        format!(
            "SYS={sys} DIA={dia} MAP={} PR={:03}\r\n",
            (sys + 2 * dia) / 3,
            drift(i, 75, 20)
        )
    })
}

/// BerryMed BCI: 5-byte frames at 100 Hz, bit 7 on the first byte only; a finger-out now and
/// then (byte 3 bit 4, no values).
fn berrymed_bci() -> Vec<u8> {
    (0..STREAM / 5)
        .flat_map(|i| {
            let pr = drift(i / 100, 80, 40);
            let no_finger = if i % 5000 < 100 { 0x10 } else { 0 };
            [
                0x80 | 0x06,
                (i % 100) as u8,
                0x05 | no_finger | (((pr & 0x80) >> 1) as u8),
                (pr & 0x7F) as u8,
                drift(i / 100, 95, 6) as u8,
            ]
        })
        .collect()
}

/// Jumper JPD-500F: `81 PR SpO2 PI` frames.
fn jumper_frames() -> Vec<u8> {
    (0..STREAM / 4)
        .flat_map(|i| {
            [
                0x81,
                drift(i, 80, 40) as u8,
                drift(i, 95, 6) as u8,
                20 + (i % 60) as u8,
            ]
        })
        .collect()
}

/// O2Ring read-sensors replies (one per 2 s poll): `55 00 FF block len(21) payload crc8`, the
/// payload SpO2, pulse, battery and the worn flag; off the finger now and then.
fn o2ring_replies() -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + 64);
    let mut i = 0;
    while out.len() < STREAM {
        let mut payload = [0u8; 21];
        payload[0] = drift(i, 95, 6) as u8;
        payload[1] = drift(i, 80, 40) as u8;
        payload[7] = 97; // battery %
        payload[11] = u8::from(i % 200 != 199); // worn
        let mut reply = vec![0x55, 0x00, 0xFF, 0x00, 0x00, 21, 0x00];
        reply.extend(payload);
        reply.push(o2ring::crc8(&reply));
        out.extend(reply);
        i += 1;
    }
    out
}

/// An SFLOAT (IEEE 11073 16-bit) of `mantissa` × 10^`exponent`, little-endian.
fn sfloat(mantissa: i16, exponent: i8) -> [u8; 2] {
    let raw = ((exponent as u16 & 0x0F) << 12) | (mantissa as u16 & 0x0FFF);
    raw.to_le_bytes()
}

/// `GATT_VALUES` values of each standard characteristic a BLE oximeter, cuff or strap sends
/// for a reading, with drifting values.
fn gatt_values() -> Vec<(&'static str, GattCharacteristic, Vec<Vec<u8>>)> {
    // PLX Continuous with measurement status, device and sensor status and PAI (12 bytes).
    let plx = (0..GATT_VALUES)
        .map(|i| {
            let mut v = vec![0x1C];
            v.extend(sfloat(drift(i, 95, 6) as i16, 0));
            v.extend(sfloat(drift(i, 80, 40) as i16, 0));
            v.extend([0x00, 0x00, 0x00, 0x00, 0x00]);
            v.extend(sfloat(20 + (i % 60) as i16, -1));
            v
        })
        .collect();
    // Blood Pressure Measurement in mmHg with time stamp, pulse, user and status (19 bytes).
    let bp = (0..GATT_VALUES)
        .map(|i| {
            let (sys, dia) = (drift(i, 130, 40) as i16, drift(i, 80, 20) as i16);
            let mut v = vec![0x1E];
            v.extend(sfloat(sys, 0));
            v.extend(sfloat(dia, 0));
            v.extend(sfloat((sys + 2 * dia) / 3, 0));
            v.extend([0xEA, 0x07, 11, 25, 9, (i / 60 % 60) as u8, (i % 60) as u8]);
            v.extend(sfloat(drift(i, 75, 20) as i16, 0));
            v.extend([0x01, 0x00, 0x00]);
            v
        })
        .collect();
    // Heart Rate Measurement, contact detected, with two RR intervals (6 bytes).
    let hr = (0..GATT_VALUES)
        .map(|i| {
            let bpm = drift(i, 80, 40) as u8;
            let rr = (60.0 / f64::from(bpm) * 1024.0) as u16;
            let mut v = vec![0x16, bpm];
            v.extend(rr.to_le_bytes());
            v.extend(rr.to_le_bytes());
            v
        })
        .collect();
    vec![
        (
            "gatt_plx_continuous",
            GattCharacteristic::PlxContinuous,
            plx,
        ),
        (
            "gatt_blood_pressure",
            GattCharacteristic::BloodPressureMeasurement,
            bp,
        ),
        (
            "gatt_heart_rate",
            GattCharacteristic::HeartRateMeasurement,
            hr,
        ),
    ]
}

/// A stream decoder to benchmark: how to make a fresh one, its stream, and the size of the
/// pieces the transport hands it.
struct StreamCase {
    name: &'static str,
    make: Box<dyn Fn() -> Box<dyn Decoder>>,
    stream: Vec<u8>,
    piece: usize,
}

fn serial(name: &'static str, protocol: Protocol, stream: Vec<u8>) -> StreamCase {
    StreamCase {
        name,
        make: Box::new(move || decoder(&protocol).expect("benchmark protocol builds")),
        stream,
        piece: READ,
    }
}

fn ble(name: &'static str, make: fn() -> Box<dyn Decoder>, stream: Vec<u8>) -> StreamCase {
    StreamCase {
        name,
        make: Box::new(make),
        stream,
        piece: NOTIFICATION,
    }
}

fn bench(c: &mut Criterion) {
    let cases: Vec<StreamCase> = vec![
        serial(
            "nonin_df2",
            Protocol::Nonin {
                format: nonin::Format::Df2,
            },
            nonin_packets(false),
        ),
        serial(
            "nonin_df7",
            Protocol::Nonin {
                format: nonin::Format::Df7,
            },
            nonin_packets(true),
        ),
        serial(
            "nonin_df8",
            Protocol::Nonin {
                format: nonin::Format::Df8,
            },
            nonin_df8(),
        ),
        serial(
            "nonin_ascii",
            Protocol::Nonin {
                format: nonin::Format::Ascii,
            },
            nonin_ascii(),
        ),
        serial(
            "contec_legacy",
            Protocol::Contec {
                format: contec::Format::Legacy,
            },
            contec_legacy(),
        ),
        serial(
            "contec_v7",
            Protocol::Contec {
                format: contec::Format::V7,
            },
            contec_v7(),
        ),
        serial("masimo_ascii1", Protocol::Masimo, masimo()),
        serial(
            "line_bp_regex",
            Protocol::Line(line::LineSpec {
                pattern: BP_PATTERN.into(),
                ..line::LineSpec::default()
            }),
            bp_lines(),
        ),
        ble("ble_berrymed", berrymed::decoder, berrymed_bci()),
        ble("ble_jumper", jumper::decoder, jumper_frames()),
        ble("ble_o2ring", o2ring::decoder, o2ring_replies()),
    ];
    let mut group = c.benchmark_group("decode");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in &cases {
        let (name, stream) = (case.name, &case.stream);
        // The stream must be what it claims: it decodes with no errors.
        let mut check = (case.make)();
        let mut out = Vec::new();
        check.feed(stream, &mut out);
        let errors = out
            .iter()
            .filter(|d| matches!(d, Decoded::Error(_)))
            .count();
        assert_eq!(errors, 0, "{name}: the benchmark stream has decode errors");
        assert!(out.len() > 100, "{name}: too few samples");

        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || ((case.make)(), Vec::with_capacity(stream.len() / 4)),
                |(mut decoder, mut out)| {
                    for piece in stream.chunks(case.piece) {
                        decoder.feed(piece, &mut out);
                    }
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            );
        });
    }
    // GATT values: `GATT_VALUES` of them per iteration, each decoded on its own.
    for (name, characteristic, values) in gatt_values() {
        for value in &values {
            assert!(
                matches!(
                    gatt::decode(characteristic, value, None),
                    Ok(GattValue::Sample(_))
                ),
                "{name}: {value:02X?} does not decode to a sample"
            );
        }
        let bytes: usize = values.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for value in &values {
                    black_box(gatt::decode(characteristic, black_box(value), None).is_ok());
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
