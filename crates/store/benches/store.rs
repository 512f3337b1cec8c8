//! Store latencies: one enrollment commit (`add_faces` of one 100x100 PNG,
//! synced to disk) and reading the training set (`faces()` of 500 such faces).
//!
//! `cargo bench -p ocellus-store`. The database lives in a temporary directory
//! under `OCELLUS_STORE_BENCH_DIR` (default: the system temp dir); the commit
//! latency is mostly the fsync of that file system, so run it on the disk the
//! node's data dir will use. `benches/peer_sqlite3.py` times the same
//! operations with Python's sqlite3 module for comparison.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ocellus_store::{NewFace, Store};
use ocellus_testdata::Noise;

/// Side of the square face crops, in pixels.
const SIDE: u32 = 100;
/// Faces in the training-set benchmark.
const TRAINING_FACES: u64 = 500;

/// A 100x100 greyscale PNG with face-like entropy (a smooth gradient plus
/// pseudo-random noise), different for every seed.
fn face(seed: u64) -> NewFace {
    let mut noise = Noise::new(seed);
    let pixels = image::GrayImage::from_fn(SIDE, SIDE, |x, y| {
        let smooth = (x + y) * 255 / (2 * SIDE);
        image::Luma([(smooth + noise.below(24) as u32).min(255) as u8])
    });
    let mut png = Vec::new();
    pixels
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode PNG");
    let mut source_hash = [0u8; 32];
    source_hash[..8].copy_from_slice(&seed.to_le_bytes());
    NewFace {
        source_hash,
        png,
        width: SIDE,
        height: SIDE,
        embedding: None,
    }
}

fn temp_dir() -> tempfile::TempDir {
    match std::env::var_os("OCELLUS_STORE_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent).expect("temp dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn bench_add_one_face(c: &mut Criterion) {
    let dir = temp_dir();
    let mut store = Store::open(dir.path()).expect("open store");
    // Faces are prepared outside the timed loop; each iteration commits one.
    let faces: Vec<NewFace> = (0..64).map(face).collect();
    println!("face PNG size: {} bytes", faces[0].png.len());
    let mut next = 0u64;
    let mut group = c.benchmark_group("add_faces");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("one_face_one_commit", |b| {
        b.iter(|| {
            let mut new = faces[(next % 64) as usize].clone();
            new.source_hash[8..16].copy_from_slice(&next.to_le_bytes());
            next += 1;
            black_box(store.add_faces("bench person", &[new]).expect("add"))
        })
    });
    group.finish();
}

fn bench_read_training_set(c: &mut Criterion) {
    let dir = temp_dir();
    let mut store = Store::open(dir.path()).expect("open store");
    for person in 0..TRAINING_FACES / 10 {
        let faces: Vec<NewFace> = (0..10).map(|i| face(person * 10 + i)).collect();
        store
            .add_faces(&format!("person {person}"), &faces)
            .expect("add");
    }
    let mut group = c.benchmark_group("faces");
    group.bench_function("500_faces_100x100_png", |b| {
        b.iter(|| {
            let faces = store.faces().expect("faces");
            assert_eq!(faces.len() as u64, TRAINING_FACES);
            black_box(faces)
        })
    });
    group.bench_function("people_50_with_counts", |b| {
        b.iter(|| black_box(store.people().expect("people")))
    });
    group.finish();
}

criterion_group!(benches, bench_add_one_face, bench_read_training_set);
criterion_main!(benches);
