//! The vendor BLE stream decoders (BerryMed, Jumper, O2Ring): the first byte picks the
//! decoder and the chunk size (a notification's length).
//!
//! The check itself is `common::ble_vendor`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::ble_vendor(data);
});
