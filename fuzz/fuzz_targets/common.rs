//! The checks every decoder fuzz target makes: whatever the bytes, and however they are split
//! across `feed` calls, a decoder never panics, stays within its buffer cap, decodes the same
//! for every split, never skips more bytes than it was fed, and never emits a value outside
//! its vital's plausible range.
//!
//! One function per target (`nonin`, `contec`, `masimo`, `line`, `gatt`, `ble_vendor`), each
//! taking one fuzz input: the cargo-fuzz targets in this directory call them, and so does the
//! stable-toolchain driver `tests/fuzz_stable.rs` (which includes this file with `#[path]`), so
//! both run the very same checks. In every target the first byte picks the variant (format,
//! characteristic, pattern) and the chunk size; the rest is the stream or payload. Each returns
//! how many values the input decoded to (readings; for GATT any characteristic's value), so
//! that the stable driver can count the inputs that got that far.

// Each including crate uses some of these functions, not all.
#![allow(dead_code)]

use vitalwatch::acquire::decode::contec::{self, Format as ContecFormat};
use vitalwatch::acquire::decode::gatt::{self, GattCharacteristic, GattValue};
use vitalwatch::acquire::decode::line::{LineDecoder, LineSpec};
use vitalwatch::acquire::decode::nonin::{self, Format as NoninFormat};
use vitalwatch::acquire::decode::{Decoded, Decoder, berrymed, jumper, masimo, o2ring};

/// Nonin DF2, DF7, DF8 and ASCII: the first byte picks the format and the chunk size.
pub fn nonin(data: &[u8]) -> usize {
    let Some((&selector, stream)) = data.split_first() else {
        return 0;
    };
    let format = match selector % 4 {
        0 => NoninFormat::Df2,
        1 => NoninFormat::Df7,
        2 => NoninFormat::Df8,
        _ => NoninFormat::Ascii,
    };
    check(
        &|| nonin::decoder(format),
        stream,
        usize::from(selector / 4) + 1,
    )
}

/// Contec legacy and V7: the first byte picks the protocol and the chunk size.
pub fn contec(data: &[u8]) -> usize {
    let Some((&selector, stream)) = data.split_first() else {
        return 0;
    };
    let format = if selector % 2 == 0 {
        ContecFormat::Legacy
    } else {
        ContecFormat::V7
    };
    check(
        &|| contec::decoder(format),
        stream,
        usize::from(selector / 2) + 1,
    )
}

/// Masimo ASCII 1 and trend lines: the first byte picks the chunk size.
pub fn masimo(data: &[u8]) -> usize {
    let Some((&selector, stream)) = data.split_first() else {
        return 0;
    };
    check(&masimo::decoder, stream, usize::from(selector) + 1)
}

/// Fixed patterns of the generic line decoder (a BP monitor's and an oximeter's line).
pub const LINE_PATTERNS: [&str; 2] = [
    r"SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+)(?: MAP=(?P<mean_arterial>\d+))?",
    r"^SPO2=(?P<spo2>\S+) PR=(?P<pulse_rate>\S+) PI=(?P<perfusion_index>\S+)$",
];

/// The generic line decoder. With the first byte even, the stream goes through the fixed
/// patterns; with it odd, the input up to the first NUL is itself the pattern (which must build
/// or be refused, never panic) and the rest the stream.
pub fn line(data: &[u8]) -> usize {
    let Some((&selector, rest)) = data.split_first() else {
        return 0;
    };
    let (pattern, stream) = if selector % 2 == 0 {
        (
            LINE_PATTERNS[usize::from(selector / 2) % 2].to_string(),
            rest,
        )
    } else {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let pattern = String::from_utf8_lossy(&rest[..end]).into_owned();
        (pattern, rest.get(end + 1..).unwrap_or_default())
    };
    let mut spec = LineSpec {
        pattern,
        max_line: 64 + usize::from(selector),
        ..LineSpec::default()
    };
    spec.scale.insert("perfusion_index".into(), 0.1);
    if LineDecoder::new(&spec).is_err() {
        // A pattern without a perfusion_index group refuses that scale; try without it.
        spec.scale.clear();
    }
    let Ok(_) = LineDecoder::new(&spec) else {
        return 0;
    };
    let make = || -> Box<dyn Decoder> {
        match LineDecoder::new(&spec) {
            Ok(decoder) => Box::new(decoder),
            Err(e) => unreachable!("built once already: {e}"),
        }
    };
    check(&make, stream, usize::from(selector / 2) + 1)
}

/// The GATT characteristic decoders: the first byte picks the characteristic (and, from 128,
/// that PLX features built from the next bytes apply); the rest is one payload. Whatever it
/// holds, decoding never panics, an error accounts for the whole payload, and no value
/// outside its vital's plausible range is emitted.
pub fn gatt(data: &[u8]) -> usize {
    let Some((&selector, payload)) = data.split_first() else {
        return 0;
    };
    let all = GattCharacteristic::ALL;
    let characteristic = all[usize::from(selector) % all.len()];
    let features = if selector >= 128 {
        gatt::plx_features(payload.get(..7).unwrap_or(payload)).ok()
    } else {
        None
    };
    match gatt::decode(characteristic, payload, features.as_ref()) {
        Ok(GattValue::Sample(sample)) => {
            for &(vital, value) in &sample.values {
                if let Some(x) = value {
                    let (low, high) = vital.plausible_range();
                    assert!((low..=high).contains(&x), "{vital} {x} emitted");
                }
            }
            1
        }
        // A feature set, a battery level, a cuff pressure: decoded, but not a reading.
        Ok(_) => 1,
        Err(error) => {
            assert_eq!(error.skipped, payload.len());
            0
        }
    }
}

/// The vendor BLE stream decoders (BerryMed, Jumper, O2Ring): the first byte picks the
/// decoder and the chunk size (a notification's length).
pub fn ble_vendor(data: &[u8]) -> usize {
    let Some((&selector, stream)) = data.split_first() else {
        return 0;
    };
    let make = match selector % 3 {
        0 => berrymed::decoder,
        1 => jumper::decoder,
        _ => o2ring::decoder,
    };
    check(&make, stream, usize::from(selector / 3) + 1)
}

/// Feeds `data` whole and in chunks of `chunk` bytes to decoders from `make`, and checks both;
/// the number of readings decoded.
pub fn check(make: &dyn Fn() -> Box<dyn Decoder>, data: &[u8], chunk: usize) -> usize {
    let whole = run(&mut *make(), data, data.len().max(1));
    let split = run(&mut *make(), data, chunk.max(1));
    assert_eq!(whole, split, "output depends on how the stream was split");
    let mut skipped = 0;
    let mut samples = 0;
    for item in &whole {
        match item {
            Decoded::Error(e) => {
                assert!(e.skipped > 0, "{e:?}");
                skipped += e.skipped;
            }
            Decoded::Sample(s) => {
                samples += 1;
                for &(vital, value) in &s.values {
                    if let Some(x) = value {
                        let (low, high) = vital.plausible_range();
                        assert!((low..=high).contains(&x), "{vital} {x} emitted");
                    }
                }
            }
        }
    }
    assert!(
        skipped <= data.len(),
        "skipped {skipped} of {} bytes",
        data.len()
    );
    samples
}

fn run(decoder: &mut dyn Decoder, data: &[u8], chunk: usize) -> Vec<Decoded> {
    let mut out = Vec::new();
    for part in data.chunks(chunk) {
        decoder.feed(part, &mut out);
        assert!(decoder.buffered() <= decoder.buffer_cap());
    }
    out
}
