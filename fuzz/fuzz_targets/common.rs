//! The checks every decoder fuzz target makes: whatever the bytes, and however they are split
//! across `feed` calls, a decoder never panics, stays within its buffer cap, decodes the same
//! for every split, never skips more bytes than it was fed, and never emits a value outside
//! its vital's plausible range.

use vitalwatch::acquire::decode::{Decoded, Decoder};

/// Feeds `data` whole and in chunks of `chunk` bytes to decoders from `make`, and checks both.
pub fn check(make: &dyn Fn() -> Box<dyn Decoder>, data: &[u8], chunk: usize) {
    let whole = run(&mut *make(), data, data.len().max(1));
    let split = run(&mut *make(), data, chunk.max(1));
    assert_eq!(whole, split, "output depends on how the stream was split");
    let mut skipped = 0;
    for item in &whole {
        match item {
            Decoded::Error(e) => {
                assert!(e.skipped > 0, "{e:?}");
                skipped += e.skipped;
            }
            Decoded::Sample(s) => {
                for &(vital, value) in &s.values {
                    if let Some(x) = value {
                        let (low, high) = vital.plausible_range();
                        assert!((low..=high).contains(&x), "{vital} {x} emitted");
                    }
                }
            }
        }
    }
    assert!(
        skipped <= data.len(),
        "skipped {skipped} of {} bytes",
        data.len()
    );
}

fn run(decoder: &mut dyn Decoder, data: &[u8], chunk: usize) -> Vec<Decoded> {
    let mut out = Vec::new();
    for part in data.chunks(chunk) {
        decoder.feed(part, &mut out);
        assert!(decoder.buffered() <= decoder.buffer_cap());
    }
    out
}
