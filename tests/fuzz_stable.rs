//! The decoder fuzz targets on the stable toolchain: random and mutated-seed inputs through
//! the very checks of `fuzz/fuzz_targets/` (their `common.rs`, included below), for a given
//! number of inputs per target. Not coverage-guided like cargo-fuzz (which needs nightly):
//! inputs come from a seeded generator, half of them mutations of valid frames so that the
//! decoders get past their sync bytes and checksums.
//!
//! ```sh
//! cargo test --test fuzz_stable                                  # 20 000 inputs per target
//! cargo test --release --test fuzz_stable -- --iterations 2000000 --seed 7 nonin line
//! ```
//!
//! Options: `--iterations N` (per target), `--seed S` (default fixed, so a plain `cargo test`
//! is reproducible), target names to run only those. A failing input is written to
//! `target/fuzz-stable-failures/` (replay it with `cargo fuzz run TARGET FILE`), and the run
//! fails. One `test result:` line, as cargo's own tests print.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

use vitalwatch::acquire::decode::o2ring;

/// Inputs per target in a plain `cargo test`.
const DEFAULT_ITERATIONS: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x5EED_F022;
/// Longest input generated.
const MAX_LEN: usize = 4096;

/// One target: its check, the stride of its selector byte (the variants it picks), and seed
/// inputs (selector byte first) of valid frames.
struct Target {
    name: &'static str,
    check: fn(&[u8]) -> usize,
    stride: u8,
    seeds: fn() -> Vec<Vec<u8>>,
}

const TARGETS: &[Target] = &[
    Target {
        name: "nonin",
        check: common::nonin,
        stride: 4,
        seeds: nonin_seeds,
    },
    Target {
        name: "contec",
        check: common::contec,
        stride: 2,
        seeds: contec_seeds,
    },
    Target {
        name: "masimo",
        check: common::masimo,
        stride: 1,
        seeds: masimo_seeds,
    },
    Target {
        name: "line",
        check: common::line,
        stride: 4,
        seeds: line_seeds,
    },
    Target {
        name: "gatt",
        check: common::gatt,
        stride: 8,
        seeds: gatt_seeds,
    },
    Target {
        name: "ble_vendor",
        check: common::ble_vendor,
        stride: 3,
        seeds: ble_vendor_seeds,
    },
];

fn with_selector(selector: u8, bytes: &[u8]) -> Vec<u8> {
    [&[selector][..], bytes].concat()
}

fn nonin_checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// A DF2 (`df7 == false`) or DF7 packet of 25 frames reporting SpO2 and HR (protocols.md §5).
fn nonin_packet(df7: bool, spo2: u8, hr: u16) -> Vec<u8> {
    (0..25u8)
        .flat_map(|i| {
            let float = match i {
                0 | 19 => ((hr >> 7) & 0x03) as u8,
                1 | 20 => (hr & 0x7F) as u8,
                2 | 8 => spo2,
                _ => 0,
            };
            let status = 0x80 | u8::from(i == 0);
            let mut frame = if df7 {
                vec![status, 0x12, i, float]
            } else {
                vec![0x01, status, i, float]
            };
            frame.push(nonin_checksum(&frame));
            frame
        })
        .collect()
}

fn nonin_seeds() -> Vec<Vec<u8>> {
    vec![
        with_selector(
            0,
            &[nonin_packet(false, 97, 72), nonin_packet(false, 88, 131)].concat(),
        ),
        with_selector(
            1,
            &[nonin_packet(true, 97, 72), nonin_packet(true, 99, 60)].concat(),
        ),
        with_selector(2, &[0x80, 0x48, 0x61, 0x00].repeat(3)),
        with_selector(6, &[0x80, 0x49, 0x62, 0x00, 0x80, 0x48, 0x64, 0x00]),
        with_selector(
            3,
            b"SPO2=097 HR=072\r\nSPO2=--- HR=---\r\nSPO2=088 HR=131*\r\n",
        ),
    ]
}

fn contec_seeds() -> Vec<Vec<u8>> {
    let live = [0x01, 0xE0, 0x85, 0xD5, 0x9A, 0xBD, 0xE3, 0xFF, 0xFF];
    vec![
        with_selector(0, &[0x85, 0x32, 0x06, 0x48, 0x61].repeat(4)),
        with_selector(1, &live.repeat(3)),
        with_selector(
            3,
            &[
                &live[..],
                &[0x0F, 0x80, 0xE2, 0xBF, 0xE2, 0xBF, 0xE2, 0xBF, 0x00],
                &live,
            ]
            .concat(),
        ),
    ]
}

fn masimo_seeds() -> Vec<Vec<u8>> {
    vec![
        with_selector(
            0,
            b"11/25/26 19:00:00 SN=0000093112 SPO2=096% BPM=071 PI=04.50% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n",
        ),
        with_selector(
            17,
            b"11/25/26 19:00:01 SN=0000093112 SPO2=---% BPM=---% PI=--.--% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000000\r\n",
        ),
    ]
}

