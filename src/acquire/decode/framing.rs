//! The machinery every decoder shares: a fixed-size frame buffer that resynchronises after
//! garbage or a lost byte, a line splitter with a hard length cap, and the tally of skipped
//! bytes that becomes [`DecodeError`]s.
//!
//! Not for protocol knowledge: what starts a frame, how long it is and what its bytes mean
//! belong to the family modules, which describe it through [`FrameFormat`].

use std::fmt;

use super::{DecodeError, DecodeErrorKind, Decoded, Decoder, Sample};
use crate::vitals::Quality;

/// Why bytes were skipped, kept without allocating until the run is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    Text(&'static str),
    Checksum { got: u8, want: u8 },
    Frames { got: usize, of: usize },
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Text(text) => f.write_str(text),
            Detail::Checksum { got, want } => {
                write!(f, "checksum 0x{got:02X}, expected 0x{want:02X}")
            }
            Detail::Frames { got, of } => {
                write!(f, "packet broken off after {got} of {of} frames")
            }
        }
    }
}

/// The reason a candidate frame (or a byte) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub kind: DecodeErrorKind,
    pub detail: Detail,
}

impl Reject {
    pub const fn new(kind: DecodeErrorKind, text: &'static str) -> Self {
        Reject {
            kind,
            detail: Detail::Text(text),
        }
    }
}

pub(crate) const GARBAGE: Reject =
    Reject::new(DecodeErrorKind::Garbage, "bytes that begin no frame");

/// Skipped bytes are reported in runs of at most this many, so a flood of garbage yields one
/// error per `REPORT_EVERY` bytes, and where a run is cut never depends on how the bytes were
/// split across `feed` calls.
pub(crate) const REPORT_EVERY: usize = 128;

/// A run of skipped bytes not yet reported. The run's kind and detail are those of its first
/// byte; the run is reported when the next frame or line decodes, or when it reaches
/// [`REPORT_EVERY`] bytes.
#[derive(Debug)]
pub(crate) struct Discards {
    count: usize,
    first: Reject,
}

impl Default for Discards {
    fn default() -> Self {
        Discards {
            count: 0,
            first: GARBAGE,
        }
    }
}

impl Discards {
    pub fn add(&mut self, reason: Reject, mut n: usize, out: &mut Vec<Decoded>) {
        while n > 0 {
            if self.count == 0 {
                self.first = reason;
            }
            let room = REPORT_EVERY - self.count;
            let take = n.min(room);
            self.count += take;
            n -= take;
            if self.count == REPORT_EVERY {
                self.flush(out);
            }
        }
    }

    /// Reports the run so far, if any. Called before anything else is emitted, so errors and
    /// samples come out in stream order.
    pub fn flush(&mut self, out: &mut Vec<Decoded>) {
        if self.count > 0 {
            out.push(Decoded::Error(DecodeError {
                kind: self.first.kind,
                skipped: self.count,
                detail: self.first.detail.to_string(),
            }));
            self.count = 0;
        }
    }
}

/// Emits `sample`, or an [`DecodeErrorKind::Implausible`] error (counting `bytes` as skipped)
/// when any value lies outside its vital's plausible range.
pub(crate) fn emit(sample: Sample, bytes: usize, discards: &mut Discards, out: &mut Vec<Decoded>) {
    discards.flush(out);
    match implausible(&sample) {
        Some(detail) => out.push(Decoded::Error(DecodeError {
            kind: DecodeErrorKind::Implausible,
            skipped: bytes,
            detail,
        })),
        None => out.push(Decoded::Sample(sample)),
    }
}

/// Why `sample` cannot be a reading: its first value that is not finite or lies outside its
/// vital's plausible range. `None` when every value present is plausible.
pub(crate) fn implausible(sample: &Sample) -> Option<String> {
    sample.values.iter().find_map(|&(vital, value)| {
        let value = value?;
        let (low, high) = vital.plausible_range();
        (!(value.is_finite() && (low..=high).contains(&value))).then(|| {
            format!(
                "{vital} {value} is outside its plausible range {low}–{high} {}",
                vital.unit()
            )
        })
    })
}

