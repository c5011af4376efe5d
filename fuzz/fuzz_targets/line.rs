//! The generic line decoder. With the first byte even, the stream goes through fixed BP and
//! oximeter patterns; with it odd, the input up to the first NUL is itself the pattern (which
//! must build or be refused, never panic) and the rest the stream.
//!
//! The check itself is `common::line`, shared with the stable driver `tests/fuzz_stable.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::line(data);
});
