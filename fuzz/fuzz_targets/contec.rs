//! Contec legacy and V7: the first byte picks the protocol and the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::contec::{self, Format};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 0 {
        Format::Legacy
    } else {
        Format::V7
    };
    common::check(
        &|| contec::decoder(format),
        stream,
        usize::from(selector / 2) + 1,
    );
});
