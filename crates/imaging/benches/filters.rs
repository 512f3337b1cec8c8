//! Criterion benchmarks: every filter at 640x480, 1920x1080 and 4000x3000 RGB.
//! Run with `cargo bench -p ocellus-imaging`; `RAYON_NUM_THREADS=1` for one core.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ocellus_imaging::filter::gaussian::gaussian_blur;
use ocellus_imaging::{Image, PixelLayout};

const SIZES: [(u32, u32); 3] = [(640, 480), (1920, 1080), (4000, 3000)];

/// Smooth gradients plus noise: realistic enough for data-dependent filters (median).
fn test_image(w: u32, h: u32) -> Image {
    let mut state = 0x9e37_79b9_u32;
    let mut data = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state >> 28) as u32;
            data.push(((x * 255 / w) + n).min(255) as u8);
            data.push(((y * 255 / h) + n).min(255) as u8);
            data.push((((x + y) * 127 / (w + h)) + n) as u8);
        }
    }
    Image::from_vec(w, h, PixelLayout::Rgb, data).expect("valid size")
}

fn bench_filter(c: &mut Criterion, name: &str, f: impl Fn(&mut Image)) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    for (w, h) in SIZES {
        let src = test_image(w, h);
        let mut img = src.clone();
        group.throughput(Throughput::Elements(w as u64 * h as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{w}x{h}")),
            &(),
            |b, _| {
                b.iter(|| {
                    img.as_bytes_mut().copy_from_slice(src.as_bytes());
                    f(&mut img)
                })
            },
        );
    }
    group.finish();
}

fn filters(c: &mut Criterion) {
    bench_filter(c, "blur_sigma5", |img| gaussian_blur(img, 5.0));
}

criterion_group!(benches, filters);
criterion_main!(benches);
