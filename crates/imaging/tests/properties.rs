//! Invariants every filter must keep, on arbitrary sizes from 1x1 up
//! (including images smaller than the kernels) and every pixel layout.

use ocellus_imaging::filter::geometry::{Flip, Rotation, flip, rotate};
use ocellus_imaging::pipeline::{Op, Pipeline};
use ocellus_imaging::{Image, PixelLayout};
use proptest::prelude::*;

fn layout() -> impl Strategy<Value = PixelLayout> {
    prop_oneof![
        Just(PixelLayout::Gray),
        Just(PixelLayout::GrayAlpha),
        Just(PixelLayout::Rgb),
        Just(PixelLayout::Rgba)
    ]
}

prop_compose! {
    fn image(max_side: u32)(w in 1..=max_side, h in 1..=max_side, layout in layout(), seed in any::<u64>()) -> Image {
        let data = ocellus_testdata::noise_bytes(seed, w as usize * h as usize * layout.channels());
        Image::from_vec(w, h, layout, data).unwrap()
    }
}

/// Every operation with parameters that make sense on any image.
fn any_op() -> impl Strategy<Value = String> {
    prop_oneof![
        (0.0f32..12.0).prop_map(|s| format!("blur={s}")),
        (0u32..9).prop_map(|r| format!("box={r}")),
        (0u32..8).prop_map(|r| format!("median={r}")),
        (0.1f32..4.0, 0.0f32..3.0).prop_map(|(s, a)| format!("sharpen={s}:{a}")),
        Just("edges".to_string()),
        Just("grayscale".to_string()),
        Just("sepia".to_string()),
        Just("invert".to_string()),
        (-255i32..=255).prop_map(|d| format!("brightness={d}")),
        (0.0f32..4.0).prop_map(|f| format!("contrast={f}")),
        (1u32..50, 1u32..50).prop_map(|(w, h)| format!("resize={w}x{h}")),
        (1u32..50).prop_map(|w| format!("resize={w}x:bilinear")),
        prop_oneof![Just("rotate=90"), Just("rotate=180"), Just("rotate=270")]
            .prop_map(String::from),
        prop_oneof![Just("flip=h"), Just("flip=v")].prop_map(String::from),
    ]
}

fn expected_size(op: &Op, w: u32, h: u32) -> Option<(u32, u32)> {
    Some(match op {
        Op::Resize {
            width: Some(tw),
            height: Some(th),
            ..
        } => (*tw, *th),
        Op::Resize { .. } => return None,
        Op::Rotate(Rotation::Quarter | Rotation::ThreeQuarters) => (h, w),
        _ => (w, h),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_panic_and_expected_size(img in image(40), spec in any_op()) {
        let pipeline: Pipeline = spec.parse().unwrap();
        let (w, h) = (img.width(), img.height());
        let out = pipeline.apply(img).unwrap();
        if let Some(size) = expected_size(&pipeline.ops()[0], w, h) {
            prop_assert_eq!((out.width(), out.height()), size);
        }
        prop_assert_eq!(out.as_bytes().len(), out.width() as usize * out.height() as usize * out.channels());
    }

    #[test]
    fn tiny_blur_is_identity(img in image(30), sigma in 0.0f32..0.08) {
        let out = Op::Blur(sigma).apply(img.clone()).unwrap();
        prop_assert_eq!(out, img);
    }

    #[test]
    fn four_quarter_turns_are_identity(img in image(30)) {
        let mut out = img.clone();
        for _ in 0..4 {
            out = rotate(&out, Rotation::Quarter);
        }
        prop_assert_eq!(out, img.clone());
        prop_assert_eq!(rotate(&rotate(&img, Rotation::Quarter), Rotation::ThreeQuarters), img);
    }

    #[test]
    fn flipping_twice_is_identity(img in image(30), horizontal in any::<bool>()) {
        let axis = if horizontal { Flip::Horizontal } else { Flip::Vertical };
        let mut out = img.clone();
        flip(&mut out, axis);
        flip(&mut out, axis);
        prop_assert_eq!(out, img);
    }

    #[test]
    fn blurs_keep_flat_images_flat(w in 1u32..60, h in 1u32..60, v in any::<u8>(), sigma in 0.1f32..20.0, r in 0u32..20) {
        for op in [Op::Blur(sigma), Op::Box(r), Op::Median(r.min(7))] {
            let img = Image::filled(w, h, PixelLayout::Rgb, v);
            let out = op.apply(img.clone()).unwrap();
            prop_assert_eq!(out, img);
        }
    }

    #[test]
    fn blur_never_leaves_the_input_range(img in image(40), sigma in 0.1f32..10.0) {
        let (lo, hi) = (*img.as_bytes().iter().min().unwrap(), *img.as_bytes().iter().max().unwrap());
        let out = Op::Blur(sigma).apply(img).unwrap();
        prop_assert!(out.as_bytes().iter().all(|&v| v >= lo && v <= hi));
    }
}
