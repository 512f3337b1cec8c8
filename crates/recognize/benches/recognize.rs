//! Training and prediction times on ORL protocol A (images 1-5 of the 40
//! subjects train, 6-10 test), the figures `bench/compare_recognize.py`
//! compares with OpenCV. Needs the shared data set (skipped without it).
//!
//! `cargo bench -p ocellus-recognize` (set `RAYON_NUM_THREADS=1` for the
//! single-thread figures).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::{
    EigenFaces, FisherFaces, Label, Lbph, LbphParams, Recognizer, model_from_bytes,
};

struct Protocol {
    train: Vec<Image>,
    labels: Vec<Label>,
    test: Vec<Image>,
}

fn load() -> Option<Protocol> {
    let data = ocellus_testdata::data_dir()?;
    let orl = data.join("faces").join("orl");
    let read = |s: i32, i: i32| {
        let bytes = std::fs::read(orl.join(format!("s{s}")).join(format!("{i}.pgm"))).ok()?;
        let (img, _) = decode(&bytes, &DecodeLimits::default()).ok()?;
        Some(to_gray(&img))
    };
    let mut p = Protocol {
        train: Vec::new(),
        labels: Vec::new(),
        test: Vec::new(),
    };
    for s in 1..=40 {
        for i in 1..=10 {
            let img = read(s, i)?;
            if i <= 5 {
                p.train.push(img);
                p.labels.push(s);
            } else {
                p.test.push(img);
            }
        }
    }
    Some(p)
}

fn bench_algorithm(
    c: &mut Criterion,
    p: &Protocol,
    name: &str,
    make: impl Fn() -> Box<dyn Recognizer>,
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("train_200", |b| {
        b.iter(|| {
            let mut r = make();
            r.train(black_box(&p.train), &p.labels).expect("train");
            r
        })
    });
    let mut r = make();
    r.train(&p.train, &p.labels).expect("train");
    r.set_threshold(f64::INFINITY);
    group.bench_function("predict_one", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % p.test.len();
            r.predict(black_box(&p.test[i])).expect("predict")
        })
    });
    let bytes = r.to_bytes().expect("to_bytes");
    group.bench_function("load_model", |b| {
        b.iter(|| model_from_bytes(black_box(&bytes)).expect("load"))
    });
    group.finish();
}

fn recognizers(c: &mut Criterion) {
    let Some(p) = load() else {
        eprintln!("skipping recognizer benchmarks: shared data not found");
        return;
    };
    bench_algorithm(c, &p, "eigen_default", || Box::new(EigenFaces::new(0)));
    bench_algorithm(c, &p, "fisher_default", || Box::new(FisherFaces::new(0)));
    bench_algorithm(c, &p, "lbph_default", || {
        Box::new(Lbph::new(LbphParams::default()))
    });
}

criterion_group!(benches, recognizers);
criterion_main!(benches);
