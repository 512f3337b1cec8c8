//! Cancellation: a raised flag stops a pipeline, whether raised before it
//! starts or from another thread while a long filter runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ocellus_imaging::pipeline::{FilterError, Op, Pipeline};
use ocellus_imaging::{Cancel, Image, PixelLayout};

fn noise(w: u32, h: u32) -> Image {
    let data = ocellus_testdata::noise_bytes(7, w as usize * h as usize * 3);
    Image::from_vec(w, h, PixelLayout::Rgb, data).unwrap()
}

#[test]
fn every_op_gives_up_when_the_flag_is_already_raised() {
    let cancel = Cancel::new(Arc::new(AtomicBool::new(true)));
    let all = "blur=2,box=2,median=2,sharpen=1:1,edges,grayscale,sepia,invert,brightness=5,\
               contrast=1.1,resize=30x20,resize=30x20:bilinear,rotate=90,rotate=180,flip=h,\
               flip=v,crop=5x5+1+1";
    let pipeline: Pipeline = all.parse().unwrap();
    for op in pipeline.ops() {
        assert_eq!(
            op.apply_cancellable(noise(40, 30), &cancel),
            Err(FilterError::Cancelled),
            "{op}"
        );
    }
    assert_eq!(
        pipeline.apply_cancellable(noise(40, 30), &cancel),
        Err(FilterError::Cancelled)
    );
}

#[test]
fn not_cancelled_gives_the_same_bytes_as_apply() {
    let flag = Arc::new(AtomicBool::new(false));
    let cancel = Cancel::new(flag);
    let spec = "blur=1.5,box=2,median=2,sharpen=1:1,sepia,resize=61x47,rotate=270,edges";
    let pipeline: Pipeline = spec.parse().unwrap();
    let img = noise(90, 70);
    let a = pipeline.apply_cancellable(img.clone(), &cancel).unwrap();
    let b = pipeline.apply(img.clone()).unwrap();
    assert_eq!(a, b);
    for op in pipeline.ops() {
        assert_eq!(
            op.apply_cancellable(img.clone(), &cancel).unwrap(),
            op.apply(img.clone()).unwrap(),
            "{op}"
        );
    }
}

#[test]
fn cancelling_from_another_thread_stops_a_long_median() {
    // Minutes of work in a debug build, seconds in release: it cannot finish
    // before the flag goes up. The assertion is on the outcome, not a time.
    let pipeline: Pipeline = "median=50,median=50,median=50,median=50".parse().unwrap();
    let img = noise(1500, 1000);
    let flag = Arc::new(AtomicBool::new(false));
    let cancel = Cancel::new(flag.clone());
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Relaxed);
    });
    let result = pipeline.apply_cancellable(img, &cancel);
    raiser.join().unwrap();
    assert_eq!(result, Err(FilterError::Cancelled));
}

#[test]
fn cancelling_from_another_thread_stops_a_long_blur_and_resize() {
    for spec in ["box=500,box=500,box=500", "resize=9000x9000,resize=100x100"] {
        let pipeline: Pipeline = spec.parse().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let cancel = Cancel::new(flag.clone());
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::Relaxed);
        });
        let result = pipeline.apply_cancellable(noise(1200, 900), &cancel);
        raiser.join().unwrap();
        assert_eq!(result, Err(FilterError::Cancelled), "{spec}");
    }
}

#[test]
fn op_cap_applies_to_parsing() {
    let spec = vec!["median=50"; ocellus_imaging::pipeline::MAX_OPS + 1].join(",");
    assert!(spec.parse::<Pipeline>().is_err());
    assert!(matches!("median=50".parse::<Op>(), Ok(Op::Median(50))));
}
