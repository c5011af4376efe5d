//! Contec legacy and V7: the first byte picks the protocol and the chunk size.
//!
//! The check itself is `common::contec`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::contec(data);
});
