//! Serial decoder throughput: bytes per second through each protocol's decoder, on realistic
//! streams (a patient's values drifting, status flags now and then, the odd finger-out), fed in
//! 64-byte reads as a serial port delivers them.
//!
//! `cargo bench --bench decode`; the figures go in BENCHMARKS.md. For scale: the fastest of
//! these devices writes 11.5 kB/s (115200 baud), most under 1 kB/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vitalwatch::acquire::decode::{Decoded, Protocol, contec, decoder, line, nonin};

/// About this many bytes per stream.
const STREAM: usize = 256 * 1024;
/// A serial read's worth.
const READ: usize = 64;

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

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, Protocol, Vec<u8>)> = vec![
        (
            "nonin_df2",
            Protocol::Nonin {
                format: nonin::Format::Df2,
            },
            nonin_packets(false),
        ),
        (
            "nonin_df7",
            Protocol::Nonin {
                format: nonin::Format::Df7,
            },
            nonin_packets(true),
        ),
        (
            "nonin_df8",
            Protocol::Nonin {
                format: nonin::Format::Df8,
            },
            nonin_df8(),
        ),
        (
            "nonin_ascii",
            Protocol::Nonin {
                format: nonin::Format::Ascii,
            },
            nonin_ascii(),
        ),
        (
            "contec_legacy",
            Protocol::Contec {
                format: contec::Format::Legacy,
            },
            contec_legacy(),
        ),
        (
            "contec_v7",
            Protocol::Contec {
                format: contec::Format::V7,
            },
            contec_v7(),
        ),
        ("masimo_ascii1", Protocol::Masimo, masimo()),
        (
            "line_bp_regex",
            Protocol::Line(line::LineSpec {
                pattern: BP_PATTERN.into(),
                ..line::LineSpec::default()
            }),
            bp_lines(),
        ),
    ];
    let mut group = c.benchmark_group("decode");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, protocol, stream) in &cases {
        // The stream must be what it claims: it decodes with no errors.
        let mut check = decoder(protocol).expect("benchmark protocol builds");
        let mut out = Vec::new();
        check.feed(stream, &mut out);
        let errors = out
            .iter()
            .filter(|d| matches!(d, Decoded::Error(_)))
            .count();
        assert_eq!(errors, 0, "{name}: the benchmark stream has decode errors");
        assert!(out.len() > 100, "{name}: too few samples");

        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(
                || {
                    (
                        decoder(protocol).expect("benchmark protocol builds"),
                        Vec::with_capacity(stream.len() / 4),
                    )
                },
                |(mut decoder, mut out)| {
                    for read in stream.chunks(READ) {
                        decoder.feed(read, &mut out);
                    }
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