/// What a binary protocol's frames look like. Every frame begins with a byte for which
/// [`FrameFormat::starts`] holds, and its length follows from that byte (or from its header).
pub(crate) trait FrameFormat {
    fn starts(first: u8) -> bool;
    /// The length of a frame that begins with `first`; at least 1 and at most the framer's `N`.
    fn frame_len(first: u8) -> usize;
    /// The length of the frame whose first bytes are `head` (never empty). Formats whose
    /// header carries the length override this: until the header is complete it must exceed
    /// `head.len()`. By default, [`FrameFormat::frame_len`] of the first byte.
    fn frame_len_after(head: &[u8]) -> usize {
        head.first().map_or(1, |&first| Self::frame_len(first))
    }
    /// Whether `byte` may follow `head` (1 ≤ `head.len()` < the frame's length).
    fn fits(head: &[u8], byte: u8) -> Result<(), Reject>;
    /// The final check of a complete frame (a checksum, say).
    fn check(frame: &[u8]) -> Result<(), Reject>;
    /// Formats without a checksum: how many frames after skipped bytes are flagged
    /// [`Quality::ARTEFACT`] before the stream is trusted again. Random bytes make a
    /// plausible-looking frame now and then (a 4-byte DF8 frame about once in a hundred), but
    /// rarely this many in a row; flagged readings never raise or clear an alarm. Zero for
    /// formats whose checksum already refuses garbage.
    const CONFIRM_AFTER_SKIP: usize = 0;
}

pub(crate) enum Event<'a> {
    Frame(&'a [u8]),
    Skip(Reject, usize),
}

/// Holds at most one candidate frame of up to `N` bytes.
///
/// When a candidate is refused (a byte that cannot follow, a bad checksum), only its first byte
/// is dropped and the rest are scanned again, so a frame that began inside the refused bytes
/// (after a lost byte, or inside garbage) is still found.
#[derive(Debug)]
pub(crate) struct Framer<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Framer {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Framer<N> {
    pub fn buffered(&self) -> usize {
        self.len
    }

    pub fn push<F: FrameFormat>(&mut self, byte: u8, sink: &mut impl FnMut(Event<'_>)) {
        if let Some(reject) = self.step::<F>(byte, sink) {
            self.rescan::<F>(reject, sink);
        }
    }

    /// Takes one byte; returns the reason when the buffered candidate (now including `byte`)
    /// was refused and must be scanned again without its first byte.
    fn step<F: FrameFormat>(
        &mut self,
        byte: u8,
        sink: &mut impl FnMut(Event<'_>),
    ) -> Option<Reject> {
        if self.len == 0 {
            if !F::starts(byte) {
                sink(Event::Skip(GARBAGE, 1));
                return None;
            }
            self.buf[0] = byte;
            self.len = 1;
        } else {
            let fits = F::fits(&self.buf[..self.len], byte);
            self.buf[self.len] = byte;
            self.len += 1;
            if let Err(reject) = fits {
                return Some(reject);
            }
        }
        let frame_len = self.len;
        if frame_len >= F::frame_len_after(&self.buf[..frame_len]).clamp(1, N) {
            if let Err(reject) = F::check(&self.buf[..frame_len]) {
                return Some(reject);
            }
            self.len = 0;
            sink(Event::Frame(&self.buf[..frame_len]));
        }
        None
    }

    fn rescan<F: FrameFormat>(&mut self, mut reject: Reject, sink: &mut impl FnMut(Event<'_>)) {
        // Each round drops one byte, so this ends; the buffer never holds more than N bytes
        // because a refused candidate is at most one frame long.
        loop {
            sink(Event::Skip(reject, 1));
            let mut rest = [0u8; N];
            let n = self.len - 1;
            rest[..n].copy_from_slice(&self.buf[1..self.len]);
            self.len = 0;
            let mut again = None;
            for (i, &byte) in rest[..n].iter().enumerate() {
                if let Some(r) = self.step::<F>(byte, sink) {
                    let tail = &rest[i + 1..n];
                    self.buf[self.len..self.len + tail.len()].copy_from_slice(tail);
                    self.len += tail.len();
                    again = Some(r);
                    break;
                }
            }
            match again {
                Some(r) => reject = r,
                None => return,
            }
        }
    }
}

/// What a framed protocol does with each frame (a family module's state: a Nonin packet being
/// assembled, or nothing).
pub(crate) trait FrameSink {
    fn frame(&mut self, frame: &[u8], discards: &mut Discards, out: &mut Vec<Decoded>);
    /// Bytes were skipped: anything assembled across frames can no longer be trusted.
    fn skipped(&mut self, _discards: &mut Discards, _out: &mut Vec<Decoded>) {}
    /// Bytes held across frames (a partly assembled packet).
    fn held(&self) -> usize {
        0
    }
    /// The most bytes [`FrameSink::held`] can report.
    const MAX_HELD: usize = 0;
}

/// A [`Decoder`] for a binary protocol: a [`Framer`] for format `F` feeding the sink `S`.
pub(crate) struct Framed<F, S, const N: usize> {
    framer: Framer<N>,
    discards: Discards,
    /// Frames still to be flagged since bytes were last skipped (see
    /// [`FrameFormat::CONFIRM_AFTER_SKIP`]).
    untrusted: usize,
    sink: S,
    format: std::marker::PhantomData<fn() -> F>,
}

impl<F, S, const N: usize> Framed<F, S, N> {
    pub fn new(sink: S) -> Self {
        Framed {
            framer: Framer::default(),
            discards: Discards::default(),
            untrusted: 0,
            sink,
            format: std::marker::PhantomData,
        }
    }
}

impl<F: FrameFormat, S: FrameSink + Send, const N: usize> Decoder for Framed<F, S, N> {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        let Framed {
            framer,
            discards,
            untrusted,
            sink,
            ..
        } = self;
        let mut on_event = |event: Event<'_>| match event {
            Event::Frame(frame) => {
                let before = out.len();
                sink.frame(frame, discards, out);
                if *untrusted > 0 {
                    *untrusted -= 1;
                    for item in &mut out[before..] {
                        if let Decoded::Sample(sample) = item {
                            sample.quality |= Quality::ARTEFACT;
                        }
                    }
                }
            }
            Event::Skip(reason, n) => {
                *untrusted = F::CONFIRM_AFTER_SKIP;
                sink.skipped(discards, out);
                discards.add(reason, n, out);
            }
        };
        for &byte in bytes {
            framer.push::<F>(byte, &mut on_event);
        }
    }

    fn buffered(&self) -> usize {
        self.framer.buffered() + self.sink.held()
    }

    fn buffer_cap(&self) -> usize {
        N + S::MAX_HELD
    }
}

pub(crate) enum LineEvent<'a> {
    Line(&'a [u8]),
    /// Bytes of a line longer than the cap, dropped.
    TooLong(usize),
}

/// Splits a byte stream into lines at CR or LF (so CR LF, LF and lone CR all end a line; empty
/// lines are dropped). A line longer than `cap` bytes is dropped, up to its end, never buffered.
#[derive(Debug)]
pub(crate) struct Lines {
    buf: Vec<u8>,
    cap: usize,
    overflow: bool,
}

impl Lines {
    pub fn new(cap: usize) -> Self {
        Lines {
            buf: Vec::with_capacity(cap),
            cap,
            overflow: false,
        }
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(LineEvent<'_>)) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.extend(&bytes[..end], on);
                    if self.overflow {
                        self.overflow = false;
                    } else if !self.buf.is_empty() {
                        on(LineEvent::Line(&self.buf));
                    }
                    self.buf.clear();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.extend(bytes, on);
                    return;
                }
            }
        }
    }

