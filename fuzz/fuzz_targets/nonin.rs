//! Nonin DF2, DF7, DF8 and ASCII: the first byte picks the format and the chunk size.
//!
//! The check itself is `common::nonin`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::nonin(data);
});
