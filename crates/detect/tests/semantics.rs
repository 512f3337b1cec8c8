//! Evaluation semantics checked with tiny hand-written cascades: each test
//! builds a one- or two-stage cascade as XML and runs it on an image the
//! size of its window (so exactly one window is evaluated, at scale 1), or
//! on a slightly wider image to observe the scanning order and skips.

use ocellus_detect::{Cascade, CascadeError, DetectParams, Rect, detect_candidates};
use ocellus_imaging::{Image, PixelLayout};

/// A `<cascade>` document with the given window, feature type, stages and
/// features (each a pre-formatted XML fragment).
fn cascade_xml(kind: &str, w: u32, h: u32, stages: &[String], features: &[String]) -> String {
    let cat = if kind == "LBP" { 256 } else { 0 };
    format!(
        "<?xml version=\"1.0\"?>\n<opencv_storage>\n<cascade type_id=\"opencv-cascade-classifier\">\
         <stageType>BOOST</stageType><featureType>{kind}</featureType>\
         <height>{h}</height><width>{w}</width>\
         <stageParams><maxWeakCount>1</maxWeakCount></stageParams>\
         <featureParams><maxCatCount>{cat}</maxCatCount></featureParams>\
         <stageNum>{}</stageNum><stages>{}</stages><features>{}</features></cascade>\n</opencv_storage>\n",
        stages.len(),
        stages.concat(),
        features.concat()
    )
}

/// A stage with trees given as (internalNodes, leafValues) text.
fn stage(threshold: f64, trees: &[(&str, &str)]) -> String {
    let weak: String = trees
        .iter()
        .map(|(n, l)| {
            format!("<_><internalNodes>{n}</internalNodes><leafValues>{l}</leafValues></_>")
        })
        .collect();
    format!(
        "<_><maxWeakCount>{}</maxWeakCount><stageThreshold>{threshold:e}</stageThreshold>\
         <weakClassifiers>{weak}</weakClassifiers></_>",
        trees.len()
    )
}

fn haar_feature(rects: &[(i32, i32, i32, i32, f64)]) -> String {
    let r: String = rects
        .iter()
        .map(|(x, y, w, h, wt)| format!("<_>{x} {y} {w} {h} {wt:?}</_>"))
        .collect();
    format!("<_><rects>{r}</rects></_>")
}

fn gray(w: u32, h: u32, px: Vec<u8>) -> Image {
    Image::from_vec(w, h, PixelLayout::Gray, px).expect("valid image")
}

/// Raw detections at scale 1 only (the scale factor of 2 makes every
/// larger window exceed these tiny images).
fn raw(cascade: &Cascade, image: &Image) -> Vec<Rect> {
    let params = DetectParams {
        min_neighbors: 0,
        scale_factor: 2.0,
        ..DetectParams::default()
    };
    detect_candidates(cascade, image, &params).expect("valid params")
}

fn accepted(cascade: &Cascade, image: &Image) -> bool {
    let found = raw(cascade, image);
    assert!(found.len() <= 1);
    !found.is_empty()
}

/// A 6x6 test image: textured, so that the variance test passes.
fn textured_6x6() -> Vec<u8> {
    (0..36u32)
        .map(|i| ((i * 37 + (i / 6) * 11) % 200 + 20) as u8)
        .collect()
}

/// What OpenCV computes for a Haar window at scale 1 at the origin:
/// the variance normalisation factor of the inner (W-2)x(H-2) rectangle.
fn norm_factor(px: &[u8], w: usize, h: usize) -> f32 {
    let (mut s1, mut s2) = (0i64, 0i64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let p = px[y * w + x] as i64;
            s1 += p;
            s2 += p * p;
        }
    }
    let area = ((w - 2) * (h - 2)) as f64;
    let nf = area * s2 as f64 - (s1 * s1) as f64;
    (1.0 / nf.sqrt()) as f32
}

fn rect_sum(px: &[u8], w: usize, (x, y, rw, rh): (usize, usize, usize, usize)) -> i32 {
    let mut s = 0;
    for r in y..y + rh {
        for c in x..x + rw {
            s += px[r * w + c] as i32;
        }
    }
    s
}

