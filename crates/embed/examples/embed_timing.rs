//! Times ocellus-embed on the dlib oracle faces, for `bench/compare_embed.py`.
//!
//! Usage: `embed_timing --data DIR [--models DIR] [--repeats N] [--threads N]
//! [--limit N]`. Reads `DIR/oracle/dlib_*.json`, the chips in
//! `DIR/oracle/dlib_chips/` and the photos; prints one JSON object: per-face
//! medians (ms) of the network on one thread, landmarks and chip, and the
//! batch throughput with `--threads` workers (default 2).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ocellus_embed::{Chip, FaceModels, Rect};
use ocellus_imaging::Image;
use serde_json::{Value, json};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn decode(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ocellus_codec::decode(&bytes, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn time_ms<T>(repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// CPU seconds used by this process so far (utime + stime from
/// /proc/self/stat, 10 ms resolution): the machine is shared, so wall time
/// alone overstates what a face costs.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // Fields 14 and 15 of the file; 11 and 12 after the command name.
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(arg(&args, "--data").expect("--data DIR"));
    let models = arg(&args, "--models")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".local/share/ocellus/models")
        });
    let repeats: usize = arg(&args, "--repeats").map_or(3, |v| v.parse().expect("--repeats N"));
    let threads: usize = arg(&args, "--threads").map_or(2, |v| v.parse().expect("--threads N"));
    let limit: usize = arg(&args, "--limit").map_or(usize::MAX, |v| v.parse().expect("--limit N"));

    let t = Instant::now();
    let resnet = std::fs::read(models.join("dlib_face_recognition_resnet_model_v1.dat"))
        .expect("resnet model");
    let shape =
        std::fs::read(models.join("shape_predictor_5_face_landmarks.dat")).expect("shape model");
    let m = FaceModels::from_bytes(&resnet, &shape).expect("models parse");
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    // (image path, box, chip png) of every oracle face, in file order.
    let mut faces: Vec<(PathBuf, Rect, PathBuf)> = Vec::new();
    for file in [
        "dlib_people.json",
        "dlib_people_lbpboxes.json",
        "dlib_photos.json",
    ] {
        let text = std::fs::read_to_string(data.join("oracle").join(file)).expect("oracle");
        let v: Value = serde_json::from_str(&text).expect("json");
        let folder = v["folders"][0].as_str().expect("folder");
        let folder = data.join(folder.strip_prefix("data/").unwrap_or(folder));
        for (key, rec) in v["images"].as_object().expect("images") {
            for f in rec["faces"].as_array().into_iter().flatten() {
                let b = &f["box"];
                let i = |k: &str| b[k].as_i64().expect("int");
                let png = f["chip_png"].as_str().expect("png");
                faces.push((
                    folder.join(key),
                    Rect::new(i("left"), i("top"), i("right"), i("bottom")),
                    data.join(png.strip_prefix("data/").unwrap_or(png)),
                ));
            }
        }
    }
    faces.truncate(limit);
    let chips: Vec<Chip> = faces
        .iter()
        .map(|(_, _, png)| Chip::from_image(&decode(png)).expect("150x150 chip"))
        .collect();

    // One thread: the network per chip, landmarks and chip per face.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let (net, net_cpu, lms, chip_ms) = one.install(|| {
        let cpu0 = cpu_seconds();
        let net: Vec<f64> = chips
            .iter()
            .map(|c| time_ms(repeats, || m.descriptor(c)))
            .collect();
        let net_cpu = (cpu_seconds() - cpu0) * 1e3 / (chips.len() * (repeats + 1)) as f64;
        let (mut lms, mut chip_ms) = (Vec::new(), Vec::new());
        let mut last: Option<(PathBuf, Image)> = None;
        for (path, rect, _) in &faces {
            if last.as_ref().is_none_or(|(p, _)| p != path) {
                last = Some((path.clone(), decode(path)));
            }
            let img = &last.as_ref().expect("image").1;
            lms.push(time_ms(repeats, || m.landmarks(img, *rect)));
            let lm = m.landmarks(img, *rect);
            chip_ms.push(time_ms(repeats, || m.chip(img, &lm)));
        }
        (net, net_cpu, lms, chip_ms)
    });

    // Throughput: the whole batch on `threads` workers.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let batch_ms = pool.install(|| time_ms(repeats, || m.descriptors(&chips)));

    let out = json!({
        "impl": "ocellus-embed",
        "faces": chips.len(),
        "repeats": repeats,
        "load_ms": load_ms,
        "net_ms_per_face_1thread": median(net),
        "net_cpu_ms_per_face_1thread": net_cpu,
        "landmarks_ms": median(lms),
        "chip_ms": median(chip_ms),
        "threads": threads,
        "batch_faces_per_s": chips.len() as f64 / (batch_ms / 1e3),
    });
    println!("{out}");
}
