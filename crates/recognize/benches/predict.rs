//! Prediction time alone, per algorithm, on ORL protocol A (200 training
//! faces of 92x112, queries from the 200 test faces): the kernels issue #4
//! is about, measured without training or model loading. Needs the shared
//! data set (skipped without it).
//!
//! `cargo bench -p ocellus-recognize --bench predict` (set
//! `RAYON_NUM_THREADS=1` for the single-thread figures).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::{EigenFaces, FisherFaces, Label, Lbph, LbphParams, Recognizer};

/// Training faces, their labels and test faces of ORL protocol A.
type Protocol = (Vec<Image>, Vec<Label>, Vec<Image>);

fn load() -> Option<Protocol> {
    let orl = ocellus_testdata::data_dir()?.join("faces").join("orl");
    let read = |s: i32, i: i32| {
        let bytes = std::fs::read(orl.join(format!("s{s}")).join(format!("{i}.pgm"))).ok()?;
        let (img, _) = decode(&bytes, &DecodeLimits::default()).ok()?;
        Some(to_gray(&img))
    };
    let (mut train, mut labels, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for s in 1..=40 {
        for i in 1..=10 {
            let img = read(s, i)?;
            if i <= 5 {
                train.push(img);
                labels.push(s);
            } else {
                test.push(img);
            }
        }
    }
    Some((train, labels, test))
}

fn predict(c: &mut Criterion) {
    let Some((train, labels, test)) = load() else {
        eprintln!("skipping prediction benchmarks: shared data not found");
        return;
    };
    let mut group = c.benchmark_group("predict");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let recognizers: [(&str, Box<dyn Recognizer>); 3] = [
        ("eigen", Box::new(EigenFaces::new(0))),
        ("fisher", Box::new(FisherFaces::new(0))),
        ("lbph", Box::new(Lbph::new(LbphParams::default()))),
    ];
    for (name, mut r) in recognizers {
        r.train(&train, &labels).expect("train");
        r.set_threshold(f64::INFINITY);
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % test.len();
                r.predict(black_box(&test[i])).expect("predict")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, predict);
criterion_main!(benches);
