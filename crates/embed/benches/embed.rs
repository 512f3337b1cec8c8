//! Criterion benchmarks of ocellus-embed: model parsing, landmarks, chip,
//! and the network on one face and on a batch. Needs the model files
//! (`OCELLUS_MODEL_DIR` or `~/.local/share/ocellus/models`) and the shared
//! data (`OCELLUS_TEST_DATA` or `../shared/data`); skips when absent.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use ocellus_embed::{Chip, FaceModels, Rect, ShapePredictor};

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OCELLUS_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/ocellus/models"))
        })?;
    dir.join("dlib_face_recognition_resnet_model_v1.dat")
        .is_file()
        .then_some(dir)
}

fn bench(c: &mut Criterion) {
    let (Some(models), Some(data)) = (model_dir(), ocellus_testdata::data_dir()) else {
        eprintln!("skipping: model files or test data not found");
        return;
    };
    let resnet = std::fs::read(models.join("dlib_face_recognition_resnet_model_v1.dat"))
        .expect("resnet model");
    let shape =
        std::fs::read(models.join("shape_predictor_5_face_landmarks.dat")).expect("shape model");
    let m = FaceModels::from_bytes(&resnet, &shape).expect("models parse");

    // One oracle face: people/alex_lacamoire, HOG box (dlib_people.json).
    let photo = data.join("people/alex_lacamoire/fr_alex-lacamoire.png");
    let img = ocellus_codec::decode(&std::fs::read(photo).expect("photo"), &Default::default())
        .expect("decodes")
        .0;
    let rect = Rect::new(184, 150, 339, 305);
    let lm = m.landmarks(&img, rect);
    let chip = m.chip(&img, &lm);
    let chips: Vec<Chip> = vec![chip.clone(); 8];

    let mut g = c.benchmark_group("embed");
    g.sample_size(10);
    g.bench_function("parse_shape_predictor", |b| {
        b.iter(|| ShapePredictor::from_bytes(black_box(&shape)))
    });
    g.bench_function("landmarks", |b| {
        b.iter(|| m.landmarks(black_box(&img), rect))
    });
    g.bench_function("chip", |b| b.iter(|| m.chip(black_box(&img), &lm)));
    g.bench_function("descriptor_1_thread", |b| {
        b.iter(|| m.descriptor(black_box(&chip)))
    });
    g.bench_function("descriptors_batch_8", |b| {
        b.iter(|| m.descriptors(black_box(&chips)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