#[test]
fn haar_stump_threshold_uses_variance_normalised_f32_value() {
    let px = textured_6x6();
    let v = norm_factor(&px, 6, 6);
    // Feature: -1 x whole window + 2 x left half.
    let whole = rect_sum(&px, 6, (0, 0, 6, 6));
    let left = rect_sum(&px, 6, (0, 0, 3, 6));
    let value = (-(whole as f32) + 2.0f32 * left as f32) * v;
    let feature = haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)]);
    // Left leaf (value < threshold) passes the stage, right leaf fails.
    let build = |threshold: f32| {
        let nodes = format!("0 -1 0 {:?}", threshold as f64);
        Cascade::from_xml(&cascade_xml(
            "HAAR",
            6,
            6,
            &[stage(0.0, &[(&nodes, "1.0 -1.0")])],
            std::slice::from_ref(&feature),
        ))
        .expect("cascade loads")
    };
    let image = gray(6, 6, px);
    let above = value.next_up(); // value < threshold
    let below = value; // value == threshold: not "<", goes right
    assert!(
        accepted(&build(above), &image),
        "value {value} < next float"
    );
    assert!(
        !accepted(&build(below), &image),
        "value {value} == threshold"
    );
}

#[test]
fn flat_and_low_contrast_windows_are_never_evaluated() {
    // A stage that accepts everything (threshold far below both leaves).
    let xml = cascade_xml(
        "HAAR",
        6,
        6,
        &[stage(-10.0, &[("0 -1 0 0.", "1.0 1.0")])],
        &[haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)])],
    );
    let c = Cascade::from_xml(&xml).expect("cascade loads");
    assert!(accepted(&c, &gray(6, 6, textured_6x6())));
    assert!(!accepted(&c, &gray(6, 6, vec![128; 36])), "flat window");
    // Standard deviation 5 (< 10 grey levels): rejected.
    let low: Vec<u8> = (0..36)
        .map(|i| if i % 2 == 0 { 100 } else { 110 })
        .collect();
    assert!(!accepted(&c, &gray(6, 6, low)), "low-contrast window");
    // Standard deviation 11 in the inner 4x4 block: evaluated.
    let high: Vec<u8> = (0..36)
        .map(|i| if (i % 6 + i / 6) % 2 == 0 { 100 } else { 122 })
        .collect();
    assert!(accepted(&c, &gray(6, 6, high)), "contrast above 10 levels");
}

#[test]
fn stage_threshold_is_lowered_by_1e5_in_f32() {
    let feature = haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)]);
    let image = gray(6, 6, textured_6x6());
    let with = |threshold: f64| {
        Cascade::from_xml(&cascade_xml(
            "HAAR",
            6,
            6,
            &[stage(threshold, &[("0 -1 0 1e30", "0.5 0.5")])],
            std::slice::from_ref(&feature),
        ))
        .expect("cascade loads")
    };
    // Sum 0.5 against 0.5 (stored 0.49999): passes; against 0.500011
    // (stored 0.500001): fails; against 0.500009 (stored 0.499999): passes.
    assert!(accepted(&with(0.5), &image));
    assert!(!accepted(&with(0.500011), &image));
    assert!(accepted(&with(0.500009), &image));
}

