//! Feeds arbitrary text to the cascade XML loader: it must return a cascade
//! or an error, never panic. `cargo fuzz run cascade_xml` (the seed corpus
//! is in `fuzz/corpus/cascade_xml`: OpenCV's cascades, whole and in pieces).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocellus_detect::Cascade;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Cascade::from_xml(text);
    }
});
