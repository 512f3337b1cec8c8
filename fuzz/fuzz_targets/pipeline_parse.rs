//! Feeds arbitrary text to the pipeline parser: nothing may panic, and
//! every pipeline it accepts must print back to text that parses to the
//! same pipeline (`p.to_string().parse() == p`). `cargo fuzz run
//! pipeline_parse` (the seed corpus is in `fuzz/corpus/pipeline_parse`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocellus_imaging::pipeline::Pipeline;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pipeline) = text.parse::<Pipeline>() else {
        return;
    };
    let printed = pipeline.to_string();
    match printed.parse::<Pipeline>() {
        Ok(again) => assert!(
            again == pipeline,
            "{text:?} printed as {printed:?} parses to a different pipeline"
        ),
        Err(e) => panic!("{text:?} printed as {printed:?} does not parse: {e}"),
    }
});