fn line_seeds() -> Vec<Vec<u8>> {
    vec![
        with_selector(0, b"SYS=128 DIA=82 MAP=97 PR=71\r\nSYS=180 DIA=110\r\n"),
        with_selector(2, b"SPO2=97 PR=71 PI=45\r\nSPO2=-- PR=-- PI=--\r\n"),
        with_selector(
            1,
            b"^HR=(?P<pulse_rate>\\d+) SPO2=(?P<spo2>\\d+)$\0HR=72 SPO2=97\r\nHR=300 SPO2=97\r\n",
        ),
    ]
}

fn gatt_seeds() -> Vec<Vec<u8>> {
    vec![
        // Blood pressure measurement: mmHg, pulse rate, user, status.
        with_selector(
            0,
            &[
                0x1E, 0x78, 0x00, 0x50, 0x00, 0x5A, 0x00, 0xE4, 0x07, 0x0B, 0x19, 0x0A, 0x00, 0x00,
                0x48, 0x00, 0x01, 0x00, 0x00,
            ],
        ),
        with_selector(1, &[0x00, 0x50, 0x00, 0xFF, 0x07, 0xFF, 0x07]),
        with_selector(2, &[0x00, 0x00]),
        // PLX spot-check and continuous: SpO2 97, PR 72 as SFLOATs.
        with_selector(3, &[0x00, 0x61, 0x00, 0x48, 0x00]),
        with_selector(4, &[0x00, 0x61, 0x00, 0x48, 0x00]),
        // From 128 the payload's first bytes are also read as PLX features.
        with_selector(132, &[0x00, 0x61, 0x00, 0x48, 0x00]),
        with_selector(5, &[0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        with_selector(6, &[0x00, 0x48]),
        with_selector(14, &[0x01, 0x48, 0x00]),
        with_selector(7, &[0x64]),
    ]
}

fn ble_vendor_seeds() -> Vec<Vec<u8>> {
    let mut o2ring_reply = vec![0x55, 0x00, 0xFF, 0x00, 0x00, 21, 0x00];
    o2ring_reply.extend([
        0x62, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x00, 0x92, 0x0A, 0x01, 0x00,
    ]);
    o2ring_reply.extend([0; 8]);
    o2ring_reply.push(o2ring::crc8(&o2ring_reply));
    vec![
        with_selector(0, &[0xC5, 0x32, 0x46, 0x0F, 0x62].repeat(4)),
        with_selector(1, &[[0x81, 72, 97, 45], [0x81, 60, 99, 20]].concat()),
        with_selector(2, &o2ring_reply.repeat(2)),
    ]
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Bytes decoders treat specially: sync and start bytes, line ends, field characters.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF, 0x55, 0xAA, 0xC5, 0x0D, 0x0A, b'=', b'-', b'*', b'%', b' ',
    b'0', b'9',
];
const TEXT: &[u8] = b"0123456789=-*%.: \r\nSPOHRBMYDIAXP";

/// A random input: mostly short, sometimes long; bytes from anywhere or from text.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(100) {
        0..50 => rng.below(64),
        50..85 => rng.below(512),
        _ => rng.below(MAX_LEN),
    };
    let text = rng.chance(30);
    (0..len)
        .map(|_| {
            if text {
                TEXT[rng.below(TEXT.len())]
            } else {
                rng.byte()
            }
        })
        .collect()
}

/// A seed changed in 1 to 8 ways.
fn mutated(rng: &mut Rng, seeds: &[Vec<u8>], stride: u8) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(10) {
            // A bit flipped.
            0 if len > 0 => input[rng.below(len)] ^= 1 << rng.below(8),
            // A byte made special, or anything.
            1 if len > 0 => input[rng.below(len)] = INTERESTING[rng.below(INTERESTING.len())],
            2 if len > 0 => input[rng.below(len)] = rng.byte(),
            // Bytes inserted (a burst of noise) or lost.
            3 => {
                let at = rng.below(len + 1);
                let noise: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.byte()).collect();
                input.splice(at..at, noise);
            }
            4 if len > 1 => {
                let from = 1 + rng.below(len - 1);
                let to = (from + 1 + rng.below(16)).min(len);
                input.drain(from..to);
            }
            // A stretch repeated elsewhere (a frame sent twice, half a frame again).
            5 if len > 1 => {
                let from = 1 + rng.below(len - 1);
                let to = (from + 1 + rng.below(32)).min(len);
                let copy = input[from..to].to_vec();
                let at = 1 + rng.below(len);
                input.splice(at..at, copy);
            }
            // Another seed spliced on.
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1).max(1).min(len);
                input.truncate(at);
                input.extend_from_slice(&other[1.min(other.len())..]);
            }
            // Cut short.
            7 if len > 1 => input.truncate(1 + rng.below(len - 1)),
            // The same variant, another chunk size.
            8 if len > 0 => {
                let variants = input[0] % stride;
                let steps = (255 - variants) / stride;
                input[0] = variants + stride * rng.below(usize::from(steps) + 1) as u8;
            }
            // The whole stream again, so buffers and resynchronisation get a longer run.
            9 if len > 1 => {
                let again = input[1..].to_vec();
                input.extend(again);
            }
            _ => {}
        }
        input.truncate(MAX_LEN);
    }
    input
}

