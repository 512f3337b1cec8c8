//! Criterion benchmarks: every filter at 640x480, 1920x1080 and 4000x3000 RGB.
//! Run with `cargo bench -p ocellus-imaging`; `RAYON_NUM_THREADS=1` for one core.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ocellus_imaging::pipeline::Pipeline;
use ocellus_imaging::{Image, PixelLayout};

const SIZES: [(u32, u32); 3] = [(640, 480), (1920, 1080), (4000, 3000)];

/// Smooth gradients plus noise: realistic enough for data-dependent filters (median).
fn test_image(w: u32, h: u32) -> Image {
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

/// Benchmarks one operation at every size; `spec` gets the image size, so
/// that resize and crop can be relative to it.
fn bench_filter(c: &mut Criterion, name: &str, spec: impl Fn(u32, u32) -> String) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    for (w, h) in SIZES {
        let pipeline: Pipeline = spec(w, h).parse().expect("valid spec");
        let src = test_image(w, h);
        group.throughput(Throughput::Elements(w as u64 * h as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{w}x{h}")),
            &(),
            |b, _| {
                // The clone is measured for every filter alike: one memcpy.
                b.iter(|| pipeline.apply(src.clone()).expect("applies"))
            },
        );
    }
    group.finish();
}

fn filters(c: &mut Criterion) {
    let fixed = |s: &'static str| move |_: u32, _: u32| s.to_string();
    bench_filter(c, "blur=5", fixed("blur=5"));
    bench_filter(c, "box=5", fixed("box=5"));
    bench_filter(c, "median=3", fixed("median=3"));
    bench_filter(c, "sharpen=2:1", fixed("sharpen=2:1"));
    bench_filter(c, "edges", fixed("edges"));
    bench_filter(c, "grayscale", fixed("grayscale"));
    bench_filter(c, "sepia", fixed("sepia"));
    bench_filter(c, "invert", fixed("invert"));
    bench_filter(c, "brightness=20", fixed("brightness=20"));
    bench_filter(c, "contrast=1.3", fixed("contrast=1.3"));
    bench_filter(c, "resize=half", |w, h| {
        format!("resize={}x{}", w / 2, h / 2)
    });
    bench_filter(c, "resize=half:bilinear", |w, h| {
        format!("resize={}x{}:bilinear", w / 2, h / 2)
    });
    bench_filter(c, "rotate=90", fixed("rotate=90"));
    bench_filter(c, "flip=h", fixed("flip=h"));
    bench_filter(c, "crop=half", |w, h| {
        format!("crop={}x{}+{}+{}", w / 2, h / 2, w / 4, h / 4)
    });
}

criterion_group!(benches, filters);
criterion_main!(benches);
