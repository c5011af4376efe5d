//! The generic line decoder. With the first byte even, the stream goes through fixed BP and
//! oximeter patterns; with it odd, the input up to the first NUL is itself the pattern (which
//! must build or be refused, never panic) and the rest the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::Decoder;
use vitalwatch::acquire::decode::line::{LineDecoder, LineSpec};

mod common;

const PATTERNS: [&str; 2] = [
    r"SYS=(?P<systolic>\d+) DIA=(?P<diastolic>\d+)(?: MAP=(?P<mean_arterial>\d+))?",
    r"^SPO2=(?P<spo2>\S+) PR=(?P<pulse_rate>\S+) PI=(?P<perfusion_index>\S+)$",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (pattern, stream) = if selector % 2 == 0 {
        (PATTERNS[usize::from(selector / 2) % 2].to_string(), rest)
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
        return;
    };
    let make = || -> Box<dyn Decoder> {
        match LineDecoder::new(&spec) {
            Ok(decoder) => Box::new(decoder),
            Err(e) => unreachable!("built once already: {e}"),
        }
    };
    common::check(&make, stream, usize::from(selector / 2) + 1);
});
