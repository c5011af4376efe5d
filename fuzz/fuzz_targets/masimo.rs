//! Masimo ASCII 1 and trend lines: the first byte picks the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::masimo;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    common::check(&masimo::decoder, stream, usize::from(selector) + 1);
});