    fn extend(&mut self, part: &[u8], on: &mut impl FnMut(LineEvent<'_>)) {
        if part.is_empty() {
            return;
        }
        if self.overflow {
            on(LineEvent::TooLong(part.len()));
        } else if self.buf.len() + part.len() <= self.cap {
            self.buf.extend_from_slice(part);
        } else {
            let dropped = self.buf.len() + part.len();
            self.buf.clear();
            self.overflow = true;
            on(LineEvent::TooLong(dropped));
        }
    }
}

/// Turns one complete line into a sample, or says why it cannot.
pub(crate) trait LineFormat {
    fn parse(&self, line: &[u8]) -> Result<Sample, (DecodeErrorKind, String)>;
}

/// A [`Decoder`] for a line-oriented protocol.
pub(crate) struct Lined<P> {
    lines: Lines,
    discards: Discards,
    format: P,
}

impl<P> Lined<P> {
    pub fn new(format: P, max_line: usize) -> Self {
        Lined {
            lines: Lines::new(max_line),
            discards: Discards::default(),
            format,
        }
    }
}

const TOO_LONG: Reject = Reject::new(
    DecodeErrorKind::TooLong,
    "line longer than the protocol's limit, dropped up to its end",
);

impl<P: LineFormat + Send> Decoder for Lined<P> {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        let Lined {
            lines,
            discards,
            format,
        } = self;
        lines.feed(bytes, &mut |event| match event {
            LineEvent::Line(line) => match format.parse(line) {
                Ok(sample) => emit(sample, line.len(), discards, out),
                Err((kind, detail)) => {
                    discards.flush(out);
                    out.push(Decoded::Error(DecodeError {
                        kind,
                        skipped: line.len(),
                        detail,
                    }));
                }
            },
            LineEvent::TooLong(n) => discards.add(TOO_LONG, n, out),
        });
    }

    fn buffered(&self) -> usize {
        self.lines.buffered()
    }

    fn buffer_cap(&self) -> usize {
        self.lines.cap()
    }
}

