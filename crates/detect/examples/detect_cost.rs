//! Checks `detect_cost_ns` against the clock: detects on one thread with
//! the installed frontal-face cascades, on some of the shared photos, on
//! flat grey and on noise, and prints the estimate, the measured CPU time
//! and the time per window once the per-pixel work (downscales and integral
//! tables, timed separately) is taken off. The figures in `src/cost.rs`
//! come from this table.
//!
//! `cargo run --release -p ocellus-detect --example detect_cost [MEGAPIXELS]`
//! (the size of the flat and noise images, default 12).

use std::path::Path;

use ocellus_detect::integral::{Integral, tilted_integral};
use ocellus_detect::pyramid::{levels, resize_linear_exact};
use ocellus_detect::{Cascade, DetectParams, FeatureKind, detect, detect_cost_ns, detect_work};
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_imaging::{Image, PixelLayout};

const CASCADES: [(&str, &str); 3] = [
    (
        "haar_default",
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml",
    ),
    (
        "haar_alt2",
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml",
    ),
    (
        "lbp_improved",
        "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml",
    ),
];

const PHOTOS: [&str; 8] = [
    "fr_obama-1080p.jpg",
    "deepface_couple.jpg",
    "facenet_multiface.jpg",
    "dlib_bald_guys.jpg",
    "skimage_astronaut.png",
    "mtcnn_no-faces.jpg",
    "faceapi_white.png",
    "openpose_COCO_val2014_000000000192.jpg",
];

/// CPU time of the calling thread, ms (Linux's
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`): on a shared machine the wall
/// clock also counts the time other processes hold the core.
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
    // SAFETY: `ts` is a valid, writable timespec of 64-bit Linux's layout.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// Best of `runs` CPU times of `f`, ms.
fn best_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = thread_cpu_ms();
            f();
            thread_cpu_ms() - t
        })
        .fold(f64::INFINITY, f64::min)
}

/// CPU time of the per-pixel part of a detection: every level's downscale
/// and integral tables.
fn pixel_work_ms(cascade: &Cascade, gray: &Image, params: &DetectParams) -> f64 {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let (win_w, win_h) = cascade.window_size();
    let haar = cascade.kind() == FeatureKind::Haar;
    let tilted = haar && cascade.has_tilted_features();
    best_ms(2, || {
        for l in levels(
            (w, h),
            cascade.window_size(),
            params.scale_factor,
            params.min_size,
            params.max_size,
        ) {
            if l.width < win_w as usize || l.height < win_h as usize {
                continue;
            }
            let px = resize_linear_exact(gray.as_bytes(), w, h, l.width, l.height);
            std::hint::black_box(Integral::new(&px, l.width, l.height, haar));
            if tilted {
                std::hint::black_box(tilted_integral(&px, l.width, l.height));
            }
        }
    })
}

fn main() {
    let megapixels: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(12.0);
    let side = |aspect: f64| ((megapixels * 1e6 * aspect).sqrt()) as u32;
    let (sw, sh) = (side(4.0 / 3.0), side(3.0 / 4.0));
    let mut images: Vec<(String, Image)> = Vec::new();
    for v in [0u8, 128] {
        images.push((
            format!("flat {v}"),
            Image::filled(sw, sh, PixelLayout::Gray, v),
        ));
    }
    let noise = ocellus_testdata::noise_bytes(3, sw as usize * sh as usize);
    images.push((
        "noise".into(),
        Image::from_vec(sw, sh, PixelLayout::Gray, noise).expect("valid size"),
    ));
    if let Some(data) = ocellus_testdata::data_dir() {
        for photo in PHOTOS {
            let bytes = std::fs::read(data.join("photos").join(photo)).expect("photo");
            let (image, _) = ocellus_codec::decode(&bytes, &Default::default()).expect("decodes");
            images.push((photo.to_string(), to_gray(&image)));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let params = DetectParams::default();
    println!(
        "| cascade | image | size | windows | estimate ms | measured ms | estimate / measured | pixel work ms | ns per window |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, path) in CASCADES {
        let Ok(xml) = std::fs::read_to_string(Path::new(path)) else {
            eprintln!("skipping {name}: {path} not found (apt-get install opencv-data)");
            continue;
        };
        let cascade = Cascade::from_xml(&xml).expect("installed cascade loads");
        for (label, gray) in &images {
            let (w, h) = (gray.width(), gray.height());
            let work = detect_work(&cascade, w, h, &params);
            let estimate = detect_cost_ns(&cascade, w, h, &params) as f64 / 1e6;
            let runs = if w as u64 * h as u64 > 2_000_000 {
                1
            } else {
                3
            };
            let measured = pool.install(|| {
                best_ms(runs, || {
                    std::hint::black_box(detect(&cascade, gray, &params).expect("valid params"));
                })
            });
            let pixels = pool.install(|| pixel_work_ms(&cascade, gray, &params));
            let per_window = (measured - pixels).max(0.0) * 1e6 / work.windows.max(1) as f64;
            println!(
                "| {name} | {label} | {w}x{h} | {} | {estimate:.0} | {measured:.0} | {:.2} | {pixels:.0} | {per_window:.1} |",
                work.windows,
                estimate / measured
            );
        }
    }
}