#[test]
fn tree_traversal_follows_left_right_and_leaf_indices() {
    let px = textured_6x6();
    let v = norm_factor(&px, 6, 6);
    let whole = rect_sum(&px, 6, (0, 0, 6, 6));
    let left = rect_sum(&px, 6, (0, 0, 3, 6));
    let top = rect_sum(&px, 6, (0, 0, 6, 3));
    let f0 = (-(whole as f32) + 2.0f32 * left as f32) * v;
    let f1 = (-(whole as f32) + 2.0f32 * top as f32) * v;
    let features = [
        haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)]),
        haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 6, 3, 2.0)]),
    ];
    let image = gray(6, 6, px);
    // Root: feature 0; left child node 1 (feature 1), right leaf 2.
    // Node 1: left leaf 0, right leaf 1. Leaves: 10, 20, 30.
    // The stage passes only when the chosen leaf is `want`.
    let run = |t0: f32, t1: f32, want: f64| {
        let nodes = format!("1 -2 0 {:?} 0 -1 1 {:?}", t0 as f64, t1 as f64);
        let stage_xml = stage(want - 1.0, &[(&nodes, "10. 20. 30.")]);
        let upper = stage(-(want + 1.0), &[(&nodes, "-10. -20. -30.")]);
        Cascade::from_xml(&cascade_xml("HAAR", 6, 6, &[stage_xml, upper], &features))
            .map(|c| accepted(&c, &image))
            .expect("cascade loads")
    };
    let above = |v: f32| v.next_up();
    // f0 < t0 -> node 1; f1 < t1 -> leaf 0 (10).
    assert!(run(above(f0), above(f1), 10.0));
    // f0 < t0 -> node 1; f1 >= t1 -> leaf 1 (20).
    assert!(run(above(f0), f1, 20.0));
    assert!(!run(above(f0), f1, 10.0));
    // f0 >= t0 -> leaf 2 (30).
    assert!(run(f0, above(f1), 30.0));
    assert!(!run(f0, above(f1), 20.0));
}

/// One-stage LBP cascade on a 3x3 window with 1x1 blocks whose only node
/// accepts exactly the codes in `codes`.
fn lbp_cascade(codes: &[u32], stages_extra: &[String]) -> Cascade {
    let mut subset = [0u32; 8];
    for &c in codes {
        subset[(c / 32) as usize] |= 1 << (c % 32);
    }
    let words: Vec<String> = subset.iter().map(|w| (*w as i32).to_string()).collect();
    let nodes = format!("0 -1 0 {}", words.join(" "));
    let mut stages = vec![stage(0.0, &[(&nodes, "1. -1.")])];
    stages.extend_from_slice(stages_extra);
    Cascade::from_xml(&cascade_xml(
        "LBP",
        3,
        3,
        &stages,
        &["<_><rect>0 0 1 1</rect></_>".to_string()],
    ))
    .expect("LBP cascade loads")
}

#[test]
fn lbp_code_bits_follow_opencv_order() {
    // Centre 5; neighbours >= 5: top-left (128), top-right (32), right (16),
    // bottom (4); the rest are smaller. Code 180.
    let image = gray(3, 3, vec![9, 1, 9, 1, 5, 9, 1, 9, 1]);
    assert!(accepted(&lbp_cascade(&[180], &[]), &image));
    assert!(!accepted(&lbp_cascade(&[181, 179, 52], &[]), &image));
    // Equal to the centre counts as set: all equal gives 255.
    let flat = gray(3, 3, vec![7; 9]);
    assert!(accepted(&lbp_cascade(&[255], &[]), &flat));
    // Each single neighbour brighter than the centre gives its own bit.
    let weights = [128, 64, 32, 1, 0, 16, 2, 4, 8];
    for (i, &bit) in weights.iter().enumerate() {
        if i == 4 {
            continue;
        }
        let mut px = vec![0u8; 9];
        px[4] = 50;
        px[i] = 100;
        assert!(
            accepted(&lbp_cascade(&[bit], &[]), &gray(3, 3, px)),
            "neighbour {i}"
        );
    }
}

#[test]
fn lbp_blocks_use_integral_sums() {
    // 2x1 blocks on a 6x3 window: block sums decide, not single pixels.
    let xml = |codes: u32| {
        let mut subset = [0u32; 8];
        subset[(codes / 32) as usize] |= 1 << (codes % 32);
        let words: Vec<String> = subset.iter().map(|w| (*w as i32).to_string()).collect();
        cascade_xml(
            "LBP",
            6,
            3,
            &[stage(
                0.0,
                &[(&format!("0 -1 0 {}", words.join(" ")), "1. -1.")],
            )],
            &["<_><rect>0 0 2 1</rect></_>".to_string()],
        )
    };
    // Centre block (columns 2-3 of row 1) sums to 10+10 = 20; the left block
    // 0+21 = 21 (>=), all other blocks 19 (<). Only bit "left" (1) is set.
    let px = vec![
        9, 10, 9, 10, 9, 10, //
        0, 21, 10, 10, 9, 10, //
        9, 10, 9, 10, 9, 10,
    ];
    let c = Cascade::from_xml(&xml(1)).expect("loads");
    assert!(accepted(&c, &gray(6, 3, px)));
}