struct Options {
    iterations: u64,
    seed: u64,
    filters: Vec<String>,
    skips: Vec<String>,
    list: bool,
}

/// Reads the options; the flags cargo and libtest users pass to every test binary are accepted
/// and ignored, a plain word filters targets by name (as libtest does).
fn options() -> Options {
    let mut options = Options {
        iterations: DEFAULT_ITERATIONS,
        seed: DEFAULT_SEED,
        filters: Vec::new(),
        skips: Vec::new(),
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match flag.as_str() {
            "--iterations" => {
                options.iterations = value("--iterations")
                    .replace('_', "")
                    .parse()
                    .expect("--iterations N")
            }
            "--seed" => options.seed = value("--seed").parse().expect("--seed N"),
            "--skip" => options.skips.push(value("--skip")),
            "--list" => options.list = true,
            "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                let _ = value(&flag);
            }
            flag if flag.starts_with('-') => {}
            name => options.filters.push(name.to_string()),
        }
    }
    options
}

/// A failing input: its number, its bytes, what failed.
type Failure = (u64, Vec<u8>, String);

/// Runs `target` on `iterations` inputs: how many decoded to at least one value, or the
/// failing input.
fn fuzz(target: &Target, iterations: u64, seed: u64) -> Result<u64, Failure> {
    let seeds = (target.seeds)();
    // Every seed as it is first: valid frames, which must pass the checks and decode to a value.
    for (index, input) in seeds.iter().enumerate() {
        match run_one(target, input) {
            Ok(0) => {
                let why = "a seed decodes to nothing: fix the seed".to_string();
                return Err((index as u64, input.clone(), why));
            }
            Ok(_) => {}
            Err(why) => return Err((index as u64, input.clone(), why)),
        }
    }
    let mut rng = Rng(seed ^ stream_of(target.name));
    let mut decoding = 0;
    for iteration in 0..iterations {
        let input = if rng.chance(50) {
            random_input(&mut rng)
        } else {
            mutated(&mut rng, &seeds, target.stride)
        };
        let readings = run_one(target, &input).map_err(|why| (iteration, input, why))?;
        decoding += u64::from(readings > 0);
    }
    Ok(decoding)
}

fn run_one(target: &Target, input: &[u8]) -> Result<usize, String> {
    catch_unwind(AssertUnwindSafe(|| (target.check)(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string())
    })
}

fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn failures_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("fuzz-stable-failures")
}

fn main() {
    let options = options();
    let selected: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| {
            options.filters.is_empty()
                || options.filters.iter().any(|f| t.name.contains(f.as_str()))
        })
        .filter(|t| !options.skips.iter().any(|s| t.name.contains(s.as_str())))
        .collect();
    if options.list {
        for target in &selected {
            println!("{}: test", target.name);
        }
        return;
    }
    let filtered_out = TARGETS.len() - selected.len();
    println!(
        "\nrunning {} fuzz targets, {} inputs each, seed {} (random and mutated-seed inputs; not coverage-guided)",
        selected.len(),
        options.iterations,
        options.seed
    );
    let started = Instant::now();
    // The checks' own panics are reported below, with their input; keep the default hook quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = Vec::new();
    for target in &selected {
        let began = Instant::now();
        match fuzz(target, options.iterations, options.seed) {
            Ok(decoding) => println!(
                "test {} ... ok ({} inputs in {:.1} s; {:.0} % decoded to a value)",
                target.name,
                options.iterations,
                began.elapsed().as_secs_f64(),
                100.0 * decoding as f64 / options.iterations.max(1) as f64
            ),
            Err((iteration, input, why)) => {
                let dir = failures_dir();
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!(
                    "{}-seed{}-{iteration}.bin",
                    target.name, options.seed
                ));
                let _ = std::fs::write(&file, &input);
                println!(
                    "test {} ... FAILED at input {iteration}: {why}\n  input ({} bytes) written to {}\n  {:02x?}",
                    target.name,
                    input.len(),
                    file.display(),
                    &input[..input.len().min(256)]
                );
                failed.push(target.name);
            }
        }
    }
    std::panic::set_hook(default_hook);
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
