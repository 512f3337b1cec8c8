//! Criterion benchmark of `detect` on a couple of photos from the shared
//! data set (skipped when the data is absent), for the three frontal-face
//! cascades installed by `opencv-data`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use ocellus_detect::{Cascade, DetectParams, detect};
use ocellus_imaging::filter::grayscale::to_gray;

const CASCADES: [(&str, &str, u32); 3] = [
    (
        "haar_default",
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml",
        30,
    ),
    (
        "haar_alt2",
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml",
        0,
    ),
    (
        "lbp_improved",
        "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml",
        0,
    ),
];

const PHOTOS: [&str; 2] = ["fr_obama-480p.jpg", "deepface_couple.jpg"];

fn bench(c: &mut Criterion) {
    let Some(data) = ocellus_testdata::data_dir() else {
        return;
    };
    for (name, path, min) in CASCADES {
        let Ok(xml) = std::fs::read_to_string(Path::new(path)) else {
            eprintln!("skipping {name}: {path} not found (apt-get install opencv-data)");
            continue;
        };
        let cascade = Cascade::from_xml(&xml).expect("installed cascade loads");
        let params = DetectParams {
            min_size: (min, min),
            ..DetectParams::default()
        };
        for photo in PHOTOS {
            let bytes = std::fs::read(data.join("photos").join(photo)).expect("photo");
            let (image, _) = ocellus_codec::decode(&bytes, &Default::default()).expect("decode");
            let gray = to_gray(&image);
            c.bench_function(&format!("{name}/{photo}"), |b| {
                b.iter(|| detect(&cascade, &gray, &params).expect("valid params"))
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
