//! Descriptors against dlib's (data/oracle/dlib_*.json): from dlib's own
//! chips, and end to end from the photo and the box.

mod common;

use std::collections::HashMap;

use common::{decode_file, oracle_chip, oracle_faces};
use ocellus_embed::{Chip, Descriptor, FaceModels, distance};

fn models() -> Option<FaceModels> {
    let dir = common::model_dir()?;
    Some(
        FaceModels::from_bytes(
            &common::read_model(&dir, common::RESNET),
            &common::read_model(&dir, common::SHAPE),
        )
        .expect("models parse"),
    )
}

fn max_abs(a: &Descriptor, b: &Descriptor) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn descriptors_from_dlibs_chips_match() {
    let data = ocellus_testdata::require_data!();
    let Some(m) = models() else { return };
    let faces = oracle_faces(&data);
    let chips: Vec<Chip> = faces.iter().map(oracle_chip).collect();
    let ours = m.descriptors(&chips);
    let (mut worst, mut worst_l2, mut at) = (0f32, 0f64, "");
    for (f, d) in faces.iter().zip(&ours) {
        let e = max_abs(d, &f.descriptor);
        worst_l2 = worst_l2.max(distance(d, &f.descriptor));
        if e > worst {
            worst = e;
            at = &f.name;
        }
    }
    eprintln!(
        "descriptors from dlib's chips, {} faces: max |error| per component {worst:e} ({at}), \
         max L2 {worst_l2:e}",
        faces.len()
    );
    assert!(worst <= 1e-4, "max error {worst} at {at}");
    // A batch gives exactly the single-call results.
    for (c, d) in chips.iter().zip(&ours).take(8) {
        assert_eq!(&m.descriptor(c), d);
    }
}

#[test]
fn descriptors_from_photo_and_box_match() {
    let data = ocellus_testdata::require_data!();
    let Some(m) = models() else { return };
    let faces = oracle_faces(&data);
    let mut images = HashMap::new();
    let (mut worst, mut worst_l2, mut at) = (0f32, 0f64, String::new());
    for f in &faces {
        let img = images
            .entry(f.image.clone())
            .or_insert_with(|| decode_file(&f.image));
        let d = m.face_descriptor(img, f.rect);
        let e = max_abs(&d, &f.descriptor);
        worst_l2 = worst_l2.max(distance(&d, &f.descriptor));
        if e > worst {
            worst = e;
            at = f.name.clone();
        }
    }
    eprintln!(
        "descriptors from photo + box, {} faces: max |error| per component {worst:e} ({at}), \
         max L2 {worst_l2:e}",
        faces.len()
    );
    assert!(worst <= 1e-3, "max error {worst} at {at}");
}
