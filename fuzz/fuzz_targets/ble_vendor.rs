//! The vendor BLE stream decoders (BerryMed, Jumper, O2Ring): the first byte picks the
//! decoder and the chunk size (a notification's length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::{berrymed, jumper, o2ring};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let make = match selector % 3 {
        0 => berrymed::decoder,
        1 => jumper::decoder,
        _ => o2ring::decoder,
    };
    common::check(&make, stream, usize::from(selector / 3) + 1);
});
