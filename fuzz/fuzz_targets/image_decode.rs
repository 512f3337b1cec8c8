//! Feeds arbitrary bytes to the image decoders through Ocellus's limits:
//! `inspect` and `decode` must never panic, and a file that `check`
//! accepts must decode within the budget. Run with an RSS limit a little
//! above the budget so that libFuzzer reports any decode that allocates
//! more (see `fuzz/README.md`):
//! `cargo fuzz run image_decode -- -rss_limit_mb=200 -malloc_limit_mb=80`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocellus_codec::{DecodeLimits, check, decode, inspect};

/// Small limits, so that an accepted file decodes in milliseconds and a
/// decode that outgrows its estimate trips libFuzzer's malloc limit.
const LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 4_000_000,
    max_dimension: 16_384,
    max_decode_bytes: 64 << 20,
};

fuzz_target!(|data: &[u8]| {
    let info = inspect(data);
    let accepted = info.as_ref().is_ok_and(|i| check(i, &LIMITS).is_ok());
    if let Ok((image, format)) = decode(data, &LIMITS) {
        let info = info.expect("decode succeeded, so inspect did");
        assert!(accepted, "decoded a file that check refuses: {info:?}");
        assert_eq!(format, info.format);
        let dims = (image.width(), image.height());
        assert!(
            dims == (info.width, info.height) || dims == (info.height, info.width),
            "decoded {dims:?}, inspect said {info:?}"
        );
    }
});
