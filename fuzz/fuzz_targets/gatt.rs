//! The GATT characteristic decoders: the first byte picks the characteristic (and whether PLX
//! features built from the next bytes apply); the rest is one payload. Whatever it holds,
//! decoding never panics, an error accounts for the whole payload, and no value outside its
//! vital's plausible range is emitted.
//!
//! The check itself is `common::gatt`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::gatt(data);
});
