//! Masimo ASCII 1 and trend lines: the first byte picks the chunk size.
//!
//! The check itself is `common::masimo`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::masimo(data);
});
