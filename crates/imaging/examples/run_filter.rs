//! Runs one pipeline once on a synthetic RGB image, for profilers
//! (`valgrind --tool=callgrind`, `perf`): `run_filter WIDTH HEIGHT SPEC [REPEAT]`.

use ocellus_imaging::pipeline::Pipeline;
use ocellus_imaging::{Image, PixelLayout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: run_filter WIDTH HEIGHT SPEC [REPEAT]";
    let w: u32 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let h: u32 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let pipeline: Pipeline = args.get(3).expect(usage).parse().expect("valid pipeline");
    let repeat: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let data = (0..w as usize * h as usize * 3)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let image = Image::from_vec(w, h, PixelLayout::Rgb, data).expect("valid size");
    let mut times = Vec::new();
    for _ in 0..repeat {
        let img = image.clone();
        let t = std::time::Instant::now();
        let out = pipeline.apply(img).expect("pipeline applies");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "min {:.2} ms, median {:.2} ms",
        times[0],
        times[times.len() / 2]
    );
}
