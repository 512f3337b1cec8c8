//! Checks the cost model against the clock: runs each operation on one
//! thread at a few sizes and parameters, and prints the estimate of
//! `Pipeline::plan`, the measured CPU time (best of a few runs) and their ratio.
//! The figures beside each filter come from this table.
//!
//! `cargo run --release -p ocellus-imaging --example cost_table [FILTER]`
//! (FILTER keeps only the cases whose pipeline contains it). Always one
//! thread, whatever `RAYON_NUM_THREADS` says: the model is single-thread.

use ocellus_imaging::pipeline::{MAX_OUTPUT_PIXELS, Pipeline};
use ocellus_imaging::{Image, PixelLayout};

/// Smooth gradients plus noise (as the criterion benches), or one value.
fn test_image(w: u32, h: u32, flat: Option<u8>) -> Image {
    if let Some(v) = flat {
        return Image::filled(w, h, PixelLayout::Rgb, v);
    }
    let mut noise = ocellus_testdata::Noise::new(1);
    let mut data = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            let n = noise.below(16) as u32;
            data.push(((x * 255 / w) + n).min(255) as u8);
            data.push(((y * 255 / h) + n).min(255) as u8);
            data.push((((x + y) * 127 / (w + h)) + n) as u8);
        }
    }
    Image::from_vec(w, h, PixelLayout::Rgb, data).expect("valid size")
}

/// CPU time of the calling thread, ms: on a shared machine the wall clock
/// also counts the time other processes hold the core. Linux's
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, declared here rather than
/// adding a dependency for one call.
#[cfg(target_os = "linux")]
fn thread_cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec of the platform's layout
    // (64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// Elsewhere, the wall clock since the first call.
#[cfg(not(target_os = "linux"))]
fn thread_cpu_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Best CPU time of the pipeline over a few runs on the calling thread, ms
/// (the copy of the input is made outside the timed region).
fn best_ms(pipeline: &Pipeline, src: &Image) -> f64 {
    let mut best = f64::INFINITY;
    let mut spent = 0.0;
    for run in 0.. {
        let img = src.clone();
        let t = thread_cpu_ms();
        let out = pipeline.apply(img).expect("applies");
        let ms = thread_cpu_ms() - t;
        drop(std::hint::black_box(out));
        best = best.min(ms);
        spent += ms;
        if run >= 2 && (spent > 300.0 || run >= 9) {
            break;
        }
    }
    best
}

fn main() {
    let only = std::env::args().nth(1);
    let cases: &[(&str, u32, u32, Option<u8>)] = &[
        ("blur=1", 640, 480, None),
        ("blur=1", 1920, 1080, None),
        ("blur=5", 1920, 1080, None),
        ("blur=20", 1920, 1080, None),
        ("blur=100", 1920, 1080, None),
        ("box=1", 1920, 1080, None),
        ("box=5", 640, 480, None),
        ("box=5", 1920, 1080, None),
        ("box=50", 1920, 1080, None),
        ("box=500", 1920, 1080, None),
        ("median=1", 640, 480, None),
        ("median=1", 1920, 1080, None),
        ("median=1", 1920, 1080, Some(255)),
        ("median=3", 1920, 1080, None),
        ("median=3", 1920, 1080, Some(255)),
        ("median=10", 1920, 1080, None),
        ("median=50", 1920, 1080, None),
        ("median=50", 1920, 1080, Some(255)),
        ("median=50", 8, 20000, None),
        ("sharpen=1:1", 1920, 1080, None),
        ("sharpen=2:1", 640, 480, None),
        ("sharpen=2:1", 1920, 1080, None),
        ("sharpen=20:1", 1920, 1080, None),
        ("edges", 640, 480, None),
        ("edges", 1920, 1080, None),
        ("grayscale", 640, 480, None),
        ("grayscale", 1920, 1080, None),
        ("sepia", 640, 480, None),
        ("sepia", 1920, 1080, None),
        ("invert", 640, 480, None),
        ("invert", 1920, 1080, None),
        ("brightness=20", 1920, 1080, None),
        ("contrast=1.3", 1920, 1080, None),
        ("resize=960x540", 1920, 1080, None),
        ("resize=960x540:bilinear", 1920, 1080, None),
        ("resize=320x240", 640, 480, None),
        ("resize=3840x2160", 1920, 1080, None),
        ("resize=3840x2160:bilinear", 1920, 1080, None),
        ("resize=192x108", 1920, 1080, None),
        ("resize=16x9", 1920, 1080, None),
        ("resize=1000x", 1920, 1080, None),
        ("resize=1920x540", 1920, 1080, None),
        ("resize=4000x4000", 1, 1, None),
        ("rotate=90", 640, 480, None),
        ("rotate=90", 1920, 1080, None),
        ("rotate=180", 1920, 1080, None),
        ("flip=h", 1920, 1080, None),
        ("flip=v", 1920, 1080, None),
        ("crop=960x540+100+100", 1920, 1080, None),
        ("crop=320x240+10+10", 640, 480, None),
    ];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    println!("| pipeline | input | content | estimate ms | measured ms | estimate / measured |");
    println!("|---|---|---|---|---|---|");
    let mut worst: (f64, f64) = (f64::INFINITY, 0.0);
    for &(spec, w, h, flat) in cases {
        if only.as_deref().is_some_and(|o| !spec.contains(o)) {
            continue;
        }
        let pipeline: Pipeline = spec.parse().expect("valid spec");
        let src = test_image(w, h, flat);
        let plan = pool.install(|| pipeline.plan(w, h, 3, MAX_OUTPUT_PIXELS).expect("plans"));
        let measured = pool.install(|| best_ms(&pipeline, &src));
        let estimate = plan.cost_ns as f64 / 1e6;
        let ratio = estimate / measured;
        worst = (worst.0.min(ratio), worst.1.max(ratio));
        let content = match flat {
            Some(v) => format!("flat {v}"),
            None => "gradient+noise".to_string(),
        };
        println!("| `{spec}` | {w}x{h} | {content} | {estimate:.2} | {measured:.2} | {ratio:.2} |");
    }
    println!();
    println!(
        "estimate / measured between {:.2} and {:.2}",
        worst.0, worst.1
    );
}