#[test]
fn stage0_rejection_skips_the_next_position_later_stages_do_not() {
    // Window 3x3, image 7x3: positions x = 0, 2, 4 (step 2 at scale 1).
    // x=0 pattern gives code 0 (centre brightest), x=2 and x=4 code 255.
    let px = vec![
        1, 1, 7, 7, 7, 7, 7, //
        1, 9, 7, 7, 7, 7, 7, //
        1, 1, 7, 7, 7, 7, 7,
    ];
    let image = gray(7, 3, px);
    // Stage 0 accepts only 255: x=0 rejected at stage 0, so x=2 is skipped.
    let found = raw(&lbp_cascade(&[255], &[]), &image);
    let xs: Vec<i32> = found.iter().map(|r| r.x).collect();
    assert_eq!(xs, vec![4]);
    // Stage 0 accepts everything, stage 1 only 255: x=0 rejected at stage 1,
    // no skip, x=2 and x=4 found.
    let mut subset = [0u32; 8];
    subset[7] = 1 << 31;
    let words: Vec<String> = subset.iter().map(|w| (*w as i32).to_string()).collect();
    let second = stage(0.0, &[(&format!("0 -1 0 {}", words.join(" ")), "1. -1.")]);
    let all: Vec<u32> = (0..256).collect();
    let found = raw(&lbp_cascade(&all, &[second]), &image);
    let xs: Vec<i32> = found.iter().map(|r| r.x).collect();
    assert_eq!(xs, vec![2, 4]);
}

#[test]
fn old_format_cascades_load_and_agree_with_the_new_format() {
    let old = "<?xml version=\"1.0\"?><opencv_storage>\
        <old type_id=\"opencv-haar-classifier\"><size>6 6</size><stages><_><trees><_><_>\
        <feature><rects><_>0 0 6 6 -1.</_><_>0 0 3 6 2.</_></rects><tilted>0</tilted></feature>\
        <threshold>1e30</threshold><left_val>1.</left_val><right_val>-1.</right_val></_></_></trees>\
        <stage_threshold>0.</stage_threshold><parent>-1</parent><next>-1</next></_></stages></old>\
        </opencv_storage>";
    let c = Cascade::from_xml(old).expect("old format loads");
    assert_eq!(c.window_size(), (6, 6));
    assert!(accepted(&c, &gray(6, 6, textured_6x6())));
}

#[test]
fn unsupported_and_malformed_files_give_errors() {
    let hog = cascade_xml("HOG", 6, 6, &[], &[]);
    assert!(matches!(
        Cascade::from_xml(&hog),
        Err(CascadeError::Unsupported(_))
    ));
    assert!(matches!(
        Cascade::from_xml("<opencv_storage><x/></opencv_storage>"),
        Err(CascadeError::NotCascade(_))
    ));
    assert!(matches!(
        Cascade::from_xml("<opencv_storage><cascade>"),
        Err(CascadeError::Xml(_))
    ));
    // Feature rectangle outside the window.
    let bad = cascade_xml(
        "HAAR",
        6,
        6,
        &[stage(0.0, &[("0 -1 0 0.", "1. -1.")])],
        &[haar_feature(&[(0, 0, 7, 6, -1.0), (0, 0, 3, 6, 2.0)])],
    );
    assert!(matches!(
        Cascade::from_xml(&bad),
        Err(CascadeError::Malformed(_))
    ));
    // Node referring to a missing feature.
    let bad = cascade_xml(
        "HAAR",
        6,
        6,
        &[stage(0.0, &[("0 -1 3 0.", "1. -1.")])],
        &[haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)])],
    );
    assert!(Cascade::from_xml(&bad).is_err());
    // Child that points backwards (a cycle).
    let bad = cascade_xml(
        "HAAR",
        6,
        6,
        &[stage(0.0, &[("1 -1 0 0. 1 -2 0 0.", "1. -1. 0.")])],
        &[haar_feature(&[(0, 0, 6, 6, -1.0), (0, 0, 3, 6, 2.0)])],
    );
    assert!(Cascade::from_xml(&bad).is_err());
}

