#![no_main]
//! Framer on arbitrary bytes in arbitrary chunks: never panics, never loops, never yields more
//! bytes than it was given, never exceeds its limit.

use libfuzzer_sys::fuzz_target;
use meniscus_syslog::{Framer, Framing};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let framing = match head % 3 {
        0 => Framing::Auto,
        1 => Framing::OctetCounting,
        _ => Framing::Lf,
    };
    let max = usize::from(head >> 2) + 1;
    let chunk = usize::from(head % 7) + 1;
    let mut f = Framer::new(framing, max);
    let mut total = 0usize;
    let mut frames = 0usize;
    for piece in rest.chunks(chunk) {
        f.extend(piece);
        while let Some(fr) = f.next_frame() {
            assert!(fr.bytes.len() <= max);
            total += fr.bytes.len();
            frames += 1;
            assert!(frames <= rest.len());
        }
    }
    while let Some(fr) = f.finish() {
        assert!(fr.bytes.len() <= max);
        total += fr.bytes.len();
        frames += 1;
        assert!(frames <= rest.len() + 1);
    }
    assert!(total <= rest.len());
});
