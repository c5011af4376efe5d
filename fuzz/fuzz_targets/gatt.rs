//! The GATT characteristic decoders: the first byte picks the characteristic (and whether PLX
//! features built from the next bytes apply); the rest is one payload. Whatever it holds,
//! decoding never panics, an error accounts for the whole payload, and no value outside its
//! vital's plausible range is emitted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::gatt::{self, GattCharacteristic, GattValue};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
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
        }
        Ok(_) => {}
        Err(error) => assert_eq!(error.skipped, payload.len()),
    }
});