#[test]
fn bad_scale_factor_is_an_error() {
    let c = lbp_cascade(&[0], &[]);
    let image = gray(3, 3, vec![0; 9]);
    for s in [1.0, 0.5, f64::NAN] {
        let p = DetectParams {
            scale_factor: s,
            ..DetectParams::default()
        };
        assert!(detect_candidates(&c, &image, &p).is_err());
    }
}

mod cancellation {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use ocellus_detect::{
        Cascade, DetectError, DetectParams, detect, detect_cancellable, detect_cost_ns, detect_work,
    };
    use ocellus_imaging::{Cancel, Image, PixelLayout};

    const LBP: &str = "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml";

    fn cascade() -> Option<Cascade> {
        let xml = std::fs::read_to_string(LBP).ok().or_else(|| {
            eprintln!("skipping: {LBP} not found (apt-get install opencv-data)");
            None
        })?;
        Some(Cascade::from_xml(&xml).expect("installed cascade loads"))
    }

    fn noise(w: u32, h: u32) -> Image {
        let data = ocellus_testdata::noise_bytes(5, w as usize * h as usize);
        Image::from_vec(w, h, PixelLayout::Gray, data).unwrap()
    }

    #[test]
    fn a_raised_flag_stops_detection_at_once() {
        let Some(cascade) = cascade() else { return };
        let cancel = Cancel::new(Arc::new(AtomicBool::new(true)));
        let img = noise(300, 200);
        let params = DetectParams::default();
        assert_eq!(
            detect_cancellable(&cascade, &img, &params, &cancel),
            Err(DetectError::Cancelled)
        );
        // Not cancelled: the same boxes as detect.
        let never = detect_cancellable(&cascade, &img, &params, &Cancel::never());
        assert_eq!(never, detect(&cascade, &img, &params));
        // Invalid parameters are still reported as such.
        let bad = DetectParams {
            scale_factor: 1.0,
            ..params
        };
        assert!(matches!(
            detect_cancellable(&cascade, &img, &bad, &Cancel::never()),
            Err(DetectError::ScaleFactor(_))
        ));
    }

    #[test]
    fn cancelling_from_another_thread_stops_a_long_detection() {
        let Some(cascade) = cascade() else { return };
        // Seconds in a debug build: it cannot end before the flag goes up.
        let img = Image::filled(3000, 2000, PixelLayout::Gray, 128);
        let flag = Arc::new(AtomicBool::new(false));
        let cancel = Cancel::new(flag.clone());
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::Relaxed);
        });
        let result = detect_cancellable(&cascade, &img, &DetectParams::default(), &cancel);
        raiser.join().unwrap();
        assert_eq!(result, Err(DetectError::Cancelled));
    }

    #[test]
    fn the_cost_estimate_grows_with_the_image_and_shrinks_with_min_size() {
        let Some(cascade) = cascade() else { return };
        let params = DetectParams::default();
        let small = detect_cost_ns(&cascade, 640, 480, &params);
        let large = detect_cost_ns(&cascade, 1280, 960, &params);
        assert!(small > 0 && large > 3 * small, "{small} {large}");
        let min = DetectParams {
            min_size: (100, 100),
            ..params
        };
        assert!(detect_cost_ns(&cascade, 1280, 960, &min) < large);
        // Smaller than the window: nothing to scan.
        assert_eq!(detect_work(&cascade, 10, 10, &params).windows, 0);
        // 100 megapixels is seconds of work, not milliseconds.
        assert!(detect_cost_ns(&cascade, 10_000, 10_000, &params) > 1_000_000_000);
    }
}
