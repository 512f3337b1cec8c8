//! Feeds arbitrary bytes to the frame decoder, as a stream would arrive:
//! every frame it accepts must re-encode to the same bytes, and nothing may
//! panic. `cargo fuzz run frame_decode` (the seed corpus is in
//! `fuzz/corpus/frame_decode`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocellus_protocol::{Decoded, FrameLimits, decode_frame};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits { max_frame: 1 << 16, max_header: 1 << 12 };
    let mut rest = data;
    while let Ok(Decoded::Frame(frame, used)) = decode_frame(rest, &limits) {
        let _ = frame.images();
        // A header that came in as JSON may be re-serialised differently
        // (whitespace, key order), so compare by decoding again.
        let again = frame.to_bytes();
        match decode_frame(&again, &limits) {
            Ok(Decoded::Frame(same, n)) => assert!(same == frame && n == again.len()),
            other => panic!("re-encoded frame does not decode: {other:?}"),
        }
        rest = &rest[used..];
    }
});