/// Splits a line into whitespace-separated `TAG=value` fields. `Err` carries the first field
/// that has no `=`.
pub(crate) fn tagged_fields(text: &str) -> impl Iterator<Item = Result<(&str, &str), &str>> {
    text.split_ascii_whitespace()
        .map(|field| field.split_once('=').ok_or(field))
}

/// A value made of `-` characters (with perhaps a sign or a decimal point), such as `---`,
/// `+--` or `--.--`: the device says it has no value.
pub(crate) fn is_dashes(value: &str) -> bool {
    value.contains('-') && value.chars().all(|c| matches!(c, '-' | '+' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `A B C D`: `A` starts, the byte after it must have bit 7 clear, and the check
    /// wants `B C D` after the `A`.
    struct Toy;
    impl FrameFormat for Toy {
        fn starts(first: u8) -> bool {
            first == b'A'
        }
        fn frame_len(_: u8) -> usize {
            4
        }
        fn fits(head: &[u8], byte: u8) -> Result<(), Reject> {
            if head.len() == 1 && byte & 0x80 != 0 {
                return Err(Reject::new(DecodeErrorKind::Framing, "bit 7"));
            }
            Ok(())
        }
        fn check(frame: &[u8]) -> Result<(), Reject> {
            if frame == b"ABCD" {
                Ok(())
            } else {
                Err(Reject::new(DecodeErrorKind::Checksum, "not ABCD"))
            }
        }
    }

    /// The frames found in `bytes`, and how many bytes were skipped; checks that every byte is
    /// accounted for exactly once.
    fn run(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let mut framer = Framer::<4>::default();
        let mut frames = Vec::new();
        let mut skipped = 0;
        for &b in bytes {
            framer.push::<Toy>(b, &mut |event| match event {
                Event::Frame(f) => frames.push(f.to_vec()),
                Event::Skip(_, n) => skipped += n,
            });
            assert!(framer.buffered() < 4);
        }
        assert_eq!(skipped + 4 * frames.len() + framer.buffered(), bytes.len());
        (frames, skipped)
    }

    #[test]
    fn framer_finds_a_frame_that_began_inside_a_refused_one() {
        // The candidate `A A B C` fails its check; dropping the first A leaves `A B C`,
        // which the next byte D completes.
        assert_eq!(run(b"AABCD"), (vec![b"ABCD".to_vec()], 1));
    }

    #[test]
    fn framer_rescans_the_bytes_after_a_second_refusal() {
        // `A A 90 A` fails its check; rescanning `A 90 A`, the 90 refuses the A before it, and
        // the last A, which came after the 90, must still be scanned: it starts `A B C D`.
        assert_eq!(run(b"AA\x90ABCD"), (vec![b"ABCD".to_vec()], 3));
    }

    #[test]
    fn framer_counts_every_byte_exactly_once() {
        let (frames, skipped) = run(b"xxA\x90AAB\x00ABCDzABCDAAA\x90A\x80ABCDAA");
        assert_eq!(frames, vec![b"ABCD".to_vec(); 3]);
        assert_eq!(skipped, 15);
    }

    #[test]
    fn discards_report_in_fixed_runs_whatever_the_split() {
        let mut whole = Vec::new();
        let mut d = Discards::default();
        d.add(GARBAGE, 300, &mut whole);
        d.flush(&mut whole);
        let mut split = Vec::new();
        let mut d = Discards::default();
        for _ in 0..300 {
            d.add(GARBAGE, 1, &mut split);
        }
        d.flush(&mut split);
        assert_eq!(whole, split);
        let sizes: Vec<_> = whole
            .iter()
            .map(|e| match e {
                Decoded::Error(e) => e.skipped,
                Decoded::Sample(_) => 0,
            })
            .collect();
        assert_eq!(sizes, vec![128, 128, 44]);
    }

    #[test]
    fn lines_end_at_cr_or_lf_and_drop_over_long_lines() {
        let mut lines = Lines::new(4);
        let mut got = Vec::new();
        lines.feed(b"ab\r\ncd\rtoolong\nok\n", &mut |e| match e {
            LineEvent::Line(l) => got.push(String::from_utf8_lossy(l).into_owned()),
            LineEvent::TooLong(n) => got.push(format!("<{n}>")),
        });
        assert_eq!(got, vec!["ab", "cd", "<7>", "ok"]);
        assert_eq!(lines.buffered(), 0);
    }

    #[test]
    fn dashes_mean_no_value() {
        for text in ["---", "--", "+--", "--.--", "-"] {
            assert!(is_dashes(text), "{text}");
        }
        for text in ["097", "-5", "", "1-2", "+12", "."] {
            assert!(!is_dashes(text), "{text}");
        }
    }
}
