//! Nonin DF2, DF7, DF8 and ASCII: the first byte picks the format and the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalwatch::acquire::decode::nonin::{self, Format};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => Format::Df2,
        1 => Format::Df7,
        2 => Format::Df8,
        _ => Format::Ascii,
    };
    common::check(
        &|| nonin::decoder(format),
        stream,
        usize::from(selector / 4) + 1,
    );
});
